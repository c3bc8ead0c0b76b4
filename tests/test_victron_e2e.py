"""--victron end to end: a real broker, a pty BMS, a real subscriber; the documents are
checked against the drivers' rules written down in test_victron.py. (The cadence itself is
proved on a fake clock in test_schedule.py; here, that it reaches the broker.)"""

from __future__ import annotations

import itertools
import json
import re
import signal

import pytest
from harness import Broker, FakeBms, NotifySocket, Received, StartDaemon, Subscriber, broker_flags, wait_until
from helpers import VEC, P
from test_victron import check_mqtt_battery, check_serialbattery

pytestmark = pytest.mark.broker


def silent_for(notify_socket: NotifySocket, seconds: int) -> bool:
    """The daemon itself says the BMS has been silent for at least ``seconds`` (its status
    line, sent to systemd as it changes: at most once a second)."""
    ago = [re.search(r"serial: no frames;.*last frame (\d+) s ago", s) for s in notify_socket.statuses()]
    return any(m and int(m.group(1)) >= seconds for m in ago)


@pytest.mark.parametrize("fmt", ["serialbattery", "mqtt-battery"])
def test_about_once_a_second_while_online_none_when_stale_none_after_stop(
    fmt: str,
    broker: Broker,
    bms: FakeBms,
    subscriber: Subscriber,
    *,
    start_daemon: StartDaemon,
    notify_socket: NotifySocket,
) -> None:
    bms.plug().stream([VEC["A1"], VEC["A4"]], interval=0.05)
    flags = broker_flags(broker, "--victron", fmt, "--capacity-ah", "280", "--stale-after", "2")
    daemon = start_daemon("--port", str(bms.path), *flags, env=notify_socket.env())
    first = subscriber.wait(f"{P}/victron")

    def documents_since_first() -> list[Received]:
        return [m for m in subscriber.on(f"{P}/victron") if m.arrived >= first.arrived]

    # About once a second: four documents after the first, none less than half a second apart
    # (the frames come twenty times as often) nor more than two seconds.
    during = wait_until(lambda: (d := documents_since_first())[4:] and d, 15, "five documents")
    gaps = [b.arrived - a.arrived for a, b in itertools.pairwise(during)]
    assert all(0.5 <= gap <= 2.0 for gap in gaps), gaps
    assert not any(m.retain for m in during)
    document = json.loads(during[-1].payload)
    if fmt == "serialbattery":
        check_serialbattery(document)
        assert document["voltage"] == 53.294
    else:
        assert check_mqtt_battery(document)["Dc/Voltage"] == 53.294

    # None while the link is offline: through two seconds of the daemon's own clock after it
    # went offline (--stale-after 2, then 2 s more: two documents' worth).
    bms.pause()
    offline = subscriber.wait(f"{P}/link", lambda p: p == "offline", timeout=10)
    wait_until(lambda: silent_for(notify_socket, 2 + 2), 10, "the daemon to count 4 s of silence")
    assert not [m for m in subscriber.on(f"{P}/victron") if m.arrived > offline.arrived]

    bms.resume()
    wait_until(lambda: [m for m in subscriber.on(f"{P}/victron") if m.arrived > offline.arrived], 10, "documents again")
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(10) == 0
    subscriber.wait(f"{P}/status", lambda p: p == "offline")  # its last words: all before them has arrived
    # None after its last `link offline` (which goes out before `status offline`).
    order = [m.topic for m in subscriber.messages if m.topic in (f"{P}/victron", f"{P}/link")]
    assert order[-1] == f"{P}/link" and subscriber.on(f"{P}/link")[-1].payload == "offline", order[-5:]
    # Nothing retained that a driver could mistake for a live battery. The broker sends the
    # retained copies in the order of the subscription: once `status` has come, a retained
    # `victron` would have come before it.
    late = Subscriber(broker, [f"{P}/victron", f"{P}/status"])
    try:
        assert late.wait(f"{P}/status", timeout=5).payload == "offline"
        assert late.on(f"{P}/victron") == []
    finally:
        late.close()
