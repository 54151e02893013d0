#!/usr/bin/env bash
# Makes the base image the Containerfile builds on, locally, for machines that reach Debian's mirror
# but no image registry: a Debian bookworm root filesystem (debootstrap --variant=minbase, with
# python3 and python3-venv, security updates applied), imported into the engine as
# localhost/portside-base:bookworm. Where Docker Hub is reachable, skip this and build with
# `--build-arg BASE=python:3.11-slim` (or debian:bookworm-slim) instead.
#
# Usage: scripts/base-image.sh            (as root; docker, or ENGINE=podman)
# Environment: ENGINE (docker|podman), BASE_IMAGE (the name to import as), DEBIAN_MIRROR,
# BASE_LOG (where debootstrap and apt write), DOCKER_HOST for a docker engine other than the default one.
#
# Nothing is redone that is already there: the image in the engine, else the root filesystem's
# tarball kept in .cache/base/ (a fresh engine, such as the tests' private one, imports it in seconds).
# Delete both to take in newer Debian updates.
set -euo pipefail
cd "$(dirname "$0")/.."

ENGINE=${ENGINE:-docker}
BASE_IMAGE=${BASE_IMAGE:-localhost/portside-base:bookworm}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${SECURITY_MIRROR:-http://deb.debian.org/debian-security}
CACHE=.cache/base
TARBALL=$CACHE/portside-base-bookworm.tar
LOG=${BASE_LOG:-$CACHE/debootstrap.log}

case "$ENGINE" in
    docker | podman) ;;
    *) echo "error: ENGINE must be docker or podman, not $ENGINE" >&2; exit 2 ;;
esac
if "$ENGINE" image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    echo "$BASE_IMAGE is already in $ENGINE"
    exit 0
fi

if [ ! -f "$TARBALL" ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "error: debootstrap needs root (or build with --build-arg BASE=python:3.11-slim)" >&2
        exit 2
    fi
    command -v debootstrap >/dev/null || { echo "error: apt-get install debootstrap" >&2; exit 2; }
    mkdir -p "$CACHE" "$(dirname "$LOG")"
    rootfs=$(mktemp -d "$CACHE/rootfs.XXXXXX")
    # debootstrap mounts /proc and /sys inside while it works: never follow a leftover mount.
    trap 'umount -l "$rootfs/proc" "$rootfs/sys" 2>/dev/null || true; rm -rf --one-file-system "$rootfs"' EXIT
    echo "debootstrap bookworm into $rootfs (log: $LOG)"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "$rootfs" "$DEBIAN_MIRROR" >"$LOG" 2>&1 ||
        { tail -20 "$LOG" >&2; exit 1; }

    cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $DEBIAN_MIRROR bookworm main
deb $DEBIAN_MIRROR bookworm-updates main
deb $SECURITY_MIRROR bookworm-security main
EOF
    # CAs this machine trusts beyond Debian's (a TLS-inspecting egress proxy, a company CA) are
    # trusted inside too, so pip in the image's build reaches PyPI the way pip here does.
    python3 - "$rootfs" <<'EOF'
import re, sys
pem = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)
rootfs = sys.argv[1]
known = set(pem.findall(open(f"{rootfs}/etc/ssl/certs/ca-certificates.crt").read()))
extra = [c for c in pem.findall(open("/etc/ssl/certs/ca-certificates.crt").read()) if c not in known]
for n, cert in enumerate(extra):
    open(f"{rootfs}/usr/local/share/ca-certificates/host-{n}.crt", "w").write(cert + "\n")
print(f"{len(extra)} extra CA certificate(s) from this machine")
EOF
    {
        chroot "$rootfs" update-ca-certificates
        chroot "$rootfs" apt-get update
        DEBIAN_FRONTEND=noninteractive chroot "$rootfs" apt-get -y upgrade
        chroot "$rootfs" apt-get clean
    } >>"$LOG" 2>&1 || { tail -20 "$LOG" >&2; exit 1; }
    # What a container never needs: package lists, docs, man pages, translations.
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/usr/share/doc/* \
        "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/* "$rootfs"/var/log/*
    # debootstrap copied this machine's resolver and name; the engine provides both at run time.
    : >"$rootfs/etc/resolv.conf"
    : >"$rootfs/etc/hostname"
    tar --numeric-owner --xattrs -C "$rootfs" -cf "$TARBALL.partial" .
    mv "$TARBALL.partial" "$TARBALL"
fi

echo "importing $TARBALL into $ENGINE as $BASE_IMAGE"
"$ENGINE" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' \
    "$TARBALL" "$BASE_IMAGE" >/dev/null
echo "$BASE_IMAGE: $("$ENGINE" image inspect --format '{{.Size}}' "$BASE_IMAGE") bytes"
