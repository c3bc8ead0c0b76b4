"""The serial side: open the BMS port (a device path or any pyserial URL) and read bytes.

Thin on purpose: no decoding here. ``read`` blocks up to ``timeout`` seconds and returns
what arrived (possibly nothing); a port that does not open, or a vanished adapter, raises
:class:`PortError`. :class:`PortReader` owns the opening and reopening, so the daemon only
ever asks it for bytes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import time
from collections.abc import Callable
from typing import Any, Protocol

from .backoff import Backoff
from .logs import LOG, RateLimited

READ_TIMEOUT = 1.0
TAKE_READS = 16  # reads at most of a source read piece by piece, when a window closes
OPEN_BACKOFF_FIRST = 1.0  # seconds before the first retry of a port that did not open
OPEN_BACKOFF_MAX = 10.0  # ... and never longer than this between tries


class PortError(Exception):
    """The port cannot be used: it did not open, or it went away (unplugged, bridge closed).
    The message is the system's reason; ``errno`` its number, when the system gave one."""

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


class ByteSource(Protocol):
    def read(self, size: int = 4096, timeout: float = READ_TIMEOUT) -> bytes:
        """Wait up to ``timeout`` seconds for bytes; return what arrived (maybe nothing)."""

    def close(self) -> None: ...


class SerialPort:
    """A pyserial port, raw 115200 8N1, no flow control, opened for exclusive use."""

    def __init__(self, url: str, baud: int, timeout: float = READ_TIMEOUT) -> None:
        import serial  # the pyserial package

        self._serial_exception: type[Exception] = serial.SerialException
        self.url = url
        try:
            port: Any = serial.serial_for_url(
                url,
                baudrate=baud,
                bytesize=serial.EIGHTBITS,
                parity=serial.PARITY_NONE,
                stopbits=serial.STOPBITS_ONE,
                xonxoff=False,  # with XON/XOFF, 0x11/0x13 vanish from frames
                rtscts=False,
                dsrdtr=False,
                timeout=timeout,
                exclusive=True,
                do_not_open=True,
            )
            port.open()
        except (serial.SerialException, OSError, ValueError) as exc:
            # EAGAIN/EWOULDBLOCK: another process holds the port's exclusive lock.
            raise PortError(_reason(exc), exc.errno if isinstance(exc, OSError) else None) from None
        self._port = port
        # A local tty (pyserial has made it raw, VMIN=1): one select and one read per wakeup
        # instead of pyserial's Python read loop. URL ports keep pyserial's own read.
        self._fd: int | None = port.fileno() if isinstance(port, serial.Serial) and port.fd is not None else None
        # A network bridge (socket://): waited for with our own select on its socket, then
        # read without a timeout of its own (pyserial's in_waiting there is only 0 or 1), so
        # one read takes everything that has arrived. Its timeout is a local setting.
        self._socket_fd: int | None = None
        if self._fd is None and url.startswith("socket://"):
            port.timeout = 0
            self._socket_fd = port.fileno()

    def read(self, size: int = 4096, timeout: float = READ_TIMEOUT) -> bytes:
        """Block until at least one byte (or the timeout), then take what has arrived, up
        to ``size``: a frame is handled as soon as it is complete, never held back.
        URL ports keep the timeout they were opened with: changing it means a round trip
        to an RFC 2217 server."""
        if self._fd is not None:
            return self._read_fd(self._fd, size, timeout)
        try:
            port = self._port
            if self._socket_fd is not None:
                ready, _, _ = select.select((self._socket_fd,), (), (), timeout)
                return port.read(size) if ready else b""  # raises at the bridge's EOF
            waiting = port.in_waiting
            if not waiting and timeout <= 0:  # what has arrived, now: nothing
                return b""
            data: bytes = port.read(min(waiting, size) or 1)
            if data:
                more = min(port.in_waiting, size - len(data))
                if more > 0:
                    data += port.read(more)
        except (self._serial_exception, OSError, TypeError, AttributeError, ValueError) as exc:
            # TypeError/AttributeError: pyserial's socket handler after the peer vanished.
            raise PortError(_reason(exc)) from None
        return data

    def wait(self, timeout: float) -> bool | None:
        """Block until bytes are there to read (True) or the timeout (False), reading
        nothing; None for a port that cannot be watched without reading it."""
        fd = self._fd if self._fd is not None else self._socket_fd
        if fd is None:
            return None
        try:
            ready, _, _ = select.select((fd,), (), (), timeout)
        except (OSError, ValueError) as exc:
            raise PortError(_reason(exc)) from None
        return bool(ready)

    def _read_fd(self, fd: int, size: int, timeout: float) -> bytes:
        try:
            ready, _, _ = select.select((fd,), (), (), timeout)
            if not ready:
                return b""
            data = os.read(fd, size)
        except OSError as exc:  # EIO: the adapter was unplugged
            raise PortError(_reason(exc)) from None
        if not data:  # readable but empty: hung up
            raise PortError("device disconnected")
        return data

    def close(self) -> None:
        # Closing a dead port may fail in many ways; it is gone either way.
        with contextlib.suppress(Exception):
            self._port.close()


