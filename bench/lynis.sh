#!/usr/bin/env bash
# bench/lynis.sh: Lynis hardening index of a fresh test-bed VM before and after
# the hardening role (Debian's lynis package, run inside the VM).
#
#   bench/lynis.sh           make a fresh VM, measure, harden, measure, remove it
#   bench/lynis.sh --keep    leave the VM (armstack-bench-lynis) running afterwards
#
# Prints the two indices and the findings Lynis still reports after the role.
# The VM is a container of the test bed, so Lynis skips or scores differently
# what a container cannot have (kernel, boot loader, partitions): compare the
# figures with each other, not with a scan of a real VM.
set -euo pipefail
LIB="$(cd "$(dirname "$0")" && pwd)/lib"
# shellcheck source=testbed/lib.sh
source "$(dirname "$0")/../testbed/lib.sh"

VM=armstack-bench-lynis
keep=0
case "${1:-}" in --keep) keep=1 ;; "") ;; *) die "usage: bench/lynis.sh [--keep]" ;; esac

ensure_testbed
work=$(mktemp -d /tmp/armstack-lynis.XXXXXX)
cleanup() {
  [ "$keep" = 1 ] || stop_vm "$VM"
  rm -rf "$work"
}
trap cleanup EXIT

stop_vm "$VM"
start_vm "$VM"
log "installing lynis in $VM (the audit tool only; not part of the role)"
docker exec "$VM" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends lynis >/dev/null'

lynis_index() {
  docker exec "$VM" lynis audit system --quick --no-colors >"$work/lynis-$1.log" 2>&1 || true
  docker exec "$VM" cat /var/log/lynis-report.dat >"$work/report-$1.dat"
  sed -n 's/^hardening_index=//p' "$work/report-$1.dat"
}

before=$(lynis_index before)
log "before: hardening index $before"

# The operator key the lock-out guard wants, and an inventory for this VM.
ssh-keygen -q -t ed25519 -N '' -C armstack-bench -f "$work/id_ed25519"
mkdir -p "$work/inventory"
ln -s "$ARMSTACK_ROOT/inventories/local/group_vars" "$work/inventory/group_vars"
cat >"$work/inventory/hosts.yml" <<INV
all:
  children:
    armstack_hosts:
      hosts:
        $VM:
          ansible_connection: community.docker.docker
          ansible_user: root
INV
cat >"$work/play.yml" <<'PLAY'
- name: Harden the benchmark VM
  hosts: armstack_hosts
  become: true
  roles:
    - role: armstack.deploy.hardening
PLAY
start=$(date +%s)
ansible-playbook -i "$work/inventory" "$work/play.yml" \
  -e "{\"hardening_ssh_admin_authorized_keys\": [\"$(cat "$work/id_ed25519.pub")\"]}" >"$work/ansible.log" 2>&1 \
  || { tail -40 "$work/ansible.log" >&2; die "the hardening role failed"; }
role_seconds=$(( $(date +%s) - start ))

after=$(lynis_index after)
echo
echo "Lynis $(docker exec "$VM" lynis show version) hardening index on the test-bed VM ($(docker exec "$VM" sh -c '. /etc/os-release; echo "$PRETTY_NAME"'), $(uname -m)):"
echo "  before the role: $before"
echo "  after the role:  $after   (role run: ${role_seconds}s)"
# Points, from Lynis's own log: the last running total is what the index is
# made of. Kernel-wide sysctls belong to the host's kernel on this test bed;
# the role writes them to /etc/sysctl.d and applies them on a VM. Count the
# ones Lynis scored as different although the role's file holds exactly the
# value Lynis expects: those points are withheld by the container alone.
docker exec "$VM" cat /var/log/lynis.log >"$work/lynis-after.full.log"
docker exec "$VM" sh -c 'cat /etc/sysctl.d/90-armstack-hardening.conf 2>/dev/null' >"$work/sysctl.conf" || true
python3 "$LIB/lynis_report.py" "$work/lynis-after.full.log" "$work/sysctl.conf"
echo
echo "What Lynis still suggests after the role (test id: text):"
sed -n 's/^suggestion\[\]=\([^|]*\)|\([^|]*\)|.*/  \1: \2/p' "$work/report-after.dat"
echo
echo "Warnings after the role:"
sed -n 's/^warning\[\]=\([^|]*\)|\([^|]*\)|.*/  \1: \2/p' "$work/report-after.dat"
