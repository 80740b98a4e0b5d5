#!/bin/sh
# Install the real servers the store tests run against, from Debian's packages:
# - redis-server (required);
# - valkey-server (optional; from bookworm-backports on Debian 12): the Valkey run of the
#   conformance suite is skipped without it. VEX_SKIP_VALKEY=1 skips this step.
# Idempotent: does nothing when the binaries exist. Needs root (or sudo) only to install.
# The tests start their own servers on free loopback ports; no system service is needed.
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
command -v redis-server >/dev/null 2>&1

# The first configured Debian archive URI (deb822 .sources files or a one-line sources.list).
debian_mirror() {
    {
        grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}'
        grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | awk '{print $2}'
    } | grep -v -- '-security' | grep '/debian/*$' | head -n 1
}

install_valkey() {
    target=""
    if [ "$(. /etc/os-release && echo "${VERSION_CODENAME:-}")" = "bookworm" ]; then
        if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
            # Use the Debian mirror this machine is already configured with.
            mirror=$(debian_mirror)
            [ -n "$mirror" ] || return 1
            echo "deb $mirror bookworm-backports main" |
                $SUDO tee /etc/apt/sources.list.d/vex-llm-backports.list >/dev/null || return 1
        fi
        target="-t bookworm-backports"
    fi
    $SUDO apt-get update -qq || return 1
    # shellcheck disable=SC2086 # $target is empty or two words on purpose
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $target valkey-server >/dev/null
}

if [ "${VEX_SKIP_VALKEY:-0}" != "1" ] && ! command -v valkey-server >/dev/null 2>&1; then
    echo "install-redis: installing valkey-server (optional)"
    if ! install_valkey; then
        echo "install-redis: valkey-server unavailable; the Valkey tests will be skipped" >&2
    fi
fi
exit 0
