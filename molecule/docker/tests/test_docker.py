"""The docker role, checked on the VM: a hardened engine that behaves as configured."""

import json
import os
import time

import pytest
import testinfra.utils.ansible_runner
from armstack_verify import output, playbook, sh, wait_until

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("all")

REGISTRY = "armstack-registry:5000"
IMAGE = f"{REGISTRY}/armstack/testbox:1"
SCENARIO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What molecule/docker/converge.yml sets.
LOG_MAX_SIZE = 1024 * 1024
LOG_MAX_FILE = 3


def fresh(host, *names):
    """Remove containers a previous, interrupted run may have left."""
    host.run("docker rm -f " + " ".join(names))


def wait_for_engine(host):
    wait_until(lambda: host.run("docker info --format '{{.ServerVersion}}'").rc == 0, 60,
               message="dockerd answering after a restart")


@pytest.fixture(scope="module")
def image(host):
    sh(host, f"docker pull -q {IMAGE}")
    return IMAGE


@pytest.fixture(scope="module")
def daemon_json(host):
    return json.loads(host.file("/etc/docker/daemon.json").content_string)


@pytest.fixture(scope="module")
def info(host):
    return json.loads(output(host, "docker info --format '{{json .}}'"))


def test_daemon_json_is_root_owned_0644(host):
    f = host.file("/etc/docker/daemon.json")
    assert (f.user, f.group, f.mode) == ("root", "root", 0o644)


def test_daemon_json_has_the_secure_defaults(daemon_json):
    assert daemon_json["log-driver"] == "local"
    assert daemon_json["log-opts"] == {"max-size": "1m", "max-file": "3"}
    assert daemon_json["live-restore"] is True
    assert daemon_json["no-new-privileges"] is True
    assert daemon_json["userland-proxy"] is False
    assert daemon_json["icc"] is False
    assert daemon_json["log-level"] == "info"
    nofile = daemon_json["default-ulimits"]["nofile"]
    assert nofile["Name"] == "nofile" and nofile["Soft"] <= nofile["Hard"]


def test_docker_info_shows_the_settings(info):
    print(f"engine {info['ServerVersion']}, storage {info['Driver']}, cgroup v{info['CgroupVersion']}")
    assert info["LoggingDriver"] == "local"
    assert info["LiveRestoreEnabled"] is True
    assert REGISTRY in info["RegistryConfig"]["IndexConfigs"]
    assert info["RegistryConfig"]["IndexConfigs"][REGISTRY]["Secure"] is False


def test_compose_v2_is_the_compose(host):
    assert output(host, "docker compose version --short").lstrip("v").startswith("2.")


def test_pulls_from_the_test_registry_and_runs_containers(host, image):
    out = output(host, f"docker run --rm {image} read /etc/hostname")
    assert "uid=10001 read" in out


def test_containers_cannot_gain_new_privileges(host, image):
    out = output(host, f"docker run --rm --entrypoint grep {image} NoNewPrivs /proc/self/status")
    assert out.split() == ["NoNewPrivs:", "1"]


def test_default_nofile_ulimit_applies(host, image, daemon_json):
    soft = daemon_json["default-ulimits"]["nofile"]["Soft"]
    assert output(host, f"docker run --rm --entrypoint sh {image} -c 'ulimit -n'") == str(soft)


def test_no_icc_on_the_default_bridge(host, image):
    bridge = json.loads(output(host, "docker network inspect bridge"))[0]
    assert bridge["Options"]["com.docker.network.bridge.enable_icc"] == "false"
    fresh(host, "icc-server")
    sh(host, f"docker run -d --name icc-server {image} serve 8080")
    try:
        ip = output(host, "docker inspect -f '{{.NetworkSettings.IPAddress}}' icc-server")
        probe = (
            f"docker run --rm --entrypoint python3 {image} -c "
            f"\"import urllib.request; urllib.request.urlopen('http://{ip}:8080/', timeout=3)\""
        )
        assert host.run(probe).rc != 0, "a container reached another one on the default bridge"
    finally:
        host.run("docker rm -f icc-server")


def test_published_port_answers_without_docker_proxy(host, image):
    fresh(host, "proxy-check")
    sh(host, f"docker run -d --name proxy-check -p 127.0.0.1:18080:8080 {image} serve 8080")
    try:
        answer, _ = wait_until(lambda: (a := host.run("curl -fsS http://127.0.0.1:18080/ping")).rc == 0 and a, 30,
                               message="http://127.0.0.1:18080/ping answering")
        assert "testbox uid=10001" in answer.stdout
        assert host.run("pgrep -x docker-proxy").rc == 1, "a docker-proxy process runs although userland-proxy is false"
    finally:
        host.run("docker rm -f proxy-check")


