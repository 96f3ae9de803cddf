# -*- coding: utf-8 -*-
# Copyright (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""release_command against a stub `docker` on PATH (the real one runs in the
backend scenario): exit codes, the timeout, the log file, redaction."""

from __future__ import annotations


import pytest

from ansible_collections.armstack.deploy.plugins.modules import release_command
from ansible_collections.armstack.deploy.tests.unit.conftest import put_on_path

STUB = """#!/bin/sh
# A stand-in for `docker`: `compose ... run` prints $STUB_OUTPUT and exits
# $STUB_RC after $STUB_SLEEP seconds; `rm --force NAME` records NAME.
case "$1" in
  compose) printf '%s\\n' "$@" > "$STUB_DIR/argv"; printf '%b' "$STUB_OUTPUT"; sleep "${STUB_SLEEP:-0}"; exit "${STUB_RC:-0}" ;;
  rm) echo "$3" > "$STUB_DIR/removed"; exit 0 ;;
esac
exit 99
"""


@pytest.fixture
def stub(tmp_path, monkeypatch):
    put_on_path(monkeypatch, tmp_path / "bin", {"docker": STUB})
    monkeypatch.setenv("STUB_DIR", str(tmp_path))
    (tmp_path / "project").mkdir()
    (tmp_path / "app.env").write_text("DATABASE_PASSWORD=pw-from-the-env-file\n")
    return tmp_path


def args(stub, **extra):
    base = {"project_src": str(stub / "project"), "service": "release_green", "timeout": 5, "output_lines": 3,
            "redact_paths": [str(stub / "app.env")], "log_file": str(stub / "log" / "release.log")}
    base.update(extra)
    return base


def test_success_returns_the_redacted_tail_and_keeps_the_whole_output_root_only(run_module, stub, monkeypatch):
    monkeypatch.setenv("STUB_OUTPUT", "line 1\\nline 2\\nusing pw-from-the-env-file\\nline 4\\ndone\\n")
    result = run_module(release_command, args(stub))
    assert result["rc"] == 0 and result["timed_out"] is False and result["changed"] is True
    assert result["output_tail"] == ["using [REDACTED]", "line 4", "done"]
    assert result["redactions"] == 1
    log = stub / "log" / "release.log"
    assert oct(log.stat().st_mode & 0o777) == "0o600"
    assert "pw-from-the-env-file" in log.read_text()
    argv = (stub / "argv").read_text().split()
    assert argv[:4] == ["compose", "--project-directory", str(stub / "project"), "run"]
    assert {"--rm", "--no-deps", "-T"} <= set(argv) and argv[-1] == "release_green"


def test_a_failing_command_fails_with_the_redacted_tail(run_module, stub, monkeypatch):
    monkeypatch.setenv("STUB_OUTPUT", "connect postgresql://app:pw-from-the-env-file@db/app\\nFAILED: relation missing\\n")
    monkeypatch.setenv("STUB_RC", "3")
    result = run_module(release_command, args(stub), expect_failure=True)
    assert result["rc"] == 3
    assert "release_green exited with 3" in result["msg"]
    assert "FAILED: relation missing" in result["msg"]
    assert "pw-from-the-env-file" not in result["msg"] and "pw-from-the-env-file" not in repr(result)


def test_a_command_past_its_timeout_is_stopped_and_fails(run_module, stub, monkeypatch):
    monkeypatch.setenv("STUB_OUTPUT", "migrating...\\n")
    monkeypatch.setenv("STUB_SLEEP", "30")
    result = run_module(release_command, args(stub, timeout=1), expect_failure=True)
    assert result["timed_out"] is True and result["rc"] == -1
    assert "did not finish within 1 s" in result["msg"]
    removed = (stub / "removed").read_text().strip()
    assert removed.startswith("armstack-release-") and removed in (stub / "argv").read_text()


def test_check_mode_runs_nothing(run_module, stub):
    result = run_module(release_command, args(stub), check_mode=True)
    assert result["changed"] is True and "would run" in result["msg"]
    assert not (stub / "argv").exists()


def test_bad_arguments(run_module, stub):
    result = run_module(release_command, args(stub, project_src=str(stub / "nowhere")), expect_failure=True)
    assert "is not a directory" in result["msg"]
    result = run_module(release_command, args(stub, timeout=0), expect_failure=True)
    assert "must be at least 1" in result["msg"]
