# Copyright: (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A test bed for the backup runner without Docker: stub `restic` and `docker` on PATH.

`bed` builds, under tmp_path, what the role builds on a host: config.json,
one env file and password file per repository, state, metrics and log
directories, and the data of a few jobs (a directory, a volume used by a
container, SQLite, PostgreSQL and MySQL "containers" served by fake tools).

`bed.run(*argv)` runs the runner in-process (armstack_backup.cli.main). With
ARMSTACK_BACKUP_RUNNER=/path/to/an/armstack-backup it runs that program instead
(e.g. the runner before the split, to see which tests fail against it).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import sqlite3
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
FILES = os.path.join(ROOT, "roles", "backup", "files")
if FILES not in sys.path:
    sys.path.insert(0, FILES)

from armstack_backup import cli  # noqa: E402


def _install_stub(source, command):
    """Make `command` an executable that runs the stub `source` with this interpreter.

    The stubs are plain modules (no shebang, not executable): the command names
    the Python that runs the tests, whichever venv that is, and -S keeps each of
    the many stub runs fast.
    """
    with open(command, "w", encoding="utf-8") as handle:
        # exec, not runpy.run_path: argv[0] stays the command's name, which the stubs log.
        handle.write("#!%s -S\n__file__ = %r\nwith open(__file__, encoding='utf-8') as f:\n"
                     "    exec(compile(f.read(), __file__, 'exec'))\n" % (sys.executable, source))
    os.chmod(command, 0o755)


PASSWORD = "stub-repository-password-0123456789"
OFFSITE_PASSWORD = "stub-offsite-password-9876543210"
S3_KEY_ID = "STUBKEYID0123456789AB"
S3_SECRET = "stub-s3-secret-key-abcdefghijklmnopqrstuvwxyz"
MYSQL_PASSWORD = 'my"sql\\root pass#1'
SECRETS = (PASSWORD, OFFSITE_PASSWORD, S3_KEY_ID, S3_SECRET, MYSQL_PASSWORD)


class Result:
    def __init__(self, rc, out, err):
        self.rc, self.out, self.err = rc, out, err

    @property
    def all(self):
        return self.out + self.err

    def __repr__(self):
        return f"Result(rc={self.rc}, out={self.out!r}, err={self.err!r})"


