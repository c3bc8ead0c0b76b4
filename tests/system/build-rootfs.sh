#!/bin/sh
# Build (once) the Debian 12 root file system that tests/system/run.sh boots with systemd
# as PID 1 in systemd-nspawn: a minbase debootstrap with systemd, python3 and mosquitto,
# from the Debian archive this machine's apt uses. Kept in $CHARGERY_ROOTFS_CACHE
# (default /var/cache/chargery-ci) and reused while its recipe is unchanged.
#
#   sudo tests/system/build-rootfs.sh        prints the path of the ready root file system
set -eu

CACHE="${CHARGERY_ROOTFS_CACHE:-/var/cache/chargery-ci}"
SUITE=bookworm
PACKAGES="systemd,systemd-sysv,dbus,python3,python3-serial,python3-paho-mqtt,mosquitto,mosquitto-clients,procps,iproute2,ca-certificates"
RECIPE="1 $SUITE $PACKAGES"                     # bump the number to force a rebuild
ROOT="$CACHE/$SUITE-root"

mirror() {
    # The archive apt already uses here (deb822 or one-line sources), else Debian's.
    uri=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list 2>/dev/null \
          | grep -v security | head -n 1 | sed -E 's/^URIs: *//; s/^deb +(\[[^]]*\] +)?//; s/ .*//')
    echo "${uri:-http://deb.debian.org/debian}"
}

if [ -f "$ROOT/.chargery-recipe" ] && [ "$(cat "$ROOT/.chargery-recipe")" = "$RECIPE" ]; then
    echo "$ROOT"
    exit 0
fi
for tool in debootstrap systemd-nspawn; do
    command -v "$tool" >/dev/null || { echo "build-rootfs.sh: $tool is missing (apt-get install debootstrap systemd-container)" >&2; exit 1; }
done
rm -rf "$ROOT.new"
mkdir -p "$CACHE"
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOT.new" "$(mirror)" >&2
# The package lists, so that install.sh's apt-get install works inside as on a real box.
cp /etc/resolv.conf "$ROOT.new/etc/resolv.conf" 2>/dev/null || true
chroot "$ROOT.new" apt-get update -qq >&2
chroot "$ROOT.new" systemctl mask systemd-networkd-wait-online.service systemd-timesyncd.service \
    getty@tty1.service console-getty.service >&2 2>/dev/null || true
echo "$RECIPE" > "$ROOT.new/.chargery-recipe"
rm -rf "$ROOT" && mv "$ROOT.new" "$ROOT"
echo "$ROOT"
