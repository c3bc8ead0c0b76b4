"""Command line: the daemon (default), ``decode``, ``record``, ``doctor``, ``health`` and ``dashboard``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from . import __version__
from .config import EXIT_CONFIG, ConfigError, Settings, add_flags, load, printing, report

DESCRIPTION = "Chargery BMS8T/16T/24T to MQTT, with Home Assistant discovery."
EPILOG = """commands:
  (none)            run the daemon
  decode [--hex] [FILE|-]   decode a capture offline to JSON Lines
  record FILE       save the raw serial stream for a bug report
  doctor            listen a few seconds and say what is on the wire
  health [--json] [--hex] [--plot FILE] [CAPTURE]
                    which cell is failing and why the BMS cut off: from the
                    saved evidence, or by running the engine over a capture
  dashboard         print a Home Assistant dashboard for this BMS (YAML)

Every setting can also be given as an environment variable CHARGERY_<NAME>
(e.g. CHARGERY_MQTT_HOST) or edited at the top of chargery.py; a flag wins
over the environment, which wins over chargery.py. The MQTT password is never
a flag: use CHARGERY_MQTT_PASSWORD, --mqtt-password-file or a systemd credential.
"""


def _daemon_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chargery.py",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"chargery {__version__}")
    add_flags(parser)
    return parser


def _settings(
    parser: argparse.ArgumentParser, argv: Sequence[str], constants: Mapping[str, Any] | None
) -> tuple[argparse.Namespace, Settings]:
    args = parser.parse_args(argv)
    return args, load(vars(args), constants)


# module -> (what needs it, pip name, Debian package)
DEPENDENCIES = {
    "serial": ("the serial port", "pyserial", "python3-serial"),
    "paho.mqtt.client": ("MQTT", "paho-mqtt", "python3-paho-mqtt"),
}


def _missing(prog: str, *modules: str) -> int | None:
    """One line and exit status 2 (a setup error, like a bad setting) for the first
    runtime dependency of ``modules`` that cannot be imported; None when all are there."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError:
            needs, pip, apt = DEPENDENCIES[module]
            print(
                f"{prog}: {needs} needs the Python package {pip}, which is not installed: "
                f"sudo apt install {apt} (or pip install {pip} in a virtual environment)",
                file=sys.stderr,
            )
            return EXIT_CONFIG
    return None


def cmd_decode(argv: Sequence[str], _constants: Mapping[str, Any] | None) -> int:
    from .commands.decode import run_decode

    parser = argparse.ArgumentParser(
        prog="chargery.py decode",
        description="Decode a capture offline: JSON Lines on stdout (one object per frame, with its byte "
        "offset), a summary on stderr.",
    )
    parser.add_argument("--hex", action="store_true", help="the input is hex text, not raw bytes")
    parser.add_argument("file", nargs="?", default="-", help="capture file, or - for stdin (default)")
    args = parser.parse_args(argv)
    return run_decode(args.file, args.hex)


def cmd_record(argv: Sequence[str], constants: Mapping[str, Any] | None) -> int:
    from .commands.record import run_record

    parser = argparse.ArgumentParser(
        prog="chargery.py record",
        description="Save the raw serial stream to FILE (for a bug report) until Ctrl-C or --seconds.",
    )
    parser.add_argument("file", help="where to write the raw bytes")
    parser.add_argument("--seconds", type=float, default=None, help="stop after this long")
    add_flags(parser, ("port", "baud", "debug", "demo", "demo_model", "demo_firmware", "demo_speed"))
    try:
        args, settings = _settings(parser, argv, constants)
    except ConfigError as exc:
        return report(exc, "chargery.py record")
    missing = None if settings.demo else _missing("chargery.py record", "serial")
    return missing if missing is not None else run_record(settings, args.file, args.seconds)


