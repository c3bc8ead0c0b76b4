"""Victron GX: the battery as the input of a maintained Venus OS driver. Pure.

Two formats, one JSON document each, built from the same :class:`BatteryState`:

- ``serialbattery``: the "Generic MQTT" BMS of mr-manuel/venus-os_dbus-serialbattery
  (``dbus-serialbattery/bms/generic_mqtt.py``). That driver computes the charge voltage
  and current limits itself and drives the GX's DVCC. It checks JSON types strictly:
  ``cell_count`` an int, ``serial_number`` a string, ``charge_fet``/``discharge_fet``
  booleans, numbers for the rest, ``cells`` a list of ``{"voltage": ...}`` as long as
  ``cell_count``.
- ``mqtt-battery``: mr-manuel/venus-os_dbus-mqtt-battery (``dbus-mqtt-battery.py``):
  nested objects whose leaves must be numbers (it rejects booleans and passes strings
  through as strings), so flags are 0/1 and alarms 0 (ok) / 2 (alarm).

A document is only made when the values a charge controller depends on are known: a
cells frame, and a status frame with its mode byte (before V1.21 the BMS sends no mode,
so the current has no direction: that is not handed to a charger). Otherwise ``None``.

The Chargery's protection bytes (V1.26) say that charging or discharging has been
stopped, not why. Earlier firmware does not send them: then the BMS has not said it
stopped anything, and its own relays still cut off as configured, so charging and
discharging are reported as allowed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from ..base import Context, Output, Timing
from ..battery import BatteryState

if TYPE_CHECKING:
    from ..config import Settings
    from ..topics import Topics

Document = dict[str, Any]
EVERY: Final = 1.0  # seconds between documents while the link is online (the drivers poll about so)
TOPIC: Final = "victron"  # under the prefix, unless --victron-topic names another
ALARM: Final = 2  # dbus-mqtt-battery: 0 ok, 1 warning, 2 alarm
OK: Final = 0


def _allowed(protection: bool | None) -> bool:
    return not protection  # None (not sent by this firmware): nothing was stopped


def serialbattery(state: BatteryState, serial_number: str, capacity_ah: float) -> Document | None:
    """The document for dbus-serialbattery's Generic MQTT BMS, or None while incomplete."""
    summary, status, cells = state.summary, state.status, state.cells
    if summary is None or status is None or cells is None or status.mode_code is None or state.soc is None:
        return None
    count = len(summary.voltages)
    doc: Document = {
        "cell_count": count,
        "capacity": float(capacity_ah),
        "serial_number": serial_number,
        "voltage": summary.pack_voltage,
        "current": status.current,
        "soc": float(state.soc),
        "temperature_1": status.temperature_1,
        "temperature_2": status.temperature_2,
        "charge_fet": _allowed(status.charge_protection),
        "discharge_fet": _allowed(status.discharge_protection),
        "max_battery_voltage_bms": round(status.charge_end_voltage * count, 3),
        "cells": [{"voltage": v} for v in summary.voltages],
    }
    if status.discharge_end_voltage is not None:
        doc["min_battery_voltage_bms"] = round(status.discharge_end_voltage * count, 3)
    if cells.capacity_ah is not None:
        doc["capacity_remain"] = cells.capacity_ah
    return doc


def mqtt_battery(state: BatteryState, capacity_ah: float) -> Document | None:
    """The document for dbus-mqtt-battery, or None while incomplete."""
    summary, status = state.summary, state.status
    if summary is None or status is None or status.mode_code is None or state.soc is None or state.power is None:
        return None
    count = len(summary.voltages)
    doc: Document = {
        "Dc": {
            "Power": state.power,
            "Voltage": summary.pack_voltage,
            "Current": status.current,
            "Temperature": status.temperature_1,
        },
        "Soc": state.soc,
        "Info": {
            "MaxChargeVoltage": round(status.charge_end_voltage * count, 3),
            "MaxChargeCellVoltage": status.charge_end_voltage,
        },
        "Io": {
            "AllowToCharge": int(_allowed(status.charge_protection)),
            "AllowToDischarge": int(_allowed(status.discharge_protection)),
        },
        "System": {
            "NrOfCellsPerBattery": count,
            "MinVoltageCellId": f"C{summary.cell_min_index}",
            "MinCellVoltage": summary.cell_min,
            "MaxVoltageCellId": f"C{summary.cell_max_index}",
            "MaxCellVoltage": summary.cell_max,
            "MinCellTemperature": min(status.temperature_1, status.temperature_2),
            "MaxCellTemperature": max(status.temperature_1, status.temperature_2),
        },
        "Voltages": {
            **{f"Cell{i}": v for i, v in enumerate(summary.voltages, start=1)},
            "Sum": summary.pack_voltage,
            "Diff": summary.cell_delta,
        },
    }
    if capacity_ah:
        doc["InstalledCapacity"] = float(capacity_ah)
    if status.charge_protection is not None and status.discharge_protection is not None:
        # The BMS stops charging at its charge end voltage and discharging at its
        # discharge end voltage: the GX shows these as high / low voltage alarms.
        doc["Alarms"] = {
            "HighVoltage": ALARM if status.charge_protection else OK,
            "LowVoltage": ALARM if status.discharge_protection else OK,
        }
    return doc


#: Format name (``--victron``) -> document builder(state, serial number, capacity in Ah).
FORMATS: Final[dict[str, Callable[[BatteryState, str, float], Document | None]]] = {
    "serialbattery": serialbattery,
    "mqtt-battery": lambda state, _serial, capacity: mqtt_battery(state, capacity),
}


def output(settings: Settings, topics: Topics) -> Output | None:
    """``--victron FORMAT``: the document every second while the link is online, not retained."""
    make = FORMATS.get(settings.victron or "")
    if make is None:
        return None
    serial, capacity = settings.resolved_device_id, settings.capacity_ah or 0.0

    def build(world: Context) -> str | None:
        document = make(world.state, serial, capacity)
        return None if document is None else json.dumps(document, separators=(",", ":"))

    return Output("victron", settings.victron_topic or f"{topics.prefix}/{TOPIC}", Timing(every=EVERY), build)
