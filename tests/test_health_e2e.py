"""Why the BMS cut off, end to end: the real daemon reads the simulator's frames from a
pseudo-terminal and a real subscriber sees the cause on `event` and in `state`."""

from __future__ import annotations

import json
import time

import pytest
from harness import Broker, DaemonProcess, FakeBms, StartDaemon, Subscriber, broker_flags
from helpers import P

from chargerybms.simulator import Fault, SimulatedBms

pytestmark = pytest.mark.broker

PACE = 0.01  # wall seconds per simulated second: the engine judges by the frames' own values


def play_until_cut(bms_port: FakeBms, sim: SimulatedBms, direction: str, after: int = 4) -> tuple[int, str, int | None]:
    """Write the simulator's frames into the terminal until it has cut off ``direction``
    (and ``after`` seconds more); the simulator's own record of that cut."""
    cut: tuple[int, str, int | None] | None = None
    while cut is None or sim.t < cut[0] + after:
        for frame in sim.frames_at(sim.t):
            bms_port.write(frame)
        sim.t += 1
        if cut is None:
            cut = next((c for c in sim.cutoffs if c[1] == direction), None)
        time.sleep(PACE)
        assert sim.t < 20_000, "the simulator never cut off"
    return cut


def events(subscriber: Subscriber) -> list[dict[str, object]]:
    return [json.loads(m.payload) for m in subscriber.on(f"{P}/event")]


def start(start_daemon: StartDaemon, broker: Broker, bms: FakeBms, cells: int) -> DaemonProcess:
    daemon = start_daemon("--port", str(bms.path), *broker_flags(broker, "--cells", str(cells), ha_discovery=True))
    daemon.wait_log("serial: opened")
    return daemon


def test_a_charge_and_a_discharge_cut_off_by_a_named_cell(
    broker: Broker, bms: FakeBms, subscriber: Subscriber, start_daemon: StartDaemon
) -> None:
    bms.plug()
    start(start_daemon, broker, bms, 8)
    sim = SimulatedBms(8, cycle=600, seed=5, fault=Fault("low-capacity", 3, 0.7))
    for direction in ("charge", "discharge"):
        _, _, cell = play_until_cut(bms, sim, direction)
        assert cell == 3  # the simulated BMS cut off on the weak cell
        event = subscriber.wait(f"{P}/event", lambda p, d=direction: json.loads(p).get("direction") == d, timeout=10)
        doc = json.loads(event.payload)
        assert not event.retain
        assert doc["type"] == "cutoff" and doc["cell"] == 3 and doc["explained"] is True
        assert doc["end_voltage"] == (3.65 if direction == "charge" else 2.8)
        # "charge stopped: cell 3 reached 3.652 V (charge end voltage 3.650 V)", or, when its
        # last reading was a few mV short, "... cell 3 at 3.643 V, 7 mV under the charge end ..."
        assert doc["message"].startswith(f"{direction} stopped: cell 3 ")
        assert f"{doc['voltage']:.3f} V" in doc["message"]
        assert f"{direction} end voltage {doc['end_voltage']:.3f} V" in doc["message"]
        state = subscriber.wait(f"{P}/state", lambda p, m=doc["message"]: json.loads(p)["last_cutoff"] == m)
        assert json.loads(state.payload)["last_cutoff_time"] == doc["time"]
    # Every cut the simulated BMS made was told once, in order, and none it did not make.
    told = [(e["direction"], e["cell"]) for e in events(subscriber) if e["type"] == "cutoff"]
    assert told == [(direction, cell) for _, direction, cell in sim.cutoffs]


def test_a_cut_off_no_cell_explains_says_so_and_what_is_known(
    broker: Broker, bms: FakeBms, subscriber: Subscriber, start_daemon: StartDaemon
) -> None:
    bms.plug()
    start(start_daemon, broker, bms, 16)
    sim = SimulatedBms(16, cycle=600, seed=1, fault="temperature")
    _, _, cell = play_until_cut(bms, sim, "charge")
    assert cell is None  # the simulated BMS stopped for its temperature probe, not for a cell
    event = subscriber.wait(f"{P}/event", lambda p: json.loads(p)["type"] == "cutoff", timeout=10)
    doc = json.loads(event.payload)
    assert doc["cell"] is None and doc["voltage"] is None and doc["explained"] is False
    assert "no cell explains it" in doc["message"] and f"{doc['temperature_1']:.1f} °C" in doc["message"]
    state = subscriber.wait(f"{P}/state", lambda p: json.loads(p)["last_cutoff"] == doc["message"])
    assert json.loads(state.payload)["weakest_cell"] is None  # a hot probe is no weak cell
