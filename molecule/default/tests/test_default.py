"""Full-stack verification: what playbooks/site.yml promises, checked on one VM.

The role scenarios test each concern in depth; this one tests that the
concerns work together as site.yml deploys them: the firewall and Docker, the
backend behind Caddy and Prometheus scraping it, the backup timers and their
metrics reaching Prometheus through node-exporter, and the operator's partial
runs (`--tags backend`, rollback.yml) keeping the backend's secret files.
"""

import json
import os
import subprocess
import time

import pytest
import testinfra.utils.ansible_runner
from armstack_verify import assert_host_has_no_leak, assert_no_leak, recap, vault_values, wait_until
from armstack_verify import playbook as run_playbook

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("all")

VM = "armstack-default"
ROOT = os.environ.get("ARMSTACK_ROOT") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
SECRET_MOUNTS = {"/run/secrets/oracle-wallet", "/run/secrets/oci/oci_api_key.pem",
                 "/run/secrets/firebase-service-account.json", "/run/secrets/backend.env"}
OUTSIDE_NETWORK = os.environ.get("ARMSTACK_OUTSIDE_NETWORK", "armstack-outside")


def _outside_ip():
    out = subprocess.run(
        ["docker", "inspect", "-f", "{{json .NetworkSettings.Networks}}", VM],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out)[OUTSIDE_NETWORK]["IPAddress"]


def _from_outside(*argv):
    """Run a command in a throwaway client container on the outside network."""
    image = os.environ.get("ARMSTACK_BASE_IMAGE")
    return subprocess.run(
        ["docker", "run", "--rm", "--network", OUTSIDE_NETWORK, image, *argv],
        capture_output=True, text=True, timeout=60, check=False,
    )


def test_ssh_accepts_keys_only(host):
    config = host.run("sshd -T").stdout.lower()
    assert "passwordauthentication no" in config
    assert "permitrootlogin no" in config


def test_docker_runs_with_the_hardened_daemon(host):
    info = json.loads(host.check_output("docker info --format '{{json .}}'"))
    assert info["LiveRestoreEnabled"] is True
    assert info["LoggingDriver"] == "local"
    assert host.run("docker compose version").rc == 0


def test_backend_answers_https_through_caddy(host):
    cmd = "curl -sk --resolve localhost:443:127.0.0.1 -o /dev/null -w '%{http_code}' https://localhost/health"
    assert wait_until(lambda: host.run(cmd).stdout == "200", 90, interval=2, fail=False)[0], host.run(cmd.replace("-o /dev/null", "")).stdout


def test_https_is_reachable_from_outside_but_a_published_debug_port_is_not(host):
    """Caddy's 443 is allow-listed; a container port published on 0.0.0.0 is not."""
    host.run("docker rm -f armstack-fullstack-probe")
    host.check_output(
        "docker run -d --name armstack-fullstack-probe -p 0.0.0.0:18080:8000 "
        "armstack-registry:5000/armstack/backend:1.0.0"
    )
    try:
        ip = _outside_ip()
        # The published port answers inside the VM ...
        assert wait_until(lambda: host.run("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:18080/health").stdout == "200",
                          90, interval=2, fail=False)[0]
        # ... but not from the outside network, while HTTPS does.
        blocked = _from_outside("curl", "-s", "-m", "5", "-o", "/dev/null", f"http://{ip}:18080/health")
        assert blocked.returncode != 0, "a port published on 0.0.0.0 was reachable from outside"
        allowed = _from_outside("curl", "-sk", "-m", "10", "-o", "/dev/null", "-w", "%{http_code}", f"https://{ip}/health",
                                "-H", "Host: localhost", "--resolve", f"localhost:443:{ip}")
        assert allowed.returncode == 0, allowed.stderr
    finally:
        host.run("docker rm -f armstack-fullstack-probe")


def test_secrets_are_root_owned_and_not_world_readable(host):
    secrets = host.file("/etc/armstack/secrets")
    assert secrets.is_directory
    assert secrets.user == "root"
    listing = host.check_output("find /etc/armstack/secrets -type f -perm /o+r")
    assert listing == "", f"world-readable secret files: {listing}"


def _targets(host):
    out = host.run("curl -s http://127.0.0.1:9090/api/v1/targets")
    if out.rc != 0 or not out.stdout:
        return {}
    return {t["labels"]["job"] + "/" + t["scrapeUrl"]: t["health"] for t in json.loads(out.stdout)["data"]["activeTargets"]}


def test_prometheus_scrapes_the_deployed_backend_and_caddy(host):
    def backend_and_caddy_up():
        targets = _targets(host)
        jobs = {k.split("/")[0] for k, v in targets.items() if v == "up"}
        return {"backend", "caddy"} <= jobs and targets
    targets = wait_until(backend_and_caddy_up, 120, interval=2, fail=False)[0]
    assert targets, f"Prometheus does not see the backend and Caddy up: {_targets(host)}"


