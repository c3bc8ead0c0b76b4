"""The bank's rules on their own (chargerybms/bank/rules.py), its Victron documents against
the single-pack contract (tests/test_victron.py), its Home Assistant pieces and the process
driven by hand with a fake clock. End to end: test_bank_e2e.py; in Home Assistant:
test_home_assistant.py."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import pytest
from helpers import RecordingSink, chargery_cmd
from test_victron import check_mqtt_battery, check_serialbattery

from chargerybms.bank import victron
from chargerybms.bank.ha import BANK_ENTITIES, ha_document, pack_entities, render
from chargerybms.bank.process import Bank, bank_settings, members_of
from chargerybms.bank.rules import BANK_KEYS, Member, Meters, combine
from chargerybms.config import ConfigError, MemberSpec, load, parse_members
from chargerybms.sink import Received

STALE = 10.0


def pack_doc(
    cells: list[float],
    *,
    current: float = 10.0,
    soc: int = 50,
    charge_ah: float | None = 140.0,
    t: tuple[float, float] = (20.0, 21.0),
    **extra: Any,
) -> dict[str, Any]:
    """A member's `state` document, with the keys the daemon publishes."""
    voltage = round(sum(cells), 3)
    low, high = min(cells), max(cells)
    doc = {
        "pack_voltage": voltage,
        "energy_wh": None if charge_ah is None else round(charge_ah * voltage, 3),
        "capacity_ah": charge_ah,
        "cell_count": len(cells),
        "cell_voltages": cells,
        "cell_min": low,
        "cell_max": high,
        "cell_min_index": cells.index(low) + 1,
        "cell_max_index": cells.index(high) + 1,
        "cell_delta": round(high - low, 3),
        "current": current,
        "mode": "charge" if current > 0 else "discharge" if current < 0 else "storage",
        "temperature_1": t[0],
        "temperature_2": t[1],
        "charge_end_voltage": 3.65,
        "discharge_end_voltage": 2.8,
        "charge_protection": False,
        "discharge_protection": False,
        "power": round(voltage * current, 1),
        "charge_power": round(voltage * current, 1) if current > 0 else 0.0,
        "discharge_power": round(-voltage * current, 1) if current < 0 else 0.0,
        "soc": soc,
        "energy_charged": 1.0,
        "energy_discharged": 2.0,
        "weakest_cell": None,
        "health_warning": False,
        "health_evidence": "",
        "link": "online",
    }
    doc.update(extra)
    return doc


def live(spec: MemberSpec, doc: dict[str, Any], at: float = 0.0) -> Member:
    m = Member(spec)
    m.on_status("online")
    m.on_link("online")
    m.on_state(doc, at)
    return m


A, B = MemberSpec("chargerybms/a"), MemberSpec("chargerybms/b")
CELLS_A = [3.30, 3.31, 3.29, 3.32]
CELLS_B = [3.33, 3.20, 3.34, 3.31]


def two_packs() -> list[Member]:
    return [
        live(A, pack_doc(CELLS_A, current=30.0, soc=60, charge_ah=168.0)),  # 280 Ah at 60 %
        live(B, pack_doc(CELLS_B, current=-10.0, soc=40, charge_ah=40.0)),  # 100 Ah at 40 %
    ]


def test_sums_and_the_mean_voltage_with_the_largest_difference() -> None:
    doc = combine(two_packs(), 1.0, STALE)
    a, b = sum(CELLS_A), sum(CELLS_B)
    assert doc["current"] == 20.0
    assert doc["power"] == round(round(a * 30, 1) + round(b * -10, 1), 1)
    assert doc["charge_power"] == round(a * 30, 1) and doc["discharge_power"] == round(b * 10, 1)
    assert doc["pack_voltage"] == round((a + b) / 2, 3)
    assert doc["pack_voltage_difference"] == round(abs(a - b), 3)
    assert doc["capacity_ah"] == 208.0
    assert doc["energy_wh"] == round(168.0 * round(a, 3) + 40.0 * round(b, 3), 3)
    assert doc["temperature_min"] == 20.0 and doc["temperature_max"] == 21.0
    assert doc["members"] == 2 and doc["members_live"] == 2 and doc["members_missing"] == []
    assert doc["link"] == "online" and doc["problem"] is False and doc["problems"] == ""
    assert [p["live"] for p in doc["packs"]] == [True, True]
    assert [p["soc"] for p in doc["packs"]] == [60, 40]
    assert list(doc) == list(BANK_KEYS)


