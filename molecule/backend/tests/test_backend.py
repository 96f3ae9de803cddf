"""Behaviour of the backend role on its VM, in order: serving over HTTPS, the
container hardening, metrics, uploads across a restart and a redeploy, a
rollout under load with no failed request, certificates across a Caddy
recreate, a broken release that never takes traffic, rollback.yml, a memory
budget that cannot fit, and a real run of both modules.

The tests run in file order and build on each other (one VM, one stack).
Counts are asserted, never durations.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading

import pytest
import testinfra.utils.ansible_runner
from armstack_verify import assert_no_leak, vault_values

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("all")

ROOT = os.environ.get("ARMSTACK_ROOT") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
SCENARIO = os.path.join(ROOT, "molecule", "backend")
VM = "armstack-backend"
REGISTRY = "armstack-registry:5000"
IMAGE = REGISTRY + "/armstack/backend:{}"
CA = "/tmp/armstack-verify-ca.crt"
PROJECT_DIR = "/opt/armstack"


LEAKY_PASSWORD = "leaky-" + os.urandom(9).hex()
LEAKY_URL = "postgresql://app:%s@db:5432/app" % LEAKY_PASSWORD


def playbook(path, extra_vars=None, verbosity=0):
    argv = ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], path]
    if verbosity:
        argv.append("-" + "v" * verbosity)
    if extra_vars:
        argv += ["-e", json.dumps(extra_vars)]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def converge(extra_vars=None, verbosity=0):
    return playbook(os.path.join(SCENARIO, "deploy.yml"), extra_vars, verbosity)


def fetch_ca(host):
    host.run_expect([0], "docker exec armstack-caddy-1 cat /data/caddy/pki/authorities/local/root.crt > %s" % CA)


def get(host, path, *curl_args):
    fetch_ca(host)
    cmd = host.run(" ".join(["curl -sS --fail --max-time 20 --cacert", CA, *curl_args, "https://localhost" + path]))
    assert cmd.rc == 0, cmd.stderr
    return cmd.stdout


def wait_until(host, check, seconds, failure):
    """Runs the shell `check` once a second until it succeeds; fails with `failure` after `seconds`."""
    cmd = host.run("for i in $(seq 1 %d); do %s && exit 0; sleep 1; done; exit 1" % (seconds, check))
    assert cmd.rc == 0, failure


def wait_healthy(host, container):
    """Waits (bounded) until Docker reports the container healthy."""
    wait_until(host, "[ \"$(docker inspect -f '{{.State.Health.Status}}' %s)\" = healthy ]" % container,
               90, "%s did not become healthy" % container)


def wait_serving(host):
    """Waits (bounded) until Caddy completes a TLS handshake and answers.

    A new Caddy container accepts connections before it has loaded its
    certificates from the data volume; in that moment a handshake ends in
    "tlsv1 alert internal error". Rollouts never recreate Caddy; a recreate
    (an image upgrade) costs this moment, which the test waits out.
    """
    fetch_ca(host)
    wait_until(host, "curl -sS --fail --max-time 5 --cacert %s https://localhost/health >/dev/null 2>&1" % CA,
               60, "Caddy did not serve https://localhost/health within 60 s")


def version(host):
    return json.loads(get(host, "/"))["version"]


def state(host):
    return json.loads(host.file(PROJECT_DIR + "/release.json").content_string)


def serving_files(host):
    """The serving-slot switch Caddy reads per request: {colour: image}."""
    out = host.check_output("grep -H -r '' %s/caddy/serving || true" % PROJECT_DIR)
    return {os.path.basename(path): image for path, image in (line.split(":", 1) for line in out.splitlines())}


def caddy_reloads(host):
    """How many times Caddy loaded a new configuration since its container started."""
    return int(host.check_output("docker logs armstack-caddy-1 2>&1 | grep -c '\"msg\":\"load complete\"' || true"))


def backend_containers(host):
    out = host.check_output("docker ps -a --filter label=com.docker.compose.project=armstack --format '{{.Names}} {{.Image}} {{.ID}}'")
    return sorted(line for line in out.splitlines() if "backend_" in line)


class Load:
    """The bench's load generator, run inside the VM against https://localhost/."""

    def __init__(self, phase, rate=25, min_count=200):
        source = subprocess.run([os.path.join(ROOT, "bench", "rollout.sh"), "print-loadgen"],
                                capture_output=True, text=True, check=True).stdout
        subprocess.run(["docker", "exec", "-i", VM, "sh", "-c", "cat > /tmp/loadgen.py; rm -f /tmp/stop-load"],
                       input=source, text=True, check=True)
        self.proc = subprocess.Popen(
            ["docker", "exec", VM, "python3", "/tmp/loadgen.py", "--phase", phase, "--url", "https://localhost/work?ms=5",
             "--cafile", CA, "--rate", str(rate), "--threads", "6", "--count", "100000", "--min-count", str(min_count),
             "--max-seconds", "400", "--stop-file", "/tmp/stop-load"],
            stdout=subprocess.PIPE, text=True)
        self.result = None

    def stop(self):
        subprocess.run(["docker", "exec", VM, "touch", "/tmp/stop-load"], check=True)
        out, _ = self.proc.communicate(timeout=420)
        self.result = json.loads(out.strip().splitlines()[-1])
        print("load during %(phase)s: %(sent)d sent, %(non_2xx)d non-2xx, %(conn_errors)d connection errors, "
              "%(stale_retries)d stale keep-alive retries, p50 %(p50_ms)s ms, p99 %(p99_ms)s ms, versions %(versions)s"
              % self.result)
        return self.result


