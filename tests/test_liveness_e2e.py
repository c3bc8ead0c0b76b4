"""What a consumer sees in every life phase of the daemon: starting, running, the BMS
silent, stopped cleanly, killed, restarted. Real mosquitto, pty BMS, real subscriber."""

from __future__ import annotations

import json
import random
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from harness import Broker, DaemonProcess, FakeBms, Subscriber, wait_until

from chargerybms.protocol import encode_cells, encode_impedances, encode_status

pytestmark = pytest.mark.broker

P = "chargerybms"
StartDaemon = Callable[..., DaemonProcess]

CELLS = encode_cells([3310] * 16, energy_mwh=5_000_000, capacity_mah=100_000)  # 52.96 V
DISCHARGE = encode_status(charge_end_mv=3650, mode=0, deci_amps=230, t1_deci=200, t2_deci=190, soc=60)  # -23 A


def flags(broker: Broker, *extra: str) -> list[str]:
    return ["--mqtt-host", "127.0.0.1", "--mqtt-port", str(broker.port), "--no-ha-discovery", *extra]


def test_sigterm_leaves_link_and_status_offline_retained(
    broker: Broker, bms: FakeBms, subscriber: Subscriber, start_daemon: StartDaemon
) -> None:
    bms.plug().stream([DISCHARGE, CELLS], interval=0.1)
    daemon = start_daemon("--port", str(bms.path), *flags(broker))
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
    first = start_daemon("--port", str(bms.path), *flags(broker, "--stale-after", "2"))
    subscriber.wait(f"{P}/link", lambda p: p == "online")
    first.signal(signal.SIGKILL)
    first.wait(5)
    subscriber.wait(f"{P}/status", lambda p: p == "offline")  # the Last Will
    # Only the will could speak: link is still the crashed run's `online`.
    assert retained(broker, f"{P}/link", f"{P}/status") == {f"{P}/link": "online", f"{P}/status": "offline"}

    bms.pause()  # the BMS is silent when the daemon comes back
    subscriber.clear()
    start_daemon("--port", str(bms.path), *flags(broker, "--stale-after", "2"), name="restarted")
    subscriber.wait(f"{P}/status", lambda p: p == "online")
    online_at = time.monotonic()
    subscriber.wait(f"{P}/link", lambda p: p == "offline", timeout=10)
    assert time.monotonic() - online_at < 2 + 1.0  # within --stale-after (+ scheduling slack)
    assert retained(broker, f"{P}/link")[f"{P}/link"] == "offline"


def test_a_bms_that_sends_at_once_never_shows_link_offline(
    broker: Broker, bms: FakeBms, subscriber: Subscriber, start_daemon: StartDaemon
) -> None:
    bms.plug().stream([DISCHARGE, CELLS], interval=0.1)
    daemon = start_daemon("--port", str(bms.path), *flags(broker, "--stale-after", "3"))
    subscriber.wait(f"{P}/link", lambda p: p == "online")
    subscriber.wait(f"{P}/current")
    time.sleep(4)  # past --stale-after
    assert {m.payload for m in subscriber.on(f"{P}/link")} == {"online"}
    states = [json.loads(m.payload) for m in subscriber.on(f"{P}/state")]
    assert states and all(s["link"] == "online" for s in states)
    assert daemon.alive()


def test_a_burst_of_three_frames_is_one_state_holding_all_three(
    broker: Broker, bms: FakeBms, subscriber: Subscriber, start_daemon: StartDaemon
) -> None:
    bms.plug()
    daemon = start_daemon("--port", str(bms.path), *flags(broker))
    subscriber.wait(f"{P}/status", lambda p: p == "online")
    daemon.wait_log("serial: opened")
    for round_ in range(3):
        subscriber.clear()
        amps, ohms, millivolts = 100 + round_, 10 + round_, 3300 + round_
        burst = [
            encode_status(charge_end_mv=3650, mode=1, deci_amps=amps, t1_deci=200, t2_deci=200, soc=50),
            encode_cells([millivolts] * 8, energy_mwh=1_000_000, capacity_mah=20_000),
            encode_impedances(1, amps, [ohms] * 8),
        ]
        for frame in burst:  # one read each, a few milliseconds apart, as the BMS sends them
            bms.write(frame)
            time.sleep(0.004)
        subscriber.wait(f"{P}/aggimped", lambda p, o=ohms: p == repr(o * 8 / 10))  # the burst is read
        subscriber.wait(f"{P}/state")  # its state document: waited for, then no second one
        time.sleep(0.6)
        states = [json.loads(m.payload) for m in subscriber.on(f"{P}/state")]
        assert len(states) == 1, [(s["current"], s["cell_min"], s["impedance_total"]) for s in states]
        (state,) = states
        assert state["current"] == amps / 10
        assert state["cell_min"] == millivolts / 1000
        assert state["impedance_total"] == round(ohms * 8 / 10, 1)


def test_energy_meters_survive_sigkill_losing_at_most_a_minute(
    broker: Broker, bms: FakeBms, subscriber: Subscriber, start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """Discharging at about 1.2 kW, killed at a random moment after more than a minute:
    after the restart the meter is at least what was published a minute before the kill."""
    state_dir = tmp_path / "meters"
    bms.plug().stream([DISCHARGE, CELLS], interval=0.1)
    args = ["--port", str(bms.path), *flags(broker, "--state-dir", str(state_dir))]
    first = start_daemon(*args)
    subscriber.wait(f"{P}/link", lambda p: p == "online")
    kill_after = random.uniform(65, 80)
    time.sleep(kill_after)
    first.signal(signal.SIGKILL)
    killed = time.monotonic()
    first.wait(5)
    published = [
        (m.arrived, json.loads(m.payload)["energy_discharged"])
        for m in subscriber.on(f"{P}/state")
        if m.arrived <= killed
    ]
    values = [v for _, v in published]
    assert values == sorted(values), "a published meter went down within a run"
    minute_before = max(v for t, v in published if t <= killed - 60)
    assert values[-1] > minute_before > 0, (kill_after, values[-1], minute_before)

    # What the minute's save left on disk: at least what was published a minute before the
    # kill, at most what was measured by the kill.
    saved_wh = json.loads((state_dir / "energy-chargerybms.json").read_text())["energy_discharged_wh"]
    assert minute_before <= round(saved_wh / 1000, 3) <= values[-1], (kill_after, saved_wh, minute_before, values)

    subscriber.clear()
    start_daemon(*args, name="restarted")
    state = json.loads(subscriber.wait(f"{P}/state", timeout=20).payload)
    assert state["energy_discharged"] >= round(saved_wh / 1000, 3), (kill_after, state, saved_wh)
    wait_until(lambda: subscriber.on(f"{P}/current"), 5, "values after the restart")
