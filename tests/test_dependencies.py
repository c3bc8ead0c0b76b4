"""A machine without pyserial or paho-mqtt (before install.sh): every command says in one
line what is missing and how to get it (exit status 2), or works when it does not need it.

A dependency is hidden by a package of the same name first on PYTHONPATH that fails to
import, as a missing one does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import CHARGERY, ROOT, load_vectors

WHAT = {"serial": ("pyserial", "python3-serial"), "paho": ("paho-mqtt", "python3-paho-mqtt")}


def without(tmp_path: Path, *modules: str) -> dict[str, str]:
    hide = tmp_path / "hide"
    for module in modules:
        package = hide / module
        package.mkdir(parents=True, exist_ok=True)
        (package / "__init__.py").write_text(
            f'raise ModuleNotFoundError("No module named {module!r}", name={module!r})\n'
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHARGERY_")}
    env["PYTHONPATH"] = os.pathsep.join([str(hide), str(ROOT)])
    return env


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CHARGERY), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize(
    ("hidden", "args"),
    [
        ("serial", ["--port", "/dev/ttyUSB9"]),
        ("paho", ["--port", "/dev/ttyUSB9"]),
        ("paho", ["--demo", "--mqtt-host", "127.0.0.1"]),
        ("serial", ["doctor", "--port", "/dev/ttyUSB9"]),
        ("serial", ["record", "capture.bin", "--port", "/dev/ttyUSB9"]),
    ],
)
def test_a_missing_dependency_is_one_line_and_exit_2(tmp_path: Path, hidden: str, args: list[str]) -> None:
    result = run(without(tmp_path, hidden), *args)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    pip, apt = WHAT[hidden]
    assert (
        f"{pip}, which is not installed" in lines[0]
        and f"apt install {apt}" in lines[0]
        and f"pip install {pip}" in lines[0]
    )


def test_what_needs_neither_works_without_both(tmp_path: Path) -> None:
    env = without(tmp_path, "serial", "paho")
    capture = tmp_path / "capture.bin"
    capture.write_bytes(bytes.fromhex(load_vectors("frames.json")[0]["hex"]))
    decoded = run(env, "decode", str(capture))
    assert decoded.returncode == 0 and '"type": "status"' in decoded.stdout, decoded.stderr
    proc = subprocess.Popen(
        [sys.executable, str(CHARGERY), "--demo", "--demo-speed", "20"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=2)
    except subprocess.TimeoutExpired:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    assert "chargerybms/batteryvolt " in out and "Traceback" not in err
    recorded = run(env, "record", str(tmp_path / "demo.bin"), "--demo", "--seconds", "1")
    assert recorded.returncode == 0, recorded.stderr


def test_the_decoder_tests_run_without_paho(tmp_path: Path) -> None:
    env = without(tmp_path, "paho")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(ROOT / "tests" / "test_protocol.py")],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
