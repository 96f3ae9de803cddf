# shellcheck shell=bash
# Shared functions of the offline test bed. Sourced by testbed/up, testbed/test
# and the molecule scenarios' helper scripts; every function is idempotent and
# cheap when its work is already done, so each entry point can call them all.
#
# What the machine gets (see shared TESTBED notes in the README):
#   - Docker engine (Debian's docker.io) started by hand when no init runs it;
#   - a Python venv with requirements.txt and this collection on the
#     collections path;
#   - the "VM" base image: Debian 12 with systemd, sshd, python3 and sudo, built
#     by debootstrap and cached by a tag derived from its recipe;
#   - a real image registry (Debian's docker-registry package) that the
#     targets' own Docker engines pull from, as production pulls from a registry.

set -euo pipefail

ARMSTACK_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ARMSTACK_CACHE="${ARMSTACK_CACHE:-$ARMSTACK_ROOT/.cache}"
ARMSTACK_VENV="${ARMSTACK_VENV:-$ARMSTACK_ROOT/.venv}"
ARMSTACK_NETWORK="${ARMSTACK_NETWORK:-armstack}"
ARMSTACK_OUTSIDE_NETWORK="${ARMSTACK_OUTSIDE_NETWORK:-armstack-outside}"
ARMSTACK_REGISTRY_NAME="armstack-registry"
ARMSTACK_REGISTRY_PORT="${ARMSTACK_REGISTRY_PORT:-5000}"
# Name under which the registry is pushed to from the host ...
ARMSTACK_REGISTRY_PUSH="127.0.0.1:${ARMSTACK_REGISTRY_PORT}"
# ... and under which targets on the test network pull from it.
ARMSTACK_REGISTRY_PULL="${ARMSTACK_REGISTRY_NAME}:5000"
ARMSTACK_DEBIAN_MIRROR="${ARMSTACK_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
mkdir -p "$ARMSTACK_CACHE"
export ARMSTACK_ROOT ARMSTACK_CACHE ARMSTACK_VENV ARMSTACK_NETWORK \
  ARMSTACK_OUTSIDE_NETWORK ARMSTACK_REGISTRY_PUSH ARMSTACK_REGISTRY_PULL

_ts() { date +%H:%M:%S; }
log() { printf '[%s] %s\n' "$(_ts)" "$*" >&2; }
die() { printf '[%s] ERROR: %s\n' "$(_ts)" "$*" >&2; exit 1; }

# stage NAME CMD...: run CMD, print how long it took, keep the table for the end.
ARMSTACK_STAGES=()
stage() {
  local name="$1"; shift
  local start end rc=0
  start=$(date +%s)
  log "== ${name}"
  "$@" || rc=$?
  end=$(date +%s)
  ARMSTACK_STAGES+=("$(printf '%-34s %5ss  %s' "$name" "$((end - start))" "$([ $rc -eq 0 ] && echo ok || echo "FAILED ($rc)")")")
  log "== ${name}: $((end - start))s rc=${rc}"
  return $rc
}
print_stages() {
  printf '\n%-34s %6s  %s\n' "stage" "time" "result"
  local s
  for s in "${ARMSTACK_STAGES[@]}"; do printf '%s\n' "$s"; done
}

_need_root() {
  [ "$(id -u)" -eq 0 ] || die "the test bed installs packages and runs dockerd: run it as root (or with sudo)"
}