def _reason(exc: BaseException) -> str:
    """The system's words for what went wrong (``No such file or directory``, ``Permission
    denied``, ``No such device or address``...), not pyserial's sentence around them."""
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno)
    return str(exc) or type(exc).__name__


class PortReader:
    """A source of byte chunks that owns the port: opens it, reopens it after it went away
    (capped backoff), and says so in the log (each reason once, then rate-limited).

    ``open_port`` makes a :class:`ByteSource` or raises :class:`PortError`; ``wait(seconds)``
    is how it pauses between tries (the daemon's stop event, so a stop is not held up);
    ``clock`` is the monotonic clock. Nothing here raises: a read is bytes, possibly none.
    """

    def __init__(
        self,
        open_port: Callable[[], ByteSource],
        label: str,
        *,
        wait: Callable[[float], object] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._open_port = open_port
        self.label = label
        self._wait = wait
        self._clock = clock
        self._source: ByteSource | None = None
        self._backoff = Backoff(OPEN_BACKOFF_FIRST, OPEN_BACKOFF_MAX)
        self._next_open = clock()
        self._limited = RateLimited(clock=clock)

    @property
    def is_open(self) -> bool:
        return self._source is not None

    def read(self, timeout: float) -> bytes:
        """Wait up to ``timeout`` seconds for bytes (opening the port first if it is due)."""
        source = self._source
        if source is None:
            source = self._try_open(timeout)
            if source is None:
                return b""
        try:
            return source.read(4096, timeout)
        except PortError as exc:
            self._went_away(exc)
            return b""

    def wait(self, timeout: float) -> bool | None:
        """Wait up to ``timeout`` seconds for bytes without taking them: True when some
        are there, False after the timeout, None when the port is not open or cannot be
        watched without reading it (then :meth:`read` is the way to wait)."""
        wait = getattr(self._source, "wait", None)
        if wait is None:
            return None
        try:
            ready: bool | None = wait(timeout)
        except PortError as exc:
            self._went_away(exc)
            return False
        return ready

    def take(self) -> bytes:
        """Everything that has arrived, now, without waiting: one read of a watched port;
        other sources (the simulator, a bridge read through pyserial) until they have
        nothing, at most ``TAKE_READS`` reads (the rest opens the next window at once)."""
        data = self.read(0.0)
        if data and getattr(self._source, "wait", None) is None:
            for _ in range(TAKE_READS - 1):  # bounded: a source that never runs dry must not hold the loop
                more = self.read(0.0)
                if not more:
                    break
                data += more
        return data

    def _went_away(self, exc: PortError) -> None:
        LOG.warning("serial: %s went away (%s); waiting for it to come back", self.label, exc)
        self.close()
        self._backoff.reset()
        self._next_open = self._clock() + self._backoff.next()

    def _try_open(self, timeout: float) -> ByteSource | None:
        now = self._clock()
        if now < self._next_open:
            self._wait(min(self._next_open - now, timeout))
            return None
        try:
            self._source = self._open_port()
        except PortError as exc:
            # Keyed by the reason: a new one (the adapter is there now, but refuses) is news
            # at once, the same one again is rate-limited.
            self._limited.log(
                logging.WARNING,
                f"open:{exc}",
                "serial: cannot open %s: %s; retrying (every %.0f s at most)",
                self.label,
                exc,
                OPEN_BACKOFF_MAX,
            )
            self._next_open = now + self._backoff.next()
            return None
        self._limited.reset_all()
        self._backoff.reset()
        LOG.info("serial: opened %s", self.label)
        return self._source

    def close(self) -> None:
        if self._source is not None:
            self._source.close()
            self._source = None
