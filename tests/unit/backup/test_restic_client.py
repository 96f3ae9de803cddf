# Copyright: (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The restic client: exit codes, lock retries, stale locks, bounded probes, redaction, init."""

from __future__ import annotations

import json
import os
import socket
import time

from armstack_backup import util
from armstack_backup.restic import Restic, parse_env, s3_endpoint

from ansible_collections.armstack.deploy.tests.unit.backup.conftest import OFFSITE_PASSWORD, PASSWORD, S3_KEY_ID, S3_SECRET


def test_exit_codes_are_named_as_restic_documents_them():
    assert util.meaning(0) == "ok"
    assert "incomplete" in util.meaning(3)
    assert "does not exist" in util.meaning(10)
    assert "locked" in util.meaning(11)
    assert "wrong repository password" in util.meaning(12)
    assert util.meaning(130) == "interrupted"
    assert util.meaning(137) == "killed by signal 9"


def test_init_creates_missing_repositories_once(bed):
    first = bed.run("init")
    assert first.rc == 0, first
    assert "local: created" in first.out and "offsite: created" in first.out
    again = bed.run("init")
    assert again.rc == 0 and "local: exists" in again.out and "created" not in again.out


def test_a_locked_repository_is_retried_after_removing_stale_locks_only(bed, monkeypatch):
    bed.init()
    monkeypatch.setenv("STUB_RESTIC_LOCKED_BACKUP", "1")
    result = bed.run("backup", "appdata")
    assert result.rc == 0, result
    cmds = [c["cmd"] for c in bed.restic_calls() if c["repository"].endswith("local")]
    first = cmds.index("backup")
    assert cmds[first:first + 3] == ["backup", "unlock", "backup"]
    assert not any("--remove-all" in c["argv"] for c in bed.restic_calls("unlock"))


def test_a_lock_held_by_a_live_process_is_respected(bed):
    bed.init()
    os.makedirs(bed.path("repos", "local", "locks"))
    bed.write("repos/local/locks/other", b"live\n")
    result = bed.run("backup", "appdata")
    assert result.rc == 11, result
    assert bed.metric("appdata", "armstack_backup_last_exit_code") == 11
    assert os.path.exists(bed.path("repos", "local", "locks", "other"))
    assert not any("--remove-all" in c["argv"] for c in bed.restic_calls("unlock"))


def test_check_and_forget_remove_stale_locks_first(bed):
    bed.init()
    os.makedirs(bed.path("repos", "local", "locks"))
    bed.write("repos/local/locks/dead", b"stale\n")
    assert bed.run("check").rc == 0
    assert bed.metric("check", "armstack_backup_last_exit_code") == 0
    bed.write("repos/local/locks/dead", b"stale\n")
    assert bed.run("forget").rc == 0
    forget = bed.restic_calls("forget")[0]["argv"]
    assert "--keep-daily=7" in forget and "--group-by=host,tags" in forget and "--prune" in forget


def test_restic_stderr_never_prints_a_secret(bed, monkeypatch, no_secret):
    """restic can echo an address with credentials or a key in an error: the runner redacts
    every secret value of the repository's environment from what it logs."""
    bed.init()
    monkeypatch.setenv("STUB_RESTIC_STDERR", f"Fatal: s3.getCredentials: key {S3_KEY_ID}:{S3_SECRET} rejected; "
                       f"https://user:{S3_SECRET}@s3.example.com password {PASSWORD} {OFFSITE_PASSWORD}")
    monkeypatch.setenv("STUB_RESTIC_EXIT_BACKUP", "1")
    result = bed.run("backup", "appdata")
    assert result.rc == 1
    assert "[REDACTED]" in result.err
    no_secret(result.all)
    with open(bed.path("log", "backup.log"), encoding="utf-8") as handle:
        no_secret(handle.read())