class Bed:
    def __init__(self, root, monkeypatch):
        self.root = str(root)
        self.mp = monkeypatch
        monkeypatch.chdir(self.root)  # nothing a test runs may write into the checkout
        p = self.path
        for d in ("bin", "etc/repositories", "state", "metrics", "log", "drill", "cache", "repos",
                  "src/appdata/docs", "volumes/appvol/_data", "sq", "pg", "my"):
            os.makedirs(p(d), exist_ok=True)
        os.makedirs(p("engines"))
        for name in ("restic", "docker"):
            _install_stub(os.path.join(HERE, "stubs", name + ".py"), p("bin", name))
        for name in ("mysql", "mysqldump", "pg_dump", "pg_restore", "sqlite3", "systemctl"):
            _install_stub(os.path.join(HERE, "stubs", "engines", name + ".py"), p("engines", name))
        self.log_path = p("stub.log")
        self.state_path = p("docker.json")
        self.docker = {"containers": {n: {"running": True} for n in ("app", "sq", "pg", "my", "worker")},
                       "volumes": {"appvol": p("volumes/appvol/_data")}, "users": {"appvol": ["app"]}}
        self.save_docker()
        engines = p("engines")
        monkeypatch.setenv("PATH", os.pathsep.join([p("bin"), engines, os.environ["PATH"]]))
        monkeypatch.setenv("STUB_EXEC_PATH", engines)
        monkeypatch.setenv("STUB_LOG", self.log_path)
        monkeypatch.setenv("STUB_DOCKER_STATE", self.state_path)
        monkeypatch.setenv("STUB_PG_DB", p("pg", "db"))
        monkeypatch.setenv("STUB_MYSQL_DB", p("my", "db"))
        monkeypatch.setenv("STUB_MYSQL_PASSWORD", MYSQL_PASSWORD)
        monkeypatch.setenv("MYSQL_ROOT_PASSWORD", MYSQL_PASSWORD)  # the "container's" environment
        monkeypatch.setenv("ARMSTACK_BACKUP_CONFIG", p("etc", "config.json"))
        # The data of the jobs.
        for i in range(1, 6):
            self.write(f"src/appdata/docs/file-{i}.bin", os.urandom(100 * i))
        self.write("src/appdata/readme.txt", b"hello\n")
        self.write("volumes/appvol/_data/avatar.png", os.urandom(64))
        conn = sqlite3.connect(p("sq", "app.db"))
        conn.executescript("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);"
                           + "".join(f"INSERT INTO notes (body) VALUES ('note {i}');" for i in range(1, 51)))
        conn.commit()
        conn.close()
        self.write("pg/db", b"orders: 5000 rows\n")
        self.write("my/db", b"CREATE TABLE invoices ...; INSERT ... 2000 rows;\n")
        self.repositories = {
            "local": {"env": f"RESTIC_REPOSITORY={p('repos', 'local')}\n", "password": PASSWORD},
            "offsite": {"env": (f"RESTIC_REPOSITORY={p('repos', 'offsite')}\nAWS_ACCESS_KEY_ID={S3_KEY_ID}\n"
                                f"AWS_SECRET_ACCESS_KEY={S3_SECRET}\nAWS_DEFAULT_REGION=us-east-1\n"),
                        "password": OFFSITE_PASSWORD},
        }
        self.config = {
            "restic": "restic", "hostname": "testhost", "state_dir": p("state"), "cache_dir": p("cache"),
            "metrics_dir": p("metrics"), "log_file": p("log", "backup.log"), "retry_lock": "1s",
            "probe": {"connect_timeout": 2, "timeout": 20},
            "repositories": [], "jobs": [
                {"name": "appdata", "type": "directory", "path": p("src", "appdata"), "exclude": ["*.tmp"]},
                {"name": "appvol", "type": "volume", "volume": "appvol", "quiesce": ["worker"]},
                {"name": "sqlite", "type": "database", "engine": "sqlite", "container": "sq", "path": p("sq", "app.db"),
                 "repositories": ["local"]},
                {"name": "postgres", "type": "database", "engine": "postgres", "container": "pg", "database": "app",
                 "repositories": ["local"]},
                {"name": "mysql", "type": "database", "engine": "mysql", "container": "my", "database": "app",
                 "repositories": ["local"]},
            ],
            "forget": {"daily": 7, "weekly": 4, "monthly": 12},
            "check": {"read_data_subset": "5%"},
            "drill": {"dir": p("drill"), "jobs": [], "repository": ""},
        }
        self.save()

    # ---- files ----------------------------------------------------------------------
    def path(self, *parts):
        return os.path.join(self.root, *parts)

    def write(self, rel, data):
        path = self.path(rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(data)

    def save(self):
        repos = []
        for name, repo in self.repositories.items():
            env_file = self.path("etc", "repositories", f"{name}.env")
            pw_file = self.path("etc", "repositories", f"{name}.password")
            with open(pw_file, "w", encoding="utf-8") as handle:
                handle.write(repo["password"] + "\n")
            with open(env_file, "w", encoding="utf-8") as handle:
                handle.write(repo["env"] + f"RESTIC_PASSWORD_FILE={pw_file}\n")
            repos.append({"name": name, "type": "local", "env_file": env_file, "options": []})
        self.config["repositories"] = repos
        with open(self.path("etc", "config.json"), "w", encoding="utf-8") as handle:
            json.dump(self.config, handle)

    def save_docker(self):
        with open(self.state_path, "w", encoding="utf-8") as handle:
            json.dump(self.docker, handle)

    def running(self, name):
        with open(self.state_path, encoding="utf-8") as handle:
            return json.load(handle)["containers"][name]["running"]

    def job(self, name):
        return next(j for j in self.config["jobs"] if j["name"] == name)

    # ---- running ----------------------------------------------------------------------
    def run(self, *argv, stdin=""):
        program = os.environ.get("ARMSTACK_BACKUP_RUNNER")
        if program:
            proc = subprocess.run([program, *argv], input=stdin, capture_output=True, text=True, check=False)
            return Result(proc.returncode, proc.stdout, proc.stderr)
        out, err = io.StringIO(), io.StringIO()
        self.mp.setattr(sys, "stdin", io.StringIO(stdin))
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = cli.main(list(argv))
            except SystemExit as exc:
                rc = exc.code
        return Result(rc, out.getvalue(), err.getvalue())

    def init(self):
        result = self.run("init")
        assert result.rc == 0, result
        return result

    def calls(self):
        """Every stub run logged so far (restic: {"argv", "cmd", ...}; docker: {"docker": argv})."""
        if not os.path.exists(self.log_path):
            return []
        with open(self.log_path, encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]

    def restic_calls(self, cmd=None):
        return [c for c in self.calls() if "cmd" in c and (cmd is None or c["cmd"] == cmd)]

    def docker_calls(self):
        return [c["docker"] for c in self.calls() if "docker" in c]

    def metric(self, job, name, labels=None):
        with open(self.path("metrics", f"backup_{job}.prom"), encoding="utf-8") as handle:
            text = handle.read()
        want = {"job": job, **(labels or {})}
        for line in text.splitlines():
            match = re.match(r"^(\w+)\{([^}]*)\} (\S+)$", line)
            if match and match.group(1) == name:
                got = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2)))
                if all(got.get(k) == v for k, v in want.items()):
                    return float(match.group(3))
        raise AssertionError(f"{name}{want} not in backup_{job}.prom:\n{text}")

    def snapshots(self, repo="local", tag=None):
        directory = self.path("repos", repo, "snapshots")
        snaps = []
        for name in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
            with open(os.path.join(directory, name), encoding="utf-8") as handle:
                snap = json.load(handle)
            if tag is None or tag in snap["tags"]:
                snaps.append(snap)
        return sorted(snaps, key=lambda s: s["time"])


def tree(root):
    """{relative path: (bytes, mode)} of every file under root, and the root's (uid, gid, mode)."""
    files = {}
    for current, _dirs, names in os.walk(root):
        for name in names:
            path = os.path.join(current, name)
            with open(path, "rb") as handle:
                files[os.path.relpath(path, root)] = (handle.read(), os.stat(path).st_mode & 0o7777)
    st = os.stat(root)
    return files, (st.st_uid, st.st_gid, st.st_mode & 0o7777)


def leftovers(directory, prefix=".armstack-"):
    return [n for n in os.listdir(directory) if n.startswith(prefix)]


def sqlite_rows(path):
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT count(*), group_concat(body) FROM notes").fetchone()
    finally:
        conn.close()


@pytest.fixture
def bed(tmp_path, monkeypatch):
    return Bed(tmp_path, monkeypatch)


@pytest.fixture
def no_secret():
    def check(text):
        found = [s[:6] + "..." for s in SECRETS if s in text]
        assert not found, f"secret value(s) printed: {found}\n{text}"
    return check
