"""The simulator's byte stream, pinned: the same seed gives the same bytes, release after
release. The digests were taken from the simulator before it was split into the pack, the
load, the protection and the encoder; a change that moves a random draw, a rounding or a
frame shows here. A deliberate change to the simulated pack updates them (and says why)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from chargerybms.simulator import Fault, SimulatedBms

# name: (constructor arguments, seconds, first 16 hex digits of the digest)
STREAMS: dict[str, tuple[dict[str, Any], int, str]] = {
    "default-16": ({"slots": 16}, 1200, "5e4c25c15ccd5857"),
    "low-capacity-8": ({"slots": 8, "seed": 7, "fault": "low-capacity:2", "cycle": 300}, 3000, "0080f6d8fa614653"),
    "deep-low-capacity": (
        {
            "slots": 8,
            "seed": 5,
            "cycle": 600,
            "fault": Fault("low-capacity", 3, 0.7),
            "capacity_ah": 100.0,
            "resistance_mohm": 0.84,
            "spacer": False,
        },
        4000,
        "7bdf2b34f54516e3",
    ),
    "high-resistance-1.25": (
        {"slots": 16, "seed": 2, "firmware": "1.25", "cycle": 300, "fault": "high-resistance:3"},
        3000,
        "6b4c3ac41be7f61e",
    ),
    "balance-lead": ({"slots": 16, "seed": 6, "cycle": 300, "fault": "balance-lead:5"}, 2000, "7e2c5e7987fca30a"),
    "temperature": ({"slots": 16, "seed": 1, "cycle": 300, "fault": "temperature"}, 2000, "e6fcb8c62a013036"),
    "partial-1.22": ({"slots": 24, "cells": 20, "firmware": "1.22", "seed": 3, "cycle": 120}, 1500, "4267151c8a97652d"),
}


@pytest.mark.parametrize("name", list(STREAMS))
def test_the_byte_stream_of_a_seeded_pack_is_pinned(name: str) -> None:
    arguments, seconds, expected = STREAMS[name]
    bms = SimulatedBms(**arguments)
    digest = hashlib.sha256(b"".join(bms.seconds(seconds)))
    digest.update(repr((bms.cutoffs, bms.cycles, bms.t)).encode())
    assert digest.hexdigest()[:16] == expected


def test_frames_asked_out_of_order_are_pinned() -> None:
    """``frames_at`` skips ahead over seconds nobody asked for and repeats the present for
    an earlier one (the benches and the health tests ask second by second)."""
    bms = SimulatedBms(16, seed=9, cycle=200, fault="high-resistance:4")
    digest = hashlib.sha256()
    for t in (0, 1, 1, 5, 4, 6, 40, 41, 300, 299, 301, 777, 1500, 1500):
        for frame in bms.frames_at(t):
            digest.update(frame)
    digest.update(repr((bms.cutoffs, bms.cycles, bms.t)).encode())
    assert digest.hexdigest()[:16] == "d93e3bc626afc30a"


def test_what_the_pack_exposes_is_pinned() -> None:
    """The readings the benches and tests take from the simulator besides its bytes (they
    were all the simulator's own attributes before it was split)."""
    bms = SimulatedBms(8, seed=11, cycle=240, fault="low-capacity:4")
    bms.advance_to(500)
    seen = (
        [round(r, 9) for r in bms.cell_resistance],
        [round(c, 6) for c in bms.pack.cell_capacity],
        round(bms.protection.soc, 6),
        bms.protection.mode,
        bms.protection.current,
        bms.protection.cell_millivolts(),
        bms.protection.charge_protection,
        bms.protection.discharge_protection,
        bms.cutoffs,
        bms.cycles,
    )
    assert hashlib.sha256(repr(seen).encode()).hexdigest()[:16] == "3f0839cf981d57d3"