def test_probe_says_exists_missing_or_wrong_password(bed):
    doc = {"restic": "restic", "cache_dir": bed.path("cache"), "name": "local",
           "env": f"RESTIC_REPOSITORY={bed.path('repos', 'local')}\nRESTIC_PASSWORD_FILE=/nonexistent\n",
           "password": PASSWORD}
    assert bed.run("probe", stdin=json.dumps(doc)).out.strip() == "local: missing"
    bed.init()
    assert bed.run("probe", stdin=json.dumps(doc)).out.strip() == "local: exists"
    wrong = bed.run("probe", stdin=json.dumps({**doc, "password": "made-up-wrong-password-123"}))
    assert wrong.rc == 12
    assert wrong.out.startswith("local: ERROR: repository local (") and "wrong repository password" in wrong.out
    assert "made-up-wrong-password-123" not in wrong.all


def test_probe_fails_fast_on_an_endpoint_that_refuses(bed):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    doc = {"restic": "restic", "cache_dir": bed.path("cache"), "name": "offsite", "connect_timeout": 2, "timeout": 5,
           "env": f"RESTIC_REPOSITORY=s3:http://127.0.0.1:{port}/bucket/host\nAWS_SECRET_ACCESS_KEY={S3_SECRET}\n",
           "password": OFFSITE_PASSWORD}
    start = time.monotonic()
    result = bed.run("probe", stdin=json.dumps(doc))
    print(f"TIMING probe of a refusing endpoint: {time.monotonic() - start:.2f} s")
    assert result.rc == 1
    assert f"repository offsite (s3:http://127.0.0.1:{port}/bucket/host)" in result.out
    assert f"http://127.0.0.1:{port} did not accept a TCP connection within 2 s" in result.out
    assert not bed.restic_calls(), "restic was started although the endpoint did not answer"


def test_probe_bounds_a_restic_that_hangs(bed, monkeypatch):
    bed.init()
    doc = {"restic": "restic", "cache_dir": bed.path("cache"), "name": "local", "timeout": 1,
           "env": f"RESTIC_REPOSITORY={bed.path('repos', 'local')}\n", "password": PASSWORD}
    monkeypatch.setenv("STUB_RESTIC_SLEEP", "30")
    start = time.monotonic()
    result = bed.run("probe", stdin=json.dumps(doc))
    seconds = time.monotonic() - start
    print(f"TIMING probe of a hanging restic (bound 1 s): {seconds:.2f} s")
    assert result.rc == 1 and "restic did not answer within 1 s" in result.out
    assert seconds < 30


def test_probe_of_a_bad_document_explains(bed):
    result = bed.run("probe", stdin="not json")
    assert result.rc == 2 and "expects a JSON document" in result.out


def test_environment_files_and_options():
    env = parse_env("# comment\nRESTIC_REPOSITORY=s3:https://h.example.com/b/p\nAWS_SECRET_ACCESS_KEY=a=b\n"
                    "ARMSTACK_RESTIC_OPTIONS=s3.bucket-lookup=path s3.region=eu-frankfurt-1\n")
    assert env["AWS_SECRET_ACCESS_KEY"] == "a=b"
    client = Restic({"restic": "/usr/bin/restic", "cache_dir": "/c", "repositories": []})
    client.use("offsite", "\n".join(f"{k}={v}" for k, v in env.items()), "pw")
    argv = client.argv("offsite", ["snapshots"])
    assert argv == ["/usr/bin/restic", "-o", "s3.bucket-lookup=path", "-o", "s3.region=eu-frankfurt-1", "snapshots"]
    assert "ARMSTACK_RESTIC_OPTIONS" not in client.env("offsite")
    assert client.env("offsite")["RESTIC_CACHE_DIR"] == "/c"
    assert s3_endpoint("s3:https://h.example.com/b/p")[:2] == ("h.example.com", 443)
    assert s3_endpoint("s3:http://armstack-s3-backup:5000/b")[:2] == ("armstack-s3-backup", 5000)
    assert s3_endpoint("s3:s3.amazonaws.com/b")[:2] == ("s3.amazonaws.com", 443)
    assert s3_endpoint("/var/backups/restic") is None
