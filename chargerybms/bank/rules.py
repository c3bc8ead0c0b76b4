"""The bank's rules: the members' ``state`` documents and liveness in, the bank's ``state``
document out. Pure: the caller passes the monotonic clock reading in; no I/O, no logging.

A member is one chargery daemon (one BMS, one pack), known by its topic prefix. It is
**live** while its daemon runs (``status`` not ``offline``), its BMS talks (``link``
``online``), and its last ``state`` document is at most ``stale_after`` seconds old
(the bank's own clock: a member whose host lost the network says nothing at all). Only live
members count: a silent or stopped member is named in ``members_missing`` and shown in
``packs`` without values, never with its last ones.

What the bank says, from the live members only:

- ``current``, ``power``, ``charge_power``, ``discharge_power``, ``capacity_ah`` (the
  charge the BMSs report), ``energy_wh``: sums.
- ``pack_voltage``: the mean of the packs' voltages; ``pack_voltage_difference`` the
  largest difference between two of them (packs in parallel sit at one voltage, less the
  drop in their cables: a large difference is a pack disconnected or a loose busbar).
- ``soc``: weighted by each pack's capacity (``capacity_installed``: given with the member,
  ``--member PREFIX=AH``, else the BMS's own, read off its document as the charge it
  reports over its state of charge once that is at least 20 %). When a live pack's
  capacity is not known, ``soc`` is null and ``capacity_unknown`` names the pack: equal
  capacities are never assumed.
- ``cell_min``/``cell_max`` with ``cell_min_pack``/``cell_max_pack`` (the member's
  prefix), its place in the member list (``..._pack_number``, 1-based) and the cell
  (``..._index``, 1-based); ``cell_delta`` the bank's spread (highest minus lowest).
- ``temperature_min``/``temperature_max`` over both probes of every pack.
- ``charge_stopped_by``/``discharge_stopped_by``: the packs whose BMS stopped charging /
  discharging; ``charge_protection``/``discharge_protection``: whether any did.
- ``charge_end_voltage``: the lowest of the members' (per cell), ``discharge_end_voltage``
  the highest: the bank is full when its first pack is, empty when its first pack is.
- ``weakest_cell`` with ``weakest_cell_pack``: from the members' cell health, a warned
  cell before a merely named one.
- ``energy_charged``/``energy_discharged``: the bank's own meters (:class:`Meters`), which
  add up how far each live member's meters moved while the bank watched: they never go
  down when a member drops out (Home Assistant would take that for a reset and count the
  pack's whole meter again when it returns).

Members of different cell counts are refused: packs in parallel have the same number of
cells in series, and two BMS8T on the two halves of one 16-cell pack are in series, not in
parallel (their currents are one current: adding them doubles it). The bank then sums
nothing (``cells_mixed`` names the counts, ``problems`` says it) and its link is offline.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from ..config import MemberSpec
from ..topics import OFFLINE, ONLINE

SOC_FOR_CAPACITY: Final = 20.0  # %: below it the BMS's whole-percent SoC makes the estimate too coarse


@dataclass
class Member:
    """What the bank knows of one member, as its messages arrive."""

    spec: MemberSpec
    status: str | None = None  # the daemon: online / offline (its Last Will)
    link: str | None = None  # the BMS: online / offline
    doc: dict[str, Any] | None = None
    doc_at: float | None = None  # monotonic, when the document arrived
    heard: bool = False  # anything at all since the bank started
    _capacity: tuple[float, float] | None = field(default=None, repr=False)  # (soc, Ah) of the best estimate

    def on_status(self, payload: str) -> None:
        self.heard = True
        self.status = payload

    def on_link(self, payload: str) -> None:
        self.heard = True
        self.link = payload

    def on_state(self, doc: dict[str, Any], now: float) -> None:
        self.heard = True
        self.doc, self.doc_at = doc, now
        soc, ah = _number(doc.get("soc")), _number(doc.get("capacity_ah"))
        if soc is not None and ah is not None and soc >= SOC_FOR_CAPACITY:
            # The BMS reports its charge (Ah) and its SoC of its configured capacity: the
            # capacity is their quotient, best at the highest SoC (whole percents).
            if self._capacity is None or soc >= self._capacity[0]:
                self._capacity = (soc, round(ah * 100 / soc))

    @property
    def capacity_ah(self) -> float | None:
        if self.spec.capacity_ah is not None:
            return self.spec.capacity_ah
        return None if self._capacity is None else float(self._capacity[1])

    def reason(self, now: float, stale_after: float) -> str | None:
        """Why the member is not live (a few words), or None while it is."""
        if not self.heard:
            return "never seen"
        if self.status == OFFLINE:
            return "daemon stopped"
        if self.link == OFFLINE:
            return "BMS silent"
        if self.doc is None or self.doc_at is None:
            return "no state yet"
        if now - self.doc_at > stale_after:
            return f"no state for more than {stale_after:g} s"  # steady words: no new document each second
        if self.doc.get("link") == OFFLINE:
            return "BMS silent"
        if _number(self.doc.get("pack_voltage")) is None or not isinstance(self.doc.get("cell_voltages"), list):
            return "no cells yet"
        return None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _sum(docs: Sequence[Mapping[str, Any]], key: str, digits: int) -> float | None:
    values = [_number(d.get(key)) for d in docs]
    known = [v for v in values if v is not None]
    return round(sum(known), digits) if known and len(known) == len(values) else None


class Meters:
    """The bank's energy meters (kWh): what each live member's meters moved while the bank
    watched. A member's meter that went down (its daemon restarted from an older save) is
    taken up again from there; a member that comes back adds what its meter moved meanwhile
    (its daemon measured it; it was not counted yet)."""

    KEYS: Final = ("energy_charged", "energy_discharged")

    def __init__(self) -> None:
        self.totals = dict.fromkeys(self.KEYS, 0.0)
        self._last: dict[tuple[str, str], float] = {}

    def feed(self, prefix: str, doc: Mapping[str, Any]) -> None:
        for key in self.KEYS:
            value = _number(doc.get(key))
            if value is None:
                continue
            last = self._last.get((prefix, key))
            if last is not None and value > last:
                self.totals[key] += value - last
            self._last[(prefix, key)] = value

    def fields(self) -> dict[str, float]:
        return {key: round(total, 3) for key, total in self.totals.items()}


#: What ``packs`` shows of each live member, from its own document.
PACK_FIELDS: Final = (
    "soc", "current", "power", "pack_voltage", "cell_count", "cell_min", "cell_min_index", "cell_max",
    "cell_max_index", "cell_delta", "charge_protection", "discharge_protection", "mode",
)  # fmt: skip


def _pack_entry(number: int, member: Member, reason: str | None) -> dict[str, Any]:
    doc = member.doc if reason is None and member.doc is not None else {}
    entry: dict[str, Any] = {
        "number": number,
        "prefix": member.spec.prefix,
        "name": member.spec.name,
        "live": reason is None,
        "reason": reason,
        "capacity_installed": member.capacity_ah,
    }
    for key in PACK_FIELDS:
        entry[key] = doc.get(key)
    return entry


def combine(
    members: Sequence[Member],
    now: float,
    stale_after: float,
    meters: Meters | None = None,
    updated: str | None = None,
) -> dict[str, Any]:
    """The bank's ``state`` document. ``updated``: the wall time to stamp it with (ISO 8601)."""
    reasons = [m.reason(now, stale_after) for m in members]
    live = [(i + 1, m) for i, (m, r) in enumerate(zip(members, reasons, strict=True)) if r is None]
    missing = [m.spec.prefix for m, r in zip(members, reasons, strict=True) if r is not None]
    docs = [m.doc for _, m in live if m.doc is not None]
    counts = {m.spec.prefix: m.doc.get("cell_count") for _, m in live if m.doc is not None}
    mixed = len(set(counts.values())) > 1
    problems: list[str] = []
    for m, r in zip(members, reasons, strict=True):
        if r is not None:
            problems.append(f"{m.spec.prefix}: {r}")
    if mixed:
        problems.append(
            "members of different cell counts ("
            + ", ".join(f"{p} {n}" for p, n in counts.items())
            + "): not packs in parallel, nothing is added up"
        )
        live, docs = [], []
    doc: dict[str, Any] = {
        "members": len(members),
        "members_live": len(live),
        "members_missing": missing,
        "cells_mixed": counts if mixed else None,
    }
    doc.update(_sums(live, docs))
    doc.update(_soc(live))
    doc.update(_cells(live))
    doc.update(_protection(live, problems))
    doc.update(_health(live))
    doc.update((meters or Meters()).fields())
    doc["problem"] = bool(problems)
    doc["problems"] = "; ".join(problems)
    doc["packs"] = [_pack_entry(i + 1, m, r) for i, (m, r) in enumerate(zip(members, reasons, strict=True))]
    doc["last_update"] = updated
    doc["link"] = ONLINE if live else OFFLINE
    return doc


