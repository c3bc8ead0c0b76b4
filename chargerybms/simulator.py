"""A simulated Chargery BMS: real frames at the documented cadence, no hardware.

Used by ``--demo``, the tests and the benchmarks (the cell-health study among them). It
produces bytes, never decoded values, so everything downstream goes through the same
framer and decoders as a real port.

The pack is physical: every cell has its own capacity (Ah), internal resistance (mOhm) and
charge, and its voltage is its state of charge on a LiFePO4 open-circuit curve (flat
middle, steep knees) plus I*R and a little noise, read at the BMS's 1 mV; the current is
read at 0.1 A. Healthy cells differ a little (seeded): capacity about 1 %, resistance about
8 %, state of charge about 0.4 % around where they were last balanced (mid-charge; the
simulated BMS does not balance). The pack cycles charge, rest, discharge, rest, with
current steps (clouds, loads) and a different depth every cycle. The simulated BMS does
what the real one does at its end voltages: when a cell reaches the charge (discharge) end
voltage, on its own reading each second, it stops the current and, with firmware V1.26,
raises its protection flag until the current turns. At every reversal of the current it
measures each cell's impedance (delta V / delta I at 1 mV, sent at 0.1 mOhm).

Time runs faster than the clock where nothing happens: a cycle lasts about ``cycle``
seconds however big the battery, but the simulated clock slows down in the knees, so the
last cell frames before a cut-off rise as fast as a real cell does (a few mV a second), not
by tens of mV between two frames.

A fault can be planted (:class:`Fault`, or ``--demo-fault`` as text): a cell with less
capacity, a cell with more resistance, a loose balance lead (the two readings either side
of it move in opposite directions while their sum stays put), or a temperature cut-off
that no cell explains. The temperatures swing around zero so negative values are
exercised; unwired slots carry the 0-30 mV junk real units send.
"""

from __future__ import annotations

import bisect
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from .protocol import MODELS, SPACER, encode_cells, encode_impedances, encode_status

FIRMWARES: Final = ("1.22", "1.25", "1.26")
FAULT_KINDS: Final = ("low-capacity", "high-resistance", "balance-lead", "temperature")
#: What a planted fault does when no severity is given: a cell with 80 % of the capacity,
#: three times the resistance, a lead that shifts its two readings by up to 25 mV, a sensor
#: that reaches 60 degC while charging.
DEFAULT_SEVERITY: Final = {"low-capacity": 0.8, "high-resistance": 3.0, "balance-lead": 25.0, "temperature": 60.0}

CHARGE_END_MV: Final = 3650
DISCHARGE_END_MV: Final = 2800
HOT_CUTOFF_C: Final = 55.0  # the simulated BMS stops charging above this temperature

# (state of charge, open-circuit mV) for a LiFePO4 cell; beyond 0 and 1 the overcharged
# and overdischarged cell.
_OCV: Final = (
    (-0.06, 2000),
    (0.0, 2900),
    (0.03, 3060),
    (0.05, 3150),
    (0.10, 3220),
    (0.20, 3260),
    (0.40, 3290),
    (0.60, 3305),
    (0.80, 3330),
    (0.90, 3345),
    (0.95, 3380),
    (0.99, 3450),
    (1.00, 3500),
    (1.02, 3650),
    (1.06, 4200),
)
_OCV_SOC: Final = tuple(s for s, _ in _OCV)


def ocv_mv(soc: float) -> float:
    """Open-circuit voltage (mV) of a LiFePO4 cell at state of charge ``soc`` (0..1)."""
    i = bisect.bisect_left(_OCV_SOC, soc)
    if i <= 0:
        return _OCV[0][1]
    if i >= len(_OCV):
        return _OCV[-1][1]
    (s0, v0), (s1, v1) = _OCV[i - 1], _OCV[i]
    return v0 + (v1 - v0) * (soc - s0) / (s1 - s0)


