"""``chargery.py health``: the report from a capture (raw and hex) and from saved evidence,
as text and as JSON, and its plots."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import IN_CI

from chargerybms.cli import main
from chargerybms.protocol import decode_frame
from chargerybms.simulator import SimulatedBms
from chargerybms.views.health.engine import HealthEngine
from chargerybms.views.health.store import HealthStore, health_path


def capture(path: Path, fault: str | None, seconds: int = 4200, seed: int = 3) -> bytes:
    data = b"".join(SimulatedBms(16, cycle=600, seed=seed, fault=fault).seconds(seconds))
    path.write_bytes(data)
    return data


def health(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["health", *args])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def weak_cell_capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("capture") / "weak.bin"
    capture(path, "low-capacity:7")
    return path


def test_the_text_report_of_a_capture_names_the_cell_and_its_cut_offs(
    weak_cell_capture: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = health(capsys, str(weak_cell_capture))
    assert status == 0 and err == ""
    assert "Verdict: cell 7 has less capacity than the rest (WARNING). Why:" in out
    assert re.search(r"  - highest at \d of the last \d tops of charge \(\+\d+ mV from the median\)", out)
    row = next(line for line in out.splitlines() if line.startswith("  7*"))
    top, bottom, highest, lowest = row.split()[1:5]
    assert float(top) > 100 and float(bottom) < -50 and int(highest) >= 5 and int(lowest) >= 5
    assert sum(1 for line in out.splitlines() if re.match(r"^ *\d+\*", line)) == 1  # one weakest cell
    cutoffs = [line for line in out.splitlines() if line.startswith("  byte ")]
    assert cutoffs and all(re.match(r"  byte \d+ \(second \d+\): charge stopped: cell 7 ", c) for c in cutoffs)


def test_the_json_report_of_a_capture(weak_cell_capture: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = health(capsys, "--json", str(weak_cell_capture))
    assert status == 0
    doc = json.loads(out)
    assert doc["weakest_cell"] == 7 and doc["warning"] is True and doc["kind"] == "capacity"
    assert doc["evidence"] and all(isinstance(e, str) for e in doc["evidence"])
    assert [c["cell"] for c in doc["cells"]] == list(range(1, 17))
    seven = doc["cells"][6]
    assert seven["top_deviation_mv"] > 100 and seven["times_lowest_at_bottom"] >= 5
    assert all(0.5 < c["sag_ratio"] < 1.5 for c in doc["cells"])  # a capacity fault, not a resistance one
    data = weak_cell_capture.read_bytes()
    assert doc["cutoffs"]
    for cut in doc["cutoffs"]:
        assert cut["cell"] == 7 and cut["direction"] == "charge" and cut["end_voltage"] == 3.65
        assert 3.62 <= cut["voltage"] <= 3.66 and cut["time"] is None
        assert data[cut["offset"] : cut["offset"] + 3] == b"$$\x57"  # the status frame that showed the cut
        assert decode_frame(data[cut["offset"] : cut["offset"] + 19]).charge_protection is True  # type: ignore[union-attr]


def test_hex_input_gives_the_same_report(
    weak_cell_capture: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hex_path = tmp_path / "weak.hex"
    data = weak_cell_capture.read_bytes()
    hex_path.write_text("\n".join(data[i : i + 32].hex(" ") for i in range(0, len(data), 32)))
    _, raw, _ = health(capsys, "--json", str(weak_cell_capture))
    _, hexed, _ = health(capsys, "--json", "--hex", str(hex_path))
    assert json.loads(hexed) == {**json.loads(raw), "source": str(hex_path)}


def test_a_healthy_capture_names_no_cell(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "healthy.bin"
    capture(path, None, seed=8)
    status, out, _ = health(capsys, str(path))
    assert status == 0 and "Verdict: no cell stands out." in out and "No cut-offs seen." in out
    _, out, _ = health(capsys, "--json", str(path))
    doc = json.loads(out)
    assert doc["weakest_cell"] is None and doc["warning"] is False and doc["evidence"] == [] and doc["cutoffs"] == []


def test_the_report_from_saved_evidence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    engine = HealthEngine()
    bms = SimulatedBms(8, cycle=600, seed=2, fault="high-resistance:4")
    for t in range(2500):
        for raw in bms.frames_at(t):
            engine.feed(decode_frame(raw), float(t), 1_700_000_000.0 + t)
    HealthStore(health_path(tmp_path, "shed")).save(engine)
    status, out, _ = health(capsys, "--state-dir", str(tmp_path), "--device-id", "shed", "--json")
    assert status == 0
    doc = json.loads(out)
    assert doc["weakest_cell"] == 4 and doc["warning"] is True and doc["kind"] == "resistance"
    assert doc["source"] == str(health_path(tmp_path, "shed"))
    assert doc["cells"][3]["sag_ratio"] > 1.8
    status, text, _ = health(capsys, "--state-dir", str(tmp_path), "--device-id", "shed")
    assert "Verdict: cell 4 has a high resistance" in text
    assert re.search(r"the last at \d+\.\d A, \d+ (days|h|min|s) ago", text)  # the impedances' age


def test_a_loose_balance_lead_is_reported_as_the_lead_not_a_cell(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = HealthEngine()
    bms = SimulatedBms(8, cycle=600, seed=2, fault="balance-lead:5")
    for t in range(2500):
        for raw in bms.frames_at(t):
            engine.feed(decode_frame(raw), float(t), 1_700_000_000.0 + t)
    HealthStore(health_path(tmp_path, "shed")).save(engine)
    _, out, _ = health(capsys, "--state-dir", str(tmp_path), "--device-id", "shed", "--json")
    doc = json.loads(out)
    assert doc["weakest_cell"] is None and doc["balance_lead"] == [5, 6]
    assert doc["warning"] is True and doc["kind"] == "balance_lead"
    _, text, _ = health(capsys, "--state-dir", str(tmp_path), "--device-id", "shed")
    assert "Verdict: the balance lead between cells 5 and 6 is loose (WARNING). Why:" in text
    assert not re.search(r"^ *\d+\*", text, re.MULTILINE)  # no cell marked as the weakest


def test_the_topic_prefix_finds_the_device_id_as_the_daemon_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = HealthEngine()
    engine.feed(decode_frame(SimulatedBms(8).frames_at(0)[1]), 0.0, 0.0)
    engine.changed = True
    HealthStore(health_path(tmp_path, "bms_house")).save(engine)
    status, out, _ = health(capsys, "--state-dir", str(tmp_path), "--topic-prefix", "bms/house", "--json")
    assert status == 0 and json.loads(out)["cells"]


def test_no_saved_evidence_is_a_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = health(capsys, "--state-dir", str(tmp_path), "--device-id", "x")
    assert status == 1 and out == ""
    assert "no saved evidence" in err and str(tmp_path / "health-x.json") in err and err.count("\n") == 1


def test_a_corrupt_evidence_file_is_said_and_left_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = health_path(tmp_path, "x")
    path.write_text("{garbage")
    status, _, err = health(capsys, "--state-dir", str(tmp_path), "--device-id", "x")
    assert status == 1 and "is corrupt" in err and "no saved evidence" in err
    assert path.read_text() == "{garbage"  # the daemon's file: the report only reads


def test_unreadable_capture_and_bad_hex(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = health(capsys, str(tmp_path / "missing.bin"))
    assert status == 2 and "cannot read" in err
    bad = tmp_path / "bad.hex"
    bad.write_text("24 24 5")
    status, _, err = health(capsys, "--hex", str(bad))
    assert status == 2 and "odd number of digits" in err


# --- plots ---------------------------------------------------------------------------------


def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        if IN_CI:
            pytest.fail("CI is set but matplotlib is not installed (pip install -e '.[dev]')")
        pytest.skip("matplotlib is not installed")


def test_plot_png_and_html(weak_cell_capture: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require_matplotlib()
    png = tmp_path / "report.png"
    status, out, _ = health(capsys, "--plot", str(png), str(weak_cell_capture))
    assert status == 0 and "Verdict: cell 7" in out
    image = png.read_bytes()
    assert image[:8] == b"\x89PNG\r\n\x1a\n" and len(image) > 20_000
    width, height = int.from_bytes(image[16:20], "big"), int.from_bytes(image[20:24], "big")
    assert (width, height) == (1100, 1080)  # three panels: the voltages, the deviations, the ratios
    page = tmp_path / "report.html"
    status, _, _ = health(capsys, "--plot", str(page), str(weak_cell_capture))
    html = page.read_text()
    assert status == 0 and '<img alt="cell voltages and per-cell ratios" src="data:image/png;base64,' in html
    assert "Verdict: cell 7 has less capacity than the rest" in html
    report = re.search(r'<script type="application/json" id="report">(.*?)</script>', html, re.S)
    assert report is not None
    import html as html_module

    assert json.loads(html_module.unescape(report.group(1)))["weakest_cell"] == 7


def test_plot_without_matplotlib_is_one_line(
    weak_cell_capture: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    status, out, err = health(capsys, "--plot", str(tmp_path / "r.png"), str(weak_cell_capture))
    assert status == 2 and out == ""
    assert err == (
        "chargery health: --plot needs matplotlib, which is not installed: sudo apt install python3-matplotlib "
        "(or, in a virtual environment, pip install matplotlib (from a checkout of chargery: pip install '.[plots]'))\n"
    )
    assert not (tmp_path / "r.png").exists()


def test_what_the_plot_advice_installs_exists() -> None:
    """`pip install '.[plots]'` in a checkout installs this project's `plots` extra, which
    holds matplotlib: the advice names what pip can really install (no 'chargery[plots]'
    from an index that has no such project)."""
    import tomllib

    from helpers import ROOT

    from chargerybms.commands.health import PLOTS_PIP

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    plots = project["optional-dependencies"]["plots"]
    assert [r.split(">")[0].split("=")[0] for r in plots] == ["matplotlib"]
    assert PLOTS_PIP.startswith("matplotlib ") and "pip install '.[plots]'" in PLOTS_PIP
    assert "chargery[" not in PLOTS_PIP


def test_plot_needs_a_known_file_type(
    weak_cell_capture: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = health(capsys, "--plot", str(tmp_path / "r.svg"), str(weak_cell_capture))
    assert status == 2 and ".png or .html" in err


def test_the_report_document_is_json_safe(weak_cell_capture: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = health(capsys, "--json", str(weak_cell_capture))
    doc: dict[str, Any] = json.loads(out)
    json.dumps(doc, allow_nan=False)
    assert set(doc) >= {"weakest_cell", "warning", "evidence", "cells", "cutoffs"}
