"""The daemon end to end: a pseudo-terminal BMS, a real mosquitto, a real subscriber."""

from __future__ import annotations

import json
import re
import signal
import time
from pathlib import Path

import pytest
from harness import Broker, FakeBms, StartDaemon, Subscriber, broker_flags, make_tls, retained, wait_until
from helpers import DECODED, SPACER, VEC, P

from chargerybms.protocol import encode_cells, encode_status

pytestmark = pytest.mark.broker

CELLS, STATUS, IMPEDANCES = VEC["A4"], VEC["A1"], VEC["A5"]

EXPECTED_LEGACY = {
    "watthour": "47578.742",
    "amphour": "922.723",
    "batteryvolt": "53.294",
    "cellhigh": "3.343",
    "celllow": "3.323",
    "maxvolt": "3.62",
    "current": "23.0",
    "modename": "Charge",
    "modeint": "1",
    "temp1": "12.9",
    "temp2": "13.2",
    "soc": "91",
    "aggimped": "3.1",
}


def wait_for_more(subscriber: Subscriber, topic: str, more: int) -> None:
    """Until ``more`` further messages have come on ``topic``: as each frame that carries a
    value publishes it, that many more frames have been read and handled."""
    seen = len(subscriber.on(topic))
    wait_until(lambda: len(subscriber.on(topic)) >= seen + more, 15, f"{more} more messages on {topic}")


def test_vector_frames_publish_the_thirteen_topics_cells_and_state(
    broker: Broker, bms: FakeBms, subscriber: Subscriber, start_daemon: StartDaemon
) -> None:
    bms.plug().stream([CELLS, SPACER, STATUS, IMPEDANCES], interval=0.05)
    daemon = start_daemon("--port", str(bms.path), *broker_flags(broker, "--publish-cells", "--cells", "16"))
    for name, value in EXPECTED_LEGACY.items():
        assert subscriber.wait(f"{P}/{name}").payload == value, name
    cells = DECODED["A4"]["cell_voltages"]
    for i, volts in enumerate(cells, start=1):
        assert subscriber.wait(f"{P}/cellvolt{i}").payload == repr(volts)
    assert subscriber.wait(f"{P}/cellimped13").payload == "0.5"
    assert not subscriber.on(f"{P}/cellvolt17")

    def holds_all_three(payload: str) -> bool:  # the stream may start at any of its frames
        doc = json.loads(payload)
        return bool(doc["impedance_total"] == 3.1 and doc["cells_seen"] and doc["status_seen"])

    state = json.loads(subscriber.wait(f"{P}/state", holds_all_three).payload)
    assert state["pack_voltage"] == 53.294
    assert state["current"] == 23.0 and state["mode"] == "charge" and state["soc"] == 91
    assert state["cell_max"] == 3.343 and state["cell_max_index"] == 15
    assert state["cell_min"] == 3.323 and state["cell_min_index"] == 14
    assert state["cell_delta"] == 0.02
    assert state["power"] == round(53.294 * 23.0, 1)
    assert state["temperature_1"] == 12.9 and state["energy_wh"] == 47578.742
    assert state["discharge_end_voltage"] is None  # a V1.25 status frame does not carry it
    assert state["status_seen"] and state["cells_seen"] and state["impedances_seen"]

    # Telemetry is not retained; status and link are, so a late subscriber sees them.
    assert not any(m.retain for m in subscriber.on(f"{P}/current"))
    late = Subscriber(broker, [f"{P}/status", f"{P}/link"])
    try:
        for topic in (f"{P}/status", f"{P}/link"):
            delivered = late.wait(topic, timeout=5)  # on subscribing: only a retained copy can come
            assert (delivered.payload, delivered.retain) == ("online", True), topic
    finally:
        late.close()
    assert daemon.alive()


def test_cells_setting_restricts_sums_to_wired_cells(
    broker: Broker, bms: FakeBms, subscriber: Subscriber, start_daemon: StartDaemon
) -> None:
    frame = encode_cells([3300, 3310, 3320, 15, 3, 0, 22, 9], energy_mwh=1000, capacity_mah=2000)
    bms.plug().stream([frame], interval=0.05)
    start_daemon("--port", str(bms.path), *broker_flags(broker, "--cells", "3", "--publish-cells"))
    assert subscriber.wait(f"{P}/batteryvolt").payload == "9.93"
    assert subscriber.wait(f"{P}/celllow").payload == "3.3"
    assert subscriber.wait(f"{P}/cellvolt3").payload == "3.32"
    wait_for_more(subscriber, f"{P}/cellvolt3", 3)  # three more frames, each with a fourth slot
    assert not subscriber.on(f"{P}/cellvolt4")


