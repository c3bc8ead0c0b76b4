"""The faults a simulated pack can be given (:class:`Fault`, or ``--demo-fault`` as text).

What each one does to the pack is in :mod:`.pack`: a cell with less capacity, a cell with
more resistance, a loose balance lead (the two readings either side of it move in opposite
directions while their sum stays put), or a hot spot that makes the BMS stop charging
although no cell explains it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

FAULT_KINDS: Final = ("low-capacity", "high-resistance", "balance-lead", "temperature")
#: What a planted fault does when no severity is given: a cell with 80 % of the capacity,
#: three times the resistance, a lead that shifts its two readings by up to 25 mV, a sensor
#: that reaches 60 degC while charging.
DEFAULT_SEVERITY: Final = {"low-capacity": 0.8, "high-resistance": 3.0, "balance-lead": 25.0, "temperature": 60.0}


@dataclass(frozen=True)
class Fault:
    """A fault planted in a simulated pack. ``cell`` is 1-based (for a balance lead: the
    lead between cells ``cell`` and ``cell + 1``); ``severity`` is the capacity fraction,
    the resistance factor, the lead's largest shift in mV or the hot sensor's peak degC."""

    kind: str
    cell: int | None = None
    severity: float | None = None

    @property
    def amount(self) -> float:
        return DEFAULT_SEVERITY[self.kind] if self.severity is None else self.severity

    def describe(self) -> str:
        if self.kind == "temperature":
            return "a temperature cut-off"
        if self.kind == "balance-lead":
            return f"a loose balance lead between cells {self.cell} and {(self.cell or 0) + 1}"
        return f"a {self.kind.replace('-', ' ')} cell {self.cell}"


def parse_fault(text: str, cells: int) -> Fault | None:
    """``low-capacity:7``, ``high-resistance:3``, ``balance-lead:5``, ``temperature`` (or
    empty: none) for a pack of ``cells`` wired cells. Raises ValueError saying what is wrong."""
    text = text.strip().lower()
    if not text:
        return None
    kind, _, number = text.partition(":")
    if kind not in FAULT_KINDS:
        raise ValueError(f"{text!r} is not a fault: use one of {', '.join(FAULT_KINDS)} (e.g. low-capacity:7)")
    if kind == "temperature":
        if number:
            raise ValueError(f"{text!r}: a temperature fault names no cell (just 'temperature')")
        return Fault(kind)
    highest = cells - 1 if kind == "balance-lead" else cells
    try:
        cell = int(number)
    except ValueError:
        raise ValueError(f"{text!r}: name the cell, e.g. {kind}:3 (1-{highest})") from None
    if not 1 <= cell <= highest:
        what = "the lead between cells N and N+1" if kind == "balance-lead" else "the cell"
        raise ValueError(f"{text!r}: {what} must be 1-{highest} for {cells} cells")
    return Fault(kind, cell)
