"""No secret value in Ansible's output, at any verbosity, on success or failure.

The class of defect: a task that carries a vaulted value (directly, or inside a
loop item) without ``no_log: true``. Ansible prints a failed loop item whole,
``loop_control.label`` notwithstanding, and ``-vvv`` prints every module's
arguments. And a secret must never reach a command line (``ps`` shows it to
every user of the host), with or without no_log.

Which variables carry secrets is read from three places, so that a new secret
is caught without editing this file:

- an option in a role's ``meta/argument_specs.yml`` with ``no_log: true``, or
  with such an option anywhere among its nested options;
- a variable of the test-bed or example inventories, or of a molecule
  playbook's ``vars:``, whose value holds a ``!vault`` scalar anywhere;
- a variable whose value templates a ``vault_*`` variable (the example
  inventory's convention).

Rules, for every task of every role, playbook and molecule playbook:

1. A task whose text (its arguments, loop, label, messages; not its
   conditions, which Ansible prints as text, never as values) names a
   secret-bearing variable has ``no_log: true`` (itself or on an enclosing
   block). ``assert`` tasks may test secrets in ``that`` without it.
2. ``command``, ``shell``, ``raw`` and ``script`` never name a secret-bearing
   variable: the value would be on the host's command line.
"""

from __future__ import annotations

import pathlib
import re

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]

# Keys Ansible evaluates as conditions: printed as text on failure, never as values.
CONDITION_KEYS = {"when", "changed_when", "failed_when", "until", "that", "name", "no_log", "tags"}
COMMAND_MODULES = {"command", "shell", "raw", "script", "ansible.builtin.command", "ansible.builtin.shell",
                   "ansible.builtin.raw", "ansible.builtin.script"}
BLOCK_KEYS = ("block", "rescue", "always")


class _VaultLoader(yaml.SafeLoader):
    """A SafeLoader that keeps !vault scalars recognisable."""


class Vaulted(str):
    pass


_VaultLoader.add_constructor("!vault", lambda loader, node: Vaulted(loader.construct_scalar(node)))
_VaultLoader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))


def load(path: pathlib.Path):
    with path.open(encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_VaultLoader)  # noqa: S506 (a SafeLoader subclass)


def holds_vault(value) -> bool:
    if isinstance(value, Vaulted):
        return True
    if isinstance(value, dict):
        return any(holds_vault(v) for v in value.values())
    if isinstance(value, list):
        return any(holds_vault(v) for v in value)
    if isinstance(value, str):
        return bool(re.search(r"\{\{[^}]*\bvault_\w+", value))
    return False


def spec_has_no_log(option: dict) -> bool:
    if option.get("no_log"):
        return True
    return any(spec_has_no_log(sub) for sub in (option.get("options") or {}).values())


def secret_variables() -> set[str]:
    names: set[str] = set()
    for spec_file in sorted(ROOT.glob("roles/*/meta/argument_specs.yml")):
        for entry in (load(spec_file) or {}).get("argument_specs", {}).values():
            for name, option in (entry.get("options") or {}).items():
                if spec_has_no_log(option):
                    names.add(name)
    var_files = sorted(ROOT.glob("inventories/*/group_vars/**/*.yml")) + sorted(ROOT.glob("inventories/*/host_vars/**/*.yml"))
    for path in var_files:
        data = load(path) or {}
        if isinstance(data, dict):
            names |= {k for k, v in data.items() if holds_vault(v) or (isinstance(k, str) and k.startswith("vault_"))}
    for path in sorted(ROOT.glob("molecule/*/*.yml")):
        for play in load(path) or []:
            if isinstance(play, dict) and isinstance(play.get("vars"), dict):
                names |= {k for k, v in play["vars"].items() if holds_vault(v)}
    return names


def task_files() -> list[pathlib.Path]:
    files = []
    for pattern in ("roles/*/tasks/*.yml", "roles/*/handlers/*.yml", "playbooks/*.yml", "molecule/*/*.yml"):
        files += sorted(ROOT.glob(pattern))
    return [f for f in files if f.name != "molecule.yml"]


def iter_tasks(items, inherited_no_log=False):
    """(task, no_log in force) for every task, descending into blocks and plays."""
    for item in items or []:
        if not isinstance(item, dict):
            continue
        no_log = inherited_no_log or bool(item.get("no_log"))
        if "hosts" in item:  # a play
            for key in ("pre_tasks", "tasks", "post_tasks", "handlers"):
                yield from iter_tasks(item.get(key), no_log)
            continue
        if any(k in item for k in BLOCK_KEYS):
            for key in BLOCK_KEYS:
                yield from iter_tasks(item.get(key), no_log)
            continue
        yield item, no_log


def text_outside_conditions(task: dict) -> str:
    kept = {}
    for key, value in task.items():
        if key in CONDITION_KEYS:
            continue
        if isinstance(value, dict) and key.endswith("assert"):
            value = {k: v for k, v in value.items() if k != "that"}
        kept[key] = value
    return " ".join(_strings(kept))


def _strings(value):
    if isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif value is not None:
        yield str(value)


