"""Behaviour of the backup role on a VM: real restic, a local repository and an
off-site one on a real S3 API server (moto), a real PostgreSQL 15 container.

The tests run in file order and build on each other: backups first, then damage
and restores, failures, a killed run, drills, retention (which forgets), and
last the default install method, which replaces the restic every job runs.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import shlex
import sys
import time

import armstack_verify as av
from armstack_verify import sh


RUNNER = "/usr/local/sbin/armstack-backup"
METRICS = "/var/lib/node_exporter/textfile"
CONFIG = "/etc/armstack/backup/config.json"
ROOT = os.environ.get("ARMSTACK_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "../../..")))
# The backup scenario's Redis image in the test bed's registry (as the VM pulls it).
REDIS_IMAGE = "armstack-registry:5000/armstack/redis:7"
TIMERS = ["armstack-backup", "armstack-backup-forget", "armstack-backup-check", "armstack-backup-drill"]
# The MariaDB fixture's root password (converge.yml), a secret for the argv test.
MYSQL_FIXTURE_PASSWORD = "armstack-test-only"
# Values the failure-path tests pass as extra vars: searched for like vault values.
MADE_UP = {
    "password": "made-up-wrong-password-7f3a9c21",
    "access_key_id": "MADEUPKEYID7F3A9C0QZ",
    "secret_access_key": "made-up-secret-key-9d8e7f6a5b4c3d2e1f",
    "bad_password": "made-up-bad-password-0b1c2d3e",
}
# Everything the failure paths printed (ansible-playbook at -vvv), searched for secrets at the end.
FAILURE_OUTPUTS = {}
# What the role owns on the host: nothing of it may change on bad input.
OWNED = "/etc/armstack/backup /etc/systemd/system/armstack-backup* /usr/local/sbin/armstack-backup /usr/local/lib/armstack-backup"


def tree_checksums(host, path):
    """{relative path: sha256} of every regular file, plus symlink targets."""
    out = sh(host, f"cd {shlex.quote(path)} && find . -type f -print0 | sort -z | xargs -0 -r sha256sum").stdout
    sums = {line[66:]: line[:64] for line in out.splitlines() if line}
    links = sh(host, f"cd {shlex.quote(path)} && find . -type l -printf '%p -> %l\\n' | sort").stdout
    return sums, links


def snapshots(host, job, repo="local"):
    return json.loads(sh(host, f"{RUNNER} snapshots {job} --repository {repo}").stdout)


def metric(host, job, name, labels=None):
    text = host.file(f"{METRICS}/backup_{job}.prom").content_string
    want = {"job": job, **(labels or {})}
    for line in text.splitlines():
        match = re.match(r"^(\w+)\{([^}]*)\} (\S+)$", line)
        if not match or match.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2)))
        if all(got.get(k) == v for k, v in want.items()):
            return float(match.group(3))
    raise AssertionError(f"{name}{want} not in backup_{job}.prom:\n{text}")


def psql(host, sql):
    return sh(host, f"docker exec pg psql --dbname=app --tuples-only --no-align --set=ON_ERROR_STOP=1 --command {shlex.quote(sql)}").stdout.strip()


def playbook(name, *extra):
    """Run one of the collection's playbooks against this scenario's instance, as an operator would."""
    return run_play(os.path.join(ROOT, "playbooks", name), *extra)


def converge(extra_vars):
    """Run the scenario's converge again, with `extra_vars` on top."""
    return run_play(os.path.join(ROOT, "molecule", "backup", "converge.yml"), "-e", json.dumps(extra_vars))


def run_play(path, *extra, timeout=900):
    """The shared helper's run, with stderr apart and molecule's own display; its output's tail printed."""
    proc = av.playbook(path, *extra, timeout=timeout, merge_stderr=False, operator_view=False)
    print(proc.stdout[-3000:])
    return proc


def role_run(label, extra_vars, *extra, timeout=300):
    """The backup role alone (converge.yml --tags backup) at -vvv with extra vars: the process
    (stdout and stderr together in .out, kept for the leak search) and the seconds it took
    (printed, never asserted)."""
    start = time.monotonic()
    proc = run_play(os.path.join(ROOT, "molecule", "backup", "converge.yml"), "-vvv", "--tags", "backup",
                    "-e", json.dumps(extra_vars), *extra, timeout=timeout)
    seconds = round(time.monotonic() - start, 1)
    proc.out = FAILURE_OUTPUTS[label] = proc.stdout + proc.stderr
    print(f"TIMING {label}: {seconds} s, rc {proc.returncode}")
    return proc, seconds


def owned_listing(host):
    """path, mode, owner and sha256 of every file the role owns on the host."""
    return sh(host, f"find {OWNED} -type f -printf '%p %m %u ' -exec sha256sum {{}} \\; 2>/dev/null | sort").stdout


@contextlib.contextmanager
def restic_replaced(host, dump="", restore=""):
    """The configured restic replaced by a wrapper for one test: `dump` / `restore` are sh
    snippets run for that subcommand (the real binary is "$REAL"); anything else runs restic."""
    real = json.loads(host.file(CONFIG).content_string)["restic"]
    wrapper = f"""#!/bin/sh
REAL={real}.real
sub=; prev=
for a in "$@"; do
  if [ "$prev" = -o ]; then prev=; continue; fi
  case "$a" in -o) prev=-o ;; -*) ;; *) sub=$a; break ;; esac
done
target=$(printf '%s\n' "$@" | sed -n 's/^--target=//p')
[ -n "$target" ] || target=$(printf '%s\n' "$@" | sed -n '/^--target$/{{n;p}}')
case "$sub" in
  dump) {dump or 'exec "$REAL" "$@"'} ;;
  restore) {restore or 'exec "$REAL" "$@"'} ;;
esac
exec "$REAL" "$@"
"""
    sh(host, f"cp -p {real} {real}.real && cat > {real}.wrapper <<'ARMSTACK_EOF'\n{wrapper}ARMSTACK_EOF\n"
             f"chmod 0755 {real}.wrapper && mv -f {real}.wrapper {real}")
    try:
        yield
    finally:
        sh(host, f"mv -f {real}.real {real}")


