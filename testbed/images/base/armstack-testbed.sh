#!/bin/sh
# Runs once while the base image is built.
set -eu
export DEBIAN_FRONTEND=noninteractive
cat > /etc/apt/sources.list <<'LIST'
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
LIST
# Debian 12 ships neither Compose v2 nor a restic new enough for
# --stdin-from-command; Debian 13 does. Only those two packages come from it.
cat > /etc/apt/sources.list.d/trixie.list <<'LIST'
deb http://deb.debian.org/debian trixie main
LIST
cat > /etc/apt/preferences.d/armstack-trixie <<'PREF'
Package: *
Pin: release n=trixie
Pin-Priority: 50

Package: docker-compose restic
Pin: release n=trixie
Pin-Priority: 600
PREF
apt-get update -qq
# The debootstrap list again: a no-op there, the whole list on a pulled debian image.
apt-get install -y -qq --no-install-recommends $(grep -v '^#' /tmp/debootstrap-packages) \
  less curl gnupg >/dev/null
# A cloud image's admin user: key-only login, passwordless sudo.
useradd --create-home --shell /bin/bash --groups sudo debian
passwd -l debian >/dev/null
echo 'debian ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/90-cloud-init-users
chmod 0440 /etc/sudoers.d/90-cloud-init-users
# What cloud-init writes on OCI and other clouds, and what the hardening role must win over.
mkdir -p /etc/ssh/sshd_config.d
printf 'PasswordAuthentication yes\n' > /etc/ssh/sshd_config.d/50-cloud-init.conf
# Host keys are made at first boot, so no two containers share them.
rm -f /etc/ssh/ssh_host_*
# A fresh machine id at first boot; units that cannot work in a container off.
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id
systemctl mask systemd-udevd.service systemd-udevd-kernel.socket systemd-udevd-control.socket \
  systemd-modules-load.service sys-kernel-config.mount sys-kernel-debug.mount \
  sys-kernel-tracing.mount systemd-remount-fs.service getty@tty1.service \
  console-getty.service systemd-firstboot.service >/dev/null 2>&1
apt-get clean
