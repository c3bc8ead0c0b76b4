"""The decoder against real vectors, named edge cases and property-based streams."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from helpers import as_dicts, load_vectors
from hypothesis import given, settings
from hypothesis import strategies as st

from chargerybms.protocol import (
    BUFFER_CAP,
    CMD_CELLS,
    CMD_STATUS,
    CellsFrame,
    FrameError,
    Framer,
    ImpedancesFrame,
    StatusFrame,
    checksum,
    decode_frame,
    encode_cells,
    encode_frame,
    encode_impedances,
    encode_status,
)

FRAME_VECTORS = load_vectors("frames.json")
STREAM_VECTORS = load_vectors("streams.json")


def feed_all(chunks: list[bytes]) -> tuple[Framer, list[tuple[int, Any]]]:
    framer = Framer()
    out = []
    for chunk in chunks:
        out += framer.feed(chunk)
        assert framer.buffered <= BUFFER_CAP
    return framer, out


def splits(data: bytes) -> list[tuple[str, list[bytes]]]:
    ways = [("whole", [data]), ("byte by byte", [data[i : i + 1] for i in range(len(data))])]
    ways += [(f"split at {i}", [data[:i], data[i:]]) for i in range(1, len(data))]
    return ways


# --- the shared vectors -----------------------------------------------------------------


ALL_VECTORS = [(v, False) for v in FRAME_VECTORS] + [(v, True) for v in STREAM_VECTORS]


@pytest.mark.parametrize(("vector", "with_offset"), ALL_VECTORS, ids=[v["id"] for v, _ in ALL_VECTORS])
def test_vectors_whole_byte_by_byte_and_split_everywhere(vector: dict[str, Any], with_offset: bool) -> None:
    """frames.json entries carry no offsets; streams.json entries do, and must match too."""
    data = bytes.fromhex(vector["hex"])
    for how, chunks in splits(data):
        _, out = feed_all(chunks)
        assert as_dicts(out, with_offset=with_offset) == vector["frames"], how


@pytest.mark.parametrize("vector", FRAME_VECTORS, ids=[v["id"] for v in FRAME_VECTORS])
def test_decode_frame_agrees_with_framer(vector: dict[str, Any]) -> None:
    data = bytes.fromhex(vector["hex"])
    if not vector["frames"]:
        with pytest.raises(FrameError):
            decode_frame(data)
        return
    assert as_dicts([(0, decode_frame(data))], with_offset=False) == vector["frames"]


# --- named cases --------------------------------------------------------------------------


def test_negative_temperatures_are_signed() -> None:
    frame = decode_frame(encode_status(charge_end_mv=3650, mode=2, deci_amps=0, t1_deci=-223, t2_deci=-5, soc=50))
    assert isinstance(frame, StatusFrame)
    assert (frame.temperature_1, frame.temperature_2) == (-22.3, -0.5)
    raw = bytes.fromhex("24 24 57 0F 0E 24 01 00 E6 FF 21 FF FF 5B")
    raw += bytes((checksum(raw),))
    frame = decode_frame(raw)
    assert isinstance(frame, StatusFrame)
    assert (frame.temperature_1, frame.temperature_2) == (-22.3, -0.1)


def test_discharge_current_is_negative_and_zero_is_not_minus_zero() -> None:
    discharging = decode_frame(encode_status(charge_end_mv=3650, mode=0, deci_amps=123, t1_deci=0, t2_deci=0, soc=1))
    idle = decode_frame(encode_status(charge_end_mv=3650, mode=0, deci_amps=0, t1_deci=0, t2_deci=0, soc=1))
    assert isinstance(discharging, StatusFrame) and isinstance(idle, StatusFrame)
    assert discharging.current == -12.3
    assert str(idle.current) == "0.0"


def test_unknown_mode_byte_is_unknown_and_never_crashes() -> None:
    odd = encode_status(charge_end_mv=3650, mode=7, deci_amps=10, t1_deci=200, t2_deci=200, soc=50)
    frame = decode_frame(odd)
    assert isinstance(frame, StatusFrame)
    assert (frame.mode, frame.mode_code, frame.current) == ("unknown", 7, 1.0)
    impedances = decode_frame(encode_impedances(9, 5, [3, 4]))
    assert isinstance(impedances, ImpedancesFrame) and impedances.mode == "unknown"
    # In a stream the framer applies the plausibility rule (mode <= 2): the odd frame is
    # counted and dropped, the next one decodes.
    good = encode_status(charge_end_mv=3650, mode=1, deci_amps=10, t1_deci=200, t2_deci=200, soc=50)
    framer, out = feed_all([odd + good])
    assert [offset for offset, _ in out] == [len(odd)]
    assert framer.implausible == 1


def test_flipped_length_byte_loses_only_that_frame() -> None:
    first = bytearray(encode_status(charge_end_mv=3650, mode=1, deci_amps=10, t1_deci=1, t2_deci=2, soc=50))
    first[3] = 0x13  # 19: a valid status length, so the framer waits and then rejects it
    second = encode_cells([3300] * 16, energy_mwh=1000, capacity_mah=2000)
    third = encode_status(charge_end_mv=3650, mode=1, deci_amps=11, t1_deci=1, t2_deci=2, soc=50)
    framer, out = feed_all([bytes(first), second, third])
    assert [type(f) for _, f in out] == [CellsFrame, StatusFrame]
    assert [o for o, _ in out] == [15, 15 + len(second)]
    assert framer.checksum_failures == 1


def test_truncated_frame_immediately_followed_by_good_one() -> None:
    good = encode_cells([3300 + i for i in range(16)], energy_mwh=5, capacity_mah=6)
    status = encode_status(charge_end_mv=3650, mode=0, deci_amps=5, t1_deci=1, t2_deci=2, soc=9)
    data = good[:6] + good + status  # the capture shows a cell frame cut after 6 bytes
    for how, chunks in splits(data):
        _, out = feed_all(chunks)
        assert [(o, type(f)) for o, f in out] == [(6, CellsFrame), (6 + len(good), StatusFrame)], how


def test_checksum_collision_is_caught_by_plausibility() -> None:
    """A truncated frame whose following bytes happen to pass the 8-bit checksum."""
    good = encode_cells([3310] * 16, energy_mwh=1, capacity_mah=2)
    head = bytearray(b"$$" + bytes((CMD_CELLS, 45)) + b"\xff\xff\x00")  # first "cell" 65.535 V
    window = head + good
    # Choose the filler byte so that the 45-byte candidate's checksum matches.
    window[6] = (window[44] - sum(window[:44]) + window[6]) & 0xFF
    assert checksum(window[:44]) == window[44]
    framer, out = feed_all([bytes(window)])
    assert framer.implausible == 1
    assert [(o, f) for o, f in out] == [(len(head), decode_frame(good))]


def test_checksum_byte_0x24_right_before_a_header() -> None:
    status = bytes.fromhex("24 24 57 0F 0E 24 01 00 E1 00 83 00 84 5B 24")
    assert status[-1] == 0x24
    cells = encode_cells([3300] * 8, energy_mwh=1, capacity_mah=1)
    for how, chunks in splits(status + cells + status):
        _, out = feed_all(chunks)
        assert [o for o, _ in out] == [0, 15, 15 + len(cells)], how


@pytest.mark.parametrize("slots", [8, 16, 24])
def test_cell_frames_of_both_generations(slots: int) -> None:
    mv = [3000 + 7 * i for i in range(slots)]
    new = encode_cells(mv, energy_mwh=47578742, capacity_mah=922723)
    old = encode_cells(mv, soc=87)
    assert (len(new), len(old)) == (13 + 2 * slots, 6 + 2 * slots)
    assert len(new) % 2 == 1 and len(old) % 2 == 0
    _, out = feed_all([new, old])
    assert [f for _, f in out] == [
        CellsFrame(tuple(v / 1000 for v in mv), 47578.742, 922.723, None),
        CellsFrame(tuple(v / 1000 for v in mv), None, None, 87),
    ]


def test_every_slot_count_decodes() -> None:
    for n in range(1, 25):
        for frame in (encode_cells([3333] * n, energy_mwh=1, capacity_mah=1), encode_cells([3333] * n, soc=5)):
            _, out = feed_all([frame])
            assert len(out) == 1 and len(out[0][1].cell_voltages) == n


@pytest.mark.parametrize(
    ("length", "expected"),
    [
        (13, StatusFrame(3.65, None, None, 12.3, -1.5, 20.0, None, None, None, None)),
        (15, StatusFrame(3.65, "discharge", 0, -12.3, -1.5, 20.0, 55, None, None, None)),
        (19, StatusFrame(3.65, "discharge", 0, -12.3, -1.5, 20.0, 55, 2.8, True, False)),
    ],
)
def test_status_frames_of_13_15_19_bytes(length: int, expected: StatusFrame) -> None:
    common: dict[str, Any] = {"charge_end_mv": 3650, "deci_amps": 123, "t1_deci": -15, "t2_deci": 200}
    if length == 13:
        frame = encode_status(**common)
    elif length == 15:
        frame = encode_status(**common, mode=0, soc=55)
    else:
        frame = encode_status(**common, mode=0, soc=55, discharge_end_mv=2800, charge_protection=True)
    assert len(frame) == length
    _, out = feed_all([frame])
    assert [f for _, f in out] == [expected]


def test_implausible_content_is_rejected() -> None:
    too_high = encode_cells([3300, 5001], energy_mwh=1, capacity_mah=1)
    bad_soc = encode_status(charge_end_mv=3650, mode=1, deci_amps=0, t1_deci=0, t2_deci=0, soc=101)
    framer, out = feed_all([too_high, bad_soc])
    assert out == [] and framer.implausible == 2


def test_lengths_that_do_not_exist_are_not_frames() -> None:
    for cmd, length in [(CMD_STATUS, 14), (CMD_STATUS, 17), (CMD_CELLS, 7), (CMD_CELLS, 63), (0x58, 9), (0x59, 15)]:
        payload = bytes(length - 5)
        _framer, out = feed_all([encode_frame(cmd, payload)])
        assert out == [], (cmd, length)


def test_spacer_text_and_garbage_count_as_skipped() -> None:
    status = encode_status(charge_end_mv=3650, mode=1, deci_amps=0, t1_deci=0, t2_deci=0, soc=1)
    framer, out = feed_all([b"h::3\r\n", status, b"\x00\xff garbage", status])
    assert len(out) == 2
    stats = framer.stats()
    assert (stats.frames, stats.status, stats.bytes_skipped, stats.bytes_in) == (2, 2, 6 + 10, 6 + 10 + 30)


def test_flush_returns_frames_held_behind_an_incomplete_candidate() -> None:
    status = encode_status(charge_end_mv=3650, mode=1, deci_amps=0, t1_deci=0, t2_deci=0, soc=1)
    framer = Framer()
    assert framer.feed(b"$$\x56\x3d" + status) == []  # waits: the candidate says 61 bytes
    assert [o for o, _ in framer.flush()] == [4]
    assert framer.buffered == 0


def test_buffer_stays_capped_on_endless_incomplete_headers() -> None:
    framer = Framer()
    for _ in range(1000):
        framer.feed(b"$$\x56\x3d\x00\x01")
        assert framer.buffered <= BUFFER_CAP


def test_frames_are_immutable() -> None:
    frame = decode_frame(encode_cells([3300] * 8, soc=5))
    with pytest.raises(AttributeError):
        frame.soc = 6  # type: ignore[misc]


# --- properties ---------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=40))
def test_arbitrary_bytes_never_raise_and_never_grow_the_buffer(chunks: list[bytes]) -> None:
    framer, out = feed_all(chunks)
    out += framer.flush()
    stats = framer.stats()
    assert stats.bytes_in == sum(map(len, chunks))
    assert framer.buffered == 0


millivolts = st.integers(0, 5000)


@st.composite
def valid_frames(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["cells-new", "cells-old", "s13", "s15", "s19", "imp"]))
    n = draw(st.integers(1, 24))
    if kind == "cells-new":
        return encode_cells(
            draw(st.lists(millivolts, min_size=n, max_size=n)),
            energy_mwh=draw(st.integers(0, 2**32 - 1)),
            capacity_mah=draw(st.integers(0, 2**32 - 1)),
        )
    if kind == "cells-old":
        return encode_cells(draw(st.lists(millivolts, min_size=n, max_size=n)), soc=draw(st.integers(0, 100)))
    if kind == "imp":
        return encode_impedances(
            draw(st.integers(0, 2)),
            draw(st.integers(0, 65535)),
            draw(st.lists(st.integers(0, 65535), min_size=n, max_size=n)),
        )
    common = {
        "charge_end_mv": draw(millivolts),
        "deci_amps": draw(st.integers(0, 65535)),
        "t1_deci": draw(st.integers(-32768, 32767)),
        "t2_deci": draw(st.integers(-32768, 32767)),
    }
    if kind == "s13":
        return encode_status(**common)
    extra: dict[str, Any] = {"mode": draw(st.integers(0, 2)), "soc": draw(st.integers(0, 100))}
    if kind == "s19":
        extra["discharge_end_mv"] = draw(millivolts)
        extra["charge_protection"] = draw(st.booleans())
        extra["discharge_protection"] = draw(st.booleans())
    return encode_status(**common, **extra)


# Noise without 0x24: a "$$" in noise may legitimately start a candidate that hides a
# following frame until more bytes come (covered by the named cases above).
noise = st.binary(max_size=30).map(lambda b: b.replace(b"$", b"#"))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(noise, valid_frames()), min_size=1, max_size=12), noise, st.data())
def test_valid_frames_in_noise_are_all_recovered(
    pieces: list[tuple[bytes, bytes]], tail: bytes, data: st.DataObject
) -> None:
    stream = b""
    expected = []
    for junk, frame in pieces:
        stream += junk
        expected.append((len(stream), decode_frame(frame)))
        stream += frame
    stream += tail
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    framer, out = feed_all(chunks)
    out += framer.flush()
    assert out == expected


def test_struct_layouts_are_big_endian_where_the_protocol_says() -> None:
    frame = decode_frame(encode_cells([0x0D04], energy_mwh=0x01020304, capacity_mah=0))
    assert isinstance(frame, CellsFrame)
    assert frame.cell_voltages == (3.332,)
    assert frame.energy_wh == struct.unpack("<I", bytes((4, 3, 2, 1)))[0] / 1000
