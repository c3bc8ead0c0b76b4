"""Home Assistant for the bank: a device of its own ("Battery bank") by MQTT discovery, the
values its entities read (``<bank prefix>/ha_state``), and the ``dashboard --bank`` view.

Built from the single-pack pieces: the entity description and the component of
:mod:`chargerybms.discovery` (unique ids, proposed entity ids, availability, expiry), the
deadbands of its ``DEADBANDS`` and the holding rules of :mod:`chargerybms.ha_view`, and the
YAML writer of :mod:`chargerybms.dashboard`. Pure.

The bank's entities are available while the bank process runs and at least one pack is
live (its ``status`` and ``link``); the member count, the problem sensor and the bank link
while the process runs, so that "no pack live" is said, not hidden.
"""

# ruff: noqa: E501 (the entity table reads best one entity a line, as in chargerybms/discovery.py)
from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from .. import __version__
from ..commands.dashboard import to_yaml
from ..config import MemberSpec
from ..outputs.discovery import (
    AMPERE,
    CELSIUS,
    DEADBANDS,
    DIAGNOSTIC,
    MEASUREMENT,
    PERCENT,
    TOTAL_INCREASING,
    VOLT,
    WATT,
    Discovery,
    Entity,
    entity_id,
)
from ..outputs.ha_view import HA_STATE, Band, HaView, Rule


def _value(field: str) -> str:
    return f"{{{{ value_json.{field} }}}}"


def _flag(field: str) -> str:
    return f"{{{{ 'None' if value_json.{field} is none else ('ON' if value_json.{field} else 'OFF') }}}}"


def _where(which: str) -> str:
    return (
        f"{{{{ (value_json.{which}_pack ~ ', cell ' ~ value_json.{which}_index) "
        f"if value_json.{which}_pack else 'none' }}}}"
    )


BANK_ENTITIES: Final = (
    Entity("soc", "State of charge", _value("soc"), device_class="battery", unit=PERCENT, state_class=MEASUREMENT, precision=0),
    Entity("current", "Current", _value("current"), device_class="current", unit=AMPERE, state_class=MEASUREMENT, precision=1),
    Entity("power", "Power", _value("power"), device_class="power", unit=WATT, state_class=MEASUREMENT, precision=0),
    Entity("charge_power", "Charge power", _value("charge_power"), device_class="power", unit=WATT, state_class=MEASUREMENT, precision=0),
    Entity("discharge_power", "Discharge power", _value("discharge_power"), device_class="power", unit=WATT, state_class=MEASUREMENT, precision=0),
    Entity("pack_voltage", "Voltage", _value("pack_voltage"), device_class="voltage", unit=VOLT, state_class=MEASUREMENT, precision=2),
    Entity("pack_voltage_difference", "Voltage difference between packs", _value("pack_voltage_difference"), device_class="voltage", unit=VOLT, state_class=MEASUREMENT, precision=2),
    Entity("capacity_installed", "Installed capacity", _value("capacity_installed"), unit="Ah", state_class=MEASUREMENT, precision=0, icon="mdi:battery-high"),
    Entity("capacity_ah", "Charge (as reported)", _value("capacity_ah"), unit="Ah", state_class=MEASUREMENT, precision=1, icon="mdi:battery-charging-high"),
    Entity("energy_wh", "Stored energy (as reported)", _value("energy_wh"), device_class="energy_storage", unit="Wh", state_class=MEASUREMENT, precision=0),
    Entity("energy_charged", "Energy charged", _value("energy_charged"), device_class="energy", unit="kWh", state_class=TOTAL_INCREASING, precision=2),
    Entity("energy_discharged", "Energy discharged", _value("energy_discharged"), device_class="energy", unit="kWh", state_class=TOTAL_INCREASING, precision=2),
    Entity("cell_min", "Lowest cell voltage", _value("cell_min"), device_class="voltage", unit=VOLT, state_class=MEASUREMENT, precision=3),
    Entity("cell_max", "Highest cell voltage", _value("cell_max"), device_class="voltage", unit=VOLT, state_class=MEASUREMENT, precision=3),
    Entity("cell_delta", "Cell voltage difference", _value("cell_delta"), device_class="voltage", unit=VOLT, state_class=MEASUREMENT, precision=3),
    Entity("cell_min_where", "Lowest cell", _where("cell_min"), icon="mdi:battery-arrow-down-outline"),
    Entity("cell_max_where", "Highest cell", _where("cell_max"), icon="mdi:battery-arrow-up-outline"),
    Entity("temperature_min", "Lowest temperature", _value("temperature_min"), device_class="temperature", unit=CELSIUS, state_class=MEASUREMENT, precision=1),
    Entity("temperature_max", "Highest temperature", _value("temperature_max"), device_class="temperature", unit=CELSIUS, state_class=MEASUREMENT, precision=1),
    Entity("charge_protection", "Charge protection", _flag("charge_protection"), platform="binary_sensor", device_class="problem", attributes="{{ {'packs': value_json.charge_stopped_by} | tojson }}"),
    Entity("discharge_protection", "Discharge protection", _flag("discharge_protection"), platform="binary_sensor", device_class="problem", attributes="{{ {'packs': value_json.discharge_stopped_by} | tojson }}"),
    Entity("weakest_cell", "Weakest cell", "{{ (value_json.weakest_cell_pack ~ ', cell ' ~ value_json.weakest_cell) if value_json.weakest_cell_pack else 'none' }}", icon="mdi:battery-alert-variant-outline", attributes="{{ {'warning': value_json.health_warning, 'evidence': value_json.health_evidence} | tojson }}"),
    Entity("members_live", "Packs live", _value("members_live"), state_class=MEASUREMENT, icon="mdi:battery-sync", link_diagnostic=True, expires=False, attributes="{{ {'members': value_json.members, 'missing': value_json.members_missing} | tojson }}"),
    Entity("problem", "Problem", "{{ 'ON' if value_json.problem else 'OFF' }}", platform="binary_sensor", device_class="problem", link_diagnostic=True, expires=False, attributes="{{ {'problems': value_json.problems[:255]} | tojson }}"),
    Entity("link", "Bank link", "{{ 'ON' if value_json.link == 'online' else 'OFF' }}", platform="binary_sensor", device_class="connectivity", category=DIAGNOSTIC, link_diagnostic=True, expires=False),
)  # fmt: skip

