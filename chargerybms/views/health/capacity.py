"""Tops and bottoms: each cell's deviation from the pack median at the end of each charge
that reached the top and each discharge that reached the bottom. A cell that stands out as
the highest at the tops and the lowest at the bottoms runs out first both ways: the
capacity-limited cell."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Final

from .common import Verdict, mad, mean, median

#: Tops and bottoms kept for the verdict (each).
WINDOW: Final = 5
#: A cell stands out at a top (bottom) when it is the highest (lowest) and its deviation is
#: at least CAP_FLOOR_MV and CAP_SPREAD times the spread of the other cells (their median
#: absolute deviation).
CAP_FLOOR_MV: Final = 25.0
CAP_SPREAD: Final = 6.0
#: Named as capacity-limited when it stood out at >= 1 top and >= 1 bottom of the window,
#: warned when at >= 2 of each.
CAP_NAME: Final = 1
CAP_WARN: Final = 2

Snapshot = dict[str, Any]  # {"dev": mV per cell from the median, "rest": read at rest, "cut": ended by a cut-off}


class CapacityEvidence:
    """The last WINDOW tops and bottoms of ``cells`` cells, and per cell how often it was
    the highest at a top and the lowest at a bottom."""

    def __init__(self, cells: int) -> None:
        self.tops: deque[Snapshot] = deque(maxlen=WINDOW)
        self.bottoms: deque[Snapshot] = deque(maxlen=WINDOW)
        self.tops_total = 0
        self.bottoms_total = 0
        self.highest_at_top = [0] * cells
        self.lowest_at_bottom = [0] * cells
        self._top_open = False  # the last top may still be replaced (charged again, no discharge between)
        self._bottom_open = False

    def turned(self, direction: int) -> None:
        """The current turned to ``direction``: a discharge closes the top, a charge the bottom."""
        if direction == -1:
            self._top_open = False
        elif direction == 1:
            self._bottom_open = False

    def record(self, direction: int, volts: list[float], *, at_rest: bool, cut: bool) -> bool:
        """The end of a charge (1) or discharge (-1) that reached the top (bottom), read as
        ``volts``. Charged (discharged) again before the current turned, it replaces the
        last one: the same top. True: a new top (not a replaced one)."""
        m = median(volts)
        snapshot = {"dev": [round((v - m) * 1000, 1) for v in volts], "rest": at_rest, "cut": cut}
        if direction == 1:
            new = self._add(self.tops, self.highest_at_top, snapshot, replace=self._top_open, pick=max)
            self._top_open = True
            if new:
                self.tops_total += 1
            return new
        if self._add(self.bottoms, self.lowest_at_bottom, snapshot, replace=self._bottom_open, pick=min):
            self.bottoms_total += 1
        self._bottom_open = True
        return False

    @staticmethod
    def _add(
        snapshots: deque[Snapshot],
        counts: list[int],
        snapshot: Snapshot,
        *,
        replace: bool,
        pick: Callable[[list[float]], float],
    ) -> bool:
        dev: list[float] = snapshot["dev"]
        new = not (replace and snapshots)
        if new:
            snapshots.append(snapshot)
        else:
            old: list[float] = snapshots[-1]["dev"]
            i = old.index(pick(old))
            counts[i] = max(0, counts[i] - 1)
            snapshots[-1] = snapshot
        counts[dev.index(pick(dev))] += 1
        return new

    def top_spread(self) -> float | None:
        """Max - min deviation at the last top (V)."""
        top = self.tops[-1]["dev"] if self.tops else None
        return round((max(top) - min(top)) / 1000, 3) if top else None

    def suspect(self) -> Verdict | None:
        tops = _stood_out(self.tops, highest=True)
        bottoms = _stood_out(self.bottoms, highest=False)
        best: Verdict | None = None
        for i in set(tops) & set(bottoms):
            n_top, n_bottom = len(tops[i]), len(bottoms[i])
            if min(n_top, n_bottom) < CAP_NAME:
                continue
            score = min(n_top, n_bottom) / CAP_WARN
            evidence = [
                f"highest at {n_top} of the last {len(self.tops)} tops of charge "
                f"({mean(tops[i]):+.0f} mV from the median)",
                f"lowest at {n_bottom} of the last {len(self.bottoms)} bottoms "
                f"({mean(bottoms[i]):+.0f} mV from the median): it has less capacity than the rest",
            ]
            c = Verdict(i + 1, score >= 1, "capacity", evidence, score)
            if best is None or c.score > best.score:
                best = c
        return best


def _stood_out(snapshots: deque[Snapshot], highest: bool) -> dict[int, list[float]]:
    """Per cell (0-based), its deviations (mV) at the snapshots where it stood out."""
    out: dict[int, list[float]] = {}
    for snap in snapshots:
        dev: list[float] = snap["dev"]
        extreme = max(dev) if highest else min(dev)
        i = dev.index(extreme)
        others = dev[:i] + dev[i + 1 :]
        spread = mad(others) if others else 0.0
        if abs(extreme) >= max(CAP_FLOOR_MV, CAP_SPREAD * spread):
            out.setdefault(i, []).append(extreme)
    return out
