"""Charge and discharge sessions: which way the current flows, the last reading taken under
it, and when a session that reached the top (bottom) ended, with the reading that shows its
end: at rest right after the current stopped when one comes in time, else the last one
under current."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from .common import Reading

#: Current (A) above which a charge or discharge is flowing.
FLOW_A: Final = 1.0
#: The reading that shows a session's end (or explains a cut-off) is at most this old (s).
READING_AGE: Final = 10.0
#: A charge counts as a top when the BMS's SoC ended at or above this (%), a discharge as a
#: bottom at or below BOTTOM_SOC; without a SoC every one counts. A cut-off always counts.
TOP_SOC: Final = 85
BOTTOM_SOC: Final = 25
#: After the current stops, a cells frame within this many seconds is the rest reading.
REST_WINDOW: Final = 15.0


def flow(current: float) -> int:
    """1: charging, -1: discharging, 0: neither."""
    return 1 if current >= FLOW_A else -1 if current <= -FLOW_A else 0


@dataclass(slots=True)
class Ended:
    """A charge (1) or discharge (-1) that reached the top (bottom)."""

    direction: int
    under: Reading  # the last reading under current
    rest: Reading | None  # the reading at rest right after, if one came in time
    cut: bool  # ended by a cut-off


class Sessions:
    def __init__(self) -> None:
        self.direction = 0
        self.last_under: dict[int, Reading | None] = {1: None, -1: None}
        self._cut = {1: False, -1: False}
        self._pending: tuple[int, float, Reading] | None = None  # (direction, when, reading under current)

    def forget(self) -> None:
        """The readings no longer fit (another cell count): forget them, keep the direction."""
        self.last_under = {1: None, -1: None}
        self._pending = None

    def recent_under(self, direction: int, now: float) -> Reading | None:
        """The last reading under a current in ``direction``, if at most READING_AGE old."""
        reading = self.last_under[direction]
        if reading is None or now - reading.at > READING_AGE:
            return None
        return reading

    def cut(self, direction: int) -> None:
        """The BMS cut the current session in ``direction`` off."""
        self._cut[direction] = True

    def unknown(self) -> None:
        """A status frame without a direction: nothing flows as far as we know."""
        self.direction = 0

    def on_cells(self, reading: Reading) -> Ended | None:
        if self.direction:
            self.last_under[self.direction] = reading
        pending = self._pending
        if pending is not None and self.direction == 0 and reading.at - pending[1] <= REST_WINDOW:
            return self._end(pending, reading)
        return None

    def turn(self, direction: int, now: float) -> Ended | None:
        """The status frame's direction; what ended for want of a rest reading."""
        old, self.direction = self.direction, direction
        if direction == old:
            return None
        ended = None
        if old:
            under = self.last_under[old]
            if under is not None and now - under.at <= READING_AGE:  # else no reading of its end
                if self._pending is not None:
                    ended = self._end(self._pending, None)
                self._pending = (old, now, under)
        if direction:
            self._cut[direction] = False
        return ended

    def settle(self, now: float) -> Ended | None:
        """After the status frame: a session waiting for its rest reading ends without one
        when the current flows again or the rest window is over."""
        pending = self._pending
        if pending is not None and (self.direction or now - pending[1] > REST_WINDOW):
            return self._end(pending, None)
        return None

    def _end(self, pending: tuple[int, float, Reading], rest: Reading | None) -> Ended | None:
        self._pending = None
        direction, _, under = pending
        soc = under.soc
        cut = self._cut[direction]
        if direction == 1 and not (cut or soc is None or soc >= TOP_SOC):
            return None
        if direction == -1 and not (cut or soc is None or soc <= BOTTOM_SOC):
            return None
        return Ended(direction, under, rest, cut)