@dataclass(frozen=True)
class Fault:
    """A fault planted in a simulated pack. ``cell`` is 1-based (for a balance lead: the
    lead between cells ``cell`` and ``cell + 1``); ``severity`` is the capacity fraction,
    the resistance factor, the lead's largest shift in mV or the hot sensor's peak degC."""

    kind: str
    cell: int | None = None
    severity: float | None = None

    @property
    def amount(self) -> float:
        return DEFAULT_SEVERITY[self.kind] if self.severity is None else self.severity

    def describe(self) -> str:
        if self.kind == "temperature":
            return "a temperature cut-off"
        if self.kind == "balance-lead":
            return f"a loose balance lead between cells {self.cell} and {(self.cell or 0) + 1}"
        return f"a {self.kind.replace('-', ' ')} cell {self.cell}"


def parse_fault(text: str, cells: int) -> Fault | None:
    """``low-capacity:7``, ``high-resistance:3``, ``balance-lead:5``, ``temperature`` (or
    empty: none) for a pack of ``cells`` wired cells. Raises ValueError saying what is wrong."""
    text = text.strip().lower()
    if not text:
        return None
    kind, _, number = text.partition(":")
    if kind not in FAULT_KINDS:
        raise ValueError(f"{text!r} is not a fault: use one of {', '.join(FAULT_KINDS)} (e.g. low-capacity:7)")
    if kind == "temperature":
        if number:
            raise ValueError(f"{text!r}: a temperature fault names no cell (just 'temperature')")
        return Fault(kind)
    highest = cells - 1 if kind == "balance-lead" else cells
    try:
        cell = int(number)
    except ValueError:
        raise ValueError(f"{text!r}: name the cell, e.g. {kind}:3 (1-{highest})") from None
    if not 1 <= cell <= highest:
        what = "the lead between cells N and N+1" if kind == "balance-lead" else "the cell"
        raise ValueError(f"{text!r}: {what} must be 1-{highest} for {cells} cells")
    return Fault(kind, cell)


_CHARGE, _REST_TOP, _DISCHARGE, _REST_BOTTOM = range(4)
_MODE_CHARGE, _MODE_DISCHARGE, _MODE_STORAGE = 1, 0, 2


