# Copyright: (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Print the Lynis bench's figures (run by bench/lynis.sh)."""
import re
import sys
log = open(sys.argv[1], encoding="utf-8", errors="replace").read()
totals = re.findall(r"Currently having (\d+) points \(out of (\d+)\)", log)
have, out_of = map(int, totals[-1])
written = dict(
    (k.strip(), v.strip()) for k, v in
    (line.split("=", 1) for line in open(sys.argv[2]) if "=" in line and not line.lstrip().startswith("#")))
withheld = []
for key, expected, real in re.findall(
        r"sysctl key (\S+) has a different value than expected in scan profile\. Expected=(\S+), Real=(\S+)", log):
    if written.get(key) == expected:
        withheld.append("%s (file %s, live %s)" % (key, expected, real))
print("  points: %d of %d" % (have, out_of))
if withheld:
    print("  kernel-wide sysctls the role writes with Lynis's expected value, not live here")
    print("  because the kernel is the test bed host's (live on a VM): %d" % len(withheld))
    for item in withheld:
        print("    " + item)
    print("  the same scan with those live would be: %d of %d = index %d (computed, not scanned)"
          % (have + len(withheld), out_of, (have + len(withheld)) * 100 // out_of))
