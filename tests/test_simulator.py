"""The physical simulator: what each planted fault does to the frames a real decoder reads."""

from __future__ import annotations

import itertools
import statistics

import pytest

from chargerybms.protocol import CellsFrame, Frame, ImpedancesFrame, StatusFrame, decode_frame
from chargerybms.simulator import (
    CHARGE_END_MV,
    DISCHARGE_END_MV,
    Fault,
    SimulatedBms,
    SimulatedPort,
    ocv_mv,
    parse_fault,
)


def run(bms: SimulatedBms, seconds: int) -> list[tuple[int, Frame]]:
    return [(t, decode_frame(raw)) for t in range(seconds) for raw in bms.frames_at(t)]


def statuses(frames: list[tuple[int, Frame]]) -> list[tuple[int, StatusFrame]]:
    return [(t, f) for t, f in frames if isinstance(f, StatusFrame)]


def cell_frames(frames: list[tuple[int, Frame]]) -> list[tuple[int, CellsFrame]]:
    return [(t, f) for t, f in frames if isinstance(f, CellsFrame)]


def impedance_frames(frames: list[tuple[int, Frame]]) -> list[ImpedancesFrame]:
    return [f for _, f in frames if isinstance(f, ImpedancesFrame)]


def test_the_open_circuit_curve_is_flat_in_the_middle_and_steep_at_the_knees() -> None:
    middle = (ocv_mv(0.8) - ocv_mv(0.2)) / 60  # mV per % of charge
    top = (ocv_mv(1.0) - ocv_mv(0.95)) / 5
    bottom = (ocv_mv(0.05) - ocv_mv(0.0)) / 5
    assert middle < 2 and top > 10 * middle and bottom > 10 * middle


def test_a_healthy_pack_cycles_without_cutoffs() -> None:
    bms = SimulatedBms(16, cycle=240, seed=4)
    frames = run(bms, 1000)
    modes = [f.mode for _, f in statuses(frames)]
    assert {"charge", "storage", "discharge"} <= set(modes)
    assert bms.cycles >= 3 and bms.cutoffs == []
    for _, cells in cell_frames(frames):
        volts = cells.cell_voltages
        assert min(volts) > 3.0 and max(volts) < 3.6
        assert max(volts) - min(volts) < 0.06  # healthy cells stay close together
    assert not any(f.charge_protection or f.discharge_protection for _, f in statuses(frames))


def test_the_same_seed_gives_the_same_bytes() -> None:
    a = list(SimulatedBms(8, seed=7, fault="low-capacity:2").seconds(300))
    b = list(SimulatedBms(8, seed=7, fault="low-capacity:2").seconds(300))
    c = list(SimulatedBms(8, seed=8, fault="low-capacity:2").seconds(300))
    assert a == b and a != c


@pytest.mark.parametrize("firmware", ["1.25", "1.26"])
def test_a_low_capacity_cell_is_cut_off_by_the_bms_at_its_end_voltage(firmware: str) -> None:
    bms = SimulatedBms(16, cycle=600, seed=3, firmware=firmware, fault="low-capacity:7")
    frames = run(bms, 1300)
    assert bms.cutoffs and all(cell == 7 for _, _, cell in bms.cutoffs)
    second, direction, _ = bms.cutoffs[0]
    assert direction == "charge"
    by_second = dict(statuses(frames))
    before, after = by_second[second - 1], by_second[second]
    assert before.current > 0 and after.current == 0
    # V1.26 raises its protection flag; earlier firmware only stops the current.
    assert after.charge_protection is (True if firmware == "1.26" else None)
    # The last cell frame before the cut reads a few mV under the end voltage: the BMS
    # decides on its own reading, every second.
    last = [f for t, f in cell_frames(frames) if t < second][-1]
    high = max(last.cell_voltages)
    assert last.cell_voltages.index(high) == 6
    assert CHARGE_END_MV - 15 <= high * 1000 <= CHARGE_END_MV


