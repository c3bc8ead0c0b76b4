"""The README's first command, --dry-run, record, -d and rate-limited logging."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from harness import DaemonProcess, FakeBms, wait_until
from helpers import CHARGERY, VEC, chargery_cmd

from chargerybms.logs import RateLimited


def run_until(
    tmp_path: Path, command: list[str], done: Callable[[list[str]], object], timeout: float = 30
) -> tuple[list[str], str, int]:
    """Run ``command`` until its output so far satisfies ``done``, then Ctrl-C it:
    (stdout lines, stderr, exit status). Waiting for what the test then asserts, not for a
    fixed time, keeps a slow machine from failing it and a fast one from waiting."""
    out_path, err_path = tmp_path / "out.txt", tmp_path / "err.txt"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(command, stdout=out, stderr=err, cwd=tmp_path)
        try:
            wait_until(lambda: done(out_path.read_text().splitlines()), timeout, f"the output of {command}")
        finally:
            proc.send_signal(signal.SIGINT)  # Ctrl-C
            status = proc.wait(10)
    return out_path.read_text().splitlines(), err_path.read_text(), status


def test_demo_runs_on_the_standard_library_alone(tmp_path: Path) -> None:
    """`python3 chargery.py --demo` on a fresh machine: no pyserial, no paho, no broker."""
    base = getattr(sys, "_base_executable", sys.executable)

    expected = {"homeassistant/device/chargerybms/config", "chargerybms/batteryvolt", "chargerybms/current",
                "chargerybms/temp1", "chargerybms/state"}  # fmt: skip

    def temperatures(lines: list[str]) -> list[float]:
        return [float(line.split()[1]) for line in lines if line.startswith("chargerybms/temp1 ")]

    def shown(lines: list[str]) -> bool:  # every kind of line, and a temperature below 0 °C
        return expected <= {line.split(" ", 1)[0] for line in lines} and min(temperatures(lines), default=0) < 0

    demo = [base, "-I", "-S", str(CHARGERY), "--demo", "--demo-speed", "20"]
    lines, err, status = run_until(tmp_path, demo, shown)
    assert status == 0, err
    assert lines[0] == "chargerybms/status online"
    assert expected <= {line.split(" ", 1)[0] for line in lines}
    assert lines[-1] == "chargerybms/status offline"
    assert min(temperatures(lines)) < 0  # the simulator goes below zero, and it is decoded as such
    assert "Traceback" not in err and "ModuleNotFoundError" not in err


def complete_states(lines: list[str]) -> list[dict[str, Any]]:
    """The `state` documents printed that hold both a cells and a status frame."""
    states = [json.loads(line.split(" ", 1)[1]) for line in lines if line.startswith("chargerybms/state ")]
    return [s for s in states if s["cells_seen"] and s["status_seen"]]


@pytest.mark.parametrize("firmware", ["1.22", "1.25", "1.26"])
def test_demo_firmware_generations(tmp_path: Path, firmware: str) -> None:
    demo = chargery_cmd(
        "--demo", "--demo-firmware", firmware, "--demo-model", "8", "--demo-speed", "50", "--no-ha-discovery"
    )
    lines, err, status = run_until(tmp_path, demo, complete_states)
    assert status == 0, err
    last = complete_states(lines)[-1]
    assert last["cell_count"] == 8
    assert (last["energy_wh"] is None) == (firmware == "1.22")
    assert (last["discharge_end_voltage"] is None) == (firmware != "1.26")


def test_dry_run_prints_what_it_would_publish(tmp_path: Path, bms: FakeBms) -> None:
    bms.plug().stream([VEC["A1"], VEC["A4"]], interval=0.05)
    d = DaemonProcess(tmp_path / "d", ["--port", str(bms.path), "--dry-run", "--no-ha-discovery"])
    try:
        # The cells frame's line and the status frame's (which may come 50 ms later), each
        # waited for: waiting for one and asserting the other failed CI on a fresh machine.
        for line in ("chargerybms/batteryvolt 53.294\n", "chargerybms/current 23.0\n", "chargerybms/temp2 13.2\n"):
            wait_until(lambda line=line: line in d.out_path.read_text(), 10, f"{line!r} in the dry-run output")
        assert "MQTT" not in d.log()  # never connects
    finally:
        d.stop()


def test_debug_logs_every_frame_and_info_does_not(tmp_path: Path, bms: FakeBms) -> None:
    bms.plug().stream([VEC["A1"]], interval=0.05)
    quiet = DaemonProcess(tmp_path / "q", ["--port", str(bms.path), "--dry-run"])
    loud = None
    try:
        # Frames did arrive (their values are printed), and none was logged.
        wait_until(lambda: quiet.out_path.read_text().count("chargerybms/current 23.0") >= 3, 10, "three frames")
        quiet.stop()
        assert "frame at" not in quiet.log()
        loud = DaemonProcess(tmp_path / "l", ["--port", str(bms.path), "--dry-run", "-d"])
        wait_until(lambda: loud.log().count("frame at") >= 3, 10, "per-frame debug lines")
        assert "StatusFrame(charge_end_voltage=3.62" in loud.log()
    finally:
        quiet.stop()
        if loud:
            loud.stop()


def test_record_saves_the_raw_stream(tmp_path: Path, bms: FakeBms) -> None:
    stream = [VEC["A1"], b"h::3\r\n", VEC["A4"], b"\x00\xff"]
    bms.plug().stream(stream, interval=0.02)
    out = tmp_path / "capture.bin"
    result = subprocess.run(
        chargery_cmd("record", str(out), "--port", str(bms.path), "--seconds", "1.5"),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    data = out.read_bytes()
    assert VEC["A1"] + b"h::3\r\n" + VEC["A4"] in data
    assert "bytes saved" in result.stderr
    decoded = subprocess.run(chargery_cmd("decode", str(out)), capture_output=True, text=True, timeout=30, check=True)
    types = {json.loads(line)["type"] for line in decoded.stdout.splitlines()}
    assert types == {"status", "cells"}


def test_record_into_an_unwritable_place(tmp_path: Path) -> None:
    result = subprocess.run(
        chargery_cmd("record", str(tmp_path / "no" / "such" / "dir.bin"), "--demo"),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2 and "cannot write" in result.stderr and "Traceback" not in result.stderr


def test_repeated_errors_are_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    limited = RateLimited(interval=60, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING):
        for _ in range(100):
            limited.log(logging.WARNING, "k", "broker down")
            now[0] += 1
        now[0] = 200
        limited.log(logging.WARNING, "k", "broker down")
        limited.reset("k")
        limited.log(logging.WARNING, "k", "broker down")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "broker down",
        "broker down (59 more like this since the last report)",
        "broker down (39 more like this since the last report)",
        "broker down",  # after reset: news again
    ]


def _run_demo(directory: Path, *extra: str) -> list[str]:
    """The demo's output once it has shown a discovery document and a complete state."""

    def shown(lines: list[str]) -> bool:
        return bool(complete_states(lines)) and any(line.startswith(DISCOVERY) for line in lines)

    directory.mkdir()
    lines, err, status = run_until(directory, chargery_cmd("--demo", "--demo-speed", "20", *extra), shown)
    assert status == 0, err
    return lines


