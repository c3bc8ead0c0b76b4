"""``chargery app``: the daemon in a container, as the Home Assistant app and the image for
Docker or Podman run it (the image's entry point).

- The settings come from the app's options, ``/data/options.json`` (the Supervisor writes
  it from the app's Configuration tab, checked against the schema in ``config.yaml``), then
  ``CHARGERY_*`` environment variables and flags as everywhere else (how a Docker user
  configures the same image). :data:`OPTIONS` is the one table from option to setting;
  ``config.yaml`` and ``translations/en.yaml`` say the same (a test holds them to it).
- The broker: the one the options (or the environment) name; else the Supervisor's MQTT
  service (``GET http://supervisor/services/mqtt`` with the ``SUPERVISOR_TOKEN`` bearer:
  the Mosquitto broker app's address and credentials); with neither, one line saying so
  and exit status 2.
- The energy meters and the cell-health evidence live in ``/data`` (kept across restarts
  and updates of the app, or the volume a Docker user mounts there).
- Logs go to stdout with their time, at the ``log_level`` option's level; a wrong option
  is one line (``config.report``) and exit status 2. No password is ever logged.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Final

from ..config import DEFAULT_MQTT_PORT, VICTRON_FORMATS, ConfigError, Settings, add_flags, load, report
from ..logs import LOG, setup

PROG: Final = "chargery app"
DATA_DIR: Final = "/data"  # the app's own persistent folder (a volume for Docker users)
OPTIONS_FILE: Final = "options.json"
SUPERVISOR_URL: Final = "http://supervisor"
SUPERVISOR_TIMEOUT: Final = 10.0  # seconds for the Supervisor's answer
LOG_LEVELS: Final = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


@dataclass(frozen=True)
class Option:
    """One app option: its type in ``config.yaml``'s schema (the Supervisor's option types,
    ``?`` for optional), its default in ``config.yaml``'s options (None: none; the user
    chooses), and the setting it sets (None: the app's own), with the value that means
    unset for that setting."""

    schema: str
    default: Any
    setting: str | None
    off: Any = None


# Option -> setting: the one table. Options keep their setting's name, so that a setting's
# error message names the option the user typed.
OPTIONS: Final[dict[str, Option]] = {
    "port": Option("device(subsystem=tty)", None, "port"),
    "cells": Option("int(0,24)", 0, "cells", off=0),
    "capacity_ah": Option("float(0,)", 0, "capacity_ah", off=0),
    "topic_prefix": Option("str", "chargerybms", "topic_prefix"),
    "device_name": Option("str", "Chargery BMS", "device_name"),
    "victron": Option(f"list(off|{'|'.join(VICTRON_FORMATS)})", "off", "victron", off="off"),
    "mqtt_host": Option("str?", None, "mqtt_host"),
    "mqtt_port": Option("port?", None, "mqtt_port"),
    "mqtt_username": Option("str?", None, "mqtt_username"),
    "mqtt_password": Option("password?", None, "mqtt_password"),
    "log_level": Option(f"list({'|'.join(LOG_LEVELS)})", "info", None),
}


def settings_from_options(options: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """The settings ``options`` set (by setting name, unset ones left out) and the log
    level's name. An unknown option or log level is a :class:`ConfigError`."""
    values: dict[str, Any] = {}
    for key, value in options.items():
        option = OPTIONS.get(key)
        if option is None:
            import difflib  # only to word the error

            close = difflib.get_close_matches(key, OPTIONS, n=1)
            raise ConfigError(f"{key}: not an option of the app{f'; did you mean {close[0]}?' if close else ''}")
        if option.setting is None or value is None or value == option.off:
            continue
        # A password is text whatever it looks like (and never shown in an error).
        values[option.setting] = str(value) if option.setting == "mqtt_password" else value
    level = options.get("log_level", OPTIONS["log_level"].default)
    if level not in LOG_LEVELS:
        raise ConfigError(f"log_level: {level!r} is not one of {', '.join(LOG_LEVELS)}")
    return values, str(level)


def read_options(path: Path) -> dict[str, Any]:
    """The options file as a mapping; none at all (a plain Docker run) is no options."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        options = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{path} is not JSON: {exc}") from None
    if not isinstance(options, dict):
        raise ConfigError(f"{path} holds no mapping of options")
    return options


# --- the Supervisor's MQTT service ------------------------------------------------------------


class NoBroker(Exception):
    """No broker is named and none can be asked for. The message says what to do."""


def supervisor_mqtt(token: str, url: str = SUPERVISOR_URL, timeout: float = SUPERVISOR_TIMEOUT) -> dict[str, Any]:
    """The MQTT service the Supervisor knows (a broker app provides it): ``host``, ``port``,
    ``ssl``, ``username``, ``password``, ``addon`` (supervisor/api/services.py). Raises
    :class:`NoBroker` when no app provides one or the Supervisor cannot be asked."""
    request = urllib.request.Request(f"{url}/services/mqtt", headers={"Authorization": f"Bearer {token}"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # the Supervisor is never behind a proxy
    try:
        with opener.open(request, timeout=timeout) as response:
            answer = json.load(response)
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("message") or exc.reason
        except ValueError:
            message = exc.reason
        raise NoBroker(
            f"no MQTT broker: the Supervisor has none ({message}) and the mqtt_host option is empty: "
            "install and start the Mosquitto broker app (Settings > Apps), or name your broker in mqtt_host"
        ) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise NoBroker(
            f"no MQTT broker: the Supervisor at {url} could not be asked for one ({reason}) "
            "and the mqtt_host option is empty"
        ) from None
    data = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(data, dict) or not data.get("host"):
        raise NoBroker(f"no MQTT broker: the Supervisor's answer names none ({str(answer)[:80]!r})")
    return data


def broker_values(service: Mapping[str, Any]) -> dict[str, Any]:
    """The broker settings from the Supervisor's MQTT service."""
    values = {
        "mqtt_host": service["host"],
        "mqtt_port": service.get("port"),
        "mqtt_username": service.get("username") or None,
        "mqtt_password": service.get("password") or None,
        "mqtt_tls": bool(service.get("ssl")),
    }
    return {k: v for k, v in values.items() if v is not None}


# --- the command -------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="The daemon in a container (the Home Assistant app, the Docker image): settings from "
        "DATA/options.json, then CHARGERY_* variables and flags; the energy meters in DATA; the broker from the "
        "options, else from the Home Assistant Supervisor.",
    )
    parser.add_argument("--data", default=DATA_DIR, metavar="DIR", help=f"the app's data folder (default: {DATA_DIR})")
    parser.add_argument("--supervisor", default=SUPERVISOR_URL, help=argparse.SUPPRESS)  # tests: a stand-in
    add_flags(parser)
    return parser


