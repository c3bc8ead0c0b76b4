"""Installing and running as a service: unit files, install.sh, sd_notify and the watchdog."""

from __future__ import annotations

import ast
import hashlib
import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

from harness import DaemonProcess, FakeBms, NotifySocket, wait_until
from helpers import ROOT, VEC, free_port, require_tool

from chargerybms.config import load
from chargerybms.daemon import Daemon
from chargerybms.notify import Notifier
from chargerybms.serial_link import PortReader
from chargerybms.sink import PrintSink

STATUS = VEC["A1"]
UNITS = ROOT  # the unit files stand at the top of the repository, beside chargery.py


def unit_copies(tmp_path: Path) -> list[Path]:
    """The two units as systemd would load them (a template needs an instance name)."""
    single = tmp_path / "chargery.service"
    instance = tmp_path / "chargery@house.service"
    shutil.copy(UNITS / "chargery.service", single)
    shutil.copy(UNITS / "chargery@.service", instance)
    return [single, instance]


def test_units_pass_systemd_analyze_verify_silently(tmp_path: Path) -> None:
    analyze = require_tool("systemd-analyze")
    result = subprocess.run(
        [analyze, "verify", *map(str, unit_copies(tmp_path))], capture_output=True, text=True, check=False
    )
    # verify exits 0 on many mistakes: any output at all is a failure.
    assert result.stdout + result.stderr == ""
    assert result.returncode == 0


def test_units_are_rated_2_or_better_by_systemd_analyze_security(tmp_path: Path) -> None:
    analyze = require_tool("systemd-analyze")
    for unit in unit_copies(tmp_path):
        result = subprocess.run(
            [analyze, "security", "--offline=yes", str(unit)], capture_output=True, text=True, check=False
        )
        match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout + result.stderr)
        assert match, result.stdout + result.stderr
        assert float(match.group(1)) <= 2.0, result.stdout


def test_unit_contract() -> None:
    text = (UNITS / "chargery.service").read_text()
    for line in (
        "[Unit]", "[Service]", "[Install]", "Type=notify", "WatchdogSec=", "Restart=on-failure",
        "RestartPreventExitStatus=2", "StartLimitIntervalSec=0", "User=chargery", "SupplementaryGroups=dialout",
        "EnvironmentFile=-/etc/chargery/chargery.env", "LoadCredential=mqtt_password:", "StateDirectory=chargery",
        "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "NoNewPrivileges=yes", "DevicePolicy=closed",
        "DeviceAllow=char-ttyUSB rw", "MemoryMax=", "TasksMax=",
    ):  # fmt: skip
        assert line in text, line
    assert "\nPrivateDevices=" not in text  # it would hide the serial adapter
    assert ">" not in text.split("ExecStart=")[1].splitlines()[0]  # no shell redirection
    template = (UNITS / "chargery@.service").read_text()
    assert "EnvironmentFile=/etc/chargery/%i.env" in template and "StateDirectory=chargery/%i" in template


# --- install.sh ---------------------------------------------------------------------------


def snapshot(root: Path) -> dict[str, tuple[str, str, int]]:
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            st = path.stat()
            out[str(path.relative_to(root))] = (
                hashlib.sha256(path.read_bytes()).hexdigest(),
                oct(st.st_mode & 0o777),
                st.st_mtime_ns,
            )
    return out


