# Copyright: (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backups of jobs: snapshots, manifests, quiesce, dumps, and backups that store nothing."""

from __future__ import annotations

import json
import os
import sys

import pytest

from ansible_collections.armstack.deploy.tests.unit.backup.conftest import MYSQL_PASSWORD, S3_SECRET


def test_a_directory_backup_stores_a_snapshot_and_a_manifest(bed):
    bed.init()
    bed.write("src/appdata/scratch.tmp", b"not backed up")
    result = bed.run("backup", "appdata")
    assert result.rc == 0, result
    manifests = {}
    for repo in ("local", "offsite"):
        snaps = bed.snapshots(repo, "job:appdata")
        assert len(snaps) == 1 and snaps[0]["hostname"] == "testhost"
        manifests[repo] = os.listdir(bed.path("state", "manifests", "appdata", repo))
        assert manifests[repo] == [snaps[0]["id"] + ".sha256"]
    with open(bed.path("state", "manifests", "appdata", "local", manifests["local"][0]), encoding="utf-8") as handle:
        text = handle.read()
    assert "docs/file-3.bin" in text and "scratch.tmp" not in text
    assert bed.metric("appdata", "armstack_backup_last_exit_code") == 0
    assert bed.metric("appdata", "armstack_backup_snapshots", {"repository": "offsite"}) == 1
    argv = bed.restic_calls("backup")[0]["argv"]
    assert "--host=testhost" in argv and "--tag=job:appdata" in argv and "--exclude=*.tmp" in argv


@pytest.mark.parametrize("fail", ["", "1", "3"])
def test_quiesced_containers_are_always_started_again(bed, monkeypatch, fail):
    bed.init()
    if fail:
        monkeypatch.setenv("STUB_RESTIC_EXIT_BACKUP", fail)
    result = bed.run("backup", "appvol")
    assert result.rc == (int(fail) if fail else 0), result
    assert bed.running("worker")
    assert ["stop", "--", "worker"] in bed.docker_calls() and ["start", "--", "worker"] in bed.docker_calls()
    assert not os.path.exists(bed.path("state", "stopped-containers.json"))
    assert bed.metric("appvol", "armstack_backup_last_exit_code") == (int(fail) if fail else 0)


def test_a_container_that_does_not_start_again_is_reported_and_the_others_start(bed, monkeypatch):
    bed.init()
    bed.job("appvol")["quiesce"] = ["worker", "app"]
    bed.save()
    monkeypatch.setenv("STUB_DOCKER_FAIL_START", "worker")
    result = bed.run("backup", "appvol")
    assert "container worker did not start again" in result.err
    assert bed.running("app")


def test_no_job_configured_is_a_failure_the_alerts_see(bed):
    """backup_jobs: [] ran the runner to exit 0 with fresh success metrics; now it fails, and a
    metrics file (job "no-jobs-configured") makes BackupFailed and BackupStale fire."""
    bed.init()
    bed.config["jobs"] = []
    bed.save()
    result = bed.run("backup")
    assert result.rc == 1
    assert "no backup job is configured" in result.err
    assert bed.metric("no-jobs-configured", "armstack_backup_last_exit_code") == 1
    assert bed.metric("no-jobs-configured", "armstack_backup_last_success_timestamp_seconds") == 0
    assert bed.metric("no-jobs-configured", "armstack_backup_last_run_timestamp_seconds") > 0
    # Jobs configured again: the report goes away with the next run.
    bed.config["jobs"] = [{"name": "appdata", "type": "directory", "path": bed.path("src", "appdata")}]
    bed.save()
    assert bed.run("backup").rc == 0
    assert not os.path.exists(bed.path("metrics", "backup_no-jobs-configured.prom"))


@pytest.mark.parametrize("case", ["no repositories at all", "an unknown repository"])
def test_a_job_without_a_repository_fails(bed, case):
    bed.init()
    if case == "no repositories at all":
        bed.repositories = {}
    else:
        bed.job("appdata")["repositories"] = ["elsewhere"]
    bed.save()
    result = bed.run("backup", "appdata")
    assert result.rc == 1, result
    assert ("no repository" if case == "no repositories at all" else "unknown repositories") in result.err
    assert bed.metric("appdata", "armstack_backup_last_exit_code") == 1
    assert bed.metric("appdata", "armstack_backup_last_success_timestamp_seconds") == 0


def test_a_snapshot_of_zero_files_fails_and_is_not_kept(bed):
    bed.init()
    os.makedirs(bed.path("src", "empty"))
    bed.config["jobs"].append({"name": "empty", "type": "directory", "path": bed.path("src", "empty")})
    bed.save()
    result = bed.run("backup", "empty")
    assert result.rc == 1
    assert "0 files" in result.err
    assert bed.snapshots("local", "job:empty") == [] and bed.snapshots("offsite", "job:empty") == []
    assert bed.metric("empty", "armstack_backup_last_exit_code") == 1
    assert bed.metric("empty", "armstack_backup_last_success_timestamp_seconds") == 0
    # allow_empty: a source that may be empty is backed up as it is.
    bed.job("empty")["allow_empty"] = True
    bed.save()
    assert bed.run("backup", "empty").rc == 0
    assert len(bed.snapshots("local", "job:empty")) == 1


