"""The README's first command, --dry-run, record, -d and rate-limited logging."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from harness import DaemonProcess, FakeBms, wait_until
from helpers import CHARGERY, chargery_cmd, load_vectors

from chargerybms.logs import RateLimited

VEC = {v["id"]: bytes.fromhex(v["hex"]) for v in load_vectors("frames.json")}


def test_demo_runs_on_the_standard_library_alone(tmp_path: Path) -> None:
    """`python3 chargery.py --demo` on a fresh machine: no pyserial, no paho, no broker."""
    base = getattr(sys, "_base_executable", sys.executable)
    proc = subprocess.Popen(
        [base, "-I", "-S", str(CHARGERY), "--demo", "--demo-speed", "20"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    time.sleep(2.5)
    proc.send_signal(signal.SIGINT)  # Ctrl-C
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert lines[0] == "chargerybms/status online"
    topics = {line.split(" ", 1)[0] for line in lines}
    assert "homeassistant/device/chargerybms/config" in topics
    assert {"chargerybms/batteryvolt", "chargerybms/current", "chargerybms/temp1", "chargerybms/state"} <= topics
    assert lines[-1] == "chargerybms/status offline"
    temps = [float(line.split()[1]) for line in lines if line.startswith("chargerybms/temp1 ")]
    assert min(temps) < 0  # the simulator goes below zero, and it is decoded as such
    assert "Traceback" not in err and "ModuleNotFoundError" not in err


@pytest.mark.parametrize("firmware", ["1.22", "1.25", "1.26"])
def test_demo_firmware_generations(firmware: str) -> None:
    d = subprocess.Popen(
        chargery_cmd(
            "--demo", "--demo-firmware", firmware, "--demo-model", "8", "--demo-speed", "50", "--no-ha-discovery"
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    time.sleep(1.5)
    d.terminate()
    out, _ = d.communicate(timeout=10)
    states = [json.loads(line.split(" ", 1)[1]) for line in out.splitlines() if line.startswith("chargerybms/state ")]
    last = states[-1]
    assert last["cell_count"] == 8
    assert (last["energy_wh"] is None) == (firmware == "1.22")
    assert (last["discharge_end_voltage"] is None) == (firmware != "1.26")


def test_dry_run_prints_what_it_would_publish(tmp_path: Path, bms: FakeBms) -> None:
    bms.plug().stream([VEC["A1"], VEC["A4"]], interval=0.05)
    d = DaemonProcess(tmp_path / "d", ["--port", str(bms.path), "--dry-run", "--no-ha-discovery"])
    try:
        wait_until(lambda: "chargerybms/batteryvolt 53.294" in d.out_path.read_text(), 10, "dry-run output")
        out = d.out_path.read_text()
        assert "chargerybms/current 23.0\n" in out and "chargerybms/temp2 13.2\n" in out
        assert "MQTT" not in d.log()  # never connects
    finally:
        d.stop()


def test_debug_logs_every_frame_and_info_does_not(tmp_path: Path, bms: FakeBms) -> None:
    bms.plug().stream([VEC["A1"]], interval=0.05)
    quiet = DaemonProcess(tmp_path / "q", ["--port", str(bms.path), "--dry-run"])
    loud = None
    try:
        time.sleep(1.5)
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


def _run_demo(*extra: str) -> list[str]:
    proc = subprocess.Popen(
        chargery_cmd("--demo", "--demo-speed", "20", *extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    return out.splitlines()


def test_demo_shows_the_battery_first_and_summarises_discovery() -> None:
    lines = _run_demo()
    configs = [line for line in lines if line.startswith("homeassistant/device/chargerybms/config ")]
    assert configs and all(len(c) < 200 and "entities" in c and "bytes" in c for c in configs)  # not 10 kB a line
    assert all(len(line) < 2000 for line in lines)
    for whole in (_run_demo("--dry-run"), _run_demo("-d")):
        config = [line for line in whole if line.startswith("homeassistant/device/chargerybms/config ")][-1]
        document = json.loads(config.split(" ", 1)[1])  # exact `topic payload`, as published
        assert document["components"]["pack_voltage"]["unique_id"] == "chargery_chargerybms_pack_voltage"


def test_a_misspelt_setting_in_chargery_py_stops_with_exit_2(tmp_path: Path) -> None:
    script = tmp_path / "chargery.py"
    script.write_text(CHARGERY.read_text().replace('# MQTT_HOST = "127.0.0.1"', 'MQTT_HOSTT = "broker.lan"'))
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
