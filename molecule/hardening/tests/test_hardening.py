"""Behaviour of armstack.deploy.hardening on a converged VM.

The VM runs its own Docker engine (prepare.yml) with two published
containers: `web-blocked` on 0.0.0.0:8080 (not allow-listed) and `web-allowed`
on 0.0.0.0:80 (allow-listed), plus a host listener on :9999. "The internet" is
a client container on the armstack-outside network, probing the VM's address
there. Nothing here asserts a duration: waits only poll for a state.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import re
import subprocess
import time
import uuid

import armstack_verify
import pytest

SCENARIO = os.environ.get("MOLECULE_SCENARIO_NAME", "hardening")
VM = f"armstack-{SCENARIO}"
OUTSIDE = os.environ.get("ARMSTACK_OUTSIDE_NETWORK", "armstack-outside")
CLIENT_IMAGE = "127.0.0.1:5000/armstack/hardening-client:1"
WEB_IMAGE = "armstack-registry:5000/armstack/hardening-web:1"
EPHEMERAL = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "")
ROOT = os.environ.get("ARMSTACK_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..")))
SSH_OPTS = "-o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=5"


@pytest.fixture(scope="module")
def vm_ip() -> str:
    out = armstack_verify.local("docker", "inspect", "-f", "{{json .NetworkSettings.Networks}}", VM, check=True).stdout
    return json.loads(out)[OUTSIDE]["IPAddress"]


class Client:
    """A container on the outside network with ssh, sshpass, ssh-audit, nc and curl.

    NET_ADMIN (in its own network namespace) lets it stand in for a cloud
    service on an extra address, such as the metadata service's."""

    def __init__(self, name: str):
        self.name = name
        armstack_verify.local("docker", "rm", "-f", name)
        armstack_verify.local("docker", "run", "-d", "--name", name, "--network", OUTSIDE, "--cap-add", "NET_ADMIN",
           "-v", f"{EPHEMERAL}/ssh:/keys:ro", CLIENT_IMAGE, "sleep", "infinity", check=True)
        self.ip = json.loads(armstack_verify.local("docker", "inspect", "-f", "{{json .NetworkSettings.Networks}}", name,
                                check=True).stdout)[OUTSIDE]["IPAddress"]

    def run(self, command: str, timeout: int = 60) -> subprocess.CompletedProcess:
        return armstack_verify.local("docker", "exec", self.name, "sh", "-c", command, timeout=timeout)

    def tcp_open(self, ip: str, port: int) -> bool:
        return self.run(f"nc -z -w 3 {ip} {port}").returncode == 0

    def remove(self):
        armstack_verify.local("docker", "rm", "-f", self.name)


@pytest.fixture(scope="module")
def client():
    c = Client(f"armstack-{SCENARIO}-client")
    yield c
    c.remove()


# --- SSH -----------------------------------------------------------------------

def test_sshd_effective_settings_win_over_cloud_init(host):
    dropins = sorted(host.file("/etc/ssh/sshd_config.d").listdir())
    assert dropins.index("10-armstack-hardening.conf") < dropins.index("50-cloud-init.conf")
    assert "PasswordAuthentication yes" in host.file("/etc/ssh/sshd_config.d/50-cloud-init.conf").content_string
    effective = dict(
        line.split(" ", 1) for line in host.check_output("sshd -T -C user=debian,host=x,addr=192.0.2.1").splitlines() if " " in line
    )
    assert effective["passwordauthentication"] == "no"
    assert effective["permitrootlogin"] == "no"
    assert effective["permitemptypasswords"] == "no"
    assert effective["maxauthtries"] == "3"
    assert effective["allowtcpforwarding"] == "no"
    assert effective["allowagentforwarding"] == "no"
    assert effective["x11forwarding"] == "no"
    assert effective["loglevel"] == "VERBOSE"
    assert effective["maxsessions"] == "2"
    assert effective["allowgroups"] == "ssh-users"
    assert effective["banner"] == "/etc/issue.net"
    assert "ssh-users" in host.user("debian").groups
    assert effective["kexalgorithms"].startswith("sntrup761x25519-sha512@openssh.com,curve25519-sha256")
    assert host.service("ssh").is_running


def test_weak_moduli_removed(host):
    sizes = [int(line.split()[4]) + 1 for line in host.file("/etc/ssh/moduli").content_string.splitlines()
             if line and not line.startswith("#")]
    assert sizes and min(sizes) >= 3072


def test_key_login_works(client, vm_ip):
    res = client.run(f"ssh {SSH_OPTS} -i /keys/id_ed25519 debian@{vm_ip} id -un")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "debian"


