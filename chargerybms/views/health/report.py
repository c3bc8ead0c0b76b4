"""Everything the ``health`` command shows of an engine's evidence, JSON-ready."""

from __future__ import annotations

from typing import Any

from .common import iso, mean
from .engine import HealthEngine


def report(engine: HealthEngine, wall: float | None = None) -> dict[str, Any]:
    """The verdict, per cell the figures behind it, the cut-offs. ``wall`` (now) gives the
    impedance measurement's age."""
    v = engine.verdict()
    capacity, sag, impedance = engine.capacity, engine.sag.estimate, engine.impedance
    cells = []
    for i in range(engine.cells):
        top = [s["dev"][i] for s in capacity.tops]
        bottom = [s["dev"][i] for s in capacity.bottoms]
        cells.append(
            {
                "cell": i + 1,
                "top_deviation_mv": round(mean(top), 1) if top else None,
                "bottom_deviation_mv": round(mean(bottom), 1) if bottom else None,
                "times_highest_at_top": capacity.highest_at_top[i],
                "times_lowest_at_bottom": capacity.lowest_at_bottom[i],
                "sag_ratio": round(sag.ratios[i], 2) if sag.ratios else None,
                "sag_mohm": round(sag.absolute[i], 3) if sag.absolute else None,
                "impedance_ratio": round(impedance.estimate.ratios[i], 2) if impedance.estimate.ratios else None,
                "impedance_mohm": impedance.last[i] if impedance.last else None,
            }
        )
    age = None
    if wall is not None and impedance.wall is not None:
        age = max(0.0, round(wall - impedance.wall, 1))
    return {
        "weakest_cell": v.cell,
        "balance_lead": [v.lead, v.lead + 1] if v.lead is not None else None,
        "warning": v.warning,
        "kind": v.kind,
        "evidence": list(v.evidence),
        "cells": cells,
        "tops": capacity.tops_total,
        "bottoms": capacity.bottoms_total,
        "top_spread": capacity.top_spread(),
        "sag_steps": sag.count,
        "sag_weight": sag.weight,
        "impedance_measurements": impedance.count,
        "impedance_current": impedance.current,
        "impedance_time": iso(impedance.wall) if impedance.wall is not None else None,
        "impedance_age_s": age,
        "balance_lead_events": [round(e, 1) for e in engine.lead.events],
        "cutoffs": [dict(c) for c in engine.cutoffs.history],
    }
