"""A simulated Chargery BMS: real frames at the documented cadence, no hardware.

Used by ``--demo``, the tests and the benchmarks (the cell-health study among them). It
produces bytes, never decoded values, so everything downstream goes through the same
framer and decoders as a real port. One job per module:

- :mod:`.pack`: the cells' physics (capacity, resistance, charge, a LiFePO4 open-circuit
  curve, temperatures) and what a planted fault does to them;
- :mod:`.load`: the charger and the loads, cycling charge, rest, discharge, rest, and the
  simulated clock that runs fast in the flat middle and at a real cell's pace in the knees;
- :mod:`.protection`: the BMS's own work: its readings, its cut-offs at the end voltages
  and on temperature, its flags, its coulomb counter, its impedance measurements;
- :mod:`.encoder`: the BMS's report as the three frames of its firmware, through the
  protocol's encoders;
- :mod:`.bms`: :class:`SimulatedBms`, one of each, second by second; :mod:`.port`:
  :class:`SimulatedPort`, that stream behind what looks like a serial port;
- :mod:`.faults`: the faults that can be planted (:class:`Fault`, or ``--demo-fault`` as
  text).

Everything draws from one seeded random source in a fixed order, so a seed gives one
byte stream (``tests/test_simulator_stream.py`` pins it).
"""

from __future__ import annotations

from .bms import SimulatedBms
from .encoder import FIRMWARES
from .faults import DEFAULT_SEVERITY, FAULT_KINDS, Fault, parse_fault
from .pack import ocv_mv
from .port import SimulatedPort
from .protection import CHARGE_END_MV, DISCHARGE_END_MV, HOT_CUTOFF_C

__all__ = [
    "CHARGE_END_MV",
    "DEFAULT_SEVERITY",
    "DISCHARGE_END_MV",
    "FAULT_KINDS",
    "FIRMWARES",
    "HOT_CUTOFF_C",
    "Fault",
    "SimulatedBms",
    "SimulatedPort",
    "ocv_mv",
    "parse_fault",
]