def test_password_login_refused(client, vm_ip):
    # pwtest has a valid password: the server must not even offer password auth.
    res = client.run(
        "sshpass -p armstack-pw-test ssh -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
        "-o ConnectTimeout=5 -o PubkeyAuthentication=no "
        f"-o PreferredAuthentications=password,keyboard-interactive pwtest@{vm_ip} true")
    assert res.returncode != 0
    assert "Permission denied (publickey)" in res.stderr, res.stderr


def test_root_login_refused(client, vm_ip):
    # root has the operator's key in authorized_keys (prepare.yml): still refused.
    res = client.run(f"ssh {SSH_OPTS} -i /keys/id_ed25519 root@{vm_ip} true")
    assert res.returncode != 0
    assert "Permission denied" in res.stderr, res.stderr


def test_ssh_audit_has_no_failures(client, vm_ip):
    res = client.run(f"ssh-audit -n -p 22 {vm_ip}")
    out = res.stdout
    fails = [line for line in out.splitlines() if "[fail]" in line]
    warns = [line for line in out.splitlines() if "[warn]" in line]
    print("ssh-audit exit code:", res.returncode)
    print("\n".join(line for line in out.splitlines() if line.startswith("(") or "[" in line))
    assert not fails, "\n".join(fails)
    # Two warnings stay, both ssh-audit 2.5 (2021) being older than the server:
    # - kex-strict-s-v00@openssh.com: the Terrapin countermeasure marker OpenSSH
    #   adds itself (2023), unknown to that release;
    # - sntrup761x25519-sha512@openssh.com "experimental": the post-quantum
    #   hybrid KEX has been OpenSSH's default since 9.0 (2022); later ssh-audit
    #   releases no longer warn. Dropping it would give up post-quantum KEX.
    allowed = ("kex-strict-s-v00@openssh.com", "sntrup761x25519-sha512@openssh.com")
    unexplained = [w for w in warns if not w.split()[1].startswith(allowed)]
    assert not unexplained, "\n".join(unexplained)


# --- Firewall ------------------------------------------------------------------

def test_published_port_not_allowlisted_is_dropped(host, client, vm_ip):
    # The container answers inside the VM, so a refusal outside is the firewall.
    assert "armstack hardening test page" in host.check_output("curl -sS -m 5 http://127.0.0.1:8080/")
    assert not client.tcp_open(vm_ip, 8080)


def test_allowlisted_published_port_answers(client, vm_ip):
    res = client.run(f"curl -sS -m 5 http://{vm_ip}:80/")
    assert res.returncode == 0, res.stderr
    assert "armstack hardening test page" in res.stdout


def test_host_port_not_allowlisted_is_dropped(host, client, vm_ip):
    assert host.run("curl -sS -m 5 -o /dev/null http://127.0.0.1:9999/").rc == 0
    assert not client.tcp_open(vm_ip, 9999)
    assert client.tcp_open(vm_ip, 22)


def test_docker_runs_containers_with_outbound_networking(host):
    registry_ip = host.check_output("getent hosts armstack-registry | cut -d' ' -f1")
    for network in ("bridge", "armstack_test"):
        res = host.run(f"docker run --rm --network {network} {WEB_IMAGE} wget -q -O- http://{registry_ip}:5000/v2/")
        assert res.rc == 0, res.stderr
    assert host.file("/proc/sys/net/ipv4/ip_forward").content_string.strip() == "1"


def test_firewall_rules_survive_a_docker_restart(host, client, vm_ip):
    host.run_expect([0], "systemctl restart docker")
    assert armstack_verify.wait_until(lambda: host.run("curl -sS -m 2 -o /dev/null http://127.0.0.1:8080/").rc == 0, None, attempts=30, fail=False)[0]
    assert host.check_output("iptables -S DOCKER-USER").splitlines()[1] == "-A DOCKER-USER -j ARMSTACK-DOCKER"
    # Docker re-creates its FORWARD rules on start (DOCKER-ISOLATION-STAGE-1 may
    # come first; it only drops traffic between bridges): what matters is one
    # jump to DOCKER-USER ahead of every rule that accepts traffic to containers.
    forward = host.check_output("iptables -S FORWARD").splitlines()[1:]
    user_jumps = [i for i, rule in enumerate(forward) if rule == "-A FORWARD -j DOCKER-USER"]
    accepts = [i for i, rule in enumerate(forward) if rule.endswith("-j ACCEPT") or rule.endswith("-j DOCKER")]
    assert len(user_jumps) == 1 and accepts and user_jumps[0] < min(accepts), forward
    assert not client.tcp_open(vm_ip, 8080)
    assert armstack_verify.wait_until(lambda: client.tcp_open(vm_ip, 80), None, attempts=30, fail=False)[0]


