"""Small files in the state directory that must survive crashes and power cuts.

Written atomically: the new text goes to ``NAME.tmp``, is flushed and fsynced, the current
file becomes ``NAME.bak`` and the temporary file takes its name, and the directory is
fsynced. A crash at any point leaves the old file, the new one, or both. Read back with
the backup as a second chance: a copy that does not parse is reported and, unless the
reader only looks, moved aside as ``NAME.corrupt-<time>`` for the user to inspect, never
silently overwritten.

Used by the energy meters (:mod:`chargerybms.views.energy`) and the cell-health evidence
(:mod:`chargerybms.views.health.store`).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def backup_path(path: Path) -> Path:
    return path.with_name(path.name + ".bak")


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``, keeping the previous file as the backup. Raises OSError."""
    tmp = path.with_name(path.name + ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    if path.exists():
        os.replace(path, backup_path(path))
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def keep_aside(path: Path) -> None:
    """Move a corrupt file out of the way but keep it for the user to inspect."""
    with contextlib.suppress(OSError):
        os.replace(path, path.with_name(f"{path.name}.corrupt-{int(time.time())}"))


def read_copies(
    path: Path, parse: Callable[[str], T], *, move_corrupt: bool = True
) -> tuple[list[tuple[Path, T]], list[str]]:
    """Parse ``path`` and then its backup. Returns what parsed, as ``(file, value)`` with
    the file first, and a sentence per problem (unreadable, corrupt). ``parse`` raises
    ValueError, KeyError or TypeError for text it cannot use; such a copy is moved aside
    when ``move_corrupt``. Missing files are no problem."""
    found: list[tuple[Path, T]] = []
    problems: list[str] = []
    for candidate in (path, backup_path(path)):
        try:
            text = candidate.read_text(encoding="utf-8")
        except FileNotFoundError:
            continue
        except OSError as exc:
            problems.append(f"{candidate}: {exc.strerror or exc}")
            continue
        try:
            value = parse(text)
        except (ValueError, KeyError, TypeError) as exc:
            problems.append(f"{candidate} is corrupt ({exc})")
            if move_corrupt:
                keep_aside(candidate)
            continue
        found.append((candidate, value))
    return found, problems
