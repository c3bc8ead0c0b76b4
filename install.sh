#!/bin/sh
# Install chargery as a systemd service on Raspberry Pi OS / Debian (Bookworm, Trixie).
#
#   sudo ./install.sh                 dependencies from apt (python3-serial, python3-paho-mqtt)
#   sudo ./install.sh --venv          dependencies from PyPI in /opt/chargery/venv
#   sudo ./install.sh --udev 0403:6001[:SERIAL]   also a udev rule: the adapter becomes /dev/chargery
#   sudo ./install.sh --uninstall     remove program and units (keeps /etc/chargery and the meters)
#   sudo ./install.sh --uninstall --purge        ... and remove settings, meters and the user
#   DESTDIR=/tmp/stage ./install.sh   only write files under /tmp/stage; no apt, no user, no
#                                     systemctl, no venv: the skipped steps are printed
#
# Running it again is safe: files that are already right are left alone, your settings
# (/etc/chargery/*.env, mqtt-password) are never overwritten.
set -eu

PREFIX=/opt/chargery
ETC=/etc/chargery
UNITDIR=/etc/systemd/system
USER_NAME=chargery
DESTDIR="${DESTDIR:-}"
SRC="$(cd "$(dirname "$0")" && pwd)"

venv=no
udev=""
action=install
purge=no
while [ $# -gt 0 ]; do
    case "$1" in
        --venv) venv=yes ;;
        --udev) udev="${2:?--udev needs VENDOR:PRODUCT[:SERIAL], see lsusb}"; shift ;;
        --uninstall) action=uninstall ;;
        --purge) purge=yes ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

say() { printf '%s\n' "$*"; }

# A step that changes the system outside the staging root: run it, or with DESTDIR say it.
system() {
    if [ -n "$DESTDIR" ]; then
        say "skipped (DESTDIR): $*"
    else
        say "+ $*"
        "$@"
    fi
}

# install_file MODE SOURCE TARGET: copy only when the content or mode differs.
install_file() {
    mode="$1" source="$2" target="$DESTDIR$3"
    if [ -f "$target" ] && cmp -s "$source" "$target" && [ "$(stat -c %a "$target")" = "$mode" ]; then
        say "unchanged: $3"
        return
    fi
    mkdir -p "$(dirname "$target")"
    cp "$source" "$target.new"
    chmod "$mode" "$target.new"
    mv -f "$target.new" "$target"
    say "installed: $3 ($mode)"
}

# keep_file MODE TARGET CONTENT: create a settings file once; never overwrite the user's.
keep_file() {
    mode="$1" target="$DESTDIR$2"
    if [ -e "$target" ]; then
        say "kept: $2 (yours)"
        return
    fi
    mkdir -p "$(dirname "$target")"
    printf '%s' "$3" > "$target"
    chmod "$mode" "$target"
    say "created: $2 ($mode)"
}

require_root() {
    if [ -z "$DESTDIR" ] && [ "$(id -u)" != 0 ]; then
        echo "install.sh: run it as root (sudo ./install.sh), or set DESTDIR to stage the files" >&2
        exit 1
    fi
}

example_env() {
    cat <<'ENV'
# Settings for chargery (one CHARGERY_<NAME>=value a line; see README.md for all of them).
# After a change: sudo systemctl restart chargery
CHARGERY_PORT=/dev/ttyUSB0
#CHARGERY_PORT=/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_XXXXXXXX-if00-port0
#CHARGERY_CELLS=16
#CHARGERY_MQTT_HOST=127.0.0.1
#CHARGERY_MQTT_PORT=1883
#CHARGERY_MQTT_USERNAME=chargery
# The password goes into /etc/chargery/mqtt-password (0600), not here.
#CHARGERY_MQTT_TLS=true
#CHARGERY_MQTT_CA_FILE=/etc/ssl/certs/ca-certificates.crt
#CHARGERY_TOPIC_PREFIX=chargerybms
#CHARGERY_PUBLISH_CELLS=false
#CHARGERY_DEVICE_NAME=Chargery BMS
ENV
}