def _sums(live: Sequence[tuple[int, Member]], docs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    voltages = [v for v in (_number(d.get("pack_voltage")) for d in docs) if v is not None]
    temperatures = [
        t for d in docs for t in (_number(d.get("temperature_1")), _number(d.get("temperature_2"))) if t is not None
    ]
    counts = {d.get("cell_count") for d in docs}
    return {
        "cell_count": next(iter(counts)) if len(counts) == 1 else None,
        "pack_voltage": round(sum(voltages) / len(voltages), 3) if voltages else None,
        "pack_voltage_difference": round(max(voltages) - min(voltages), 3) if voltages else None,
        "current": _sum(docs, "current", 1),
        "power": _sum(docs, "power", 1),
        "charge_power": _sum(docs, "charge_power", 1),
        "discharge_power": _sum(docs, "discharge_power", 1),
        "capacity_ah": _sum(docs, "capacity_ah", 3),
        "energy_wh": _sum(docs, "energy_wh", 3),
        "temperature_min": min(temperatures) if temperatures else None,
        "temperature_max": max(temperatures) if temperatures else None,
    }


def _soc(live: Sequence[tuple[int, Member]]) -> dict[str, Any]:
    unknown = [m.spec.prefix for _, m in live if m.capacity_ah is None]
    socs = [(_number(m.doc.get("soc")) if m.doc else None, m.capacity_ah) for _, m in live]
    capacities = [c for _, c in socs if c is not None]
    installed = round(sum(capacities), 1) if live and not unknown else None
    soc = None
    if live and not unknown and all(s is not None for s, _ in socs) and installed:
        soc = round(sum(s * c for s, c in socs if s is not None and c is not None) / installed, 1)
    return {"soc": soc, "capacity_installed": installed, "capacity_unknown": unknown}


def _cells(live: Sequence[tuple[int, Member]]) -> dict[str, Any]:
    low: tuple[float, int, Member, int] | None = None  # voltage, pack number, member, cell
    high: tuple[float, int, Member, int] | None = None
    for number, m in live:
        voltages = (m.doc or {}).get("cell_voltages") or []
        for cell, v in enumerate(voltages, start=1):
            if not isinstance(v, int | float):
                continue
            if low is None or v < low[0]:
                low = (v, number, m, cell)
            if high is None or v > high[0]:
                high = (v, number, m, cell)
    out: dict[str, Any] = {}
    for name, extreme in (("cell_min", low), ("cell_max", high)):
        out[name] = None if extreme is None else extreme[0]
        out[f"{name}_pack"] = None if extreme is None else extreme[2].spec.prefix
        out[f"{name}_pack_number"] = None if extreme is None else extreme[1]
        out[f"{name}_index"] = None if extreme is None else extreme[3]
    out["cell_delta"] = None if low is None or high is None else round(high[0] - low[0], 3)
    return out


def _protection(live: Sequence[tuple[int, Member]], problems: list[str]) -> dict[str, Any]:
    docs = [(m.spec.prefix, m.doc or {}) for _, m in live]
    charge = [p for p, d in docs if d.get("charge_protection") is True]
    discharge = [p for p, d in docs if d.get("discharge_protection") is True]
    problems += [f"{p}: charging stopped by its BMS" for p in charge]
    problems += [f"{p}: discharging stopped by its BMS" for p in discharge]
    ends = [v for v in (_number(d.get("charge_end_voltage")) for _, d in docs) if v is not None]
    floors = [v for v in (_number(d.get("discharge_end_voltage")) for _, d in docs) if v is not None]
    return {
        "charge_protection": bool(charge) if docs else None,
        "discharge_protection": bool(discharge) if docs else None,
        "charge_stopped_by": charge,
        "discharge_stopped_by": discharge,
        "charge_end_voltage": min(ends) if ends else None,
        "discharge_end_voltage": max(floors) if floors else None,
    }


def _health(live: Sequence[tuple[int, Member]]) -> dict[str, Any]:
    named = [(m, m.doc or {}) for _, m in live if isinstance((m.doc or {}).get("weakest_cell"), int)]
    named.sort(key=lambda md: not md[1].get("health_warning"))  # a warning first; stable otherwise
    if not named:
        return {"weakest_cell": None, "weakest_cell_pack": None, "health_warning": False, "health_evidence": ""}
    m, d = named[0]
    return {
        "weakest_cell": d["weakest_cell"],
        "weakest_cell_pack": m.spec.prefix,
        "health_warning": bool(d.get("health_warning")),
        "health_evidence": f"{m.spec.prefix}: {d.get('health_evidence') or ''}".rstrip(": "),
    }


#: Every key of the bank's ``state`` document, in order (docs/several-packs.md lists them).
BANK_KEYS: Final = tuple(combine([Member(MemberSpec("x"))], 0.0, 10.0))
