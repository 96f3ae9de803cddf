#!/usr/bin/env bash
# Load during rollouts: sends a steady, bounded load (keep-alive and fresh
# connections mixed) through Caddy while
#   (a) the backend rolls out to a new release,
#   (b) the backend rolls out to a release that never becomes ready,
#   (c) the backend rolls out to a release whose release command (its
#       migrations) fails,
#   (d) for comparison, a plain `docker compose up -d --force-recreate` of
#       the serving backend (what a naive deploy does),
# and prints, per phase: requests sent, non-2xx, connection errors, p50/p99;
# and, while each phase runs, a steady stream of jobs for the backend's
# worker (Redis): jobs enqueued, worked, lost, and worked by another worker
# than the one that took them (a job cut off by a stopping worker).
# Figures, not a test: nothing here asserts a time.
#
#   bench/rollout.sh                 against the local target (testbed/up)
#   bench/rollout.sh print-loadgen   print the load generator (Python, stdlib)
#
# Settings (environment): TARGET (VM container, default armstack-local),
# INVENTORY (default inventories/local; its vault-password file is used if
# present, or VAULT_PASSWORD_FILE), RATE (requests/s, default 100),
# THREADS (default 16; half keep-alive, half a new connection per request),
# COUNT (requests per phase, default 10000), MAX_SECONDS (per phase, 300),
# NEW_IMAGE / OLD_IMAGE / BROKEN_IMAGE / BADMIGRATION_IMAGE (image references),
# JOB_RATE (jobs/s, default 4; 0 = no jobs), PHASES (a subset of
# "rollout-new rollout-broken rollout-badmigration plain-recreate"). Per phase, bench/results/ keeps
# the load generator's JSON (with the time of the first failures), the deploy's
# log (each task time-stamped) and Caddy's log.
# The load generator runs inside the target VM and sends only to its own
# loopback (https://localhost/), so no traffic leaves the test bed.
set -euo pipefail

read -r -d '' LOADGEN <<'PY' || true
"""Bounded HTTP(S) load generator (stdlib only) for armstack.deploy's bench.

Sends RATE requests/s (paced, not bursty) from THREADS threads; half the
threads keep one keep-alive connection each, the other half open a fresh
connection per request. Stops at --count requests, after --max-seconds, or
when --stop-file exists (and then only once --min-count were sent). Prints
one JSON summary line. A keep-alive connection the server closed while idle
is reopened and the request resent once, as every HTTP client library does
for idempotent requests (counted as stale_retries, not as an error).
"""
import argparse
import http.client
import json
import os
import ssl
import threading
import time
import urllib.parse

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
args = parser.parse_args()

url = urllib.parse.urlsplit(args.url)
host = url.hostname
if host not in ("localhost", "127.0.0.1", "::1") and not host.startswith("127."):
    raise SystemExit("refusing to send load to %s: loopback only" % host)
port = url.port or (443 if url.scheme == "https" else 80)
path = (url.path or "/") + ("?" + url.query if url.query else "")
context = None
if url.scheme == "https":
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
                response, body = one_request(conn, True if keepalive else None)
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
                response, body = one_request(conn, True)
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


def pct(p):
    if not latencies:
        return None
    return round(latencies[min(len(latencies) - 1, int(p / 100.0 * len(latencies)))] * 1000, 1)


duration = time.monotonic() - start
stats.update({
    "phase": args.phase,
    "seconds": round(duration, 1),
    "rate": round(stats["sent"] / duration, 1) if duration else 0,
    "p50_ms": pct(50), "p99_ms": pct(99),
    "max_ms": round(latencies[-1] * 1000, 1) if latencies else None,
})
stats["failed"] = stats["non_2xx"] + stats["conn_errors"]
print(json.dumps(stats, sort_keys=True))
PY

read -r -d '' JOBGEN <<'PY' || true
"""A steady stream of jobs for the reference backend's worker, through Caddy:
POST /jobs?count=1&ms=MS&prefix=PREFIX-N at RATE jobs/s until --stop-file
exists, then waits (bounded) until every job was worked and prints one JSON
line: enqueued, done, lost (enqueued, never done), cut (done by another
worker than the one that started it)."""
import argparse, json, os, ssl, time, urllib.request

parser = argparse.ArgumentParser()
parser.add_argument("--prefix", required=True)
parser.add_argument("--rate", type=float, default=4.0)
parser.add_argument("--ms", type=int, default=1500)
parser.add_argument("--cafile", default="")
parser.add_argument("--stop-file", required=True)
parser.add_argument("--drain-seconds", type=float, default=180.0)
args = parser.parse_args()
context = ssl.create_default_context(cafile=args.cafile or None)
base = "https://localhost"