def test_every_started_prometheus_target_is_up(host):
    targets = wait_until(lambda: (t := _targets(host)) and all(v == "up" for v in t.values()) and t, 120, interval=2, fail=False)[0]
    assert targets, f"targets not up: {_targets(host)}"


def test_backup_timers_are_scheduled(host):
    timers = host.check_output("systemctl list-timers --all --no-legend 'armstack-backup*'")
    assert "armstack-backup" in timers


def test_a_backup_run_reaches_prometheus_through_the_textfile_collector(host):
    host.check_output("systemctl start armstack-backup.service")
    query = "curl -s 'http://127.0.0.1:9090/api/v1/query?query=armstack_backup_last_exit_code'"

    def exit_codes():
        data = json.loads(host.run(query).stdout or "{}").get("data", {}).get("result", [])
        return {r["metric"].get("job"): r["value"][1] for r in data}
    codes = wait_until(exit_codes, 120, interval=2, fail=False)[0]
    assert codes and all(v == "0" for v in codes.values()), codes


def test_logrotate_configuration_is_valid(host):
    assert host.run("logrotate --debug /etc/logrotate.conf").rc == 0


@pytest.mark.parametrize("service", ["ssh", "docker", "fail2ban", "chrony"])
def test_core_services_are_running(host, service):
    assert host.service(service).is_running


def _playbook(name, *extra):
    """Run one of the collection's playbooks against the VM, as an operator would."""
    proc = run_playbook(os.path.join(ROOT, "playbooks", name), *extra, timeout=900)
    return proc.returncode, proc.stdout


def _serving(host):
    """(image, container mount destinations) of the backend release that serves."""
    release = json.loads(host.file("/opt/armstack/release.json").content_string)
    mounts = host.check_output("docker inspect -f '{{range .Mounts}}{{.Destination}} {{end}}' armstack-backend_%s-1",
                               release["active"])
    return release["images"][release["active"]], set(mounts.split())


def test_partial_runs_keep_the_backends_secret_files(host):
    """A rollout with `--tags backend` and a rollback.yml run mount the secret files like site.yml does.

    The mounts come from the secrets role's `secrets_paths`; a run that did not
    place the secrets once rolled the backend out without them.
    """
    image, mounts = _serving(host)
    assert image.endswith("/backend:1.0.0") and SECRET_MOUNTS <= mounts, mounts
    rc, out = _playbook("site.yml", "--tags", "backend",
                        "-e", "backend_image={{ armstack_testbed_registry }}/armstack/backend:1.1.0")
    assert rc == 0, out[-3000:]
    image, mounts = _serving(host)
    assert image.endswith("/backend:1.1.0") and SECRET_MOUNTS <= mounts, mounts
    rc, out = _playbook("rollback.yml")
    assert rc == 0, out[-3000:]
    image, mounts = _serving(host)
    assert image.endswith("/backend:1.0.0") and SECRET_MOUNTS <= mounts, mounts


def test_site_in_check_mode_on_the_converged_host_changes_nothing(host):
    """`site.yml --check --diff`, as the example inventory's README recommends before a run."""
    rc, out = _playbook("site.yml", "--check", "--diff")
    totals = recap(out)
    print("CHECK MODE on the converged host: rc %d, %s" % (rc, totals))
    assert rc == 0, out[-4000:]
    assert totals.get("changed") == 0 and totals.get("failed") == 0, out[-4000:]


def test_no_secret_value_anywhere_on_the_host(host):
    """The journal, docker inspect, compose config, the project files and every world-readable file."""
    assert_host_has_no_leak(vault_values())


PROBER = r"""
import json, socket, sys, time
host, blocked, allowed, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
start = time.monotonic()
out = {"blocked_open": [], "allowed_first_open": None, "attempts": 0}
while time.monotonic() - start < seconds:
    for port in (blocked, allowed):
        try:
            socket.create_connection((host, port), timeout=0.3).close()
        except OSError:
            continue
        if port == blocked:
            out["blocked_open"].append(round(time.monotonic() - start, 2))
        elif out["allowed_first_open"] is None:
            out["allowed_first_open"] = round(time.monotonic() - start, 2)
    out["attempts"] += 1
    time.sleep(0.05)
print(json.dumps(out), flush=True)
"""


