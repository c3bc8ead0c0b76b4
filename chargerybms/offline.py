"""``chargery.py decode``: a capture in, JSON Lines out, a summary on stderr."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from typing import IO, BinaryIO

from .protocol import Frame, Framer, FramerStats, frame_fields

READ_SIZE = 1 << 16
_HEX_SPACE = re.compile(rb"\s+")


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


def decode_stream(source: BinaryIO, out: IO[str], *, as_hex: bool = False) -> FramerStats:
    """Decode everything from ``source``; write one JSON object per frame to ``out``."""
    framer = Framer()
    dumps = json.JSONEncoder(separators=(", ", ": ")).encode
    chunks = [hex_to_bytes(source.read())] if as_hex else iter(lambda: source.read(READ_SIZE), b"")
    for chunk in chunks:
        _write(out, dumps, framer.feed(chunk))
    _write(out, dumps, framer.flush())
    return framer.stats()


def _write(out: IO[str], dumps: Callable[[object], str], frames: list[tuple[int, Frame]]) -> None:
    if frames:
        out.write("\n".join([dumps({"offset": offset, **frame_fields(frame)}) for offset, frame in frames]))
        out.write("\n")


def summary(stats: FramerStats) -> str:
    return (
        f"{stats.frames} frames (cells {stats.cells}, status {stats.status}, impedances {stats.impedances}) "
        f"from {stats.bytes_in} bytes; {stats.bytes_skipped} bytes skipped, "
        f"{stats.checksum_failures} checksum failures, {stats.implausible} implausible"
    )


def run_decode(path: str, as_hex: bool) -> int:
    try:
        if path == "-":
            stats = decode_stream(sys.stdin.buffer, sys.stdout, as_hex=as_hex)
        else:
            try:
                source = open(path, "rb")  # noqa: SIM115 - closed below, errors reported apart
            except OSError as exc:
                raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
            with source:
                stats = decode_stream(source, sys.stdout, as_hex=as_hex)
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
    print(f"chargery decode: {summary(stats)}", file=sys.stderr)
    return 0
