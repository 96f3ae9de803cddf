# Copyright: (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Print the backup bench's figures (run by bench/backup.sh)."""
import sys
data, first, tar_first, repo, tars, restore, cp = map(float, sys.argv[1:8])
check, same, version, restore_cold, cp_cold = sys.argv[8:13]
open_cost = float(sys.argv[13])
incs = [float(x) for x in sys.argv[14:]]
inc = incs[0]
print()
print(f"{version}")
print(f"data set                          {data:9.1f} MiB")
print(f"first backup, restic              {first:9.2f} s   ({data / first:.0f} MiB/s)")
print(f"first backup, tar.gz              {tar_first:9.2f} s")
print(f"incremental after 1 % change      {inc:9.2f} s   (runs 2-7: {', '.join(f'{x:.2f}' for x in incs)})")
print(f"  ratio incremental / first       {inc / first:9.3f}     goal <= 0.1   {'met' if inc / first <= 0.1 else 'NOT met'}")
print(f"opening the repository (each run)  {open_cost:9.2f} s   (key derivation; in both figures above)")
print(f"  ratio without it                {(inc - open_cost) / (first - open_cost):9.3f}     (the work that grows with the data)")
print(f"repository after 7 daily runs     {repo:9.1f} MiB")
print(f"7 daily tar.gz full backups       {tars:9.1f} MiB")
print(f"  ratio restic / tar.gz           {repo / tars:9.3f}     goal <= 0.25  {'met' if repo / tars <= 0.25 else 'NOT met'}")
print(f"restore, restic (warm cache)      {restore:9.2f} s   ({data / restore:.0f} MiB/s)")
print(f"copy, cp -a (warm cache)          {cp:9.2f} s   ({data / cp:.0f} MiB/s)")
print(f"  restore speed / cp speed        {cp / restore:9.2f}     goal >= 0.5   {'met' if cp / restore >= 0.5 else 'NOT met'}")
if restore_cold != "n/a":
    rc, cc = float(restore_cold), float(cp_cold)
    print(f"restore, restic (cold cache)      {rc:9.2f} s   ({data / rc:.0f} MiB/s)")
    print(f"copy, cp -a (cold cache)          {cc:9.2f} s   ({data / cc:.0f} MiB/s)")
    print(f"  restore speed / cp speed        {cc / rc:9.2f}     goal >= 0.5   {'met' if cc / rc >= 0.5 else 'NOT met'}")
else:
    print("restore and copy with a cold cache: n/a (this kernel does not let the bench drop the page cache)")
print(f"restic check: {check}; restored data vs source: {same}")