def test_state_of_charge_is_weighted_by_capacity_read_off_each_document() -> None:
    doc = combine(two_packs(), 1.0, STALE)
    # 280 Ah at 60 % and 100 Ah at 40 %: (168 + 40) / 380, not the plain mean of 50 %.
    assert doc["capacity_installed"] == 380.0
    assert doc["soc"] == round((60 * 280 + 40 * 100) / 380, 1) == 54.7
    assert [p["capacity_installed"] for p in doc["packs"]] == [280.0, 100.0]


def test_a_capacity_given_with_the_member_wins_over_the_documents() -> None:
    members = [
        live(MemberSpec("chargerybms/a", 300.0), pack_doc(CELLS_A, soc=60, charge_ah=168.0)),
        live(B, pack_doc(CELLS_B, soc=40, charge_ah=40.0)),
    ]
    doc = combine(members, 1.0, STALE)
    assert doc["capacity_installed"] == 400.0
    assert doc["soc"] == round((60 * 300 + 40 * 100) / 400, 1)


def test_an_unknown_capacity_is_said_not_guessed_as_equal() -> None:
    # Firmware before V1.24 sends no charge in Ah; a SoC below 20 % gives too coarse an estimate.
    members = [
        live(A, pack_doc(CELLS_A, soc=60, charge_ah=168.0)),
        live(B, pack_doc(CELLS_B, soc=40, charge_ah=None)),
    ]
    doc = combine(members, 1.0, STALE)
    assert doc["soc"] is None and doc["capacity_installed"] is None
    assert doc["capacity_unknown"] == ["chargerybms/b"]
    low = [live(A, pack_doc(CELLS_A, soc=10, charge_ah=28.0)), live(B, pack_doc(CELLS_B, soc=40, charge_ah=40.0))]
    assert combine(low, 1.0, STALE)["capacity_unknown"] == ["chargerybms/a"]
    # Once seen at a SoC high enough, the estimate stays known when the SoC falls.
    low[0].on_state(pack_doc(CELLS_A, soc=80, charge_ah=224.0), 2.0)
    low[0].on_state(pack_doc(CELLS_A, soc=5, charge_ah=14.0), 3.0)
    doc = combine(low, 3.0, STALE)
    assert doc["capacity_unknown"] == [] and doc["capacity_installed"] == 380.0
    assert doc["soc"] == round((5 * 280 + 40 * 100) / 380, 1)


def test_the_lowest_and_highest_cell_of_the_bank_with_pack_and_cell() -> None:
    doc = combine(two_packs(), 1.0, STALE)
    assert (doc["cell_min"], doc["cell_min_pack"], doc["cell_min_pack_number"], doc["cell_min_index"]) == (
        3.20,
        "chargerybms/b",
        2,
        2,
    )
    assert (doc["cell_max"], doc["cell_max_pack"], doc["cell_max_pack_number"], doc["cell_max_index"]) == (
        3.34,
        "chargerybms/b",
        2,
        3,
    )
    assert doc["cell_delta"] == 0.14
    members = two_packs()
    members[0].on_state(pack_doc([3.30, 3.31, 3.29, 3.45]), 1.0)
    doc = combine(members, 1.0, STALE)
    assert (doc["cell_max"], doc["cell_max_pack"], doc["cell_max_index"]) == (3.45, "chargerybms/a", 4)


@pytest.mark.parametrize(
    ("silence", "reason"),
    [
        (lambda m: m.on_link("offline"), "BMS silent"),
        (lambda m: m.on_status("offline"), "daemon stopped"),
        (lambda m: None, "no state for more than 10 s"),  # the document is older than stale_after
    ],
)
def test_a_silent_member_is_left_out_of_every_sum_and_named(silence: Any, reason: str) -> None:
    members = two_packs()
    silence(members[1])
    now = 11.0
    members[0].on_state(members[0].doc or {}, now)  # A keeps talking
    doc = combine(members, now, STALE)
    a = members[0].doc or {}
    assert doc["members_live"] == 1 and doc["members_missing"] == ["chargerybms/b"]
    assert doc["current"] == a["current"] and doc["power"] == a["power"]
    assert doc["pack_voltage"] == a["pack_voltage"] and doc["pack_voltage_difference"] == 0.0
    assert doc["soc"] == 60.0 and doc["capacity_installed"] == 280.0  # B's capacity not counted
    assert doc["cell_min_pack"] == "chargerybms/a" and doc["cell_min"] == 3.29
    assert doc["link"] == "online" and doc["problem"] is True
    assert f"chargerybms/b: {reason}" in doc["problems"]
    pack_b = doc["packs"][1]
    assert pack_b["live"] is False and pack_b["reason"] == reason
    assert pack_b["soc"] is None and pack_b["current"] is None  # never its last values