_apt_updated=0
apt_install() {
  # apt_install PKG...: install the Debian packages that are missing.
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  _need_root
  if [ $_apt_updated -eq 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    _apt_updated=1
  fi
  log "installing Debian packages: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ensure_docker() {
  # The engine: Debian's docker.io when no engine is installed; started by hand
  # when nothing answers (there is no systemd as PID 1 on CI machines).
  if ! command -v dockerd >/dev/null 2>&1; then
    apt_install docker.io
  fi
  apt_install ca-certificates iptables
  if docker info >/dev/null 2>&1; then
    return 0
  fi
  _need_root
  if pidof systemd >/dev/null 2>&1 && [ "$(cat /proc/1/comm)" = systemd ]; then
    systemctl start docker || true
  fi
  if ! docker info >/dev/null 2>&1; then
    log "starting dockerd (log: /var/log/armstack-dockerd.log)"
    # In its own session and not a job of this shell: a caller that waits for
    # its own background jobs (testbed/test runs scenarios side by side) must
    # never wait for the engine, which outlives it.
    setsid -f dockerd </dev/null >/var/log/armstack-dockerd.log 2>&1
  fi

  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && { log "dockerd answers ($(docker info -f '{{.ServerVersion}} {{.Driver}} cgroup v{{.CgroupVersion}}'))"; return 0; }
    sleep 1
  done
  tail -20 /var/log/armstack-dockerd.log >&2 || true
  die "dockerd did not answer within 60 s"
}

ensure_venv() {
  # The Python side, pinned by requirements.txt; reinstalled only when it changes.
  local req="$ARMSTACK_ROOT/requirements.txt" stamp hash
  hash=$(sha256sum "$req" | cut -c1-16)
  stamp="$ARMSTACK_VENV/.armstack-requirements-$hash"
  if [ ! -f "$stamp" ]; then
    command -v python3 >/dev/null || apt_install python3
    python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
    log "creating the venv at $ARMSTACK_VENV from requirements.txt"
    python3 -m venv "$ARMSTACK_VENV"
    "$ARMSTACK_VENV/bin/pip" install -q --upgrade pip >"$ARMSTACK_CACHE/pip.log" 2>&1
    "$ARMSTACK_VENV/bin/pip" install -q -r "$req" >>"$ARMSTACK_CACHE/pip.log" 2>&1 || { tail -30 "$ARMSTACK_CACHE/pip.log" >&2; die "pip install -r requirements.txt failed"; }
    rm -f "$ARMSTACK_VENV"/.armstack-requirements-*
    touch "$stamp"
  fi
  # This checkout is the collection armstack.deploy: expose it on the
  # collections path that ansible.cfg names.
  local link="$ARMSTACK_CACHE/collections/ansible_collections/armstack/deploy"
  mkdir -p "$(dirname "$link")"
  if [ "$(readlink "$link" 2>/dev/null)" != "$ARMSTACK_ROOT" ]; then ln -sfn "$ARMSTACK_ROOT" "$link"; fi
  export PATH="$ARMSTACK_VENV/bin:$PATH"
  export ANSIBLE_CONFIG="$ARMSTACK_ROOT/ansible.cfg"
}

# ansible-test bootstraps pip into each venv it makes with a get-pip.py from
# ci-files.testing.ansible.com, which the test bed cannot reach. Put in its
# place (the cache path ansible-test reads first) testbed/ansible-test-get-pip.py
# and the pip wheel it installs, downloaded from PyPI and checked against a
# pinned hash: the version and hash are those of ansible-test's own pin.
ARMSTACK_ANSIBLE_TEST_PIP="24.2"
ARMSTACK_ANSIBLE_TEST_PIP_SHA256="2cd581cf58ab7fcfca4ce8efa6dcacd0de5bf8d0a3eb9ec927e07405f4d9e2a2"
ensure_ansible_test_pip() {
  local v="$ARMSTACK_ANSIBLE_TEST_PIP" dir="$HOME/.ansible/test/cache" pinned
  pinned=$(python -c 'import ansible_test._internal.python_requirements as r, sys; sys.stdout.write(r.get_venv_packages(type("P", (), {"version": "%d.%d" % sys.version_info[:2]})())["pip"])')
  [ "$pinned" = "$v" ] || die "ansible-test now pins pip $pinned, the test bed provides $v: update ARMSTACK_ANSIBLE_TEST_PIP and its hash in testbed/lib.sh"
  local wheel="$dir/pip-$v-py3-none-any.whl" req
  mkdir -p "$dir"
  if [ ! -f "$wheel" ] || [ "$(sha256sum "$wheel" | cut -d' ' -f1)" != "$ARMSTACK_ANSIBLE_TEST_PIP_SHA256" ]; then
    rm -f "$dir"/pip-*.whl
    req=$(mktemp)
    printf 'pip==%s --hash=sha256:%s\n' "$v" "$ARMSTACK_ANSIBLE_TEST_PIP_SHA256" >"$req"
    pip download -q --no-deps --only-binary=:all: --require-hashes -d "$dir" -r "$req" \
      || { rm -f "$req"; die "downloading pip $v from PyPI failed"; }
    rm -f "$req"
  fi
  install -m 0644 "$ARMSTACK_ROOT/testbed/ansible-test-get-pip.py" "$dir/get_pip_${v//./_}.py"
}

# ansible-test runs on a collection at ansible_collections/NAMESPACE/NAME, and
# the sanity tests are meant for what ships: extract the built tarball there
# (build_ignore already left out the test bed, scenarios and benchmarks) as a
# git repository, which is how ansible-test lists a collection's files.
# collection_tree OUT_DIR: prints the collection's directory.
collection_tree() {
  local out="$1" tree tarball
  rm -rf "$out"; mkdir -p "$out/build"
  ansible-galaxy collection build --force --output-path "$out/build" "$ARMSTACK_ROOT" >/dev/null
  tarball=$(ls "$out"/build/armstack-deploy-*.tar.gz)
  tree="$out/ansible_collections/armstack/deploy"
  mkdir -p "$tree"
  tar -xzf "$tarball" -C "$tree"
  git -C "$tree" init -q
  # What the tests write (tests/output) is not part of the collection.
  printf 'tests/output/\n' >>"$tree/.git/info/exclude"
  git -C "$tree" add -A
  git -C "$tree" -c user.name=testbed -c user.email=testbed@localhost commit -q -m "built collection"
  echo "$tree"
}

# galaxy-importer (the check Galaxy and Automation Hub run on upload), from
# PyPI, in a venv of its own, on a tarball built the way the release builds it.
# It refuses an empty `repository`, and the collection has no public home yet
# (galaxy.yml keeps the key empty rather than name a link that leads nowhere):
# the copy it checks gets ARMSTACK_GALAXY_REPOSITORY, the real URL when
# publishing, otherwise a reserved never-resolving name; nothing of that copy
# ships. ansible-lint inside it sees only the dependencies galaxy.yml declares
# (from the `ansible` package: Galaxy is not reachable), so a module from an
# undeclared collection shows up as a warning, and any warning fails the stage.
galaxy_importer_check() {
  local dir="$ARMSTACK_CACHE/galaxy-importer" req="$ARMSTACK_ROOT/testbed/galaxy-importer/requirements.txt"
  local venv stamp src deps url="${ARMSTACK_GALAXY_REPOSITORY:-https://armstack-deploy.invalid/no-public-repository-yet}"
  venv="$dir/venv"
  stamp="$venv/.armstack-requirements-$(sha256sum "$req" | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    rm -rf "$venv"; mkdir -p "$dir"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q -r "$req" >"$dir/pip.log" 2>&1 || { tail -30 "$dir/pip.log" >&2; die "installing galaxy-importer failed"; }
    touch "$stamp"
  fi
  src="$dir/src"; deps="$dir/deps"
  rm -rf "$src" "$deps" "$dir/build" "$dir/run"; mkdir -p "$src" "$deps/ansible_collections" "$dir/build" "$dir/run"
  git -C "$ARMSTACK_ROOT" ls-files -z --cached --others --exclude-standard \
    | (cd "$ARMSTACK_ROOT" && xargs -0 cp -P --parents -t "$src")
  sed -i "s|^repository: \"\"\$|repository: \"$url\"|" "$src/galaxy.yml"
  log "galaxy-importer checks a copy whose repository is $url"
  ansible-galaxy collection build --force --output-path "$dir/build" "$src" >/dev/null
  python - "$src/galaxy.yml" "$deps/ansible_collections" <<'PY'
import importlib.util, os, sys, yaml
with open(sys.argv[1], encoding="utf-8") as handle:
    dependencies = yaml.safe_load(handle).get("dependencies") or {}
for fqcn in dependencies:
    namespace, name = fqcn.split(".")
    spec = importlib.util.find_spec("ansible_collections.%s.%s" % (namespace, name))
    if spec is None:
        sys.exit("the declared dependency %s is not in the venv's ansible package" % fqcn)
    os.makedirs(os.path.join(sys.argv[2], namespace), exist_ok=True)
    os.symlink(list(spec.submodule_search_locations)[0], os.path.join(sys.argv[2], namespace, name))
PY
  local rc=0
  (cd "$dir/run" && PATH="$venv/bin:$PATH" PYTHONPATH="$deps" \
    GALAXY_IMPORTER_CONFIG="$ARMSTACK_ROOT/testbed/galaxy-importer/galaxy-importer.cfg" \
    "$venv/bin/python" -m galaxy_importer.main "$dir"/build/armstack-deploy-*.tar.gz) >"$dir/import.log" 2>&1 || rc=$?
  grep -Ev '^(Loading|Getting doc strings|Running ansible-doc|$)' "$dir/import.log" >&2 || true
  [ $rc -eq 0 ] || { log "galaxy-importer exited $rc"; return 1; }
  ! grep -Eq '^(WARNING|ERROR)' "$dir/import.log" || { log "galaxy-importer warned (above)"; return 1; }
}

# The base image's tag is derived from its recipe, so a changed recipe builds a
# new image and an unchanged one costs nothing. base_image_tag [arm64]
base_image_tag() {
  local h suffix=""
  h=$(cat "$ARMSTACK_ROOT/testbed/images/base/"* | sha256sum | cut -c1-12)
  [ "${1:-}" = arm64 ] && suffix="-arm64"
  echo "armstack/debian-vm:12${suffix}-$h"
}

# arm64 under emulation (qemu-user-static + binfmt_misc): systemd, sshd and apt
# work; netfilter does not (no firewall, no Docker engine inside).
ensure_arm64_emulation() {
  apt_install qemu-user-static binfmt-support
  if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    _need_root
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  fi
  [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64
  grep -q enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 || die "qemu-aarch64 is not enabled in binfmt_misc"
}

# ensure_base_image [arm64]: the VM image for this machine's architecture, or
# for arm64 under emulation. Exports ARMSTACK_BASE_IMAGE (or ARMSTACK_BASE_IMAGE_ARM64).
ensure_base_image() {
  local arch="${1:-native}" tag rootfs_tag debarch=""
  if [ "$arch" = arm64 ]; then
    ensure_arm64_emulation
    tag=$(base_image_tag arm64)
    export ARMSTACK_BASE_IMAGE_ARM64="$tag"
    debarch="--arch=arm64"
    # Docker 20.10 records no architecture on `docker import` (that needs its
    # experimental mode), so the arm64 images are labelled amd64; binfmt_misc
    # runs their aarch64 binaries all the same (uname -m says aarch64), and
    # the legacy builder cannot build FROM them for another platform.
  else
    tag=$(base_image_tag)
    export ARMSTACK_BASE_IMAGE="$tag"
  fi
  if docker image inspect "$tag" >/dev/null 2>&1; then
    return 0
  fi
  # The root file system is tagged by its package list, the image by its recipe.
  local pkgs
  pkgs=$(grep -v '^#' "$ARMSTACK_ROOT/testbed/images/base/debootstrap-packages" | paste -sd, -)
  rootfs_tag="armstack/debian-rootfs:bookworm${debarch:+-arm64}-$(echo "$pkgs" | sha256sum | cut -c1-8)"
  if ! docker image inspect "$rootfs_tag" >/dev/null 2>&1; then
    # A registry answering (not the case on this test bed) saves the debootstrap.
    if [ "$arch" != arm64 ] && timeout 60 docker pull -q debian:bookworm >/dev/null 2>&1; then
      docker tag debian:bookworm "$rootfs_tag"
    else
      _need_root
      apt_install debootstrap
      local dir
      dir=$(mktemp -d /var/tmp/armstack-rootfs.XXXXXX)
      log "debootstrap Debian 12 ${debarch:-} into $dir (one to three minutes)"
      # shellcheck disable=SC2086
      debootstrap --variant=minbase $debarch \
        --include="$pkgs" \
        bookworm "$dir" "$ARMSTACK_DEBIAN_MIRROR" >/var/tmp/armstack-debootstrap.log 2>&1 \
        || { tail -20 /var/tmp/armstack-debootstrap.log >&2; die "debootstrap failed"; }
      # debootstrap leaves nothing mounted on success; make sure before deleting.
      umount -R "$dir/proc" "$dir/sys" "$dir/dev" 2>/dev/null || true
      mountpoint -q "$dir/proc" && die "$dir/proc is still mounted; not deleting $dir"
      tar -C "$dir" --exclude=./proc/* --exclude=./sys/* --exclude=./dev/* -c . \
        | docker import - "$rootfs_tag" >/dev/null
      rm -rf --one-file-system "$dir"
    fi
  fi
  log "building $tag"
  if [ "$arch" = arm64 ]; then
    # Docker 20.10's legacy builder loses the platform of intermediate images
    # ("does not match the specified platform"), so the arm64 image runs the
    # same recipe as the Dockerfile by hand: setup script, then commit.
    local cid
    cid=$(docker create -e container=docker "$rootfs_tag" sh -c '
      set -e; cp /tmp/armstack-base/debootstrap-packages /tmp/
      sh /tmp/armstack-base/armstack-testbed.sh
      cp /tmp/armstack-base/ssh-hostkeys.service /etc/systemd/system/
      systemctl enable ssh-hostkeys.service ssh.service
      rm -rf /tmp/armstack-base /tmp/debootstrap-packages')
    docker cp "$ARMSTACK_ROOT/testbed/images/base" "$cid:/tmp/armstack-base"
    docker start -a "$cid" >"$ARMSTACK_CACHE/build-base-arm64.log" 2>&1 \
      || { docker rm -f "$cid" >/dev/null; cat "$ARMSTACK_CACHE/build-base-arm64.log" >&2; die "building the arm64 base image failed"; }
    # (commit knows no STOPSIGNAL: start_vm passes --stop-signal itself)
    docker commit --change 'ENV container=docker LANG=C.UTF-8' \
      --change 'CMD ["/lib/systemd/systemd"]' "$cid" "$tag" >/dev/null
    docker rm "$cid" >/dev/null
  else
    docker build -q --build-arg "ROOTFS=$rootfs_tag" -t "$tag" "$ARMSTACK_ROOT/testbed/images/base" >/dev/null 2>"$ARMSTACK_CACHE/build-base.log" \
      || { cat "$ARMSTACK_CACHE/build-base.log" >&2; die "building the base image failed"; }
  fi
}

ensure_networks() {
  docker network inspect "$ARMSTACK_NETWORK" >/dev/null 2>&1 \
    || docker network create "$ARMSTACK_NETWORK" >/dev/null
  # A second network: a client on it stands for "the internet" in firewall tests.
  docker network inspect "$ARMSTACK_OUTSIDE_NETWORK" >/dev/null 2>&1 \
    || docker network create "$ARMSTACK_OUTSIDE_NETWORK" >/dev/null
}

ensure_registry() {
  # Debian's docker-registry package in a container of the base image: pushed to
  # from the host on 127.0.0.1:5000, pulled from by targets as armstack-registry:5000.
  ensure_base_image native
  ensure_networks
  _run_service "$ARMSTACK_REGISTRY_NAME" registry armstack-registry-data:/var/lib/docker-registry \
    -p "127.0.0.1:${ARMSTACK_REGISTRY_PORT}:5000"

  # A second instance on the same storage that requires a login (htpasswd,
  # the password in the local inventory's vault) and is read-only: the
  # private registry the backend pulls from, as production pulls from ghcr.io
  # or OCIR. VMs reach it as armstack-registry-auth:5000; nothing is pushed
  # to it (the images are those pushed to the first one).
  _run_service "${ARMSTACK_REGISTRY_NAME}-auth" registry armstack-registry-data:/var/lib/docker-registry \
    -e ARMSTACK_REGISTRY_CONFIG=/etc/docker/registry/config-auth.yml

  for _ in $(seq 1 30); do
    curl -fsS "http://${ARMSTACK_REGISTRY_PUSH}/v2/" >/dev/null 2>&1 && return 0
    sleep 1
  done
  docker logs "$ARMSTACK_REGISTRY_NAME" >&2 || true
  die "the test registry did not answer on ${ARMSTACK_REGISTRY_PUSH}"
}

# push_image LOCAL_TAG NAME:TAG -> pushes to the test registry (skipped when
# the registry already holds that exact image).
push_image() {
  local src="$1" dst="${ARMSTACK_REGISTRY_PUSH}/$2"
  docker tag "$src" "$dst"
  docker push -q "$dst" >/dev/null
}

# build_test_image DIR NAME:TAG [docker build args...]: build an image from a
# directory under testbed/images, on the base image, and push it to the registry.
# The tag carries a hash of the directory so an unchanged recipe is not rebuilt.
build_test_image() {
  local dir="$1" ref="$2"; shift 2
  local h local_tag
  h=$( (cd "$ARMSTACK_ROOT/testbed/images/$dir" && find . -path ./wheels -prune -o -type f -print0 | sort -z | xargs -0 sha256sum; echo "$ARMSTACK_BASE_IMAGE" "$*") | sha256sum | cut -c1-12)
  local_tag="${ref%%:*}:build-$h"
  if ! docker image inspect "$local_tag" >/dev/null 2>&1; then
    log "building image $ref from testbed/images/$dir"
    docker build -q --build-arg "BASE=$ARMSTACK_BASE_IMAGE" "$@" -t "$local_tag" "$ARMSTACK_ROOT/testbed/images/$dir" >/dev/null 2>"$ARMSTACK_CACHE/build-$dir.log" \
      || { cat "$ARMSTACK_CACHE/build-$dir.log" >&2; die "building the test image $ref failed"; }
  fi
  push_image "$local_tag" "$ref"
}

# PyPI wheels for images are downloaded on the host (which trusts its CA
# bundle) and installed in the image with --no-index: builds need no network.
download_wheels() {
  local dest="$1"; shift
  mkdir -p "$dest"
  "$ARMSTACK_VENV/bin/pip" download -q --only-binary=:all: --python-version 3.11 \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform any \
    -d "$dest" "$@" 2>>"$ARMSTACK_CACHE/pip.log" \
    || { tail -20 "$ARMSTACK_CACHE/pip.log" >&2; die "pip download $* failed"; }
}

# run_service NAME IMAGE_DIR PORT VOLUME:PATH: a long-running helper container
# of the test bed on the `armstack` network, built from testbed/images/IMAGE_DIR.
_run_service() {
  local name="$1" dir="$2" volume="$3" img
  img="armstack/$dir:$( (cd "$ARMSTACK_ROOT/testbed/images/$dir" && cat ./*; echo "$ARMSTACK_BASE_IMAGE") | sha256sum | cut -c1-12)"
  if ! docker image inspect "$img" >/dev/null 2>&1; then
    log "building $img"
    docker build -q --build-arg "BASE=$ARMSTACK_BASE_IMAGE" -t "$img" "$ARMSTACK_ROOT/testbed/images/$dir" \
      >/dev/null 2>"$ARMSTACK_CACHE/build-$dir.log" \
      || { cat "$ARMSTACK_CACHE/build-$dir.log" >&2; die "building $img failed"; }
  fi
  if [ "$(docker inspect -f '{{.State.Running}} {{.Config.Image}}' "$name" 2>/dev/null)" != "true $img" ]; then
    docker rm -f "$name" >/dev/null 2>&1 || true
    docker run -d --name "$name" --restart unless-stopped --network "$ARMSTACK_NETWORK" \
      -v "$volume" "${@:4}" "$img" >/dev/null
  fi
}

ensure_aptcache() {
  ensure_base_image native
  ensure_networks
  _run_service armstack-aptcache aptcache armstack-aptcache-data:/var/cache/apt-cacher-ng
}

ensure_testbed() {
  ensure_docker
  ensure_venv
  ensure_base_image native
  ensure_networks
  ensure_registry
  ensure_aptcache
}

# Every directory under testbed/images with a file `ref` is a test image
# recipe: each line of `ref` is `NAME:TAG [ARG=VALUE ...]`, one image built on
# the base image with those build args, and pushed to the test registry (so one
# recipe can give a good and a broken version of an app). A `wheels.txt` beside
# it lists PyPI requirements downloaded on the host into the build context's
# wheels/ (installed in the image with --no-index).
build_test_images() {
  local d line ref args a
  for d in "$ARMSTACK_ROOT"/testbed/images/*/; do
    [ -f "$d/ref" ] || continue
    if [ -f "$d/wheels.txt" ]; then
      download_wheels "$d/wheels" -r "$d/wheels.txt"
    fi
    while read -r line; do
      case "$line" in ""|"#"*) continue ;; esac
      # shellcheck disable=SC2086
      set -- $line
      ref="$1"; shift
      args=()
      for a in "$@"; do args+=(--build-arg "$a"); done
      build_test_image "$(basename "$d")" "$ref" "${args[@]}"
    done < "$d/ref"
  done
}

# start_vm NAME [docker run options...]: a systemd "VM" container of the base
# image. The one definition of the VM's shape, used by testbed/up and by every
# molecule scenario (molecule/shared/create.yml): the capabilities it needs one
# by one (--privileged fails on this test bed), /var/lib/docker as a volume so
# that a Docker engine inside uses overlay2, /proc/sys writable so that the
# container's own network sysctls can be set, apt through the apt cache, and two
# networks: `armstack` (the registry is there) and `armstack-outside` (from
# which firewall tests play the internet). Waits until systemd is up.
start_vm() {
  local name="$1"; shift
  ensure_networks
  ensure_aptcache
  if [ "$(docker inspect -f '{{.State.Running}}' "$name" 2>/dev/null)" != "true" ]; then
    docker rm -f -v "$name" >/dev/null 2>&1 || true
    docker run -d --name "$name" --hostname "$name" \
      --label armstack.testbed=vm \
      --cap-add SYS_ADMIN --cap-add NET_ADMIN --cap-add NET_RAW --cap-add SYS_TIME \
      --cap-add SYS_NICE --cap-add AUDIT_CONTROL --cap-add AUDIT_READ --cap-add SYS_PTRACE \
      --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
      --security-opt systempaths=unconfined --cgroupns=host \
      -v /sys/fs/cgroup:/sys/fs/cgroup:rw -v /var/lib/docker \
      --tmpfs /run --tmpfs /run/lock --stop-signal SIGRTMIN+3 \
      --network "$ARMSTACK_NETWORK" \
      "$@" "${ARMSTACK_VM_IMAGE:-$ARMSTACK_BASE_IMAGE}" /lib/systemd/systemd >/dev/null \
      || die "could not start the VM container $name (Docker's reason is above; a published port in use?)"
    docker network connect "$ARMSTACK_OUTSIDE_NETWORK" "$name"
    # apt goes through the test bed's apt cache (never part of a real host).
    docker exec "$name" sh -c 'echo "Acquire::http::Proxy \"http://armstack-aptcache:3142\";" \
      > /etc/apt/apt.conf.d/01armstack-testbed-proxy'
  fi
  local state
  # Under arm64 emulation a boot takes a few times longer.
  for _ in $(seq 1 240); do
    state=$(docker exec "$name" systemctl is-system-running 2>/dev/null || true)
    case "$state" in running|degraded) return 0 ;; esac
    sleep 1
  done
  die "the VM container $name did not finish booting (systemd says: ${state:-nothing})"
}

stop_vm() {
  docker rm -f -v "$1" >/dev/null 2>&1 || true
}
