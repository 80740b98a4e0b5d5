#!/bin/sh
# Install the real servers the store tests run against, from Debian's packages:
# redis-server (required) and valkey-server from bookworm-backports (optional: the Valkey
# run of the conformance suite is skipped when it is missing). Idempotent: does nothing when
# the binaries exist. Needs root (or sudo) only when something is missing.
set -eu

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

if ! command -v redis-server >/dev/null 2>&1; then
    echo "install-redis: installing redis-server"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
fi

# Valkey 8 lives in bookworm-backports; other releases may carry it in their main suite.
if [ "${VEX_SKIP_VALKEY:-0}" != "1" ] && ! command -v valkey-server >/dev/null 2>&1; then
    codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
    target=""
    if [ "$codename" = "bookworm" ]; then
        list=/etc/apt/sources.list.d/vex-llm-backports.list
        if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
            echo "deb $mirror bookworm-backports main" | $SUDO tee "$list" >/dev/null
        fi
        target="-t bookworm-backports"
    fi
    echo "install-redis: installing valkey-server (optional)"
    if ! { $SUDO apt-get update -qq &&
           DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $target valkey-server >/dev/null; }; then
        echo "install-redis: valkey-server unavailable; the Valkey tests will be skipped" >&2
    fi
fi

# The Debian packages start a system service on the default port; the tests start their own
# servers on free ports and do not need it.
command -v redis-server >/dev/null 2>&1