def test_a_member_is_counted_again_when_it_returns() -> None:
    members = two_packs()
    members[1].on_status("offline")
    assert combine(members, 1.0, STALE)["members_live"] == 1
    members[1].on_status("online")
    members[1].on_state(pack_doc(CELLS_B, current=-10.0, soc=40, charge_ah=40.0), 2.0)
    doc = combine(members, 2.0, STALE)
    assert doc["members_live"] == 2 and doc["current"] == 20.0


def test_no_member_live_leaves_the_bank_offline_with_every_member_named() -> None:
    never = [Member(A), Member(B)]
    doc = combine(never, 30.0, STALE)
    assert doc["link"] == "offline" and doc["members_live"] == 0
    assert doc["current"] is None and doc["soc"] is None and doc["cell_min"] is None
    assert doc["problems"] == "chargerybms/a: never seen; chargerybms/b: never seen"


def test_a_member_in_protection_is_named_and_the_bank_says_so() -> None:
    members = two_packs()
    members[1].on_state(pack_doc(CELLS_B, charge_protection=True), 0.0)
    doc = combine(members, 1.0, STALE)
    assert doc["charge_protection"] is True and doc["discharge_protection"] is False
    assert doc["charge_stopped_by"] == ["chargerybms/b"] and doc["discharge_stopped_by"] == []
    assert doc["problem"] is True and doc["problems"] == "chargerybms/b: charging stopped by its BMS"
    assert doc["members_live"] == 2  # a protected pack is live: its values still count


def test_members_of_different_cell_counts_are_refused() -> None:
    """A BMS16T on a 16-cell pack and two BMS8T on the halves of another are not packs in
    parallel: the halves are in series, their current is one current. Nothing is added up."""
    members = [
        live(A, pack_doc([3.3] * 16, current=20.0)),
        live(MemberSpec("chargerybms/lower"), pack_doc([3.3] * 8, current=20.0)),
        live(MemberSpec("chargerybms/upper"), pack_doc([3.3] * 8, current=20.0)),
    ]
    doc = combine(members, 1.0, STALE)
    assert doc["cells_mixed"] == {"chargerybms/a": 16, "chargerybms/lower": 8, "chargerybms/upper": 8}
    assert doc["current"] is None and doc["power"] is None and doc["soc"] is None and doc["cell_min"] is None
    assert doc["members_live"] == 0 and doc["link"] == "offline" and doc["problem"] is True
    assert "different cell counts" in doc["problems"]
    assert all(p["live"] for p in doc["packs"])  # each pack is still shown as it is
    assert victron.serialbattery(doc, [3.3] * 16, "bank") is None


def test_the_weakest_cell_of_the_bank_prefers_a_warning() -> None:
    members = two_packs()
    members[0].on_state(pack_doc(CELLS_A, weakest_cell=3, health_evidence="sag 1.4x"), 0.0)
    members[1].on_state(pack_doc(CELLS_B, weakest_cell=7, health_warning=True, health_evidence="low capacity"), 0.0)
    doc = combine(members, 1.0, STALE)
    assert (doc["weakest_cell"], doc["weakest_cell_pack"], doc["health_warning"]) == (7, "chargerybms/b", True)
    assert doc["health_evidence"] == "chargerybms/b: low capacity"


