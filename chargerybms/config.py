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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from .protocol import MODELS

EXIT_CONFIG: Final = 2  # also listed in the unit's RestartPreventExitStatus=
ENV_PREFIX: Final = "CHARGERY_"
CREDENTIAL_NAME: Final = "mqtt_password"  # systemd LoadCredential=mqtt_password:...
BAUD_RATES: Final = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400)
DEFAULT_MQTT_PORT: Final = 1883
VICTRON_FORMATS: Final = ("serialbattery", "mqtt-battery")  # what --victron takes: outputs/victron.py builds each
_CONSTANT_NAME = re.compile(r"[A-Z][A-Z0-9_]*")
# CHARGERY_* names that are not settings of the daemon but are read by other parts of
# this repository, so they may share an environment with it: the Node-RED flows'
# (examples/node-red/battery.js) and the test suite's and CI's. Every other CHARGERY_*
# name is a setting (one per field of Settings) or a typo, which stops the daemon.
# tests/test_config.py checks the repository for a CHARGERY_ name missing from both.
NOT_SETTINGS: Final = frozenset(
    {
        "CHARGERY_PREFIX",  # Node-RED flow: the topic prefix it subscribes to
        "CHARGERY_MAX_AGE",  # Node-RED flow: seconds before a `state` is no longer live
        "CHARGERY_NODE_RED",  # tests: where Node-RED is installed
        "CHARGERY_HA_PYTHON",  # tests: the Home Assistant venv's python
        "CHARGERY_KEEP_CONTAINER",  # tests: keep the systemd test's container
        "CHARGERY_SCREENSHOTS",  # tests: renew the README's Node-RED picture
        "CHARGERY_SCREENSHOT_DIR",  # tests: save the Home Assistant pictures there
        "CHARGERY_CI_CACHE",  # CI: where the tools are cached
        "CHARGERY_ROOTFS_CACHE",  # CI: where the test rootfs is cached
    }
)
# A demo sent to a broker is a device of its own, so that it never mixes with a real
# BMS's topics, entities and energy meters there (unless the user names a prefix or name).
DEMO_TOPIC_PREFIX: Final = "chargerybms-demo"
DEMO_DEVICE_NAME: Final = "Chargery BMS (demo)"


class ConfigError(Exception):
    """A setting has a value the daemon cannot use. The message names the setting."""


def report(exc: ConfigError, prog: str = "chargery.py") -> int:
    """The one way a configuration error ends a command: one line on stderr, exit status 2."""
    import sys

    print(f"{prog}: configuration error: {exc}", file=sys.stderr)
    return EXIT_CONFIG


def _opt(
    default: Any,
    help: str,
    *,
    kind: type | None = None,
    check: Callable[[Any], str | None] | None = None,
    flag: bool = True,
    short: str | None = None,
    meta: str | None = None,
    secret: bool = False,
) -> Any:
    """A setting. ``default`` None means unset (then ``kind`` gives its type); ``check``
    returns what is wrong with a value (set values only), or None."""
    metadata = {
        "help": help,
        "kind": kind or type(default),
        "check": check,
        "flag": flag,
        "short": short,
        "meta": meta,
    }
    return field(default=default, repr=not secret, metadata=metadata)


# --- checks of one value, each next to the field that uses it -----------------------------

_TOPIC_BAD = re.compile(r"[+#\x00]")


def _topic(topic: str) -> str | None:
    if not topic or topic.startswith("/") or topic.endswith("/") or "//" in topic or _TOPIC_BAD.search(topic):
        return f"{topic!r} is not a usable MQTT topic (non-empty, no + or #, no leading, trailing or double /)"
    return None


def _readable(path: str) -> str | None:
    return None if os.access(path, os.R_OK) else f"cannot read {path}"


def _not_empty(what: str) -> Callable[[str], str | None]:
    return lambda value: None if value.strip() else f"empty; {what}"


