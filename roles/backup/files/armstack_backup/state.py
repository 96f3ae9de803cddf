# Copyright: (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the runs did: state.json, node-exporter textfile metrics, the history log.

Metrics files are backup_<job>.prom in the textfile directory, replaced
atomically. A failed run keeps the previous success time, so the stale-backup
alert fires; its exit code makes the failed-backup alert fire.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os

from .util import atomic_write, now


class State:
    def __init__(self, state_dir, metrics_dir, log_file=None, job_names=()):
        self.state_dir = state_dir
        self.metrics_dir = metrics_dir
        self.log_file = log_file
        self.job_names = set(job_names)
        os.makedirs(os.path.join(state_dir, "manifests"), mode=0o700, exist_ok=True)
        self.path = os.path.join(state_dir, "state.json")
        try:
            with open(self.path, encoding="utf-8") as handle:
                self.data = json.load(handle)
        except (FileNotFoundError, ValueError):
            self.data = {}

    def job(self, name):
        return self.data.setdefault("jobs", {}).setdefault(name, {})

    @property
    def drills(self):
        return self.data.setdefault("drills", {})

    def save(self):
        atomic_write(self.path, json.dumps(self.data, indent=1, sort_keys=True), 0o600)

    def record(self, job, ok, code, started, bytes_added=None, snapshots=None):
        """Remember a run of `job`, rewrite its metrics file, append a history line."""
        entry = self.job(job)
        entry["last_run"] = started
        entry["exit_code"] = code
        entry["duration"] = round(now() - started, 3)
        if ok:
            entry["last_success"] = started
        if bytes_added is not None:
            entry["bytes_added"] = bytes_added
        if snapshots:
            entry.setdefault("snapshots", {}).update(snapshots)
        self.save()
        self.write_metrics(job)
        self.history(job, code, entry["duration"], bytes_added)

    def metrics_file(self, job):
        return os.path.join(self.metrics_dir, f"backup_{job}.prom")

    def remove_metrics(self, job):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.metrics_file(job))
        self.data.get("jobs", {}).pop(job, None)

    def write_metrics(self, job):
        entry = self.data.get("jobs", {}).get(job, {})
        label = f'job="{job}"'
        lines = []

        def gauge(name, help_text, samples):
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} gauge")
            lines.extend(f"{name}{{{labels}}} {value}" for labels, value in samples)

        gauge("armstack_backup_last_success_timestamp_seconds", "Start time of the last successful run.",
              [(label, entry.get("last_success", 0))])
        gauge("armstack_backup_last_run_timestamp_seconds", "Start time of the last run.",
              [(label, entry.get("last_run", 0))])
        gauge("armstack_backup_last_exit_code", "Exit code of the last run (0 ok, 3 incomplete, 11 locked).",
              [(label, entry.get("exit_code", 0))])
        gauge("armstack_backup_duration_seconds", "Duration of the last run.", [(label, entry.get("duration", 0))])
        if job in self.job_names:
            gauge("armstack_backup_bytes_added", "New data the last run added to the repositories (before compression).",
                  [(label, entry.get("bytes_added", 0))])
            gauge("armstack_backup_snapshots", "Snapshots of the job in each repository.",
                  [(f'{label},repository="{repo}"', count) for repo, count in sorted(entry.get("snapshots", {}).items())])
        if job == "restore_drill":
            drills = self.drills
            gauge("armstack_restore_drill_last_success_timestamp_seconds", "Time of the last restore drill without mismatch.",
                  [(f'job="{j}",repository="{d["repository"]}"', d.get("last_success", 0)) for j, d in sorted(drills.items())])
            gauge("armstack_restore_drill_files_mismatched", "Files missing or different in the last restore drill.",
                  [(f'job="{j}",repository="{d["repository"]}"', d.get("mismatched", 0)) for j, d in sorted(drills.items())])
        os.makedirs(self.metrics_dir, exist_ok=True)
        atomic_write(self.metrics_file(job), "\n".join(lines) + "\n", 0o644)

    def history(self, job, code, duration, bytes_added):
        if not self.log_file:
            return
        os.makedirs(os.path.dirname(self.log_file), exist_ok=True)
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        with open(self.log_file, "a", encoding="utf-8") as handle:
            handle.write(f"{stamp} job={job} exit={code} duration={duration}s bytes_added={bytes_added or 0}\n")
