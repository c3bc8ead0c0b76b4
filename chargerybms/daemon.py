"""The daemon: a small loop that feeds serial bytes in and publishes the registered outputs
(:mod:`chargerybms.registry`) when the schedule (:mod:`chargerybms.schedule`) says so.

One thread of ours (this one) reads, decodes and publishes; the MQTT network loop runs in
its own thread and only hands typed events over (a queue). A burst is read, decoded and
published once, when its gathering window closes (:mod:`chargerybms.schedule`): its plain
topics and its ``state`` in one transmission. Builders get a :class:`~chargerybms.base.Context`
made for each publication. The port is a
:class:`~chargerybms.serial_link.PortReader`, which owns opening and reopening it. One
clock (``clock``, monotonic) is used for every time decision; ``wall`` only stamps values.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from . import __version__
from .base import Context, Event, Message, Output
from .battery import BatteryState
from .config import ConfigError, Settings, printing, report
from .logs import LOG, RateLimited, setup
from .notify import Notifier
from .outputs.state import daemon_fields
from .protocol import Framer
from .publisher import Publisher
from .quality import LinkQuality
from .registry import build_outputs, build_views
from .schedule import Schedule
from .serial_link import PortReader
from .sink import Connected, Received, Sink, SinkEvent, make_sink
from .sources import label, open_source
from .topics import OFFLINE, ONLINE, Topics


class Daemon:
    def __init__(
        self,
        settings: Settings,
        *,
        sink: Sink | None = None,
        port: PortReader | None = None,
        notifier: Notifier | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._clock, self._wall = clock, wall
        self.stop_event = threading.Event()
        self.notifier = notifier or Notifier()
        self.topics = Topics(settings.topic_prefix, settings.publish_cells)
        self.state = BatteryState(settings.cells)
        if settings.demo:
            # The simulator's model is known before its first frame: discovery announces
            # every cell at once, not once without them and again at the first frame.
            self.state.slots = settings.demo_model
        self.framer = Framer()
        self.quality = LinkQuality()
        self._limited = RateLimited(clock=clock)
        self.views = build_views(settings)
        self._held: list[Message] = []  # the per-frame messages of the open window: out with its burst
        self.publisher = Publisher(build_outputs(settings, self.topics), settings.heartbeat)
        periods = {o.name: o.timing.every for o in self.publisher.outputs if o.timing.every}
        self.schedule = Schedule(
            clock(), stale_after=settings.stale_after, heartbeat=settings.heartbeat, periods=periods
        )
        self._when = self.publisher.when
        self.events: queue.SimpleQueue[SinkEvent] = queue.SimpleQueue()  # from the MQTT thread
        self.port = port or PortReader(
            lambda: open_source(settings), label(settings), wait=self.stop_event.wait, clock=clock
        )
        self.sink = sink or make_sink(
            settings,
            self.topics,
            tuple(self.publisher.listeners),
            on_event=self.events.put,
            on_closed=self.stop,
            clock=clock,
        )
        self._checked_model = False

    def _check_model(self) -> None:
        """Once the model is known: say so when ``--cells`` names more cells than it has slots."""
        slots, cells = self.state.slots, self.settings.cells
        if slots is None or self._checked_model:
            return
        self._checked_model = True
        if cells is not None and cells > slots:
            LOG.warning(
                "cells is %d, but this BMS is a BMS%dT with %d cell slots: only %d cells are read "
                "(set --cells / CHARGERY_CELLS to the cells really in series, at most %d)",
                cells,
                slots,
                slots,
                slots,
                slots,
            )

    def stop(self) -> None:
        """Ask the main loop to finish (from a signal handler or another thread)."""
        self.stop_event.set()

    # --- what builders read -----------------------------------------------------------------

    @property
    def link_online(self) -> bool | None:
        return self.schedule.link_online

    def context(self, now: float, new_events: tuple[Event, ...] = ()) -> Context:
        """What the builders of one publication at ``now`` read."""
        return Context(self.state, self.schedule.link_online, now, new_events, self._make_extra)

    def _make_extra(self) -> dict[str, Any]:
        """The views' and the daemon's own part of the `state` document (energy meters, cell
        health; link quality, liveness)."""
        extra: dict[str, Any] = {}
        for view in self.views:
            extra.update(view.fields())
        link = ONLINE if self.schedule.link_online else OFFLINE
        return extra | daemon_fields(self.quality.frames_per_second, self.framer.corrupted, self.state.last_seen, link)

    # --- publishing ------------------------------------------------------------------------

    def emit(
        self, outputs: list[Output], now: float, *, again: bool = False, held: list[Message] | None = None
    ) -> None:
        """Publish ``outputs`` (:meth:`Publisher.emit`) for one context at ``now``."""
        if self.publisher.emit(outputs, self.context(now), self.sink, again=again, held=held):
            self.schedule.burst_sent(now)

    def announce(self, now: float) -> None:
        """Everything a fresh subscriber needs: discovery, link, the latest values."""
        outputs = self.publisher.announcing(bool(self.link_online), self.schedule.burst_pending)
        self.emit(outputs, now, again=True)

    def handle_bytes(self, data: bytes) -> None:
        """Decode ``data``; the frames' messages are held for the burst's one transmission."""
        now = self._clock()
        self.schedule.arrived(now)
        frames = self.framer.feed(data)
        if not frames:
            return
        wall = self._wall()
        debug = LOG.isEnabledFor(logging.DEBUG)
        slots_before = self.state.slots
        held = self._held
        quiet = self.context(now)  # for the frames that raise no event (nearly all)
        for offset, frame in frames:
            if debug:
                LOG.debug("frame at %d: %r", offset, frame)
            self.state.update(frame, wall)
            events = tuple(event for view in self.views for event in view.feed(frame, self.state, now, wall))
            context = self.context(now, events) if events else quiet
            for build in self.publisher.per_frame:
                held += build(frame, context)
        if self.schedule.frame(now):
            LOG.info("serial: receiving frames from %s", self.port.label)
            self.emit(self._when["link_change"], now)
        if self.state.slots != slots_before:  # the model is known now: its cells get entities
            self._check_model()
            self.emit(self._when["model_change"], now)

    def _take_held(self) -> list[Message]:
        held, self._held = self._held, []
        return held

    # --- what the schedule and the MQTT thread say, once per loop turn --------------------

    def housekeeping(self, now: float) -> None:
        self._handle_events(now)
        due = self.schedule.poll(now)
        if due.link_offline:
            for view in self.views:
                view.pause()
            silence = "for %.0f s" if self.state.has_data else "since the start (%.0f s)"
            LOG.warning(
                f"serial: no valid frame {silence}: link offline (is the BMS display unit on?)",
                self.settings.stale_after,
            )
            self.emit(self._when["stale"], now, held=self._take_held())
        if due.burst:  # the window closed: the burst's values and its documents, together
            self.schedule.burst_sent(now)
            self.emit(self._when["burst"], now, held=self._take_held())
        if due.periodic:
            self.emit(self.publisher.periodic(due.periodic), now)
        if due.save:
            for view in self.views:
                view.save()
        if due.tick:
            self._tick(now)

    def _handle_events(self, now: float) -> None:
        if self.events.empty():  # the usual case, once per read: no exception to raise
            return
        again = False
        while not self.events.empty():
            event = self.events.get_nowait()
            if isinstance(event, Connected):
                again = True
            elif isinstance(event, Received) and (output := self.publisher.listeners.get(event.topic)) is not None:
                assert output.on_message is not None
                reason = output.on_message(event.topic, event.payload, event.retained, self.context(now))
                if reason:
                    LOG.info("%s", reason)
                    again = True
        if again:
            self.announce(now)

    def _tick(self, now: float) -> None:
        window = self.quality.measure(now, self.framer.stats().frames, self.framer.corrupted)
        if window is not None and window.corrupted:
            self._limited.log(
                logging.WARNING,
                "quality",
                "serial: %d corrupted frames in the last %.0f s (noise on the line, or a terminal that is not raw?)",
                window.corrupted,
                window.seconds,
            )
        if self.sink.healthy(now):
            self.notifier.watchdog(now)
        self.notifier.status(self.status_line(now))

    def status_line(self, now: float) -> str:
        silence = self.schedule.silence(now)
        age = "never" if silence is None else f"{silence:.0f} s ago"
        return f"{'serial ok' if self.link_online else 'serial: no frames'}; {self.sink.condition()}; last frame {age}"

    # --- the main loop -------------------------------------------------------------------

    def run(self) -> int:
        LOG.info("chargery %s: reading %s, publishing under %s/", __version__, self.port.label, self.topics.prefix)
        self._check_model()  # the simulator's is known from the start
        self.sink.start()
        self.notifier.ready(self.status_line(self._clock()))
        try:
            while not self.stop_event.is_set():
                now = self._clock()
                self.housekeeping(now)
                timeout = self.schedule.sleep(now)
                if self.schedule.gathering:
                    # The burst is on its way: the kernel keeps its pieces, and they are
                    # read, decoded and published together when the window closes.
                    if timeout > 0:
                        time.sleep(timeout)
                    data = self.port.take()
                else:
                    ready = self.port.wait(timeout)
                    if ready:  # the first bytes of a burst: left where they are, its window opens
                        self.schedule.arrived(self._clock())
                        continue
                    data = b"" if ready is False else self.port.read(timeout)
                if data:
                    self.handle_bytes(data)
        finally:
            self.port.close()
            self.shutdown()
        return 0

    def shutdown(self) -> None:
        """A clean stop: what the views keep saved, then `link` and `status` offline (retained),
        so nothing retained describes a running daemon any more."""
        self.notifier.stopping()
        if self._held or self.schedule.burst_pending:  # nothing held back at a stop either
            now = self._clock()
            self.schedule.burst_sent(now)
            self.emit(self._when["burst"], now, held=self._take_held())
        for view in self.views:
            view.save()
        self.sink.stop([(self.topics.link, OFFLINE), (self.topics.status, OFFLINE)])
        LOG.info("stopped")


def run(settings: Settings, *, logging_ready: bool = False) -> int:
    """The daemon as a process: logging set up (unless the caller did: ``logging_ready``),
    SIGTERM/SIGINT stop it cleanly, and an unexpected error is one logged traceback and
    exit status 1 (systemd restarts it)."""
    if not logging_ready:
        setup(settings.debug, settings.log_file)
    LOG.debug("settings: %s", settings.loggable())
    try:
        daemon = Daemon(settings)
    except ConfigError as exc:
        return report(exc)

    def _stop(signum: int, _frame: FrameType | None) -> None:
        LOG.info("%s received: stopping", signal.Signals(signum).name)
        daemon.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        status = daemon.run()
        if not daemon.sink.connected and printing(settings) != "broker":
            # stdout was closed under us; keep Python from complaining about it at exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return status
    except Exception:
        LOG.exception("unexpected error; exiting so that systemd restarts the daemon")
        return 1
