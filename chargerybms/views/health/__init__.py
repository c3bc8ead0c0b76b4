"""Cell health: which cell is failing, and why the BMS cut off.

The engine (``engine.py``, :class:`~.engine.HealthEngine`) is fed every decoded frame and
hands each to the part that watches it; every threshold is relative to the pack itself (the
figures behind them are in ``bench/health_bench.py`` and the cell-health documentation):

- ``sessions.py``: charge and discharge sessions, and when one that reached the top (SoC >=
  ``TOP_SOC``, or a cut-off) or the bottom ended, with the reading that shows its end.
- ``cutoffs.py``: when the BMS cut off (its flag, or on older firmware the charge current
  stopping at the end voltage), the cell that explains it, and the words for it.
- ``capacity.py``: each cell's deviation at the tops and bottoms; the capacity-limited cell.
- ``ratio.py``: one estimator of per-cell ratios to the median, smoothed; used twice, by
  ``sag.py`` (each cell's voltage step at a current step) and ``impedance.py`` (the BMS's
  own measurement at a current reversal).
- ``lead.py``: two neighbouring readings that jump in opposite directions: the sense lead
  between them, not the cells.
- ``verdict.py``: the suspicions weighed into one verdict; a warning said once.
- ``codec.py``: the evidence as a JSON document and back; ``report.py``: the ``health``
  command's document; ``store.py``: the daemon's view (the keys in ``state``, the evidence
  saved in the state directory).

Everything but ``store.py`` is pure: standard library only, no I/O, no logging, no clock of
its own (the caller passes the monotonic and the wall time).
"""
