#!/usr/bin/env bash
# A real Home Assistant for the tests (tests/test_home_assistant.py, bench/ha_recorder.py),
# kept between runs in /var/cache/chargery-ci on the same machine:
#
#   python3.13/  CPython >= 3.13.2 (homeassistant 2026.2 requires it). Debian 13 has one
#                (python3.13); on Debian 12 it is built here once from Debian 13's own
#                python3.13 source package, fetched with apt's deb-src through the mirror
#                this machine already uses (about 3 minutes on 2 cores).
#   ha-venv/     homeassistant, pinned, with its own package constraints, plus what the
#                integrations the tests load need (MQTT, frontend, recorder, ...).
#
#   .ci/home-assistant.sh            all of it; prints the venv's python last
#   .ci/home-assistant.sh packages   only the Debian packages it needs (Debian 13's
#                                    python3.13 and friends, or what the build needs)
#   .ci/home-assistant.sh no-apt     the rest, without apt: it can run in the background
#                                    while something else uses apt
#
# The tests find the venv through CHARGERY_HA_PYTHON, else at the path below.
# Run as root on a fresh Debian 12 or 13 machine; every version is pinned.
set -euo pipefail

CACHE="${CHARGERY_CI_CACHE:-/var/cache/chargery-ci}"
PY_PREFIX="$CACHE/python3.13"
HA_VENV="$CACHE/ha-venv"
PY_SOURCE_PACKAGE=python3.13       # Debian 13 (trixie): 3.13.5
PY_SOURCE_SUITE=trixie
HA_VERSION=2026.2.3
# Beyond homeassistant's own requirements: those of the integrations the tests' Home
# Assistant sets up (the configured ones, their dependencies and bootstrap's defaults), as
# their manifest.json in that release pins them. Home Assistant runs with --skip-pip, so a
# missing one shows as an import error, never as a download at test time. Bump together.
HA_EXTRAS=(
    "paho-mqtt==2.1.0"                      # mqtt
    "home-assistant-frontend==20260128.6"   # frontend
    "isal==1.8.0"                           # isal (bootstrap, before http)
)
RECIPE="3 $HA_VERSION ${HA_EXTRAS[*]}"      # bump the number to force a new venv

# Debian 13's python3.13, its venv module's pip, and what pip needs to build the few of
# Home Assistant's requirements that have no wheel for Python 3.13 (lru-dict 1.3.0).
APT_PYTHON=(python3.13 python3.13-venv python3.13-dev build-essential)
# Debian 12: what building CPython (and those few requirements) takes.
BUILD_DEPS=(build-essential pkg-config libssl-dev libffi-dev zlib1g-dev libbz2-dev liblzma-dev
            libsqlite3-dev libreadline-dev uuid-dev libexpat1-dev xz-utils dpkg-dev ca-certificates)

log() { echo "home-assistant.sh: $*" >&2; }

# An interpreter that is 3.13.2 or newer and has what a venv for Home Assistant needs.
new_enough() {
    [ -n "$1" ] && "$1" -c 'import sys; sys.exit(sys.version_info < (3, 13, 2))' >/dev/null 2>&1
}
good_python() {
    new_enough "$1" && "$1" -c 'import ssl, sqlite3, ctypes, lzma, bz2, zlib, venv, ensurepip' >/dev/null 2>&1
}

system_python() {
    local candidate
    for candidate in /usr/bin/python3.13 "$(command -v python3.13 || true)"; do
        if good_python "$candidate"; then
            echo "$candidate"
            return
        fi
    done
}

mirror() {
    # The Debian archive apt already uses here (deb822 or one-line sources), else Debian's.
    local uri
    uri=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list 2>/dev/null \
          | grep -v security | head -n 1 | sed -E 's/^URIs: *//; s/^deb +(\[[^]]*\] +)?//; s/ .*//' || true)
    echo "${uri:-http://deb.debian.org/debian}"
}


