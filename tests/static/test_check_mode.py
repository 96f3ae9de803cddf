"""Check mode (`--check --diff`) of the roles whose check mode the molecule
scenarios run (the hardening scenario runs hardening and docker in check mode
on a fresh and on a converged VM).

A command or shell task that only reads (changed_when: false) is skipped in
check mode unless it says `check_mode: false`; whatever uses its result then
fails or decides on nothing (the SSH algorithm probe of issue 11/14 was such a
task). Each such task must run in check mode, or be skipped there on purpose
(a `when` that names ansible_check_mode).
"""

from __future__ import annotations

import pathlib

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
ROLES = ("hardening", "docker")
COMMANDS = ("ansible.builtin.command", "ansible.builtin.shell")


def _tasks(tasks):
    for task in tasks or []:
        if not isinstance(task, dict):
            continue
        for key in ("block", "rescue", "always"):
            yield from _tasks(task.get(key))
        yield task


def _read_only_commands():
    for role in ROLES:
        for path in sorted((ROOT / "roles" / role / "tasks").glob("*.yml")):
            for task in _tasks(yaml.safe_load(path.read_text(encoding="utf-8"))):
                if any(key in task for key in COMMANDS) and task.get("changed_when") is False:
                    yield pytest.param(path, task, id=f"{role}/{path.name}::{task.get('name')}")


@pytest.mark.parametrize("path, task", list(_read_only_commands()))
def test_read_only_commands_run_in_check_mode(path, task):
    when = task.get("when", [])
    when = " ".join(when) if isinstance(when, list) else str(when)
    assert task.get("check_mode") is False or "ansible_check_mode" in when, (
        f"{path.relative_to(ROOT)}: '{task.get('name')}' only reads (changed_when: false) but is skipped in check mode: "
        "add check_mode: false, or skip it there on purpose with a `when` on ansible_check_mode")
