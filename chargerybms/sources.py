"""Where the bytes come from: the configured serial port, or the simulator with ``--demo``.

Both are a :class:`~chargerybms.serial_link.ByteSource`, so everything downstream (the
daemon, ``record``) reads them alike.
"""

from __future__ import annotations

from .config import Settings
from .serial_link import ByteSource, SerialPort
from .simulator import SimulatedBms, SimulatedPort


def open_source(settings: Settings) -> ByteSource:
    """The simulator with ``--demo``, else the configured port. Raises
    :class:`~chargerybms.serial_link.PortError`."""
    if settings.demo:
        bms = SimulatedBms(
            settings.demo_model,
            firmware=settings.demo_firmware,
            cells=settings.cells,
            fault=settings.demo_fault,
        )
        return SimulatedPort(bms, speed=settings.demo_speed)
    return SerialPort(settings.port, settings.baud)


def label(settings: Settings) -> str:
    """What the bytes come from, in a few words for the log: the port, or the simulator."""
    if settings.demo:
        fault = f", with {settings.demo_fault}" if settings.demo_fault else ""
        return f"simulated BMS{settings.demo_model}T (firmware {settings.demo_firmware} layout{fault})"
    return settings.port