def test_the_energy_meters_never_go_down_when_a_member_drops_out() -> None:
    meters = Meters()
    meters.feed("a", {"energy_charged": 100.0, "energy_discharged": 50.0})
    meters.feed("b", {"energy_charged": 300.0, "energy_discharged": 10.0})
    assert meters.fields() == {"energy_charged": 0.0, "energy_discharged": 0.0}  # from the bank's start
    meters.feed("a", {"energy_charged": 100.5, "energy_discharged": 50.0})
    meters.feed("b", {"energy_charged": 300.25, "energy_discharged": 10.0})
    assert meters.fields()["energy_charged"] == 0.75
    # b drops out (not fed), then comes back having measured 1 kWh meanwhile: counted once.
    meters.feed("a", {"energy_charged": 101.0, "energy_discharged": 50.0})
    meters.feed("b", {"energy_charged": 301.25, "energy_discharged": 10.0})
    assert meters.fields()["energy_charged"] == 2.25
    # a's daemon restarted from an older save: its dip is not a negative energy.
    meters.feed("a", {"energy_charged": 100.9, "energy_discharged": 50.0})
    meters.feed("a", {"energy_charged": 101.0, "energy_discharged": 50.0})
    assert meters.fields()["energy_charged"] == 2.35


def test_member_lists_parse_with_capacities_and_refuse_mistakes() -> None:
    assert parse_members("chargerybms/a=280, chargerybms/b  house") == [
        MemberSpec("chargerybms/a", 280.0),
        MemberSpec("chargerybms/b"),
        MemberSpec("house"),
    ]
    assert MemberSpec("chargerybms/house").name == "house"
    for bad in ("", "a/#", "a=x", "a, a", "/a", "a=0"):
        with pytest.raises(ValueError):
            parse_members(bad)


# --- Victron: the same contract as the single-pack documents ------------------------------


def test_both_victron_formats_follow_the_drivers_rules() -> None:
    doc = combine(two_packs(), 1.0, STALE)
    cells = victron.positions(doc, [CELLS_A, CELLS_B])
    assert cells == [3.30, 3.20, 3.34, 3.31]  # the lowest per position, the bank's highest at its own
    sb = victron.serialbattery(doc, cells, "chargerybank")
    assert sb is not None
    check_serialbattery(sb)
    assert sb["current"] == 20.0 and sb["soc"] == 54.7 and sb["capacity"] == 380.0
    assert sb["voltage"] == doc["pack_voltage"] and sb["charge_fet"] is True and sb["discharge_fet"] is True
    assert sb["max_battery_voltage_bms"] == round(3.65 * 4, 3)
    mb = victron.mqtt_battery(doc, cells, "chargerybank")
    assert mb is not None
    flat = check_mqtt_battery(mb)
    assert flat["Dc/Current"] == 20.0 and flat["Dc/Power"] == doc["power"] and flat["InstalledCapacity"] == 380.0
    assert flat["System/MinVoltageCellId"] == "P2C2" and flat["System/MinCellVoltage"] == 3.20
    assert flat["System/MaxVoltageCellId"] == "P2C3"
    assert flat["Io/AllowToCharge"] == 1 and flat["Io/AllowToDischarge"] == 1


def test_victron_charging_is_allowed_only_while_every_live_member_allows_it() -> None:
    members = two_packs()
    members[1].on_state(pack_doc(CELLS_B, charge_protection=True, charge_end_voltage=3.55), 0.0)
    doc = combine(members, 1.0, STALE)
    cells = victron.positions(doc, [CELLS_A, CELLS_B])
    sb = victron.serialbattery(doc, cells, "bank")
    mb = victron.mqtt_battery(doc, cells, "bank")
    assert sb is not None and mb is not None
    check_serialbattery(sb)
    check_mqtt_battery(mb)
    assert sb["charge_fet"] is False and sb["discharge_fet"] is True
    assert mb["Io"] == {"AllowToCharge": 0, "AllowToDischarge": 1}
    assert mb["Alarms"] == {"HighVoltage": 2, "LowVoltage": 0}
    # The lowest charge end voltage of the members is the bank's charge voltage.
    assert mb["Info"]["MaxChargeVoltage"] == round(3.55 * 4, 3) and sb["max_battery_voltage_bms"] == 14.2


def test_no_victron_document_without_the_banks_state_of_charge_or_a_live_pack() -> None:
    members = [live(A, pack_doc(CELLS_A, charge_ah=None)), live(B, pack_doc(CELLS_B))]
    doc = combine(members, 1.0, STALE)
    assert victron.serialbattery(doc, CELLS_A, "bank") is None
    assert victron.mqtt_battery(doc, CELLS_A, "bank") is None
    gone = combine([Member(A)], 1.0, STALE)
    assert victron.serialbattery(gone, None, "bank") is None and victron.mqtt_battery(gone, None, "bank") is None


