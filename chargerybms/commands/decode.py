"""``chargery.py decode``: a capture in, JSON Lines out, a summary on stderr."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from typing import IO, Any, BinaryIO

from ..protocol import (
    MODE_NAMES,
    UNKNOWN_MODE,
    CellsFrame,
    Frame,
    Framer,
    FramerStats,
    ImpedancesFrame,
    StatusFrame,
)

READ_SIZE = 1 << 16
_HEX_SPACE = re.compile(rb"\s+")
_HEX_TEXT = re.compile(rb"[\s0-9A-Fa-f]*[0-9A-Fa-f]{2}[\s0-9A-Fa-f]*")
SNIFF = 4096  # bytes of the input looked at to tell hex text from a raw capture


class InputError(Exception):
    """The input cannot be decoded at all (unreadable file, malformed hex)."""


def hex_to_bytes(text: bytes) -> bytes:
    """Hex digits with any white space between them (``24 24 57 ...`` or ``242457...``)."""
    digits = _HEX_SPACE.sub(b"", text)
    if len(digits) % 2:
        raise InputError(f"hex input has an odd number of digits ({len(digits)}): a byte is cut in half")
    try:
        return bytes.fromhex(digits.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        bad = re.search(rb"[^0-9A-Fa-f]", digits)
        shown = bad.group().decode("latin-1") if bad else "?"
        raise InputError(f"hex input holds {shown!r}, which is not a hex digit") from None


def looks_like_hex(sample: bytes) -> bool:
    """Hex digits and white space only (``24 24 57 ...``): text that ``--hex`` decodes, which
    a raw capture never is (its frames hold bytes far outside those characters)."""
    return _HEX_TEXT.fullmatch(sample) is not None


def decode_stream(
    source: BinaryIO, out: IO[str], *, as_hex: bool = False, start: bytearray | None = None
) -> FramerStats:
    """Decode everything from ``source``; write one JSON object per frame to ``out``.
    ``start``, if given, receives the first :data:`SNIFF` bytes of the input."""
    framer = Framer()
    chunks = [hex_to_bytes(source.read())] if as_hex else iter(lambda: source.read(READ_SIZE), b"")
    for chunk in chunks:
        if start is not None and len(start) < SNIFF:
            start += chunk[: SNIFF - len(start)]
        _write(out, framer.feed(chunk))
    _write(out, framer.flush())
    return framer.stats()


def _write(out: IO[str], frames: list[tuple[int, Frame]]) -> None:
    if frames:
        lines = _LINES
        out.write("\n".join([lines[type(frame)](offset, frame) for offset, frame in frames]))
        out.write("\n")


# One JSON Lines record per frame: {"offset": ..., "type": ..., <the frame's fields>}, as
# json.dumps(..., separators=(", ", ": ")) would write it (a test holds the two equal),
# but formatted straight from the typed frame, one format string per frame type: the
# generic encoder's dict building and walking was most of the command's time.


def _opt(value: object) -> str:
    """A number that may be absent (null); repr is what json writes for ints and floats."""
    return "null" if value is None else repr(value)


def _flag(value: bool | None) -> str:
    return "null" if value is None else "true" if value else "false"


def _list(values: tuple[float, ...]) -> str:
    return f"[{', '.join(map(repr, values))}]"


_MODE: dict[str | None, str] = {
    None: "null",
    **{name: json.dumps(name) for name in (*MODE_NAMES.values(), UNKNOWN_MODE)},
}


def _cells_line(offset: int, f: CellsFrame) -> str:
    return (
        f'{{"offset": {offset}, "type": "cells", "cell_voltages": {_list(f.cell_voltages)}, '
        f'"energy_wh": {_opt(f.energy_wh)}, "capacity_ah": {_opt(f.capacity_ah)}, "soc": {_opt(f.soc)}}}'
    )


def _status_line(offset: int, f: StatusFrame) -> str:
    return (
        f'{{"offset": {offset}, "type": "status", "charge_end_voltage": {f.charge_end_voltage!r}, '
        f'"mode": {_MODE[f.mode]}, "mode_code": {_opt(f.mode_code)}, "current": {f.current!r}, '
        f'"temperature_1": {f.temperature_1!r}, "temperature_2": {f.temperature_2!r}, "soc": {_opt(f.soc)}, '
        f'"discharge_end_voltage": {_opt(f.discharge_end_voltage)}, '
        f'"charge_protection": {_flag(f.charge_protection)}, "discharge_protection": {_flag(f.discharge_protection)}}}'
    )


def _impedances_line(offset: int, f: ImpedancesFrame) -> str:
    return (
        f'{{"offset": {offset}, "type": "impedances", "mode": {_MODE[f.mode]}, "mode_code": {f.mode_code!r}, '
        f'"current": {f.current!r}, "cell_impedances": {_list(f.cell_impedances)}}}'
    )


_LINES: dict[type, Callable[[int, Any], str]] = {
    CellsFrame: _cells_line,
    StatusFrame: _status_line,
    ImpedancesFrame: _impedances_line,
}


def json_line(offset: int, frame: Frame) -> str:
    """The JSON Lines record of ``frame`` found at byte ``offset``."""
    return _LINES[type(frame)](offset, frame)


def summary(stats: FramerStats) -> str:
    return (
        f"{stats.frames} frames (cells {stats.cells}, status {stats.status}, impedances {stats.impedances}) "
        f"from {stats.bytes_in} bytes; {stats.bytes_skipped} bytes skipped, "
        f"{stats.checksum_failures} checksum failures, {stats.implausible} implausible"
    )


def run_decode(path: str, as_hex: bool) -> int:
    start = bytearray()
    try:
        if path == "-":
            stats = decode_stream(sys.stdin.buffer, sys.stdout, as_hex=as_hex, start=start)
        else:
            try:
                source = open(path, "rb")  # noqa: SIM115 - closed below, errors reported apart
            except OSError as exc:
                raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
            with source:
                stats = decode_stream(source, sys.stdout, as_hex=as_hex, start=start)
        sys.stdout.flush()
    except InputError as exc:
        print(f"chargery decode: {exc}", file=sys.stderr)
        return 2
    except IsADirectoryError:
        print(f"chargery decode: cannot read {path}: it is a directory", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (| head): not an error of ours.
        sys.stderr.close()
        return 0
    hint = ""
    if not as_hex and stats.frames == 0 and looks_like_hex(bytes(start)):
        hint = "; the input is hex text, not raw bytes: decode it with --hex"
    print(f"chargery decode: {summary(stats)}{hint}", file=sys.stderr)
    return 0
