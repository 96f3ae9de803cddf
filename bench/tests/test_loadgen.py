# Copyright: (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bench/lib/loadgen.py and jobgen.py: the counting and the percentiles, against
a tiny HTTP server on 127.0.0.1 started by the test (no Docker, no TLS)."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench", "lib"))

import jobgen  # noqa: E402 pylint: disable=wrong-import-position
import loadgen  # noqa: E402 pylint: disable=wrong-import-position


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    requests = []

    def do_GET(self):  # noqa: N802 - the stdlib's name
        Handler.requests.append((self.path, self.headers.get("Connection")))
        status = 503 if self.path.startswith("/fail") else 200
        body = b"ok\n"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-App-Version", "1.1.0")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # quiet
        pass


@pytest.fixture
def server():
    Handler.requests = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d" % httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def load(url, *extra):
    return loadgen.run(loadgen.parse_args(["--url", url, "--rate", "400", "--threads", "4", "--timeout", "5", *extra]))


def test_every_request_is_counted_once(server):
    stats = load(server + "/work?ms=1", "--count", "40", "--phase", "unit")
    assert (stats["sent"], stats["ok"], stats["non_2xx"], stats["conn_errors"], stats["failed"]) == (40, 40, 0, 0, 0)
    assert stats["statuses"] == {"200": 40} and stats["versions"] == {"1.1.0": 40}
    assert stats["phase"] == "unit" and stats["failures"] == []
    assert len(Handler.requests) == 40 and {path for path, dummy in Handler.requests} == {"/work?ms=1"}
    # Half the threads keep their connection, half close it after each request.
    assert {connection for dummy, connection in Handler.requests} == {"keep-alive", "close"}
    assert 0 < stats["p50_ms"] <= stats["p99_ms"] <= stats["max_ms"]


def test_non_2xx_answers_are_failures_with_the_first_ones_kept(server):
    stats = load(server + "/fail", "--count", "30")
    assert (stats["sent"], stats["ok"], stats["non_2xx"], stats["failed"]) == (30, 0, 30, 30)
    assert stats["statuses"] == {"503": 30} and stats["versions"] == {}
    assert len(stats["failures"]) == 20 and {f["what"] for f in stats["failures"]} == {"HTTP 503"}


def test_a_refused_connection_is_a_connection_error(server):
    port = int(server.rsplit(":", 1)[1])
    # A port nothing listens on (the server's, after it is closed, is not safe: use one we bind and close).
    import socket  # pylint: disable=import-outside-toplevel
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    free = sock.getsockname()[1]
    sock.close()
    assert free != port
    stats = load("http://127.0.0.1:%d/" % free, "--count", "8")
    assert (stats["sent"], stats["ok"], stats["conn_errors"], stats["failed"]) == (8, 0, 8, 8)
    assert sum(stats["errors"].values()) == 8
    assert all(name.startswith("ConnectionRefusedError on ") for name in stats["errors"])
    assert stats["p50_ms"] is None and stats["max_ms"] is None


def test_the_stop_file_ends_the_load_once_min_count_was_sent(server, tmp_path):
    stop = tmp_path / "stop"
    stop.write_text("", encoding="utf-8")
    stats = load(server + "/", "--count", "100000", "--min-count", "12", "--stop-file", str(stop), "--max-seconds", "60")
    assert 12 <= stats["sent"] < 100000
    assert stats["ok"] == stats["sent"]


def test_max_seconds_bounds_the_load(server):
    stats = loadgen.run(loadgen.parse_args(["--url", server + "/", "--rate", "20", "--threads", "2", "--count", "100000",
                                            "--max-seconds", "0.5"]))
    assert 0 < stats["sent"] < 100000


@pytest.mark.parametrize("url", ["http://example.com/", "https://10.0.0.1/", "http://armstack-registry:5000/"])
def test_load_goes_to_loopback_only(url):
    with pytest.raises(SystemExit, match="loopback only"):
        loadgen.target(url)


def test_target_parts():
    assert loadgen.target("https://localhost/work?ms=5") == ("https", "localhost", 443, "/work?ms=5")
    assert loadgen.target("http://127.0.0.2:8080") == ("http", "127.0.0.2", 8080, "/")


@pytest.mark.parametrize("p, expected", [(0, 1.0), (50, 51.0), (99, 100.0), (100, 100.0)])
def test_percentiles_of_a_known_list(p, expected):
    latencies = [i / 1000.0 for i in range(1, 101)]  # 1 ms .. 100 ms
    assert loadgen.pct(latencies, p) == expected


def test_percentiles_of_one_and_of_none():
    assert loadgen.pct([0.0123], 50) == 12.3 and loadgen.pct([0.0123], 99) == 12.3
    assert loadgen.pct([], 50) is None


def test_the_program_prints_one_json_line(server):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "lib", "loadgen.py"), "--url", server + "/",
                           "--count", "5", "--threads", "2", "--rate", "100"], capture_output=True, text=True, timeout=60, check=True)
    assert len(proc.stdout.splitlines()) == 1
    assert json.loads(proc.stdout)["ok"] == 5


def test_rollout_sh_prints_the_load_generator_the_verifier_installs():
    proc = subprocess.run([os.path.join(ROOT, "bench", "rollout.sh"), "print-loadgen"], capture_output=True, text=True,
                          timeout=60, check=True)
    with open(os.path.join(ROOT, "bench", "lib", "loadgen.py"), encoding="utf-8") as handle:
        assert proc.stdout == handle.read()


def test_jobgen_summary_counts_lost_and_cut_jobs():
    report = {"queued": 0, "started": {"p-0-0": "w1", "p-1-0": "w1", "p-2-0": "w2"},
              "done": {"p-0-0": "w1", "p-1-0": "w2", "other-0-0": "w3"}}
    assert jobgen.summary("p", 3, 1, report) == {"enqueued": 3, "enqueue_failed": 1, "done": 2, "lost": 1, "cut": 1,
                                                 "workers": ["w1", "w2", "w3"]}