def test_unplug_and_replug_and_absent_at_start(
    broker: Broker, bms: FakeBms, subscriber: Subscriber, start_daemon: StartDaemon
) -> None:
    # The path does not exist when the daemon starts.
    daemon = start_daemon("--port", str(bms.path), *broker_flags(broker, "--stale-after", "1.5"))
    daemon.wait_log("cannot open")
    assert subscriber.wait(f"{P}/link").payload == "offline"
    bms.plug().stream([STATUS, SPACER, CELLS], interval=0.05)
    subscriber.wait(f"{P}/link", lambda p: p == "online", timeout=20)
    subscriber.wait(f"{P}/current")

    subscriber.clear()
    bms.unplug()  # the USB adapter is pulled
    daemon.wait_log("went away")
    subscriber.wait(f"{P}/link", lambda p: p == "offline", timeout=10)
    subscriber.clear()
    bms.plug()  # a new pseudo-terminal behind the same path
    assert subscriber.wait(f"{P}/link", timeout=20).payload == "online"
    assert subscriber.wait(f"{P}/current").payload == "23.0"
    assert daemon.alive()
    assert daemon.log().count("went away") == 1


def test_silent_bms_goes_offline_and_comes_back(
    broker: Broker, bms: FakeBms, subscriber: Subscriber, start_daemon: StartDaemon
) -> None:
    bms.plug().stream([STATUS], interval=0.1)
    daemon = start_daemon("--port", str(bms.path), *broker_flags(broker, "--stale-after", "1.5"))
    subscriber.wait(f"{P}/link", lambda p: p == "online")
    subscriber.clear()
    bms.pause()
    paused = time.monotonic()
    subscriber.wait(f"{P}/link", lambda p: p == "offline", timeout=10)
    assert time.monotonic() - paused >= 1.0  # not before the stale timeout
    subscriber.clear()
    bms.resume()
    subscriber.wait(f"{P}/link", lambda p: p == "online", timeout=10)
    assert daemon.alive()


def test_broker_down_at_start_then_restarted_mid_run(tmp_path: Path, bms: FakeBms, start_daemon: StartDaemon) -> None:
    broker = Broker(tmp_path / "late-broker")  # configured, not started
    bms.plug().stream([STATUS, CELLS], interval=0.05)
    daemon = start_daemon("--port", str(bms.path), *broker_flags(broker))
    daemon.wait_log("cannot connect")
    broker.start()
    try:
        sub = Subscriber(broker)
        try:
            sub.wait(f"{P}/status", lambda p: p == "online", timeout=20)
            sub.wait(f"{P}/current")
        finally:
            sub.close()
        bms.pause()  # from now on only a republication can bring values back
        broker.stop()  # it forgets every retained message
        daemon.wait_log("lost the connection")
        broker.start()
        sub = Subscriber(broker)
        try:
            assert sub.wait(f"{P}/status", timeout=30).payload == "online"
            assert sub.wait(f"{P}/link").payload == "online"
            assert sub.wait(f"{P}/batteryvolt").payload == "53.294"  # the latest values, republished
            assert sub.wait(f"{P}/current").payload == "23.0"
            assert json.loads(sub.wait(f"{P}/state").payload)["pack_voltage"] == 53.294
        finally:
            sub.close()
        assert daemon.alive()
    finally:
        broker.stop()


def test_garbage_truncated_and_corrupted_frames_publish_nothing_bogus(
    broker: Broker, bms: FakeBms, subscriber: Subscriber, start_daemon: StartDaemon
) -> None:
    corrupted = bytearray(STATUS)
    corrupted[8] ^= 0x40  # current byte flipped: checksum fails
    corrupted_impedances = bytearray(IMPEDANCES)
    corrupted_impedances[-3] ^= 0x01  # one cell's impedance changed: checksum fails
    noisy = bytes(range(256)) + b"$$\x57" + b"$$"
    bad_length = bytearray(CELLS)
    bad_length[3] = 0x3D
    stream = [noisy, CELLS[:6], STATUS, bytes(corrupted), SPACER, bytes(bad_length[:30]), CELLS, b"\xff" * 40]
    stream += [IMPEDANCES[:9], bytes(corrupted_impedances), IMPEDANCES, b"$$" + IMPEDANCES[2:20]]
    bms.plug().stream(stream, interval=0.02)
    daemon = start_daemon("--port", str(bms.path), *broker_flags(broker))
    for name in EXPECTED_LEGACY:  # every topic is published (from the frames that are whole)...
        subscriber.wait(f"{P}/{name}")
    # ... and through ten more rounds of the damaged stream (one whole status frame each),
    # never with another value
    wait_for_more(subscriber, f"{P}/current", 10)
    for name, value in EXPECTED_LEGACY.items():
        seen = {m.payload for m in subscriber.on(f"{P}/{name}")}
        assert seen == {value}, (name, seen)
    assert daemon.alive()


