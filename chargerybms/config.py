"""Settings: the constants at the top of ``chargery.py``, then ``CHARGERY_<NAME>``
environment variables, then command-line flags, each overriding the one before.

Every setting is one field of :class:`Settings`; its constant is the field name in upper
case, its environment variable ``CHARGERY_`` + that, its flag ``--`` + the name with
dashes. Validation happens once, at start: a bad value is a :class:`ConfigError` naming
the setting, which the command line turns into one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from .victron import FORMATS as VICTRON_DOCUMENTS

EXIT_CONFIG: Final = 2  # also listed in the unit's RestartPreventExitStatus=
ENV_PREFIX: Final = "CHARGERY_"
CREDENTIAL_NAME: Final = "mqtt_password"  # systemd LoadCredential=mqtt_password:...
BAUD_RATES: Final = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400)
VICTRON_FORMATS: Final = tuple(VICTRON_DOCUMENTS)  # what --victron takes
_CONSTANT_NAME = re.compile(r"[A-Z][A-Z0-9_]*")


class ConfigError(Exception):
    """A setting has a value the daemon cannot use. The message names the setting."""


def _opt(
    default: Any,
    help: str,
    *,
    flag: bool = True,
    short: str | None = None,
    meta: str | None = None,
    secret: bool = False,
) -> Any:
    return field(default=default, repr=not secret, metadata={"help": help, "flag": flag, "short": short, "meta": meta})


@dataclass(frozen=True)
class Settings:
    # Serial side
    port: str = _opt("/dev/ttyUSB0", "serial device or pyserial URL (socket://host:port, rfc2217://host:port)")
    baud: int = _opt(115200, "serial speed; the BMS uses 115200")
    # MQTT
    mqtt_host: str = _opt("127.0.0.1", "MQTT broker host")
    mqtt_port: int = _opt(1883, "MQTT broker port (8883 is usual with --mqtt-tls)")
    mqtt_username: str = _opt("", "MQTT user name")
    mqtt_password: str = _opt(
        "", "MQTT password (never a flag: environment, file or credential)", flag=False, secret=True
    )
    mqtt_password_file: str = _opt("", "file holding the MQTT password", meta="FILE")
    mqtt_tls: bool = _opt(False, "connect with TLS; the certificate and host name are always verified")
    mqtt_ca_file: str = _opt("", "CA certificate(s) for --mqtt-tls (default: the system's)", meta="FILE")
    mqtt_cert_file: str = _opt("", "client certificate for --mqtt-tls", meta="FILE")
    mqtt_key_file: str = _opt("", "client key for --mqtt-cert-file", meta="FILE")
    mqtt_client_id: str = _opt("", "MQTT client id (default: chargery-<device id>)")
    topic_prefix: str = _opt("chargerybms", "topic prefix")
    # What to publish
    cells: int = _opt(0, "cells really in series (0: every slot the BMS sends)", meta="N")
    publish_cells: bool = _opt(False, "publish cellvoltN / cellimpedN topics")
    stale_after: float = _opt(10.0, "seconds without a valid frame before link goes offline", meta="SECONDS")
    heartbeat: float = _opt(60.0, "republish the state at least this often, in seconds", meta="SECONDS")
    # Victron GX
    victron: str = _opt(
        "", f"publish a document for a Venus OS driver: {' or '.join(VICTRON_FORMATS)} (default: off)", meta="FORMAT"
    )
    victron_topic: str = _opt("", "topic of the Victron document (default: <prefix>/victron)", meta="TOPIC")
    capacity_ah: float = _opt(
        0.0, "the battery's capacity in Ah (needed by --victron serialbattery; default: unset)", meta="AH"
    )
    # Home Assistant
    ha_discovery: bool = _opt(True, "announce the BMS to Home Assistant (MQTT discovery)")
    ha_prefix: str = _opt("homeassistant", "Home Assistant discovery prefix")
    ha_status_topic: str = _opt("homeassistant/status", "Home Assistant birth/will topic")
    device_id: str = _opt("", "stable id of this BMS for Home Assistant (default: from the topic prefix)")
    device_name: str = _opt("Chargery BMS", "device name shown in Home Assistant")
    ha_max_age: float = _opt(
        300.0,
        "Home Assistant gets a value once it moves by more than its deadband, or once it is this old "
        "(bounds the rows its recorder writes; 0: every value as it comes)",
        meta="SECONDS",
    )
    state_dir: str = _opt("", "where the energy meters are kept (default: $STATE_DIRECTORY or ~/.local/state/chargery)")
    # Running
    demo: bool = _opt(False, "a built-in simulated BMS instead of a serial port")
    demo_model: int = _opt(16, "simulated BMS model: 8, 16 or 24 cell slots", meta="SLOTS")
    demo_firmware: str = _opt("1.26", "simulated firmware frame layout: 1.22, 1.25 or 1.26", meta="VERSION")
    demo_speed: float = _opt(1.0, "simulated clock speed (2: twice as fast)", meta="FACTOR")
    dry_run: bool = _opt(False, "print each publication as 'topic payload' instead of connecting")
    debug: bool = _opt(False, "log every frame", short="-d")
    log_file: str = _opt("", "also log to this file", meta="FILE")

    # Not settings: what the layers said, for decisions like --demo's implied --dry-run.
    explicit: frozenset[str] = field(default=frozenset(), compare=False, repr=False, metadata={"internal": True})

    @property
    def cell_limit(self) -> int | None:
        return self.cells or None

    @property
    def resolved_device_id(self) -> str:
        return self.device_id or re.sub(r"[^A-Za-z0-9_-]+", "_", self.topic_prefix).strip("_") or "chargery"

    @property
    def client_id(self) -> str:
        return self.mqtt_client_id or f"chargery-{self.resolved_device_id}"

    def describe(self) -> dict[str, Any]:
        """Settings for a log line: the password only as whether one is set."""
        out = {f.name: getattr(self, f.name) for f in SETTINGS_FIELDS}
        out["mqtt_password"] = "(set)" if self.mqtt_password else ""
        return out


SETTINGS_FIELDS: Final = tuple(f for f in dataclasses.fields(Settings) if not f.metadata.get("internal"))
_FIELD_BY_NAME: Final = {f.name: f for f in SETTINGS_FIELDS}


def _kind(name: str) -> type:
    default = _FIELD_BY_NAME[name].default
    return type(default)


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _convert(name: str, value: Any, source: str) -> Any:
    kind = _kind(name)
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ConfigError(f"{name}: {value!r} from {source} is not a yes/no value (use true or false)")
    if kind is int:
        if isinstance(value, bool):
            raise ConfigError(f"{name}: {value!r} from {source} is not a whole number")
        try:
            return int(str(value).strip(), 10)
        except ValueError:
            raise ConfigError(f"{name}: {value!r} from {source} is not a whole number") from None
    if kind is float:
        try:
            number = float(str(value).strip())
        except ValueError:
            raise ConfigError(f"{name}: {value!r} from {source} is not a number") from None
        if not math.isfinite(number):
            raise ConfigError(f"{name}: {value!r} from {source} is not a finite number")
        return number
    if not isinstance(value, str):
        raise ConfigError(f"{name}: {value!r} from {source} is not text")
    return value


def add_flags(parser: argparse.ArgumentParser, names: Sequence[str] | None = None) -> None:
    """Add the flag of every setting (or of ``names``) to ``parser``, defaulting to unset."""
    for f in SETTINGS_FIELDS:
        if not f.metadata["flag"] or (names is not None and f.name not in names):
            continue
        flags = [f"--{f.name.replace('_', '-')}"]
        if f.metadata["short"]:
            flags.insert(0, f.metadata["short"])
        help_text = f.metadata["help"]
        if "default:" not in help_text:
            help_text += f" (default: {f.default if f.default != '' else 'unset'})"
        kwargs: dict[str, Any] = {"dest": f.name, "default": None, "help": help_text.replace("%", "%%")}
        if isinstance(f.default, bool):
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["metavar"] = f.metadata["meta"] or f.name.split("_")[-1].upper()
        parser.add_argument(*flags, **kwargs)


def load(
    flags: Mapping[str, Any] | None = None,
    constants: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Merge the three layers and validate. Raises :class:`ConfigError`."""
    environ = os.environ if environ is None else environ
    if constants:
        _check_constant_names(constants)
    values: dict[str, Any] = {}
    explicit: set[str] = set()
    for f in SETTINGS_FIELDS:
        name, constant = f.name, f.name.upper()
        value: Any = f.default
        if constants and constant in constants:
            value = _convert(name, constants[constant], f"the {constant} setting in chargery.py")
            if value != f.default:
                explicit.add(name)
        env_name = ENV_PREFIX + constant
        if env_name in environ:
            value = _convert(name, environ[env_name], f"environment variable {env_name}")
            explicit.add(name)
        if flags and flags.get(name) is not None:
            value = _convert(name, flags[name], f"--{name.replace('_', '-')}")
            explicit.add(name)
        values[name] = value

    values["mqtt_password"] = _password(values, flags or {}, environ)
    if values["demo"] and not values["dry_run"] and not {"mqtt_host", "mqtt_port"} & explicit:
        values["dry_run"] = True  # --demo with no broker named: print, do not connect
    settings = Settings(**values, explicit=frozenset(explicit))
    validate(settings)
    return settings


