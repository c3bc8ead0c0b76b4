"""What Home Assistant is sent: values held within their deadband, for at most max_age."""

from __future__ import annotations

import json
from typing import Any

import pytest
from helpers import RecordingSink

from chargerybms.config import load
from chargerybms.daemon import Daemon
from chargerybms.outputs.discovery import DEADBANDS
from chargerybms.outputs.ha_view import Band, Extreme, HaView, Stamp
from chargerybms.simulator import SimulatedBms

RULES = {
    "current": Band(2.0),
    "cells": Band(0.01),
    "when": Stamp(60),
    "high": Extreme("cells", highest=True, width=0.01),
}


def doc(**values: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"current": 10.0, "mode": "charge", "cells": [3.30, 3.31], "when": None, "high": 2}
    base.update(values)
    return base


def test_max_age_zero_sends_every_value_as_it_comes() -> None:
    view = HaView(RULES, max_age=0)
    for current in (10.0, 10.1, 10.2):
        sent = doc(current=current, cells=[3.3, 3.301])
        assert view.document(sent, 0.0) == sent


def test_a_value_is_held_within_its_deadband_and_sent_beyond_it() -> None:
    view = HaView(RULES, max_age=300)
    assert view.document(doc(current=10.0), 0)["current"] == 10.0
    assert view.document(doc(current=11.9), 1)["current"] == 10.0  # within 2 A
    assert view.document(doc(current=8.1), 2)["current"] == 10.0
    assert view.document(doc(current=12.5), 3)["current"] == 12.5  # beyond: sent, and held from here
    assert view.document(doc(current=11.0), 4)["current"] == 12.5


def test_after_max_age_any_difference_is_sent_and_an_unchanged_value_stays() -> None:
    view = HaView(RULES, max_age=300)
    view.document(doc(current=10.0), 0)
    assert view.document(doc(current=10.5), 299)["current"] == 10.0
    assert view.document(doc(current=10.5), 300)["current"] == 10.5  # old: the exact value
    assert view.document(doc(current=10.5), 900)["current"] == 10.5
    assert view.document(doc(current=10.6), 901)["current"] == 10.6  # held since 300: old, sent


def test_each_cell_of_a_list_is_held_on_its_own() -> None:
    view = HaView(RULES, max_age=300)
    view.document(doc(cells=[3.300, 3.310]), 0)
    assert view.document(doc(cells=[3.305, 3.330]), 1)["cells"] == [3.300, 3.330]
    # The cell count changes: nothing is held across it.
    assert view.document(doc(cells=[3.301]), 2)["cells"] == [3.301]


def test_text_flags_and_nulls_go_out_as_they_are() -> None:
    view = HaView(RULES, max_age=300)
    view.document(doc(), 0)
    sent = view.document(doc(mode="discharge", current=None), 1)
    assert sent["mode"] == "discharge" and sent["current"] is None
    assert view.document(doc(current=10.1), 2)["current"] == 10.1  # after a null: nothing to hold


def test_a_time_is_held_for_its_seconds() -> None:
    view = HaView(RULES, max_age=300)
    view.document(doc(when="2026-01-01T10:00:00+00:00"), 0)
    assert view.document(doc(when="2026-01-01T10:00:59+00:00"), 59)["when"] == "2026-01-01T10:00:00+00:00"
    assert view.document(doc(when="2026-01-01T10:01:01+00:00"), 61)["when"] == "2026-01-01T10:01:01+00:00"


def test_the_highest_cell_does_not_flap_between_two_nearly_equal_cells() -> None:
    view = HaView(RULES, max_age=300)
    assert view.document(doc(cells=[3.300, 3.301], high=2), 0)["high"] == 2
    assert view.document(doc(cells=[3.302, 3.301], high=1), 1)["high"] == 2  # 1 mV apart: still 2
    assert view.document(doc(cells=[3.330, 3.301], high=1), 2)["high"] == 1  # 29 mV: cell 1 it is


def test_when_frames_stop_the_exact_values_go_out_and_nothing_is_held_across_the_gap() -> None:
    view = HaView(RULES, max_age=300)
    view.document(doc(current=10.0), 0)
    assert view.document(doc(current=11.0), 1)["current"] == 10.0
    assert view.document(doc(current=11.0), 2, live=False)["current"] == 11.0
    assert view.document(doc(current=11.5), 3)["current"] == 11.5  # a fresh start


