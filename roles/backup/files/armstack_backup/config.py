# Copyright: (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The runner's configuration (/etc/armstack/backup/config.json, no secrets) and its checks.

The role validates every field before it writes this file; the runner checks the
fields that reach an argument list or a file again, so a hand-edited
configuration cannot turn a container name into a `docker` option.
"""

from __future__ import annotations

import json
import os
import re

from .util import BackupError

DEFAULT_PATH = "/etc/armstack/backup/config.json"

# The job names the runner reports on its own (metrics files backup_<name>.prom).
MAINTENANCE_JOBS = ("forget", "check", "restore_drill")
# Reported when the configuration has no job at all: the alerts fire on it.
NO_JOBS = "no-jobs-configured"
RESERVED_JOBS = MAINTENANCE_JOBS + (NO_JOBS,)

NAME = re.compile(r"^[a-z0-9_][a-z0-9_-]*\Z")
CONTAINER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
DATABASE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_$-]*\Z")
HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\Z")


def load(path=None):
    path = path or os.environ.get("ARMSTACK_BACKUP_CONFIG", DEFAULT_PATH)
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise BackupError(f"no configuration at {path}: run the armstack.deploy.backup role first") from None
    except ValueError as exc:
        raise BackupError(f"the configuration {path} is not valid JSON: {exc}") from None


def _absolute(value):
    return isinstance(value, str) and value.startswith("/") and "\n" not in value and "/../" not in value + "/"


def job_problems(job, repositories):
    """What is wrong with one job, in words that name the field (never a value of a secret)."""
    name = job.get("name")
    label = f"job {name}" if isinstance(name, str) and NAME.match(name) else "a job"
    problems = []
    if not (isinstance(name, str) and NAME.match(name)):
        problems.append(f"{label}: name must match {NAME.pattern}")
    elif name in RESERVED_JOBS:
        problems.append(f"{label}: the name is reserved ({', '.join(RESERVED_JOBS)})")
    kind = job.get("type")
    if kind == "volume":
        if not CONTAINER.match(str(job.get("volume", ""))):
            problems.append(f"{label}: volume must be a Docker volume name ({CONTAINER.pattern})")
    elif kind == "directory":
        if not _absolute(job.get("path")):
            problems.append(f"{label}: path must be an absolute path")
    elif kind == "database":
        engine = job.get("engine")
        if engine not in ("postgres", "mysql", "redis", "sqlite", "command"):
            problems.append(f"{label}: engine must be postgres, mysql, redis, sqlite or command")
        if engine in ("postgres", "mysql", "redis", "sqlite") and not CONTAINER.match(str(job.get("container", ""))):
            problems.append(f"{label}: container must be a container name ({CONTAINER.pattern})")
        if engine in ("postgres", "mysql") and not DATABASE.match(str(job.get("database", ""))):
            problems.append(f"{label}: database must match {DATABASE.pattern}")
        if engine == "postgres" and job.get("user") is not None and not DATABASE.match(str(job["user"])):
            problems.append(f"{label}: user must match {DATABASE.pattern}")
        if engine == "redis" and job.get("password_file") is not None and not _absolute(job.get("password_file")):
            problems.append(f"{label}: password_file must be the absolute path of a file inside the container")
        if engine == "sqlite" and not _absolute(job.get("path")):
            problems.append(f"{label}: path must be the absolute path of the database inside the container")
        if engine == "command" and not (isinstance(job.get("dump_command"), list) and job["dump_command"]
                                        and all(isinstance(a, str) for a in job["dump_command"])):
            problems.append(f"{label}: dump_command must be a non-empty list of strings")
    else:
        problems.append(f"{label}: type must be volume, directory or database")
    for container in job.get("quiesce") or []:
        if not CONTAINER.match(str(container)):
            problems.append(f"{label}: quiesce must list container names ({CONTAINER.pattern})")
            break
    for pattern in job.get("exclude") or []:
        if not isinstance(pattern, str) or not pattern or "\n" in pattern:
            problems.append(f"{label}: exclude patterns must be non-empty one-line strings")
            break
    wanted = job.get("repositories") or []
    unknown = [r for r in wanted if r not in repositories]
    if unknown:
        problems.append(f"{label}: repositories names unknown repositories ({', '.join(map(str, unknown))})")
    if not (wanted or repositories):
        problems.append(f"{label}: no repository to write to (backup_repositories is empty)")
    return problems


def global_problems(cfg):
    problems = []
    if not HOSTNAME.match(str(cfg.get("hostname", ""))):
        problems.append("hostname must be a host name (letters, digits, dots, inner dashes)")
    for repo in cfg.get("repositories") or []:
        if not NAME.match(str(repo.get("name", ""))):
            problems.append(f"repository names must match {NAME.pattern}")
    return problems
