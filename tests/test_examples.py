"""The files users copy: the Node-RED flows and the README's promises."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from helpers import ROOT

from chargerybms.config import SETTINGS_FIELDS
from chargerybms.topics import LEGACY_TOPICS


def test_node_red_flow_is_importable_and_reads_state() -> None:
    flow = json.loads((ROOT / "examples" / "node-red-flow.json").read_text())
    ids = {node["id"] for node in flow}
    assert len(ids) == len(flow)
    inputs = [n for n in flow if n["type"] == "mqtt in"]
    state_in = next(n for n in inputs if n["topic"] == "chargerybms/state")
    assert state_in["datatype"] == "json"
    for node in flow:
        for outputs in node.get("wires", []):
            assert set(outputs) <= ids, node["id"]
        if "broker" in node and node["type"] == "mqtt in":
            assert node["broker"] in ids
        if "z" in node:
            assert node["z"] in ids


def test_readme_documents_every_setting_and_topic() -> None:
    readme = (ROOT / "README.md").read_text()
    for field in SETTINGS_FIELDS:
        assert f"CHARGERY_{field.name.upper()}" in readme, field.name
        if field.metadata["flag"]:
            assert f"--{field.name.replace('_', '-')}" in readme, field.name
    for topic in LEGACY_TOPICS:
        assert f"`{topic}`" in readme, topic


EMBED = ROOT / "examples" / "node-red" / "embed.py"


def test_both_node_red_flows_embed_the_sources_of_examples_node_red() -> None:
    """One `battery` function (the liveness rules) for both flows: each flow's code is the
    text of its file in examples/node-red/ (`python3 examples/node-red/embed.py` writes it)."""
    result = subprocess.run([sys.executable, str(EMBED), "--check"], check=False, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    battery = (ROOT / "examples" / "node-red" / "battery.js").read_text()
    for name in ("node-red-flow.json", "node-red-dashboard.json"):
        flow = json.loads((ROOT / "examples" / name).read_text())
        assert [n["func"] for n in flow if n["type"] == "function" and n["name"] == "battery"] == [battery], name


def test_the_embed_check_fails_when_a_flow_drifts_and_the_embed_repairs_it(tmp_path: Path) -> None:
    examples = tmp_path / "examples"
    shutil.copytree(ROOT / "examples", examples)
    script = examples / "node-red" / "embed.py"
    battery = examples / "node-red" / "battery.js"
    battery.write_text(battery.read_text().replace("|| 60", "|| 90"))
    check = subprocess.run([sys.executable, str(script), "--check"], check=False, capture_output=True, text=True)
    assert check.returncode == 1
    assert "node-red-flow.json: battery (battery.js)" in check.stdout
    assert "node-red-dashboard.json: battery (battery.js)" in check.stdout
    subprocess.run([sys.executable, str(script)], check=True, capture_output=True)
    assert subprocess.run([sys.executable, str(script), "--check"], check=False, capture_output=True).returncode == 0
    flow = json.loads((examples / "node-red-dashboard.json").read_text())
    assert "|| 90" in next(n["func"] for n in flow if n["type"] == "function" and n["name"] == "battery")


def test_node_red_dashboard_flow_is_importable_and_complete() -> None:
    flow = json.loads((ROOT / "examples" / "node-red-dashboard.json").read_text())
    ids = {node["id"] for node in flow}
    assert len(ids) == len(flow)
    # No id shared with the other flow: both can be imported into one Node-RED.
    other = {node["id"] for node in json.loads((ROOT / "examples" / "node-red-flow.json").read_text())}
    assert not ids & other
    for node in flow:
        for outputs in node.get("wires", []):
            assert set(outputs) <= ids, node["id"]
        for key in ("z", "broker", "group", "page", "ui", "theme"):
            if node.get(key) and node["type"] != "mqtt-broker":  # its `broker` is the address
                assert node[key] in ids, (node["id"], key)
    topics = {n["topic"] for n in flow if n["type"] == "mqtt in"}
    assert topics == {"chargerybms/status", "chargerybms/link", "chargerybms/state", "chargerybms/event"}
    assert [n["port"] for n in flow if n["type"] == "mqtt-broker"] == ["1883"]
