"""The cell-health engine, fed frames directly (no processes): the right cell and cause for
every fault the simulator can plant, silence on healthy packs, cut-off causes in words and
numbers, and evidence that survives a restart or a corrupt file."""

from __future__ import annotations

import ast
import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from chargerybms.protocol import decode_frame, encode_cells, encode_impedances, encode_status
from chargerybms.simulator import Fault, SimulatedBms
from chargerybms.views import health
from chargerybms.views.health.codec import from_json, to_json
from chargerybms.views.health.cutoffs import CUTOFF_MARGIN, CUTOFF_MARGIN_UNFLAGGED
from chargerybms.views.health.engine import COUNT_CHANGE, HealthEngine
from chargerybms.views.health.report import report
from chargerybms.views.health.sessions import READING_AGE
from chargerybms.views.health.store import HealthStore, health_path, state_fields

WALL = 1_700_000_000.0
STATE_KEYS = {
    "weakest_cell",
    "health_warning",
    "health_evidence",
    "last_cutoff",
    "last_cutoff_time",
    "top_spread",
    "cell_sag_ratios",
    "cell_impedance_ratios",
}


def drive(
    bms: SimulatedBms, cycles: int, engine: HealthEngine | None = None
) -> tuple[HealthEngine, list[dict[str, Any]], list[Any]]:
    """Feed ``cycles`` whole cycles of ``bms`` into an engine: (engine, events, verdict after each cycle)."""
    engine = engine or HealthEngine()
    events: list[dict[str, Any]] = []
    verdicts = []
    seen = bms.cycles
    while bms.cycles <= cycles:
        t = bms.t
        for raw in bms.frames_at(t):
            events += engine.feed(decode_frame(raw), float(t), WALL + t)
        bms.t += 1
        if bms.cycles != seen:
            seen = bms.cycles
            verdicts.append(engine.verdict())
    return engine, events, verdicts


