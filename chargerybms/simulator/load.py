"""The load on the simulated pack: a charger and loads cycling charge, rest, discharge, rest.

The current comes in steps (clouds, loads switching) and every cycle goes to a different
depth. Time runs faster than the clock where nothing happens: a cycle lasts about
``cycle`` seconds however big the battery (the charge moved each simulated second is scaled
to fit), and the simulated clock slows down in the knees (the pack limits the move to
``knee_mv_per_s`` of the leading cell), so the last cell frames before a cut-off rise as
fast as a real cell does (a few mV a second), not by tens of mV between two frames.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import IntEnum


class Phase(IntEnum):
    CHARGE = 0
    REST_TOP = 1
    DISCHARGE = 2
    REST_BOTTOM = 3


#: The pack starts at the bottom of a cycle, this full.
START_SOC = 0.12


@dataclass(frozen=True)
class Second:
    """What the load does during one simulated second."""

    amps: float  # signed: positive charges
    ah: float  # the charge that moves into each cell this second (before the knees slow it)
    late_in_charge: bool  # the phase is a charge that has run 30 % of its usual length
    began: tuple[Phase, ...]  # the phases that began this second, in order


class Load:
    """The charger and the loads of a pack of ``capacity_ah``, one ``cycle`` (seconds) a
    cycle, drawing from the simulation's random source ``rng``."""

    def __init__(self, rng: random.Random, capacity_ah: float, cycle: int) -> None:
        self._rng = rng
        self._capacity = capacity_ah
        self.phase = Phase.CHARGE
        self._phase_start = 0
        self._level = 0.0  # the load or charger's current, A (magnitude)
        self._next_step = 0
        self._target = (START_SOC, 0.94)  # the state of charge (0..1) a discharge and a charge end at
        self.cycles = 0  # whole cycles completed (a new charge began)
        # A healthy charge or discharge takes 35 % of the cycle at the average current; the
        # flat middle is crossed in 70 % of that, the knees get the rest.
        self._phase_seconds = (0.35 * cycle, 0.15 * cycle, 0.35 * cycle, 0.15 * cycle)
        self._mean_level = (0.175, 0.21)  # C-rate of the average charge and discharge current
        self.knee_mv_per_s = max(5.0, 800.0 / cycle)

    def tick(self, t: int, soc: float) -> Second:
        """Simulated second ``t`` with the pack at ``soc`` (0..1, the BMS's counter)."""
        began: list[Phase] = []
        if t == 0:
            self._enter(Phase.CHARGE, t, began)
            self.cycles = 0
        elif t >= self._next_step:
            self._new_level(t)
        phase = self.phase
        elapsed = t - self._phase_start
        low, high = self._target
        if phase == Phase.REST_TOP and elapsed >= self._phase_seconds[1]:
            self._enter(Phase.DISCHARGE, t, began)
        elif phase == Phase.REST_BOTTOM and elapsed >= self._phase_seconds[3]:
            self._enter(Phase.CHARGE, t, began)
        elif phase == Phase.CHARGE and soc >= high:
            self._enter(Phase.REST_TOP, t, began)
        elif phase == Phase.DISCHARGE and soc <= low:
            self._enter(Phase.REST_BOTTOM, t, began)
        phase = self.phase
        sign = 1 if phase == Phase.CHARGE else -1 if phase == Phase.DISCHARGE else 0
        amps = sign * self._level
        ah = 0.0
        if amps:
            # How far the charge moves this second: the span of this cycle (as it was when
            # the second began) in the time a healthy pack takes at the average current.
            c = self._capacity
            mean = self._mean_level[0 if amps > 0 else 1] * c
            span = (high - low) * c
            seconds = self._phase_seconds[0 if amps > 0 else 2] * 0.7
            ah = amps * span / (mean * seconds)
        late = phase == Phase.CHARGE and elapsed > 0.3 * self._phase_seconds[0]
        return Second(amps, ah, late, tuple(began))

    def stop(self, t: int, direction: str) -> None:
        """The BMS has cut the ``charge`` or ``discharge`` off at second ``t``: rest."""
        self._enter(Phase.REST_TOP if direction == "charge" else Phase.REST_BOTTOM, t, [])

    def _enter(self, phase: Phase, t: int, began: list[Phase]) -> None:
        self.phase = phase
        self._phase_start = t
        began.append(phase)
        if phase == Phase.CHARGE:
            self.cycles += 1
            rng = self._rng
            self._target = (rng.uniform(0.08, 0.20), rng.uniform(0.90, 0.97))
        self._new_level(t)

    def _new_level(self, t: int) -> None:
        rng = self._rng
        c = self._capacity
        if self.phase == Phase.CHARGE:
            self._level = round(c * rng.uniform(0.05, 0.30), 1)  # a charger, the sun behind clouds
            self._next_step = t + rng.randint(8, 30)
        elif self.phase == Phase.DISCHARGE:
            self._level = round(c * rng.uniform(0.02, 0.40), 1)  # loads switching
            self._next_step = t + rng.randint(6, 25)
        else:
            self._level = 0.0
            self._next_step = 1 << 62
