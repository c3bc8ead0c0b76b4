"""The cell-health study: does the engine name the right cell, and never cry wolf?

    python3 bench/health_bench.py [--packs 100] [--healthy 8] [--days 365] [--quick]

Simulated packs (chargerybms/simulator/, each seeded: its own cell-to-cell variation,
load pattern and noise; 8, 16 or 24 cells of 100, 230 or 280 Ah; firmware V1.26 or V1.25)
go through their daily cycles (charge, rest, discharge, rest; one simulated day is
``--cycle-seconds`` of simulated time, the knees at a real cell's pace) and every frame,
encoded and decoded as on a real port, into the engine (chargerybms/views/health/).

- ``--packs`` packs per fault, each with one planted fault of a random severity: a cell
  with 70-90 % of the capacity, a cell with 2-4x the resistance, a balance lead shifting
  its two readings by up to 10-40 mV, a temperature cut-off. Printed: the share where the
  engine names the right cell for the right cause (and warns) after 1, 2, ... cycles, and
  whether it ever named another cell.
- ``--healthy`` healthy packs, ``--days`` daily cycles each: how many warnings (all false),
  how many days a cell was named, how many cut-off events.
- The figures behind three thresholds: how far under the end voltage the last reading
  before a cut-off was; the error of one sag ratio against the size of the step; the error
  of one BMS impedance ratio against the current it was measured at.

It prints figures; it asserts nothing (tests/test_bench.py runs ``--quick``).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chargerybms.protocol import CellsFrame, ImpedancesFrame, decode_frame  # noqa: E402
from chargerybms.simulator import Fault, SimulatedBms  # noqa: E402
from chargerybms.views.health import sag  # noqa: E402
from chargerybms.views.health.cutoffs import CUTOFF_MARGIN, CUTOFF_MARGIN_UNFLAGGED  # noqa: E402
from chargerybms.views.health.engine import HealthEngine  # noqa: E402

FAULTS = ("low-capacity", "high-resistance", "balance-lead", "temperature")
RIGHT_KIND = {
    "low-capacity": {"capacity"},
    "high-resistance": {"resistance", "impedance"},
    "balance-lead": {"balance_lead"},
}
WALL0 = 1_700_000_000.0


def random_pack(seed: int, fault_kind: str | None, cycle_seconds: int) -> SimulatedBms:
    rng = random.Random(seed * 7919 + 1)
    slots = rng.choice((8, 16, 24))
    capacity = rng.choice((100.0, 230.0, 280.0))
    firmware = rng.choice(("1.25", "1.26")) if fault_kind != "temperature" else "1.26"
    fault = None
    if fault_kind == "low-capacity":
        fault = Fault(fault_kind, rng.randint(1, slots), rng.uniform(0.70, 0.90))
    elif fault_kind == "high-resistance":
        fault = Fault(fault_kind, rng.randint(1, slots), rng.uniform(2.0, 4.0))
    elif fault_kind == "balance-lead":
        fault = Fault(fault_kind, rng.randint(1, slots - 1), rng.uniform(10.0, 40.0))
    elif fault_kind == "temperature":
        fault = Fault(fault_kind)
    return SimulatedBms(
        slots,
        firmware=firmware,
        capacity_ah=capacity,
        resistance_mohm=0.3 * 280 / capacity,  # smaller cells, more resistance
        cycle=cycle_seconds,
        seed=seed,
        spacer=False,
        fault=fault,
    )


class Figures:
    """What the threshold figures are built from, collected over every run."""

    def __init__(self) -> None:
        self.cutoff_gap_mv: dict[str, list[float]] = defaultdict(list)  # by firmware: explaining cell short of the end
        self.cutoffs: dict[str, Counter[str]] = defaultdict(Counter)  # by firmware: what became of each cut-off
        self.step_errors: dict[str, list[float]] = defaultdict(list)  # by |median delta V|
        self.impedance_errors: dict[str, list[float]] = defaultdict(list)  # by current


STEP_BINS = (
    (0, 2, "< 2 mV"),
    (2, 3, "2-3 mV"),
    (3, 5, "3-5 mV"),
    (5, 10, "5-10 mV"),
    (10, 20, "10-20 mV"),
    (20, 1e9, ">= 20 mV"),
)
CURRENT_BINS = ((0, 5, "< 5 A"), (5, 10, "5-10 A"), (10, 20, "10-20 A"), (20, 50, "20-50 A"), (50, 1e9, ">= 50 A"))


def _bin(value: float, bins: tuple[tuple[float, float, str], ...]) -> str:
    return next(label for low, high, label in bins if low <= value < high)


def run_pack(
    bms: SimulatedBms, cycles: int, figures: Figures, *, errors: bool = False
) -> tuple[HealthEngine, list[dict[str, object]], list[dict[str, object]]]:
    """Run ``cycles`` whole cycles; return the engine, per finished cycle the verdict, and the events."""
    engine = HealthEngine()
    true_r = bms.cell_resistance
    med_r = statistics.median(true_r)
    true_ratio = [r / med_r for r in true_r]
    per_cycle: list[dict[str, object]] = []
    events: list[dict[str, object]] = []
    reported: list[tuple[int, dict[str, object], float | None]] = []
    t = 0
    seen_cycle = 0
    last_step = None
    while True:
        for raw in bms.frames_at(t):
            frame = decode_frame(raw)
            if errors and isinstance(frame, ImpedancesFrame) and len(frame.cell_impedances) == len(true_ratio):
                med = statistics.median(frame.cell_impedances)
                if med > 0:
                    label = _bin(abs(frame.current), CURRENT_BINS)
                    errors = [abs(z / med - r) for z, r in zip(frame.cell_impedances, true_ratio, strict=True)]
                    figures.impedance_errors[label].append(statistics.median(errors))
            new = engine.feed(frame, float(t), WALL0 + t)
            events += new
            for e in new:
                if e["type"] == "cutoff":
                    reported.append((t, e, engine.cutoffs.last_gap_mv))
            if (
                errors
                and isinstance(frame, CellsFrame)
                and engine.sag.last_step is not None
                and engine.sag.last_step is not last_step
            ):
                last_step = engine.sag.last_step
                _, med_mv, ratios = last_step
                errors = [abs(q - r) for q, r in zip(ratios, true_ratio, strict=True)]
                figures.step_errors[_bin(abs(med_mv), STEP_BINS)].append(statistics.median(errors))
        t += 1
        if bms.cycles != seen_cycle:
            seen_cycle = bms.cycles
            v = engine.verdict()
            # The place named: the cell, or for a loose balance lead (blamed on no cell) the
            # lower of its two cells, as the planted fault gives it.
            per_cycle.append({"cell": v.place, "warning": v.warning, "kind": v.kind})
            if seen_cycle > cycles:
                break
    judge_cutoffs(bms, reported, figures)
    return engine, per_cycle, events


def judge_cutoffs(
    bms: SimulatedBms, reported: list[tuple[int, dict[str, object], float | None]], figures: Figures
) -> None:
    """Each cut-off of the simulated BMS against what the engine said about it."""
    tally = figures.cutoffs[bms.firmware]
    said = {t: (e, gap) for t, e, gap in reported}
    for second, direction, cell in bms.cutoffs:
        found = said.pop(second, None)
        if found is None:
            tally[f"{direction} cut-off by {'a cell' if cell else 'temperature'}: not reported"] += 1
            continue
        event, gap = found
        if cell is None:
            tally[
                "temperature cut-off: " + ("unexplained (right)" if not event["explained"] else "blamed on a cell")
            ] += 1
        elif event["cell"] == cell:
            tally[f"{direction} cut-off by a cell: right cell"] += 1
            if gap is not None:
                figures.cutoff_gap_mv[bms.firmware].append(gap)
        else:
            tally[f"{direction} cut-off by a cell: " + ("unexplained" if event["cell"] is None else "wrong cell")] += 1
    for event, _ in said.values():
        tally[f"{event['direction']} stopped by the charger or load, reported as a cut-off"] += 1


def study_faults(packs: int, cycles: int, cycle_seconds: int, figures: Figures) -> None:
    print(f"== {packs} packs per fault, {cycles} daily cycles each ({cycle_seconds} s of simulated time a day)")
    for kind in FAULTS:
        started = time.perf_counter()
        named_after: list[int | None] = []
        warned_after: list[int | None] = []
        wrong = 0
        unexplained_ok = 0
        cells_named_temp = 0
        severities: list[float] = []
        for seed in range(packs):
            bms = random_pack(1000 + seed + 100_000 * FAULTS.index(kind), kind, cycle_seconds)
            fault = bms.fault
            assert fault is not None
            severities.append(fault.amount)
            _, per_cycle, events = run_pack(bms, cycles, figures)
            if kind == "temperature":
                cuts = [e for e in events if e["type"] == "cutoff"]
                if cuts and all(not e["explained"] and e["cell"] is None for e in cuts):
                    unexplained_ok += 1
                cells_named_temp += any(c["cell"] is not None for c in per_cycle)
                continue
            right = RIGHT_KIND[kind]
            named = next(
                (i + 1 for i, c in enumerate(per_cycle) if c["cell"] == fault.cell and c["kind"] in right), None
            )
            warned = next(
                (
                    i + 1
                    for i, c in enumerate(per_cycle)
                    if c["cell"] == fault.cell and c["warning"] and c["kind"] in right
                ),
                None,
            )
            named_after.append(named)
            warned_after.append(warned)
            wrong += any(c["cell"] not in (None, fault.cell) for c in per_cycle)
        took = time.perf_counter() - started
        if kind == "temperature":
            print(
                f"{kind:16s} cut-offs reported as unexplained, no cell blamed: {unexplained_ok}/{packs}; "
                f"packs where a cell was named anyway: {cells_named_temp}  ({took:.0f} s)"
            )
            continue
        line = [f"{kind:16s} (severity {min(severities):.2f}-{max(severities):.2f})"]
        for label, after in (("named", named_after), ("warned", warned_after)):
            shares = [sum(1 for a in after if a is not None and a <= c) / packs for c in range(1, cycles + 1)]
            line.append(f"{label} after cycle 1..{cycles}: " + " ".join(f"{100 * s:.0f}%" for s in shares))
        found = [a for a in named_after if a is not None]
        median_named = statistics.median(found) if found else None
        line.append(f"median cycles to name: {median_named}; another cell named: {wrong}/{packs}  ({took:.0f} s)")
        print("\n  ".join(line))


def study_healthy(packs: int, days: int, cycle_seconds: int, figures: Figures) -> None:
    print(f"== {packs} healthy packs, {days} daily cycles each ({packs * days} pack-days)")
    started = time.perf_counter()
    warnings = 0
    named_days = 0
    cutoffs = 0
    kinds: Counter[str] = Counter()
    for seed in range(packs):
        bms = random_pack(500_000 + seed, None, cycle_seconds)
        _, per_cycle, events = run_pack(bms, days, figures)
        warnings += sum(1 for e in events if e["type"] == "health_warning")
        cutoffs += sum(1 for e in events if e["type"] == "cutoff")
        for c in per_cycle:
            if c["cell"] is not None:
                named_days += 1
                kinds[str(c["kind"])] += 1
    took = time.perf_counter() - started
    print(
        f"false warnings: {warnings}; days with a cell named: {named_days} of {packs * days} "
        f"{dict(kinds) if kinds else ''}; cut-off events: {cutoffs}  ({took:.0f} s)"
    )


def measurement_errors(packs: int, days: int, cycle_seconds: int, figures: Figures) -> None:
    """Healthy packs with the step and impedance limits off: how precise one step, one
    impedance measurement is, against its size (what STEP_MIN_MV and IMPEDANCE_MIN_A rest on)."""
    saved = sag.STEP_MIN_MV, sag.STEP_MIN_A
    sag.STEP_MIN_MV, sag.STEP_MIN_A = 0.5, 0.5  # type: ignore[misc]
    try:
        for seed in range(packs):
            run_pack(random_pack(900_000 + seed, None, cycle_seconds), days, figures, errors=True)
    finally:
        sag.STEP_MIN_MV, sag.STEP_MIN_A = saved  # type: ignore[misc]


def print_figures(figures: Figures) -> None:
    print("== the figures behind the thresholds")
    for firmware in sorted(figures.cutoffs):
        tally = figures.cutoffs[firmware]
        if not tally:
            continue
        print(f"cut-offs, firmware {firmware}: " + "; ".join(f"{what}: {n}" for what, n in sorted(tally.items())))
        short = sorted(figures.cutoff_gap_mv[firmware])
        margin = CUTOFF_MARGIN if firmware == "1.26" else CUTOFF_MARGIN_UNFLAGGED
        if short:
            p99 = short[min(len(short) - 1, int(0.99 * len(short)))]
            print(
                f"  the explaining cell's last reading short of the end voltage: median {statistics.median(short):.0f} mV, "
                f"99th percentile {p99:.0f} mV, most {short[-1]:.0f} mV (margin accepted: {margin * 1000:.0f} mV)"
            )
    print(
        "one sag step's ratio error (median over cells, against the true resistance ratio), by the median cell's "
        "delta V (healthy packs, the step limits off):"
    )
    for _, _, label in STEP_BINS:
        errors = figures.step_errors.get(label, [])
        if errors:
            print(f"  {label:>9s}: {len(errors):6d} steps, median error {statistics.median(errors):.3f}")
    print("one BMS impedance measurement's ratio error, by the current it was measured at (healthy packs):")
    for _, _, label in CURRENT_BINS:
        errors = figures.impedance_errors.get(label, [])
        if errors:
            print(f"  {label:>9s}: {len(errors):6d} measurements, median error {statistics.median(errors):.3f}")


def engine_cost() -> None:
    """What the engine costs the daemon: decoded frames fed directly, best of three."""
    for slots in (16, 24):
        bms = SimulatedBms(slots, cycle=600, seed=1, fault="low-capacity:3", spacer=False)
        frames = [(t, decode_frame(raw)) for t in range(6000) for raw in bms.frames_at(t)]
        best = float("inf")
        for _ in range(3):
            engine = HealthEngine()
            started = time.perf_counter()
            for t, frame in frames:
                engine.feed(frame, float(t), WALL0 + t)
            best = min(best, time.perf_counter() - started)
        print(f"engine cost, {slots} cells: {best / len(frames) * 1e6:.1f} µs per frame ({len(frames)} frames)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--packs", type=int, default=100, help="packs per planted fault (default 100)")
    parser.add_argument("--cycles", type=int, default=5, help="daily cycles per faulty pack (default 5)")
    parser.add_argument("--healthy", type=int, default=8, help="healthy packs (default 8)")
    parser.add_argument("--days", type=int, default=365, help="daily cycles per healthy pack (default 365)")
    parser.add_argument("--cycle-seconds", type=int, default=600, help="simulated seconds a day (default 600)")
    parser.add_argument("--quick", action="store_true", help="a smoke test: 4 packs per fault, 2 healthy x 10 days")
    args = parser.parse_args()
    if args.quick:
        args.packs, args.healthy, args.days = 4, 2, 10
    started = time.perf_counter()
    figures = Figures()
    study_faults(args.packs, args.cycles, args.cycle_seconds, figures)
    study_healthy(args.healthy, args.days, args.cycle_seconds, figures)
    measurement_errors(2 if args.quick else 16, 5 if args.quick else 30, args.cycle_seconds, figures)
    print_figures(figures)
    engine_cost()
    print(f"== {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
