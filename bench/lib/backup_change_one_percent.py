# Copyright: (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Change about one percent of the data set (run by bench/backup.sh)."""
import os
import random
import sys
root, day = sys.argv[1], int(sys.argv[2])
rng = random.Random(day)
files = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs)
total = sum(os.path.getsize(f) for f in files)
budget, changed = total // 100, 0
media = [f for f in files if "/media/" in f]
rng.shuffle(media)
for path in media:
    if changed >= budget // 2:
        break
    n = os.path.getsize(path)
    with open(path, "wb") as f:
        f.write(os.urandom(n))
    changed += n
i = 0
while changed < budget:
    n = rng.randrange(4 << 10, 256 << 10)
    path = f"{root}/records/day{day}/new-{i:05d}.json"
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(os.urandom(n // 2).hex().encode())
    changed += n
    i += 1
