"""Behaviour of the logrotate role: size-triggered and forced rotation keep the
configured number of files; journald runs with the configured caps."""

from __future__ import annotations

import os
import re

import armstack_verify
from armstack_verify import output, sh


def rotated(host, directory, base):
    return sorted(output(host, f"find {directory} -maxdepth 1 -name '{base}.*' -printf '%f\\n'").split())


def test_rules_are_valid_for_logrotate(host):
    out = host.run("logrotate --debug --state /dev/null /etc/logrotate.conf")
    assert out.rc == 0, out.stderr
    assert "/var/log/armstack/*.log" in out.stdout + out.stderr


def test_file_past_maxsize_rotates_on_a_normal_run(host):
    sh(host, "rm -f /var/log/armstack/size.log* && head -c 2000000 /dev/zero > /var/log/armstack/size.log")
    # Not forced: the daily interval has not passed, maxsize alone triggers it.
    sh(host, "logrotate /etc/logrotate.conf")
    assert rotated(host, "/var/log/armstack", "size.log") == ["size.log.1"]
    assert host.file("/var/log/armstack/size.log").size == 0


def test_forced_runs_keep_the_configured_number_of_files(host):
    sh(host, "rm -f /var/log/armstack/kept.log*")
    for i in range(7):
        sh(host, f"echo 'run {i}' > /var/log/armstack/kept.log && logrotate --force /etc/logrotate.conf")
    kept = rotated(host, "/var/log/armstack", "kept.log")
    # rotate 4: .1 (delaycompress) and .2.gz .3.gz .4.gz
    assert kept == ["kept.log.1", "kept.log.2.gz", "kept.log.3.gz", "kept.log.4.gz"], kept
    # The newest rotated file holds the last run's lines; the oldest kept is run 3 (runs 0-2 are gone).
    assert host.file("/var/log/armstack/kept.log.1").content_string == "run 6\n"
    assert "run 3" in output(host, "zcat /var/log/armstack/kept.log.4.gz")


def test_copytruncate_rule_keeps_its_own_count(host):
    sh(host, "rm -f /var/log/armstack-app/access.log*")
    for i in range(4):
        sh(host, f"echo 'hit {i}' >> /var/log/armstack-app/access.log && logrotate --force /etc/logrotate.conf")
    assert rotated(host, "/var/log/armstack-app", "access.log") == ["access.log.1", "access.log.2.gz"]


def test_logrotate_timer_runs_hourly(host):
    assert host.service("logrotate.timer").is_enabled
    assert host.service("logrotate.timer").is_running
    out = output(host, "systemctl show logrotate.timer -p TimersCalendar --value")
    assert "OnCalendar=*-*-* *:00:00" in out, out


def test_journald_caps_are_live(host):
    sh(host, "systemctl restart systemd-journald && journalctl --flush")
    assert host.file("/var/log/journal").is_directory
    # journald states its limits when it opens the system journal.
    out = output(host, "journalctl --boot --unit systemd-journald --output cat --no-pager | grep 'System Journal' | tail -1")
    assert re.search(r"max 64\.0M", out), out
    assert output(host, "systemctl show systemd-journald -p ActiveState --value") == "active"
    usage = output(host, "journalctl --disk-usage")
    assert "take up" in usage


def test_journald_drop_in_is_the_only_one(host):
    """One owner: this role's drop-in sets size, retention and persistent storage."""
    content = host.file("/etc/systemd/journald.conf.d/60-armstack-logrotate.conf").content_string
    assert "SystemMaxUse=64M" in content
    assert "Storage=persistent" in content
    assert "MaxRetentionSec=4day" in content
    assert output(host, "ls /etc/systemd/journald.conf.d/").split() == ["60-armstack-logrotate.conf"]


CONVERGE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "converge.yml")


def test_bad_journald_value_fails_before_any_change(host):
    """A newline in a journald value would add a setting of its own (Storage=volatile)."""
    before = host.file("/etc/systemd/journald.conf.d/60-armstack-logrotate.conf").content_string
    res = armstack_verify.playbook(CONVERGE, extra_vars={"logrotate_journald_system_max_use": "200M\nStorage=volatile"})
    assert res.returncode != 0
    assert "logrotate_journald_system_max_use must be a size such as 200M" in res.stdout, res.stdout[-2000:]
    assert "changed=0" in res.stdout
    assert host.file("/etc/systemd/journald.conf.d/60-armstack-logrotate.conf").content_string == before


def test_bad_rule_fails_before_any_change(host):
    """A rule whose `create` carries a newline would add a directive of its own to the rule file;
    a rule with an unknown key is refused by the argument spec. Both stop the play before any task."""
    rule_file = "/etc/logrotate.d/armstack-app"
    before = host.file(rule_file).content_string
    app = {"name": "app", "paths": ["/var/log/armstack-app/access.log", "/var/log/armstack-app/error.log"],
           "copytruncate": True, "rotate": 2}
    bad_create = [{**app, "copytruncate": False, "create": "0640 root adm\n    rotate 9999"}]
    res = armstack_verify.playbook(CONVERGE, extra_vars={"logrotate_rules": bad_create})
    assert res.returncode != 0
    assert 'logrotate rule app: needs' in res.stdout and '"MODE USER GROUP"' in res.stdout, res.stdout[-2000:]
    assert "changed=0" in res.stdout
    unknown_key = [{**app, "olddir": "/tmp"}]
    res = armstack_verify.playbook(CONVERGE, extra_vars={"logrotate_rules": unknown_key})
    assert res.returncode != 0
    assert "olddir" in res.stdout and "logrotate_rules" in res.stdout, res.stdout[-2000:]
    assert "changed=0" in res.stdout
    assert host.file(rule_file).content_string == before
