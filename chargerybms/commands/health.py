"""``chargery.py health``: the cell-health report, from the saved evidence or a capture.

Without a capture it reads the evidence the daemon keeps in its state directory (read
only: a running daemon owns the file). With one (raw bytes as ``record`` writes them, or
hex text with ``--hex``, as ``decode`` takes) it runs the same engine over the capture,
with the BMS's status frames (one a second) as its clock, so cut-offs are placed by byte
offset and second. ``--json`` prints one document; ``--plot`` also draws the report as a
PNG or an HTML page with matplotlib, an optional dependency that only it needs.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO

from ..protocol import CellsFrame, Framer, StatusFrame
from ..views.health.engine import HealthEngine
from ..views.health.report import report
from ..views.health.store import health_path, read
from .decode import READ_SIZE, InputError, hex_to_bytes

KIND_WORDS = {
    "capacity": "has less capacity than the rest",
    "resistance": "has a high resistance (the cell or its connection)",
    "impedance": "has a high impedance",
}


@dataclass
class CaptureRun:
    """The engine after a capture, with what the plots need."""

    engine: HealthEngine
    seconds: float = 0.0
    times: list[float] = field(default_factory=list)  # second of each cells frame
    volts: list[list[float]] = field(default_factory=list)
    tops: list[float] = field(default_factory=list)  # seconds
    bottoms: list[float] = field(default_factory=list)
    cutoffs: list[dict[str, Any]] = field(default_factory=list)


def run_capture(source: BinaryIO, *, as_hex: bool, cell_limit: int | None) -> CaptureRun:
    """Feed a capture through the framer and the engine. Raises InputError for bad hex."""
    engine = HealthEngine(cell_limit)
    run = CaptureRun(engine)
    framer = Framer()
    chunks = [hex_to_bytes(source.read())] if as_hex else iter(lambda: source.read(READ_SIZE), b"")
    second = 0.0
    statuses = 0
    for chunk in [*chunks, None]:
        frames = framer.feed(chunk) if chunk is not None else framer.flush()
        for offset, frame in frames:
            if isinstance(frame, StatusFrame):
                statuses += 1
                second = float(statuses - 1)
            tops, bottoms = engine.capacity.tops_total, engine.capacity.bottoms_total
            for event in engine.feed(frame, second, second):
                if event["type"] == "cutoff":
                    run.cutoffs.append({**event, "time": None, "offset": offset, "second": second})
            if engine.capacity.tops_total != tops:
                run.tops.append(second)
            if engine.capacity.bottoms_total != bottoms:
                run.bottoms.append(second)
            if isinstance(frame, CellsFrame):
                run.times.append(second)
                run.volts.append(list(frame.cell_voltages[:cell_limit]))
    run.seconds = second
    return run


def report_document(
    engine: HealthEngine, *, source: str, wall: float | None, cutoffs: list[dict[str, Any]] | None
) -> dict[str, Any]:
    doc = report(engine, wall)
    doc["source"] = source
    if cutoffs is not None:  # a capture: places are byte offsets and seconds, not times
        doc["cutoffs"] = cutoffs
        doc["impedance_time"] = None
    return doc


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


def text_report(doc: dict[str, Any], *, capture: bool) -> str:
    lines = []
    cells = doc["cells"]
    if not cells:
        lines.append(f"Cell health from {doc['source']}: no cells seen yet.")
        return "\n".join(lines) + "\n"
    imp = f"{doc['impedance_measurements']} impedance measurements"
    if doc["impedance_current"] is not None:
        when = f", {_age(doc['impedance_age_s'])} ago" if doc["impedance_age_s"] is not None and not capture else ""
        imp += f" (the last at {abs(doc['impedance_current']):.1f} A{when})"
    lines.append(
        f"Cell health from {doc['source']}: {len(cells)} cells, {doc['tops']} tops and {doc['bottoms']} bottoms "
        f"of charge, {doc['sag_steps']} current steps, {imp}."
    )
    if doc["top_spread"] is not None:
        lines.append(f"Spread at the last top of charge: {doc['top_spread'] * 1000:.0f} mV.")
    lines.append("")
    weakest, lead = doc["weakest_cell"], doc.get("balance_lead")
    level = "WARNING" if doc["warning"] else "not yet a warning"
    if lead:  # a wiring fault, blamed on no cell
        lines.append(f"Verdict: the balance lead between cells {lead[0]} and {lead[1]} is loose ({level}). Why:")
        lines += [f"  - {e}" for e in doc["evidence"]]
    elif weakest is None:
        lines.append("Verdict: no cell stands out.")
    else:
        lines.append(f"Verdict: cell {weakest} {KIND_WORDS.get(doc['kind'], 'stands out')} ({level}). Why:")
        lines += [f"  - {e}" for e in doc["evidence"]]
    lines.append("")
    lines.append(
        "cell  top dev mV  bottom dev mV  highest at top  lowest at bottom  sag ratio  impedance ratio  impedance mΩ"
    )
    for c in cells:
        mark = "*" if c["cell"] == weakest else " "
        lines.append(
            f"{c['cell']:>3d}{mark} {_fmt(c['top_deviation_mv'], '+11.1f')} {_fmt(c['bottom_deviation_mv'], '+14.1f')} "
            f"{c['times_highest_at_top']:>15d} {c['times_lowest_at_bottom']:>17d} {_fmt(c['sag_ratio'], '10.2f')} "
            f"{_fmt(c['impedance_ratio'], '16.2f')} {_fmt(c['impedance_mohm'], '13.1f')}"
        )
    lines.append(
        "(deviations: mean over the last tops / bottoms, from the pack median; ratios: the cell over the median cell)"
    )
    lines.append("")
    cutoffs = doc["cutoffs"]
    if not cutoffs:
        lines.append("No cut-offs seen.")
    else:
        lines.append("Last cut-offs:")
        for c in cutoffs:
            where = f"byte {c['offset']} (second {c['second']:.0f})" if capture else str(c["time"])
            lines.append(f"  {where}: {c['message']}")
    return "\n".join(lines) + "\n"


# --- where the daemon keeps its evidence ------------------------------------------------


def evidence_candidates(state_dir: str | None, device_id: str) -> list[Path]:
    """Where the evidence may be: the configured (or default) state directory, and when
    none is configured, the service's (/var/lib/chargery, /var/lib/chargery/<instance>)."""
    from ..views.energy import default_state_dir

    paths = [health_path(default_state_dir(state_dir), device_id)]
    if not state_dir:
        paths += [
            health_path(Path("/var/lib/chargery"), device_id),
            health_path(Path("/var/lib/chargery") / device_id, device_id),
        ]
    out: list[Path] = []
    for p in paths:
        if p not in out:
            out.append(p)
    return out


