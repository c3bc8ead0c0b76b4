"""The benchmarks stay runnable with one command. They print figures; nothing here judges
the numbers (this machine is shared and noisy), only that every figure is produced."""

from __future__ import annotations

import subprocess
import sys

import pytest
from ha_harness import ha_python
from helpers import ROOT, require_tool


def run(*args: str) -> str:
    result = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300, cwd=ROOT, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_decode_benchmark_runs() -> None:
    out = run("bench/decode_bench.py", "--seconds", "600", "--repeat", "1")
    assert "frames/s" in out and "cli decode:" in out


@pytest.mark.ha
@pytest.mark.broker
def test_ha_recorder_benchmark_runs() -> None:
    """The recorder's rows a day in a real Home Assistant: printed for both settings."""
    require_tool("mosquitto")
    ha_python()  # skip (fail in CI) without Home Assistant
    out = run("bench/ha_recorder.py", "--seconds", "20")
    print(out)
    assert out.count("rows/day added to `states`") == 2 and "--ha-max-age 0 " in out and "--ha-max-age 300 " in out


@pytest.mark.broker
def test_daemon_benchmark_runs() -> None:
    require_tool("mosquitto")
    out = run("bench/daemon_bench.py", "--quick")
    for figure in (
        "cpu per frame:",
        "lost 0",
        "rss:",
        "real cadence, 62-byte pieces",
        "wake-ups per burst",
        "--no-cell-health",
        "latency",
        "idle",
        "start-up",
        "import time",
    ):
        assert figure in out, figure


def test_health_study_runs() -> None:
    out = run("bench/health_bench.py", "--quick")
    for figure in ("named after cycle 1..5:", "warned after cycle", "false warnings:", "cut-offs, firmware 1.26:",
                   "one sag step's ratio error", "one BMS impedance measurement's ratio error",
                   "engine cost, 16 cells:"):  # fmt: skip
        assert figure in out, figure
    for fault in ("low-capacity", "high-resistance", "balance-lead", "temperature"):
        assert fault in out, fault
