# -*- coding: utf-8 -*-
# Copyright (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""host_status on a made-up host: a real TLS server standing in for Caddy (its
certificate made here), the backup role's metrics files, stubs of docker,
systemctl and apt-get on PATH. The real host is read in the backend scenario."""

from __future__ import annotations

import datetime
import http.server
import json
import os
import shutil
import ssl
import stat
import threading
import time

import pytest

from ansible_collections.armstack.deploy.plugins.modules import host_status

STUB = """#!/bin/sh
# docker / systemctl / apt-get stand-in: prints $STUB_DIR/<name>.out for the
# subcommand (docker ps, docker image), exits with $STUB_DIR/<name>.rc.
PATH=/usr/bin:/bin
name=$(basename "$0")
case "$name" in docker) key="$name-$1" ;; systemctl) key="$name-$2" ;; *) key="$name" ;; esac
[ -f "$STUB_DIR/$key.out" ] && cat "$STUB_DIR/$key.out"
exit "$(cat "$STUB_DIR/$key.rc" 2>/dev/null || echo 0)"
"""


def make_certificate(directory, days):
    pytest.importorskip("cryptography")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "api.example.test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("api.example.test")]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class Ready(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.send_response(self.status if self.path == "/ready" else 404)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):  # pylint: disable=arguments-differ
        pass


@pytest.fixture
def caddy(tmp_path):
    """A TLS server on 127.0.0.1 (a free port) answering /ready; .days sets its certificate's lifetime."""
    def start(days=90, status=200):
        cert, key = make_certificate(tmp_path, days)
        handler = type("Handler", (Ready,), {"status": status})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server.server_address[1]
    servers = []
    yield start
    for server in servers:
        server.shutdown()


