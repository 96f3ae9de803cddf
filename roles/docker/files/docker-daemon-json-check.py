# Copyright: armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check a candidate /etc/docker/daemon.json before it replaces the old one.

Usage: docker-daemon-json-check FILE

dockerd >= 23 has `dockerd --validate --config-file FILE`, which this script runs
when it is there. Older engines (Debian 12's and Ubuntu 22.04's docker.io 20.10)
have no such flag and refuse to START on a bad file, so the checks dockerd 20.10
makes at start-up are repeated here: the file is a JSON object, every key is a
directive 20.10 knows ("the following directives don't match any configuration
option"), no key conflicts with the flags the packaged unit passes (-H,
--containerd), the types are right, and log-opts values are strings.
Exit 0 when the file is good, 1 with one line per problem otherwise.
"""

import json
import re
import subprocess
import sys

# Directives of dockerd 20.10 on Linux (daemon/config, cmd/dockerd/config*.go).
KNOWN_20_10 = {
    "allow-nondistributable-artifacts", "api-cors-header", "authorization-plugins",
    "bip", "bridge", "builder", "cgroup-parent", "cluster-advertise", "cluster-store",
    "cluster-store-opts", "containerd", "containerd-namespace",
    "containerd-plugins-namespace", "cpu-rt-period", "cpu-rt-runtime", "data-root",
    "debug", "default-address-pools", "default-cgroupns-mode", "default-gateway",
    "default-gateway-v6", "default-ipc-mode", "default-runtime", "default-shm-size",
    "default-ulimits", "dns", "dns-opts", "dns-search", "exec-opts", "exec-root",
    "experimental", "features", "fixed-cidr", "fixed-cidr-v6", "group", "hosts", "icc",
    "init", "init-path", "insecure-registries", "ip", "ip-forward", "ip-masq",
    "iptables", "ip6tables", "ipv6", "labels", "live-restore", "log-driver", "log-level",
    "log-opts", "max-concurrent-downloads", "max-concurrent-uploads",
    "max-download-attempts", "metrics-addr", "mtu", "network-control-plane-mtu",
    "no-new-privileges", "node-generic-resources", "oom-score-adjust", "pidfile",
    "raw-logs", "registry-mirrors", "runtimes", "seccomp-profile", "selinux-enabled",
    "shutdown-timeout", "storage-driver", "storage-opts", "swarm-default-advertise-addr",
    "tls", "tlscacert", "tlscert", "tlskey", "tlsverify", "userland-proxy",
    "userland-proxy-path", "userns-remap",
}
BOOLEANS = {
    "debug", "experimental", "icc", "init", "ip-forward", "ip-masq", "iptables",
    "ip6tables", "ipv6", "live-restore", "no-new-privileges", "raw-logs",
    "selinux-enabled", "tls", "tlsverify", "userland-proxy",
}
LISTS = {
    "allow-nondistributable-artifacts", "authorization-plugins", "default-address-pools",
    "dns", "dns-opts", "dns-search", "exec-opts", "insecure-registries", "labels",
    "node-generic-resources", "registry-mirrors", "storage-opts",
}
OBJECTS = {"default-ulimits", "features", "log-opts", "runtimes", "builder"}
# Set by the packaged docker.service on the command line: the same directive in
# daemon.json makes dockerd refuse to start ("directives are specified both as a
# flag and in the configuration file").
FLAG_CONFLICTS = {"hosts", "containerd"}
LOG_LEVELS = {"debug", "info", "warn", "error", "fatal"}


def dockerd_major():
    try:
        out = subprocess.run(["dockerd", "--version"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return None
    match = re.search(r"version (\d+)\.", out)
    return int(match.group(1)) if match else None


def check(config):
    problems = []
    if not isinstance(config, dict):
        return ["the top level must be a JSON object"]
    for key in sorted(set(config) - KNOWN_20_10):
        problems.append(f"{key}: not a directive dockerd 20.10 knows (it would refuse to start)")
    for key in sorted(set(config) & FLAG_CONFLICTS):
        problems.append(f"{key}: also set by docker.service on the command line; dockerd would refuse to start")
    for key in sorted(set(config) & BOOLEANS):
        if not isinstance(config[key], bool):
            problems.append(f"{key}: must be true or false, not {type(config[key]).__name__}")
    for key in sorted(set(config) & LISTS):
        if not isinstance(config[key], list):
            problems.append(f"{key}: must be a list, not {type(config[key]).__name__}")
    for key in sorted(set(config) & OBJECTS):
        if not isinstance(config[key], dict):
            problems.append(f"{key}: must be an object, not {type(config[key]).__name__}")
    for opt, value in (config.get("log-opts") or {}).items() if isinstance(config.get("log-opts"), dict) else []:
        if not isinstance(value, str):
            problems.append(f"log-opts.{opt}: must be a string (\"{value}\"), dockerd refuses numbers here")
    if "log-level" in config and config["log-level"] not in LOG_LEVELS:
        problems.append(f"log-level: {config['log-level']!r} is not one of {sorted(LOG_LEVELS)}")
    ulimits = config.get("default-ulimits")
    if isinstance(ulimits, dict):
        for name, spec in ulimits.items():
            if not (isinstance(spec, dict) and isinstance(spec.get("Soft"), int) and isinstance(spec.get("Hard"), int)):
                problems.append(f"default-ulimits.{name}: needs integer Soft and Hard")
            elif spec["Soft"] > spec["Hard"]:
                problems.append(f"default-ulimits.{name}: Soft is above Hard")
    if config.get("live-restore") and "swarm-default-advertise-addr" in config:
        problems.append("live-restore cannot be combined with swarm mode")
    return problems


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        with open(argv[1], encoding="utf-8") as handle:
            config = json.load(handle)
    except (OSError, ValueError) as exc:
        print(f"{argv[1]}: not readable JSON: {exc}")
        return 1
    major = dockerd_major()
    if major is not None and major >= 23:
        # The engine's own check knows its own version best.
        result = subprocess.run(["dockerd", "--validate", "--config-file", argv[1]], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            print((result.stderr or result.stdout).strip())
            return 1
        return 0
    problems = check(config)
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
