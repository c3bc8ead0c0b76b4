"""The Chargery BMS8T/16T/24T serial protocol: bytes in, typed frames out.

Pure on purpose: standard library only, no I/O, no logging, no clocks. The daemon, the
``decode`` command, the doctor and the tests all feed bytes through the same
:class:`Framer`, so whatever is true of one is true of all.

Wire format (the whole of it, with the framing rules: ``docs/protocol.md``)::

    24 24 | CMD | L | payload ... | CK        L = length of the whole frame
    CK = (sum of bytes 0 .. L-2) & 0xFF

| CMD  | frame      | lengths                                                    |
| ---- | ---------- | ---------------------------------------------------------- |
| 0x56 | cells      | 13 + 2n (V1.24+, Wh/Ah LE) or 6 + 2n (V1.22/1.23, SOC)     |
| 0x57 | status     | 13 (before V1.21), 15 (V1.22-V1.25), 19 (V1.26)            |
| 0x58 | impedances | 8 + 2n, little-endian                                      |
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Final, NamedTuple

HEADER: Final = b"$$"
SPACER: Final = b"h::3\r\n"  # text the BMS sends between frames: not a frame, skipped as noise
CMD_CELLS: Final = 0x56
CMD_STATUS: Final = 0x57
CMD_IMPEDANCES: Final = 0x58

MODELS: Final = (8, 16, 24)  # cell slots of the BMS8T, BMS16T and BMS24T: the one list of models
MAX_SLOTS: Final = max(MODELS)
MAX_FRAME_LEN: Final = 13 + 2 * MAX_SLOTS  # 61: a V1.24+ cell frame of a BMS24T
#: The framer never keeps more than this many bytes between two calls of ``feed``:
#: at most one incomplete candidate frame, which is shorter than ``MAX_FRAME_LEN``.
BUFFER_CAP: Final = MAX_FRAME_LEN - 1

#: Plausibility limits (framing rule 2): a frame whose checksum matched by chance is
#: still rejected when its content cannot come from a BMS.
MAX_MILLIVOLTS: Final = 5000
MAX_SOC: Final = 100

MODE_NAMES: Final = {0: "discharge", 1: "charge", 2: "storage"}
UNKNOWN_MODE: Final = "unknown"


class CellsFrame(NamedTuple):
    """0x56: every cell slot the BMS sends, plus energy/charge counters or SOC."""

    cell_voltages: tuple[float, ...]  # V, every slot as sent (unwired slots carry junk)
    energy_wh: float | None  # Wh as reported; None before V1.24
    capacity_ah: float | None  # Ah as reported; None before V1.24
    soc: int | None  # %; only V1.22/V1.23 cell frames carry it

    @property
    def type(self) -> str:
        return "cells"


class StatusFrame(NamedTuple):
    """0x57: settings, mode, current, temperatures, SOC, protection flags."""

    charge_end_voltage: float  # V, a setting (per-cell cut-off), not a measurement
    mode: str | None  # discharge / charge / storage / unknown; None in 13-byte frames
    mode_code: int | None  # the raw mode byte; None in 13-byte frames
    current: float  # A, negative while discharging
    temperature_1: float  # degC, signed
    temperature_2: float  # degC, signed
    soc: int | None  # %; None in 13-byte frames
    discharge_end_voltage: float | None  # V; V1.26 only
    charge_protection: bool | None  # True: the BMS has stopped charging; V1.26 only
    discharge_protection: bool | None  # True: the BMS has stopped discharging; V1.26 only

    @property
    def type(self) -> str:
        return "status"


class ImpedancesFrame(NamedTuple):
    """0x58: per-cell internal resistance, with mode and current at measurement time."""

    mode: str
    mode_code: int
    current: float  # A at measurement time, signed like StatusFrame.current
    cell_impedances: tuple[float, ...]  # mOhm

    @property
    def type(self) -> str:
        return "impedances"


Frame = CellsFrame | StatusFrame | ImpedancesFrame

# --- precompiled layouts ----------------------------------------------------------

_STATUS_13 = struct.Struct(">HHhh")  # charge end, current, T1, T2
_STATUS_15 = struct.Struct(">HBHhhB")  # + mode after charge end, SOC at the end
_STATUS_19 = struct.Struct(">HBHhhBHBB")  # + discharge end, charge/discharge protection
_ENERGY = struct.Struct("<II")  # Wh, Ah (x1000), little-endian
_IMPEDANCE_HEAD = struct.Struct("<BH")  # mode, current (x10)


def _cell_layout(slots: int) -> struct.Struct:
    return struct.Struct(f">{slots}H")


def _impedance_layout(cells: int) -> struct.Struct:
    return struct.Struct(f"<{cells}H")


def _signed_current(deci_amps: int, mode_code: int) -> float:
    # The current is a magnitude; only the mode byte gives its direction.
    return -deci_amps / 10 if mode_code == 0 and deci_amps else deci_amps / 10


# A decoder takes the buffer and the offset of a frame's header, and returns the frame,
# or None when ``strict`` and the content is implausible (framing rule 2). The checks run
# on the raw integers, before any result is built: this is the per-frame hot path.
_Decoder = Callable[[bytes | bytearray, int], Frame | None]


def _status_decoder(length: int, strict: bool) -> _Decoder:
    if length == 13:

        def decode13(data: bytes | bytearray, start: int) -> Frame | None:
            end_mv, deci_amps, t1, t2 = _STATUS_13.unpack_from(data, start + 4)
            if strict and end_mv > MAX_MILLIVOLTS:
                return None
            # No mode byte before V1.21: the direction of the current is unknown, so it
            # stays the magnitude the BMS sent.
            return StatusFrame(end_mv / 1000, None, None, deci_amps / 10, t1 / 10, t2 / 10, None, None, None, None)

        return decode13

    if length == 15:

        def decode15(data: bytes | bytearray, start: int) -> Frame | None:
            end_mv, mode, deci_amps, t1, t2, soc = _STATUS_15.unpack_from(data, start + 4)
            if strict and (end_mv > MAX_MILLIVOLTS or mode > 2 or soc > MAX_SOC):
                return None
            return _status_frame(end_mv, mode, deci_amps, t1, t2, soc, None, None, None)

        return decode15

    def decode19(data: bytes | bytearray, start: int) -> Frame | None:
        end_mv, mode, deci_amps, t1, t2, soc, dis_mv, cprot, dprot = _STATUS_19.unpack_from(data, start + 4)
        if strict and (end_mv > MAX_MILLIVOLTS or mode > 2 or soc > MAX_SOC or dis_mv > MAX_MILLIVOLTS):
            return None
        return _status_frame(end_mv, mode, deci_amps, t1, t2, soc, dis_mv / 1000, cprot != 0, dprot != 0)

    return decode19


def _status_frame(  # noqa: PLR0917 - the hot path passes unpacked integers straight on
    end_mv: int,
    mode: int,
    deci_amps: int,
    t1: int,
    t2: int,
    soc: int,
    discharge_end: float | None,
    charge_protection: bool | None,
    discharge_protection: bool | None,
) -> StatusFrame:
    """A status frame with a mode byte (15 and 19 bytes), from the raw integers."""
    return StatusFrame(
        end_mv / 1000,
        MODE_NAMES.get(mode, UNKNOWN_MODE),
        mode,
        _signed_current(deci_amps, mode),
        t1 / 10,
        t2 / 10,
        soc,
        discharge_end,
        charge_protection,
        discharge_protection,
    )


def _cells_decoder(slots: int, with_energy: bool, strict: bool) -> _Decoder:
    layout = _cell_layout(slots)
    tail = 4 + 2 * slots

    if with_energy:

        def decode(data: bytes | bytearray, start: int) -> Frame | None:
            raw = layout.unpack_from(data, start + 4)
            if strict and max(raw) > MAX_MILLIVOLTS:
                return None
            wh, ah = _ENERGY.unpack_from(data, start + tail)
            return CellsFrame(tuple([mv / 1000 for mv in raw]), wh / 1000, ah / 1000, None)

        return decode

    def decode_v122(data: bytes | bytearray, start: int) -> Frame | None:
        raw = layout.unpack_from(data, start + 4)
        soc = data[start + tail]
        if strict and (max(raw) > MAX_MILLIVOLTS or soc > MAX_SOC):
            return None
        return CellsFrame(tuple([mv / 1000 for mv in raw]), None, None, soc)

    return decode_v122


def _impedances_decoder(cells: int, strict: bool) -> _Decoder:
    layout = _impedance_layout(cells)

    def decode(data: bytes | bytearray, start: int) -> Frame | None:
        mode, deci_amps = _IMPEDANCE_HEAD.unpack_from(data, start + 4)
        if strict and mode > 2:
            return None
        return ImpedancesFrame(
            MODE_NAMES.get(mode, UNKNOWN_MODE),
            mode,
            _signed_current(deci_amps, mode),
            tuple([r / 10 for r in layout.unpack_from(data, start + 7)]),
        )

    return decode


def _build_table(strict: bool) -> dict[int, _Decoder]:
    """Every valid (CMD, L) pair, keyed ``CMD << 8 | L``, with its decoder."""
    table = {CMD_STATUS << 8 | n: _status_decoder(n, strict) for n in (13, 15, 19)}
    for n in range(1, MAX_SLOTS + 1):
        table[CMD_CELLS << 8 | (13 + 2 * n)] = _cells_decoder(n, True, strict)
        table[CMD_CELLS << 8 | (6 + 2 * n)] = _cells_decoder(n, False, strict)
        table[CMD_IMPEDANCES << 8 | (8 + 2 * n)] = _impedances_decoder(n, strict)
    return table


_DECODERS: Final = _build_table(strict=True)  # the framer's: rejects implausible content
_ANY_CONTENT: Final = _build_table(strict=False)  # decode_frame's: decodes whatever is there


def checksum(data: bytes | bytearray) -> int:
    """The frame checksum over ``data`` (everything but the checksum byte)."""
    return sum(data) & 0xFF


class FrameError(ValueError):
    """Raised by :func:`decode_frame` for bytes that are not one valid frame."""


def decode_frame(data: bytes | bytearray) -> Frame:
    """Decode exactly one complete frame (header to checksum), without plausibility checks.

    For one frame already cut out of a stream, e.g. a test vector. An unknown mode byte
    decodes as mode ``unknown``; streams go through :class:`Framer`, which also applies
    the plausibility rules.
    """
    if len(data) < 5 or data[:2] != HEADER:
        raise FrameError("not a frame: no $$ header")
    cmd, length = data[2], data[3]
    decoder = _ANY_CONTENT.get(cmd << 8 | length)
    if decoder is None:
        raise FrameError(f"not a frame: length {length} is not valid for command 0x{cmd:02X}")
    if len(data) != length:
        raise FrameError(f"frame says {length} bytes, got {len(data)}")
    if checksum(data[:-1]) != data[-1]:
        raise FrameError("checksum mismatch")
    frame = decoder(data, 0)
    assert frame is not None  # a lenient decoder always returns a frame
    return frame


class FramerStats(NamedTuple):
    """What a :class:`Framer` has seen so far (a snapshot)."""

    bytes_in: int
    bytes_skipped: int  # bytes that were not part of an accepted frame
    frames: int
    cells: int
    status: int
    impedances: int
    checksum_failures: int  # candidates with a valid header and length but a bad checksum
    implausible: int  # checksum-valid candidates whose content cannot come from a BMS

    @property
    def corrupted(self) -> int:
        """Frames that arrived damaged: a bad checksum, or content no BMS sends. The one
        count every command and the ``state`` document report."""
        return self.checksum_failures + self.implausible


class Framer:
    """A streaming frame reader: feed it bytes in chunks of any size, get frames out.

    It keeps at most one incomplete candidate frame between calls (``BUFFER_CAP``
    bytes), so garbage cannot make it grow. On any rejection it advances one byte and
    searches again, since a payload or checksum byte can be 0x24 and the 8-bit checksum
    collides in real data.
    """

    __slots__ = (
        "_base",
        "_buf",
        "_counts",
        "bytes_in",
        "bytes_skipped",
        "checksum_failures",
        "implausible",
    )

    def __init__(self) -> None:
        self._buf = bytearray()
        self._base = 0  # stream offset of _buf[0]
        self.bytes_in = 0
        self.bytes_skipped = 0
        self.checksum_failures = 0
        self.implausible = 0
        self._counts = {CMD_CELLS: 0, CMD_STATUS: 0, CMD_IMPEDANCES: 0}

    @property
    def corrupted(self) -> int:
        """See :attr:`FramerStats.corrupted`."""
        return self.checksum_failures + self.implausible

    @property
    def buffered(self) -> int:
        """Bytes held back, waiting for the rest of a candidate frame."""
        return len(self._buf)

    def stats(self) -> FramerStats:
        counts = self._counts
        return FramerStats(
            self.bytes_in,
            self.bytes_skipped,
            sum(counts.values()),
            counts[CMD_CELLS],
            counts[CMD_STATUS],
            counts[CMD_IMPEDANCES],
            self.checksum_failures,
            self.implausible,
        )

    def feed(self, data: bytes | bytearray) -> list[tuple[int, Frame]]:
        """Add bytes; return every frame completed by them as ``(stream offset, frame)``."""
        self.bytes_in += len(data)
        if self._buf:
            self._buf += data
        else:
            self._buf = bytearray(data)
        return self._scan(final=False)

    def flush(self) -> list[tuple[int, Frame]]:
        """End of input: nothing more will come, so an incomplete candidate is rejected
        and any frame held back behind it is returned. The framer is empty afterwards."""
        return self._scan(final=True)

    def _scan(self, final: bool) -> list[tuple[int, Frame]]:
        buf = self._buf
        out: list[tuple[int, Frame]] = []
        size = len(buf)
        decoders = _DECODERS
        counts = self._counts
        find = buf.find
        pos = 0  # first byte not yet consumed
        scan = 0  # where to look for the next header
        skipped = 0
        while True:
            start = find(HEADER, scan)
            if start < 0:
                # Keep a trailing "$": it may be the first half of a header.
                keep = max(pos, size - 1) if size and buf[-1] == 0x24 and not final else size
                skipped += keep - pos
                pos = keep
                break
            if start + 4 > size:
                if final:
                    skipped += size - pos
                    pos = size
                    break
                skipped += start - pos
                pos = start
                break
            cmd = buf[start + 2]
            length = buf[start + 3]
            decoder = decoders.get(cmd << 8 | length)
            if decoder is None:
                scan = start + 1
                continue
            end = start + length
            if end > size:
                if final:
                    scan = start + 1
                    continue
                # An incomplete candidate: wait for more bytes, keep everything from it.
                skipped += start - pos
                pos = start
                break
            if sum(buf[start : end - 1]) & 0xFF != buf[end - 1]:
                self.checksum_failures += 1
                scan = start + 1
                continue
            frame = decoder(buf, start)
            if frame is None:
                self.implausible += 1
                scan = start + 1
                continue
            skipped += start - pos
            out.append((self._base + start, frame))
            counts[cmd] += 1
            pos = scan = end
        self.bytes_skipped += skipped
        self._base += pos
        del buf[:pos]
        return out


def encode_frame(cmd: int, payload: bytes) -> bytes:
    """Wrap a payload in header, command, length and checksum (for the simulator/tests)."""
    body = HEADER + bytes((cmd, len(payload) + 5)) + payload
    return body + bytes((checksum(body),))


def encode_cells(
    millivolts: list[int] | tuple[int, ...],
    *,
    energy_mwh: int | None = None,
    capacity_mah: int | None = None,
    soc: int | None = None,
) -> bytes:
    """A 0x56 frame: V1.24+ layout when energy/capacity are given, else V1.22 with ``soc``."""
    cells = _cell_layout(len(millivolts)).pack(*millivolts)
    tail = _ENERGY.pack(energy_mwh or 0, capacity_mah or 0) if soc is None else bytes((soc,))
    return encode_frame(CMD_CELLS, cells + tail)


def encode_status(
    *,
    charge_end_mv: int,
    deci_amps: int,
    t1_deci: int,
    t2_deci: int,
    mode: int | None = None,
    soc: int | None = None,
    discharge_end_mv: int | None = None,
    charge_protection: bool = False,
    discharge_protection: bool = False,
) -> bytes:
    """A 0x57 frame: 13 bytes without ``mode``, 19 with ``discharge_end_mv``, else 15."""
    if mode is None:
        payload = _STATUS_13.pack(charge_end_mv, deci_amps, t1_deci, t2_deci)
    elif discharge_end_mv is None:
        payload = _STATUS_15.pack(charge_end_mv, mode, deci_amps, t1_deci, t2_deci, soc or 0)
    else:
        payload = _STATUS_19.pack(
            charge_end_mv,
            mode,
            deci_amps,
            t1_deci,
            t2_deci,
            soc or 0,
            discharge_end_mv,
            int(charge_protection),
            int(discharge_protection),
        )
    return encode_frame(CMD_STATUS, payload)


def encode_impedances(mode: int, deci_amps: int, deci_milliohms: list[int] | tuple[int, ...]) -> bytes:
    """A 0x58 frame."""
    payload = _IMPEDANCE_HEAD.pack(mode, deci_amps) + _impedance_layout(len(deci_milliohms)).pack(*deci_milliohms)
    return encode_frame(CMD_IMPEDANCES, payload)


def frame_fields(frame: Frame) -> dict[str, object]:
    """The frame as ``{"type": ..., field: value}`` with lists for sequences (JSON-ready)."""
    out: dict[str, object] = {"type": frame.type}
    for name, value in zip(frame._fields, frame, strict=True):
        out[name] = list(value) if type(value) is tuple else value
    return out
