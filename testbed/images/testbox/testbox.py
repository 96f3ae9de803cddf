#!/usr/bin/env python3
"""Test workload: `serve [PORT]`, `chatty [MEGABYTES]`, `read PATH...`, `sleep`."""

import http.server
import os
import sys
import time


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        body = f"testbox uid={os.getuid()} path={self.path}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        sys.stderr.write("access " + (fmt % args) + "\n")


def serve(port="8080"):
    http.server.ThreadingHTTPServer(("", int(port)), Handler).serve_forever()


def chatty(megabytes="8"):
    """Write MEGABYTES of log lines to stdout, then idle (the container stays up)."""
    line = ("x" * 1000) + "\n"
    total = int(float(megabytes) * 1024 * 1024)
    written = 0
    out = sys.stdout
    while written < total:
        out.write(f"{written:012d} {line}")
        written += len(line) + 13
    out.flush()
    print("chatty: done", flush=True)
    while True:
        time.sleep(3600)


def read(*paths):
    """Print, per path, whether this uid can read it and whether it can write it."""
    rc = 0
    for path in paths:
        try:
            with open(path, "rb") as handle:
                size = len(handle.read())
            readable = f"read {size} bytes"
        except OSError as exc:
            readable = f"cannot read ({exc.strerror})"
            rc = 1
        try:
            with open(path, "ab"):
                pass
            writable = "WRITABLE"
            rc = 1
        except OSError as exc:
            writable = f"not writable ({exc.strerror})"
        print(f"{path}: uid={os.getuid()} {readable}, {writable}")
    return rc


def main(argv):
    cmd, args = (argv[0], argv[1:]) if argv else ("serve", [])
    if cmd == "serve":
        serve(*args)
    elif cmd == "chatty":
        chatty(*args)
    elif cmd == "read":
        return read(*args)
    elif cmd == "sleep":
        while True:
            time.sleep(3600)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
