# Copyright: (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""roles/docker/files/docker-daemon-json-check.py: the check that runs as the
`validate:` of /etc/docker/daemon.json, before the file replaces the old one.

The pure check is loaded from the script (its name is not importable); the
program is run as a subprocess with a stub `dockerd` on PATH (or none), the way
the role's validate runs it: exit codes and the lines it prints."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SCRIPT = os.path.join(ROOT, "roles", "docker", "files", "docker-daemon-json-check.py")


def _load():
    loader = importlib.machinery.SourceFileLoader("docker_daemon_json_check", SCRIPT)
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


check = _load().check

# The keys the role writes (_docker_daemon_settings in roles/docker/vars/main.yml), with the test bed's values.
GOOD = {
    "log-driver": "local",
    "log-opts": {"max-size": "10m", "max-file": "3"},
    "live-restore": True,
    "icc": False,
    "userland-proxy": False,
    "no-new-privileges": True,
    "default-ulimits": {"nofile": {"Name": "nofile", "Soft": 65536, "Hard": 65536}},
    "insecure-registries": ["armstack-registry:5000"],
    "log-level": "info",
    "registry-mirrors": [],
}


def _stub_dockerd(directory, version, validate_rc=0, validate_message=""):
    """A `dockerd` that answers --version (and --validate, for engines >= 23) and records its argv."""
    path = os.path.join(directory, "dockerd")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(
            "#!/bin/sh\n"
            'echo "$*" >> "${0%%/*}/dockerd.argv"\n'
            'if [ "$1" = --version ]; then echo "Docker version %s, build 0000000"; exit 0; fi\n'
            'if [ "$1" = --validate ]; then echo "%s" >&2; exit %d; fi\n'
            "exit 64\n" % (version, validate_message, validate_rc)
        )
    os.chmod(path, 0o755)
    return path


