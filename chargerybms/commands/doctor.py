"""``chargery.py doctor``: listen a few seconds and say in plain words what is on the wire."""

from __future__ import annotations

import errno
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..config import Settings
from ..protocol import HEADER, SPACER, CellsFrame, Framer, FramerStats, StatusFrame
from ..serial_link import PortError, SerialPort

WIRED_MIN_VOLTS = 1.0  # below this a slot carries junk, not a cell
HEALTHY_ERROR_RATE = 0.05


@dataclass
class Listening:
    """What was heard: the raw facts the verdict is built from."""

    seconds: float
    stats: FramerStats
    headers: int  # "$$" seen in the raw bytes
    cells: list[CellsFrame] = field(default_factory=list)
    status: list[StatusFrame] = field(default_factory=list)
    spacers: int = 0  # the BMS's "h::3" text seen in the raw bytes


def listen(port: SerialPort, seconds: float) -> Listening:
    framer = Framer()
    cells: list[CellsFrame] = []
    status: list[StatusFrame] = []
    headers = spacers = 0
    tail = b""
    start = time.monotonic()
    while (elapsed := time.monotonic() - start) < seconds:
        data = port.read(4096)
        if not data:
            continue
        # Count markers that straddle two reads once: keep just too little to hold a whole one.
        headers += (tail[-1:] + data).count(HEADER)
        spacers += (tail + data).count(SPACER)
        tail = (tail + data)[-(len(SPACER) - 1) :]
        for _, frame in framer.feed(data):
            if isinstance(frame, CellsFrame):
                cells.append(frame)
            elif isinstance(frame, StatusFrame):
                status.append(frame)
    return Listening(max(elapsed, seconds), framer.stats(), headers, cells, status, spacers)


def firmware(heard: Listening) -> str:
    if heard.status and heard.status[-1].mode is None:
        return "before V1.21 (13-byte status frames)"
    if heard.status and heard.status[-1].discharge_end_voltage is not None:
        return "V1.26 or later (19-byte status frames)"
    if heard.cells:
        if heard.cells[-1].energy_wh is None:
            return "V1.22/V1.23 (cell frames with SOC)"
        return "V1.24/V1.25 (cell frames with Wh/Ah)"
    return "unknown (no cell frame yet)"


def verdict(heard: Listening, settings: Settings) -> tuple[bool, list[str]]:
    """(healthy, lines to print)."""
    stats = heard.stats
    where = settings.port
    errors = stats.corrupted
    if stats.bytes_in == 0:
        return False, [
            f"No bytes at all from {where} in {heard.seconds:.0f} s.",
            "- Is the BMS display unit on? Some units send nothing while it is off or asleep.",
            "- Is this the right port? Try the names in /dev/serial/by-id/.",
            "- Is the BMS TX wired to the adapter's RX, and ground to ground?",
        ]
    if heard.headers == 0 and heard.spacers:
        return False, [
            f"The BMS's own text (h::3) arrives from {where}, but no frame in {heard.seconds:.0f} s.",
            "- The wiring, polarity and speed are right: the text would be garbled otherwise.",
            "- The BMS is probably asleep or its display unit is off; wake it and run doctor again.",
        ]
    if heard.headers == 0:
        return False, [
            f"{stats.bytes_in} bytes from {where} in {heard.seconds:.0f} s, but never a frame start ($$).",
            "- This is what wrong polarity looks like: the Chargery COM port is RS-232 level. A TTL",
            "  (3.3 V/5 V) adapter needs an inverted RX, or use a real RS-232 adapter.",
            f"- Or the speed is wrong: the BMS sends at 115200 baud (this run: {settings.baud}).",
        ]
    if stats.frames == 0 or errors > HEALTHY_ERROR_RATE * (stats.frames + errors):
        return False, [
            f"Frames from {where}, but {errors} of {stats.frames + errors} are corrupted "
            f"({stats.checksum_failures} checksum failures, {stats.implausible} implausible).",
            "- Noise on the line: keep the cable short, away from power wiring; check ground; an isolated",
            "  adapter helps.",
            "- Or something other than chargery set the port up (XON/XOFF or CR/LF translation eat bytes):",
            "  stop other programs using the port.",
        ]
    lines = [f"Healthy stream from {where}: {stats.frames} frames in {heard.seconds:.0f} s "
             f"({stats.frames / heard.seconds:.1f} per second), {errors} corrupted."]  # fmt: skip
    if heard.cells:
        volts = heard.cells[-1].cell_voltages
        wired = [i + 1 for i, v in enumerate(volts) if v >= WIRED_MIN_VOLTS]
        lines.append(f"- Model: BMS{len(volts)}T ({len(volts)} cell slots).")
        lines.append(f"- Cells that look wired: {len(wired)} ({', '.join(map(str, wired)) or 'none'}).")
        if settings.cells and settings.cells != len(wired):
            lines.append(f"- Note: --cells is {settings.cells}, but {len(wired)} slots carry a cell voltage.")
        elif not settings.cells and len(wired) != len(volts):
            lines.append(f"- Set --cells {len(wired)} (CHARGERY_CELLS={len(wired)}) so sums ignore empty slots.")
    else:
        lines.append("- No cell frame yet (they come every 2 s); listen longer with --seconds.")
    lines.append(f"- Firmware: {firmware(heard)}.")
    if heard.status:
        last = heard.status[-1]
        soc = "?" if last.soc is None else last.soc
        lines.append(f"- Now: {last.mode or 'mode not sent'}, {last.current} A, SOC {soc} %.")
    return True, lines