# --- Home Assistant ------------------------------------------------------------------------


def test_every_entity_reads_a_key_the_bank_publishes() -> None:
    import re

    doc = combine(two_packs(), 1.0, STALE, updated="2026-12-04T21:00:00+00:00")
    specs = [A, B]
    ha = ha_document(doc, specs)
    for entity in [*BANK_ENTITIES, *pack_entities(specs)]:
        for template in (entity.template, entity.attributes):
            for key in re.findall(r"value_json\.(\w+)", template or ""):
                assert key in ha, (entity.key, key)
    assert ha["pack_1_soc"] == 60 and ha["pack_2_live"] is True and ha["pack_2_cell_delta"] == 0.14


def test_the_dashboard_names_only_announced_entities_and_shows_every_pack() -> None:
    text = render("chargerybank", "Battery bank", [A, B])
    ids = set(re.findall(r"(?:sensor|binary_sensor)\.[a-z0-9_]+", text))
    announced = {f"{e.platform}.chargerybank_{e.key}" for e in [*BANK_ENTITIES, *pack_entities([A, B])]}
    assert ids <= announced, ids - announced
    for n in (1, 2):
        assert f"sensor.chargerybank_pack_{n}_soc" in text and f"sensor.chargerybank_pack_{n}_cell_delta" in text
    assert "sensor.chargerybank_cell_min_where" in text


def test_dashboard_bank_command_prints_the_yaml() -> None:
    import subprocess

    out = subprocess.run(
        chargery_cmd("dashboard", "--bank", "--member", "chargerybms/a", "--member", "chargerybms/b"),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.startswith("# Home Assistant dashboard for Battery bank (device id chargerybank, 2 packs)")
    assert '"a"' in out and '"b"' in out


# --- settings ------------------------------------------------------------------------------


def test_members_from_the_flag_the_environment_and_the_settings_block() -> None:
    assert members_of(load({}, {"BANK_MEMBERS": "x, y=100"}, {})) == [MemberSpec("x"), MemberSpec("y", 100.0)]
    env = {"CHARGERY_BANK_MEMBERS": "p q", "CHARGERY_BANK_PREFIX": "mybank"}
    settings = load({}, {"BANK_MEMBERS": "x"}, env)
    assert members_of(settings) == [MemberSpec("p"), MemberSpec("q")]
    assert bank_settings(settings).topic_prefix == "mybank"
    assert members_of(load({"bank_members": "f"}, {}, env)) == [MemberSpec("f")]
    own = bank_settings(load({}, {"TOPIC_PREFIX": "house", "DEVICE_ID": "house"}, {}))
    assert own.topic_prefix == "chargerybank" and own.resolved_device_id == "chargerybank"  # never the daemon's
    with pytest.raises(ConfigError, match="bank_members"):
        members_of(load({}, {}, {}))
    with pytest.raises(ConfigError, match="bank_members"):
        load({"bank_members": "a/#"}, {}, {})
    with pytest.raises(ConfigError, match="bank_prefix"):
        members_of(load({"bank_members": "chargerybank"}, {}, {}))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "bank_members: no member named"),
        (("--member", "a", "--victron", "serial"), "bank_victron: 'serial' is not one of"),
        (("--member", "a", "--member", "a"), "named twice"),
    ],
)
def test_bank_configuration_errors_are_one_line_and_exit_2(args: tuple[str, ...], message: str) -> None:
    import subprocess

    run = subprocess.run(chargery_cmd("bank", *args), check=False, capture_output=True, text=True, timeout=20)
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and message in run.stderr, run.stderr


# --- the process, by hand --------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def received(topic: str, payload: str | dict[str, Any], retained: bool = False) -> Received:
    text = payload if isinstance(payload, str) else json.dumps(payload)
    return Received(topic, text.encode(), retained)


