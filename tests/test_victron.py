"""--victron: the documents for the two Venus OS drivers, checked against each driver's
own input rules (written down below from their source) and against the vectors; end to end
in test_victron_e2e.py."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
from helpers import VEC, chargery_cmd

from chargerybms.battery import BatteryState
from chargerybms.outputs.victron import mqtt_battery, serialbattery
from chargerybms.protocol import decode_frame, encode_status
from chargerybms.simulator import SimulatedBms

V126_STATUS = encode_status(  # no 19-byte status frame among the vectors: this is one
    charge_end_mv=3650, mode=0, deci_amps=125, t1_deci=-223, t2_deci=215, soc=64,
    discharge_end_mv=2800, charge_protection=True, discharge_protection=False,
)  # fmt: skip


def number(v: Any) -> bool:
    return type(v) in (int, float)  # stricter than the drivers: never a bool


def integer(v: Any) -> bool:
    return type(v) is int


def text(v: Any) -> bool:
    return type(v) is str


def boolean(v: Any) -> bool:
    return type(v) is bool


# mr-manuel/venus-os_dbus-serialbattery, dbus-serialbattery/bms/generic_mqtt.py, on_message():
# its `battery_values` list of (name, type, mandatory). int and float fields accept any
# int or float (isinstance); cell_count must be an int, serial_number a str, the *_fet
# fields a bool; `cells` a list with exactly cell_count entries {"voltage": int|float}.
SERIALBATTERY: dict[str, tuple[Callable[[Any], bool], bool]] = {
    "cell_count": (integer, True),
    "capacity": (number, True),
    "serial_number": (text, True),
    "voltage": (number, True),
    "current": (number, True),
    "soc": (number, True),
    "temperature_1": (number, True),
    "charge_fet": (boolean, True),
    "discharge_fet": (boolean, True),
    "cells": (lambda v: isinstance(v, list), True),
    "max_battery_charge_current": (number, False),
    "max_battery_discharge_current": (number, False),
    "max_battery_voltage_bms": (number, False),
    "min_battery_voltage_bms": (number, False),
    "capacity_remain": (number, False),
    "temperature_2": (number, False),
}

# mr-manuel/venus-os_dbus-mqtt-battery, dbus-mqtt-battery/dbus-mqtt-battery.py, on_message():
# it starts only with Dc.Power, Dc.Voltage and Soc; every leaf is kept only when
# type(value) is str, int or float (or None) and its path is one of `battery_dict`'s keys
# (a bool is "not valid"; a string would be passed to the GX as text, so numbers must be
# numbers). Alarms are 0 ok / 1 warning / 2 alarm (its README).
MQTT_BATTERY_REQUIRED = ("Dc/Power", "Dc/Voltage", "Soc")
MQTT_BATTERY: dict[str, Callable[[Any], bool]] = {
    "Dc/Power": number, "Dc/Voltage": number, "Dc/Current": number, "Dc/Temperature": number,
    "Soc": number, "InstalledCapacity": number,
    "Info/MaxChargeVoltage": number, "Info/MaxChargeCellVoltage": number,
    "Io/AllowToCharge": lambda v: v in (0, 1) and integer(v),
    "Io/AllowToDischarge": lambda v: v in (0, 1) and integer(v),
    "System/NrOfCellsPerBattery": integer,
    "System/MinVoltageCellId": text, "System/MaxVoltageCellId": text,
    "System/MinCellVoltage": number, "System/MaxCellVoltage": number,
    "System/MinCellTemperature": number, "System/MaxCellTemperature": number,
    "Voltages/Sum": number, "Voltages/Diff": number,
    **{f"Voltages/Cell{i}": number for i in range(1, 25)},
    "Alarms/HighVoltage": lambda v: v in (0, 2) and integer(v),
    "Alarms/LowVoltage": lambda v: v in (0, 2) and integer(v),
}  # fmt: skip


def check_serialbattery(doc: dict[str, Any]) -> None:
    for name, (ok, mandatory) in SERIALBATTERY.items():
        if mandatory:
            assert name in doc, name
        if name in doc:
            assert ok(doc[name]), (name, doc[name])
    assert set(doc) <= set(SERIALBATTERY), set(doc) - set(SERIALBATTERY)
    assert len(doc["cells"]) == doc["cell_count"]
    assert all(set(c) == {"voltage"} and number(c["voltage"]) for c in doc["cells"])


def leaves(doc: dict[str, Any], path: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if isinstance(value, dict):
            out.update(leaves(value, f"{path}{key}/"))
        else:
            out[f"{path}{key}"] = value
    return out


def check_mqtt_battery(doc: dict[str, Any]) -> dict[str, Any]:
    flat = leaves(doc)
    for name in MQTT_BATTERY_REQUIRED:
        assert name in flat, name
    for name, value in flat.items():
        assert name in MQTT_BATTERY, name
        assert MQTT_BATTERY[name](value), (name, value)
    return flat


def state_of(*frames: bytes, cells: int | None = None) -> BatteryState:
    state = BatteryState(cells)
    for frame in frames:
        state.update(decode_frame(frame), 0.0)
    return state


@pytest.mark.parametrize("slots", [8, 16, 24])
@pytest.mark.parametrize("firmware", ["1.22", "1.25", "1.26"])
def test_both_formats_follow_the_drivers_rules(slots: int, firmware: str) -> None:
    bms = SimulatedBms(slots, firmware=firmware, cycle=16)
    state = BatteryState()
    for second in range(32):  # two whole cycles: charge, storage, discharge, storage
        for frame in bms.frames_at(second):
            state.update(decode_frame(frame), 0.0)
        sb = serialbattery(state, "chargerybms", 280.0)
        mb = mqtt_battery(state, 280.0)
        if state.cells is None:
            assert sb is None and mb is None  # no cell frame yet: nothing half-made
            continue
        assert sb is not None and mb is not None
        check_serialbattery(sb)
        flat = check_mqtt_battery(mb)
        assert sb["cell_count"] == slots == flat["System/NrOfCellsPerBattery"]
        assert ("min_battery_voltage_bms" in sb) == (firmware == "1.26")
        assert ("capacity_remain" in sb) == (firmware != "1.22")
        assert ("Alarms/HighVoltage" in flat) == (firmware == "1.26")
        json.dumps(sb, allow_nan=False)
        json.dumps(mb, allow_nan=False)


def test_v125_vectors() -> None:
    state = state_of(VEC["A4"], VEC["A1"])
    sb = serialbattery(state, "house", 280.0)
    assert sb is not None
    check_serialbattery(sb)
    cells = [c["voltage"] for c in sb["cells"]]
    assert sb["cell_count"] == 16 and sum(cells) == pytest.approx(53.294) and cells[14] == 3.343
    assert (sb["voltage"], sb["current"], sb["soc"]) == (53.294, 23.0, 91.0)
    assert (sb["temperature_1"], sb["temperature_2"]) == (12.9, 13.2)
    assert sb["capacity"] == 280.0 and sb["capacity_remain"] == 922.723 and sb["serial_number"] == "house"
    assert sb["max_battery_voltage_bms"] == 57.92  # 3.620 V charge end x 16 cells
    assert sb["charge_fet"] is True and sb["discharge_fet"] is True  # V1.25 sends no protection flags
    assert "min_battery_voltage_bms" not in sb

    mb = mqtt_battery(state, 280.0)
    assert mb is not None
    flat = check_mqtt_battery(mb)
    assert flat["Dc/Voltage"] == 53.294 and flat["Dc/Current"] == 23.0 and flat["Soc"] == 91
    assert flat["Dc/Power"] == round(53.294 * 23.0, 1) and flat["InstalledCapacity"] == 280.0
    assert flat["System/MaxVoltageCellId"] == "C15" and flat["System/MaxCellVoltage"] == 3.343
    assert flat["System/MinVoltageCellId"] == "C14" and flat["System/MinCellVoltage"] == 3.323
    assert flat["Info/MaxChargeVoltage"] == 57.92
    assert flat["Io/AllowToCharge"] == 1 and flat["Io/AllowToDischarge"] == 1
    assert not any(k.startswith("Alarms/") for k in flat)  # V1.25: nothing is known about them


def test_v122_vectors_with_three_cells_wired() -> None:
    state = state_of(VEC["C3"], VEC["C1"], cells=3)
    sb = serialbattery(state, "shed", 100.0)
    mb = mqtt_battery(state, 0.0)
    assert sb is not None and mb is not None
    check_serialbattery(sb)
    flat = check_mqtt_battery(mb)
    assert sb["cell_count"] == 3 and len(sb["cells"]) == 3
    assert sb["current"] == -1.2 and flat["Dc/Current"] == -1.2  # discharging: negative
    assert sb["soc"] == 0.0 and "capacity_remain" not in sb  # V1.22 cells frames carry no Ah
    assert "InstalledCapacity" not in flat  # no --capacity-ah: not invented


def test_v126_protection_flags_and_24_cells() -> None:
    state = state_of(VEC["B1"], V126_STATUS)
    sb = serialbattery(state, "x", 100.0)
    mb = mqtt_battery(state, 100.0)
    assert sb is not None and mb is not None
    check_serialbattery(sb)
    flat = check_mqtt_battery(mb)
    assert sb["cell_count"] == 24
    assert sb["charge_fet"] is False and sb["discharge_fet"] is True  # charging stopped by the BMS
    assert sb["max_battery_voltage_bms"] == 87.6 and sb["min_battery_voltage_bms"] == 67.2  # x 24
    assert sb["current"] == -12.5 and sb["temperature_1"] == -22.3
    assert flat["Io/AllowToCharge"] == 0 and flat["Io/AllowToDischarge"] == 1
    assert flat["Alarms/HighVoltage"] == 2 and flat["Alarms/LowVoltage"] == 0
    assert flat["System/MinCellTemperature"] == -22.3 and flat["System/MaxCellTemperature"] == 21.5


def test_no_document_without_a_direction_for_the_current() -> None:
    old = encode_status(charge_end_mv=3650, deci_amps=100, t1_deci=0, t2_deci=0)  # before V1.21: no mode
    state = state_of(VEC["A4"], old)
    assert serialbattery(state, "x", 100.0) is None and mqtt_battery(state, 100.0) is None
    assert serialbattery(state_of(VEC["A4"]), "x", 100.0) is None  # no status frame yet


def test_serialbattery_without_a_capacity_is_exit_2_naming_the_setting() -> None:
    result = subprocess.run(
        chargery_cmd("--demo", "--victron", "serialbattery"), capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "capacity_ah" in lines[0] and "--capacity-ah" in lines[0], result.stderr
    bad = subprocess.run(
        chargery_cmd("--demo", "--victron", "dbus"), capture_output=True, text=True, timeout=30, check=False
    )
    assert bad.returncode == 2 and "victron" in bad.stderr and "serialbattery" in bad.stderr
