"""``link``: ``online`` while frames arrive, ``offline`` once the BMS is silent longer than
the stale timeout and when the daemon stops; retained."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..base import Context, Output, Timing
from ..topics import OFFLINE, ONLINE

if TYPE_CHECKING:
    from ..config import Settings
    from ..topics import Topics


def _link(world: Context) -> str | None:
    online = world.link_online
    return None if online is None else ONLINE if online else OFFLINE  # None: nothing true to say yet


def output(settings: Settings, topics: Topics) -> Output:
    """``link``: retained, said only when true (see :mod:`chargerybms.schedule`)."""
    return Output("link", topics.link, Timing(link_change=True, announce=True, live=False), _link, retain=True, qos=1)
