# -*- coding: utf-8 -*-
# Copyright (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""deploy_log against a stub `logger` on PATH (the real journal is checked in
the backend scenario): the line written, concurrent writers, check mode,
refused fields."""

from __future__ import annotations

import json
import multiprocessing

import pytest

from ansible_collections.armstack.deploy.plugins.modules import deploy_log
from ansible_collections.armstack.deploy.tests.unit.conftest import put_on_path

STUB = """#!/bin/sh
# A stand-in for `logger`: records its arguments and its stdin.
printf '%s\\n' "$@" > "$STUB_DIR/logger-argv"
cat > "$STUB_DIR/logger-stdin"
exit "${STUB_RC:-0}"
"""


@pytest.fixture
def stub(tmp_path, monkeypatch):
    put_on_path(monkeypatch, tmp_path / "bin", {"logger": STUB})
    monkeypatch.setenv("STUB_DIR", str(tmp_path))
    return tmp_path


def entries(path):
    with open(path) as handle:
        return [json.loads(line) for line in handle]


def test_appends_one_json_line_and_sends_it_to_the_journal(run_module, stub):
    path = stub / "log" / "deploy.log"
    fields = {"image": "registry:5000/app:1.1.0", "from_slot": "blue", "to_slot": "green", "duration_s": 12.5, "user": "ops"}
    first = run_module(deploy_log, {"path": str(path), "event": "rollout", "result": "ok", "fields": fields})
    run_module(deploy_log, {"path": str(path), "event": "rollback", "result": "failed", "fields": {"image": "x"}})
    assert first["changed"] is True
    written = entries(path)
    assert [e["event"] for e in written] == ["rollout", "rollback"]
    assert written[0] == first["entry"]
    assert written[0]["image"] == "registry:5000/app:1.1.0" and written[0]["duration_s"] == 12.5
    assert list(written[0])[:3] == ["time", "event", "result"]
    assert written[0]["time"].endswith("Z")
    assert oct(path.stat().st_mode & 0o777) == "0o640"
    assert oct(path.parent.stat().st_mode & 0o777) == "0o750"
    # The last entry went to the journal, on stdin, at the failure's priority.
    assert json.loads((stub / "logger-stdin").read_text()) == written[1]
    assert (stub / "logger-argv").read_text().split() == ["--tag", "armstack-deploy", "--priority", "user.err"]


def test_a_line_break_in_a_value_cannot_split_the_line(run_module, stub):
    path = stub / "deploy.log"
    run_module(deploy_log, {"path": str(path), "event": "maintenance", "result": "ok",
                            "fields": {"user": "ops\n{\"event\":\"forged\"}\u2028"}})
    lines = path.read_text().splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["user"].startswith("ops\n")


def _write_many(path, worker):
    for i in range(200):
        deploy_log.append(path, deploy_log.line_of(deploy_log.make_entry("rollout", "ok", {"worker": worker, "n": i, "pad": "x" * 300})))


def test_concurrent_writers_never_interleave_within_a_line(tmp_path):
    path = str(tmp_path / "deploy.log")
    procs = [multiprocessing.Process(target=_write_many, args=(path, w)) for w in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
    written = entries(path)
    assert len(written) == 800
    assert sorted((e["worker"], e["n"]) for e in written) == [(w, i) for w in range(4) for i in range(200)]


def test_check_mode_writes_nothing(run_module, stub):
    path = stub / "deploy.log"
    result = run_module(deploy_log, {"path": str(path), "event": "rollout", "result": "ok"}, check_mode=True)
    assert result["changed"] is True and result["entry"]["event"] == "rollout"
    assert not path.exists()
    assert not (stub / "logger-stdin").exists()


def test_without_the_journal_only_the_file(run_module, stub):
    path = stub / "deploy.log"
    run_module(deploy_log, {"path": str(path), "event": "rollout", "result": "ok", "journal": False})
    assert len(entries(path)) == 1
    assert not (stub / "logger-stdin").exists()


def test_a_failing_logger_is_a_warning_not_a_failure(run_module, stub, monkeypatch):
    monkeypatch.setenv("STUB_RC", "1")
    path = stub / "deploy.log"
    run_module(deploy_log, {"path": str(path), "event": "rollout", "result": "ok"})
    assert len(entries(path)) == 1
    assert any("logger failed" in w for w in run_module.warnings)


@pytest.mark.parametrize("fields, message", [
    ({"db_password": "x"}, "looks like a secret"),
    ({"api_token": "x"}, "looks like a secret"),
    ({"Image": "x"}, "field names are lower-case"),
    ({"time": "yesterday"}, "set by the module"),
    ({"image": ["a", "b"]}, "expected a string, a number"),
])
def test_refused_fields_fail_before_writing(run_module, stub, fields, message):
    path = stub / "deploy.log"
    result = run_module(deploy_log, {"path": str(path), "event": "rollout", "result": "ok", "fields": fields}, expect_failure=True)
    assert message in result["msg"]
    assert not path.exists()


def test_a_bad_identifier_is_refused(run_module, stub):
    result = run_module(deploy_log, {"path": str(stub / "d.log"), "event": "rollout", "result": "ok",
                                     "identifier": "-x --id=1"}, expect_failure=True)
    assert "identifier must be" in result["msg"]
