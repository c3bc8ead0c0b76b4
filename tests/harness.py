"""Real things for end-to-end tests: a mosquitto broker, a subscriber, a pseudo-terminal
BMS and the daemon as a subprocess. Nothing here is mocked."""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import socket
import subprocess
import sys
import threading
import time
import tty
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from helpers import chargery_cmd, free_port, mqtt_flags, require_tool, wait_until

Predicate = Callable[[str], bool]


# --- TLS material ---------------------------------------------------------------------


@dataclass
class Tls:
    ca: Path
    cert: Path
    key: Path
    other_ca: Path  # a CA that did not sign the broker's certificate
    client_cert: Path  # signed by ``ca``, for brokers that require client certificates
    client_key: Path


def make_tls(directory: Path, server_names: str = "IP:127.0.0.1,DNS:localhost") -> Tls:
    """A CA, a broker certificate it signs for ``server_names`` (subjectAltName), a client
    certificate it signs, and another CA."""
    openssl = require_tool("openssl")
    directory.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=directory, check=True, capture_output=True)

    for name in ("ca", "other"):
        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN=test {name} CA",
            "-keyout", f"{name}.key", "-out", f"{name}.crt")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key", "-out", "server.csr")
    (directory / "san.ext").write_text(f"subjectAltName={server_names}\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
        "-extfile", "san.ext", "-out", "server.crt")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=chargery", "-keyout", "client.key", "-out", "client.csr")
    run("x509", "-req", "-in", "client.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
        "-out", "client.crt")  # fmt: skip
    d = directory
    return Tls(d / "ca.crt", d / "server.crt", d / "server.key", d / "other.crt", d / "client.crt", d / "client.key")


# --- the broker -------------------------------------------------------------------------


