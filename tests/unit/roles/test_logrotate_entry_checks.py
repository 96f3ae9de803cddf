# Copyright: (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""roles/logrotate/tasks/main.yml: the entry check of every rule, evaluated the
way the assert module evaluates it (Ansible's conditionals, the role's
defaults, the task's own vars), one bad field at a time.

Each rule becomes /etc/logrotate.d/armstack-NAME: a newline, a brace or a
quote in a path, maxsize, create or su, or an `endscript` line in postrotate,
would end the block early and add directives of the inventory's choosing,
which `logrotate --debug` would then accept as valid.
"""

from __future__ import annotations

import os

import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
ROLE = os.path.join(ROOT, "roles", "logrotate")


def _load(path):
    """A file of the role, loaded as Ansible loads it: its templates trusted."""
    return DataLoader().load_from_file(os.path.join(ROLE, path), trusted_as_template=True)


TASK = next(t for t in _load("tasks/main.yml") if t.get("name", "").startswith("Assert that the logrotate rules"))


def failed_conditions(rule, **overrides):
    """The conditions of the entry check that `rule` fails (empty: it passes)."""
    variables = dict(_load("defaults/main.yml"))
    variables.update(TASK.get("vars", {}))
    variables.update({"logrotate_rules": [rule], "item": rule})
    variables.update(overrides)
    templar = Templar(loader=DataLoader(), variables=variables)
    return [c for c in TASK["ansible.builtin.assert"]["that"] if not templar.evaluate_conditional(trust_as_template(c))]


GOOD = {"name": "app", "paths": ["/var/log/app/*.log", "/srv/app/logs/worker.log"]}


@pytest.mark.parametrize("extra", [
    {},
    {"maxsize": "100M", "rotate": 7, "frequency": "weekly"},
    {"maxsize": "512k"},
    {"create": "0640 root adm"},
    {"create": "640 www-data www-data", "su": "root adm"},
    {"postrotate": "systemctl kill -s HUP rsyslog.service\n/usr/bin/true"},
    {"copytruncate": True, "dateext": True},
])
def test_a_good_rule_passes(extra):
    assert failed_conditions({**GOOD, **extra}) == []


@pytest.mark.parametrize(("extra", "field"), [
    ({"name": "app\n"}, "_re_name"),
    ({"name": "App Logs"}, "_re_name"),
    ({"paths": []}, "item.paths | length"),
    ({"paths": ["var/log/app.log"]}, "_re_path"),
    ({"paths": ["/var/log/my app.log"]}, "_re_path"),
    ({"paths": ["/var/log/app.log {\n    rotate 9999\n}\n/etc/shadow"]}, "_re_path"),
    ({"paths": ["/var/log/app.log\n"]}, "_re_path"),
    ({"paths": ['/var/log/"app".log']}, "_re_path"),
    ({"frequency": "hourly"}, "frequency"),
    ({"rotate": "many"}, "_re_rotate"),
    ({"maxsize": "50M\n    rotate 1000"}, "_re_maxsize"),
    ({"maxsize": "lots"}, "_re_maxsize"),
    ({"create": "0640 root"}, "_re_create"),
    ({"create": "0640 root adm\n    postrotate"}, "_re_create"),
    ({"su": "root adm\nsu nobody nogroup"}, "_re_su"),
    ({"su": "root"}, "_re_su"),
    ({"postrotate": "kill -HUP 1\nendscript\n    rotate 1000"}, "_re_endscript"),
    ({"postrotate": "kill -HUP 1\n  endscript  "}, "_re_endscript"),
])
def test_each_bad_field_is_refused(extra, field):
    failed = failed_conditions({**GOOD, **extra})
    assert failed, f"{extra} passed the entry check"
    assert any(field in c for c in failed), f"{extra} failed {failed}, not the check of {field}"


def test_two_rules_with_one_name_are_refused():
    assert failed_conditions(GOOD, logrotate_rules=[GOOD, {**GOOD, "paths": ["/var/log/other.log"]}])


def test_the_message_names_every_form():
    message = " ".join(TASK["ansible.builtin.assert"]["fail_msg"].split())
    for words in ("absolute", "whitespace", "daily, weekly or monthly", "MODE USER GROUP", '"USER GROUP"', "endscript"):
        assert words in message
