"""The verdict: what each part of the evidence suspects, weighed into one, and a warning
said once when it becomes strong.

A warning outranks a mere suspicion; what else points at the same cell is added to the
evidence. A loose balance lead is blamed on no cell: its two cells are left out of the
other suspicions (a lead's jumps read as a cell's faults), and the verdict names the lead,
not a cell.
"""

from __future__ import annotations

from .common import Event, Verdict, iso

WORDS = {
    "capacity": "has less capacity than the rest",
    "resistance": "has a high resistance",
    "impedance": "has a high impedance",
}


def judge(lead: Verdict | None, capacity: Verdict | None, sag: Verdict | None, impedance: Verdict | None) -> Verdict:
    """One verdict from the suspicions of each part."""
    candidates: list[Verdict] = []
    lead_cells: set[int | None] = set()
    if lead is not None:
        candidates.append(lead)
        lead_cells = {lead.lead, (lead.lead or 0) + 1}
    candidates += [c for c in (capacity, sag, impedance) if c is not None and c.cell not in lead_cells]
    if not candidates:
        return Verdict(None, False, None, [])
    best = max(candidates, key=lambda c: (c.warning, c.score))  # a warning outranks a mere suspicion
    evidence = list(best.evidence)
    for other in candidates:  # what else points at the same cell
        if other is not best and other.cell is not None and other.cell == best.cell:
            evidence += other.evidence
    warning = any(c.warning for c in candidates if c.cell == best.cell)  # a lead: itself alone
    return Verdict(best.cell, warning, best.kind, evidence, best.score, lead=best.lead)


class Announcer:
    """Says a warning once: again only when it changes (kind and place) or after it went."""

    def __init__(self) -> None:
        self.announced: tuple[str, int | None] | None = None  # the warning last said: (kind, cell or lead)

    def update(self, v: Verdict, wall: float) -> tuple[bool, Event | None]:
        """(whether what was said changed, the event to send)."""
        if not v.warning:
            if self.announced is None:
                return False, None
            self.announced = None
            return True, None
        key = (v.kind or "", v.place)
        if self.announced == key:
            return False, None
        self.announced = key
        if v.kind == "balance_lead" and v.lead is not None:
            message = f"the balance lead between cells {v.lead} and {v.lead + 1}: {v.evidence[0]}"
        else:
            message = f"cell {v.cell} {WORDS.get(v.kind or '', 'stands out')}: {v.evidence[0]}"
        event = {
            "type": "health_warning",
            "message": message,
            "time": iso(wall),
            "cell": v.cell,
            "evidence": list(v.evidence),
            "kind": v.kind,
        }
        return True, event
