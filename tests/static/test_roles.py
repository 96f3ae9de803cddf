"""Static checks every role must pass: the conventions of STYLE.md made executable.

- every role has meta/argument_specs.yml, defaults/main.yml, README.md and a
  molecule scenario of its own name;
- the argument spec and the defaults have the same keys (an option documented
  but not defaulted, or defaulted but not documented, is a bug either way);
- every variable a role defines carries its role's prefix (internal ones, in
  vars/, carry `_<role>_`);
- every task file names every task.
"""

from __future__ import annotations

import pathlib

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
ROLES = sorted(p for p in (ROOT / "roles").iterdir() if p.is_dir()) if (ROOT / "roles").is_dir() else []


def _load(path: pathlib.Path):
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def test_there_are_roles():
    assert ROLES, "no roles under roles/"


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_role_has_required_files(role: pathlib.Path):
    for rel in ("meta/argument_specs.yml", "meta/main.yml", "defaults/main.yml", "tasks/main.yml", "README.md"):
        assert (role / rel).is_file(), f"{role.name}: {rel} is missing"
    assert (ROOT / "molecule" / role.name / "molecule.yml").is_file(), f"{role.name}: no molecule scenario molecule/{role.name}"


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_argument_specs_match_defaults(role: pathlib.Path):
    specs = _load(role / "meta/argument_specs.yml")["argument_specs"]["main"]
    options = specs.get("options") or {}
    defaults = _load(role / "defaults/main.yml") or {}
    documented_only = sorted(set(options) - set(defaults))
    # An option may be required instead of defaulted.
    documented_only = [k for k in documented_only if not options[k].get("required")]
    assert not documented_only, f"{role.name}: documented in argument_specs but not in defaults: {documented_only}"
    defaulted_only = sorted(set(defaults) - set(options))
    assert not defaulted_only, f"{role.name}: in defaults but not documented in argument_specs: {defaulted_only}"
    for name, spec in options.items():
        assert spec.get("description"), f"{role.name}: option {name} has no description"
        assert spec.get("type"), f"{role.name}: option {name} has no type"


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_variables_carry_the_role_prefix(role: pathlib.Path):
    prefix = f"{role.name}_"
    defaults = _load(role / "defaults/main.yml") or {}
    bad = [k for k in defaults if not k.startswith(prefix)]
    assert not bad, f"{role.name}: defaults without the prefix {prefix!r}: {bad}"
    for vars_file in sorted((role / "vars").glob("*.yml")):
        data = _load(vars_file) or {}
        bad = [k for k in data if not k.startswith(f"_{prefix}")]
        assert not bad, f"{role.name}: {vars_file.name} variables must start with _{prefix}: {bad}"


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_every_task_is_named(role: pathlib.Path):
    for task_file in sorted(list((role / "tasks").glob("*.yml")) + list((role / "handlers").glob("*.yml"))):
        for task in _load(task_file) or []:
            assert task.get("name"), f"{role.name}/{task_file.name}: a task has no name: {task}"
            assert task["name"][0].isupper(), f"{role.name}/{task_file.name}: task names start uppercase: {task['name']}"


def test_site_playbook_runs_every_role():
    site = (ROOT / "playbooks/site.yml").read_text(encoding="utf-8")
    missing = [r.name for r in ROLES if f"armstack.deploy.{r.name}" not in site]
    assert not missing, f"playbooks/site.yml does not run: {missing}"


# journald has one owner: the logrotate role writes its drop-in (size, retention,
# storage). A second role writing one would make the journal's settings depend
# on the order of two files and restart journald twice.
JOURNALD_OWNER = "logrotate"


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_only_the_owner_writes_a_journald_drop_in(role: pathlib.Path):
    if role.name == JOURNALD_OWNER:
        assert "journald.conf.d" in (role / "tasks/journald.yml").read_text(encoding="utf-8")
        return
    offenders = []
    for path in sorted(p for sub in ("tasks", "handlers", "templates", "files", "vars", "defaults") for p in (role / sub).rglob("*")
                       if p.is_file()):
        text = path.read_text(encoding="utf-8", errors="replace")
        if "journald.conf" in text or "systemd-journald" in text:
            offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, (f"{role.name} configures journald ({offenders}); the {JOURNALD_OWNER} role owns it: "
                           f"give it an option instead")


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_argument_specs_declare_the_defaults(role: pathlib.Path):
    """`ansible-doc -t role` shows each default: the spec declares it, equal to defaults/main.yml.

    ansible-core does not apply a role spec's defaults; defaults/main.yml stays the
    source of values, so the two must agree (after YAML load; a templated default is
    the same string). An option that is not required has a default.
    """
    options = _load(role / "meta/argument_specs.yml")["argument_specs"]["main"].get("options") or {}
    defaults = _load(role / "defaults/main.yml") or {}
    missing = sorted(k for k in defaults if k in options and "default" not in options[k])
    assert not missing, f"{role.name}: options without a default in argument_specs: {missing}"
    differ = sorted(k for k in defaults if k in options and options[k]["default"] != defaults[k])
    assert not differ, f"{role.name}: argument_specs defaults differ from defaults/main.yml: {differ}"
    undefaulted = sorted(k for k, spec in options.items() if not spec.get("required") and "default" not in spec)
    assert not undefaulted, f"{role.name}: options neither required nor defaulted: {undefaulted}"