def _stop_early(signum: int, _frame: FrameType | None) -> None:
    # As PID 1 a signal without a handler is ignored: until the daemon sets its own, stop here.
    raise SystemExit(128 + signum)


@dataclass(frozen=True)
class App:
    """What ``chargery app`` runs with: the settings, the log level's name, where the
    options file is and where the broker came from (for the first log line)."""

    settings: Settings
    level: str
    options_path: Path
    broker: str


def app_settings(argv: Sequence[str], environ: Mapping[str, str]) -> App:
    """The settings from the options, the Supervisor's broker, the environment and flags.
    Raises :class:`ConfigError` (a wrong option) or :class:`NoBroker`."""
    args = _parser().parse_args(argv)
    data = Path(args.data)
    options_path = data / OPTIONS_FILE
    flags = {k: v for k, v in vars(args).items() if k not in ("data", "supervisor")}
    values, level = settings_from_options(read_options(options_path))
    layer: dict[str, Any] = {"state_dir": str(data)}
    source = str(options_path)
    if values.get("mqtt_host") or environ.get("CHARGERY_MQTT_HOST") or flags["mqtt_host"]:
        broker = "(named in the options or the environment)"
    else:
        token = environ.get("SUPERVISOR_TOKEN")
        if not token:
            raise NoBroker(
                "no MQTT broker: none is named (the mqtt_host option, CHARGERY_MQTT_HOST or --mqtt-host) "
                "and this is not a Home Assistant app (no SUPERVISOR_TOKEN) that could ask the Supervisor"
            )
        provided = supervisor_mqtt(token, args.supervisor)
        service = broker_values(provided)
        if "mqtt_username" in values:  # the user's own login on that broker: its password with it, or none
            service.pop("mqtt_password", None)
        layer |= service
        broker = f"(from the Supervisor, provided by {provided.get('addon') or 'an app'})"
        source = f"{options_path} and the Supervisor's MQTT service"
    settings = load(flags, environ=environ, options=layer | values, options_source=source)
    return App(settings, level, options_path, broker)


def run_app(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> int:
    environ = os.environ if environ is None else environ
    signal.signal(signal.SIGTERM, _stop_early)
    try:
        app = app_settings(argv, environ)
    except ConfigError as exc:
        return report(exc, PROG)
    except NoBroker as exc:
        return report(ConfigError(str(exc)), PROG)
    settings = app.settings
    setup(settings.debug or app.level == "debug", settings.log_file, stream=sys.stdout, level=LOG_LEVELS[app.level],
          timestamps=True)  # fmt: skip
    LOG.info(
        "app: options from %s, energy meters and cell health kept in %s, MQTT broker %s:%s %s%s",
        app.options_path if app.options_path.exists() else f"the environment ({app.options_path} does not exist)",
        settings.state_dir,
        settings.mqtt_host,
        settings.mqtt_port or DEFAULT_MQTT_PORT,
        app.broker,
        f" as user {settings.mqtt_username}" if settings.mqtt_username else "",
    )
    from ..daemon import run

    return run(settings, logging_ready=True)