PACK_KEYS: Final = ("soc", "current", "cell_delta", "live")  # per pack, flattened into ha_state


def pack_entities(members: Sequence[MemberSpec]) -> list[Entity]:
    """Per pack, side by side on the dashboard: its state of charge, current, spread, liveness."""
    out: list[Entity] = []
    for n, spec in enumerate(members, start=1):
        p = f"pack_{n}_"
        out += [
            Entity(f"{p}soc", f"{spec.name} state of charge", _value(f"{p}soc"), device_class="battery", unit=PERCENT, state_class=MEASUREMENT, precision=0),
            Entity(f"{p}current", f"{spec.name} current", _value(f"{p}current"), device_class="current", unit=AMPERE, state_class=MEASUREMENT, precision=1),
            Entity(f"{p}cell_delta", f"{spec.name} cell voltage difference", _value(f"{p}cell_delta"), device_class="voltage", unit=VOLT, state_class=MEASUREMENT, precision=3),
            Entity(f"{p}live", f"{spec.name} live", f"{{{{ 'ON' if value_json.{p}live else 'OFF' }}}}", platform="binary_sensor", device_class="connectivity", link_diagnostic=True, expires=False),
        ]  # fmt: skip
    return out


def entities(members: Sequence[MemberSpec]) -> list[Entity]:
    return [*BANK_ENTITIES, *pack_entities(members)]


def _bank_rules(members: Sequence[MemberSpec]) -> dict[str, Rule]:
    rules: dict[str, Rule] = {k: r for k, r in DEADBANDS.items() if isinstance(r, Band)}
    rules |= {
        "temperature_min": Band(0.5, every=10),
        "temperature_max": Band(0.5, every=10),
        "pack_voltage_difference": Band(0.05, every=10),
    }
    for n in range(1, len(members) + 1):
        for key in ("soc", "current", "cell_delta"):
            rules[f"pack_{n}_{key}"] = DEADBANDS[key]
    return rules


def ha_document(bank: Mapping[str, Any], members: Sequence[MemberSpec]) -> dict[str, Any]:
    """What the entities read: the bank's keys they use, and each pack's flattened."""
    read = {
        k
        for e in entities(members)
        for t in (e.template, e.attributes)
        if t
        for k in re.findall(r"value_json\.(\w+)", t)
    }
    doc = {k: v for k, v in bank.items() if k in read}
    for pack in bank.get("packs") or []:
        for key in PACK_KEYS:
            doc[f"pack_{pack['number']}_{key}"] = pack.get(key)
    return doc


