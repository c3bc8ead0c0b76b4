"""``chargery.py dashboard``: YAML that reads back as the dashboard, naming only entities
discovery announces, with only cards that ship with Home Assistant. (What it looks like
in a real Home Assistant: tests/test_home_assistant.py.)"""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

import pytest
import yaml
from helpers import CHARGERY

from chargerybms.battery import BatteryState
from chargerybms.commands.dashboard import SECTIONS, Pack, dashboard, pack_for, render, to_yaml
from chargerybms.config import load
from chargerybms.outputs.discovery import Discovery
from chargerybms.protocol import encode_cells
from chargerybms.topics import Topics

# The card types of home-assistant/frontend src/panels/lovelace/cards/hui-*-card.ts that the
# dashboard may use: all built in, none from HACS ("custom:").
BUILT_IN = {"heading", "markdown", "tile", "entities", "history-graph", "statistics-graph"}


def cards(config: dict[str, Any]) -> list[dict[str, Any]]:
    return [card for view in config["views"] for section in view["sections"] for card in section["cards"]]


@pytest.mark.parametrize("cells", [8, 16, 20, 24])
def test_the_yaml_reads_back_as_the_dashboard(cells: int) -> None:
    pack = Pack("garage", 'Bob\'s "shed": #1 ✓', cells)
    text = render(pack)
    assert yaml.safe_load(text) == dashboard(pack)
    assert "\t" not in text


def test_any_string_survives_the_yaml() -> None:
    tricky = ["", " lead", "trail ", "a: b", "- x", "#no", "yes", "null", "1.5", "'q'", '"dq"', "tab\there",
              "two\nlines", "two\nlines\n", " indented\nfirst", "trailing \nspace", "{{ x }}", "ü ✓ Ω",
              "\\back"]  # fmt: skip
    value = {"list": tricky, "map": {s or "empty": s for s in tricky}, "empty": [], "none": {}, "n": 1.5, "b": True}
    assert yaml.safe_load(to_yaml(value)) == value


def test_only_cards_that_ship_with_home_assistant() -> None:
    config = dashboard(Pack("chargerybms", "Chargery BMS", 16))
    types = {card["type"] for card in cards(config)}
    assert types <= BUILT_IN, types - BUILT_IN
    assert config["views"][0]["type"] == "sections"


@pytest.mark.parametrize(("device_id", "slots", "cells"), [("", 16, 0), ("Garage-BMS", 24, 20), ("x", 8, 0)])
def test_every_entity_it_names_is_one_discovery_announces(device_id: str, slots: int, cells: int) -> None:
    """Same settings, same names: a key renamed in discovery fails here, not on a screen."""
    settings = load({"device_id": device_id or None, "cells": cells or None}, environ={})
    state = BatteryState(settings.cells)
    state.update(encode_cells_frame(slots), 0.0)
    announced = {
        c["default_entity_id"]
        for c in Discovery(settings, Topics(settings.topic_prefix)).config(state)["components"].values()
    }
    text = render(pack_for(settings.resolved_device_id, settings.device_name, settings.cells, slots))
    named = set(re.findall(r"\b(?:binary_sensor|sensor)\.[a-z0-9_]+", text))
    assert named <= announced, named - announced
    wired = cells or slots
    assert {f"sensor.{settings.resolved_device_id.lower().replace('-', '_')}_cell_{n}_voltage" for n in
            range(1, wired + 1)} <= named  # fmt: skip


def encode_cells_frame(slots: int) -> Any:
    from chargerybms.protocol import Framer

    frames = Framer().feed(encode_cells([3300] * slots, energy_mwh=1, capacity_mah=1))
    return frames[0][1]


def test_an_unknown_entity_key_is_an_error_here() -> None:
    with pytest.raises(KeyError, match="no entity 'cell_9_voltage'"):
        Pack("x", "x", 8).cell(9)


def test_each_section_is_a_grid_of_cards() -> None:
    pack = Pack("x", "x", 8)
    for build in SECTIONS:
        section = build(pack)
        assert section["type"] == "grid" and section["cards"][0]["type"] == "heading", build.__name__


def run(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(CHARGERY), "dashboard", *args]
    return subprocess.run(command, check=False, capture_output=True, text=True)


def test_the_command_prints_the_dashboard_for_the_daemons_settings() -> None:
    done = run("--topic-prefix", "house/bms", "--cells", "8", "--device-name", "House")
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load(done.stdout)
    assert config["title"] == "House"
    assert "sensor.house_bms_cell_8_voltage" in done.stdout and "cell_9" not in done.stdout
    assert done.stderr == ""


def test_without_cells_or_slots_it_says_which_it_chose() -> None:
    done = run()
    assert done.returncode == 0
    assert "16 cells" in done.stderr and "sensor.chargerybms_cell_16_voltage" in done.stdout
    assert "cell_17" not in done.stdout
    assert "sensor.chargerybms_cell_24_voltage" in run("--slots", "24").stdout


@pytest.mark.parametrize("args", [["--cells", "30"], ["--slots", "12"], ["--device-id", "a b"]])
def test_bad_settings_are_one_line_and_exit_2(args: list[str]) -> None:
    done = run(*args)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize(
    ("weakest", "warning", "evidence", "title"),
    [
        ("3", "on", "highest at 2 of the last 2 tops", 'title="Cell 3 is failing"'),
        ("3", "off", "sags 1.4×", 'title="Cell 3 is the weakest"'),
        # A loose balance lead is blamed on no cell: weakest_cell is none, the warning is on.
        ("none", "on", "cells 5 and 6 jumped …: the balance lead between them is loose", 'title="Check the wiring"'),
        ("none", "off", "cells 5 and 6 jumped …", 'title="No cell stands out"'),
        ("none", "off", "", "**No cell stands out**"),
        ("unavailable", "unavailable", "", 'title="Cell health unknown"'),
    ],
)
def test_the_health_verdict_reads_right_for_a_cell_a_lead_and_nothing(
    weakest: str, warning: str, evidence: str, title: str
) -> None:
    import jinja2

    from chargerybms.commands.dashboard import _health_markdown

    pack = Pack("garage", "Garage", 8)
    states = {pack.entity("weakest_cell"): weakest, pack.entity("health_warning"): warning}

    def is_number(value: Any) -> bool:
        try:
            float(value)
        except (TypeError, ValueError):
            return False
        return True

    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.filters["is_number"] = is_number
    env.globals.update(
        states=lambda e: states.get(e, "unknown"),
        is_state=lambda e, s: states.get(e) == s,
        state_attr=lambda e, a: evidence if a == "evidence" else None,
        as_timestamp=lambda value, default: default,
    )
    text = env.from_string(_health_markdown(pack)).render()
    head = text.split("**Last cut-off**")[0]
    assert title in head and head.count("ha-alert alert-type") <= 1
    assert "Cell none" not in text
