"""End-to-end performance of the real daemon: CPU per frame, loss, latency, memory, start-up, idle.

    python3 bench/daemon_bench.py            the full run (about 2 minutes)
    python3 bench/daemon_bench.py --quick    a short run (about 30 s), as the test suite does
    python3 bench/daemon_bench.py --soak 600 add 10 minutes at line rate for the memory record
    python3 bench/daemon_bench.py --compare bcdc4e5 16cb560
                                             the same measurements of other versions (a git
                                             worktree of each commit), run alternately with this
                                             one, all printed side by side

Runs ``chargery.py`` as a subprocess against a real mosquitto on a free loopback port, with a
pseudo-terminal fed by the simulator standing in for the BMS, and a real subscriber. It
prints figures next to their targets; it asserts nothing (this machine is shared and noisy).

At the real cadence each burst is written the way a USB adapter delivers it: in 62-byte
pieces (an FTDI chip's buffer), either as fast as the line fills them (5.4 ms apart at
115200 baud) or 16 ms apart (the FTDI latency timer). Wake-ups are counted per thread from
``/proc/<pid>/task/<tid>/schedstat``, field 3 (the number of times the thread was put on a
CPU): the main thread is the one whose id is the process's, every other thread of the
daemon (the MQTT network thread; paho's own with ``loop_start`` in old versions) counts as
the MQTT side.

Needs mosquitto, paho-mqtt and pyserial (``pip install -e .[dev]``, ``apt-get install mosquitto``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from harness import Broker, DaemonProcess, FakeBms, Subscriber, wait_until  # noqa: E402

from chargerybms.simulator import SimulatedBms  # noqa: E402

LINE_RATE = 115200 / 10  # bytes per second: 8N1 is 10 bits a byte
PIECE = 62  # bytes: an FTDI adapter's USB packet payload
FILL_GAP = PIECE / LINE_RATE  # seconds: a piece as soon as the line has filled it (5.4 ms)
TIMER_GAP = 0.016  # seconds: a piece when the FTDI latency timer runs out (its default)
PROMISE_MS = 150  # every value of a burst published within this of the burst's last byte
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def cpu_seconds(pid: int) -> float:
    """CPU time of every thread of ``pid``, in ns resolution (schedstat), where /proc/PID/stat
    counts 10 ms ticks: too coarse for an idle daemon."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            continue  # a thread that just ended
    if total:
        return total / 1e9
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def wakeups(pid: int) -> tuple[int, int]:
    """(main thread, every other thread): times put on a CPU (schedstat field 3)."""
    main = other = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            count = int((task / "schedstat").read_text().split()[2])
        except (FileNotFoundError, ProcessLookupError):
            continue
        if task.name == str(pid):
            main += count
        else:
            other += count
    return main, other


def pieces(burst: bytes) -> list[bytes]:
    return [burst[i : i + PIECE] for i in range(0, len(burst), PIECE)]


def write_in_pieces(bms: FakeBms, burst: bytes, gap: float) -> float:
    """The burst as an adapter hands it over; returns when its last byte was written."""
    parts = pieces(burst)
    for i, part in enumerate(parts):
        if i:
            time.sleep(gap)
        bms.write(part)
    return time.monotonic()


def rss_mb(pid: int) -> float:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 1e6


def counted_frames(chunks: list[bytes]) -> dict[int, int]:
    out = {0x56: 0, 0x57: 0, 0x58: 0}
    for c in chunks:
        if c.startswith(b"$$"):
            out[c[2]] += 1
    return out


class Pacer(threading.Thread):
    """Writes simulator bytes into the pseudo-terminal at exactly the serial line rate."""

    def __init__(self, bms: FakeBms, seconds: float, seed: int = 1) -> None:
        super().__init__(daemon=True)
        self.bms = bms
        self.seconds = seconds
        self.sim = SimulatedBms(16, firmware="1.26", seed=seed, cycle=120)
        self.written: list[bytes] = []
        self.bytes = 0

    def run(self) -> None:
        start = time.monotonic()
        source = self.sim.seconds(10**9)
        while time.monotonic() - start < self.seconds:
            chunk = next(source)
            due = start + self.bytes / LINE_RATE
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self.bms.write(chunk)
            self.written.append(chunk)
            self.bytes += len(chunk)


