"""The serial source: opening, backoff, reopening (fake clock and fake port, milliseconds),
and the real thing against a pseudo-terminal."""

from __future__ import annotations

import fcntl
import logging
import os
import pty
import struct
import termios
import tty
from pathlib import Path

import pytest
from helpers import FakeClock, wait_until

from chargerybms.backoff import Backoff
from chargerybms.serial_link import (
    OPEN_BACKOFF_FIRST,
    OPEN_BACKOFF_MAX,
    TAKE_READS,
    PortError,
    PortReader,
    SerialPort,
)


class FakePort:
    def __init__(self, chunks: list[bytes | Exception]) -> None:
        self.chunks = chunks
        self.closed = False

    def read(self, size: int = 4096, timeout: float = 1.0) -> bytes:
        item = self.chunks.pop(0) if self.chunks else b""
        if isinstance(item, Exception):
            raise item
        return item

    def close(self) -> None:
        self.closed = True


class Opener:
    """Fails with the queued reasons, then hands out the queued ports."""

    def __init__(self, outcomes: list[FakePort | str]) -> None:
        self.outcomes = outcomes
        self.tries: list[float] = []
        self.clock: FakeClock | None = None

    def __call__(self) -> FakePort:
        assert self.clock is not None
        self.tries.append(self.clock.now)
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, str):
            raise PortError(outcome)
        return outcome


def reader(outcomes: list[FakePort | str]) -> tuple[PortReader, Opener, FakeClock]:
    clock = FakeClock()
    opener = Opener(outcomes)
    opener.clock = clock
    return PortReader(opener, "/dev/ttyBMS", wait=clock.wait, clock=clock), opener, clock


def test_backoff_doubles_up_to_its_cap_and_resets() -> None:
    b = Backoff(1.0, 10.0)
    assert [b.next() for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    b.reset()
    assert b.peek() == 1.0 and b.next() == 1.0
    with pytest.raises(ValueError):
        Backoff(0, 1)


def test_a_port_that_does_not_open_is_retried_with_capped_backoff(caplog: pytest.LogCaptureFixture) -> None:
    r, opener, clock = reader(["No such file or directory"] * 8 + [FakePort([b"$$"])])
    with caplog.at_level(logging.INFO, logger="chargery"):
        data = b""
        while not data:
            data = r.read(timeout=1.0)
    assert data == b"$$" and r.is_open
    gaps = [round(b - a, 3) for a, b in zip(opener.tries, opener.tries[1:], strict=False)]
    # Never more than the read timeout at a time (a stop is not held up), so the gaps are
    # the backoff rounded up to whole waits: 1, 2, 4, 8, then the cap.
    assert gaps == [
        OPEN_BACKOFF_FIRST,
        2.0,
        4.0,
        8.0,
        OPEN_BACKOFF_MAX,
        OPEN_BACKOFF_MAX,
        OPEN_BACKOFF_MAX,
        OPEN_BACKOFF_MAX,
    ]
    assert max(clock.waits) <= 1.0
    cannot = [r.getMessage() for r in caplog.records if "cannot open" in r.getMessage()]
    assert cannot == ["serial: cannot open /dev/ttyBMS: No such file or directory; retrying (every 10 s at most)"]
    assert "serial: opened /dev/ttyBMS" in caplog.text


def test_a_new_reason_is_news_at_once(caplog: pytest.LogCaptureFixture) -> None:
    r, _, _ = reader(["No such file or directory", "No such file or directory", "Permission denied", FakePort([])])
    with caplog.at_level(logging.WARNING, logger="chargery"):
        for _ in range(20):
            r.read(timeout=1.0)
    reasons = [
        rec.getMessage().split(": ")[2].split(";")[0] for rec in caplog.records if "cannot open" in rec.getMessage()
    ]
    assert reasons == ["No such file or directory", "Permission denied"]


def test_a_port_that_goes_away_is_closed_and_reopened_after_a_second(caplog: pytest.LogCaptureFixture) -> None:
    first = FakePort([b"a", PortError("device disconnected")])
    second = FakePort([b"b"])
    r, opener, clock = reader([first, second])
    with caplog.at_level(logging.INFO, logger="chargery"):
        assert r.read(1.0) == b"a"
        gone_at = clock.now
        assert r.read(1.0) == b""  # went away: nothing raised, nothing read
        assert first.closed and not r.is_open
        got = b""
        while not got:
            got = r.read(1.0)
    assert got == b"b"
    assert opener.tries[-1] - gone_at == pytest.approx(OPEN_BACKOFF_FIRST)
    assert "serial: /dev/ttyBMS went away (device disconnected); waiting for it to come back" in caplog.text


def test_close_closes_the_open_port() -> None:
    port = FakePort([b"x"])
    r, _, _ = reader([port])
    r.read(1.0)
    r.close()
    assert port.closed and not r.is_open


# --- the real serial port, against a pseudo-terminal --------------------------------------


def test_serial_port_reads_a_pseudo_terminal_and_reports_a_hang_up(tmp_path: Path) -> None:
    master, slave = os.openpty()
    tty.setraw(slave)
    link = tmp_path / "ttyBMS"
    link.symlink_to(os.ttyname(slave))
    port = SerialPort(str(link), 115200)
    try:
        assert port.read(4096, 0.05) == b""  # nothing yet: the timeout, not an error
        os.write(master, b"$$W\x13")
        assert port.read(4096, 1.0) == b"$$W\x13"
        os.close(master)  # the other end hangs up, as an unplugged adapter does
        with pytest.raises(PortError):
            for _ in range(5):
                port.read(4096, 0.2)
    finally:
        port.close()
        os.close(slave)


def test_serial_port_says_why_it_cannot_open(tmp_path: Path) -> None:
    with pytest.raises(PortError, match="No such file or directory"):
        SerialPort(str(tmp_path / "ttyUSB7"), 115200)


def test_a_watched_port_is_waited_on_without_reading_and_then_taken_whole(tmp_path: Path) -> None:
    """What the daemon does with a burst: wait for its first bytes without taking them,
    then take every piece that arrived meanwhile in one read."""
    master, slave = pty.openpty()
    tty.setraw(slave)
    link = tmp_path / "ttyBMS"
    link.symlink_to(os.ttyname(slave))
    reader = PortReader(lambda: SerialPort(str(link), 115200), str(link))

    def waiting() -> int:
        return int(struct.unpack("i", fcntl.ioctl(slave, termios.FIONREAD, b"\0\0\0\0"))[0])

    try:
        assert reader.wait(0.0) is None  # not open yet: read() is the way to wait (and open)
        assert reader.read(0.0) == b""
        assert reader.wait(0.05) is False
        os.write(master, b"a" * 62)  # the first piece of a burst
        assert reader.wait(1.0) is True
        assert reader.wait(0.0) is True  # still there: waiting took nothing
        os.write(master, b"b" * 62)  # the next piece, while the reader leaves the port alone
        wait_until(lambda: waiting() == 124, 5, "both pieces in the terminal's buffer")
        assert reader.take() == b"a" * 62 + b"b" * 62
        assert reader.take() == b""
    finally:
        reader.close()
        os.close(master)
        os.close(slave)


def test_a_source_read_piece_by_piece_is_taken_until_dry_but_never_forever() -> None:
    r, _, _ = reader([FakePort([b"a", b"b", b"c", b"", b"d"])])
    assert r.take() == b"abc"  # the simulator or a bridge: until it has nothing now
    assert r.take() == b"d"
    never_dry, _, _ = reader([FakePort([b"x"] * 100)])
    assert never_dry.take() == b"x" * TAKE_READS  # gives the loop back