def test_the_process_publishes_the_bank_and_its_liveness(caplog: pytest.LogCaptureFixture) -> None:
    clock, sink = Clock(), RecordingSink()
    settings = bank_settings(load({"bank_members": "chargerybms/a,chargerybms/b,chargerybms/c"}, {}, {}))
    bank = Bank(settings, members_of(settings), sink=sink, clock=clock, wall=lambda: 1.8e9)
    caplog.set_level(logging.INFO, logger="chargery")
    bank.receive(received("chargerybms/a/status", "online", True), clock())
    bank.receive(received("chargerybms/a/link", "online", True), clock())
    bank.receive(received("chargerybms/a/state", pack_doc(CELLS_A)), clock())
    bank.receive(received("chargerybms/b/status", "online", True), clock())
    bank.receive(received("chargerybms/b/link", "online", True), clock())
    bank.receive(received("chargerybms/b/state", pack_doc(CELLS_B)), clock())
    bank.step(clock())
    assert sink.retained("chargerybank/link") == ["online"]
    state = json.loads(sink.on("chargerybank/state")[-1])
    assert state["members_live"] == 2 and state["members_missing"] == ["chargerybms/c"]
    assert state["last_update"] == "2027-01-15T08:00:00+00:00"
    assert json.loads(sink.on("chargerybank/ha_state")[-1])["members_live"] == 2
    # c never appears: after stale_after the log names it, once.
    clock.t += STALE + 1
    bank.receive(received("chargerybms/a/state", pack_doc(CELLS_A)), clock())
    bank.step(clock())
    never = [r.message for r in caplog.records if "nothing seen" in r.message]
    assert len(never) == 1 and "chargerybms/c" in never[0]
    # b's document is now stale_after old: left out, said in the log and in the document.
    assert any("chargerybms/b left out of the bank: no state for more than 10 s" in r.message for r in caplog.records)
    assert json.loads(sink.on("chargerybank/state")[-1])["members_live"] == 1
    # a stops cleanly: nobody live, the bank's link goes offline.
    bank.receive(received("chargerybms/a/status", "offline"), clock())
    bank.step(clock())
    assert sink.retained("chargerybank/link") == ["online", "offline"]
    bank.shutdown()
    assert sink.last_words == [("chargerybank/link", "offline"), ("chargerybank/status", "offline")]


def test_the_process_says_nothing_offline_while_the_members_wake() -> None:
    clock, sink = Clock(), RecordingSink()
    settings = bank_settings(load({"bank_members": "a"}, {}, {}))
    bank = Bank(settings, members_of(settings), sink=sink, clock=clock)
    bank.announce(clock())
    bank.step(clock())
    assert sink.retained("chargerybank/link") == [] and sink.on("chargerybank/state") == []
    clock.t += STALE
    bank.step(clock())
    assert sink.retained("chargerybank/link") == ["offline"]


def test_the_process_sends_the_victron_document_while_the_bank_is_live() -> None:
    clock, sink = Clock(), RecordingSink()
    settings = bank_settings(load({"bank_members": "a,b", "bank_victron": "serialbattery"}, {}, {}))
    bank = Bank(settings, members_of(settings), sink=sink, clock=clock)
    for prefix, cells in (("a", CELLS_A), ("b", CELLS_B)):
        bank.receive(received(f"{prefix}/status", "online"), clock())
        bank.receive(received(f"{prefix}/link", "online"), clock())
        bank.receive(received(f"{prefix}/state", pack_doc(cells)), clock())
    bank.step(clock())
    documents = sink.on("chargerybank/victron")
    assert len(documents) == 1
    check_serialbattery(json.loads(documents[0]))
    for prefix in ("a", "b"):
        bank.receive(received(f"{prefix}/link", "offline"), clock())
    clock.t += 5
    bank.step(clock())
    assert len(sink.on("chargerybank/victron")) == 1  # none while no pack is live


# --- the contracts: what the bank reads of a member, what it publishes --------------------


def test_the_bank_reads_only_keys_the_members_state_document_has() -> None:
    from pathlib import Path

    from chargerybms.bank import rules
    from chargerybms.registry import STATE_KEYS

    source = Path(rules.__file__).read_text()
    read = set(re.findall(r'\.get\("(\w+)"\)', source)) | set(rules.PACK_FIELDS) | set(Meters.KEYS)
    assert {"pack_voltage", "cell_voltages", "capacity_ah", "weakest_cell", "link"} <= read
    assert read <= set(STATE_KEYS), read - set(STATE_KEYS)
    assert set(pack_doc(CELLS_A)) <= set(STATE_KEYS)  # the tests' member documents are real ones