@pytest.fixture(scope="module")
def engine_restart(host, image):
    """One dockerd restart shared by the tests that need one: a running
    container and a DOCKER-USER rule (as the hardening role places) beforehand."""
    fresh(host, "live-restore-check")
    sh(host, f"docker run -d --name live-restore-check {image} sleep")
    before = output(host, "docker inspect -f '{{.State.Pid}} {{.State.StartedAt}}' live-restore-check")
    sh(host, "iptables -I DOCKER-USER -s 203.0.113.7 -m comment --comment armstack-test -j DROP")
    sh(host, "systemctl restart docker")
    wait_for_engine(host)
    yield before
    host.run("docker rm -f live-restore-check")
    host.run("iptables -D DOCKER-USER -s 203.0.113.7 -m comment --comment armstack-test -j DROP")


def test_live_restore_keeps_a_container_across_a_restart(host, engine_restart):
    after = output(host, "docker inspect -f '{{.State.Pid}} {{.State.StartedAt}}' live-restore-check")
    assert after == engine_restart, "the container was restarted (or stopped) with dockerd"
    assert output(host, "docker inspect -f '{{.State.Running}}' live-restore-check") == "true"


def test_docker_user_rules_survive_a_restart(host, engine_restart):
    rules = output(host, "iptables -S DOCKER-USER")
    assert "armstack-test" in rules, rules


def test_a_chatty_container_log_stays_under_the_limit(host, image):
    fresh(host, "chatty")
    sh(host, f"docker run -d --name chatty {image} chatty 8")
    try:
        wait_until(lambda: "chatty: done" in host.run("docker logs --tail 1 chatty").stdout, 120,
                   message="the chatty container finishing writing 8 MiB of logs")
        cid = output(host, "docker inspect -f '{{.Id}}' chatty")
        listing = output(host, f"find /var/lib/docker/containers/{cid}/local-logs -type f -printf '%f %s\\n'")
        files = {name: int(size) for name, size in (line.split() for line in listing.splitlines())}
        total = sum(files.values())
        print(f"chatty wrote 8 MiB of logs; on disk: {total} bytes in {len(files)} files {files}")
        assert len(files) <= LOG_MAX_FILE
        assert total <= LOG_MAX_SIZE * LOG_MAX_FILE
    finally:
        host.run("docker rm -f chatty")


def test_users_in_docker_users_can_use_docker(host):
    assert "docker" in host.user("debian").groups
    sh(host, "sudo -u debian docker ps -q")


def test_prune_timer_is_enabled(host):
    timer = host.service("armstack-docker-prune.timer")
    assert timer.is_enabled
    assert timer.is_running


def test_prune_keeps_tagged_and_labelled_but_removes_the_rest(host, image):
    fresh(host, "prune-stopped", "prune-kept", "prune-src")
    sh(host, f"docker create --name prune-stopped {image} sleep")
    sh(host, f"docker create --name prune-kept --label armstack.keep=true {image} sleep")
    # A dangling image (no tag), and a tagged one standing for a rollback release.
    sh(host, f"docker run --name prune-src --entrypoint true {image}")
    dangling = output(host, "docker commit -c 'LABEL dangling=1' prune-src").split(":")[-1]
    sh(host, "docker rm prune-src")
    sh(host, f"docker tag {image} armstack-test/rollback:previous")
    time.sleep(2)  # converge.yml sets docker_prune_until: 1s
    sh(host, "systemctl start armstack-docker-prune.service")
    try:
        names = output(host, "docker ps -a --format '{{.Names}}'").split()
        assert "prune-stopped" not in names
        assert "prune-kept" in names
        images = output(host, "docker images -q --no-trunc")
        assert dangling not in images
        sh(host, "docker image inspect armstack-test/rollback:previous")
        sh(host, f"docker image inspect {image}")
    finally:
        host.run("docker rm -f prune-stopped prune-kept")
        host.run("docker rmi armstack-test/rollback:previous")


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ('{"log-driver": "local", "log-opts": {"max-file": 3}}', "log-opts.max-file: must be a string"),
        ('{"live-restore": "yes"}', "live-restore: must be true or false"),
        ('{"no-such-directive": true}', "no-such-directive: not a directive"),
        ('{"hosts": ["tcp://0.0.0.0:2375"]}', "hosts: also set by docker.service"),
        ('{"log-driver": "local",', "not readable JSON"),
    ],
)
def test_daemon_json_checker_refuses_what_dockerd_would(host, config, expected):
    path = "/tmp/armstack-daemon-check.json"
    sh(host, f"printf '%s' '{config}' > {path}")
    result = host.run(f"/usr/bin/python3 -I /usr/local/libexec/armstack/docker-daemon-json-check {path}")
    assert result.rc == 1
    assert expected in result.stdout
    assert host.run("/usr/bin/python3 -I /usr/local/libexec/armstack/docker-daemon-json-check /etc/docker/daemon.json").rc == 0


