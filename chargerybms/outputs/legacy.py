"""The original script's thirteen plain-text topics (and ``--publish-cells``), with every
frame that carries them.

Numbers are written at the protocol's resolution (``53.294``, ``22.8``, ``-22.3``):
values come from integer counts divided once, so ``repr`` prints them exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from ..base import Message, Output, Timing
from ..protocol import MODE_NAMES, CellsFrame, Frame, ImpedancesFrame, StatusFrame

if TYPE_CHECKING:
    from ..battery import BatteryState
    from ..config import Settings
    from ..topics import Topics

# The original script's `modename`: the mode names of protocol.MODE_NAMES, capitalised.
MODE_TITLES: Final = {code: name.capitalize() for code, name in MODE_NAMES.items()}


def for_frame(topics: Topics, frame: Frame, state: BatteryState) -> list[Message]:
    """The plain-text topics ``frame`` carries (``state`` already updated with it)."""
    return _BUILDERS[type(frame)](topics, frame, state)


def all_current(topics: Topics, state: BatteryState) -> list[Message]:
    """Every plain-text topic from the latest frames (after a reconnect)."""
    out: list[Message] = []
    for frame in (state.cells, state.status, state.impedances):
        if frame is not None:
            out += for_frame(topics, frame, state)
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


def output(settings: Settings, topics: Topics) -> Output:
    """The plain-text topics, with every frame that carries them (telemetry: not retained)."""
    return Output(
        "legacy",
        topics.prefix,
        Timing(per_frame=True, announce=True),
        build=lambda world: all_current(topics, world.state),
        build_frame=lambda frame, world: for_frame(topics, frame, world.state),
    )