def test_the_documentation_lists_every_key_of_the_banks_document_and_no_other() -> None:
    from helpers import ROOT

    text = (ROOT / "docs" / "several-packs.md").read_text()
    section = text.split("### What each value means", 1)[1].split("\n**State of charge.**", 1)[0]
    first_column = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    listed = [name for cell in first_column for name in re.findall(r"`(\w+)`", cell)]
    assert sorted(listed) == sorted(BANK_KEYS)
    packs = section.split("| `packs` |", 1)[1].split("\n", 1)[0]
    shown = set(re.findall(r"`(\w+)`", packs))
    entry = combine(two_packs(), 1.0, STALE)["packs"][0]
    assert set(entry) == shown - {"null"}, set(entry) ^ shown


def test_home_assistant_gets_the_new_sums_at_once_when_a_pack_comes_or_goes() -> None:
    from chargerybms.bank.ha import BankHa
    from chargerybms.outputs.discovery import Discovery
    from chargerybms.topics import Topics

    settings = bank_settings(load({"bank_members": "chargerybms/a,chargerybms/b"}, {}, {}))
    ha = BankHa(Discovery(settings, Topics(settings.topic_prefix)), "chargerybank", [A, B], 300.0)
    members = two_packs()
    members[1].on_link("offline")
    first = json.loads(ha.payload(combine(members, 0.0, STALE), 0.0))
    assert first["cell_min"] == 3.29 and first["current"] == 30.0
    members[1].on_link("online")
    members[1].on_state(members[1].doc or {}, 1.0)
    both = json.loads(ha.payload(combine(members, 1.0, STALE), 1.0))  # 1 s later: within every band's hold
    assert both["cell_min"] == 3.20 and both["current"] == 20.0 and both["members_live"] == 2
    # Within one membership, values are held as a single pack's are.
    members[0].on_state(pack_doc(CELLS_A, current=31.0, soc=60, charge_ah=168.0), 2.0)
    assert json.loads(ha.payload(combine(members, 2.0, STALE), 2.0))["current"] == 20.0


def test_a_stale_member_does_not_make_a_new_document_every_moment() -> None:
    clock, sink = Clock(), RecordingSink()
    settings = bank_settings(load({"bank_members": "a,b"}, {}, {}))
    bank = Bank(settings, members_of(settings), sink=sink, clock=clock)
    for prefix in ("a", "b"):
        bank.receive(received(f"{prefix}/status", "online"), clock())
        bank.receive(received(f"{prefix}/link", "online"), clock())
        bank.receive(received(f"{prefix}/state", pack_doc(CELLS_A)), clock())
    bank.step(clock())
    clock.t += STALE + 1  # both silent now
    bank.step(clock())
    made = len(sink.on("chargerybank/state"))
    for _ in range(20):
        clock.t += 0.25
        bank.step(clock())
    assert len(sink.on("chargerybank/state")) == made  # until the heartbeat
    clock.t += settings.heartbeat
    bank.step(clock())
    assert len(sink.on("chargerybank/state")) == made + 1


def test_the_entities_of_a_pack_no_longer_in_the_bank_are_removed() -> None:
    clock = Clock()
    old = RecordingSink()
    three = bank_settings(load({"bank_members": "a,b,c"}, {}, {}))
    Bank(three, members_of(three), sink=old, clock=clock).announce(clock())
    retained = old.retained("homeassistant/device/chargerybank/config")[-1]
    sink = RecordingSink()
    two = bank_settings(load({"bank_members": "a,b"}, {}, {}))
    bank = Bank(two, members_of(two), sink=sink, clock=clock)
    bank.announce(clock())
    assert "pack_3_soc" not in json.loads(sink.retained("homeassistant/device/chargerybank/config")[-1])["components"]
    bank.receive(received("homeassistant/device/chargerybank/config", retained, retained=True), clock())
    config = json.loads(sink.retained("homeassistant/device/chargerybank/config")[-1])
    assert config["components"]["pack_3_soc"] == {"p": "sensor"}
    assert config["components"]["pack_3_live"] == {"p": "binary_sensor"}
    assert len(config["components"]["pack_2_soc"]) > 1
    # Our own announcement coming back (not retained) changes nothing.
    before = len(sink.published)
    bank.receive(received("homeassistant/device/chargerybank/config", json.dumps(config)), clock())
    assert len(sink.published) == before