def load_saved(paths: list[Path], cell_limit: int | None, err: IO[str]) -> tuple[HealthEngine | None, Path | None]:
    for path in paths:
        try:
            exists = path.exists() or path.with_name(path.name + ".bak").exists()
        except OSError:
            exists = False
        if not exists:
            if path.parent.exists() and not os.access(path.parent, os.R_OK | os.X_OK):
                print(
                    f"chargery health: cannot look into {path.parent} (permission denied): "
                    "run as root or as the daemon's user",
                    file=err,
                )
            continue
        engine, problems = read(path, cell_limit, move_corrupt=False)
        for problem in problems:
            print(f"chargery health: {problem}", file=err)
        if engine is not None:
            return engine, path
    return None, None


# --- plots ---------------------------------------------------------------------------------


# What pip installs for --plot: the `plots` extra of pyproject.toml (installing chargery from
# its checkout), or the one package it holds (tests/test_health_cli.py holds them equal).
PLOTS_PIP = "matplotlib (from a checkout of chargery: pip install '.[plots]')"


class PlotUnavailable(Exception):
    pass


def write_plot(target: str, doc: dict[str, Any], text: str, run: CaptureRun | None) -> None:
    """Draw the report as a PNG or an HTML page (the PNG inside). Raises PlotUnavailable
    without matplotlib, OSError when the file cannot be written, ValueError for another
    file type."""
    suffix = Path(target).suffix.lower()
    if suffix not in (".png", ".html", ".htm"):
        raise ValueError(f"--plot {target}: give a .png or .html file")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotUnavailable(
            "--plot needs matplotlib, which is not installed: sudo apt install python3-matplotlib "
            f"(or, in a virtual environment, pip install {PLOTS_PIP})"
        ) from None
    cells = doc["cells"]
    numbers = [c["cell"] for c in cells]
    series = run is not None and bool(run.times)
    rows = 3 if series else 2
    fig, axes = plt.subplots(rows, 1, figsize=(11, 3.6 * rows), squeeze=False)
    ax_iter = iter(axes[:, 0])
    if series and run is not None:
        ax = next(ax_iter)
        columns = list(zip(*run.volts, strict=False))
        for i, column in enumerate(columns):
            ax.plot(run.times, column, linewidth=0.8, label=f"cell {i + 1}" if i + 1 == doc["weakest_cell"] else None)
        for t in run.tops:
            ax.axvline(t, color="tab:red", linewidth=0.6, linestyle="--")
        for t in run.bottoms:
            ax.axvline(t, color="tab:blue", linewidth=0.6, linestyle="--")
        for c in run.cutoffs:
            ax.axvline(c["second"], color="black", linewidth=1.0)
        ax.set_title("Cell voltages (dashed: tops red, bottoms blue; black: cut-offs)")
        ax.set_xlabel("second of the capture")
        ax.set_ylabel("V")
        if doc["weakest_cell"] is not None:
            ax.legend(loc="best")

    def paired_bars(ax: Any, left: tuple[str, str, str], right: tuple[str, str, str], baseline: float) -> None:
        """Two bars per cell: (figure key, label, colour) each, a line at ``baseline``."""
        width = 0.4
        for (key, label, colour), shift in ((left, -width / 2), (right, width / 2)):
            values = [c[key] or 0.0 for c in cells]
            ax.bar([n + shift for n in numbers], values, width, label=label, color=colour)
        ax.axhline(baseline, color="grey", linewidth=0.6)
        ax.set_xticks(numbers)
        ax.legend(loc="best")

    ax = next(ax_iter)
    paired_bars(
        ax, ("top_deviation_mv", "at the tops", "tab:red"), ("bottom_deviation_mv", "at the bottoms", "tab:blue"), 0
    )
    ax.set_title("Deviation from the pack median (mean over the last tops and bottoms)")
    ax.set_ylabel("mV")
    ax = next(ax_iter)
    paired_bars(
        ax, ("sag_ratio", "sag at current steps", "tab:orange"), ("impedance_ratio", "BMS impedance", "tab:green"), 1
    )
    ax.set_title("Resistance relative to the median cell")
    ax.set_xlabel("cell")
    fig.tight_layout()
    if suffix == ".png":
        fig.savefig(target, dpi=100)
        plt.close(fig)
        return
    import base64
    import html
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    image = base64.b64encode(buffer.getvalue()).decode("ascii")
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Cell health</title></head>\n'
        f"<body><h1>Cell health</h1>\n<pre>{html.escape(text)}</pre>\n"
        f'<img alt="cell voltages and per-cell ratios" src="data:image/png;base64,{image}">\n'
        f'<script type="application/json" id="report">{html.escape(json.dumps(doc))}</script>\n</body></html>\n'
    )
    Path(target).write_text(page, encoding="utf-8")