def test_cloud_rules_outside_our_chains_are_kept(host):
    # Stand-in for OCI's InstanceServices chain: re-applying never flushes it.
    host.run("iptables -N ARMSTACK-TEST-CLOUD 2>/dev/null; iptables -A OUTPUT -d 169.254.0.0/16 -j ARMSTACK-TEST-CLOUD")
    try:
        host.run_expect([0], "/usr/local/sbin/armstack-firewall apply")
        assert "-A OUTPUT -d 169.254.0.0/16 -j ARMSTACK-TEST-CLOUD" in host.check_output("iptables -S OUTPUT")
        assert host.check_output("iptables -S INPUT").splitlines()[1] == "-A INPUT -j ARMSTACK-INPUT"
    finally:
        host.run("iptables -D OUTPUT -d 169.254.0.0/16 -j ARMSTACK-TEST-CLOUD; iptables -X ARMSTACK-TEST-CLOUD")


# --- Link-local and the instance metadata service ------------------------------

METADATA = "169.254.169.254"
ISCSI = "169.254.2.2"  # OCI's iSCSI boot-volume targets sit in 169.254.2.0/24
IMDS_NETWORKS_ALLOWED = ("armstack_imds_bridge", "armstack_imds_subnet")  # converge.yml opts them in
IMDS_NETWORKS_BLOCKED = ("bridge", "armstack_test")


@pytest.fixture(scope="module")
def metadata_service(host, client):
    """A stand-in for OCI's link-local services: the outside client answers HTTP
    on 169.254.169.254 and 169.254.2.2, and the VM routes 169.254.0.0/16 to it,
    so that a container's request leaves through the VM's FORWARD path as on
    OCI (where the VNIC's gateway answers those addresses)."""
    for address in (METADATA, ISCSI):
        res = client.run(f"ip addr add {address}/32 dev eth0")
        assert res.returncode == 0, res.stderr
    server = ("mkdir -p /tmp/imds && echo armstack-imds > /tmp/imds/index.html && "
              "exec python3 -m http.server --directory /tmp/imds 80")
    armstack_verify.local("docker", "exec", "-d", client.name, "sh", "-c", server, check=True)
    route = f"169.254.0.0/16 via {client.ip}"
    armstack_verify.sh(host, f"ip route replace {route}")
    try:
        armstack_verify.wait_until(lambda: host.run(f"curl -sS -m 2 http://{METADATA}/").stdout.strip() == "armstack-imds",
                                   timeout=30, message="the metadata stand-in answering the VM")
        yield
    finally:
        host.run(f"ip route del {route}")


def _container_get(host, network: str, address: str):
    """A container on `network` asks http://address/ (busybox nc with a 5 s
    bound: busybox-static's wget -T crashes). Returns the result, body last."""
    start = time.monotonic()
    request = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 " + address + " 80"
    res = host.run(f"docker run --rm --network {network} {WEB_IMAGE} sh -c \"{request}\"")
    return res, round(time.monotonic() - start, 1)


def test_host_reaches_the_metadata_service(host, metadata_service):
    # chrony and the OCI agent talk to 169.254.169.254 from the host (OUTPUT): never filtered.
    for address in (METADATA, ISCSI):
        assert host.run(f"curl -sS -m 5 http://{address}/").stdout.strip() == "armstack-imds", address


@pytest.mark.parametrize("network", IMDS_NETWORKS_BLOCKED)
def test_containers_are_refused_link_local(host, metadata_service, network):
    for address in (METADATA, ISCSI):
        res, seconds = _container_get(host, network, address)
        print(f"{network} -> {address}: rc={res.rc} in {seconds} s: {res.stderr.strip()}")
        assert res.rc != 0 and "armstack-imds" not in res.stdout, f"{network} reached {address}"
        # Rejected, not dropped: the app learns at once (a drop would time out).
        assert "refused" in res.stderr, res.stderr


@pytest.mark.parametrize("network", IMDS_NETWORKS_ALLOWED)
def test_opted_in_networks_reach_only_the_metadata_address(host, metadata_service, network):
    res, seconds = _container_get(host, network, METADATA)
    print(f"{network} -> {METADATA}: rc={res.rc} in {seconds} s")
    assert res.rc == 0 and res.stdout.strip().endswith("armstack-imds"), res.stderr
    res, seconds = _container_get(host, network, ISCSI)
    print(f"{network} -> {ISCSI}: rc={res.rc} in {seconds} s: {res.stderr.strip()}")
    assert res.rc != 0 and "refused" in res.stderr, f"{network} reached {ISCSI}: {res.stdout} {res.stderr}"


