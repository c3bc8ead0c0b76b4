"""The simulated BMS's own work: what it reads, when it cuts the current off, what it reports.

It does what the real one does at its end voltages: when a cell reaches the charge
(discharge) end voltage, on its own reading each second, it stops the current and raises
its protection flag until the current turns (only firmware V1.26 sends the flags; that is
the encoder's business). It stops charging, too, when its first sensor reads above
:data:`HOT_CUTOFF_C`. It counts the charge (its state of charge is its coulomb counter, not
the cells'), reads the cells at 1 mV with a little noise (unwired slots carry the 0-30 mV
junk real units send) and, at every reversal of the current, measures each cell's
impedance (delta V / delta I at 1 mV, sent at 0.1 mOhm).
"""

from __future__ import annotations

import random
from typing import Final

from .load import Phase
from .pack import Pack

CHARGE_END_MV: Final = 3650
DISCHARGE_END_MV: Final = 2800
HOT_CUTOFF_C: Final = 55.0  # the simulated BMS stops charging above this temperature

MODE_CHARGE: Final = 1
MODE_DISCHARGE: Final = 0
MODE_STORAGE: Final = 2


class Protection:
    """The BMS watching ``pack`` through ``slots`` inputs; its counter starts at
    ``start_soc`` of ``capacity_ah``. ``rng`` is the simulation's random source."""

    def __init__(self, pack: Pack, rng: random.Random, *, slots: int, capacity_ah: float, start_soc: float) -> None:
        self._pack = pack
        self._rng = rng
        self._cells = len(pack.cell_capacity)
        self._junk = [rng.randint(0, 30) for _ in range(slots)]
        self.capacity_ah = capacity_ah
        self.pack_charge = start_soc * capacity_ah  # what the BMS's coulomb counter says
        self.charge_protection = False
        self.discharge_protection = False
        self.cutoffs: list[tuple[int, str, int | None]] = []  # (second, direction, cell or None)
        self._last_direction: int | None = None
        self._impedance_due = False

    @property
    def current(self) -> float:
        """Signed, A, as the BMS reads it this second."""
        return self._pack.current

    @property
    def mode(self) -> int:
        current = self.current
        return MODE_CHARGE if current > 0 else MODE_DISCHARGE if current < 0 else MODE_STORAGE

    @property
    def soc(self) -> float:
        """The BMS's state of charge (%), from its coulomb counter."""
        return max(0.0, min(100.0, 100 * self.pack_charge / self.capacity_ah))

    def temperatures_deci(self, second: int) -> tuple[int, int]:
        """The two sensors' readings (tenths of degC) at simulated ``second``."""
        return self._pack.temperatures_deci(second, self.current)

    def count(self, ah: float) -> None:
        self.pack_charge += ah

    def release(self, began: tuple[Phase, ...]) -> None:
        """The current has turned: a charge clears the discharge flag, a discharge the charge flag."""
        for phase in began:
            if phase == Phase.CHARGE:
                self.discharge_protection = False
            elif phase == Phase.DISCHARGE:
                self.charge_protection = False

    def too_hot(self, second: int, amps: float) -> bool:
        """Whether the first sensor is at the cut-off temperature with ``amps`` flowing."""
        return bool(self._pack.hot) and self._pack.temperatures_deci(second, amps)[0] >= HOT_CUTOFF_C * 10

    def end_voltage(self) -> tuple[str, int] | None:
        """The direction to stop and the cell (1-based) that reached its end voltage, on the
        BMS's own reading this second; None while every cell is inside."""
        amps = self.current
        if not amps:
            return None
        mv = self._pack.sensed_mv()
        if amps > 0:
            high = max(mv)
            if high >= CHARGE_END_MV:
                return "charge", mv.index(high) + 1
        else:
            low = min(mv)
            if low <= DISCHARGE_END_MV:
                return "discharge", mv.index(low) + 1
        return None

    def cut(self, second: int, direction: str, cell: int | None) -> None:
        """Stop the current in ``direction`` and raise its flag; ``cell`` is the one that
        reached its end voltage (None: the temperature)."""
        if direction == "charge":
            self.charge_protection = True
        else:
            self.discharge_protection = True
        self.cutoffs.append((second, direction, cell))
        self._pack.carry(0.0)

    def watch_direction(self) -> None:
        """A reversal of the current makes an impedance measurement due."""
        if self.current:
            direction = 1 if self.current > 0 else 0
            if direction != self._last_direction:
                self._impedance_due = True
            self._last_direction = direction

    def take_impedance_due(self) -> bool:
        """Whether a measurement is due (once: asking clears it)."""
        due, self._impedance_due = self._impedance_due, False
        return due

    def cell_millivolts(self) -> list[int]:
        """One cells reading as the BMS sends it: every slot, mV."""
        gauss = self._rng.gauss
        wired = [max(0, min(4999, round(v + gauss(0, 0.6)))) for v in self._pack.sensed_mv()]
        junk = [self._junk[i] + self._rng.randint(0, 3) for i in range(self._cells, len(self._junk))]
        return wired + junk

    def impedances(self) -> list[int]:
        """Each cell's delta V / delta I between its readings either side of the reversal,
        at 1 mV, in 0.1 mOhm: at small currents mostly noise, as on a real unit. The BMS
        reads each side with about 2 mV of scatter: a 16-cell frame at 22.8 A of real
        0.3 mOhm cells reads 0.0 to 0.5 mOhm (tests/data/frames.json, A5)."""
        rng = self._rng
        delta_i = abs(self.current) or 1.0
        values = []
        for r in self._pack.cell_resistance:
            before = round(rng.gauss(0, 2.0))
            after = round(r * delta_i + rng.gauss(0, 2.0))
            values.append(max(0, round(10 * (after - before) / delta_i)))
        return values