def _check_constant_names(constants: Mapping[str, Any]) -> None:
    """An upper-case name in the settings block that is no setting is a typo: say so."""
    known = {f.name.upper() for f in SETTINGS_FIELDS}
    for name in constants:
        if _CONSTANT_NAME.fullmatch(name) and name not in known:
            import difflib  # only to word the error

            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else "; see README.md for the settings"
            raise ConfigError(f"{name}: not a setting (in the settings block of chargery.py){hint}")


def _read_secret(path: str, name: str) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read {path}: {exc.strerror or exc}") from None
    # A trailing newline is an editor's, not the password's.
    return text.rstrip("\r\n")


def _password(values: dict[str, Any], flags: Mapping[str, Any], environ: Mapping[str, str]) -> str:
    """Flag (a file) > environment (the password or a file) > systemd credential > constants."""
    if flags.get("mqtt_password_file"):
        return _read_secret(str(flags["mqtt_password_file"]), "mqtt_password_file")
    if ENV_PREFIX + "MQTT_PASSWORD" in environ:
        return environ[ENV_PREFIX + "MQTT_PASSWORD"]
    if environ.get(ENV_PREFIX + "MQTT_PASSWORD_FILE"):
        return _read_secret(environ[ENV_PREFIX + "MQTT_PASSWORD_FILE"], "mqtt_password_file")
    cred_dir = environ.get("CREDENTIALS_DIRECTORY")
    if cred_dir and (Path(cred_dir) / CREDENTIAL_NAME).is_file():
        return _read_secret(str(Path(cred_dir) / CREDENTIAL_NAME), f"credential {CREDENTIAL_NAME}")
    if values["mqtt_password_file"]:
        return _read_secret(values["mqtt_password_file"], "mqtt_password_file")
    return str(values["mqtt_password"])


