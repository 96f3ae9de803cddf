# Copyright: (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""forget --prune (the retention policy) and check, per repository."""

from __future__ import annotations

from .util import BackupError, log, now


def cmd_forget(ctx):
    started, code = now(), 0
    keep = ctx.cfg["forget"]
    # Groups by host and tags: each job is a group (tag job:<name>), and so are the
    # safety snapshots a restore takes of each job (tag pre-restore:<name>).
    args = ["forget", "--group-by=host,tags", "--prune", f"--retry-lock={ctx.retry_lock}"]
    for flag in ("last", "hourly", "daily", "weekly", "monthly", "yearly"):
        if keep.get(flag):
            args.append(f"--keep-{flag}={keep[flag]}")
    if keep.get("within"):
        args.append(f"--keep-within={keep['within']}")
    for repo in ctx.repos:
        try:
            ctx.restic.unlock_stale(repo)
            ctx.restic.run(repo, args)
        except BackupError as exc:
            log(str(exc), "error")
            code = code or exc.code
    refresh_snapshot_counts(ctx)
    ctx.state.record("forget", code == 0, code, started)
    return code


def refresh_snapshot_counts(ctx):
    for repo in ctx.repos:
        try:
            snaps = ctx.restic.snapshots(repo)
        except BackupError:
            continue
        for job in ctx.jobs:
            count = sum(1 for s in snaps if f"job:{job}" in (s.get("tags") or []))
            ctx.state.job(job).setdefault("snapshots", {})[repo] = count
    ctx.state.save()
    for job in ctx.jobs:
        if job in ctx.state.data.get("jobs", {}):
            ctx.state.write_metrics(job)


def cmd_check(ctx):
    started, code = now(), 0
    subset = ctx.cfg["check"].get("read_data_subset")
    args = ["check", f"--retry-lock={ctx.retry_lock}"] + ([f"--read-data-subset={subset}"] if subset else [])
    for repo in ctx.repos:
        try:
            ctx.restic.unlock_stale(repo)
            ctx.restic.run(repo, args)
            log(f"[{repo}] check passed")
        except BackupError as exc:
            log(str(exc), "error")
            code = code or exc.code
    ctx.state.record("check", code == 0, code, started)
    return code