def flags(broker: Broker, bms: FakeBms, *extra: str) -> list[str]:
    """The default configuration (Home Assistant discovery on, every topic, state) plus ``extra``."""
    return ["--port", str(bms.path), "--mqtt-host", "127.0.0.1", "--mqtt-port", str(broker.port), *extra]


def line_rate(work: Path, broker: Broker, seconds: float, *extra: str, script: Path | None = None) -> dict[str, float]:
    bms = FakeBms(work / "ttyLine").plug()
    sub = Subscriber(
        broker, ["chargerybms/current", "chargerybms/batteryvolt", "chargerybms/aggimped", "chargerybms/state"]
    )
    daemon = DaemonProcess(work / f"line{time.monotonic_ns()}", flags(broker, bms, *extra), script=script)
    try:
        wait_until(lambda: "MQTT: connected" in daemon.log() and "serial: opened" in daemon.log(), 15, "daemon up")
        warm_up = SimulatedBms(16, firmware="1.26", seed=9)
        for chunk in warm_up.seconds(3):  # the first cell frame announces the model to Home Assistant
            bms.write(chunk)
        time.sleep(1.0)
        sub.clear()
        rss_start = rss_mb(daemon.proc.pid)
        cpu_start = cpu_seconds(daemon.proc.pid)
        pacer = Pacer(bms, seconds)
        pacer.start()
        pacer.join()
        time.sleep(1.5)  # let the last frames through
        cpu = cpu_seconds(daemon.proc.pid) - cpu_start
        rss_end = rss_mb(daemon.proc.pid)
        written = counted_frames(pacer.written)
        received = {
            0x57: len(sub.on("chargerybms/current")),
            0x56: len(sub.on("chargerybms/batteryvolt")),
            0x58: len(sub.on("chargerybms/aggimped")),
        }
        frames = sum(written.values())
        return {
            "seconds": seconds,
            "bytes": pacer.bytes,
            "frames": frames,
            "received": sum(received.values()),
            "lost": sum(max(0, written[k] - received[k]) for k in written),
            "cpu_s": cpu,
            "cpu_ms_per_frame": 1000 * cpu / max(1, frames),
            "states_per_s": len(sub.on("chargerybms/state")) / seconds,
            "rss_start": rss_start,
            "rss_end": rss_end,
        }
    finally:
        daemon.stop()
        sub.close()
        bms.close()


def real_cadence(
    work: Path, broker: Broker, seconds: float, script: Path | None = None, gap: float = FILL_GAP
) -> dict[str, float]:
    """CPU per frame and wake-ups per burst at the BMS's own cadence: every second a burst
    (status, cells every two seconds, impedances at a current reversal), in 62-byte pieces
    ``gap`` apart as a USB adapter delivers it. On a Raspberry Pi this is all the daemon
    ever sees."""
    bms = FakeBms(work / "ttyCadence").plug()
    daemon = DaemonProcess(work / f"cadence{time.monotonic_ns()}", flags(broker, bms), script=script)
    sim = SimulatedBms(16, firmware="1.26", seed=3, cycle=40)
    try:
        wait_until(lambda: "MQTT: connected" in daemon.log() and "serial: opened" in daemon.log(), 15, "daemon up")
        start = time.monotonic()
        frames = bursts = 0
        cpu_start = 0.0
        woken = (0, 0)
        for second in range(int(seconds) + 3):
            if second == 3:  # warmed up: the model is announced, the first documents are out
                cpu_start, frames, bursts = cpu_seconds(daemon.proc.pid), 0, 0
                woken = wakeups(daemon.proc.pid)
            burst = sim.frames_at(sim.t)
            sim.t += 1
            write_in_pieces(bms, b"".join(burst), gap)
            frames += len(burst)
            bursts += 1
            time.sleep(max(0.0, start + second + 1 - time.monotonic()))
        cpu = cpu_seconds(daemon.proc.pid) - cpu_start
        main, other = (after - before for after, before in zip(wakeups(daemon.proc.pid), woken, strict=True))
        return {
            "frames": frames,
            "cpu_ms_per_frame": 1000 * cpu / max(1, frames),
            "main_wakeups": main / bursts,
            "mqtt_wakeups": other / bursts,
            "rss": rss_mb(daemon.proc.pid),
        }
    finally:
        daemon.stop()
        bms.close()


