"""The bank as a process: ``python3 chargery.py bank --member P1 --member P2``.

It talks MQTT only (the members may run on other hosts): it subscribes to each member's
``status``, ``link`` and ``state``, and publishes under its own prefix (default
``chargerybank``):

- ``status``: ``online`` / ``offline``, retained, its Last Will (the project's MQTT link);
- ``link``: ``online`` while at least one member is live, retained; ``offline`` at a clean
  stop;
- ``state``: the bank's document (:func:`chargerybms.bank.rules.combine`), not retained, at
  most once a second when a member's document arrives, at once when a member comes or goes,
  and at least every ``--heartbeat`` seconds;
- with Home Assistant discovery on (the default), the "Battery bank" device and its
  ``ha_state`` (:mod:`chargerybms.bank.ha`);
- with ``--victron FORMAT``, the bank's document for a Venus OS driver on
  ``<prefix>/victron``, once a second while its link is online (:mod:`chargerybms.bank.victron`).

One thread of ours (this one) decides and publishes; the MQTT network thread only hands
messages over a queue. One monotonic clock decides every time question.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import queue
import signal
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any, Final

from .. import __version__
from ..config import ConfigError, MemberSpec, Settings, parse_members, report
from ..logs import LOG, setup
from ..notify import Notifier
from ..outputs.discovery import Discovery
from ..sink import Connected, Sink, SinkEvent, make_sink
from ..topics import OFFLINE, ONLINE, Topics
from . import victron
from .ha import BankHa, discovery_messages
from .rules import Member, Meters, combine

MIN_INTERVAL: Final = 1.0  # seconds between two `state` documents made for new member documents
WAKE: Final = 0.5  # seconds the loop sleeps at most when no message comes (liveness is judged this often)
VICTRON_EVERY: Final = 1.0


def bank_settings(settings: Settings) -> Settings:
    """The settings the bank publishes with: its own prefix, name and client id."""
    return dataclasses.replace(
        settings, topic_prefix=settings.bank_prefix, device_id=None, device_name=settings.bank_name, mqtt_client_id=None
    )


class Bank:
    def __init__(
        self,
        settings: Settings,
        members: Sequence[MemberSpec],
        *,
        sink: Sink | None = None,
        notifier: Notifier | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._clock, self._wall = clock, wall
        self.stop_event = threading.Event()
        self.notifier = notifier or Notifier()
        self.topics = Topics(settings.topic_prefix)
        self.members = [Member(spec) for spec in members]
        self.meters = Meters()
        self._routes: dict[str, tuple[Member, str]] = {}
        for m in self.members:
            for kind in ("status", "link", "state"):
                self._routes[f"{m.spec.prefix}/{kind}"] = (m, kind)
        self.ha = (
            BankHa(Discovery(settings, self.topics), self.topics.prefix, members, settings.ha_max_age)
            if settings.ha_discovery
            else None
        )
        self._victron = victron.FORMATS.get(settings.bank_victron or "")
        self.victron_topic = f"{self.topics.prefix}/victron"
        subscriptions = tuple(self._routes) + ((settings.ha_status_topic, self.ha.topic) if self.ha else ())
        self.events: queue.SimpleQueue[SinkEvent] = queue.SimpleQueue()
        self.sink = sink or make_sink(
            settings, self.topics, subscriptions, on_event=self.events.put, on_closed=self.stop, clock=clock
        )
        start = clock()
        self._started = start
        self._dirty = True
        self._last_state = -1e9
        self._last_victron = -1e9
        self._reasons: list[str | None] = [m.reason(start, settings.stale_after) for m in self.members]
        self._link: str | None = None
        self._ha_sent: tuple[str, float] | None = None
        self._never_told = False
        self.document: dict[str, Any] = {}

    def stop(self) -> None:
        self.stop_event.set()

    # --- what comes in ---------------------------------------------------------------------

    def receive(self, event: SinkEvent, now: float) -> None:
        if isinstance(event, Connected):
            self.announce(now)
            return
        if self.ha is not None and event.topic == self.ha.topic:
            # Only what the broker held when we subscribed, not the echo of our own announcement.
            if event.retained and self.ha.note_retained(event.payload):
                LOG.info("Home Assistant: removing the entities of packs no longer in the bank")
                self.announce(now)
            return
        if self.ha is not None and event.topic == self.settings.ha_status_topic:
            if event.payload.strip().lower() == ONLINE.encode():
                LOG.info("Home Assistant came online: announcing the bank again")
                self.announce(now)
            return
        route = self._routes.get(event.topic)
        if route is None:
            return
        member, kind = route
        text = event.payload.decode("utf-8", "replace").strip()
        if kind == "status":
            member.on_status(text)
        elif kind == "link":
            member.on_link(text)
        else:
            try:
                doc = json.loads(text)
            except ValueError:
                LOG.warning("bank: %s: a state document that is not JSON, ignored", event.topic)
                return
            if not isinstance(doc, dict):
                return
            member.on_state(doc, now)
            if member.reason(now, self.settings.stale_after) is None:
                self.meters.feed(member.spec.prefix, doc)
        self._dirty = True

    # --- what goes out ---------------------------------------------------------------------

    def announce(self, now: float) -> None:
        """After every (re)connect and Home Assistant's birth: discovery, link, the state."""
        if self.ha is not None:
            for topic, payload in discovery_messages(self.ha):
                self.sink.publish(topic, payload, retain=True, qos=1)
        self._link = None  # said again below
        self._ha_sent = None
        self.publish(now)

    def publish(self, now: float) -> None:
        doc = combine(self.members, now, self.settings.stale_after, self.meters, _iso(self._wall()))
        self.document = doc
        link = doc["link"]
        if link == OFFLINE and self._link is None and now - self._started < self.settings.stale_after:
            return  # starting: the members' documents are on their way (no offline blip)
        if link != self._link:
            self.sink.publish(self.topics.link, link, retain=True, qos=1)
            self._link = link
        messages = [(self.topics.state, json.dumps(doc, separators=(",", ":")))]
        if self.ha is not None:
            payload = self.ha.payload(doc, now)
            sent = self._ha_sent
            if sent is None or sent[0] != payload or now - sent[1] >= self.settings.heartbeat:
                messages.append((f"{self.topics.prefix}/ha_state", payload))
                self._ha_sent = (payload, now)
        self.sink.publish_many(messages)
        self._last_state, self._dirty = now, False

    def victron_document(self, now: float) -> str | None:
        if self._victron is None:
            return None
        stale = self.settings.stale_after
        lists = [m.doc["cell_voltages"] for m in self.members if m.doc and m.reason(now, stale) is None]
        cells = victron.positions(self.document, lists)
        document = self._victron(self.document, cells, self.settings.resolved_device_id)
        return None if document is None else json.dumps(document, separators=(",", ":"))

    # --- the loop ---------------------------------------------------------------------------

    def step(self, now: float) -> None:
        """Liveness, then whatever is due."""
        reasons = [m.reason(now, self.settings.stale_after) for m in self.members]
        changed = reasons != self._reasons
        for m, before, after in zip(self.members, self._reasons, reasons, strict=True):
            if before != after:
                if after is None:
                    LOG.info("bank: %s is live: counted in the bank", m.spec.prefix)
                elif before is None:
                    LOG.warning("bank: %s left out of the bank: %s", m.spec.prefix, after)
                elif before != "never seen":
                    LOG.info("bank: %s still left out: %s", m.spec.prefix, after)
        self._reasons = reasons
        if not self._never_told and now - self._started >= self.settings.stale_after:
            self._never_told = True
            for m in self.members:
                if not m.heard:
                    LOG.warning(
                        "bank: member %s: nothing seen on %s/state, /link or /status since the start "
                        "(is its daemon running, with that topic prefix, on this broker?)",
                        m.spec.prefix,
                        m.spec.prefix,
                    )
        due_batch = self._dirty and now - self._last_state >= MIN_INTERVAL
        if changed or due_batch or now - self._last_state >= self.settings.heartbeat:
            self.publish(now)
        if self._victron is not None and now - self._last_victron >= VICTRON_EVERY:
            self._last_victron = now
            payload = self.victron_document(now)
            if payload is not None:
                self.sink.publish_many([(self.victron_topic, payload)])
        if self.sink.healthy(now):
            self.notifier.watchdog(now)
        live = sum(r is None for r in reasons)
        self.notifier.status(f"{live} of {len(self.members)} packs live; {self.sink.condition()}")

    def run(self) -> int:
        LOG.info(
            "chargery %s: bank of %s, publishing under %s/",
            __version__,
            ", ".join(m.spec.prefix for m in self.members),
            self.topics.prefix,
        )
        self.sink.start()
        self.notifier.ready(f"0 of {len(self.members)} packs live")
        try:
            while not self.stop_event.is_set():
                try:
                    event = self.events.get(timeout=WAKE)
                except queue.Empty:
                    event = None
                now = self._clock()
                while event is not None:
                    self.receive(event, now)
                    event = None if self.events.empty() else self.events.get_nowait()
                self.step(now)
        finally:
            self.shutdown()
        return 0

    def shutdown(self) -> None:
        """A clean stop: `link` and `status` offline (retained)."""
        self.notifier.stopping()
        self.sink.stop([(self.topics.link, OFFLINE), (self.topics.status, OFFLINE)])
        LOG.info("stopped")


