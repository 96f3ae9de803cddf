"""docs/upstream-versions.md is the one list of pinned upstream releases: it
must match the roles' defaults (and the backend's accessory presets), name
every pin they hold, and the role READMEs must not quote another tag of a
pinned image.
"""

from __future__ import annotations

import pathlib
import re

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
TABLE = ROOT / "docs" / "upstream-versions.md"
# | component | `variable` | `pinned` | upstream | checked |
ROW = re.compile(r"^\|[^|]+\|\s*`(?P<var>[A-Za-z0-9_.]+)`\s*\|\s*`(?P<value>[^`]+)`\s*\|")
# Minimum versions the roles accept are requirements, not pins of a release.
NOT_PINS = {"backup_restic_min_version"}


def _load(path: pathlib.Path):
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


def _role_of(var: str) -> str:
    name = var.lstrip("_").split(".", 1)[0]
    for role in sorted((ROOT / "roles").iterdir(), key=lambda p: -len(p.name)):
        if name.startswith(role.name + "_"):
            return role.name
    raise AssertionError(f"{var}: no role has this prefix")


def _resolve(var: str):
    role = ROOT / "roles" / _role_of(var)
    source = role / ("vars" if var.startswith("_") else "defaults") / "main.yml"
    value = _load(source)
    for part in var.split("."):
        assert isinstance(value, dict) and part in value, f"{var}: not in {source.relative_to(ROOT)}"
        value = value[part]
    return value


def _table() -> dict[str, str]:
    rows = {}
    for line in TABLE.read_text(encoding="utf-8").splitlines():
        match = ROW.match(line)
        if match:
            assert match["var"] not in rows, f"{match['var']} is listed twice in {TABLE.name}"
            rows[match["var"]] = match["value"]
    return rows


def _pins_in_roles() -> set[str]:
    """Every pin the roles hold: *_image and *_version defaults, restic's
    checksums and the accessory presets' images."""
    pins = set()
    for defaults in sorted((ROOT / "roles").glob("*/defaults/main.yml")):
        for key, value in _load(defaults).items():
            if key in NOT_PINS or not isinstance(value, str) or not value or "{{" in value:
                continue
            if key.endswith(("_image", "_version")):
                pins.add(key)
    for arch in _resolve("backup_restic_checksums"):
        pins.add(f"backup_restic_checksums.{arch}")
    for preset, spec in _resolve("_backend_accessory_presets").items():
        if spec.get("image"):
            pins.add(f"_backend_accessory_presets.{preset}.image")
    return pins


def test_table_exists_and_has_rows():
    assert TABLE.is_file(), "docs/upstream-versions.md is missing"
    assert _table(), f"no pin rows found in {TABLE.name}"


@pytest.mark.parametrize("var", sorted(_table()) if TABLE.is_file() else [])
def test_table_row_matches_the_role(var: str):
    listed = _table()[var]
    actual = _resolve(var)
    assert str(actual) == listed, f"{var}: the role pins {actual!r}, {TABLE.name} says {listed!r}"


def test_every_pin_is_listed():
    missing = sorted(_pins_in_roles() - set(_table()))
    assert not missing, f"pinned in the roles but missing from {TABLE.name}: {missing}"


def test_role_readmes_quote_the_pinned_tags():
    images = {v.rsplit(":", 1)[0]: v for k, v in _table().items() if k.endswith("image") and ":" in v}
    stale = []
    for readme in sorted((ROOT / "roles").glob("*/README.md")):
        for ref in re.findall(r"[a-z0-9][a-z0-9./-]*:[A-Za-z0-9_][A-Za-z0-9_.-]*", readme.read_text(encoding="utf-8")):
            repo = ref.rsplit(":", 1)[0]
            if repo in images and ref != images[repo]:
                stale.append(f"{readme.relative_to(ROOT)}: {ref} (pinned: {images[repo]})")
    assert not stale, "role READMEs quote another tag than the pin:\n" + "\n".join(stale)
