"""The types every output and view is made of: the lowest layer above the protocol.

An output is a pure builder from the battery as last seen (a :class:`Context`) plus its
topic, retain flag, QoS and :class:`Timing`. The daemon asks the schedule what is due and
publishes whatever the builders return; neither names a client. A new client (a Venus OS
driver, a dashboard's data, a health event) is one module in ``outputs/`` with a factory
``output(settings, topics) -> Output | None`` and one line in
:func:`chargerybms.registry.registry`. A view (``views/``) is fed every frame and adds
its keys to the ``state`` document.

Imports nothing of ours but the protocol (the rest only for type checking).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

from .protocol import Frame

if TYPE_CHECKING:
    from .battery import BatteryState
    from .config import Settings
    from .topics import Topics


Event = dict[str, Any]  # one document on <prefix>/event: type, message, time, cell, ...


class View(Protocol):
    """A view derived from the frames as they come (the energy meters, the cell health): fed
    every frame, its keys in the ``state`` document, the events it raises, what it keeps."""

    def feed(self, frame: Frame, state: BatteryState, now: float, wall: float) -> list[Event]: ...

    def fields(self) -> dict[str, Any]:
        """Its part of the ``state`` document."""

    def pause(self) -> None:
        """The link went offline: nothing is to be integrated across the gap."""

    def save(self) -> None:
        """Keep what must survive a restart (on the schedule, and at stop)."""


def _no_extra() -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Context:
    """What a builder may read, made by the daemon for one publication and not changed
    after: the battery, whether the link is live, the time, and the daemon's own values
    (energy meters, link quality, derived views) that go into the ``state`` document."""

    state: BatteryState
    link_online: bool | None  # True while frames arrive, False once stale, None before anything was said
    now: float  # the monotonic time of this publication (for outputs that hold values back)
    new_events: tuple[Event, ...] = ()  # what the views raised on the frame being handled (per-frame builders)
    make_extra: Callable[[], dict[str, Any]] = _no_extra

    def document_extra(self) -> dict[str, Any]:
        """The views' and the daemon's part of the ``state`` document: made at most once
        per publication, however many outputs ask (and not at all if none does)."""
        return self._extra

    @cached_property
    def _extra(self) -> dict[str, Any]:
        return self.make_extra()


Message = tuple[str, str]  # (topic, payload)

#: What a builder returns: nothing to say (None), one payload on the output's own topic,
#: or messages on topics of its own choosing.
Payload = str | list[Message] | None


@dataclass(frozen=True, slots=True)
class Timing:
    """When an output is published. Flags combine."""

    per_frame: bool = False  # with every frame, built from that frame (``build_frame``)
    burst: bool = False  # once per burst of frames, and at the heartbeat while the link is online
    every: float | None = None  # every so many seconds while the link is online
    link_change: bool = False  # when the link goes online or offline
    link_offline: bool = False  # when the link goes offline (the last word on live values)
    announce: bool = False  # after every (re)connect and whenever an output asks (Home Assistant restarted)
    model_change: bool = False  # when the BMS model (its cell slots) becomes known or changes
    live: bool = True  # describes live values: announced only while the link is online
    # Sent only when it differs from the last one sent, or that one is `heartbeat` old, or
    # at an announcement: for a document whose values are held back (ha_state).
    changes_only: bool = False


@dataclass(frozen=True)
class Output:
    name: str
    topic: str
    timing: Timing
    build: Callable[[Context], Payload] = lambda context: None
    build_frame: Callable[[Frame, Context], list[Message]] | None = None  # for Timing.per_frame
    retain: bool = False
    qos: int = 0
    # Topics to subscribe to, and what to do with their messages (topic, payload, retained:
    # what the broker held when we subscribed): a reason to announce again, or None.
    subscriptions: tuple[str, ...] = ()
    on_message: Callable[[str, bytes, bool, Context], str | None] | None = None


Factory = Callable[["Settings", "Topics"], Output | None]
