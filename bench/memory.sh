#!/usr/bin/env bash
# Idle memory of every running container, per service, after a warm-up.
#
#   bench/memory.sh [--vm NAME] [--warmup SECONDS] [--goal-mb MB] [--goal SERVICE ...]
#
# Run it on the host that runs the stack (root, or a member of the docker
# group that may read /proc/PID/smaps_rollup), or from the test bed's machine
# with --vm NAME: the script then runs itself inside that VM container.
#
# For each container it prints the resident set size (RSS, the sum over the
# container's processes: what `ps` shows), the proportional set size (PSS,
# shared pages divided among the processes that share them: a fairer figure
# for multi-process services like Gunicorn) and the memory limit. The goal
# line adds up the RSS of the goal services (by default the issue's budget:
# backend with 2 workers + Caddy + Prometheus + node-exporter + Alertmanager
# <= 450 MB) and says whether it is met. It only prints figures: it does not
# fail when the goal is missed.
#
# A container counts for a goal service when its Compose service label, or
# else its name, is that service (name matching ignores a project prefix and a
# -N replica suffix, so standin-backend-1 counts as backend; the backend
# role's release slots backend_blue and backend_green count as backend too).
set -euo pipefail

VM=""
WARMUP=60
GOAL_MB=450
GOAL=(backend caddy prometheus node-exporter alertmanager)
custom_goal=0
while [ $# -gt 0 ]; do
  case "$1" in
    --vm) VM="$2"; shift 2 ;;
    --warmup) WARMUP="$2"; shift 2 ;;
    --goal-mb) GOAL_MB="$2"; shift 2 ;;
    --goal)
      shift
      if [ $custom_goal -eq 0 ]; then GOAL=(); custom_goal=1; fi
      while [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; do GOAL+=("$1"); shift; done ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

if [ -n "$VM" ]; then
  # Run the same script inside the VM container, without --vm.
  exec docker exec -i "$VM" bash -s -- --warmup "$WARMUP" --goal-mb "$GOAL_MB" --goal "${GOAL[@]}" < "$0"
fi

command -v docker >/dev/null || { echo "docker is not installed here" >&2; exit 1; }
mapfile -t containers < <(docker ps --format '{{.Names}}' | sort)
[ ${#containers[@]} -gt 0 ] || { echo "no running containers" >&2; exit 1; }

# Warm-up: wait until the youngest container has run for WARMUP seconds.
now=$(date +%s)
youngest=0
for c in "${containers[@]}"; do
  started=$(date -d "$(docker inspect -f '{{.State.StartedAt}}' "$c")" +%s)
  [ "$started" -gt "$youngest" ] && youngest=$started
done
wait_s=$(( youngest + WARMUP - now ))
if [ "$wait_s" -gt 0 ]; then
  echo "warming up: ${wait_s}s until every container has run ${WARMUP}s" >&2
  sleep "$wait_s"
fi

mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

kib_pss() {
  # PSS of one process in KiB (0 when it is gone or unreadable).
  awk '/^Pss:/ {print $2; found=1} END {if (!found) print 0}' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0
}

service_of() {
  local c="$1" s
  s=$(docker inspect -f '{{index .Config.Labels "com.docker.compose.service"}}' "$c" 2>/dev/null || true)
  if [ -z "$s" ] || [ "$s" = "<no value>" ]; then
    s="$c"
  fi
  echo "$s"
}

matches() {
  # matches SERVICE_OR_NAME GOAL_SERVICE
  local name="$1" goal="$2"
  [ "$name" = "$goal" ] && return 0
  [[ "$name" =~ (^|[-_])${goal}(_blue|_green)?(-[0-9]+)?$ ]]
}

printf '%-34s %-16s %5s %9s %9s %9s\n' container service procs "RSS MiB" "PSS MiB" "limit MiB"
declare -A goal_rss=()
total_rss=0
total_pss=0
for c in "${containers[@]}"; do
  svc=$(service_of "$c")
  rss_kib=0; pss_kib=0; procs=0
  while read -r pid rss; do
    [[ "$pid" =~ ^[0-9]+$ ]] || continue
    procs=$((procs + 1))
    rss_kib=$((rss_kib + rss))
    pss_kib=$((pss_kib + $(kib_pss "$pid")))
  done < <(docker top "$c" -o pid,rss 2>/dev/null | tail -n +2)
  limit=$(docker inspect -f '{{.HostConfig.Memory}}' "$c")
  limit_mib=$([ "$limit" -gt 0 ] && echo $((limit / 1048576)) || echo none)
  printf '%-34s %-16s %5d %9s %9s %9s\n' "$c" "$svc" "$procs" "$(mib "$rss_kib")" "$(mib "$pss_kib")" "$limit_mib"
  total_rss=$((total_rss + rss_kib))
  total_pss=$((total_pss + pss_kib))
  for g in "${GOAL[@]}"; do
    if matches "$svc" "$g" || matches "$c" "$g"; then
      goal_rss[$g]=$(( ${goal_rss[$g]:-0} + rss_kib ))
      break
    fi
  done
done
printf '%-34s %-16s %5s %9s %9s\n' "all containers" "" "" "$(mib "$total_rss")" "$(mib "$total_pss")"

goal_kib=0
missing=()
parts=()
for g in "${GOAL[@]}"; do
  if [ -n "${goal_rss[$g]:-}" ]; then
    goal_kib=$((goal_kib + goal_rss[$g]))
    parts+=("$g=$(mib "${goal_rss[$g]}")")
  else
    missing+=("$g")
  fi
done
# MB as in the goal (10^6 bytes); the table is in MiB.
goal_mb=$(awk -v k="$goal_kib" 'BEGIN { printf "%.0f", k * 1024 / 1000000 }')
verdict=$(awk -v k="$goal_kib" -v g="$GOAL_MB" 'BEGIN { print (k * 1024 <= g * 1000000) ? "met" : "MISSED" }')
echo
echo "goal: ${GOAL[*]} <= ${GOAL_MB} MB (RSS): ${goal_mb} MB, ${verdict}"
echo "      per service (MiB): ${parts[*]:-none}"
if [ ${#missing[@]} -gt 0 ]; then
  echo "      not running here, not counted: ${missing[*]}"
fi
