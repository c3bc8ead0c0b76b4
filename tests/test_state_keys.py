"""The `state` document's keys are defined once (chargerybms.registry.STATE_KEYS); whatever
names them elsewhere (Home Assistant discovery, the Node-RED flows, the README's table)
is checked against that list, so a renamed key breaks a test, not a user's screen. And
the per-frame cache of the document cannot go stale."""

from __future__ import annotations

import json
import re
import time

from helpers import CHARGERY, RecordingSink

from chargerybms.battery import BatteryState
from chargerybms.config import load
from chargerybms.daemon import Daemon
from chargerybms.outputs.discovery import BASE_ENTITIES, cell_entities
from chargerybms.registry import STATE_KEYS
from chargerybms.simulator import SimulatedBms

ROOT = CHARGERY.parent


def test_the_daemon_publishes_exactly_the_defined_keys() -> None:
    daemon = Daemon(load({"port": "/dev/null", "dry_run": True}, environ={}), sink=RecordingSink())
    for chunk in SimulatedBms(16, cycle=16).seconds(12):
        daemon.handle_bytes(chunk)
    daemon.housekeeping(time.monotonic() + 1)
    document = json.loads(daemon.sink.on("chargerybms/state")[-1])  # type: ignore[attr-defined]
    assert list(document) == list(STATE_KEYS)


def test_every_home_assistant_entity_reads_a_defined_key() -> None:
    for entity in [*BASE_ENTITIES, *cell_entities(24)]:
        fields = set(re.findall(r"value_json\.(\w+)", entity.template))
        assert fields and fields <= set(STATE_KEYS), entity.key


def test_the_node_red_flows_read_only_defined_keys() -> None:
    source = (ROOT / "examples" / "node-red" / "battery.js").read_text()
    read = set(re.findall(r"\bs\.(\w+)", source))
    assert read, "the battery function reads the state document as `s`"
    assert read <= set(STATE_KEYS), read - set(STATE_KEYS)


def test_the_readme_table_lists_every_key_and_no_other() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### The `state` document", 1)[1].split("\n#", 1)[0]
    first_column = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    listed = [name for cell in first_column for name in re.findall(r"`(\w+)`", cell)]
    assert sorted(listed) == sorted(STATE_KEYS)


def test_the_cached_document_always_equals_a_fresh_one() -> None:
    """Each frame type's part is encoded once, when its frame arrives; a value that needs
    another frame would be stale in that cache. After every frame of a stream that has
    all three types, the cached JSON must equal the document built from scratch."""
    from chargerybms.protocol import Framer

    state = BatteryState(16)
    framer = Framer()
    extra = {"link": "online"}
    checked = 0
    for chunk in SimulatedBms(16, cycle=12).seconds(30):
        for _, frame in framer.feed(chunk):
            state.update(frame, 1_700_000_000 + checked)
            assert json.loads(state.document_json(extra)) == state.document(extra)
            checked += 1
    assert checked > 40 and state.impedances is not None


def test_the_cell_health_keys_come_and_go_with_the_setting() -> None:
    def keys(*flags: str) -> set[str]:
        values = {"port": "/dev/null", "dry_run": True, **dict.fromkeys(flags, False)}
        daemon = Daemon(load(values, environ={}), sink=RecordingSink())
        for chunk in SimulatedBms(8, cycle=16).seconds(4):
            daemon.handle_bytes(chunk)
        daemon.housekeeping(time.monotonic() + 1)
        return set(json.loads(daemon.sink.on("chargerybms/state")[-1]))  # type: ignore[attr-defined]

    health = {"weakest_cell", "health_warning", "last_cutoff", "cell_sag_ratios", "cell_impedance_ratios"}
    assert health <= keys()
    assert not health & keys("cell_health")
