# Copyright: (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Print one rollout phase's figures (run by bench/rollout.sh)."""
import json
import sys
import time
s = json.load(open(sys.argv[1]))
try:
    j = json.load(open(sys.argv[3]))
except (OSError, ValueError):
    j = {}
print("%-21s %7d %7d %7d %11d %7s %7s %8s %9s %5s %4s %4s  %s" % (
    s["phase"], s["sent"], s["non_2xx"], s["conn_errors"], s["stale_retries"],
    s["p50_ms"], s["p99_ms"], s["max_ms"], sys.argv[2], j.get("enqueued", "-"), j.get("lost", "-"), j.get("cut", "-"),
    json.dumps(s["versions"])))
for failure in s.get("failures", []):
    print("    failed at %s: %s%s" % (time.strftime("%H:%M:%S", time.localtime(failure["at"])) + ("%.3f" % (failure["at"] % 1))[1:],
                                  failure["what"], " after %s ms" % failure["after_ms"] if "after_ms" in failure else ""))
