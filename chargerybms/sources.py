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
    :class:`~chargerybms.serial_link.LinkLost`."""
    if settings.demo:
        bms = SimulatedBms(
            settings.demo_model,
            firmware=settings.demo_firmware,
            cells=settings.cells or None,
            fault=settings.demo_fault or None,
        )
        return SimulatedPort(bms, speed=settings.demo_speed)
    return SerialPort(settings.port, settings.baud)


def describe(settings: Settings) -> str:
    if settings.demo:
        fault = f", with {settings.demo_fault}" if settings.demo_fault else ""
        return f"simulated BMS{settings.demo_model}T (firmware {settings.demo_firmware} layout{fault})"
    return settings.port
