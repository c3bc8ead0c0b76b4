"""Topic names: every topic under one prefix, and the words ``online``/``offline``.

The thirteen topics of the original script keep their names (their payloads are built in
:mod:`chargerybms.outputs.legacy`). Pure constants; imports nothing of ours.
"""

from __future__ import annotations

from typing import Final

LEGACY_TOPICS: Final = (
    "watthour",
    "amphour",
    "batteryvolt",
    "cellhigh",
    "celllow",
    "maxvolt",
    "current",
    "modename",
    "modeint",
    "temp1",
    "temp2",
    "soc",
    "aggimped",
)
STATUS: Final = "status"  # online/offline, retained, the Last Will
LINK: Final = "link"  # online while frames arrive, retained
STATE: Final = "state"  # the JSON document
EVENT: Final = "event"  # one JSON document per cut-off or new health warning, not retained
ONLINE: Final = "online"
OFFLINE: Final = "offline"


class Topics:
    """Every topic under one prefix, built once: the per-frame path only looks them up."""

    def __init__(self, prefix: str, publish_cells: bool = False) -> None:
        self.prefix = prefix
        self.publish_cells = publish_cells
        self.status = f"{prefix}/{STATUS}"
        self.link = f"{prefix}/{LINK}"
        self.state = f"{prefix}/{STATE}"
        self.legacy = {name: f"{prefix}/{name}" for name in LEGACY_TOPICS}
        self.cellvolt = [f"{prefix}/cellvolt{i}" for i in range(1, 25)]
        self.cellimped = [f"{prefix}/cellimped{i}" for i in range(1, 25)]
        self.event = f"{prefix}/{EVENT}"
