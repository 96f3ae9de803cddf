# Copyright: (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bounded HTTP(S) load generator (stdlib only) for armstack.deploy's bench.

Sends RATE requests/s (paced, not bursty) from THREADS threads; half the
threads keep one keep-alive connection each, the other half open a fresh
connection per request. Stops at --count requests, after --max-seconds, or
when --stop-file exists (and then only once --min-count were sent). Prints
one JSON summary line. A keep-alive connection the server closed while idle
is reopened and the request resent once, as every HTTP client library does
for idempotent requests (counted as stale_retries, not as an error).

Run by bench/rollout.sh (and the backend verifier) inside the target VM:
`python3 loadgen.py --url https://localhost/ ...`.
"""
import argparse
import http.client
import json
import os
import ssl
import threading
import time
import urllib.parse


def parse_args(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="https://localhost/")
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--count", type=int, default=10000)
    parser.add_argument("--min-count", type=int, default=0)
    parser.add_argument("--max-seconds", type=float, default=300.0)
    parser.add_argument("--stop-file", default="")
    parser.add_argument("--cafile", default="")
    parser.add_argument("--insecure", action="store_true")
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--phase", default="load")
    return parser.parse_args(argv)


def pct(latencies, p):
    """The p-th percentile of sorted latencies (seconds), in ms, rounded to 0.1; None without any."""
    if not latencies:
        return None
    return round(latencies[min(len(latencies) - 1, int(p / 100.0 * len(latencies)))] * 1000, 1)


def target(url_text):
    """(scheme, host, port, path) of a loopback URL; anything else is refused."""
    url = urllib.parse.urlsplit(url_text)
    host = url.hostname
    if host not in ("localhost", "127.0.0.1", "::1") and not host.startswith("127."):
        raise SystemExit("refusing to send load to %s: loopback only" % host)
    port = url.port or (443 if url.scheme == "https" else 80)
    path = (url.path or "/") + ("?" + url.query if url.query else "")
    return url.scheme, host, port, path


def run(args):  # pylint: disable=too-many-statements
    """Send the load; return the summary (the dict printed as JSON)."""
    scheme, host, port, path = target(args.url)
    context = None
    if scheme == "https":
        context = ssl.create_default_context(cafile=args.cafile or None)
        if args.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE

    lock = threading.Lock()
    stats = {"sent": 0, "ok": 0, "non_2xx": 0, "conn_errors": 0, "stale_retries": 0,
             "statuses": {}, "errors": {}, "versions": {}, "failures": []}
    latencies = []
    stop = threading.Event()
    start = time.monotonic()
    interval = args.threads / args.rate

    def connect():
        if context is not None:
            return http.client.HTTPSConnection(host, port, timeout=args.timeout, context=context)
        return http.client.HTTPConnection(host, port, timeout=args.timeout)

    def claim():
        with lock:
            if stats["sent"] >= args.count:
                return False
            stats["sent"] += 1
            return True

    def note_failure(what, t0):
        """Keeps the first failures: when (wall clock, to set beside the deploy's
        and Caddy's logs) and after how long. Called with the lock held."""
        if len(stats["failures"]) < 20:
            stats["failures"].append({"at": round(time.time(), 3), "what": what,
                                      "after_ms": round((time.monotonic() - t0) * 1000, 1)})

    def one_request(conn, reused):
        conn.request("GET", path, headers={"Connection": "keep-alive" if reused is not None else "close"})
        response = conn.getresponse()
        body = response.read()
        return response, body

    def worker(keepalive):
        conn = None
        used = False
        next_at = time.monotonic()
        while not stop.is_set():
            now = time.monotonic()
            if next_at > now:
                time.sleep(next_at - now)
            next_at += interval
            if not claim():
                break
            t0 = time.monotonic()
            kind = "connect"
            try:
                if conn is None:
                    conn, used = connect(), False
                kind = "reused" if used else "fresh"
                try:
                    response, _ = one_request(conn, True if keepalive else None)
                except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                        http.client.CannotSendRequest):
                    if not (keepalive and used):
                        raise
                    # The server closed the idle keep-alive connection as we
                    # reused it (RFC 9112 9.3.1): reopen and resend once.
                    conn.close()
                    conn, used, kind = connect(), False, "retry"
                    with lock:
                        stats["stale_retries"] += 1
                    response, _ = one_request(conn, True)
                used = True
                elapsed = time.monotonic() - t0
                with lock:
                    latencies.append(elapsed)
                    code = str(response.status)
                    stats["statuses"][code] = stats["statuses"].get(code, 0) + 1
                    if 200 <= response.status < 300:
                        stats["ok"] += 1
                        version = response.getheader("X-App-Version", "?")
                        stats["versions"][version] = stats["versions"].get(version, 0) + 1
                    else:
                        stats["non_2xx"] += 1
                        note_failure("HTTP %d" % response.status, t0)
                if not keepalive or response.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as exc:
                with lock:
                    stats["conn_errors"] += 1
                    # What failed, and on which connection: a new one (connect,
                    # fresh), a reused keep-alive one, or the resend (retry).
                    name = "%s on %s connection" % (type(exc).__name__, kind)
                    stats["errors"][name] = stats["errors"].get(name, 0) + 1
                    note_failure(name, t0)
                if conn is not None:
                    conn.close()
                conn = None

    threads = [threading.Thread(target=worker, args=(i % 2 == 0,), daemon=True) for i in range(args.threads)]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        elapsed = time.monotonic() - start
        if elapsed > args.max_seconds:
            stop.set()
        if args.stop_file and os.path.exists(args.stop_file) and stats["sent"] >= args.min_count:
            stop.set()
        time.sleep(0.1)
    for thread in threads:
        thread.join()

    latencies.sort()
    duration = time.monotonic() - start
    stats.update({
        "phase": args.phase,
        "seconds": round(duration, 1),
        "rate": round(stats["sent"] / duration, 1) if duration else 0,
        "p50_ms": pct(latencies, 50), "p99_ms": pct(latencies, 99),
        "max_ms": round(latencies[-1] * 1000, 1) if latencies else None,
    })
    stats["failed"] = stats["non_2xx"] + stats["conn_errors"]
    return stats


def main(argv=None):
    print(json.dumps(run(parse_args(argv)), sort_keys=True))


if __name__ == "__main__":
    main()
