# Copyright: (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""armstack-backup: runs the restic jobs the `backup` role configured.

  armstack-backup init [REPO...]          create missing repositories (bounded probe first)
  armstack-backup probe < JSON            look at a candidate repository (the role, before it writes one)
  armstack-backup backup [JOB...]         back up jobs (all by default) to their repositories
  armstack-backup forget                  apply the retention policy and prune
  armstack-backup check                   restic check --read-data-subset
  armstack-backup drill [JOB...]          restore the latest snapshots to scratch and compare
  armstack-backup restore JOB --target DIR [--snapshot ID] [--repository NAME]
  armstack-backup restore JOB --confirm JOB [--snapshot ID] [--repository NAME] [--no-safety-snapshot]
  armstack-backup snapshots [JOB] [--repository NAME]   JSON list
  armstack-backup record-failure UNIT     OnFailure= handler of the systemd services
  armstack-backup restic REPO ARGS...     restic with a repository's environment

Exit codes follow restic's: 0 ok, 1 failure, 2 refused (an in-place restore
without --confirm), 3 incomplete snapshot (a failure), 10 repository missing,
11 repository locked (after --retry-lock and a stale-lock cleanup), 12 wrong
password, 143 stopped by SIGTERM. Stale locks are removed with plain
`restic unlock` only, never `--remove-all`.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys

from . import config, containers, drill, jobs, maintenance, restore
from .context import Context
from .restic import Restic
from .util import BackupError, log, meaning, redact


class Terminated(BaseException):
    """SIGTERM (systemctl stop, a timeout): unwind, so stopped containers are started again."""


def _terminate(signum, _frame):
    raise Terminated(signum)


