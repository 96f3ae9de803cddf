# Copyright: (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backups of jobs: directories, Docker volumes and database dumps.

A job succeeds only when every repository stored a snapshot that holds
something: a configuration without jobs, a job without a repository, a snapshot
of 0 files or a dump of 0 bytes is a failure (exit 1, metrics that make the
failed- and stale-backup alerts fire). An empty snapshot is forgotten again, so
that it never becomes the job's "latest" for a restore.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys

from . import containers, engines, hashpipe
from .config import NO_JOBS, job_problems
from .util import BackupError, atomic_write, fnmatch_path, log, now, parse_json, sha256_file


def cmd_backup(ctx, names):
    if not ctx.jobs:
        started = now()
        log("no backup job is configured (backup_jobs is empty): nothing is backed up. This run FAILS, and "
            f"reports as job {NO_JOBS!r}, so that the backup alerts fire", "error")
        ctx.state.record(NO_JOBS, False, 1, started)
        return 1
    for name in names:
        ctx.job(name)
    if NO_JOBS in ctx.state.data.get("jobs", {}) or os.path.exists(ctx.state.metrics_file(NO_JOBS)):
        ctx.state.remove_metrics(NO_JOBS)
        ctx.state.save()
    worst = 0
    for name in names or list(ctx.jobs):
        code = backup_job(ctx, ctx.jobs[name])
        worst = worst or code
    return worst


def backup_job(ctx, job):
    started = now()
    name = job["name"]
    problems = job_problems(job, ctx.repos)
    if problems:
        for problem in problems:
            log(problem, "error")
        ctx.state.record(name, False, 1, started, bytes_added=0)
        return 1
    repos = ctx.repos_for(job)
    base = ["backup", "--json", f"--host={ctx.hostname}", f"--tag=job:{name}", f"--retry-lock={ctx.retry_lock}"]
    code, added, counts = 0, 0, {}
    try:
        with containers.stopped(ctx.state_dir, job.get("quiesce", []), f"quiesce for job {name}"):
            argv_for = database_args(ctx, job) if job["type"] == "database" else file_args(ctx, job)
            for repo in repos:
                args, manifest, dumped = argv_for()
                proc = ctx.restic.run(repo, base + args, check=False)
                summary = next((m for m in map(parse_json, (proc.stdout or "").splitlines())
                                if m and m.get("message_type") == "summary"), None)
                if dumped() == 0:
                    # restic >= 0.18 refuses an empty stdin ("no data read", exit 3); older ones store it.
                    log(f"[{repo}] job {name}: the dump was 0 bytes: nothing was backed up, the run FAILS", "error")
                    if summary and summary.get("snapshot_id"):
                        with contextlib.suppress(BackupError):
                            ctx.restic.run(repo, ["forget", f"--retry-lock={ctx.retry_lock}", summary["snapshot_id"]])
                    code = code or 1
                    continue
                if proc.returncode == 3:
                    log(f"[{repo}] job {name}: snapshot is INCOMPLETE (some files unreadable): failure", "error")
                elif proc.returncode != 0:
                    log(f"[{repo}] job {name}: backup failed with exit code {proc.returncode}; no snapshot stored", "error")
                if proc.returncode != 0:
                    code = code or proc.returncode
                    continue
                if not summary or not summary.get("snapshot_id"):
                    log(f"[{repo}] job {name}: restic reported no summary; treating the run as failed", "error")
                    code = code or 1
                    continue
                empty = empty_reason(job, summary)
                if empty:
                    log(f"[{repo}] job {name}: {empty}: nothing was backed up, the run FAILS; the empty snapshot "
                        f"{summary['snapshot_id'][:8]} is forgotten again", "error")
                    with contextlib.suppress(BackupError):
                        ctx.restic.run(repo, ["forget", f"--retry-lock={ctx.retry_lock}", summary["snapshot_id"]])
                    code = code or 1
                    continue
                added += int(summary.get("data_added", 0))
                if manifest:
                    keep_manifest(ctx, name, repo, summary["snapshot_id"], manifest)
                log(f"[{repo}] job {name}: snapshot {summary['snapshot_id'][:8]}: "
                    f"{summary.get('total_files_processed', 0)} file(s), {summary.get('total_bytes_processed', 0)} "
                    f"bytes, added {summary.get('data_added', 0)} bytes")
    except BackupError as exc:
        log(f"job {name}: {exc}", "error")
        code = code or exc.code
    for repo in repos:
        with contextlib.suppress(BackupError, ValueError):
            counts[repo] = len(ctx.restic.snapshots(repo, f"job:{name}"))
    ctx.state.record(name, code == 0, code, started, bytes_added=added, snapshots=counts)
    return code


