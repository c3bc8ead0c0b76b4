"""Topic names and payloads: what each frame publishes. Pure functions and constants.

The thirteen topics of the original script keep their names and plain-text numbers.
Numbers are written at the protocol's resolution (``53.294``, ``22.8``, ``-22.3``):
values come from integer counts divided once, so ``repr`` prints them exactly.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from .outputs import Message, Output, Timing, World
from .protocol import MODE_NAMES, CellsFrame, Frame, ImpedancesFrame, StatusFrame
from .state import BatteryState

if TYPE_CHECKING:
    from .config import Settings

LEGACY_TOPICS: Final = (
    "watthour",
    "amphour",
    "batteryvolt",
    "cellhigh",
    "celllow",
    "maxvolt",
    "current",
    "modename",
    "modeint",
    "temp1",
    "temp2",
    "soc",
    "aggimped",
)
STATUS: Final = "status"  # online/offline, retained, the Last Will
LINK: Final = "link"  # online while frames arrive, retained
STATE: Final = "state"  # the JSON document
EVENT: Final = "event"  # one JSON document per cut-off or new health warning, not retained
ONLINE: Final = "online"
OFFLINE: Final = "offline"
# The original script's `modename`: the mode names of protocol.MODE_NAMES, capitalised.
MODE_TITLES: Final = {code: name.capitalize() for code, name in MODE_NAMES.items()}


class Topics:
    """Every topic under one prefix, built once: the per-frame path only looks them up."""

    def __init__(self, prefix: str, publish_cells: bool = False) -> None:
        self.prefix = prefix
        self.publish_cells = publish_cells
        self.status = f"{prefix}/{STATUS}"
        self.link = f"{prefix}/{LINK}"
        self.state = f"{prefix}/{STATE}"
        self.legacy = {name: f"{prefix}/{name}" for name in LEGACY_TOPICS}
        self.cellvolt = [f"{prefix}/cellvolt{i}" for i in range(1, 25)]
        self.cellimped = [f"{prefix}/cellimped{i}" for i in range(1, 25)]

    def for_frame(self, frame: Frame, state: BatteryState) -> list[Message]:
        """The plain-text topics ``frame`` carries (``state`` already updated with it)."""
        return _BUILDERS[type(frame)](self, frame, state)

    def all_current(self, state: BatteryState) -> list[Message]:
        """Every plain-text topic from the latest frames (after a reconnect)."""
        out: list[Message] = []
        for frame in (state.cells, state.status, state.impedances):
            if frame is not None:
                out += self.for_frame(frame, state)
        return out


def _cells(topics: Topics, frame: Frame, state: BatteryState) -> list[Message]:
    assert type(frame) is CellsFrame and state.summary is not None
    legacy = topics.legacy
    summary = state.summary
    out: list[Message] = []
    if frame.energy_wh is not None and frame.capacity_ah is not None:
        out.append((legacy["watthour"], repr(frame.energy_wh)))
        out.append((legacy["amphour"], repr(frame.capacity_ah)))
    out.append((legacy["batteryvolt"], repr(summary.pack_voltage)))
    out.append((legacy["cellhigh"], repr(summary.cell_max)))
    out.append((legacy["celllow"], repr(summary.cell_min)))
    if frame.soc is not None:
        out.append((legacy["soc"], repr(frame.soc)))
    if topics.publish_cells:
        out += zip(topics.cellvolt, map(repr, summary.voltages), strict=False)
    return out


def _status(topics: Topics, frame: Frame, state: BatteryState) -> list[Message]:
    assert type(frame) is StatusFrame
    legacy = topics.legacy
    out: list[Message] = [
        (legacy["maxvolt"], repr(frame.charge_end_voltage)),
        (legacy["current"], repr(frame.current)),
    ]
    if frame.mode_code is not None:
        out.append((legacy["modename"], MODE_TITLES.get(frame.mode_code, "Unknown")))
        out.append((legacy["modeint"], repr(frame.mode_code)))
    out.append((legacy["temp1"], repr(frame.temperature_1)))
    out.append((legacy["temp2"], repr(frame.temperature_2)))
    if frame.soc is not None:
        out.append((legacy["soc"], repr(frame.soc)))
    return out


def _impedances(topics: Topics, frame: Frame, state: BatteryState) -> list[Message]:
    assert type(frame) is ImpedancesFrame and state.cell_impedances is not None
    out: list[Message] = [(topics.legacy["aggimped"], repr(state.impedance_total))]
    if topics.publish_cells:
        out += zip(topics.cellimped, map(repr, state.cell_impedances), strict=False)
    return out


_BUILDERS: Final[dict[type, Callable[[Topics, Frame, BatteryState], list[Message]]]] = {
    CellsFrame: _cells,
    StatusFrame: _status,
    ImpedancesFrame: _impedances,
}


def legacy_output(settings: Settings, topics: Topics) -> Output:
    """The plain-text topics, with every frame that carries them (telemetry: not retained)."""
    return Output(
        "legacy",
        topics.prefix,
        Timing(per_frame=True, announce=True),
        build=lambda world: topics.all_current(world.state),
        build_frame=lambda frame, world: topics.for_frame(frame, world.state),
    )


def _link(world: World) -> str | None:
    online = world.link_online
    return None if online is None else ONLINE if online else OFFLINE  # None: nothing true to say yet


def link_output(settings: Settings, topics: Topics) -> Output:
    """``link``: retained, said only when true (see :mod:`chargerybms.schedule`)."""
    return Output("link", topics.link, Timing(link_change=True, announce=True, live=False), _link, retain=True, qos=1)


def event_output(settings: Settings, topics: Topics) -> Output:
    """``event``: each cut-off and new health warning once, as it happens (not retained: an
    event is news, not a state)."""
    topic = f"{topics.prefix}/{EVENT}"

    def build_frame(frame: Frame, world: World) -> list[Message]:
        return [(topic, json.dumps(event, separators=(",", ":"))) for event in world.new_events]

    return Output("event", topic, Timing(per_frame=True), build_frame=build_frame)