def test_ipv6_metadata_address_is_rejected_too(host, skipped_here):
    rules = host.check_output("ip6tables -S ARMSTACK-DOCKER").splitlines()
    rejects = [r for r in rules if r.startswith("-A ARMSTACK-DOCKER -d fd00:c1::a9fe:a9fe/128") and "-j REJECT" in r]
    returns = [i for i, r in enumerate(rules) if r.endswith("-j RETURN") and "--ctstate" not in r and "fd00:c1::" not in r]
    assert len(rejects) == 2, rules
    # Before every rule that lets container traffic through.
    assert all(rules.index(r) < min(returns) for r in rejects), rules
    opened = [r for r in rules if "-d fd00:c1::a9fe:a9fe/128" in r and r.endswith("-j RETURN")]
    assert opened == ["-A ARMSTACK-DOCKER -d fd00:c1::a9fe:a9fe/128 -i br-imds-test -j RETURN"], rules
    skipped_here("IPv6 container traffic to fd00:c1::a9fe:a9fe: the test bed's networks are IPv4 only and the role "
                 "keeps IPv6 forwarding off; the ip6tables rules are checked in the live chain")


# --- sysctl --------------------------------------------------------------------

LIVE_NET = {
    "net.ipv4.ip_forward": "1",
    "net.ipv4.conf.all.rp_filter": "1",
    "net.ipv4.conf.all.accept_redirects": "0",
    "net.ipv4.conf.all.send_redirects": "0",
    "net.ipv4.conf.all.accept_source_route": "0",
    "net.ipv4.conf.all.log_martians": "1",
    "net.ipv6.conf.all.accept_redirects": "0",
    "net.ipv4.tcp_syncookies": "1",
    "net.ipv4.icmp_echo_ignore_broadcasts": "1",
}
FILE_ONLY = {"kernel.kptr_restrict": "2", "kernel.dmesg_restrict": "1", "kernel.yama.ptrace_scope": "1",
             "fs.protected_symlinks": "1", "fs.suid_dumpable": "0", "kernel.unprivileged_bpf_disabled": "1"}


def test_network_sysctls_are_live(host):
    for key, value in LIVE_NET.items():
        assert host.file("/proc/sys/" + key.replace(".", "/")).content_string.split() == [value], key


def test_kernel_wide_sysctls_are_written(host, skipped_here):
    content = host.file("/etc/sysctl.d/90-armstack-hardening.conf").content_string
    left_out = re.search(r"^# Keys this kernel lacks were left out: (.*)\.$", content, re.M).group(1).split(", ")
    # One `key=value` a line (ansible.posix.sysctl's format; spaces around = allowed).
    written = dict(re.findall(r"^([^#;\s=][^=\s]*)\s*=\s*(.*?)\s*$", content, re.M))
    for key, value in {**LIVE_NET, **FILE_ONLY}.items():
        if host.file("/proc/sys/" + key.replace(".", "/")).exists:
            assert written.get(key) == value, key
        else:
            # e.g. kernel.yama.ptrace_scope on a kernel built without Yama: skipped, not failed.
            assert key in left_out, key
    skipped_here("kernel-wide sysctls (kernel.*, fs.*, vm.*) belong to the container's host; "
                 "checked in /etc/sysctl.d, not live")


# --- Services ------------------------------------------------------------------

def test_unattended_upgrades_security_origin_matches(host):
    out = host.check_output("/usr/bin/python3 -I /usr/local/libexec/armstack/check-uu-origins "
                            "'origin=Debian,codename=${distro_codename}-security,label=Debian-Security'")
    assert "l=Debian-Security" in out
    dry = host.run("unattended-upgrade --dry-run --debug 2>&1 | grep 'Allowed origins are'").stdout
    assert "origin=Debian,codename=bookworm-security,label=Debian-Security" in dry
    assert "label=Debian'" not in dry and 'label=Debian"' not in dry  # security only (#clear worked)
    # A wrong origins line is caught, not silently accepted.
    bad = host.run("/usr/bin/python3 -I /usr/local/libexec/armstack/check-uu-origins 'origin=Debian,codename=${distro_codename},label=Debian-Security'")
    assert bad.rc == 1 and "matches no configured apt source" in bad.stdout


def test_time_and_no_journald_drop_in(host):
    assert host.service("chrony").is_enabled
    # journald is the logrotate role's (molecule/logrotate checks its caps and
    # the persistent journal); this role writes no drop-in of its own.
    assert not host.file("/etc/systemd/journald.conf.d/40-armstack-hardening.conf").exists
    assert host.run("ls /etc/systemd/journald.conf.d/ 2>/dev/null | grep -i hardening").rc == 1


