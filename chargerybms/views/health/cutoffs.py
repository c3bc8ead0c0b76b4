"""Cut-offs: when the BMS stops charging or discharging, and the cell that explains it, in
words and numbers.

Firmware V1.26 raises its protection flag; on older firmware the charge current stops while
a cell sits at the charge end voltage. The cell that explains it: the highest (lowest) cell
of the last cells frame taken while the current flowed, if it was within ``CUTOFF_MARGIN``
of the end voltage. The BMS decides on its own reading, taken more often than the cells
frame it sends every 2 s, so the last frame before the cut reads a little under the end
voltage. Otherwise the event says that no cell explains it and gives what is known.
"""

from __future__ import annotations

from collections import deque
from typing import Final

from ...protocol import StatusFrame
from .common import Event, Reading, iso
from .sessions import Sessions

#: A cut-off is explained by a cell whose last reading under current was at most this far
#: (V) short of the end voltage: the BMS acts on its own reading, up to ~3 s newer than the
#: last cells frame (sent every 2 s; the status frame that shows the cut comes every 1 s);
#: a LiFePO4 cell near its end voltage moves a few mV a second, and a load or charger step
#: in the second of the cut moves it by delta I * R at once, unseen in any frame. In the
#: study the explaining cell was a median 4 mV short, 19 mV at the 99th percentile, 27 mV
#: at most. A cell further away is not the cause: the event then says none is.
CUTOFF_MARGIN: Final = 0.030
#: Firmware before V1.26 sends no flag: the engine alone decides that the BMS cut off (the
#: charge current stopped with a cell this close to the end voltage), so it asks for more;
#: a charger that stops on its own with a cell a little short of it is then not taken for
#: the BMS.
CUTOFF_MARGIN_UNFLAGGED: Final = 0.015
#: Cut-offs kept (the pack's, whatever its cell count).
CUTOFFS_KEPT: Final = 10


class CutoffWatch:
    """Sees the BMS cut off and says why; keeps the last CUTOFFS_KEPT events."""

    def __init__(self) -> None:
        self.history: deque[Event] = deque(maxlen=CUTOFFS_KEPT)
        self.last_gap_mv: float | None = None  # how far short of the end voltage (for the study)

    def check(  # noqa: PLR0917 - what one status frame tells, all of it needed
        self,
        previous: StatusFrame | None,
        frame: StatusFrame,
        old: int,
        now: float,
        wall: float,
        sessions: Sessions,
        latest: Reading | None,
        resistances: list[float] | None,
    ) -> list[Event]:
        """The cut-offs this status frame shows (``old``: the direction before it; ``latest``:
        the last cells reading; ``resistances``: each cell's, mOhm, when known); each is
        marked on its session."""
        cuts: list[tuple[int, float]] = []
        if frame.charge_protection is not None:
            # V1.26: the BMS says it stopped; a flag already up when we start is not news.
            if previous is not None and previous.charge_protection is False and frame.charge_protection:
                cuts.append((1, CUTOFF_MARGIN))
            if previous is not None and previous.discharge_protection is False and frame.discharge_protection:
                cuts.append((-1, CUTOFF_MARGIN))
        elif old == 1 and sessions.direction != 1:
            # Older firmware: the charge current stops while a cell sits at the end voltage.
            reading = sessions.recent_under(1, now)
            current = (previous or frame).current
            end = frame.charge_end_voltage
            if reading is not None and self._at_end(1, reading, current, end, CUTOFF_MARGIN_UNFLAGGED, resistances)[2]:
                cuts.append((1, CUTOFF_MARGIN_UNFLAGGED))
        out: list[Event] = []
        for direction, margin in cuts:
            sessions.cut(direction)
            reading = sessions.recent_under(direction, now)
            event = self._event(direction, previous, frame, now, wall, margin, reading, reading or latest, resistances)
            self.history.append(event)
            out.append(event)
        return out

    def _at_end(  # noqa: PLR0917
        self,
        direction: int,
        reading: Reading,
        current: float,
        end: float | None,
        margin: float,
        resistances: list[float] | None,
    ) -> tuple[int, float, bool]:
        """The cell at the end of the pack in ``direction`` (1-based), its reading, and
        whether it explains a cut at ``end``: its reading, carried to the current at the
        cut with its own I*R (the sag estimate), within ``margin`` of ``end``."""
        volts = reading.volts
        estimate = volts
        if reading.current is not None and resistances is not None:
            step = current - reading.current
            estimate = [v + step * r / 1000 for v, r in zip(volts, resistances, strict=True)]
        extreme = max(estimate) if direction == 1 else min(estimate)
        i = estimate.index(extreme)
        if end is None:
            return i + 1, volts[i], False
        self.last_gap_mv = (end - extreme if direction == 1 else extreme - end) * 1000
        return i + 1, volts[i], self.last_gap_mv <= margin * 1000

    def _event(  # noqa: PLR0917
        self,
        direction: int,
        previous: StatusFrame | None,
        frame: StatusFrame,
        now: float,
        wall: float,
        margin: float,
        reading: Reading | None,
        latest: Reading | None,
        resistances: list[float] | None,
    ) -> Event:
        """The cut-off in words and numbers (``reading``: the recent one under current,
        which alone can explain it; ``latest``: the last seen, which only tells)."""
        charge = direction == 1
        end = frame.charge_end_voltage if charge else frame.discharge_end_voltage
        word = "charge" if charge else "discharge"
        current = (previous or frame).current  # the last before the cut
        if latest is not None:
            index, extreme, explained = self._at_end(direction, latest, current, end, margin, resistances)
            explained = explained and reading is not None
        else:
            extreme, index, explained = 0.0, 0, False
        end_text = f"{word} end voltage {end:.3f} V" if end is not None else f"{word} end voltage unknown"
        cell: int | None = None
        voltage: float | None = None
        if explained and reading is not None and end is not None:
            cell, voltage = index, extreme
            message = _explained(word, index, extreme, end, end_text, ago=max(0, round(now - reading.at)))
        else:
            known = [
                f"temperatures {frame.temperature_1:.1f} °C and {frame.temperature_2:.1f} °C",
                f"current {current:.1f} A before the stop",
            ]
            if latest is not None:
                which = "highest" if charge else "lowest"
                where = f"the {which} cell, {index}, was at {extreme:.3f} V"
                known.insert(0, f"{where} ({end_text})" if end is not None else where)
            message = f"{word} stopped and no cell explains it: " + "; ".join(known)
        return {
            "type": "cutoff",
            "message": message,
            "time": iso(wall),
            "cell": cell,
            "direction": word,
            "voltage": voltage,
            "end_voltage": end,
            "current": current,
            "temperature_1": frame.temperature_1,
            "temperature_2": frame.temperature_2,
            "explained": cell is not None,
        }


def _explained(word: str, index: int, extreme: float, end: float, end_text: str, *, ago: int) -> str:
    """The words for a cut-off that cell ``index`` explains."""
    charge = word == "charge"
    if extreme >= end if charge else extreme <= end:
        verb = "reached" if charge else "fell to"
        return f"{word} stopped: cell {index} {verb} {extreme:.3f} V ({end_text})"
    short = round(abs(end - extreme) * 1000)
    side = "under" if charge else "over"
    return (
        f"{word} stopped: cell {index} at {extreme:.3f} V, {short} mV {side} the {end_text} "
        f"(its last reading, {ago} s before the cut)"
    )
