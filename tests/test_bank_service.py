"""The bank as a service: chargery-bank.service passes systemd's own checks, and
install.sh --bank installs it with its settings file (staged with DESTDIR)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from helpers import ROOT, require_tool

UNIT = ROOT / "chargery-bank.service"


def test_the_bank_unit_passes_systemd_analyze_verify_silently(tmp_path: Path) -> None:
    analyze = require_tool("systemd-analyze")
    copy = tmp_path / UNIT.name
    shutil.copy(UNIT, copy)
    result = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True, check=False)
    assert result.stdout + result.stderr == ""  # verify exits 0 on many mistakes: any output is one
    assert result.returncode == 0


def test_the_bank_unit_is_rated_2_or_better_by_systemd_analyze_security(tmp_path: Path) -> None:
    analyze = require_tool("systemd-analyze")
    copy = tmp_path / UNIT.name
    shutil.copy(UNIT, copy)
    result = subprocess.run(
        [analyze, "security", "--offline=yes", str(copy)], capture_output=True, text=True, check=False
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout + result.stderr)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.0, result.stdout


def test_the_bank_unit_runs_the_bank_command_and_keeps_the_contract() -> None:
    text = UNIT.read_text()
    assert "ExecStart=/usr/bin/python3 /opt/chargery/chargery.py bank\n" in text
    assert "EnvironmentFile=/etc/chargery/bank.env\n" in text
    assert "Type=notify\n" in text and "RestartPreventExitStatus=2\n" in text and "WatchdogSec=" in text
    assert "PrivateDevices=yes\n" in text  # MQTT only: no serial device


def install(stage: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DESTDIR"} | {"DESTDIR": str(stage)}
    return subprocess.run(["sh", str(ROOT / "install.sh"), *args], env=env, capture_output=True, text=True, check=True)


def test_install_bank_stages_the_unit_its_settings_and_enables_it(tmp_path: Path) -> None:
    stage = tmp_path / "stage"
    out = install(stage, "--bank").stdout
    unit = stage / "etc/systemd/system/chargery-bank.service"
    assert unit.read_text() == UNIT.read_text()
    env = stage / "etc/chargery/bank.env"
    assert oct(env.stat().st_mode & 0o777) == "0o640"
    assert "CHARGERY_BANK_MEMBERS=" in env.read_text()
    assert (stage / "opt/chargery/chargerybms/bank/process.py").is_file()
    assert (stage / "opt/chargery/docs/several-packs.md").is_file()
    assert "skipped (DESTDIR): systemctl enable chargery-bank.service" in out
    # The staged program knows the command; the example settings file is a valid bank.
    settings = dict(line.split("=", 1) for line in env.read_text().splitlines() if line and not line.startswith("#"))
    staged = subprocess.run(
        ["python3", str(stage / "opt/chargery/chargery.py"), "dashboard", "--bank"],
        env={**{k: v for k, v in os.environ.items() if not k.startswith("CHARGERY_")}, **settings},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "sensor.chargerybank_pack_2_soc" in staged.stdout
    # Without --bank the unit is installed but neither enabled nor given a settings file.
    plain = tmp_path / "plain"
    out = install(plain).stdout
    assert (plain / "etc/systemd/system/chargery-bank.service").is_file()
    assert not (plain / "etc/chargery/bank.env").exists()
    assert "systemctl enable chargery-bank.service" not in out
    # Uninstalling removes it.
    install(stage, "--uninstall")
    assert not unit.exists()


def test_install_bank_with_a_venv_runs_the_bank_from_it(tmp_path: Path) -> None:
    stage = tmp_path / "stage"
    install(stage, "--bank", "--venv")
    dropin = (stage / "etc/systemd/system/chargery-bank.service.d/venv.conf").read_text()
    assert dropin == "[Service]\nExecStart=\nExecStart=/opt/chargery/venv/bin/python3 /opt/chargery/chargery.py bank\n"
