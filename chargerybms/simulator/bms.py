"""The simulated BMS as a whole: one pack, its load, the BMS watching it and the frames it
sends, second by second (see the package's description)."""

from __future__ import annotations

import random
from collections.abc import Iterator

from ..protocol import MODELS, SPACER
from .encoder import Encoder
from .faults import Fault, parse_fault
from .load import START_SOC, Load, Phase
from .pack import Pack
from .protection import Protection


class SimulatedBms:
    """Frames of one simulated pack, second by second.

    ``slots`` is the model (8/16/24 cell slots sent), ``cells`` how many are wired,
    ``firmware`` the frame layout generation, ``capacity_ah`` the nominal capacity of a
    cell, ``cycle`` the length in seconds of one charge/rest/discharge/rest cycle of a
    healthy pack (a little longer where the knees slow the clock), ``seed`` the pack's cell
    variation, load pattern and noise, ``fault`` a planted fault (or its text).
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
        fault: Fault | str | None = None,
        resistance_mohm: float = 0.3,
    ) -> None:
        if slots not in MODELS:
            raise ValueError(f"slots must be one of {MODELS}, not {slots}")
        self.slots = slots
        self.cells = slots if cells is None else max(1, min(cells, slots))
        self.encoder = Encoder(firmware, self.cells)
        self.firmware = firmware
        self.capacity_ah = capacity_ah
        self.cycle = max(8, cycle)
        self.spacer = spacer
        self.fault = parse_fault(fault, self.cells) if isinstance(fault, str) else fault
        # One random source for everything, drawn in a fixed order: a seed gives one stream.
        rng = random.Random(seed)
        self.load = Load(rng, capacity_ah, self.cycle)
        self.pack = Pack(
            rng,
            self.cells,
            capacity_ah=capacity_ah,
            resistance_mohm=resistance_mohm,
            start_soc=START_SOC,
            fault=self.fault,
        )
        self.protection = Protection(self.pack, rng, slots=slots, capacity_ah=capacity_ah, start_soc=START_SOC)
        self.t = 0  # the next second ``seconds`` sends
        self._sim_t = -1  # the last second simulated

    def advance_to(self, t: int) -> None:
        """Run the simulation up to second ``t`` (nothing when it is there already)."""
        while self._sim_t < t:
            self._step()
            self.pack.move_lead()

    def _step(self) -> None:
        self._sim_t += 1
        t = self._sim_t
        pack, bms = self.pack, self.protection
        second = self.load.tick(t, bms.pack_charge / self.capacity_ah)
        bms.release(second.began)
        amps = second.amps
        pack.heat(second.late_in_charge)
        if self.load.phase == Phase.CHARGE and bms.too_hot(t, amps):
            self._cut("charge", None)
            amps = 0.0
        if amps:
            ah = pack.slowed_in_knee(second.ah, self.load.knee_mv_per_s)
            bms.count(ah)
            pack.flow(ah)
        pack.carry(amps)
        end = bms.end_voltage()
        if end is not None:
            self._cut(*end)
        bms.watch_direction()

    def _cut(self, direction: str, cell: int | None) -> None:
        self.protection.cut(self._sim_t, direction, cell)
        self.load.stop(self._sim_t, direction)

    def frames_at(self, t: int) -> list[bytes]:
        """Every frame the BMS sends during second ``t``: status every second, cells every
        two, impedances when the current changes direction. Seconds are simulated in order;
        asking for an earlier one repeats the present."""
        self.advance_to(t)
        return self.encoder.frames(t, self._sim_t, self.protection)

    def seconds(self, count: int) -> Iterator[bytes]:
        """The byte stream of ``count`` consecutive seconds, one chunk per frame."""
        for _ in range(count):
            for frame in self.frames_at(self.t):
                yield frame
                if self.spacer:
                    yield SPACER
            self.t += 1

    # --- what tests and benches look at (the rest: ``pack``, ``load``, ``protection``) ---

    @property
    def cycles(self) -> int:
        """Whole cycles completed (a new charge began)."""
        return self.load.cycles

    @property
    def cutoffs(self) -> list[tuple[int, str, int | None]]:
        """Every cut-off so far: (second, direction, cell or None)."""
        return self.protection.cutoffs

    @property
    def cell_resistance(self) -> list[float]:
        """Each cell's true resistance (mOhm), what the BMS's impedances estimate."""
        return self.pack.cell_resistance