# --- the verdict ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "cell", "kind"),
    [
        ("low-capacity:7", 7, "capacity"),
        ("high-resistance:3", 3, "resistance"),
    ],
)
@pytest.mark.parametrize("seed", [1, 2])
def test_every_planted_fault_names_the_right_cell_and_cause(fault: str, cell: int, kind: str, seed: int) -> None:
    engine, events, verdicts = drive(SimulatedBms(16, cycle=600, seed=seed, fault=fault), 5)
    final = engine.verdict()
    assert (final.cell, final.kind, final.warning) == (cell, kind, True)
    assert all(v.cell in (None, cell) for v in verdicts)  # never another cell on the way
    warnings = [e for e in events if e["type"] == "health_warning"]
    assert [(w["cell"], w["kind"]) for w in warnings] == [(cell, kind)]  # said once, not every frame
    warning = warnings[0]
    assert warning["evidence"] == final.evidence[: len(warning["evidence"])] or warning["evidence"]
    assert f"cell {cell}" in warning["message"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", warning["time"])
    fields = state_fields(engine)
    assert fields["weakest_cell"] == cell and fields["health_warning"] is True
    assert fields["health_evidence"] == "; ".join(final.evidence) and fields["health_evidence"]


@pytest.mark.parametrize(("lead", "seed"), [(5, 1), (5, 2), (9, 3)])
def test_a_balance_lead_is_not_blamed_on_either_cell(lead: int, seed: int) -> None:
    # A loose sense lead is a wiring fault: its two cells may be fine. No cell is named
    # (weakest_cell null, as --demo-fault balance-lead:5 shows in `state`); the warning
    # and the evidence name the lead.
    engine, events, verdicts = drive(SimulatedBms(16, cycle=600, seed=seed, fault=f"balance-lead:{lead}"), 5)
    verdict = engine.verdict()
    assert (verdict.cell, verdict.lead, verdict.kind, verdict.warning) == (None, lead, "balance_lead", True)
    assert all(v.cell is None and v.lead in (None, lead) for v in verdicts)  # never a cell, nor another lead
    assert f"cells {lead} and {lead + 1}" in verdict.evidence[0] and "lead" in verdict.evidence[0]
    fields = state_fields(engine)
    assert fields["weakest_cell"] is None and fields["health_warning"] is True
    assert f"cells {lead} and {lead + 1}" in fields["health_evidence"]
    [warning] = [e for e in events if e["type"] == "health_warning"]  # said once
    assert warning["cell"] is None and warning["kind"] == "balance_lead"
    assert warning["message"].startswith(f"the balance lead between cells {lead} and {lead + 1}: ")
    doc = report(engine)
    assert doc["weakest_cell"] is None and doc["balance_lead"] == [lead, lead + 1] and doc["warning"] is True


@pytest.mark.parametrize(("seed", "slots", "firmware"), [(11, 16, "1.26"), (12, 8, "1.25"), (13, 24, "1.22")])
def test_a_healthy_pack_names_no_cell_and_raises_nothing(seed: int, slots: int, firmware: str) -> None:
    engine, events, verdicts = drive(SimulatedBms(slots, cycle=600, seed=seed, firmware=firmware), 8)
    assert events == []
    assert all(v.cell is None and not v.warning for v in verdicts)
    fields = state_fields(engine)
    assert fields["weakest_cell"] is None and fields["health_warning"] is False and fields["health_evidence"] == ""
    assert fields["last_cutoff"] is None and fields["last_cutoff_time"] is None
    assert engine.capacity.tops_total >= 7 and engine.capacity.bottoms_total >= 7  # it did look
    assert fields["top_spread"] is not None and 0 < fields["top_spread"] < 0.05
    assert fields["cell_sag_ratios"] is not None and len(fields["cell_sag_ratios"]) == slots
    assert all(0.6 < r < 1.4 for r in fields["cell_sag_ratios"])
    if firmware == "1.22":  # no impedance frames before V1.25
        assert fields["cell_impedance_ratios"] is None
    else:
        assert fields["cell_impedance_ratios"] is not None and len(fields["cell_impedance_ratios"]) == slots


def test_state_fields_are_the_agreed_keys_and_json() -> None:
    engine, _, _ = drive(SimulatedBms(8, cycle=600, seed=4, fault="low-capacity:2"), 3)
    fields = state_fields(engine)
    assert set(fields) == STATE_KEYS
    assert json.loads(json.dumps(fields, allow_nan=False)) == fields
    assert fields["last_cutoff"].startswith("charge stopped: cell 2 ")
    assert fields["last_cutoff_time"] == engine.cutoffs.history[-1]["time"]
    assert fields["top_spread"] > 0.1  # the weak cell runs away at the top
    assert set(state_fields(HealthEngine())) == STATE_KEYS  # before any frame, too


@pytest.mark.parametrize("configured", [12, None])
def test_only_the_wired_cells_are_judged(configured: int | None) -> None:
    # A 16-slot BMS with 12 cells wired: the junk in the free slots is no "weak cell",
    # whether --cells says so or not.
    bms = SimulatedBms(16, cells=12, cycle=600, seed=5, fault="high-resistance:12")
    engine, _, _ = drive(bms, 3, HealthEngine(configured))
    assert engine.cells == 12 and engine.verdict().cell == 12
    assert engine.impedance.count > 0  # the BMS's 12 impedances fit the 12 cells


# --- cut-offs ------------------------------------------------------------------------------------


def status(amps: float, *, mode: int | None = None, flag: bool = False, dflag: bool = False, t1: int = 215) -> bytes:
    if mode is None:
        mode = 1 if amps > 0 else 0 if amps < 0 else 2
    return encode_status(
        charge_end_mv=3650,
        mode=mode,
        deci_amps=round(abs(amps) * 10),
        t1_deci=t1,
        t2_deci=198,
        soc=95,
        discharge_end_mv=2800,
        charge_protection=flag,
        discharge_protection=dflag,
    )


def cells(*mv: int) -> bytes:
    return encode_cells(list(mv), energy_mwh=1000, capacity_mah=1000)


def feed(engine: HealthEngine, frames: list[tuple[float, bytes]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for t, raw in frames:
        out += engine.feed(decode_frame(raw), t, WALL + t)
    return out


def charge_then_cut(cell7_mv: int, *, age: float = 1.0, flag: bool = True) -> list[dict[str, Any]]:
    others = [3400] * 6
    return feed(
        HealthEngine(),
        [
            (0.0, status(40.0)),
            (0.0, cells(*others, cell7_mv - 5, 3401)),
            (1.0, status(40.0)),
            (2.0, status(40.0)),
            (2.0, cells(*others, cell7_mv, 3402)),
            (2.0 + age, status(0.0, flag=flag)),
        ],
    )


def test_the_charge_cut_off_names_the_cell_in_words_and_numbers() -> None:
    [event] = charge_then_cut(3652)
    assert event == {
        "type": "cutoff",
        "message": "charge stopped: cell 7 reached 3.652 V (charge end voltage 3.650 V)",
        "time": "2023-11-14T22:13:23+00:00",
        "cell": 7,
        "direction": "charge",
        "voltage": 3.652,
        "end_voltage": 3.65,
        "current": 40.0,
        "temperature_1": 21.5,
        "temperature_2": 19.8,
        "explained": True,
    }


def test_a_last_reading_a_little_under_the_end_voltage_explains_the_cut() -> None:
    # The BMS acts on its own, newer reading: up to 30 mV short is accepted, and said.
    [event] = charge_then_cut(3621)
    assert event["cell"] == 7 and event["explained"] is True and event["voltage"] == 3.621
    assert event["message"] == (
        "charge stopped: cell 7 at 3.621 V, 29 mV under the charge end voltage 3.650 V "
        "(its last reading, 1 s before the cut)"
    )


def test_no_cell_near_the_end_voltage_means_no_invented_cause() -> None:
    [event] = charge_then_cut(3619)  # 31 mV short: not the cause
    assert event["cell"] is None and event["voltage"] is None and event["explained"] is False
    assert event["message"] == (
        "charge stopped and no cell explains it: the highest cell, 7, was at 3.619 V (charge end voltage "
        "3.650 V); temperatures 21.5 °C and 19.8 °C; current 40.0 A before the stop"
    )


def test_a_stale_reading_explains_nothing() -> None:
    [event] = charge_then_cut(3655, age=READING_AGE + 1)
    assert event["explained"] is False and event["cell"] is None


def test_a_flag_already_up_at_start_is_not_news() -> None:
    engine = HealthEngine()
    assert feed(engine, [(0.0, status(0.0, flag=True)), (1.0, status(0.0, flag=True))]) == []
    assert feed(engine, [(2.0, status(0.0)), (3.0, status(0.0, flag=True))]) != []  # a new rise is


def test_older_firmware_current_stopping_at_the_end_voltage_is_a_cut_off() -> None:
    def old(amps: float) -> bytes:
        return encode_status(
            charge_end_mv=3650, mode=1 if amps else 2, deci_amps=round(amps * 10), t1_deci=200, t2_deci=190, soc=96
        )

    def run(cell7_mv: int) -> list[dict[str, Any]]:
        return feed(
            HealthEngine(),
            [(0.0, old(30.0)), (0.0, cells(*[3400] * 6, cell7_mv, 3400)), (1.0, old(30.0)), (2.0, old(0.0))],
        )

    [event] = run(3644)
    assert event["cell"] == 7 and event["direction"] == "charge" and "6 mV under" in event["message"]
    # Without the flag the engine alone decides: a charger stopping with every cell
    # further away than the tighter margin is not taken for the BMS.
    assert run(3650 - round(CUTOFF_MARGIN_UNFLAGGED * 1000) - 1) == []


def test_simulated_cut_offs_by_a_cell_both_ways() -> None:
    bms = SimulatedBms(8, cycle=600, seed=5, fault=Fault("low-capacity", 3, 0.7))
    _, events, _ = drive(bms, 4)
    cuts = [e for e in events if e["type"] == "cutoff"]
    assert {e["direction"] for e in cuts} == {"charge", "discharge"}
    assert len(cuts) == len(bms.cutoffs)  # every cut the simulated BMS made, none it did not
    for e in cuts:
        assert e["cell"] == 3 and e["explained"] is True
        charge = e["direction"] == "charge"
        assert e["end_voltage"] == (3.65 if charge else 2.8)
        assert (e["current"] > 0) if charge else (e["current"] < 0)
        assert abs(e["voltage"] - e["end_voltage"]) <= CUTOFF_MARGIN
        verb = "reached" if charge else "fell to"
        assert e["message"].startswith(f"{e['direction']} stopped: cell 3 ")
        assert verb in e["message"] or "mV" in e["message"]


def test_a_temperature_cut_off_is_reported_as_unexplained_with_what_is_known() -> None:
    bms = SimulatedBms(16, cycle=600, seed=1, fault="temperature")
    engine, events, _ = drive(bms, 2)
    cuts = [e for e in events if e["type"] == "cutoff"]
    assert cuts and len(cuts) == len(bms.cutoffs)
    for e in cuts:
        assert e["cell"] is None and e["voltage"] is None and e["explained"] is False
        assert e["direction"] == "charge" and e["temperature_1"] >= 55
        assert "no cell explains it" in e["message"] and f"{e['temperature_1']:.1f} °C" in e["message"]
        assert f"current {e['current']:.1f} A" in e["message"]
    assert engine.verdict().cell is None  # a hot sensor is no weak cell


def test_charging_again_before_a_discharge_is_the_same_top() -> None:
    engine = HealthEngine()
    eight_high = cells(*[3400] * 7, 3450)
    one_high = cells(3430, *[3400] * 7)
    frames: list[tuple[float, bytes]] = []
    t = 0.0
    # A charge, a cloud, the charge again (now cell 1 is highest), a discharge, a charge.
    for amps, reading in ((40.0, eight_high), (0.0, eight_high), (30.0, one_high), (0.0, one_high),
                          (-20.0, one_high), (0.0, one_high), (40.0, eight_high), (0.0, eight_high)):  # fmt: skip
        for _ in range(3):
            frames += [(t, status(amps)), (t, reading)]
            t += 1
    feed(engine, frames)
    assert engine.capacity.tops_total == 2 and len(engine.capacity.tops) == 2
    assert engine.capacity.highest_at_top == [1, 0, 0, 0, 0, 0, 0, 1]  # the replaced top no longer counts for cell 8
    tops = engine.capacity.tops
    assert tops[0]["dev"][0] == 30.0 and tops[-1]["rest"] is True and tops[-1]["dev"][7] == 50.0


# --- measurements ------------------------------------------------------------------------------


def test_small_current_impedances_are_ignored() -> None:
    engine = HealthEngine()
    feed(engine, [(0.0, cells(*[3300] * 8))])
    for t in range(1, 6):
        feed(engine, [(float(t), encode_impedances(0, 50, [3] * 7 + [30]))])  # 5 A: noise
    assert engine.impedance.count == 0 and state_fields(engine)["cell_impedance_ratios"] is None
    for t in range(6, 11):
        feed(engine, [(float(t), encode_impedances(0, 400, [3] * 7 + [9]))])  # 40 A
    assert engine.impedance.count == 5
    assert state_fields(engine)["cell_impedance_ratios"] == [1.0] * 7 + [3.0]
    verdict = engine.verdict()
    assert verdict.cell == 8 and verdict.kind == "impedance"
    assert verdict.warning is False  # 0.3 mOhm read in 0.1 mOhm steps: too coarse to warn alone
    doc = report(engine, WALL + 100)
    assert doc["impedance_age_s"] == 90.0 and doc["impedance_current"] == -40.0


# --- persistence ---------------------------------------------------------------------------------


def test_the_evidence_round_trips_and_a_warning_is_not_said_again_after_a_restart() -> None:
    bms = SimulatedBms(16, cycle=600, seed=2, fault="high-resistance:4")
    engine, events, _ = drive(bms, 3)
    assert [e["cell"] for e in events if e["type"] == "health_warning"] == [4]
    saved = json.loads(json.dumps(to_json(engine)))
    again = from_json(saved)
    assert to_json(again) == to_json(engine)
    assert state_fields(again) == state_fields(engine)
    assert report(again) == report(engine)
    _, later, _ = drive(bms, 5, again)  # the same pack after a restart
    assert [e for e in later if e["type"] == "health_warning"] == []
    assert again.verdict().cell == 4


@pytest.mark.parametrize("name", ["resistance", "lead"])
def test_evidence_saved_by_the_one_module_engine_loads_and_means_the_same(name: str) -> None:
    # Written by chargery 16cb560, before the engine became parts (tests/data/README.md).
    old = json.loads((Path(__file__).parent / "data" / f"health-v1-{name}.json").read_text())
    engine = from_json(old["evidence"])
    assert to_json(engine) == old["evidence"]  # the format is unchanged, both ways
    wall = old["evidence"]["impedance_wall"] + old["report"]["impedance_age_s"]  # when the report was made
    fields, doc = state_fields(engine), report(engine, wall)
    if name == "lead":  # now blamed on no cell (it was cell 5): the rest is the same
        assert old["state_fields"]["weakest_cell"] == 5 and fields["weakest_cell"] is None
        assert doc["balance_lead"] == [5, 6]
        fields["weakest_cell"] = doc["weakest_cell"] = 5
    assert fields == old["state_fields"]
    assert {k: v for k, v in doc.items() if k != "balance_lead"} == old["report"]
    # The warning the old engine said is not said again after the upgrade.
    fault = old["fault"]
    _, later, _ = drive(SimulatedBms(16, cycle=600, seed=2, fault=fault), 2, engine)
    assert [e for e in later if e["type"] == "health_warning"] == []


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: [],
        lambda d: {**d, "version": 99},
        lambda d: {**d, "cells": 1},
        lambda d: {**d, "sag_ratio": [1.0, "x"]},
        lambda d: {**d, "highest_at_top": [-1] * d["cells"]},
        lambda d: {**d, "tops": [{"dev": [1.0]}]},
        lambda d: {**d, "cutoffs": [{"no": "message"}]},
        lambda d: {**d, "impedance_wall": float("nan")},
    ],
)
def test_documents_that_are_not_evidence_are_refused(damage: Any) -> None:
    engine, _, _ = drive(SimulatedBms(8, cycle=600, seed=2, fault="low-capacity:2"), 2)
    with pytest.raises(ValueError):
        from_json(damage(to_json(engine)))


def test_evidence_of_another_cell_count_starts_afresh() -> None:
    engine, _, _ = drive(SimulatedBms(8, cycle=600, seed=2, fault="low-capacity:2"), 2)
    assert from_json(to_json(engine), cell_limit=6).cells == 0
    loaded = from_json(to_json(engine))
    feed(loaded, [(0.0, cells(*[3300] * 16))])  # one odd frame changes nothing
    assert loaded.cells == 8 and loaded.verdict().cell == 2
    feed(loaded, [(float(t), cells(*[3300] * 16)) for t in range(COUNT_CHANGE)])  # the BMS now sends 16
    assert loaded.cells == 16 and loaded.capacity.tops_total == 0 and loaded.verdict().cell is None


def test_saved_atomically_with_a_backup_and_only_when_changed(tmp_path: Path) -> None:
    path = health_path(tmp_path / "state", "house")
    store = HealthStore(path)
    engine = store.load()
    assert engine.cells == 0 and not path.exists()
    drive(SimulatedBms(8, cycle=600, seed=2, fault="low-capacity:2"), 2, engine)
    store.save(engine)
    assert path.name == "health-house.json" and path.exists()
    assert not list(path.parent.glob("*.tmp"))
    mtime = path.stat().st_mtime_ns
    store.save(engine)  # nothing new: no write (the SD card's sake)
    assert path.stat().st_mtime_ns == mtime
    feed(engine, [(1e6, status(0.0)), (1e6 + 1, status(0.0, flag=True))])  # a new cut-off
    store.save(engine)
    assert (path.parent / "health-house.json.bak").exists()
    loaded = HealthStore(path).load()
    assert to_json(loaded) == to_json(engine)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "wrong"])