def call(method, path):
    request = urllib.request.Request(base + path, method=method)
    with urllib.request.urlopen(request, timeout=10, context=context) as response:
        return json.loads(response.read())


sent, failed = 0, 0
while not os.path.exists(args.stop_file):
    try:
        call("POST", "/jobs?count=1&ms=%d&prefix=%s-%d" % (args.ms, args.prefix, sent))
        sent += 1
    except Exception:  # noqa: BLE001 - counted, reported
        failed += 1
    time.sleep(1.0 / args.rate)
deadline = time.monotonic() + args.drain_seconds
report = call("GET", "/jobs/report?prefix=" + args.prefix)
while (report["queued"] or len(report["done"]) < sent) and time.monotonic() < deadline:
    time.sleep(1)
    report = call("GET", "/jobs/report?prefix=" + args.prefix)
ids = {"%s-%d-0" % (args.prefix, i) for i in range(sent)}
print(json.dumps({"enqueued": sent, "enqueue_failed": failed, "done": len(ids & set(report["done"])),
                  "lost": len(ids - set(report["done"])),
                  "cut": sum(1 for i in ids & set(report["done"]) if report["started"].get(i) != report["done"][i]),
                  "workers": sorted(set(report["done"].values()))}))
PY

if [ "${1:-}" = print-loadgen ]; then
  printf '%s\n' "$LOADGEN"
  exit 0
fi

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TARGET="${TARGET:-armstack-local}"
INVENTORY="${INVENTORY:-$ROOT/inventories/local}"
RATE="${RATE:-100}"
COUNT="${COUNT:-10000}"
THREADS="${THREADS:-16}"
MAX_SECONDS="${MAX_SECONDS:-300}"
# The local inventory pulls the backend from the test bed's private registry.
REGISTRY="${REGISTRY:-armstack-registry-auth:5000}"
OLD_IMAGE="${OLD_IMAGE:-$REGISTRY/armstack/backend:1.0.0}"
NEW_IMAGE="${NEW_IMAGE:-$REGISTRY/armstack/backend:1.1.0}"
BROKEN_IMAGE="${BROKEN_IMAGE:-$REGISTRY/armstack/backend:broken}"
BADMIGRATION_IMAGE="${BADMIGRATION_IMAGE:-$REGISTRY/armstack/backend:badmigration}"
JOB_RATE="${JOB_RATE:-4}"
PROJECT="${PROJECT:-armstack}"
RESULTS="$ROOT/bench/results"
mkdir -p "$RESULTS"

# shellcheck source=testbed/lib.sh
source "$ROOT/testbed/lib.sh"
ensure_venv
docker inspect -f '{{.State.Running}}' "$TARGET" 2>/dev/null | grep -q true \
  || die "the target $TARGET is not running: start it with testbed/up (or set TARGET)"

# The play that deploys the backend: site.yml once it runs the role, else
# the molecule scenario's converge (the same role, the same way).
PLAYBOOK=("$ROOT/playbooks/site.yml" --tags backend)
grep -q 'armstack.deploy.backend' "$ROOT/playbooks/site.yml" || PLAYBOOK=("$ROOT/molecule/backend/deploy.yml")
# The local inventory's demo vault password (a production inventory's comes
# from the operator: VAULT_PASSWORD_FILE or ANSIBLE_VAULT_PASSWORD_FILE).
VAULT_ARGS=()
if [ -n "${VAULT_PASSWORD_FILE:-}" ]; then
  VAULT_ARGS=(--vault-password-file "$VAULT_PASSWORD_FILE")
elif [ -z "${ANSIBLE_VAULT_PASSWORD_FILE:-}" ] && [ -f "$INVENTORY/vault-password" ]; then
  VAULT_ARGS=(--vault-password-file "$INVENTORY/vault-password")
fi
deploy() {
  # profile_tasks stamps each task with the wall clock, to set beside the
  # load generator's failure times and Caddy's log.
  ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks ansible-playbook -i "$INVENTORY" "${VAULT_ARGS[@]}" "${PLAYBOOK[@]}" -e "backend_image=$1" \
    >"$RESULTS/deploy-$2.log" 2>&1
}