build_python() {
    local work apt_dir orig
    work="$CACHE/python3.13-build"
    rm -rf "$work" "$PY_PREFIX"
    mkdir -p "$work/lists/partial" "$work/src"
    apt_dir="$work"
    # A private sources list and package lists: the machine's own apt setup is untouched.
    echo "deb-src $(mirror) $PY_SOURCE_SUITE main" > "$apt_dir/sources.list"
    mkdir -p "$apt_dir/cache/archives/partial"
    local apt_opts=(-o "Dir::Etc::sourcelist=$apt_dir/sources.list" -o "Dir::Etc::sourceparts=-"
                    -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
                    -o "APT::Get::List-Cleanup=0" -o "APT::Sandbox::User=root")
    log "fetching the $PY_SOURCE_PACKAGE source package of Debian $PY_SOURCE_SUITE from $(mirror)"
    apt-get "${apt_opts[@]}" update -qq
    (cd "$work/src" && apt-get "${apt_opts[@]}" source --download-only -qq "$PY_SOURCE_PACKAGE")
    orig=$(ls "$work"/src/*.orig.tar.xz | head -n 1)
    tar -xf "$orig" -C "$work/src"
    local tree
    tree=$(find "$work/src" -mindepth 1 -maxdepth 1 -type d -name 'Python-3.13*' | head -n 1)
    log "building $(basename "$tree") into $PY_PREFIX (make -j$(nproc))"
    (
        cd "$tree"
        ./configure --prefix="$PY_PREFIX" --with-ensurepip=install >"$work/configure.log" 2>&1
        make -j"$(nproc)" >"$work/make.log" 2>&1
        make install >"$work/install.log" 2>&1
    ) || { log "the build failed; the end of its logs:"; tail -n 30 "$work"/*.log >&2; exit 1; }
    good_python "$PY_PREFIX/bin/python3.13" || { log "the built python lacks a module (ssl, sqlite3, ctypes, ...)"; exit 1; }
    touch "$PY_PREFIX/.chargery-complete"
    rm -rf "$work"
}

installed() {
    local pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || return 1
    done
}

apt_install() {
    local missing=() pkg
    for pkg in "$@"; do
        installed "$pkg" || missing+=("$pkg")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        log "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

# The python3.13 this machine's apt offers, if it is new enough (Debian 13: 3.13.5).
apt_python_ok() {
    local candidate
    candidate=$(apt-cache policy python3.13 2>/dev/null | awk '/Candidate:/ {print $2}')
    [ -n "$candidate" ] && [ "$candidate" != "(none)" ] && dpkg --compare-versions "$candidate" ge 3.13.2
}

# Debian 13: APT_PYTHON. Debian 12: BUILD_DEPS, unless Python is built already.
install_packages() {
    if apt_python_ok; then
        apt_install "${APT_PYTHON[@]}"
    elif ! installed "${BUILD_DEPS[@]}"; then
        apt-get update -qq  # a fresh machine may have no package lists at all
        if apt_python_ok; then
            apt_install "${APT_PYTHON[@]}"
        else
            apt_install "${BUILD_DEPS[@]}"
        fi
    fi
}

find_or_build_python() {
    local found
    found=$(system_python)
    if [ -n "$found" ]; then
        echo "$found"
        return
    fi
    if [ ! -f "$PY_PREFIX/.chargery-complete" ] || ! good_python "$PY_PREFIX/bin/python3.13"; then
        build_python
    fi
    echo "$PY_PREFIX/bin/python3.13"
}

make_venv() {
    local python="$1" wheel_dir constraints
    rm -rf "$HA_VENV"
    log "creating $HA_VENV with homeassistant==$HA_VERSION ($("$python" --version))"
    "$python" -m venv "$HA_VENV"
    "$HA_VENV/bin/pip" install -q --disable-pip-version-check --upgrade "pip==25.3"
    # Home Assistant pins its world in package_constraints.txt inside the wheel: use it as
    # pip's constraints, as Home Assistant does when it installs an integration's needs.
    wheel_dir=$(mktemp -d)
    "$HA_VENV/bin/pip" download -q --disable-pip-version-check --no-deps -d "$wheel_dir" "homeassistant==$HA_VERSION"
    constraints="$HA_VENV/package_constraints.txt"
    "$HA_VENV/bin/python" - "$wheel_dir"/homeassistant-*.whl "$constraints" <<'EOF'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel:
    open(sys.argv[2], "wb").write(wheel.read("homeassistant/package_constraints.txt"))
EOF
    "$HA_VENV/bin/pip" install -q --disable-pip-version-check -c "$constraints" \
        "$wheel_dir"/homeassistant-*.whl "${HA_EXTRAS[@]}"
    rm -rf "$wheel_dir"
    echo "$RECIPE" > "$HA_VENV/.chargery-recipe"
}

main() {
    mkdir -p "$CACHE"
    case "${1:-all}" in
        packages) install_packages; return ;;
        all) install_packages ;;
        no-apt) ;;
        *) echo "usage: $0 [packages|no-apt]" >&2; exit 2 ;;
    esac
    exec 9>"$CACHE/home-assistant.lock"
    flock 9  # two runs on one machine share the cache, one at a time
    local python
    python=$(find_or_build_python)
    if [ ! -f "$HA_VENV/.chargery-recipe" ] || [ "$(cat "$HA_VENV/.chargery-recipe")" != "$RECIPE" ] \
       || ! "$HA_VENV/bin/python" -c 'import homeassistant' >/dev/null 2>&1; then
        make_venv "$python"
    fi
    log "$("$HA_VENV/bin/python" -c 'from homeassistant.const import __version__; print("homeassistant", __version__)') on $("$HA_VENV/bin/python" --version)"
    echo "$HA_VENV/bin/python"
}

main "$@"