def latency(work: Path, broker: Broker, samples: int, gap: float = FILL_GAP) -> list[float]:
    """A burst's last byte written (in 62-byte pieces ``gap`` apart) -> the last of its values
    (its current and its ``state``) at a subscriber, at the BMS's real cadence."""
    bms = FakeBms(work / "ttyLat").plug()
    sub = Subscriber(broker, ["chargerybms/current", "chargerybms/state"])
    daemon = DaemonProcess(work / "lat", flags(broker, bms))
    sim = SimulatedBms(16, firmware="1.26")
    out: list[float] = []
    try:
        wait_until(lambda: "MQTT: connected" in daemon.log() and "serial: opened" in daemon.log(), 15, "daemon up")
        for chunk in sim.seconds(2):  # warm-up: the first cell frame announces the model to Home Assistant
            bms.write(chunk)
        time.sleep(0.5)
        for _ in range(samples):
            frames = sim.frames_at(sim.t)
            sim.t += 1
            before = len(sub.on("chargerybms/current")), len(sub.on("chargerybms/state"))
            written = write_in_pieces(bms, b"".join(frames), gap)
            wait_until(
                lambda n=before: len(sub.on("chargerybms/current")) > n[0] and len(sub.on("chargerybms/state")) > n[1],
                5,
                "the burst's values",
            )
            arrived = max(sub.on("chargerybms/current")[-1].arrived, sub.on("chargerybms/state")[-1].arrived)
            out.append((arrived - written) * 1000)
            time.sleep(max(0.0, 1.0 - (time.monotonic() - written)))
    finally:
        daemon.stop()
        sub.close()
        bms.close()
    return out


def idle(work: Path, broker: Broker, seconds: float, script: Path | None = None) -> tuple[float, float, float]:
    """CPU share of one core with the BMS silent and the broker connected, and the wake-ups
    a second of the main thread and of the others."""
    bms = FakeBms(work / "ttyIdle").plug()
    daemon = DaemonProcess(work / f"idle{time.monotonic_ns()}", flags(broker, bms), script=script)
    try:
        wait_until(lambda: "MQTT: connected" in daemon.log() and "serial: opened" in daemon.log(), 15, "daemon up")
        time.sleep(2.0)
        cpu0, t0, woken = cpu_seconds(daemon.proc.pid), time.monotonic(), wakeups(daemon.proc.pid)
        time.sleep(seconds)
        elapsed = time.monotonic() - t0
        main, other = (after - before for after, before in zip(wakeups(daemon.proc.pid), woken, strict=True))
        return 100 * (cpu_seconds(daemon.proc.pid) - cpu0) / elapsed, main / elapsed, other / elapsed
    finally:
        daemon.stop()
        bms.close()


def startup(runs: int) -> float:
    """Process start to the first publication line with --demo (median, ms)."""
    times = []
    for _ in range(runs):
        start = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "chargery.py"), "--demo"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        assert proc.stdout is not None
        proc.stdout.readline()
        times.append((time.monotonic() - start) * 1000)
        proc.terminate()
        proc.wait()
    return statistics.median(times)


def import_ms() -> tuple[float, float]:
    """(the package's own modules, the package with paho-mqtt and pyserial) in ms, from -X importtime."""
    code = "import chargerybms.cli, chargerybms.daemon, chargerybms.mqtt_link, chargerybms.serial_link, paho.mqtt.client, serial"
    best_pkg = best_all = float("inf")
    for _ in range(5):
        result = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
        )
        pkg = total = 0
        for line in result.stderr.splitlines():
            parts = line.split("|")
            if len(parts) != 3 or not parts[1].strip().isdigit():
                continue
            name = parts[2].rstrip()
            if name.startswith(" ") and not name.startswith("  "):  # a top-level import
                total += int(parts[1])
                if name.strip().startswith("chargerybms"):
                    pkg += int(parts[1])
        best_pkg, best_all = min(best_pkg, pkg / 1000), min(best_all, total / 1000)
    return best_pkg, best_all


