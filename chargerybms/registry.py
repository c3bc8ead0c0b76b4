"""The registry: every output and view the daemon may run, one line each, and the keys of
the ``state`` document they make together. The top layer, beside the daemon: it imports
the outputs (``outputs/``) and views (``views/``); nothing below imports it.

A new client is a module in ``outputs/`` with a factory ``output(settings, topics)`` and
one line in :func:`registry`; a new view is a module in ``views/`` with a factory
``view(settings)``, one line in :func:`build_views` and its ``FIELDS`` in
:data:`STATE_KEYS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from .base import Factory, Output, View
from .battery import BatteryState
from .outputs import discovery, event, legacy, link, state, victron
from .views import energy
from .views.health import store as health

if TYPE_CHECKING:
    from .config import Settings
    from .topics import Topics


def registry() -> Sequence[Factory]:
    """Every output, in the order of publication."""
    return (
        legacy.output,  # the original script's thirteen topics (and --publish-cells)
        link.output,  # `link`: online/offline, retained
        state.output,  # `state`: the JSON document
        event.output,  # `event`: cut-offs and health warnings, as they happen
        discovery.ha_state_output,  # `ha_state`: what Home Assistant's entities read
        discovery.output,  # Home Assistant MQTT discovery
        victron.output,  # --victron: a Venus OS driver's document
    )


def build_views(settings: Settings) -> list[View]:
    """The views these settings switch on, in the order their keys appear in ``state``."""
    return [v for v in (energy.energy_view(settings), health.health_view(settings)) if v is not None]


def build_outputs(settings: Settings, topics: Topics) -> list[Output]:
    """Every output these settings switch on, in registry order."""
    return [o for o in (factory(settings, topics) for factory in registry()) if o is not None]


#: Every key of the ``state`` document, defined once: the battery's, the views', the
#: daemon's own. Discovery's entities, the Node-RED flows and the documentation's table are
#: checked against it.
STATE_KEYS: Final = tuple(BatteryState().document(dict.fromkeys((*energy.FIELDS, *health.FIELDS, *state.DAEMON_KEYS))))
