# The emulated Raspberry Pi's root file system: an arm64 Debian bookworm with python3, numpy, openssh-server
# and a runtime venv (/opt/rt) holding the pinned wheels of requirements-device.txt.
# Sourced by emulated-rpi; the SHA-256 of this file and requirements-device.txt keys the cached root tarball,
# so any change here rebuilds it.

RECIPE_SUITE=bookworm
RECIPE_PACKAGES=python3,python3-numpy,python3-venv,openssh-server,ca-certificates
RECIPE_PYTHON_TAG=3.11   # bookworm's python3: the device wheels are downloaded for it
RECIPE_USER=pi

# Print the Debian mirror the host's apt uses (deb.debian.org when none is found).
recipe_mirror() {
  local uri
  uri=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -1)
  [ -n "$uri" ] || uri=$(grep -hsE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
    | awk '{print $2}' | grep -v security | head -1)
  echo "${uri:-http://deb.debian.org/debian}"
}

# Download the aarch64 wheels of requirements-device.txt (and their dependencies) on the host into $1.
recipe_wheels() {
  local dest=$1
  mkdir -p "$dest"
  python3 -m pip download -q --only-binary=:all: --python-version "$RECIPE_PYTHON_TAG" \
    --platform manylinux_2_28_aarch64 --platform manylinux_2_27_aarch64 --platform manylinux_2_17_aarch64 \
    --platform manylinux2014_aarch64 -d "$dest" -r "$HERE/requirements-device.txt"
}

# Build the root in $1 (an empty folder). Runs debootstrap's two stages, adds the user and the runtime venv.
recipe_build() {
  local root=$1
  step "debootstrap stage 1 ($RECIPE_SUITE arm64, mirror $(recipe_mirror))"
  debootstrap --arch=arm64 --foreign --variant=minbase --include="$RECIPE_PACKAGES" \
    "$RECIPE_SUITE" "$root" "$(recipe_mirror)" >"$root.debootstrap.log" 2>&1 \
    || die "debootstrap stage 1 failed; log: $root.debootstrap.log"
  step "debootstrap stage 2 (emulated: the slow step, ~7 min on 2 cores)"
  nice -n 10 chroot "$root" /debootstrap/debootstrap --second-stage >>"$root.debootstrap.log" 2>&1 \
    || die "debootstrap stage 2 failed; log: $root.debootstrap.log (tail: $(tail -3 "$root.debootstrap.log"))"
  rm -f "$root.debootstrap.log"

  step "user $RECIPE_USER (key login only)"
  chroot "$root" /usr/sbin/useradd -m -s /bin/bash "$RECIPE_USER"
  chroot "$root" /usr/sbin/usermod -p '*' "$RECIPE_USER"   # useradd leaves it locked; sshd without PAM refuses that
  mkdir -p "$root/run/sshd"

  step "runtime venv /opt/rt ($(grep -v '^#' "$HERE/requirements-device.txt" | xargs))"
  recipe_wheels "$root/tmp/wheels"
  mount -t proc proc "$root/proc"; mount --bind /dev "$root/dev"
  chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    python3 -m venv --system-site-packages /opt/rt
  chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    nice -n 10 /opt/rt/bin/python -m pip install -q --no-index --find-links /tmp/wheels -r /dev/stdin \
    <"$HERE/requirements-device.txt" || die "pip install in the emulated root failed"
  umount "$root/dev" "$root/proc"
  rm -rf "$root/tmp/wheels" "$root/var/cache/apt/archives/"*.deb "$root/root/.cache"
}
