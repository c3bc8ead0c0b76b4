"""The bank end to end: two real daemons, each reading its own pseudo-terminal BMS fed by
the simulator in a different state (one charging hard, one discharging), the real bank
process, a real mosquitto and a real subscriber."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import Broker, DaemonProcess, FakeBms, Subscriber
from helpers import wait_until
from test_victron import check_mqtt_battery

from chargerybms.simulator import SimulatedBms

pytestmark = pytest.mark.broker

StartDaemon = Callable[..., DaemonProcess]
A, B, GHOST = "chargerybms/a", "chargerybms/b", "chargerybms/ghost"
BANK = "chargerybank"
BANK_STALE = 4.0  # the bank's --stale-after


def one_second(sim: SimulatedBms, t: int) -> bytes:
    """Every frame the simulated BMS sends in second ``t`` (an even one: with a cells frame)."""
    return b"".join(sim.frames_at(t))


@pytest.fixture
def second_bms(tmp_path: Path) -> Iterator[FakeBms]:
    fake = FakeBms(tmp_path / "ttyBMS2")
    yield fake
    fake.close()


def member(start_daemon: StartDaemon, broker: Broker, bms: FakeBms, prefix: str) -> DaemonProcess:
    daemon = start_daemon(
        "--port", str(bms.path), "--mqtt-host", "127.0.0.1", "--mqtt-port", str(broker.port),
        "--topic-prefix", prefix, "--no-ha-discovery", name=prefix.rsplit("/", 1)[-1],
    )  # fmt: skip
    daemon.wait_log("serial: opened")
    return daemon


def doc(subscriber: Subscriber, topic: str, predicate: Callable[[dict[str, Any]], bool] = lambda d: True) -> Any:
    received = subscriber.wait(topic, lambda p: predicate(json.loads(p)), timeout=20)
    return json.loads(received.payload)


def test_two_packs_make_one_bank_that_drops_a_killed_member_and_takes_it_back(
    broker: Broker, bms: FakeBms, second_bms: FakeBms, subscriber: Subscriber, start_daemon: StartDaemon
) -> None:
    # Pack a charging hard, pack b discharging: each BMS repeats one second of its frames,
    # so each member's values hold still and the bank's can be checked against them.
    charging, discharging = SimulatedBms(8, seed=3, cycle=240), SimulatedBms(8, seed=7, cycle=240)
    bms.plug().stream([one_second(charging, 40)], interval=0.3)
    second_bms.plug().stream([one_second(discharging, 150)], interval=0.3)
    member(start_daemon, broker, bms, A)
    b = member(start_daemon, broker, second_bms, B)
    bank = start_daemon(
        "bank", "--member", f"{A}=280", "--member", B, "--member", GHOST, "--mqtt-host", "127.0.0.1",
        "--mqtt-port", str(broker.port), "--stale-after", str(BANK_STALE), name="bank",
    )  # fmt: skip

    a_doc = doc(subscriber, f"{A}/state", lambda d: d["cell_count"] == 8 and d["soc"] is not None)
    b_doc = doc(subscriber, f"{B}/state", lambda d: d["cell_count"] == 8 and d["soc"] is not None)
    assert a_doc["current"] > 0 > b_doc["current"]
    bank_doc = doc(subscriber, f"{BANK}/state", lambda d: d["members_live"] == 2)
    assert bank_doc["members_missing"] == [GHOST]
    assert bank_doc["current"] == round(a_doc["current"] + b_doc["current"], 1)
    assert bank_doc["power"] == round(a_doc["power"] + b_doc["power"], 1)
    assert bank_doc["pack_voltage"] == round((a_doc["pack_voltage"] + b_doc["pack_voltage"]) / 2, 3)
    assert bank_doc["capacity_ah"] == round(a_doc["capacity_ah"] + b_doc["capacity_ah"], 3)
    # a's capacity given with it, b's read off its document (charge over state of charge).
    b_capacity = round(b_doc["capacity_ah"] * 100 / b_doc["soc"])
    assert abs(b_capacity - 280) <= 280 * 0.5 / b_doc["soc"] + 0.5  # the simulated pack's 280 Ah, to a whole percent
    assert bank_doc["capacity_installed"] == 280 + b_capacity
    assert bank_doc["soc"] == round((a_doc["soc"] * 280 + b_doc["soc"] * b_capacity) / (280 + b_capacity), 1)
    # The lowest cell of the bank: the right pack and cell.
    low_doc, low_prefix = (a_doc, A) if a_doc["cell_min"] <= b_doc["cell_min"] else (b_doc, B)
    assert bank_doc["cell_min"] == low_doc["cell_min"]
    assert bank_doc["cell_min_pack"] == low_prefix
    assert bank_doc["cell_min_index"] == low_doc["cell_voltages"].index(low_doc["cell_min"]) + 1
    high_doc, high_prefix = (a_doc, A) if a_doc["cell_max"] >= b_doc["cell_max"] else (b_doc, B)
    assert (bank_doc["cell_max"], bank_doc["cell_max_pack"]) == (high_doc["cell_max"], high_prefix)
    assert subscriber.last(f"{BANK}/link") is not None and subscriber.last(f"{BANK}/link").payload == "online"  # type: ignore[union-attr]
    bank.wait_log(f"member {GHOST}: nothing seen")

    # SIGKILL b: its Last Will; the bank leaves it out within stale_after and says so.
    subscriber.clear()
    killed = time.monotonic()
    b.signal(signal.SIGKILL)
    dropped = doc(subscriber, f"{BANK}/state", lambda d: d["members_live"] == 1)
    assert time.monotonic() - killed <= BANK_STALE + 1.0
    assert dropped["members_missing"] == [B, GHOST]
    assert dropped["current"] == a_doc["current"] and dropped["packs"][1]["current"] is None
    assert f"{B}: daemon stopped" in dropped["problems"]
    bank.wait_log(f"bank: {B} left out of the bank: daemon stopped")
    assert subscriber.on(f"{BANK}/link") == []  # still online: a is live

    # b comes back: counted again.
    subscriber.clear()
    member(start_daemon, broker, second_bms, B)
    back = doc(subscriber, f"{BANK}/state", lambda d: d["members_live"] == 2)
    assert back["current"] == round(a_doc["current"] + b_doc["current"], 1)
    bank.wait_log(f"bank: {B} is live")

    # Stop the bank: its link goes offline (retained), then its status.
    bank.signal(signal.SIGTERM)
    assert bank.wait() == 0
    wait_until(
        lambda: [m.payload for m in subscriber.on(f"{BANK}/link")][-1:] == ["offline"], 5, "the bank's link offline"
    )
    late = Subscriber(broker)  # a subscriber that comes later reads the retained word
    try:
        retained = late.wait(f"{BANK}/link", timeout=5)
        assert retained.retain and retained.payload == "offline"
    finally:
        late.close()
    wait_until(lambda: [m.payload for m in subscriber.on(f"{BANK}/status")][-1:] == ["offline"], 5, "status offline")


def test_a_silent_bms_is_left_out_within_stale_after(
    broker: Broker, bms: FakeBms, second_bms: FakeBms, subscriber: Subscriber, start_daemon: StartDaemon
) -> None:
    """The member's daemon keeps running but its BMS goes quiet: its link goes offline and
    its documents stop; the bank drops it, and the bank's link goes offline with the last."""
    bms.plug().stream([one_second(SimulatedBms(8, seed=3), 40)], interval=0.3)
    second_bms.plug().stream([one_second(SimulatedBms(8, seed=7), 150)], interval=0.3)
    member(start_daemon, broker, bms, A)
    member(start_daemon, broker, second_bms, B)
    start_daemon(
        "bank", "--member", A, "--member", B, "--mqtt-host", "127.0.0.1", "--mqtt-port", str(broker.port),
        "--stale-after", str(BANK_STALE), "--victron", "mqtt-battery", name="bank",
    )  # fmt: skip
    doc(subscriber, f"{BANK}/state", lambda d: d["members_live"] == 2)
    victron = doc(subscriber, f"{BANK}/victron")
    check_mqtt_battery(victron)  # the single-pack documents' contract
    assert victron["Io"] == {"AllowToCharge": 1, "AllowToDischarge": 1} and "Soc" in victron
    subscriber.clear()
    second_bms.pause()
    left = doc(subscriber, f"{BANK}/state", lambda d: d["members_live"] == 1)
    assert left["members_missing"] == [B]
    subscriber.clear()
    bms.pause()
    doc(subscriber, f"{BANK}/state", lambda d: d["members_live"] == 0)
    wait_until(lambda: subscriber.last(f"{BANK}/link").payload == "offline", 5, "the bank's link offline")  # type: ignore[union-attr]
