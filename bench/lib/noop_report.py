# Copyright: (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The figures of one site.yml run from its output (run by bench/noop.sh).

noop_report.py LOG WALL_SECONDS LABEL prints one line: the label, the wall
time, the tasks run (ok + changed + failed + skipped, from the recap), changed,
and the time per role from ansible.posix.profile_roles; with --header, the
column titles first.
"""

from __future__ import annotations

import re
import sys

RECAP = re.compile(r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)\s+"
                   r"failed=(?P<failed>\d+)\s+skipped=(?P<skipped>\d+)")
# profile_roles: "hardening ------------------------------------ 45.12s"
ROLE = re.compile(r"^(?P<role>\S[^-]*?)\s-{3,}\s+(?P<seconds>\d+(?:\.\d+)?)s$")


def parse(text):
    hosts = {}
    roles = {}
    in_roles = False
    for line in text.splitlines():
        line = line.rstrip()
        match = RECAP.match(line)
        if match:
            hosts[match.group("host")] = {k: int(v) for k, v in match.groupdict().items() if k != "host"}
            continue
        if line.startswith("=" * 20):
            in_roles = True
            continue
        if in_roles:
            match = ROLE.match(line)
            if match and match.group("role") != "total":
                roles[match.group("role").strip()] = float(match.group("seconds"))
    return hosts, roles


def main(argv):
    if argv and argv[0] == "--header":
        print("%-24s %8s %6s %8s  %s" % ("run", "wall_s", "tasks", "changed", "seconds per role (profile_roles)"))
        return 0
    path, wall, label = argv
    with open(path, encoding="utf-8", errors="replace") as handle:
        hosts, roles = parse(handle.read())
    tasks = sum(h["ok"] + h["failed"] + h["skipped"] for h in hosts.values())
    changed = sum(h["changed"] for h in hosts.values())
    per_role = ", ".join("%s %.1f" % (r, s) for r, s in sorted(roles.items(), key=lambda kv: -kv[1]))
    print("%-24s %8.1f %6d %8d  %s" % (label, float(wall), tasks, changed, per_role or "-"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
