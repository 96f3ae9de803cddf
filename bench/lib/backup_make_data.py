# Copyright: (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Make the bench's data set (run by bench/backup.sh)."""
import os
import random
import sys
root, size = sys.argv[1], int(sys.argv[2]) << 20
rng = random.Random(42)
EVENTS = ["login", "upload", "order", "refund", "view"]


def text(n):
    # JSON-like lines, unique per file (compress about 2-3x, do not deduplicate).
    out, length = [], 0
    while length < n:
        line = '{"id": %d, "user": "%s", "event": "%s", "amount": %d.%02d}\n' % (
            rng.getrandbits(30), os.urandom(6).hex(), EVENTS[rng.getrandbits(2)], rng.getrandbits(13), rng.getrandbits(6))
        out.append(line)
        length += len(line)
    return "".join(out).encode()[:n]


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


done = 0
i = 0
while done < size * 0.5:
    n = rng.randrange(5, 40) << 20
    write(f"{root}/uploads/large-{i:04d}.bin", os.urandom(n))
    done += n
    i += 1
target = done + size * 0.3
while done < target:
    n = rng.randrange(64 << 10, 2 << 20)
    data = os.urandom(n) if i % 2 else text(n)
    write(f"{root}/media/{i % 50:02d}/medium-{i:05d}", data)
    done += n
    i += 1
while done < size:
    n = rng.randrange(512, 32 << 10)
    write(f"{root}/records/{i % 200:03d}/rec-{i:06d}.json", text(n))
    done += n
    i += 1
print(f"data set: {i} files, {done / 1048576:.0f} MiB")
