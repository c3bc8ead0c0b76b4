"""What the parts of the cell-health engine share: a reading, a verdict, the statistics."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

Event = dict[str, Any]


@dataclass(slots=True)
class Reading:
    """A cells frame with the current it was taken under."""

    at: float  # monotonic seconds
    volts: list[float]
    current: float | None  # signed A from the last status frame; None: direction unknown
    soc: int | None


@dataclass(slots=True)
class Verdict:
    """What one part of the evidence (or all of it, judged) says."""

    cell: int | None  # 1-based; None: no cell is blamed (none stands out, or a balance lead)
    warning: bool
    kind: str | None  # capacity / resistance / impedance / balance_lead
    evidence: list[str]
    score: float = 0.0  # strength: 1.0 at the warning level
    lead: int | None = None  # a loose balance lead: the one between cells `lead` and `lead + 1`

    @property
    def place(self) -> int | None:
        """The cell named, or for a balance lead the lower of its two cells."""
        return self.cell if self.cell is not None else self.lead


def iso(wall: float) -> str:
    return datetime.fromtimestamp(wall, UTC).isoformat(timespec="seconds")


def median(values: list[float]) -> float:
    s = sorted(values)
    n = len(s)
    mid = n // 2
    return s[mid] if n % 2 else (s[mid - 1] + s[mid]) / 2


def mad(values: list[float]) -> float:
    """The median absolute deviation."""
    m = median(values)
    return median([abs(v - m) for v in values])


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0
