"""Roles take what other roles produce as explicit inputs, and production
roles hold no test-bed concerns.

- no role's defaults, vars, tasks, handlers, templates or argument spec reads
  another role's variable through `default(...)` or `is (not) defined`: such a
  fallback turns a missing input (a play that did not run) into a silently
  empty one (a `--tags backend` run once deployed the backend without its
  secret files that way);
- no playbook or inventory reads a fact that a role sets for others (a public
  `set_fact` name) through such a fallback either: the wiring fails loudly;
- no role prints the test bed's "SKIPPED HERE:" / "NOT STARTED:" notes: the
  molecule scenario says what it skips.
"""

from __future__ import annotations

import pathlib
import re

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
ROLES = sorted(p for p in (ROOT / "roles").iterdir() if p.is_dir()) if (ROOT / "roles").is_dir() else []
ROLE_NAMES = [r.name for r in ROLES]
ROLE_PARTS = ("defaults", "vars", "tasks", "handlers", "templates", "meta")
# A variable name not preceded by a word character or a dot (so neither
# `_backend_secrets_dir` nor `item.secrets_x`), then a fallback.
_FALLBACK = r"(?<![\w.])({name})\s*(?:\|\s*(?:default|d)\s*\(|is\s+(?:not\s+)?(?:defined|undefined)\b)"


def _role_files(role: pathlib.Path):
    for part in ROLE_PARTS:
        base = role / part
        if base.is_dir():
            yield from sorted(p for p in base.rglob("*") if p.is_file())


def _fallbacks(text: str, name_pattern: str) -> list[str]:
    return sorted(set(re.findall(_FALLBACK.format(name=name_pattern), text)))


def test_the_fallback_pattern_finds_what_it_should():
    other = r"secrets_\w+"
    assert _fallbacks("{{ secrets_restart_services | default([]) }}", other) == ["secrets_restart_services"]
    assert _fallbacks("{{ [] if secrets_paths is not defined else [] }}", other) == ["secrets_paths"]
    assert _fallbacks("when: secrets_paths is defined", other) == ["secrets_paths"]
    assert _fallbacks("{{ _backend_secrets_dir | default('') }}", other) == []
    assert _fallbacks("{{ item.secrets_x | default('') }}", other) == []
    assert _fallbacks("{{ backend_secrets_restart_services }}", other) == []


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_no_role_reads_another_roles_variable_through_a_fallback(role: pathlib.Path):
    others = "|".join(re.escape(n) for n in ROLE_NAMES if n != role.name)
    pattern = rf"(?:{others})_\w+"
    found = {}
    for path in _role_files(role):
        hits = _fallbacks(path.read_text(encoding="utf-8", errors="replace"), pattern)
        if hits:
            found[str(path.relative_to(ROOT))] = hits
    assert not found, (
        f"{role.name} reads other roles' variables through default()/is defined: {found}. "
        "Take them as this role's own inputs (with its prefix) and let the playbook pass them.")


def _public_facts() -> dict[str, str]:
    """{fact name: role} of the facts roles set with set_fact for others (no leading underscore)."""
    facts = {}
    for role in ROLES:
        for task_file in sorted((role / "tasks").glob("*.yml")):
            for task in _walk(yaml.safe_load(task_file.read_text(encoding="utf-8")) or []):
                args = task.get("ansible.builtin.set_fact") or task.get("set_fact")
                if isinstance(args, dict):
                    facts.update({k: role.name for k in args if not k.startswith("_") and k != "cacheable"})
    return facts


def _walk(tasks):
    for task in tasks:
        if isinstance(task, dict):
            yield task
            for key in ("block", "rescue", "always"):
                yield from _walk(task.get(key) or [])


def test_roles_set_facts_for_others():
    facts = _public_facts()
    assert {"secrets_paths", "secrets_restart_services", "backend_backup_jobs"} <= set(facts), facts


def test_no_playbook_or_inventory_reads_a_roles_facts_through_a_fallback():
    facts = _public_facts()
    pattern = "|".join(re.escape(f) for f in sorted(facts))
    files = [p for top in ("playbooks", "inventories", "molecule") if (ROOT / top).is_dir()
             for p in sorted((ROOT / top).rglob("*.yml"))]
    found = {}
    for path in files:
        hits = _fallbacks(path.read_text(encoding="utf-8", errors="replace"), pattern)
        if hits:
            found[str(path.relative_to(ROOT))] = hits
    assert not found, (
        f"role facts read through default()/is defined: {found}. A play that did not run must fail "
        "loudly (e.g. `| mandatory('... run the secrets play ...')`), not pass an empty input.")


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_no_role_prints_test_bed_notes(role: pathlib.Path):
    found = [str(p.relative_to(ROOT)) for p in _role_files(role)
             if re.search(r"SKIPPED HERE|NOT STARTED", p.read_text(encoding="utf-8", errors="replace"))]
    assert not found, (
        f"{role.name} prints the test bed's SKIPPED HERE / NOT STARTED notes in {found}: "
        "the molecule scenario (converge playbook or verifier) says what it skips.")
