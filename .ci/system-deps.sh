#!/usr/bin/env bash
# Debian packages the real-component tests use: the OCI registry (docker-registry), an
# independent OCI client (skopeo), the browser the HTML report tests drive (chromium, through
# Playwright; never a downloaded browser), plus the container engine set-up. Idempotent; a package
# that cannot be installed is reported, and the tests that need it skip with that reason.
set -u
cd "$(dirname "$0")/.."
need=()
command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
command -v skopeo >/dev/null 2>&1 || need+=(skopeo)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if ((${#need[@]})); then
  if [ "$(id -u)" = 0 ]; then
    echo "installing ${need[*]}"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"; } \
      >/tmp/mpkg-apt.log 2>&1 || echo "warning: apt-get install ${need[*]} failed (see /tmp/mpkg-apt.log)"
  else
    echo "warning: not root; install ${need[*]} to run the registry tests"
  fi
fi
if [ -f .ci/container-setup.sh ]; then
  bash .ci/container-setup.sh || echo "warning: container set-up failed; container tests will skip"
fi
exit 0