def test_a_deeply_cycled_low_capacity_cell_cuts_off_the_discharge_too() -> None:
    bms = SimulatedBms(8, cycle=600, seed=5, fault=Fault("low-capacity", 3, 0.7))
    frames = run(bms, 4000)
    assert {d for _, d, _ in bms.cutoffs} == {"charge", "discharge"}
    second = next(t for t, d, _ in bms.cutoffs if d == "discharge")
    status = dict(statuses(frames))[second]
    assert status.discharge_protection is True and status.current == 0
    last = [f for t, f in cell_frames(frames) if t < second][-1]
    assert min(last.cell_voltages) * 1000 <= DISCHARGE_END_MV + 20


def test_a_high_resistance_cell_shows_in_the_bms_impedances_at_high_current() -> None:
    bms = SimulatedBms(16, cycle=300, seed=2, fault="high-resistance:3")
    impedances = [f for f in impedance_frames(run(bms, 3000)) if abs(f.current) >= 30]
    assert impedances
    for imp in impedances:
        values = imp.cell_impedances
        assert values.index(max(values)) == 2
        assert max(values) > 2 * statistics.median(values)


def test_a_loose_balance_lead_moves_its_two_readings_apart_with_a_steady_sum() -> None:
    bms = SimulatedBms(16, cycle=300, seed=6, fault="balance-lead:5")
    cells = [f.cell_voltages for _, f in cell_frames(run(bms, 600))]
    # Each reading's move from one frame to the next, less the pack's (the current's) move.
    moves = []
    for a, b in itertools.pairwise(cells):
        pack = statistics.median(y - x for x, y in zip(a, b, strict=True))
        moves.append((b[4] - a[4] - pack, b[5] - a[5] - pack))
    opposite = [(d5, d6) for d5, d6 in moves if abs(d5) > 0.01 and abs(d6) > 0.01 and d5 * d6 < 0]
    assert len(opposite) > 20
    assert all(abs(d5 + d6) < 0.006 for d5, d6 in opposite)  # the pair's sum stays put
    healthy = [(b[8] - a[8]) for a, b in itertools.pairwise(cells)]
    assert sum(abs(d) > 0.01 for d in healthy) < len(healthy) / 10  # other cells move with the current only


def test_a_temperature_cutoff_no_cell_explains() -> None:
    bms = SimulatedBms(16, cycle=300, seed=1, fault="temperature")
    frames = run(bms, 400)
    assert bms.cutoffs and bms.cutoffs[0][1:] == ("charge", None)
    second = bms.cutoffs[0][0]
    status = dict(statuses(frames))[second]
    assert status.charge_protection is True and status.temperature_1 >= 55
    last = [f for t, f in cell_frames(frames) if t < second][-1]
    assert max(last.cell_voltages) < 3.5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("low-capacity", "name the cell"),
        ("low-capacity:0", "1-16"),
        ("balance-lead:16", "1-15"),
        ("temperature:3", "names no cell"),
        ("sulfated:2", "is not a fault"),
    ],
)
def test_fault_text_errors_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_fault(text, 16)


def test_fault_text() -> None:
    assert parse_fault("", 16) is None
    assert parse_fault(" High-Resistance:3 ", 16) == Fault("high-resistance", 3)
    assert parse_fault("temperature", 16) == Fault("temperature")


def test_demo_fault_reaches_the_simulated_port() -> None:
    from chargerybms.config import load
    from chargerybms.sources import label, open_source

    settings = load({"demo": True, "demo_model": 8, "demo_fault": "high-resistance:2"}, {}, {})
    port = open_source(settings)
    assert isinstance(port, SimulatedPort)
    assert port.bms.fault == Fault("high-resistance", 2) and port.bms.slots == 8
    assert label(settings) == "simulated BMS8T (firmware 1.26 layout, with high-resistance:2)"
    assert open_source(load({"demo": True}, {}, {})).bms.fault is None  # type: ignore[attr-defined]