def install(stage: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DESTDIR"} | {"DESTDIR": str(stage)}
    return subprocess.run(["sh", str(ROOT / "install.sh"), *args], env=env, capture_output=True, text=True, check=True)


def test_install_into_a_staging_root(tmp_path: Path) -> None:
    stage = tmp_path / "stage"
    result = install(stage, "--udev", "0403:6001:AB12")
    files = snapshot(stage)
    expected_modes = {
        "opt/chargery/chargery.py": "0o755",
        "opt/chargery/chargerybms/protocol.py": "0o644",
        "opt/chargery/chargerybms/daemon.py": "0o644",
        "opt/chargery/chargerybms/views/health/engine.py": "0o644",  # subpackages too
        "etc/systemd/system/chargery.service": "0o644",
        "etc/systemd/system/chargery@.service": "0o644",
        "etc/chargery/chargery.env": "0o640",
        "etc/chargery/mqtt-password": "0o600",
        "etc/udev/rules.d/99-chargery.rules": "0o644",
    }
    for name, mode in expected_modes.items():
        assert files[name][1] == mode, name
    assert (stage / "etc/systemd/system/chargery.service").read_text() == (UNITS / "chargery.service").read_text()
    assert (stage / "etc/chargery/mqtt-password").read_text() == ""
    assert "CHARGERY_PORT=" in (stage / "etc/chargery/chargery.env").read_text()
    rule = (stage / "etc/udev/rules.d/99-chargery.rules").read_text()
    assert 'ATTRS{idVendor}=="0403"' in rule and 'ATTRS{serial}=="AB12"' in rule and 'SYMLINK+="chargery"' in rule
    # Nothing outside the staging root: every system step is printed as skipped.
    out = result.stdout
    assert "skipped (DESTDIR): apt-get install -y python3 python3-serial python3-paho-mqtt" in out
    assert re.search(r"skipped \(DESTDIR\): useradd --system .*--groups dialout chargery", out)
    assert "skipped (DESTDIR): systemctl enable chargery.service" in out
    assert "skipped (DESTDIR): udevadm control --reload-rules" in out
    assert not [line for line in out.splitlines() if line.startswith("+ ")]
    # The staged program runs.
    staged = subprocess.run(
        ["python3", str(stage / "opt/chargery/chargery.py"), "decode", "--hex"],
        input="24 24",
        capture_output=True,
        text=True,
        check=False,
    )
    assert staged.returncode == 0 and "0 frames" in staged.stderr


def test_a_second_install_changes_nothing_and_keeps_settings(tmp_path: Path) -> None:
    stage = tmp_path / "stage"
    install(stage)
    env_file = stage / "etc/chargery/chargery.env"
    env_file.write_text("CHARGERY_PORT=/dev/mine\n")
    before = snapshot(stage)
    time.sleep(0.01)
    result = install(stage)
    assert snapshot(stage) == before
    assert "installed:" not in result.stdout and "kept: /etc/chargery/chargery.env (yours)" in result.stdout


def test_venv_route_and_uninstall(tmp_path: Path) -> None:
    stage = tmp_path / "stage"
    result = install(stage, "--venv")
    assert "skipped (DESTDIR): python3 -m venv /opt/chargery/venv" in result.stdout
    dropin = (stage / "etc/systemd/system/chargery.service.d/venv.conf").read_text()
    assert "ExecStart=\nExecStart=/opt/chargery/venv/bin/python3 /opt/chargery/chargery.py" in dropin
    result = install(stage, "--uninstall")
    assert not (stage / "opt/chargery").exists()
    assert not (stage / "etc/systemd/system/chargery.service").exists()
    assert (stage / "etc/chargery/chargery.env").exists()  # settings kept
    install(stage, "--uninstall", "--purge")
    assert not (stage / "etc/chargery").exists()


# --- sd_notify and the watchdog ------------------------------------------------------------


def test_ready_status_and_watchdog_through_notify_socket(
    tmp_path: Path, notify_socket: NotifySocket, bms: FakeBms
) -> None:
    bms.plug().stream([STATUS], interval=0.1)
    # A broker that is not there: READY must not wait for it.
    daemon = DaemonProcess(
        tmp_path / "d",
        ["--port", str(bms.path), "--mqtt-host", "127.0.0.1", "--mqtt-port", str(free_port())],
        env=notify_socket.env(watchdog_usec=900_000),
    )
    try:
        ready = wait_until(lambda: notify_socket.with_text("READY=1"), 10, "READY=1")
        wait_until(lambda: len(notify_socket.with_text("WATCHDOG=1")) >= 3, 10, "watchdog pings")
        statuses = [m for _, m in notify_socket.messages if "STATUS=" in m]
        assert any("MQTT connecting" in m for m in statuses)
        wait_until(
            lambda: any("serial ok" in m and "last frame 0 s ago" in m for _, m in notify_socket.messages), 10, "status"
        )
        assert ready[0] <= notify_socket.with_text("WATCHDOG=1")[0]
    finally:
        daemon.stop()
    wait_until(lambda: notify_socket.with_text("STOPPING=1"), 5, "STOPPING=1")  # sent; now read as well


class StuckSource:
    """A serial port whose read can be made to hang, as a wedged USB driver would."""

    def __init__(self) -> None:
        self.stuck = threading.Event()
        self.hanging = threading.Event()  # a read hangs now
        self.release = threading.Event()

    def read(self, size: int = 4096, timeout: float = 1.0) -> bytes:
        if self.stuck.is_set():
            self.hanging.set()
            self.release.wait(30)
        time.sleep(0.02)
        return STATUS

    def close(self) -> None:
        self.release.set()


def test_watchdog_stops_when_the_reader_is_stuck(notify_socket: NotifySocket) -> None:
    settings = load({"port": "/dev/null", "dry_run": True, "ha_discovery": False}, environ={})
    source = StuckSource()
    watchdog_usec = 300_000  # pinged every 0.1 s while healthy
    notifier = Notifier(notify_socket.env(watchdog_usec))
    devnull = open(os.devnull, "w")  # noqa: SIM115 - closed below
    daemon = Daemon(
        settings,
        sink=PrintSink("chargerybms/status", out=devnull),
        port=PortReader(lambda: source, "a stuck port"),
        notifier=notifier,
    )
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: len(notify_socket.with_text("WATCHDOG=1")) >= 3, 10, "pings while healthy")
        source.stuck.set()
        wait_until(source.hanging.is_set, 10, "the read to hang")
        stuck_at = time.monotonic()
        # The stimulus is time itself: hung for longer than the watchdog's timeout, when
        # systemd would kill the service, not one ping from any thread (a ping in flight
        # when the read began has arrived well within the first 0.1 s).
        time.sleep(1.5 * watchdog_usec / 1e6)
        pings = notify_socket.with_text("WATCHDOG=1")
        assert not [t for t in pings if t > stuck_at + 0.1], (stuck_at, pings[-5:])
        source.stuck.clear()
        source.release.set()
        wait_until(lambda: [t for t in notify_socket.with_text("WATCHDOG=1") if t > stuck_at], 10, "pings again")
    finally:
        daemon.stop_event.set()
        source.release.set()
        thread.join(5)
        devnull.close()


