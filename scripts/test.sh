#!/usr/bin/env bash
# Installs everything the tests need (Debian packages for the real clients, Python packages),
# then runs the linter and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(skopeo podman buildah docker.io busybox-static uidmap)
missing=()
for package in "${DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "error: the tests need these Debian packages: ${missing[*]} (run as root or install them)" >&2
        exit 2
    fi
    mkdir -p test-output
    echo "installing Debian packages: ${missing[*]}"
    apt-get update -qq > test-output/apt.log 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >> test-output/apt.log 2>&1
fi

bash scripts/install.sh test
.venv/bin/ruff check src tests
.venv/bin/ruff format --check src tests
exec .venv/bin/pytest "$@"
