"""A Home Assistant dashboard for the device the daemon with the same settings publishes.

``python3 chargery.py dashboard`` prints it as YAML for a new dashboard's raw
configuration editor. It names the entities by the ids discovery proposes for them
(:func:`chargerybms.outputs.discovery.entity_id`), so it needs nothing from Home Assistant, and it
uses only cards that ship with Home Assistant (markdown with templates, tiles, entities,
history and statistics graphs): no custom card to install or to break with an update.

Meant for Home Assistant 2024.11 or later: device-based MQTT discovery (which the daemon
uses) came in 2024.11, and the sections layout it uses (heading cards, ``column_span``,
``grid_options``) between 2024.9 and 2024.11.

A silent BMS or a stopped daemon shows as such: the entities are then unavailable (their
availability is the daemon's ``status`` and the BMS ``link``), the tiles say so, and the
cards drawn by templates say why instead of showing numbers.

The view is a list of sections, each built by one function from :class:`Pack`; a new
section (cell health, say) is one function and one entry in :data:`SECTIONS`.

Pure: builds data and text, no I/O. The YAML is written here, without a YAML library (the
command runs where only the daemon's dependencies are): block style, every string in
double quotes with JSON's escapes, which YAML reads the same, and templates as literal
blocks so that they stay readable in the editor.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from ..outputs.discovery import BASE_ENTITIES, HEALTH_ENTITIES, cell_entities, entity_id, health_cell_entities
from ..protocol import MODELS

Card = dict[str, Any]
Section = dict[str, Any]
BAR_WIDTH: Final = 20  # characters of the longest cell bar
IMPEDANCES_PER_ROW: Final = 2  # cells a row of the impedance table (pairs of columns: cell, mΩ)
HIGH_COLOUR, LOW_COLOUR = "#db4437", "#039be5"  # Home Assistant's red and light blue


@dataclass(frozen=True)
class Pack:
    """What the dashboard is for: the device id and name discovery announces, and the
    cells really wired (``--cells``, else the slots of the model)."""

    device_id: str
    name: str
    cells: int
    health: bool = True  # --cell-health: the cell-health entities are announced

    def entity(self, key: str) -> str:
        """The entity id of the discovery entity ``key`` (an unknown key is an error here,
        not an "Entity not found" on someone's screen)."""
        health = (*HEALTH_ENTITIES, *health_cell_entities(self.cells)) if self.health else ()
        for e in (*BASE_ENTITIES, *cell_entities(self.cells), *health):
            if e.key == key:
                return entity_id(e.platform, self.device_id, key)
        raise KeyError(f"discovery announces no entity {key!r}")

    def cell(self, n: int, what: str = "voltage") -> str:
        return self.entity(f"cell_{n}_{what}")


# --- the templates -------------------------------------------------------------------------
# Markdown cards render Jinja on Home Assistant's side (strict: an undefined name is an
# error) and show the result as Markdown, sanitised (no style attributes; <ha-alert> is
# allowed: home-assistant/frontend src/resources/markdown-worker.ts).


def _liveness(pack: Pack) -> str:
    """Jinja that sets ``live`` and, when the values are not live, says why."""
    link, last = pack.entity("link"), pack.entity("last_frame")
    return f"""\
{{%- set link = states('{link}') -%}}
{{%- set last = states('{last}') -%}}
{{%- set live = link == 'on' -%}}
{{%- if link == 'off' -%}}
<ha-alert alert-type="warning" title="The BMS is silent">No frame since {{{{ as_timestamp(last) | timestamp_custom('%H:%M:%S on %d %b') if as_timestamp(last, none) is not none else 'the daemon started' }}}}{{{{ ' (' ~ relative_time(as_datetime(last)) ~ ' ago)' if as_timestamp(last, none) is not none else '' }}}}. Values come back when it speaks again (is its display unit asleep?).</ha-alert>
{{%- elif link in ['unavailable'] -%}}
<ha-alert alert-type="error" title="The chargery daemon is stopped">Or it cannot reach the MQTT broker: no values until it is back.</ha-alert>
{{%- elif not live -%}}
<ha-alert alert-type="info" title="Waiting for the BMS">No frame from the BMS yet.</ha-alert>
{{%- endif %}}
"""


def _status_markdown(pack: Pack) -> str:
    fps = pack.entity("frames_per_second")
    return (
        _liveness(pack)
        + f"""\
{{%- if live %}}
**BMS link live**: last frame {{{{ as_timestamp(last) | timestamp_custom('%H:%M:%S') if as_timestamp(last, none) is not none else '—' }}}}{{{{ ', ' ~ states('{fps}') ~ ' frames/s' if states('{fps}') | is_number else '' }}}}
{{%- endif %}}"""
    )


def _cells_markdown(pack: Pack) -> str:
    ids = ", ".join(f"'{pack.cell(n)}'" for n in range(1, pack.cells + 1))
    low, high = pack.entity("discharge_end_voltage"), pack.entity("charge_end_voltage")
    steps = BAR_WIDTH * 8
    return (
        _liveness(pack)
        + f"""\
{{%- if live -%}}
{{%- set ns = namespace(v=[]) -%}}
{{%- for e in [{ids}] -%}}
{{%- set ns.v = ns.v + [states(e) | float(none)] -%}}
{{%- endfor -%}}
{{%- set known = ns.v | reject('none') | list -%}}
{{%- set bottom = states('{low}') | float(2.5) -%}}
{{%- set top = states('{high}') | float(3.65) -%}}
{{%- if top <= bottom -%}}{{%- set bottom, top = 2.5, 3.65 -%}}{{%- endif -%}}
{{%- set hi = known | max if known else none -%}}
{{%- set lo = known | min if known else none -%}}
{{%- set hi_cell = ns.v.index(hi) + 1 if known and hi > lo else 0 -%}}
{{%- set lo_cell = ns.v.index(lo) + 1 if known and hi > lo else 0 %}}
{{% if known -%}}
Spread **{{{{ ((hi - lo) * 1000) | round | int }}}} mV** · highest cell {{{{ hi_cell if hi_cell else '—' }}}} · lowest cell {{{{ lo_cell if lo_cell else '—' }}}} · bars from {{{{ '%.2f' | format(bottom) }}}} V to {{{{ '%.2f' | format(top) }}}} V (the BMS's cut-offs)
{{%- endif %}}

| Cell | | Voltage | |
|--:|:--|--:|:--|
{{% for v in ns.v -%}}
{{%- set n = loop.index -%}}
{{%- if v is none -%}}
| {{{{ n }}}} | | — | |
{{% else -%}}
{{%- set eighths = ([0, [((v - bottom) / (top - bottom) * {steps}) | round | int, {steps}] | min] | max) -%}}
{{%- set bar = '█' * (eighths // 8) ~ ['', '▏', '▎', '▍', '▌', '▋', '▊', '▉'][eighths % 8] -%}}
| {{{{ n }}}} | {{{{ ('<font color="{HIGH_COLOUR}">' ~ bar ~ '</font>') if n == hi_cell else (('<font color="{LOW_COLOUR}">' ~ bar ~ '</font>') if n == lo_cell else bar) }}}} | {{{{ ('**%.3f V**' if n in [hi_cell, lo_cell] else '%.3f V') | format(v) }}}} | {{{{ '▲ highest' if n == hi_cell else ('▼ lowest' if n == lo_cell else '') }}}} |
{{% endif -%}}
{{%- endfor -%}}
{{%- endif %}}"""
    )


def _impedance_markdown(pack: Pack) -> str:
    ids = ", ".join(f"'{pack.cell(n, 'impedance')}'" for n in range(1, pack.cells + 1))
    when, total = pack.entity("impedances_measured"), pack.entity("impedance_total")
    # Two cells a row: the section is one column of the view (about 340 px at 1400 px, the
    # whole width of a phone), where four pairs of columns overflowed the card and cut off
    # every fourth cell once the values had four or five characters (102.1 mΩ).
    per_row = IMPEDANCES_PER_ROW
    header = "| " + " | ".join(["Cell | mΩ"] * per_row) + " |\n|" + "--:|" * (2 * per_row)
    return (
        _liveness(pack)
        + f"""\
{{%- if live -%}}
{{%- set when = states('{when}') -%}}
{{%- if as_timestamp(when, none) is none %}}
Not measured since the daemon started: the BMS measures the impedances when the current changes direction.
{{%- else %}}
Measured at {{{{ as_timestamp(when) | timestamp_custom('%H:%M on %d %b') }}}} ({{{{ relative_time(as_datetime(when)) }}}} ago); total {{{{ states('{total}') }}}} mΩ.

{header}
{{%- set ns = namespace(row='') -%}}
{{%- for e in [{ids}] -%}}
{{%- set ns.row = ns.row ~ '| ' ~ loop.index ~ ' | ' ~ (states(e) if states(e) | is_number else '—') ~ ' ' -%}}
{{%- if loop.index % {per_row} == 0 or loop.last %}}
{{{{ ns.row }}}}|
{{%- set ns.row = '' -%}}
{{%- endif -%}}
{{%- endfor -%}}
{{%- endif -%}}
{{%- endif %}}"""
    )


def _health_markdown(pack: Pack) -> str:
    """The verdict and its evidence, the last cut-off, and per cell the evidence behind it."""
    weakest, warning = pack.entity("weakest_cell"), pack.entity("health_warning")
    cutoff, when = pack.entity("last_cutoff"), pack.entity("last_cutoff_time")
    sag = ", ".join(f"'{pack.cell(n, 'sag_ratio')}'" for n in range(1, pack.cells + 1))
    imp = ", ".join(f"'{pack.cell(n, 'impedance_ratio')}'" for n in range(1, pack.cells + 1))
    return f"""\
{{%- set weakest = states('{weakest}') -%}}
{{%- set evidence = state_attr('{weakest}', 'evidence') or '' -%}}
{{%- if is_state('{warning}', 'on') and weakest | is_number -%}}
<ha-alert alert-type="warning" title="Cell {{{{ weakest }}}} is failing">{{{{ evidence }}}}</ha-alert>
{{%- elif is_state('{warning}', 'on') -%}}
<ha-alert alert-type="warning" title="Check the wiring">{{{{ evidence }}}}</ha-alert>
{{%- elif weakest | is_number -%}}
<ha-alert alert-type="info" title="Cell {{{{ weakest }}}} is the weakest">{{{{ evidence }}}} (not strong enough for a warning yet)</ha-alert>
{{%- elif weakest == 'none' and evidence -%}}
<ha-alert alert-type="info" title="No cell stands out">{{{{ evidence }}}} (not strong enough for a warning yet)</ha-alert>
{{%- elif weakest == 'none' -%}}
**No cell stands out**: the evidence so far names no weak cell.
{{%- else -%}}
<ha-alert alert-type="info" title="Cell health unknown">No verdict from chargery (stopped, or not yet heard from).</ha-alert>
{{%- endif %}}

**Last cut-off**: {{{{ states('{cutoff}') if states('{cutoff}') not in ['none', 'unknown', 'unavailable'] else 'none since the evidence began' }}}}{{{{ ' (' ~ relative_time(as_datetime(states('{when}'))) ~ ' ago)' if as_timestamp(states('{when}'), none) is not none else '' }}}}

Sag and impedance relative to the pack's median (1.00 is typical):

| Cell | Sag | Impedance | |
|--:|--:|--:|:--|
{{% set sag = [{sag}] -%}}
{{%- for e in [{imp}] -%}}
{{%- set n = loop.index -%}}
| {{{{ n }}}} | {{{{ '%.2f' | format(states(sag[n - 1]) | float) if states(sag[n - 1]) | is_number else '—' }}}} | {{{{ '%.2f' | format(states(e) | float) if states(e) | is_number else '—' }}}} | {{{{ '◀ weakest' if weakest == n | string else '' }}}} |
{{% endfor -%}}"""


# --- the sections ----------------------------------------------------------------------------


def _heading(text: str, icon: str) -> Card:
    return {"type": "heading", "heading": text, "icon": icon}


def _tile(pack: Pack, key: str, name: str, **extra: Any) -> Card:
    return {"type": "tile", "entity": pack.entity(key), "name": name, **extra}


def _markdown(content: str, **extra: Any) -> Card:
    return {"type": "markdown", "content": content, **extra}


def glance_section(pack: Pack) -> Section:
    """The battery at a glance: is the BMS live, state of charge, power, the meters."""
    tiles = [
        ("soc", "State of charge"),
        ("power", "Power"),
        ("current", "Current"),
        ("pack_voltage", "Pack voltage"),
        ("mode", "Mode"),
        ("temperature_1", "Temperature 1"),
        ("temperature_2", "Temperature 2"),
        ("cell_delta", "Cell difference"),
        ("energy_charged", "Energy charged"),
        ("energy_discharged", "Energy discharged"),
    ]
    return {
        "type": "grid",
        "column_span": 2,
        "cards": [
            _heading(pack.name, "mdi:battery-heart-variant"),
            _markdown(_status_markdown(pack), text_only=True, grid_options={"columns": "full"}),
            *(_tile(pack, key, name) for key, name in tiles),
        ],
    }


def cells_section(pack: Pack) -> Section:
    """Every cell as a bar with its voltage, the highest and lowest marked, the spread."""
    return {
        "type": "grid",
        "column_span": 2,
        "cards": [
            _heading("Cells", "mdi:battery-outline"),
            _markdown(_cells_markdown(pack), grid_options={"columns": "full"}),
        ],
    }


def history_section(pack: Pack) -> Section:
    """The cells over the last day, on one axis; the energy meters per day."""
    cells = [{"entity": pack.cell(n), "name": f"Cell {n}"} for n in range(1, pack.cells + 1)]
    return {
        "type": "grid",
        "column_span": 2,
        "cards": [
            _heading("History", "mdi:chart-line"),
            {
                "type": "history-graph",
                "title": "Cell voltages, last 24 hours",
                "hours_to_show": 24,
                "entities": cells,
                "grid_options": {"columns": "full"},
            },
            {
                "type": "statistics-graph",
                "title": "Energy per day",
                "entities": [
                    {"entity": pack.entity("energy_charged"), "name": "Charged"},
                    {"entity": pack.entity("energy_discharged"), "name": "Discharged"},
                ],
                "stat_types": ["change"],
                "period": "day",
                "days_to_show": 7,
                "chart_type": "bar",
                "grid_options": {"columns": "full"},
            },
        ],
    }


def impedance_section(pack: Pack) -> Section:
    """Each cell's impedance, and when the BMS measured them."""
    return {
        "type": "grid",
        "cards": [
            _heading("Impedance", "mdi:omega"),
            _markdown(_impedance_markdown(pack), grid_options={"columns": "full"}),
        ],
    }


def protection_section(pack: Pack) -> Section:
    """The protection flags and the cut-offs they act on."""
    return {
        "type": "grid",
        "cards": [
            _heading("Protection", "mdi:shield-check-outline"),
            _tile(pack, "charge_protection", "Charge protection"),
            _tile(pack, "discharge_protection", "Discharge protection"),
            _tile(pack, "charge_end_voltage", "Charge end voltage"),
            _tile(pack, "discharge_end_voltage", "Discharge end voltage"),
        ],
    }


def health_section(pack: Pack) -> Section | None:
    """Which cell is failing and why the BMS last cut off (the cell-health engine)."""
    if not pack.health:
        return None
    return {
        "type": "grid",
        "column_span": 2,
        "cards": [
            _heading("Cell health", "mdi:battery-alert-variant-outline"),
            _tile(pack, "health_warning", "Cell health"),
            _tile(pack, "weakest_cell", "Weakest cell"),
            _tile(pack, "top_spread", "Spread at the last top"),
            _markdown(_health_markdown(pack), grid_options={"columns": "full"}),
        ],
    }


def link_section(pack: Pack) -> Section:
    """The serial link: live or not, when the last frame came, its quality."""
    return {
        "type": "grid",
        "cards": [
            _heading("BMS link", "mdi:serial-port"),
            {
                "type": "entities",
                "state_color": True,
                "entities": [
                    {"entity": pack.entity("link"), "name": "Link"},
                    {"entity": pack.entity("last_frame"), "name": "Last frame", "format": "relative"},
                    {"entity": pack.entity("frames_per_second"), "name": "Frames per second"},
                    {"entity": pack.entity("checksum_failures"), "name": "Corrupted frames"},
                ],
            },
        ],
    }


# In page order. A new section is a function of the Pack and one entry here.
SECTIONS: Final[tuple[Callable[[Pack], Section | None], ...]] = (
    glance_section,
    cells_section,
    history_section,
    impedance_section,
    health_section,
    protection_section,
    link_section,
)


def dashboard(pack: Pack) -> dict[str, Any]:
    """The whole dashboard, as the raw configuration editor takes it."""
    return {
        "title": pack.name,
        "views": [
            {
                "title": pack.name,
                "path": re.sub(r"[^a-z0-9]+", "-", pack.device_id.lower()).strip("-") or "battery",
                "icon": "mdi:battery-heart-variant",
                "type": "sections",
                "max_columns": 4,
                "sections": [s for s in (section(pack) for section in SECTIONS) if s is not None],
            }
        ],
    }


# --- YAML --------------------------------------------------------------------------------------

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a YAML double-quoted one


# Plain words that YAML 1.1 readers take for booleans or null.
_RESERVED: Final = frozenset({"y", "yes", "n", "no", "true", "false", "on", "off", "null"})


def _key(key: str) -> str:
    plain = _PLAIN_KEY.fullmatch(key) and key.lower() not in _RESERVED
    return key if plain else json.dumps(key, ensure_ascii=False)


def _block(text: str, indent: str) -> list[str]:
    """A multi-line string as a literal block (``|-``): kept as it is, final newline aside.
    Literal blocks cannot hold trailing spaces reliably or tabs: those go quoted."""
    return [f"{indent}{line}" if line else "" for line in text.split("\n")]


def _literal_ok(text: str) -> bool:
    lines = text.split("\n")
    return (
        "\n" in text
        and "\t" not in text
        and "\r" not in text
        and not text.endswith("\n")
        and not lines[0].startswith(" ")
        and all(line == line.rstrip() for line in lines)
    )


def _lines(value: Any, indent: str) -> list[str]:
    """``value`` (a mapping or a list) as block YAML lines at ``indent``."""
    out: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            out += _entry(f"{indent}{_key(str(key))}:", item, indent)
    else:
        for item in value:
            if isinstance(item, dict) and item:
                inner = _lines(item, indent + "  ")
                out.append(f"{indent}- {inner[0].lstrip()}")
                out += inner[1:]
            else:
                out += _entry(f"{indent}-", item, indent)
    return out


def _entry(head: str, item: Any, indent: str) -> list[str]:
    if isinstance(item, dict | list) and item:
        return [head, *_lines(item, indent + "  ")]
    if isinstance(item, dict | list):
        return [f"{head} {'{}' if isinstance(item, dict) else '[]'}"]
    if isinstance(item, str) and _literal_ok(item):
        return [f"{head} |-", *_block(item, indent + "  ")]
    return [f"{head} {_scalar(item)}"]


def to_yaml(value: dict[str, Any]) -> str:
    return "\n".join(_lines(value, "")) + "\n"


def render(pack: Pack) -> str:
    """The YAML to paste, with a comment saying what it is for."""
    head = (
        f"# Home Assistant dashboard for {pack.name} (device id {pack.device_id}, {pack.cells} cells),\n"
        "# made by `python3 chargery.py dashboard`. Paste it into a new dashboard:\n"
        "# Settings > Dashboards > Add dashboard > New dashboard from scratch, open it,\n"
        "# pencil > three dots > Raw configuration editor, replace everything, Save.\n"
    )
    return head + to_yaml(dashboard(pack))


def pack_for(device_id: str, name: str, cells: int | None, slots: int, health: bool = True) -> Pack:
    """The pack of the daemon's settings: ``--cells`` if given, else every slot."""
    if slots not in MODELS:
        raise ValueError(f"slots: {slots} is not a Chargery model (8, 16 or 24)")
    return Pack(device_id, name, cells or slots, health)
