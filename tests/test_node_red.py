"""The shipped Node-RED flow in a real Node-RED (from the npm registry), against a real
broker and the real daemon: what a user who imports ``examples/node-red-flow.json`` sees.

Node-RED's rules used here, from its own source (node_modules/...), besides those in
``node_red_harness``:
- ``@node-red/runtime/lib/nodes/Node.js``: ``node.warn`` / ``node.log`` write to the
  runtime log as ``[warn] [function:<name>] ...`` / ``[info] ...``.
- ``@node-red/nodes/core/network/10-mqtt.js``: the broker node logs ``Connected to broker``.

Node-RED is found at ``$CHARGERY_NODE_RED`` or ``.node-red/node_modules/node-red`` (where
``.ci/run``, the README's test command, puts it); missing, the tests skip, and fail when
``CI`` is set.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import Broker, FakeBms, StartDaemon, Subscriber, broker_flags, wait_until
from helpers import ROOT
from node_red_harness import NodeRed, flow_for

from chargerybms.protocol import encode_cells, encode_status

pytestmark = [pytest.mark.broker, pytest.mark.node_red]

FLOW = ROOT / "examples" / "node-red-flow.json"


@pytest.fixture
def node_red(tmp_path: Path) -> Iterator[NodeRed]:
    red = NodeRed(tmp_path / "node-red")
    yield red
    red.stop()


def the_flow_for(broker: Broker) -> list[dict[str, Any]]:
    return flow_for(FLOW, broker)


def is_live(v: Any) -> bool:
    return isinstance(v, dict) and v.get("live") is True


SUMMARY = ("lowestCellVoltage", "lowestCell", "highestCellVoltage", "highestCell", "voltage", "soc", "current")


def is_live_and_whole(v: Any) -> bool:
    """Live, with every value of the summary: the first live output may come from a state
    document that holds only the status frame or only the cells frame."""
    return is_live(v) and all(v.get(key) is not None for key in SUMMARY)


def alert(raised: bool, about: str = "") -> Callable[[Any], bool]:
    return lambda v: isinstance(v, dict) and v.get("alert") is raised and about in v.get("reason", "")


def test_the_flow_shows_live_values_and_raises_and_clears_its_alert(
    broker: Broker, node_red: NodeRed, bms: FakeBms, start_daemon: StartDaemon
) -> None:
    node_red.deploy(the_flow_for(broker))
    wait_until(lambda: "Connected to broker" in node_red.log(), 30, f"the flow's broker connection:\n{node_red.log()}")
    demo = ["--demo", "--demo-speed", "4", "--mqtt-host", "127.0.0.1", "--mqtt-port", str(broker.port),
            "--topic-prefix", "chargerybms"]  # the flow's (a demo on a broker has its own)  # fmt: skip

    # Live: the summary, with cell voltages named as voltages.
    daemon = start_daemon(*demo)
    live = node_red.wait_output("battery", is_live_and_whole)
    assert 2.5 < live["lowestCellVoltage"] < 3.7 and 1 <= live["lowestCell"] <= 16
    assert 2.5 < live["highestCellVoltage"] < 3.7 and isinstance(live["highestCell"], int)
    assert 40 < live["voltage"] < 60 and 0 <= live["soc"] <= 100 and live["current"] is not None
    assert len(live["cells"]) == 16 and min(live["cells"]) == live["lowestCellVoltage"]
    assert live["chargePower"] is not None and live["dischargePower"] is not None
    # No false alarm at start: the flow has handled what came before the first whole summary
    # (the retained status and link, the first documents) and three documents after it.
    mark = node_red.mark()
    wait_until(lambda: len(node_red.outputs("battery", since=mark)) >= 3, 20, "three more summaries")
    assert node_red.outputs("BMS alert") == []

    # chargery's events come out of the alert output as they arrive (a hand-made one here:
    # the document of interfaces.md, published by a real MQTT client); the values stay live.
    event = {"type": "cutoff", "message": "charge stopped: cell 7 reached 3.652 V (charge end voltage 3.650 V)",
             "time": "2026-11-30T12:00:00Z", "cell": 7, "direction": "charge", "voltage": 3.652, "end_voltage": 3.65,
             "current": 23.0, "temperature_1": 20.0, "temperature_2": 19.0, "explained": True}  # fmt: skip
    mark = node_red.mark()
    publisher = Subscriber(broker, ["chargerybms/nothing"])
    publisher.publish("chargerybms/event", json.dumps({"type": "cutoff"}))  # no message: ignored, logged
    publisher.publish("chargerybms/event", json.dumps(event))
    publisher.close()
    raised = node_red.wait_output("BMS alert", lambda v: isinstance(v, dict) and v.get("type") == "cutoff", since=mark)
    assert raised["alert"] is True and raised["reason"] == event["message"]
    assert raised["time"] == event["time"] and raised["cell"] == 7 and raised["event"] == event
    cutoffs = [v for v in node_red.outputs("BMS alert") if v.get("type") == "cutoff"]
    assert [v["reason"] for v in cutoffs] == [event["message"]]  # the one without a message made none
    node_red.wait_output("battery", is_live, since=mark)

    # SIGTERM: the daemon stops cleanly; the flow says so and alerts.
    mark = node_red.mark()
    daemon.signal(signal.SIGTERM)
    daemon.wait(10)
    node_red.wait_output("BMS alert", alert(True, "not running"), since=mark)
    offline = node_red.wait_output("battery", lambda v: isinstance(v, dict) and v.get("live") is False, since=mark)
    assert offline["state"] == "offline" and "voltage" not in offline  # no stale reading shown as live
    assert not is_live(node_red.outputs("battery")[-1])

    # Back: the alert clears.
    mark = node_red.mark()
    daemon = start_daemon(*demo, name="again")
    node_red.wait_output("BMS alert", alert(False), since=mark)
    node_red.wait_output("battery", is_live, since=mark)

    # SIGKILL: only the Last Will speaks, and that is enough.
    mark = node_red.mark()
    daemon.signal(signal.SIGKILL)
    daemon.wait(5)
    node_red.wait_output("BMS alert", alert(True, "not running"), since=mark)
    node_red.wait_output("battery", lambda v: isinstance(v, dict) and v.get("state") == "offline", since=mark)

    # A silent BMS under a running daemon: alert, then clear when it talks again.
    status = encode_status(charge_end_mv=3650, mode=1, deci_amps=230, t1_deci=200, t2_deci=190, soc=60)
    cells = encode_cells([3310] * 16, energy_mwh=5_000_000, capacity_mah=100_000)
    bms.plug().stream([status, cells], interval=0.1)
    mark = node_red.mark()
    start_daemon("--port", str(bms.path), *broker_flags(broker, "--stale-after", "2", ha_discovery=True), name="pty")
    node_red.wait_output("BMS alert", alert(False), since=mark)
    live = node_red.wait_output("battery", is_live_and_whole, since=mark)
    assert live["lowestCellVoltage"] == 3.31 and live["current"] == 23.0
    mark = node_red.mark()
    bms.pause()
    node_red.wait_output("BMS alert", alert(True, "silent"), since=mark)
    node_red.wait_output("battery", lambda v: isinstance(v, dict) and v.get("state") == "offline", since=mark)
    mark = node_red.mark()
    bms.resume()
    node_red.wait_output("BMS alert", alert(False), since=mark)
    node_red.wait_output("battery", is_live, since=mark)

    # The alerts are in Node-RED's own log too (a headless Node-RED has no sidebar).
    log = node_red.log()
    assert "[warn] [function:battery] Chargery BMS alert: chargery is not running" in log
    assert "[warn] [function:battery] Chargery BMS alert: the BMS is silent" in log
    assert "Chargery BMS alert cleared" in log
    assert "[warn] [function:battery] Chargery BMS cutoff: charge stopped: cell 7 reached 3.652 V" in log
    assert "[warn] [function:battery] Chargery BMS: ignored an event without a message" in log