def test_a_dump_of_zero_bytes_fails_and_is_not_kept(bed):
    bed.init()
    bed.config["jobs"].append({"name": "nothing", "type": "database", "engine": "command", "dump_command": ["true"],
                               "repositories": ["local"]})
    bed.save()
    result = bed.run("backup", "nothing")
    assert result.rc == 1 and "0 bytes" in result.err
    assert bed.snapshots("local", "job:nothing") == []


def test_a_failing_dump_stores_nothing(bed, monkeypatch):
    bed.init()
    monkeypatch.setenv("STUB_PG_DUMP_FAIL", "1")
    result = bed.run("backup", "postgres")
    assert result.rc == 1
    assert bed.snapshots("local", "job:postgres") == []
    assert bed.metric("postgres", "armstack_backup_last_success_timestamp_seconds") == 0


def test_a_dump_records_its_checksum_and_runs_without_the_repository_credentials(bed):
    """The dump command (restic's --stdin-from-command child) gets no AWS_*/RESTIC_* variables."""
    bed.init()
    bed.config["jobs"].append({"name": "envdump", "type": "database", "engine": "command",
                               "dump_command": [sys.executable, "-c", "import os; print(sorted(os.environ))"]})
    bed.save()
    assert bed.run("backup", "envdump").rc == 0
    snap = bed.snapshots("offsite", "job:envdump")[0]
    with open(bed.path("repos", "offsite", "data", snap["id"], "envdump.dump"), encoding="utf-8") as handle:
        dumped = handle.read()
    assert "AWS_SECRET_ACCESS_KEY" not in dumped and "RESTIC_PASSWORD_FILE" not in dumped and S3_SECRET not in dumped
    with open(bed.path("state", "manifests", "envdump", "offsite", snap["id"] + ".sha256"), encoding="utf-8") as handle:
        assert handle.read().endswith("  envdump.dump\n")


def test_mysql_gets_its_password_in_an_option_file_never_in_argv(bed):
    """mysqldump and mysql read root's password from an option file on fd 3 (the fake tools
    check it against the container's MYSQL_ROOT_PASSWORD, quotes and backslashes included)."""
    bed.init()
    result = bed.run("backup", "mysql")
    assert result.rc == 0, result
    tools = [c for c in bed.calls() if c.get("tool") == "mysqldump"]
    assert tools
    for call in tools:
        assert MYSQL_PASSWORD not in json.dumps(call["argv"])
        assert call["argv"][1] == "--defaults-extra-file=/dev/fd/3"
    for call in bed.restic_calls() + [{"argv": c} for c in bed.docker_calls()]:
        assert MYSQL_PASSWORD not in json.dumps(call["argv"])


@pytest.mark.parametrize("field,value", [("container", "-it"), ("container", "--privileged"), ("database", "-h"),
                                         ("database", "app\nx"), ("path", "relative.db")])
def test_a_field_that_would_become_an_option_is_refused(bed, field, value):
    bed.init()
    job = bed.job("postgres" if field != "path" else "sqlite")
    job[field] = value
    bed.save()
    result = bed.run("backup", job["name"])
    assert result.rc == 1 and field in result.err
    assert not [c for c in bed.docker_calls() if c[:1] == ["exec"]]


def test_a_run_stopped_by_sigterm_starts_quiesced_containers_again(bed, monkeypatch):
    """systemctl stop (or TimeoutStartSec=) sends SIGTERM: the runner unwinds, starts what it
    stopped and exits 143 (which the OnFailure= handler records)."""
    import signal
    import subprocess
    import time

    from ansible_collections.armstack.deploy.tests.unit.backup.conftest import FILES
    bed.init()
    monkeypatch.setenv("STUB_RESTIC_SLEEP", "30")
    monkeypatch.setenv("PYTHONPATH", FILES)
    proc = subprocess.Popen([sys.executable, "-m", "armstack_backup", "backup", "appvol"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while bed.running("worker") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not bed.running("worker"), "the quiesce never stopped the worker"
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 143, err
    assert bed.running("worker")
    assert "stopped by SIGTERM" in err
    assert not os.path.exists(bed.path("state", "stopped-containers.json"))


def test_a_redis_with_a_password_is_dumped_with_it_in_the_environment_only():
    from armstack_backup import engines

    plain = engines.dump_command({"engine": "redis", "container": "app-redis-1"})
    assert plain == ["docker", "exec", "--", "app-redis-1", "redis-cli", "--rdb", "-"]
    argv = engines.dump_command({"engine": "redis", "container": "app-redis-1", "password_file": "/run/secrets/password"})
    assert argv[:4] == ["docker", "exec", "--", "app-redis-1"]
    assert argv[-1] == "/run/secrets/password" and 'REDISCLI_AUTH="$(cat -- "$1")"' in argv[6]
    assert "redis-cli --no-auth-warning --rdb -" in argv[6]
