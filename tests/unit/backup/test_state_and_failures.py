# Copyright: (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Metrics, the history log, and the failure recorder (OnFailure=) after a killed run."""

from __future__ import annotations

import json
import os
import time

import pytest
from armstack_backup.state import State


def test_metrics_are_written_atomically_and_a_failure_keeps_the_last_success(tmp_path):
    state = State(str(tmp_path / "state"), str(tmp_path / "metrics"), str(tmp_path / "log" / "backup.log"), ["web"])
    state.record("web", True, 0, 1000.0, bytes_added=42, snapshots={"local": 3})
    state.record("web", False, 3, 2000.0, bytes_added=0)
    text = (tmp_path / "metrics" / "backup_web.prom").read_text()
    assert 'armstack_backup_last_success_timestamp_seconds{job="web"} 1000.0' in text
    assert 'armstack_backup_last_run_timestamp_seconds{job="web"} 2000.0' in text
    assert 'armstack_backup_last_exit_code{job="web"} 3' in text
    assert 'armstack_backup_snapshots{job="web",repository="local"} 3' in text
    assert not [n for n in os.listdir(tmp_path / "metrics") if n.startswith(".tmp-")]
    history = (tmp_path / "log" / "backup.log").read_text().splitlines()
    assert len(history) == 2 and history[1].endswith("job=web exit=3 duration=" + history[1].split("duration=")[1])
    assert json.loads((tmp_path / "state" / "state.json").read_text())["jobs"]["web"]["last_success"] == 1000.0


@pytest.mark.parametrize(("show", "code"), [("ExecMainCode=2;ExecMainStatus=9", 137),
                                            ("ExecMainCode=1;ExecMainStatus=1", 1)])
def test_failure_recorder_after_a_killed_run(bed, monkeypatch, show, code):
    """The runner was killed (SIGKILL: ExecMainCode=2, status 9) while the app was stopped by a
    quiesce: record-failure starts it again and writes 137 for every job that did not record
    its own result during that run."""
    bed.init()
    assert bed.run("backup", "appdata").rc == 0
    started = time.time() + 5
    monkeypatch.setenv("STUB_SYSTEMCTL_SHOW", f"{show};ExecMainStartTimestamp=@{started}")
    bed.docker["containers"]["worker"]["running"] = False
    bed.save_docker()
    bed.write("state/stopped-containers.json", json.dumps(["worker"]).encode())
    result = bed.run("record-failure", "armstack-backup.service")
    assert result.rc == 0
    assert bed.running("worker")
    assert not os.path.exists(bed.path("state", "stopped-containers.json"))
    for job in ("appdata", "appvol", "sqlite", "postgres", "mysql"):
        assert bed.metric(job, "armstack_backup_last_exit_code") == code
    assert bed.metric("appdata", "armstack_backup_last_success_timestamp_seconds") > 0


def test_failure_recorder_of_a_maintenance_unit(bed, monkeypatch):
    bed.init()
    monkeypatch.setenv("STUB_SYSTEMCTL_SHOW", f"ExecMainCode=2;ExecMainStatus=15;ExecMainStartTimestamp=@{time.time()}")
    assert bed.run("record-failure", "armstack-backup-check.service").rc == 0
    assert bed.metric("check", "armstack_backup_last_exit_code") == 143
    assert not os.path.exists(bed.path("metrics", "backup_appdata.prom"))
