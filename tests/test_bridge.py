"""examples/mosquitto-bridge.conf for real: two mosquittos, a site's and a central one
(TLS, a password, persistence, as a central broker on the internet has them), the daemon
publishing to the site's. The central broker is stopped for a while and started again:
what the example promises arrives (every state document and event published meanwhile,
each topic in order), and nothing retained on the central side lies afterwards (link, status and
the discovery are the site's; the bridge's own topic says when the uplink is gone)."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from harness import Broker, DaemonProcess, Subscriber, make_tls
from helpers import ROOT, wait_until

pytestmark = pytest.mark.broker

EXAMPLE = ROOT / "examples" / "mosquitto-bridge.conf"
P = "chargerybms/garage"
DISCOVERY = "homeassistant/device/chargerybms_garage/config"
SITE_USER, SITE_PASSWORD = "site-garage", "uplink secret"


def forwarded_topics() -> list[str]:
    return re.findall(r"^topic (\S+) out 1$", EXAMPLE.read_text(), flags=re.MULTILINE)


def test_the_example_forwards_what_the_discovery_reads_and_not_its_own_notification() -> None:
    text = EXAMPLE.read_text()
    topics = forwarded_topics()
    assert set(topics) == {f"{P}/{t}" for t in ("state", "event", "ha_state", "link", "status")} | {DISCOVERY}
    notification = re.search(r"^notification_topic (\S+)$", text, flags=re.MULTILINE)
    assert notification is not None and notification.group(1) not in topics  # else it would loop back
    for line in ("cleansession false", "upgrade_outgoing_qos true", "notifications true", "bridge_insecure false"):
        assert re.search(rf"^{line}$", text, flags=re.MULTILINE), line


def render(tls_ca: Path, central_port: int) -> str:
    """The example with its placeholders filled in for this machine. restart_timeout is
    shortened so that the test does not wait out the example's backoff."""
    text = EXAMPLE.read_text()
    for placeholder, value in (
        ("<central.example.net>:8883", f"127.0.0.1:{central_port}"),
        ("/etc/ssl/certs/ca-certificates.crt", str(tls_ca)),
        ("<site-garage>", SITE_USER),
        ("<the site's password on the central broker>", SITE_PASSWORD),
        ("restart_timeout 10 120", "restart_timeout 1 2"),
    ):
        assert placeholder in text, placeholder
        text = text.replace(placeholder, value)
    assert not re.search(r"^[^#]*<", text, flags=re.MULTILINE)  # no placeholder left outside comments
    return text


@dataclass
class Got:
    topic: str
    payload: str
    retain: bool


class Dashboard:
    """The central side's consumer: a persistent session (clean_session false, QoS 1), as a
    Node-RED or a database writer on a central broker keeps one, so what arrives while it
    reconnects is kept for it by the broker."""

    def __init__(self, broker: Broker) -> None:
        self.messages: list[Got] = []
        self._lock = threading.Lock()
        kwargs: dict[str, Any] = {"client_id": "central-dashboard", "clean_session": False}
        if hasattr(mqtt, "CallbackAPIVersion"):
            client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, **kwargs)
        else:
            client = mqtt.Client(**kwargs)
        client.username_pw_set("test", "test")
        client.reconnect_delay_set(0.2, 1)
        client.on_connect = lambda c, *a: c.subscribe([(f"{P}/#", 1), ("homeassistant/device/#", 1)])
        client.on_message = self._on_message
        client.connect("127.0.0.1", broker.port, keepalive=10)
        client.loop_start()
        self.client = client

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        with self._lock:
            self.messages.append(Got(msg.topic, msg.payload.decode(errors="replace"), bool(msg.retain)))

    def on(self, topic: str) -> list[Got]:
        with self._lock:
            return [m for m in self.messages if m.topic == topic]

    def sequence(self, topics: set[str]) -> list[tuple[str, str]]:
        with self._lock:
            return [(m.topic, m.payload) for m in self.messages if m.topic in topics]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def in_order(wanted: list[tuple[str, str]], got: list[tuple[str, str]]) -> bool:
    """``wanted`` is a subsequence of ``got`` (QoS 1 may deliver a message twice)."""
    it = iter(got)
    return all(any(g == w for g in it) for w in wanted)


def behind(published: list[tuple[str, str]], got: list[tuple[str, str]]) -> list[str]:
    """The topics whose messages have not all arrived in the order they were published."""
    topics = {t for t, _ in published}
    return sorted(t for t in topics if not in_order([m for m in published if m[0] == t], [g for g in got if g[0] == t]))