# --- the command ------------------------------------------------------------------------------


def run_health(
    *,
    capture: str | None,
    as_hex: bool,
    as_json: bool,
    plot: str | None,
    state_dir: str | None,
    device_id: str,
    cell_limit: int | None,
    wall: float,
    out: IO[str] | None = None,
    err: IO[str] | None = None,
) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    run: CaptureRun | None = None
    if capture is not None:
        try:
            if capture == "-":
                run = run_capture(sys.stdin.buffer, as_hex=as_hex, cell_limit=cell_limit)
            else:
                with open(capture, "rb") as source:
                    run = run_capture(source, as_hex=as_hex, cell_limit=cell_limit)
        except InputError as exc:
            print(f"chargery health: {exc}", file=err)
            return 2
        except IsADirectoryError:
            print(f"chargery health: cannot read {capture}: it is a directory", file=err)
            return 2
        except OSError as exc:
            print(f"chargery health: cannot read {capture}: {exc.strerror or exc}", file=err)
            return 2
        doc = report_document(run.engine, source=capture, wall=run.seconds, cutoffs=run.cutoffs)
    else:
        paths = evidence_candidates(state_dir, device_id)
        engine, path = load_saved(paths, cell_limit, err)
        if engine is None or path is None:
            print(
                f"chargery health: no saved evidence ({', '.join(map(str, paths))}); the daemon keeps it in its "
                "state directory as it learns (--state-dir, --device-id), or give a capture",
                file=err,
            )
            return 1
        doc = report_document(engine, source=str(path), wall=wall, cutoffs=None)
    text = text_report(doc, capture=run is not None)
    if plot:
        try:
            write_plot(plot, doc, text, run)
        except PlotUnavailable as exc:
            print(f"chargery health: {exc}", file=err)
            return 2
        except ValueError as exc:
            print(f"chargery health: {exc}", file=err)
            return 2
        except OSError as exc:
            print(f"chargery health: cannot write {plot}: {exc.strerror or exc}", file=err)
            return 2
    try:
        if as_json:
            out.write(json.dumps(doc) + "\n")
        else:
            out.write(text)
        out.flush()
    except BrokenPipeError:
        return 0
    return 0