def _one_of(choices: Sequence[Any], why: str = "") -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if value in choices:
            return None
        return f"{value!r} is not one of {', '.join(map(str, choices))}{why}"

    return check


def _more_than(low: float, unit: str) -> Callable[[float], str | None]:
    return lambda value: None if value > low else f"{value:g} must be more than {low:g}{unit}"


def _writable_file(path: str) -> str | None:
    target = Path(path)
    writable = os.access(target, os.W_OK) if target.exists() else os.access(target.parent, os.W_OK)
    return None if writable and not target.is_dir() else f"cannot write {path}"


# The bank's members (``bank_members``): a setting's syntax, parsed here, used by chargerybms.bank.
@dataclass(frozen=True)
class MemberSpec:
    """A member as configured: its topic prefix, and its capacity in Ah if given."""

    prefix: str
    capacity_ah: float | None = None

    @property
    def name(self) -> str:
        """The short name shown in Home Assistant: the prefix's last part."""
        return self.prefix.rsplit("/", 1)[-1]


_MEMBER = re.compile(r"^(?P<prefix>[^=\s]+)(?:=(?P<ah>[0-9]+(?:\.[0-9]+)?))?$")


def parse_members(text: str) -> list[MemberSpec]:
    """``"chargerybms/a=280, chargerybms/b"`` (commas or spaces) -> the members. Raises
    ValueError with the reason."""
    specs: list[MemberSpec] = []
    for item in re.split(r"[,\s]+", text.strip()):
        if not item:
            continue
        match = _MEMBER.match(item)
        if match is None:
            raise ValueError(f"{item!r} is not PREFIX or PREFIX=AH")
        prefix = match["prefix"]
        if prefix.startswith("/") or prefix.endswith("/") or "//" in prefix or re.search(r"[+#\x00]", prefix):
            raise ValueError(f"{prefix!r} is not a usable topic prefix")
        ah = float(match["ah"]) if match["ah"] else None
        if ah is not None and ah <= 0:
            raise ValueError(f"{item!r}: the capacity must be more than 0 Ah")
        if any(s.prefix == prefix for s in specs):
            raise ValueError(f"{prefix!r} is named twice")
        specs.append(MemberSpec(prefix, ah))
    if not specs:
        raise ValueError("no member named")
    return specs


def _bank_members(text: str) -> str | None:
    try:
        parse_members(text)
    except ValueError as exc:
        return str(exc)
    return None


