"""``chargery.py doctor`` against pseudo-terminals carrying what real wiring produces."""

from __future__ import annotations

import random
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from harness import FakeBms
from helpers import chargery_cmd

from chargerybms.simulator import SimulatedBms


def doctor(bms: FakeBms, seconds: str = "1", *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        chargery_cmd("doctor", "--port", str(bms.path), "--seconds", seconds, *extra),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def simulated(slots: int, firmware: str, cells: int | None = None) -> list[bytes]:
    return list(SimulatedBms(slots, firmware=firmware, cells=cells).seconds(4))


def test_nothing_on_the_wire(bms: FakeBms) -> None:
    bms.plug()
    result = doctor(bms, "1")
    assert result.returncode == 1
    assert "No bytes at all" in result.stdout and "display unit" in result.stdout


def test_inverted_levels_give_bytes_but_no_frame_start(bms: FakeBms) -> None:
    # What a TTL adapter without inversion makes of RS-232 frames: steady garbage.
    rng = random.Random(3)
    garbled = [bytes(b ^ 0xFF for b in chunk) for chunk in simulated(16, "1.26")]
    garbled = [bytes(rng.choice(b"\x7f\xfe\xf8\x80\x00\xe0\x1c") for _ in chunk) for chunk in garbled]
    bms.plug().stream(garbled, interval=0.02)
    result = doctor(bms)
    assert result.returncode == 1
    assert "never a frame start" in result.stdout and "TTL" in result.stdout


def test_only_the_idle_text_means_asleep_not_miswired(bms: FakeBms) -> None:
    bms.plug().stream([b"h::3\r\n"], interval=0.05)
    result = doctor(bms, "1")
    assert result.returncode == 1
    assert "h::3" in result.stdout and "asleep" in result.stdout and "TTL" not in result.stdout


def test_checksum_errors_are_called_noise(bms: FakeBms) -> None:
    rng = random.Random(5)
    damaged = []
    for chunk in simulated(16, "1.25"):
        b = bytearray(chunk)
        if chunk.startswith(b"$$"):
            b[rng.randrange(5, len(b))] ^= 1 << rng.randrange(8)
        damaged.append(bytes(b))
    bms.plug().stream(damaged, interval=0.02)
    result = doctor(bms)
    assert result.returncode == 1
    assert "corrupted" in result.stdout and "Noise" in result.stdout


@pytest.mark.parametrize(
    ("slots", "firmware", "says"),
    [
        (16, "1.22", "V1.22/V1.23"),
        (8, "1.25", "V1.24/V1.25"),
        (24, "1.26", "V1.26 or later"),
    ],
)
def test_healthy_stream_of_each_generation(bms: FakeBms, slots: int, firmware: str, says: str) -> None:
    bms.plug().stream(simulated(slots, firmware, cells=slots - 2), interval=0.02)
    result = doctor(bms)
    assert result.returncode == 0, result.stdout
    out = result.stdout
    assert "Healthy stream" in out
    assert f"Model: BMS{slots}T" in out
    assert f"Firmware: {says}" in out
    assert f"Cells that look wired: {slots - 2}" in out
    assert f"--cells {slots - 2}" in out
    assert "per second" in out


def test_a_missing_port_is_explained(tmp_path: object) -> None:
    result = subprocess.run(
        chargery_cmd("doctor", "--port", "/dev/ttyNOPE9", "--seconds", "1"),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1 and "Cannot open /dev/ttyNOPE9" in result.stdout and "Traceback" not in result.stderr


# --- the port held by another process (the service install.sh just started) ------------------


def test_a_port_held_by_the_running_daemon_is_named_with_what_to_do(bms: FakeBms, start_daemon: Any) -> None:
    """What a new user meets right after install.sh: the service holds the port. Not
    "Resource temporarily unavailable" and hints about plugging in, but who holds it."""
    bms.plug().stream(simulated(16, "1.26"), interval=0.02)
    daemon = start_daemon("--port", str(bms.path), "--dry-run", "--no-ha-discovery")
    daemon.wait_log("serial: receiving frames")
    result = doctor(bms, "1")
    assert result.returncode == 1
    out = result.stdout
    assert out.startswith(f"{bms.path} is in use by another process, so doctor cannot listen to it.\n"), out
    assert re.search(rf"^- Held by PID {daemon.proc.pid}: \S*python\S* \S*chargery\.py --port ", out, re.M), out
    assert "sudo systemctl stop chargery" in out
    assert "Resource temporarily unavailable" not in out and "plugged in" not in out


def test_a_port_held_by_another_program_names_it(bms: FakeBms, tmp_path: Path) -> None:
    bms.plug()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(bms.path)], stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "holding\n"
        result = doctor(bms, "1")
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 1
    assert f"- Held by PID {holder.pid}: {sys.executable} -c " in result.stdout, result.stdout
    assert "Stop that program and run doctor again" in result.stdout
    # Once it is gone, doctor listens.
    assert "is in use" not in doctor(bms, "0.5").stdout


# A program that keeps a terminal open and locked, as pyserial's exclusive=True does.
HOLD = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)
fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
print("holding", flush=True)
sys.stdin.read()
"""


def test_the_service_holding_the_port_gets_the_systemctl_advice() -> None:
    from chargerybms.commands.doctor import Holder, busy_lines

    lines = busy_lines("/dev/ttyUSB0", [Holder(812, "/usr/bin/python3 /opt/chargery/chargery.py", "chargery.service")])
    assert lines[1] == "- Held by PID 812: /usr/bin/python3 /opt/chargery/chargery.py (systemd unit chargery.service)"
    assert "  sudo systemctl stop chargery; then run doctor again; then sudo systemctl start chargery" in lines
    several = busy_lines("/dev/ttyUSB1", [Holder(9, "python3 /opt/chargery/chargery.py", "chargery@shed.service")])
    assert "journalctl -u chargery@shed -f" in several[2]
    unseen = busy_lines("/dev/ttyUSB0", [])
    assert "sudo python3 chargery.py doctor" in unseen[1] and "sudo systemctl stop chargery" in unseen[-1]


def test_the_holders_are_read_from_the_lock_table_and_open_files(bms: FakeBms) -> None:
    from chargerybms.commands.doctor import port_holders

    bms.plug()
    assert port_holders(str(bms.path)) == []  # the test's own master/slave descriptors do not count
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(bms.path)], stdout=subprocess.PIPE, stdin=subprocess.PIPE
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"holding\n"
        found = port_holders(str(bms.path))
    finally:
        holder.kill()
        holder.wait()
    assert [h.pid for h in found] == [holder.pid] and HOLD.strip().split("\n")[0] in found[0].command