do_install() {
    require_root
    say "== chargery: installing into ${DESTDIR:-/}"

    if [ "$venv" = yes ]; then
        system apt-get install -y python3-venv
    else
        system apt-get install -y python3 python3-serial python3-paho-mqtt
    fi
    if ! getent passwd "$USER_NAME" >/dev/null 2>&1 || [ -n "$DESTDIR" ]; then
        system useradd --system --user-group --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin --groups dialout "$USER_NAME"
    else
        system usermod -a -G dialout "$USER_NAME"
    fi

    install_file 755 "$SRC/chargery.py" "$PREFIX/chargery.py"
    # The package with its folders (outputs/, views/, commands/, ...); a module removed
    # since the last install goes too, so nothing stale is imported.
    (cd "$SRC" && find chargerybms -name '*.py' -not -path '*/__pycache__/*') | while read -r f; do
        install_file 644 "$SRC/$f" "$PREFIX/$f"
    done
    if [ -d "$DESTDIR$PREFIX/chargerybms" ]; then
        (cd "$DESTDIR$PREFIX" && find chargerybms -name '*.py' -not -path '*/__pycache__/*') | while read -r f; do
            [ -f "$SRC/$f" ] || { rm -f "$DESTDIR$PREFIX/$f"; say "removed: $PREFIX/$f"; }
        done
    fi
    install_file 644 "$SRC/README.md" "$PREFIX/README.md"
    install_file 644 "$SRC/chargery.service" "$UNITDIR/chargery.service"
    install_file 644 "$SRC/chargery@.service" "$UNITDIR/chargery@.service"
    if [ "$venv" = yes ]; then
        system python3 -m venv "$PREFIX/venv"
        system "$PREFIX/venv/bin/pip" install --upgrade "pyserial>=3.5" "paho-mqtt>=1.6.1,<3"
        dropin="$(mktemp)"
        printf '[Service]\nExecStart=\nExecStart=%s/venv/bin/python3 %s/chargery.py\n' "$PREFIX" "$PREFIX" > "$dropin"
        install_file 644 "$dropin" "$UNITDIR/chargery.service.d/venv.conf"
        install_file 644 "$dropin" "$UNITDIR/chargery@.service.d/venv.conf"
        rm -f "$dropin"
    fi

    keep_file 640 "$ETC/chargery.env" "$(example_env)
"
    # Empty means no password. systemd reads it (LoadCredential=) as root; the service user cannot.
    keep_file 600 "$ETC/mqtt-password" ""
    if [ -z "$DESTDIR" ]; then
        chgrp "$USER_NAME" "$ETC/chargery.env"
    fi

    if [ -n "$udev" ]; then
        vendor="${udev%%:*}"; rest="${udev#*:}"; product="${rest%%:*}"; serial=""
        [ "$rest" != "$product" ] && serial="${rest#*:}"
        rule="$(mktemp)"
        {
            echo "# The Chargery BMS adapter always appears as /dev/chargery (installed by chargery's install.sh)."
            printf 'SUBSYSTEM=="tty", ATTRS{idVendor}=="%s", ATTRS{idProduct}=="%s"' "$vendor" "$product"
            [ -n "$serial" ] && printf ', ATTRS{serial}=="%s"' "$serial"
            printf ', SYMLINK+="chargery", GROUP="dialout", MODE="0660"\n'
        } > "$rule"
        install_file 644 "$rule" /etc/udev/rules.d/99-chargery.rules
        rm -f "$rule"
        system udevadm control --reload-rules
        system udevadm trigger --subsystem-match=tty
        say "note: set CHARGERY_PORT=/dev/chargery in $ETC/chargery.env"
    fi

    system systemctl daemon-reload
    system systemctl enable chargery.service
    system systemctl restart chargery.service
    say "== done. Settings: $ETC/chargery.env   Logs: journalctl -u chargery -f"
    say "   Check the wiring first: python3 $PREFIX/chargery.py doctor --port /dev/ttyUSB0"
}

do_uninstall() {
    require_root
    say "== chargery: uninstalling from ${DESTDIR:-/}"
    system systemctl disable --now chargery.service
    for f in "$UNITDIR/chargery.service" "$UNITDIR/chargery@.service" /etc/udev/rules.d/99-chargery.rules; do
        [ -e "$DESTDIR$f" ] && rm -f "$DESTDIR$f" && say "removed: $f"
    done
    for d in "$UNITDIR/chargery.service.d" "$UNITDIR/chargery@.service.d" "$PREFIX"; do
        [ -e "$DESTDIR$d" ] && rm -rf "$DESTDIR$d" && say "removed: $d"
    done
    system systemctl daemon-reload
    if [ "$purge" = yes ]; then
        rm -rf "$DESTDIR$ETC" "$DESTDIR/var/lib/chargery" && say "removed: $ETC /var/lib/chargery"
        system userdel "$USER_NAME"
    else
        say "kept: $ETC (settings) and /var/lib/chargery (energy meters); --purge removes them"
    fi
}

if [ "$action" = install ]; then do_install; else do_uninstall; fi
