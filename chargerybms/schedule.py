"""The daemon's timing, in one place: when the BMS link is online or offline, when a
``state`` document is due, when the Victron document, the energy meters' save and the
once-a-second bookkeeping are due, and how long the reader may sleep until then.

Pure: no clock of its own, no I/O. The daemon passes the monotonic time into every call,
so the tests drive it with plain numbers and run in microseconds.

Rules (each written once, here):

- ``link`` is not said at all until there is something true to say: ``online`` at the
  first frame, ``offline`` only after ``stale_after`` seconds without one, counted from
  the last frame or, before any, from the start. No ``offline`` blip at start when a
  frame comes in time, and a ``link online`` left retained by a crashed run is corrected
  within ``stale_after`` when the BMS stays silent.
- ``state`` is sent ``STATE_DELAY`` after the first frame it is waiting for: the frames
  of one burst (cells, status, impedances back to back, a few ms apart) make one
  document, and at line rate there are at most ``1 / STATE_DELAY`` documents a second.
  While the link is online it is also sent when the last one is ``heartbeat`` old.
- The Victron document is due every ``VICTRON_EVERY`` seconds while the link is online,
  never otherwise.
- The energy meters are saved every ``ENERGY_SAVE_EVERY`` seconds (when they changed):
  at most that much energy is lost in a power cut.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

STATE_DELAY: Final = 0.1  # seconds from a frame to the `state` document that holds it
VICTRON_EVERY: Final = 1.0  # seconds between Victron documents while the link is online
ENERGY_SAVE_EVERY: Final = 60.0  # seconds between saves of the energy meters
TICK_EVERY: Final = 1.0  # seconds between rounds of slow bookkeeping (watchdog, quality, status)
MAX_SLEEP: Final = 1.0  # the reader wakes at least this often (to notice a stop request)


@dataclass(frozen=True, slots=True)
class Due:
    """What :meth:`Schedule.poll` says is to be done now."""

    link_offline: bool = False  # the link has just gone (or is first found) offline
    state: bool = False  # send a `state` document
    victron: bool = False  # send the Victron document
    save_energy: bool = False  # save the energy meters
    tick: bool = False  # the once-a-second bookkeeping


NOTHING: Final = Due()


class Schedule:
    """Timing decisions for one run of the daemon, started at monotonic time ``start``."""

    def __init__(
        self,
        start: float,
        *,
        stale_after: float,
        heartbeat: float,
        victron: bool = False,
    ) -> None:
        self.stale_after = stale_after
        self.heartbeat = heartbeat
        self.victron = victron
        self.link_online: bool | None = None  # None: nothing said yet this run
        self.last_frame: float | None = None
        self._silent_since = start  # the last frame, or the start
        self._state_due: float | None = None  # a `state` is waiting until then
        self._last_state = start
        self._next_victron = start
        self._next_save = start + ENERGY_SAVE_EVERY
        self._next_tick = start

    # --- events -------------------------------------------------------------------------

    def frame(self, now: float) -> bool:
        """Frames arrived at ``now``. True when this brings the link online."""
        self.last_frame = self._silent_since = now
        if self._state_due is None:
            self._state_due = now + STATE_DELAY
        if self.link_online:
            return False
        self.link_online = True
        self._next_victron = now  # the first Victron document as soon as values are there
        return True

    @property
    def state_pending(self) -> bool:
        """A `state` is waiting for the rest of its burst."""
        return self._state_due is not None

    def state_sent(self, now: float) -> None:
        self._last_state = now
        self._state_due = None

    # --- decisions ----------------------------------------------------------------------

    def poll(self, now: float) -> Due:
        """What is due at ``now``. Edges (``link_offline``) are reported once."""
        link_offline = False
        if self.link_online is not False and now - self._silent_since >= self.stale_after:
            self.link_online = False
            self._state_due = None
            link_offline = True
        online = bool(self.link_online)
        if self._state_due is not None:
            state = now >= self._state_due
        else:  # the heartbeat: nothing new, but the document is not left to expire
            state = online and now - self._last_state >= self.heartbeat
        victron = self.victron and online and now >= self._next_victron
        if victron:
            # Keep the cadence, but never try to catch up after a long pause.
            self._next_victron = max(self._next_victron + VICTRON_EVERY, now + VICTRON_EVERY / 2)
        save = now >= self._next_save
        if save:
            self._next_save = now + ENERGY_SAVE_EVERY
        tick = now >= self._next_tick
        if tick:
            self._next_tick = now + TICK_EVERY
        if not (link_offline or state or victron or save or tick):
            return NOTHING
        return Due(link_offline, state, victron, save, tick)

    def sleep(self, now: float) -> float:
        """How long the reader may block before something is due (0 to ``MAX_SLEEP``)."""
        deadlines = [now + MAX_SLEEP, self._next_tick, self._next_save]
        if self._state_due is not None:
            deadlines.append(self._state_due)
        if self.link_online is not False:
            deadlines.append(self._silent_since + self.stale_after)
        if self.link_online:
            if self._state_due is None:
                deadlines.append(self._last_state + self.heartbeat)
            if self.victron:
                deadlines.append(self._next_victron)
        return max(0.0, min(deadlines) - now)

    def silence(self, now: float) -> float | None:
        """Seconds since the last frame, or None before the first."""
        return None if self.last_frame is None else now - self.last_frame
