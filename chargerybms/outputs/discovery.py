"""Home Assistant MQTT discovery: one device per BMS, one entity per value in ``state``.

Device-based discovery (``<ha_prefix>/device/<id>/config``, retained): the device, origin,
availability and ``state_topic`` are given once, every entity reads its value from the
``ha_state`` JSON document (the ``state`` document with each value held back to what a
person can see, so that Home Assistant's recorder does not write a row a second per
entity: :mod:`chargerybms.outputs.ha_view`, with the deadbands of :data:`DEADBANDS` below).
Unique ids come from the configured device id only, so renaming the device changes names,
never identities, and two BMS never collide. Each entity also proposes its entity id,
``<platform>.<device id>_<key>`` (:func:`entity_id`), so that a dashboard can name the
entities without asking Home Assistant.

Pure apart from remembering what was announced before (for removing entities the daemon
no longer publishes, e.g. after lowering ``--cells``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Final

from .. import __version__
from ..base import Context, Output, Timing
from ..battery import BatteryState
from ..config import Settings
from ..protocol import MODE_NAMES, MODELS, UNKNOWN_MODE
from ..topics import OFFLINE, ONLINE, Topics
from .ha_view import HA_STATE, Band, Extreme, HaView, Rule, Stamp

MODES: Final = (*MODE_NAMES.values(), UNKNOWN_MODE)  # the enum sensor's options
DIAGNOSTIC: Final = "diagnostic"


@dataclass(frozen=True)
class Entity:
    key: str  # component id within the device, and the last part of its unique id
    name: str  # without the device name: Home Assistant puts that in front
    template: str  # value_template
    platform: str = "sensor"
    device_class: str | None = None
    unit: str | None = None
    state_class: str | None = None
    category: str | None = None  # entity_category
    enabled: bool = True  # enabled_by_default
    icon: str | None = None
    precision: int | None = None  # suggested_display_precision
    options: tuple[str, ...] | None = None  # enum sensors
    link_diagnostic: bool = False  # available while the daemon runs, even with the BMS silent
    expires: bool = True
    attributes: str | None = None  # json_attributes_template over the same document
    topic: str | None = None  # a topic of its own under the prefix, instead of ha_state
    event_types: tuple[str, ...] | None = None  # event entities


def _value(field: str) -> str:
    # A null (a value this BMS does not send) renders as None, which Home Assistant shows
    # as unknown rather than 0.
    return f"{{{{ value_json.{field} }}}}"


def _flag(field: str) -> str:
    return f"{{{{ 'None' if value_json.{field} is none else ('ON' if value_json.{field} else 'OFF') }}}}"


def _item(field: str, index: int) -> str:
    return (
        f"{{{{ value_json.{field}[{index}] if value_json.{field} is not none "
        f"and value_json.{field}|length > {index} else None }}}}"
    )


VOLT, AMPERE, WATT, PERCENT, CELSIUS, MILLIOHM = "V", "A", "W", "%", "°C", "mΩ"
MEASUREMENT, TOTAL_INCREASING = "measurement", "total_increasing"  # state classes

BASE_ENTITIES: Final = (
    Entity("pack_voltage", "Pack voltage", _value("pack_voltage"), device_class="voltage", unit=VOLT, state_class=MEASUREMENT, precision=2),
    Entity("current", "Current", _value("current"), device_class="current", unit=AMPERE, state_class=MEASUREMENT, precision=1),
    Entity("power", "Power", _value("power"), device_class="power", unit=WATT, state_class=MEASUREMENT, precision=0),
    Entity("charge_power", "Charge power", _value("charge_power"), device_class="power", unit=WATT, state_class=MEASUREMENT, precision=0),
    Entity("discharge_power", "Discharge power", _value("discharge_power"), device_class="power", unit=WATT, state_class=MEASUREMENT, precision=0),
    Entity("soc", "State of charge", _value("soc"), device_class="battery", unit=PERCENT, state_class=MEASUREMENT),
    Entity("temperature_1", "Temperature 1", _value("temperature_1"), device_class="temperature", unit=CELSIUS, state_class=MEASUREMENT, precision=1),
    Entity("temperature_2", "Temperature 2", _value("temperature_2"), device_class="temperature", unit=CELSIUS, state_class=MEASUREMENT, precision=1),
    Entity("mode", "Mode", _value("mode"), device_class="enum", options=MODES, icon="mdi:battery-sync"),
    Entity("energy_charged", "Energy charged", _value("energy_charged"), device_class="energy", unit="kWh", state_class=TOTAL_INCREASING, precision=2),
    Entity("energy_discharged", "Energy discharged", _value("energy_discharged"), device_class="energy", unit="kWh", state_class=TOTAL_INCREASING, precision=2),
    Entity("energy_wh", "Stored energy (as reported)", _value("energy_wh"), device_class="energy_storage", unit="Wh", state_class=MEASUREMENT, precision=0),
    Entity("capacity_ah", "Charge (as reported)", _value("capacity_ah"), unit="Ah", state_class=MEASUREMENT, precision=1, icon="mdi:battery-charging-high"),
    Entity("cell_min", "Lowest cell voltage", _value("cell_min"), device_class="voltage", unit=VOLT, state_class=MEASUREMENT, precision=3),
    Entity("cell_max", "Highest cell voltage", _value("cell_max"), device_class="voltage", unit=VOLT, state_class=MEASUREMENT, precision=3),
    Entity("cell_delta", "Cell voltage difference", _value("cell_delta"), device_class="voltage", unit=VOLT, state_class=MEASUREMENT, precision=3),
    Entity("cell_min_index", "Lowest cell", _value("cell_min_index"), icon="mdi:numeric"),
    Entity("cell_max_index", "Highest cell", _value("cell_max_index"), icon="mdi:numeric"),
    Entity("charge_protection", "Charge protection", _flag("charge_protection"), platform="binary_sensor", device_class="problem"),
    Entity("discharge_protection", "Discharge protection", _flag("discharge_protection"), platform="binary_sensor", device_class="problem"),
    Entity("charge_end_voltage", "Charge end voltage", _value("charge_end_voltage"), device_class="voltage", unit=VOLT, state_class=MEASUREMENT, category=DIAGNOSTIC, precision=3),
    Entity("discharge_end_voltage", "Discharge end voltage", _value("discharge_end_voltage"), device_class="voltage", unit=VOLT, state_class=MEASUREMENT, category=DIAGNOSTIC, precision=3),
    Entity("impedance_total", "Total cell impedance", _value("impedance_total"), unit=MILLIOHM, state_class=MEASUREMENT, category=DIAGNOSTIC, precision=1, icon="mdi:omega"),
    Entity("frames_per_second", "Frames per second", _value("frames_per_second"), unit="frames/s", state_class=MEASUREMENT, category=DIAGNOSTIC, link_diagnostic=True, expires=False, icon="mdi:speedometer"),
    Entity("checksum_failures", "Corrupted frames", _value("checksum_failures"), state_class=TOTAL_INCREASING, category=DIAGNOSTIC, link_diagnostic=True, expires=False, icon="mdi:alert-circle-outline"),
    Entity("last_frame", "Last frame", _value("last_frame"), device_class="timestamp", category=DIAGNOSTIC, link_diagnostic=True, expires=False),
    Entity("link", "BMS link", "{{ 'ON' if value_json.link == 'online' else 'OFF' }}", platform="binary_sensor", device_class="connectivity", category=DIAGNOSTIC, link_diagnostic=True, expires=False),
    Entity("impedances_measured", "Impedances measured", _value("impedances_seen"), device_class="timestamp", category=DIAGNOSTIC),
)  # fmt: skip

# What Home Assistant is sent of each value of the `state` document (`<prefix>/ha_state`,
# see chargerybms/outputs/ha_view.py): a value goes out when it has moved by more than its band, at
# most once every `every` seconds, and, whatever it did, once it is --ha-max-age old. Each
# value that goes out is a row in Home Assistant's recorder: bench/ha_recorder.py measures
# what this table costs (docs/home-assistant.md). Values not listed (text, flags,
# counters) go out as they change. Bands: what a dashboard shows (a few times the BMS's
# resolution); `every`: 5 s for power and current, 10 s for the rest, 15 s for the cells
# (the most rows: bench/ha_recorder.py on the physical simulator).
DEADBANDS: Final[dict[str, Rule]] = {
    "power": Band(100.0, every=5),  # W
    "charge_power": Band(100.0, every=5),  # W
    "discharge_power": Band(100.0, every=5),  # W
    "current": Band(2.0, every=5),  # A
    "soc": Band(1, every=10),  # %
    "pack_voltage": Band(0.2, every=10),  # V
    "temperature_1": Band(0.5, every=10),  # °C
    "temperature_2": Band(0.5, every=10),  # °C
    "energy_wh": Band(200, every=10),  # Wh
    "capacity_ah": Band(5.0, every=10),  # Ah
    "energy_charged": Band(0.05),  # kWh
    "energy_discharged": Band(0.05),  # kWh
    "cell_voltages": Band(0.01, every=15),  # V, each cell
    "cell_min": Band(0.01, every=15),  # V
    "cell_max": Band(0.01, every=15),  # V
    "cell_delta": Band(0.005, every=10),  # V
    "cell_min_index": Extreme("cell_voltages", highest=False, width=0.01),
    "cell_max_index": Extreme("cell_voltages", highest=True, width=0.01),
    "cell_impedances": Band(0.1),  # mΩ, each cell (one step of the BMS's 0.1 mΩ is held)
    "impedance_total": Band(0.5),  # mΩ
    "frames_per_second": Band(0.2),
    "last_frame": Stamp(60),  # s: the link entity says at once when frames stop
}


def _text(field: str) -> str:
    """A text value; ``none`` while there is none (Home Assistant keeps at most 255 characters)."""
    return f"{{{{ value_json.{field}[:255] if value_json.{field} else 'none' }}}}"


# Cell health (--cell-health, chargerybms/views/health/): the verdict, why the BMS last cut off,
# and each cut-off or new warning as an event entity (from <prefix>/event, not ha_state).
HEALTH_ENTITIES: Final = (
    Entity("weakest_cell", "Weakest cell", "{{ value_json.weakest_cell if value_json.weakest_cell is not none else 'none' }}", icon="mdi:battery-alert-variant-outline", attributes="{{ {'evidence': value_json.health_evidence} | tojson }}"),
    Entity("health_warning", "Cell health", _flag("health_warning"), platform="binary_sensor", device_class="problem", attributes="{{ {'weakest_cell': value_json.weakest_cell, 'evidence': value_json.health_evidence} | tojson }}"),
    Entity("last_cutoff", "Last cut-off", _text("last_cutoff"), icon="mdi:power-plug-off-outline", expires=False, link_diagnostic=True),
    Entity("last_cutoff_time", "Last cut-off time", _value("last_cutoff_time"), device_class="timestamp", expires=False, link_diagnostic=True),
    Entity("top_spread", "Spread at the last top of charge", _value("top_spread"), device_class="voltage", unit=VOLT, state_class=MEASUREMENT, precision=3),
    Entity("health_event", "Cell health event", "{{ {'event_type': value_json.type, 'message': value_json.message, 'cell': value_json.cell} | tojson }}", platform="event", topic="event", event_types=("cutoff", "health_warning"), expires=False, link_diagnostic=True),
)  # fmt: skip


def health_cell_entities(count: int) -> list[Entity]:
    """Per cell, its sag and BMS-measured impedance relative to the pack's median: diagnostic."""
    out = []
    for i in range(count):
        n = i + 1
        out.append(
            Entity(f"cell_{n}_sag_ratio", f"Cell {n} sag ratio", _item("cell_sag_ratios", i), state_class=MEASUREMENT,
                   category=DIAGNOSTIC, precision=2, icon="mdi:chart-bell-curve")
        )  # fmt: skip
        out.append(
            Entity(f"cell_{n}_impedance_ratio", f"Cell {n} impedance ratio", _item("cell_impedance_ratios", i),
                   state_class=MEASUREMENT, category=DIAGNOSTIC, precision=2, icon="mdi:omega")
        )  # fmt: skip
    return out


