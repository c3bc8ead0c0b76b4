"""The files users copy: the Node-RED flows and the README's promises."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

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


# --- the Home Assistant blueprint ------------------------------------------------------------


class BlueprintInput(str):
    """An ``!input name`` of a blueprint."""


def load_blueprint() -> dict[str, Any]:
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def construct_input(loader: yaml.SafeLoader, node: yaml.Node) -> BlueprintInput:
        return BlueprintInput(loader.construct_scalar(node))  # type: ignore[arg-type]

    Loader.add_constructor("!input", construct_input)
    data: dict[str, Any] = yaml.load((ROOT / "examples" / "ha-blueprint-cell-health.yaml").read_text(), Loader=Loader)
    return data


def render(template: str, variables: dict[str, Any]) -> Any:
    """As Home Assistant renders a template: Jinja, then the text parsed back into a
    native value when it is one (homeassistant/helpers/template.py, ``_parse_result``:
    ``literal_eval``)."""
    import ast

    import jinja2

    text = jinja2.Environment(undefined=jinja2.ChainableUndefined).from_string(template).render(**variables)
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def run_blueprint(document: Any, prefix: str = "chargerybms", **choices: bool) -> dict[str, Any]:
    """The blueprint's variables and condition for one MQTT message (``document``, or the
    raw text when it is a str), in the order Home Assistant renders them
    (homeassistant/helpers/script_variables.py: each variable sees the ones before it)."""
    bp = load_blueprint()
    inputs = {"topic_prefix": prefix, "cutoffs": True, "warnings": True, **choices}
    variables: dict[str, Any] = {}
    for name, value in bp["trigger_variables"].items():
        variables[name] = inputs[value] if isinstance(value, BlueprintInput) else render(value, variables)
    payload = document if isinstance(document, str) else json.dumps(document)
    # homeassistant/components/mqtt/trigger.py: payload_json only when the payload parses.
    variables["trigger"] = {"platform": "mqtt", "topic": f"{prefix}/event", "payload": payload}
    try:
        variables["trigger"]["payload_json"] = json.loads(payload)
    except ValueError:
        pass
    for name, value in bp["variables"].items():
        variables[name] = inputs[value] if isinstance(value, BlueprintInput) else render(value, variables)
    [condition] = bp["conditions"]
    variables["passes"] = render(condition["value_template"], variables)
    variables["topic"] = render(bp["triggers"][0]["topic"], variables)
    return variables


def engine_events() -> list[dict[str, Any]]:
    from chargerybms.protocol import decode_frame
    from chargerybms.simulator import SimulatedBms
    from chargerybms.views.health.engine import HealthEngine

    events: list[dict[str, Any]] = []
    for fault in ("low-capacity:7", "temperature", "balance-lead:5"):
        engine = HealthEngine()
        bms = SimulatedBms(16, cycle=600, seed=3, fault=fault)
        for t in range(1400):
            for raw in bms.frames_at(t):
                events += engine.feed(decode_frame(raw), float(t), 1_700_000_000.0 + t)
    return events


def test_the_blueprint_is_a_blueprint_with_its_inputs() -> None:
    bp = load_blueprint()
    meta = bp["blueprint"]
    assert meta["domain"] == "automation" and meta["name"]
    assert set(meta["input"]) == {"topic_prefix", "cutoffs", "warnings", "notify"}
    assert meta["input"]["topic_prefix"]["default"] == "chargerybms"
    [default_action] = meta["input"]["notify"]["default"]
    assert default_action["action"] == "persistent_notification.create"
    assert bp["actions"] == "notify" and isinstance(bp["actions"], BlueprintInput)
    [trigger] = bp["triggers"]
    assert trigger["trigger"] == "mqtt"
    assert run_blueprint({}, prefix="chargerybms/house")["topic"] == "chargerybms/house/event"


def test_the_blueprint_words_the_engines_real_events() -> None:
    events = engine_events()
    cutoff = next(e for e in events if e["type"] == "cutoff" and e["cell"] == 7)
    unexplained = next(e for e in events if e["type"] == "cutoff" and e["cell"] is None)
    warning = next(e for e in events if e["type"] == "health_warning")
    v = run_blueprint(cutoff)
    assert v["passes"] is True and v["title"] == "Battery: charge stopped by the BMS"
    assert v["message"] == cutoff["message"] and v["notification_id"] == "chargery_chargerybms_cutoff"
    v = run_blueprint(unexplained)
    assert v["passes"] is True and "no cell explains it" in v["message"]
    v = run_blueprint(warning, prefix="bms/shed")
    assert v["passes"] is True and v["title"] == "Battery: cell 7 needs a look"
    assert v["message"].startswith(warning["message"]) and warning["evidence"][1] in v["message"]
    assert v["notification_id"] == "chargery_bms_shed_health_warning"
    lead = next(e for e in events if e["type"] == "health_warning" and e["kind"] == "balance_lead")
    v = run_blueprint(lead)  # a loose balance lead is blamed on no cell
    assert v["passes"] is True and v["title"] == "Battery: its wiring needs a look"
    assert v["message"].startswith("the balance lead between cells 5 and 6: ")
    assert run_blueprint(cutoff, cutoffs=False)["passes"] is False
    assert run_blueprint(warning, warnings=False)["passes"] is False
    assert run_blueprint("not json")["passes"] is False  # garbage on the topic notifies nobody
    assert run_blueprint("[1, 2]")["passes"] is False
