# Copyright: (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restore drills: the newest snapshot of each job to scratch, every checksum compared.

Files missing, different or unexpected against the manifest recorded at backup
time are counted as mismatched (armstack_restore_drill_files_mismatched).
Safety snapshots taken by restores never carry the job's tag, so a drill never
picks one.
"""

from __future__ import annotations

import os
import shutil

from .restore import compare
from .util import BackupError, log, now, tree_checksums


def cmd_drill(ctx, names):
    started, code = now(), 0
    drill = ctx.cfg["drill"]
    for name in names:
        ctx.job(name)
    for name in names or drill.get("jobs") or list(ctx.jobs):
        job = ctx.jobs[name]
        entry = ctx.state.drills.setdefault(name, {})
        scratch = os.path.join(drill["dir"], name)
        try:
            repo = drill.get("repository") or ctx.first_repo(job)
            entry["repository"] = repo
            snap = ctx.restic.latest(repo, name)
            mismatched = restore_and_compare(ctx, job, repo, snap, scratch)
            entry["mismatched"] = mismatched
            if mismatched:
                log(f"drill {name}: {mismatched} file(s) missing or different in snapshot {snap['short_id']}", "error")
                code = code or 1
            else:
                entry["last_success"] = now()
                log(f"drill {name}: snapshot {snap['short_id']} of {repo} restored, every checksum matches")
        except BackupError as exc:
            entry.setdefault("repository", drill.get("repository") or "")
            log(f"drill {name}: {exc}", "error")
            code = code or exc.code
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    ctx.state.record("restore_drill", code == 0, code, started)
    return code


def restore_and_compare(ctx, job, repo, snap, scratch):
    expected = ctx.manifest(job["name"], repo, snap["id"])
    if expected is None:
        raise BackupError(f"no checksum manifest for snapshot {snap['short_id']} of job {job['name']} on this host "
                          "(taken elsewhere or before this version)")
    shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(scratch, mode=0o700)
    if job["type"] == "database":
        filename = ctx.dump_filename(job)
        with open(os.path.join(scratch, filename), "wb") as handle:
            ctx.restic.run(repo, ["dump", f"--retry-lock={ctx.retry_lock}", snap["id"], "/" + filename], stdout=handle)
    else:
        ctx.restic.run(repo, ["restore", f"--retry-lock={ctx.retry_lock}", f"{snap['id']}:{snap['paths'][0]}",
                              f"--target={scratch}"])
    return len(compare(expected, tree_checksums(scratch)))
