# Copyright: (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restores: confirmation, staging, verification, safety snapshots, the swap, and failures at
every step leaving the live data exactly as it was."""

from __future__ import annotations

import json
import os

import pytest
from armstack_backup import restore as restore_module

from ansible_collections.armstack.deploy.tests.unit.backup.conftest import leftovers, sqlite_rows, tree


def backed_up(bed, job):
    bed.init()
    result = bed.run("backup", job)
    assert result.rc == 0, result


def damage_appdata(bed):
    bed.write("src/appdata/docs/file-2.bin", b"damaged")
    os.unlink(bed.path("src", "appdata", "docs", "file-4.bin"))
    bed.write("src/appdata/added-after.txt", b"new")


def test_in_place_needs_the_job_named_again(bed):
    backed_up(bed, "appdata")
    damage_appdata(bed)
    live = tree(bed.path("src", "appdata"))
    for argv in (["restore", "appdata"], ["restore", "appdata", "--confirm", "appvol"]):
        result = bed.run(*argv)
        assert result.rc == 2, result
        assert "--confirm appdata" in result.err and "backup_restore_confirm=appdata" in result.err
        assert tree(bed.path("src", "appdata")) == live
    assert not bed.restic_calls("restore")


def test_a_restore_to_a_target_needs_no_confirmation(bed):
    backed_up(bed, "appdata")
    before = tree(bed.path("src", "appdata"))[0]
    damage_appdata(bed)
    result = bed.run("restore", "appdata", "--target", bed.path("scratch"))
    assert result.rc == 0, result
    assert tree(bed.path("scratch"))[0] == before
    assert json.loads(result.out.splitlines()[-1])["target"] == bed.path("scratch")


def test_in_place_restore_swaps_in_a_verified_copy_and_keeps_a_safety_snapshot(bed):
    backed_up(bed, "appdata")
    before = tree(bed.path("src", "appdata"))[0]
    os.chmod(bed.path("src", "appdata"), 0o750)
    damage_appdata(bed)
    damaged = tree(bed.path("src", "appdata"))[0]
    result = bed.run("restore", "appdata", "--confirm", "appdata")
    assert result.rc == 0, result
    files, root = tree(bed.path("src", "appdata"))
    assert files == before
    assert root[2] == 0o750
    assert leftovers(bed.path("src")) == []
    restore_argv = bed.restic_calls("restore")[0]["argv"]
    assert "--verify" in restore_argv
    safety = json.loads(result.out.splitlines()[-1])["safety_snapshot"]
    snap = next(s for s in bed.snapshots("local") if s["id"] == safety)
    assert "armstack:pre-restore" in snap["tags"] and "pre-restore:appdata" in snap["tags"]
    assert "job:appdata" not in snap["tags"]
    # Never the job's latest; and it undoes the restore.
    assert len(bed.snapshots("local", "job:appdata")) == 1
    undo = bed.run("restore", "appdata", "--confirm", "appdata", "--snapshot", safety[:8])
    assert undo.rc == 0, undo
    assert tree(bed.path("src", "appdata"))[0] == damaged


@pytest.mark.parametrize("how", ["restic exits 1 after writing", "a restored file differs", "the swap fails"])
def test_a_restore_that_fails_leaves_the_live_data_as_it_was(bed, monkeypatch, how):
    backed_up(bed, "appvol")
    bed.write("volumes/appvol/_data/avatar.png", b"changed after the backup")
    live = tree(bed.path("volumes", "appvol", "_data"))
    if how == "restic exits 1 after writing":
        monkeypatch.setenv("STUB_RESTIC_RESTORE_EXIT", "1")
    elif how == "a restored file differs":
        monkeypatch.setenv("STUB_RESTIC_RESTORE_CORRUPT", "avatar.png")
    else:
        real = os.rename

        def rename(src, dst):
            if os.path.basename(src).startswith(".armstack-restore-"):
                raise OSError(28, "No space left on device")
            return real(src, dst)
        monkeypatch.setattr(os, "rename", rename)
    result = bed.run("restore", "appvol", "--confirm", "appvol")
    assert result.rc != 0, result
    assert "unchanged" in result.err
    assert tree(bed.path("volumes", "appvol", "_data")) == live
    assert leftovers(bed.path("volumes", "appvol")) == []
    assert bed.running("app") and bed.running("worker")


@pytest.mark.parametrize("fail_at", [None, 2])
def test_a_mount_point_is_swapped_entry_by_entry(bed, monkeypatch, fail_at):
    backed_up(bed, "appdata")
    before = tree(bed.path("src", "appdata"))[0]
    damage_appdata(bed)
    damaged = tree(bed.path("src", "appdata"))
    live = bed.path("src", "appdata")
    monkeypatch.setattr(os.path, "ismount", lambda path: path == live)
    if fail_at:
        real, calls = os.rename, []

        def rename(src, dst):
            if os.path.dirname(src).startswith(os.path.join(live, ".armstack-restore-")):
                calls.append(src)
                if len(calls) == fail_at:
                    raise OSError(5, "Input/output error")
            return real(src, dst)
        monkeypatch.setattr(os, "rename", rename)
    result = bed.run("restore", "appdata", "--confirm", "appdata")
    if fail_at:
        assert result.rc != 0 and tree(live) == damaged
    else:
        assert result.rc == 0, result
        assert tree(live)[0] == before
    assert leftovers(live) == []


def test_an_empty_snapshot_never_replaces_live_data(bed):
    bed.init()
    os.makedirs(bed.path("src", "maybe"))
    bed.config["jobs"].append({"name": "maybe", "type": "directory", "path": bed.path("src", "maybe"), "allow_empty": True})
    bed.save()
    assert bed.run("backup", "maybe").rc == 0
    bed.write("src/maybe/precious.txt", b"data")
    bed.job("maybe")["allow_empty"] = False
    bed.save()
    result = bed.run("restore", "maybe", "--confirm", "maybe")
    assert result.rc == 1 and "holds no files" in result.err
    assert os.path.exists(bed.path("src", "maybe", "precious.txt"))


# ---- databases ---------------------------------------------------------------------------

@pytest.mark.parametrize("truncate_exit", ["1", "0"])
def test_a_sqlite_dump_cut_short_never_replaces_the_live_database(bed, monkeypatch, truncate_exit):
    """The defect: a cut-off dump stream was loaded (exit 0, rolled back) and the empty file
    renamed over the live database. Exit 1 or a silent short stream: the live file stays."""
    backed_up(bed, "sqlite")
    with open(bed.path("sq", "app.db"), "rb") as handle:
        live = handle.read()
    monkeypatch.setenv("STUB_RESTIC_DUMP_TRUNCATE", "60")
    monkeypatch.setenv("STUB_RESTIC_DUMP_EXIT", truncate_exit)
    result = bed.run("restore", "sqlite", "--confirm", "sqlite")
    assert result.rc != 0, result
    with open(bed.path("sq", "app.db"), "rb") as handle:
        assert handle.read() == live
    assert not os.path.exists(bed.path("sq", "app.db.restoring"))


def test_a_sqlite_restore_loads_checks_then_renames(bed):
    backed_up(bed, "sqlite")
    rows = sqlite_rows(bed.path("sq", "app.db"))
    import sqlite3
    conn = sqlite3.connect(bed.path("sq", "app.db"))
    conn.execute("DELETE FROM notes WHERE id % 2 = 0")
    conn.commit()
    conn.close()
    result = bed.run("restore", "sqlite", "--confirm", "sqlite")
    assert result.rc == 0, result
    assert sqlite_rows(bed.path("sq", "app.db")) == rows
    assert not os.path.exists(bed.path("sq", "app.db.restoring"))
    # The marker the runner appends to the stream is gone again.
    conn = sqlite3.connect(bed.path("sq", "app.db"))
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'armstack_restore_complete'").fetchone() == (0,)
    conn.close()


def test_a_stream_cut_between_check_and_load_is_caught_by_the_marker(bed, monkeypatch):
    """Even if the verified file reached sqlite3 only in part, the missing marker stops the swap."""
    backed_up(bed, "sqlite")
    with open(bed.path("sq", "app.db"), "rb") as handle:
        live = handle.read()
    real = restore_module._run_with_file

    def cut(argv, path, extra=b""):
        if "sqlite3 -bail" in " ".join(argv):
            with open(path, "rb") as handle:
                head = b"".join(handle.readlines()[:3])
            short = path + ".cut"
            with open(short, "wb") as handle:
                handle.write(head)
            return real(argv, short, b"")
        return real(argv, path, extra)
    monkeypatch.setattr(restore_module, "_run_with_file", cut)
    result = bed.run("restore", "sqlite", "--confirm", "sqlite")
    assert result.rc != 0 and "ended early" in result.err
    with open(bed.path("sq", "app.db"), "rb") as handle:
        assert handle.read() == live


def test_postgres_restore_checks_the_archive_and_a_failed_load_changes_nothing(bed, monkeypatch):
    backed_up(bed, "postgres")
    bed.write("pg/db", b"orders: damaged\n")
    monkeypatch.setenv("STUB_PG_RESTORE_FAIL", "1")
    result = bed.run("restore", "postgres", "--confirm", "postgres")
    assert result.rc != 0 and "rolled back" in result.err
    with open(bed.path("pg", "db"), "rb") as handle:
        assert handle.read() == b"orders: damaged\n"
    tools = [c["argv"] for c in bed.calls() if c.get("tool") == "pg_restore"]
    assert "--file=/dev/null" in tools[0] and "--single-transaction" in tools[1]
    monkeypatch.delenv("STUB_PG_RESTORE_FAIL")
    assert bed.run("restore", "postgres", "--confirm", "postgres").rc == 0
    with open(bed.path("pg", "db"), "rb") as handle:
        assert handle.read() == b"orders: 5000 rows\n"


def test_a_live_database_that_cannot_be_saved_first_is_not_replaced(bed, monkeypatch):
    backed_up(bed, "postgres")
    bed.write("pg/db", b"orders: live\n")
    monkeypatch.setenv("STUB_PG_DUMP_FAIL", "1")
    result = bed.run("restore", "postgres", "--confirm", "postgres")
    assert result.rc != 0 and "--no-safety-snapshot" in result.err
    with open(bed.path("pg", "db"), "rb") as handle:
        assert handle.read() == b"orders: live\n"
    forced = bed.run("restore", "postgres", "--confirm", "postgres", "--no-safety-snapshot")
    assert forced.rc == 0, forced
    with open(bed.path("pg", "db"), "rb") as handle:
        assert handle.read() == b"orders: 5000 rows\n"


def test_a_mysql_load_that_breaks_midway_is_rolled_back_from_the_safety_dump(bed, monkeypatch):
    backed_up(bed, "mysql")
    bed.write("my/db", b"live data of the morning\n")
    monkeypatch.setenv("STUB_MYSQL_FAIL_ONCE", bed.path("my", "fail-once"))
    bed.write("my/fail-once", b"")
    result = bed.run("restore", "mysql", "--confirm", "mysql")
    assert result.rc != 0 and "safety dump was loaded back" in result.err
    with open(bed.path("my", "db"), "rb") as handle:
        assert handle.read() == b"live data of the morning\n"


def test_a_restore_to_a_target_writes_a_checked_dump(bed, monkeypatch):
    backed_up(bed, "postgres")
    monkeypatch.setenv("STUB_RESTIC_DUMP_TRUNCATE", "10")
    monkeypatch.setenv("STUB_RESTIC_DUMP_EXIT", "0")
    result = bed.run("restore", "postgres", "--target", bed.path("out"))
    assert result.rc != 0 and ("cut short" in result.err or "does not match" in result.err)
    assert os.listdir(bed.path("out")) == []
    monkeypatch.delenv("STUB_RESTIC_DUMP_TRUNCATE")
    assert bed.run("restore", "postgres", "--target", bed.path("out")).rc == 0
    assert os.listdir(bed.path("out")) == ["postgres.pgdump"]


def test_redis_has_no_in_place_restore(bed):
    bed.config["jobs"].append({"name": "redis", "type": "database", "engine": "redis", "container": "sq"})
    bed.save()
    bed.init()
    result = bed.run("restore", "redis", "--confirm", "redis")
    assert result.rc == 1 and "restore to a --target" in result.err