class Broker:
    """mosquitto on a free loopback port. ``tls_port`` adds a TLS listener beside it."""

    def __init__(
        self,
        directory: Path,
        *,
        users: dict[str, str] | None = None,
        tls: Tls | None = None,
        require_client_cert: bool = False,
    ) -> None:
        self.exe = require_tool("mosquitto")
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.tls_port = free_port() if tls else None
        self.log_path = directory / "mosquitto.log"
        lines = [f"listener {self.port} 127.0.0.1"]
        if tls:
            lines += [
                f"listener {self.tls_port} 127.0.0.1",
                f"cafile {tls.ca}",
                f"certfile {tls.cert}",
                f"keyfile {tls.key}",
            ]
            if require_client_cert:
                lines.append("require_certificate true")
        # As root, mosquitto would switch to its own user and lose access to the test's files.
        lines += [f"user {pwd.getpwuid(os.getuid()).pw_name}", "persistence false", f"log_dest file {self.log_path}",
                  "log_type all", "per_listener_settings false"]  # fmt: skip
        if users:
            passwd = directory / "passwd"
            passwd.write_text("")
            for user, password in users.items():
                subprocess.run([require_tool("mosquitto_passwd"), "-b", str(passwd), user, password], check=True)
            passwd.chmod(0o600)
            lines += ["allow_anonymous false", f"password_file {passwd}"]
        else:
            lines.append("allow_anonymous true")
        self.conf = directory / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Broker:
        self.proc = subprocess.Popen(
            [self.exe, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        wait_until(self._accepting, 10, f"mosquitto on port {self.port}")
        return self

    def _accepting(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            err = self.proc.stderr.read().decode() if self.proc.stderr else ""
            raise AssertionError(f"mosquitto exited: {err} {self.log()}")
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: the broker dies without closing its connections politely (and, as it
        keeps no persistence, forgets every retained message)."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


# --- a subscriber -------------------------------------------------------------------------


@dataclass
class Received:
    topic: str
    payload: str
    retain: bool
    arrived: float  # time.monotonic() when the subscriber got it


class Subscriber:
    """A real MQTT client subscribed to ``#``, recording everything that arrives."""

    def __init__(
        self, broker: Broker, topics: Iterable[str] = ("#",), *, username: str = "", password: str = ""
    ) -> None:
        self.messages: list[Received] = []
        self._lock = threading.Lock()
        if hasattr(mqtt, "CallbackAPIVersion"):
            client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-{id(self)}")
        else:
            client = mqtt.Client(client_id=f"test-{id(self)}")
        if username:
            client.username_pw_set(username, password)
        self._topics = list(topics)
        self._subscribed = threading.Event()
        client.on_connect = self._on_connect
        client.on_subscribe = lambda *a: self._subscribed.set()
        client.on_message = self._on_message
        client.connect("127.0.0.1", broker.port, keepalive=10)
        client.loop_start()
        self.client = client
        assert self._subscribed.wait(10), "subscriber could not subscribe"

    def _on_connect(self, client: Any, *args: Any) -> None:
        client.subscribe([(t, 1) for t in self._topics])

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        with self._lock:
            self.messages.append(
                Received(msg.topic, msg.payload.decode(errors="replace"), bool(msg.retain), time.monotonic())
            )

    def close(self) -> None:
        # Disconnect first: it wakes the network thread, which loop_stop() then joins at
        # once (the other way round, loop_stop waits out paho's one-second select).
        self.client.disconnect()
        self.client.loop_stop()

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()

    def on(self, topic: str) -> list[Received]:
        with self._lock:
            return [m for m in self.messages if m.topic == topic]

    def last(self, topic: str) -> Received | None:
        found = self.on(topic)
        return found[-1] if found else None

    def wait(self, topic: str, predicate: Predicate = lambda p: True, timeout: float = 15) -> Received:
        def check() -> Received | None:
            return next((m for m in reversed(self.on(topic)) if predicate(m.payload)), None)

        found: Received = wait_until(check, timeout, f"a message on {topic}")
        return found

    def publish(self, topic: str, payload: str, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)


def retained(broker: Broker, *topics: str) -> dict[str, str]:
    """What a new subscriber gets for ``topics`` right now: the retained copy of each
    (waited for; every topic asked about must have one)."""
    late = Subscriber(broker, topics)
    try:
        copies = {topic: late.wait(topic, timeout=5) for topic in topics}
        assert all(m.retain for m in copies.values()), copies
        return {topic: m.payload for topic, m in copies.items()}
    finally:
        late.close()


# --- a BMS on a pseudo-terminal -------------------------------------------------------------


class FakeBms:
    """A pseudo-terminal behind ``path`` (a symlink, like /dev/serial/by-id/...), written to
    continuously like the real device: a BMS only transmits, whether anyone listens or not.
    ``unplug`` closes the terminal and removes the path, like pulling the USB adapter."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._master: int | None = None
        self._slave: int | None = None
        self._chunks: list[bytes] = []
        self._interval = 0.1
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._paused = threading.Event()
        self.sent = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def plug(self) -> FakeBms:
        master, slave = os.openpty()
        tty.setraw(slave)  # as the daemon will; until then no echo, no CR/LF games
        os.set_blocking(master, False)
        with self._lock:
            self._master, self._slave = master, slave
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self.path.symlink_to(os.ttyname(slave))
        return self

    def unplug(self) -> None:
        with self._lock:
            master, slave = self._master, self._slave
            self._master = self._slave = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        for fd in (master, slave):
            if fd is not None:
                os.close(fd)

    def stream(self, chunks: list[bytes], interval: float = 0.1) -> None:
        """Send ``chunks`` in a loop, one every ``interval`` seconds."""
        with self._lock:
            self._chunks = list(chunks)
            self._interval = interval
        self._paused.clear()

    def pause(self) -> None:
        """The BMS goes silent (display unit asleep)."""
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()

    def write(self, data: bytes) -> None:
        with self._lock:
            if self._master is not None:
                with contextlib.suppress(BlockingIOError, OSError):
                    os.write(self._master, data)

    def _run(self) -> None:
        i = 0
        while not self._stop.wait(self._interval):
            if self._paused.is_set() or not self._chunks:
                continue
            with self._lock:
                chunk = self._chunks[i % len(self._chunks)]
                master = self._master
                if master is not None:
                    try:
                        os.write(master, chunk)
                        self.sent += 1
                    except (BlockingIOError, OSError):
                        pass  # nobody reading and the buffer is full: the bytes are lost, as on a wire
            i += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.unplug()


# --- the daemon --------------------------------------------------------------------------


class DaemonProcess:
    """``python3 chargery.py ...`` as a user or systemd would start it."""

    def __init__(
        self, directory: Path, args: list[str], env: dict[str, str] | None = None, script: Path | None = None
    ) -> None:
        """``script``: another checkout's ``chargery.py`` (the benchmarks compare versions)."""
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.log_path = directory / "daemon.log"
        self.out_path = directory / "daemon.out"
        environ = {k: v for k, v in os.environ.items() if not k.startswith("CHARGERY_")}
        environ["CHARGERY_STATE_DIR"] = str(directory / "state")
        environ.update(env or {})
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self._out = open(self.out_path, "wb")  # noqa: SIM115 - closed in stop()
        command = chargery_cmd(*args) if script is None else [sys.executable, str(script), *args]
        self.proc = subprocess.Popen(command, stdout=self._out, stderr=self._log, env=environ)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, text: str, timeout: float = 15) -> None:
        wait_until(lambda: text in self.log(), timeout, f"{text!r} in the daemon's log:\n{self.log()}")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 10) -> int:
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        self._out.close()


StartDaemon = Callable[..., DaemonProcess]  # the ``start_daemon`` fixture: flags in, a running daemon out


def broker_flags(broker: Broker, *extra: str, ha_discovery: bool = False) -> list[str]:
    """The daemon's flags for ``broker``; Home Assistant discovery off unless asked."""
    return mqtt_flags(broker.port, *extra, ha_discovery=ha_discovery)


# --- systemd's notify socket ----------------------------------------------------------------


class NotifySocket:
    """What systemd listens on for a Type=notify service: every datagram the daemon sends
    (READY=1, STATUS=..., WATCHDOG=1, STOPPING=1), with the time it arrived. The STATUS line
    changes at most once a second ("last frame 3 s ago"): a test can watch the daemon's own
    clock go by instead of sleeping."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.messages.append((time.monotonic(), data.decode()))

    def env(self, watchdog_usec: int | None = None) -> dict[str, str]:
        """The environment systemd gives the service: this socket, and a watchdog if asked."""
        env = {"NOTIFY_SOCKET": str(self.path)}
        if watchdog_usec is not None:
            env["WATCHDOG_USEC"] = str(watchdog_usec)
        return env

    def with_text(self, text: str) -> list[float]:
        return [t for t, m in list(self.messages) if text in m]

    def statuses(self, since: float = 0.0) -> list[str]:
        """The STATUS= lines that arrived after ``since`` (monotonic time), in order."""
        return [
            line[len("STATUS=") :]
            for t, m in list(self.messages)
            if t > since
            for line in m.splitlines()
            if line.startswith("STATUS=")
        ]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(1)
        self.sock.close()
