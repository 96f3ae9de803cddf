# Copyright: (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restores that never make things worse.

To a --target (a scratch path): the snapshot is written there and verified;
nothing live is touched, no confirmation is asked.

In place (needs --confirm JOB): nothing live is touched until the restored
copy is complete and verified.

  files (directory, volume)
    1. restic restore into a staging directory on the live data's file system,
       with --verify; the copy must hold files, and match the checksum manifest
       recorded at backup time where one exists (the job's newest snapshot);
    2. the containers that use the data (volume users, `quiesce`) are stopped;
    3. a safety snapshot of the live data (tags armstack:pre-restore and
       pre-restore:<job>, never job:<job>: it never becomes the job's latest,
       drills ignore it; `forget` keeps it by the same policy, as a group of
       its own);
    4. swap: the live root is renamed aside and the staging directory renamed
       into its place (owner and mode of the live root kept), the old tree is
       removed. When the live root is a mount point the entries inside it are
       swapped instead, each rename undone on failure.
  databases
    1. restic dump into a file, completely; its size (restic ls) and sha256
       (the manifest) checked, and the engine's own end marker;
    2. PostgreSQL: pg_restore reads the whole archive (--file=/dev/null);
       SQLite: the dump is loaded into a new file beside the live one and
       checked (integrity_check, a completion marker after the dump);
    3. `quiesce` containers stopped; a safety snapshot of the live database
       (a dump, same tags as above);
    4. PostgreSQL loads in one transaction (a failure rolls back); SQLite
       renames the new file over the live one; MySQL and `command` load the
       dump, and on failure load the safety dump back.

Any failure before the swap leaves the live data exactly as it was. Stopped
containers are always started again.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
import tempfile
import time

from . import containers, engines
from .config import job_problems
from .util import BackupError, emit, log, parse_json, sha256_file, tree_checksums

SAFETY_TAG = "armstack:pre-restore"


def safety_tags(name):
    return [f"--tag={SAFETY_TAG}", f"--tag=pre-restore:{name}"]


def find_snapshot(ctx, repo, name, snapshot):
    """The job's latest snapshot, or a named one: of the job, or a safety snapshot of it (to undo a restore)."""
    if not snapshot or snapshot == "latest":
        return ctx.restic.latest(repo, name)
    found = [s for s in ctx.restic.snapshots(repo)
             if (s["id"].startswith(snapshot) or s.get("short_id") == snapshot)
             and {f"job:{name}", f"pre-restore:{name}"} & set(s.get("tags") or [])]
    if not found:
        raise BackupError(f"no snapshot {snapshot} of job {name} in repository {repo}")
    if len(found) > 1:
        raise BackupError(f"snapshot {snapshot} is ambiguous in repository {repo}: give more of its id")
    return found[0]


def cmd_restore(ctx, name, snapshot=None, repo=None, target=None, confirm=None, safety=True):
    job = ctx.job(name)
    problems = job_problems(job, ctx.repos)
    if problems:
        raise BackupError("; ".join(problems))
    repo = repo or ctx.first_repo(job)
    if repo not in ctx.repos:
        raise BackupError(f"unknown repository {repo}; configured: {', '.join(ctx.repos)}")
    if target and not os.path.isabs(target):
        raise BackupError(f"--target must be an absolute path, not {target!r}")
    if not target and job["type"] == "database" and not engines.has_in_place_restore(job):
        raise BackupError(f"job {name}: engine {job['engine']} has no in-place restore; restore to a --target")
    if not target and confirm != name:
        raise BackupError(f"an in-place restore replaces the live data of job {name} with a snapshot; confirm it with "
                          f"--confirm {name} (playbooks/restore.yml: -e backup_restore_confirm={name}), or restore "
                          "to a --target. Nothing was changed.", 2)
    snap = find_snapshot(ctx, repo, name, snapshot)
    log(f"restoring job {name} from snapshot {snap['short_id']} ({snap['time']}) of repository {repo}"
        + (f" to {target}" if target else " in place"))
    result = {"job": name, "snapshot": snap["id"], "repository": repo, "target": target or "in place"}
    if target:
        restore_to_target(ctx, job, repo, snap, target)
    elif job["type"] == "database":
        result["safety_snapshot"] = restore_database_in_place(ctx, job, repo, snap, safety)
    else:
        result["safety_snapshot"] = restore_files_in_place(ctx, job, repo, snap, safety)
    emit(result)
    return 0


# ---- verification --------------------------------------------------------------------

def compare(expected, seen, unexpected=True):
    """Files missing or different (and, with unexpected, files not in the manifest)."""
    bad = [rel for rel, digest in expected.items() if seen.get(rel) != digest]
    if unexpected:
        bad += [rel for rel in seen if rel not in expected]
    return sorted(bad)


def verify_tree(ctx, job, repo, snap, root, unexpected=True):
    seen = tree_checksums(root)
    expected = ctx.manifest(job["name"], repo, snap["id"])
    if expected is None:
        log(f"job {job['name']}: no checksum manifest for snapshot {snap['short_id']} on this host (not the newest, "
            "or taken elsewhere): relying on restic restore --verify")
        return seen
    bad = compare(expected, seen, unexpected)
    if bad:
        shown = ", ".join(bad[:5]) + (" ..." if len(bad) > 5 else "")
        raise BackupError(f"job {job['name']}: {len(bad)} restored file(s) differ from the checksums recorded at "
                          f"backup time ({shown})")
    log(f"job {job['name']}: {len(seen)} restored file(s) match the checksums recorded at backup time")
    return seen


def stage_dump(ctx, job, repo, snap, directory):
    """restic dump of the job's dump file into directory, completely, then checked. Returns its path."""
    filename = ctx.dump_filename(job)
    path = os.path.join(directory, filename)
    partial = path + ".partial"
    try:
        with open(partial, "wb") as handle:
            ctx.restic.run(repo, ["dump", f"--retry-lock={ctx.retry_lock}", snap["id"], "/" + filename], stdout=handle)
        verify_dump(ctx, job, repo, snap, partial)
        os.replace(partial, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
    return path


def verify_dump(ctx, job, repo, snap, path):
    name, size = job["name"], os.path.getsize(path)
    if size == 0:
        raise BackupError(f"job {name}: the dump restored from snapshot {snap['short_id']} is empty")
    expected_size = ctx.restic.file_size(repo, snap["id"], "/" + ctx.dump_filename(job))
    if expected_size is not None and expected_size != size:
        raise BackupError(f"job {name}: the dump restored is {size} bytes, the snapshot holds {expected_size}: cut short")
    manifest = ctx.manifest(name, repo, snap["id"]) or {}
    digest = manifest.get(ctx.dump_filename(job))
    if digest and digest != sha256_file(path):
        raise BackupError(f"job {name}: the dump restored does not match the sha256 recorded at backup time")
    with open(path, "rb") as handle:
        head = handle.read(64)
        handle.seek(max(0, size - 512))
        tail = handle.read()
    ok, why = engines.dump_looks_complete(job, head, tail)
    if not ok:
        raise BackupError(f"job {name}: the dump restored from snapshot {snap['short_id']} is not usable: {why}")
    log(f"job {name}: dump of {size} bytes restored and checked"
        + (" (sha256 matches the manifest)" if digest else " (size checked; no manifest for this snapshot)"))


# ---- to a target -----------------------------------------------------------------

def restore_to_target(ctx, job, repo, snap, target):
    os.makedirs(target, mode=0o700, exist_ok=True)
    if job["type"] == "database":
        stage_dump(ctx, job, repo, snap, target)
        return
    ctx.restic.run(repo, ["restore", f"--retry-lock={ctx.retry_lock}", f"{snap['id']}:{snap['paths'][0]}",
                          f"--target={target}", "--verify"])
    verify_tree(ctx, job, repo, snap, target, unexpected=False)


# ---- files in place -------------------------------------------------------------------

def restore_files_in_place(ctx, job, repo, snap, safety):
    name = job["name"]
    live = os.path.normpath(ctx.source_path(job))
    inside = os.path.ismount(live)
    base = live if inside else os.path.dirname(live)
    os.makedirs(base, exist_ok=True)
    staging = tempfile.mkdtemp(dir=base, prefix=f".armstack-restore-{name}-")
    safety_id = None
    try:
        ctx.restic.run(repo, ["restore", f"--retry-lock={ctx.retry_lock}", f"{snap['id']}:{snap['paths'][0]}",
                              f"--target={staging}", "--verify"])
        seen = verify_tree(ctx, job, repo, snap, staging)
        if not seen and not job.get("allow_empty"):
            raise BackupError(f"job {name}: snapshot {snap['short_id']} holds no files; refusing to replace the live "
                              "data with nothing (restore it to a --target to look)")
        users = list(job.get("quiesce") or [])
        if job["type"] == "volume":
            users += containers.volume_users(job["volume"])
        with containers.stopped(ctx.state_dir, users, f"restore of {name}"):
            if safety and os.path.isdir(live):
                safety_id = safety_snapshot_files(ctx, job, repo, live, exclude=[staging] if inside else [])
            swap(live, staging, inside)
    except OSError as exc:
        raise BackupError(f"job {name}: the restored copy could not be put in place ({exc}). The live data of job "
                          f"{name} is unchanged.") from None
    except BackupError as exc:
        raise BackupError(f"{exc}. The live data of job {name} is unchanged.", exc.code) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log(f"job {name}: {live} now holds snapshot {snap['short_id']}"
        + (f"; the data it held is in safety snapshot {safety_id[:8]}" if safety_id else ""))
    return safety_id


def swap(live, staging, inside=False):
    """Put the tree in `staging` where `live` is; on any failure `live` is as it was."""
    if inside:
        return _swap_entries(live, staging)
    if not os.path.lexists(live):
        os.chmod(staging, 0o755)
        os.rename(staging, live)
        return None
    st = os.lstat(live)
    os.chown(staging, st.st_uid, st.st_gid)
    os.chmod(staging, stat.S_IMODE(st.st_mode))
    old = os.path.join(os.path.dirname(live), f".armstack-old-{os.path.basename(live)}-{os.getpid()}-{int(time.time())}")
    os.rename(live, old)
    try:
        os.rename(staging, live)
    except BaseException:
        os.rename(old, live)
        raise
    _remove(old)
    return None


def _swap_entries(live, staging):
    """The live root is a mount point: swap what is inside it, undoing every rename on failure."""
    old = tempfile.mkdtemp(dir=live, prefix=".armstack-old-")
    keep = {os.path.basename(staging), os.path.basename(old)}
    moved, placed = [], []
    try:
        for entry in sorted(os.listdir(live)):
            if entry not in keep:
                os.rename(os.path.join(live, entry), os.path.join(old, entry))
                moved.append(entry)
        for entry in sorted(os.listdir(staging)):
            os.rename(os.path.join(staging, entry), os.path.join(live, entry))
            placed.append(entry)
    except BaseException:
        for entry in reversed(placed):
            os.rename(os.path.join(live, entry), os.path.join(staging, entry))
        for entry in reversed(moved):
            os.rename(os.path.join(old, entry), os.path.join(live, entry))
        os.rmdir(old)
        raise
    _remove(old)


def _remove(path):
    try:
        shutil.rmtree(path)
    except OSError as exc:
        log(f"the replaced data at {path} could not be removed ({exc.strerror}); remove it by hand", "warning")


def _snapshot_id(proc):
    summary = next((m for m in map(parse_json, (proc.stdout or "").splitlines())
                    if m and m.get("message_type") == "summary"), None)
    if not summary or not summary.get("snapshot_id"):
        raise BackupError("restic stored no safety snapshot (no summary)")
    return summary["snapshot_id"]


def safety_snapshot_files(ctx, job, repo, live, exclude=()):
    proc = ctx.restic.run(repo, ["backup", "--json", f"--host={ctx.hostname}", *safety_tags(job["name"]),
                                 f"--retry-lock={ctx.retry_lock}", *[f"--exclude={e}" for e in exclude], "--", live],
                          check=False)
    if proc.returncode != 0:
        raise BackupError(f"job {job['name']}: the safety snapshot of the live data failed (restic exit "
                          f"{proc.returncode}); run with --no-safety-snapshot only if the live data is beyond saving",
                          proc.returncode)
    snapshot_id = _snapshot_id(proc)
    log(f"job {job['name']}: safety snapshot {snapshot_id[:8]} of the live data in repository {repo}")
    return snapshot_id


# ---- databases in place ------------------------------------------------------------------

def _run_with_file(argv, path, extra=b""):
    """Run argv with the file (then `extra`) on stdin; (exit code, last stderr lines)."""
    with subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as proc:
        try:
            with open(path, "rb") as handle:
                shutil.copyfileobj(handle, proc.stdin, 1 << 20)
            if extra:
                proc.stdin.write(extra)
        except BrokenPipeError:
            pass
        finally:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
        err = proc.stderr.read().decode(errors="replace")
        code = proc.wait()
    return code, " / ".join(err.strip().splitlines()[-3:])


def _run(argv):
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, check=False)
    return proc.returncode, " / ".join(proc.stderr.decode(errors="replace").strip().splitlines()[-3:])


def restore_database_in_place(ctx, job, repo, snap, safety):
    name, engine = job["name"], job["engine"]
    workdir_root = os.path.join(ctx.state_dir, "restore")
    os.makedirs(workdir_root, mode=0o700, exist_ok=True)
    workdir = tempfile.mkdtemp(dir=workdir_root, prefix=f"{name}-")
    prepared = touched = False
    safety_id = None
    try:
        dump = stage_dump(ctx, job, repo, snap, workdir)
        check = engines.check_command(job)
        if check:
            code, err = _run_with_file(check, dump)
            if code != 0:
                raise BackupError(f"job {name}: the dump does not load (exit {code}: {err})")
            log(f"job {name}: the dump reads completely ({' '.join(check[5:])})")
        if engine == "sqlite":
            prepared = True
            code, err = _run_with_file(engines.sqlite_command(job, engines.SQLITE_PREPARE), dump, engines.SQLITE_SENTINEL)
            if code != 0:
                raise BackupError(f"job {name}: the dump did not load into a new database file (exit {code}: {err})")
            log(f"job {name}: the dump loaded into {job['path']}.restoring and passed integrity_check")
        with containers.stopped(ctx.state_dir, job.get("quiesce", []), f"restore of {name}"):
            live_dump = None
            if safety:
                live_dump, safety_id = safety_snapshot_database(ctx, job, repo, workdir)
            if engine == "sqlite":
                code, err = _run(engines.sqlite_command(job, engines.SQLITE_SWAP))
                if code != 0:
                    raise BackupError(f"job {name}: the new database file could not replace the live one (exit {code}: {err})")
                touched = True
            else:
                # PostgreSQL's single transaction rolls a failed load back; the others say what they left.
                touched = engine != "postgres"
                load(ctx, job, dump, live_dump)
                touched = True
    except BackupError as exc:
        if touched:
            raise
        raise BackupError(f"{exc}. The live database of job {name} is unchanged.", exc.code) from None
    finally:
        if prepared and not touched:
            _run(engines.sqlite_command(job, engines.SQLITE_DISCARD))
        shutil.rmtree(workdir, ignore_errors=True)
    log(f"job {name}: the live database now holds snapshot {snap['short_id']}"
        + (f"; what it held is in safety snapshot {safety_id[:8]}" if safety_id else ""))
    return safety_id


def load(ctx, job, dump, live_dump):
    name = job["name"]
    argv = engines.load_command(job)
    code, err = _run_with_file(argv, dump)
    if code == 0:
        return
    if job["engine"] == "postgres":
        raise BackupError(f"job {name}: pg_restore failed (exit {code}: {err}); its single transaction was rolled back")
    if not live_dump:
        raise BackupError(f"job {name}: the load failed (exit {code}: {err}) and there is no safety dump to put back: "
                          "the live database may be partly restored. CHECK IT NOW", code)
    log(f"job {name}: the load failed (exit {code}: {err}); loading the safety dump back", "error")
    back, back_err = _run_with_file(argv, live_dump)
    if back != 0:
        raise BackupError(f"job {name}: the load failed (exit {code}: {err}) AND loading the safety dump back failed "
                          f"(exit {back}: {back_err}): the live database may be partly restored. CHECK IT NOW; the "
                          "safety snapshot holds what it held", code)
    raise BackupError(f"job {name}: the load failed (exit {code}: {err}); the safety dump was loaded back")


def safety_snapshot_database(ctx, job, repo, workdir):
    """Dump the live database to a file (kept for a roll-back) and store it as a safety snapshot."""
    name = job["name"]
    path = os.path.join(workdir, "live-" + ctx.dump_filename(job))
    with open(path, "wb") as handle:
        proc = subprocess.run(engines.dump_command(job), stdout=handle, stderr=subprocess.PIPE, check=False)
    err = " / ".join(proc.stderr.decode(errors="replace").strip().splitlines()[-3:])
    if proc.returncode != 0 or os.path.getsize(path) == 0:
        raise BackupError(f"job {name}: the live database could not be dumped for the safety snapshot (exit "
                          f"{proc.returncode}{': ' + err if err else ''}); run with --no-safety-snapshot only if it is "
                          "beyond saving")
    with open(path, "rb") as handle:
        proc = ctx.restic.run(repo, ["backup", "--json", f"--host={ctx.hostname}", *safety_tags(name),
                                     f"--retry-lock={ctx.retry_lock}", "--stdin",
                                     f"--stdin-filename={ctx.dump_filename(job)}"], stdin=handle, check=False)
    if proc.returncode != 0:
        raise BackupError(f"job {name}: the safety snapshot failed (restic exit {proc.returncode})", proc.returncode)
    snapshot_id = _snapshot_id(proc)
    log(f"job {name}: safety snapshot {snapshot_id[:8]} of the live database in repository {repo}")
    return path, snapshot_id
