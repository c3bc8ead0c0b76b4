"""The evidence as a plain JSON document (what survives a restart), and back.

The document (version 1) is flat: the keys below, per-cell lists of the evidence's cell
count. Reading checks every value (a count, a number, a list of N of them) and raises
ValueError for anything else; the caller says so and starts afresh. Saving it is
:mod:`.store`'s business.
"""

from __future__ import annotations

import math
from typing import Any, Final

from .capacity import WINDOW, Snapshot
from .cutoffs import CUTOFFS_KEPT
from .engine import HealthEngine

VERSION: Final = 1
MAX_CELLS: Final = 24


def to_json(engine: HealthEngine) -> dict[str, Any]:
    """The evidence as a JSON-ready document; a copy."""
    capacity, sag, impedance = engine.capacity, engine.sag.estimate, engine.impedance
    announced = engine.announcer.announced
    return {
        "version": VERSION,
        "cells": engine.cells,
        "tops": [{**s, "dev": list(s["dev"])} for s in capacity.tops],
        "bottoms": [{**s, "dev": list(s["dev"])} for s in capacity.bottoms],
        "tops_total": capacity.tops_total,
        "bottoms_total": capacity.bottoms_total,
        "highest_at_top": list(capacity.highest_at_top),
        "lowest_at_bottom": list(capacity.lowest_at_bottom),
        "sag_ratio": _copy(sag.ratios),
        "sag_mohm": _copy(sag.absolute),
        "sag_steps": sag.count,
        "sag_weight": sag.weight,
        "impedance_ratio": _copy(impedance.estimate.ratios),
        "impedance_last": _copy(impedance.last),
        "impedance_count": impedance.estimate.count,
        "impedance_weight": impedance.estimate.weight,
        "impedance_current": impedance.current,
        "impedance_wall": impedance.wall,
        "lead_events": list(engine.lead.events),
        "cutoffs": [dict(c) for c in engine.cutoffs.history],
        "announced": list(announced) if announced else None,
    }


def from_json(data: Any, cell_limit: int | None = None) -> HealthEngine:
    """An engine with the evidence of :func:`to_json`. Raises ValueError when ``data`` is
    not such a document."""
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    if data.get("version") != VERSION:
        raise ValueError(f"version {data.get('version')!r}, expected {VERSION}")
    engine = HealthEngine(cell_limit)
    cutoffs = data.get("cutoffs")
    if not isinstance(cutoffs, list) or not all(
        isinstance(c, dict) and isinstance(c.get("message"), str) for c in cutoffs
    ):
        raise ValueError("cutoffs: not a list of events")
    engine.cutoffs.history.extend(dict(c) for c in cutoffs[-CUTOFFS_KEPT:])
    announced = data.get("announced")
    if announced is not None:
        if not (isinstance(announced, list) and len(announced) == 2 and isinstance(announced[0], str)):
            raise ValueError("announced: not [kind, cell]")
        engine.announcer.announced = (announced[0], announced[1] if isinstance(announced[1], int) else None)
    n = _count(data, "cells")
    if n == 0 or (cell_limit and n > cell_limit):
        return engine  # nothing per cell, or of more cells than are configured now: another pack
    if n < 2 or n > MAX_CELLS:
        raise ValueError(f"cells: {n} is not a cell count")
    engine.start_evidence(n)
    capacity = engine.capacity
    capacity.tops.extend(_snapshots(data, "tops", n))
    capacity.bottoms.extend(_snapshots(data, "bottoms", n))
    capacity.tops_total = _count(data, "tops_total")
    capacity.bottoms_total = _count(data, "bottoms_total")
    capacity.highest_at_top = _counts(data, "highest_at_top", n)
    capacity.lowest_at_bottom = _counts(data, "lowest_at_bottom", n)
    sag = engine.sag.estimate
    sag.ratios = _numbers(data, "sag_ratio", n)
    sag.absolute = _numbers(data, "sag_mohm", n)
    sag.count = _count(data, "sag_steps")
    sag.weight = _number(data, "sag_weight") or 0.0
    impedance = engine.impedance
    impedance.estimate.ratios = _numbers(data, "impedance_ratio", n)
    impedance.last = _numbers(data, "impedance_last", n)
    impedance.estimate.count = _count(data, "impedance_count")
    impedance.estimate.weight = _number(data, "impedance_weight") or 0.0
    impedance.current = _number(data, "impedance_current")
    impedance.wall = _number(data, "impedance_wall")
    engine.lead.events = _numbers(data, "lead_events", n - 1, optional=False) or []
    return engine


# --- checking one value ---------------------------------------------------------------------


def _copy(values: list[float] | None) -> list[float] | None:
    return None if values is None else list(values)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and abs(value) < 1e12


def _count(data: dict[str, Any], key: str) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{key}: {value!r} is not a count")
    return value


def _number(data: dict[str, Any], key: str) -> float | None:
    """A number, or None when absent."""
    value = data.get(key)
    if value is None:
        return None
    if not _is_number(value):
        raise ValueError(f"{key}: {value!r} is not a number")
    return float(value)


def _numbers(data: dict[str, Any], key: str, n: int, *, optional: bool = True) -> list[float] | None:
    """``n`` numbers, or None when absent and ``optional``."""
    value = data.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, list) or len(value) != n or not all(_is_number(v) for v in value):
        raise ValueError(f"{key}: not a list of {n} numbers")
    return [float(v) for v in value]


def _counts(data: dict[str, Any], key: str, n: int) -> list[int]:
    value = data.get(key)
    if not isinstance(value, list) or len(value) != n or not all(isinstance(v, int) and v >= 0 for v in value):
        raise ValueError(f"{key}: not a list of {n} counts")
    return list(value)


def _snapshots(data: dict[str, Any], key: str, n: int) -> list[Snapshot]:
    value = data.get(key)
    if not isinstance(value, list):
        raise ValueError(f"{key}: not a list")
    out = []
    for snap in value[-WINDOW:]:
        if not isinstance(snap, dict):
            raise ValueError(f"{key}: not a list of snapshots")
        dev = snap.get("dev")
        if not isinstance(dev, list) or len(dev) != n or not all(_is_number(v) for v in dev):
            raise ValueError(f"{key}: a snapshot without {n} deviations")
        out.append({"dev": [float(v) for v in dev], "rest": bool(snap.get("rest")), "cut": bool(snap.get("cut"))})
    return out
