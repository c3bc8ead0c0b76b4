"""The daemon: serial bytes in, MQTT publications out, forever.

One thread of ours (this one) does blocking serial reads, decoding and publishing; the
MQTT network loop runs in its own thread. Neither a silent BMS, an unplugged adapter nor
a broker outage ends it: each is logged (rate-limited), reported on the ``link`` and
``status`` topics, and recovered from by itself.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Protocol

from . import __version__
from .config import ConfigError, Settings
from .discovery import Discovery
from .energy import EnergyMeters, default_state_dir
from .logs import LOG, RateLimited, setup
from .notify import Notifier
from .protocol import Framer, StatusFrame
from .serial_link import READ_TIMEOUT, ByteSource, LinkLost, describe, open_source
from .state import BatteryState
from .topics import OFFLINE, ONLINE, Topics

if TYPE_CHECKING:
    from .mqtt_link import MqttLink  # imported for real only when a broker is used

OPEN_BACKOFF_FIRST = 1.0
OPEN_BACKOFF_MAX = 10.0
QUALITY_WINDOW = 60.0  # seconds over which frames per second and error rates are computed
# At most one `state` document per this many seconds: the frames of one burst (cells and
# status back to back) become one document, so Home Assistant renders its templates once,
# and at line rate the document is not rebuilt and sent for every frame.
STATE_INTERVAL = 0.1


class Sink(Protocol):
    """Where publications go: the MQTT link, or stdout with --dry-run."""

    connected: bool

    def publish(self, topic: str, payload: str, retain: bool = False, qos: int = 0) -> bool: ...

    def publish_many(self, messages: list[tuple[str, str]]) -> None:
        """Telemetry (not retained, QoS 0), one frame's worth at a time."""