def empty_reason(job, summary):
    """Why a snapshot holds nothing worth keeping, or "" (allow_empty lets a file job be empty)."""
    if job["type"] == "database":
        if int(summary.get("total_bytes_processed", 0)) == 0:
            return "the dump was 0 bytes"
        return ""
    if int(summary.get("total_files_processed", 0)) == 0 and not job.get("allow_empty"):
        return f"the snapshot holds 0 files (is {job.get('path') or job.get('volume')} empty? allow_empty: true if it may be)"
    return ""


def file_args(ctx, job):
    source = ctx.source_path(job)
    if not os.path.isdir(source):
        raise BackupError(f"job {job['name']}: {source} is not a directory")
    excludes = [f"--exclude={e}" for e in job.get("exclude", [])]
    manifest = build_manifest(ctx, job["name"], source, job.get("exclude", [])) if job.get("manifest", True) else None

    def args():
        return [*excludes, "--", source], manifest, lambda: None
    return args


def database_args(ctx, job):
    hashfile = os.path.join(ctx.state_dir, "manifests", f".{job['name']}.dumphash")
    filename = ctx.dump_filename(job)

    def args():
        with contextlib.suppress(FileNotFoundError):
            os.unlink(hashfile)
        wrapped = [sys.executable, "-I", os.path.abspath(hashpipe.__file__), hashfile, "--", *engines.dump_command(job)]
        return ["--stdin-from-command", f"--stdin-filename={filename}", "--", *wrapped], \
            (lambda: read_dump_manifest(hashfile, filename)), (lambda: dump_size(hashfile))
    return args


def _dump_record(hashfile):
    """(sha256, bytes) the dump wrapper recorded for a dump that exited 0, or None."""
    try:
        with open(hashfile, encoding="utf-8") as handle:
            fields = handle.read().split()
        return fields[0], int(fields[1])
    except (FileNotFoundError, IndexError, ValueError):
        return None


def read_dump_manifest(hashfile, filename):
    record = _dump_record(hashfile)
    return f"{record[0]}  {filename}\n" if record else None


def dump_size(hashfile):
    record = _dump_record(hashfile)
    return record[1] if record else None


# ---- manifests (checksums of the source at snapshot time) ---------------------------

def build_manifest(ctx, name, source, excludes):
    """sha256 of every file under source; unchanged files (size, mtime, inode) reuse the last hash."""
    cache_path = os.path.join(ctx.state_dir, "manifests", f".{name}.cache.json")
    try:
        with open(cache_path, encoding="utf-8") as handle:
            cache = json.load(handle)
    except (FileNotFoundError, ValueError):
        cache = {}
    fresh, lines = {}, []
    for root, dirs, files in os.walk(source):
        dirs.sort()
        for fname in sorted(files):
            path = os.path.join(root, fname)
            rel = os.path.relpath(path, source)
            if any(fnmatch_path(rel, e) for e in excludes):
                continue
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue
            if not os.path.isfile(path) or os.path.islink(path):
                continue
            key = [st.st_size, st.st_mtime_ns, st.st_ino]
            old = cache.get(rel)
            digest = old[1] if old and old[0] == key else sha256_file(path)
            fresh[rel] = [key, digest]
            lines.append(f"{digest}  {rel}")
    atomic_write(cache_path, json.dumps(fresh), 0o600)
    return "\n".join(lines) + ("\n" if lines else "")


def keep_manifest(ctx, job, repo, snapshot_id, manifest):
    text = manifest() if callable(manifest) else manifest
    if text is None:
        return
    directory = ctx.manifest_dir(job, repo)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    atomic_write(os.path.join(directory, f"{snapshot_id}.sha256"), text, 0o600)
    # Only the newest snapshot's manifest is kept: the drill restores the newest.
    for old in os.listdir(directory):
        if old != f"{snapshot_id}.sha256":
            os.unlink(os.path.join(directory, old))
