# Copyright: (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""restic, run with a repository's environment.

- The environment comes from the repository's env file (RESTIC_REPOSITORY, S3
  keys, RESTIC_PASSWORD_FILE; root, 0600). Every secret value read is handed to
  the log's redactor, so restic's stderr (which can echo addresses) never prints
  one. ARMSTACK_RESTIC_OPTIONS in the file holds restic `-o` options.
- Exit codes as restic (>= 0.17) documents them (util.EXIT_MEANINGS). Exit 11
  (locked): stale locks are removed with plain `restic unlock` (locks of dead
  processes on this host, or older than 30 minutes; never --remove-all) and the
  command is tried once more.
- probe(): a bounded look at a repository (a TCP connect to an S3 endpoint,
  then `restic cat config` under a timeout) that says exists, missing, or why not.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import urllib.parse

from .util import BackupError, log, meaning, redact

SECRET_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "RESTIC_PASSWORD")


def parse_env(text):
    env = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            env[key.strip()] = value
    return env


def s3_endpoint(url):
    """(host, port, address without credentials) of an s3: repository, or None for other kinds."""
    if not url.startswith("s3:"):
        return None
    rest = url[3:]
    parsed = urllib.parse.urlsplit(rest if "://" in rest else "https://" + rest)
    port = parsed.port or (80 if parsed.scheme == "http" else 443)
    return parsed.hostname or "", port, f"{parsed.scheme}://{parsed.hostname}:{port}"


def describe(url):
    """A repository address fit for a log line (credentials in a URL redacted)."""
    return redact(url) if url else "(no RESTIC_REPOSITORY)"


