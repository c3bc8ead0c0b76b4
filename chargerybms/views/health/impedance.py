"""Impedance: the BMS's own per-cell measurement at a current reversal, over the median,
smoothed (:class:`~.ratio.RatioEstimator`), from measurements at ``IMPEDANCE_MIN_A`` or more."""

from __future__ import annotations

from typing import Final

from ...protocol import ImpedancesFrame
from .common import Verdict, median
from .ratio import RatioEstimator

#: BMS impedance measurements count from this current (A) up: below it a 0.3 mOhm cell
#: moves 3 mV or less, about what the BMS's readings either side of the reversal scatter
#: (a real frame at 22.8 A reads such cells 0.0-0.5 mOhm), and in the study one
#: measurement's ratio is then off by about half.
IMPEDANCE_MIN_A: Final = 10.0
IMPEDANCE_ALPHA: Final = 0.25
#: A measurement at this current (A) or more counts fully; below, by (I / this)^2.
IMPEDANCE_FULL_A: Final = 50.0
IMPEDANCE_NAME: Final = 1.6
IMPEDANCE_WARN: Final = 2.0
IMPEDANCE_MIN_COUNT: Final = 4
#: The BMS sends impedances in steps of 0.1 mOhm: below this median (mOhm) a ratio is too
#: coarse to warn on by itself (it still names a cell, and backs the sag up).
IMPEDANCE_WARN_MIN_MOHM: Final = 1.0


class ImpedanceEstimator:
    """The BMS's impedance measurements of ``cells`` cells, and the last one as it came."""

    def __init__(self, cells: int) -> None:
        self.cells = cells
        self.estimate = RatioEstimator(IMPEDANCE_ALPHA)
        self.last: list[float] | None = None  # mOhm per cell, the last measurement counted
        self.current: float | None = None  # A, its current
        self.wall: float | None = None  # its wall-clock time

    @property
    def count(self) -> int:
        return self.estimate.count

    def add(self, frame: ImpedancesFrame, wall: float) -> bool:
        """Take one measurement; False: not counted (too small a current, not the cells)."""
        values = list(frame.cell_impedances[: self.cells])  # the BMS sends its configured count
        if len(values) != self.cells or not self.cells:
            return False
        if abs(frame.current) < IMPEDANCE_MIN_A:
            return False
        med = median(values)
        if med <= 0:
            return False
        # The BMS's 1 mV either side is a larger share of a smaller current's delta V:
        # weigh each measurement by the inverse of its noise's variance, (I / FULL)^2.
        weight = min(1.0, (frame.current / IMPEDANCE_FULL_A) ** 2)
        self.estimate.add(values, med, weight)
        self.last = values
        self.current = frame.current
        self.wall = wall
        return True

    def suspect(self) -> Verdict | None:
        verdict = self.estimate.suspect(
            "impedance", min_count=IMPEDANCE_MIN_COUNT, name=IMPEDANCE_NAME, warn=IMPEDANCE_WARN, text=self._text
        )
        if verdict is not None and self.last is not None and median(self.last) < IMPEDANCE_WARN_MIN_MOHM:
            verdict.warning = False
        return verdict

    def _text(self, i: int) -> str:
        assert self.estimate.ratios is not None
        return (
            f"the BMS measures {self.estimate.ratios[i]:.1f}× the median impedance "
            f"({self.count} measurements at {IMPEDANCE_MIN_A:.0f} A or more)"
        )
