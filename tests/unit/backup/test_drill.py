# Copyright: (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restore drills: checksums compared; mismatches counted; safety snapshots never drilled."""

from __future__ import annotations

import glob
import os


def test_a_drill_compares_every_checksum(bed):
    bed.init()
    assert bed.run("backup", "appdata", "postgres").rc == 0
    result = bed.run("drill", "appdata", "postgres")
    assert result.rc == 0, result
    for job in ("appdata", "postgres"):
        labels = {"job": job, "repository": "local"}
        assert bed.metric("restore_drill", "armstack_restore_drill_files_mismatched", labels) == 0
        assert bed.metric("restore_drill", "armstack_restore_drill_last_success_timestamp_seconds", labels) > 0
    assert os.listdir(bed.path("drill")) == []


def test_a_drill_reports_a_mismatch(bed):
    bed.init()
    assert bed.run("backup", "appdata").rc == 0
    manifest = glob.glob(bed.path("state", "manifests", "appdata", "local", "*.sha256"))[0]
    with open(manifest, encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    lines[0] = "0" * 64 + lines[0][64:]
    lines.append("f" * 64 + "  never-backed-up.txt")
    with open(manifest, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    result = bed.run("drill", "appdata")
    assert result.rc == 1
    assert bed.metric("restore_drill", "armstack_restore_drill_files_mismatched", {"job": "appdata"}) == 2


def test_a_drill_never_picks_a_safety_snapshot(bed):
    bed.init()
    assert bed.run("backup", "appdata").rc == 0
    bed.write("src/appdata/after.txt", b"x")
    assert bed.run("restore", "appdata", "--confirm", "appdata").rc == 0
    assert bed.run("drill", "appdata").rc == 0
    drilled = [c["argv"] for c in bed.restic_calls("restore")][-1]
    job_snapshot = bed.snapshots("local", "job:appdata")[0]["id"]
    assert any(a.startswith(job_snapshot) for a in drilled)


def test_a_drill_without_a_manifest_fails_with_the_reason(bed):
    bed.init()
    assert bed.run("backup", "appdata").rc == 0
    for path in glob.glob(bed.path("state", "manifests", "appdata", "local", "*.sha256")):
        os.unlink(path)
    result = bed.run("drill", "appdata")
    assert result.rc == 1 and "no checksum manifest" in result.err