@pytest.fixture
def host(tmp_path, monkeypatch, fixtures_dir):
    """A host with the backend on green, two healthy containers, a fresh backup and drill, and the stubs."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("docker", "systemctl", "apt-get"):
        path = bin_dir / name
        path.write_text(STUB)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    for name in ("timeout", "openssl"):
        os.symlink(shutil.which(name), str(bin_dir / name))
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("STUB_DIR", str(tmp_path))
    project = tmp_path / "opt"
    (project / "caddy" / "serving").mkdir(parents=True)
    (project / "caddy" / "serving" / "green").write_text("reg:5000/app:1.1.0\n")
    (project / "release.json").write_text(json.dumps({
        "active": "green", "images": {"blue": "reg:5000/app:1.0.0", "green": "reg:5000/app:1.1.0"},
        "history": [{"image": "reg:5000/app:1.0.0", "color": "blue", "deployed_at": "2026-12-01T10:00:00Z"},
                    {"image": "reg:5000/app:1.1.0", "color": "green", "deployed_at": "2026-12-02T10:00:00Z"}]}))
    (tmp_path / "docker-ps.out").write_text("armstack-backend_green-1\trunning\tUp 2 hours (healthy)\n"
                                            "armstack-db-1\trunning\tUp 3 days (healthy)\n")
    (tmp_path / "docker-image.out").write_text('["reg:5000/app@sha256:%s"]\n' % ("ab" * 32))
    for unit in ("nftables.service", "docker.service"):
        (tmp_path / ("systemctl-%s.out" % unit)).write_text("active\n")
    (tmp_path / "apt-get.out").write_text("Reading package lists...\nInst tzdata [2024a-0] (2025b-0 Debian:12.12/stable [all])\n")
    metrics = tmp_path / "textfile"
    metrics.mkdir()
    write_backup_metrics(metrics, "uploads", time.time() - 3600, 0)
    write_drill_metrics(metrics, "uploads", time.time() - 86400, 0)
    log = tmp_path / "deploy.log"
    log.write_text("".join(json.dumps({"time": "2026-12-0%dT10:00:00Z" % i, "event": "rollout", "result": "ok",
                                       "image": "reg:5000/app:1.%d.0" % i}) + "\n" for i in range(1, 4)) + "not json\n")
    return {"tmp": tmp_path, "args": {
        "project_dir": str(project), "projects": ["armstack"], "domains": ["api.example.test"], "metrics_dir": str(metrics),
        "deploy_log": str(log), "deploy_log_lines": 2, "docker_root": str(tmp_path), "units": ["nftables.service", "docker.service"],
        "meminfo_path": os.path.join(fixtures_dir, "meminfo", "a1_24g"), "reboot_required_path": str(tmp_path / "reboot-required"),
        "timeout": 5, "min_free_disk_percent": 0}}


def write_backup_metrics(directory, job, success, code):
    (directory / ("backup_%s.prom" % job)).write_text(
        "# TYPE armstack_backup_last_success_timestamp_seconds gauge\n"
        'armstack_backup_last_success_timestamp_seconds{job="%s"} %s\n'
        'armstack_backup_last_exit_code{job="%s"} %d\n' % (job, success, job, code))


def write_drill_metrics(directory, job, success, mismatched):
    (directory / "backup_restore_drill.prom").write_text(
        'armstack_backup_last_success_timestamp_seconds{job="restore_drill"} %s\n'
        'armstack_restore_drill_last_success_timestamp_seconds{job="%s",repository="offsite"} %s\n'
        'armstack_restore_drill_files_mismatched{job="%s",repository="offsite"} %d\n' % (success, job, success, job, mismatched))


def by_name(result):
    return {c["name"]: c for c in result["checks"]}


def test_a_healthy_host(run_module, host, caddy):
    port = caddy(days=90)
    result = run_module(host_status, dict(host["args"], https_port=port))
    checks = by_name(result)
    assert result["healthy"] is True, [c for c in result["checks"] if c["ok"] is False]
    assert result["changed"] is False
    assert result["release"]["image"] == "reg:5000/app:1.1.0" and result["release"]["idle"] == "blue"
    assert result["release"]["digest"] == "sha256:" + "ab" * 32
    assert result["release"]["since"] == "2026-12-02T10:00:00Z"
    assert checks["maintenance mode"]["value"] == "off"
    assert checks["backend through Caddy"]["ok"] is True
    assert checks["certificate api.example.test"]["ok"] is True
    assert "expires in 90 days" in checks["certificate api.example.test"]["value"]
    assert checks["container armstack-db-1"]["ok"] is True
    assert checks["backup uploads"]["ok"] is True and "1.0 h ago" in checks["backup uploads"]["value"]
    assert checks["restore drill uploads"]["ok"] is True
    assert "backup restore_drill" not in checks
    assert checks["security updates"] == {"name": "security updates", "ok": True, "value": "0 pending (1 in all)"}
    assert checks["reboot"]["ok"] is True
    assert checks["memory"]["ok"] is True and "available of 23766" in checks["memory"]["value"]
    # The last two entries of the deploy log, its broken line skipped.
    assert [e["image"] for e in result["deploy_log"]] == ["reg:5000/app:1.2.0", "reg:5000/app:1.3.0"]
    assert result["lines"][0].startswith("[ ok ] release ")
    assert result["lines"][-1].startswith("  2026-12-03T10:00:00Z rollout ok image=reg:5000/app:1.3.0")


def test_what_is_outside_its_range_is_marked(run_module, host, caddy):
    tmp = host["tmp"]
    port = caddy(days=5, status=503)
    write_backup_metrics(tmp / "textfile", "uploads", time.time() - 3 * 86400, 0)
    write_backup_metrics(tmp / "textfile", "postgres", time.time() - 3600, 1)
    write_drill_metrics(tmp / "textfile", "uploads", time.time() - 86400, 3)
    (tmp / "docker-ps.out").write_text("armstack-backend_green-1\trunning\tUp 2 hours (unhealthy)\n"
                                       "armstack-redis-1\texited\tExited (0) 5 seconds ago\n")
    (tmp / "systemctl-nftables.service.out").write_text("inactive\n")
    (tmp / "systemctl-nftables.service.rc").write_text("3")
    (tmp / "apt-get.out").write_text("Inst libssl3 [3.0.15-1] (3.0.17-1~deb12u2 Debian-Security:12/stable-security [amd64])\n")
    (tmp / "reboot-required").write_text("*** System restart required ***\n")
    (tmp / "opt" / "caddy" / "serving" / "green").unlink()
    (tmp / "opt" / "caddy" / "serving" / "blue").write_text("reg:5000/app:1.0.0\n")
    (tmp / "opt" / "caddy" / "serving" / "maintenance.html").write_text("<h1>Maintenance</h1>")
    result = run_module(host_status, dict(host["args"], https_port=port))
    failing = sorted(c["name"] for c in result["checks"] if c["ok"] is False)
    assert result["healthy"] is False
    assert failing == sorted([
        "release", "backend through Caddy", "certificate api.example.test", "container armstack-backend_green-1",
        "container armstack-redis-1", "backup uploads", "backup postgres", "restore drill uploads",
        "security updates", "unit nftables.service", "reboot"]), failing
    checks = by_name(result)
    assert "Caddy serves blue" in checks["release"]["value"]
    assert checks["maintenance mode"]["value"].startswith("ON")
    assert "last run exited 1" in checks["backup postgres"]["value"]
    assert "3.0 d ago" in checks["backup uploads"]["value"]
    assert "3 files mismatched" in checks["restore drill uploads"]["value"]
    assert checks["security updates"]["value"] == "1 pending (1 in all)"
    assert any(line.startswith("[FAIL] unit nftables.service") for line in result["lines"])
    assert "expires in 5 days" in checks["certificate api.example.test"]["value"]


def test_a_threshold_for_pending_security_updates(run_module, host, caddy):
    port = caddy()
    (host["tmp"] / "apt-get.out").write_text(
        "Inst libssl3 [3.0.15-1] (3.0.17-1~deb12u2 Debian-Security:12/stable-security [amd64])\n"
        "Inst openssl [3.0.15-1] (3.0.17-1~deb12u2 Debian-Security:12/stable-security [amd64])\n")
    assert by_name(run_module(host_status, dict(host["args"], https_port=port, max_security_updates=2)))["security updates"]["ok"] is True
    assert by_name(run_module(host_status, dict(host["args"], https_port=port, max_security_updates=1)))["security updates"]["ok"] is False


def test_a_certificate_of_hours_says_hours(run_module, host, caddy):
    port = caddy(days=0.5)
    value = by_name(run_module(host_status, dict(host["args"], https_port=port, cert_min_days=0)))["certificate api.example.test"]
    assert value["ok"] is True and "expires in 12.0 hours" in value["value"], value


def test_a_host_without_the_stack_is_not_judged_where_nothing_is_deployed(run_module, host, tmp_path):
    bare = tmp_path / "bare-bin"
    bare.mkdir()
    os.symlink(shutil.which("timeout"), str(bare / "timeout"))
    os.environ["PATH"] = str(bare)
    args = dict(host["args"], domains=[], metrics_dir=str(tmp_path / "none"), project_dir=str(tmp_path / "none"),
                deploy_log=str(tmp_path / "none.log"), units=[])
    result = run_module(host_status, args)
    checks = by_name(result)
    # No release deployed is a failure; what is not installed is not judged.
    assert checks["release"]["ok"] is False
    assert checks["backend through Caddy"]["ok"] is None
    assert checks["containers armstack"] == {"name": "containers armstack", "ok": None, "value": "docker is not installed"}
    assert checks["backups"]["ok"] is None and checks["security updates"]["ok"] is None
    assert result["deploy_log"] == [] and result["lines"][-1] == "last deploys: none recorded"


def test_check_mode_reads_the_same(run_module, host, caddy):
    port = caddy()
    args = dict(host["args"], https_port=port)
    normal = run_module(host_status, args)
    checked = run_module(host_status, args, check_mode=True)
    assert [(c["name"], c["ok"]) for c in checked["checks"]] == [(c["name"], c["ok"]) for c in normal["checks"]]
    assert checked["changed"] is False


@pytest.mark.parametrize("args, message", [
    ({"timeout": 0}, "timeout must be at least 1"),
    ({"ready_path": "ready"}, "ready_path must start with /"),
])
def test_bad_arguments_fail(run_module, host, args, message):
    result = run_module(host_status, dict(host["args"], **args), expect_failure=True)
    assert message in result["msg"]
