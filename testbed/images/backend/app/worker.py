"""The reference backend's worker: takes jobs from a Redis list and works them.

A job moves from the queue to this worker's processing list atomically
(BLMOVE), so that none is lost when a worker dies; on start a worker puts
back what its previous run left in its list. SIGTERM stops it from taking a
new job; the job in progress is finished first (the role's stop grace period
must be longer than a job). Every job records who started and who finished
it (version@host), so a test can count that each job was done exactly once
and that no job was left half done."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time

from settings import DONE, QUEUE, STARTED, redis_client

VERSION = os.environ.get("APP_VERSION", "0.0.0")
WHO = "%s@%s" % (VERSION, socket.gethostname())
PROCESSING = "armstack:jobs:processing:" + socket.gethostname()
HEARTBEAT = "/tmp/worker-heartbeat"
_stop = {"requested": False}


def _on_term(_signum, _frame):
    _stop["requested"] = True
    print("worker %s: SIGTERM, finishing the job in progress" % WHO, flush=True)


def main():
    signal.signal(signal.SIGTERM, _on_term)
    client = redis_client()
    if client is None:
        print("worker: REDIS_HOST is not set", file=sys.stderr)
        return 2
    while client.lmove(PROCESSING, QUEUE, "RIGHT", "LEFT"):
        pass
    print("worker %s: ready" % WHO, flush=True)
    while not _stop["requested"]:
        with open(HEARTBEAT, "w", encoding="utf-8") as handle:
            handle.write(str(time.time()))
        raw = client.blmove(QUEUE, PROCESSING, 1, "RIGHT", "LEFT")
        if raw is None:
            continue
        job = json.loads(raw)
        client.hset(STARTED, job["id"], WHO)
        time.sleep(job.get("ms", 100) / 1000)
        client.hset(DONE, job["id"], WHO)
        client.lrem(PROCESSING, 1, raw)
    print("worker %s: stopped" % WHO, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