# load PHASE CMD...: run the load generator in the target while CMD runs;
# the load goes on until COUNT requests were sent (at least), then stops.
load() {
  local phase="$1"; shift
  local stop="/tmp/armstack-bench-stop" out="$RESULTS/$phase.json" rc=0 since jobs_pid=""
  since=$(date +%s)
  docker exec "$TARGET" rm -f "$stop" /tmp/armstack-bench-jobs-stop
  docker exec -i "$TARGET" sh -c "cat > /tmp/armstack-loadgen.py" <<<"$LOADGEN"
  docker exec -i "$TARGET" sh -c "cat > /tmp/armstack-jobgen.py" <<<"$JOBGEN"
  docker exec "$TARGET" sh -c "docker exec $PROJECT-caddy-1 cat /data/caddy/pki/authorities/local/root.crt > /tmp/armstack-bench-ca.crt"
  docker exec "$TARGET" python3 /tmp/armstack-loadgen.py --phase "$phase" --url https://localhost/ \
    --rate "$RATE" --count "$COUNT" --min-count "$COUNT" --max-seconds "$MAX_SECONDS" \
    --threads "$THREADS" --stop-file "$stop" --cafile /tmp/armstack-bench-ca.crt >"$out" &
  local pid=$!
  if [ "$JOB_RATE" != 0 ]; then
    docker exec "$TARGET" python3 /tmp/armstack-jobgen.py --prefix "bench-$phase-$since" --rate "$JOB_RATE" \
      --stop-file /tmp/armstack-bench-jobs-stop --cafile /tmp/armstack-bench-ca.crt >"$RESULTS/$phase.jobs.json" &
    jobs_pid=$!
  else
    echo '{}' >"$RESULTS/$phase.jobs.json"
  fi
  sleep 3
  log "$phase: $*"
  "$@" || rc=$?
  log "$phase: done (rc=$rc), load continues to $COUNT requests"
  docker exec "$TARGET" touch "$stop"
  wait "$pid" || true
  docker exec "$TARGET" touch /tmp/armstack-bench-jobs-stop
  [ -z "$jobs_pid" ] || wait "$jobs_pid" || true
  echo "$rc" > "$RESULTS/$phase.rc"
  docker exec "$TARGET" docker logs --since "$since" "$PROJECT-caddy-1" >"$RESULTS/caddy-$phase.log" 2>&1 || true
}

plain_recreate() {
  local active
  active=$(docker exec "$TARGET" sh -c "python3 -c 'import json;print(json.load(open(\"/opt/$PROJECT/release.json\"))[\"active\"])'")
  docker exec "$TARGET" sh -c "cd /opt/$PROJECT && docker compose --profile $active up -d --force-recreate --no-deps backend_$active" \
    >"$RESULTS/deploy-plain.log" 2>&1
}

log "bench: $RATE req/s, $COUNT requests per phase, target $TARGET"
deploy "$OLD_IMAGE" prepare || die "deploying $OLD_IMAGE failed (see $RESULTS/deploy-prepare.log)"
PHASES="${PHASES:-rollout-new rollout-broken rollout-badmigration plain-recreate}"
for phase in $PHASES; do
  case "$phase" in
    rollout-new) load rollout-new deploy "$NEW_IMAGE" new ;;
    rollout-broken) load rollout-broken deploy "$BROKEN_IMAGE" broken ;;
    rollout-badmigration) load rollout-badmigration deploy "$BADMIGRATION_IMAGE" badmigration ;;
    plain-recreate) load plain-recreate plain_recreate ;;
    *) die "unknown phase $phase (rollout-new, rollout-broken, rollout-badmigration, plain-recreate)" ;;
  esac
done

printf '\n%-21s %7s %7s %7s %11s %7s %7s %8s %9s %5s %4s %4s  %s\n' phase sent non2xx connerr stale-retry p50_ms p99_ms max_ms "deploy rc" jobs lost cut versions
for phase in $PHASES; do
  python3 - "$RESULTS/$phase.json" "$(cat "$RESULTS/$phase.rc")" "$RESULTS/$phase.jobs.json" <<'PY'
import json, sys, time
s = json.load(open(sys.argv[1]))
try:
    j = json.load(open(sys.argv[3]))
except (OSError, ValueError):
    j = {}
print("%-21s %7d %7d %7d %11d %7s %7s %8s %9s %5s %4s %4s  %s" % (
    s["phase"], s["sent"], s["non_2xx"], s["conn_errors"], s["stale_retries"],
    s["p50_ms"], s["p99_ms"], s["max_ms"], sys.argv[2], j.get("enqueued", "-"), j.get("lost", "-"), j.get("cut", "-"),
    json.dumps(s["versions"])))
for failure in s.get("failures", []):
    print("    failed at %s: %s%s" % (time.strftime("%H:%M:%S", time.localtime(failure["at"])) + ("%.3f" % (failure["at"] % 1))[1:],
                                  failure["what"], " after %s ms" % failure["after_ms"] if "after_ms" in failure else ""))
PY
done
echo "(rollout-broken and rollout-badmigration are expected to end with deploy rc != 0: the play fails, the old release keeps serving)"
