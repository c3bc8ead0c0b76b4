"""The bank as one battery for a Victron GX: the documents of the single-pack output
(:mod:`chargerybms.victron`: the same two Venus OS drivers, the same keys and JSON types),
made of the bank's ``state`` document. Pure.

- Current and power: the live packs' sums; voltage: their mean; state of charge: the bank's,
  weighted by capacity; capacity: the sum of the packs' capacities. No document while the
  bank's state of charge or capacity is unknown (a pack's capacity not known), nor while
  no pack is live: the driver's timeout then takes the battery off the GX.
- Charging (discharging) is allowed only while **every live pack** allows it: one pack's
  BMS that stopped charging has opened its own relay, and the GX must not push the whole
  bank's current into the others. dbus-aggregate-batteries does the same (the minimum of
  the members' ``AllowToCharge``). Unlike it, a pack that goes silent is left out rather
  than stopping the aggregate battery: see docs/several-packs.md for why.
- The charge voltage is the lowest charge end voltage of the packs × the cells: the bank is
  full when its first pack is. dbus-aggregate-batteries takes the minimum of the members'
  ``MaxChargeVoltage`` likewise.
- The per-cell list (``cells`` / ``Voltages/CellN``): packs in parallel have no common
  cells, but the drivers limit charging by the highest cell and discharging by the lowest.
  So position N carries the lowest of the packs' cell N, except the position of the bank's
  highest cell, which carries that: the driver sees the bank's true lowest and highest cell
  (when both are at the same position in two packs, the highest wins: an overcharged cell
  is the one a charger can still make worse within a second).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from ..outputs.victron import ALARM, OK

Document = dict[str, Any]


def positions(bank: Mapping[str, Any], cell_lists: Sequence[Sequence[float]]) -> list[float] | None:
    """Per cell position: the lowest of the packs', the bank's highest at its own position."""
    count = bank.get("cell_count")
    if not cell_lists or not isinstance(count, int) or any(len(c) != count for c in cell_lists):
        return None
    out = [min(c[i] for c in cell_lists) for i in range(count)]
    high_at = bank.get("cell_max_index")
    if isinstance(high_at, int) and bank.get("cell_max") is not None:
        out[high_at - 1] = bank["cell_max"]
    return out


def _ready(bank: Mapping[str, Any]) -> bool:
    needed = ("soc", "capacity_installed", "pack_voltage", "current", "power", "cell_count", "charge_end_voltage")
    return bank.get("link") == "online" and all(bank.get(k) is not None for k in needed)


def serialbattery(bank: Mapping[str, Any], cells: Sequence[float] | None, serial_number: str) -> Document | None:
    """The document for dbus-serialbattery's Generic MQTT BMS, or None."""
    if not _ready(bank) or cells is None or bank.get("temperature_max") is None:
        return None
    count: int = bank["cell_count"]
    doc: Document = {
        "cell_count": count,
        "capacity": float(bank["capacity_installed"]),
        "serial_number": serial_number,
        "voltage": bank["pack_voltage"],
        "current": bank["current"],
        "soc": float(bank["soc"]),
        # The warmest probe first (the driver's high-temperature limits), the coldest second.
        "temperature_1": bank["temperature_max"],
        "temperature_2": bank["temperature_min"],
        "charge_fet": not bank.get("charge_protection"),
        "discharge_fet": not bank.get("discharge_protection"),
        "max_battery_voltage_bms": round(bank["charge_end_voltage"] * count, 3),
        "cells": [{"voltage": v} for v in cells],
    }
    if bank.get("discharge_end_voltage") is not None:
        doc["min_battery_voltage_bms"] = round(bank["discharge_end_voltage"] * count, 3)
    if bank.get("capacity_ah") is not None:
        doc["capacity_remain"] = bank["capacity_ah"]
    return doc


def _cell_id(pack: Any, cell: Any) -> str:
    return f"P{pack}C{cell}"  # pack number in the member list, cell number in the pack


def mqtt_battery(bank: Mapping[str, Any], cells: Sequence[float] | None, _serial: str) -> Document | None:
    """The document for dbus-mqtt-battery, or None."""
    if not _ready(bank) or cells is None or bank.get("cell_min") is None:
        return None
    count: int = bank["cell_count"]
    doc: Document = {
        "Dc": {
            "Power": bank["power"],
            "Voltage": bank["pack_voltage"],
            "Current": bank["current"],
        },
        "Soc": bank["soc"],
        "InstalledCapacity": float(bank["capacity_installed"]),
        "Info": {
            "MaxChargeVoltage": round(bank["charge_end_voltage"] * count, 3),
            "MaxChargeCellVoltage": bank["charge_end_voltage"],
        },
        "Io": {
            "AllowToCharge": 0 if bank.get("charge_protection") else 1,
            "AllowToDischarge": 0 if bank.get("discharge_protection") else 1,
        },
        "System": {
            "NrOfCellsPerBattery": count,
            "MinVoltageCellId": _cell_id(bank["cell_min_pack_number"], bank["cell_min_index"]),
            "MinCellVoltage": bank["cell_min"],
            "MaxVoltageCellId": _cell_id(bank["cell_max_pack_number"], bank["cell_max_index"]),
            "MaxCellVoltage": bank["cell_max"],
        },
        "Voltages": {
            **{f"Cell{i}": v for i, v in enumerate(cells, start=1)},
            "Sum": bank["pack_voltage"],
            "Diff": bank["cell_delta"],
        },
    }
    if bank.get("temperature_max") is not None:
        doc["Dc"]["Temperature"] = bank["temperature_max"]
        doc["System"]["MinCellTemperature"] = bank["temperature_min"]
        doc["System"]["MaxCellTemperature"] = bank["temperature_max"]
    if bank.get("charge_protection") is not None and bank.get("discharge_protection") is not None:
        doc["Alarms"] = {
            "HighVoltage": ALARM if bank["charge_protection"] else OK,
            "LowVoltage": ALARM if bank["discharge_protection"] else OK,
        }
    return doc


#: ``--victron`` format -> builder(bank document, per-position cells, serial number).
FORMATS: Final[dict[str, Callable[[Mapping[str, Any], Sequence[float] | None, str], Document | None]]] = {
    "serialbattery": serialbattery,
    "mqtt-battery": mqtt_battery,
}