class SimulatedBms:
    """Frames of one simulated pack, second by second.

    ``slots`` is the model (8/16/24 cell slots sent), ``cells`` how many are wired,
    ``firmware`` the frame layout generation, ``capacity_ah`` the nominal capacity of a
    cell, ``cycle`` the length in seconds of one charge/rest/discharge/rest cycle of a
    healthy pack (a little longer where the knees slow the clock), ``seed`` the pack's cell
    variation, load pattern and noise, ``fault`` a planted fault (or its text).
    """

    def __init__(
        self,
        slots: int = 16,
        *,
        cells: int | None = None,
        firmware: str = "1.26",
        capacity_ah: float = 280.0,
        cycle: int = 240,
        seed: int = 1,
        spacer: bool = True,
        fault: Fault | str | None = None,
        resistance_mohm: float = 0.3,
    ) -> None:
        if slots not in MODELS:
            raise ValueError(f"slots must be one of {MODELS}, not {slots}")
        if firmware not in FIRMWARES:
            raise ValueError(f"firmware must be one of {FIRMWARES}, not {firmware!r}")
        self.slots = slots
        self.cells = slots if cells is None else max(1, min(cells, slots))
        self.firmware = firmware
        self.capacity_ah = capacity_ah
        self.cycle = max(8, cycle)
        self.spacer = spacer
        self.fault = parse_fault(fault, self.cells) if isinstance(fault, str) else fault
        rng = self._rng = random.Random(seed)
        n = self.cells
        # Healthy variation, then the fault.
        self.cell_capacity = [capacity_ah * (1 + max(-0.03, min(0.03, rng.gauss(0, 0.01)))) for _ in range(n)]
        self.cell_resistance = [resistance_mohm * (1 + max(-0.2, min(0.2, rng.gauss(0, 0.08)))) for _ in range(n)]
        balance = [0.5 + max(-0.01, min(0.01, rng.gauss(0, 0.004))) for _ in range(n)]
        self._junk = [rng.randint(0, 30) for _ in range(slots)]
        fault_ = self.fault
        if fault_ is not None and fault_.cell is not None:
            i = fault_.cell - 1
            if fault_.kind == "low-capacity":
                self.cell_capacity[i] *= fault_.amount
            elif fault_.kind == "high-resistance":
                self.cell_resistance[i] *= fault_.amount
        # The pack starts at the bottom of a cycle; each cell's charge is where it was when
        # the pack was balanced (at 50 %) plus what has flowed since.
        self._soc_target = (0.12, 0.94)
        start = self._soc_target[0]
        self.cell_charge = [
            c * b - (0.5 - start) * capacity_ah for c, b in zip(self.cell_capacity, balance, strict=True)
        ]
        self.pack_charge = start * capacity_ah  # what the BMS's coulomb counter says
        self._phase = _CHARGE
        self._phase_start = 0
        self._level = 0.0  # the load or charger's current, A (magnitude)
        self._next_step = 0
        self.current = 0.0  # signed, A, as the BMS reads it this second
        self.charge_protection = False
        self.discharge_protection = False
        self.cycles = 0  # whole cycles completed (a new charge began)
        self.cutoffs: list[tuple[int, str, int | None]] = []  # (second, direction, cell or None)
        self._lead_shift = 0.0  # mV, the loose lead's present error
        self._hot = 0.0  # degC, the hot spot's temperature (temperature fault)
        self._last_direction: int | None = None
        self._impedance_due = False
        self._sim_t = -1  # the last second simulated
        self._true_mv: list[float] = [0.0] * n
        # Time: a healthy charge or discharge takes 35 % of the cycle at the average current;
        # the flat middle is crossed in 70 % of that, the knees get the rest.
        self._phase_seconds = (0.35 * self.cycle, 0.15 * self.cycle, 0.35 * self.cycle, 0.15 * self.cycle)
        self._mean_level = (0.175, 0.21)  # C-rate of the average charge and discharge current
        self._knee_mv_per_s = max(5.0, 800.0 / self.cycle)
        self.t = 0
        self._update_voltages()

    # --- the pack's physics, one second at a time -----------------------------------

    def _new_level(self) -> None:
        rng = self._rng
        c = self.capacity_ah
        if self._phase == _CHARGE:
            self._level = round(c * rng.uniform(0.05, 0.30), 1)  # a charger, the sun behind clouds
            self._next_step = self._sim_t + rng.randint(8, 30)
        elif self._phase == _DISCHARGE:
            self._level = round(c * rng.uniform(0.02, 0.40), 1)  # loads switching
            self._next_step = self._sim_t + rng.randint(6, 25)
        else:
            self._level = 0.0
            self._next_step = 1 << 62

    def _enter(self, phase: int) -> None:
        self._phase = phase
        self._phase_start = self._sim_t
        if phase == _CHARGE:
            self.cycles += 1
            self.discharge_protection = False
            rng = self._rng
            self._soc_target = (rng.uniform(0.08, 0.20), rng.uniform(0.90, 0.97))
        elif phase == _DISCHARGE:
            self.charge_protection = False
        self._new_level()

    def _step_physics(self) -> None:
        self._sim_t += 1
        t = self._sim_t
        if t == 0:
            self._enter(_CHARGE)
            self.cycles = 0
        elif t >= self._next_step:
            self._new_level()
        phase = self._phase
        elapsed = t - self._phase_start
        low, high = self._soc_target
        soc = self.pack_charge / self.capacity_ah
        if phase == _REST_TOP and elapsed >= self._phase_seconds[1]:
            self._enter(_DISCHARGE)
        elif phase == _REST_BOTTOM and elapsed >= self._phase_seconds[3]:
            self._enter(_CHARGE)
        elif phase == _CHARGE and soc >= high:
            self._enter(_REST_TOP)
        elif phase == _DISCHARGE and soc <= low:
            self._enter(_REST_BOTTOM)
        phase = self._phase
        sign = 1 if phase == _CHARGE else -1 if phase == _DISCHARGE else 0
        amps = sign * self._level
        self._temperature_fault(phase, elapsed)
        if phase == _CHARGE and self._hot and self._temperature_reading(amps)[0] >= HOT_CUTOFF_C * 10:
            self._cut("charge", None)
            amps = 0.0
        if amps:
            # How far the charge moves this second: fast in the flat middle, slowly where the
            # leading cell's voltage moves fast (the knees).
            c = self.capacity_ah
            mean = self._mean_level[0 if amps > 0 else 1] * c
            span = (high - low) * c
            seconds = self._phase_seconds[0 if amps > 0 else 2] * 0.7
            dq = amps * span / (mean * seconds)
            dq = self._slow_in_knee(dq)
            self.pack_charge += dq
            self.cell_charge = [q + dq for q in self.cell_charge]
        self.current = amps
        self._update_voltages()
        self._protect()
        if self.current:
            direction = 1 if self.current > 0 else 0
            if direction != self._last_direction:
                self._impedance_due = True
            self._last_direction = direction

    def _slow_in_knee(self, dq: float) -> float:
        """Limit a second's charge movement so the leading cell's open-circuit voltage
        moves by at most the knee rate."""
        socs = [q / c for q, c in zip(self.cell_charge, self.cell_capacity, strict=True)]
        lead = max(socs) if dq > 0 else min(socs)
        i = socs.index(lead)
        before = ocv_mv(lead)
        after = ocv_mv(lead + dq / self.cell_capacity[i])
        moved = abs(after - before)
        if moved > self._knee_mv_per_s:
            dq *= self._knee_mv_per_s / moved
        return dq

    def _update_voltages(self) -> None:
        amps = self.current
        self._true_mv = [
            ocv_mv(q / c) + amps * r
            for q, c, r in zip(self.cell_charge, self.cell_capacity, self.cell_resistance, strict=True)
        ]

    def _readings(self, noise: bool) -> list[float]:
        """What the BMS reads (mV): the true voltages, the loose lead's error, noise."""
        mv = list(self._true_mv)
        fault = self.fault
        if fault is not None and fault.kind == "balance-lead" and fault.cell is not None:
            i = fault.cell - 1
            mv[i] += self._lead_shift
            mv[i + 1] -= self._lead_shift
        if noise:
            gauss = self._rng.gauss
            mv = [v + gauss(0, 0.6) for v in mv]
        return mv

    def _protect(self) -> None:
        """The BMS's own reading, every second: stop at an end voltage."""
        amps = self.current
        if not amps:
            return
        mv = self._readings(noise=False)
        if amps > 0:
            high = max(mv)
            if high >= CHARGE_END_MV:
                self._cut("charge", mv.index(high) + 1)
        else:
            low = min(mv)
            if low <= DISCHARGE_END_MV:
                self._cut("discharge", mv.index(low) + 1)

    def _cut(self, direction: str, cell: int | None) -> None:
        if direction == "charge":
            self.charge_protection = True
            self._enter(_REST_TOP)
        else:
            self.discharge_protection = True
            self._enter(_REST_BOTTOM)
        self.cutoffs.append((self._sim_t, direction, cell))
        self.current = 0.0
        self._update_voltages()

    def _temperature_fault(self, phase: int, elapsed: int) -> None:
        fault = self.fault
        if fault is None or fault.kind != "temperature":
            return
        if phase == _CHARGE and elapsed > 0.3 * self._phase_seconds[0]:
            self._hot = min(self._hot + 2.0, fault.amount)  # a hot spot warming up, 2 degC a second
        else:
            self._hot = max(0.0, self._hot - 1.0)

    def advance_to(self, t: int) -> None:
        """Run the physics up to second ``t`` (nothing when it is there already)."""
        while self._sim_t < t:
            self._step_physics()
            if self.fault is not None and self.fault.kind == "balance-lead" and self._rng.random() < 0.35:
                self._lead_shift = self._rng.uniform(-1, 1) * self.fault.amount  # the contact moves

    # --- what the BMS sends ---------------------------------------------------------

    def _temperature_reading(self, amps: float) -> tuple[int, int]:
        # A slow swing from -8 to +12 degC, the pack warming a little under current (tenths).
        swing = ((self._sim_t // 6) % 40) - 20
        t1 = 20 + swing * 5 + round(abs(amps) / 4)
        hot = round(self._hot * 10)
        return max(t1, hot) if hot else t1, t1 - 7

    @property
    def mode(self) -> int:
        return _MODE_CHARGE if self.current > 0 else _MODE_DISCHARGE if self.current < 0 else _MODE_STORAGE

    @property
    def soc(self) -> float:
        """The BMS's state of charge (%), from its coulomb counter."""
        return max(0.0, min(100.0, 100 * self.pack_charge / self.capacity_ah))

    def frames_at(self, t: int) -> list[bytes]:
        """Every frame the BMS sends during second ``t``: status every second, cells every
        two, impedances when the current changes direction. Seconds are simulated in order;
        asking for an earlier one repeats the present."""
        self.advance_to(t)
        out = [self._status()]
        if t % 2 == 0:
            out.append(self._cells())
        if self._impedance_due:
            self._impedance_due = False
            if self.firmware != "1.22":
                out.append(self._impedances())
        return out

    def _status(self) -> bytes:
        t1, t2 = self._temperature_reading(self.current)
        v126 = self.firmware == "1.26"
        return encode_status(
            charge_end_mv=CHARGE_END_MV,
            mode=self.mode,
            deci_amps=round(abs(self.current) * 10),
            t1_deci=t1,
            t2_deci=t2,
            soc=round(self.soc),
            discharge_end_mv=DISCHARGE_END_MV if v126 else None,
            charge_protection=v126 and self.charge_protection,
            discharge_protection=v126 and self.discharge_protection,
        )

    def cell_millivolts(self) -> list[int]:
        """One cells reading as the BMS sends it: every slot, mV."""
        wired = [max(0, min(4999, round(v))) for v in self._readings(noise=True)]
        junk = [self._junk[i] + self._rng.randint(0, 3) for i in range(self.cells, self.slots)]
        return wired + junk

    def _cells(self) -> bytes:
        mv = self.cell_millivolts()
        soc = self.soc
        if self.firmware == "1.22":
            return encode_cells(mv, soc=round(soc))
        wired_v = sum(mv[: self.cells]) / 1000
        ah = self.capacity_ah * soc / 100
        return encode_cells(mv, energy_mwh=round(ah * wired_v * 1000), capacity_mah=round(ah * 1000))

    def _impedances(self) -> bytes:
        """Each cell's delta V / delta I between its readings either side of the reversal,
        at 1 mV, sent at 0.1 mOhm: at small currents mostly noise, as on a real unit. The
        BMS reads each side with about 2 mV of scatter: a 16-cell frame at 22.8 A of real
        0.3 mOhm cells reads 0.0 to 0.5 mOhm (tests/data/frames.json, A5)."""
        rng = self._rng
        amps = self.current
        delta_i = abs(amps) or 1.0
        values = []
        for r in self.cell_resistance:
            before = round(rng.gauss(0, 2.0))
            after = round(r * delta_i + rng.gauss(0, 2.0))
            values.append(max(0, round(10 * (after - before) / delta_i)))
        return encode_impedances(self.mode, round(abs(amps) * 10), values)

    def seconds(self, count: int) -> Iterator[bytes]:
        """The byte stream of ``count`` consecutive seconds, one chunk per frame."""
        for _ in range(count):
            for frame in self.frames_at(self.t):
                yield frame
                if self.spacer:
                    yield SPACER
            self.t += 1


class SimulatedPort:
    """Looks like an open serial port to the reader: ``read()`` blocks until the next
    frame is due, then returns its bytes. ``speed`` > 1 runs the clock faster."""

    def __init__(self, bms: SimulatedBms, *, speed: float = 1.0) -> None:
        self._bms = bms
        self._speed = speed
        self._pending: list[bytes] = []
        self._start = time.monotonic()
        self._closed = False

    @property
    def bms(self) -> SimulatedBms:
        return self._bms

    def read(self, size: int = 4096, timeout: float = 1.0) -> bytes:
        if self._closed:
            return b""
        if not self._pending:
            due = self._start + self._bms.t / self._speed
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(min(delay, timeout))
                if due > time.monotonic():
                    return b""  # like a serial timeout: lets the caller check for stop
            self._pending = list(self._bms.seconds(1))
        return self._pending.pop(0)

    def close(self) -> None:
        self._closed = True
