"""One transmission per burst, end to end: a pseudo-terminal fed the way a USB adapter
delivers a burst (62-byte pieces with gaps), the real daemon, and a TCP relay between it and
a real mosquitto that records each chunk the daemon's socket sends (a transmission) and the
MQTT publications in it. The timing rule itself is proved on a fake clock in
``test_schedule.py``; here: the pieces, the socket and the promise."""

from __future__ import annotations

import itertools
import json
import socket
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from harness import Broker, DaemonProcess, FakeBms, Subscriber, wait_until

from chargerybms.protocol import encode_cells, encode_impedances, encode_status
from chargerybms.schedule import PROMISE
from chargerybms.simulator import SimulatedBms

pytestmark = pytest.mark.broker

P = "chargerybms"
PIECE = 62  # an FTDI adapter's USB packet
TIMER_GAP = 0.016  # its latency timer
LINE_RATE = 115200 / 10  # bytes a second
PLAIN = (f"{P}/current", f"{P}/batteryvolt", f"{P}/aggimped")

StartDaemon = Callable[..., DaemonProcess]


@dataclass
class Transmission:
    at: float  # monotonic time the relay received it
    publications: list[tuple[str, bytes]] = field(default_factory=list)  # (topic, payload)

    def topics(self) -> list[str]:
        return [topic for topic, _ in self.publications]

    def payload(self, topic: str) -> bytes:
        return next(payload for t, payload in self.publications if t == topic)


class Relay:
    """A TCP relay in front of the broker: every chunk the daemon sends is one recorded
    :class:`Transmission` (a corked write arrives as one segment on loopback), with the
    MQTT PUBLISH packets that complete in it."""

    def __init__(self, broker: Broker) -> None:
        self.transmissions: list[Transmission] = []
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self._broker_port = broker.port
        self._open: list[socket.socket] = [self._server]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self._broker_port))
            self._open += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, record: bool) -> None:
        pending = b""
        while True:
            try:
                chunk = source.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                for s in (source, sink):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                return
            if record:
                transmission = Transmission(time.monotonic())
                pending = _publications(pending + chunk, transmission.publications)
                with self._lock:
                    self.transmissions.append(transmission)
            try:
                sink.sendall(chunk)
            except OSError:
                return

    def carrying(self, topic: str) -> list[Transmission]:
        with self._lock:
            return [t for t in self.transmissions if topic in t.topics()]

    def close(self) -> None:
        for s in self._open:
            try:
                s.close()
            except OSError:
                pass


def _publications(data: bytes, out: list[tuple[str, bytes]]) -> bytes:
    """Append the PUBLISH packets complete in ``data`` to ``out``; return the rest."""
    while len(data) >= 2:
        length, multiplier, i = 0, 1, 1
        while True:
            if i >= len(data):
                return data
            byte = data[i]
            length += (byte & 0x7F) * multiplier
            multiplier *= 128
            i += 1
            if not byte & 0x80:
                break
        end = i + length
        if end > len(data):
            return data
        if data[0] & 0xF0 == 0x30:  # PUBLISH
            topic_len = int.from_bytes(data[i : i + 2], "big")
            topic = data[i + 2 : i + 2 + topic_len].decode()
            skip = 2 if data[0] & 0x06 else 0  # a packet id at QoS 1 and 2
            out.append((topic, data[i + 2 + topic_len + skip : end]))
        data = data[end:]
    return data


def write_in_pieces(bms: FakeBms, burst: bytes, gap: float) -> float:
    """The burst as a USB adapter hands it over; returns when its last byte was written."""
    for i in range(0, len(burst), PIECE):
        if i:
            time.sleep(gap)
        bms.write(burst[i : i + PIECE])
    return time.monotonic()


def burst(amps: int, millivolts: int = 3300, ohms: int = 10) -> bytes:
    return (
        encode_status(charge_end_mv=3650, mode=1, deci_amps=amps, t1_deci=200, t2_deci=200, soc=50)
        + encode_cells([millivolts] * 16, energy_mwh=1_000_000, capacity_mah=20_000)
        + encode_impedances(1, amps, [ohms] * 16)
    )


@pytest.fixture
def relay(broker: Broker) -> Relay:
    r = Relay(broker)
    yield r  # type: ignore[misc]
    r.close()


def start(start_daemon: StartDaemon, bms: FakeBms, relay: Relay, subscriber: Subscriber) -> DaemonProcess:
    bms.plug()
    # Every feature of the default on (Home Assistant discovery and ha_state, cell health).
    daemon = start_daemon("--port", str(bms.path), "--mqtt-host", "127.0.0.1", "--mqtt-port", str(relay.port))
    subscriber.wait(f"{P}/status", lambda p: p == "online")
    daemon.wait_log("serial: opened")
    bms.write(burst(50))  # the first frames: link online, the model announced to Home Assistant
    subscriber.wait(f"{P}/state", lambda p: json.loads(p)["current"] == 5.0)
    return daemon


