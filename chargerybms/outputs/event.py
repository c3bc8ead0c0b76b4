"""``event``: one JSON document per cut-off and per new health warning, not retained."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from ..base import Context, Message, Output, Timing
from ..protocol import Frame

if TYPE_CHECKING:
    from ..config import Settings
    from ..topics import Topics


def output(settings: Settings, topics: Topics) -> Output:
    """``event``: each cut-off and new health warning once, as it happens (not retained: an
    event is news, not a state)."""
    topic = topics.event

    def build_frame(frame: Frame, world: Context) -> list[Message]:
        return [(topic, json.dumps(event, separators=(",", ":"))) for event in world.new_events]

    return Output("event", topic, Timing(per_frame=True), build_frame=build_frame)
