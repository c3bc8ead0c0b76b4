"""Sag: each cell's voltage step at a current step, over the median cell's.

At each current step (at least ``STEP_MIN_A``, with the median cell moving at least
``STEP_MIN_MV``), each cell's delta V / delta I between the cells frames either side, over
the median cell's: smoothed (:class:`~.ratio.RatioEstimator`), it is the cell's resistance
relative to the pack; its delta V / delta I alone, smoothed too, is the cell's own
resistance (mOhm), which carries a reading taken under one current to another.
"""

from __future__ import annotations

from collections import deque
from typing import Final

from .common import Reading, Verdict, median
from .ratio import RatioEstimator

#: A current step: the current changes by at least this (A) between two cells frames each
#: taken under a steady current ...
STEP_MIN_A: Final = 5.0
#: ... and the median cell moves by at least this (mV): with the BMS's 1 mV steps each
#: cell's share is then read to about +-10 %, and smoothing does the rest.
STEP_MIN_MV: Final = 5.0
#: Steps whose median cell moves by less than this (mV) count for less in the smoothing.
STEP_FULL_MV: Final = 10.0
#: The step is judged from two readings either side; a cell whose drift over one interval
#: differs from the pack's by more than this (mV) is in a knee, where the drift is no
#: straight line to take out: no step then. Four times the noise of a reading's change.
STEP_DRIFT_MV: Final = 4.0
#: A steady current moves by at most this (A) between two status frames.
STEADY_A: Final = 0.5
#: Seconds between the frames of one step, at most.
STEP_GAP: Final = 5.0
#: Smoothing of the sag ratios (exponential; the first steps are averaged).
SAG_ALPHA: Final = 0.1
#: Sag ratio (cell / median) to name a cell, and to warn, after SAG_MIN_STEPS steps.
SAG_NAME: Final = 1.4
SAG_WARN: Final = 1.5
SAG_MIN_STEPS: Final = 10


class SagEstimator:
    """Finds the current steps in the readings taken under a steady current and measures
    each cell at them."""

    def __init__(self) -> None:
        self.estimate = RatioEstimator(SAG_ALPHA)  # ratios to the median; absolute: mOhm
        self.last_step: tuple[float, float, list[float]] | None = None  # (delta I, median delta mV, ratios)
        self._samples: deque[Reading] = deque(maxlen=4)  # readings confirmed under a steady current

    @property
    def steps(self) -> int:
        return self.estimate.count

    def resistances(self) -> list[float] | None:
        """Each cell's own resistance (mOhm), once enough steps make it trustworthy."""
        if self.estimate.count < SAG_MIN_STEPS:
            return None
        return self.estimate.absolute

    def sample(self, reading: Reading) -> bool:
        """A reading under a steady current. A step is judged one reading after it: two
        readings either side give each cell's drift (the charge moving it, fast in a knee),
        and the jump at the step is what the drift does not explain. True: a step was measured."""
        samples = self._samples
        if samples and reading.at - samples[-1].at > STEP_GAP:
            samples.clear()
        samples.append(reading)
        if len(samples) < 4:
            return False
        p, b, a, a2 = samples
        assert p.current is not None and b.current is not None and a.current is not None and a2.current is not None
        delta_i = a.current - b.current
        if abs(delta_i) < STEP_MIN_A or abs(b.current - p.current) > STEADY_A or abs(a2.current - a.current) > STEADY_A:
            return False
        gap_before, gap, gap_after = b.at - p.at, a.at - b.at, a2.at - a.at
        if min(gap_before, gap, gap_after) <= 0:
            return False
        # A cell whose own drift differs from the pack's by more than STEP_DRIFT_MV per
        # interval sits in a knee, where the drift is no straight line: no step then.
        drift_b = [(x - w) * 1000 for w, x in zip(p.volts, b.volts, strict=True)]
        drift_a = [(z - y) * 1000 for y, z in zip(a.volts, a2.volts, strict=True)]
        for drift in (drift_b, drift_a):
            m = median(drift)
            if max(abs(d - m) for d in drift) > STEP_DRIFT_MV:
                return False
        half = gap / 2
        dv = [
            ((y - x) - ((x - w) / gap_before + (z - y) / gap_after) * half) * 1000
            for w, x, y, z in zip(p.volts, b.volts, a.volts, a2.volts, strict=True)
        ]
        med = median(dv)
        if abs(med) < STEP_MIN_MV or (med > 0) != (delta_i > 0):
            return False
        mohm = [d / delta_i for d in dv]
        # Small steps are read less precisely (1 mV in 5 is 20 %): they count for less.
        weight = min(1.0, abs(med) / STEP_FULL_MV) ** 2
        ratios = self.estimate.add(dv, med, weight, absolute=mohm)
        self.last_step = (delta_i, med, ratios)
        return True

    def suspect(self) -> Verdict | None:
        return self.estimate.suspect(
            "resistance", min_count=SAG_MIN_STEPS, name=SAG_NAME, warn=SAG_WARN, text=self._text
        )

    def _text(self, i: int) -> str:
        assert self.estimate.ratios is not None
        return (
            f"sags {self.estimate.ratios[i]:.1f}× as much as the median cell at current steps ({self.steps} steps): "
            "a high resistance (the cell or its connection)"
        )