def test_a_burst_in_pieces_is_one_transmission_within_the_promise(
    bms: FakeBms, relay: Relay, subscriber: Subscriber, start_daemon: StartDaemon
) -> None:
    start(start_daemon, bms, relay, subscriber)
    before = len(relay.carrying(f"{P}/state"))
    delays = []
    for n in range(4):  # bursts a second apart, each 104 bytes in two pieces 16 ms apart
        amps = 100 + n
        last_byte = write_in_pieces(bms, burst(amps, 3300 + n, 10 + n), TIMER_GAP)
        document = subscriber.wait(f"{P}/state", lambda p, a=amps: json.loads(p)["current"] == a / 10)
        (carrier,) = [
            t for t in relay.carrying(f"{P}/state") if json.loads(t.payload(f"{P}/state"))["current"] == amps / 10
        ]
        # The plain topics and the state in the same transmission, the state once, after them.
        topics = carrier.topics()
        assert set(PLAIN) <= set(topics), topics
        assert topics.count(f"{P}/state") == 1 and max(map(topics.index, PLAIN)) < topics.index(f"{P}/state")
        state = json.loads(document.payload)
        assert (state["cell_min"], state["impedance_total"]) == ((3300 + n) / 1000, round((10 + n) * 16 / 10, 1))
        delays.append(carrier.at - last_byte)
        time.sleep(max(0.0, last_byte + 1.0 - time.monotonic()))  # the BMS's cadence, not a wait for a result
    # Four bursts a second apart: four documents, no more.
    assert len(relay.carrying(f"{P}/state")) - before == 4
    print(f"last byte -> transmission: {[round(d * 1000) for d in delays]} ms")
    assert statistics.median(delays) <= PROMISE, delays


def test_a_bms_that_stops_mid_burst_has_what_arrived_published_within_the_promise(
    bms: FakeBms, relay: Relay, subscriber: Subscriber, start_daemon: StartDaemon
) -> None:
    start(start_daemon, bms, relay, subscriber)
    whole = burst(77)
    cut = whole[: 19 + 30]  # the status frame, and the cells frame cut off
    last_byte = write_in_pieces(bms, cut, TIMER_GAP)
    wait_until(lambda: [t for t in relay.carrying(f"{P}/current") if (f"{P}/current", b"7.7") in t.publications], 5,
               "the status frame's values, published although the burst never ended")  # fmt: skip
    (carrier,) = [t for t in relay.carrying(f"{P}/current") if (f"{P}/current", b"7.7") in t.publications]
    assert f"{P}/state" in carrier.topics()  # nothing held for a burst that does not end
    assert f"{P}/aggimped" not in carrier.topics()  # the unfinished frames publish nothing
    print(f"last byte -> transmission: {(carrier.at - last_byte) * 1000:.0f} ms")
    assert carrier.at - last_byte <= PROMISE


def test_at_line_rate_nothing_is_lost_and_the_documents_keep_coming(
    tmp_path: Path, bms: FakeBms, relay: Relay, subscriber: Subscriber, start_daemon: StartDaemon
) -> None:
    start(start_daemon, bms, relay, subscriber)
    subscriber.clear()
    sim = SimulatedBms(16, firmware="1.26", seed=5, cycle=60)
    written = {f"{P}/current": 0, f"{P}/batteryvolt": 0, f"{P}/aggimped": 0}
    kinds = {0x57: f"{P}/current", 0x56: f"{P}/batteryvolt", 0x58: f"{P}/aggimped"}
    source = sim.seconds(10**9)
    started, sent = time.monotonic(), 0
    while time.monotonic() - started < 4.0:  # four seconds at 115200 baud, frames back to back
        chunk = next(source)
        time.sleep(max(0.0, started + sent / LINE_RATE - time.monotonic()))
        bms.write(chunk)
        sent += len(chunk)
        if chunk.startswith(b"$$"):
            written[kinds[chunk[2]]] += 1
    for topic, count in written.items():
        wait_until(lambda t=topic, c=count: len(subscriber.on(t)) >= c, 10, f"{count} messages on {topic}")
    assert {t: len(subscriber.on(t)) for t in written} == written  # every frame's values, none lost
    states = [m.arrived for m in subscriber.on(f"{P}/state")]
    # The documents keep coming while the bursts run together: one a window, never a pause
    # of a second.
    assert len(states) >= 4 / 0.1 / 2, len(states)
    assert max(b - a for a, b in itertools.pairwise(states)) < 1.0
