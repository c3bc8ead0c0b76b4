"""The daemon in a real Home Assistant (from PyPI, with its frontend), and the dashboard of
``chargery.py dashboard`` in a real browser: what a user sees.

One Home Assistant and one browser serve the whole module (each starts in seconds, but
there is no need to start them per case); each test runs its own BMS on a pseudo-terminal
and its own daemon under its own device id, so their entities never meet.

Rules taken from Home Assistant's own code (2026.2.3, in the venv of .ci/home-assistant.sh):
- homeassistant/components/mqtt/entity.py (MqttEntity._init_entity_id): the entity id is
  what ``default_entity_id`` (or, before 2025.10, ``object_id``) proposes; a warning is
  logged when only ``object_id`` is given.
- home-assistant/frontend src/panels/lovelace/cards/hui-error-card.ts: a card that cannot
  be built is a ``hui-error-card``; src/panels/lovelace/components/hui-warning.ts: an
  entity that does not exist shows "Entity not available" / "Entity not found".
- src/panels/lovelace/cards/hui-markdown-card.ts: templates render with ``strict``, an
  error shows as an ``ha-alert`` of type error in the card.

Home Assistant is found at $CHARGERY_HA_PYTHON or where .ci/home-assistant.sh puts it;
missing (or Chromium, or Playwright), the tests skip, and fail when CI is set.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ha_harness import (
    BLUEPRINT_PREFIX,
    HomeAssistant,
    browser,
    call_ws,
    card_texts,
    ha_python,
    ha_version,
    logged_in_page,
    open_dashboard,
    page_text,
    wait_for_text,
)
from harness import Broker, DaemonProcess, FakeBms, Subscriber, broker_flags
from helpers import CHARGERY, wait_until

from chargerybms.protocol import encode_cells, encode_impedances, encode_status
from chargerybms.simulator import Fault, SimulatedBms

pytestmark = [pytest.mark.ha, pytest.mark.broker, pytest.mark.browser]

SCREENSHOTS = os.environ.get("CHARGERY_SCREENSHOT_DIR", "")  # also save the pictures there (docs/)


@dataclass
class Env:
    broker: Broker
    ha: HomeAssistant
    browser: Any
    directory: Path


@contextlib.contextmanager
def home_assistant(directory: Path, chromium: Any) -> Iterator[Env]:
    """A broker and a Home Assistant of their own, started in ``directory``."""
    python = ha_python()
    broker = Broker(directory / "broker").start()
    ha = HomeAssistant(directory / "config", broker.port, python)
    try:
        ha.start()
        print(f"Home Assistant {ha_version(python)} on {ha.url}")
        yield Env(broker, ha, chromium, directory)
    finally:
        ha.stop()
        broker.stop()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    ha_python()  # no Home Assistant: skip (or fail in CI) before starting a browser
    with browser() as b:
        yield b


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, chromium: Any) -> Iterator[Env]:
    """The Home Assistant the module's tests share (each with devices of its own)."""
    with home_assistant(tmp_path_factory.mktemp("home-assistant"), chromium) as e:
        yield e


@pytest.fixture
def own_env(tmp_path: Path, chromium: Any) -> Iterator[Env]:
    """A Home Assistant for one test alone: one that reloads the MQTT integration, which
    the others' entities would live through, in whatever order the tests run."""
    with home_assistant(tmp_path / "home-assistant", chromium) as e:
        yield e


@dataclass
class Bms:
    """A BMS on a pseudo-terminal and the daemon reading it, under its own device id."""

    fake: FakeBms
    daemon: DaemonProcess
    device_id: str
    millivolts: list[int]


