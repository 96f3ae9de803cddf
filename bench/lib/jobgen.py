# Copyright: (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A steady stream of jobs for the reference backend's worker, through Caddy:
POST /jobs?count=1&ms=MS&prefix=PREFIX-N at RATE jobs/s until --stop-file
exists, then waits (bounded) until every job was worked and prints one JSON
line: enqueued, done, lost (enqueued, never done), cut (done by another
worker than the one that started it)."""
import argparse
import json
import os
import ssl
import time
import urllib.request

BASE = "https://localhost"


def parse_args(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--rate", type=float, default=4.0)
    parser.add_argument("--ms", type=int, default=1500)
    parser.add_argument("--cafile", default="")
    parser.add_argument("--stop-file", required=True)
    parser.add_argument("--drain-seconds", type=float, default=180.0)
    return parser.parse_args(argv)


def summary(prefix, sent, failed, report):
    """The printed line, from the backend's /jobs/report for the prefix."""
    ids = {"%s-%d-0" % (prefix, i) for i in range(sent)}
    done = ids & set(report["done"])
    return {"enqueued": sent, "enqueue_failed": failed, "done": len(done),
            "lost": len(ids - set(report["done"])),
            "cut": sum(1 for i in done if report["started"].get(i) != report["done"][i]),
            "workers": sorted(set(report["done"].values()))}


def main(argv=None):
    args = parse_args(argv)
    context = ssl.create_default_context(cafile=args.cafile or None)

    def call(method, path):
        request = urllib.request.Request(BASE + path, method=method)
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return json.loads(response.read())

    sent, failed = 0, 0
    while not os.path.exists(args.stop_file):
        try:
            call("POST", "/jobs?count=1&ms=%d&prefix=%s-%d" % (args.ms, args.prefix, sent))
            sent += 1
        except Exception:  # noqa: BLE001 pylint: disable=broad-exception-caught - counted, reported
            failed += 1
        time.sleep(1.0 / args.rate)
    deadline = time.monotonic() + args.drain_seconds
    report = call("GET", "/jobs/report?prefix=" + args.prefix)
    while (report["queued"] or len(report["done"]) < sent) and time.monotonic() < deadline:
        time.sleep(1)
        report = call("GET", "/jobs/report?prefix=" + args.prefix)
    print(json.dumps(summary(args.prefix, sent, failed, report)))


if __name__ == "__main__":
    main()
