"""Cell health as one of the daemon's views: the engine fed every frame, its keys in
``state`` (:data:`FIELDS`), and its evidence on disk: ``health-<device id>.json`` in the
state directory, beside the energy meters, written atomically with a backup
(:mod:`chargerybms.persist`).

A corrupt file is said in the log and survived: the backup is used, or the evidence starts
afresh; the corrupt copy is kept aside for the user. The daemon saves when the evidence
has changed, on its schedule (like the energy meters) and at stop.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ...logs import LOG, RateLimited
from ...persist import read_copies, write_atomic
from .codec import from_json, to_json
from .engine import HealthEngine

if TYPE_CHECKING:
    from ...base import Event
    from ...battery import BatteryState
    from ...config import Settings
    from ...protocol import Frame

#: Its keys in the ``state`` document (:func:`state_fields`).
FIELDS: Final = (
    "weakest_cell",
    "health_warning",
    "health_evidence",
    "last_cutoff",
    "last_cutoff_time",
    "top_spread",
    "cell_sag_ratios",
    "cell_impedance_ratios",
)


def state_fields(engine: HealthEngine) -> dict[str, Any]:
    """The ``state`` document's cell-health keys. A loose balance lead names no cell
    (``weakest_cell`` null): the evidence names the lead."""
    v = engine.verdict()
    history = engine.cutoffs.history
    last = history[-1] if history else None
    values = (
        v.cell,
        v.warning,
        "; ".join(v.evidence),
        last["message"] if last else None,
        last["time"] if last else None,
        engine.capacity.top_spread(),
        _rounded(engine.sag.estimate.ratios),
        _rounded(engine.impedance.estimate.ratios),
    )
    return dict(zip(FIELDS, values, strict=True))


def _rounded(values: list[float] | None) -> list[float] | None:
    return None if values is None else [round(v, 2) for v in values]


def health_path(state_dir: Path, device_id: str) -> Path:
    return state_dir / f"health-{device_id}.json"


def parse(text: str, cell_limit: int | None = None) -> HealthEngine:
    """An engine with the evidence in ``text``. Raises ValueError when it is not that."""
    return from_json(json.loads(text), cell_limit)


def read(
    path: Path, cell_limit: int | None = None, *, move_corrupt: bool = True
) -> tuple[HealthEngine | None, list[str]]:
    """The saved engine (from the file, else its backup) or None, and the problems met."""
    copies, problems = read_copies(path, lambda text: parse(text, cell_limit), move_corrupt=move_corrupt)
    return (copies[0][1] if copies else None), problems


class HealthStore:
    """Loads and saves one daemon's evidence. ``path`` None: nothing is kept (``--demo``)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._limited = RateLimited()

    def load(self, cell_limit: int | None = None) -> HealthEngine:
        if self.path is None:
            return HealthEngine(cell_limit)
        engine, problems = read(self.path, cell_limit)
        for problem in problems:
            if engine is not None:
                LOG.error("cell health: %s; continuing from the backup", problem)
            else:
                LOG.error("cell health: %s; no usable copy left, the evidence starts afresh", problem)
        if engine is None:
            return HealthEngine(cell_limit)
        LOG.info(
            "cell health: evidence of %d cells loaded (%d tops, %d bottoms, %d current steps)",
            engine.cells,
            engine.capacity.tops_total,
            engine.capacity.bottoms_total,
            engine.sag.steps,
        )
        return engine

    def save(self, engine: HealthEngine) -> None:
        """Write the evidence if it changed since the last save."""
        if self.path is None or not engine.changed:
            return
        try:
            write_atomic(self.path, json.dumps(to_json(engine), separators=(",", ":")))
        except OSError as exc:
            self._limited.log(logging.ERROR, "save", "cell health: cannot save %s: %s", self.path, exc.strerror or exc)
            return
        engine.mark_saved()
        self._limited.reset("save")


class HealthView:
    """The cell-health engine as one of the daemon's views (:class:`~chargerybms.base.View`):
    fed every frame, its verdict in ``state``, cut-offs and new warnings as events, its
    evidence kept in the state directory."""

    def __init__(self, store: HealthStore, cell_limit: int | None) -> None:
        self.store = store
        self.engine = store.load(cell_limit)

    def feed(self, frame: Frame, state: BatteryState, now: float, wall: float) -> list[Event]:
        events = self.engine.feed(frame, now, wall)
        for event in events:
            # A cut-off at the end voltage is the BMS doing its job (daily, at the top of a
            # charge): news, not a problem. A health warning is one.
            level = logging.WARNING if event["type"] == "health_warning" else logging.INFO
            LOG.log(level, "cell health: %s", event["message"])
        return events

    def fields(self) -> dict[str, Any]:
        return state_fields(self.engine)

    def pause(self) -> None:
        pass  # the engine judges by the frames' own values, not by time between them

    def save(self) -> None:
        self.store.save(self.engine)


def health_view(settings: Settings) -> HealthView | None:
    if not settings.cell_health:
        return None
    from ...config import saved_in

    directory = saved_in(settings)  # None: nothing is kept (the simulator's rule, in config)
    path = None if directory is None else health_path(directory, settings.resolved_device_id)
    return HealthView(HealthStore(path), settings.cells)
