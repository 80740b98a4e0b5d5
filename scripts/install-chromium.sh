#!/bin/sh
# Install the real browser the dashboard test drives (tests/server/test_dashboard.py): Debian's
# chromium package. Browser downloads from other sites are not needed (nor reachable here).
# Idempotent: does nothing when the binary exists. Needs root (or sudo) only to install.
# When it cannot be installed, the browser tests are skipped with that reason; nothing else is.
set -eu

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
    exit 0
fi
echo "install-chromium: installing chromium"
if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null 2>&1; then
    # The package lists may be missing or stale: refresh them once and try again.
    $SUDO apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null ||
        echo "install-chromium: chromium unavailable; the dashboard's browser tests will be skipped" >&2
fi
exit 0
