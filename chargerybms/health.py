"""Cell health: which cell is failing, and why the BMS cut off.

Pure: standard library only, no I/O, no logging, no clock of its own. The caller feeds
every decoded frame with the monotonic time (intervals) and the wall time (what events
and ages say): ``events = engine.feed(frame, now, wall)``. Evidence is a plain JSON
document (:meth:`HealthEngine.to_json` / :meth:`HealthEngine.from_json`); saving it is
:mod:`chargerybms.health_store`'s business.

What it watches (every threshold is relative to the pack itself; the figures behind them
are in ``bench/health_bench.py`` and the README's "Cell health"):

- **Cut-offs.** When the BMS stops charging or discharging (firmware V1.26: its protection
  flag rises; older firmware: the charge current stops while a cell sits at the charge end
  voltage), the cell that explains it: the highest (lowest) cell of the last cells frame
  taken while the current flowed, if it was within ``CUTOFF_MARGIN`` of the end voltage.
  The BMS decides on its own reading, taken more often than the cells frame it sends every
  2 s, so the last frame before the cut reads a little under the end voltage. Otherwise
  the event says that no cell explains it and gives what is known.
- **Tops and bottoms.** At the end of each charge that reached the top (SoC >=
  ``TOP_SOC``, or a cut-off) and of each discharge that reached the bottom, each cell's
  deviation from the pack median, read at rest right after the current stopped when there
  is such a reading, else under current with each cell's own I*R taken out. A cell that
  stands out as the highest at the tops and the lowest at the bottoms runs out first both
  ways: the capacity-limited cell.
- **Sag.** At each current step (at least ``STEP_MIN_A``, with the median cell moving at
  least ``STEP_MIN_MV``), each cell's delta V / delta I between the cells frames either side,
  over the median cell's: smoothed, it is the cell's resistance relative to the pack.
- **Impedance.** The BMS's own per-cell measurement at a current reversal, over the
  median, smoothed, from measurements at ``IMPEDANCE_MIN_A`` or more only.
- **Balance lead.** Two neighbouring readings that jump in opposite directions with a
  steady sum: not a cell, the sense lead between them.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from .protocol import CellsFrame, Frame, ImpedancesFrame, StatusFrame

VERSION: Final = 1

# --- thresholds (the study in bench/health_bench.py and the README say why) ----------------

#: Without a configured cell count, trailing cell slots reading under this (V) are unwired.
UNWIRED_V: Final = 0.5
#: Current (A) above which a charge or discharge is flowing.
FLOW_A: Final = 1.0
#: A cut-off is explained by a cell whose last reading under current was at most this far
#: (V) short of the end voltage: the BMS acts on its own reading, up to ~3 s newer than the
#: last cells frame (sent every 2 s; the status frame that shows the cut comes every 1 s);
#: a LiFePO4 cell near its end voltage moves a few mV a second, and a load or charger step
#: in the second of the cut moves it by delta I * R at once, unseen in any frame. In the
#: study the explaining cell was a median 4 mV short, 19 mV at the 99th percentile, 27 mV
#: at most. A cell further away is not the cause: the event then says none is.
CUTOFF_MARGIN: Final = 0.030
#: Firmware before V1.26 sends no flag: the engine alone decides that the BMS cut off (the
#: charge current stopped with a cell this close to the end voltage), so it asks for more;
#: a charger that stops on its own with a cell a little short of it is then not taken for
#: the BMS.
CUTOFF_MARGIN_UNFLAGGED: Final = 0.015
#: The reading that explains a cut-off is at most this old (s) at the cut.
CUTOFF_READING_AGE: Final = 10.0
#: A charge counts as a top when the BMS's SoC ended at or above this (%), a discharge as a
#: bottom at or below BOTTOM_SOC; without a SoC every one counts.
TOP_SOC: Final = 85
BOTTOM_SOC: Final = 25
#: After the current stops, a cells frame within this many seconds is the rest reading.
REST_WINDOW: Final = 15.0
#: Tops and bottoms kept for the verdict (each).
WINDOW: Final = 5
#: A cell stands out at a top (bottom) when it is the highest (lowest) and its deviation is
#: at least CAP_FLOOR_MV and CAP_SPREAD times the spread of the other cells (their median
#: absolute deviation).
CAP_FLOOR_MV: Final = 25.0
CAP_SPREAD: Final = 6.0
#: Named as capacity-limited when it stood out at >= 1 top and >= 1 bottom of the window,
#: warned when at >= 2 of each.
CAP_NAME: Final = 1
CAP_WARN: Final = 2
#: A current step: the current changes by at least this (A) between two cells frames each
#: taken under a steady current ...
STEP_MIN_A: Final = 5.0
#: ... and the median cell moves by at least this (mV): with the BMS's 1 mV steps each
#: cell's share is then read to about +-10 %, and smoothing does the rest.
STEP_MIN_MV: Final = 5.0
#: Steps whose median cell moves by less than this (mV) count for less in the smoothing.
STEP_FULL_MV: Final = 10.0
#: The step is judged from two readings either side; a cell whose drift over one interval
#: differs from the pack's by more than this (mV) is in a knee, where the drift is no
#: straight line to take out: no step then. Four times the noise of a reading's change.
STEP_DRIFT_MV: Final = 4.0
#: A steady current moves by at most this (A) between two status frames.
STEADY_A: Final = 0.5
#: Seconds between the frames of one step, at most.
STEP_GAP: Final = 5.0
#: Smoothing of the sag ratios (exponential; the first steps are averaged).
SAG_ALPHA: Final = 0.1
#: Sag ratio (cell / median) to name a cell, and to warn, after SAG_MIN_STEPS steps.
SAG_NAME: Final = 1.4
SAG_WARN: Final = 1.5
SAG_MIN_STEPS: Final = 10
#: BMS impedance measurements count from this current (A) up: below it a 0.3 mOhm cell
#: moves 3 mV or less, about what the BMS's readings either side of the reversal scatter
#: (a real frame at 22.8 A reads such cells 0.0-0.5 mOhm), and in the study one
#: measurement's ratio is then off by about half.
IMPEDANCE_MIN_A: Final = 10.0
IMPEDANCE_ALPHA: Final = 0.25
#: A measurement at this current (A) or more counts fully; below, by (I / this)^2.
IMPEDANCE_FULL_A: Final = 50.0
IMPEDANCE_NAME: Final = 1.6
IMPEDANCE_WARN: Final = 2.0
IMPEDANCE_MIN_COUNT: Final = 4
#: The BMS sends impedances in steps of 0.1 mOhm: below this median (mOhm) a ratio is too
#: coarse to warn on by itself (it still names a cell, and backs the sag up).
IMPEDANCE_WARN_MIN_MOHM: Final = 1.0
#: Balance lead: each reading's move between two cells frames (<= STEP_GAP apart), less the
#: pack's median move; two neighbours moving at least LEAD_JUMP_MV in opposite directions
#: with their sum within LEAD_SUM_MV (or a fifth of the smaller jump) is one event.
LEAD_JUMP_MV: Final = 6.0
LEAD_SUM_MV: Final = 2.0
LEAD_NAME: Final = 3
LEAD_WARN: Final = 6
#: Lead events fade by this factor at every top, so a repaired lead is forgotten.
LEAD_FADE: Final = 0.7

CUTOFFS_KEPT: Final = 10
#: Cells frames in a row with another cell count before the evidence starts afresh (one
#: odd frame, a checksum that matched by chance, must not wipe months of it).
COUNT_CHANGE: Final = 10

Event = dict[str, Any]

#: Its keys in the ``state`` document (:meth:`HealthEngine.state_fields`).
FIELDS: Final = (
    "weakest_cell",
    "health_warning",
    "health_evidence",
    "last_cutoff",
    "last_cutoff_time",
    "top_spread",
    "cell_sag_ratios",
    "cell_impedance_ratios",
)


def iso(wall: float) -> str:
    return datetime.fromtimestamp(wall, UTC).isoformat(timespec="seconds")


def _median(values: list[float]) -> float:
    s = sorted(values)
    n = len(s)
    mid = n // 2
    return s[mid] if n % 2 else (s[mid - 1] + s[mid]) / 2


def _mad(values: list[float]) -> float:
    m = _median(values)
    return _median([abs(v - m) for v in values])


@dataclass(slots=True)
class _Reading:
    """A cells frame with the current it was taken under."""

    at: float  # monotonic seconds
    volts: list[float]
    current: float | None  # signed A from the last status frame; None: direction unknown
    soc: int | None


@dataclass(slots=True)
class Verdict:
    cell: int | None  # 1-based; None: no cell stands out
    warning: bool
    kind: str | None  # capacity / resistance / impedance / balance_lead
    evidence: list[str]
    score: float = 0.0  # strength: 1.0 at the warning level


class HealthEngine:
    """Cell-health evidence of one pack, fed every frame. ``cell_limit`` is the configured
    cell count (the first N of every frame); None takes every cell the BMS sends."""

    def __init__(self, cell_limit: int | None = None) -> None:
        self.cell_limit = cell_limit or None
        self.cells = 0  # cells in the evidence (0: none yet)
        self._init_evidence(0)
        self.cutoffs: deque[Event] = deque(maxlen=CUTOFFS_KEPT)  # the pack's, kept whatever the cell count
        self.announced: tuple[str, int | None] | None = None  # the warning last said
        # Transient: what the last frames said (not saved).
        self._status: StatusFrame | None = None
        self._direction = 0
        self._last_under: dict[int, _Reading | None] = {1: None, -1: None}
        self._session_cut = {1: False, -1: False}
        self._pending_end: tuple[int, float, _Reading] | None = None  # (direction, when, reading under current)
        self._latest: _Reading | None = None
        self._samples: deque[_Reading] = deque(maxlen=4)  # readings confirmed under a steady current
        self._unconfirmed: _Reading | None = None
        self._prev_cells: _Reading | None = None
        self._verdict: Verdict | None = None
        self._other_cells = 0  # a cell count other than the evidence's, seen _other_count times in a row
        self._other_count = 0
        self.last_step: tuple[float, float, list[float]] | None = None  # (delta I, median delta mV, ratios)
        self.last_cutoff_gap_mv: float | None = None  # how far short of the end voltage (for the study)
        self.changed = False  # evidence changed since the last mark_saved()

    def _init_evidence(self, n: int) -> None:
        self.cells = n
        self.tops: deque[dict[str, Any]] = deque(maxlen=WINDOW)
        self.bottoms: deque[dict[str, Any]] = deque(maxlen=WINDOW)
        self.tops_total = 0
        self.bottoms_total = 0
        self.highest_at_top = [0] * n
        self.lowest_at_bottom = [0] * n
        self.sag_ratio: list[float] | None = None
        self.sag_mohm: list[float] | None = None
        self.sag_steps = 0
        self.sag_weight = 0.0
        self.impedance_ratio: list[float] | None = None
        self.impedance_last: list[float] | None = None
        self.impedance_count = 0
        self.impedance_weight = 0.0
        self.impedance_current: float | None = None
        self.impedance_wall: float | None = None
        self.lead_events = [0.0] * max(0, n - 1)
        self._top_open = False
        self._bottom_open = False

    # --- feeding ----------------------------------------------------------------------

    def feed(self, frame: Frame, now: float, wall: float) -> list[Event]:
        """Take one decoded frame at monotonic ``now`` and wall-clock ``wall`` (seconds);
        return the events it causes (cut-offs, new warnings), newest last."""
        events: list[Event] = []
        if isinstance(frame, CellsFrame):
            self._on_cells(frame, now)
        elif isinstance(frame, StatusFrame):
            self._on_status(frame, now, wall, events)
        elif isinstance(frame, ImpedancesFrame):
            self._on_impedances(frame, wall)
        if self._verdict is None:
            self._announce(wall, events)
        return events

    def _wired(self, values: tuple[float, ...]) -> list[float]:
        """The cells really in series: the configured count, else every slot up to the last
        that holds a cell (unwired slots at the end read 0-30 mV of junk)."""
        if self.cell_limit:
            return list(values[: self.cell_limit])
        n = len(values)
        while n > 2 and values[n - 1] < UNWIRED_V:
            n -= 1
        return list(values[:n])

    def _ensure_cells(self, n: int) -> bool:
        """The evidence is for ``n`` cells; a different count, in COUNT_CHANGE frames in a
        row (not one odd frame), starts it afresh. False: ignore this frame."""
        if n < 2:
            return False
        if n != self.cells and self.cells:
            self._other_count = self._other_count + 1 if n == self._other_cells else 1
            self._other_cells = n
            if self._other_count < COUNT_CHANGE:
                return False
        self._other_count = 0
        if n != self.cells:
            self._init_evidence(n)
            self._samples.clear()
            self._prev_cells = None
            self._unconfirmed = None
            self._last_under = {1: None, -1: None}
            self._pending_end = None
            self._verdict = None
            self.changed = True
        return True

    def _on_cells(self, frame: CellsFrame, now: float) -> None:
        volts = self._wired(frame.cell_voltages)
        if not self._ensure_cells(len(volts)):
            return
        status = self._status
        current = None if status is None or status.mode_code is None else status.current
        soc = frame.soc if frame.soc is not None else status.soc if status is not None else None
        reading = _Reading(now, volts, current, soc)
        self._balance_lead(reading)
        self._prev_cells = reading
        self._latest = reading
        if self._direction:
            self._last_under[self._direction] = reading
        pending = self._pending_end
        if pending is not None and self._direction == 0 and now - pending[1] <= REST_WINDOW:
            self._end_session(pending[0], pending[2], reading)
        self._unconfirmed = reading if current is not None else None

    def _on_status(self, frame: StatusFrame, now: float, wall: float, events: list[Event]) -> None:
        previous = self._status
        self._status = frame
        if frame.mode_code is None:
            self._direction = 0  # no mode byte: no direction, nothing to say
            return
        current = frame.current
        # A cells frame taken under the current it was read with, steady on both sides.
        unconfirmed = self._unconfirmed
        if unconfirmed is not None:
            self._unconfirmed = None
            if unconfirmed.current is not None and abs(current - unconfirmed.current) <= STEADY_A:
                self._sample(unconfirmed)
        direction = 1 if current >= FLOW_A else -1 if current <= -FLOW_A else 0
        old = self._direction
        self._direction = direction
        if direction != old:
            if direction == -1:
                self._top_open = False  # a new discharge: the next top is a new one
            elif direction == 1:
                self._bottom_open = False
            if old:
                self._stopped(old, now)
            if direction:
                self._session_cut[direction] = False
        self._cutoffs(previous, frame, old=old, direction=direction, now=now, wall=wall, events=events)
        pending = self._pending_end
        if pending is not None and (direction or now - pending[1] > REST_WINDOW):
            self._end_session(pending[0], pending[2], None)  # no rest reading came

    # --- cut-offs ---------------------------------------------------------------------

    def _cutoffs(
        self,
        previous: StatusFrame | None,
        frame: StatusFrame,
        *,
        old: int,
        direction: int,
        now: float,
        wall: float,
        events: list[Event],
    ) -> None:
        if frame.charge_protection is not None:
            # V1.26: the BMS says it stopped; a flag already up when we start is not news.
            if previous is not None and previous.charge_protection is False and frame.charge_protection:
                events.append(self._cutoff(1, previous, frame, now, wall, CUTOFF_MARGIN))
            if previous is not None and previous.discharge_protection is False and frame.discharge_protection:
                events.append(self._cutoff(-1, previous, frame, now, wall, CUTOFF_MARGIN))
            return
        # Older firmware: the charge current stops while a cell sits at the end voltage.
        if old == 1 and direction != 1:
            reading = self._recent_under(1, now)
            current = (previous or frame).current
            end = frame.charge_end_voltage
            if reading is not None and self._at_end(1, reading, current, end, CUTOFF_MARGIN_UNFLAGGED)[2]:
                events.append(self._cutoff(1, previous, frame, now, wall, CUTOFF_MARGIN_UNFLAGGED))

    def _recent_under(self, direction: int, now: float) -> _Reading | None:
        reading = self._last_under[direction]
        if reading is None or now - reading.at > CUTOFF_READING_AGE:
            return None
        return reading

    def _at_end(
        self, direction: int, reading: _Reading, current: float, end: float | None, margin: float
    ) -> tuple[int, float, bool]:
        """The cell at the end of the pack in ``direction`` (1-based), its reading, and
        whether it explains a cut at ``end``: its reading, carried to the current at the
        cut with its own I*R (the sag estimate), within ``margin`` of ``end``."""
        volts = reading.volts
        estimate = volts
        if reading.current is not None and self.sag_mohm is not None and self.sag_steps >= SAG_MIN_STEPS:
            step = current - reading.current
            estimate = [v + step * r / 1000 for v, r in zip(volts, self.sag_mohm, strict=True)]
        extreme = max(estimate) if direction == 1 else min(estimate)
        i = estimate.index(extreme)
        if end is None:
            return i + 1, volts[i], False
        self.last_cutoff_gap_mv = (end - extreme if direction == 1 else extreme - end) * 1000
        return i + 1, volts[i], self.last_cutoff_gap_mv <= margin * 1000

    def _cutoff(  # noqa: PLR0917 - one call per kind of cut, all arguments needed
        self, direction: int, previous: StatusFrame | None, frame: StatusFrame, now: float, wall: float, margin: float
    ) -> Event:
        self._session_cut[direction] = True
        charge = direction == 1
        end = frame.charge_end_voltage if charge else frame.discharge_end_voltage
        word = "charge" if charge else "discharge"
        reading = self._recent_under(direction, now)
        latest = reading or self._latest
        cell: int | None = None
        voltage: float | None = None
        message: str
        current = (previous or frame).current  # the last before the cut
        if latest is not None and self.cells:
            index, extreme, explained = self._at_end(direction, latest, current, end, margin)
            explained = explained and reading is not None
        else:
            extreme, index, explained = 0.0, 0, False
        end_text = f"{word} end voltage {end:.3f} V" if end is not None else f"{word} end voltage unknown"
        if explained and reading is not None and end is not None:
            cell, voltage = index, extreme
            beyond = extreme >= end if charge else extreme <= end
            verb = "reached" if charge else "fell to"
            if beyond:
                message = f"{word} stopped: cell {index} {verb} {extreme:.3f} V ({end_text})"
            else:
                short = round(abs(end - extreme) * 1000)
                ago = max(0, round(now - reading.at))
                side = "under" if charge else "over"
                message = (
                    f"{word} stopped: cell {index} at {extreme:.3f} V, {short} mV {side} the {end_text} "
                    f"(its last reading, {ago} s before the cut)"
                )
        else:
            known = [
                f"temperatures {frame.temperature_1:.1f} °C and {frame.temperature_2:.1f} °C",
                f"current {current:.1f} A before the stop",
            ]
            if latest is not None and self.cells:
                which = "highest" if charge else "lowest"
                where = (
                    f"the {which} cell, {index}, was at {extreme:.3f} V ({end_text})"
                    if end is not None
                    else f"the {which} cell, {index}, was at {extreme:.3f} V"
                )
                known.insert(0, where)
            message = f"{word} stopped and no cell explains it: " + "; ".join(known)
        event: Event = {
            "type": "cutoff",
            "message": message,
            "time": iso(wall),
            "cell": cell,
            "direction": word,
            "voltage": voltage,
            "end_voltage": end,
            "current": current,
            "temperature_1": frame.temperature_1,
            "temperature_2": frame.temperature_2,
            "explained": cell is not None,
        }
        self.cutoffs.append(event)
        self.changed = True
        return event

    # --- tops and bottoms -------------------------------------------------------------

    def _stopped(self, direction: int, now: float) -> None:
        """A charge (1) or discharge (-1) just ended."""
        under = self._last_under[direction]
        if under is None or self.cells == 0 or now - under.at > CUTOFF_READING_AGE:
            return  # no reading of this session's end
        if self._pending_end is not None:
            self._end_session(self._pending_end[0], self._pending_end[2], None)
        self._pending_end = (direction, now, under)

    def _end_session(self, direction: int, under: _Reading, rest: _Reading | None) -> None:
        self._pending_end = None
        soc = under.soc
        cut = self._session_cut[direction]
        if direction == 1 and not (cut or soc is None or soc >= TOP_SOC):
            return
        if direction == -1 and not (cut or soc is None or soc <= BOTTOM_SOC):
            return
        if rest is not None:
            volts, at_rest = rest.volts, True
        else:
            volts, at_rest = self._without_ir(under), False
        m = _median(volts)
        deviations = [round((v - m) * 1000, 1) for v in volts]
        snapshot = {"dev": deviations, "rest": at_rest, "cut": cut}
        if direction == 1:
            self._record(self.tops, self.highest_at_top, snapshot, replace=self._top_open, pick=max)
            self._top_open = True
        else:
            self._record(self.bottoms, self.lowest_at_bottom, snapshot, replace=self._bottom_open, pick=min)
            self._bottom_open = True
        self._evidence_changed()

    def _record(
        self,
        snapshots: deque[dict[str, Any]],
        counts: list[int],
        snapshot: dict[str, Any],
        *,
        replace: bool,
        pick: Callable[[list[float]], float],
    ) -> None:
        """Add a top (bottom); or, charged (discharged) again before the current turned,
        replace the last one: the same top."""
        dev: list[float] = snapshot["dev"]
        if replace and snapshots:
            old: list[float] = snapshots[-1]["dev"]
            i = old.index(pick(old))
            counts[i] = max(0, counts[i] - 1)
            snapshots[-1] = snapshot
        else:
            snapshots.append(snapshot)
            if snapshots is self.tops:
                self.tops_total += 1
                self.lead_events = [e * LEAD_FADE for e in self.lead_events]
            else:
                self.bottoms_total += 1
        counts[dev.index(pick(dev))] += 1

    def _without_ir(self, reading: _Reading) -> list[float]:
        """Each cell's voltage less its own I*R (from the sag estimate), when there is one."""
        if reading.current is None or self.sag_mohm is None or self.sag_steps < SAG_MIN_STEPS:
            return reading.volts
        amps = reading.current
        return [v - amps * r / 1000 for v, r in zip(reading.volts, self.sag_mohm, strict=True)]

    # --- sag ----------------------------------------------------------------------------

    def _sample(self, reading: _Reading) -> None:
        """A reading under a steady current. A step is judged one reading after it: two
        readings either side give each cell's drift (the charge moving it, fast in a knee),
        and the jump at the step is what the drift does not explain."""
        samples = self._samples
        if samples and reading.at - samples[-1].at > STEP_GAP:
            samples.clear()
        samples.append(reading)
        if len(samples) < 4:
            return
        p, b, a, a2 = samples
        assert p.current is not None and b.current is not None and a.current is not None and a2.current is not None
        delta_i = a.current - b.current
        if abs(delta_i) < STEP_MIN_A or abs(b.current - p.current) > STEADY_A or abs(a2.current - a.current) > STEADY_A:
            return
        gap_before, gap, gap_after = b.at - p.at, a.at - b.at, a2.at - a.at
        if min(gap_before, gap, gap_after) <= 0:
            return
        # A cell whose own drift differs from the pack's by more than STEP_DRIFT_MV per
        # interval sits in a knee, where the drift is no straight line: no step then.
        drift_b = [(x - w) * 1000 for w, x in zip(p.volts, b.volts, strict=True)]
        drift_a = [(z - y) * 1000 for y, z in zip(a.volts, a2.volts, strict=True)]
        for drift in (drift_b, drift_a):
            m = _median(drift)
            if max(abs(d - m) for d in drift) > STEP_DRIFT_MV:
                return
        half = gap / 2
        dv = [
            ((y - x) - ((x - w) / gap_before + (z - y) / gap_after) * half) * 1000
            for w, x, y, z in zip(p.volts, b.volts, a.volts, a2.volts, strict=True)
        ]
        med = _median(dv)
        if abs(med) < STEP_MIN_MV or (med > 0) != (delta_i > 0):
            return
        ratios = [d / med for d in dv]
        mohm = [d / delta_i for d in dv]
        self.last_step = (delta_i, med, ratios)
        self.sag_steps += 1
        # Small steps are read less precisely (1 mV in 5 is 20 %): they count for less.
        weight = min(1.0, abs(med) / STEP_FULL_MV) ** 2
        self.sag_weight += weight
        alpha = max(SAG_ALPHA * weight, weight / self.sag_weight)
        if self.sag_ratio is None or self.sag_mohm is None:
            self.sag_ratio, self.sag_mohm = ratios, mohm
        else:
            self.sag_ratio = [s + alpha * (r - s) for s, r in zip(self.sag_ratio, ratios, strict=True)]
            self.sag_mohm = [s + alpha * (r - s) for s, r in zip(self.sag_mohm, mohm, strict=True)]
        self._evidence_changed()

    # --- impedances -----------------------------------------------------------------------

    def _on_impedances(self, frame: ImpedancesFrame, wall: float) -> None:
        values = list(frame.cell_impedances[: self.cells])  # the BMS sends its configured count
        if len(values) != self.cells or not self.cells:
            return
        if abs(frame.current) < IMPEDANCE_MIN_A:
            return
        med = _median(values)
        if med <= 0:
            return
        ratios = [v / med for v in values]
        self.impedance_count += 1
        # The BMS's 1 mV either side is a larger share of a smaller current's delta V:
        # weigh each measurement by the inverse of its noise's variance, (I / FULL)^2.
        weight = min(1.0, (frame.current / IMPEDANCE_FULL_A) ** 2)
        self.impedance_weight += weight
        alpha = max(IMPEDANCE_ALPHA * weight, weight / self.impedance_weight)
        if self.impedance_ratio is None:
            self.impedance_ratio = ratios
        else:
            self.impedance_ratio = [s + alpha * (r - s) for s, r in zip(self.impedance_ratio, ratios, strict=True)]
        self.impedance_last = values
        self.impedance_current = frame.current
        self.impedance_wall = wall
        self._evidence_changed()

    # --- balance lead ---------------------------------------------------------------------

    def _balance_lead(self, reading: _Reading) -> None:
        prev = self._prev_cells
        if prev is None or reading.at - prev.at > STEP_GAP or len(prev.volts) != len(reading.volts):
            return
        moves = [(b - a) * 1000 for a, b in zip(prev.volts, reading.volts, strict=True)]
        pack = _median(moves)
        moves = [m - pack for m in moves]
        found = False
        for k in range(len(moves) - 1):
            a, b = moves[k], moves[k + 1]
            if a * b >= 0 or abs(a) < LEAD_JUMP_MV or abs(b) < LEAD_JUMP_MV:
                continue
            if abs(a + b) <= max(LEAD_SUM_MV, min(abs(a), abs(b)) / 5):
                self.lead_events[k] += 1
                found = True
        if found:
            self._evidence_changed()

    # --- verdict ------------------------------------------------------------------------

    def _evidence_changed(self) -> None:
        self.changed = True
        self._verdict = None

    def verdict(self) -> Verdict:
        if self._verdict is None:
            self._verdict = self._judge()
        return self._verdict

    def _judge(self) -> Verdict:
        candidates: list[Verdict] = []
        lead = self._lead_candidate()
        if lead is not None:
            candidates.append(lead)
        lead_cells = {lead.cell, (lead.cell or 0) + 1} if lead is not None else set()
        capacity = self._capacity_candidate()
        if capacity is not None and capacity.cell not in lead_cells:
            candidates.append(capacity)
        sag = self._ratio_candidate(
            "resistance",
            ratios=self.sag_ratio,
            count=self.sag_steps,
            min_count=SAG_MIN_STEPS,
            name=SAG_NAME,
            warn=SAG_WARN,
            text=self._sag_text,
        )
        imp = self._ratio_candidate(
            "impedance",
            ratios=self.impedance_ratio,
            count=self.impedance_count,
            min_count=IMPEDANCE_MIN_COUNT,
            name=IMPEDANCE_NAME,
            warn=IMPEDANCE_WARN,
            text=self._impedance_text,
        )
        if imp is not None and self.impedance_last is not None:
            if _median(self.impedance_last) < IMPEDANCE_WARN_MIN_MOHM:
                imp.warning = False
        for c in (sag, imp):
            if c is not None and c.cell not in lead_cells:
                candidates.append(c)
        if not candidates:
            return Verdict(None, False, None, [])
        best = max(candidates, key=lambda c: (c.warning, c.score))  # a warning outranks a mere suspicion
        evidence = list(best.evidence)
        for other in candidates:  # what else points at the same cell
            if other is not best and other.cell == best.cell:
                evidence += other.evidence
        warning = any(c.warning for c in candidates if c.cell == best.cell)
        return Verdict(best.cell, warning, best.kind, evidence, best.score)

    def _stood_out(self, snapshots: deque[dict[str, Any]], highest: bool) -> dict[int, list[float]]:
        """Per cell (0-based), its deviations (mV) at the snapshots where it stood out."""
        out: dict[int, list[float]] = {}
        for snap in snapshots:
            dev: list[float] = snap["dev"]
            extreme = max(dev) if highest else min(dev)
            i = dev.index(extreme)
            others = dev[:i] + dev[i + 1 :]
            spread = _mad(others) if others else 0.0
            if abs(extreme) >= max(CAP_FLOOR_MV, CAP_SPREAD * spread):
                out.setdefault(i, []).append(extreme)
        return out

    def _capacity_candidate(self) -> Verdict | None:
        tops = self._stood_out(self.tops, highest=True)
        bottoms = self._stood_out(self.bottoms, highest=False)
        best: Verdict | None = None
        for i in set(tops) & set(bottoms):
            n_top, n_bottom = len(tops[i]), len(bottoms[i])
            if min(n_top, n_bottom) < CAP_NAME:
                continue
            score = min(n_top, n_bottom) / CAP_WARN
            evidence = [
                f"highest at {n_top} of the last {len(self.tops)} tops of charge "
                f"({_mean(tops[i]):+.0f} mV from the median)",
                f"lowest at {n_bottom} of the last {len(self.bottoms)} bottoms "
                f"({_mean(bottoms[i]):+.0f} mV from the median): it has less capacity than the rest",
            ]
            c = Verdict(i + 1, score >= 1, "capacity", evidence, score)
            if best is None or c.score > best.score:
                best = c
        return best

    def _ratio_candidate(
        self,
        kind: str,
        *,
        ratios: list[float] | None,
        count: int,
        min_count: int,
        name: float,
        warn: float,
        text: Callable[[int], str],
    ) -> Verdict | None:
        if ratios is None or count < min_count:
            return None
        top = max(ratios)
        if top < name:
            return None
        i = ratios.index(top)
        score = (top - 1) / (warn - 1)
        return Verdict(i + 1, top >= warn, kind, [text(i)], score)

    def _sag_text(self, i: int) -> str:
        assert self.sag_ratio is not None
        return (
            f"sags {self.sag_ratio[i]:.1f}× as much as the median cell at current steps ({self.sag_steps} steps): "
            "a high resistance (the cell or its connection)"
        )

    def _impedance_text(self, i: int) -> str:
        assert self.impedance_ratio is not None
        return (
            f"the BMS measures {self.impedance_ratio[i]:.1f}× the median impedance "
            f"({self.impedance_count} measurements at {IMPEDANCE_MIN_A:.0f} A or more)"
        )

    def _lead_candidate(self) -> Verdict | None:
        if not self.lead_events:
            return None
        top = max(self.lead_events)
        if top < LEAD_NAME:
            return None
        k = self.lead_events.index(top)
        rest = sum(self.lead_events) - top
        if rest > top / 3:
            return None  # not one lead: noise all over the pack is no wiring fault
        evidence = [
            f"cells {k + 1} and {k + 2} jumped in opposite directions with a steady sum ({top:.0f} times "
            f"recently): the balance lead between them is loose, the cells may be fine"
        ]
        return Verdict(k + 1, top >= LEAD_WARN, "balance_lead", evidence, top / LEAD_WARN)

    def _announce(self, wall: float, events: list[Event]) -> None:
        v = self.verdict()
        if not v.warning:
            if self.announced is not None:
                self.announced = None
                self.changed = True
            return
        key = (v.kind or "", v.cell)
        if self.announced == key:
            return
        self.announced = key
        self.changed = True
        what = {
            "capacity": "has less capacity than the rest",
            "resistance": "has a high resistance",
            "impedance": "has a high impedance",
            "balance_lead": f"and cell {(v.cell or 0) + 1} have a loose balance lead between them",
        }.get(v.kind or "", "stands out")
        events.append(
            {
                "type": "health_warning",
                "message": f"cell {v.cell} {what}: {v.evidence[0]}",
                "time": iso(wall),
                "cell": v.cell,
                "evidence": list(v.evidence),
                "kind": v.kind,
            }
        )

    # --- outputs ------------------------------------------------------------------------

    def state_fields(self) -> dict[str, Any]:
        """The ``state`` document's cell-health keys."""
        v = self.verdict()
        last = self.cutoffs[-1] if self.cutoffs else None
        top = self.tops[-1]["dev"] if self.tops else None
        values = (
            v.cell,
            v.warning,
            "; ".join(v.evidence),
            last["message"] if last else None,
            last["time"] if last else None,
            round((max(top) - min(top)) / 1000, 3) if top else None,
            _rounded(self.sag_ratio),
            _rounded(self.impedance_ratio),
        )
        return dict(zip(FIELDS, values, strict=True))

    def report(self, wall: float | None = None) -> dict[str, Any]:
        """Everything the ``health`` command shows, JSON-ready. ``wall`` (now) gives the
        impedance measurement's age."""
        v = self.verdict()
        cells = []
        for i in range(self.cells):
            top = [s["dev"][i] for s in self.tops]
            bottom = [s["dev"][i] for s in self.bottoms]
            cells.append(
                {
                    "cell": i + 1,
                    "top_deviation_mv": round(_mean(top), 1) if top else None,
                    "bottom_deviation_mv": round(_mean(bottom), 1) if bottom else None,
                    "times_highest_at_top": self.highest_at_top[i],
                    "times_lowest_at_bottom": self.lowest_at_bottom[i],
                    "sag_ratio": round(self.sag_ratio[i], 2) if self.sag_ratio else None,
                    "sag_mohm": round(self.sag_mohm[i], 3) if self.sag_mohm else None,
                    "impedance_ratio": round(self.impedance_ratio[i], 2) if self.impedance_ratio else None,
                    "impedance_mohm": self.impedance_last[i] if self.impedance_last else None,
                }
            )
        age = None
        if wall is not None and self.impedance_wall is not None:
            age = max(0.0, round(wall - self.impedance_wall, 1))
        return {
            "weakest_cell": v.cell,
            "warning": v.warning,
            "kind": v.kind,
            "evidence": list(v.evidence),
            "cells": cells,
            "tops": self.tops_total,
            "bottoms": self.bottoms_total,
            "top_spread": self.state_fields()["top_spread"],
            "sag_steps": self.sag_steps,
            "sag_weight": self.sag_weight,
            "impedance_measurements": self.impedance_count,
            "impedance_current": self.impedance_current,
            "impedance_time": iso(self.impedance_wall) if self.impedance_wall is not None else None,
            "impedance_age_s": age,
            "balance_lead_events": [round(e, 1) for e in self.lead_events],
            "cutoffs": [dict(c) for c in self.cutoffs],
        }

    # --- persistence --------------------------------------------------------------------

    def mark_saved(self) -> None:
        self.changed = False

    def to_json(self) -> dict[str, Any]:
        """The evidence as a JSON-ready document (what survives a restart); a copy."""
        return {
            "version": VERSION,
            "cells": self.cells,
            "tops": [{**s, "dev": list(s["dev"])} for s in self.tops],
            "bottoms": [{**s, "dev": list(s["dev"])} for s in self.bottoms],
            "tops_total": self.tops_total,
            "bottoms_total": self.bottoms_total,
            "highest_at_top": list(self.highest_at_top),
            "lowest_at_bottom": list(self.lowest_at_bottom),
            "sag_ratio": _copy(self.sag_ratio),
            "sag_mohm": _copy(self.sag_mohm),
            "sag_steps": self.sag_steps,
            "sag_weight": self.sag_weight,
            "impedance_ratio": _copy(self.impedance_ratio),
            "impedance_last": _copy(self.impedance_last),
            "impedance_count": self.impedance_count,
            "impedance_weight": self.impedance_weight,
            "impedance_current": self.impedance_current,
            "impedance_wall": self.impedance_wall,
            "lead_events": list(self.lead_events),
            "cutoffs": [dict(c) for c in self.cutoffs],
            "announced": list(self.announced) if self.announced else None,
        }

    @classmethod
    def from_json(cls, data: Any, cell_limit: int | None = None) -> HealthEngine:
        """The engine with the evidence of :meth:`to_json`. Raises ValueError when ``data``
        is not such a document (the caller says so and starts afresh)."""
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        if data.get("version") != VERSION:
            raise ValueError(f"version {data.get('version')!r}, expected {VERSION}")
        engine = cls(cell_limit)
        cutoffs = data.get("cutoffs")
        if not isinstance(cutoffs, list) or not all(
            isinstance(c, dict) and isinstance(c.get("message"), str) for c in cutoffs
        ):
            raise ValueError("cutoffs: not a list of events")
        engine.cutoffs.extend(dict(c) for c in cutoffs[-CUTOFFS_KEPT:])
        announced = data.get("announced")
        if announced is not None:
            if not (isinstance(announced, list) and len(announced) == 2 and isinstance(announced[0], str)):
                raise ValueError("announced: not [kind, cell]")
            engine.announced = (announced[0], announced[1] if isinstance(announced[1], int) else None)
        n = _int(data, "cells")
        if n == 0 or (cell_limit and n > cell_limit):
            return engine  # nothing per cell, or of more cells than are configured now: another pack
        if n < 2 or n > 24:
            raise ValueError(f"cells: {n} is not a cell count")
        engine._init_evidence(n)
        engine.tops.extend(_snapshots(data, "tops", n))
        engine.bottoms.extend(_snapshots(data, "bottoms", n))
        engine.tops_total = _int(data, "tops_total")
        engine.bottoms_total = _int(data, "bottoms_total")
        engine.highest_at_top = _ints(data, "highest_at_top", n)
        engine.lowest_at_bottom = _ints(data, "lowest_at_bottom", n)
        engine.sag_ratio = _floats(data, "sag_ratio", n, optional=True)
        engine.sag_mohm = _floats(data, "sag_mohm", n, optional=True)
        engine.sag_steps = _int(data, "sag_steps")
        engine.sag_weight = _number(data, "sag_weight") or 0.0
        engine.impedance_ratio = _floats(data, "impedance_ratio", n, optional=True)
        engine.impedance_last = _floats(data, "impedance_last", n, optional=True)
        engine.impedance_count = _int(data, "impedance_count")
        engine.impedance_weight = _number(data, "impedance_weight") or 0.0
        engine.impedance_current = _number(data, "impedance_current")
        engine.impedance_wall = _number(data, "impedance_wall")
        engine.lead_events = _floats(data, "lead_events", n - 1, optional=False) or []
        return engine


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _copy(values: list[float] | None) -> list[float] | None:
    return None if values is None else list(values)