@dataclass(frozen=True)
class Settings:
    """Every setting, one field each. None is unset: the help says what that means."""

    # Serial side
    port: str = _opt(
        "/dev/ttyUSB0",
        "serial device or pyserial URL (socket://host:port, rfc2217://host:port)",
        check=_not_empty("give a device such as /dev/ttyUSB0 or a URL such as socket://host:port"),
    )
    baud: int = _opt(115200, "serial speed; the BMS uses 115200", check=_one_of(BAUD_RATES, "; the BMS uses 115200"))
    # MQTT
    mqtt_host: str | None = _opt(
        None, "MQTT broker host (default: 127.0.0.1)", kind=str, check=_not_empty("name the broker's host")
    )
    mqtt_port: int | None = _opt(
        None,
        f"MQTT broker port (default: {DEFAULT_MQTT_PORT}; 8883 is usual with --mqtt-tls)",
        kind=int,
        check=lambda port: None if 1 <= port <= 65535 else f"{port} is not a TCP port (1-65535)",
    )
    mqtt_username: str | None = _opt(None, "MQTT user name", kind=str)
    mqtt_password: str | None = _opt(
        None, "MQTT password (never a flag: environment, file or credential)", kind=str, flag=False, secret=True
    )
    mqtt_password_file: str | None = _opt(None, "file holding the MQTT password", kind=str, meta="FILE")
    mqtt_tls: bool = _opt(False, "connect with TLS; the certificate and host name are always verified")
    mqtt_ca_file: str | None = _opt(
        None, "CA certificate(s) for --mqtt-tls (default: the system's)", kind=str, check=_readable, meta="FILE"
    )
    mqtt_cert_file: str | None = _opt(None, "client certificate for --mqtt-tls", kind=str, check=_readable, meta="FILE")
    mqtt_key_file: str | None = _opt(None, "client key for --mqtt-cert-file", kind=str, check=_readable, meta="FILE")
    mqtt_client_id: str | None = _opt(None, "MQTT client id (default: chargery-<device id>)", kind=str)
    topic_prefix: str = _opt("chargerybms", "topic prefix", check=_topic)
    # What to publish
    cells: int | None = _opt(
        None,
        "cells really in series (default: every slot the BMS sends; 0 means the same)",
        kind=int,
        check=lambda n: None if 1 <= n <= 24 else f"{n} is not a cell count (1-24, or 0 for every slot)",
        meta="N",
    )
    publish_cells: bool = _opt(False, "publish cellvoltN / cellimpedN topics")
    stale_after: float = _opt(
        10.0,
        "seconds without a valid frame before link goes offline",
        check=_more_than(0, " seconds"),
        meta="SECONDS",
    )
    heartbeat: float = _opt(
        60.0,
        "republish the state at least this often, in seconds",
        check=lambda s: None if s >= 1 else f"{s:g} must be at least 1 second",
        meta="SECONDS",
    )
    cell_health: bool = _opt(
        True, "watch the cells: the weakest cell, why the BMS cut off (state, events, Home Assistant)"
    )
    # Victron GX
    victron: str | None = _opt(
        None,
        f"publish a document for a Venus OS driver: {' or '.join(VICTRON_FORMATS)} (default: off)",
        kind=str,
        check=_one_of(VICTRON_FORMATS, " (or empty for off)"),
        meta="FORMAT",
    )
    victron_topic: str | None = _opt(
        None, "topic of the Victron document (default: <prefix>/victron)", kind=str, check=_topic, meta="TOPIC"
    )
    capacity_ah: float | None = _opt(
        None,
        "the battery's capacity in Ah (needed by --victron serialbattery; default: unset; 0 means the same)",
        kind=float,
        check=lambda ah: None if ah > 0 else f"{ah:g} is negative (give the capacity in Ah, or 0 for unset)",
        meta="AH",
    )
    # A bank of packs in parallel (`chargery.py bank`): its own settings, so that the
    # daemon's (topic prefix, Victron) in the same settings block never leak into it.
    bank_members: str | None = _opt(
        None,
        "the members' topic prefixes, each optionally with its capacity (PREFIX=AH), separated by commas "
        "(the bank command's --member, once per pack)",
        kind=str,
        check=_bank_members,
        flag=False,
    )
    bank_prefix: str = _opt("chargerybank", "topic prefix of the bank", check=_topic, flag=False)
    bank_name: str = _opt("Battery bank", "the bank's device name in Home Assistant", flag=False)
    bank_victron: str | None = _opt(
        None,
        f"publish the bank as one battery for a Venus OS driver: {' or '.join(VICTRON_FORMATS)} (default: off)",
        kind=str,
        check=_one_of(VICTRON_FORMATS, " (or empty for off)"),
        flag=False,
    )
    # Home Assistant
    ha_discovery: bool = _opt(True, "announce the BMS to Home Assistant (MQTT discovery)")
    ha_prefix: str = _opt("homeassistant", "Home Assistant discovery prefix", check=_topic)
    ha_status_topic: str = _opt("homeassistant/status", "Home Assistant birth/will topic", check=_topic)
    device_id: str | None = _opt(
        None,
        "stable id of this BMS for Home Assistant (default: from the topic prefix)",
        kind=str,
        check=lambda v: None if re.fullmatch(r"[A-Za-z0-9_-]+", v) else f"{v!r} may only hold letters, digits, _ and -",
    )
    device_name: str = _opt("Chargery BMS", "device name shown in Home Assistant")
    ha_max_age: float = _opt(
        300.0,
        "Home Assistant gets a value once it moves by more than its deadband, or once it is this old "
        "(bounds the rows its recorder writes; 0: every value as it comes)",
        check=lambda s: None if s >= 0 else f"{s:g} is negative (seconds; 0 sends every value as it comes)",
        meta="SECONDS",
    )
    state_dir: str | None = _opt(
        None,
        "where the energy meters are kept (default: $STATE_DIRECTORY or ~/.local/state/chargery; with --demo: nowhere)",
        kind=str,
    )
    # Running
    demo: bool = _opt(False, "a built-in simulated BMS instead of a serial port")
    demo_model: int = _opt(
        16,
        "simulated BMS model: 8, 16 or 24 cell slots",
        check=_one_of(MODELS, " (a Chargery model)"),
        meta="SLOTS",
    )
    demo_firmware: str = _opt(
        "1.26",
        "simulated firmware frame layout: 1.22, 1.25 or 1.26",
        check=_one_of(("1.22", "1.25", "1.26")),
        meta="VERSION",
    )
    demo_speed: float = _opt(1.0, "simulated clock speed (2: twice as fast)", check=_more_than(0, ""), meta="FACTOR")
    demo_fault: str | None = _opt(
        None,
        "plant a fault in the simulated pack: low-capacity:N, high-resistance:N, balance-lead:N "
        "(the lead between cells N and N+1) or temperature (default: a healthy pack)",
        kind=str,
        meta="FAULT",
    )
    dry_run: bool | None = _opt(
        None,
        "print each publication as 'topic payload' instead of connecting "
        "(default: with --demo, unless a broker is named)",
        kind=bool,
    )
    debug: bool = _opt(False, "log every frame", short="-d")
    log_file: str | None = _opt(None, "also log to this file", kind=str, check=_writable_file, meta="FILE")

    @property
    def resolved_device_id(self) -> str:
        return self.device_id or re.sub(r"[^A-Za-z0-9_-]+", "_", self.topic_prefix).strip("_") or "chargery"

    @property
    def client_id(self) -> str:
        return self.mqtt_client_id or f"chargery-{self.resolved_device_id}"

    def loggable(self) -> dict[str, Any]:
        """Settings for a log line: the password only as whether one is set."""
        out = {f.name: getattr(self, f.name) for f in SETTINGS_FIELDS}
        out["mqtt_password"] = "(set)" if self.mqtt_password else None
        return out