def millivolts(slots: int, cells: int) -> list[int]:
    """Distinct cell voltages, one clearly highest and one clearly lowest (well beyond the
    deadband), the unwired slots carrying the junk real units send."""
    mv = [3290 + (i * 7) % 29 for i in range(cells)]
    mv[cells // 3] = 3412  # highest
    mv[cells - 2] = 3251  # lowest
    return mv + [12] * (slots - cells)


def start_bms(
    env: Env, directory: Path, device_id: str, slots: int, cells: int, *flags: str, impedances: list[int] | None = None
) -> Bms:
    """``impedances``: each cell's, in the frame's 0.1 mOhm steps (default 0.3 to 0.5 mOhm)."""
    mv = millivolts(slots, cells)
    fake = FakeBms(directory / "ttyBMS").plug()
    status = encode_status(charge_end_mv=3650, mode=1, deci_amps=123, t1_deci=215, t2_deci=198, soc=57,
                           discharge_end_mv=2800)  # fmt: skip
    impedances_frame = encode_impedances(1, 123, impedances or [3 + i % 3 for i in range(cells)])
    fake.stream([encode_cells(mv, energy_mwh=5_000_000, capacity_mah=100_000), status, impedances_frame], interval=0.1)
    daemon = DaemonProcess(
        directory / "daemon",
        ["--port", str(fake.path), *broker_flags(env.broker, ha_discovery=True),
         "--topic-prefix", f"bms/{device_id}", "--device-id", device_id, "--stale-after", "2", *flags],
    )  # fmt: skip
    return Bms(fake, daemon, device_id, mv[:cells])


@pytest.fixture
def bmses() -> Iterator[list[Bms]]:
    started: list[Bms] = []
    yield started
    for bms in started:
        bms.daemon.stop()
        bms.fake.close()


def wait_for_entities(env: Env, expected: set[str]) -> None:
    def all_there() -> bool:
        return expected <= set(env.ha.states())

    wait_until(all_there, 60, f"Home Assistant to create {len(expected)} entities", every=0.3)


def discovery_warnings(env: Env, device_id: str) -> list[str]:
    return env.ha.warnings(r"\[homeassistant\.components\.mqtt", re.escape(device_id), "chargery")


def test_every_entity_is_created_enabled_with_the_entity_id_it_proposes(
    env: Env, bmses: list[Bms], tmp_path: Path
) -> None:
    listener = Subscriber(env.broker, ["homeassistant/device/e2e/config"])
    try:
        bmses.append(start_bms(env, tmp_path, "e2e", 16, 16))
        config = json.loads(listener.wait("homeassistant/device/e2e/config", lambda p: "cell_16" in p).payload)
    finally:
        listener.close()
    proposed = {c["default_entity_id"] for c in config["components"].values()}
    # 28 of the pack, each cell's voltage and impedance, and the cell health: 6 of the pack
    # and each cell's sag and impedance ratios (chargerybms/outputs/discovery.py, HEALTH_ENTITIES).
    assert len(proposed) == 28 + 2 * 16 + 6 + 2 * 16
    assert "sensor.e2e_cell_7_voltage" in proposed and "sensor.e2e_cell_16_impedance" in proposed
    assert {"sensor.e2e_weakest_cell", "binary_sensor.e2e_health_warning", "event.e2e_health_event"} <= proposed
    wait_for_entities(env, proposed)  # a disabled entity has no state: these are all enabled
    states = env.ha.states()
    # Exactly these, nothing else on the device (no "_2" duplicates, nothing disabled).
    assert set(env.ha.device_entities("sensor.e2e_pack_voltage")) == proposed
    wait_until(lambda: env.ha.state("sensor.e2e_cell_15_voltage") == "3.251", 20, "cell 15's voltage")
    assert states["sensor.e2e_cell_7_voltage"]["attributes"]["unit_of_measurement"] == "V"
    assert env.ha.state("binary_sensor.e2e_link") == "on"
    assert discovery_warnings(env, "e2e") == []


@dataclass(frozen=True)
class Case:
    slots: int  # cell slots the BMS sends (its model)
    cells: int  # --cells (0: every slot)
    device_id: str
    name: str = ""  # --device-name ("": the default)


CASES = [Case(8, 0, "bms8"), Case(16, 0, "bms16"), Case(24, 0, "bms24"), Case(24, 20, "Garage-BMS", "Garage battery")]


def cells_table(page: Any) -> list[list[str]]:
    """The rows of the cells card's table, each a list of its cells' texts."""
    js = """
    () => {
      const cards = [];
      const walk = (node) => {
        if (node.tagName && node.tagName.toLowerCase() === 'hui-markdown-card') cards.push(node);
        if (node.shadowRoot) walk(node.shadowRoot);
        for (const child of node.children || []) walk(child);
      };
      walk(document.documentElement);
      const rowsOf = (root) => {
        const rows = [];
        const go = (n) => {
          if (n.tagName && n.tagName.toLowerCase() === 'tr') {
            rows.push([...n.children].map((c) => c.textContent.trim()));
            return;
          }
          if (n.shadowRoot) go(n.shadowRoot);
          for (const c of n.children || []) go(c);
        };
        go(root);
        return rows;
      };
      return cards.map(rowsOf).filter((rows) => rows.length && rows[0].join('|').startsWith('Cell||Voltage'));
    }
    """
    # The markdown worker renders a card's content anew whenever one of its entities
    # changes, asynchronously: wait for a render that has the table.
    tables = wait_until(lambda: page.evaluate(js) or None, 10, "the cells card's table", every=0.1)
    assert len(tables) == 1, tables
    return [list(map(str, row)) for row in tables[0][1:]]


def assert_no_broken_cards(page: Any) -> None:
    """No card that failed to build, no missing entity, no template error, nothing
    unavailable while the BMS is live."""
    text, tags = page_text(page)
    assert tags.get("hui-error-card", 0) == 0, text
    assert tags.get("ha-alert", 0) == 0, text  # the markdown cards' errors (and our own warnings)
    for phrase in ("Entity not available", "Entity not found", "Unavailable"):
        assert phrase not in text, f"{phrase!r} on the page:\n{text}"


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.slots}-{c.cells or c.slots}-{c.device_id}")
def test_the_dashboard_shows_every_cell_as_the_bms_sent_it(
    env: Env, bmses: list[Bms], tmp_path: Path, case: Case
) -> None:
    slots, cells, device_id, name = case.slots, case.cells, case.device_id, case.name
    flags = [*(["--cells", str(cells)] if cells else []), *(["--device-name", name] if name else [])]
    bms = start_bms(env, tmp_path, device_id, slots, cells or slots, *flags)
    bmses.append(bms)
    wired = cells or slots
    out = subprocess.run(
        [sys.executable, str(CHARGERY), "dashboard", "--topic-prefix", f"bms/{device_id}", "--device-id", device_id,
         *flags, "--slots", str(slots)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    slug = device_id.lower().replace("-", "_")
    cell_ids = {f"sensor.{slug}_cell_{n}_voltage" for n in range(1, wired + 1)}
    assert f"sensor.{slug}_cell_{wired + 1}_voltage" not in out.stdout
    wait_for_entities(env, cell_ids | {f"binary_sensor.{slug}_link"})
    wait_until(lambda: env.ha.state(f"binary_sensor.{slug}_link") == "on", 20, "the link entity on")
    env.ha.dashboard_file.write_text(out.stdout)

    page = logged_in_page(env.browser, env.ha)
    try:
        open_dashboard(page, env.ha, "Spread")
        assert "Your dashboard was updated" not in page_text(page)[0]
        rows = cells_table(page)
        assert [int(r[0]) for r in rows] == list(range(1, wired + 1))
        shown = [round(float(r[2].removesuffix(" V")) * 1000) for r in rows]
        assert shown == bms.millivolts  # every cell, as the BMS sent it
        high = bms.millivolts.index(max(bms.millivolts))
        low = bms.millivolts.index(min(bms.millivolts))
        marks = {i: r[3] for i, r in enumerate(rows) if r[3]}
        assert marks == {high: "▲ highest", low: "▼ lowest"}
        assert all(r[1].startswith("█") for r in rows)  # a bar for every cell
        text, _ = page_text(page)
        spread = max(bms.millivolts) - min(bms.millivolts)
        assert re.search(rf"Spread\s+{spread} mV", text), text
        assert (name or "Chargery BMS") in text
        assert "BMS link live" in text
        assert_no_broken_cards(page)
        screenshot(page, tmp_path, f"dashboard-{slots}-{device_id}.png")

        # The BMS goes silent: the page says so, and shows no cell voltage any more.
        bms.fake.pause()
        wait_for_text(page, "The BMS is silent", 30)
        wait_until(lambda: not re.search(r"\d\.\d{3} V", card_texts(page, "hui-markdown-card")[1]), 10, "no voltages")
        text, tags = page_text(page)
        assert tags.get("hui-error-card", 0) == 0
        assert "Unavailable" in text  # the tiles: no old numbers either
        assert f"{max(bms.millivolts) / 1000:.3f}" not in "\n".join(card_texts(page, "hui-markdown-card"))
        screenshot(page, tmp_path, f"dashboard-{slots}-{device_id}-silent.png")

        if name:  # and the daemon stops
            bms.daemon.stop()
            wait_for_text(page, "The chargery daemon is stopped", 30)
    finally:
        page.context.close()
    assert discovery_warnings(env, device_id) == []
    assert env.ha.warnings("template") == []


def screenshot(page: Any, directory: Path, name: str) -> None:
    page.screenshot(path=str(directory / name), full_page=True)
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / name), full_page=True)


