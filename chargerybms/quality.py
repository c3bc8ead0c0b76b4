"""Link quality: frames per second and corrupted frames, over a window. Pure: the time is
passed in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

WINDOW: Final = 60.0  # seconds over which frames per second and corrupted frames are counted


@dataclass(frozen=True, slots=True)
class Window:
    """One finished window: its length, the frame rate, and the corrupted frames in it."""

    seconds: float
    frames_per_second: float
    corrupted: int


class LinkQuality:
    def __init__(self, window: float = WINDOW) -> None:
        self.window = window
        self.frames_per_second: float | None = None  # of the last whole window
        self._mark: tuple[float, int, int] | None = None  # (time, frames, corrupted) at its start

    def measure(self, now: float, frames: int, corrupted: int) -> Window | None:
        """The framer's running counts at ``now``; a :class:`Window` when one has just ended."""
        mark = self._mark
        if mark is None:
            self._mark = (now, frames, corrupted)
            return None
        elapsed = now - mark[0]
        if elapsed < self.window:
            return None
        self.frames_per_second = round((frames - mark[1]) / elapsed, 2)
        self._mark = (now, frames, corrupted)
        return Window(elapsed, self.frames_per_second, corrupted - mark[2])
