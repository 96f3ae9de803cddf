# Managed by armstack.deploy.hardening.
"""check-uu-origins PATTERN...: does each unattended-upgrades Origins-Pattern
match at least one origin of the configured apt sources?

A pattern that matches nothing makes unattended-upgrades install nothing,
silently (the classic: Debian's security label or codename written wrongly).
The matching is unattended-upgrades' own code, loaded from its script, so this
check and the real run cannot disagree. Exit 0 when every pattern matches.
"""
import importlib.machinery
import importlib.util
import sys

import apt_pkg

# unattended-upgrades' own program, whose matching code this check uses.
UU_SCRIPT = "/usr/bin/unattended-upgrade"


def main(patterns):
    loader = importlib.machinery.SourceFileLoader("unattended_upgrade", UU_SCRIPT)
    spec = importlib.util.spec_from_loader("unattended_upgrade", loader)
    uu = importlib.util.module_from_spec(spec)
    loader.exec_module(uu)
    apt_pkg.init()
    cache = apt_pkg.Cache(progress=None)
    origins = [pf for pf in cache.file_list if pf.archive and pf.archive != "now"]
    if not origins:
        print("no apt sources with a Release file are known: run apt-get update first")
        return 2
    bad = []
    for pattern in patterns:
        matched = sorted({"o=%s,a=%s,n=%s,l=%s" % (o.origin, o.archive, o.codename, o.label)
                          for o in origins if uu.match_whitelist_string(pattern, o)})
        if matched:
            print("ok: %r matches %s" % (pattern, "; ".join(matched)))
        else:
            bad.append(pattern)
    if bad:
        known = sorted({"o=%s,a=%s,n=%s,l=%s" % (o.origin, o.archive, o.codename, o.label) for o in origins})
        print("unattended-upgrades Origins-Pattern matches no configured apt source, so it would "
              "upgrade nothing: %s. Known origins: %s" % (bad, "; ".join(known)))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
