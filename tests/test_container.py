"""The image, built and run for real: Podman builds the Dockerfile from this checkout and
runs it as the Home Assistant Supervisor runs the app, with a pseudo-terminal BMS as
/dev/ttyUSB0, /data/options.json, a stand-in for the Supervisor's services/mqtt endpoint on
http://supervisor/ and a real mosquitto that wants a password.

Needs root, Podman, runc and debootstrap (``sudo python -m pytest tests/test_container.py``);
skips without them, and fails when ``CI`` is set. No image registry is reachable here, so
the base image is a minbase Debian 12 with Python and pip, built once and cached
(tests/system/build-python-image.sh); pip inside the build fetches pyserial and paho-mqtt
from PyPI. What Podman needs on this kind of machine (root, cgroups in hybrid mode):
``--runtime runc --cgroup-manager cgroupfs`` and explicit ulimits to run (crun fails
here), ``--isolation=chroot`` to build, the host's certificates for pip's TLS, and the
pty's slave bind-mounted as the device (``--device`` with a pty fails with EIO inside:
another devpts instance).
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import IN_CI, ROOT, require_tool, wait_until
from supervisor_stand_in import Supervisor, mosquitto_service

pytestmark = [pytest.mark.system, pytest.mark.broker]

P = "chargerybms"
PASSWORD = "Pa55 from the Supervisor"  # the Mosquitto app's login for apps, as the Supervisor hands it out
RUNTIME = ["--runtime", "runc", "--cgroup-manager", "cgroupfs"]
RUN = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", "--network=host"]
STOP_TIMEOUT = 10  # seconds, as the Supervisor's default `timeout` for an app


def unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"CI is set but {reason}", pytrace=False)
    pytest.skip(reason)


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["podman", *RUNTIME, *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    """The Dockerfile built from the checkout on the local Python base image."""
    if os.geteuid() != 0:
        unavailable("the container test needs root (Podman with runc and cgroupfs)")
    for tool in ("podman", "runc", "debootstrap"):
        require_tool(tool)
    base = subprocess.run(
        [str(ROOT / "tests" / "system" / "build-python-image.sh")], capture_output=True, text=True, check=False
    )
    if base.returncode != 0:
        raise AssertionError(f"building the base image failed:\n{base.stderr[-3000:]}")
    tag = f"localhost/chargery-test:{uuid.uuid4().hex[:12]}"
    podman(
        "build", "--isolation=chroot", "--network=host", "-v", "/etc/ssl/certs:/etc/ssl/certs:ro",
        "--build-arg", f"BUILD_FROM={base.stdout.split()[-1]}", "--build-arg", "BUILD_VERSION=test",
        "-t", tag, str(ROOT), timeout=600,
    )  # fmt: skip
    yield tag
    podman("rmi", "-f", tag, check=False)


@pytest.fixture(scope="module")
def supervisor() -> Iterator[Supervisor]:
    """On port 80 of the loopback: the container, on the host's network with
    ``--add-host supervisor:127.0.0.1``, reaches it as http://supervisor/."""
    try:
        stand_in = Supervisor(None, port=80)
    except OSError as exc:
        raise AssertionError(f"the Supervisor's stand-in needs port 80 of 127.0.0.1: {exc}") from None
    yield stand_in
    stand_in.close()


