"""What the built collection holds, and the metadata the registries read.

- the tarball `ansible-galaxy collection build` makes holds what users need and
  none of the test bed, the molecule scenarios, the benchmarks or the local
  test target's inventory (its secret files and demo vault password);
- it carries the licence it declares;
- galaxy.yml names no link that leads nowhere;
- meta/runtime.yml's requires_ansible and every role's min_ansible_version
  name the same oldest ansible-core, one the unit tests can run on.
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import tarfile

import pytest
import yaml
from ansible.module_utils.compat.version import LooseVersion

ROOT = pathlib.Path(__file__).resolve().parents[2]

# Paths (prefixes) that must never ship.
NOT_SHIPPED = (
    ".cache/",
    ".ci/",
    ".config/",
    ".git/",
    ".venv/",
    "bench/",
    "inventories/local/",
    "molecule/",
    "testbed/",
    "tests/output/",
    "tests/static/",
)
# Paths users need.
SHIPPED = (
    "LICENSE",
    "README.md",
    "meta/runtime.yml",
    "playbooks/site.yml",
    "inventories/example/hosts.yml",
    "plugins/modules/memory_headroom.py",
    "plugins/doc_fragments/attributes.py",
    "roles/backup/tasks/main.yml",
    # ansible-test units runs on the built collection (testbed/test).
    "tests/unit/requirements.txt",
    "tests/unit/backup/stubs/restic.py",
)


def _load(path: pathlib.Path):
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


@pytest.fixture(scope="module")
def tarball_names(tmp_path_factory):
    galaxy = shutil.which("ansible-galaxy")
    if galaxy is None:
        pytest.fail("ansible-galaxy is not on PATH (run from the venv testbed/lib.sh makes)")
    out = tmp_path_factory.mktemp("build")
    subprocess.run([galaxy, "collection", "build", "--force", "--output-path", str(out), str(ROOT)],
                   check=True, capture_output=True, text=True)
    (tarball,) = out.glob("armstack-deploy-*.tar.gz")
    with tarfile.open(tarball) as tar:
        return [m.name + ("/" if m.isdir() else "") for m in tar.getmembers()]


def test_tarball_leaves_out_what_users_do_not_need(tarball_names):
    shipped = [n for n in tarball_names if n.startswith(NOT_SHIPPED) or n.rstrip("/") + "/" in NOT_SHIPPED]
    assert not shipped, f"the tarball holds files users do not need: {shipped}"
    stray = [n for n in tarball_names if n.endswith(("vault-password", ".pyc")) or "__pycache__" in n]
    assert not stray, f"the tarball holds local files: {stray}"


def test_tarball_holds_what_users_need(tarball_names):
    missing = [n for n in SHIPPED if n not in tarball_names]
    assert not missing, f"the tarball lacks {missing}"


def test_license_file_is_the_declared_licence():
    galaxy = _load(ROOT / "galaxy.yml")
    assert galaxy["license"] == ["GPL-3.0-or-later"]
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "GNU GENERAL PUBLIC LICENSE" in text and "Version 3, 29 June 2007" in text
    for meta in sorted(ROOT.glob("roles/*/meta/main.yml")):
        assert _load(meta)["galaxy_info"]["license"] == "GPL-3.0-or-later", (
            f"{meta.relative_to(ROOT)} declares a licence other than the collection's")


def test_galaxy_links_are_real_or_absent():
    galaxy = _load(ROOT / "galaxy.yml")
    for key in ("repository", "documentation", "homepage", "issues"):
        value = galaxy.get(key)
        assert not value or (value.startswith("https://") and ".invalid" not in value and "example." not in value), (
            f"galaxy.yml {key}: {value!r} leads nowhere; give a real URL or leave it out")


def test_requires_ansible_matches_every_role():
    spec = _load(ROOT / "meta" / "runtime.yml")["requires_ansible"]
    lower = [part.strip()[2:] for part in spec.split(",") if part.strip().startswith(">=")]
    assert len(lower) == 1, f"requires_ansible {spec!r} has no single lower bound"
    oldest = LooseVersion(lower[0])
    # The unit tests use ansible.module_utils.testing.patch_module_args, new in 2.19.
    assert oldest >= LooseVersion("2.19"), f"requires_ansible {spec!r} admits a release the unit tests cannot run on"
    for meta in sorted(ROOT.glob("roles/*/meta/main.yml")):
        role_min = LooseVersion(str(_load(meta)["galaxy_info"]["min_ansible_version"]))
        assert role_min.version[:2] == oldest.version[:2], (
            f"{meta.relative_to(ROOT)}: min_ansible_version {role_min} but meta/runtime.yml requires_ansible {spec!r}")


@pytest.mark.parametrize("module", ["memory_headroom", "health_check"])
def test_read_only_modules_share_the_attributes_fragment(module):
    source = (ROOT / "plugins" / "modules" / f"{module}.py").read_text(encoding="utf-8")
    doc = yaml.safe_load(source.split('DOCUMENTATION = r"""', 1)[1].split('"""', 1)[0])
    assert "armstack.deploy.attributes" in doc.get("extends_documentation_fragment", []), (
        f"{module} does not use the shared doc fragment armstack.deploy.attributes")
    assert "attributes" not in doc, f"{module} repeats the attributes the fragment documents"