def test_sigterm_publishes_offline_and_exits_0(
    broker: Broker, bms: FakeBms, subscriber: Subscriber, start_daemon: StartDaemon
) -> None:
    bms.plug().stream([STATUS], interval=0.1)
    daemon = start_daemon("--port", str(bms.path), *broker_flags(broker))
    subscriber.wait(f"{P}/status", lambda p: p == "online")
    subscriber.wait(f"{P}/current")
    daemon.signal(signal.SIGTERM)
    started = time.monotonic()
    assert daemon.wait(10) == 0
    assert time.monotonic() - started < 5
    subscriber.wait(f"{P}/status", lambda p: p == "offline", timeout=5)
    assert retained(broker, f"{P}/status") == {f"{P}/status": "offline"}  # for who subscribes later
    # Said by the daemon itself ("offline" is 7 bytes), then a clean DISCONNECT: not left to
    # its Last Will, which mosquitto sends for a client that "closed its connection".
    said = re.search(
        r"Received PUBLISH from (\S+) \(d0, q1, r1, m\d+, '" + P + r"/status', \.\.\. \(7 bytes\)\)", broker.log()
    )
    assert said, broker.log()[-3000:]
    assert f"Client {said.group(1)} disconnected." in broker.log(), broker.log()[-3000:]
    assert "Traceback" not in daemon.log()


def test_sigkill_lets_the_broker_deliver_the_last_will(
    broker: Broker, bms: FakeBms, subscriber: Subscriber, start_daemon: StartDaemon
) -> None:
    bms.plug().stream([STATUS], interval=0.1)
    daemon = start_daemon("--port", str(bms.path), *broker_flags(broker))
    subscriber.wait(f"{P}/status", lambda p: p == "online")
    subscriber.clear()
    daemon.signal(signal.SIGKILL)
    daemon.wait(5)
    # mosquitto notices the dead connection at once (socket closed) and sends the will.
    assert subscriber.wait(f"{P}/status", timeout=15).payload == "offline"


def test_wrong_password_is_a_clear_error_and_retries(tmp_path: Path, bms: FakeBms, start_daemon: StartDaemon) -> None:
    broker = Broker(tmp_path / "auth", users={"bms": "right"}).start()
    try:
        sub = Subscriber(broker, username="bms", password="right")
        bms.plug().stream([STATUS], interval=0.1)
        daemon = start_daemon(
            "--port", str(bms.path), *broker_flags(broker, "--mqtt-username", "bms"),
            env={"CHARGERY_MQTT_PASSWORD": "S3cret-Not-This"},
        )  # fmt: skip
        daemon.wait_log("refused the connection")
        daemon.wait_log("(check the user name and password)")
        wait_until(
            lambda: broker.log().count("not authorised") >= 2 or broker.log().count("bad user") >= 2, 15, "a retry"
        )
        assert daemon.alive()
        assert "S3cret-Not-This" not in daemon.log()  # never log a password
        assert not sub.on(f"{P}/current")
        sub.close()

        ok = start_daemon(
            "--port", str(bms.path), *broker_flags(broker, "--mqtt-username", "bms", "--topic-prefix", "ok"),
            env={"CHARGERY_MQTT_PASSWORD": "right"}, name="ok",
        )  # fmt: skip
        sub = Subscriber(broker, username="bms", password="right")
        sub.wait("ok/status", lambda p: p == "online")
        sub.close()
        assert ok.alive()
    finally:
        broker.stop()


