"""What the simulated BMS sends: its report, in the frame layout of its firmware, at the
documented cadence (status every second, cells every two, impedances when the current
changes direction), through the protocol's own encoders."""

from __future__ import annotations

from typing import Final

from ..protocol import encode_cells, encode_impedances, encode_status
from .protection import CHARGE_END_MV, DISCHARGE_END_MV, Protection

FIRMWARES: Final = ("1.22", "1.25", "1.26")


class Encoder:
    """Frames of firmware ``firmware`` (one of :data:`FIRMWARES`) for ``cells`` wired cells."""

    def __init__(self, firmware: str, cells: int) -> None:
        if firmware not in FIRMWARES:
            raise ValueError(f"firmware must be one of {FIRMWARES}, not {firmware!r}")
        self.firmware = firmware
        self._cells = cells

    def frames(self, t: int, second: int, bms: Protection) -> list[bytes]:
        """Every frame sent during second ``t`` with the BMS as it is at simulated
        ``second``: it reads (and draws its noise) only for the frames it sends."""
        out = [self.status(second, bms)]
        if t % 2 == 0:
            out.append(self.cells(bms))
        if bms.take_impedance_due() and self.firmware != "1.22":  # V1.22 sends no impedances
            out.append(encode_impedances(bms.mode, round(abs(bms.current) * 10), bms.impedances()))
        return out

    def status(self, second: int, bms: Protection) -> bytes:
        t1, t2 = bms.temperatures_deci(second)
        v126 = self.firmware == "1.26"
        return encode_status(
            charge_end_mv=CHARGE_END_MV,
            mode=bms.mode,
            deci_amps=round(abs(bms.current) * 10),
            t1_deci=t1,
            t2_deci=t2,
            soc=round(bms.soc),
            discharge_end_mv=DISCHARGE_END_MV if v126 else None,
            charge_protection=v126 and bms.charge_protection,
            discharge_protection=v126 and bms.discharge_protection,
        )

    def cells(self, bms: Protection) -> bytes:
        mv = bms.cell_millivolts()
        soc = bms.soc
        if self.firmware == "1.22":
            return encode_cells(mv, soc=round(soc))
        wired_v = sum(mv[: self._cells]) / 1000
        ah = bms.capacity_ah * soc / 100
        return encode_cells(mv, energy_mwh=round(ah * wired_v * 1000), capacity_mah=round(ah * 1000))
