# Copyright: (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""roles/hardening/files/check-uu-origins.py: does each unattended-upgrades
Origins-Pattern match an origin of the configured apt sources?

On a host the check reads apt's cache (python3-apt) and loads the matching code
from /usr/bin/unattended-upgrade. Here both are stand-ins: an `apt_pkg` whose
cache lists the origins a test names, and an unattended-upgrade program holding
upstream's match_whitelist_string (unattended-upgrades 2.9, Debian 12), with
${distro_codename} standing for bookworm."""

from __future__ import annotations

import importlib.util
import os
import sys
import types

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
ROLE = os.path.join(ROOT, "roles", "hardening")
SCRIPT = os.path.join(ROLE, "files", "check-uu-origins.py")

UNATTENDED_UPGRADE = r'''
import fnmatch


class UnknownMatcherError(ValueError):
    pass


def substitute(line):
    return line.replace("${distro_id}", "Debian").replace("${distro_codename}", "bookworm")


def match_whitelist_string(whitelist, origin):
    whitelist = whitelist.strip()
    if whitelist == "":
        return False
    res = True
    whitelist = whitelist.replace("\\,", "%2C")
    for token in whitelist.split(","):
        (what, value) = [s.strip().replace("%2C", ",") for s in token.split("=")]
        value = substitute(value)
        if what in ("o", "origin"):
            match = fnmatch.fnmatch(origin.origin, value)
        elif what in ("l", "label"):
            match = fnmatch.fnmatch(origin.label, value)
        elif what in ("a", "suite", "archive"):
            match = fnmatch.fnmatch(origin.archive, value)
        elif what in ("c", "component"):
            match = fnmatch.fnmatch(origin.component, value)
        elif what in ("site",):
            match = fnmatch.fnmatch(origin.site, value)
        elif what in ("n", "codename",):
            match = fnmatch.fnmatch(origin.codename, value)
        else:
            raise UnknownMatcherError("Unknown whitelist entry for matcher %s (value %s)" % (what, value))
        res = res and match
    return res
'''


def origin(origin_, archive, codename, label, component="main", site="deb.debian.org"):
    return types.SimpleNamespace(origin=origin_, archive=archive, codename=codename, label=label, component=component,
                                 site=site)


BOOKWORM = [
    origin("Debian", "stable", "bookworm", "Debian"),
    origin("Debian", "stable-security", "bookworm-security", "Debian-Security", site="security.debian.org"),
    origin("Debian", "stable-updates", "bookworm-updates", "Debian"),
    # dpkg's status file: never a source.
    origin("", "now", "", ""),
]
# The test bed's VMs also have trixie at a low priority.
TRIXIE = [origin("Debian", "testing", "trixie", "Debian")]


@pytest.fixture
def check(tmp_path, monkeypatch, capsys):
    """check(patterns, origins) -> (exit code, stdout lines), with the stand-ins in place."""
    program = tmp_path / "unattended-upgrade"
    program.write_text(UNATTENDED_UPGRADE, encoding="utf-8")
    apt_pkg = types.ModuleType("apt_pkg")
    apt_pkg.calls = []
    apt_pkg.origins = []
    apt_pkg.init = lambda: apt_pkg.calls.append("init")

    def cache(progress=None):
        apt_pkg.calls.append(("Cache", progress))
        return types.SimpleNamespace(file_list=list(apt_pkg.origins))
    apt_pkg.Cache = cache
    monkeypatch.setitem(sys.modules, "apt_pkg", apt_pkg)
    spec = importlib.util.spec_from_file_location("check_uu_origins", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.UU_SCRIPT == "/usr/bin/unattended-upgrade"
    module.UU_SCRIPT = str(program)

    def run(patterns, origins):
        apt_pkg.origins = origins
        rc = module.main(patterns)
        assert apt_pkg.calls[0] == "init" and apt_pkg.calls[1] == ("Cache", None)
        return rc, capsys.readouterr().out.splitlines()
    return run


def debian_pattern():
    with open(os.path.join(ROLE, "vars", "Debian.yml"), encoding="utf-8") as handle:
        return yaml.safe_load(handle)["_hardening_updates_origins_patterns"][0]


def test_the_roles_debian_pattern_matches_the_security_archive(check):
    rc, out = check([debian_pattern()], BOOKWORM + TRIXIE)
    assert rc == 0
    assert out == ["ok: %r matches o=Debian,a=stable-security,n=bookworm-security,l=Debian-Security" % debian_pattern()]


def test_every_pattern_is_checked_and_every_match_listed(check):
    rc, out = check([debian_pattern(), "origin=Debian,label=Debian"], BOOKWORM + TRIXIE)
    assert rc == 0
    assert out[1] == ("ok: 'origin=Debian,label=Debian' matches o=Debian,a=stable,n=bookworm,l=Debian; "
                      "o=Debian,a=stable-updates,n=bookworm-updates,l=Debian; o=Debian,a=testing,n=trixie,l=Debian")


@pytest.mark.parametrize("pattern", [
    # The classic mistakes: the label's case, the old codename form, another release.
    "origin=Debian,codename=${distro_codename}-security,label=debian-security",
    "origin=Debian,codename=${distro_codename}/updates,label=Debian-Security",
    "origin=Debian,codename=bullseye-security,label=Debian-Security",
])
def test_a_pattern_that_matches_nothing_exits_1_naming_it_and_the_known_origins(check, pattern):
    rc, out = check([debian_pattern(), pattern], BOOKWORM)
    assert rc == 1
    assert out[0].startswith("ok: ")
    assert out[1] == (
        "unattended-upgrades Origins-Pattern matches no configured apt source, so it would upgrade nothing: "
        "[%r]. Known origins: o=Debian,a=stable,n=bookworm,l=Debian; "
        "o=Debian,a=stable-security,n=bookworm-security,l=Debian-Security; "
        "o=Debian,a=stable-updates,n=bookworm-updates,l=Debian" % pattern)
    assert len(out) == 2


def test_without_the_security_source_the_roles_pattern_fails(check):
    rc, out = check([debian_pattern()], [o for o in BOOKWORM if o.label != "Debian-Security"])
    assert rc == 1
    assert "so it would upgrade nothing: [%r]" % debian_pattern() in out[0]


def test_the_status_file_is_not_an_origin(check):
    rc, out = check(["archive=now"], BOOKWORM)
    assert rc == 1
    assert "a=now" not in out[0]


@pytest.mark.parametrize("origins", [[], [origin("", "now", "", "")], [origin("Debian", "", "", "")]])
def test_no_apt_lists_yet_exits_2_saying_what_to_run(check, origins):
    rc, out = check([debian_pattern()], origins)
    assert rc == 2
    assert out == ["no apt sources with a Release file are known: run apt-get update first"]
