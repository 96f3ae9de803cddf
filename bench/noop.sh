#!/usr/bin/env bash
# A no-op run of the full site.yml on the converged local target, over SSH with
# pipelining as an operator runs it (inventories/local): prints, per run, the
# wall time, the tasks run, changed (0 on a converged host) and the time per
# role (the ansible.posix.profile_roles callback). Figures, not a test:
# nothing here asserts a time.
#
#   testbed/up && bench/noop.sh
#
# Settings (environment): RUNS (measured runs, default 2), INVENTORY (default
# inventories/local/hosts.yml; its vault-password file is used if present, or
# VAULT_PASSWORD_FILE), EXTRA (more ansible-playbook arguments, e.g.
# "--tags backend"). The first run is a warm-up when WARMUP=1 (default 0: the
# target is assumed converged). Logs go to bench/results/noop-*.
set -euo pipefail
# shellcheck source=testbed/lib.sh
source "$(dirname "$0")/../testbed/lib.sh"
ensure_venv

INVENTORY="${INVENTORY:-$ARMSTACK_ROOT/inventories/local/hosts.yml}"
VAULT_PASSWORD_FILE="${VAULT_PASSWORD_FILE:-$(dirname "$INVENTORY")/vault-password}"
RUNS="${RUNS:-2}"
WARMUP="${WARMUP:-0}"
read -r -a extra <<<"${EXTRA:-}"
[ -f "$VAULT_PASSWORD_FILE" ] || die "no vault password file at $VAULT_PASSWORD_FILE (set VAULT_PASSWORD_FILE)"
docker inspect -f '{{.State.Running}}' armstack-local 2>/dev/null | grep -q true \
  || [ "$INVENTORY" != "$ARMSTACK_ROOT/inventories/local/hosts.yml" ] \
  || die "the local target is not running: run testbed/up first"

out="$ARMSTACK_ROOT/bench/results/noop-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"
report="$ARMSTACK_ROOT/bench/lib/noop_report.py"

run_once() {
  local label="$1" log="$out/$1.log" start end
  start=$(date +%s.%N)
  ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_roles ANSIBLE_NOCOLOR=1 \
    ansible-playbook -i "$INVENTORY" --vault-password-file "$VAULT_PASSWORD_FILE" \
    "$ARMSTACK_ROOT/playbooks/site.yml" "${extra[@]}" >"$log" 2>&1 || log "$label failed (log: $log)"
  end=$(date +%s.%N)
  python "$report" "$log" "$(python -c "print($end - $start)")" "$label"
}

log "site.yml ${extra[*]} against $INVENTORY, $RUNS run(s); logs in $out"
python "$report" --header
[ "$WARMUP" = 1 ] && run_once warmup
for i in $(seq 1 "$RUNS"); do run_once "run-$i"; done