def cell_entities(count: int) -> list[Entity]:
    """Per-cell voltages and impedances: diagnostic, enabled (a dashboard shows them)."""
    out = []
    for i in range(count):
        n = i + 1
        out.append(
            Entity(f"cell_{n}_voltage", f"Cell {n} voltage", _item("cell_voltages", i), device_class="voltage",
                   unit=VOLT, state_class=MEASUREMENT, category=DIAGNOSTIC, precision=3)
        )  # fmt: skip
        out.append(
            Entity(f"cell_{n}_impedance", f"Cell {n} impedance", _item("cell_impedances", i), unit=MILLIOHM,
                   state_class=MEASUREMENT, category=DIAGNOSTIC, precision=1, icon="mdi:omega")
        )  # fmt: skip
    return out


def object_id(device_id: str, key: str) -> str:
    """The entity id's part after the platform, as Home Assistant makes it of what we
    propose: its slugify (homeassistant/util/__init__.py, python-slugify) of a device id,
    which holds only letters, digits, _ and -, is the lower-case text with every run of
    other characters one _, none at either end."""
    slug = re.sub(r"[^a-z0-9]+", "_", f"{device_id}_{key}".lower()).strip("_")
    return slug or "unknown"


def entity_id(platform: str, device_id: str, key: str) -> str:
    """The entity id each entity proposes: ``sensor.<device id>_cell_7_voltage``."""
    return f"{platform}.{object_id(device_id, key)}"


