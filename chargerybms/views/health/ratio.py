"""One reusable estimator: each cell's measurement over the pack's median, smoothed.

The sag estimator (``sag.py``) and the BMS-impedance estimator (``impedance.py``) are both
this: per-cell ratios to the median cell, smoothed exponentially (the first measurements
averaged), each measurement weighted by how precisely it was read. A new per-cell
measurement (a new estimator) is one more of these.
"""

from __future__ import annotations

from collections.abc import Callable

from .common import Verdict


def _smooth(old: list[float], new: list[float], alpha: float) -> list[float]:
    return [s + alpha * (r - s) for s, r in zip(old, new, strict=True)]


class RatioEstimator:
    """Per-cell ratios to the median, smoothed with ``alpha``; optionally, alongside, the
    per-cell absolute values (``absolute``) smoothed the same way."""

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha
        self.ratios: list[float] | None = None
        self.absolute: list[float] | None = None
        self.count = 0  # measurements taken
        self.weight = 0.0  # their total weight

    def add(self, values: list[float], med: float, weight: float, absolute: list[float] | None = None) -> list[float]:
        """Take one measurement: ``values`` per cell with their median ``med`` (not 0),
        counting ``weight`` (1.0: full). A full measurement moves the estimate by ``alpha``;
        until the weights add up to 1/alpha, the estimate is their weighted mean. Returns
        this measurement's ratios."""
        ratios = [v / med for v in values]
        self.count += 1
        self.weight += weight
        alpha = max(self.alpha * weight, weight / self.weight)
        if self.ratios is None or (absolute is not None and self.absolute is None):
            self.ratios, self.absolute = ratios, absolute
        else:
            self.ratios = _smooth(self.ratios, ratios, alpha)
            if absolute is not None and self.absolute is not None:
                self.absolute = _smooth(self.absolute, absolute, alpha)
        return ratios

    def suspect(
        self, kind: str, *, min_count: int, name: float, warn: float, text: Callable[[int], str]
    ) -> Verdict | None:
        """The cell with the highest ratio, once there are ``min_count`` measurements and it
        reaches ``name`` (a warning from ``warn``); ``text`` words the evidence for a cell (0-based)."""
        ratios = self.ratios
        if ratios is None or self.count < min_count:
            return None
        top = max(ratios)
        if top < name:
            return None
        i = ratios.index(top)
        score = (top - 1) / (warn - 1)
        return Verdict(i + 1, top >= warn, kind, [text(i)], score)
