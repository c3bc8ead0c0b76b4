"""The daemon: serial bytes in, MQTT publications out, forever.

One thread of ours (this one) does blocking serial reads, decoding and publishing; the
MQTT network loop runs in its own thread and only hands events over (a queue), never
touching the daemon's state. Neither a silent BMS, an unplugged adapter nor a broker
outage ends it: each is logged (rate-limited), reported on the ``link`` and ``status``
topics, and recovered from by itself. When to do what is decided by
:class:`~chargerybms.schedule.Schedule`.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from . import __version__
from .config import EXIT_CONFIG, ConfigError, Settings
from .discovery import DEADBANDS, Discovery
from .energy import EnergyMeters, default_state_dir
from .ha_view import HA_STATE, HaView
from .logs import LOG, RateLimited, setup
from .notify import Notifier
from .protocol import Framer, StatusFrame
from .schedule import Schedule
from .serial_link import ByteSource, LinkLost
from .sink import PrintSink, Sink
from .sources import describe, open_source
from .state import BatteryState
from .topics import OFFLINE, ONLINE, Message, Topics
from .victron import FORMATS as VICTRON_DOCUMENTS

OPEN_BACKOFF_FIRST = 1.0
OPEN_BACKOFF_MAX = 10.0
QUALITY_WINDOW = 60.0  # seconds over which frames per second and error rates are computed

# What the MQTT thread hands over: (topic, payload, retained) of a subscribed message, or RESYNC.
Event = tuple[str, bytes, bool]
RESYNC: Event = ("", b"", False)


class Daemon:
    def __init__(
        self,
        settings: Settings,
        *,
        sink: Sink | None = None,
        source_factory: Callable[[Settings], ByteSource] = open_source,
        notifier: Notifier | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._source_factory = source_factory
        self._clock = clock
        self.stop_event = threading.Event()
        self.notifier = notifier or Notifier()
        self.topics = Topics(settings.topic_prefix, settings.publish_cells, settings.victron_topic)
        self.state = BatteryState(settings.cell_limit)
        self.framer = Framer()
        self._limited = RateLimited()
        self.discovery = Discovery(settings, self.topics) if settings.ha_discovery else None
        self.ha_view = HaView(DEADBANDS, settings.ha_max_age) if self.discovery else None
        self.energy = EnergyMeters(self._energy_path())
        self._victron = VICTRON_DOCUMENTS.get(settings.victron)
        self.schedule = Schedule(
            clock(), stale_after=settings.stale_after, heartbeat=settings.heartbeat, victron=self._victron is not None
        )
        self._events: queue.SimpleQueue[Event] = queue.SimpleQueue()  # from the MQTT thread
        self._quality_mark: tuple[float, int, int] | None = None  # (time, frames, corrupted)
        self.frames_per_second: float | None = None
        self.sink: Sink = sink or self._make_sink()

    def _make_sink(self) -> Sink:
        s = self.settings
        if s.dry_run:
            whole = "dry_run" in s.explicit or s.debug
            return PrintSink(
                self.topics.status,
                on_connected=self._resync,
                on_closed=self.stop,
                summarise=s.demo and not whole,
            )
        from .mqtt_link import MqttLink

        subscriptions = (s.ha_status_topic, self.discovery.topic) if self.discovery else ()
        return MqttLink(
            s,
            will_topic=self.topics.status,
            subscriptions=subscriptions,
            on_connected=self._resync,
            on_message=lambda topic, payload, retained: self._events.put((topic, payload, retained)),
        )

    def _energy_path(self) -> Path | None:
        s = self.settings
        if s.demo and "state_dir" not in s.explicit:
            return None  # simulated energy must never land in the real meters
        return default_state_dir(s.state_dir) / f"energy-{s.resolved_device_id}.json"

    def stop(self) -> None:
        """Ask the main loop to finish (from a signal handler or another thread)."""
        self.stop_event.set()

    def _resync(self) -> None:
        self._events.put(RESYNC)

    # --- events from the MQTT thread, handled here in the main thread -------------------

    def _handle_events(self, now: float) -> None:
        if self._events.empty():  # the usual case, once per read: no exception to raise
            return
        resync = False
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                break
            topic, payload, retained = event
            if event == RESYNC:
                resync = True
            elif topic == self.settings.ha_status_topic and payload.strip().lower() == ONLINE.encode():
                LOG.info("Home Assistant came online: announcing the device again")
                resync = True
            elif self.discovery is not None and topic == self.discovery.topic and retained:
                # Only what the broker held when we subscribed (MQTT 3.1.1 sets RETAIN only
                # on those): the echo of our own announcement must not hide older entities.
                if self.discovery.note_retained(payload, self.state):
                    LOG.info("Home Assistant: removing entities this daemon no longer publishes")
                    resync = True
        if resync:
            self.announce(now)

    # --- publishing ------------------------------------------------------------------------

    @property
    def link_online(self) -> bool:
        return bool(self.schedule.link_online)

    def publish_link(self) -> None:
        online = self.schedule.link_online
        if online is not None:  # nothing true to say yet: see Schedule
            self.sink.publish(self.topics.link, ONLINE if online else OFFLINE, retain=True, qos=1)

    def publish_state(self, now: float) -> None:
        self.schedule.state_sent(now)
        if self.state.has_data:
            self.sink.publish(self.topics.state, self.state_payload())
            if self.ha_view is not None:  # what Home Assistant's entities read
                ha_state = self.ha_view.payload(self.state_document(), now, self.link_online)
                self.sink.publish(f"{self.topics.prefix}/{HA_STATE}", ha_state)

    def state_payload(self) -> str:
        return self.state.document_json(self._state_extra())

    def state_document(self) -> dict[str, object]:
        return self.state.document(self._state_extra())

    def _state_extra(self) -> dict[str, object]:
        """The daemon's own part of the `state` document: meters, link quality, liveness."""
        return {
            "energy_charged": self.energy.charged_kwh,
            "energy_discharged": self.energy.discharged_kwh,
            "frames_per_second": self.frames_per_second,
            "checksum_failures": self.framer.checksum_failures + self.framer.implausible,
            "last_frame": self.state.last_seen,
            "link": ONLINE if self.link_online else OFFLINE,
        }

    def publish_victron(self) -> None:
        if self._victron is None:
            return
        s = self.settings
        document = self._victron(self.state, s.resolved_device_id, s.capacity_ah)
        if document is not None:
            self.sink.publish(self.topics.victron, json.dumps(document, separators=(",", ":")))

    def announce_discovery(self) -> None:
        if self.discovery is not None:
            for topic, payload in self.discovery.messages(self.state):
                self.sink.publish(topic, payload, retain=True, qos=1)

    def announce(self, now: float) -> None:
        """Everything a fresh subscriber needs: discovery, link, the latest values."""
        self.announce_discovery()
        self.publish_link()
        if self.state.has_data and self.link_online:
            self.sink.publish_many(self.topics.all_current(self.state))
            if not self.schedule.state_pending:  # else it goes out with the rest of its burst
                self.publish_state(now)

    def handle_bytes(self, data: bytes) -> None:
        frames = self.framer.feed(data)
        if not frames:
            return
        now = self._clock()
        wall = time.time()
        debug = LOG.isEnabledFor(logging.DEBUG)
        slots_before = self.state.slots
        messages: list[Message] = []
        for offset, frame in frames:
            if debug:
                LOG.debug("frame at %d: %r", offset, frame)
            self.state.update(frame, wall)
            if type(frame) is StatusFrame:
                self.energy.add(*self.state.directed_power(), now)
            messages += self.topics.for_frame(frame, self.state)
        if self.schedule.frame(now):
            LOG.info("serial: receiving frames from %s", describe(self.settings))
            self.publish_link()
        if self.discovery is not None and self.state.slots != slots_before:
            self.announce_discovery()  # the model is known now: its cells get entities
        self.sink.publish_many(messages)

    # --- what the schedule says, once per loop turn ---------------------------------------

    def housekeeping(self, now: float) -> None:
        self._handle_events(now)
        due = self.schedule.poll(now)
        if due.link_offline:
            self.energy.pause()
            if self.state.has_data:
                LOG.warning(
                    "serial: no valid frame for %.0f s: link offline (is the BMS display unit on?)",
                    self.settings.stale_after,
                )
            else:
                LOG.warning("serial: no valid frame since the start (%.0f s): link offline", self.settings.stale_after)
            self.publish_link()
            self.publish_state(now)  # says "link": "offline" to those who read only `state`
        if due.state:
            self.publish_state(now)
        if due.victron:
            self.publish_victron()
        if due.save_energy:
            self.energy.save()
        if due.tick:
            self._measure_quality(now)
            if self.sink.healthy(now):
                self.notifier.watchdog(now)
            self.notifier.status(self.status_line(now))

    def _measure_quality(self, now: float) -> None:
        f = self.framer
        current = (now, f.stats().frames, f.checksum_failures + f.implausible)
        mark = self._quality_mark
        if mark is None:
            self._quality_mark = current
            return
        elapsed = now - mark[0]
        if elapsed < QUALITY_WINDOW:
            return
        self.frames_per_second = round((current[1] - mark[1]) / elapsed, 2)
        bad = current[2] - mark[2]
        if bad:
            self._limited.log(
                logging.WARNING,
                "quality",
                "serial: %d corrupted frames in the last %.0f s (noise on the line, or a terminal that is not raw?)",
                bad,
                elapsed,
            )
        self._quality_mark = current

    def status_line(self, now: float) -> str:
        serial_part = "serial ok" if self.link_online else "serial: no frames"
        silence = self.schedule.silence(now)
        age = "never" if silence is None else f"{silence:.0f} s ago"
        return f"{serial_part}; {self.sink.describe()}; last frame {age}"

    # --- the main loop -------------------------------------------------------------------

    def run(self) -> int:
        s = self.settings
        LOG.info("chargery %s: reading %s, publishing under %s/", __version__, describe(s), s.topic_prefix)
        self.sink.start()
        self.notifier.ready(self.status_line(self._clock()))
        source: ByteSource | None = None
        backoff = OPEN_BACKOFF_FIRST
        next_open = 0.0
        try:
            while not self.stop_event.is_set():
                now = self._clock()
                self.housekeeping(now)
                if source is None:
                    if now < next_open:
                        self.stop_event.wait(min(next_open - now, self.schedule.sleep(now)))
                        continue
                    try:
                        source = self._source_factory(s)
                    except LinkLost as exc:
                        # Keyed by the reason: a new one (the adapter is there now, but
                        # refuses) is news at once, the same one again is rate-limited.
                        self._limited.log(
                            logging.WARNING,
                            f"open:{exc}",
                            "serial: cannot open %s: %s; retrying (every %.0f s at most)",
                            s.port,
                            exc,
                            OPEN_BACKOFF_MAX,
                        )
                        next_open = now + backoff
                        backoff = min(backoff * 2, OPEN_BACKOFF_MAX)
                        continue
                    self._limited.reset_all()
                    LOG.info("serial: opened %s", describe(s))
                    backoff = OPEN_BACKOFF_FIRST
                try:
                    data = source.read(4096, self.schedule.sleep(now))
                except LinkLost as exc:
                    LOG.warning("serial: %s went away (%s); waiting for it to come back", s.port, exc)
                    source.close()
                    source = None
                    next_open = self._clock() + OPEN_BACKOFF_FIRST
                    continue
                if data:
                    self.handle_bytes(data)
        finally:
            if source is not None:
                source.close()
            self.shutdown()
        return 0

    def shutdown(self) -> None:
        """A clean stop: the meters saved, then `link` and `status` offline (retained),
        so nothing retained describes a running daemon any more."""
        self.notifier.stopping()
        self.energy.save()
        self.sink.stop([(self.topics.link, OFFLINE), (self.topics.status, OFFLINE)])
        LOG.info("stopped")


def run(settings: Settings) -> int:
    setup(settings.debug, settings.log_file)
    LOG.debug("settings: %s", settings.describe())
    try:
        daemon = Daemon(settings)
    except ConfigError as exc:
        print(f"chargery.py: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG

    def _stop(signum: int, _frame: FrameType | None) -> None:
        LOG.info("%s received: stopping", signal.Signals(signum).name)
        daemon.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        status = daemon.run()
        if not daemon.sink.connected and settings.dry_run:
            # stdout was closed under us; keep Python from complaining about it at exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return status
    except Exception:
        LOG.exception("unexpected error; exiting so that systemd restarts the daemon")
        return 1