@dataclass
class App:
    """One run of the image as the Supervisor starts an app: its own /data, the device, the token."""

    image: str
    data: Path
    device: Path
    name: str = ""
    proc: subprocess.Popen[str] | None = None

    def start(self) -> App:
        self.name = f"chargery-test-{uuid.uuid4().hex[:8]}"
        self.out = self.data.parent / f"{self.name}.out"
        self.err = self.data.parent / f"{self.name}.err"
        command = [
            "podman", *RUNTIME, "run", "--name", self.name, *RUN, "--add-host", "supervisor:127.0.0.1",
            "-e", f"SUPERVISOR_TOKEN={Supervisor.TOKEN}", "-v", f"{self.data}:/data",
            "-v", f"{os.path.realpath(self.device)}:/dev/ttyUSB0", self.image,
        ]  # fmt: skip
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = subprocess.Popen(command, stdout=out, stderr=err, text=True)
        return self

    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def wait_log(self, text: str, timeout: float = 60) -> None:
        try:
            wait_until(lambda: text in self.stdout(), timeout, f"{text!r} in the app's log")
        except AssertionError as exc:
            raise AssertionError(f"{exc}:\n{self.stdout()}{self.stderr()}") from None

    def exited(self, timeout: float = 60) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> int:
        """``podman stop``: SIGTERM to PID 1, SIGKILL after the timeout (exit status 137)."""
        podman("stop", "-t", str(STOP_TIMEOUT), self.name, timeout=STOP_TIMEOUT + 30)
        return self.exited(30)

    def remove(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            podman("kill", self.name, check=False)
            self.proc.wait(30)
        podman("rm", "-f", self.name, check=False)


@pytest.fixture
def run_app(image: str, tmp_path: Path) -> Iterator[Any]:
    started: list[App] = []

    def run(data: Path, device: Path) -> App:
        app = App(image, data, device).start()
        started.append(app)
        return app

    yield run
    for app in started:
        app.remove()


def write_options(data: Path, device_name: str = "Garage battery", **more: Any) -> None:
    data.mkdir(exist_ok=True)
    options = {"port": "/dev/ttyUSB0", "cells": 16, "capacity_ah": 0, "topic_prefix": P,
               "device_name": device_name, "victron": "off", "log_level": "info", **more}  # fmt: skip
    (data / "options.json").write_text(json.dumps(options))


def frames() -> list[bytes]:
    from helpers import load_vectors

    vec = {v["id"]: bytes.fromhex(v["hex"]) for v in load_vectors("frames.json")}
    return [vec["A4"], vec["A1"], vec["A5"]]


def test_the_app_publishes_keeps_its_meters_and_stops_cleanly(
    tmp_path: Path, supervisor: Supervisor, run_app: Any
) -> None:
    from harness import Broker, FakeBms, Subscriber

    broker = Broker(tmp_path / "broker", users={"addons": PASSWORD, "test": "test"}).start()
    bms = FakeBms(tmp_path / "ttyBMS").plug()
    bms.stream(frames(), interval=0.05)
    subscriber = Subscriber(broker, username="test", password="test")
    supervisor.service = mosquitto_service(broker.port, PASSWORD)
    data = tmp_path / "data"
    write_options(data)
    try:
        app = run_app(data, bms.path)
        # The Mosquitto app's broker, from the Supervisor; discovery and state at the broker.
        config = subscriber.wait(f"homeassistant/device/{P}/config", lambda p: "Garage battery" in p, timeout=60)
        assert json.loads(config.payload)["device"]["name"] == "Garage battery"
        assert ("/services/mqtt", f"Bearer {Supervisor.TOKEN}") in supervisor.requests

        def charged(payload: str) -> bool:
            return bool(json.loads(payload).get("energy_charged", 0) >= 0.002)  # 2 Wh: a few seconds at 1.2 kW

        before = json.loads(subscriber.wait(f"{P}/state", charged, timeout=60).payload)
        assert before["pack_voltage"] == 53.294
        app.wait_log("serial: receiving frames from /dev/ttyUSB0")
        app.wait_log("from the Supervisor, provided by core_mosquitto) as user addons")
        # The daemon itself is PID 1 (config.yaml's init: false; no shell in between).
        pid1 = podman("exec", app.name, "cat", "/proc/1/cmdline").stdout.split("\0")
        assert pid1[-3:] == ["/usr/local/bin/chargery", "app", ""], pid1

        # SIGTERM (podman stop, as the Supervisor stops an app): a clean exit, link offline.
        assert app.stop() == 0, app.stdout() + app.stderr()
        assert "SIGTERM received: stopping" in app.stdout()
        last = max(json.loads(m.payload)["energy_charged"] for m in subscriber.on(f"{P}/state"))
        late = Subscriber(broker, [f"{P}/link", f"{P}/status"], username="test", password="test")
        try:  # on subscribing, only retained copies can come
            assert late.wait(f"{P}/link", timeout=5).payload == "offline"
            assert late.wait(f"{P}/status", timeout=5).payload == "offline"
        finally:
            late.close()
        saved = json.loads((data / "energy-chargerybms.json").read_text())
        assert saved["energy_charged_wh"] >= last * 1000 - 0.5
        assert (data / "health-chargerybms.json").exists()  # the cell-health evidence, in /data too

        # A new container on the same /data (a restart or an update): the meters go on.
        subscriber.clear()
        again = run_app(data, bms.path)
        after = json.loads(subscriber.wait(f"{P}/state", lambda p: "energy_charged" in p, timeout=60).payload)
        assert after["energy_charged"] >= last > 0
        assert again.stop() == 0
        logs = app.stdout() + app.stderr() + again.stdout() + again.stderr()
        assert PASSWORD not in logs
    finally:
        subscriber.close()
        bms.close()
        broker.stop()


def test_no_broker_and_a_wrong_option_are_one_line_each(tmp_path: Path, supervisor: Supervisor, run_app: Any) -> None:
    from harness import FakeBms

    bms = FakeBms(tmp_path / "ttyBMS").plug()
    try:
        supervisor.service = None  # no broker app: the Supervisor says "Service not enabled"
        write_options(tmp_path / "no-broker")
        app = run_app(tmp_path / "no-broker", bms.path)
        assert app.exited() == 2
        assert app.stdout() == ""
        assert app.stderr() == (
            "chargery app: configuration error: no MQTT broker: the Supervisor has none (Service not enabled) and "
            "the mqtt_host option is empty: install and start the Mosquitto broker app (Settings > Apps), or name "
            "your broker in mqtt_host\n"
        )

        write_options(tmp_path / "wrong", topic_prefix="bms/#", mqtt_host="127.0.0.1")
        app = run_app(tmp_path / "wrong", bms.path)
        assert app.exited() == 2
        assert app.stderr().count("\n") == 1
        assert app.stderr().startswith("chargery app: configuration error: topic_prefix: 'bms/#' is not a usable")
    finally:
        bms.close()


def test_the_compose_example_runs_the_same_image(tmp_path: Path, image: str) -> None:
    """compose.yaml's way, for Docker and Podman users: no options.json and no Supervisor;
    the settings from its environment, the password from its secret file, /data a volume."""
    import yaml
    from harness import Broker, FakeBms, Subscriber

    service = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]["chargery"]
    secret = yaml.safe_load((ROOT / "compose.yaml").read_text())["secrets"]["mqtt_password"]
    broker = Broker(tmp_path / "broker", users={"chargery": "compose secret", "test": "test"}).start()
    bms = FakeBms(tmp_path / "ttyBMS").plug()
    bms.stream(frames(), interval=0.05)
    subscriber = Subscriber(broker, username="test", password="test")
    (tmp_path / Path(secret["file"]).name).write_text("compose secret\n")
    environment = {**service["environment"], "CHARGERY_MQTT_HOST": "127.0.0.1", "CHARGERY_MQTT_PORT": str(broker.port)}
    device = service["devices"][0].split(":")[1]
    name = f"chargery-test-{uuid.uuid4().hex[:8]}"
    command = [
        "podman", *RUNTIME, "run", "--name", name, *RUN,
        *(a for k, v in environment.items() for a in ("-e", f"{k}={v}")),
        "-v", f"{tmp_path / Path(secret['file']).name}:/run/secrets/mqtt_password:ro",
        "-v", f"{tmp_path / 'volume'}:/data", "-v", f"{os.path.realpath(bms.path)}:{device}", image,
    ]  # fmt: skip
    (tmp_path / "volume").mkdir()
    out = tmp_path / "app.out"
    try:
        with open(out, "w") as sink:
            proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
        state = subscriber.wait(f"{P}/state", lambda p: json.loads(p).get("energy_charged", 0) > 0, timeout=60)
        assert json.loads(state.payload)["pack_voltage"] == 53.294
        podman("stop", "-t", str(STOP_TIMEOUT), name, timeout=STOP_TIMEOUT + 30)
        assert proc.wait(30) == 0
        log = out.read_text()
        assert "/data/options.json does not exist" in log and "energy meters and cell health kept in /data" in log
        assert "compose secret" not in log
        assert (tmp_path / "volume" / "energy-chargerybms.json").exists()
    finally:
        podman("rm", "-f", name, check=False)
        subscriber.close()
        bms.close()
        broker.stop()
