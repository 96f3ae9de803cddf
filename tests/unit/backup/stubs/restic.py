# Copyright: (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A stand-in for restic in the runner's unit tests: a repository is a directory.

RESTIC_REPOSITORY is a local path (an s3: address works for the probe only).
Layout: config (the password), snapshots/<id>.json, data/<id>/<files>, locks/<name>
("stale" or "live"). Every run is logged as a JSON line to $STUB_LOG.

Driven by environment variables (CMD is the subcommand, e.g. RESTORE):
  STUB_RESTIC_EXIT_<CMD>=N          exit N at once (nothing done)
  STUB_RESTIC_LOCKED_<CMD>=N        exit 11 for the first N runs of CMD
  STUB_RESTIC_STDERR=TEXT           written to stderr by every run
  STUB_RESTIC_SLEEP=SECONDS         sleep before anything
  STUB_RESTIC_DUMP_TRUNCATE=N       `dump` writes only N bytes, then exits $STUB_RESTIC_DUMP_EXIT (default 1)
  STUB_RESTIC_RESTORE_EXIT=N        `restore` writes everything, then exits N
  STUB_RESTIC_RESTORE_CORRUPT=NAME  `restore` appends a byte to the restored file NAME
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time

VALUE_OPTIONS = {"-o", "--retry-lock", "--host", "--tag", "--exclude", "--stdin-filename", "--target", "--time",
                 "--read-data-subset", "--group-by", "--path", "--include", "--overwrite", "--keep-last",
                 "--keep-hourly", "--keep-daily", "--keep-weekly", "--keep-monthly", "--keep-yearly", "--keep-within"}
LOCKING = {"backup", "forget", "prune", "check", "restore", "dump", "snapshots", "ls"}


def parse(argv):
    """(subcommand, {option: [values]}, positional arguments, arguments after --)."""
    opts, pos, after, sub = {}, [], [], None
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            after = argv[i + 1:]
            break
        if a.startswith("-") and len(a) > 1:
            if "=" in a and a.split("=", 1)[0] in VALUE_OPTIONS:
                key, value = a.split("=", 1)
                opts.setdefault(key, []).append(value)
            elif a in VALUE_OPTIONS:
                opts.setdefault(a, []).append(argv[i + 1])
                i += 1
            else:
                opts.setdefault(a, []).append(True)
        elif sub is None:
            sub = a
        else:
            pos.append(a)
        i += 1
    return sub, opts, pos, after


def password():
    if "RESTIC_PASSWORD" in os.environ:
        return os.environ["RESTIC_PASSWORD"].strip()
    path = os.environ.get("RESTIC_PASSWORD_FILE")
    if path and os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    return None


def out(doc):
    print(json.dumps(doc), flush=True)


def die(code, message):
    print(f"Fatal: {message}", file=sys.stderr)
    sys.exit(code)


def count(repo, name):
    path = os.path.join(repo, f".count-{name}")
    n = int(open(path).read()) + 1 if os.path.exists(path) else 1
    with open(path, "w") as handle:
        handle.write(str(n))
    return n


def snapshots(repo):
    directory = os.path.join(repo, "snapshots")
    snaps = []
    for name in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
        with open(os.path.join(directory, name), encoding="utf-8") as handle:
            snaps.append(json.load(handle))
    return sorted(snaps, key=lambda s: s["time"])


def find(repo, ref):
    for snap in snapshots(repo):
        if snap["id"].startswith(ref):
            return snap
    die(1, f"no matching ID found for prefix {ref!r}")


def walk(root):
    for current, _dirs, files in os.walk(root):
        for name in files:
            yield os.path.join(current, name)


