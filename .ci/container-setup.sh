#!/usr/bin/env bash
# Prepare what the container tests (tests/builder/test_containerize.py) need, on a fresh
# Debian machine, as root. Idempotent and fast on a second run. It NEVER fails the CI run:
# whatever cannot be set up is written to $STATUS as "unavailable: <reason>", and the tests
# that need a container engine skip with that reason (tests/harness/containers.py).
#
# What it sets up:
#   - Debian packages: podman (the engine; `podman system service` gives the Docker API the
#     docker SDK talks to), runc, debootstrap.
#   - $CONF: a CONTAINERS_CONF with runc and explicit ulimits, because this sandbox cannot
#     raise resource limits (crun/runc's default rlimit handling fails with EPERM there).
#   - localhost/mpkg-base:bookworm: a minimal Debian bookworm with python3 + venv, made with
#     debootstrap and `podman import` (no image registry is reachable). The rootfs tarball
#     is cached in $CACHE so a machine that lost its podman storage re-imports in seconds.
# The podman API service itself is started per test session by the test harness.
set -u

CACHE=${MPKG_CI_CACHE:-/var/cache/mpkg-ci}
CONF_DIR=/etc/mpkg-ci
CONF=$CONF_DIR/containers.conf
STATUS=$CACHE/status
BASE_IMAGE=${MPKG_BASE_IMAGE:-localhost/mpkg-base:bookworm}
SUITE=bookworm
MIRROR=${MPKG_DEBIAN_MIRROR:-http://deb.debian.org/debian}
TARBALL=$CACHE/mpkg-base-$SUITE.tar

say() { echo "container-setup: $*" >&2; }

unavailable() {
    say "UNAVAILABLE: $*; the container tests will skip"
    { mkdir -p "$CACHE" && echo "unavailable: $*" >"$STATUS"; } 2>/dev/null
    exit 0
}

elapsed() { echo $(( $(date +%s) - $1 ))s; }

main() {
    local t0 t
    t0=$(date +%s)
    [ "$(id -u)" = 0 ] || unavailable "container-setup.sh must run as root (it installs Debian packages)"
    command -v apt-get >/dev/null || unavailable "no apt-get: container setup supports Debian only"
    mkdir -p "$CACHE" "$CONF_DIR" || unavailable "cannot create $CACHE or $CONF_DIR"

    local missing=()
    for pkg in podman runc debootstrap; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        t=$(date +%s)
        say "installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get -o DPkg::Lock::Timeout=600 update -qq >"$CACHE/apt.log" 2>&1 \
            || unavailable "apt-get update failed (see $CACHE/apt.log)"
        apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${missing[@]}" >>"$CACHE/apt.log" 2>&1 \
            || unavailable "apt-get install ${missing[*]} failed (see $CACHE/apt.log)"
        say "installed ${missing[*]} in $(elapsed "$t")"
    fi

    cat >"$CONF.tmp" <<'EOF'
# Written by .ci/container-setup.sh. The sandbox cannot raise rlimits, so containers get
# explicit ones no higher than the host's, and runc (crun fails to set them here).
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]

[engine]
runtime = "runc"
EOF
    mv "$CONF.tmp" "$CONF"
    export CONTAINERS_CONF=$CONF

    if ! podman image exists "$BASE_IMAGE" 2>/dev/null; then
        if [ ! -s "$TARBALL" ]; then
            t=$(date +%s)
            local root=$CACHE/rootfs.$$
            rm -rf "$CACHE"/rootfs.*
            say "debootstrap $SUITE from $MIRROR (about a minute)"
            timeout 1200 debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
                "$SUITE" "$root" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
                || { rm -rf "$root"; unavailable "debootstrap $SUITE failed (see $CACHE/debootstrap.log)"; }
            rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/tmp/*
            tar --numeric-owner -C "$root" -cf "$TARBALL.tmp" . \
                || { rm -rf "$root" "$TARBALL.tmp"; unavailable "could not archive the debootstrap rootfs"; }
            mv "$TARBALL.tmp" "$TARBALL"
            rm -rf "$root"
            say "debootstrap done in $(elapsed "$t")"
        fi
        t=$(date +%s)
        podman import --change 'CMD ["/usr/bin/python3"]' "$TARBALL" "$BASE_IMAGE" >"$CACHE/import.log" 2>&1 \
            || unavailable "podman import of $TARBALL failed (see $CACHE/import.log)"
        say "imported $BASE_IMAGE in $(elapsed "$t")"
    fi

    local out
    out=$(podman run --rm --network=none "$BASE_IMAGE" python3 -c 'import sys, venv; print(sys.version_info[:2])' 2>&1) \
        || unavailable "podman cannot run $BASE_IMAGE: $(echo "$out" | tail -n 1)"
    [ "$out" = "(3, 11)" ] || unavailable "$BASE_IMAGE has Python $out, the tests need 3.11"

    echo "ok" >"$STATUS"
    say "ready: podman $(podman version --format '{{.Client.Version}}' 2>/dev/null), base $BASE_IMAGE, CONTAINERS_CONF=$CONF ($(elapsed "$t0"))"
}

main "$@"
exit 0
