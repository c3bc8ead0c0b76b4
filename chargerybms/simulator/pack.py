"""The simulated pack's physics: its cells, their wiring and its temperature.

Every cell has its own capacity (Ah), internal resistance (mOhm) and charge, and its
voltage is its state of charge on a LiFePO4 open-circuit curve (flat middle, steep knees)
plus I*R. Healthy cells differ a little (seeded): capacity about 1 %, resistance about
8 %, state of charge about 0.4 % around where they were last balanced (mid-charge; the
simulated BMS does not balance). The temperatures swing around zero so negative values are
exercised.

A planted :class:`~.faults.Fault` is physical too: a cell with less capacity or more
resistance, a balance lead whose contact moves (the readings either side of it shift in
opposite directions), a hot spot warming up late in a charge.
"""

from __future__ import annotations

import bisect
import random
from typing import Final

from .faults import Fault

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


class Pack:
    """``cells`` cells of about ``capacity_ah`` and ``resistance_mohm``, starting at
    ``start_soc``, with a planted ``fault`` (or none). ``rng`` is the simulation's one
    random source: the draws are part of what a seed reproduces, so their order matters."""

    def __init__(
        self,
        rng: random.Random,
        cells: int,
        *,
        capacity_ah: float,
        resistance_mohm: float,
        start_soc: float,
        fault: Fault | None,
    ) -> None:
        self._rng = rng
        self.fault = fault
        # Healthy variation, then the fault.
        self.cell_capacity = [capacity_ah * (1 + max(-0.03, min(0.03, rng.gauss(0, 0.01)))) for _ in range(cells)]
        self.cell_resistance = [resistance_mohm * (1 + max(-0.2, min(0.2, rng.gauss(0, 0.08)))) for _ in range(cells)]
        balance = [0.5 + max(-0.01, min(0.01, rng.gauss(0, 0.004))) for _ in range(cells)]
        if fault is not None and fault.cell is not None:
            i = fault.cell - 1
            if fault.kind == "low-capacity":
                self.cell_capacity[i] *= fault.amount
            elif fault.kind == "high-resistance":
                self.cell_resistance[i] *= fault.amount
        # Each cell's charge is where it was when the pack was balanced (at 50 %) plus what
        # has flowed since.
        self.cell_charge = [
            c * b - (0.5 - start_soc) * capacity_ah for c, b in zip(self.cell_capacity, balance, strict=True)
        ]
        self.current = 0.0  # signed, A: positive charges
        self._lead_shift = 0.0  # mV, the loose lead's present error
        self.hot = 0.0  # degC, the hot spot's temperature (temperature fault)
        self._true_mv: list[float] = []
        self.carry(0.0)

    def carry(self, amps: float) -> None:
        """Let ``amps`` flow (0: the BMS or the load has stopped the current)."""
        self.current = amps
        self._true_mv = [
            ocv_mv(q / c) + amps * r
            for q, c, r in zip(self.cell_charge, self.cell_capacity, self.cell_resistance, strict=True)
        ]

    def flow(self, ah: float) -> None:
        """Move ``ah`` into every cell (out of it when negative)."""
        self.cell_charge = [q + ah for q in self.cell_charge]

    def slowed_in_knee(self, ah: float, mv_per_s: float) -> float:
        """Limit a second's charge movement so the leading cell's open-circuit voltage
        moves by at most ``mv_per_s``."""
        socs = [q / c for q, c in zip(self.cell_charge, self.cell_capacity, strict=True)]
        lead = max(socs) if ah > 0 else min(socs)
        i = socs.index(lead)
        before = ocv_mv(lead)
        after = ocv_mv(lead + ah / self.cell_capacity[i])
        moved = abs(after - before)
        if moved > mv_per_s:
            ah *= mv_per_s / moved
        return ah

    def sensed_mv(self) -> list[float]:
        """Each cell's voltage (mV) where its balance leads meet the BMS: the true voltage,
        and the loose lead's error on the two cells either side of it."""
        mv = list(self._true_mv)
        fault = self.fault
        if fault is not None and fault.kind == "balance-lead" and fault.cell is not None:
            i = fault.cell - 1
            mv[i] += self._lead_shift
            mv[i + 1] -= self._lead_shift
        return mv

    def move_lead(self) -> None:
        """A loose lead's contact moves now and then (a second's chance)."""
        fault = self.fault
        if fault is not None and fault.kind == "balance-lead" and self._rng.random() < 0.35:
            self._lead_shift = self._rng.uniform(-1, 1) * fault.amount

    def heat(self, late_in_charge: bool) -> None:
        """The hot spot of a temperature fault: warms 2 degC a second late in a charge (up
        to the fault's peak), cools 1 degC a second otherwise."""
        fault = self.fault
        if fault is None or fault.kind != "temperature":
            return
        if late_in_charge:
            self.hot = min(self.hot + 2.0, fault.amount)
        else:
            self.hot = max(0.0, self.hot - 1.0)

    def temperatures_deci(self, second: int, amps: float) -> tuple[int, int]:
        """The two sensors (tenths of degC) at simulated ``second`` with ``amps`` flowing: a
        slow swing from -8 to +12 degC, the pack warming a little under current; the first
        sensor sees the hot spot."""
        swing = ((second // 6) % 40) - 20
        t1 = 20 + swing * 5 + round(abs(amps) / 4)
        hot = round(self.hot * 10)
        return max(t1, hot) if hot else t1, t1 - 7
