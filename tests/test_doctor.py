"""``chargery.py doctor`` against pseudo-terminals carrying what real wiring produces."""

from __future__ import annotations

import random
import subprocess

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
