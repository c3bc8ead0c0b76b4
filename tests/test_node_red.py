"""The shipped Node-RED flow in a real Node-RED (from the npm registry), against a real
broker and the real daemon: what a user who imports ``examples/node-red-flow.json`` sees.

Node-RED's rules used here, from its own source (node_modules/...):
- ``@node-red/editor-api/lib/admin/flows.js``: ``POST /flows`` takes the flow array as
  the v1 API body, ``Node-RED-Deployment-Type: full`` replaces every flow.
- ``@node-red/editor-api/lib/editor/comms.js``: the debug sidebar's messages come over the
  websocket ``/comms`` after ``{"subscribe": "debug"}`` (read by ``node_red/comms.js``).
- ``@node-red/runtime/lib/nodes/Node.js``: ``node.warn`` / ``node.log`` write to the
  runtime log as ``[warn] [function:<name>] ...`` / ``[info] ...``.
- ``@node-red/nodes/core/network/10-mqtt.js``: the broker node logs ``Connected to broker``.

Node-RED is found at ``$CHARGERY_NODE_RED`` or ``.node-red/node_modules/node-red`` (where
``.ci/run``, the README's test command, puts it); missing, the tests skip, and fail when
``CI`` is set.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import Broker, DaemonProcess, FakeBms, wait_until
from helpers import IN_CI, ROOT, free_port, require_tool

from chargerybms.protocol import encode_cells, encode_status

pytestmark = [pytest.mark.broker, pytest.mark.nodered]

FLOW = ROOT / "examples" / "node-red-flow.json"
COMMS = Path(__file__).resolve().parent / "node_red" / "comms.js"
StartDaemon = Callable[..., DaemonProcess]


def node_red_home() -> Path:
    candidates = [os.environ.get("CHARGERY_NODE_RED", ""), str(ROOT / ".node-red" / "node_modules" / "node-red")]
    for candidate in candidates:
        if candidate and (Path(candidate) / "red.js").is_file():
            return Path(candidate)
    message = "Node-RED is not installed (sudo ./.ci/run, or npm install --prefix .node-red node-red@4.1)"
    if IN_CI:
        pytest.fail(f"CI is set but {message}")
    pytest.skip(message)


class NodeRed:
    """A Node-RED on a free loopback port, its own user directory, its log in a file."""

    def __init__(self, directory: Path) -> None:
        self.node = require_tool("node")
        self.home = node_red_home()
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.log_path = directory / "node-red.log"
        settings = directory / "settings.js"
        settings.write_text(
            "module.exports = "
            + json.dumps({
                "uiHost": "127.0.0.1",
                "uiPort": self.port,
                "flowFile": "flows.json",
                "credentialSecret": False,
                "logging": {"console": {"level": "info", "metrics": False, "audit": False}},
                "diagnostics": {"enabled": False},
                "telemetry": {"enabled": False},
                "externalModules": {"palette": {"allowInstall": False}},
            })
            + ";\n"
        )  # fmt: skip
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [self.node, str(self.home / "red.js"), "--settings", str(settings), "--userDir", str(directory)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=directory,
        )
        wait_until(self._up, 60, f"Node-RED on port {self.port}:\n{self.log()}")
        self.debug: list[dict[str, Any]] = []
        self._comms = subprocess.Popen(
            [self.node, str(COMMS), f"ws://127.0.0.1:{self.port}/comms"],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "NODE_PATH": str(self.home.parent)},
        )
        self._reader = threading.Thread(target=self._read_comms, daemon=True)
        self._reader.start()
        wait_until(lambda: {"connected": True} in self.debug, 10, "the debug websocket")

    def _up(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"Node-RED exited:\n{self.log()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/flows", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def _read_comms(self) -> None:
        assert self._comms.stdout is not None
        for line in self._comms.stdout:
            self.debug.append(json.loads(line))

    def deploy(self, flow: list[dict[str, Any]]) -> None:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/flows",
            data=json.dumps(flow).encode(),
            headers={"Content-Type": "application/json", "Node-RED-Deployment-Type": "full"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as r:
            assert r.status in (200, 204), r.read()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def outputs(self, name: str) -> list[Any]:
        return [d["value"] for d in list(self.debug) if d.get("name") == name]

    def mark(self) -> int:
        """A point in the outputs: ``wait_output(..., since=mark)`` looks only after it."""
        return len(self.debug)

    def wait_output(self, name: str, predicate: Callable[[Any], bool], timeout: float = 20, since: int = 0) -> Any:
        def found() -> Any:
            new = [d["value"] for d in list(self.debug)[since:] if d.get("name") == name]
            return next((v for v in new if predicate(v)), None)

        return wait_until(found, timeout, f"a {name!r} output matching {predicate}; got {self.outputs(name)[-5:]}")

    def stop(self) -> None:
        for proc in (self._comms, self.proc):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        self._log.close()


@pytest.fixture
def node_red(tmp_path: Path) -> Iterator[NodeRed]:
    red = NodeRed(tmp_path / "node-red")
    yield red
    red.stop()


def the_flow_for(broker: Broker) -> list[dict[str, Any]]:
    """The shipped flow, unmodified but for the broker port (the broker node is the one
    place a user changes)."""
    flow: list[dict[str, Any]] = json.loads(FLOW.read_text())
    (broker_node,) = [n for n in flow if n["type"] == "mqtt-broker"]
    assert broker_node["broker"] == "127.0.0.1" and broker_node["port"] == "1883"
    broker_node["port"] = str(broker.port)
    return flow


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
    demo = ["--demo", "--demo-speed", "4", "--mqtt-host", "127.0.0.1", "--mqtt-port", str(broker.port)]

    # Live: the summary, with cell voltages named as voltages.
    daemon = start_daemon(*demo)
    live = node_red.wait_output("battery", is_live_and_whole)
    assert 2.5 < live["lowestCellVoltage"] < 3.7 and 1 <= live["lowestCell"] <= 16
    assert 2.5 < live["highestCellVoltage"] < 3.7 and isinstance(live["highestCell"], int)
    assert 40 < live["voltage"] < 60 and 0 <= live["soc"] <= 100 and live["current"] is not None
    time.sleep(2)
    assert node_red.outputs("BMS alert") == []  # no false alarm at start

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
    start_daemon("--port", str(bms.path), "--mqtt-host", "127.0.0.1", "--mqtt-port", str(broker.port),
                 "--stale-after", "2", name="pty")  # fmt: skip
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