DISCOVERY = "homeassistant/device/chargerybms/config "


def test_demo_shows_the_battery_first_and_summarises_discovery(tmp_path: Path) -> None:
    lines = _run_demo(tmp_path / "demo")
    configs = [line for line in lines if line.startswith("homeassistant/device/chargerybms/config ")]
    assert configs and all(len(c) < 200 and "entities" in c and "bytes" in c for c in configs)  # not 10 kB a line
    assert all(len(line) < 2000 for line in lines)
    for whole in (_run_demo(tmp_path / "dry-run", "--dry-run"), _run_demo(tmp_path / "debug", "-d")):
        config = [line for line in whole if line.startswith("homeassistant/device/chargerybms/config ")][-1]
        document = json.loads(config.split(" ", 1)[1])  # exact `topic payload`, as published
        assert document["components"]["pack_voltage"]["unique_id"] == "chargery_chargerybms_pack_voltage"


def test_a_misspelt_setting_in_chargery_py_stops_with_exit_2(tmp_path: Path) -> None:
    script = tmp_path / "chargery.py"
    original = CHARGERY.read_text()
    script.write_text(original.replace("# MQTT_HOST = None", 'MQTT_HOSTT = "broker.lan"'))
    assert script.read_text() != original  # the misspelt line is really there
    result = subprocess.run(
        [sys.executable, str(script), "--demo"], capture_output=True, text=True, timeout=30, check=False,
        env={"PYTHONPATH": str(CHARGERY.parent), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "chargery.py: configuration error: MQTT_HOSTT: not a setting (in the settings block of chargery.py); "
        "did you mean MQTT_HOST?"
    )


def test_the_log_file_is_rotated_and_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """chargery.log cannot fill an SD card: it rolls over at LOG_FILE_MAX_BYTES and keeps
    LOG_FILE_BACKUPS old files."""
    from chargerybms import logs

    monkeypatch.setattr(logs, "LOG_FILE_MAX_BYTES", 10_000)
    path = tmp_path / "chargery.log"
    logs.setup(debug=True, log_file=str(path))
    try:
        for i in range(5000):
            logs.LOG.debug("frame at %d: a line of about sixty characters, like -d writes", i)
    finally:
        for handler in list(logging.getLogger().handlers):
            handler.close()
            logging.getLogger().removeHandler(handler)
    files = sorted(tmp_path.glob("chargery.log*"))
    assert [f.name for f in files] == ["chargery.log", "chargery.log.1", "chargery.log.2", "chargery.log.3"]
    assert all(f.stat().st_size <= 10_000 for f in files)
    assert "frame at 4999" in path.read_text()


@pytest.mark.parametrize(
    ("args", "env", "setting"),
    [
        (["--mqtt-port", "70000"], {}, "mqtt_port"),
        (["--cells", "25"], {}, "cells"),
        (["--stale-after", "0"], {}, "stale_after"),
        (["--topic-prefix", "a/#"], {}, "topic_prefix"),
        (["--baud", "1234"], {}, "baud"),
        ([], {"CHARGERY_MQTT_PORT": "many"}, "mqtt_port"),
        ([], {"CHARGERY_PUBLISH_CELLS": "perhaps"}, "publish_cells"),
        (["--mqtt-password-file", "/nonexistent/secret"], {}, "mqtt_password_file"),
        (["--mqtt-ca-file", "/etc/hostname"], {}, "mqtt_ca_file"),
        (["--log-file", "/nonexistent/dir/chargery.log"], {}, "log_file"),
        (["--mqtt-tls", "--mqtt-ca-file", "/etc/hostname"], {}, "mqtt_ca_file"),  # not a certificate
    ],
)
def test_bad_settings_exit_2_naming_the_setting(args: list[str], env: dict[str, str], setting: str) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CHARGERY_")} | env
    result = subprocess.run(chargery_cmd(*args), capture_output=True, timeout=30, env=environ, check=False)
    err = result.stderr.decode()
    assert result.returncode == 2, err
    assert setting in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


# --- the demo in the first hour: its own device on a broker, discovery once, --cells checked ----


@pytest.mark.broker
def test_a_demo_sent_to_a_broker_publishes_as_its_own_device(broker: Any, subscriber: Any, start_daemon: Any) -> None:
    """Not as the real `chargerybms` device: its entities and energy meters stay apart."""
    daemon = start_daemon("--demo", "--demo-speed", "20", "--mqtt-host", "127.0.0.1", "--mqtt-port", str(broker.port))
    subscriber.wait("chargerybms-demo/state", lambda p: json.loads(p)["cells_seen"] is not None, timeout=30)
    config = json.loads(subscriber.wait("homeassistant/device/chargerybms-demo/config").payload)
    assert config["device"]["name"] == "Chargery BMS (demo)"
    assert config["components"]["energy_charged"]["unique_id"] == "chargery_chargerybms-demo_energy_charged"
    assert config["state_topic"] == "chargerybms-demo/ha_state"
    topics = {m.topic for m in subscriber.messages}
    assert not [t for t in topics if t.startswith("chargerybms/") or t == "homeassistant/device/chargerybms/config"]
    # The model is the simulator's from the start: one discovery document, every cell in it.
    assert len(subscriber.on("homeassistant/device/chargerybms-demo/config")) == 1
    assert "cell_16_voltage" in config["components"], sorted(config["components"])
    assert "publishing under chargerybms-demo/" in daemon.log()


def test_the_demo_prints_its_discovery_once(tmp_path: Path) -> None:
    lines = _run_demo(tmp_path / "demo")
    configs = [line for line in lines if line.startswith(DISCOVERY)]
    assert len(configs) == 1, configs
    assert "(98 entities" in configs[0]  # the cells' too: the simulated model is known at once


def test_more_cells_than_the_model_has_is_said_once_when_the_model_is_known(caplog: pytest.LogCaptureFixture) -> None:
    from helpers import RecordingSink

    from chargerybms.config import load
    from chargerybms.daemon import Daemon
    from chargerybms.simulator import SimulatedBms

    daemon = Daemon(load({"port": "/dev/null", "cells": 20, "dry_run": True}, environ={}), sink=RecordingSink())
    bms = SimulatedBms(16)
    with caplog.at_level(logging.WARNING, logger="chargery"):
        chunks = list(bms.seconds(6))
        daemon.handle_bytes(b"".join(chunks[: len(chunks) // 2]))
        assert daemon.state.slots == 16
        daemon.handle_bytes(b"".join(chunks[len(chunks) // 2 :]))
    warnings = [r.getMessage() for r in caplog.records if "cell slots" in r.getMessage()]
    assert warnings == [
        "cells is 20, but this BMS is a BMS16T with 16 cell slots: only 16 cells are read "
        "(set --cells / CHARGERY_CELLS to the cells really in series, at most 16)"
    ]
    caplog.clear()
    fits = Daemon(load({"port": "/dev/null", "cells": 14, "dry_run": True}, environ={}), sink=RecordingSink())
    with caplog.at_level(logging.WARNING, logger="chargery"):
        fits.handle_bytes(b"".join(chunks))
    assert not [r for r in caplog.records if "cell slots" in r.getMessage()]


def test_the_demo_warns_when_cells_do_not_fit_its_model(tmp_path: Path) -> None:
    command = chargery_cmd("--demo", "--demo-speed", "20", "--demo-model", "8", "--cells", "12")
    _, err, status = run_until(tmp_path, command, lambda lines: any(" cellvolt" in x or "/state " in x for x in lines))
    assert status == 0, err
    assert err.count("cells is 12, but this BMS is a BMS8T with 8 cell slots") == 1, err


def test_record_with_demo_records_the_planted_fault(tmp_path: Path) -> None:
    """`record --demo` records the simulator, so it takes the simulator's fault too."""
    out = tmp_path / "sick.bin"
    result = subprocess.run(
        chargery_cmd("record", str(out), "--demo", "--demo-speed", "20", "--demo-fault", "high-resistance:3",
                     "--seconds", "2"),
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "with high-resistance:3" in result.stderr
    decoded = subprocess.run(chargery_cmd("decode", str(out)), capture_output=True, text=True, timeout=30, check=True)
    impedances = [json.loads(x)["cell_impedances"] for x in decoded.stdout.splitlines() if '"impedances"' in x]
    assert impedances and all(max(z) == z[2] > 2 * sorted(z)[len(z) // 2] for z in impedances)


def test_demo_with_a_loose_balance_lead_blames_no_cell(tmp_path: Path) -> None:
    """`--demo-fault balance-lead:5`: the lead between cells 5 and 6 is a wiring fault, not
    a weak cell: `state` warns with evidence naming the lead and `weakest_cell` null."""

    def warned(lines: list[str]) -> list[dict[str, Any]]:
        return [s for s in complete_states(lines) if s["health_warning"]]

    demo = chargery_cmd("--demo", "--demo-fault", "balance-lead:5", "--demo-speed", "100", "--no-ha-discovery")
    lines, err, status = run_until(tmp_path, demo, warned, timeout=120)
    assert status == 0, err
    state = warned(lines)[0]
    assert state["weakest_cell"] is None
    assert "cells 5 and 6" in state["health_evidence"] and "balance lead" in state["health_evidence"]
    assert all(s["weakest_cell"] is None for s in complete_states(lines))  # never a cell on the way
