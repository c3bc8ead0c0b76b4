"""What a consumer sees in every life phase of the daemon: starting, running, the BMS
silent, stopped cleanly, killed, restarted. Real mosquitto, pty BMS, real subscriber."""

from __future__ import annotations

import json
import signal
import time

import pytest
from harness import Broker, FakeBms, NotifySocket, StartDaemon, Subscriber, broker_flags, retained, wait_until
from helpers import P

from chargerybms.protocol import encode_cells, encode_status

pytestmark = pytest.mark.broker

CELLS = encode_cells([3310] * 16, energy_mwh=5_000_000, capacity_mah=100_000)  # 52.96 V
DISCHARGE = encode_status(charge_end_mv=3650, mode=0, deci_amps=230, t1_deci=200, t2_deci=190, soc=60)  # -23 A


def test_sigterm_leaves_link_and_status_offline_retained(
    broker: Broker, bms: FakeBms, subscriber: Subscriber, start_daemon: StartDaemon
) -> None:
    bms.plug().stream([DISCHARGE, CELLS], interval=0.1)
    daemon = start_daemon("--port", str(bms.path), *broker_flags(broker))
    subscriber.wait(f"{P}/link", lambda p: p == "online")
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(10) == 0
    assert retained(broker, f"{P}/link", f"{P}/status") == {f"{P}/link": "offline", f"{P}/status": "offline"}
    # link went offline before status did: a consumer never sees a live link of a dead daemon.
    subscriber.wait(f"{P}/status", lambda p: p == "offline")  # the last of them has reached our subscriber
    order = [(m.topic, m.payload) for m in subscriber.messages if m.topic in (f"{P}/link", f"{P}/status")]
    assert order[-2:] == [(f"{P}/link", "offline"), (f"{P}/status", "offline")]


def test_sigkill_then_a_restart_with_a_silent_bms_corrects_the_left_over_link(
    broker: Broker, bms: FakeBms, subscriber: Subscriber, start_daemon: StartDaemon
) -> None:
    bms.plug().stream([DISCHARGE, CELLS], interval=0.1)
    first = start_daemon("--port", str(bms.path), *broker_flags(broker, "--stale-after", "2"))
    subscriber.wait(f"{P}/link", lambda p: p == "online")
    first.signal(signal.SIGKILL)
    first.wait(5)
    subscriber.wait(f"{P}/status", lambda p: p == "offline")  # the Last Will
    # Only the will could speak: link is still the crashed run's `online`.
    assert retained(broker, f"{P}/link", f"{P}/status") == {f"{P}/link": "online", f"{P}/status": "offline"}

    bms.pause()  # the BMS is silent when the daemon comes back
    subscriber.clear()
    start_daemon("--port", str(bms.path), *broker_flags(broker, "--stale-after", "2"), name="restarted")
    subscriber.wait(f"{P}/status", lambda p: p == "online")
    online_at = time.monotonic()
    subscriber.wait(f"{P}/link", lambda p: p == "offline", timeout=10)
    assert time.monotonic() - online_at < 2 + 1.0  # within --stale-after (+ scheduling slack)
    assert retained(broker, f"{P}/link")[f"{P}/link"] == "offline"


def test_a_bms_that_sends_at_once_never_shows_link_offline(
    broker: Broker, bms: FakeBms, subscriber: Subscriber, start_daemon: StartDaemon, notify_socket: NotifySocket
) -> None:
    bms.plug().stream([DISCHARGE, CELLS], interval=0.1)
    # Its watchdog pings come with its once-a-second bookkeeping: they show its own clock.
    env = notify_socket.env(watchdog_usec=1_500_000)
    daemon = start_daemon("--port", str(bms.path), *broker_flags(broker, "--stale-after", "1"), env=env)
    online = subscriber.wait(f"{P}/link", lambda p: p == "online")
    subscriber.wait(f"{P}/current")
    # Three rounds of its bookkeeping after the link came online: past --stale-after
    wait_until(lambda: len([t for t in notify_socket.with_text("WATCHDOG=1") if t > online.arrived]) >= 3, 10, "ticks")
    assert {m.payload for m in subscriber.on(f"{P}/link")} == {"online"}
    states = [json.loads(m.payload) for m in subscriber.on(f"{P}/state")]
    assert states and all(s["link"] == "online" for s in states)
    assert daemon.alive()
