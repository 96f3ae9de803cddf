# Copyright: (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Docker: stop containers for a job or a restore (and always start them again), volumes."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess

from .util import BackupError, atomic_write, log


def pending_file(state_dir):
    """Containers stopped by a run in progress: the OnFailure= handler starts them when the run was killed."""
    return os.path.join(state_dir, "stopped-containers.json")


def is_running(name):
    state = subprocess.run(["docker", "inspect", "--format", "{{.State.Running}}", "--", name],
                           capture_output=True, text=True, check=False)
    return state.stdout.strip() == "true"


def start_containers(names):
    """Start each container; a failure is logged loudly and the others are still started."""
    failed = []
    for name in names:
        log(f"starting container {name} again")
        if subprocess.run(["docker", "start", "--", name], check=False, stdout=subprocess.DEVNULL).returncode != 0:
            log(f"container {name} did not start again: look at it now", "error")
            failed.append(name)
    return failed


@contextlib.contextmanager
def stopped(state_dir, containers, why):
    """Stop the running containers among `containers`; always start them again.

    The names are written to a file first, so that when this process is killed
    before it can start them, the OnFailure= handler (record-failure) does.
    """
    stopped_names = []
    pending = pending_file(state_dir)
    try:
        for name in dict.fromkeys(containers):
            if is_running(name):
                stopped_names.append(name)
                atomic_write(pending, json.dumps(stopped_names), 0o600)
                log(f"stopping container {name} ({why})")
                if subprocess.run(["docker", "stop", "--", name], check=False,
                                  stdout=subprocess.DEVNULL).returncode != 0:
                    raise BackupError(f"container {name} could not be stopped ({why})")
        yield stopped_names
    finally:
        start_containers(reversed(stopped_names))
        with contextlib.suppress(FileNotFoundError):
            os.unlink(pending)


def start_pending(state_dir):
    """Start the containers a killed run left stopped (OnFailure= handler)."""
    pending = pending_file(state_dir)
    with contextlib.suppress(FileNotFoundError, ValueError):
        with open(pending, encoding="utf-8") as handle:
            names = json.load(handle)
        start_containers(reversed(names))
        os.unlink(pending)


def volume_mountpoint(job):
    out = subprocess.run(["docker", "volume", "inspect", "--format", "{{.Mountpoint}}", "--", job["volume"]],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0 or not out.stdout.strip():
        raise BackupError(f"job {job['name']}: Docker volume {job['volume']} not found: {out.stderr.strip()}")
    return out.stdout.strip()


def volume_users(volume):
    out = subprocess.run(["docker", "ps", "--filter", f"volume={volume}", "--format", "{{.Names}}"],
                         capture_output=True, text=True, check=False)
    return [n for n in out.stdout.split() if n]