DEFAULT_MQTT_HOST: Final = "127.0.0.1"


def default_state_dir(configured: str | None) -> Path:
    """``--state-dir``, else systemd's ``$STATE_DIRECTORY``, else ``~/.local/state/chargery``."""
    if configured:
        return Path(configured)
    if os.environ.get("STATE_DIRECTORY"):  # systemd StateDirectory=
        return Path(os.environ["STATE_DIRECTORY"].split(":")[0])
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "chargery"


def saved_in(s: Settings) -> Path | None:
    """Where what the daemon keeps (energy meters, cell-health evidence) is saved. The one
    rule for the simulator: with ``--demo`` nothing is saved unless ``--state-dir`` names
    where (simulated energy must never land in a real battery's meters)."""
    if s.demo and s.state_dir is None:
        return None
    return default_state_dir(s.state_dir)


def broker(s: Settings) -> tuple[str, int]:
    """The broker's host and port, unset ones at their defaults."""
    return s.mqtt_host or DEFAULT_MQTT_HOST, s.mqtt_port or DEFAULT_MQTT_PORT


def printing(s: Settings) -> str:
    """Where publications go: ``"broker"``; ``"print"``, every one whole (``--dry-run``,
    or ``-d``); ``"summary"``, with long retained documents summarised (``--demo`` with no
    broker named, the README's first command)."""
    if s.dry_run is False or (s.dry_run is None and not (s.demo and s.mqtt_host is None and s.mqtt_port is None)):
        return "broker"
    return "print" if s.dry_run or s.debug else "summary"


