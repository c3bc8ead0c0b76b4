"""Energy meters for Home Assistant's Energy dashboard: kWh charged and discharged.

Integrated from pack voltage x current, the direction taken from the BMS mode byte, over
the monotonic clock (wall-clock jumps change nothing). Saved every minute (the daemon's
schedule) and at stop, atomically (write, fsync, rename) with the previous file kept as a
backup: a power cut loses at most the last minute of energy, and a corrupt file is
reported, never silently reset.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ..config import default_state_dir as default_state_dir  # noqa: PLC0414 - re-exported: the health command reads it here
from ..config import saved_in
from ..logs import LOG, RateLimited
from ..persist import read_copies, write_atomic
from ..protocol import StatusFrame

if TYPE_CHECKING:
    from ..base import Event
    from ..battery import BatteryState
    from ..config import Settings
    from ..protocol import Frame

FIELDS: Final = ("energy_charged", "energy_discharged")  # its keys in the state document

MAX_GAP: Final = 30.0  # seconds: a longer silence is not integrated as if power had held


class EnergyMeters:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.charged_wh = 0.0
        self.discharged_wh = 0.0
        self._last: tuple[float, float, float] | None = None  # (monotonic, charge W, discharge W)
        self._dirty = False
        self._limited = RateLimited()
        if path is not None:
            self._load(path)

    @property
    def charged_kwh(self) -> float:
        return round(self.charged_wh / 1000, 3)

    @property
    def discharged_kwh(self) -> float:
        return round(self.discharged_wh / 1000, 3)

    def add(self, charge_w: float | None, discharge_w: float | None, now: float) -> None:
        """A new power reading at monotonic time ``now``: integrate the one before it."""
        if charge_w is None or discharge_w is None:
            self._last = None
            return
        last = self._last
        if last is not None:
            dt = now - last[0]
            if 0 < dt <= MAX_GAP and (last[1] > 0 or last[2] > 0):  # no current, nothing to save
                self.charged_wh += max(0.0, last[1]) * dt / 3600
                self.discharged_wh += max(0.0, last[2]) * dt / 3600
                self._dirty = True
        self._last = (now, charge_w, discharge_w)

    # --- as a view (outputs.View) -----------------------------------------------------------

    def feed(self, frame: Frame, state: BatteryState, now: float, wall: float) -> list[Event]:
        if type(frame) is StatusFrame:  # the current, so a power reading
            self.add(*state.directed_power(), now)
        return []

    def fields(self) -> dict[str, Any]:
        return dict(zip(FIELDS, (self.charged_kwh, self.discharged_kwh), strict=True))

    def pause(self) -> None:
        """No data for a while (link stale): do not integrate across the gap."""
        self._last = None

    # --- persistence ----------------------------------------------------------------------

    def save(self) -> None:
        """Write the meters if they changed since the last save (the daemon's schedule
        calls this every minute, and at stop)."""
        if self.path is None or not self._dirty:
            return
        body = json.dumps(
            {"version": 1, "energy_charged_wh": self.charged_wh, "energy_discharged_wh": self.discharged_wh}
        )
        try:
            write_atomic(self.path, body)
        except OSError as exc:
            self._limited.log(
                logging.ERROR, "save", "energy meters: cannot save %s: %s", self.path, exc.strerror or exc
            )
            return
        self._dirty = False
        self._limited.reset("save")

    def _load(self, path: Path) -> None:
        copies, problems = read_copies(path, _parse)
        found = [values for _, values in copies]
        if found:
            # Both files valid: the larger of each, so a meter never goes down.
            self.charged_wh = max(v[0] for v in found)
            self.discharged_wh = max(v[1] for v in found)
        for problem in problems:
            if found:
                LOG.error("energy meters: %s; continuing from the backup", problem)
            else:
                LOG.error("energy meters: %s; no usable copy left, the meters start again from 0", problem)
        if found or problems:
            LOG.info("energy meters: charged %.3f kWh, discharged %.3f kWh", self.charged_kwh, self.discharged_kwh)


def _parse(text: str) -> tuple[float, float]:
    data = json.loads(text)
    values = (float(data["energy_charged_wh"]), float(data["energy_discharged_wh"]))
    if not all(math.isfinite(v) and v >= 0 for v in values):
        raise ValueError("negative or not a number")
    return values


def meter_path(settings: Settings) -> Path | None:
    """Where this device's meters are kept; None when nothing is saved (``config.saved_in``:
    the simulator, unless a state directory was named)."""
    directory = saved_in(settings)
    return None if directory is None else directory / f"energy-{settings.resolved_device_id}.json"


def energy_view(settings: Settings) -> EnergyMeters:
    """The meters, always on (Home Assistant's Energy dashboard reads them)."""
    return EnergyMeters(meter_path(settings))
