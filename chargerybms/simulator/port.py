"""The simulated BMS behind what looks like an open serial port."""

from __future__ import annotations

import time

from .bms import SimulatedBms


class SimulatedPort:
    """Looks like an open serial port to the reader: ``read()`` blocks until the next
    frame is due, then returns its bytes. ``speed`` > 1 runs the clock faster."""

    def __init__(self, bms: SimulatedBms, *, speed: float = 1.0) -> None:
        self._bms = bms
        self._speed = speed
        self._pending: list[bytes] = []
        self._start = time.monotonic()
        self._closed = False

    @property
    def bms(self) -> SimulatedBms:
        return self._bms

    def read(self, size: int = 4096, timeout: float = 1.0) -> bytes:
        if self._closed:
            return b""
        if not self._pending:
            due = self._start + self._bms.t / self._speed
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(min(delay, timeout))
                if due > time.monotonic():
                    return b""  # like a serial timeout: lets the caller check for stop
            self._pending = list(self._bms.seconds(1))
        return self._pending.pop(0)

    def close(self) -> None:
        self._closed = True