def cmd_doctor(argv: Sequence[str], constants: Mapping[str, Any] | None) -> int:
    from .commands.doctor import run_doctor

    parser = argparse.ArgumentParser(
        prog="chargery.py doctor",
        description="Listen to the serial port for a few seconds and say in plain words what is on the wire. "
        "Exit status 0 only for a healthy stream.",
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="how long to listen (default: 5)")
    add_flags(parser, ("port", "baud", "debug", "cells"))
    try:
        args, settings = _settings(parser, argv, constants)
    except ConfigError as exc:
        return report(exc, "chargery.py doctor")
    missing = _missing("chargery.py doctor", "serial")
    return missing if missing is not None else run_doctor(settings, args.seconds)


def cmd_health(argv: Sequence[str], constants: Mapping[str, Any] | None) -> int:
    import time

    from .commands.health import run_health

    parser = argparse.ArgumentParser(
        prog="chargery.py health",
        description="The cell-health report: per cell, the deviation at the tops and bottoms of charge, how often "
        "it was the highest / lowest, its sag and impedance ratios; the weakest cell and why; the last cut-offs "
        "and their causes. From the evidence the daemon saved, or by running the same engine over a capture.",
    )
    parser.add_argument(
        "capture", nargs="?", default=None, help="a capture (raw bytes as `record` writes them; - for stdin)"
    )
    parser.add_argument("--hex", action="store_true", help="the capture is hex text, not raw bytes")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument(
        "--plot", metavar="FILE", help="also draw the report as FILE.png or FILE.html (needs matplotlib)"
    )
    add_flags(parser, ("state_dir", "device_id", "topic_prefix", "cells"))
    try:
        args, settings = _settings(parser, argv, constants)
    except ConfigError as exc:
        return report(exc, "chargery.py health")
    return run_health(
        capture=args.capture,
        as_hex=args.hex,
        as_json=args.json,
        plot=args.plot,
        state_dir=settings.state_dir,
        device_id=settings.resolved_device_id,
        cell_limit=settings.cells,
        wall=time.time(),
    )


def cmd_dashboard(argv: Sequence[str], constants: Mapping[str, Any] | None) -> int:
    from .commands.dashboard import pack_for, render
    from .protocol import MODELS

    parser = argparse.ArgumentParser(
        prog="chargery.py dashboard",
        description="Print a Home Assistant dashboard (YAML, built-in cards only) for the device the daemon "
        "with the same settings publishes. Paste it into a new dashboard's raw configuration editor.",
    )
    add_flags(parser, ("topic_prefix", "device_id", "device_name", "cells", "cell_health"))
    parser.add_argument(
        "--slots",
        type=int,
        choices=MODELS,
        help="cell slots of the BMS (its model: BMS8T, 16T, 24T), used when --cells is not set (default: 16)",
    )
    try:
        args, settings = _settings(parser, argv, constants)
    except ConfigError as exc:
        return report(exc, "chargery.py dashboard")
    if not settings.cells and args.slots is None:
        print("chargery.py dashboard: neither --cells nor --slots given: a dashboard for 16 cells", file=sys.stderr)
    slots = args.slots or 16
    pack = pack_for(settings.resolved_device_id, settings.device_name, settings.cells, slots, settings.cell_health)
    sys.stdout.write(render(pack))
    return 0


COMMANDS = {
    "decode": cmd_decode,
    "record": cmd_record,
    "doctor": cmd_doctor,
    "health": cmd_health,
    "dashboard": cmd_dashboard,
}


def main(argv: Sequence[str] | None = None, constants: Mapping[str, Any] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in COMMANDS:
        return COMMANDS[args[0]](args[1:], constants)
    try:
        _, settings = _settings(_daemon_parser(), args, constants)
    except ConfigError as exc:
        return report(exc)
    needed = [] if settings.demo else ["serial"]
    if printing(settings) == "broker":
        needed.append("paho.mqtt.client")
    missing = _missing("chargery.py", *needed)
    if missing is not None:
        return missing
    from .daemon import run

    return run(settings)
