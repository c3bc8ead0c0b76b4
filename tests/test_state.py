"""The state document and the plain-text topics, without any I/O."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from chargerybms.battery import BatteryState
from chargerybms.outputs.legacy import for_frame
from chargerybms.protocol import Framer, decode_frame, encode_cells, encode_impedances, encode_status
from chargerybms.simulator import SimulatedBms
from chargerybms.topics import Topics


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 500), st.sampled_from(["1.22", "1.25", "1.26"]), st.sampled_from([None, 3, 8]))
def test_encoded_parts_always_equal_the_whole_document(start: int, firmware: str, limit: int | None) -> None:
    state = BatteryState(limit)
    framer = Framer()
    bms = SimulatedBms(8, firmware=firmware, cycle=20)
    bms.t = start
    extra = {"energy_charged": 1.5, "link": "online"}
    assert json.loads(state.document_json(extra)) == state.document(extra)
    for chunk in bms.seconds(25):
        for _, frame in framer.feed(chunk):
            state.update(frame, 1_700_000_000 + bms.t)
            assert json.loads(state.document_json(extra)) == state.document(extra)


def test_legacy_topics_at_protocol_resolution() -> None:
    state = BatteryState(3)
    topics = Topics("p", publish_cells=True)
    cells = decode_frame(encode_cells([3301, 3302, 3399, 12], soc=55))
    state.update(cells, 0)
    assert for_frame(topics, cells, state) == [
        ("p/batteryvolt", "10.002"),
        ("p/cellhigh", "3.399"),
        ("p/celllow", "3.301"),
        ("p/soc", "55"),
        ("p/cellvolt1", "3.301"),
        ("p/cellvolt2", "3.302"),
        ("p/cellvolt3", "3.399"),
    ]
    status = decode_frame(encode_status(charge_end_mv=3650, mode=0, deci_amps=228, t1_deci=-223, t2_deci=5, soc=91))
    state.update(status, 0)
    assert dict(for_frame(topics, status, state)) == {
        "p/maxvolt": "3.65",
        "p/current": "-22.8",
        "p/modename": "Discharge",
        "p/modeint": "0",
        "p/temp1": "-22.3",
        "p/temp2": "0.5",
        "p/soc": "91",
    }
    imp = decode_frame(encode_impedances(1, 10, [1, 2, 3, 400]))
    state.update(imp, 0)
    assert for_frame(topics, imp, state) == [
        ("p/aggimped", "0.6"),
        ("p/cellimped1", "0.1"),
        ("p/cellimped2", "0.2"),
        ("p/cellimped3", "0.3"),
    ]
    doc = state.document()
    assert doc["power"] == round(10.002 * -22.8, 1) and doc["discharge_power"] == 228.0 and doc["charge_power"] == 0.0
    assert doc["cell_voltages"] == [3.301, 3.302, 3.399]


def test_nothing_known_is_null_not_zero() -> None:
    doc = BatteryState().document()
    assert set(doc.values()) == {None}