class Discovery:
    def __init__(self, settings: Settings, topics: Topics) -> None:
        self.device_id = settings.resolved_device_id
        self.device_name = settings.device_name
        self.topic = f"{settings.ha_prefix}/device/{self.device_id}/config"
        self._state_topic = f"{topics.prefix}/{HA_STATE}"
        self._status_topic = topics.status
        self._link_topic = topics.link
        self._cell_limit = settings.cells
        self._health = settings.cell_health
        self._prefix = topics.prefix
        # A reading older than three heartbeats is dead data, not a value.
        self.expire_after = int(settings.heartbeat * 3)
        self._retained: dict[str, str] = {}  # live component id -> platform, as the broker holds it

    def entities(self, state: BatteryState) -> list[Entity]:
        cells = self._cell_limit or state.slots or 0
        if not self._health:
            return [*BASE_ENTITIES, *cell_entities(cells)]
        return [*BASE_ENTITIES, *cell_entities(cells), *HEALTH_ENTITIES, *health_cell_entities(cells)]

    def model(self, state: BatteryState) -> str:
        return f"BMS{state.slots}T" if state.slots in MODELS else "BMS8T/16T/24T"

    def unique_id(self, key: str) -> str:
        return f"chargery_{self.device_id}_{key}"

    def component(self, entity: Entity) -> dict[str, Any]:
        c: dict[str, Any] = {
            "p": entity.platform,
            "name": entity.name,
            "unique_id": self.unique_id(entity.key),
            # The entity id to create: honoured since Home Assistant 2025.10
            # (homeassistant/components/mqtt/entity.py, MqttEntity._init_entity_id); before
            # that object_id did it, which 2025.10 on ignore when default_entity_id is there.
            # Each version drops the key it does not know (the discovery schemas remove
            # extra keys), so sending both works everywhere.
            "default_entity_id": entity_id(entity.platform, self.device_id, entity.key),
            "object_id": object_id(self.device_id, entity.key),
            "value_template": entity.template,
        }
        optional = {
            "device_class": entity.device_class,
            "unit_of_measurement": entity.unit,
            "state_class": entity.state_class,
            "entity_category": entity.category,
            "icon": entity.icon,
            "suggested_display_precision": entity.precision,
        }
        c.update({k: v for k, v in optional.items() if v is not None})
        if entity.options is not None:
            c["options"] = list(entity.options)
        if entity.topic is not None:
            c["state_topic"] = f"{self._prefix}/{entity.topic}"
        if entity.event_types is not None:
            c["event_types"] = list(entity.event_types)
        if entity.attributes is not None:
            c["json_attributes_topic"] = self._state_topic
            c["json_attributes_template"] = entity.attributes
        if not entity.enabled:
            c["enabled_by_default"] = False
        if entity.expires and entity.platform != "event":  # an event does not expire
            c["expire_after"] = self.expire_after
        if entity.link_diagnostic:
            # Still meaningful with the BMS silent: only the daemon must be up.
            c["availability"] = [self._availability(self._status_topic)]
        return c

    def _availability(self, topic: str) -> dict[str, str]:
        return {"topic": topic, "payload_available": ONLINE, "payload_not_available": OFFLINE}

    def config(self, state: BatteryState) -> dict[str, Any]:
        components = {e.key: self.component(e) for e in self.entities(state)}
        for key, platform in self.obsolete(state).items():
            components[key] = {"p": platform}  # only the platform: Home Assistant removes it
        return {
            "device": {
                "identifiers": [f"chargery_{self.device_id}"],
                "name": self.device_name,
                "manufacturer": "Chargery",
                "model": self.model(state),
                "sw_version": __version__,
            },
            "origin": {"name": "chargery", "sw_version": __version__},
            "availability": [self._availability(self._status_topic), self._availability(self._link_topic)],
            "availability_mode": "all",
            "state_topic": self._state_topic,
            "qos": 0,
            "components": components,
        }

    def messages(self, state: BatteryState) -> list[tuple[str, str]]:
        """The announcement. Once it is published the broker holds it, stubs and all: the
        stubs are not needed again, unless the broker says otherwise (:meth:`note_retained`)."""
        config = self.config(state)
        self._retained = {key: c["p"] for key, c in config["components"].items() if len(c) > 1}
        return [(self.topic, json.dumps(config))]

    def obsolete(self, state: BatteryState) -> dict[str, str]:
        """Components announced before that this daemon no longer publishes. Decided only once
        the cell count is known, so a restart never removes and re-adds the cell entities."""
        if not (self._cell_limit or state.slots):
            return {}
        current = {e.key for e in self.entities(state)}
        return {k: p for k, p in self._retained.items() if k not in current}

    def note_retained(self, payload: bytes, state: BatteryState) -> bool:
        """Our config as the broker holds it (we subscribe to it). True when it lists
        components that must now be removed, i.e. when to announce again."""
        try:
            old = json.loads(payload) if payload else {}
            components = old.get("components") or old.get("cmps") or {}
            self._retained = {str(k): str(v.get("p") or v.get("platform")) for k, v in components.items() if len(v) > 1}
        except (ValueError, AttributeError):
            self._retained = {}
        return bool(self.obsolete(state))


