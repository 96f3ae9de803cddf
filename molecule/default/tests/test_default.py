"""Full-stack verification: what playbooks/site.yml promises, checked on the VM."""

import os

import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("all")


def test_target_runs_systemd(host):
    assert host.run("systemctl is-system-running").stdout.strip() in {"running", "degraded"}
