"""Decoder benchmark: a day of a 16-cell BMS, through the library and through the CLI.

    python3 bench/decode_bench.py [--seconds 86400] [--repeat 5]

Builds a realistic capture with the simulator (status every second, cells every two,
impedances on direction changes, the ``h::3`` spacer text between frames, and a sprinkle
of line noise: random bytes, truncated frames and flipped bits), then prints:

- frames per second for the Framer and decoders together (best of ``--repeat``), fed in
  4 KiB reads like a serial port would deliver them;
- wall time of ``python3 chargery.py decode`` on the capture file (output to /dev/null).

Targets on the reference machine: >= 400,000 frames/s; the CLI under 2 s for the day.
It prints figures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chargerybms.protocol import Framer  # noqa: E402
from chargerybms.simulator import SimulatedBms  # noqa: E402


def build_capture(seconds: int, seed: int = 7) -> tuple[bytes, int]:
    """The capture and how many intact frames it holds."""
    rng = random.Random(seed)
    bms = SimulatedBms(16, firmware="1.26", seed=seed)
    parts: list[bytes] = []
    intact = 0
    for chunk in bms.seconds(seconds):
        if chunk.startswith(b"$$"):
            roll = rng.random()
            if roll < 0.001:  # truncated frame
                parts.append(chunk[: rng.randint(3, len(chunk) - 1)])
                continue
            if roll < 0.002:  # one flipped bit
                damaged = bytearray(chunk)
                damaged[rng.randrange(4, len(damaged))] ^= 1 << rng.randrange(8)
                parts.append(bytes(damaged))
                continue
            intact += 1
        elif rng.random() < 0.002:  # line noise between frames
            parts.append(bytes(rng.randrange(256) for _ in range(rng.randint(1, 40))))
        parts.append(chunk)
    return b"".join(parts), intact


def bench_library(capture: bytes, repeat: int, read_size: int = 4096) -> tuple[float, int]:
    best = float("inf")
    frames = 0
    chunks = [capture[i : i + read_size] for i in range(0, len(capture), read_size)]
    for _ in range(repeat):
        framer = Framer()
        start = time.perf_counter()
        frames = 0
        for chunk in chunks:
            frames += len(framer.feed(chunk))
        best = min(best, time.perf_counter() - start)
    return best, frames


def bench_cli(path: str, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, str(ROOT / "chargery.py"), "decode", path],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=True,
        )
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=86400, help="simulated seconds (default: a day)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    t0 = time.perf_counter()
    capture, intact = build_capture(args.seconds)
    print(f"capture: {len(capture):,} bytes, {intact:,} intact frames, built in {time.perf_counter() - t0:.1f} s")

    elapsed, frames = bench_library(capture, args.repeat)
    print(f"library: {frames:,} frames in {elapsed:.3f} s = {frames / elapsed:,.0f} frames/s (target >= 400,000)")

    with tempfile.NamedTemporaryFile(suffix=".bin", delete=False) as f:
        f.write(capture)
    try:
        wall = bench_cli(f.name, max(1, args.repeat // 2))
    finally:
        os.unlink(f.name)
    print(f"cli decode: {wall:.2f} s wall for the capture (target < 2 s)")
    print(f"python {sys.version.split()[0]} on {os.uname().machine}, {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
