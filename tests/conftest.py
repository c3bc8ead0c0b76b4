"""Make the repository root importable, as it is for chargery.py itself; keep every test
away from the developer's home; start the real counterparts the end-to-end tests need."""

from __future__ import annotations

import os
import site
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


from collections.abc import Callable, Iterator  # noqa: E402
from typing import TYPE_CHECKING  # noqa: E402

import helpers  # noqa: E402
import pytest  # noqa: E402

if TYPE_CHECKING:  # the harness needs paho-mqtt: imported by the fixtures that use it only,
    # so the decoder's tests run on a machine without it
    from harness import Broker, DaemonProcess, FakeBms, NotifySocket, Subscriber

# Environment variables named CHARGERY_* that steer the tests themselves, not the daemon.
TEST_SETTINGS = ("CHARGERY_NODE_RED", "CHARGERY_KEEP_CONTAINER")
# What systemd gives a service: a test run started by one must not notify it, nor read its
# credentials.
SERVICE_MANAGER = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "CREDENTIALS_DIRECTORY")


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[Path]:
    """Every test, and every process it starts, sees a temporary home: the developer's
    ~/.local/state/chargery (energy meters) is never read, written or renamed, and the
    developer's own CHARGERY_* settings (or a service manager's) do not leak into what a
    test runs."""
    real_home = Path.home()
    home = tmp_path / "home"
    home.mkdir()
    user_base = site.getuserbase()  # pip install --user stays importable in subprocesses
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / ".local" / "state"))
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state-directory"))  # as systemd's StateDirectory= sets it
    monkeypatch.setenv("PYTHONUSERBASE", os.environ.get("PYTHONUSERBASE", user_base))
    if "PYENV_ROOT" not in os.environ and (real_home / ".pyenv").is_dir():
        monkeypatch.setenv("PYENV_ROOT", str(real_home / ".pyenv"))  # a `python3` shim keeps working
    for name in list(os.environ):
        if (name.startswith("CHARGERY_") and name not in TEST_SETTINGS) or name in SERVICE_MANAGER:
            monkeypatch.delenv(name)
    helpers.CURRENT_TEST = request.node  # require_tool checks its markers
    yield home
    helpers.CURRENT_TEST = None


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    from harness import Broker

    b = Broker(tmp_path / "broker").start()
    yield b
    b.stop()


@pytest.fixture
def bms(tmp_path: Path) -> Iterator[FakeBms]:
    from harness import FakeBms

    fake = FakeBms(tmp_path / "ttyBMS")
    yield fake
    fake.close()


@pytest.fixture
def subscriber(broker: Broker) -> Iterator[Subscriber]:
    from harness import Subscriber

    s = Subscriber(broker)
    yield s
    s.close()


@pytest.fixture
def start_daemon(tmp_path: Path) -> Iterator[Callable[..., DaemonProcess]]:
    """Start ``chargery.py`` with the given flags; every one is stopped at teardown."""
    from harness import DaemonProcess

    started: list[DaemonProcess] = []

    def start(*args: str, env: dict[str, str] | None = None, name: str = "daemon") -> DaemonProcess:
        d = DaemonProcess(tmp_path / f"{name}{len(started)}", list(args), env)
        started.append(d)
        return d

    yield start
    for d in started:
        d.stop()


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    """systemd's side of Type=notify: pass ``notify_socket.env()`` to the daemon."""
    from harness import NotifySocket

    s = NotifySocket(tmp_path / "notify.sock")
    yield s
    s.close()