def _iso(wall: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(wall, UTC).isoformat(timespec="seconds")


def members_of(settings: Settings) -> list[MemberSpec]:
    """The members the settings name. Raises ConfigError."""
    if not settings.bank_members:
        raise ConfigError(
            "bank_members: no member named: --member PREFIX (once per pack), "
            "CHARGERY_BANK_MEMBERS or BANK_MEMBERS in chargery.py"
        )
    try:
        members = parse_members(settings.bank_members)
    except ValueError as exc:
        raise ConfigError(f"bank_members: {exc}") from None
    if any(m.prefix == settings.bank_prefix for m in members):
        raise ConfigError(f"bank_prefix: {settings.bank_prefix!r} is also a member's prefix; give the bank its own")
    return members


def run(settings: Settings) -> int:
    """The bank as a process: SIGTERM/SIGINT stop it cleanly (link offline)."""
    setup(settings.debug, settings.log_file)
    try:
        members = members_of(settings)
        bank = Bank(bank_settings(settings), members)
    except ConfigError as exc:
        return report(exc, "chargery.py bank")

    def _stop(signum: int, _frame: FrameType | None) -> None:
        LOG.info("%s received: stopping", signal.Signals(signum).name)
        bank.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        return bank.run()
    except Exception:
        logging.getLogger("chargery").exception("unexpected error; exiting so that systemd restarts the bank")
        return 1
