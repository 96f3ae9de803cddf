# Copyright: (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The role's own Jinja, rendered by Ansible's templating: the input checks of
tasks/assert.yml (one bad field at a time: the problem names it, never a secret's
value), and the repository env file the runner parses (no drift between them)."""

from __future__ import annotations

import json
import os

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template
from armstack_backup.restic import Restic, parse_env

from ansible_collections.armstack.deploy.tests.unit.backup.conftest import ROOT

ROLE = os.path.join(ROOT, "roles", "backup")
SECRET = "s3cret-value-that-must-not-print-0123"
GOOD_REPOS = [
    {"name": "local", "type": "local", "path": "/var/backups/restic"},
    {"name": "offsite", "type": "s3", "endpoint": "https://ns.compat.objectstorage.eu-frankfurt-1.oraclecloud.com",
     "bucket": "armstack-backups", "prefix": "/host-1/", "region": "eu-frankfurt-1", "path_style": True,
     "access_key_id": "AKIDEXAMPLE0123", "secret_access_key": SECRET},
]
GOOD_JOBS = [
    {"name": "uploads", "type": "volume", "volume": "armstack_uploads", "quiesce": ["armstack-app-1"]},
    {"name": "etc", "type": "directory", "path": "/etc/armstack", "exclude": ["*.tmp"]},
    {"name": "pg", "type": "database", "engine": "postgres", "container": "db", "database": "app", "user": "app"},
    {"name": "sq", "type": "database", "engine": "sqlite", "container": "app", "path": "/data/app.db"},
    {"name": "cmd", "type": "database", "engine": "command", "dump_command": ["cat", "/x"]},
]


def render(expression, **overrides):
    # Loaded as Ansible loads a role's defaults and vars: their templates trusted.
    loader = DataLoader()
    variables = {}
    for path in ("defaults/main.yml", "vars/main.yml"):
        variables.update(loader.load_from_file(os.path.join(ROLE, path), trusted_as_template=True))
    variables.update({"ansible_facts": {"hostname": "host-1", "architecture": "aarch64"},
                      "ansible_managed": "Ansible managed", "backup_restic_password": SECRET,
                      "backup_repositories": GOOD_REPOS, "backup_jobs": GOOD_JOBS})
    variables.update(overrides)
    return Templar(loader=DataLoader(), variables=variables).template(trust_as_template(expression))


def problems(**overrides):
    out = json.loads(render("{{ _backup_problems }}", **overrides))
    for line in out:
        assert SECRET not in line
    return out


def test_good_settings_have_no_problem():
    assert problems() == []


def repo(index, **fields):
    repos = json.loads(json.dumps(GOOD_REPOS))
    repos[index].update(fields)
    return {"backup_repositories": repos}


def job(index, **fields):
    jobs = json.loads(json.dumps(GOOD_JOBS))
    jobs[index].update(fields)
    return {"backup_jobs": jobs}


CASES = {
    "repository name with a leading -": (repo(0, name="-local"), "backup_repositories[0] (-local): name"),
    "relative local path": (repo(0, path="var/backups"), "backup_repositories[0] (local): path"),
    "local path with ..": (repo(0, path="/var/../etc"), "backup_repositories[0] (local): path"),
    "endpoint injecting a variable": (repo(1, endpoint="https://h\nRESTIC_PASSWORD_COMMAND=/bin/sh"), "(offsite): endpoint"),
    "endpoint with a trailing newline": (repo(1, endpoint="https://h.example.com\n"), "(offsite): endpoint"),
    "endpoint with a path": (repo(1, endpoint="https://h.example.com/bucket"), "(offsite): endpoint"),
    "bucket with a newline": (repo(1, bucket="b\nX=1"), "(offsite): bucket"),
    "prefix with a newline": (repo(1, prefix="p\nX=1"), "(offsite): prefix"),
    "prefix with ..": (repo(1, prefix="../other-host"), "(offsite): prefix"),
    "region with a newline": (repo(1, region="eu\nX=1"), "(offsite): region"),
    "key id with a newline": (repo(1, access_key_id="AKID\nX=1"), "(offsite): access_key_id"),
    "secret key with a newline": (repo(1, secret_access_key=SECRET + "\nX=1"), "(offsite): secret_access_key"),
    "short repository password": (repo(0, password="short"), "(local): the password (password)"),
    "password with a newline": (repo(0, password=SECRET + "\nX=1"), "(local): the password (password)"),
    "short default password": ({"backup_restic_password": "short"}, "the password (backup_restic_password)"),
    "duplicate repository names": (repo(1, name="local"), "backup_repositories: the names are not unique"),
    "job name with a leading -": (job(0, name="-uploads"), "backup_jobs[0] (-uploads): name"),
    "reserved job name": (job(0, name="no-jobs-configured"), "(no-jobs-configured): name is reserved"),
    "volume with a leading -": (job(0, volume="-v"), "(uploads): volume"),
    "quiesce with a leading -": (job(0, quiesce=["--privileged"]), "(uploads): quiesce"),
    "relative directory": (job(1, path="etc/armstack"), "(etc): path"),
    "exclude with a newline": (job(1, exclude=["a\nb"]), "(etc): exclude"),
    "container with a leading -": (job(2, container="-it"), "(pg): container"),
    "database with a leading -": (job(2, database="--help"), "(pg): database"),
    "database as a conninfo": (job(2, database="host=evil"), "(pg): database"),
    "user with a leading -": (job(2, user="-U"), "(pg): user"),
    "sqlite path with a leading -": (job(3, path="-data.db"), "(sq): path"),
    "command without argv": (job(4, dump_command=[]), "(cmd): dump_command"),
    "unknown repository": (job(0, repositories=["elsewhere"]), "(uploads): repositories"),
    "duplicate job names": (job(1, name="uploads"), "backup_jobs: the names are not unique"),
    "host name with a space": ({"backup_hostname": "my host"}, "backup_hostname"),
    "host name with a leading -": ({"backup_hostname": "-h"}, "backup_hostname"),
    "retry lock in words": ({"backup_retry_lock": "10 minutes"}, "backup_retry_lock"),
    "read-data-subset option": ({"backup_check_read_data_subset": "--read-data"}, "backup_check_read_data_subset"),
    "drill directory /": ({"backup_drill_dir": "/"}, "backup_drill_dir"),
    "relative metrics directory": ({"backup_metrics_dir": "textfile"}, "backup_metrics_dir"),
    "calendar with a newline": ({"backup_schedule": "daily\nExecStartPre=/bin/sh"}, "backup_schedule must be one line"),
    "keep within not a duration": ({"backup_keep_extra": {"within": "2 days"}}, "backup_keep_extra.within"),
    "no repository": ({"backup_repositories": []}, "backup_repositories is empty"),
    "no job": ({"backup_jobs": []}, "backup_jobs is empty"),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_each_bad_field_is_named(case):
    overrides, expected = CASES[case]
    found = problems(**overrides)
    assert any(expected in line for line in found), found


def test_an_unknown_keep_rule_is_refused_by_the_argument_spec():
    # The spec's options of backup_keep_extra (not tasks/assert.yml) refuse a key
    # restic has no --keep-<key> for, before any task of the role runs.
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    with open(os.path.join(ROOT, "roles/backup/meta/argument_specs.yml"), encoding="utf-8") as handle:
        spec = yaml.safe_load(handle)
    options = spec["argument_specs"]["main"]["options"]
    result = ArgumentSpecValidator({"backup_keep_extra": options["backup_keep_extra"]}).validate(
        {"backup_keep_extra": {"forever": 1}})
    text = " ".join(str(e) for e in result.errors)
    assert "backup_keep_extra" in text and "forever" in text, text


def test_systemd_analyze_results_are_reported_by_name():
    checks = {"results": [{"item": {"key": "backup_schedule", "value": "x"}, "rc": 1,
                           "stderr_lines": ["Failed to parse calendar specification 'x': Invalid argument"]},
                          {"item": {"key": "backup_randomized_delay", "value": "soon"}, "rc": 1, "stderr_lines": ["bad"]},
                          {"item": {"key": "backup_check_schedule", "value": "weekly"}, "rc": 0}]}
    found = problems(_backup_schedule_checks=checks)
    assert any(line.startswith("backup_schedule is not a calendar systemd accepts") for line in found)
    assert any(line.startswith("backup_randomized_delay is not a time span") for line in found)
    assert not any("backup_check_schedule" in line for line in found)


def env_file(index):
    with open(os.path.join(ROLE, "templates", "repository.env.j2"), encoding="utf-8") as handle:
        template = handle.read()
    return render(template, item=GOOD_REPOS[index], _backup_runner="/usr/local/sbin/armstack-backup",
                  _backup_config_dir="/etc/armstack/backup")


def test_the_env_file_is_what_the_runner_reads():
    local = parse_env(env_file(0))
    assert local == {"RESTIC_REPOSITORY": "/var/backups/restic",
                     "RESTIC_PASSWORD_FILE": "/etc/armstack/backup/repositories/local.password"}
    text = env_file(1)
    offsite = parse_env(text)
    assert offsite["RESTIC_REPOSITORY"] == ("s3:https://ns.compat.objectstorage.eu-frankfurt-1.oraclecloud.com"
                                            "/armstack-backups/host-1")
    assert offsite["AWS_SECRET_ACCESS_KEY"] == SECRET and offsite["AWS_DEFAULT_REGION"] == "eu-frankfurt-1"
    client = Restic({"restic": "restic", "cache_dir": "/c", "repositories": []})
    client.use("offsite", text)
    assert client.argv("offsite", ["snapshots"]) == ["restic", "-o", "s3.bucket-lookup=path",
                                                     "-o", "s3.region=eu-frankfurt-1", "snapshots"]


def test_the_runner_configuration_holds_no_secret():
    with open(os.path.join(ROLE, "templates", "config.json.j2"), encoding="utf-8") as handle:
        template = handle.read()
    text = render(template, _backup_restic_bin="/usr/bin/restic")
    assert SECRET not in text and "AKIDEXAMPLE0123" not in text
    config = json.loads(text)
    assert [r["name"] for r in config["repositories"]] == ["local", "offsite"]
    assert config["probe"] == {"connect_timeout": 5, "timeout": 60}


def test_the_runner_entry_point_starts_with_its_shebang():
    """The template's first line is a Jinja comment (a template is not a script); the
    rendered program's first line is the interpreter in isolated mode."""
    with open(os.path.join(ROLE, "templates", "armstack-backup.j2"), encoding="utf-8") as handle:
        source = handle.read()
    assert not source.startswith("#!")
    lines = render(source).splitlines()
    assert lines[0] == "#!/usr/bin/python3 -I"
    assert lines[1] == "# Ansible managed"
    compile("\n".join(lines), "armstack-backup", "exec")
