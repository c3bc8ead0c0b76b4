"""The files users copy: the Node-RED flow and the README's promises."""

from __future__ import annotations

import json

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
