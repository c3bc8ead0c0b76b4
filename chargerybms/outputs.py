"""Outputs: every kind of publication, as one concept, and the registry of them all.

An output is a pure builder from the battery as last seen (a :class:`World`) plus its
topic, retain flag, QoS and :class:`Timing`. The daemon asks the schedule what is due and
publishes whatever the builders return; neither names a client. A new client (a Venus OS
driver, a dashboard's data, a health event) is one module with a factory
``output(settings, topics) -> Output | None`` and one line in :data:`REGISTRY`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .protocol import Frame

if TYPE_CHECKING:
    from .config import Settings
    from .state import BatteryState
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


class World(Protocol):
    """What a builder may read: the battery, whether the link is live, and the daemon's own
    values (energy meters, link quality, derived views) that go into the ``state`` document."""

    @property
    def state(self) -> BatteryState: ...

    @property
    def link_online(self) -> bool | None:
        """True while frames arrive, False once stale, None before anything was said."""

    def document_extra(self) -> dict[str, Any]: ...

    @property
    def now(self) -> float:
        """The monotonic time of this publication (for outputs that hold values back)."""

    @property
    def new_events(self) -> list[Event]:
        """What the views raised on the frame being handled (for per-frame builders)."""


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
    build: Callable[[World], Payload] = lambda world: None
    build_frame: Callable[[Frame, World], list[Message]] | None = None  # for Timing.per_frame
    retain: bool = False
    qos: int = 0
    # Topics to subscribe to, and what to do with their messages (topic, payload, retained:
    # what the broker held when we subscribed): a reason to announce again, or None.
    subscriptions: tuple[str, ...] = ()
    on_message: Callable[[str, bytes, bool, World], str | None] | None = None


Factory = Callable[["Settings", "Topics"], Output | None]


def registry() -> Sequence[Factory]:
    # Imported here: each output module imports this one for Output and Timing.
    from . import discovery, state, topics, victron

    return (
        topics.legacy_output,  # the original script's thirteen topics (and --publish-cells)
        topics.link_output,  # `link`: online/offline, retained
        state.state_output,  # `state`: the JSON document
        topics.event_output,  # `event`: cut-offs and health warnings, as they happen
        discovery.ha_state_output,  # `ha_state`: what Home Assistant's entities read
        discovery.output,  # Home Assistant MQTT discovery
        victron.output,  # --victron: a Venus OS driver's document
    )


def build_views(settings: Settings) -> list[View]:
    """The views these settings switch on, in the order their keys appear in ``state``."""
    from .energy import energy_view
    from .views.health.store import health_view

    return [v for v in (energy_view(settings), health_view(settings)) if v is not None]


def build_outputs(settings: Settings, topics: Topics) -> list[Output]:
    """Every output these settings switch on, in registry order (the order of publication)."""
    return [o for o in (factory(settings, topics) for factory in registry()) if o is not None]