class PrintSink:
    """--dry-run: every publication as one ``topic payload`` line on stdout."""

    connected = True

    def __init__(self, out: Any = None, on_closed: Callable[[], None] = lambda: None) -> None:
        self._out = out or sys.stdout
        self._on_closed = on_closed

    def publish(self, topic: str, payload: str, retain: bool = False, qos: int = 0) -> bool:
        if not self.connected:
            return False
        try:
            self._out.write(f"{topic} {payload}\n")
            self._out.flush()
        except (BrokenPipeError, ValueError):
            # The reader went away (| head): stop quietly, as other tools do.
            self.connected = False
            self._on_closed()
            return False
        return True

    def publish_many(self, messages: list[tuple[str, str]]) -> None:
        for topic, payload in messages:
            self.publish(topic, payload)


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
        self.stop_event = threading.Event()
        self._source_factory = source_factory
        self._clock = clock
        self.notifier = notifier or Notifier()
        self.topics = Topics(settings.topic_prefix, settings.publish_cells)
        self.state = BatteryState(settings.cell_limit)
        self.framer = Framer()
        self._limited = RateLimited()
        self.discovery = Discovery(settings) if settings.ha_discovery else None
        self.energy = EnergyMeters(self._energy_path())
        self._resync = threading.Event()  # set by the MQTT thread: republish everything
        self._mqtt: MqttLink | None = None
        if sink is None:
            if settings.dry_run:
                sink = PrintSink(on_closed=self.stop_event.set)
            else:
                from .mqtt_link import MqttLink

                subscriptions = (settings.ha_status_topic, self.discovery.topic) if self.discovery else ()
                self._mqtt = MqttLink(
                    settings,
                    will_topic=self.topics.status,
                    subscriptions=subscriptions,
                    on_connected=self._resync.set,
                    on_message=self._on_message,
                )
                sink = self._mqtt
        self.sink: Sink = sink
        self.link_online = False
        self._last_frame: float | None = None  # monotonic
        self._last_state_publish = float("-inf")
        self._state_pending = False  # frames arrived since the last `state`: send it when STATE_INTERVAL is over
        self._quality_mark: tuple[float, int, int, int] | None = None  # (time, frames, checksum, implausible)
        self.frames_per_second: float | None = None
        self._last_slow = float("-inf")  # monotonic time of the last once-a-second bookkeeping

    def _energy_path(self) -> Path | None:
        s = self.settings
        if s.demo and "state_dir" not in s.explicit:
            return None  # simulated energy must never land in the real meters
        return default_state_dir(s.state_dir) / f"energy-{s.resolved_device_id}.json"

    # --- MQTT events (network thread): only flags, the work happens in run() -----------

    def _on_message(self, topic: str, payload: bytes) -> None:
        if topic == self.settings.ha_status_topic and payload.strip().lower() == b"online":
            LOG.info("Home Assistant came online: announcing the device again")
            self._resync.set()
        elif self.discovery is not None and topic == self.discovery.topic:
            if self.discovery.note_retained(payload, self.state):
                LOG.info("Home Assistant: removing entities this daemon no longer publishes")
                self._resync.set()

    # --- publishing ------------------------------------------------------------------------

    def publish_link(self) -> None:
        self.sink.publish(self.topics.link, ONLINE if self.link_online else OFFLINE, retain=True, qos=1)

    def publish_state(self, now: float) -> None:
        self._last_state_publish = now
        self._state_pending = False
        self.sink.publish(self.topics.state, self.state_payload())

    def state_payload(self) -> str:
        return self.state.document_json(self._state_extra())

    def state_document(self) -> dict[str, Any]:
        return self.state.document(self._state_extra())

    def _state_extra(self) -> dict[str, Any]:
        return {
            "energy_charged": self.energy.charged_kwh,
            "energy_discharged": self.energy.discharged_kwh,
            "frames_per_second": self.frames_per_second,
            "checksum_failures": self.framer.checksum_failures + self.framer.implausible,
            "last_frame": self.state.last_seen,
            "link": ONLINE if self.link_online else OFFLINE,
        }

    def announce(self) -> None:
        """Everything a fresh subscriber needs: discovery, link, the latest values."""
        if self.discovery is not None:
            for topic, payload in self.discovery.messages(self.state):
                self.sink.publish(topic, payload, retain=True, qos=1)
        self.publish_link()
        if self.state.has_data:
            self.sink.publish_many(self.topics.all_current(self.state))
            self.publish_state(self._clock())

    def handle_bytes(self, data: bytes) -> None:
        frames = self.framer.feed(data)
        if not frames:
            return
        now = self._clock()
        wall = time.time()
        debug = LOG.isEnabledFor(logging.DEBUG)
        slots_before = self.state.slots
        messages: list[tuple[str, str]] = []
        for offset, frame in frames:
            if debug:
                LOG.debug("frame at %d: %r", offset, frame)
            self.state.update(frame, wall)
            if type(frame) is StatusFrame:
                self.energy.add(*self.state.directed_power(), now)
            messages += self.topics.for_frame(frame, self.state)
        self._last_frame = now
        if not self.link_online:
            self.link_online = True
            LOG.info("serial: receiving frames from %s", describe(self.settings))
            self.publish_link()
        if self.discovery is not None and self.state.slots != slots_before:
            self.announce()  # the model is known now: its cells get entities
        if now - self._last_state_publish >= STATE_INTERVAL:
            messages.append((self.topics.state, self.state_payload()))
            self._last_state_publish = now
            self._state_pending = False
        else:
            self._state_pending = True  # housekeeping sends it when the interval is over
        self.sink.publish_many(messages)

    # --- housekeeping, once per loop turn (at least every read timeout) ------------------

    def housekeeping(self, now: float) -> None:
        s = self.settings
        if self._resync.is_set():
            self._resync.clear()
            self.announce()
        if self.link_online and (self._last_frame is None or now - self._last_frame > s.stale_after):
            self.link_online = False
            self.energy.pause()
            LOG.warning("serial: no valid frame for %.0f s: link offline (is the BMS display unit on?)", s.stale_after)
            self.publish_link()
        if self._state_pending and now - self._last_state_publish >= STATE_INTERVAL:
            self.publish_state(now)
        if self.link_online and now - self._last_state_publish >= s.heartbeat:
            self.publish_state(now)
        if now - self._last_slow < 1.0:
            return  # the rest is bookkeeping: once a second is plenty
        self._last_slow = now
        self._measure_quality(now)
        self.energy.save_if_due(now)
        mqtt_ok = self._mqtt is None or self._mqtt.healthy(now)
        if mqtt_ok:
            self.notifier.watchdog(now)
        self.notifier.status(self.status_line(now))

    def _measure_quality(self, now: float) -> None:
        f = self.framer
        mark = self._quality_mark
        current = (now, f.stats().frames, f.checksum_failures, f.implausible)
        if mark is None:
            self._quality_mark = current
            return
        elapsed = now - mark[0]
        if elapsed < QUALITY_WINDOW:
            return
        self.frames_per_second = round((current[1] - mark[1]) / elapsed, 2)
        bad = current[2] - mark[2] + current[3] - mark[3]
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
        mqtt_part = "dry run" if self._mqtt is None else "MQTT connected" if self._mqtt.connected else "MQTT connecting"
        age = "never" if self._last_frame is None else f"{now - self._last_frame:.0f} s ago"
        return f"{serial_part}; {mqtt_part}; last frame {age}"

    # --- the main loop -------------------------------------------------------------------

    def run(self) -> int:
        s = self.settings
        LOG.info("chargery %s: reading %s, publishing under %s/", __version__, describe(s), s.topic_prefix)
        if self._mqtt is not None:
            self._mqtt.start()
        else:
            self.sink.publish(self.topics.status, ONLINE, retain=True)
            self.announce()
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
                        self.stop_event.wait(min(1.0, next_open - now))
                        continue
                    try:
                        source = self._source_factory(s)
                    except LinkLost as exc:
                        self._limited.log(
                            logging.WARNING,
                            "open",
                            "serial: cannot open %s: %s; retrying (every %.0f s at most)",
                            s.port,
                            exc,
                            OPEN_BACKOFF_MAX,
                        )
                        next_open = now + backoff
                        backoff = min(backoff * 2, OPEN_BACKOFF_MAX)
                        continue
                    self._limited.reset("open")
                    LOG.info("serial: opened %s", describe(s))
                    backoff = OPEN_BACKOFF_FIRST
                # Wake up in time for a `state` that is waiting for its interval to end.
                timeout = self._last_state_publish + STATE_INTERVAL - now if self._state_pending else READ_TIMEOUT
                try:
                    data = source.read(4096, max(0.0, timeout))
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
        self.notifier.stopping()
        self.energy.save()
        if self._mqtt is not None:
            self._mqtt.stop(last_words=(self.topics.status, OFFLINE))
        else:
            self.sink.publish(self.topics.status, OFFLINE, retain=True)
        LOG.info("stopped")


def run(settings: Settings) -> int:
    setup(settings.debug, settings.log_file)
    LOG.debug("settings: %s", settings.describe())
    try:
        daemon = Daemon(settings)
    except ConfigError as exc:
        print(f"chargery.py: configuration error: {exc}", file=sys.stderr)
        return 2

    def _stop(signum: int, _frame: FrameType | None) -> None:
        LOG.info("%s received: stopping", signal.Signals(signum).name)
        daemon.stop_event.set()

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
