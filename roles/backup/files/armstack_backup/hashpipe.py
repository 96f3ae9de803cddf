# Copyright: (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The command restic runs for a database dump (--stdin-from-command):

    python3 -I hashpipe.py HASHFILE -- DUMP-ARGV...

Runs the dump, copies its stdout to restic while hashing it, and writes
"<sha256> <bytes>" to HASHFILE only when the dump exited 0 (the restore drill and
a restore compare against it). The dump runs without the repository's
credentials in its environment (restic hands its own environment down).
Standard library only: run as a script, not imported.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile

DROP = ("AWS_", "RESTIC_")


def main(argv):
    if len(argv) < 3 or argv[1] != "--":
        print("usage: hashpipe.py HASHFILE -- ARGV...", file=sys.stderr)
        return 2
    hashfile, command = argv[0], argv[2:]
    env = {k: v for k, v in os.environ.items() if not k.startswith(DROP)}
    try:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, env=env)
    except OSError as exc:
        print(f"cannot run {command[0]}: {exc.strerror}", file=sys.stderr)
        return 127
    digest, size = hashlib.sha256(), 0
    out = sys.stdout.buffer
    while True:
        chunk = proc.stdout.read(1 << 20)
        if not chunk:
            break
        digest.update(chunk)
        size += len(chunk)
        out.write(chunk)
    out.flush()
    code = proc.wait()
    if code == 0:
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(hashfile) or ".", prefix=".tmp-")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(f"{digest.hexdigest()} {size}\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, hashfile)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