def _rounded(values: list[float] | None) -> list[float] | None:
    return None if values is None else [round(v, 2) for v in values]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and abs(value) < 1e12


def _int(data: dict[str, Any], key: str) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{key}: {value!r} is not a count")
    return value


def _number(data: dict[str, Any], key: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if not _is_number(value):
        raise ValueError(f"{key}: {value!r} is not a number")
    return float(value)


def _floats(data: dict[str, Any], key: str, n: int, *, optional: bool) -> list[float] | None:
    value = data.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, list) or len(value) != n or not all(_is_number(v) for v in value):
        raise ValueError(f"{key}: not a list of {n} numbers")
    return [float(v) for v in value]


def _ints(data: dict[str, Any], key: str, n: int) -> list[int]:
    value = data.get(key)
    if not isinstance(value, list) or len(value) != n or not all(isinstance(v, int) and v >= 0 for v in value):
        raise ValueError(f"{key}: not a list of {n} counts")
    return list(value)


def _snapshots(data: dict[str, Any], key: str, n: int) -> list[dict[str, Any]]:
    value = data.get(key)
    if not isinstance(value, list):
        raise ValueError(f"{key}: not a list")
    out = []
    for snap in value[-WINDOW:]:
        if not isinstance(snap, dict):
            raise ValueError(f"{key}: not a list of snapshots")
        dev = snap.get("dev")
        if not isinstance(dev, list) or len(dev) != n or not all(_is_number(v) for v in dev):
            raise ValueError(f"{key}: a snapshot without {n} deviations")
        out.append({"dev": [float(v) for v in dev], "rest": bool(snap.get("rest")), "cut": bool(snap.get("cut"))})
    return out
