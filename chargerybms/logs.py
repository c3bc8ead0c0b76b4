"""Logging: stderr for journald (which adds timestamps), an optional file, and a rate
limiter so that a noisy line or a dead broker cannot flood the journal."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import TextIO

LOG = logging.getLogger("chargery")
# --log-file is rotated at this size, keeping this many old files: at most 4 MiB on the SD
# card, whatever happens (a noisy line, -d left on).
LOG_FILE_MAX_BYTES = 1 << 20
LOG_FILE_BACKUPS = 3


def setup(
    debug: bool,
    log_file: str | None = None,
    *,
    stream: TextIO | None = None,
    level: int | None = None,
    timestamps: bool = False,
) -> None:
    """Log to ``stream`` (stderr), at ``level`` (DEBUG with ``debug``, else INFO), each line
    stamped with the time if ``timestamps`` (journald stamps them itself; a container's
    log does not)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    console = logging.StreamHandler(stream or sys.stderr)
    console.setFormatter(logging.Formatter(("%(asctime)s " if timestamps else "") + "%(levelname)s %(message)s"))
    root.addHandler(console)
    if log_file:
        from logging.handlers import RotatingFileHandler  # only with a log file: it brings pickle along

        handler = RotatingFileHandler(
            log_file, maxBytes=LOG_FILE_MAX_BYTES, backupCount=LOG_FILE_BACKUPS, encoding="utf-8"
        )
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.INFO if level is None else level)
    # paho and pyserial stay quiet unless we are debugging.
    logging.getLogger("paho").setLevel(logging.DEBUG if debug else logging.WARNING)


class RateLimited:
    """Log one message per key at most every ``interval`` seconds; say how many were held back.

    The first occurrence is always logged at once; later ones within the interval are
    counted, and the next one that gets through says ``(N more since)``.
    """

    def __init__(self, interval: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def log(self, level: int, key: str, message: str, *args: object) -> bool:
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._held[key] = self._held.get(key, 0) + 1
            return False
        held = self._held.pop(key, 0)
        if held:
            message += f" ({held} more like this since the last report)"
        self._last[key] = now
        LOG.log(level, message, *args)
        return True

    def reset_all(self) -> None:
        """Everything is fine again: every next failure is news."""
        self._last.clear()
        self._held.clear()

    def reset(self, key: str) -> None:
        """The condition is over: the next occurrence is news again."""
        self._last.pop(key, None)
        self._held.pop(key, None)
