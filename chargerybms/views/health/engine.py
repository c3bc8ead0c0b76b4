"""The cell-health engine: the coordinator that feeds each frame to the parts that watch it
and asks them for the verdict.

Pure: standard library only, no I/O, no logging, no clock of its own. The caller feeds
every decoded frame with the monotonic time (intervals) and the wall time (what events and
ages say): ``events = engine.feed(frame, now, wall)``.
"""

from __future__ import annotations

from typing import Final

from ...protocol import CellsFrame, Frame, ImpedancesFrame, StatusFrame
from .capacity import CapacityEvidence
from .common import Event, Reading, Verdict
from .cutoffs import CutoffWatch
from .impedance import ImpedanceEstimator
from .lead import BalanceLeadDetector
from .sag import STEADY_A, SagEstimator
from .sessions import Ended, Sessions, flow
from .verdict import Announcer, judge

#: Without a configured cell count, trailing cell slots reading under this (V) are unwired.
UNWIRED_V: Final = 0.5
#: Cells frames in a row with another cell count before the evidence starts afresh (one
#: odd frame, a checksum that matched by chance, must not wipe months of it).
COUNT_CHANGE: Final = 10


class HealthEngine:
    """Cell-health evidence of one pack, fed every frame. ``cell_limit`` is the configured
    cell count (the first N of every frame); None takes every cell the BMS sends."""

    def __init__(self, cell_limit: int | None = None) -> None:
        self.cell_limit = cell_limit or None
        self.cutoffs = CutoffWatch()  # the pack's, kept whatever the cell count
        self.announcer = Announcer()
        self.sessions = Sessions()
        self.start_evidence(0)
        self.changed = False  # evidence changed since the last mark_saved()
        # Transient: what the last frames said (not saved).
        self._status: StatusFrame | None = None
        self._latest: Reading | None = None
        self._unconfirmed: Reading | None = None  # a reading, until the next status frame shows the current steady
        self._other_cells = 0  # a cell count other than the evidence's, seen _other_count times in a row
        self._other_count = 0

    def start_evidence(self, cells: int) -> None:
        """Evidence of ``cells`` cells, none yet (0: no cells seen)."""
        self.cells = cells
        self.capacity = CapacityEvidence(cells)
        self.sag = SagEstimator()
        self.impedance = ImpedanceEstimator(cells)
        self.lead = BalanceLeadDetector(cells)
        self._verdict: Verdict | None = None

    # --- feeding ----------------------------------------------------------------------

    def feed(self, frame: Frame, now: float, wall: float) -> list[Event]:
        """Take one decoded frame at monotonic ``now`` and wall-clock ``wall`` (seconds);
        return the events it causes (cut-offs, new warnings), newest last."""
        events: list[Event] = []
        if isinstance(frame, CellsFrame):
            self._on_cells(frame, now)
        elif isinstance(frame, StatusFrame):
            self._on_status(frame, now, wall, events)
        elif isinstance(frame, ImpedancesFrame) and self.impedance.add(frame, wall):
            self._evidence_changed()
        if self._verdict is None:
            changed, event = self.announcer.update(self.verdict(), wall)
            self.changed |= changed
            if event is not None:
                events.append(event)
        return events

    def _wired(self, values: tuple[float, ...]) -> list[float]:
        """The cells really in series: the configured count, else every slot up to the last
        that holds a cell (unwired slots at the end read 0-30 mV of junk)."""
        if self.cell_limit:
            return list(values[: self.cell_limit])
        n = len(values)
        while n > 2 and values[n - 1] < UNWIRED_V:
            n -= 1
        return list(values[:n])

    def _ensure_cells(self, n: int) -> bool:
        """The evidence is for ``n`` cells; a different count, in COUNT_CHANGE frames in a
        row (not one odd frame), starts it afresh. False: ignore this frame."""
        if n < 2:
            return False
        if n != self.cells and self.cells:
            self._other_count = self._other_count + 1 if n == self._other_cells else 1
            self._other_cells = n
            if self._other_count < COUNT_CHANGE:
                return False
        self._other_count = 0
        if n != self.cells:
            self.start_evidence(n)
            self.sessions.forget()
            self._unconfirmed = None
            self.changed = True
        return True

    def _on_cells(self, frame: CellsFrame, now: float) -> None:
        volts = self._wired(frame.cell_voltages)
        if not self._ensure_cells(len(volts)):
            return
        status = self._status
        current = None if status is None or status.mode_code is None else status.current
        soc = frame.soc if frame.soc is not None else status.soc if status is not None else None
        reading = Reading(now, volts, current, soc)
        if self.lead.observe(reading):
            self._evidence_changed()
        self._latest = reading
        self._record(self.sessions.on_cells(reading))
        self._unconfirmed = reading if current is not None else None

    def _on_status(self, frame: StatusFrame, now: float, wall: float, events: list[Event]) -> None:
        previous, self._status = self._status, frame
        if frame.mode_code is None:
            self.sessions.unknown()  # no mode byte: no direction, nothing to say
            return
        # A cells frame taken under the current it was read with, steady on both sides.
        unconfirmed, self._unconfirmed = self._unconfirmed, None
        if unconfirmed is not None and unconfirmed.current is not None:
            if abs(frame.current - unconfirmed.current) <= STEADY_A and self.sag.sample(unconfirmed):
                self._evidence_changed()
        old, direction = self.sessions.direction, flow(frame.current)
        if direction != old:
            self.capacity.turned(direction)
        self._record(self.sessions.turn(direction, now))
        latest = self._latest if self.cells else None
        cutoffs = self.cutoffs.check(previous, frame, old, now, wall, self.sessions, latest, self.sag.resistances())
        if cutoffs:
            events += cutoffs
            self.changed = True
        self._record(self.sessions.settle(now))

    def _record(self, ended: Ended | None) -> None:
        """A session that reached the top (bottom) ended: its snapshot."""
        if ended is None:
            return
        if ended.rest is not None:
            volts, at_rest = ended.rest.volts, True
        else:
            volts, at_rest = self._without_ir(ended.under), False
        if self.capacity.record(ended.direction, volts, at_rest=at_rest, cut=ended.cut):
            self.lead.fade()  # a new top: older lead jumps count for less
        self._evidence_changed()

    def _without_ir(self, reading: Reading) -> list[float]:
        """Each cell's voltage less its own I*R (from the sag estimate), when there is one."""
        resistances = self.sag.resistances()
        if reading.current is None or resistances is None:
            return reading.volts
        amps = reading.current
        return [v - amps * r / 1000 for v, r in zip(reading.volts, resistances, strict=True)]

    # --- the verdict --------------------------------------------------------------------

    def _evidence_changed(self) -> None:
        self.changed = True
        self._verdict = None

    def verdict(self) -> Verdict:
        if self._verdict is None:
            self._verdict = judge(
                self.lead.suspect(), self.capacity.suspect(), self.sag.suspect(), self.impedance.suspect()
            )
        return self._verdict

    def mark_saved(self) -> None:
        self.changed = False
