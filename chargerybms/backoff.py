"""Capped exponential backoff, the one rule for retrying the serial port and the broker."""

from __future__ import annotations


class Backoff:
    """``first``, then twice as long each time, never more than ``maximum`` seconds;
    :meth:`reset` after a success starts again from ``first``."""

    def __init__(self, first: float, maximum: float) -> None:
        if not 0 < first <= maximum:
            raise ValueError(f"backoff: need 0 < first <= maximum, got {first} and {maximum}")
        self.first = first
        self.maximum = maximum
        self._next = first

    def next(self) -> float:
        """The delay before the next try (and doubles the one after)."""
        delay = self._next
        self._next = min(delay * 2, self.maximum)
        return delay

    def peek(self) -> float:
        """The delay :meth:`next` would give, without using it up."""
        return self._next

    def reset(self) -> None:
        self._next = self.first