def retained(broker: Broker, topics: list[str]) -> dict[str, str]:
    """What a new subscriber gets at once: the retained messages."""
    late = Subscriber(broker, topics, username="test", password="test")
    try:
        wait_until(lambda: all(late.on(t) for t in topics), 10, f"retained messages on {topics}")
        return {t: late.on(t)[-1].payload for t in topics}
    finally:
        late.close()


@pytest.fixture
def brokers(tmp_path: Path) -> Iterator[tuple[Broker, Broker]]:
    tls = make_tls(tmp_path / "tls")
    central = Broker(tmp_path / "central", users={SITE_USER: SITE_PASSWORD, "test": "test"}, tls=tls)
    # A central broker keeps retained messages and sessions across its own restarts.
    persistence = f"persistence true\npersistence_location {central.directory}/\n"
    central.conf.write_text(central.conf.read_text().replace("persistence false\n", persistence))
    site = Broker(tmp_path / "site")
    assert central.tls_port is not None
    site.conf.write_text(site.conf.read_text() + render(tls.ca, central.tls_port))
    central.start()
    site.start()
    yield site, central
    site.stop()
    central.stop()


def test_an_uplink_outage_loses_nothing_promised_and_leaves_nothing_retained_false(
    tmp_path: Path, brokers: tuple[Broker, Broker]
) -> None:
    site, central = brokers
    dashboard = Dashboard(central)
    watched = set(forwarded_topics())
    at_site = Subscriber(site, [*sorted(watched), f"{P}/bridge"])
    daemon = DaemonProcess(
        tmp_path / "daemon",
        ["--demo", "--demo-speed", "30", "--demo-fault", "low-capacity:5", "--topic-prefix", P,
         "--mqtt-host", "127.0.0.1", "--mqtt-port", str(site.port)],
    )  # fmt: skip
    try:
        # Bridged: the central side sees the site's device.
        wait_until(lambda: dashboard.on(f"{P}/state") and dashboard.on(DISCOVERY), 30, "the site at the centre")
        wait_until(lambda: [m.payload for m in dashboard.on(f"{P}/bridge")][-1:] == ["1"], 10, "the bridge up")

        # The uplink drops (the central broker stops) while the site goes on: states and
        # events keep coming, then the daemon stops (status and link go offline, retained).
        central.stop()
        down = at_site.wait(f"{P}/bridge", lambda p: p == "0")  # the site's broker noticed
        dropped = down.arrived
        wait_until(
            lambda: len([m for m in at_site.on(f"{P}/event") if m.arrived > dropped]) >= 2, 90, "events meanwhile"
        )
        daemon.stop()
        at_site.wait(f"{P}/status", lambda p: p == "offline")
        down_for = time.monotonic() - dropped
        published = [(m.topic, m.payload) for m in at_site.messages if m.topic in watched]
        outage = [(m.topic, m.payload) for m in at_site.messages if m.arrived > dropped and m.topic in watched]
        assert sum(1 for t, _ in outage if t == f"{P}/state") > 10
        assert sum(1 for t, _ in outage if t == f"{P}/event") >= 2

        # The uplink is back: everything published, before, around and during the drop,
        # reaches the central side, each topic's messages in the order they were published.
        central.start()

        try:
            wait_until(lambda: not behind(published, dashboard.sequence(watched)), 60, "what the site published")
        except AssertionError:
            got = dashboard.sequence(watched)
            missing = [w for w in published if w not in got]
            raise AssertionError(f"{len(missing)} missing {missing[:2]}; behind on {behind(published, got)}") from None
        print(
            f"\nbridge: {len(outage)} messages ({sum(len(p) for _, p in outage)} bytes) queued during a "
            f"{down_for:.0f} s outage (demo speed 30); all {len(published)} of the run delivered"
        )

        # Nothing retained lies: the central broker holds what the site holds.
        site_now = retained(site, [f"{P}/status", f"{P}/link", DISCOVERY])
        central_now = retained(central, [f"{P}/status", f"{P}/link", DISCOVERY, f"{P}/bridge"])
        assert site_now[f"{P}/status"] == site_now[f"{P}/link"] == "offline"
        assert {t: central_now[t] for t in site_now} == site_now
        assert json.loads(central_now[DISCOVERY])["availability_mode"] == "all"
        assert central_now[f"{P}/bridge"] == "1"

        # The site vanishes (power cut): the central broker says so itself, on the bridge's topic.
        site.kill()
        wait_until(lambda: retained(central, [f"{P}/bridge"]) == {f"{P}/bridge": "0"}, 15, "the bridge's will")
    finally:
        daemon.stop()
        at_site.close()
        dashboard.close()