def compare(revs: list[str], rounds: int, quick: bool) -> None:
    """This checkout and each of ``revs`` (a git worktree of each), measured alternately in
    the same run: the machine is shared and noisy, so only figures taken side by side compare."""
    seconds = 8 if quick else 25
    cadence_seconds = 10 if quick else 30
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        versions = {"this": ROOT / "chargery.py"}
        for rev in revs:
            other = work / f"rev-{rev}"
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(other), rev],
                check=True,
                capture_output=True,
            )
            versions[rev] = other / "chargery.py"
        figures: dict[str, dict[str, list[float]]] = {name: {} for name in versions}
        broker = Broker(work / "broker").start()
        try:
            for _ in range(rounds):
                for name, script in versions.items():
                    r = line_rate(work, broker, seconds, script=script)
                    fill = real_cadence(work, broker, cadence_seconds, script=script, gap=FILL_GAP)
                    timer = real_cadence(work, broker, cadence_seconds, script=script, gap=TIMER_GAP)
                    quiet, quiet_main, quiet_other = idle(work, broker, 5 if quick else 20, script=script)
                    for key, value in (
                        ("real cadence, pieces 5.4 ms apart: ms per frame", fill["cpu_ms_per_frame"]),
                        ("real cadence, pieces 16 ms apart: ms per frame", timer["cpu_ms_per_frame"]),
                        ("wake-ups per burst (5.4 ms), main thread", fill["main_wakeups"]),
                        ("wake-ups per burst (5.4 ms), MQTT thread", fill["mqtt_wakeups"]),
                        ("wake-ups per burst (16 ms), main thread", timer["main_wakeups"]),
                        ("wake-ups per burst (16 ms), MQTT thread", timer["mqtt_wakeups"]),
                        ("line rate, ms per frame", r["cpu_ms_per_frame"]),
                        ("line rate, frames lost", r["lost"]),
                        ("line rate, state documents per s", r["states_per_s"]),
                        ("rss after the line-rate run, MB", r["rss_end"]),
                        ("idle, % of a core", quiet),
                        ("idle, wake-ups per s, main thread", quiet_main),
                        ("idle, wake-ups per s, MQTT thread", quiet_other),
                    ):
                        figures[name].setdefault(key, []).append(value)
                    print(
                        f"  {name}: real cadence {fill['cpu_ms_per_frame']:.3f} / {timer['cpu_ms_per_frame']:.3f} ms, "
                        f"wake-ups {fill['main_wakeups']:.2f}+{fill['mqtt_wakeups']:.2f} / "
                        f"{timer['main_wakeups']:.2f}+{timer['mqtt_wakeups']:.2f} per burst, "
                        f"line rate {r['cpu_ms_per_frame']:.3f} ms, lost {r['lost']:.0f}",
                        flush=True,
                    )
        finally:
            broker.stop()
            for rev in revs:
                subprocess.run(
                    ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(work / f"rev-{rev}")],
                    check=False,
                    capture_output=True,
                )
    print(f"side by side, {rounds} alternating rounds (min-max):")
    for key in figures["this"]:
        cells = [f"{name} {min(v[key]):.3f}-{max(v[key]):.3f}" for name, v in figures.items()]
        print(f"  {key}: " + " | ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run (CI smoke)")
    parser.add_argument("--soak", type=float, default=0, help="extra seconds at line rate for the memory record")
    parser.add_argument(
        "--compare", metavar="REV", nargs="+", help="also measure these git revisions, alternately, side by side"
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds with --compare (default: 3)")
    args = parser.parse_args()
    if args.compare:
        compare(args.compare, args.rounds, args.quick)
        return
    line_seconds = 8 if args.quick else 25
    samples = 5 if args.quick else 30
    idle_seconds = 5 if args.quick else 20

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        broker = Broker(work / "broker").start()
        try:
            r = line_rate(work, broker, line_seconds)
            print(
                f"line rate: {r['frames']:.0f} frames ({r['bytes']:.0f} bytes) in {r['seconds']:.0f} s at 115200 baud, default settings"
            )
            print(f"  cpu per frame: {r['cpu_ms_per_frame']:.3f} ms (target <= 0.25 ms)")
            print(
                f"  at the real cadence (~1.5 frames/s): {r['cpu_ms_per_frame'] * 1.5 / 10:.4f} % of a core (target < 0.1 %)"
            )
            print(f"  published: {r['received']:.0f} of {r['frames']:.0f} frames, lost {r['lost']:.0f} (target 0)")
            print(
                f"  rss: {r['rss_start']:.1f} MB after start, {r['rss_end']:.1f} MB after the run (target < 30 MB, no growth)"
            )
            print(f"  state documents at line rate: {r['states_per_s']:.1f} a second (at most {1 / 0.1:.0f})")
            for gap in (FILL_GAP, TIMER_GAP):
                cadence = real_cadence(work, broker, 10 if args.quick else 40, gap=gap)
                print(
                    f"real cadence, 62-byte pieces {gap * 1000:.1f} ms apart: {cadence['frames']:.0f} frames, a burst a second: "
                    f"{cadence['cpu_ms_per_frame']:.3f} ms per frame "
                    f"({cadence['cpu_ms_per_frame'] * cadence['frames'] / (10 if args.quick else 40) / 10:.4f} % of a core; target < 0.1 %), "
                    f"wake-ups per burst: main thread {cadence['main_wakeups']:.2f}, MQTT thread {cadence['mqtt_wakeups']:.2f}"
                )
            n = line_rate(work, broker, line_seconds, "--no-cell-health")
            print(
                f"  without the cell-health engine (--no-cell-health): {n['cpu_ms_per_frame']:.3f} ms per frame, "
                f"rss {n['rss_end']:.1f} MB (with it: {r['cpu_ms_per_frame']:.3f} ms, {r['rss_end']:.1f} MB)"
            )
            c = line_rate(work, broker, line_seconds, "--publish-cells")
            print(
                f"  with --publish-cells (16 more topics per cell frame): {c['cpu_ms_per_frame']:.3f} ms per frame, lost {c['lost']:.0f}"
            )
            if args.soak:
                s = line_rate(work, broker, args.soak)
                print(
                    f"soak: {args.soak:.0f} s at line rate: rss {s['rss_start']:.1f} -> {s['rss_end']:.1f} MB, lost {s['lost']:.0f}"
                )
            for gap in (FILL_GAP, TIMER_GAP):
                lat = latency(work, broker, samples, gap)
                q = statistics.quantiles(lat, n=100, method="inclusive") if len(lat) > 1 else lat * 99
                print(
                    f"latency, burst's last byte -> its last value ({len(lat)} bursts, pieces {gap * 1000:.1f} ms apart): "
                    f"p50 {statistics.median(lat):.1f} ms, p99 {q[98]:.1f} ms, max {max(lat):.1f} ms (promise: every value within {PROMISE_MS} ms)"
                )
            quiet, quiet_main, quiet_other = idle(work, broker, idle_seconds)
            print(
                f"idle (BMS silent, broker connected): {quiet:.3f} % of a core (target < 0.05 %), "
                f"wake-ups a second: main thread {quiet_main:.2f}, MQTT thread {quiet_other:.2f}"
            )
        finally:
            broker.stop()
    print(f"start-up to first publication with --demo: {startup(3 if args.quick else 7):.0f} ms (target < 1000 ms)")
    pkg, total = import_ms()
    print(f"import time: chargerybms {pkg:.1f} ms, with paho-mqtt and pyserial {total:.1f} ms (target < 150 ms)")
    print(f"python {sys.version.split()[0]} on {os.uname().machine}, {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