# --- another process holds the port ---------------------------------------------------------

# The open fails this way when another process holds the port: EAGAIN/EWOULDBLOCK from
# pyserial's exclusive lock (flock, as the daemon opens it), EBUSY from a terminal opened
# for exclusive use (TIOCEXCL).
BUSY = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.EBUSY})


@dataclass(frozen=True)
class Holder:
    pid: int
    command: str  # its command line, or its name
    unit: str | None  # the systemd unit it runs in, if any


def port_holders(path: str, proc: Path = Path("/proc")) -> list[Holder]:
    """The processes that hold ``path`` (a device, or a link to one) open, other than this
    one: from the kernel's lock table (``/proc/locks``, readable by every user) and from
    the processes' open files (``/proc/PID/fd``, those this user may read)."""
    try:
        device = os.stat(path)
        target = os.path.realpath(path)
    except OSError:
        return []
    pids: set[int] = set()
    lock_id = f"{os.major(device.st_dev):02x}:{os.minor(device.st_dev):02x}:{device.st_ino}"
    try:
        for line in (proc / "locks").read_text().splitlines():
            fields = line.split()
            if "->" not in fields and len(fields) > 5 and fields[5] == lock_id and fields[4].isdigit():
                pids.add(int(fields[4]))  # "1: FLOCK ADVISORY WRITE <pid> <maj:min:inode> 0 EOF"
    except OSError:
        pass
    for fd_dir in proc.glob("[0-9]*/fd"):
        try:
            if any(os.readlink(fd) == target for fd in fd_dir.iterdir()):
                pids.add(int(fd_dir.parent.name))
        except OSError:  # another user's process, or gone meanwhile
            continue
    pids.discard(os.getpid())
    return [_holder(pid, proc) for pid in sorted(pids)]


def _holder(pid: int, proc: Path) -> Holder:
    try:
        command = (proc / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        command = ""
    if not command:
        try:
            command = (proc / str(pid) / "comm").read_text().strip()
        except OSError:
            command = "?"
    unit = None
    try:
        cgroup = (proc / str(pid) / "cgroup").read_text()
        found = re.findall(r"/([^/\s]+\.service)(?:/|$)", cgroup, re.MULTILINE)
        unit = found[-1] if found else None
    except OSError:
        pass
    return Holder(pid, command, unit)


def busy_lines(where: str, holders: list[Holder]) -> list[str]:
    """What to say when another process holds the port: who, and what to do."""
    lines = [f"{where} is in use by another process, so doctor cannot listen to it."]
    for h in holders:
        shown = h.command if len(h.command) <= 100 else h.command[:97] + "..."
        lines.append(f"- Held by PID {h.pid}: {shown}" + (f" (systemd unit {h.unit})" if h.unit else ""))
    if not holders:
        lines.append("- Which one could not be seen (another user's); sudo python3 chargery.py doctor shows it.")
    chargery = [h for h in holders if h.unit and h.unit.startswith("chargery")] or [
        h for h in holders if "chargery" in h.command
    ]
    if chargery and chargery[0].unit:
        unit = chargery[0].unit.removesuffix(".service")
        lines += [
            f"- That is the chargery service, which is already reading the BMS: journalctl -u {unit} -f shows",
            "  what it receives. To let doctor listen instead, stop it for a moment:",
            f"  sudo systemctl stop {unit}; then run doctor again; then sudo systemctl start {unit}",
        ]
    elif chargery:
        lines += [
            "- That is chargery itself, already reading the BMS: stop it (Ctrl-C, or kill "
            f"{chargery[0].pid}) and run doctor again.",
            "  Installed as a service? sudo systemctl stop chargery, run doctor, sudo systemctl start chargery",
        ]
    else:
        lines += [
            "- Stop that program and run doctor again; if it is the chargery service:",
            "  sudo systemctl stop chargery, run doctor, then sudo systemctl start chargery",
        ]
    return lines


def run_doctor(settings: Settings, seconds: float) -> int:
    try:
        port = SerialPort(settings.port, settings.baud, timeout=0.5)
    except PortError as exc:
        if exc.errno in BUSY:
            print("\n".join(busy_lines(settings.port, port_holders(settings.port))))
            return 1
        print(f"Cannot open {settings.port}: {exc}.")
        print("- Is the adapter plugged in? ls -l /dev/serial/by-id/ lists what is there.")
        print("- Permission denied? Add the user to the dialout group (sudo usermod -aG dialout $USER).")
        return 1
    print(f"Listening to {settings.port} at {settings.baud} baud for {seconds:g} s ...", flush=True)
    try:
        heard = listen(port, seconds)
    except PortError as exc:
        print(f"{settings.port} went away while listening: {exc}. A loose USB plug or cable?")
        return 1
    finally:
        port.close()
    healthy, lines = verdict(heard, settings)
    print("\n".join(lines))
    return 0 if healthy else 1
