#!/bin/sh
# Install chargery as a systemd service on Raspberry Pi OS / Debian (Bookworm, Trixie).
#
#   sudo ./install.sh                 dependencies from apt (python3-serial, python3-paho-mqtt)
#   sudo ./install.sh --venv          dependencies from PyPI in /opt/chargery/venv
#   sudo ./install.sh --udev 0403:6001[:SERIAL]   also a udev rule: the adapter becomes /dev/chargery
#   sudo ./install.sh --bank          also the bank of packs in parallel (chargery-bank.service)
#   sudo ./install.sh --uninstall     remove program and units (keeps /etc/chargery and the meters)
#   sudo ./install.sh --uninstall --purge        ... and remove settings, meters and the user
#   DESTDIR=/tmp/stage ./install.sh   only write files under /tmp/stage; no apt, no user, no
#                                     systemctl, no venv: the skipped steps are printed
#
# Your settings live in /etc/chargery/chargery.env (chargery@NAME: /etc/chargery/NAME.env) and
# the password in /etc/chargery/mqtt-password: created once, never overwritten, kept by
# --uninstall. Upgrading is `git pull && sudo ./install.sh`; running it again is safe (files
# that are already right are left alone). The settings block at the top of chargery.py is
# for running a copy of the script by hand: /opt/chargery/chargery.py is replaced by every
# upgrade, so install.sh refuses to replace one that holds a setting chargery.env lacks, and
# prints the CHARGERY_ lines to add there instead (then run it again). See docs/upgrading.md.
set -eu

PREFIX=/opt/chargery
ETC=/etc/chargery
UNITDIR=/etc/systemd/system
USER_NAME=chargery
DESTDIR="${DESTDIR:-}"
SRC="$(cd "$(dirname "$0")" && pwd)"

venv=no
udev=""
bank=no
action=install
purge=no
while [ $# -gt 0 ]; do
    case "$1" in
        --venv) venv=yes ;;
        --bank) bank=yes ;;
        --udev) udev="${2:?--udev needs VENDOR:PRODUCT[:SERIAL], see lsusb}"; shift ;;
        --uninstall) action=uninstall ;;
        --purge) purge=yes ;;
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
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

# Settings edited into a chargery.py would be lost when it is replaced (or make `git pull`
# conflict when edited in the checkout). A setting counts as kept when every settings file
# (/etc/chargery/*.env) sets it: the environment wins over chargery.py's block anyway.
# check_settings_block FILE installed|checkout: exit 1, saying what to move where, while one
# would be lost (installed), or at all (checkout: git pull would conflict with it).
check_settings_block() {
    [ -f "$1" ] && grep -q '^[A-Z][A-Z0-9_]*[[:space:]]*=' "$1" || return 0
    if ! command -v python3 >/dev/null 2>&1; then
        echo "install.sh: $1 has settings edited in it; move them to $ETC/chargery.env first:" >&2
        grep '^[A-Z][A-Z0-9_]*[[:space:]]*=' "$1" | sed 's/^/    /' >&2
        exit 1
    fi
    python3 - "$1" "$2" "$DESTDIR$ETC" "$ETC" <<'PYTHON' || exit 1
import ast, pathlib, re, sys

script, kind, etc, shown_etc = pathlib.Path(sys.argv[1]), sys.argv[2], pathlib.Path(sys.argv[3]), sys.argv[4]
settings = {}
for node in ast.parse(script.read_text()).body:
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
        name = node.targets[0].id
        if re.fullmatch(r"[A-Z][A-Z0-9_]*", name):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                value = ast.get_source_segment(script.read_text(), node.value)
            text = "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
            settings[name] = f"CHARGERY_{name}={text}"
env_files = sorted(etc.glob("*.env")) or [etc / "chargery.env"]
missing = {}
for env in env_files:
    have = set(re.findall(r"^\s*(?:export\s+)?CHARGERY_([A-Z0-9_]+)=", env.read_text(), re.M)) if env.exists() else set()
    lacking = [name for name in settings if name not in have]
    if lacking:
        missing[env.name] = lacking
overridden = [name for name in settings if not any(name in names for names in missing.values())]
if kind == "installed" and not missing:
    # Each is set in the settings files too, where it wins: replacing the file loses nothing.
    print(f"note: {sys.argv[1]} had settings in it ({', '.join(settings)}), each also set in {shown_etc}, which wins")
    sys.exit(0)
say = lambda text: print(text, file=sys.stderr)
say(f"install.sh: {sys.argv[1]} has settings edited in it: {', '.join(settings)}.")
if kind == "installed":
    say("They would be lost when the upgrade replaces it.")
else:
    say("In the checkout they make `git pull` conflict, and install.sh would copy them into the program.")
if overridden:
    say(f"({', '.join(overridden)}: set in {shown_etc} too, which wins; that line in chargery.py has no effect.)")
say(f"Settings belong in {shown_etc}/chargery.env (the service reads it; an upgrade never touches it).")
say("Nothing was changed." + (" Add there:" if missing else ""))
for env, names in missing.items():
    say(f"  to {shown_etc}/{env}:")
    for name in names:
        say(f"    {settings[name]}")
if kind == "checkout":
    say("then undo the edit in the checkout (git checkout chargery.py) and run install.sh again.")
else:
    say("then run install.sh again.")
say("(The MQTT password goes into mqtt-password, not chargery.env. See docs/upgrading.md.)")
sys.exit(1)
PYTHON
}

