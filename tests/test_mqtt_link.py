"""``MqttLink`` on its own against a real mosquitto: it connects and says so (``status
online``, retained), is refused with the reason in its log line, survives the broker dying
and connects again, and names why a TLS connection failed. Only the public constructor,
callbacks and methods are used; the daemon end to end is in test_daemon_e2e.py."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from harness import Broker, Subscriber, Tls, make_tls, wait_until

from chargerybms.config import Settings, load
from chargerybms.mqtt_link import MqttLink

pytestmark = pytest.mark.broker

STATUS = "lt/status"
COMMANDS = "lt/commands"


class Calls:
    """What the link's callbacks were called with (from its network thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.connected = 0
        self.messages: list[tuple[str, bytes, bool]] = []
        self.then: Callable[[], None] = lambda: None  # run inside on_connected

    def on_connected(self) -> None:
        with self._lock:
            self.connected += 1
        self.then()

    def on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        with self._lock:
            self.messages.append((topic, payload, retained))


MakeLink = Callable[..., tuple[MqttLink, Calls]]


@pytest.fixture
def make_link() -> Iterator[MakeLink]:
    """A started ``MqttLink`` for the given settings; every one is stopped at teardown."""
    links: list[MqttLink] = []

    def make(
        settings: Settings, subscriptions: tuple[str, ...] = (), then: Callable[[MqttLink], None] | None = None
    ) -> tuple[MqttLink, Calls]:
        """``then(link)`` runs inside every on_connected."""
        calls = Calls()
        link = MqttLink(
            settings,
            will_topic=STATUS,
            subscriptions=subscriptions,
            on_connected=calls.on_connected,
            on_message=calls.on_message,
        )
        links.append(link)
        if then is not None:
            calls.then = lambda: then(link)
        link.start()
        return link, calls

    yield make
    for link in links:
        link.stop([])


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="chargery")
    return caplog


def settings(port: int, environ: dict[str, str] | None = None, **values: object) -> Settings:
    return load({"mqtt_host": "127.0.0.1", "mqtt_port": port, **values}, environ=environ or {})


def wait_log(caplog: pytest.LogCaptureFixture, *parts: str, timeout: float = 15) -> str:
    """The first line the link logged that holds every one of ``parts``."""

    def line() -> str | None:
        return next((m for m in list(caplog.messages) if all(p in m for p in parts)), None)

    found: str = wait_until(line, timeout, f"a log line with {parts}; got {caplog.messages}")
    return found


def retained(broker: Broker, topic: str) -> tuple[str, bool]:
    late = Subscriber(broker, [topic])
    try:
        m = late.wait(topic, timeout=5)
        return m.payload, m.retain
    finally:
        late.close()


