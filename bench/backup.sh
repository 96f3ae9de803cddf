#!/usr/bin/env bash
# Benchmark: restic (as the backup role runs it) against the old way, a tar.gz
# full backup every day, and against `cp -a` for restores. Prints figures; it
# asserts nothing (the goals are printed beside the figures).
#
#   bench/backup.sh                 in a throw-away test-bed VM (restic 0.18 from
#                                   the VM image's pinned Debian 13 package)
#   bench/backup.sh --here          on this machine (needs restic >= 0.17, python3)
#   BENCH_SIZE_MB=200 bench/backup.sh   a smaller data set (default 1024)
#
# Steps, on a generated data set of mixed file sizes (large incompressible
# uploads, medium files, many small JSON-like files that compress well):
#   1. first restic backup (local repository, default compression), timed;
#   2. change 1 % of the data (rewrite some files, add new ones), incremental
#      backup, timed; repeated until 7 daily runs exist;
#   3. repository size after the 7 runs, against 7 tar.gz full backups of the
#      same 7 daily states (timed, gzip default level);
#   4. restic restore of the last snapshot against `cp -a` of the data.
# Restores and copies are timed to the end of `sync`, with a warm page cache
# and, where the kernel allows dropping it, a cold one.
# Goals: incremental <= 0.1 x first; storage <= 0.25 x seven tar.gz;
# restore >= 50 % of cp's speed.
set -euo pipefail
LIB="$(cd "$(dirname "$0")" && pwd)/lib"

SIZE_MB="${BENCH_SIZE_MB:-1024}"
DAYS=7

if [ "${1:-}" != "--here" ]; then
  # Run this script in a test-bed VM of its own, then remove the VM.
  # shellcheck source=testbed/lib.sh
  source "$(dirname "$0")/../testbed/lib.sh"
  vm=armstack-bench-backup
  ensure_docker
  ensure_base_image
  trap 'stop_vm "$vm"' EXIT
  start_vm "$vm" >/dev/null
  log "installing restic in $vm"
  docker exec "$vm" sh -c 'DEBIAN_FRONTEND=noninteractive apt-get update -qq && apt-get install -y -qq --no-install-recommends restic >/dev/null'
  # The script and its Python helpers (bench/lib), side by side as here.
  docker exec "$vm" mkdir -p /opt/armstack-bench
  docker cp "$0" "$vm:/opt/armstack-bench/backup.sh"
  docker cp "$LIB" "$vm:/opt/armstack-bench/lib"
  docker exec -e BENCH_SIZE_MB="$SIZE_MB" "$vm" bash /opt/armstack-bench/backup.sh --here
  exit 0
fi

command -v restic >/dev/null || { echo "restic is not installed" >&2; exit 1; }
WORK="${BENCH_DIR:-/var/tmp/armstack-bench-backup}"
rm -rf "$WORK"
mkdir -p "$WORK"
trap 'rm -rf "$WORK"' EXIT
DATA="$WORK/data" REPO="$WORK/repo" TARS="$WORK/tars"
mkdir -p "$DATA" "$TARS"
export RESTIC_REPOSITORY="$REPO" RESTIC_PASSWORD="bench-only-not-a-secret" RESTIC_CACHE_DIR="$WORK/cache"

secs() { date +%s.%N; }
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$1" "$2"; }
mib() { du -sb "$1" | awk '{printf "%.1f", $1 / 1048576}'; }

# Mixed data: 50 % large random files (photos, archives), 30 % medium files
# (half random, half text), 20 % small JSON-like text files.
python3 "$LIB/backup_make_data.py" "$DATA" "$SIZE_MB"

# Change 1 % of the data: rewrite medium files and add new small ones.
change_one_percent() {
  python3 "$LIB/backup_change_one_percent.py" "$DATA" "$1"
}

restic init >/dev/null
DATA_MIB=$(mib "$DATA")
t0=$(secs); restic backup --quiet --host bench --tag job:bench "$DATA"; t1=$(secs)
FIRST=$(elapsed "$t0" "$t1")
t0=$(secs); tar -C "$WORK" -czf "$TARS/day1.tar.gz" data; t1=$(secs)
TAR_FIRST=$(elapsed "$t0" "$t1")
INCREMENTS=()
for day in $(seq 2 "$DAYS"); do
  change_one_percent "$day"
  t0=$(secs); restic backup --quiet --host bench --tag job:bench "$DATA"; t1=$(secs)
  INCREMENTS+=("$(elapsed "$t0" "$t1")")
  tar -C "$WORK" -czf "$TARS/day$day.tar.gz" data
done
# The cost every restic run pays before any work: opening the repository,
# mostly the key derivation (scrypt, calibrated by `restic init` to take about
# half a second of CPU: a security setting, not tuned here). Median of 3.
OPEN=$(for _ in 1 2 3; do t0=$(secs); restic cat config >/dev/null; t1=$(secs); elapsed "$t0" "$t1"; done | sort -n | sed -n 2p)
REPO_MIB=$(mib "$REPO")
TARS_MIB=$(mib "$TARS")

# Restore against cp, both timed to the end of `sync` (data on disk, not
# only in the page cache), twice: with the page cache as the runs above left
# it (warm), and after dropping it (cold: what a restore at 3 a.m. meets),
# where the kernel lets this process drop it (a test-bed VM shares the host's
# kernel and may; otherwise the cold figures say "n/a").
drop_caches() { sync; echo 3 2>/dev/null >/proc/sys/vm/drop_caches; }
# timed_into DIR CMD...: remove DIR, run CMD (which writes DIR) and sync;
# prints the seconds.
timed_into() {
  rm -rf "$1"; shift
  local t0 t1
  t0=$(secs); "$@" >/dev/null; sync; t1=$(secs)
  elapsed "$t0" "$t1"
}
restore_once() { timed_into "$WORK/restored" restic restore --quiet latest --target "$WORK/restored"; }
copy_once() { timed_into "$WORK/copied" cp -a "$DATA" "$WORK/copied"; }
sync
RESTORE=$(restore_once)
CP=$(copy_once)
RESTORE_COLD=n/a CP_COLD=n/a
if drop_caches; then
  RESTORE_COLD=$(restore_once)
  drop_caches
  CP_COLD=$(copy_once)
fi
restic check --quiet >/dev/null && CHECK=passed || CHECK=FAILED
diff -r "$DATA" "$WORK/restored$DATA" >/dev/null && SAME=identical || SAME=DIFFERENT

python3 "$LIB/backup_report.py" "$DATA_MIB" "$FIRST" "$TAR_FIRST" "$REPO_MIB" "$TARS_MIB" "$RESTORE" "$CP" "$CHECK" "$SAME" "$(restic version)" "$RESTORE_COLD" "$CP_COLD" "$OPEN" "${INCREMENTS[@]}"
