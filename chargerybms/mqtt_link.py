"""The MQTT side: one paho client, paho-mqtt 1.6 (Debian's package) or 2.x (PyPI).

Our own network thread connects, runs ``client.loop()`` and reconnects with capped
backoff, forever, so every failure is logged with its real reason (paho's own retry loop
swallows it). Telemetry is only published while connected and never queued: after a
reconnect the daemon republishes the latest values instead.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

from .backoff import Backoff
from .base import Message
from .config import ConfigError, Settings, broker
from .logs import LOG, RateLimited
from .topics import OFFLINE, ONLINE

KEEPALIVE = 30
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 60.0
CONNECT_TIMEOUT = 30.0  # a TCP/TLS handshake that takes longer than this is stuck
GRACE = 10.0
# Seconds the network thread sleeps when there is nothing to do. A publish from the reader
# thread is written there (paho's loop_write, no wake-up socket pair), so this timeout is
# the thread's only wake-up besides the broker's own packets: it checks the keepalive
# (loop_misc) and renews the watchdog promise. 10 s: a PINGREQ due after KEEPALIVE seconds
# without traffic goes out at most 10 s late, well within the broker's 1.5 x KEEPALIVE.
SERVE_WAKE = 10.0
_CORK: int | None = getattr(socket, "TCP_CORK", None)  # Linux only
# A refused login, by CONNACK code: MQTT 3.1.1's 4 and 5 (paho 1.6 hands the code over),
# and the MQTT 5 reason codes paho 2 maps them to (134 bad user name or password, 135 not
# authorized).
LOGIN_REFUSED = frozenset({4, 5, 134, 135})
# OpenSSL's reason for the TLS alert a broker sends when it wants a client certificate.
CLIENT_CERTIFICATE_WANTED = frozenset({"TLSV13_ALERT_CERTIFICATE_REQUIRED"})


class MqttLink:
    """A :class:`~chargerybms.sink.Sink` that connects in the background and keeps
    connecting. ``on_connected`` runs in the network thread after every successful
    connect (after ``status online``); ``on_message(topic, payload, retained)``, also in the
    network thread, for messages on subscribed topics (``retained``: delivered because we
    subscribed, i.e. what the broker held then, not a live publication)."""

    def __init__(
        self,
        settings: Settings,
        *,
        will_topic: str,
        subscriptions: tuple[str, ...] = (),
        on_connected: Callable[[], None] = lambda: None,
        on_message: Callable[[str, bytes, bool], None] = lambda topic, payload, retained: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        import paho.mqtt.client as mqtt

        self._mqtt = mqtt
        self._settings = settings
        self._clock = clock  # the daemon's: the watchdog's promise and its check use one clock
        self._will_topic = will_topic
        self._subscriptions = subscriptions
        self._on_connected = on_connected
        self._on_message_cb = on_message
        self._stop = threading.Event()
        self._limited = RateLimited()
        self.connected = False
        self.connects = 0  # successful connects so far
        self._host, self._port = broker(settings)
        self.where = f"{self._host}:{self._port}"
        self._alive_until = float("inf")  # the network thread promises to come round by then
        self._last_error: BaseException | None = None  # why the last connection ended, if known
        self._refused = False  # the broker answered this connection with a refusal
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)

        client = _new_client(mqtt, settings.client_id)
        if settings.mqtt_username:
            client.username_pw_set(settings.mqtt_username, settings.mqtt_password or None)
        if settings.mqtt_tls:
            client.tls_set_context(_tls_context(settings))
        client.will_set(will_topic, OFFLINE, qos=1, retain=True)
        # paho 2 reports some failures only in its log (a TLS alert after the handshake, say,
        # caught in its read): our own handler keeps the exception it logs, for our message.
        # Error level only, so the per-publish debug lines are never even formatted.
        self._paho_errors = _PahoErrors()
        paho_log = logging.getLogger(f"chargery.paho.{id(self)}")
        paho_log.propagate = False
        paho_log.setLevel(logging.ERROR)
        paho_log.addHandler(self._paho_errors)
        client.enable_logger(paho_log)
        client.on_connect = self._handle_connect
        client.on_disconnect = self._handle_disconnect
        client.on_message = self._handle_message
        self._client = client
        self._thread = threading.Thread(target=self._run, name="mqtt", daemon=True)

    # --- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self, last_words: list[Message], timeout: float = 3.0) -> None:
        """Publish ``last_words`` (retained, QoS 1, in order) if connected, then disconnect."""
        if self.connected:
            infos = [self._client.publish(topic, payload, qos=1, retain=True) for topic, payload in last_words]
            self._wake()
            deadline = self._clock() + timeout
            for info in infos:
                try:
                    info.wait_for_publish(max(0.0, deadline - self._clock()))
                except (RuntimeError, ValueError):  # paho 2 raises if the connection drops meanwhile
                    break
        self._stop.set()
        try:
            self._client.disconnect()
        except OSError:  # paho 1.6 writes DISCONNECT at once, even into a TLS session the broker closed
            pass
        self._wake()
        self._thread.join(timeout)

    # --- publishing -------------------------------------------------------------------

    def publish(self, topic: str, payload: str, retain: bool = False, qos: int = 0) -> bool:
        if not self.connected:
            return False
        client = self._client
        info = client.publish(topic, payload, qos=qos, retain=retain)
        if client.want_write():
            # Not all written at once (busy socket, or the network thread is inside a
            # callback): let the network thread finish it.
            self._wake()
        return bool(info.rc == 0)

    def publish_many(self, messages: list[tuple[str, str]]) -> None:
        """A burst's telemetry (not retained, QoS 0) as one TCP transmission: paho writes
        each PUBLISH from this thread as it is made (its external loop, :meth:`_serve`,
        has no wake-up socket pair to poke), into a socket corked for the burst, and
        uncorking sends them together. Where TCP_CORK does not exist, the messages go out
        as paho writes them."""
        if not self.connected:
            return
        client = self._client
        sock = client.socket()
        corked = len(messages) > 1 and _CORK is not None and sock is not None and _set_cork(sock, 1)
        try:
            publish = client.publish
            for topic, payload in messages:
                publish(topic, payload)
        finally:
            if corked:
                _set_cork(sock, 0)  # uncork: out it goes
        if client.want_write():
            self._wake()  # not all written (a busy socket): the network thread finishes it

    # --- the network thread -----------------------------------------------------------

    def condition(self) -> str:
        return "MQTT connected" if self.connected else "MQTT connecting"

    def healthy(self, now: float) -> bool:
        """Whether the network thread is alive and coming round as it promised (watchdog)."""
        return self._thread.is_alive() and now <= self._alive_until

    def _promise(self, seconds: float) -> None:
        self._alive_until = self._clock() + seconds + GRACE

    def _run(self) -> None:
        backoff = Backoff(BACKOFF_FIRST, BACKOFF_MAX)
        client = self._client
        while not self._stop.is_set():
            delay = backoff.peek()
            self._promise(CONNECT_TIMEOUT)
            connects_before = self.connects
            self._last_error = self._paho_errors.error = None
            self._refused = False
            try:
                client.connect(self._host, self._port, keepalive=KEEPALIVE)
            except ssl.SSLError as exc:
                self._limited.log(
                    logging.ERROR,
                    "tls",
                    "MQTT: TLS with %s failed: %s (check --mqtt-ca-file and that the broker's certificate "
                    "names this host); retrying in %.0f s",
                    self.where,
                    _tls_reason(exc),
                    delay,
                )
            except OSError as exc:
                self._limited.log(
                    logging.WARNING,
                    "connect",
                    "MQTT: cannot connect to %s: %s; retrying in %.0f s",
                    self.where,
                    exc.strerror or exc,
                    delay,
                )
            else:
                self._serve(client)
                self.connected = False
                if self.connects == connects_before and not self._refused and not self._stop.is_set():
                    self._refused_during_login(delay)  # a refusal was said already, in its own words
                if self._stop.is_set():
                    break
                if self.connects > connects_before:
                    LOG.warning("MQTT: lost the connection to %s; reconnecting", self.where)
                    backoff.reset()
            delay = backoff.next()
            self._promise(delay)
            if self._stop.wait(delay):
                break
        self.connected = False

    def _serve(self, client: Any) -> None:
        """Run one connection with paho's external-loop calls (loop_read/loop_write/
        loop_misc around our own select), until it drops or we stop. Unlike client.loop()
        or loop_start(), this creates no wake-up socket pair (paho 1.6 and 2.x write a byte
        to it on every publish, to break their own select), so a publish from the reader
        thread is written there and then and does not wake this thread. It wakes for the
        broker's packets (CONNACK, SUBACK, PUBACK of the retained QoS 1 messages, PINGRESP,
        subscribed messages), for our wake pipe (a publish not written at once, a stop) and
        every SERVE_WAKE seconds."""
        wake = self._wake_r
        while not self._stop.is_set():
            self._promise(SERVE_WAKE)
            sock = client.socket()
            if sock is None:
                return
            pending = getattr(sock, "pending", None)
            if pending is not None and pending():  # TLS data already decrypted
                readable: list[Any] = [sock]
            else:
                try:
                    readable, _, _ = select.select([sock, wake], [sock] if client.want_write() else [], [], SERVE_WAKE)
                except (OSError, ValueError):  # the socket was closed under us
                    return
                if wake in readable:
                    os.read(wake, 4096)
            try:
                if sock in readable and client.loop_read() != 0:
                    return
            except (ssl.SSLError, OSError) as exc:  # e.g. the broker's TLS alert after the handshake
                self._last_error = exc
                return
            if client.want_write() and client.loop_write() != 0:
                return
            if client.loop_misc() != 0:
                return

    def _refused_during_login(self, delay: float) -> None:
        """The connection ended before the broker accepted it (no CONNACK)."""
        exc = self._last_error or self._paho_errors.error
        reason = str(exc) if exc is not None else "the broker closed the connection before accepting it"
        if isinstance(exc, ssl.SSLError) and exc.reason in CLIENT_CERTIFICATE_WANTED:
            reason += " (the broker wants a client certificate: --mqtt-cert-file and --mqtt-key-file)"
        # Keyed by the reason: a racy first reason ("EOF") must not hide the precise one.
        self._limited.log(
            logging.ERROR, f"login:{reason}", "MQTT: %s: %s; retrying in %.0f s", self.where, reason, delay
        )

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"\0")
        except OSError:  # the pipe is full: the network thread is awake anyway
            pass

    def _handle_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, *_: Any) -> None:
        failed = getattr(rc, "is_failure", rc != 0)
        if failed:
            reason = str(rc) if hasattr(rc, "is_failure") else self._mqtt.connack_string(rc)
            code = int(getattr(rc, "value", rc))  # paho 2: a ReasonCode; paho 1.6: the CONNACK's code
            hint = " (check the user name and password)" if code in LOGIN_REFUSED else ""
            self._limited.log(
                logging.ERROR, "refused", "MQTT: %s refused the connection: %s%s", self.where, reason, hint
            )
            self._refused = True
            return
        self._limited.reset_all()
        self.connects += 1
        LOG.info("MQTT: connected to %s%s", self.where, " (TLS)" if self._settings.mqtt_tls else "")
        for topic in self._subscriptions:
            client.subscribe(topic, qos=1)
        self.connected = True
        client.publish(self._will_topic, ONLINE, qos=1, retain=True)
        try:
            self._on_connected()
        except Exception:
            LOG.exception("MQTT: error while republishing after connect")

    def _handle_disconnect(self, client: Any, userdata: Any, *args: Any) -> None:
        self.connected = False

    def _handle_message(self, client: Any, userdata: Any, message: Any) -> None:
        try:
            self._on_message_cb(message.topic, message.payload, bool(message.retain))
        except Exception:
            LOG.exception("MQTT: error while handling a message on %s", message.topic)


class _PahoErrors(logging.Handler):
    """Keeps the exception of paho's last error line (paho 2 logs the one its read caught)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.error: BaseException | None = None

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        self.error = next((a for a in args if isinstance(a, BaseException)), self.error)