def test_serves_https_through_caddy_and_redirects_http(host):
    assert version(host) == "1.0.0"
    redirect = host.check_output("curl -s -o /dev/null -w '%{http_code} %{redirect_url}' http://localhost/health")
    assert redirect.split()[0] in ("301", "308")
    assert redirect.split()[1].startswith("https://localhost/")
    # The certificate is Caddy's internal CA's, verified (not -k).
    assert json.loads(get(host, "/ready"))["status"] == "ready"


def test_containers_are_hardened(host):
    active = state(host)["active"]
    backend = json.loads(host.check_output("docker inspect armstack-backend_%s-1" % active))[0]
    assert backend["Config"]["User"] == "10001:10001"
    assert backend["HostConfig"]["ReadonlyRootfs"] is True
    assert backend["HostConfig"]["CapDrop"] == ["ALL"]
    assert backend["HostConfig"]["Memory"] > 0
    assert backend["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert 0 < backend["HostConfig"]["PidsLimit"] <= 4096
    assert 0 < backend["HostConfig"]["NanoCpus"] <= 2 * 10**9
    assert backend["Config"]["Healthcheck"]["StartPeriod"] > 0
    assert backend["State"]["Health"]["Status"] == "healthy"
    assert not backend["HostConfig"]["PortBindings"]
    caddy = json.loads(host.check_output("docker inspect armstack-caddy-1"))[0]
    assert caddy["Config"]["User"] == "10002:10002"
    assert caddy["HostConfig"]["ReadonlyRootfs"] is True
    assert sorted(caddy["HostConfig"]["PortBindings"]) == ["443/tcp", "80/tcp"]
    volumes = {m["Name"]: m["Destination"] for m in caddy["Mounts"] if m["Type"] == "volume"}
    assert volumes["armstack_caddy_data"] == "/data"
    assert caddy["HostConfig"]["CapDrop"] == ["ALL"]
    assert 0 < caddy["HostConfig"]["PidsLimit"] <= 4096
    assert 0 < caddy["HostConfig"]["NanoCpus"] <= 2 * 10**9
    assert caddy["Config"]["Healthcheck"]["Test"][0] == "CMD"
    wait_healthy(host, "armstack-caddy-1")


def test_the_internet_gets_no_metrics_no_banner_and_safe_headers(host):
    fetch_ca(host)
    # /metrics is for Prometheus on the internal network only.
    for path in ("/metrics", "/metrics/", "/metrics/x"):
        code = host.check_output("curl -s -o /dev/null -w '%%{http_code}' --cacert %s https://localhost%s", CA, path)
        assert code == "404", (path, code)
    headers = host.check_output("curl -sS -D - -o /dev/null --cacert %s https://localhost/", CA).lower()
    assert "strict-transport-security: max-age=31536000" in headers
    assert "x-content-type-options: nosniff" in headers
    assert "referrer-policy: strict-origin-when-cross-origin" in headers
    assert "x-frame-options: deny" in headers
    assert "content-security-policy: frame-ancestors 'none'" in headers
    # Neither Caddy's nor the app server's (uvicorn) banner.
    assert "\nserver:" not in headers, headers


def test_metrics_on_the_internal_network(host):
    get(host, "/")
    # Prometheus reaches them as backend:8000 and caddy:9180 on armstack_metrics.
    probe = "import urllib.request,sys; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())"
    backend_metrics = host.check_output("docker exec armstack-caddy-1 python3 -c %s http://backend:8000/metrics", probe)
    assert 'http_request_duration_seconds_bucket{' in backend_metrics
    assert 'method="GET",path="/",status="200"' in backend_metrics
    active = state(host)["active"]
    caddy_metrics = host.check_output("docker exec armstack-backend_%s-1 python3 -c %s http://caddy:9180/metrics", active, probe)
    assert "caddy_http_request_duration_seconds" in caddy_metrics
    networks = host.check_output("docker inspect -f '{{json .NetworkSettings.Networks}}' armstack-caddy-1")
    assert "armstack_metrics" in networks


def test_uploads_survive_a_container_restart(host):
    get(host, "/uploads/before-restart.txt", "-X", "PUT", "--data-binary", "first-upload")
    active = state(host)["active"]
    host.run_expect([0], "docker restart armstack-backend_%s-1" % active)
    wait_healthy(host, "armstack-backend_%s-1" % active)
    assert get(host, "/uploads/before-restart.txt") == "first-upload"


def test_rollout_to_a_new_release_under_load_drops_nothing(host):
    fetch_ca(host)
    before = state(host)
    assert serving_files(host) == {before["active"]: IMAGE.format("1.0.0")}
    reloads = caddy_reloads(host)
    load = Load("rollout 1.0.0 -> 1.1.0")
    rc, out = converge({"backend_image": IMAGE.format("1.1.0")})
    result = load.stop()
    assert rc == 0, out[-3000:]
    assert version(host) == "1.1.0"
    after = state(host)
    assert after["active"] != before["active"]
    # Switched by the serving file, without reloading Caddy (a reload re-binds
    # the listeners and may reset connections queued on the old socket).
    assert serving_files(host) == {after["active"]: IMAGE.format("1.1.0")}
    assert caddy_reloads(host) == reloads
    assert [h["image"] for h in after["history"]][-2:] == [IMAGE.format("1.0.0"), IMAGE.format("1.1.0")]
    # The old slot is gone, the new one serves.
    names = [line.split()[0] for line in backend_containers(host)]
    assert names == ["armstack-backend_%s-1" % after["active"]]
    # Uploads live on the named volume, not in a container.
    assert get(host, "/uploads/before-restart.txt") == "first-upload"
    assert result["sent"] >= 200
    assert result["non_2xx"] == 0, result
    assert result["conn_errors"] == 0, result
    assert set(result["versions"]) == {"1.0.0", "1.1.0"}


def test_certificates_survive_a_caddy_recreate(host):
    fingerprint = ("python3 -c \"import ssl,hashlib; "
                   "print(hashlib.sha256(ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate(('localhost', 443)))).hexdigest())\"")
    before = host.check_output(fingerprint)
    root_before = host.check_output("docker exec armstack-caddy-1 sha256sum /data/caddy/pki/authorities/local/root.crt")
    old_id = host.check_output("docker inspect -f '{{.Id}}' armstack-caddy-1")
    host.run_expect([0], "cd %s && docker compose up -d --force-recreate --no-deps caddy" % PROJECT_DIR)
    assert host.check_output("docker inspect -f '{{.Id}}' armstack-caddy-1") != old_id
    wait_serving(host)
    assert version(host) == "1.1.0"
    assert host.check_output(fingerprint) == before
    assert host.check_output("docker exec armstack-caddy-1 sha256sum /data/caddy/pki/authorities/local/root.crt") == root_before


def test_rollout_to_a_broken_release_keeps_the_old_one_serving(host):
    before = state(host)
    serving = serving_files(host)
    reloads = caddy_reloads(host)
    load = Load("rollout 1.1.0 -> broken")
    # The broken release logs why it is not ready, quoting its connection
    # string, password included (as careless apps do).
    rc, out = converge({"backend_image": IMAGE.format("broken"),
                        "backend_environment": {"STARTUP_DELAY": "2", "DATABASE_URL": LEAKY_URL}}, verbosity=3)
    result = load.stop()
    assert rc != 0, "the play must fail when the new release never becomes ready"
    assert "Rollout of %s aborted" % IMAGE.format("broken") in out
    assert "still serves" in out
    # Its log lines stay on the host, root-only; the output names the file.
    assert "sudo less /var/log/armstack/backend-failed-release.log" in " ".join(out.split())
    log = host.file("/var/log/armstack/backend-failed-release.log")
    assert log.user == "root" and log.mode == 0o600
    assert LEAKY_PASSWORD in log.content_string, "the kept log lines are not the release's"
    assert_no_leak("failed rollout at -vvv", out, vault_values(LEAKY_PASSWORD))
    assert version(host) == "1.1.0"
    assert state(host) == before
    assert serving_files(host) == serving
    assert caddy_reloads(host) == reloads
    containers = backend_containers(host)
    assert len(containers) == 1 and "broken" not in containers[0], containers
    assert result["non_2xx"] == 0, result
    assert result["conn_errors"] == 0, result
    assert set(result["versions"]) == {"1.1.0"}


def test_rollback_returns_to_the_previous_release(host):
    rc, out = playbook(os.path.join(ROOT, "playbooks", "rollback.yml"))
    assert rc == 0, out[-3000:]
    assert version(host) == "1.0.0"
    after = state(host)
    assert after["images"][after["active"]] == IMAGE.format("1.0.0")
    assert get(host, "/uploads/before-restart.txt") == "first-upload"


def test_a_memory_budget_the_vm_cannot_hold_fails_before_any_change(host):
    containers = backend_containers(host)
    caddy = host.check_output("docker inspect -f '{{.Id}}' armstack-caddy-1")
    compose = host.file(PROJECT_DIR + "/compose.yaml").sha256sum
    rc, out = converge({
        "backend_image": IMAGE.format("1.1.0"),
        "backend_memory_other_services": [{"name": "huge-database", "memory_limit": "64g"}],
    })
    assert rc != 0
    assert "huge-database" in out
    assert backend_containers(host) == containers
    assert host.check_output("docker inspect -f '{{.Id}}' armstack-caddy-1") == caddy
    assert host.file(PROJECT_DIR + "/compose.yaml").sha256sum == compose
    assert version(host) == "1.0.0"


def test_a_rollout_killed_after_the_switch_is_served_by_the_next_run(host):
    """The play dies (a lost SSH session, a cancelled CI job) after Caddy was
    switched, where the release record is written: the next run serves on,
    with no failed request, and clears what the killed run left."""
    fetch_ca(host)
    before = state(host)
    old_image = before["images"][before["active"]]
    new_image = IMAGE.format("1.1.0")
    assert old_image != new_image
    load = Load("killed rollout, then the next run")
    env = dict(os.environ, ANSIBLE_CALLBACK_PLUGINS=os.path.join(SCENARIO, "callback_plugins"),
               ANSIBLE_CALLBACKS_ENABLED="kill_at_task", ARMSTACK_KILL_AT_TASK="Record the new release")
    killed = subprocess.run(
        ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], os.path.join(SCENARIO, "deploy.yml"),
         "-e", json.dumps({"backend_image": new_image})],
        env=env, capture_output=True, text=True, check=False, start_new_session=True)
    assert killed.returncode == -9, killed.stdout[-3000:]
    assert "KILLED AT TASK" in killed.stdout
    # Caddy already serves the new slot; the record still names the old one.
    assert new_image in serving_files(host).values()
    assert state(host)["active"] == before["active"]
    rc, out = converge({"backend_image": new_image})
    result = load.stop()
    assert rc == 0, out[-3000:]
    after = state(host)
    assert after["images"][after["active"]] == new_image
    assert serving_files(host) == {after["active"]: new_image}
    assert [line.split()[0] for line in backend_containers(host)] == ["armstack-backend_%s-1" % after["active"]]
    assert version(host) == "1.1.0"
    assert result["non_2xx"] == 0, result
    assert result["conn_errors"] == 0, result