@contextlib.contextmanager
def host_lock(path):
    """One armstack-backup at a time on this host (timers may overlap); waits for the other."""
    with open(path, "w", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log("another armstack-backup run is active; waiting for it")
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def cmd_init(ctx, names):
    probe = ctx.cfg.get("probe") or {}
    code = 0
    for repo in names or list(ctx.repos):
        try:
            status = ctx.restic.probe(repo, probe.get("connect_timeout", 5), probe.get("timeout", 60))
            if status == "missing":
                ctx.restic.run(repo, ["init"], timeout=probe.get("timeout", 60))
                status = "created"
            print(f"{repo}: {status}", flush=True)
        except BackupError as exc:
            log(str(exc), "error")
            code = code or exc.code
    return code


def cmd_probe(stream):
    """A candidate repository on stdin (JSON: restic, cache_dir, connect_timeout, timeout, name, env, password):
    prints NAME: exists|missing, or NAME: ERROR: why. Reads and writes nothing on the host."""
    try:
        doc = json.load(stream)
        name = doc["name"]
    except (ValueError, KeyError, TypeError):
        print("?: ERROR: probe expects a JSON document with name, env and password on stdin", flush=True)
        return 2
    try:
        client = Restic({"restic": doc["restic"], "cache_dir": doc["cache_dir"], "repositories": []})
        client.use(name, doc.get("env", ""), doc.get("password"))
        print(f"{name}: {client.probe(name, doc.get('connect_timeout', 5), doc.get('timeout', 60))}", flush=True)
        return 0
    except BackupError as exc:
        print(redact(f"{name}: ERROR: {exc}"), flush=True)
        return exc.code or 1
    except Exception as exc:  # a probe reports, it never prints a traceback (which could hold a value)
        print(redact(f"{name}: ERROR: {type(exc).__name__}: {exc}"), flush=True)
        return 1


def record_failure(ctx, unit):
    """OnFailure= handler: the service died (killed, timed out) or exited non-zero.

    Starts the containers a killed run left stopped. Jobs that did not record their
    own result during the failed run get the unit's exit status, 128+signal when killed.
    """
    job = {"armstack-backup.service": None, "armstack-backup-forget.service": "forget",
           "armstack-backup-check.service": "check", "armstack-backup-drill.service": "restore_drill"}.get(unit)
    show = subprocess.run(["systemctl", "show", unit, "--timestamp=unix",
                           "--property=ExecMainStatus,ExecMainCode,ExecMainStartTimestamp"],
                          capture_output=True, text=True, check=False).stdout
    props = dict(line.split("=", 1) for line in show.splitlines() if "=" in line)
    status = int(props.get("ExecMainStatus") or 1)
    code = 128 + status if props.get("ExecMainCode") in ("2", "3") else (status or 1)
    started = float((props.get("ExecMainStartTimestamp") or "@0").lstrip("@") or 0)
    log(f"{unit} failed ({meaning(code)}, exit code {code}); recording it in the metrics", "error")
    containers.start_pending(ctx.state_dir)
    names = [job] if job else (list(ctx.jobs) or [config.NO_JOBS])
    for name in names:
        entry = ctx.state.job(name)
        if entry.get("last_run", 0) < started:
            entry["last_run"] = started
            entry["exit_code"] = code
            ctx.state.write_metrics(name)
    ctx.state.save()
    return 0


def parser():
    top = argparse.ArgumentParser(prog="armstack-backup", description=__doc__.split("\n\n", maxsplit=1)[0],
                                  formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = top.add_subparsers(dest="command", required=True)
    sub.add_parser("init").add_argument("repositories", nargs="*")
    sub.add_parser("probe")
    sub.add_parser("backup").add_argument("jobs", nargs="*")
    sub.add_parser("forget")
    sub.add_parser("check")
    sub.add_parser("drill").add_argument("jobs", nargs="*")
    rest = sub.add_parser("restore")
    rest.add_argument("job")
    rest.add_argument("--snapshot", default="latest")
    rest.add_argument("--repository")
    rest.add_argument("--target", help="restore into this directory instead of in place")
    rest.add_argument("--confirm", metavar="JOB", help="an in-place restore: name the job again to confirm")
    rest.add_argument("--no-safety-snapshot", dest="safety", action="store_false",
                      help="in place, without a snapshot of the live data first (only when it is beyond saving)")
    snaps = sub.add_parser("snapshots")
    snaps.add_argument("job", nargs="?")
    snaps.add_argument("--repository")
    sub.add_parser("record-failure").add_argument("unit")
    raw = sub.add_parser("restic")
    raw.add_argument("repository")
    raw.add_argument("args", nargs=argparse.REMAINDER)
    return top


def main(argv=None):
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    os.umask(0o077)
    if args.command == "probe":
        return cmd_probe(sys.stdin)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        ctx = Context(config.load())
        if args.command == "restic":
            return subprocess.run(ctx.restic.argv(args.repository, args.args), env=ctx.restic.env(args.repository),
                                  check=False).returncode
        if args.command == "snapshots":
            repo = args.repository or next(iter(ctx.repos), None)
            if repo is None:
                raise BackupError("no repository is configured")
            print(json.dumps(ctx.restic.snapshots(repo, f"job:{args.job}" if args.job else None)))
            return 0
        if args.command == "record-failure":
            return record_failure(ctx, args.unit)
        with host_lock(os.path.join(ctx.state_dir, ".lock")):
            if args.command == "init":
                return cmd_init(ctx, args.repositories)
            if args.command == "backup":
                return jobs.cmd_backup(ctx, args.jobs)
            if args.command == "forget":
                return maintenance.cmd_forget(ctx)
            if args.command == "check":
                return maintenance.cmd_check(ctx)
            if args.command == "drill":
                return drill.cmd_drill(ctx, args.jobs)
            if args.command == "restore":
                return restore.cmd_restore(ctx, args.job, args.snapshot, args.repository, args.target,
                                           args.confirm, args.safety)
    except BackupError as exc:
        log(str(exc), "error")
        return exc.code
    except OSError as exc:
        log(f"{args.command} failed: {exc}", "error")
        return 1
    except Terminated:
        log("stopped by SIGTERM; containers stopped by this run were started again", "error")
        return 128 + signal.SIGTERM
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 1