def test_login_defaults_and_modules(host):
    defs = host.file("/etc/login.defs").content_string
    assert re.search(r"^UMASK\s+027$", defs, re.M)
    assert host.check_output("sudo -u debian -i sh -c umask") == "0027"
    assert host.check_output("sudo -u debian -i bash -c 'echo $TMOUT'") == "900"
    assert "Authorized access only" in host.file("/etc/issue").content_string
    assert "Storage=none" in host.file("/etc/systemd/coredump.conf.d/90-armstack-no-core.conf").content_string
    assert "$nrconf{restart} = 'a';" in host.file("/etc/needrestart/conf.d/armstack.conf").content_string
    mods = host.file("/etc/modprobe.d/armstack-hardening.conf").content_string
    for mod in ("cramfs", "dccp", "sctp"):
        assert f"install {mod} /bin/false" in mods
    assert host.file("/etc/security/limits.d/90-armstack-no-core.conf").contains("hard core 0")
    # Live: a login session may not raise its core size above 0.
    assert host.check_output("sudo -u debian -i bash -c 'ulimit -Hc; ulimit -Sc'").split() == ["0", "0"]


def test_auditd_rules(host, skipped_here):
    rules = host.file("/etc/audit/rules.d/50-armstack.rules")
    assert rules.exists
    host.run_expect([0], "/usr/bin/python3 -I /usr/local/libexec/armstack/check-audit-rules /etc/audit/rules.d/50-armstack.rules")
    merged = host.file("/etc/audit/audit.rules").content_string
    for key in ("-k identity", "-k sudoers", "-k sshd", "-k docker", "-k time-change", "-k modules"):
        assert key in merged, key
    loaded = host.run("auditctl -l")
    if loaded.rc != 0 or "No rules" in loaded.stdout:
        skipped_here("audit rules cannot be loaded and auditd cannot run in a container (auditctl: "
                     f"{(loaded.stderr or loaded.stdout).strip()}); rules checked statically and merged by augenrules")
    else:
        assert "-k identity" in loaded.stdout


def test_fail2ban_bans_after_failed_logins(host, vm_ip):
    attacker = Client(f"armstack-{SCENARIO}-attacker")
    try:
        assert attacker.tcp_open(vm_ip, 22)
        for _ in range(6):
            # The ban may land while an attempt's connection is open: its packets
            # are then dropped and ssh would wait on them, so each attempt is
            # bounded (ConnectTimeout covers only the connect).
            attacker.run(f"timeout 15 ssh {SSH_OPTS} -o PubkeyAuthentication=no nosuchuser-{uuid.uuid4().hex[:6]}@{vm_ip} true")
        banned = armstack_verify.wait_until(lambda: attacker.ip in host.run("fail2ban-client status sshd").stdout, None, attempts=30, fail=False)[0]
        assert banned, host.run("fail2ban-client status sshd").stdout
        assert not attacker.tcp_open(vm_ip, 22)
        assert "f2b-table" in host.check_output("nft list tables")
    finally:
        host.run(f"fail2ban-client set sshd unbanip {attacker.ip}")
        attacker.remove()


# --- Lock-out guard and input validation (separate ansible-playbook runs) ----------

def _playbook(*extra: str) -> subprocess.CompletedProcess:
    inventory = os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])
    return armstack_verify.playbook(CONVERGE, *extra, inventory=inventory, timeout=300, merge_stderr=False, operator_view=False)


def _fingerprint(host) -> str:
    out = host.check_output("cat /etc/ssh/sshd_config.d/* /etc/armstack/firewall/* /etc/sysctl.d/90-armstack-hardening.conf "
                            "| sha256sum; iptables -S | sha256sum; stat -c '%n %Y' /etc/ssh/sshd_config.d/*")
    return hashlib.sha256(out.encode()).hexdigest()


CONVERGE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "converge.yml")


def test_check_mode_on_the_converged_host_changes_nothing(host):
    before = _fingerprint(host)
    res = armstack_verify.playbook(CONVERGE, "--check", "--diff")
    totals = armstack_verify.recap(res.stdout)
    print("check mode on the converged host:", totals)
    assert res.returncode == 0, res.stdout[-4000:]
    assert totals.get("changed") == 0 and totals.get("failed") == 0, res.stdout[-4000:]
    assert _fingerprint(host) == before


# --- SSH socket activation: the port is the socket's, and the rescue restores it ----

