"""``chargery.py doctor``: listen a few seconds and say in plain words what is on the wire."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

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


def run_doctor(settings: Settings, seconds: float) -> int:
    try:
        port = SerialPort(settings.port, settings.baud, timeout=0.5)
    except PortError as exc:
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
