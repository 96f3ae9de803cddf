"""Behaviour of the backup role on a VM: real restic, a local repository and an
off-site one on a real S3 API server (moto), a real PostgreSQL 15 container.

The tests run in file order and build on each other: backups first, then damage
and restores, failures, a killed run, drills, retention (which forgets), and
last the default install method, which replaces the restic every job runs.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shlex
import subprocess
import time


RUNNER = "/usr/local/sbin/armstack-backup"
METRICS = "/var/lib/node_exporter/textfile"
CONFIG = "/etc/armstack/backup/config.json"
ROOT = os.environ.get("ARMSTACK_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "../../..")))
# The backup scenario's Redis image in the test bed's registry (as the VM pulls it).
REDIS_IMAGE = "armstack-registry:5000/armstack/redis:7"
TIMERS = ["armstack-backup", "armstack-backup-forget", "armstack-backup-check", "armstack-backup-drill"]


def sh(host, cmd, ok=True):
    result = host.run(cmd)
    if ok:
        assert result.rc == 0, f"{cmd!r} exited {result.rc}:\n{result.stdout}\n{result.stderr}"
    return result


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


def run_play(path, *extra):
    inventory = os.environ["MOLECULE_INVENTORY_FILE"]
    env = dict(os.environ)
    env.setdefault("ANSIBLE_VAULT_PASSWORD_FILE", os.path.join(ROOT, "inventories/local/vault-password"))
    env["ANSIBLE_COLLECTIONS_PATH"] = os.path.join(ROOT, ".cache/collections")
    argv = ["ansible-playbook", "-i", inventory, path, *extra]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    print(proc.stdout[-3000:])
    return proc


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
        proc = playbook("restore.yml", "-e", f"backup_restore_job={job}")
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
    proc = playbook("restore.yml", "-e", f"backup_restore_job={job}")
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


def test_backup_killed_with_sigkill_recovers(host):
    """SIGKILL mid-run: OnFailure= records it, the next run succeeds, restic check passes."""
    sh(host, "for i in $(seq 1 8); do head -c 10485760 /dev/urandom > /srv/bigdata/blob-$i.bin; done")
    sh(host, "systemctl start --no-block armstack-backup.service")
    # Kill as soon as restic reads /srv/bigdata ("[r]" keeps pgrep's own shell from matching).
    killed = False
    for _ in range(1200):
        if host.run("pgrep -f '[r]estic backup .*/srv/bigdata' && systemctl kill --signal=SIGKILL armstack-backup.service").rc == 0:
            killed = True
            break
        time.sleep(0.1)
    assert killed, "the backup of /srv/bigdata was never seen running"
    for _ in range(100):
        state = sh(host, "systemctl show armstack-backup.service -p ActiveState --value").stdout.strip()
        if state in ("failed", "inactive"):
            break
        time.sleep(0.2)
    assert sh(host, "systemctl show armstack-backup.service -p Result --value").stdout.strip() == "signal"
    for _ in range(100):
        if host.run("systemctl is-active armstack-backup-failure@armstack-backup.service.service").stdout.strip() != "activating":
            break
        time.sleep(0.2)
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
