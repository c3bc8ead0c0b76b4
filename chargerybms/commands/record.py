"""``chargery.py record FILE``: save the raw serial stream for a bug report."""

from __future__ import annotations

import signal
import sys
import time
from types import FrameType

from ..config import Settings
from ..protocol import Framer
from ..serial_link import PortError
from ..sources import label, open_source


def run_record(settings: Settings, path: str, seconds: float | None) -> int:
    try:
        out = open(path, "wb")  # noqa: SIM115 - closed in finally, open errors reported apart
    except OSError as exc:
        print(f"chargery record: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    stop = False

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    framer = Framer()
    deadline = None if seconds is None else time.monotonic() + seconds
    try:
        source = open_source(settings)
    except PortError as exc:
        out.close()
        print(f"chargery record: cannot open {settings.port}: {exc}", file=sys.stderr)
        return 1
    print(f"chargery record: recording {label(settings)} to {path}; Ctrl-C to stop", file=sys.stderr)
    status = 0
    try:
        while not stop and (deadline is None or time.monotonic() < deadline):
            data = source.read(4096)
            if data:
                out.write(data)
                out.flush()
                framer.feed(data)
    except PortError as exc:
        print(f"chargery record: {label(settings)} went away: {exc}", file=sys.stderr)
        status = 1
    finally:
        source.close()
        out.close()
    stats = framer.stats()
    print(
        f"chargery record: {stats.bytes_in} bytes saved to {path} "
        f"({stats.frames} valid frames, {stats.corrupted} corrupted)",
        file=sys.stderr,
    )
    return status
