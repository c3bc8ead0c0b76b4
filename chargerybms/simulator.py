"""A simulated Chargery BMS: real frames at the documented cadence, no hardware.

Used by ``--demo``, the tests and the benchmarks. It produces bytes, never decoded values,
so everything downstream goes through the same framer and decoders as a real port.

The pack cycles through charge, storage, discharge and storage. Cell voltages follow a
LiFePO4 open-circuit curve plus I*R, a fixed per-cell spread and a little noise; the
temperatures swing around zero so negative values are exercised; unwired slots carry the
0-30 mV junk real units send.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Iterator
from typing import Final

from .protocol import SPACER, encode_cells, encode_impedances, encode_status

FIRMWARES: Final = ("1.22", "1.25", "1.26")
MODELS: Final = (8, 16, 24)

# (soc %, open-circuit mV) for a LiFePO4 cell.
_OCV: Final = (
    (0, 2900),
    (5, 3150),
    (10, 3220),
    (20, 3260),
    (40, 3290),
    (60, 3305),
    (80, 3330),
    (95, 3380),
    (100, 3500),
)


def _ocv(soc: float) -> float:
    for (s0, v0), (s1, v1) in itertools.pairwise(_OCV):
        if soc <= s1:
            return v0 + (v1 - v0) * (soc - s0) / (s1 - s0)
    return _OCV[-1][1]


class SimulatedBms:
    """Frames of one simulated pack, second by second.

    ``slots`` is the model (8/16/24 cell slots sent), ``cells`` how many are wired,
    ``firmware`` the frame layout generation, ``cycle`` the length in seconds of one
    charge/storage/discharge/storage cycle.
    """

    def __init__(
        self,
        slots: int = 16,
        *,
        cells: int | None = None,
        firmware: str = "1.26",
        capacity_ah: float = 280.0,
        cycle: int = 240,
        seed: int = 1,
        spacer: bool = True,
    ) -> None:
        if slots not in MODELS:
            raise ValueError(f"slots must be one of {MODELS}, not {slots}")
        if firmware not in FIRMWARES:
            raise ValueError(f"firmware must be one of {FIRMWARES}, not {firmware!r}")
        self.slots = slots
        self.cells = slots if cells is None else max(1, min(cells, slots))
        self.firmware = firmware
        self.capacity_ah = capacity_ah
        self.cycle = max(8, cycle)
        self.spacer = spacer
        self._rng = random.Random(seed)
        self._spread = [self._rng.randint(-12, 12) for _ in range(self.slots)]
        self._junk = [self._rng.randint(0, 30) for _ in range(self.slots)]
        self._resistance = [0.25 + self._rng.random() * 0.2 for _ in range(self.slots)]  # mOhm
        self._last_direction: int | None = None
        self.t = 0

    # --- the pack's state as a function of time ---------------------------------

    def _phase(self, t: int) -> tuple[int, float, float]:
        """(mode byte, signed current A, SOC %) at second ``t``."""
        quarter = self.cycle / 4
        pos = t % self.cycle
        low, high = 25.0, 95.0
        if pos < quarter:  # charge
            return 1, 40.0 + 2 * (pos % 3), low + (high - low) * pos / quarter
        if pos < 2 * quarter:  # storage at the top
            return 2, 0.0, high
        if pos < 3 * quarter:  # discharge
            x = pos - 2 * quarter
            return 0, -(30.0 + 3 * (pos % 4)), high - (high - low) * x / quarter
        return 2, 0.0, low

    def _cell_millivolts(self, soc: float, amps: float) -> list[int]:
        rng = self._rng
        base = _ocv(soc)
        out = []
        for i in range(self.slots):
            if i >= self.cells:
                out.append(self._junk[i] + rng.randint(0, 3))
                continue
            mv = base + self._spread[i] + amps * self._resistance[i] * 0.1 + rng.randint(-2, 2)
            out.append(max(0, min(4999, round(mv))))
        return out

    def _temperatures(self, t: int, amps: float) -> tuple[int, int]:
        # A slow swing from -8 to +12 degC, the pack warming a little under current.
        swing = ((t // 6) % 40) - 20  # -20 .. 19, as tenths of 0.5 degC steps
        t1 = 20 + swing * 5 + round(abs(amps) / 4)
        return t1, t1 - 7

    # --- frames --------------------------------------------------------------------

    def frames_at(self, t: int) -> list[bytes]:
        """Every frame the BMS sends during second ``t``: status every second, cells every
        two, impedances when the current changes direction."""
        mode, amps, soc = self._phase(t)
        out = [self._status(t, mode, amps, soc)]
        if t % 2 == 0:
            out.append(self._cells(amps, soc))
        direction = mode if mode != 2 else None
        if self.firmware != "1.22" and direction is not None and direction != self._last_direction:
            out.append(self._impedances(mode, amps))
        if direction is not None:
            self._last_direction = direction
        return out

    def _status(self, t: int, mode: int, amps: float, soc: float) -> bytes:
        t1, t2 = self._temperatures(t, amps)
        return encode_status(
            charge_end_mv=3650,
            mode=mode,
            deci_amps=round(abs(amps) * 10),
            t1_deci=t1,
            t2_deci=t2,
            soc=round(soc),
            discharge_end_mv=2800 if self.firmware == "1.26" else None,
            charge_protection=soc >= 100,
            discharge_protection=soc <= 0,
        )

    def _cells(self, amps: float, soc: float) -> bytes:
        mv = self._cell_millivolts(soc, amps)
        if self.firmware == "1.22":
            return encode_cells(mv, soc=round(soc))
        wired_v = sum(mv[: self.cells]) / 1000
        ah = self.capacity_ah * soc / 100
        return encode_cells(mv, energy_mwh=round(ah * wired_v * 1000), capacity_mah=round(ah * 1000))

    def _impedances(self, mode: int, amps: float) -> bytes:
        rng = self._rng
        values = [round(self._resistance[i] * 10) + rng.randint(0, 1) for i in range(self.cells)]
        return encode_impedances(mode, round(abs(amps) * 10), values)

    def seconds(self, count: int) -> Iterator[bytes]:
        """The byte stream of ``count`` consecutive seconds, one chunk per frame."""
        for _ in range(count):
            for frame in self.frames_at(self.t):
                yield frame
                if self.spacer:
                    yield SPACER
            self.t += 1


class SimulatedPort:
    """Looks like an open serial port to the reader: ``read()`` blocks until the next
    frame is due, then returns its bytes. ``speed`` > 1 runs the clock faster."""

    def __init__(self, bms: SimulatedBms, *, speed: float = 1.0) -> None:
        self._bms = bms
        self._speed = speed
        self._pending: list[bytes] = []
        self._start = time.monotonic()
        self._closed = False

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