def test_restic_is_recent_enough(host):
    out = sh(host, "restic version").stdout
    version = tuple(int(x) for x in re.search(r"restic (\d+)\.(\d+)\.(\d+)", out).groups())
    assert version >= (0, 17, 0), out


def test_repositories_exist_local_and_on_s3(host):
    for repo in ("local", "offsite"):
        sh(host, f"{RUNNER} restic {repo} cat config")
    assert host.file("/var/backups/restic/config").exists
    env = host.file("/etc/armstack/backup/repositories/offsite.env")
    assert env.mode == 0o600 and env.user == "root"
    assert "s3:http://armstack-s3-backup:5000/armstack-backups/" in env.content_string
    # The configuration readable by the runner carries no secret.
    assert "armstack-testbed-secret-key" not in host.file(CONFIG).content_string


def test_timers_are_enabled_and_scheduled(host):
    for name in TIMERS:
        timer = host.service(f"{name}.timer")
        assert timer.is_enabled, name
        assert timer.is_running, name
        props = sh(host, f"systemctl show {name}.timer -p Persistent -p RandomizedDelayUSec").stdout
        assert "Persistent=yes" in props
        assert "RandomizedDelayUSec=30min" in props
        onfailure = sh(host, f"systemctl show {name}.service -p OnFailure --value").stdout.strip()
        assert onfailure == f"armstack-backup-failure@{name}.service.service"


def test_every_service_runs_successfully(host):
    for name in TIMERS:
        sh(host, f"systemctl start {name}.service")
        result = sh(host, f"systemctl show {name}.service -p Result --value").stdout.strip()
        assert result == "success", name
    for job in ("appdata", "appvol", "postgres"):
        for repo in ("local", "offsite"):
            assert snapshots(host, job, repo), f"no snapshot of {job} in {repo}"
        assert metric(host, job, "armstack_backup_last_exit_code") == 0
        assert metric(host, job, "armstack_backup_last_success_timestamp_seconds") > 0
        assert metric(host, job, "armstack_backup_snapshots", {"repository": "offsite"}) >= 1
    assert snapshots(host, "bigdata", "local") and not snapshots(host, "bigdata", "offsite")
    assert metric(host, "check", "armstack_backup_last_exit_code") == 0
    # Metrics files are replaced atomically: no temporary file is left behind.
    leftovers = sh(host, f"find {METRICS} -name '.tmp-*'").stdout.strip()
    assert not leftovers


def test_directory_and_volume_round_trip_through_restore_playbook(host):
    volume = sh(host, "docker volume inspect -f '{{.Mountpoint}}' appvol").stdout.strip()
    before = {p: tree_checksums(host, p) for p in ("/srv/appdata", volume)}
    assert "./docs/ignored.tmp" in before["/srv/appdata"][0]
    proc = playbook("backup.yml", "-e", '{"backup_run_jobs": ["appdata", "appvol"]}')
    assert proc.returncode == 0, proc.stderr
    # Damage: change, delete and add files in both places.
    sh(host, "echo changed >> /srv/appdata/docs/file-3.bin && rm -rf /srv/appdata/docs/nested /srv/appdata/empty-file"
             " && echo new > /srv/appdata/added-after.txt && rm /srv/appdata/link-to-note")
    sh(host, "docker exec app sh -c 'rm /data/avatars/1.png && echo x > /data/avatars/2.png && echo y > /data/new.png'")
    for job in ("appdata", "appvol"):
        proc = playbook("restore.yml", "-e", f"backup_restore_job={job}", "-e", f"backup_restore_confirm={job}")
        assert proc.returncode == 0, proc.stdout + proc.stderr
    after = {p: tree_checksums(host, p) for p in ("/srv/appdata", volume)}
    # An in-place restore makes the directory identical to the snapshot: the
    # excluded file was never backed up, so it is gone too (README says so).
    expected_dir = dict(before["/srv/appdata"][0])
    expected_dir.pop("./docs/ignored.tmp")
    assert after["/srv/appdata"][0] == expected_dir
    assert after["/srv/appdata"][1] == before["/srv/appdata"][1]
    assert after[volume] == before[volume]
    # The container that uses the volume was stopped for the restore and runs again.
    assert sh(host, "docker inspect -f '{{.State.Running}}' app").stdout.strip() == "true"
    assert host.file("/srv/appdata/docs/file-1.bin").mode == 0o600


def test_restore_a_named_snapshot_to_a_scratch_path(host):
    snaps = snapshots(host, "appdata", "offsite")
    oldest = sorted(snaps, key=lambda s: s["time"])[0]
    proc = playbook("restore.yml", "-e", "backup_restore_job=appdata", "-e", f"backup_restore_snapshot={oldest['short_id']}",
                    "-e", "backup_restore_repository=offsite", "-e", "backup_restore_target=/var/tmp/scratch-appdata")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    restored, _links = tree_checksums(host, "/var/tmp/scratch-appdata")
    current, _links = tree_checksums(host, "/srv/appdata")
    current.pop("./docs/ignored.tmp", None)
    assert restored == current
    sh(host, "rm -rf /var/tmp/scratch-appdata")


