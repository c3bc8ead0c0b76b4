"""What Home Assistant accepts, as tables (from its sensor/binary_sensor documentation:
units per device class, and the state classes each device class allows). A discovery
config that breaks one of these is rejected or logged as an error by Home Assistant."""

from __future__ import annotations

ENERGY_UNITS = {"Wh", "kWh", "MWh", "GWh", "TWh", "mWh", "J", "kJ", "MJ", "GJ", "cal", "kcal", "Mcal", "Gcal"}

UNITS: dict[str | None, set[str | None]] = {
    "voltage": {"V", "mV", "µV", "kV", "MV"},
    "current": {"A", "mA"},
    "power": {"W", "kW", "MW", "GW", "TW", "mW", "BTU/h"},
    "battery": {"%"},
    "temperature": {"°C", "°F", "K"},
    "energy": ENERGY_UNITS,
    "energy_storage": ENERGY_UNITS,
    "enum": {None},
    "timestamp": {None},
}

STATE_CLASSES: dict[str | None, set[str | None]] = {
    "voltage": {"measurement", None},
    "current": {"measurement", None},
    "power": {"measurement", None},
    "battery": {"measurement", None},
    "temperature": {"measurement", None},
    "energy": {"total", "total_increasing"},
    "energy_storage": {"measurement", None},
    "enum": {None},
    "timestamp": {None},
    None: {"measurement", "total", "total_increasing", None},
}

BINARY_SENSOR_CLASSES = {"problem", "battery", "battery_charging", "connectivity", "power", "safety", "running"}
ENTITY_CATEGORIES = {None, "diagnostic", "config"}


def triple_error(device_class: str | None, unit: str | None, state_class: str | None) -> str | None:
    """Why Home Assistant would reject this sensor triple, or None if it is valid."""
    if device_class is not None and device_class not in UNITS:
        return f"device class {device_class!r} is not in the table"
    if device_class is not None and unit not in UNITS[device_class]:
        return f"unit {unit!r} is not valid for device class {device_class}"
    if state_class not in STATE_CLASSES[device_class]:
        return f"state class {state_class!r} is not valid for device class {device_class}"
    if device_class in ("enum", "timestamp") and unit is not None:
        return f"{device_class} sensors take no unit"
    return None