_TOPIC_BAD = re.compile(r"[+#\x00]")


def _check_topic(name: str, topic: str) -> None:
    if not topic or topic.startswith("/") or topic.endswith("/") or "//" in topic or _TOPIC_BAD.search(topic):
        raise ConfigError(
            f"{name}: {topic!r} is not a usable MQTT topic (non-empty, no + or #, no leading, trailing or double /)"
        )


def _check_file(name: str, path: str) -> None:
    if path and not os.access(path, os.R_OK):
        raise ConfigError(f"{name}: cannot read {path}")


def validate(s: Settings) -> None:
    if not s.port.strip():
        raise ConfigError("port: empty; give a device such as /dev/ttyUSB0 or a URL such as socket://host:port")
    if s.baud not in BAUD_RATES:
        raise ConfigError(
            f"baud: {s.baud} is not a serial speed ({', '.join(map(str, BAUD_RATES))}); the BMS uses 115200"
        )
    if not s.mqtt_host.strip():
        raise ConfigError("mqtt_host: empty")
    if not 1 <= s.mqtt_port <= 65535:
        raise ConfigError(f"mqtt_port: {s.mqtt_port} is not a TCP port (1-65535)")
    if s.mqtt_password and not s.mqtt_username:
        raise ConfigError("mqtt_username: a password is set but no user name")
    for name in ("mqtt_ca_file", "mqtt_cert_file", "mqtt_key_file"):
        _check_file(name, getattr(s, name))
        if getattr(s, name) and not s.mqtt_tls:
            raise ConfigError(f"{name}: set, but mqtt_tls is off; add --mqtt-tls")
    if s.mqtt_key_file and not s.mqtt_cert_file:
        raise ConfigError("mqtt_key_file: set without mqtt_cert_file")
    _check_topic("topic_prefix", s.topic_prefix)
    _check_topic("ha_prefix", s.ha_prefix)
    _check_topic("ha_status_topic", s.ha_status_topic)
    if not 0 <= s.cells <= 24:
        raise ConfigError(f"cells: {s.cells} is not a cell count (1-24, or 0 for every slot)")
    if s.stale_after <= 0:
        raise ConfigError(f"stale_after: {s.stale_after:g} must be more than 0 seconds")
    if s.ha_max_age < 0:
        raise ConfigError(f"ha_max_age: {s.ha_max_age:g} is negative (seconds; 0 sends every value as it comes)")
    if s.heartbeat < 1:
        raise ConfigError(f"heartbeat: {s.heartbeat:g} must be at least 1 second")
    if s.device_id and not re.fullmatch(r"[A-Za-z0-9_-]+", s.device_id):
        raise ConfigError(f"device_id: {s.device_id!r} may only hold letters, digits, _ and -")
    if s.demo_model not in (8, 16, 24):
        raise ConfigError(f"demo_model: {s.demo_model} is not a Chargery model (8, 16 or 24)")
    if s.demo_firmware not in ("1.22", "1.25", "1.26"):
        raise ConfigError(f"demo_firmware: {s.demo_firmware!r} is not one of 1.22, 1.25, 1.26")
    if s.log_file:
        target = Path(s.log_file)
        writable = os.access(target, os.W_OK) if target.exists() else os.access(target.parent, os.W_OK)
        if target.is_dir() or not writable:
            raise ConfigError(f"log_file: cannot write {s.log_file}")
    if s.victron and s.victron not in VICTRON_FORMATS:
        raise ConfigError(f"victron: {s.victron!r} is not one of {', '.join(VICTRON_FORMATS)} (or empty for off)")
    if s.victron_topic:
        _check_topic("victron_topic", s.victron_topic)
    if s.capacity_ah < 0:
        raise ConfigError(f"capacity_ah: {s.capacity_ah:g} is negative (give the capacity in Ah, or 0 for unset)")
    if s.victron == "serialbattery" and not s.capacity_ah:
        raise ConfigError(
            "capacity_ah: --victron serialbattery needs the battery's capacity in Ah "
            "(--capacity-ah, CHARGERY_CAPACITY_AH or CAPACITY_AH in chargery.py)"
        )
    if s.demo_speed <= 0:
        raise ConfigError(f"demo_speed: {s.demo_speed:g} must be more than 0")
