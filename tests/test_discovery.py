"""Home Assistant discovery payloads: schema, valid unit/class pairs, identity, templates."""

from __future__ import annotations

import json
import time
from typing import Any

import jinja2
import pytest
from ha_rules import BINARY_SENSOR_CLASSES, ENTITY_CATEGORIES, triple_error
from helpers import RecordingSink

from chargerybms.battery import BatteryState
from chargerybms.config import load
from chargerybms.daemon import Daemon
from chargerybms.outputs.discovery import Discovery
from chargerybms.protocol import Framer
from chargerybms.simulator import SimulatedBms
from chargerybms.sink import Received
from chargerybms.topics import Topics

ENV: dict[str, str] = {}


def settings(*flags: str, **values: Any) -> Any:
    parsed = dict(values)
    for flag in flags:
        parsed[flag] = True
    return load(parsed, environ=ENV)


def discovery(s: Any) -> Discovery:
    return Discovery(s, Topics(s.topic_prefix))


def state_from_simulator(slots: int, firmware: str, seconds: int = 40) -> BatteryState:
    state = BatteryState()
    framer = Framer()
    bms = SimulatedBms(slots, firmware=firmware, cycle=16)
    for chunk in bms.seconds(seconds):
        for _, frame in framer.feed(chunk):
            state.update(frame, time.time())
    return state