class BankHa:
    """The bank's discovery and ``ha_state``, for the bank's own settings (its prefix)."""

    def __init__(self, discovery: Discovery, prefix: str, members: Sequence[MemberSpec], max_age: float) -> None:
        self.discovery = discovery
        self.prefix = prefix
        self.members = list(members)
        self.view = HaView(_bank_rules(members), max_age)
        self._live: tuple[bool, ...] = ()
        self.obsolete: dict[str, str] = {}  # component -> platform: announced before, gone now

    @property
    def topic(self) -> str:
        return self.discovery.topic

    def config(self) -> dict[str, Any]:
        d = self.discovery
        status = {"topic": f"{self.prefix}/status", "payload_available": "online", "payload_not_available": "offline"}
        link = {**status, "topic": f"{self.prefix}/link"}
        return {
            "device": {
                "identifiers": [f"chargery_{d.device_id}"],
                "name": d.device_name,
                "manufacturer": "chargery",
                "model": f"Bank of {len(self.members)} Chargery packs in parallel",
                "sw_version": __version__,
            },
            "origin": {"name": "chargery", "sw_version": __version__},
            "availability": [status, link],
            "availability_mode": "all",
            "state_topic": f"{self.prefix}/{HA_STATE}",
            "qos": 0,
            "components": {
                **{e.key: d.component(e) for e in entities(self.members)},
                **{key: {"p": platform} for key, platform in self.obsolete.items()},  # Home Assistant removes them
            },
        }

    def note_retained(self, payload: bytes) -> bool:
        """Our config as the broker held it when we subscribed: True when it lists entities
        the bank no longer announces (fewer members than before), i.e. when to announce again."""
        try:
            old = json.loads(payload) if payload else {}
            components = old.get("components") or {}
            announced = {str(k): str(v.get("p")) for k, v in components.items() if len(v) > 1}
        except (ValueError, AttributeError):
            return False
        current = {e.key for e in entities(self.members)}
        self.obsolete = {k: p for k, p in announced.items() if k not in current}
        return bool(self.obsolete)

    def payload(self, bank: Mapping[str, Any], now: float) -> str:
        """Held within the deadbands, but nothing held across a pack coming or going: the
        sums jump then, and the bank's values must follow at once."""
        live = tuple(p["live"] for p in bank.get("packs") or [])
        if live != self._live:
            self.view.reset()
            self._live = live
        return self.view.payload(ha_document(bank, self.members), now, bank.get("link") == "online")


# --- the dashboard ---------------------------------------------------------------------------


def _id(device_id: str, members: Sequence[MemberSpec], key: str) -> str:
    for e in entities(members):
        if e.key == key:
            return entity_id(e.platform, device_id, key)
    raise KeyError(f"the bank announces no entity {key!r}")


def _glance_markdown(device_id: str, members: Sequence[MemberSpec]) -> str:
    def e(key: str) -> str:
        return _id(device_id, members, key)

    return f"""\
{{%- set live = states('{e("members_live")}') -%}}
{{%- set problems = state_attr('{e("problem")}', 'problems') -%}}
{{%- if live in ['unavailable', 'unknown'] -%}}
<ha-alert alert-type="error" title="The bank is stopped">Or it cannot reach the MQTT broker: no values until it is back.</ha-alert>
{{%- elif live | int(0) == 0 -%}}
<ha-alert alert-type="error" title="No pack is live">{{{{ problems }}}}</ha-alert>
{{%- else -%}}
**{{{{ live }}}} of {len(members)} packs live**
{{%- if is_state('{e("problem")}', 'on') %}}
<ha-alert alert-type="warning" title="A pack needs a look">{{{{ problems }}}}</ha-alert>
{{%- endif %}}
{{%- endif %}}
"""


def _cells_markdown(device_id: str, members: Sequence[MemberSpec]) -> str:
    def e(key: str) -> str:
        return _id(device_id, members, key)

    return f"""\
{{%- set low = states('{e("cell_min")}') -%}}
{{%- set high = states('{e("cell_max")}') -%}}
{{%- if low | is_number and high | is_number -%}}
Lowest cell: **{{{{ '%.3f' | format(low | float) }}}} V**, {{{{ states('{e("cell_min_where")}') }}}}
Highest cell: **{{{{ '%.3f' | format(high | float) }}}} V**, {{{{ states('{e("cell_max_where")}') }}}}
Spread: **{{{{ ((high | float - low | float) * 1000) | round(0) | int }}}} mV**
{{%- else -%}}
No cell values: no pack is live.
{{%- endif %}}
"""


