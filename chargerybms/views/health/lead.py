"""Balance lead: two neighbouring readings that jump in opposite directions with a steady
sum are not the cells but the sense lead between them."""

from __future__ import annotations

from typing import Final

from .common import Reading, Verdict, median
from .sag import STEP_GAP

#: Each reading's move between two cells frames (at most STEP_GAP s apart), less the pack's
#: median move; two neighbours moving at least LEAD_JUMP_MV in opposite directions with
#: their sum within LEAD_SUM_MV (or a fifth of the smaller jump) is one event.
LEAD_JUMP_MV: Final = 6.0
LEAD_SUM_MV: Final = 2.0
LEAD_NAME: Final = 3
LEAD_WARN: Final = 6
#: Lead events fade by this factor at every top, so a repaired lead is forgotten.
LEAD_FADE: Final = 0.7


class BalanceLeadDetector:
    """Counts, per lead between two neighbouring cells of ``cells``, the jumps it explains."""

    def __init__(self, cells: int) -> None:
        self.events = [0.0] * max(0, cells - 1)  # per lead k: between cells k+1 and k+2 (1-based)
        self._previous: Reading | None = None

    def observe(self, reading: Reading) -> bool:
        """Compare a cells reading with the one before; True: a jump was counted."""
        prev, self._previous = self._previous, reading
        if prev is None or reading.at - prev.at > STEP_GAP or len(prev.volts) != len(reading.volts):
            return False
        moves = [(b - a) * 1000 for a, b in zip(prev.volts, reading.volts, strict=True)]
        pack = median(moves)
        moves = [m - pack for m in moves]
        found = False
        for k in range(len(moves) - 1):
            a, b = moves[k], moves[k + 1]
            if a * b >= 0 or abs(a) < LEAD_JUMP_MV or abs(b) < LEAD_JUMP_MV:
                continue
            if abs(a + b) <= max(LEAD_SUM_MV, min(abs(a), abs(b)) / 5):
                self.events[k] += 1
                found = True
        return found

    def fade(self) -> None:
        """A new top of charge: older events count for less."""
        self.events = [e * LEAD_FADE for e in self.events]

    def suspect(self) -> Verdict | None:
        """One lead with most of the pack's jumps; never a cell (the cells may be fine)."""
        if not self.events:
            return None
        top = max(self.events)
        if top < LEAD_NAME:
            return None
        k = self.events.index(top)
        rest = sum(self.events) - top
        if rest > top / 3:
            return None  # not one lead: noise all over the pack is no wiring fault
        evidence = [
            f"cells {k + 1} and {k + 2} jumped in opposite directions with a steady sum ({top:.0f} times "
            f"recently): the balance lead between them is loose, the cells may be fine"
        ]
        return Verdict(None, top >= LEAD_WARN, "balance_lead", evidence, top / LEAD_WARN, lead=k + 1)