SOCKET_DROPIN = "/etc/systemd/system/ssh.socket.d/addresses.conf"
# A stand-in for Ubuntu 22.10+'s sshd-socket-generator (Debian 12 has none): at
# every daemon-reload it makes ssh.socket listen on sshd_config's Port when that
# is not the default, in the same file the real one writes.
GENERATOR = "/etc/systemd/system-generators/sshd-socket-generator"
GENERATOR_SCRIPT = r"""#!/bin/sh
# armstack test stand-in for Ubuntu's sshd-socket-generator.
ports=$(/usr/sbin/sshd -T 2>/dev/null | awk '$1 == "port" { print $2 }')
[ -n "$ports" ] && [ "$ports" != 22 ] || exit 0
mkdir -p "$1/ssh.socket.d"
{ echo '[Socket]'; echo 'ListenStream='; for p in $ports; do echo "ListenStream=$p"; done; } > "$1/ssh.socket.d/addresses.conf"
"""
# Ubuntu's ssh.socket is RequiredBy=ssh.service: a restart of the socket restarts sshd.
UBUNTU_REQUIRES = "/etc/systemd/system/ssh.service.d/armstack-test-requires-socket.conf"


@pytest.fixture
def over_ssh(host, tmp_path):
    """Runs converge.yml over SSH as an operator does (debian with the operator
    key, to the VM's address on the trusted `armstack` network), so that the
    role's new-connection check and its rescue run. `block(port)` makes new
    connections to a port fail, as a cloud security list that does not open it
    would (mangle PREROUTING: the role never touches that table)."""
    ip = json.loads(armstack_verify.local("docker", "inspect", "-f", "{{json .NetworkSettings.Networks}}", VM, check=True).stdout)["armstack"]["IPAddress"]
    (tmp_path / "group_vars").symlink_to(os.path.join(ROOT, "inventories/local/group_vars"))
    inventory = tmp_path / "hosts.yml"
    blocked = []

    class OverSSH:
        address = ip

        def run(self, port=22, **extra_vars):
            # The port Ansible connects on is the inventory's, as an operator's is
            # (an extra var would also win over the new-connection check's port).
            inventory.write_text(json.dumps({"armstack_hosts": {"hosts": {VM: {
                "ansible_host": ip, "ansible_user": "debian", "ansible_port": port,
                "ansible_ssh_private_key_file": f"{EPHEMERAL}/ssh/id_ed25519",
                "ansible_ssh_common_args": "-o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no -o IdentitiesOnly=yes"}}}}))
            res = armstack_verify.playbook(CONVERGE, "--tags", "ssh", inventory=inventory, extra_vars=extra_vars,
                                           env={"ANSIBLE_SSH_CONTROL_PATH_DIR": str(tmp_path / "cp")})
            print(f"over SSH on port {port} {extra_vars}: rc={res.returncode} {armstack_verify.recap(res.stdout)}")
            for line in res.stdout.splitlines():
                if line.startswith("fatal:") and "LOCK-OUT GUARD" in line:
                    print("  " + line[line.index("LOCK-OUT GUARD"):][:600])
            return res

        def block(self, port):
            armstack_verify.sh(host, f"iptables -t mangle -I PREROUTING -p tcp --dport {port} -m conntrack --ctstate NEW -j DROP")
            blocked.append(port)

        def unblock(self):
            while blocked:
                host.run(f"iptables -t mangle -D PREROUTING -p tcp --dport {blocked.pop()} -m conntrack --ctstate NEW -j DROP")

        def login(self, port):
            return armstack_verify.local("timeout", "30", "ssh", *SSH_OPTS.split(), "-p", str(port), "-i", f"{EPHEMERAL}/ssh/id_ed25519",
                      f"debian@{ip}", "id", "-un", timeout=60)

    over = OverSSH()
    try:
        yield over
    finally:
        over.unblock()
        # Back to the converged state (ssh.service on 22), over the docker connection.
        restored = armstack_verify.playbook(CONVERGE, "--tags", "ssh")
        assert restored.returncode == 0, restored.stdout[-3000:]
        assert _ssh_ports(host) == [22], host.check_output("ss -Htlnp")
        assert host.service("ssh.service").is_enabled and not host.service("ssh.socket").is_enabled


def _ssh_ports(host):
    """The TCP ports sshd (or systemd for ssh.socket) listens on."""
    out = host.check_output("ss -Htlnp")
    return sorted({int(line.split()[3].rsplit(":", 1)[1]) for line in out.splitlines()
                   if '"sshd"' in line or '"systemd"' in line})


def _sha256(host, *paths):
    return host.check_output("sha256sum " + " ".join(paths) + " 2>/dev/null || true")


