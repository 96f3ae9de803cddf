"""Metrics and webhook stand-in for the observability scenario (test bed only)."""

import json
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

BACKEND = CollectorRegistry()
REQUESTS = Counter("http_requests_total", "HTTP requests.", ["method", "handler", "status"], registry=BACKEND)
LATENCY = Histogram("http_request_duration_seconds", "HTTP request latency.", ["method", "handler"], registry=BACKEND)
CADDY = CollectorRegistry()
CADDY_REQUESTS = Counter("caddy_http_requests_total", "Requests served by Caddy.", ["server", "handler"], registry=CADDY)
Gauge("caddy_config_last_reload_successful", "Whether the last reload worked.", registry=CADDY).set(1)
RECEIVED = []
LOCK = threading.Lock()


def traffic():
    """A little steady traffic, so rates and quantiles have data."""
    while True:
        REQUESTS.labels("GET", "/items", "2xx").inc()
        LATENCY.labels("GET", "/items").observe(random.uniform(0.005, 0.08))
        CADDY_REQUESTS.labels("srv0", "reverse_proxy").inc()
        time.sleep(1)


def handler_for(registry):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _send(self, code, body, ctype="text/plain; version=0.0.4"):
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/metrics" and registry is not None:
                self._send(200, generate_latest(registry))
            elif self.path == "/received":
                with LOCK:
                    self._send(200, json.dumps(RECEIVED).encode(), "application/json")
            elif self.path in ("/", "/healthz"):
                self._send(200, b"ok\n")
            else:
                self._send(404, b"not found\n")

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            payload = self.rfile.read(length)
            try:
                data = json.loads(payload)
            except ValueError:
                self._send(400, b"not json\n")
                return
            with LOCK:
                RECEIVED.append(data)
                del RECEIVED[:-100]
            self._send(200, b"ok\n")

    return Handler


def main():
    threading.Thread(target=traffic, daemon=True).start()
    servers = [
        ThreadingHTTPServer(("0.0.0.0", 8000), handler_for(BACKEND)),
        ThreadingHTTPServer(("0.0.0.0", 9180), handler_for(CADDY)),
        ThreadingHTTPServer(("0.0.0.0", 9099), handler_for(None)),
    ]
    for server in servers[1:]:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    servers[0].serve_forever()


if __name__ == "__main__":
    main()
