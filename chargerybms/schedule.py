"""The daemon's timing, in one place: when the BMS link is online or offline, when the
outputs that go once per burst or every N seconds are due, when the views' save
and the once-a-second bookkeeping are due, and how long the reader may sleep until then.

Pure: no clock of its own, no I/O. The daemon passes the monotonic time into every call,
so the tests drive it with plain numbers and run in microseconds. It knows outputs only
by the names and periods it is given, never what they are.

Rules (each written once, here):

- ``link`` is not said at all until there is something true to say: ``online`` at the
  first frame, ``offline`` only after ``stale_after`` seconds without one, counted from
  the last frame or, before any, from the start. No ``offline`` blip at start when a
  frame comes in time, and a ``link online`` left retained by a crashed run is corrected
  within ``stale_after`` when the BMS stays silent.
- One transmission per burst. The first bytes that arrive while nothing is gathered open a
  window of ``BURST_DELAY``; while it is open the reader leaves the port alone (the kernel
  keeps what arrives: a USB adapter's pieces of a burst are not a wake-up each) and reads
  it all when the window closes. Then the frames' plain topics and the burst outputs
  (``state``) go out together, once. A burst (status, cells, impedances, 19 to 104 bytes,
  back to back) takes a few ms on the wire and at most a few 16 ms latency-timer pieces
  from a USB adapter, so it fits one window. Every value is published at most
  ``BURST_DELAY`` (plus the time to handle it) after its last byte: the promise is
  ``PROMISE``. Nothing is held when the BMS goes silent (the window closes by the clock,
  not by the next burst), and bytes that never make a frame close their window with
  nothing to publish. At line rate bursts run together: a window opens as soon as the
  previous one closed, so there is one transmission (with one ``state``) every
  ``BURST_DELAY`` holding every frame of that window, none lost.
  While the link is online the burst outputs are also due when the last one is
  ``heartbeat`` old.
- A periodic output is due every ``period`` seconds while the link is online, never
  otherwise, and never catches up after a pause.
- What the views keep (energy meters, cell-health evidence) is saved every ``SAVE_EVERY``
  seconds: at most that much energy (or evidence) is lost in a power cut.
- The bookkeeping (watchdog, link quality, status line) runs at the first wake-up at least
  ``TICK_EVERY`` after the last, but never wakes the reader by itself: the reader wakes at
  least every ``MAX_SLEEP`` anyway. At the BMS's cadence it rides on the wake-ups that
  frames cause, so it costs no wake-up of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

BURST_DELAY: Final = 0.1  # seconds from a burst's first byte to its one transmission
PROMISE: Final = 0.150  # seconds: every value is published within this of its burst's last byte
SAVE_EVERY: Final = 60.0  # seconds between saves of what the views keep (energy meters, evidence)
TICK_EVERY: Final = 1.0  # seconds between rounds of slow bookkeeping (watchdog, quality, status)
MAX_SLEEP: Final = 1.0  # the reader wakes at least this often (to notice a stop request)


@dataclass(frozen=True, slots=True)
class Due:
    """What :meth:`Schedule.poll` says is to be done now."""

    link_offline: bool = False  # the link has just gone (or is first found) offline
    burst: bool = False  # the burst outputs
    periodic: tuple[str, ...] = ()  # the periodic outputs due, by name
    save: bool = False  # save what the views keep
    tick: bool = False  # the once-a-second bookkeeping


NOTHING: Final = Due()


class Schedule:
    """Timing decisions for one run of the daemon, started at monotonic time ``start``.
    ``periods``: the periodic outputs' names and periods in seconds."""

    def __init__(
        self,
        start: float,
        *,
        stale_after: float,
        heartbeat: float,
        periods: Mapping[str, float] | None = None,
    ) -> None:
        self.stale_after = stale_after
        self.heartbeat = heartbeat
        self.periods = dict(periods or {})
        self.link_online: bool | None = None  # None: nothing said yet this run
        self.last_frame: float | None = None
        self._silent_since = start  # the last frame, or the start
        self._gather_until: float | None = None  # a window is open (bytes are being gathered) until then
        self._burst_pending = False  # frames have arrived in the open window
        # The stale timeout passed with bytes noticed after it: "open" while their window is,
        # "read" once it closed (judged at the next poll); None otherwise.
        self._deferral: str | None = None
        self._last_burst = start
        self._next_periodic = dict.fromkeys(self.periods, start)
        self._next_save = start + SAVE_EVERY
        self._next_tick = start

    # --- events -------------------------------------------------------------------------

    def arrived(self, now: float) -> None:
        """Bytes arrived at ``now`` (a frame or not): the first open a gathering window."""
        if self._gather_until is None:
            self._gather_until = now + BURST_DELAY

    def frame(self, now: float) -> bool:
        """Frames arrived at ``now``. True when this brings the link online."""
        self.last_frame = self._silent_since = now
        self._deferral = None
        self.arrived(now)
        self._burst_pending = True
        if self.link_online:
            return False
        self.link_online = True
        for name in self._next_periodic:  # the first documents as soon as values are there
            self._next_periodic[name] = now
        return True

    @property
    def gathering(self) -> bool:
        """A window is open: the reader leaves the port alone until :meth:`sleep` is over,
        then takes everything that arrived."""
        return self._gather_until is not None

    @property
    def burst_pending(self) -> bool:
        """Frames are waiting for the rest of their burst."""
        return self._burst_pending

    def burst_sent(self, now: float) -> None:
        self._last_burst = now
        self._burst_pending = False

    # --- decisions ----------------------------------------------------------------------

    def poll(self, now: float) -> Due:
        """What is due at ``now``. Edges (``link_offline``) are reported once."""
        link_offline = False
        stale = self.link_online is not False and now - self._silent_since >= self.stale_after
        if stale:
            deadline = self._silent_since + self.stale_after
            if (
                self._deferral is None
                and self._gather_until is not None
                and self._gather_until - BURST_DELAY >= deadline
            ):
                # Bytes noticed only after the stale timeout (this process was stalled, say)
                # wait unread and may hold frames: the link is judged once they are read.
                self._deferral = "open"
            if self._deferral == "open":
                stale = False
                if self._gather_until is None or now >= self._gather_until:
                    self._deferral = "read"  # read right after this poll; judged at the next
        if stale:
            self.link_online = False
            self._gather_until, self._burst_pending, self._deferral = None, False, None
            link_offline = True
        online = bool(self.link_online)
        closed = self._gather_until is not None and now >= self._gather_until
        if closed:
            self._gather_until = None
        if self._burst_pending:
            burst = closed
        else:  # the heartbeat: nothing new, but the document is not left to expire
            burst = online and self._gather_until is None and now - self._last_burst >= self.heartbeat
        periodic: tuple[str, ...] = ()
        if online:
            periodic = tuple(name for name, due in self._next_periodic.items() if now >= due)
            for name in periodic:
                period = self.periods[name]
                # Keep the cadence, but never try to catch up after a long pause.
                self._next_periodic[name] = max(self._next_periodic[name] + period, now + period / 2)
        save = now >= self._next_save
        if save:
            self._next_save = now + SAVE_EVERY
        tick = now >= self._next_tick
        if tick:
            self._next_tick = now + TICK_EVERY
        if not (link_offline or burst or periodic or save or tick):
            return NOTHING
        return Due(link_offline, burst, periodic, save, tick)

    def sleep(self, now: float) -> float:
        """How long the reader may block before something is due (0 to ``MAX_SLEEP``).
        The bookkeeping tick is left out on purpose: see the module's rules."""
        deadline = min(now + MAX_SLEEP, self._next_save)
        if self._gather_until is not None:
            deadline = min(deadline, self._gather_until)
        if self.link_online is not False:
            deadline = min(deadline, self._silent_since + self.stale_after)
        if self.link_online:
            if not self._burst_pending and self._gather_until is None:
                deadline = min(deadline, self._last_burst + self.heartbeat)
            for due in self._next_periodic.values():
                deadline = min(deadline, due)
        return max(0.0, deadline - now)

    def silence(self, now: float) -> float | None:
        """Seconds since the last frame, or None before the first."""
        return None if self.last_frame is None else now - self.last_frame
