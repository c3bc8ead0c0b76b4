"""Where publications go: the MQTT link, or stdout (``--dry-run``). Both implement
:class:`Sink` whole, so the daemon never asks which one it has."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Protocol

from .base import Message
from .config import printing
from .topics import ONLINE

if TYPE_CHECKING:
    from .config import Settings
    from .topics import Topics


@dataclass(frozen=True, slots=True)
class Connected:
    """The sink has (re)connected: everything is to be announced again."""


@dataclass(frozen=True, slots=True)
class Received:
    """A message on a subscribed topic. ``retained``: what the broker held when we
    subscribed, not a live publication."""

    topic: str
    payload: bytes
    retained: bool


SinkEvent = Connected | Received  # what the sink's thread hands to the daemon's


class Sink(Protocol):
    """An output. ``start`` says ``status online`` (retained) and then calls the
    ``on_connected`` it was made with, after every (re)connect; ``stop`` publishes the
    last words (retained, in order) and closes."""

    @property
    def connected(self) -> bool: ...

    def start(self) -> None: ...

    def publish(self, topic: str, payload: str, retain: bool = False, qos: int = 0) -> bool: ...

    def publish_many(self, messages: list[Message]) -> None:
        """Telemetry (not retained, QoS 0), one frame's worth at a time."""

    def stop(self, last_words: list[Message]) -> None: ...

    def healthy(self, now: float) -> bool:
        """Whether it makes progress (for the watchdog)."""

    def condition(self) -> str:
        """A few words for the status line: ``MQTT connected``, ``dry run`` ..."""


class PrintSink:
    """``--dry-run``: every publication as one ``topic payload`` line on stdout.

    ``summarise`` (``--demo`` without ``--dry-run``) prints the battery first: a
    retained document longer than a line (Home Assistant discovery) is shown as its
    topic, entity count and size instead of in full.
    """

    def __init__(
        self,
        status_topic: str,
        *,
        on_connected: Callable[[], None] = lambda: None,
        on_closed: Callable[[], None] = lambda: None,
        summarise: bool = False,
        out: IO[str] | None = None,
    ) -> None:
        self._status_topic = status_topic
        self._on_connected = on_connected
        self._on_closed = on_closed
        self._summarise = summarise
        self._out = out or sys.stdout
        self._open = True

    @property
    def connected(self) -> bool:
        return self._open

    def start(self) -> None:
        self.publish(self._status_topic, ONLINE, retain=True)
        self._on_connected()

    def publish(self, topic: str, payload: str, retain: bool = False, qos: int = 0) -> bool:
        if not self._open:
            return False
        if self._summarise and retain and len(payload) > SUMMARY_OVER:
            payload = summary(payload)
        try:
            self._out.write(f"{topic} {payload}\n")
            self._out.flush()
        except (BrokenPipeError, ValueError):
            # The reader went away (| head): stop quietly, as other tools do.
            self._open = False
            self._on_closed()
            return False
        return True

    def publish_many(self, messages: list[Message]) -> None:
        for topic, payload in messages:
            self.publish(topic, payload)

    def stop(self, last_words: list[Message]) -> None:
        for topic, payload in last_words:
            self.publish(topic, payload, retain=True, qos=1)

    def healthy(self, now: float) -> bool:
        return True

    def condition(self) -> str:
        return "dry run"


SUMMARY_OVER = 200  # characters: longer retained documents are summarised by --demo


def summary(payload: str) -> str:
    """``(discovery: 26 entities, 10214 bytes; -d or --dry-run shows it whole)``."""
    try:
        document = json.loads(payload)
        entities = len(document.get("components") or {})
    except (ValueError, AttributeError):
        entities = 0
    what = f"{entities} entities, " if entities else ""
    return f"({what}{len(payload)} bytes; --dry-run or -d shows it whole)"


def make_sink(
    settings: Settings,
    topics: Topics,
    subscriptions: tuple[str, ...],
    *,
    on_event: Callable[[SinkEvent], None],
    on_closed: Callable[[], None],
    clock: Callable[[], float] = time.monotonic,
) -> Sink:
    """The MQTT link, or stdout with ``--dry-run`` (``--demo`` alone prints a summary of
    what is longer than a line)."""
    connected = Connected()
    mode = printing(settings)
    if mode != "broker":
        return PrintSink(
            topics.status, on_connected=lambda: on_event(connected), on_closed=on_closed, summarise=mode == "summary"
        )
    from .mqtt_link import MqttLink

    return MqttLink(
        settings,
        will_topic=topics.status,
        subscriptions=subscriptions,
        on_connected=lambda: on_event(connected),
        on_message=lambda topic, payload, retained: on_event(Received(topic, payload, retained)),
        clock=clock,
    )