def main():
    argv = sys.argv[1:]
    sub, opts, pos, after = parse(argv)
    with open(os.environ.get("STUB_LOG", os.devnull), "a", encoding="utf-8") as log:
        log.write(json.dumps({"argv": argv, "cmd": sub, "repository": os.environ.get("RESTIC_REPOSITORY"),
                              "env_keys": sorted(k for k in os.environ if k.startswith(("AWS_", "RESTIC_")))}) + "\n")
    if os.environ.get("STUB_RESTIC_STDERR"):
        print(os.environ["STUB_RESTIC_STDERR"], file=sys.stderr)
    if os.environ.get("STUB_RESTIC_SLEEP"):
        time.sleep(float(os.environ["STUB_RESTIC_SLEEP"]))
    key = (sub or "").upper()
    if os.environ.get(f"STUB_RESTIC_EXIT_{key}"):
        sys.exit(int(os.environ[f"STUB_RESTIC_EXIT_{key}"]))
    repo = os.environ.get("RESTIC_REPOSITORY", "")
    if sub == "version":
        print("restic 0.18.1 compiled with go1.24 on linux/amd64")
        return 0
    if repo.startswith("s3:"):
        die(1, "the stub serves local repositories only")
    if sub == "init":
        if os.path.exists(os.path.join(repo, "config")):
            die(1, "create repository failed: config file already exists")
        os.makedirs(os.path.join(repo, "snapshots"))
        with open(os.path.join(repo, "config"), "w") as handle:
            handle.write(password() or "")
        print(f"created restic repository at {repo}")
        return 0
    if not os.path.exists(os.path.join(repo, "config")):
        die(10, f"repository does not exist: unable to open config file: stat {repo}/config: no such file or directory")
    if open(os.path.join(repo, "config")).read() != (password() or ""):
        die(12, "wrong password or no key found")
    if sub == "unlock":
        locks = os.path.join(repo, "locks")
        for name in os.listdir(locks) if os.path.isdir(locks) else []:
            if open(os.path.join(locks, name)).read().strip() == "stale" or "--remove-all" in opts:
                os.unlink(os.path.join(locks, name))
        return 0
    if sub in LOCKING and "--no-lock" not in opts:
        locked_for = int(os.environ.get(f"STUB_RESTIC_LOCKED_{key}", "0"))
        locks = os.path.join(repo, "locks")
        if (locked_for and count(repo, f"locked-{sub}") <= locked_for) or (os.path.isdir(locks) and os.listdir(locks)):
            die(11, "unable to create lock in backend: repository is already locked by PID 4242")
    if sub == "cat":
        print('{"version": 2, "id": "stub"}')
        return 0
    if sub == "snapshots":
        snaps = snapshots(repo)
        for tag in opts.get("--tag", []):
            snaps = [s for s in snaps if tag in s["tags"]]
        print(json.dumps(snaps))
        return 0
    if sub == "backup":
        sid = hashlib.sha256(f"{time.time_ns()}{os.getpid()}".encode()).hexdigest()
        data = os.path.join(repo, "data", sid)
        os.makedirs(data)
        files = size = 0
        if "--stdin-from-command" in opts or "--stdin" in opts:
            name = opts["--stdin-filename"][0]
            if "--stdin" in opts:
                content = sys.stdin.buffer.read()
            else:
                proc = subprocess.run(after, stdout=subprocess.PIPE, check=False)
                if proc.returncode != 0:
                    shutil.rmtree(data)
                    die(1, f"{after[0]} exited with {proc.returncode}: no snapshot")
                content = proc.stdout
            with open(os.path.join(data, name), "wb") as handle:
                handle.write(content)
            files, size, paths = 1, len(content), ["/" + name]
        else:
            paths = after or pos
            excludes = opts.get("--exclude", [])
            for source in paths:
                for path in walk(source):
                    rel = os.path.relpath(path, source)
                    if any(__import__("fnmatch").fnmatch(os.path.basename(rel), e) or path.startswith(e) for e in excludes):
                        continue
                    dest = os.path.join(data, source.lstrip("/"), rel)
                    os.makedirs(os.path.dirname(dest), exist_ok=True)
                    shutil.copy2(path, dest)
                    files += 1
                    size += os.path.getsize(path)
        snap = {"id": sid, "short_id": sid[:8], "time": time.strftime("%Y-%m-%dT%H:%M:%S.") + f"{time.time_ns() % 10**9:09d}Z",
                "paths": paths, "tags": opts.get("--tag", []), "hostname": (opts.get("--host") or ["stub"])[0]}
        with open(os.path.join(repo, "snapshots", sid + ".json"), "w") as handle:
            json.dump(snap, handle)
        out({"message_type": "summary", "snapshot_id": sid, "total_files_processed": files,
             "total_bytes_processed": size, "data_added": size})
        return 0
    if sub == "restore":
        ref, dummy, inner = pos[0].partition(":")
        snap = find(repo, ref)
        source = os.path.join(repo, "data", snap["id"], inner.lstrip("/"))
        target = opts["--target"][0]
        os.makedirs(target, exist_ok=True)
        for path in walk(source):
            dest = os.path.join(target, os.path.relpath(path, source))
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            shutil.copy2(path, dest)
        corrupt = os.environ.get("STUB_RESTIC_RESTORE_CORRUPT")
        if corrupt:
            with open(os.path.join(target, corrupt), "ab") as handle:
                handle.write(b"x")
        return int(os.environ.get("STUB_RESTIC_RESTORE_EXIT", "0"))
    if sub == "dump":
        snap = find(repo, pos[0])
        with open(os.path.join(repo, "data", snap["id"], pos[1].lstrip("/")), "rb") as handle:
            content = handle.read()
        if os.environ.get("STUB_RESTIC_DUMP_TRUNCATE"):
            sys.stdout.buffer.write(content[:int(os.environ["STUB_RESTIC_DUMP_TRUNCATE"])])
            sys.exit(int(os.environ.get("STUB_RESTIC_DUMP_EXIT", "1")))
        sys.stdout.buffer.write(content)
        return 0
    if sub == "ls":
        snap = find(repo, pos[0])
        out({"struct_type": "snapshot", "id": snap["id"]})
        data = os.path.join(repo, "data", snap["id"])
        for path in walk(data):
            rel = "/" + os.path.relpath(path, data)
            out({"struct_type": "node", "type": "file", "path": rel, "size": os.path.getsize(path)})
        return 0
    if sub == "forget":
        for ref in pos:
            snap = find(repo, ref)
            os.unlink(os.path.join(repo, "snapshots", snap["id"] + ".json"))
        return 0
    if sub in ("check", "prune"):
        return 0
    die(1, f"the stub does not know {sub}")


if __name__ == "__main__":
    sys.exit(main())
