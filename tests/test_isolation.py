"""No test reads or writes the developer's home or real state: conftest.py's autouse
``isolated_home`` points HOME, XDG_STATE_HOME and STATE_DIRECTORY into the test's own
temporary directory, for the test and for every process it starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, RecordingSink

from chargerybms.config import load
from chargerybms.daemon import Daemon
from chargerybms.protocol import encode_cells, encode_status
from chargerybms.views.energy import default_state_dir

DISCHARGE = encode_status(charge_end_mv=3650, mode=0, deci_amps=230, t1_deci=200, t2_deci=190, soc=60)  # -23 A
CELLS = encode_cells([3310] * 16, energy_mwh=5_000_000, capacity_mah=100_000)


def test_every_place_the_meters_could_go_is_under_tmp(
    tmp_path: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert default_state_dir("") == Path(os.environ["STATE_DIRECTORY"])  # systemd's, first
    assert default_state_dir("").is_relative_to(tmp_path)
    monkeypatch.delenv("STATE_DIRECTORY")
    assert default_state_dir("") == isolated_home / ".local" / "state" / "chargery"  # XDG_STATE_HOME
    monkeypatch.delenv("XDG_STATE_HOME")
    assert default_state_dir("") == isolated_home / ".local" / "state" / "chargery"  # ~
    assert isolated_home.is_relative_to(tmp_path)


def test_a_daemon_built_in_a_test_keeps_its_meters_under_tmp(tmp_path: Path) -> None:
    """As the unit tests of test_schedule, test_discovery and test_service build them."""
    now = [100.0]
    daemon = Daemon(
        load({"port": "/dev/null", "ha_discovery": False}, environ={}), sink=RecordingSink(), clock=lambda: now[0]
    )
    for _ in range(5):  # 23 A at 53 V for 4 s
        daemon.handle_bytes(CELLS + DISCHARGE)
        now[0] += 1.0
    daemon.shutdown()  # saves the meters
    (saved,) = tmp_path.rglob("energy-*.json")
    assert saved == Path(os.environ["STATE_DIRECTORY"]) / "energy-chargerybms.json"
    assert json.loads(saved.read_text())["energy_discharged_wh"] > 0


def test_processes_a_test_starts_are_isolated_too(tmp_path: Path) -> None:
    code = (
        "import os; from chargerybms.views.energy import default_state_dir as d; print(d(''), os.path.expanduser('~'))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    state_dir, home = map(Path, result.stdout.split())
    assert state_dir.is_relative_to(tmp_path) and home.is_relative_to(tmp_path)
