"""The main thread's own CPU per burst, in one process: hot (bursts back to back) and at
the real cadence (a second of sleep between bursts, so the CPU caches go cold), with the
features on and off.

    python3 bench/cold_burst.py

The daemon is driven by hand (a fake clock, no serial port) and publishes to a real
mosquitto on a free loopback port, as at the real cadence: a burst in two 62-byte pieces,
the window's end, the rest of the second. Prints figures; asserts nothing.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from harness import Broker  # noqa: E402

from chargerybms.config import load  # noqa: E402
from chargerybms.daemon import Daemon  # noqa: E402
from chargerybms.schedule import BURST_DELAY  # noqa: E402
from chargerybms.simulator import SimulatedBms  # noqa: E402


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def per_burst(broker: Broker, state_dir: Path, extra: dict[str, object], bursts: int, pause: float) -> float:
    """Median thread CPU per burst in ms."""
    settings = load(
        {"port": "/dev/null", "mqtt_host": "127.0.0.1", "mqtt_port": broker.port, "state_dir": str(state_dir), **extra},
        environ={},
    )
    clock = Clock()
    daemon = Daemon(settings, clock=clock, wall=lambda: clock.now + 1.7e9)
    daemon.sink.start()
    while not daemon.sink.connected:
        time.sleep(0.05)
    sim = SimulatedBms(16, firmware="1.26", seed=3, cycle=40)

    def burst() -> float:
        data = b"".join(sim.frames_at(sim.t))
        sim.t += 1
        start = time.thread_time()
        daemon.handle_bytes(data[:62])
        daemon.housekeeping(clock.now)
        clock.now += BURST_DELAY
        daemon.handle_bytes(data[62:])
        daemon.housekeeping(clock.now)
        clock.now += 1 - BURST_DELAY
        daemon.housekeeping(clock.now)
        return time.thread_time() - start

    for _ in range(5):
        burst()
    costs = []
    for _ in range(bursts):
        costs.append(burst())
        time.sleep(pause)
    daemon.sink.stop([])
    return sorted(costs)[len(costs) // 2] * 1000


def main() -> None:
    variants = (
        ("every feature on", {}),
        ("--no-cell-health", {"cell_health": False}),
        ("--no-ha-discovery", {"ha_discovery": False}),
        ("both off", {"cell_health": False, "ha_discovery": False}),
    )
    with tempfile.TemporaryDirectory() as tmp:
        broker = Broker(Path(tmp) / "broker").start()
        try:
            for pause, bursts, what in ((0.0, 300, "back to back (hot)"), (1.0, 20, "a second apart (cold)")):
                for name, extra in variants:
                    ms = per_burst(broker, Path(tmp) / "state", extra, bursts, pause)
                    print(f"bursts {what}, {name}: {ms:.3f} ms of the main thread per burst (median)", flush=True)
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
