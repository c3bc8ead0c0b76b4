"""--victron end to end: a real broker, a pty BMS, a real subscriber; the documents are
checked against the drivers' rules written down in test_victron.py."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable

import pytest
from harness import Broker, DaemonProcess, FakeBms, Subscriber, wait_until
from test_victron import VEC, check_mqtt_battery, check_serialbattery

pytestmark = pytest.mark.broker

StartDaemon = Callable[..., DaemonProcess]
P = "chargerybms"


@pytest.mark.parametrize("fmt", ["serialbattery", "mqtt-battery"])
def test_about_once_a_second_while_online_none_when_stale_none_after_stop(
    fmt: str, broker: Broker, bms: FakeBms, subscriber: Subscriber, start_daemon: StartDaemon
) -> None:
    bms.plug().stream([VEC["A1"], VEC["A4"]], interval=0.05)
    daemon = start_daemon(
        "--port", str(bms.path), "--mqtt-host", "127.0.0.1", "--mqtt-port", str(broker.port),
        "--victron", fmt, "--capacity-ah", "280", "--stale-after", "2", "--no-ha-discovery",
    )  # fmt: skip
    first = subscriber.wait(f"{P}/victron")
    time.sleep(5)
    during = [m for m in subscriber.on(f"{P}/victron") if m.arrived >= first.arrived]
    assert 5 <= len(during) <= 7, len(during)  # about once a second
    assert not any(m.retain for m in during)
    document = json.loads(during[-1].payload)
    if fmt == "serialbattery":
        check_serialbattery(document)
        assert document["voltage"] == 53.294
    else:
        assert check_mqtt_battery(document)["Dc/Voltage"] == 53.294

    bms.pause()
    subscriber.wait(f"{P}/link", lambda p: p == "offline", timeout=10)
    stale_at = time.monotonic()
    time.sleep(2.5)
    assert not [m for m in subscriber.on(f"{P}/victron") if m.arrived > stale_at]

    bms.resume()
    wait_until(lambda: [m for m in subscriber.on(f"{P}/victron") if m.arrived > stale_at], 10, "documents again")
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(10) == 0
    subscriber.wait(f"{P}/status", lambda p: p == "offline")  # its last words: all before them has arrived
    stopped_at = time.monotonic()
    time.sleep(1.5)
    assert not [m for m in subscriber.on(f"{P}/victron") if m.arrived > stopped_at]
    # Nothing retained that a driver could mistake for a live battery. The broker sends the
    # retained copies in the order of the subscription: once `status` has come, a retained
    # `victron` would have come before it.
    late = Subscriber(broker, [f"{P}/victron", f"{P}/status"])
    try:
        assert late.wait(f"{P}/status", timeout=5).payload == "offline"
        assert late.on(f"{P}/victron") == []
    finally:
        late.close()