def test_connects_says_online_retained_then_calls_on_connected(
    broker: Broker, subscriber: Subscriber, make_link: MakeLink, log: pytest.LogCaptureFixture
) -> None:
    subscriber.publish(COMMANDS, "held", retain=True)  # what the broker keeps before we come
    link, calls = make_link(
        settings(broker.port), subscriptions=(COMMANDS,), then=lambda link: link.publish("lt/hello", "in on_connected")
    )

    wait_until(lambda: calls.connected == 1, 10, "on_connected")
    assert link.connected and link.healthy(time.monotonic())
    wait_log(log, f"MQTT: connected to 127.0.0.1:{broker.port}")
    # on_connected runs after `status online`: a consumer learns we are back before anything else.
    subscriber.wait("lt/hello")
    order = [m.topic for m in subscriber.messages if m.topic in (STATUS, "lt/hello")]
    assert order == [STATUS, "lt/hello"]
    assert retained(broker, STATUS) == ("online", True)

    # Subscriptions: what the broker held comes as retained, a live publication does not.
    wait_until(lambda: (COMMANDS, b"held", True) in calls.messages, 5, "the retained command")
    subscriber.publish(COMMANDS, "live")
    wait_until(lambda: (COMMANDS, b"live", False) in calls.messages, 5, "the live command")

    assert link.publish("lt/value", "42") is True
    assert link.publish("lt/kept", "yes", retain=True, qos=1) is True
    assert (subscriber.wait("lt/value").payload, subscriber.wait("lt/value").retain) == ("42", False)
    assert retained(broker, "lt/kept") == ("yes", True)
    link.publish_many([("lt/a", "1"), ("lt/b", "2")])
    assert subscriber.wait("lt/b").payload == "2" and subscriber.wait("lt/a").payload == "1"
    # Packets made by publish_many itself: every size of MQTT's remaining length (1, 2 and
    # 3 bytes), a topic and payload beyond ASCII, in order, as the broker parses them.
    many = [("lt/small", "x"), ("lt/°C", "−12.3 °C"), ("lt/doc", "d" * 300), ("lt/big", "b" * 20_000)]
    link.publish_many(many)
    subscriber.wait("lt/big")
    got = [(m.topic, m.payload, m.retain) for m in subscriber.messages if m.topic in dict(many)]
    assert got == [(topic, payload, False) for topic, payload in many]

    link.stop([(STATUS, "offline")])  # last words: retained, delivered before the disconnect
    assert retained(broker, STATUS) == ("offline", True)
    assert not link.connected and link.publish("lt/value", "43") is False
    assert not link.healthy(time.monotonic())  # its thread has ended
    assert calls.connected == 1


def test_a_wrong_password_is_refused_with_the_reason_and_retried(
    tmp_path: Path, make_link: MakeLink, log: pytest.LogCaptureFixture
) -> None:
    broker = Broker(tmp_path / "auth", users={"bms": "right"}).start()
    try:
        secret = "S3cret-Not-This"
        link, calls = make_link(
            settings(broker.port, {"CHARGERY_MQTT_PASSWORD": secret}, mqtt_username="bms", device_id="refused")
        )
        line = wait_log(log, f"MQTT: 127.0.0.1:{broker.port} refused the connection")
        assert "(check the user name and password)" in line
        assert "auth" in line.lower()  # paho's reason: "not authorised" (1.6) / "Not authorized" (2.x)
        wait_until(
            lambda: broker.log().count("not authorised") >= 2 or broker.log().count("bad user") >= 2, 15, "a retry"
        )
        assert calls.connected == 0 and not link.connected
        assert link.publish("lt/value", "1") is False  # nothing is queued for later
        assert link.healthy(time.monotonic())  # retrying is alive, not stuck
        assert not any(secret in m for m in log.messages)
    finally:
        broker.stop()


def test_a_refusal_is_one_line(tmp_path: Path, make_link: MakeLink, log: pytest.LogCaptureFixture) -> None:
    broker = Broker(tmp_path / "auth", users={"bms": "right"}).start()
    try:
        make_link(settings(broker.port, {"CHARGERY_MQTT_PASSWORD": "wrong"}, mqtt_username="bms"))
        wait_log(log, "refused the connection")
        wait_until(lambda: broker.log().count("not authorised") >= 2, 15, "a retry")
        assert [m for m in log.messages if m.startswith("MQTT:")] == [
            next(m for m in log.messages if "refused the connection" in m)
        ]
    finally:
        broker.stop()


def test_a_dead_broker_is_reconnected_when_it_comes_back(
    tmp_path: Path, make_link: MakeLink, log: pytest.LogCaptureFixture
) -> None:
    broker = Broker(tmp_path / "dies").start()
    try:
        link, calls = make_link(settings(broker.port))
        wait_until(lambda: calls.connected == 1, 10, "the first connection")

        broker.kill()
        wait_until(lambda: not link.connected, 10, "the drop noticed")
        wait_log(log, f"MQTT: lost the connection to 127.0.0.1:{broker.port}; reconnecting")
        wait_log(log, f"MQTT: cannot connect to 127.0.0.1:{broker.port}", "retrying in")
        assert link.publish("lt/value", "1") is False
        assert link.healthy(time.monotonic())

        broker.start()  # a new mosquitto on the same port: it knows nothing retained
        wait_until(lambda: calls.connected == 2, 20, "on_connected again after the reconnect")
        assert link.connected
        assert retained(broker, STATUS) == ("online", True)  # said again to the new broker
        assert link.publish("lt/value", "2") is True
    finally:
        broker.stop()


