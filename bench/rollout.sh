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

# The load generator and the job stream (Python, stdlib only) run inside the target.
LIB="$(cd "$(dirname "$0")" && pwd)/lib"
LOADGEN="$LIB/loadgen.py"
JOBGEN="$LIB/jobgen.py"

if [ "${1:-}" = print-loadgen ]; then
  cat "$LOADGEN"
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
  docker exec -i "$TARGET" sh -c "cat > /tmp/armstack-loadgen.py" <"$LOADGEN"
  docker exec -i "$TARGET" sh -c "cat > /tmp/armstack-jobgen.py" <"$JOBGEN"
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
  python3 "$LIB/rollout_report.py" "$RESULTS/$phase.json" "$(cat "$RESULTS/$phase.rc")" "$RESULTS/$phase.jobs.json"
done
echo "(rollout-broken and rollout-badmigration are expected to end with deploy rc != 0: the play fails, the old release keeps serving)"