def test_a_corrupt_file_is_said_and_survived(tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "health-x.json"
    store = HealthStore(path)
    engine = HealthEngine()
    drive(SimulatedBms(8, cycle=600, seed=2, fault="low-capacity:2"), 1, engine)
    store.save(engine)
    first = to_json(engine)
    drive(SimulatedBms(8, cycle=600, seed=2, fault="low-capacity:2"), 2, engine)
    engine.changed = True
    store.save(engine)  # the first is now the backup
    text = path.read_text()
    path.write_text(
        {"truncated": text[: len(text) // 2], "garbage": "\x00\xff{", "empty": "", "wrong": '{"version": 1}'}[damage]
    )
    with caplog.at_level(logging.ERROR):
        loaded = HealthStore(path).load()
    assert "corrupt" in caplog.text and "backup" in caplog.text
    assert to_json(loaded) == first
    assert list(tmp_path.glob("health-x.json.corrupt-*"))  # kept for the user


def test_both_copies_corrupt_start_afresh_loudly(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "health-x.json"
    path.write_text("{not json")
    (tmp_path / "health-x.json.bak").write_text("[]")
    with caplog.at_level(logging.ERROR):
        loaded = HealthStore(path).load()
    assert loaded.cells == 0 and "starts afresh" in caplog.text


def test_an_unwritable_state_dir_is_an_error_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    store = HealthStore(blocker / "sub" / "health.json")
    engine = HealthEngine()
    feed(engine, [(0.0, status(0.0)), (1.0, status(0.0, flag=True))])
    with caplog.at_level(logging.ERROR):
        store.save(engine)
    assert "cannot save" in caplog.text and engine.changed


ENGINE_MODULES = sorted(p for p in Path(health.__file__).parent.glob("*.py") if p.name != "store.py")


@pytest.mark.parametrize("path", ENGINE_MODULES, ids=lambda p: p.name)
def test_the_engine_is_pure(path: Path) -> None:
    """Standard library only, no I/O, no logging, no clock: what the design asks of it
    (of every part but the store, the daemon's view that saves the evidence)."""
    tree = ast.parse(path.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add("." * node.level + (node.module or "") if node.level else (node.module or "").split(".")[0])
    parts = {"." + p.stem for p in ENGINE_MODULES}
    assert imported <= {"__future__", "math", "collections", "dataclasses", "datetime", "typing", "...protocol"} | parts
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    attributes = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    assert not names & {"open", "print", "time", "LOG", "logging"}
    assert not attributes & {"now", "utcnow", "time", "monotonic", "write", "read"}  # the clock is passed in


def test_the_engine_is_split_into_parts_with_one_job_each() -> None:
    """The coordinator stays small; the estimators are one reusable ratio estimator used twice."""
    from chargerybms.views.health import engine, impedance, ratio, sag

    assert len(Path(engine.__file__).read_text().splitlines()) <= 200
    assert isinstance(sag.SagEstimator().estimate, ratio.RatioEstimator)
    assert isinstance(impedance.ImpedanceEstimator(8).estimate, ratio.RatioEstimator)


# --- never a crash ------------------------------------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_frames = st.one_of(
    st.builds(
        lambda mv, n: cells(*([mv] * n)),
        st.integers(0, 4999),
        st.integers(1, 24),
    ),
    st.builds(
        lambda amps, mode, flags, t1: encode_status(
            charge_end_mv=3650,
            mode=mode,
            deci_amps=amps,
            t1_deci=t1,
            t2_deci=0,
            soc=50,
            discharge_end_mv=2800 if flags is not None else None,
            charge_protection=bool(flags and flags & 1),
            discharge_protection=bool(flags and flags & 2),
        ),
        st.integers(0, 65535),
        st.integers(0, 2),
        st.one_of(st.none(), st.integers(0, 3)),
        st.integers(-32768, 32767),
    ),
    st.builds(
        lambda n, amps, z: encode_impedances(0, amps, [z] * n),
        st.integers(1, 24),
        st.integers(0, 65535),
        st.integers(0, 65535),
    ),
    st.builds(
        lambda amps: encode_status(charge_end_mv=3650, deci_amps=amps, t1_deci=0, t2_deci=0), st.integers(0, 65535)
    ),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_frames, st.floats(-5, 30)), max_size=60), st.sampled_from([None, 4, 8]))
def test_any_frames_in_any_order_never_crash_it(frames: list[tuple[bytes, float]], limit: int | None) -> None:
    engine = HealthEngine(limit)
    now = 0.0
    for raw, step in frames:
        now += step  # the clock may even step back
        for event in engine.feed(decode_frame(raw), now, WALL + now):
            json.dumps(event, allow_nan=False)
    json.dumps(state_fields(engine), allow_nan=False)
    json.dumps(report(engine, WALL), allow_nan=False)
    assert to_json(from_json(json.loads(json.dumps(to_json(engine))), limit)) == to_json(engine)