def test_ssh_socket_activation_keeps_the_port_it_can_reach(host, over_ssh):
    sshd_dropin = "/etc/ssh/sshd_config.d/10-armstack-hardening.conf"

    # 1. An Ubuntu 22.10+ image: sshd started by ssh.socket, whose port a
    #    generator takes from sshd_config. A port change whose new connection
    #    fails must leave the socket on the old port only, as the message says.
    for path, content, mode in ((GENERATOR, GENERATOR_SCRIPT, "0755"), (UBUNTU_REQUIRES, "[Unit]\nRequires=ssh.socket\n", "0644")):
        armstack_verify.vm_exec("sh", "-c", f"mkdir -p $(dirname {path}) && cat > {path} && chmod {mode} {path}",
                                input_bytes=content.encode())
    try:
        armstack_verify.sh(host, "systemctl disable --now ssh.service && systemctl daemon-reload && systemctl enable --now ssh.socket")
        assert _ssh_ports(host) == [22]
        before = _sha256(host, sshd_dropin)
        over_ssh.block(2200)
        res = over_ssh.run(hardening_ssh_socket_activation=True, hardening_ssh_port=2200)
        out = res.stdout
        assert res.returncode != 0 and "LOCK-OUT GUARD" in out, out[-4000:]
        assert "port 2200: Connection timed out" in out, out[-4000:]  # the check tried the new port
        assert _ssh_ports(host) == [22], host.check_output("ss -Htlnp")
        assert "Port 22 listens again." in out and "Port 2200 is closed." in out, out[-4000:]
        assert _sha256(host, sshd_dropin) == before and not host.file(SOCKET_DROPIN).exists
        assert over_ssh.login(22).stdout.strip() == "debian"
    finally:
        host.run(f"rm -f {GENERATOR} {UBUNTU_REQUIRES}; systemctl daemon-reload")
        over_ssh.unblock()

    # 2. Debian 12 (no generator), sshd as ssh.service: the role switches to the
    #    socket and moves it to 2200 through its drop-in.
    armstack_verify.sh(host, "systemctl disable --now ssh.socket && systemctl enable --now ssh.service")
    res = over_ssh.run(hardening_ssh_socket_activation=True, hardening_ssh_port=2200)
    assert res.returncode == 0, res.stdout[-4000:]
    assert host.service("ssh.socket").is_enabled and not host.service("ssh.service").is_enabled
    assert _ssh_ports(host) == [2200], host.check_output("ss -Htlnp")
    assert "ListenStream=0.0.0.0:2200" in host.file(SOCKET_DROPIN).content_string
    assert over_ssh.login(2200).stdout.strip() == "debian"

    # 3. Back to 22, but new connections to 22 fail: the socket stays on 2200.
    before = _sha256(host, sshd_dropin, SOCKET_DROPIN)
    over_ssh.block(22)
    res = over_ssh.run(port=2200, hardening_ssh_socket_activation=True, hardening_ssh_port=22)
    out = res.stdout
    assert res.returncode != 0 and "LOCK-OUT GUARD" in out, out[-4000:]
    assert "port 22: Connection timed out" in out, out[-4000:]  # the check tried the new port
    assert _ssh_ports(host) == [2200], host.check_output("ss -Htlnp")
    assert "Port 2200 listens again." in out and "Port 22 is closed." in out, out[-4000:]
    assert _sha256(host, sshd_dropin, SOCKET_DROPIN) == before
    assert over_ssh.login(2200).stdout.strip() == "debian"


def test_lockout_guard_refuses_without_a_key_and_changes_nothing(host):
    before = _fingerprint(host)
    res = _playbook("-e", json.dumps({"hardening_ssh_admin_user": "nokey",
                                      "hardening_ssh_admin_authorized_keys": [],
                                      "hardening_ssh_port": 2222,
                                      "hardening_firewall_allowed_tcp_ports": [22, 80, 443, 8080]}))
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "LOCK-OUT GUARD" in out and "has no usable key" in out, out[-3000:]
    assert "changed=0" in out
    assert _fingerprint(host) == before
    assert host.socket("tcp://0.0.0.0:22").is_listening


def test_lockout_guard_refuses_root_as_admin(host):
    res = _playbook("-e", json.dumps({"hardening_ssh_admin_user": "root"}))
    assert res.returncode != 0
    assert "LOCK-OUT GUARD" in res.stdout + res.stderr and "changed=0" in res.stdout