def module_of(task: dict) -> str:
    known = {"loop", "loop_control", "register", "vars", "become", "become_user", "delegate_to", "run_once", "notify",
             "check_mode", "diff", "environment", "ignore_errors", "args", "retries", "delay", "listen", "timeout",
             "with_items", "with_dict", "with_list", "with_subelements", "with_nested", "throttle", "any_errors_fatal"}
    modules = [k for k in task if k not in known and k not in CONDITION_KEYS]
    return modules[0] if modules else ""


def secret_fields() -> set[str]:
    """Names of nested options marked no_log (a loop item's secret fields: password, secret_access_key)."""
    fields: set[str] = set()

    def walk(options):
        for name, option in (options or {}).items():
            if option.get("no_log"):
                fields.add(name)
            walk(option.get("options"))
    for spec_file in sorted(ROOT.glob("roles/*/meta/argument_specs.yml")):
        for entry in (load(spec_file) or {}).get("argument_specs", {}).values():
            for option in (entry.get("options") or {}).values():
                walk(option.get("options"))
    return fields | {"password", "secret_access_key", "access_key_id", "token", "content"}


SECRETS = secret_variables()
SECRET_FIELDS = sorted(secret_fields())
CASES = []
for _file in task_files():
    for _task, _no_log in iter_tasks(load(_file)):
        CASES.append((_file, _task, _no_log))


def test_secret_variables_are_known():
    # The three sources must find at least the secrets the collection has today.
    for name in ("backup_restic_password", "backup_repositories", "secrets_items", "observability_grafana_admin_password"):
        assert name in SECRETS, f"{name} is not recognised as secret-bearing: {sorted(SECRETS)}"


JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.S)


# Derivations that yield names or counts, never values.
SAFE_DERIVATIONS = re.compile(r"\b(\w+)\s*\|\s*(map\(attribute=['\"](name|type)['\"]\)|length)")


def _uses(text: str) -> list[str]:
    """Secret-bearing variables named inside Jinja expressions (plain words in a message are fine)."""
    expressions = SAFE_DERIVATIONS.sub("SAFE", " ".join(JINJA.findall(text)))
    return sorted(name for name in SECRETS if re.search(r"(?<![\w.])" + re.escape(name) + r"\b", expressions))


@pytest.mark.parametrize(("path", "task", "no_log"), CASES,
                         ids=[f"{c[0].relative_to(ROOT)}::{c[1].get('name', '?')}" for c in CASES])
def test_tasks_carrying_secrets_are_no_log(path, task, no_log):
    used = _uses(text_outside_conditions(task))
    if not used or no_log:
        return
    module = module_of(task)
    if module in ("assert", "ansible.builtin.assert"):
        # `that` is excluded above; the messages and a loop must not name a secret.
        pytest.fail(f"{path.relative_to(ROOT)}: assert '{task.get('name')}' names {used} in its messages or loop; "
                    "print names, never values, or set no_log: true")
    pytest.fail(f"{path.relative_to(ROOT)}: task '{task.get('name')}' carries {used} without no_log: true "
                "(a failed loop item and -vvv print the value)")


@pytest.mark.parametrize(("path", "task", "no_log"), CASES,
                         ids=[f"{c[0].relative_to(ROOT)}::{c[1].get('name', '?')}" for c in CASES])
def test_no_secret_on_a_command_line(path, task, no_log):
    module = module_of(task)
    if module not in COMMAND_MODULES:
        return
    # The arguments (and the task's vars), not the loop: a loop item's name on
    # a command line is fine, its secret fields are not. `stdin` is a pipe to the
    # process, not its command line (ps never shows it), so it is the way to hand
    # a command a secret; rule 1 (no_log) still applies to a task that does.
    parts = {k: task[k] for k in (module, "args", "vars", "environment") if k in task}
    for key in (module, "args"):
        if isinstance(parts.get(key), dict):
            parts[key] = {k: v for k, v in parts[key].items() if k != "stdin"}
    text = text_outside_conditions(parts)
    used = _uses(text) + sorted(set(re.findall(r"\bitem\.(" + "|".join(SECRET_FIELDS) + r")\b", " ".join(JINJA.findall(text)))))
    assert not used, (f"{path.relative_to(ROOT)}: '{task.get('name')}' puts {used} on a command line "
                      "(visible in ps to every user); pass it in a file or on stdin")


# The module whose result is a container's inspect data: its Config.Env holds
# the whole environment (env files and every value the inventory passed),
# printed by -v for an ok result and by any failure.
INSPECTING_MODULES = {"community.docker.docker_container_info", "docker_container_info"}


@pytest.mark.parametrize(("path", "task", "no_log"), CASES,
                         ids=[f"{c[0].relative_to(ROOT)}::{c[1].get('name', '?')}" for c in CASES])
def test_container_inspect_results_are_no_log(path, task, no_log):
    module = module_of(task)
    if module in INSPECTING_MODULES and not no_log:
        pytest.fail(f"{path.relative_to(ROOT)}: '{task.get('name')}' ({module}) returns the container's whole "
                    "environment; set no_log: true and use only the fields it needs")
