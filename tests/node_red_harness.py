"""A real Node-RED for the flows' tests: from the npm registry (the README's
``npm install --prefix .node-red ...``, or ``$CHARGERY_NODE_RED``), on a free loopback
port with its own user directory, flows deployed through its admin API.

Node-RED's rules used here, from its own source (node_modules/...):
- ``@node-red/editor-api/lib/admin/flows.js``: ``POST /flows`` takes the flow array as
  the v1 API body, ``Node-RED-Deployment-Type: full`` replaces every flow.
- ``@node-red/editor-api/lib/editor/comms.js``: the debug sidebar's messages come over the
  websocket ``/comms`` after ``{"subscribe": "debug"}`` (read by ``node_red/comms.js``).
- ``@node-red/registry/lib/localfilesystem.js``: node modules are looked for in every
  ``node_modules`` folder above Node-RED's own nodes, so a package installed beside
  ``node-red`` (the dashboard) is loaded.
- ``@node-red/util/lib/util.js`` (``getSetting``) and ``@node-red/runtime/lib/flows/Flow.js``:
  ``env.get`` in a function asks the flow, then its parents, then the process environment.

Missing, the tests skip, and fail when ``CI`` is set.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from harness import Broker
from helpers import IN_CI, ROOT, free_port, require_tool, wait_until

COMMS = Path(__file__).resolve().parent / "node_red" / "comms.js"
DASHBOARD_PACKAGE = "@flowfuse/node-red-dashboard"


def node_red_home() -> Path:
    candidates = [os.environ.get("CHARGERY_NODE_RED", ""), str(ROOT / ".node-red" / "node_modules" / "node-red")]
    for candidate in candidates:
        if candidate and (Path(candidate) / "red.js").is_file():
            return Path(candidate)
    message = "Node-RED is not installed (npm install --prefix .node-red node-red@4, or set CHARGERY_NODE_RED)"
    if IN_CI:
        pytest.fail(f"CI is set but {message}")
    pytest.skip(message)


def dashboard_version(home: Path) -> str:
    """The version of the FlowFuse dashboard installed beside Node-RED (``.ci/run`` and the
    README install it); missing, skip, or fail when ``CI`` is set."""
    package = home.parent / DASHBOARD_PACKAGE / "package.json"
    if package.is_file():
        version: str = json.loads(package.read_text())["version"]
        return version
    message = f"{DASHBOARD_PACKAGE} is not installed beside Node-RED ({home.parent})"
    if IN_CI:
        pytest.fail(f"CI is set but {message}")
    pytest.skip(message)


class NodeRed:
    """A Node-RED on a free loopback port, its own user directory, its log in a file."""

    def __init__(self, directory: Path, env: dict[str, str] | None = None, debug: bool = True) -> None:
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
            env={**os.environ, **(env or {})},
        )
        wait_until(self._up, 60, f"Node-RED on port {self.port}:\n{self.log()}")
        self.debug: list[dict[str, Any]] = []
        self._comms: subprocess.Popen[str] | None = None
        if not debug:
            return
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
        assert self._comms is not None and self._comms.stdout is not None
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

    def outputs(self, name: str, since: int = 0) -> list[Any]:
        """The values of the debug node ``name`` (after the ``since`` mark)."""
        return [d["value"] for d in list(self.debug)[since:] if d.get("name") == name]

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
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        self._log.close()


def flow_for(path: Path, broker: Broker) -> list[dict[str, Any]]:
    """A shipped flow, unmodified but for the broker port (the broker node is the one
    place a user changes)."""
    flow: list[dict[str, Any]] = json.loads(path.read_text())
    (broker_node,) = [n for n in flow if n["type"] == "mqtt-broker"]
    assert broker_node["broker"] == "127.0.0.1" and broker_node["port"] == "1883"
    broker_node["port"] = str(broker.port)
    return flow
