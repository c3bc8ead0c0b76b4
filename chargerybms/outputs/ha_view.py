"""What Home Assistant's entities read: the ``state`` document, with each value held until
it moves by more than its entity's deadband or is older than ``max_age`` seconds.

Home Assistant writes a row to its recorder (its database, on a Raspberry Pi an SD card)
every time an entity's state changes, and an MQTT entity's state changes with every new
value it is sent. The ``state`` document carries every value at the BMS's resolution, once
a second: current, power, state of charge and the timestamp of the last frame change with
nearly every document, each cell voltage with a few millivolts of noise. Sent as they are,
a 16-cell pack adds 1.2 million rows a day; held back to what a person can see on a
dashboard, 193,000 (``bench/ha_recorder.py``, the simulator's pack, which cycles 360 times
a day: a real one costs far less).

The rules (:data:`chargerybms.discovery.DEADBANDS` says which value gets which):

- :class:`Band`: a number, or each number of a list, is held while it stays within
  ``width`` of the value last sent, and, for a noisy one, for at least ``every`` seconds
  after it (then the value of that moment goes out).
- :class:`Stamp`: an ISO 8601 time is held until the new one is more than ``seconds``
  later.
- :class:`Extreme`: the 1-based index of the highest or lowest value of a list is held
  while the cell it names is still within ``width`` of the extreme (two cells a millivolt
  apart do not trade places every second).
- Every rule gives way after ``max_age`` seconds: a value that differs in any way from
  the one sent that long ago is sent, so a dashboard at rest shows the exact values.
- Values without a rule (text, flags, counters) and any value that is or was null are
  passed as they are. So is everything while the link is not live: when frames stop, the
  last exact values go out and nothing is held across the gap.
- ``max_age`` 0 turns holding off: the document is the ``state`` document, value for value.

Pure: the caller passes the monotonic time in; no I/O, no logging.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

HA_STATE: Final = "ha_state"  # the topic under the prefix


@dataclass(frozen=True, slots=True)
class Band:
    """Hold a number (or each number of a list) while it stays within ``width``, and for at
    least ``every`` seconds after the last one sent (for noisy values: current, power)."""

    width: float
    every: float = 0.0


@dataclass(frozen=True, slots=True)
class Stamp:
    """Hold an ISO 8601 time until the new one is more than ``seconds`` later."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Extreme:
    """The 1-based index of the highest (``highest``) or lowest value of the list ``of``:
    held while the value it names is within ``width`` of the extreme."""

    of: str
    highest: bool
    width: float


Rule = Band | Stamp | Extreme

_encode = json.JSONEncoder(check_circular=False, separators=(",", ":")).encode


_NUMBERS: Final = (int, float)  # JSON numbers (a bool is neither: type(True) is bool)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _time(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


@dataclass(slots=True)
class _Held:
    value: Any
    since: float  # when it was sent


class HaView:
    """The held values of one daemon run. ``rules``: document key -> rule."""

    def __init__(self, rules: Mapping[str, Rule], max_age: float) -> None:
        self.rules = dict(rules)
        self.max_age = max_age
        self._held: dict[tuple[str, int], _Held] = {}  # (key, list index or -1)
        self._lengths: dict[str, int] = {}  # of the lists held

    def reset(self) -> None:
        self._held.clear()
        self._lengths.clear()

    def document(self, state: Mapping[str, Any], now: float, live: bool = True) -> dict[str, Any]:
        """The document for Home Assistant at ``now``. ``live``: frames are arriving."""
        if self.max_age <= 0 or not live:
            self.reset()
            return dict(state)
        out = dict(state)
        for key, rule in self.rules.items():
            if key not in state:
                continue
            value = state[key]
            if isinstance(rule, Band) and isinstance(value, list):
                self._fit(key, len(value))
                out[key] = [self._band(key, i, v, rule, now) for i, v in enumerate(value)]
            elif isinstance(rule, Band):
                out[key] = self._band(key, -1, value, rule, now)
            elif isinstance(rule, Stamp):
                out[key] = self._stamp(key, value, rule.seconds, now)
            else:
                out[key] = self._extreme(key, value, state.get(rule.of), rule, now)
        return out

    def payload(self, state: Mapping[str, Any], now: float, live: bool = True) -> str:
        """:meth:`document` as compact JSON."""
        return _encode(self.document(state, now, live))

    # --- the rules ---------------------------------------------------------------------

    def _keep(self, slot: tuple[str, int], value: Any, now: float, within: bool) -> Any:
        """The held value while ``within`` says the new one is close enough and the held one
        is younger than ``max_age``; else ``value``, which is then held from ``now``."""
        held = self._held.get(slot)
        if held is not None and (held.value == value or (within and now - held.since < self.max_age)):
            return held.value
        self._held[slot] = _Held(value, now)
        return value

    def _band(self, key: str, index: int, value: Any, rule: Band, now: float) -> Any:
        # _keep() written out: this runs for every cell of every document.
        slot = (key, index)
        held = self._held.get(slot)
        if held is not None:
            old = held.value
            if old == value:
                return old
            if (
                type(value) in _NUMBERS
                and type(old) in _NUMBERS
                and (abs(value - old) <= rule.width or now - held.since < rule.every)
                and now - held.since < self.max_age
            ):
                return old
        self._held[slot] = _Held(value, now)
        return value

    def _stamp(self, key: str, value: Any, seconds: float, now: float) -> Any:
        held = self._held.get((key, -1))
        new, old = _time(value), _time(held.value) if held is not None else None
        within = new is not None and old is not None and 0 <= new - old <= seconds
        return self._keep((key, -1), value, now, within)

    def _extreme(self, key: str, value: Any, values: Any, rule: Extreme, now: float) -> Any:
        held = self._held.get((key, -1))
        within = False
        if held is not None and isinstance(values, list) and isinstance(value, int) and isinstance(held.value, int):
            if 1 <= value <= len(values) and 1 <= held.value <= len(values):
                at_held, extreme = values[held.value - 1], values[value - 1]
                if _number(at_held) and _number(extreme):
                    within = abs(extreme - at_held) <= rule.width
        return self._keep((key, -1), value, now, within)

    def _fit(self, key: str, length: int) -> None:
        """A list of another length (the cell count changed): forget its held values."""
        if self._lengths.get(key, length) != length:
            for slot in [s for s in self._held if s[0] == key]:
                del self._held[slot]
        self._lengths[key] = length