class Restic:
    def __init__(self, cfg):
        self.binary = cfg["restic"]
        self.cache_dir = cfg["cache_dir"]
        self.retry_lock = cfg.get("retry_lock", "10m")
        self.repos = {r["name"]: r for r in cfg.get("repositories") or []}
        self._env = {}

    # ---- environment -----------------------------------------------------------
    def use(self, name, env_text, password=None):
        """Use this environment for repository `name` instead of its files (a candidate
        configuration the role probes before writing it)."""
        env = parse_env(env_text)
        if password is not None:
            env.pop("RESTIC_PASSWORD_FILE", None)
            env["RESTIC_PASSWORD"] = password
        self._env[name] = self._finish(env)

    def environment(self, name):
        if name not in self._env:
            if name not in self.repos:
                raise BackupError(f"unknown repository {name}; configured: {', '.join(self.repos) or 'none'}")
            path = self.repos[name]["env_file"]
            try:
                with open(path, encoding="utf-8") as handle:
                    env = parse_env(handle.read())
            except OSError as exc:
                raise BackupError(f"repository {name}: cannot read {path}: {exc.strerror}") from None
            self._env[name] = self._finish(env, self.repos[name].get("options") or [])
        return self._env[name]

    def _finish(self, env, options=()):
        for key in SECRET_KEYS:
            redact.add(env.get(key))
        password_file = env.get("RESTIC_PASSWORD_FILE")
        if password_file:
            try:
                with open(password_file, encoding="utf-8") as handle:
                    redact.add(handle.read())
            except OSError:
                pass  # restic says so itself
        opts = list(options)
        for item in env.pop("ARMSTACK_RESTIC_OPTIONS", "").split():
            opts += ["-o", item]
        full = dict(os.environ)
        full.update(env)
        full["RESTIC_CACHE_DIR"] = self.cache_dir
        return full, opts

    def env(self, name):
        return self.environment(name)[0]

    def argv(self, name, args):
        return [self.binary, *self.environment(name)[1], *args]

    def address(self, name):
        return describe(self.env(name).get("RESTIC_REPOSITORY", ""))

    # ---- running -----------------------------------------------------------------
    def run(self, name, args, *, stdin=None, stdout=None, check=True, lock_retry=True, timeout=None, quiet=False):
        """Run restic against repository `name`; on exit 11 remove stale locks only and retry once.

        stdout: None captures text (returned in .stdout); a file object receives the bytes.
        """
        argv = self.argv(name, args)
        for attempt in (1, 2):
            try:
                proc = subprocess.run(argv, env=self.env(name), stdin=stdin,
                                      stdout=stdout if stdout is not None else subprocess.PIPE,
                                      stderr=subprocess.PIPE, check=False, timeout=timeout)
            except subprocess.TimeoutExpired:
                raise BackupError(f"[{name}] restic {args[0]} did not finish within {timeout} s "
                                  f"(repository {self.address(name)} unreachable or too slow); stopped it") from None
            except OSError as exc:
                raise BackupError(f"[{name}] cannot run {self.binary}: {exc.strerror}") from None
            proc.stdout = proc.stdout.decode(errors="replace") if isinstance(proc.stdout, bytes) else proc.stdout
            proc.stderr = (proc.stderr or b"").decode(errors="replace")
            if proc.returncode == 11 and lock_retry and attempt == 1:
                log(f"[{name}] repository locked; removing stale locks (restic unlock) and retrying", "warning")
                subprocess.run(self.argv(name, ["unlock"]), env=self.env(name), check=False,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                continue
            break
        if proc.stderr.strip() and not quiet:
            for line in proc.stderr.strip().splitlines()[-20:]:
                log(f"[{name}] restic: {line}", "warning" if proc.returncode == 0 else "error")
        if check and proc.returncode != 0:
            raise BackupError(f"[{name}] restic {args[0]} failed: {meaning(proc.returncode)} "
                              f"(exit code {proc.returncode})", proc.returncode)
        return proc

    def unlock_stale(self, name):
        """Remove stale locks only (plain `restic unlock`). prune and check need an exclusive
        lock, and a run killed earlier must not make them wait --retry-lock out."""
        self.run(name, ["unlock"], check=False, lock_retry=False)

    def snapshots(self, name, tag=None):
        args = ["snapshots", "--json", f"--retry-lock={self.retry_lock}"]
        if tag:
            args.append(f"--tag={tag}")
        return json.loads(self.run(name, args).stdout or "[]") or []

    def latest(self, name, job, snapshot=None):
        """The newest snapshot of job (tag job:<job>), or the one whose id starts with `snapshot`."""
        snaps = self.snapshots(name, f"job:{job}")
        if snapshot and snapshot != "latest":
            snaps = [s for s in snaps if s["id"].startswith(snapshot) or s.get("short_id") == snapshot]
        if not snaps:
            raise BackupError(f"no snapshot of job {job} in repository {name}"
                              + (f" matching {snapshot}" if snapshot and snapshot != "latest" else ""))
        return sorted(snaps, key=lambda s: s["time"])[-1]

    def file_size(self, name, snapshot_id, path):
        """Size of one file in a snapshot (restic ls --json), or None when restic does not say."""
        proc = self.run(name, ["ls", "--json", f"--retry-lock={self.retry_lock}", snapshot_id, path], check=False)
        for line in (proc.stdout or "").splitlines():
            try:
                node = json.loads(line)
            except ValueError:
                continue
            if node.get("path") == path and node.get("type") == "file":
                return int(node.get("size", 0))
        return None

    # ---- a bounded look at a repository -------------------------------------------------
    def probe(self, name, connect_timeout=5, timeout=60):
        """'exists' or 'missing'; raises BackupError saying why the repository cannot be used.

        restic itself retries an unreachable S3 endpoint for many minutes: a TCP
        connect bounded by connect_timeout comes first, then `restic cat config`
        bounded by timeout.
        """
        url = self.env(name).get("RESTIC_REPOSITORY", "")
        where = describe(url)
        endpoint = s3_endpoint(url)
        if endpoint:
            host, port, shown = endpoint
            try:
                socket.create_connection((host, port), timeout=connect_timeout).close()
            except OSError as exc:
                reason = "timed out" if isinstance(exc, socket.timeout) else (exc.strerror or str(exc))
                raise BackupError(f"repository {name} ({where}): the S3 endpoint {shown} did not accept a TCP "
                                  f"connection within {connect_timeout} s ({reason}); check the endpoint "
                                  "and the network") from None
        try:
            proc = self.run(name, ["cat", "config", "--no-lock"], check=False, lock_retry=False,
                            timeout=timeout, quiet=True)
        except BackupError as exc:
            raise BackupError(f"repository {name} ({where}): restic did not answer within {timeout} s; "
                              "check the endpoint, bucket and network") from exc
        if proc.returncode == 0:
            return "exists"
        if proc.returncode == 10:
            return "missing"
        last = next((line for line in reversed(proc.stderr.strip().splitlines()) if line.strip()), "")
        detail = f": {redact(last.strip())}" if last else ""
        if proc.returncode == 12:
            raise BackupError(f"repository {name} ({where}): wrong repository password{detail}", 12)
        raise BackupError(f"repository {name} ({where}) cannot be opened: {meaning(proc.returncode)} "
                          f"(exit code {proc.returncode}){detail}; check its address, bucket, keys and password",
                          proc.returncode)