def test_tls_needs_the_right_ca_and_never_falls_back(tmp_path: Path, bms: FakeBms, start_daemon: StartDaemon) -> None:
    tls = make_tls(tmp_path / "tls")
    broker = Broker(tmp_path / "tls-broker", tls=tls).start()
    try:
        sub = Subscriber(broker)
        bms.plug().stream([STATUS], interval=0.1)
        tls_flags = ["--mqtt-host", "127.0.0.1", "--mqtt-port", str(broker.tls_port), "--mqtt-tls", "--no-ha-discovery"]
        wrong = start_daemon(
            "--port", str(bms.path), *tls_flags, "--mqtt-ca-file", str(tls.other_ca), "--topic-prefix", "wrong"
        )
        wrong.wait_log("certificate verify failed")
        wrong.wait_log("TLS with")
        assert wrong.alive()

        other_bms = FakeBms(tmp_path / "ttyOther").plug()  # the port is locked by the first daemon
        other_bms.stream([STATUS], interval=0.1)
        right = start_daemon(
            "--port", str(other_bms.path), *tls_flags, "--mqtt-ca-file", str(tls.ca), "--topic-prefix", "right",
            name="right",
        )  # fmt: skip
        sub.wait("right/status", lambda p: p == "online")
        assert sub.wait("right/current").payload == "23.0"
        right.wait_log("(TLS)")
        assert not [m for m in sub.messages if m.topic.startswith("wrong/")]
        sub.close()
        other_bms.close()
    finally:
        broker.stop()


def test_status_frames_and_silence_never_crash_on_13_byte_frames(
    broker: Broker, bms: FakeBms, subscriber: Subscriber, start_daemon: StartDaemon
) -> None:
    old = encode_status(charge_end_mv=4200, deci_amps=12, t1_deci=-223, t2_deci=15)
    bms.plug().stream([old], interval=0.05)
    start_daemon("--port", str(bms.path), *broker_flags(broker))
    assert subscriber.wait(f"{P}/temp1").payload == "-22.3"
    assert subscriber.wait(f"{P}/current").payload == "1.2"
    wait_for_more(subscriber, f"{P}/current", 3)  # three more such frames
    assert not subscriber.on(f"{P}/modename")  # a 13-byte frame has no mode: nothing invented
    state = json.loads(subscriber.wait(f"{P}/state").payload)
    assert state["mode"] is None and state["soc"] is None


def test_a_network_bridge_url_works_and_reconnects(
    broker: Broker, subscriber: Subscriber, start_daemon: StartDaemon
) -> None:
    """--port socket://host:port, as with ser2net or ESP-Link: pyserial's URL handlers."""
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    stop = threading.Event()
    connections: list[socket.socket] = []

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            connections.append(conn)
            try:
                while not stop.is_set() and conn.fileno() >= 0:
                    conn.sendall(STATUS + SPACER + CELLS)
                    time.sleep(0.1)
            except OSError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        daemon = start_daemon("--port", f"socket://127.0.0.1:{port}", *broker_flags(broker))
        assert subscriber.wait(f"{P}/batteryvolt").payload == "53.294"
        connections[0].close()  # the bridge drops the connection
        daemon.wait_log("went away")
        wait_until(lambda: len(connections) >= 2, 20, "the daemon connecting to the bridge again")
        subscriber.clear()  # from here on, values can only come through the new connection
        assert subscriber.wait(f"{P}/current", timeout=20).payload == "23.0"
        assert daemon.alive()
    finally:
        stop.set()
        thread.join(2)
        server.close()


def test_tls_with_a_client_certificate(tmp_path: Path, bms: FakeBms, start_daemon: StartDaemon) -> None:
    tls = make_tls(tmp_path / "tls")
    broker = Broker(tmp_path / "mtls", tls=tls, require_client_cert=True).start()
    try:
        sub = Subscriber(broker)
        bms.plug().stream([STATUS], interval=0.1)
        flags = ["--mqtt-host", "127.0.0.1", "--mqtt-port", str(broker.tls_port), "--mqtt-tls", "--no-ha-discovery",
                 "--mqtt-ca-file", str(tls.ca)]  # fmt: skip
        without = start_daemon("--port", str(bms.path), *flags, "--topic-prefix", "anon")
        without.wait_log("client certificate")
        other = FakeBms(tmp_path / "ttyCert").plug()
        other.stream([STATUS], interval=0.1)
        with_cert = start_daemon(
            "--port", str(other.path), *flags, "--topic-prefix", "cert",
            "--mqtt-cert-file", str(tls.client_cert), "--mqtt-key-file", str(tls.client_key), name="cert",
        )  # fmt: skip
        assert sub.wait("cert/current").payload == "23.0"
        with_cert.wait_log("(TLS)")
        assert not [m for m in sub.messages if m.topic.startswith("anon/")]
        assert without.alive() and "connected to" not in without.log()
        without.signal(signal.SIGTERM)  # while it waits to retry, its last TLS session closed by the broker
        assert without.wait(10) == 0 and "Traceback" not in without.log(), without.log()
        sub.close()
        other.close()
    finally:
        broker.stop()