SETTINGS_FIELDS: Final = dataclasses.fields(Settings)
_FIELD_BY_NAME: Final = {f.name: f for f in SETTINGS_FIELDS}
# Values that mean "unset" for an optional number, as the settings block and older
# environment files write it (CELLS = 0, CAPACITY_AH = 0.0).
_ZERO_IS_UNSET: Final = {"cells", "capacity_ah"}


def _kind(name: str) -> type:
    kind: type = _FIELD_BY_NAME[name].metadata["kind"]
    return kind


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _convert(name: str, value: Any, source: str) -> Any:
    f = _FIELD_BY_NAME[name]
    kind = _kind(name)
    optional = f.default is None
    if value is None or (optional and isinstance(value, str) and not value.strip()):
        return None if optional else f.default
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
            number: int | float = int(str(value).strip(), 10)
        except ValueError:
            raise ConfigError(f"{name}: {value!r} from {source} is not a whole number") from None
    elif kind is float:
        try:
            number = float(str(value).strip())
        except ValueError:
            raise ConfigError(f"{name}: {value!r} from {source} is not a number") from None
        if not math.isfinite(number):
            raise ConfigError(f"{name}: {value!r} from {source} is not a finite number")
    else:
        if not isinstance(value, str):
            raise ConfigError(f"{name}: {value!r} from {source} is not text")
        return value
    return None if number == 0 and name in _ZERO_IS_UNSET else number


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
            help_text += f" (default: {'unset' if f.default is None else f.default})"
        kwargs: dict[str, Any] = {"dest": f.name, "default": None, "help": help_text.replace("%", "%%")}
        if f.metadata["kind"] is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["metavar"] = f.metadata["meta"] or f.name.split("_")[-1].upper()
        parser.add_argument(*flags, **kwargs)


def load(
    flags: Mapping[str, Any] | None = None,
    constants: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    options: Mapping[str, Any] | None = None,
    options_source: str = "the app's options",
) -> Settings:
    """Merge the layers and validate. Raises :class:`ConfigError`. ``options`` (by setting
    name, from ``options_source``) is the container's layer (:mod:`chargerybms.commands.app`): above
    the constants, below the environment."""
    environ = os.environ if environ is None else environ
    if constants:
        _check_constant_names(constants)
    _check_environment_names(environ)
    values: dict[str, Any] = {}
    given: set[str] = set()  # set by the user in any layer
    for f in SETTINGS_FIELDS:
        name, constant = f.name, f.name.upper()
        value: Any = f.default
        if constants and constant in constants:
            value = _convert(name, constants[constant], f"the {constant} setting in chargery.py")
            given.add(name)
        if options and name in options:
            value = _convert(name, options[name], options_source)
            given.add(name)
        env_name = ENV_PREFIX + constant
        if env_name in environ:
            value = _convert(name, environ[env_name], f"environment variable {env_name}")
            given.add(name)
        if flags and flags.get(name) is not None:
            value = _convert(name, flags[name], f"--{name.replace('_', '-')}")
            given.add(name)
        values[name] = value
    values["mqtt_password"] = _password(values, flags or {}, environ)
    settings = Settings(**values)
    if settings.demo and printing(settings) == "broker":
        own = {"topic_prefix": DEMO_TOPIC_PREFIX, "device_name": DEMO_DEVICE_NAME}
        values.update({k: v for k, v in own.items() if k not in given})
        settings = Settings(**values)
    validate(settings)
    return settings


def _did_you_mean(name: str, known: set[str]) -> str:
    import difflib  # only to word the error

    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else "; see README.md for the settings"


