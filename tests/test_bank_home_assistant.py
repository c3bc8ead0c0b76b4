"""The bank in a real Home Assistant (tests/ha_harness.py: from PyPI, with its frontend and
recorder), fed by two real daemons on pseudo-terminal BMSs and the real bank process: its
device and entities created without a warning in Home Assistant's log, and the dashboard
of ``chargery.py dashboard --bank`` in headless Chromium: both packs shown side by side,
the bank's lowest cell named with its pack and cell.

``CHARGERY_SCREENSHOT_DIR=docs python -m pytest tests/test_bank_home_assistant.py`` renews
docs/bank-dashboard.png."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ha_harness import HomeAssistant, browser, ha_python, logged_in_page, open_dashboard, page_text, wait_for_text
from harness import Broker, DaemonProcess, FakeBms, Subscriber
from helpers import CHARGERY, wait_until
from test_home_assistant import Env, screenshot

from chargerybms.protocol import encode_cells, encode_status

pytestmark = [pytest.mark.ha, pytest.mark.broker, pytest.mark.browser]

BANK = "chargerybank"
MEMBERS = ("bank/house", "bank/shed")


def pack_frames(mv: list[int], deci_amps: int, mode: int, soc: int) -> list[bytes]:
    status = encode_status(charge_end_mv=3650, mode=mode, deci_amps=deci_amps, t1_deci=215, t2_deci=198, soc=soc,
                           discharge_end_mv=2800)  # fmt: skip
    ah = 280 * soc / 100
    cells = encode_cells(mv, energy_mwh=round(ah * sum(mv)), capacity_mah=round(ah * 1000))
    return [cells, status]


# house charging at 42.0 A with a high cell 5; shed discharging at 12.5 A with the bank's lowest, its cell 7.
HOUSE_MV = [3312, 3318, 3309, 3315, 3401, 3311, 3314, 3310]
SHED_MV = [3290, 3288, 3295, 3291, 3289, 3293, 3201, 3292]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """One Home Assistant and one browser for the module, as in test_home_assistant.py."""
    python = ha_python()
    directory = tmp_path_factory.mktemp("home-assistant")
    broker = Broker(directory / "broker").start()
    ha = HomeAssistant(directory / "config", broker.port, python)
    try:
        ha.start()
        with browser() as b:
            yield Env(broker, ha, b, directory)
    finally:
        ha.stop()
        broker.stop()


@pytest.fixture
def processes() -> Iterator[list[tuple[FakeBms | None, DaemonProcess]]]:
    started: list[tuple[FakeBms | None, DaemonProcess]] = []
    yield started
    for fake, daemon in started:
        daemon.stop()
        if fake is not None:
            fake.close()


def start_member(env: Env, directory: Path, prefix: str, frames: list[bytes]) -> tuple[FakeBms, DaemonProcess]:
    directory.mkdir(parents=True, exist_ok=True)
    fake = FakeBms(directory / "ttyBMS").plug()
    fake.stream(frames, interval=0.2)
    daemon = DaemonProcess(
        directory / "daemon",
        ["--port", str(fake.path), "--mqtt-host", "127.0.0.1", "--mqtt-port", str(env.broker.port),
         "--topic-prefix", prefix, "--no-ha-discovery"],
    )  # fmt: skip
    return fake, daemon


def test_the_bank_is_a_device_of_its_own_and_its_dashboard_shows_both_packs(
    env: Env, processes: list[tuple[FakeBms | None, DaemonProcess]], tmp_path: Path
) -> None:
    processes.append(start_member(env, tmp_path / "house", MEMBERS[0], pack_frames(HOUSE_MV, 420, 1, 64)))
    processes.append(start_member(env, tmp_path / "shed", MEMBERS[1], pack_frames(SHED_MV, 125, 0, 52)))
    listener = Subscriber(env.broker, [f"homeassistant/device/{BANK}/config"])
    members = [arg for m in MEMBERS for arg in ("--member", m)]
    try:
        bank = DaemonProcess(
            tmp_path / "bank",
            ["bank", *members, "--mqtt-host", "127.0.0.1", "--mqtt-port", str(env.broker.port), "--stale-after", "3"],
        )
        processes.append((None, bank))
        config = json.loads(listener.wait(f"homeassistant/device/{BANK}/config").payload)
    finally:
        listener.close()
    assert config["device"]["name"] == "Battery bank"
    proposed = {c["default_entity_id"] for c in config["components"].values()}
    assert {"sensor.chargerybank_members_live", "binary_sensor.chargerybank_problem"} <= proposed
    wait_until(lambda: proposed <= set(env.ha.states()), 60, "the bank's entities", every=0.3)
    assert set(env.ha.device_entities("sensor.chargerybank_soc")) == proposed  # one device, nothing else on it
    wait_until(lambda: env.ha.state("sensor.chargerybank_members_live") == "2", 30, "two packs live")
    wait_until(lambda: env.ha.state("sensor.chargerybank_current") == "29.5", 20, "the bank's current")
    assert env.ha.state("sensor.chargerybank_cell_min") == "3.201"
    assert env.ha.state("sensor.chargerybank_cell_min_where") == "bank/shed, cell 7"
    assert env.ha.state("sensor.chargerybank_cell_max_where") == "bank/house, cell 5"
    assert env.ha.state("binary_sensor.chargerybank_problem") == "off"
    assert env.ha.state("sensor.chargerybank_pack_2_current") == "-12.5"
    assert env.ha.state("sensor.chargerybank_soc") == "58.0"  # (64 + 52) / 2: two 280 Ah packs

    out = subprocess.run(
        [sys.executable, str(CHARGERY), "dashboard", "--bank", *members],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    env.ha.dashboard_file.write_text(out.stdout)
    page = logged_in_page(env.browser, env.ha)
    try:
        open_dashboard(page, env.ha, "Lowest cell")
        text = wait_until(lambda: _text_with(page, "bank/shed, cell 7"), 20, "the lowest cell named")
        assert re.search(r"Lowest cell:\s*3\.201 V\s*,\s*bank/shed, cell 7", text), text
        assert re.search(r"Highest cell:\s*3\.401 V\s*,\s*bank/house, cell 5", text), text
        assert "2 of 2 packs live" in text
        # The packs side by side: each one's state of charge, current and spread.
        rows = _table(page)
        assert rows[0][:2] == ["house", "live"] and rows[1][:2] == ["shed", "live"]
        assert [r[2] for r in rows] == ["64 %", "52 %"]
        assert [r[3] for r in rows] == ["42.0 A", "-12.5 A"]
        assert [r[4] for r in rows] == ["92 mV", "94 mV"]
        _, tags = page_text(page)
        assert tags.get("hui-error-card", 0) == 0
        for phrase in ("Entity not available", "Entity not found"):
            assert phrase not in text
        screenshot(page, tmp_path, "bank-dashboard.png")

        # One pack stops: the bank says which, and leaves it out.
        processes[1][1].stop()
        wait_for_text(page, "bank/shed: daemon stopped", 30)
        wait_until(lambda: env.ha.state("sensor.chargerybank_current") == "42.0", 20, "the bank without shed")
        assert env.ha.state("binary_sensor.chargerybank_problem") == "on"
        rows = _table(page)
        assert rows[1][:2] == ["shed", "not live"]
    finally:
        page.context.close()
    assert env.ha.warnings(r"\[homeassistant\.components\.mqtt", "chargerybank", "chargery") == []
    assert env.ha.warnings("template") == []


def _text_with(page: Any, needle: str) -> str | None:
    text = page_text(page)[0]
    return text if needle in text else None


TABLE_JS = """
() => {
  const rows = [];
  const walk = (n) => {
    if (n.tagName && n.tagName.toLowerCase() === 'tr') {
      rows.push([...n.children].map((c) => c.textContent.trim()));
      return;
    }
    if (n.shadowRoot) walk(n.shadowRoot);
    for (const c of n.children || []) walk(c);
  };
  walk(document.documentElement);
  return rows;
}
"""


def _table(page: Any) -> list[list[str]]:
    def packs() -> list[list[str]] | None:
        rows = page.evaluate(TABLE_JS)
        body = [r for r in rows if r and r[0] in ("house", "shed")]
        return body if len(body) == 2 else None

    found: list[list[str]] = wait_until(packs, 10, "the packs' table")
    return found