def output(settings: Settings, topics: Topics) -> Output | None:
    """The device announcement (retained), again whenever Home Assistant comes online and
    when the broker holds entities this daemon no longer publishes."""
    if not settings.ha_discovery:
        return None
    discovery = Discovery(settings, topics)
    birth = settings.ha_status_topic

    def on_message(topic: str, payload: bytes, retained: bool, world: Context) -> str | None:
        if topic == birth and payload.strip().lower() == ONLINE.encode():
            return "Home Assistant came online: announcing the device again"
        # Only what the broker held when we subscribed (MQTT 3.1.1 sets RETAIN only on
        # those): the echo of our own announcement must not hide older entities.
        if topic == discovery.topic and retained and discovery.note_retained(payload, world.state):
            return "Home Assistant: removing entities this daemon no longer publishes"
        return None

    return Output(
        "discovery",
        discovery.topic,
        Timing(announce=True, model_change=True, live=False),
        lambda world: discovery.messages(world.state),
        retain=True,
        qos=1,
        subscriptions=(birth, discovery.topic),
        on_message=on_message,
    )


def ha_state_output(settings: Settings, topics: Topics) -> Output | None:
    """``ha_state``: what the entities read, the ``state`` document with each value held
    within its deadband (:data:`DEADBANDS`, :mod:`chargerybms.outputs.ha_view`) and only the keys
    the entities read. Made with every ``state``, so never older than it, but sent only when
    it changed (or at the heartbeat): held values mostly do not, and each message is a round
    of template rendering for every entity in Home Assistant."""
    if not settings.ha_discovery:
        return None
    view = HaView(DEADBANDS, settings.ha_max_age)
    every = [*BASE_ENTITIES, *cell_entities(24), *HEALTH_ENTITIES, *health_cell_entities(24)]
    templates = [t for e in every if e.topic is None for t in (e.template, e.attributes) if t]
    read = {key for t in templates for key in re.findall(r"value_json\.(\w+)", t)}
    read |= {rule.of for rule in DEADBANDS.values() if isinstance(rule, Extreme)}

    def build(world: Context) -> str | None:
        state = world.state
        if not state.has_data:
            return None
        document = {k: v for k, v in state.document(world.document_extra()).items() if k in read}
        return view.payload(document, world.now, bool(world.link_online))

    timing = Timing(burst=True, link_offline=True, announce=True, changes_only=True)
    return Output("ha_state", f"{topics.prefix}/{HA_STATE}", timing, build)
