"""Helpers shared by the tests: vectors, external tools, the script's command line."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from chargerybms.protocol import Frame, frame_fields

if TYPE_CHECKING:
    from chargerybms.daemon import Daemon

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
CHARGERY = ROOT / "chargery.py"
IN_CI = bool(os.environ.get("CI"))

# The test being run (set by conftest.py), and the marker a test must carry to start each
# of these tools: `pytest -m "not broker"` must never start a broker, so an unmarked test
# that tries fails at once, whether the tool is installed or not.
CURRENT_TEST: pytest.Item | None = None
MARKER_FOR_TOOL = {"mosquitto": "broker", "mosquitto_passwd": "broker"}


def wait_until(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.05) -> Any:
    """Poll ``condition`` until it returns something true (returned), or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def load_vectors(name: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads((DATA / name).read_text())
    return data


P = "chargerybms"  # the default topic prefix
# The frames of tests/data/frames.json by id ("A1": the protocol document's status frame,
# "A4" its cells frame, "A5" its impedances...), as bytes, and the first frame each decodes to.
VEC: dict[str, bytes] = {v["id"]: bytes.fromhex(v["hex"]) for v in load_vectors("frames.json")}
DECODED: dict[str, dict[str, Any]] = {v["id"]: v["frames"][0] for v in load_vectors("frames.json") if v["frames"]}
SPACER = b"h::3\r\n"  # the text line a BMS sends between its frames


def mqtt_flags(port: int, *extra: str, ha_discovery: bool = False) -> list[str]:
    """The daemon's flags for a broker on this machine's ``port``; discovery off unless asked."""
    flags = ["--mqtt-host", "127.0.0.1", "--mqtt-port", str(port)]
    return [*flags, *([] if ha_discovery else ["--no-ha-discovery"]), *extra]


def as_dicts(frames: list[tuple[int, Frame]], with_offset: bool) -> list[dict[str, Any]]:
    out = []
    for offset, frame in frames:
        d = frame_fields(frame)
        out.append({"offset": offset, **d} if with_offset else d)
    return out


def require_tool(name: str) -> str:
    """The path of an external tool. Missing: skip locally, but fail when CI is set, so a
    CI run never passes by silently skipping what it was meant to test."""
    marker = MARKER_FOR_TOOL.get(name)
    test = CURRENT_TEST
    if marker and test is not None and test.get_closest_marker(marker) is None:
        pytest.fail(f"{test.nodeid} needs {name} but is not marked @pytest.mark.{marker}", pytrace=False)
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None
    )
    if path is None:
        message = f"{name} is not installed (apt-get install {name})"
        if IN_CI:
            pytest.fail(f"CI is set but {message}")
        pytest.skip(message)
    return path


def chargery_cmd(*args: str) -> list[str]:
    return [sys.executable, str(CHARGERY), *args]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class FakeClock:
    """A monotonic clock that moves only when told: ``clock.now += 1.5``, or ``clock.wait(s)``
    where the code under test would wait (the daemon's ``stop_event.wait``)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def wait(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def daemon_on(clock: FakeClock, **settings: Any) -> tuple[Daemon, RecordingSink]:
    """The daemon built in this process on ``clock`` (wall time follows it), publishing into a
    :class:`RecordingSink`; no port is opened until something reads it. ``settings``: as
    ``chargerybms.config.load`` takes them (Home Assistant discovery off unless given)."""
    from chargerybms.config import load
    from chargerybms.daemon import Daemon

    values = {"port": "/dev/null", "ha_discovery": False, **settings}
    sink = RecordingSink()
    return Daemon(load(values, environ={}), sink=sink, clock=clock, wall=lambda: 1.8e9 + clock.now), sink


class RecordingSink:
    """A :class:`chargerybms.sink.Sink` that keeps what was published, for tests that
    drive the daemon by hand."""

    connected = True

    def __init__(self) -> None:
        self.published: list[tuple[str, str, bool]] = []
        self.last_words: list[tuple[str, str]] = []
        self.batches: list[list[tuple[str, str]]] = []  # each publish_many: one transmission

    def start(self) -> None:
        pass

    def publish(self, topic: str, payload: str, retain: bool = False, qos: int = 0) -> bool:
        self.published.append((topic, payload, retain))
        return True

    def publish_many(self, messages: list[tuple[str, str]]) -> None:
        self.batches.append(list(messages))
        for topic, payload in messages:
            self.publish(topic, payload)

    def stop(self, last_words: list[tuple[str, str]]) -> None:
        self.last_words = list(last_words)

    def healthy(self, now: float) -> bool:
        return True

    def condition(self) -> str:
        return "recording"

    def on(self, topic: str) -> list[str]:
        return [payload for t, payload, _ in self.published if t == topic]

    def retained(self, topic: str) -> list[str]:
        return [payload for t, payload, retain in self.published if t == topic and retain]