def round_trip(host, job, query, damage):
    """Back up `job`, damage its data, restore it in place with restore.yml: `query()` answers as before."""
    before = query()
    sh(host, f"{RUNNER} backup {job}")
    damage()
    assert query() != before
    proc = playbook("restore.yml", "-e", f"backup_restore_job={job}", "-e", f"backup_restore_confirm={job}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert query() == before
    return before


def test_postgres_dump_round_trips(host):
    before = round_trip(
        host, "postgres",
        lambda: psql(host, "SELECT count(*), sum(total), md5(string_agg(customer, ',' ORDER BY id)) FROM orders"),
        lambda: psql(host, "DELETE FROM orders WHERE id % 3 = 0; UPDATE orders SET total = 0 WHERE id < 100;"
                           " CREATE TABLE junk (x int)"))
    assert before.startswith("5000|")


def mysql(host, sql):
    return sh(host, "docker exec mysql sh -c 'exec mysql --user=root --password=\"$MYSQL_ROOT_PASSWORD\" --batch"
                    f" --skip-column-names app -e \"$1\"' sh {shlex.quote(sql)}").stdout.strip()


def test_mysql_dump_round_trips(host):
    before = round_trip(
        host, "mysql",
        lambda: mysql(host, "SET SESSION group_concat_max_len = 16777216; SELECT COUNT(*), SUM(total),"
                            " MD5(GROUP_CONCAT(customer, note ORDER BY id)) FROM invoices"),
        lambda: mysql(host, "DELETE FROM invoices WHERE id % 3 = 0; UPDATE invoices SET note = 'lost' WHERE id < 100"))
    assert before.startswith("2000\t")


ARGV_LOGGER = """#!/bin/sh
# Test observer: the argv of every run, NUL-separated, one record per line; then the real binary.
{ printf '%s\\0' "$0" "$@"; printf '\\n'; } >> /tmp/armstack-argv.log
exec {real} "$@"
"""


@contextlib.contextmanager
def argv_observed(host, container, binary):
    """`binary` in `container` replaced by a wrapper that logs its argv: yields a reader of the log."""
    real = sh(host, f"docker exec {container} sh -c 'command -v {binary}'").stdout.strip()
    wrapper = ARGV_LOGGER.replace("{real}", f"{real}.armstack-real")
    sh(host, f"docker exec --user 0 {container} sh -c 'rm -f /tmp/armstack-argv.log; cp -p {real} {real}.armstack-real'")
    sh(host, f"docker exec -i --user 0 {container} sh -c 'cat > {real}.new && chmod 0755 {real}.new && mv -f {real}.new {real}'"
             f" <<'ARMSTACK_EOF'\n{wrapper}ARMSTACK_EOF")

    def read():
        out = sh(host, f"docker exec {container} sh -c 'cat /tmp/armstack-argv.log 2>/dev/null || true'").stdout
        return [line.split("\0")[:-1] for line in out.splitlines() if line]
    try:
        yield read
    finally:
        sh(host, f"docker exec --user 0 {container} sh -c 'mv -f {real}.armstack-real {real}; rm -f /tmp/armstack-argv.log'")


def test_no_password_is_on_any_command_line(host):
    """mysqldump and mysql get root's password in an option file on a file descriptor, not in argv;
    pg_dump, pg_restore, redis-cli and restic get none either. Observed deterministically: each
    binary is replaced by a wrapper that records its argv, then a real backup and restore run."""
    needles = av.vault_values(MYSQL_FIXTURE_PASSWORD)
    observed = {}
    restic_argv = "/tmp/armstack-restic-argv.log"
    with contextlib.ExitStack() as stack:
        readers = {f"{c}:{b}": stack.enter_context(argv_observed(host, c, b))
                   for c, b in (("mysql", "mysqldump"), ("mysql", "mysql"), ("pg", "pg_dump"), ("pg", "pg_restore"),
                                ("redis", "redis-cli"))}
        stack.enter_context(restic_replaced(
            host, dump=f'printf "%s\\0" "$@" >> {restic_argv}; echo >> {restic_argv}; exec "$REAL" "$@"',
            restore=f'printf "%s\\0" "$@" >> {restic_argv}; echo >> {restic_argv}; exec "$REAL" "$@"'))
        sh(host, f"rm -f {restic_argv}")
        sh(host, f"{RUNNER} backup mysql postgres redis")
        for job in ("mysql", "postgres"):
            sh(host, f"{RUNNER} restore {job} --confirm {job}")
        for name, read in readers.items():
            observed[name] = read()
    observed["restic dump/restore"] = [line.split("\0")[:-1] for line in
                                       sh(host, f"cat {restic_argv}").stdout.splitlines() if line]
    for name, runs in observed.items():
        print(f"ARGV {name}: {len(runs)} run(s) recorded")
        assert runs, f"no run of {name} was observed"
        text = "\n".join(" ".join(argv) for argv in runs)
        av.assert_no_leak(f"argv of {name}", text, needles)
        if name.startswith("mysql:"):
            options = [a for argv in runs for a in argv[1:] if a.startswith("--password") or re.match(r"^-p.", a)]
            assert not options, f"{name} got a password option: {options}"


def test_mysql_option_file_survives_any_password(host):
    """The option file's escaping, checked by MariaDB's own parser: a user with a password full of
    quotes, backslashes, '#' and spaces logs in through the same script the dump uses."""
    sys.path.insert(0, os.path.join(ROOT, "roles", "backup", "files"))
    from armstack_backup.engines import MYSQL_OPTION_FILE  # noqa: PLC0415 - the runner's own script
    weird = 'we"ird\\\\pa ss#wo\'rd$x'
    sql = ("CREATE USER IF NOT EXISTS 'armstack_weird'@'localhost' IDENTIFIED BY " + "'" +
           weird.replace("\\", "\\\\").replace("'", "\\'") + "'")
    mysql(host, sql)
    try:
        script = MYSQL_OPTION_FILE + 'exec mysql --defaults-extra-file=/dev/fd/3 --user=armstack_weird --batch -e "SELECT CURRENT_USER()"'
        out = sh(host, f"docker exec -e MYSQL_ROOT_PASSWORD={shlex.quote(weird)} mysql sh -c {shlex.quote(script)}").stdout
        assert "armstack_weird@localhost" in out
    finally:
        mysql(host, "DROP USER IF EXISTS 'armstack_weird'@'localhost'")


def sqlite(host, sql):
    return sh(host, f"docker exec sq sqlite3 /data/app.db {shlex.quote(sql)}").stdout.strip()


def test_sqlite_dump_round_trips(host):
    before = round_trip(
        host, "sqlite",
        lambda: sqlite(host, "SELECT count(*), sum(id * id), sum(length(body)) FROM notes"),
        lambda: sqlite(host, "DELETE FROM notes WHERE id % 2 = 0; UPDATE notes SET body = 'lost'; CREATE TABLE junk (x int)"))
    assert before.startswith("500|")
    assert sqlite(host, "SELECT count(*) FROM sqlite_master WHERE name = 'junk'") == "0"
    assert sqlite(host, "PRAGMA integrity_check") == "ok"
    # The restore loads into a new file renamed over the old one: nothing left beside it.
    assert not host.file("/var/lib/docker/volumes/sqdata/_data/app.db.restoring").exists


def test_redis_dump_round_trips_through_a_new_server(host):
    """Redis has no in-place restore: the .rdb goes to a target and a new server loads it."""
    def redis(container, *args):
        return sh(host, " ".join(["docker", "exec", container, "redis-cli", *map(shlex.quote, args)])).stdout.strip()

    redis("redis", "SET", "marker", "before-backup")
    keys = int(redis("redis", "DBSIZE"))
    assert keys >= 1003
    sh(host, f"{RUNNER} backup redis")
    redis("redis", "FLUSHALL")
    # In place is refused with the reason, before anything is touched.
    refused = sh(host, f"{RUNNER} restore redis", ok=False)
    assert refused.rc != 0 and "restore to a --target" in refused.stderr
    target = "/var/tmp/restore-redis"
    sh(host, f"rm -rf {target}")
    proc = playbook("restore.yml", "-e", "backup_restore_job=redis", "-e", f"backup_restore_target={target}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sh(host, f"docker run --rm --user 0 -v {target}:/restore {REDIS_IMAGE} redis-check-rdb /restore/redis.rdb")
    sh(host, "docker rm -f redis-restored >/dev/null 2>&1 || true")
    sh(host, f"docker run -d --name redis-restored --user 0 -v {target}:/data {REDIS_IMAGE}"
             " redis-server --dir /data --dbfilename redis.rdb --save ''")
    try:
        sh(host, "for i in $(seq 1 30); do docker exec redis-restored redis-cli ping | grep -q PONG && exit 0; sleep 1; done; exit 1")
        assert int(redis("redis-restored", "DBSIZE")) == keys
        assert redis("redis-restored", "GET", "marker") == "before-backup"
        assert redis("redis-restored", "GET", "key:777") == "value-777"
        assert redis("redis-restored", "HGET", "user:1", "plan") == "pro"
        assert redis("redis-restored", "LRANGE", "queue", "0", "-1").split() == ["a", "b", "c"]
    finally:
        sh(host, f"docker rm -f redis-restored >/dev/null; rm -rf {target}")


SQLITE_DB = "/var/lib/docker/volumes/sqdata/_data/app.db"


def sqlite_state(host):
    return sh(host, f"sha256sum {SQLITE_DB}").stdout.split()[0], sqlite(host, "SELECT count(*), sum(length(body)) FROM notes")


def test_sqlite_restore_cut_short_leaves_the_live_database(host):
    """Reproduction of the defect: the dump stream of a restore ends early. Before, the SQLite
    load read the partial stream, exited 0 with the transaction rolled back and renamed the empty
    new file over the live database. Now the live database is left exactly as it was, whether
    restic says so (exit 1) or not (exit 0 with a short stream: size and checksum catch it)."""
    sh(host, f"{RUNNER} backup sqlite")
    before = sqlite_state(host)
    assert before[1].startswith("500|")
    for code in (1, 0):
        with restic_replaced(host, dump=f'"$REAL" "$@" | head -n 3; exit {code}'):
            result = sh(host, f"{RUNNER} restore sqlite --confirm sqlite", ok=False)
        assert result.rc != 0, f"a restore from a cut-off stream (restic exit {code}) succeeded"
        assert "The live database of job sqlite is unchanged" in result.stderr, result.stderr
        assert sqlite_state(host) == before, f"the live database changed (restic exit {code})"
        assert not host.file(SQLITE_DB + ".restoring").exists
    assert sqlite(host, "PRAGMA integrity_check") == "ok"


def test_failed_file_restores_leave_the_live_data_as_it_was(host):
    """A restore that fails midway (restic exits 1 after writing) or restores a file that does not
    match the checksums recorded at backup time: the live directory and volume stay byte for
    byte as they were, their containers run again, nothing is left beside them."""
    volume = sh(host, "docker volume inspect -f '{{.Mountpoint}}' appvol").stdout.strip()
    sh(host, f"{RUNNER} backup appdata appvol")
    backed_up = {p: tree_checksums(host, p) for p in ("/srv/appdata", volume)}
    sh(host, "echo damaged >> /srv/appdata/docs/file-5.bin && echo new > /srv/appdata/after-backup.txt")
    sh(host, "docker exec app sh -c 'echo damaged >> /data/avatars/3.png'")
    live = {p: tree_checksums(host, p) for p in ("/srv/appdata", volume)}
    failures = {
        "restic exits 1 after restoring": '"$REAL" "$@"; exit 1',
        "a restored file differs": '"$REAL" "$@" || exit $?; f=$(find "$target" -type f -name "file-5.bin" -o -type f'
                                   ' -name "3.png" | head -n 1); echo corrupt >> "$f"; exit 0',
    }
    for label, snippet in failures.items():
        for job in ("appdata", "appvol"):
            with restic_replaced(host, restore=snippet):
                result = sh(host, f"{RUNNER} restore {job} --confirm {job}", ok=False)
            assert result.rc != 0, f"{job}: the restore succeeded although {label}"
            assert f"The live data of job {job} is unchanged" in result.stderr, result.stderr
            assert {p: tree_checksums(host, p) for p in ("/srv/appdata", volume)} == live, f"{job}: live data changed ({label})"
    assert sh(host, "docker inspect -f '{{.State.Running}}' app").stdout.strip() == "true"
    leftovers = sh(host, f"ls -a /srv {os.path.dirname(volume)} | grep armstack || true").stdout.strip()
    assert not leftovers, leftovers
    # Without the failures the same restores succeed (and undo the damage for the tests after this one).
    for job in ("appdata", "appvol"):
        sh(host, f"{RUNNER} restore {job} --confirm {job}")
    assert {p: tree_checksums(host, p) for p in ("/srv/appdata", volume)} == backed_up


def test_in_place_restore_needs_confirmation_and_keeps_a_safety_snapshot(host):
    """In place needs -e backup_restore_confirm=<job> (the runner --confirm <job>); it keeps the
    live root's owner and mode, and a safety snapshot of what was there that is never the job's
    latest and undoes the restore."""
    sh(host, f"{RUNNER} backup appdata")
    sh(host, "echo after-backup > /srv/appdata/after-backup.txt && chown 1234:2345 /srv/appdata && chmod 0750 /srv/appdata")
    live = tree_checksums(host, "/srv/appdata")
    refused = playbook("restore.yml", "-e", "backup_restore_job=appdata")
    assert refused.returncode != 0
    assert "backup_restore_confirm=appdata" in refused.stdout + refused.stderr
    wrong = sh(host, f"{RUNNER} restore appdata --confirm appvol", ok=False)
    assert wrong.rc == 2 and "--confirm appdata" in wrong.stderr
    assert tree_checksums(host, "/srv/appdata") == live
    latest_before = snapshots(host, "appdata")
    proc = playbook("restore.yml", "-e", "backup_restore_job=appdata", "-e", "backup_restore_confirm=appdata")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not host.file("/srv/appdata/after-backup.txt").exists
    root = host.file("/srv/appdata")
    assert (root.uid, root.gid, root.mode) == (1234, 2345, 0o750)
    # The safety snapshot: not a snapshot of the job (latest, drills), tagged as what it is.
    assert snapshots(host, "appdata") == latest_before
    safety = [s for s in json.loads(sh(host, f"{RUNNER} restic local snapshots --json --tag pre-restore:appdata").stdout)]
    assert safety and "armstack:pre-restore" in safety[-1]["tags"]
    # It undoes the restore.
    undo = playbook("restore.yml", "-e", "backup_restore_job=appdata", "-e", "backup_restore_confirm=appdata",
                    "-e", f"backup_restore_snapshot={safety[-1]['short_id']}")
    assert undo.returncode == 0, undo.stdout + undo.stderr
    assert tree_checksums(host, "/srv/appdata") == live
    sh(host, "rm /srv/appdata/after-backup.txt && chown 0:0 /srv/appdata && chmod 0755 /srv/appdata")


def test_failing_dump_fails_the_job_and_stores_nothing(host):
    config = json.loads(host.file(CONFIG).content_string)
    config["jobs"].append({"name": "brokendb", "type": "database", "engine": "postgres", "container": "pg",
                           "database": "does_not_exist"})
    sh(host, f"echo {shlex.quote(json.dumps(config))} > /root/broken-config.json")
    try:
        result = sh(host, f"ARMSTACK_BACKUP_CONFIG=/root/broken-config.json {RUNNER} backup brokendb", ok=False)
        assert result.rc != 0
        assert "does_not_exist" in result.stderr
        for repo in ("local", "offsite"):
            assert snapshots(host, "brokendb", repo) == []
        assert metric(host, "brokendb", "armstack_backup_last_exit_code") != 0
        assert metric(host, "brokendb", "armstack_backup_last_success_timestamp_seconds") == 0
        assert metric(host, "brokendb", "armstack_backup_last_run_timestamp_seconds") > 0
    finally:
        sh(host, f"rm -f /root/broken-config.json {METRICS}/backup_brokendb.prom")


def runner_with(host, config, *args):
    """The runner with another configuration (a copy of the real one, changed)."""
    sh(host, f"cat > /root/test-config.json <<'ARMSTACK_EOF'\n{json.dumps(config)}\nARMSTACK_EOF")
    return sh(host, f"ARMSTACK_BACKUP_CONFIG=/root/test-config.json {RUNNER} {' '.join(args)}", ok=False)


def test_backups_that_store_nothing_fail(host):
    """No job configured, a job without a repository, a snapshot of 0 files, a dump of 0 bytes:
    each run fails (non-zero exit, a log line saying why) and its metrics make the failed- and
    stale-backup alerts fire; no empty snapshot is left to become a job's latest."""
    real = json.loads(host.file(CONFIG).content_string)
    sh(host, "mkdir -p /srv/emptyjob && find /srv/emptyjob -mindepth 1 -delete")
    cases = {
        "no-jobs-configured": ({**real, "jobs": []}, "no backup job is configured"),
        "norepo": ({**real, "repositories": [],
                    "jobs": [{"name": "norepo", "type": "directory", "path": "/srv/appdata"}]}, "no repository"),
        "emptydir": ({**real, "jobs": [{"name": "emptydir", "type": "directory", "path": "/srv/emptyjob",
                                        "repositories": ["local"]}]}, "0 files"),
        "emptydump": ({**real, "jobs": [{"name": "emptydump", "type": "database", "engine": "command",
                                         "dump_command": ["true"], "repositories": ["local"]}]}, "0 bytes"),
    }
    try:
        for job, (config, reason) in cases.items():
            result = runner_with(host, config, "backup")
            assert result.rc != 0, f"{job}: the backup succeeded"
            assert reason in result.stderr, f"{job}: {result.stderr}"
            assert metric(host, job, "armstack_backup_last_exit_code") != 0
            assert metric(host, job, "armstack_backup_last_success_timestamp_seconds") == 0
            assert metric(host, job, "armstack_backup_last_run_timestamp_seconds") > time.time() - 600
        for job in ("emptydir", "emptydump"):
            assert snapshots(host, job) == [], f"{job}: an empty snapshot was kept"
        # Jobs configured again: the no-jobs report goes away at the next backup run.
        sh(host, f"{RUNNER} backup appdata")
        assert not host.file(f"{METRICS}/backup_no-jobs-configured.prom").exists
    finally:
        sh(host, f"rm -f /root/test-config.json {' '.join(f'{METRICS}/backup_{j}.prom' for j in cases)}")


def test_backup_killed_with_sigkill_recovers(host):
    """SIGKILL mid-run: OnFailure= records it, the next run succeeds, restic check passes."""
    sh(host, "for i in $(seq 1 8); do head -c 10485760 /dev/urandom > /srv/bigdata/blob-$i.bin; done")
    sh(host, "systemctl start --no-block armstack-backup.service")
    # Kill as soon as restic reads /srv/bigdata ("[r]" keeps pgrep's own shell from matching).
    killed = bool(av.wait_until(
        lambda: host.run("pgrep -f '[r]estic backup .*/srv/bigdata' && systemctl kill --signal=SIGKILL armstack-backup.service").rc == 0,
        None, interval=0.1, attempts=1200, fail=False)[0])
    assert killed, "the backup of /srv/bigdata was never seen running"
    av.wait_until(lambda: sh(host, "systemctl show armstack-backup.service -p ActiveState --value").stdout.strip() in ("failed", "inactive"),
                  None, interval=0.2, attempts=100, fail=False)
    assert sh(host, "systemctl show armstack-backup.service -p Result --value").stdout.strip() == "signal"
    av.wait_until(lambda: host.run("systemctl is-active armstack-backup-failure@armstack-backup.service.service").stdout.strip() != "activating",
                  None, interval=0.2, attempts=100, fail=False)
    assert metric(host, "bigdata", "armstack_backup_last_exit_code") == 128 + 9
    sh(host, "systemctl reset-failed armstack-backup.service")
    sh(host, "systemctl start armstack-backup.service")
    assert metric(host, "bigdata", "armstack_backup_last_exit_code") == 0
    # The killed restic left its lock behind: the runner's check removes stale locks only
    # (plain `restic unlock`, never --remove-all) and passes; then every byte is read.
    sh(host, f"{RUNNER} check")
    for repo in ("local", "offsite"):
        sh(host, f"{RUNNER} restic {repo} check --read-data")


def test_failure_handler_starts_containers_a_killed_run_left_stopped(host):
    """A run killed while `quiesce` had the app stopped: the OnFailure= handler starts it again."""
    sh(host, "docker stop app && echo '[\"app\"]' > /var/lib/armstack-backup/stopped-containers.json")
    assert sh(host, "docker inspect -f '{{.State.Running}}' app").stdout.strip() == "false"
    sh(host, f"{RUNNER} record-failure armstack-backup.service")
    assert sh(host, "docker inspect -f '{{.State.Running}}' app").stdout.strip() == "true"
    assert not host.file("/var/lib/armstack-backup/stopped-containers.json").exists


def test_restore_drill_compares_checksums(host):
    proc = playbook("restore_drill.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for job in ("appdata", "appvol", "postgres"):
        labels = {"job": job, "repository": "local"}
        assert metric(host, "restore_drill", "armstack_restore_drill_files_mismatched", labels) == 0
        assert metric(host, "restore_drill", "armstack_restore_drill_last_success_timestamp_seconds", labels) > time.time() - 3600
    # A checksum that does not match what was backed up is reported, not hidden.
    manifest = sh(host, "ls /var/lib/armstack-backup/manifests/appdata/local/*.sha256").stdout.strip()
    sh(host, f"cp {manifest} /root/manifest.bak && sed -i '1s/^./x/' {manifest}")
    try:
        result = sh(host, f"{RUNNER} drill appdata", ok=False)
        assert result.rc != 0
        assert metric(host, "restore_drill", "armstack_restore_drill_files_mismatched", {"job": "appdata"}) == 1
    finally:
        sh(host, f"cp /root/manifest.bak {manifest} && {RUNNER} drill appdata")
    assert not host.file("/var/tmp/armstack-restore-drill/appdata").exists


def _policy_keep(times, daily, weekly, monthly):
    """restic's forget policy: newest first, a snapshot is kept when it opens a new bucket
    of a rule with count left; the oldest snapshot is kept while any rule has count left."""
    rules = [(daily, lambda t: t.strftime("%Y-%m-%d")), (weekly, lambda t: "%d-%02d" % t.isocalendar()[:2]),
             (monthly, lambda t: t.strftime("%Y-%m"))]
    left = [n for n, _ in rules]
    last = [None] * len(rules)
    kept = []
    ordered = sorted(times, reverse=True)
    for index, t in enumerate(ordered):
        keep = False
        for i, (_n, bucket) in enumerate(rules):
            if left[i] > 0 and (bucket(t) != last[i] or index == len(ordered) - 1):
                last[i] = bucket(t)
                left[i] -= 1
                keep = True
        if keep:
            kept.append(t)
    return kept


def test_forget_keeps_what_the_policy_says(host):
    hostname = json.loads(host.file(CONFIG).content_string)["hostname"]
    sh(host, "mkdir -p /srv/retention && date > /srv/retention/stamp")
    stale = [s["id"] for s in snapshots(host, "retention")]
    if stale:  # a re-run of the verifier
        sh(host, f"{RUNNER} restic local forget {' '.join(stale)}")
    today = datetime.datetime.now().replace(hour=2, minute=30, second=0, microsecond=0)
    # Simulated history: a snapshot a day for 12 days, then one every 5 days back to ~4 months.
    days = [today - datetime.timedelta(days=d) for d in list(range(1, 13)) + list(range(15, 125, 5))]
    times = "\n".join(f"{d:%Y-%m-%d %H:%M:%S}" for d in days)
    sh(host, f"printf '{times}\\n' | xargs -P 3 -I TIME {RUNNER} restic local backup --quiet --host {hostname}"
             " --tag job:retention --time TIME /srv/retention")
    assert len(snapshots(host, "retention")) == len(days)
    sh(host, "systemctl start armstack-backup-forget.service")
    kept = sorted(datetime.datetime.strptime(s["time"][:19], "%Y-%m-%dT%H:%M:%S") for s in snapshots(host, "retention"))
    expected = sorted(_policy_keep(days, 7, 4, 12))
    assert kept == expected
    assert 7 < len(kept) < len(days)
    # Every real job kept its newest snapshot.
    for job in ("appdata", "appvol", "postgres"):
        assert snapshots(host, job, "offsite")
    sh(host, f"{RUNNER} restic local check")


def bad_repositories():
    """The scenario's repositories with made-up credentials (a test must not print the real ones)."""
    return [
        {"name": "local", "type": "local", "path": "/var/backups/restic"},
        {"name": "offsite", "type": "s3", "endpoint": "http://armstack-s3-backup:5000", "bucket": "armstack-backups",
         "prefix": "armstack-backup", "region": "us-east-1", "path_style": True,
         "access_key_id": MADE_UP["access_key_id"], "secret_access_key": MADE_UP["secret_access_key"]},
    ]


def test_bad_input_fails_before_anything_changes(host):
    """Every field that reaches a file, a unit or an argument list is checked at the role's entry:
    a wrong type or key (argument specs), a newline, a leading '-', the wrong form, a schedule
    systemd does not accept, an empty configuration. The error names each field; nothing the
    role owns on the host changes."""
    before = owned_listing(host)
    # 1. Argument specs: types, choices, unknown keys, required keys.
    proc, _ = role_run("argument specs", {
        "backup_repositories": [{"name": "local", "type": "ftp", "path": "/var/backups/restic"}],
        "backup_jobs": [{"name": "appdata", "type": "directory", "path": "/srv/appdata", "exclude": "*.tmp"},
                        {"type": "volume", "volume": "appvol"},
                        {"name": "x", "type": "database", "engine": "oracle", "container": "db", "colour": "red"}],
        "backup_keep_daily": "seven"})
    out = proc.out
    assert proc.returncode != 0
    for field in ("type", "exclude", "name", "engine", "colour", "backup_keep_daily"):
        assert field in out, f"the argument-spec error does not name {field}"
    # 2. Form: newlines (a RESTIC_PASSWORD_COMMAND injected into the env file), leading '-', patterns.
    repos = bad_repositories()
    repos[1].update(endpoint="http://armstack-s3-backup:5000\nRESTIC_PASSWORD_COMMAND=/bin/touch /tmp/pwned",
                    bucket="armstack-backups\nX=1", prefix="a\nb", region="us-east-1\nY=2",
                    secret_access_key=MADE_UP["secret_access_key"] + "\nZ=3")
    repos[0].update(path="var/backups/restic", password=MADE_UP["bad_password"] + "\nW=4")
    proc, _ = role_run("form", {
        "backup_repositories": repos,
        "backup_jobs": [
            {"name": "-appdata", "type": "directory", "path": "/srv/appdata"},
            {"name": "reldir", "type": "directory", "path": "srv/appdata"},
            {"name": "vol", "type": "volume", "volume": "-v"},
            {"name": "pg", "type": "database", "engine": "postgres", "container": "--privileged", "database": "-h",
             "user": "-U"},
            {"name": "my", "type": "database", "engine": "mysql", "container": "mysql", "database": "app\nx"},
            {"name": "sq", "type": "database", "engine": "sqlite", "container": "sq", "path": "-data/app.db"},
            {"name": "qu", "type": "directory", "path": "/srv/appdata", "quiesce": ["-app"], "exclude": ["a\nb"]},
            {"name": "forget", "type": "directory", "path": "/srv/appdata"},
        ],
        "backup_hostname": "-bad host",
        "backup_schedule": "not a calendar",
        "backup_check_schedule": "Sun *-*-* 05:30:00\nExecStart=/bin/sh",
        "backup_randomized_delay": "soon",
        "backup_retry_lock": "10 minutes",
        "backup_drill_dir": "/",
    })
    out = proc.out
    assert proc.returncode != 0
    for field in ("endpoint", "bucket", "prefix", "region", "secret_access_key", "password", "path", "-appdata",
                  "reldir", "volume", "container", "database", "user", "quiesce", "exclude", "forget",
                  "backup_hostname", "backup_schedule", "backup_check_schedule", "backup_randomized_delay",
                  "backup_retry_lock", "backup_drill_dir"):
        assert field in out, f"the error does not name {field}"
    assert not host.file("/tmp/pwned").exists
    # 3. An empty configuration.
    proc, _ = role_run("empty", {"backup_repositories": [], "backup_jobs": []})
    assert proc.returncode != 0
    assert "backup_repositories is empty" in proc.out and "backup_jobs is empty" in proc.out
    assert owned_listing(host) == before, "a run with bad input changed files the role owns"


def test_failure_paths_print_no_secret(host):
    """The class test for secrets: the failure paths of every task that touches a vault value, at
    -vvv (a wrong S3 endpoint, an unreachable one, a wrong repository password, a failing backup
    and restore, and the bad-input runs above). Every decrypted vault value and every made-up
    secret passed in is searched for in the whole output, the VM's journal, docker inspect,
    docker compose config and the files: 0 hits. A repository that cannot be used is found
    by a bounded probe before its files are rewritten: the working configuration stays."""
    before = owned_listing(host)
    # A refused connection (wrong port) and a wrong password, in one run: both repositories named.
    repos = bad_repositories()
    repos[0]["password"] = MADE_UP["password"]
    repos[1]["endpoint"] = "http://armstack-s3-backup:5999"
    proc, seconds = role_run("wrong endpoint and password", {"backup_repositories": repos})
    out = proc.out
    assert proc.returncode != 0
    assert "wrong repository password" in out and "repository local" in out
    assert "repository offsite" in out and "armstack-s3-backup:5999" in out
    # An endpoint that never answers: restic alone retries for over 10 minutes; the probe is bounded.
    repos = bad_repositories()
    repos[1]["endpoint"] = "http://192.0.2.1:5000"
    proc, seconds = role_run("unreachable endpoint", {"backup_repositories": repos}, timeout=300)
    assert proc.returncode != 0
    assert "192.0.2.1:5000" in proc.out and "did not accept a TCP connection" in proc.out
    print(f"TIMING the play against an unreachable endpoint failed after {seconds} s")
    assert owned_listing(host) == before, "a repository that failed its probe was written"
    # A failing restore and a failing backup, through the playbooks, at -vvv.
    for label, name, args in (
            ("failing restore", "restore.yml", ["-e", "backup_restore_job=appdata", "-e", "backup_restore_confirm=appdata",
                                                "-e", "backup_restore_snapshot=deadbeef"]),
            ("failing backup", "backup.yml", ["-e", '{"backup_run_jobs": ["no_such_job"]}'])):
        proc = playbook(name, "-vvv", *args)
        FAILURE_OUTPUTS[label] = proc.stdout + proc.stderr
        assert proc.returncode != 0, label
    needles = av.vault_values(*MADE_UP.values())
    assert len(needles) >= 3 + len(MADE_UP), needles
    for label, text in FAILURE_OUTPUTS.items():
        av.assert_no_leak(f"ansible-playbook -vvv ({label})", text, needles)
    av.assert_host_has_no_leak(needles, project_dirs=("/opt", "/etc/armstack/backup/config.json", "/var/lib/armstack-backup",
                                                      "/var/log/armstack"))
    # The scenario's own configuration still works.
    sh(host, f"{RUNNER} init")


def test_check_mode_on_the_converged_host_changes_nothing(host):
    """--check --diff of the backup role on the converged host: rc 0, changed=0 (the fresh-host
    check runs as molecule's `check` step before converge)."""
    proc = run_play(os.path.join(ROOT, "molecule", "backup", "converge.yml"), "--check", "--diff", "--tags", "backup")
    totals = av.recap(proc.stdout)
    print(f"CHECK MODE recap: {totals}")
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert totals.get("changed") == 0 and totals.get("failed") == 0, proc.stdout[-4000:]


def test_pinned_release_is_installed_only_with_its_checksum(host):
    """The default install method: the pinned release binary, sha256-verified.

    GitHub is out of reach here, so a mirror on the VM (what
    backup_restic_download_url is for in a closed network) serves the restic
    the VM has, bzip2-compressed as restic's releases are. A wrong checksum
    fails the play before anything is installed or reconfigured; the right one
    installs the binary, and every job then runs with it.
    """
    version = re.search(r"restic (\d+\.\d+\.\d+)", sh(host, "/usr/bin/restic version").stdout).group(1)
    arch = sh(host, "dpkg --print-architecture").stdout.strip()
    name = f"restic_{version}_linux_{arch}.bz2"
    sh(host, "mkdir -p /srv/restic-mirror && python3 -c 'import bz2, sys; "
             "open(sys.argv[2], \"wb\").write(bz2.compress(open(sys.argv[1], \"rb\").read()))' "
             f"/usr/bin/restic /srv/restic-mirror/{name}")
    checksum = sh(host, f"sha256sum /srv/restic-mirror/{name}").stdout.split()[0]
    sh(host, "setsid -f sh -c 'echo $$ > /run/armstack-restic-mirror.pid;"
             " exec python3 -m http.server 8765 --bind 127.0.0.1 --directory /srv/restic-mirror'"
             " >/dev/null 2>&1; for i in $(seq 1 30); do"
             f" curl -sfI http://127.0.0.1:8765/{name} >/dev/null && exit 0; sleep 1; done; exit 1")
    settings = {"backup_restic_install_method": "binary", "backup_restic_version": version,
                "backup_restic_download_url": f"http://127.0.0.1:8765/{name}"}
    try:
        config = host.file(CONFIG).content_string
        bad = converge({**settings, "backup_restic_checksums": {arch: "0" * 64}})
        assert bad.returncode != 0
        assert "did not match" in bad.stdout + bad.stderr
        assert not host.file("/usr/local/bin/restic").exists
        assert host.file(CONFIG).content_string == config

        good = converge({**settings, "backup_restic_checksums": {arch: checksum}})
        assert good.returncode == 0, (good.stdout + good.stderr)[-3000:]
        assert sh(host, "/usr/local/bin/restic version").stdout.startswith(f"restic {version} ")
        assert json.loads(host.file(CONFIG).content_string)["restic"] == "/usr/local/bin/restic"
        before = len(snapshots(host, "appdata"))
        sh(host, "systemctl start armstack-backup.service")
        assert len(snapshots(host, "appdata")) == before + 1
        assert metric(host, "appdata", "armstack_backup_last_exit_code") == 0
    finally:
        sh(host, "kill $(cat /run/armstack-restic-mirror.pid)")