def _set_cork(sock: Any, value: int) -> bool:
    try:
        sock.setsockopt(socket.IPPROTO_TCP, _CORK, value)
    except (OSError, AttributeError):
        return False
    return True


def _tls_reason(exc: ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    return str(exc.reason or exc)


def _new_client(mqtt: Any, client_id: str) -> Any:
    if hasattr(mqtt, "CallbackAPIVersion"):  # paho-mqtt 2.x
        return mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True, protocol=mqtt.MQTTv311
        )
    return mqtt.Client(client_id=client_id, clean_session=True, protocol=mqtt.MQTTv311)  # paho-mqtt 1.x


def _tls_context(settings: Settings) -> ssl.SSLContext:
    """Certificate and host name always verified; the system CAs unless a CA file is given."""
    try:
        context = ssl.create_default_context(cafile=settings.mqtt_ca_file or None)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"mqtt_ca_file: {settings.mqtt_ca_file} holds no usable CA certificate: {exc}") from None
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    # Python 3.13 adds RFC 5280 strictness that rejects CAs without a keyUsage extension,
    # i.e. CAs made as mosquitto's documentation shows. The chain and the host name are
    # still verified; only that extra strictness is left out, as on Python 3.11.
    context.verify_flags &= ~getattr(ssl, "VERIFY_X509_STRICT", 0)
    if settings.mqtt_cert_file:
        try:
            context.load_cert_chain(settings.mqtt_cert_file, settings.mqtt_key_file or None)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(
                f"mqtt_cert_file: cannot use {settings.mqtt_cert_file} as a client certificate: {exc}"
            ) from None
    return context