do_install() {
    require_root
    # Before anything is changed: no setting edited into a chargery.py may be lost.
    check_settings_block "$DESTDIR$PREFIX/chargery.py" installed
    check_settings_block "$SRC/chargery.py" checkout
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
    install_file 644 "$SRC/chargery-bank.service" "$UNITDIR/chargery-bank.service"
    install_file 644 "$SRC/docs/several-packs.md" "$PREFIX/docs/several-packs.md"
    if [ "$venv" = yes ]; then
        system python3 -m venv "$PREFIX/venv"
        system "$PREFIX/venv/bin/pip" install --upgrade "pyserial>=3.5" "paho-mqtt>=1.6.1,<3"
        dropin="$(mktemp)"
        printf '[Service]\nExecStart=\nExecStart=%s/venv/bin/python3 %s/chargery.py\n' "$PREFIX" "$PREFIX" > "$dropin"
        install_file 644 "$dropin" "$UNITDIR/chargery.service.d/venv.conf"
        install_file 644 "$dropin" "$UNITDIR/chargery@.service.d/venv.conf"
        printf '[Service]\nExecStart=\nExecStart=%s/venv/bin/python3 %s/chargery.py bank\n' "$PREFIX" "$PREFIX" > "$dropin"
        install_file 644 "$dropin" "$UNITDIR/chargery-bank.service.d/venv.conf"
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
    if [ "$bank" = yes ]; then
        keep_file 640 "$ETC/bank.env" "# The bank (docs/several-packs.md): the members' topic prefixes, PREFIX or PREFIX=AH.
CHARGERY_BANK_MEMBERS=chargerybms/house,chargerybms/shed
#CHARGERY_BANK_PREFIX=chargerybank
#CHARGERY_BANK_VICTRON=serialbattery
#CHARGERY_MQTT_HOST=127.0.0.1
#CHARGERY_MQTT_USERNAME=chargery
"
        [ -z "$DESTDIR" ] && chgrp "$USER_NAME" "$ETC/bank.env"
        # Started once its members are set (try-restart: an upgrade restarts a running bank).
        system systemctl enable chargery-bank.service
        system systemctl try-restart chargery-bank.service
        say "   The bank: edit $ETC/bank.env, then: sudo systemctl restart chargery-bank"
    fi
    say "== done. Settings: $ETC/chargery.env   Logs: journalctl -u chargery -f"
    say "   Is it working? The log says 'serial: receiving frames from ...' within seconds."
    say "   If not, check the wiring (doctor needs the port the service holds):"
    say "   sudo systemctl stop chargery; python3 $PREFIX/chargery.py doctor --port /dev/ttyUSB0; sudo systemctl start chargery"
}

do_uninstall() {
    require_root
    [ "$purge" = yes ] || check_settings_block "$DESTDIR$PREFIX/chargery.py" installed
    say "== chargery: uninstalling from ${DESTDIR:-/}"
    system systemctl disable --now chargery.service chargery-bank.service
    for f in "$UNITDIR/chargery.service" "$UNITDIR/chargery@.service" "$UNITDIR/chargery-bank.service" /etc/udev/rules.d/99-chargery.rules; do
        [ -e "$DESTDIR$f" ] && rm -f "$DESTDIR$f" && say "removed: $f"
    done
    for d in "$UNITDIR/chargery.service.d" "$UNITDIR/chargery@.service.d" "$UNITDIR/chargery-bank.service.d" "$PREFIX"; do
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
