#!/usr/bin/env bash
# Installs what the test suite needs beyond the Python packages, only when it is missing:
# Debian packages (servers, a browser) and the npm packages of the JavaScript test clients.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
# need COMMAND PACKAGE: install Debian's PACKAGE unless COMMAND is already on the PATH.
need() {
    command -v "$1" >/dev/null 2>&1 || missing+=("$2")
}

# (one `need` line per system tool the tests use)
need node nodejs    # tus-js-client, tests/js
need npm npm
need chromium chromium   # the upload page's tests drive it headless (tests/browser)
need redis-server redis-server   # rate limits shared by gunicorn workers (test_rate_limits)
# A private MariaDB server for the database tests (mariadbd lives in /usr/sbin).
PATH="$PATH:/usr/sbin" need mariadbd mariadb-server
need systemd-analyze systemd   # checks the unit files in deploy/ (test_deploy)
# nginx checks deploy/nginx.conf with `nginx -t` (test_deploy; nginx lives in /usr/sbin).
PATH="$PATH:/usr/sbin" need nginx nginx
need faketime faketime   # hosts whose clocks are wrong (libfaketime; tests/multihost/test_clocks.py)
# The image and compose.yaml under real containers (tests/containers): podman with runc (this
# kernel's cgroups refuse crun), the networks compose makes (bridge, and dnsname for the
# services' names), a base image made with mmdebstrap (no registry of images is reachable),
# and Debian's docker-compose against podman's Docker API (it knows compose profiles).
need podman podman
need runc runc
need mmdebstrap mmdebstrap
need docker-compose docker-compose
PATH="$PATH:/usr/sbin" need iptables iptables
[ -e /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
[ -e /usr/lib/cni/dnsname ] || missing+=(golang-github-containernetworking-plugin-dnsname)

if [ ${#missing[@]} -gt 0 ]; then
    echo "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm packages, one folder per JavaScript client or emulator (tests/azurite: Azurite), each
# with its own package.json and lock.
for dir in $(find . -name package.json -not -path "*/node_modules/*" -not -path "./.venv/*" \
             -exec dirname {} \; | sort); do
    if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules" ]; then
        (cd "$dir" && npm ci --silent --no-audit --no-fund)
    fi
done