def test_no_notify_socket_means_no_notifications() -> None:
    n = Notifier({})
    assert not n.enabled and n.watchdog_interval is None
    n.ready("x")
    n.watchdog()


# --- an upgrade keeps the user's settings ---------------------------------------------------


def checkout_copy(directory: Path) -> Path:
    """What install.sh installs from, as a user's checkout holds it (a test may edit it)."""
    directory.mkdir()
    for name in (
        "install.sh",
        "chargery.py",
        "README.md",
        "chargery.service",
        "chargery@.service",
        "chargery-bank.service",
    ):
        shutil.copy2(ROOT / name, directory / name)
    shutil.copytree(ROOT / "chargerybms", directory / "chargerybms", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "docs", directory / "docs")
    return directory


def run_install(source: Path, stage: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DESTDIR"} | {"DESTDIR": str(stage)}
    return subprocess.run(
        ["sh", str(source / "install.sh"), *args], env=env, capture_output=True, text=True, check=False
    )


def edit_settings_block(script: Path, lines: dict[str, str]) -> None:
    """Uncomment and set lines of the settings block, as the script's comment invites."""
    text = script.read_text()
    for name, value in lines.items():
        text, count = re.subn(rf"^# {name} = .*$", f"{name} = {value}", text, count=1, flags=re.M)
        assert count == 1, name
    script.write_text(text)


def test_an_upgrade_replaces_the_program_and_keeps_the_edited_settings_file(tmp_path: Path) -> None:
    stage, source = tmp_path / "stage", checkout_copy(tmp_path / "checkout")
    assert run_install(source, stage).returncode == 0
    env_file, password = stage / "etc/chargery/chargery.env", stage / "etc/chargery/mqtt-password"
    env_file.write_text("CHARGERY_PORT=/dev/serial/by-id/usb-FTDI-mine\nCHARGERY_CELLS=8\n")
    password.write_text("s3cret\n")
    # git pull: a new version of the program.
    daemon_py = source / "chargerybms/daemon.py"
    daemon_py.write_text(daemon_py.read_text() + "\n# a newer version\n")
    result = run_install(source, stage)
    assert result.returncode == 0, result.stderr
    assert "installed: /opt/chargery/chargerybms/daemon.py (644)" in result.stdout
    assert (stage / "opt/chargery/chargerybms/daemon.py").read_text().endswith("# a newer version\n")
    assert env_file.read_text() == "CHARGERY_PORT=/dev/serial/by-id/usb-FTDI-mine\nCHARGERY_CELLS=8\n"
    assert password.read_text() == "s3cret\n"
    assert "kept: /etc/chargery/chargery.env (yours)" in result.stdout
    # The last words: doctor beside the running service needs it stopped first (it holds the port).
    assert (
        "sudo systemctl stop chargery; python3 /opt/chargery/chargery.py doctor --port /dev/ttyUSB0; "
        "sudo systemctl start chargery"
    ) in result.stdout


def test_settings_edited_into_the_installed_script_are_never_silently_overwritten(tmp_path: Path) -> None:
    """The first-hour story: settings edited in /opt/chargery/chargery.py, then `git pull &&
    sudo ./install.sh`. install.sh refuses, changes nothing, and prints the lines that keep
    them in chargery.env; with those there, the upgrade goes ahead and the settings hold."""
    stage, source = tmp_path / "stage", checkout_copy(tmp_path / "checkout")
    assert run_install(source, stage).returncode == 0
    installed = stage / "opt/chargery/chargery.py"
    edit = {"PORT": '"/dev/ttyUSB1"', "CELLS": "8", "MQTT_HOST": '"192.168.1.10"', "PUBLISH_CELLS": "True"}
    edit_settings_block(installed, edit)
    env_file = stage / "etc/chargery/chargery.env"
    env_file.write_text(env_file.read_text().replace("CHARGERY_PORT=/dev/ttyUSB0\n", ""))  # the user's own file
    edited = installed.read_text()
    (source / "chargery.py").write_text((source / "chargery.py").read_text() + "# a newer version\n")
    before = snapshot(stage)

    result = run_install(source, stage)
    assert result.returncode == 1 and result.stdout == ""
    assert snapshot(stage) == before and installed.read_text() == edited  # nothing lost, nothing changed
    err = result.stderr
    assert f"{installed} has settings edited in it: PORT, MQTT_HOST, CELLS, PUBLISH_CELLS." in err
    assert "Settings belong in /etc/chargery/chargery.env" in err and "Nothing was changed." in err
    lines = [line.strip() for line in err.splitlines() if line.startswith("    CHARGERY_")]
    assert lines == ["CHARGERY_PORT=/dev/ttyUSB1", "CHARGERY_MQTT_HOST=192.168.1.10", "CHARGERY_CELLS=8",
                     "CHARGERY_PUBLISH_CELLS=true"]  # fmt: skip
    # The lines mean what the edited block meant.
    constants = {name: ast.literal_eval(value) for name, value in edit.items()}
    environ = dict(line.split("=", 1) for line in lines)
    assert load({}, constants, {}) == load({}, {}, environ)

    # Moved as told: the upgrade goes ahead, and the settings file is the user's, untouched.
    env_file.write_text(env_file.read_text() + "\n".join(lines) + "\n")
    moved = env_file.read_text()
    result = run_install(source, stage)
    assert result.returncode == 0, result.stderr
    assert "installed: /opt/chargery/chargery.py (755)" in result.stdout
    assert installed.read_text().endswith("# a newer version\n") and env_file.read_text() == moved


def test_settings_edited_in_the_checkout_are_refused_before_git_pull_trips_on_them(tmp_path: Path) -> None:
    stage, source = tmp_path / "stage", checkout_copy(tmp_path / "checkout")
    edit_settings_block(source / "chargery.py", {"CELLS": "12"})
    result = run_install(source, stage)
    assert result.returncode == 1 and not stage.exists()
    assert "make `git pull` conflict" in result.stderr and "    CHARGERY_CELLS=12\n" in result.stderr
    assert "git checkout chargery.py" in result.stderr


def test_uninstall_keeps_settings_edited_into_the_installed_script(tmp_path: Path) -> None:
    stage, source = tmp_path / "stage", checkout_copy(tmp_path / "checkout")
    assert run_install(source, stage).returncode == 0
    edit_settings_block(stage / "opt/chargery/chargery.py", {"CELLS": "12"})
    result = run_install(source, stage, "--uninstall")
    assert result.returncode == 1 and (stage / "opt/chargery/chargery.py").exists()
    assert "    CHARGERY_CELLS=12\n" in result.stderr


def test_install_help_says_where_settings_live_and_points_to_the_upgrade_page() -> None:
    result = subprocess.run(["sh", str(ROOT / "install.sh"), "--help"], capture_output=True, text=True, check=True)
    assert "/etc/chargery/chargery.env" in result.stdout and "never overwritten" in result.stdout
    assert "docs/upgrading.md" in result.stdout and (ROOT / "docs/upgrading.md").is_file()
    assert "set -eu" not in result.stdout