def _packs_markdown(device_id: str, members: Sequence[MemberSpec]) -> str:
    def e(key: str) -> str:
        return _id(device_id, members, key)

    rows = []
    for n, spec in enumerate(members, start=1):
        p = f"pack_{n}_"
        rows.append(
            f"{{%- if is_state('{e(p + 'live')}', 'on') %}}\n"
            f"| {spec.name} | live | {{{{ states('{e(p + 'soc')}') }}}} % | {{{{ states('{e(p + 'current')}') }}}} A "
            f"| {{{{ (states('{e(p + 'cell_delta')}') | float(0) * 1000) | round(0) | int }}}} mV |\n"
            f"{{%- else %}}\n| {spec.name} | **not live** | | | |\n{{%- endif %}}"
        )
    return "| Pack | | State of charge | Current | Spread |\n|---|---|---|---|---|\n" + "\n".join(rows) + "\n"


def dashboard(device_id: str, name: str, members: Sequence[MemberSpec]) -> dict[str, Any]:
    """The bank at a glance, its lowest and highest cell, and the packs side by side."""

    def e(key: str) -> str:
        return _id(device_id, members, key)

    def tile(key: str, title: str) -> dict[str, Any]:
        return {"type": "tile", "entity": e(key), "name": title}

    glance = {
        "type": "grid",
        "column_span": 2,
        "cards": [
            {"type": "heading", "heading": name, "icon": "mdi:battery-high"},
            {"type": "markdown", "content": _glance_markdown(device_id, members), "text_only": True, "grid_options": {"columns": "full"}},
            tile("soc", "State of charge"),
            tile("power", "Power"),
            tile("current", "Current"),
            tile("pack_voltage", "Voltage"),
            tile("pack_voltage_difference", "Difference between packs"),
            tile("members_live", "Packs live"),
            tile("temperature_min", "Lowest temperature"),
            tile("temperature_max", "Highest temperature"),
            tile("energy_charged", "Energy charged"),
            tile("energy_discharged", "Energy discharged"),
            tile("problem", "Problem"),
            tile("weakest_cell", "Weakest cell"),
        ],
    }  # fmt: skip
    cells = {
        "type": "grid",
        "column_span": 2,
        "cards": [
            {"type": "heading", "heading": "Cells of the bank", "icon": "mdi:battery-outline"},
            {"type": "markdown", "content": _cells_markdown(device_id, members), "grid_options": {"columns": "full"}},
            {"type": "markdown", "content": _packs_markdown(device_id, members), "grid_options": {"columns": "full"}},
        ],
    }
    packs = [
        {
            "type": "grid",
            "cards": [
                {"type": "heading", "heading": spec.name, "icon": "mdi:car-battery"},
                tile(f"pack_{n}_live", "Live"),
                tile(f"pack_{n}_soc", "State of charge"),
                tile(f"pack_{n}_current", "Current"),
                tile(f"pack_{n}_cell_delta", "Cell difference"),
            ],
        }
        for n, spec in enumerate(members, start=1)
    ]
    history = {
        "type": "grid",
        "column_span": 2,
        "cards": [
            {"type": "heading", "heading": "History", "icon": "mdi:chart-line"},
            {
                "type": "history-graph",
                "title": "State of charge",
                "hours_to_show": 24,
                "entities": [{"entity": e("soc"), "name": "Bank"}]
                + [{"entity": e(f"pack_{n}_soc"), "name": s.name} for n, s in enumerate(members, start=1)],
            },
            {
                "type": "history-graph",
                "title": "Lowest and highest cell",
                "hours_to_show": 24,
                "entities": [{"entity": e("cell_min"), "name": "Lowest"}, {"entity": e("cell_max"), "name": "Highest"}],
            },
        ],
    }
    return {
        "title": name,
        "views": [
            {
                "title": name,
                "path": re.sub(r"[^a-z0-9]+", "-", device_id.lower()).strip("-") or "bank",
                "icon": "mdi:battery-high",
                "type": "sections",
                "max_columns": 4,
                "sections": [glance, cells, *packs, history],
            }
        ],
    }


def render(device_id: str, name: str, members: Sequence[MemberSpec]) -> str:
    head = (
        f"# Home Assistant dashboard for {name} (device id {device_id}, {len(members)} packs),\n"
        "# made by `python3 chargery.py dashboard --bank`. Paste it into a new dashboard:\n"
        "# Settings > Dashboards > Add dashboard > New dashboard from scratch, open it,\n"
        "# pencil > three dots > Raw configuration editor, replace everything, Save.\n"
    )
    return head + to_yaml(dashboard(device_id, name, members))


def discovery_messages(ha: BankHa) -> list[tuple[str, str]]:
    return [(ha.topic, json.dumps(ha.config()))]
