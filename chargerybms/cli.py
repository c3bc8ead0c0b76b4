"""Command line: the daemon (default), ``decode``, ``record``, ``doctor``, ``health``, ``dashboard``,
``bank`` and ``app``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Final

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
  bank --member P1 --member P2
                    several packs in parallel as one battery (its own process)
  dashboard --bank  print a Home Assistant dashboard for the bank (YAML)
  app [--data DIR]  the daemon in a container (the Home Assistant app, the
                    Docker image): settings from DIR/options.json (/data),
                    the broker from the Home Assistant Supervisor if none is named

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
    add_flags(parser, ("port", "baud", "debug", "demo", "demo_model", "demo_firmware", "demo_speed", "demo_fault"))
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


BANK_FLAGS: Final = (
    "mqtt_host", "mqtt_port", "mqtt_username", "mqtt_password_file", "mqtt_tls", "mqtt_ca_file",
    "mqtt_cert_file", "mqtt_key_file", "stale_after", "heartbeat", "ha_discovery", "ha_prefix",
    "ha_status_topic", "ha_max_age", "dry_run", "debug", "log_file",
)  # fmt: skip


def _bank_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--member",
        action="append",
        metavar="PREFIX[=AH]",
        help="a member's topic prefix, once per pack, optionally with its capacity in Ah "
        "(default: CHARGERY_BANK_MEMBERS or BANK_MEMBERS, comma-separated)",
    )
    parser.add_argument(
        "--bank-prefix", dest="bank_prefix", metavar="PREFIX", help="the bank's topic prefix (default: chargerybank)"
    )
    parser.add_argument(
        "--bank-name",
        dest="bank_name",
        metavar="NAME",
        help="its device name in Home Assistant (default: Battery bank)",
    )


def _bank_settings(
    parser: argparse.ArgumentParser, argv: Sequence[str], constants: Mapping[str, Any] | None
) -> tuple[argparse.Namespace, Settings]:
    args = parser.parse_args(argv)
    flags = vars(args).copy()
    if args.member:
        flags["bank_members"] = ",".join(args.member)
    return args, load(flags, constants)


def cmd_bank(argv: Sequence[str], constants: Mapping[str, Any] | None) -> int:
    parser = argparse.ArgumentParser(
        prog="chargery.py bank",
        description="Several packs in parallel, each with its own BMS and chargery daemon, as one battery: "
        "subscribes to the members' state, link and status and publishes the bank under its own prefix "
        "(sums, capacity-weighted state of charge, the lowest and highest cell with pack and cell number), "
        "with Home Assistant discovery and optionally a Victron GX document.",
    )
    _bank_arguments(parser)
    parser.add_argument(
        "--victron",
        dest="bank_victron",
        metavar="FORMAT",
        help="publish the bank as one battery for a Venus OS driver: serialbattery or mqtt-battery "
        "(default: CHARGERY_BANK_VICTRON, else off)",
    )
    add_flags(parser, BANK_FLAGS)
    try:
        _, settings = _bank_settings(parser, argv, constants)
        from .bank.process import members_of

        members_of(settings)
    except ConfigError as exc:
        return report(exc, "chargery.py bank")
    from .config import printing

    if printing(settings) == "broker" and (missing := _missing("chargery.py bank", "paho.mqtt.client")) is not None:
        return missing
    from .bank.process import run

    return run(settings)


def cmd_dashboard(argv: Sequence[str], constants: Mapping[str, Any] | None) -> int:
    if "--bank" in argv:
        return _bank_dashboard([a for a in argv if a != "--bank"], constants)
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


def _bank_dashboard(argv: Sequence[str], constants: Mapping[str, Any] | None) -> int:
    from .bank.ha import render
    from .bank.process import bank_settings, members_of

    parser = argparse.ArgumentParser(
        prog="chargery.py dashboard --bank",
        description="Print a Home Assistant dashboard (YAML, built-in cards only) for the bank the bank "
        "command with the same settings publishes: the bank at a glance, its lowest and highest cell, "
        "the packs side by side.",
    )
    _bank_arguments(parser)
    try:
        _, settings = _bank_settings(parser, argv, constants)
        members = members_of(settings)
    except ConfigError as exc:
        return report(exc, "chargery.py dashboard --bank")
    own = bank_settings(settings)
    sys.stdout.write(render(own.resolved_device_id, own.device_name, members))
    return 0


def cmd_app(argv: Sequence[str], _constants: Mapping[str, Any] | None) -> int:
    from .commands.app import run_app

    return run_app(argv)


COMMANDS = {
    "bank": cmd_bank,
    "decode": cmd_decode,
    "record": cmd_record,
    "doctor": cmd_doctor,
    "health": cmd_health,
    "dashboard": cmd_dashboard,
    "app": cmd_app,
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
