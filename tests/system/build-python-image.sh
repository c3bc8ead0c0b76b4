#!/bin/sh
# Build (once) the base image the container test builds the Dockerfile on: no image
# registry is reachable in CI, so it is made here. A minbase Debian 12 with python3 and
# pip, from the Debian archive this machine's apt uses, imported into Podman as
# localhost/chargery-python-base. Debian marks its Python "externally managed"; a Python
# base image (Home Assistant's base-python, the official python images) is not, so that
# mark is removed to stand in faithfully. The root file system's tar is kept in
# $CHARGERY_ROOTFS_CACHE (default /var/cache/chargery-ci) and imported again when Podman's
# store lost the image; both are made anew when the recipe below changes.
#
#   sudo tests/system/build-python-image.sh      prints the image's name when it is ready
set -eu

CACHE="${CHARGERY_ROOTFS_CACHE:-/var/cache/chargery-ci}"
SUITE=bookworm
PACKAGES="python3,python3-pip,python3-venv,ca-certificates"
RECIPE="1 $SUITE $PACKAGES"                     # bump the number to force a rebuild
IMAGE=localhost/chargery-python-base:latest
TAR="$CACHE/python-base-$SUITE.tar"

mirror() {
    # The archive apt already uses here (deb822 or one-line sources), else Debian's.
    uri=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list 2>/dev/null \
          | grep -v security | head -n 1 | sed -E 's/^URIs: *//; s/^deb +(\[[^]]*\] +)?//; s/ .*//')
    echo "${uri:-http://deb.debian.org/debian}"
}

for tool in podman debootstrap; do
    command -v "$tool" >/dev/null || { echo "build-python-image.sh: $tool is missing (apt-get install podman debootstrap)" >&2; exit 1; }
done
have=$(podman image inspect --format '{{ index .Labels "chargery.recipe" }}' "$IMAGE" 2>/dev/null || true)
if [ "$have" = "$RECIPE" ]; then
    echo "$IMAGE"
    exit 0
fi
if [ ! -f "$TAR" ] || [ "$(cat "$TAR.recipe" 2>/dev/null)" != "$RECIPE" ]; then
    mkdir -p "$CACHE"
    root="$CACHE/python-base-$SUITE.new"
    rm -rf "$root"
    debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$root" "$(mirror)" >&2
    rm -f "$root"/usr/lib/python3*/EXTERNALLY-MANAGED
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar -C "$root" -cf "$TAR.new" .
    rm -rf "$root"
    mv "$TAR.new" "$TAR"
    echo "$RECIPE" > "$TAR.recipe"
fi
podman import --change "LABEL chargery.recipe=\"$RECIPE\"" --change 'CMD ["python3"]' "$TAR" "$IMAGE" >&2
echo "$IMAGE"