def test_a_reboot_brings_everything_back_firewall_first(host):
    """The VM boots again (its container restarted, systemd from scratch, the
    netfilter rules gone with the old network namespace): no port published on
    0.0.0.0 is reachable from outside at any moment of the boot, and the stack,
    its timers and its data are back."""
    image = os.environ.get("ARMSTACK_BASE_IMAGE")
    host.run("docker rm -f armstack-reboot-blocked")
    host.check_output("docker run -d --name armstack-reboot-blocked --restart unless-stopped -p 0.0.0.0:18081:8000 "
                      "armstack-registry:5000/armstack/backend:1.0.0")
    marker = "reboot-" + os.urandom(6).hex()
    host.check_output("curl -sk --resolve localhost:443:127.0.0.1 -X PUT --data-binary %s https://localhost/uploads/reboot.txt", marker)
    snapshots_before = host.check_output("/usr/local/sbin/armstack-backup snapshots uploads --repository local")
    subprocess.run(["docker", "rm", "-f", "armstack-reboot-prober"], capture_output=True, check=False)
    subprocess.run(["docker", "run", "-d", "--name", "armstack-reboot-prober", "--network", OUTSIDE_NETWORK, image,
                    "python3", "-c", PROBER, VM, "18081", "443", "240"], check=True, capture_output=True)
    try:
        time.sleep(3)
        started = time.monotonic()
        subprocess.run(["docker", "restart", "-t", "90", VM], check=True, capture_output=True, timeout=300)
        restarted = time.monotonic() - started

        def booted():
            state = subprocess.run(["docker", "exec", VM, "systemctl", "is-system-running"], capture_output=True, text=True, check=False)
            return state.stdout.strip() in ("running", "degraded")
        _, boot = wait_until(booted, 240, message="systemd back up")

        def serving():
            return host.run("curl -sk -m 5 --resolve localhost:443:127.0.0.1 -o /dev/null -w '%{http_code}' "
                            "https://localhost/health").stdout == "200"
        _, serve = wait_until(serving, 240, message="the backend serving through Caddy again")

        waiting = []

        def healthy():
            states = host.check_output("docker ps -a --format '{{.Names}} {{.Status}}'").splitlines()
            waiting[:] = [s for s in states if "armstack-reboot" not in s and ("(healthy)" not in s or not s.split()[1] == "Up")]
            return not waiting
        try:
            _, every = wait_until(healthy, 240, message="every container up and healthy")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; still waiting: {waiting}") from None
        print("REBOOT: container restart %.1f s; systemd up %.1f s later, the backend serving after %.1f s, "
              "every container healthy after %.1f s" % (restarted, boot, serve, every))
    finally:
        subprocess.run(["docker", "wait", "armstack-reboot-prober"], capture_output=True, timeout=300, check=False)
        probe = subprocess.run(["docker", "logs", "armstack-reboot-prober"], capture_output=True, text=True, check=False).stdout
        subprocess.run(["docker", "rm", "-f", "armstack-reboot-prober"], capture_output=True, check=False)
        host.run("docker rm -f armstack-reboot-blocked")
    result = json.loads(probe.strip().splitlines()[-1])
    print("REBOOT PROBE from outside: %d rounds; port 18081 (published, not allow-listed) open %d times; "
          "443 first open %s s after the probe began" % (result["attempts"], len(result["blocked_open"]), result["allowed_first_open"]))
    assert result["blocked_open"] == [], "a port published on 0.0.0.0 answered from outside during the boot"
    assert result["allowed_first_open"] is not None
    assert host.service("armstack-firewall").is_running or host.run("systemctl is-active armstack-firewall").stdout.strip() == "active"
    timers = host.check_output("systemctl list-timers --all --no-legend 'armstack-backup*'")
    scheduled = [line for line in timers.splitlines() if " left " in line]
    assert len(scheduled) == 4, timers
    assert host.check_output("curl -sk --resolve localhost:443:127.0.0.1 https://localhost/uploads/reboot.txt") == marker
    assert host.check_output("/usr/local/sbin/armstack-backup snapshots uploads --repository local") == snapshots_before


def test_the_database_accessory_is_backed_up_and_restored_into_the_live_database(host):
    """The backend's PostgreSQL is a backup job without the operator naming it
    (backend_backup_jobs); its dump restores in place and the backend reads
    the restored rows."""
    def items():
        out = host.check_output("curl -sk --resolve localhost:443:127.0.0.1 https://localhost/db/items")
        return [i["name"] for i in json.loads(out)["items"]]

    config = json.loads(host.file("/etc/armstack/backup/config.json").content_string)
    jobs = {j["name"]: j for j in config["jobs"]}
    assert jobs["armstack-db"]["engine"] == "postgres" and jobs["armstack-db"]["container"] == "armstack-db-1"
    assert jobs["armstack-redis"]["engine"] == "redis" and jobs["armstack-redis"]["password_file"] == "/run/secrets/password"
    host.check_output("curl -sk --resolve localhost:443:127.0.0.1 -X POST 'https://localhost/db/items?name=kept-by-the-backup'")
    rc, out = _playbook("backup.yml", "-e", json.dumps({"backup_run_jobs": ["armstack-db", "armstack-redis"]}))
    assert rc == 0, out[-3000:]
    host.check_output("curl -sk --resolve localhost:443:127.0.0.1 -X POST 'https://localhost/db/items?name=made-after-the-backup'")
    assert items()[-2:] == ["kept-by-the-backup", "made-after-the-backup"]
    rc, out = _playbook("restore.yml", "-e", "backup_restore_job=armstack-db", "-e", "backup_restore_confirm=armstack-db")
    assert rc == 0, out[-3000:]
    restored = items()
    assert "kept-by-the-backup" in restored and "made-after-the-backup" not in restored, restored
    assert_no_leak("backup and restore of the accessories", out, vault_values())