@pytest.fixture
def tls(tmp_path: Path) -> Tls:
    return make_tls(tmp_path / "tls")


def test_a_ca_that_did_not_sign_the_broker_is_certificate_verify_failed(
    tmp_path: Path, tls: Tls, make_link: MakeLink, log: pytest.LogCaptureFixture
) -> None:
    broker = Broker(tmp_path / "tls-broker", tls=tls).start()
    try:
        assert broker.tls_port is not None
        wrong, wrong_calls = make_link(
            settings(broker.tls_port, mqtt_tls=True, mqtt_ca_file=str(tls.other_ca), device_id="wrong")
        )
        line = wait_log(log, f"MQTT: TLS with 127.0.0.1:{broker.tls_port} failed: certificate verify failed")
        assert "check --mqtt-ca-file" in line
        assert wrong_calls.connected == 0 and not wrong.connected

        _, right_calls = make_link(
            settings(broker.tls_port, mqtt_tls=True, mqtt_ca_file=str(tls.ca), device_id="right")
        )
        wait_until(lambda: right_calls.connected == 1, 10, "the connection with the right CA")
        wait_log(log, f"MQTT: connected to 127.0.0.1:{broker.tls_port} (TLS)")
        assert wrong_calls.connected == 0  # still refusing to talk without a verified broker
    finally:
        broker.stop()


@pytest.mark.parametrize(
    ("host", "reason"),
    [("localhost", "Hostname mismatch"), ("127.0.0.1", "IP address mismatch")],  # OpenSSL's words
)
def test_a_certificate_for_another_host_is_refused_naming_the_mismatch(
    tmp_path: Path, make_link: MakeLink, log: pytest.LogCaptureFixture, host: str, reason: str
) -> None:
    tls = make_tls(tmp_path / "tls", server_names="DNS:broker.example")  # signed by our CA, for another name
    broker = Broker(tmp_path / "tls-broker", tls=tls).start()
    try:
        assert broker.tls_port is not None
        link, calls = make_link(settings(broker.tls_port, mqtt_host=host, mqtt_tls=True, mqtt_ca_file=str(tls.ca)))
        line = wait_log(log, f"MQTT: TLS with {host}:{broker.tls_port} failed: certificate verify failed")
        assert reason in line and host in line.split("failed:", 1)[1]
        assert "names this host" in line  # the hint
        assert calls.connected == 0 and not link.connected
    finally:
        broker.stop()


def test_a_broker_that_wants_a_client_certificate_says_so(
    tmp_path: Path, tls: Tls, make_link: MakeLink, log: pytest.LogCaptureFixture
) -> None:
    broker = Broker(tmp_path / "mtls", tls=tls, require_client_cert=True).start()
    try:
        assert broker.tls_port is not None
        common = {"mqtt_tls": True, "mqtt_ca_file": str(tls.ca)}
        anonymous, anonymous_calls = make_link(settings(broker.tls_port, device_id="anon", **common))
        wait_log(log, f"MQTT: 127.0.0.1:{broker.tls_port}", "--mqtt-cert-file and --mqtt-key-file")
        assert anonymous_calls.connected == 0 and not anonymous.connected

        anonymous.stop([])  # while it waits to retry: quiet, although the broker closed that TLS session
        assert not anonymous.healthy(time.monotonic())

        keys = {"mqtt_cert_file": str(tls.client_cert), "mqtt_key_file": str(tls.client_key)}
        _, with_cert_calls = make_link(settings(broker.tls_port, device_id="cert", **common, **keys))
        wait_until(lambda: with_cert_calls.connected == 1, 10, "the connection with a client certificate")
    finally:
        broker.stop()