def test_what_home_assistant_shows_is_within_its_deadband_or_younger_than_max_age() -> None:
    """The simulator's pack through a few charge cycles, a document a second as the daemon
    sends them: every value sent is within its entity's deadband of the true one, or was
    sent less than max_age ago; and far fewer values change than in `state`."""
    max_age = 120.0
    daemon = Daemon(load({"demo": True, "dry_run": True}, environ={}), sink=RecordingSink())
    view = HaView(DEADBANDS, max_age)
    bms = SimulatedBms(16, cycle=240)
    changed_in = {"state": 0, "ha_state": 0}
    previous: dict[str, dict[str, Any]] = {}
    sent_at: dict[tuple[str, int], float] = {}
    for second in range(960):
        for frame in bms.seconds(1):
            daemon.handle_bytes(frame)
        truth = daemon.state.document(daemon.context(0.0).document_extra())
        shown = view.document(truth, float(second))
        for name, document in (("state", truth), ("ha_state", shown)):
            before = previous.get(name, {})
            for key, value in document.items():
                if key not in DEADBANDS:
                    continue
                values = value if isinstance(value, list) else [value]
                old = before.get(key)
                olds = old if isinstance(old, list) else [old]
                changed_in[name] += sum(1 for i, v in enumerate(values) if i >= len(olds) or olds[i] != v)
                if name == "ha_state":
                    for i, v in enumerate(values):
                        if i >= len(olds) or olds[i] != v:
                            sent_at[key, i] = second
            previous[name] = json.loads(json.dumps(document))
        for key, rule in DEADBANDS.items():
            if not isinstance(rule, Band) or truth.get(key) is None:
                continue
            true_values = truth[key] if isinstance(truth[key], list) else [truth[key]]
            shown_values = shown[key] if isinstance(shown[key], list) else [shown[key]]
            for i, (t, s) in enumerate(zip(true_values, shown_values, strict=True)):
                age = second - sent_at[key, i]
                assert abs(t - s) <= rule.width + 1e-9 or age < rule.every, (key, i, t, s)
                assert age < max_age or s == t, (key, i, t, s)
    assert changed_in["ha_state"] * 4 < changed_in["state"], changed_in


@pytest.mark.parametrize("max_age", [0.0, 300.0])
def test_the_daemon_sends_ha_state_when_it_changed(max_age: float) -> None:
    """ha_state is made with every state (never older than it) but sent only when it
    changed, at the heartbeat, or at an announcement; it holds what the entities read."""
    from chargerybms.sink import Connected

    settings = load({"demo": True, "dry_run": True, "ha_max_age": max_age}, environ={})
    sink = RecordingSink()
    now = [1000.0]
    daemon = Daemon(settings, sink=sink, clock=lambda: now[0], wall=lambda: 1_700_000_000.0)
    bms = SimulatedBms(16)
    first, last = list(bms.seconds(2)), list(bms.seconds(1))
    for frame in first + last:
        daemon.handle_bytes(frame)
    now[0] += 1
    daemon.housekeeping(now[0])  # the burst's documents are due
    states, ha_states = sink.on("chargerybms/state"), sink.on("chargerybms/ha_state")
    assert len(states) == len(ha_states) == 1
    state, ha_state = json.loads(states[0]), json.loads(ha_states[0])
    assert "cell_voltages" in ha_state and "status_seen" not in ha_state  # no entity reads that one
    if not max_age:
        assert ha_state == {k: v for k, v in state.items() if k in ha_state}
        return  # every value exact: the energy meters alone change it every second
    # The last second's frames again: a new state, but nothing new for Home Assistant.
    for frame in last:
        daemon.handle_bytes(frame)
    now[0] += 1
    daemon.housekeeping(now[0])
    assert len(sink.on("chargerybms/state")) == 2 and len(sink.on("chargerybms/ha_state")) == 1
    daemon.events.put(Connected())  # a reconnect: everything again, changed or not
    daemon.housekeeping(now[0])
    assert len(sink.on("chargerybms/ha_state")) == 2
    now[0] += settings.heartbeat  # and at the heartbeat
    daemon.housekeeping(now[0])
    assert len(sink.on("chargerybms/ha_state")) == 3