def test_docker_repository_path_in_check_mode(host):
    """download.docker.com is unreachable here: the repository tasks run in check
    mode against a stand-in server for the key, and the deb822 source is read from the diff."""
    sh(host, "mkdir -p /tmp/fake-docker-repo/linux/debian && echo 'fake key' > /tmp/fake-docker-repo/linux/debian/gpg")
    sh(host, "systemd-run --unit armstack-fake-docker-repo python3 -m http.server --bind 127.0.0.1 --directory /tmp/fake-docker-repo 18111")
    try:
        wait_until(lambda: host.run("curl -fsS http://127.0.0.1:18111/linux/debian/gpg").rc == 0, 10, interval=0.5,
                   message="the stand-in key server answering")
        run = playbook(os.path.join(SCENARIO_DIR, "upstream-check.yml"), "--check", "--diff",
                       "-e", "docker_apt_repository_url=http://127.0.0.1:18111/linux", operator_view=False)
        out = run.stdout
        assert run.returncode == 0, out
        for line in ("Types: deb", "URIs: http://127.0.0.1:18111/linux/debian", "Suites: bookworm",
                     "Components: stable", "Signed-By: /etc/apt/keyrings/docker.asc"):
            assert line in out, f"{line!r} not in the diff:\n{out}"
        arch = {"x86_64": "amd64", "aarch64": "arm64"}[host.system_info.arch]
        assert f"Architectures: {arch}" in out
        assert not host.file("/etc/apt/sources.list.d/docker.sources").exists
        assert not host.file("/etc/apt/keyrings/docker.asc").exists
    finally:
        host.run("systemctl stop armstack-fake-docker-repo")


# docker-bench-security cannot be downloaded here: its daemon checks (CIS Docker
# Benchmark 1.6, section 2, and daemon.json ownership/mode from section 3) are
# evaluated directly. Each entry: id, title, passes?, reason when it does not.
def bench_checks(host, daemon_json, info):
    f = host.file("/etc/docker/daemon.json")
    dockerd = output(host, "ps -o args= -C dockerd")
    return [
        ("2.1", "daemon runs as a non-root user (rootless)", False,
         "not adopted: rootless Docker cannot publish 80/443 without extra sysctls and breaks the DOCKER-USER firewall; Manual in CIS"),
        ("2.2", "icc disabled on the default bridge", daemon_json.get("icc") is False, ""),
        ("2.3", "log level info", daemon_json.get("log-level") == "info", ""),
        ("2.4", "Docker may change iptables", daemon_json.get("iptables", True) is True, ""),
        ("2.5", "no insecure registries", not [r for r in info["RegistryConfig"]["IndexConfigs"].values()
                                              if not r["Secure"] and r["Name"] != "docker.io"],
         "test bed only: armstack-registry:5000 speaks plain HTTP (inventories/local); production lists none"),
        ("2.6", "aufs not used", info["Driver"] != "aufs", ""),
        ("2.7", "TLS for a remote daemon socket", "tcp://" not in dockerd and "hosts" not in daemon_json,
         "the daemon listens on the unix socket only"),
        ("2.8", "default ulimits configured", "nofile" in daemon_json.get("default-ulimits", {}), ""),
        ("2.9", "user namespace remapping", "userns-remap" in daemon_json,
         "not enabled: remapped uids break the secrets role's files owned by the container's uid and shared volumes; Manual in CIS"),
        ("2.10", "default cgroup parent", "cgroup-parent" not in daemon_json, ""),
        ("2.11", "base device size unchanged", "dm.basesize" not in json.dumps(daemon_json.get("storage-opts", [])), ""),
        ("2.12", "authorization plugin", bool(daemon_json.get("authorization-plugins")),
         "not used: only root (and docker_users) reach the socket; no authz plugin is packaged"),
        ("2.13", "centralized and remote logging", daemon_json.get("log-driver") not in ("local", "json-file"),
         "by design: local driver with rotation; shipping is the observability role's concern"),
        ("2.14", "no-new-privileges", daemon_json.get("no-new-privileges") is True, ""),
        ("2.15", "live restore", info["LiveRestoreEnabled"] is True, ""),
        ("2.16", "userland proxy disabled", daemon_json.get("userland-proxy") is False, ""),
        ("2.17", "seccomp profile applied", any("seccomp" in o for o in info["SecurityOptions"]), ""),
        ("2.18", "experimental features off", info.get("ExperimentalBuild") is False, ""),
        ("3.17", "daemon.json owned by root:root", (f.user, f.group) == ("root", "root"), ""),
        ("3.18", "daemon.json mode 644 or stricter", f.mode & 0o133 == 0, ""),
    ]


# Checks that are expected not to pass, by design or on the test bed only.
NOT_PASSING_BY_DESIGN = {"2.1", "2.5", "2.9", "2.12", "2.13"}


def test_docker_bench_daemon_checks(host, daemon_json, info):
    checks = bench_checks(host, daemon_json, info)
    for cid, title, ok, reason in checks:
        print(f"BENCH {cid:<5} {'PASS' if ok else 'NOT PASSING'}  {title}" + ("" if ok else f"  -- {reason}"))
    failing = {cid for cid, _, ok, _ in checks if not ok}
    assert failing <= NOT_PASSING_BY_DESIGN, f"checks that should pass but do not: {sorted(failing - NOT_PASSING_BY_DESIGN)}"