def _check_constant_names(constants: Mapping[str, Any]) -> None:
    """An upper-case name in the settings block that is no setting is a typo: say so."""
    known = {f.name.upper() for f in SETTINGS_FIELDS}
    for name in constants:
        if _CONSTANT_NAME.fullmatch(name) and name not in known:
            hint = _did_you_mean(name, known)
            raise ConfigError(f"{name}: not a setting (in the settings block of chargery.py){hint}")


def _check_environment_names(environ: Mapping[str, str]) -> None:
    """A CHARGERY_* variable that is no setting (and none of :data:`NOT_SETTINGS`) is a
    typo in an environment file: the same error as in the settings block, never ignored."""
    known = {ENV_PREFIX + f.name.upper() for f in SETTINGS_FIELDS}
    for name in sorted(environ):
        if name.startswith(ENV_PREFIX) and name not in known and name not in NOT_SETTINGS:
            hint = _did_you_mean(name, known)
            raise ConfigError(f"{name}: not a setting (in the environment, e.g. /etc/chargery/chargery.env){hint}")


def _read_secret(path: str, name: str) -> str | None:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read {path}: {exc.strerror or exc}") from None
    # A trailing newline is an editor's, not the password's; an empty file is no password.
    return text.rstrip("\r\n") or None


def _password(values: dict[str, Any], flags: Mapping[str, Any], environ: Mapping[str, str]) -> str | None:
    """Flag (a file) > environment (the password or a file) > systemd credential > constants."""
    if flags.get("mqtt_password_file"):
        return _read_secret(str(flags["mqtt_password_file"]), "mqtt_password_file")
    if ENV_PREFIX + "MQTT_PASSWORD" in environ:
        return environ[ENV_PREFIX + "MQTT_PASSWORD"] or None
    if environ.get(ENV_PREFIX + "MQTT_PASSWORD_FILE"):
        return _read_secret(environ[ENV_PREFIX + "MQTT_PASSWORD_FILE"], "mqtt_password_file")
    cred_dir = environ.get("CREDENTIALS_DIRECTORY")
    if cred_dir and (Path(cred_dir) / CREDENTIAL_NAME).is_file():
        return _read_secret(str(Path(cred_dir) / CREDENTIAL_NAME), f"credential {CREDENTIAL_NAME}")
    if values["mqtt_password_file"]:
        return _read_secret(values["mqtt_password_file"], "mqtt_password_file")
    password: str | None = values["mqtt_password"]
    return password


def validate(s: Settings) -> None:
    """Each set value against its own field's check, then the rules between settings."""
    for f in SETTINGS_FIELDS:
        value, check = getattr(s, f.name), f.metadata["check"]
        if value is not None and check is not None and (problem := check(value)):
            raise ConfigError(f"{f.name}: {problem}")
    if s.mqtt_password and not s.mqtt_username:
        raise ConfigError("mqtt_username: a password is set but no user name")
    for name in ("mqtt_ca_file", "mqtt_cert_file", "mqtt_key_file"):
        if getattr(s, name) and not s.mqtt_tls:
            raise ConfigError(f"{name}: set, but mqtt_tls is off; add --mqtt-tls")
    if s.mqtt_key_file and not s.mqtt_cert_file:
        raise ConfigError("mqtt_key_file: set without mqtt_cert_file")
    if s.victron == "serialbattery" and not s.capacity_ah:
        raise ConfigError(
            "capacity_ah: --victron serialbattery needs the battery's capacity in Ah "
            "(--capacity-ah, CHARGERY_CAPACITY_AH or CAPACITY_AH in chargery.py)"
        )
    if s.demo_fault:
        _check_demo_fault(s)


def _check_demo_fault(s: Settings) -> None:
    if not s.demo:
        raise ConfigError("demo_fault: set, but demo is off; add --demo")
    from .simulator import parse_fault  # only when a fault is asked for: --demo starts fast

    try:
        parse_fault(s.demo_fault or "", s.cells or s.demo_model)
    except ValueError as exc:
        raise ConfigError(f"demo_fault: {exc}") from None
