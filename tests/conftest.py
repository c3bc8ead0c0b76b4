"""Make the repository root importable, as it is for chargery.py itself."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


from collections.abc import Callable, Iterator  # noqa: E402
from typing import TYPE_CHECKING  # noqa: E402

import pytest  # noqa: E402

if TYPE_CHECKING:  # the harness needs paho-mqtt: imported by the fixtures that use it only,
    # so the decoder's tests run on a machine without it
    from harness import Broker, DaemonProcess, FakeBms, Subscriber


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
