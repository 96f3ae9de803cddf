# Copyright: (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every command works with: the configuration, restic, the state, the jobs."""

from __future__ import annotations

import os

from . import containers, engines
from .restic import Restic
from .state import State
from .util import BackupError


class Context:
    def __init__(self, cfg):
        self.cfg = cfg
        self.state_dir = cfg["state_dir"]
        self.repos = {r["name"]: r for r in cfg.get("repositories") or []}
        self.jobs = {j["name"]: j for j in cfg.get("jobs") or []}
        self.restic = Restic(cfg)
        self.state = State(self.state_dir, cfg["metrics_dir"], cfg.get("log_file"), self.jobs)
        self.retry_lock = cfg.get("retry_lock", "10m")
        self.hostname = cfg["hostname"]

    def job(self, name):
        if name not in self.jobs:
            raise BackupError(f"unknown job {name}; configured: {', '.join(self.jobs) or 'none'}")
        return self.jobs[name]

    def repos_for(self, job):
        return list(job.get("repositories") or self.repos)

    def first_repo(self, job):
        repos = self.repos_for(job)
        if not repos:
            raise BackupError(f"job {job['name']}: no repository configured")
        return repos[0]

    def source_path(self, job):
        if job["type"] == "directory":
            return job["path"]
        if job["type"] == "volume":
            return containers.volume_mountpoint(job)
        raise BackupError(f"job {job['name']}: type {job['type']} has no source path")

    def dump_filename(self, job):
        return f"{job['name']}.{engines.EXTENSION[job['engine']]}"

    def manifest_dir(self, job, repo):
        return os.path.join(self.state_dir, "manifests", job, repo)

    def manifest(self, job, repo, snapshot_id):
        """{relative path: sha256} recorded when the snapshot was taken, or None (taken elsewhere, or not newest)."""
        path = os.path.join(self.manifest_dir(job, repo), f"{snapshot_id}.sha256")
        try:
            with open(path, encoding="utf-8") as handle:
                return dict(reversed(line.rstrip("\n").split("  ", 1)) for line in handle if line.strip())
        except FileNotFoundError:
            return None