def run(tmp_path, config, dockerd=None, raw=False):
    """Run the program on a daemon.json holding `config`; PATH holds only the stub dockerd (if any)."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    if dockerd:
        _stub_dockerd(str(bindir), *dockerd)
    path = tmp_path / "daemon.json"
    path.write_text(config if raw else json.dumps(config), encoding="utf-8")
    proc = subprocess.run([sys.executable, SCRIPT, str(path)], capture_output=True, text=True, check=False,
                          env={"PATH": str(bindir), "LANG": "C.UTF-8"}, timeout=60)
    argv_log = bindir / "dockerd.argv"
    proc.dockerd_argv = argv_log.read_text(encoding="utf-8").splitlines() if argv_log.exists() else []
    return proc


# --- the checks dockerd 20.10 makes at start-up -------------------------------------

def test_the_roles_configuration_passes():
    assert check(GOOD) == []


def test_an_empty_object_passes():
    assert check({}) == []


@pytest.mark.parametrize("config", [[], "text", 3, None])
def test_the_top_level_must_be_an_object(config):
    assert check(config) == ["the top level must be a JSON object"]


def test_an_unknown_directive_is_refused_with_each_name_once_in_order():
    problems = check({"no-such-directive": True, "another-one": 1, "debug": False})
    assert problems == [
        "another-one: not a directive dockerd 20.10 knows (it would refuse to start)",
        "no-such-directive: not a directive dockerd 20.10 knows (it would refuse to start)",
    ]


@pytest.mark.parametrize("key, value", [("hosts", ["tcp://0.0.0.0:2375"]), ("containerd", "/run/containerd/containerd.sock")])
def test_a_directive_docker_service_passes_as_a_flag_is_refused(key, value):
    problems = check({key: value})
    assert problems == [f"{key}: also set by docker.service on the command line; dockerd would refuse to start"]


@pytest.mark.parametrize("value, type_name", [("yes", "str"), (1, "int"), (None, "NoneType"), ([True], "list")])
def test_booleans_must_be_true_or_false(value, type_name):
    assert check({"live-restore": value}) == [f"live-restore: must be true or false, not {type_name}"]


def test_lists_and_objects_must_have_their_shape():
    problems = check({"dns": "1.1.1.1", "insecure-registries": {"a": 1}, "log-opts": ["max-size=10m"], "runtimes": "runc"})
    assert problems == [
        "dns: must be a list, not str",
        "insecure-registries: must be a list, not dict",
        "log-opts: must be an object, not list",
        "runtimes: must be an object, not str",
    ]


@pytest.mark.parametrize("value", [3, 3.5, True, None, ["3"]])
def test_log_opts_values_must_be_strings(value):
    problems = check({"log-driver": "local", "log-opts": {"max-size": "10m", "max-file": value}})
    assert problems == [f'log-opts.max-file: must be a string ("{value}"), dockerd refuses numbers here']


def test_log_level_must_be_one_dockerd_knows():
    assert check({"log-level": "warn"}) == []
    assert check({"log-level": "verbose"}) == ["log-level: 'verbose' is not one of ['debug', 'error', 'fatal', 'info', 'warn']"]


@pytest.mark.parametrize("spec", [{"Soft": "1024", "Hard": 2048}, {"Soft": 1024}, {}, 1024, None])
def test_ulimits_need_integer_soft_and_hard(spec):
    assert check({"default-ulimits": {"nofile": spec}}) == ["default-ulimits.nofile: needs integer Soft and Hard"]


def test_a_ulimit_soft_above_hard_is_refused_and_equal_passes():
    assert check({"default-ulimits": {"nofile": {"Soft": 4096, "Hard": 1024}}}) == ["default-ulimits.nofile: Soft is above Hard"]
    assert check({"default-ulimits": {"nofile": {"Soft": 1024, "Hard": 1024}}}) == []


def test_live_restore_with_swarm_is_refused_but_without_live_restore_passes():
    assert check({"live-restore": True, "swarm-default-advertise-addr": "eth0"}) == ["live-restore cannot be combined with swarm mode"]
    assert check({"live-restore": False, "swarm-default-advertise-addr": "eth0"}) == []


def test_every_problem_of_one_file_is_reported():
    problems = check({"hosts": [], "live-restore": "yes", "log-opts": {"max-file": 3}, "bogus": 1})
    assert len(problems) == 4, problems


# --- the program, as the role's validate runs it --------------------------------------

def test_a_good_file_exits_0_and_prints_nothing_without_dockerd(tmp_path):
    proc = run(tmp_path, GOOD)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


@pytest.mark.parametrize(
    "config, expected",
    [
        # The cases the docker scenario also runs on the VM.
        ('{"log-driver": "local", "log-opts": {"max-file": 3}}', "log-opts.max-file: must be a string"),
        ('{"live-restore": "yes"}', "live-restore: must be true or false"),
        ('{"no-such-directive": true}', "no-such-directive: not a directive"),
        ('{"hosts": ["tcp://0.0.0.0:2375"]}', "hosts: also set by docker.service"),
        ('{"log-driver": "local",', "not readable JSON"),
        ("", "not readable JSON"),
    ],
)
def test_a_bad_file_exits_1_with_one_line_per_problem(tmp_path, config, expected):
    proc = run(tmp_path, config, dockerd=("20.10.24+dfsg1",), raw=True)
    assert proc.returncode == 1, proc
    assert len(proc.stdout.splitlines()) == 1
    assert expected in proc.stdout


def test_dockerd_20_10_is_asked_its_version_only(tmp_path):
    proc = run(tmp_path, GOOD, dockerd=("20.10.24+dfsg1",))
    assert proc.returncode == 0, proc
    assert proc.dockerd_argv == ["--version"]


def test_dockerd_23_or_later_validates_the_file_itself(tmp_path):
    # Even a file the 20.10 rules would refuse: the engine's own check decides.
    proc = run(tmp_path, {"features": {"containerd-snapshotter": True}, "new-directive": True}, dockerd=("26.1.5",))
    assert proc.returncode == 0, proc
    assert proc.dockerd_argv == ["--version", "--validate --config-file %s" % (tmp_path / "daemon.json")]


def test_dockerd_23_refusing_the_file_exits_1_with_its_message(tmp_path):
    proc = run(tmp_path, GOOD, dockerd=("24.0.7", 1, "unable to configure the Docker daemon with file daemon.json: bad"))
    assert proc.returncode == 1
    assert proc.stdout.strip() == "unable to configure the Docker daemon with file daemon.json: bad"


def test_a_version_dockerd_does_not_state_falls_back_to_the_20_10_checks(tmp_path):
    proc = run(tmp_path, {"no-such-directive": True}, dockerd=("unknown",))
    assert proc.returncode == 1
    assert proc.dockerd_argv == ["--version"]
    assert "no-such-directive: not a directive" in proc.stdout


def test_an_unreadable_file_exits_1(tmp_path):
    proc = subprocess.run([sys.executable, SCRIPT, str(tmp_path / "missing.json")], capture_output=True, text=True,
                          check=False, env={"PATH": str(tmp_path)}, timeout=60)
    assert proc.returncode == 1
    assert "missing.json: not readable JSON" in proc.stdout


@pytest.mark.parametrize("argv", [[], ["a.json", "b.json"]])
def test_a_wrong_number_of_arguments_exits_2_with_the_usage(argv):
    proc = subprocess.run([sys.executable, SCRIPT, *argv], capture_output=True, text=True, check=False, timeout=60)
    assert proc.returncode == 2
    assert "Usage: docker-daemon-json-check FILE" in proc.stderr
