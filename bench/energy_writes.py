#!/usr/bin/env python3
"""What saving the energy meters every minute costs the storage: writes and bytes per day.

An SD card is not at hand, so this measures what reaches a block device: an ext4 file
system (as Raspberry Pi OS formats its SD card: default options, ordered journal) on a
loop device, with the real EnergyMeters.save() called N times, each after new energy, as
the daemon does once a minute while current flows. The device's own counters
(/sys/block/loopN/stat: write requests and sectors written) give what the card would see.
Needs root (losetup, mount) and mkfs.ext4; prints figures, asserts nothing.

    sudo python3 bench/energy_writes.py [--saves 200]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chargerybms.schedule import ENERGY_SAVE_EVERY
from chargerybms.views.energy import EnergyMeters


def block_stat(device: str) -> tuple[int, int]:
    """(write requests completed, sectors written) of /dev/loopN."""
    fields = Path(f"/sys/block/{Path(device).name}/stat").read_text().split()
    return int(fields[4]), int(fields[6])


def run(saves: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        image, mountpoint = Path(tmp) / "card.img", Path(tmp) / "mnt"
        mountpoint.mkdir()
        with open(image, "wb") as f:
            f.truncate(64 << 20)
        subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)
        device = subprocess.run(
            ["losetup", "--find", "--show", str(image)], check=True, capture_output=True, text=True
        ).stdout.strip()
        try:
            subprocess.run(["mount", device, str(mountpoint)], check=True)
            try:
                meters = EnergyMeters(mountpoint / "energy-chargerybms.json")
                meters.add(0.0, 1200.0, 0.0)
                now = 0.0
                meters.add(0.0, 1200.0, now := now + 1)
                meters.save()  # the first save creates the files: not counted
                os.sync()
                time.sleep(1)
                before = block_stat(device)
                for _ in range(saves):
                    meters.add(0.0, 1200.0, now := now + 1)
                    meters.save()
                os.sync()
                time.sleep(6)  # let the journal commit (ext4 commits every 5 s)
                after = block_stat(device)
            finally:
                subprocess.run(["umount", str(mountpoint)], check=True)
        finally:
            subprocess.run(["losetup", "-d", device], check=True)
    requests = after[0] - before[0]
    written = (after[1] - before[1]) * 512
    per_day = 86400 / ENERGY_SAVE_EVERY
    print(f"{saves} saves on ext4 (loop device): {requests} write requests, {written} bytes reach the device")
    print(f"per save: {requests / saves:.1f} write requests, {written / saves / 1024:.1f} KiB")
    print(
        f"per day (a save every {ENERGY_SAVE_EVERY:.0f} s while current flows, {per_day:.0f} saves): "
        f"{requests / saves * per_day:.0f} write requests, {written / saves * per_day / 2**20:.1f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--saves", type=int, default=200)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("energy_writes.py: needs root (losetup and mount a test file system)")
    run(args.saves)


if __name__ == "__main__":
    main()
