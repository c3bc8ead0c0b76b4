"""``chargery.py decode`` as a user runs it: a subprocess, files and pipes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from helpers import chargery_cmd, load_vectors

STREAMS = {v["id"]: v for v in load_vectors("streams.json")}


def run(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(chargery_cmd("decode", *args), input=stdin, capture_output=True, timeout=60, check=False)


def test_raw_file_to_json_lines(tmp_path: Path) -> None:
    vector = STREAMS["vendor-v1.22-stream"]
    capture = tmp_path / "capture.bin"
    capture.write_bytes(bytes.fromhex(vector["hex"]))
    result = run(str(capture))
    assert result.returncode == 0
    lines = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert lines == vector["frames"]
    # Values at the protocol's resolution, never binary float noise.
    assert '"cell_voltages": [3.932, 3.948, 3.942, 0.0,' in result.stdout.decode()
    summary = result.stderr.decode().strip().splitlines()
    assert len(summary) == 1
    assert "36 frames (cells 8, status 28, impedances 0)" in summary[0]
    assert "bytes skipped" in summary[0] and "0 checksum failures" in summary[0]


def test_hex_from_stdin() -> None:
    vector = STREAMS["checksum-equals-header"]
    text = vector["hex"].lower().replace(" ", "\n").encode()
    result = run("--hex", "-", stdin=text)
    assert result.returncode == 0
    assert [json.loads(line) for line in result.stdout.splitlines()] == vector["frames"]


def test_missing_file_is_one_line_and_status_2(tmp_path: Path) -> None:
    result = run(str(tmp_path / "nope.bin"))
    assert result.returncode == 2
    assert result.stdout == b""
    err = result.stderr.decode()
    assert err.count("\n") == 1 and "nope.bin" in err and "No such file" in err and "Traceback" not in err


def test_directory_is_an_error(tmp_path: Path) -> None:
    result = run(str(tmp_path))
    assert result.returncode == 2 and "Traceback" not in result.stderr.decode()


def test_empty_input() -> None:
    result = run()
    assert result.returncode == 0
    assert result.stdout == b""
    assert "0 frames" in result.stderr.decode()


def test_hex_with_odd_length() -> None:
    result = run("--hex", stdin=b"24 24 5")
    assert result.returncode == 2
    err = result.stderr.decode()
    assert "odd number of digits" in err and err.count("\n") == 1


def test_hex_with_non_hex_characters() -> None:
    result = run("--hex", stdin=b"24 24 zz")
    assert result.returncode == 2 and "'z'" in result.stderr.decode()


def test_the_json_lines_are_exactly_what_the_json_module_writes() -> None:
    """decode writes its lines without the json module's encoder, for speed: same bytes."""
    import json

    from chargerybms.commands.decode import json_line
    from chargerybms.protocol import Framer, frame_fields
    from chargerybms.simulator import SimulatedBms

    frames = []
    for firmware in ("1.22", "1.25", "1.26"):
        framer = Framer()
        for chunk in SimulatedBms(24, firmware=firmware, cycle=16).seconds(40):
            frames += framer.feed(chunk)
    framer = Framer()
    for vector in load_vectors("frames.json"):
        frames += framer.feed(bytes.fromhex(vector["hex"]))
    assert len({type(f) for _, f in frames}) == 3
    for offset, frame in frames:
        expected = json.dumps({"offset": offset, **frame_fields(frame)}, separators=(", ", ": "))
        assert json_line(offset, frame) == expected


def test_hex_text_without_hex_suggests_hex(tmp_path: Path) -> None:
    """A capture pasted from a forum post as hex text, decoded as raw bytes: not just "0 frames"."""
    vector = load_vectors("frames.json")[0]
    capture = tmp_path / "capture.txt"
    capture.write_text(vector["hex"] + "\n")
    result = run(str(capture))
    assert result.returncode == 0 and result.stdout == b""
    err = result.stderr.decode()
    assert err.startswith("chargery decode: 0 frames") and err.count("\n") == 1
    assert err.rstrip().endswith("; the input is hex text, not raw bytes: decode it with --hex")
    assert run("--hex", str(capture)).stdout.count(b"\n") == 1  # and so it decodes


@pytest.mark.parametrize("raw", [b"", b"h::3\r\n", b"\x24\x24\x57\x00garbage"])
def test_no_hex_hint_for_what_is_not_hex_text(raw: bytes) -> None:
    err = run(stdin=raw).stderr.decode()
    assert "0 frames" in err and "--hex" not in err