# Each string that ends up in a configuration file, a unit or a command line,
# with a value that would inject a line (or an option) there. The message names
# the variable and shows the bad value as JSON (a newline as \\n).
BAD_INPUT = [
    ({"hardening_firewall_allowed_tcp_ports": ["http"]}, "hardening_firewall_allowed_tcp_ports"),
    ({"hardening_firewall_allowed_tcp_ports": [22, 70000]}, "hardening_firewall_allowed_tcp_ports must be integers 1-65535; bad: [70000]"),
    ({"hardening_firewall_allowed_udp_ports": [0]}, "hardening_firewall_allowed_udp_ports must be integers 1-65535; bad: [0]"),
    ({"hardening_firewall_allowed_sources": ["10.0.0.0/33"]}, "10.0.0.0/33"),
    ({"hardening_firewall_allowed_sources": ["office"]}, "office"),
    ({"hardening_firewall_allowed_sources": ["192.0.2.0/24\n-A ARMSTACK-INPUT -j ACCEPT"]},
     'hardening_firewall_allowed_sources must be IPv4/IPv6 addresses or CIDRs such as 192.0.2.0/24; bad: ["192.0.2.0/24\\n-A ARMSTACK-INPUT -j ACCEPT"]'),
    ({"hardening_ssh_port": "ssh"}, "hardening_ssh_port"),
    ({"hardening_firewall_trusted_interfaces": ["+", "-i", "eth0\n-A ARMSTACK-INPUT -j ACCEPT"]},
     'hardening_firewall_trusted_interfaces must be interface names (up to 15 characters, not starting with -) with an optional '
     'trailing + wildcard; bad: ["+", "-i", "eth0\\n-A ARMSTACK-INPUT -j ACCEPT"]'),
    ({"hardening_firewall_metadata_allowed_subnets": ["172.31.250.1", "all"]},
     'hardening_firewall_metadata_allowed_subnets must be container subnets as IPv4/IPv6 CIDRs with a prefix length, such as '
     '172.31.250.0/24; bad: ["172.31.250.1", "all"]'),
    ({"hardening_firewall_metadata_allowed_bridges": ["br-+"]}, 'hardening_firewall_metadata_allowed_bridges must be bridge interface names'),
    ({"hardening_time_servers": ["pool.ntp.org\nallow all", "-4"]},
     'hardening_time_servers must be host names or IP addresses; bad: ["pool.ntp.org\\nallow all", "-4"]'),
    ({"hardening_ssh_admin_user": "-oProxyCommand=sh"}, 'hardening_ssh_admin_user must be a user name'),
    ({"hardening_ssh_allow_groups": ["ssh-users\nPermitRootLogin yes"]},
     'hardening_ssh_allow_groups must be group names (lower case letters, digits, _ -; not starting with - or a digit); '
     'bad: ["ssh-users\\nPermitRootLogin yes"]'),
    ({"hardening_ssh_ciphers": ["aes256-ctr,3des-cbc", "+aes128-cbc"]},
     'bad: ["aes256-ctr,3des-cbc", "+aes128-cbc"]'),
    ({"hardening_ssh_admin_authorized_keys": ['command="sh" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA x']},
     "hardening_ssh_admin_authorized_keys must be one OpenSSH public key line an item"),
    ({"hardening_login_banner": "Welcome to \\n (\\r)"}, "hardening_login_banner must be text up to 2048 characters"),
    ({"hardening_sysctl_overrides": {"-kernel.modules_disabled": 1}}, 'hardening_sysctl_overrides (keys) must be sysctl keys'),
    ({"hardening_sysctl_overrides": {"net.ipv4.tcp_syncookies": "1\nkernel.modules_disabled = 1"}},
     'hardening_sysctl_overrides (values) must be one-line values'),
    ({"hardening_updates_extra_origins_patterns": ['origin=x"; APT::Update::Pre-Invoke {"touch /tmp/pwned";}; //']},
     "hardening_updates_extra_origins_patterns must be Origins-Pattern lines"),
    ({"hardening_auditd_extra_rules": ["-w /etc/hosts -p wa -k hosts\n-D"]}, "hardening_auditd_extra_rules must be one auditctl rule an item"),
    ({"hardening_swap_file": "/swapfile /etc/shadow"}, "hardening_swap_file must be an absolute path"),
]


@pytest.fixture(scope="module")
def bad_input_runs():
    """Every bad input, each its own play run, four at a time (each fails in
    validation, before anything else runs): {case index: CompletedProcess}."""
    # No fact gathering: validation must fail before anything else runs.
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        return dict(enumerate(pool.map(lambda case: _playbook("-e", json.dumps(case[0]), "-e", "armstack_gather_facts=false"),
                                       BAD_INPUT)))


@pytest.mark.parametrize("index", range(len(BAD_INPUT)), ids=[f"{i}-{next(iter(extra))}" for i, (extra, _) in enumerate(BAD_INPUT)])
def test_bad_input_fails_validation(bad_input_runs, index):
    message = BAD_INPUT[index][1]
    res = bad_input_runs[index]
    out = res.stdout + (res.stderr or "")
    assert res.returncode != 0
    assert message in out, out[-2000:]
    assert "changed=0" in out
