# Copyright: (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Errors, the log (which never prints a known secret), atomic writes, checksums."""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import os
import re
import sys
import tempfile
import time

# restic's exit codes (restic >= 0.17) and what they mean for an operator.
EXIT_MEANINGS = {
    0: "ok",
    1: "failed",
    2: "restic crashed (Go runtime error)",
    3: "snapshot incomplete: some source files could not be read",
    10: "the repository does not exist",
    11: "the repository is locked by another process",
    12: "wrong repository password",
    130: "interrupted",
}


def meaning(code):
    """What an exit code means, in words (128+N: killed by signal N)."""
    if code in EXIT_MEANINGS:
        return EXIT_MEANINGS[code]
    if code is not None and code > 128:
        return f"killed by signal {code - 128}"
    return f"exit code {code}"


class BackupError(Exception):
    """A failure with the exit code the run ends with."""

    def __init__(self, message, code=1):
        super().__init__(message)
        self.code = code


# --- the log ----------------------------------------------------------------------

_URL_USERINFO = re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^/\s@]+@", re.I)
_SECRET_ASSIGNMENT = re.compile(r"\b((?:AWS_SECRET_ACCESS_KEY|AWS_ACCESS_KEY_ID|AWS_SESSION_TOKEN|RESTIC_PASSWORD)=)\S+")
REDACTED = "[REDACTED]"


class Redactor:
    """Replaces every known secret value (and URL credentials) in text."""

    def __init__(self):
        self._secrets = set()

    def add(self, value):
        value = (value or "").strip()
        # Very short values would redact ordinary words; the role refuses passwords under 16 characters.
        if len(value) >= 4:
            self._secrets.add(value)

    def __call__(self, text):
        text = str(text)
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, REDACTED)
        text = _URL_USERINFO.sub(r"\1" + REDACTED + "@", text)
        return _SECRET_ASSIGNMENT.sub(r"\1" + REDACTED, text)


redact = Redactor()


def log(message, level="info"):
    """One line for the journal (syslog priority prefix), secrets redacted."""
    prefix = {"info": "<6>", "warning": "<4>", "error": "<3>"}[level]
    stream = sys.stdout if level == "info" else sys.stderr
    for line in redact(message).splitlines() or [""]:
        print(f"{prefix}{line}", file=stream, flush=True)


def emit(document):
    """A machine-readable result on stdout (playbooks read it), secrets redacted."""
    print(redact(json.dumps(document, sort_keys=True)), flush=True)


def now():
    return time.time()


# --- files ------------------------------------------------------------------------

def atomic_write(path, text, mode):
    """Write text to path through a temporary file in the same directory and rename it."""
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def tree_checksums(root, skip=()):
    """{relative path: sha256} of every regular file under root (symlinks not followed)."""
    seen = {}
    for current, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if os.path.join(current, d) not in skip)
        for fname in files:
            path = os.path.join(current, fname)
            if os.path.isfile(path) and not os.path.islink(path):
                seen[os.path.relpath(path, root)] = sha256_file(path)
    return seen


def parse_json(line):
    try:
        return json.loads(line)
    except ValueError:
        return None


def fnmatch_path(rel, pattern):
    """restic-like exclude match: the whole relative path, or any one component."""
    pattern = pattern.lstrip("/")
    return fnmatch.fnmatch(rel, pattern) or any(fnmatch.fnmatch(part, pattern) for part in rel.split(os.sep))
