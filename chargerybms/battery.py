"""The battery as last seen: the latest of each frame, and the values derived from them.

Pure: the caller passes the clock readings in. :meth:`BatteryState.document` is the
``<prefix>/state`` JSON document; the legacy topics are built from the same numbers in
:mod:`chargerybms.outputs.legacy`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .protocol import CellsFrame, Frame, ImpedancesFrame, StatusFrame


def iso_time(wall: float | None) -> str | None:
    if wall is None:
        return None
    return datetime.fromtimestamp(wall, UTC).isoformat(timespec="seconds")


@dataclass(frozen=True, slots=True)
class CellSummary:
    """Sums and extremes over the cells really wired (the first N slots)."""

    voltages: tuple[float, ...]
    pack_voltage: float
    cell_min: float
    cell_max: float
    cell_min_index: int  # 1-based
    cell_max_index: int  # 1-based
    cell_delta: float

    @classmethod
    def of(cls, voltages: tuple[float, ...]) -> CellSummary:
        low = min(voltages)
        high = max(voltages)
        return cls(
            voltages,
            round(sum(voltages), 3),
            low,
            high,
            voltages.index(low) + 1,
            voltages.index(high) + 1,
            round(high - low, 3),
        )


class BatteryState:
    """Latest frames and derived values. ``cell_limit`` is the configured cell count."""

    def __init__(self, cell_limit: int | None = None) -> None:
        self.cell_limit = cell_limit
        self.cells: CellsFrame | None = None
        self.status: StatusFrame | None = None
        self.impedances: ImpedancesFrame | None = None
        self.summary: CellSummary | None = None
        self.cell_impedances: tuple[float, ...] | None = None  # of the cells really wired
        self.impedance_total: float | None = None
        self.slots: int | None = None  # cell slots the BMS sends: its model
        self.seen: dict[str, str] = {}  # frame type -> when last seen (ISO 8601, UTC)
        self._iso: tuple[int, str | None] = (-1, None)  # the last second formatted
        self._encoded: dict[str, str] = {}
        self._changed_parts = {"cells": True, "status": True, "impedances": True}  # to encode again

    def _stamp(self, wall: float) -> str | None:
        second = int(wall)
        if self._iso[0] != second:
            self._iso = (second, iso_time(second))
        return self._iso[1]

    def update(self, frame: Frame, wall: float) -> None:
        limit = self.cell_limit or None  # a slice end: None keeps every slot
        stamp = self._stamp(wall)
        assert stamp is not None
        if type(frame) is StatusFrame:
            self.status = frame
            self.seen["status"] = stamp
            self._changed_parts["status"] = True
        elif type(frame) is CellsFrame:
            self.cells = frame
            self.slots = len(frame.cell_voltages)
            self.summary = CellSummary.of(frame.cell_voltages[:limit])
            self.seen["cells"] = stamp
            self._changed_parts["cells"] = True
        elif type(frame) is ImpedancesFrame:
            self.impedances = frame
            self.cell_impedances = frame.cell_impedances[:limit]
            self.impedance_total = round(sum(self.cell_impedances), 1)
            self.seen["impedances"] = stamp
            self._changed_parts["impedances"] = True

    @property
    def has_data(self) -> bool:
        return bool(self.seen)

    @property
    def soc(self) -> int | None:
        if self.status is not None and self.status.soc is not None:
            return self.status.soc
        return self.cells.soc if self.cells is not None else None

    @property
    def power(self) -> float | None:
        """Pack power in W, signed like the current (negative while discharging)."""
        if self.summary is None or self.status is None:
            return None
        return round(self.summary.pack_voltage * self.status.current, 1)

    def directed_power(self) -> tuple[float | None, float | None]:
        """(charge power, discharge power), both >= 0, the direction from the mode byte."""
        power = self.power
        if power is None or self.status is None or self.status.mode_code is None:
            return None, None
        magnitude = abs(power)
        if self.status.mode_code == 1:
            return magnitude, 0.0
        if self.status.mode_code == 0:
            return 0.0, magnitude
        return 0.0, 0.0

    @property
    def last_seen(self) -> str | None:
        """When the latest frame of any type arrived (ISO 8601, UTC)."""
        return self._iso[1]

    # The state document in parts, one per frame type: a part changes only when its frame
    # arrives, so its JSON is encoded then, once, not again for every publication. Each
    # part is a function of its own frame only (it is handed nothing else), so a value that
    # needs two frames cannot end up cached in one of them: it belongs in the combined part.

    def _frame_part(self, kind: str) -> dict[str, Any]:
        if kind == "cells":
            return _cells_part(self.cells, self.summary, self.seen.get("cells"))
        if kind == "status":
            return _status_part(self.status, self.seen.get("status"))
        return _impedances_part(
            self.impedances, self.cell_impedances, self.impedance_total, self.seen.get("impedances")
        )

    def _frame_parts(self) -> dict[str, dict[str, Any]]:
        return {kind: self._frame_part(kind) for kind in self._changed_parts}

    def _combined_part(self, extra: dict[str, Any] | None) -> dict[str, Any]:
        """Values that depend on more than one frame, and the caller's extras."""
        charge_power, discharge_power = self.directed_power()
        part = {"power": self.power, "charge_power": charge_power, "discharge_power": discharge_power, "soc": self.soc}
        if extra:
            part.update(extra)
        return part

    def document(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """The ``state`` JSON document. A value the BMS has not sent is null, never 0."""
        out: dict[str, Any] = {}
        for part in self._frame_parts().values():
            out.update(part)
        out.update(self._combined_part(extra))
        return out

    def document_json(self, extra: dict[str, Any] | None = None) -> str:
        """:meth:`document` as JSON, reusing each frame type's part as encoded on arrival."""
        parts = self._encoded
        for kind, changed in self._changed_parts.items():
            if changed:  # only the part whose frame has arrived is made and encoded again
                parts[kind] = _encode(self._frame_part(kind))[1:-1]
                self._changed_parts[kind] = False
        return (
            f"{{{parts['cells']},{parts['status']},{parts['impedances']},{_encode(self._combined_part(extra))[1:-1]}}}"
        )


def _cells_part(cells: CellsFrame | None, summary: CellSummary | None, seen: str | None) -> dict[str, Any]:
    return {
        "pack_voltage": summary.pack_voltage if summary else None,
        "energy_wh": cells.energy_wh if cells else None,
        "capacity_ah": cells.capacity_ah if cells else None,
        "cell_count": len(summary.voltages) if summary else None,
        "cell_voltages": list(summary.voltages) if summary else None,
        "cell_min": summary.cell_min if summary else None,
        "cell_max": summary.cell_max if summary else None,
        "cell_min_index": summary.cell_min_index if summary else None,
        "cell_max_index": summary.cell_max_index if summary else None,
        "cell_delta": summary.cell_delta if summary else None,
        "cells_seen": seen,
    }


def _status_part(status: StatusFrame | None, seen: str | None) -> dict[str, Any]:
    return {
        "current": status.current if status else None,
        "mode": status.mode if status else None,
        "mode_code": status.mode_code if status else None,
        "temperature_1": status.temperature_1 if status else None,
        "temperature_2": status.temperature_2 if status else None,
        "charge_end_voltage": status.charge_end_voltage if status else None,
        "discharge_end_voltage": status.discharge_end_voltage if status else None,
        "charge_protection": status.charge_protection if status else None,
        "discharge_protection": status.discharge_protection if status else None,
        "status_seen": seen,
    }


def _impedances_part(
    imp: ImpedancesFrame | None, cell_impedances: tuple[float, ...] | None, total: float | None, seen: str | None
) -> dict[str, Any]:
    return {
        "cell_impedances": list(cell_impedances) if cell_impedances is not None else None,
        "impedance_total": total,
        "impedance_mode": imp.mode if imp else None,
        "impedance_current": imp.current if imp else None,
        "impedances_seen": seen,
    }


_encode = json.JSONEncoder(check_circular=False, separators=(",", ":")).encode
