"""Helpers shared by the tests: vectors, external tools, the script's command line."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

from chargerybms.protocol import Frame, frame_fields

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
CHARGERY = ROOT / "chargery.py"
IN_CI = bool(os.environ.get("CI"))


def load_vectors(name: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads((DATA / name).read_text())
    return data


def as_dicts(frames: list[tuple[int, Frame]], with_offset: bool) -> list[dict[str, Any]]:
    out = []
    for offset, frame in frames:
        d = frame_fields(frame)
        out.append({"offset": offset, **d} if with_offset else d)
    return out


def require_tool(name: str) -> str:
    """The path of an external tool. Missing: skip locally, but fail when CI is set, so a
    CI run never passes by silently skipping what it was meant to test."""
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None
    )
    if path is None:
        message = f"{name} is not installed (apt-get install {name})"
        if IN_CI:
            pytest.fail(f"CI is set but {message}")
        pytest.skip(message)
    return path


def chargery_cmd(*args: str) -> list[str]:
    return [sys.executable, str(CHARGERY), *args]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