BAD_INPUT = [
    ({"backend_domains": ["localhost\n}\nimport /etc/passwd {"]}, "backend_domains: expected host names"),
    ({"backend_domains": ["-localhost"]}, "backend_domains: expected host names"),
    ({"backend_acme_email": "ops@example.com\n\tacme_ca http://evil"}, "backend_acme_email: expected an e-mail address"),
    ({"backend_acme_ca": "https://ca.example/dir {"}, "backend_acme_ca: expected an http(s) URL"),
    ({"backend_image": "--privileged"}, "backend_image: expected an image reference"),
    ({"backend_user": "0:0"}, "backend_user: expected uid:gid in numbers, never root"),
    ({"backend_environment": {"A B": "x"}}, "backend_environment: expected keys of letters"),
    ({"backend_environment": {"FINE": "x\nINJECTED=1"}}, "backend_environment: expected keys of letters"),
    ({"backend_secret_mounts": [{"source": "/etc/x\n", "target": "/run/x"}]}, "backend_secret_mounts: expected a list"),
    ({"backend_internal_paths": ["/metrics {"]}, "backend_internal_paths: expected URL paths"),
]


@pytest.mark.parametrize(("extra", "message"), BAD_INPUT, ids=[m.split(":")[0] + "-" + str(i) for i, (_, m) in enumerate(BAD_INPUT)])
def test_bad_input_fails_before_any_change(host, extra, message):
    watched = " ".join(PROJECT_DIR + f for f in ("/compose.yaml", "/caddy/Caddyfile", "/release.json"))
    files = host.check_output("sha256sum " + watched)
    containers = host.check_output("docker ps -a --format '{{.Names}} {{.ID}}' | sort")
    rc, out = converge(extra)
    assert rc != 0, "the play accepted bad input"
    assert message in " ".join(out.split()), out[-3000:]
    assert "Nothing was changed on the host" in out
    assert host.check_output("sha256sum " + watched) == files
    assert host.check_output("docker ps -a --format '{{.Names}} {{.ID}}' | sort") == containers


def test_modules_run_on_the_vm(host):
    fetch_ca(host)
    rc, out = playbook(os.path.join(SCENARIO, "verify_modules.yml"))
    assert rc == 0, out[-3000:]
