"""The serial side: open the BMS port (a device path or any pyserial URL) and read bytes.

Thin on purpose: no decoding here. ``read`` blocks up to ``timeout`` seconds and returns
what arrived (possibly nothing); a vanished adapter raises :class:`LinkLost`.
"""

from __future__ import annotations

import contextlib
import os
import select
from typing import Any, Protocol

READ_TIMEOUT = 1.0


class LinkLost(Exception):
    """The port cannot be opened or has gone away (unplugged, bridge closed)."""


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
            raise LinkLost(_reason(exc)) from None
        self._port = port
        # A local tty (pyserial has made it raw, VMIN=1): one select and one read per wakeup
        # instead of pyserial's Python read loop. URL ports keep pyserial's own read.
        self._fd: int | None = port.fileno() if isinstance(port, serial.Serial) and port.fd is not None else None

    def read(self, size: int = 4096, timeout: float = READ_TIMEOUT) -> bytes:
        """Block until at least one byte (or the timeout), then take what has arrived, up
        to ``size``: a frame is handled as soon as it is complete, never held back.
        URL ports keep the timeout they were opened with: changing it means a round trip
        to an RFC 2217 server."""
        if self._fd is not None:
            return self._read_fd(self._fd, size, timeout)
        try:
            port = self._port
            data: bytes = port.read(min(port.in_waiting, size) or 1)
            if data:
                more = min(port.in_waiting, size - len(data))
                if more > 0:
                    data += port.read(more)
        except (self._serial_exception, OSError, TypeError, AttributeError) as exc:
            # TypeError/AttributeError: pyserial's socket handler after the peer vanished.
            raise LinkLost(_reason(exc)) from None
        return data

    def _read_fd(self, fd: int, size: int, timeout: float) -> bytes:
        try:
            ready, _, _ = select.select((fd,), (), (), timeout)
            if not ready:
                return b""
            data = os.read(fd, size)
        except OSError as exc:  # EIO: the adapter was unplugged
            raise LinkLost(_reason(exc)) from None
        if not data:  # readable but empty: hung up
            raise LinkLost("device disconnected")
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