def render(template: str, document: dict[str, Any]) -> str:
    """As Home Assistant renders a value_template: the state topic's JSON as value_json."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    return env.from_string(template).render(value_json=document, value=json.dumps(document))


@pytest.mark.parametrize("slots", [8, 16, 24])
@pytest.mark.parametrize("firmware", ["1.22", "1.25", "1.26"])
def test_discovery_schema(slots: int, firmware: str) -> None:
    s = settings(device_name="Garage battery")
    state = state_from_simulator(slots, firmware)
    config = discovery(s).config(state)

    device = config["device"]
    assert device["identifiers"] == ["chargery_chargerybms"]
    assert device["manufacturer"] == "Chargery" and device["model"] == f"BMS{slots}T"
    assert device["name"] == "Garage battery" and device["sw_version"]
    assert config["origin"]["name"] == "chargery" and config["origin"]["sw_version"]
    assert [a["topic"] for a in config["availability"]] == ["chargerybms/status", "chargerybms/link"]
    assert config["availability_mode"] == "all"
    assert config["state_topic"] == "chargerybms/ha_state"  # the values held back for the recorder

    components = config["components"]
    unique_ids = [c["unique_id"] for c in components.values()]
    assert len(unique_ids) == len(set(unique_ids))
    for key, c in components.items():
        assert {"p", "name", "unique_id", "value_template"} <= c.keys(), key
        assert c["unique_id"] == f"chargery_chargerybms_{key}"
        assert "garage" not in c["name"].lower() and "chargery" not in c["name"].lower(), c["name"]
        assert c.get("entity_category") in ENTITY_CATEGORIES
        if c["p"] == "sensor":
            error = triple_error(c.get("device_class"), c.get("unit_of_measurement"), c.get("state_class"))
            assert error is None, f"{key}: {error}"
        elif c["p"] == "event":  # homeassistant/components/mqtt/event.py: event_types, a topic of its own
            assert c["event_types"] and c["state_topic"] == "chargerybms/event" and "expire_after" not in c
        else:
            assert c["p"] == "binary_sensor" and c["device_class"] in BINARY_SENSOR_CLASSES
        if "expire_after" in c:
            assert c["expire_after"] >= 2 * s.heartbeat  # comfortably above the republish heartbeat

    cell_voltages = [k for k in components if k.startswith("cell_") and k.endswith("_voltage")]
    cell_impedances = [k for k in components if k.startswith("cell_") and k.endswith("_impedance")]
    assert len(cell_voltages) == len(cell_impedances) == slots
    for key in cell_voltages + cell_impedances:
        assert "enabled_by_default" not in components[key]  # on: Home Assistant's default is true
        assert components[key]["entity_category"] == "diagnostic"
    assert components["link"]["device_class"] == "connectivity"
    assert [a["topic"] for a in components["link"]["availability"]] == ["chargerybms/status"]
    assert components["impedances_measured"]["device_class"] == "timestamp"
    # The Energy dashboard's battery section: kWh, total_increasing.
    for key in ("energy_charged", "energy_discharged"):
        c = components[key]
        assert (c["device_class"], c["unit_of_measurement"], c["state_class"]) == ("energy", "kWh", "total_increasing")
    assert "device_class" not in components["capacity_ah"]  # Home Assistant has no class for Ah
    assert components["energy_wh"]["device_class"] == "energy_storage"
    assert components["mode"]["device_class"] == "enum"


@pytest.mark.parametrize("firmware", ["1.22", "1.25", "1.26"])
def test_every_state_value_has_an_entity_and_every_template_renders(firmware: str) -> None:
    s = settings(demo=True, dry_run=True)
    daemon = Daemon(s, sink=RecordingSink())
    framer_input = SimulatedBms(16, firmware=firmware, cycle=16)
    for chunk in framer_input.seconds(20):
        daemon.handle_bytes(chunk)
    daemon.housekeeping(time.monotonic() + 1)  # the burst's document is due
    daemon.announce(time.monotonic() + 1)  # as at the broker's connect (the demo's model is known from the start)
    document = json.loads(daemon.sink.on("chargerybms/state")[-1])  # type: ignore[attr-defined]
    components = json.loads(daemon.sink.on("homeassistant/device/chargerybms/config")[-1])["components"]  # type: ignore[attr-defined]
    templated = {c["value_template"].split("value_json.")[1].split()[0] for c in components.values()}
    # Every value of the state document is an entity, but for the raw lists (per-cell
    # entities index them) and the bookkeeping fields.
    untracked = {"cell_voltages", "cell_impedances", "cells_seen", "status_seen",
                 "mode_code", "cell_count", "impedance_mode", "impedance_current",
                 "cell_sag_ratios", "cell_impedance_ratios",  # per-cell entities index them
                 "health_evidence"}  # an attribute of the weakest cell and of the cell health  # fmt: skip
    assert set(document) - untracked <= {t.split("[")[0] for t in templated}
    lists = {"_voltage": "cell_voltages", "_impedance": "cell_impedances", "_sag_ratio": "cell_sag_ratios",
             "_impedance_ratio": "cell_impedance_ratios"}  # fmt: skip
    for key, c in components.items():
        if c["p"] == "event":  # reads <prefix>/event, not this document (test_health_entities_and_the_event)
            continue
        out = render(c["value_template"], document)
        value = document.get(key)
        if "json_attributes_template" in c:
            assert (
                json.loads(render(c["json_attributes_template"], document))["evidence"] == document["health_evidence"]
            )
        if key == "link":
            assert out == {"online": "ON", "offline": "OFF"}[document["link"]]
        elif key == "impedances_measured":
            assert out == str(document["impedances_seen"])
        elif key.startswith("cell_") and key.endswith(tuple(lists)):
            n = int(key.split("_")[1])
            values = document[next(v for suffix, v in lists.items() if key.endswith(suffix))]
            assert out == (str(values[n - 1]) if values and len(values) >= n else "None"), key
        elif key in ("weakest_cell", "last_cutoff"):  # text: "none" rather than unknown
            assert out == ("none" if value is None else str(value)[:255]), key
        elif c["p"] == "binary_sensor":
            assert out == {None: "None", True: "ON", False: "OFF"}[value], key
        else:
            assert out == str(value), key


def test_a_value_the_bms_does_not_send_is_unknown_not_zero() -> None:
    state = state_from_simulator(16, "1.22")
    doc = state.document()
    assert doc["discharge_end_voltage"] is None and doc["energy_wh"] is None
    components = discovery(settings()).config(state)["components"]
    assert render(components["energy_wh"]["value_template"], doc) == "None"  # Home Assistant: unknown
    assert render(components["charge_protection"]["value_template"], doc) == "None"


@pytest.mark.parametrize(
    ("device_id", "prefix"), [("", "chargerybms"), ("Garage-BMS", "x"), ("", "house/bms-1"), ("a__b", "x")]
)
def test_each_entity_proposes_an_entity_id_made_of_the_device_id(device_id: str, prefix: str) -> None:
    """Home Assistant 2025.10 on create the entity id that `default_entity_id` proposes, older
    versions the one of `object_id` (homeassistant/components/mqtt/entity.py,
    MqttEntity._init_entity_id, 2026.2.3), slugified by homeassistant/util/__init__.py's
    slugify: lower case, each run of other characters than letters and digits one _."""
    s = settings(device_id=device_id, topic_prefix=prefix)
    components = discovery(s).config(state_from_simulator(16, "1.26"))["components"]
    slug = {"": {"chargerybms": "chargerybms", "house/bms-1": "house_bms_1"}.get(prefix), "Garage-BMS": "garage_bms",
            "a__b": "a_b"}[device_id]  # fmt: skip
    assert components["cell_7_voltage"]["default_entity_id"] == f"sensor.{slug}_cell_7_voltage"
    assert components["cell_7_voltage"]["object_id"] == f"{slug}_cell_7_voltage"
    assert components["link"]["default_entity_id"] == f"binary_sensor.{slug}_link"
    for key, c in components.items():
        platform, _, object_id = c["default_entity_id"].partition(".")
        assert platform == c["p"] and object_id == c["object_id"] == f"{slug}_{key}"


def test_identity_comes_from_the_device_id_only() -> None:
    state = state_from_simulator(8, "1.26")
    a = discovery(settings(device_name="Old name")).config(state)
    b = discovery(settings(device_name="New name")).config(state)
    assert [c["unique_id"] for c in a["components"].values()] == [c["unique_id"] for c in b["components"].values()]
    assert a["device"]["identifiers"] == b["device"]["identifiers"]
    assert a["device"]["name"] != b["device"]["name"]
    # A different port changes nothing either: the tty path is never part of an id.
    c = discovery(settings(port="/dev/ttyUSB7")).config(state)
    assert c["device"]["identifiers"] == a["device"]["identifiers"]


def test_two_devices_never_collide() -> None:
    state = state_from_simulator(16, "1.26")
    one = discovery(settings(topic_prefix="house/bms1"))
    two = discovery(settings(topic_prefix="house/bms2"))
    three = discovery(settings(topic_prefix="house/bms1", device_id="shed"))
    topics = {d.topic for d in (one, two, three)}
    assert len(topics) == 3
    ids = [set(c["unique_id"] for c in d.config(state)["components"].values()) for d in (one, two, three)]
    assert not ids[0] & ids[1] and not ids[0] & ids[2] and not ids[1] & ids[2]


def test_removed_components_are_cleared_once_the_cell_count_is_known() -> None:
    big = state_from_simulator(16, "1.26")
    old = json.dumps(discovery(settings()).config(big)).encode()
    d = discovery(settings(cells=8))
    empty = BatteryState()
    assert d.note_retained(old, BatteryState(8)) is True  # --cells known: decide now
    components = d.config(big)["components"]
    assert components["cell_9_voltage"] == {"p": "sensor"}
    assert components["cell_16_impedance"] == {"p": "sensor"}
    assert "name" in components["cell_8_voltage"]
    # Our own config comes back with the stubs: nothing left to remove after that.
    assert d.note_retained(json.dumps(d.config(big)).encode(), big) is False
    assert "cell_9_voltage" not in d.config(big)["components"]
    # Without --cells, nothing is removed before the first cell frame says the model.
    e = discovery(settings())
    assert e.note_retained(old, empty) is False
    assert all(len(c) > 1 for c in e.config(empty)["components"].values())


def test_our_own_echo_does_not_hide_entities_to_remove() -> None:
    """The daemon subscribes to its discovery topic to learn what the broker keeps. The
    retained copy (delivered on subscribing, RETAIN set) and the echo of its own new
    announcement (a live publication, RETAIN clear) may be handled in one go: only the
    retained one says what is to be removed."""
    from chargerybms.protocol import encode_cells

    old = json.dumps(discovery(settings()).config(state_from_simulator(16, "1.26"))).encode()
    s = settings(cells=8, port="/dev/null")
    daemon = Daemon(s, sink=RecordingSink())
    daemon.handle_bytes(encode_cells([3300] * 16, energy_mwh=1, capacity_mah=1))
    sink: RecordingSink = daemon.sink  # type: ignore[assignment]
    topic = "homeassistant/device/chargerybms/config"
    ours = sink.on(topic)[-1].encode()
    daemon.events.put(Received(topic, old, True))
    daemon.events.put(Received(topic, ours, False))
    daemon.housekeeping(time.monotonic())
    last = json.loads(sink.on(topic)[-1])
    assert last["components"]["cell_9_voltage"] == {"p": "sensor"}
    assert "name" in last["components"]["cell_8_voltage"]


def test_health_entities_and_the_event() -> None:
    """The cell-health entities (homeassistant/components/mqtt/event.py: an event entity
    reads a JSON object with ``event_type``, one of ``event_types``)."""
    s = settings()
    d = discovery(s)
    components = d.config(state_from_simulator(8, "1.26"))["components"]
    event = components["health_event"]
    cutoff = {"type": "cutoff", "message": "charge stopped: cell 3 reached 3.652 V", "cell": 3, "direction": "charge"}
    rendered = json.loads(render(event["value_template"], cutoff))
    assert rendered == {"event_type": "cutoff", "message": cutoff["message"], "cell": 3}
    assert rendered["event_type"] in event["event_types"]
    assert components["health_warning"]["device_class"] == "problem"
    assert {f"cell_{n}_sag_ratio" for n in range(1, 9)} <= components.keys()
    assert {f"cell_{n}_impedance_ratio" for n in range(1, 9)} <= components.keys()
    off = discovery(settings(cell_health=False)).config(state_from_simulator(8, "1.26"))["components"]
    assert not {"weakest_cell", "health_warning", "health_event", "cell_1_sag_ratio"} & off.keys()
