"""Home Assistant discovery against a real broker: retained, re-sent, cleaned up, separate."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from harness import Broker, FakeBms, NotifySocket, StartDaemon, Subscriber, broker_flags, wait_until
from helpers import VEC

from chargerybms.protocol import encode_cells, encode_status

pytestmark = pytest.mark.broker

CELLS16, STATUS = VEC["A4"], VEC["A1"]
CONFIG = "homeassistant/device/chargerybms/config"


def flags(broker: Broker, *extra: str) -> list[str]:
    return broker_flags(broker, *extra, ha_discovery=True)


def components(payload: str) -> dict[str, dict[str, object]]:
    parsed: dict[str, dict[str, object]] = json.loads(payload)["components"]
    return parsed


def test_discovery_is_retained_and_resent_on_birth_and_after_broker_restart(
    broker: Broker, bms: FakeBms, subscriber: Subscriber, start_daemon: StartDaemon, notify_socket: NotifySocket
) -> None:
    bms.plug().stream([CELLS16, STATUS], interval=0.1)
    daemon = start_daemon("--port", str(bms.path), *flags(broker), env=notify_socket.env())
    first = subscriber.wait(CONFIG, lambda p: "cell_16_voltage" in p)
    assert json.loads(first.payload)["device"]["model"] == "BMS16T"

    late = Subscriber(broker, [CONFIG])  # retained: a Home Assistant that starts later sees it
    try:
        wait_until(lambda: late.last(CONFIG), 5, "retained config")
        assert late.on(CONFIG)[0].retain  # delivered on subscribe: retained
    finally:
        late.close()

    # Home Assistant restarts: its birth message makes us announce again, then the state.
    # The BMS is silent meanwhile, so the state can only come from that announcement.
    bms.pause()
    paused = notify_socket.statuses()
    # The daemon's status line counts the silence: once it says a second, the last frame
    # in flight has been read and its state document sent.
    wait_until(
        lambda: any(re.search(r"last frame [1-9]\d* s ago", s) for s in notify_socket.statuses()[len(paused) :]),
        10,
        "the daemon to notice the silence",
    )
    subscriber.clear()
    subscriber.publish("homeassistant/status", "online")
    subscriber.wait(CONFIG)
    daemon.wait_log("Home Assistant came online")
    config_at = next(i for i, m in enumerate(subscriber.messages) if m.topic == CONFIG)
    wait_until(
        lambda: any(m.topic == "chargerybms/state" for m in subscriber.messages[config_at:]), 10, "state after config"
    )

    # The broker restarts and forgets every retained message: we publish them again.
    bms.resume()
    subscriber.close()
    broker.stop()
    broker.start()
    again = Subscriber(broker, [CONFIG, "chargerybms/status", "chargerybms/link"])
    try:
        wait_until(lambda: again.last(CONFIG), 30, "discovery after a broker restart")
        again.wait("chargerybms/link", lambda p: p == "online", timeout=10)
        again.wait("chargerybms/status", lambda p: p == "online", timeout=10)
    finally:
        again.close()


def test_entities_no_longer_published_are_removed(
    tmp_path: Path, broker: Broker, bms: FakeBms, subscriber: Subscriber, start_daemon: StartDaemon
) -> None:
    bms.plug().stream([CELLS16, STATUS], interval=0.1)
    first = start_daemon("--port", str(bms.path), *flags(broker))
    subscriber.wait(CONFIG, lambda p: "cell_16_voltage" in p)
    first.stop()

    subscriber.clear()
    second = start_daemon("--port", str(bms.path), *flags(broker, "--cells", "8"))
    cleared = subscriber.wait(CONFIG, lambda p: '"cell_9_voltage": {"p": "sensor"}' in p, timeout=20)
    parts = components(cleared.payload)
    assert parts["cell_16_impedance"] == {"p": "sensor"}
    assert "name" in parts["cell_8_voltage"]
    second.wait_log("removing entities")
    # After that the stubs are gone from what the broker keeps.
    subscriber.publish("homeassistant/status", "online")
    later = subscriber.wait(CONFIG, lambda p: "cell_9_voltage" not in p, timeout=20)
    assert "cell_8_voltage" in components(later.payload)


def test_two_bms_side_by_side_are_two_devices(
    tmp_path: Path, broker: Broker, subscriber: Subscriber, start_daemon: StartDaemon
) -> None:
    one, two = FakeBms(tmp_path / "ttyA").plug(), FakeBms(tmp_path / "ttyB").plug()
    try:
        one.stream([CELLS16, STATUS], interval=0.1)
        two.stream([encode_cells([3300] * 8, energy_mwh=1, capacity_mah=1), STATUS], interval=0.1)
        start_daemon("--port", str(one.path), *flags(broker, "--topic-prefix", "bms/house"))
        start_daemon("--port", str(two.path), *flags(broker, "--topic-prefix", "bms/shed"), name="shed")
        a = subscriber.wait("homeassistant/device/bms_house/config", lambda p: "BMS16T" in p)
        b = subscriber.wait("homeassistant/device/bms_shed/config", lambda p: "BMS8T" in p)
        ids_a = {c["unique_id"] for c in components(a.payload).values()}
        ids_b = {c["unique_id"] for c in components(b.payload).values()}
        assert ids_a and ids_b and not ids_a & ids_b
        assert json.loads(a.payload)["device"]["identifiers"] != json.loads(b.payload)["device"]["identifiers"]
        assert json.loads(a.payload)["state_topic"] == "bms/house/ha_state"
        assert subscriber.wait("bms/shed/batteryvolt").payload == "26.4"
    finally:
        one.close()
        two.close()


def test_state_is_republished_on_the_heartbeat_while_the_bms_is_slow(
    broker: Broker, bms: FakeBms, subscriber: Subscriber, start_daemon: StartDaemon
) -> None:
    bms.plug().stream([STATUS], interval=3.0)  # slower than the heartbeat, faster than stale
    start_daemon("--port", str(bms.path), *flags(broker, "--heartbeat", "1", "--stale-after", "10"))
    subscriber.wait("chargerybms/state")
    subscriber.clear()

    def more_states_than_frames() -> bool:
        states, currents = subscriber.on("chargerybms/state"), subscriber.on("chargerybms/current")
        return len(states) >= 3 and len(states) > len(currents)

    wait_until(more_states_than_frames, 15, "state documents between the frames")


def test_mode_byte_decides_which_meter_counts(
    broker: Broker, bms: FakeBms, subscriber: Subscriber, start_daemon: StartDaemon
) -> None:
    discharging = encode_status(charge_end_mv=3650, mode=0, deci_amps=500, t1_deci=200, t2_deci=200, soc=50)
    cells = encode_cells([3300] * 16, energy_mwh=1, capacity_mah=1)
    bms.plug().stream([cells, discharging], interval=0.1)
    start_daemon("--port", str(bms.path), *flags(broker))
    state = json.loads(subscriber.wait("chargerybms/state", lambda p: json.loads(p)["energy_discharged"] > 0).payload)
    assert state["energy_discharged"] > 0 and state["energy_charged"] == 0.0
    assert state["discharge_power"] == 2640.0 and state["charge_power"] == 0.0 and state["current"] == -50.0


def test_energy_meters_survive_a_restart(
    tmp_path: Path, broker: Broker, bms: FakeBms, subscriber: Subscriber, start_daemon: StartDaemon
) -> None:
    charging = encode_status(charge_end_mv=3650, mode=1, deci_amps=1000, t1_deci=200, t2_deci=200, soc=50)
    bms.plug().stream([encode_cells([3300] * 16, energy_mwh=1, capacity_mah=1), charging], interval=0.1)
    state_dir = str(tmp_path / "meters")
    first = start_daemon("--port", str(bms.path), *flags(broker, "--state-dir", state_dir))
    subscriber.wait("chargerybms/state", lambda p: json.loads(p)["energy_charged"] >= 0.005, timeout=30)
    first.stop()  # SIGTERM: the meters are saved
    subscriber.wait("chargerybms/status", lambda p: p == "offline")  # all it published has arrived
    before = json.loads(subscriber.on("chargerybms/state")[-1].payload)["energy_charged"]
    saved = json.loads((tmp_path / "meters" / "energy-chargerybms.json").read_text())
    assert round(saved["energy_charged_wh"] / 1000, 3) >= before  # published in kWh to 3 decimals

    subscriber.clear()
    start_daemon("--port", str(bms.path), *flags(broker, "--state-dir", state_dir))
    after = json.loads(subscriber.wait("chargerybms/state").payload)["energy_charged"]
    assert after >= before > 0