# --- cell health (issue: which cell is failing, and why did the BMS cut off) ------------------


def test_cell_health_entities_the_blueprint_and_the_dashboard(env: Env, bmses: list[Bms], tmp_path: Path) -> None:
    """A pack with a weak cell 3, played from the simulator into the real daemon: the
    blueprint's automation (examples/, imported unmodified) notifies of the BMS's charge
    cut-off with its cause, the cell-health entities say so without a discovery warning,
    the `problem` sensor turns on when the evidence is strong, and the dashboard shows it."""
    device_id = "health"
    fake = FakeBms(tmp_path / "ttyBMS").plug()
    daemon = DaemonProcess(
        tmp_path / "daemon",
        ["--port", str(fake.path), *broker_flags(env.broker, ha_discovery=True),
         "--topic-prefix", BLUEPRINT_PREFIX, "--device-id", device_id, "--cells", "8"],
    )  # fmt: skip
    bmses.append(Bms(fake, daemon, device_id, []))
    daemon.wait_log("MQTT: connected")
    sim = SimulatedBms(8, cycle=600, seed=5, fault=Fault("low-capacity", 3, 0.7))
    page = logged_in_page(env.browser, env.ha)
    page.goto(f"{env.ha.url}/profile/general")  # any page: call_ws uses its connection

    def notifications() -> list[dict[str, Any]]:
        return list(call_ws(page, {"type": "persistent_notification/get"}))

    def play(seconds: int) -> None:
        for _ in range(seconds):
            for frame in sim.frames_at(sim.t):
                fake.write(frame)
            sim.t += 1
            time.sleep(0.01)  # the engine judges by the frames' own values, not by their pace

    play(180)  # past the first charge cut-off (simulated second 170, by cell 3)
    assert [(d, c) for _, d, c in sim.cutoffs] == [("charge", 3)]
    note = wait_until(
        lambda: next((n for n in notifications() if "charge stopped" in n["message"]), None), 30, "the notification"
    )
    assert note["title"] == "Battery: charge stopped by the BMS"
    assert note["message"].startswith("charge stopped: cell 3 ")
    assert note["notification_id"] == "chargery_bms_health_cutoff"
    wait_until(lambda: env.ha.state("sensor.health_last_cutoff") == note["message"], 20, "the last cut-off sensor")
    event = env.ha.states()["event.health_health_event"]
    assert event["attributes"]["event_type"] == "cutoff" and event["attributes"]["cell"] == 3
    assert env.ha.state("binary_sensor.health_health_warning") == "off"  # one top is no evidence yet

    play(900)  # two more tops: the weak cell is the highest at each
    wait_until(lambda: env.ha.state("binary_sensor.health_health_warning") == "on", 30, "the problem sensor")
    assert env.ha.state("sensor.health_weakest_cell") == "3"
    evidence = env.ha.states()["sensor.health_weakest_cell"]["attributes"]["evidence"]
    assert "tops of charge" in evidence
    warned = wait_until(
        lambda: next(
            (n for n in notifications() if n["notification_id"] == "chargery_bms_health_health_warning"), None
        ),
        30,
        "the warning's notification",
    )
    assert warned["title"] == "Battery: cell 3 needs a look" and warned["message"].startswith("cell 3 ")
    ratios = [env.ha.state(f"sensor.health_cell_{n}_sag_ratio") for n in range(1, 9)]
    assert all(r not in (None, "unavailable") for r in ratios)
    assert discovery_warnings(env, device_id) == []
    assert env.ha.warnings(r"homeassistant\.components\.(automation|blueprint)") == []

    out = subprocess.run(
        [sys.executable, str(CHARGERY), "dashboard", "--topic-prefix", BLUEPRINT_PREFIX, "--device-id", device_id,
         "--cells", "8"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    env.ha.dashboard_file.write_text(out.stdout)
    dash = logged_in_page(env.browser, env.ha)
    open_dashboard(dash, env.ha, "Cell 3 is failing")
    text, _ = page_text(dash)
    assert "Cell 3 is failing" in text and "◀ weakest" in text and "charge stopped: cell 3" in text
    assert not card_texts(dash, "hui-error-card")
    if SCREENSHOTS:
        dash.screenshot(path=str(Path(SCREENSHOTS) / "dashboard-health.png"), full_page=True)


def test_a_device_from_an_older_chargery_takes_the_new_ids_with_recreate_entity_ids(
    own_env: Env, bmses: list[Bms], tmp_path: Path
) -> None:
    """The README's upgrade path. Before, entity ids came from the device's name and the
    cells were disabled; Home Assistant keeps both for a device it knows, whatever discovery
    proposes now. Its device page's "Recreate entity IDs" (home-assistant/frontend
    src/data/regenerate_entity_ids.ts: config/entity_registry/get_automatic_entity_ids for
    every entity of the device, then an update of each) gives every entity, disabled ones
    too, the id the daemon proposes, and the recorded history follows the rename."""
    from chargerybms.battery import BatteryState
    from chargerybms.config import load
    from chargerybms.outputs.discovery import Discovery
    from chargerybms.topics import Topics

    env = own_env  # it reloads the MQTT integration: a Home Assistant of its own
    settings = load({"device_id": "old", "device_name": "Old battery", "topic_prefix": "bms/old"}, environ={})
    state = BatteryState()
    state.update(next(iter(_frames(encode_cells([3300] * 8, energy_mwh=1, capacity_mah=1)))), 0.0)
    old = Discovery(settings, Topics(settings.topic_prefix)).config(state)
    old["state_topic"] = "bms/old/state"  # as the previous version announced it
    for key, component in old["components"].items():
        del component["default_entity_id"], component["object_id"]
        if key.startswith("cell_"):
            component["enabled_by_default"] = False
    publisher = Subscriber(env.broker, ["bms/old/#"])
    try:
        publisher.publish("bms/old/status", "online", retain=True)
        publisher.publish("bms/old/link", "online", retain=True)
        publisher.publish("homeassistant/device/old/config", json.dumps(old), retain=True)
        wait_until(lambda: "sensor.old_battery_pack_voltage" in env.ha.states(), 30, "the old device's entities")

        def recorded_a_value() -> bool:  # sent until Home Assistant has subscribed to it
            publisher.publish("bms/old/state", json.dumps({"pack_voltage": 26.4, "link": "online"}))
            return env.ha.state("sensor.old_battery_pack_voltage") == "26.4"

        wait_until(recorded_a_value, 20, "an old value recorded", every=0.5)
    finally:
        publisher.close()
    assert "sensor.old_battery_cell_1_voltage" not in env.ha.states()  # disabled
    wait_until(lambda: env.ha.recorded_rows("old_battery_pack_voltage"), 10, "the old value in the recorder")
    recorded = sum(env.ha.recorded_rows("old_battery_pack_voltage").values())

    # This version of the daemon announces the same device: the ids stay as they were. Home
    # Assistant takes note of the proposed ids when it creates the entities: at its next
    # start, or when the MQTT integration is reloaded (here).
    bms = start_bms(env, tmp_path, "old", 8, 8, "--device-name", "Old battery")
    bmses.append(bms)
    pack = str(round(sum(bms.millivolts) / 1000, 3))
    wait_until(lambda: env.ha.state("sensor.old_battery_pack_voltage") == pack, 30, "the new daemon's values")
    entry = env.ha.request("GET", "/api/config/config_entries/entry?domain=mqtt")[0]["entry_id"]
    env.ha.request("POST", f"/api/config/config_entries/entry/{entry}/reload")
    wait_until(lambda: env.ha.state("sensor.old_battery_pack_voltage") == pack, 30, "the values after the reload")

    page = logged_in_page(env.browser, env.ha)
    try:
        page.goto(env.ha.url, wait_until="domcontentloaded")
        device = env.ha.template("{{ device_id('sensor.old_battery_pack_voltage') }}")
        entries = [e for e in call_ws(page, {"type": "config/entity_registry/list"}) if e["device_id"] == device]
        proposed = call_ws(page, {"type": "config/entity_registry/get_automatic_entity_ids",
                                  "entity_ids": [e["entity_id"] for e in entries]})  # fmt: skip
        for old_id, new_id in proposed.items():
            if new_id and new_id != old_id:
                call_ws(page, {"type": "config/entity_registry/update", "entity_id": old_id, "new_entity_id": new_id})
        registry = {e["unique_id"]: e for e in call_ws(page, {"type": "config/entity_registry/list"})}
    finally:
        page.context.close()

    assert registry["chargery_old_pack_voltage"]["entity_id"] == "sensor.old_pack_voltage"
    cell = registry["chargery_old_cell_1_voltage"]
    assert (cell["entity_id"], cell["disabled_by"]) == ("sensor.old_cell_1_voltage", "integration")  # enable once
    wait_until(lambda: env.ha.state("sensor.old_pack_voltage") == pack, 10, "the renamed entity's value")
    assert "sensor.old_battery_pack_voltage" not in env.ha.states()
    assert sum(env.ha.recorded_rows("old_pack_voltage").values()) >= recorded  # the history came along
    assert env.ha.recorded_rows("old_battery_pack_voltage") == {}


def _frames(data: bytes) -> Iterator[Any]:
    from chargerybms.protocol import Framer

    for _, frame in Framer().feed(data):
        yield frame


# --- the first look: the impedance grid fits its card -------------------------------------------

# Per cell of the impedance card's table: its number, the impedance shown beside it, and
# whether that value lies within the box of its card (ha-card), i.e. not cut off by it.
IMPEDANCE_CELLS_JS = """
() => {
  const cards = [];
  const walk = (node) => {
    if (node.tagName && node.tagName.toLowerCase() === 'hui-markdown-card') cards.push(node);
    if (node.shadowRoot) walk(node.shadowRoot);
    for (const child of node.children || []) walk(child);
  };
  walk(document.documentElement);
  const find = (root, tag) => {
    const found = [];
    const go = (n) => {
      if (n.tagName && n.tagName.toLowerCase() === tag) found.push(n);
      if (n.shadowRoot) go(n.shadowRoot);
      for (const c of n.children || []) go(c);
    };
    go(root);
    return found;
  };
  for (const card of cards) {
    const rows = find(card, 'tr').map((tr) => [...tr.children]);
    if (!rows.length || !rows[0].map((c) => c.textContent.trim()).join('|').startsWith('Cell|mΩ')) continue;
    const box = find(card, 'ha-card')[0].getBoundingClientRect();
    const out = [];
    for (const row of rows.slice(1)) {
      for (let i = 0; i + 1 < row.length; i += 2) {
        const value = row[i + 1].getBoundingClientRect();
        out.push({cell: row[i].textContent.trim(), value: row[i + 1].textContent.trim(),
                  inside: value.width > 0 && value.left >= box.left - 0.5 && value.right <= box.right + 0.5
                          && value.top >= box.top - 0.5 && value.bottom <= box.bottom + 0.5,
                  right: value.right, card_right: box.right});
      }
    }
    return out;
  }
  return null;
}
"""


def test_every_impedance_is_visible_inside_its_card_at_1400_px(env: Env, bmses: list[Bms], tmp_path: Path) -> None:
    """16 cells on a 1400 px wide screen: the grid once overflowed its card, and cells 4, 8,
    12 and 16 (the last column) were cut off."""
    device_id, cells = "imp16", 16
    # Aged cells, as real packs have them: values of four and five characters.
    impedances = [1234 - 71 * i if i % 2 else 97 + 13 * i for i in range(cells)]
    bms = start_bms(env, tmp_path, device_id, cells, cells, impedances=impedances)
    bmses.append(bms)
    out = subprocess.run(
        [sys.executable, str(CHARGERY), "dashboard", "--topic-prefix", f"bms/{device_id}", "--device-id", device_id,
         "--slots", str(cells)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    wait_for_entities(env, {f"sensor.{device_id}_cell_{n}_impedance" for n in range(1, cells + 1)})
    wait_until(lambda: env.ha.state(f"binary_sensor.{device_id}_link") == "on", 20, "the link entity on")
    env.ha.dashboard_file.write_text(out.stdout)
    page = logged_in_page(env.browser, env.ha, width=1400)
    try:
        open_dashboard(page, env.ha, "Measured at")
        shown = wait_until(lambda: page.evaluate(IMPEDANCE_CELLS_JS), 10, "the impedance card's table", every=0.1)
        screenshot(page, tmp_path, "dashboard-impedance-1400.png")
    finally:
        page.context.close()
    assert [c["cell"] for c in shown] == [str(n) for n in range(1, cells + 1)], shown
    assert [c["value"] for c in shown] == [f"{z / 10:g}" for z in impedances]
    cut = [c for c in shown if not c["inside"]]
    assert not cut, f"impedances outside their card: {cut}"
