"""Settings: constants < environment < flags, the password's sources, validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from chargerybms.config import ConfigError, broker, load, printing


def test_flag_beats_environment_beats_constant() -> None:
    constants = {"MQTT_HOST": "from-constant", "MQTT_PORT": 1884, "CELLS": 8}
    env = {"CHARGERY_MQTT_HOST": "from-env", "CHARGERY_CELLS": "12"}
    s = load({"mqtt_host": "from-flag"}, constants, env)
    assert (s.mqtt_host, s.mqtt_port, s.cells) == ("from-flag", 1884, 12)
    assert load({}, constants, env).mqtt_host == "from-env"
    assert load({}, constants, {}).mqtt_host == "from-constant"
    assert load({}, {}, {}).mqtt_host is None  # unset...
    assert broker(load({}, {}, {})) == ("127.0.0.1", 1883)  # ... is the default broker


@pytest.mark.parametrize(("text", "value"), [("yes", True), ("On", True), ("1", True), ("false", False), ("0", False)])
def test_yes_no_values(text: str, value: bool) -> None:
    assert load({}, {}, {"CHARGERY_PUBLISH_CELLS": text}).publish_cells is value


def test_password_sources_in_order(tmp_path: Path) -> None:
    flag_file = tmp_path / "flag"
    flag_file.write_text("from-flag-file\n")
    env_file = tmp_path / "env"
    env_file.write_text("from-env-file")
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt_password").write_text("from-credential\n")
    base = {"MQTT_USERNAME": "u", "MQTT_PASSWORD": "from-constant"}
    env = {"CHARGERY_MQTT_PASSWORD": "from-env", "CREDENTIALS_DIRECTORY": str(creds)}
    assert load({"mqtt_password_file": str(flag_file)}, base, env).mqtt_password == "from-flag-file"
    assert load({}, base, env).mqtt_password == "from-env"
    assert load({}, base, {"CHARGERY_MQTT_PASSWORD_FILE": str(env_file)}).mqtt_password == "from-env-file"
    assert load({}, base, {"CREDENTIALS_DIRECTORY": str(creds)}).mqtt_password == "from-credential"
    assert load({}, base, {}).mqtt_password == "from-constant"
    (creds / "mqtt_password").write_text("")  # the unit's empty default: no password
    assert load({}, {"MQTT_USERNAME": "u"}, {"CREDENTIALS_DIRECTORY": str(creds)}).mqtt_password is None


def test_the_password_is_never_logged() -> None:
    s = load({}, {"MQTT_USERNAME": "u"}, {"CHARGERY_MQTT_PASSWORD": "hunter2"})
    assert "hunter2" not in repr(s.loggable()) and s.loggable()["mqtt_password"] == "(set)"


def test_demo_prints_unless_a_broker_is_named() -> None:
    assert printing(load({"demo": True}, {}, {})) == "summary"
    assert printing(load({"demo": True, "dry_run": True}, {}, {})) == "print"
    assert printing(load({"demo": True, "debug": True}, {}, {})) == "print"
    assert printing(load({"demo": True, "mqtt_host": "broker.lan"}, {}, {})) == "broker"
    assert printing(load({"demo": True, "mqtt_host": "127.0.0.1"}, {}, {})) == "broker"  # named, even as the default
    assert printing(load({"demo": True}, {}, {"CHARGERY_MQTT_PORT": "1884"})) == "broker"
    assert printing(load({}, {}, {})) == "broker"
    assert printing(load({"dry_run": True}, {}, {})) == "print"


def test_unset_is_none_and_zero_or_empty_mean_unset_where_they_always_did() -> None:
    s = load({}, {}, {})
    assert (s.cells, s.capacity_ah, s.victron, s.mqtt_username, s.mqtt_password, s.log_file) == (None,) * 6
    assert load({}, {"CELLS": 0, "CAPACITY_AH": 0.0, "VICTRON": ""}, {}).cells is None
    assert load({}, {}, {"CHARGERY_CELLS": "0", "CHARGERY_DEVICE_ID": ""}).device_id is None
    assert load({}, {}, {"CHARGERY_CELLS": "12"}).cells == 12
    with pytest.raises(ConfigError, match=r"^cells: 25 is not a cell count"):
        load({"cells": 25}, {}, {})


def test_each_check_stands_next_to_its_field() -> None:
    """Every setting with a rule of its own carries it (validate() only adds the rules
    between settings), so a new setting's check cannot be forgotten far away."""
    from chargerybms.config import SETTINGS_FIELDS

    checked = {f.name for f in SETTINGS_FIELDS if f.metadata["check"] is not None}
    assert {"port", "baud", "mqtt_port", "topic_prefix", "cells", "stale_after", "victron", "log_file"} <= checked


def test_demo_fault_is_checked_against_the_simulated_pack() -> None:
    assert load({"demo": True, "demo_fault": "low-capacity:7"}, {}, {}).demo_fault == "low-capacity:7"
    assert load({"demo": True, "demo_fault": "temperature"}, {}, {}).demo_fault == "temperature"
    assert load({"demo": True, "demo_model": 24, "demo_fault": "high-resistance:24"}, {}, {})
    with pytest.raises(ConfigError, match="1-8 for 8 cells"):
        load({"demo": True, "cells": 8, "demo_fault": "high-resistance:9"}, {}, {})


def test_device_id_defaults_from_the_prefix() -> None:
    assert load({"topic_prefix": "bms/house"}, {}, {}).resolved_device_id == "bms_house"
    assert load({"topic_prefix": "bms/house", "device_id": "shed"}, {}, {}).resolved_device_id == "shed"
    assert load({}, {}, {}).client_id == "chargery-chargerybms"


@pytest.mark.parametrize(
    ("values", "setting"),
    [
        ({"mqtt_password": "x"}, "mqtt_username"),
        ({"mqtt_ca_file": "/etc/hostname"}, "mqtt_ca_file"),  # without --mqtt-tls
        ({"mqtt_tls": True, "mqtt_key_file": "/etc/hostname"}, "mqtt_key_file"),
        ({"device_id": "a b"}, "device_id"),
        ({"ha_prefix": "home/"}, "ha_prefix"),
        ({"heartbeat": 0.5}, "heartbeat"),
        ({"ha_max_age": -1}, "ha_max_age"),
        ({"demo_model": 12}, "demo_model"),
        ({"demo": True, "demo_fault": "low-capacity"}, "demo_fault"),  # which cell?
        ({"demo": True, "demo_fault": "low-capacity:17"}, "demo_fault"),  # a BMS16T has 16
        ({"demo": True, "demo_fault": "balance-lead:16"}, "demo_fault"),  # no cell 17 above it
        ({"demo": True, "demo_fault": "melting:3"}, "demo_fault"),
        ({"demo_fault": "low-capacity:3"}, "demo_fault"),  # without --demo
        ({"port": " "}, "port"),
    ],
)
def test_bad_values_name_the_setting(values: dict[str, object], setting: str) -> None:
    flags = {k: v for k, v in values.items() if k != "mqtt_password"}
    constants = {"MQTT_PASSWORD": values["mqtt_password"]} if "mqtt_password" in values else {}
    with pytest.raises(ConfigError, match=f"^{setting}:"):
        load(flags, constants, {})


def test_the_settings_block_shows_the_real_defaults_and_only_settings() -> None:
    """chargery.py's block shows each default as a commented line; config.py decides them."""
    import ast

    from helpers import CHARGERY

    from chargerybms.config import SETTINGS_FIELDS

    defaults = {f.name.upper(): f.default for f in SETTINGS_FIELDS}  # None: unset
    shown = {}
    for line in CHARGERY.read_text().splitlines():
        if line.startswith("# ") and " = " in line and line[2:3].isupper():
            name, value = line[2:].split(" = ", 1)
            shown[name] = ast.literal_eval(value.split("  #")[0])
    assert len(shown) >= 15
    for name, value in shown.items():
        assert name in defaults, name
        assert value == defaults[name] and type(value) is type(defaults[name]), name


def test_a_misspelt_constant_is_an_error_naming_the_closest_setting() -> None:
    with pytest.raises(ConfigError, match=r"^MQTT_HOSTT: not a setting .*did you mean MQTT_HOST\?"):
        load({}, {"MQTT_HOSTT": "broker.lan"}, {})
    with pytest.raises(ConfigError, match=r"^FOO_BAR: not a setting"):
        load({}, {"FOO_BAR": 1}, {})
    script_globals = {"MQTT_HOST": "broker.lan", "__name__": "x", "os": None, "main": None}
    assert load({}, script_globals, {}).mqtt_host == "broker.lan"


def test_the_password_is_in_no_repr_log_or_error(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from chargerybms.logs import LOG

    s = load({}, {"MQTT_USERNAME": "u"}, {"CHARGERY_MQTT_PASSWORD": "hunter2-secret"})
    assert s.mqtt_password == "hunter2-secret"
    assert "hunter2-secret" not in repr(s) and "hunter2-secret" not in str(s)
    with caplog.at_level(logging.DEBUG):
        LOG.debug("settings: %s", s.loggable())
        LOG.info("settings: %r", s)
    assert "hunter2-secret" not in caplog.text
    with pytest.raises(ConfigError) as error:
        load({"mqtt_port": 99999}, {"MQTT_USERNAME": "u"}, {"CHARGERY_MQTT_PASSWORD": "hunter2-secret"})
    assert "hunter2-secret" not in str(error.value)


# --- an unknown CHARGERY_* name in the environment ------------------------------------------


TYPOS = {"CHARGERY_MQTT_HOSTT": "CHARGERY_MQTT_HOST", "CHARGERY_CELS": "CHARGERY_CELLS"}  # as a user makes them


@pytest.mark.parametrize(("name", "closest"), TYPOS.items())
def test_a_misspelt_environment_name_is_an_error_naming_the_closest_setting(name: str, closest: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{name}: not a setting \(in the environment.*did you mean {closest}\?$"):
        load({}, {}, {name: "8"})


def test_every_setting_is_known_in_the_environment_and_other_names_are_not_settings() -> None:
    """The known names come from the settings' fields, so a new setting is known at once;
    the few CHARGERY_* names other parts of the repository read are allowed beside them."""
    from chargerybms.config import NOT_SETTINGS, SETTINGS_FIELDS

    def text(default: object) -> str:  # each at its default, as an environment file writes it
        return "" if default is None else str(default).lower() if isinstance(default, bool) else str(default)

    every = {f"CHARGERY_{f.name.upper()}": text(f.default) for f in SETTINGS_FIELDS}
    assert load({}, {}, every) == load({}, {}, {})  # no name is refused
    load({}, {}, dict.fromkeys(NOT_SETTINGS, "x"))
    assert not {f"CHARGERY_{f.name.upper()}" for f in SETTINGS_FIELDS} & NOT_SETTINGS


def test_every_chargery_name_in_the_repository_is_a_setting_or_allowed() -> None:
    """A CHARGERY_* variable read anywhere in the repository (a flow, a test, CI, the app)
    would stop the daemon if it shared its environment: each must be a setting or listed."""
    import re
    import subprocess

    from conftest import TEST_SETTINGS
    from helpers import ROOT

    from chargerybms.config import NOT_SETTINGS, SETTINGS_FIELDS

    files = (
        subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    )
    found: dict[str, str] = {}
    for name in filter(None, files):
        path = ROOT / name
        if not path.is_file() or path.suffix in (".png", ".bin", ".jpg"):
            continue
        for word in re.findall(r"\bCHARGERY_[A-Z0-9_]*[A-Z0-9]\b", path.read_text(errors="replace")):
            found.setdefault(word, name)
    settings = {f"CHARGERY_{f.name.upper()}" for f in SETTINGS_FIELDS}
    here_documents = {"CHARGERY_EOF"}  # a shell here-document's end marker, no variable
    allowed = settings | NOT_SETTINGS | here_documents | set(TYPOS)
    unknown = {word: where for word, where in found.items() if word not in allowed}
    assert not unknown, f"CHARGERY_* names that are neither settings nor in config.NOT_SETTINGS: {unknown}"
    assert set(TEST_SETTINGS) <= NOT_SETTINGS


def test_a_misspelt_environment_name_stops_the_daemon_in_one_line(tmp_path: Path) -> None:
    import os
    import subprocess

    from helpers import chargery_cmd

    env = {k: v for k, v in os.environ.items() if not k.startswith("CHARGERY_")} | {"CHARGERY_CELS": "8"}
    result = subprocess.run(chargery_cmd("--demo"), env=env, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (
        "chargery.py: configuration error: CHARGERY_CELS: not a setting "
        "(in the environment, e.g. /etc/chargery/chargery.env); did you mean CHARGERY_CELLS?\n"
    )


# --- the demo is a device of its own on a broker; nothing of it is saved ----------------------


def test_a_demo_sent_to_a_broker_is_its_own_device_unless_named() -> None:
    from chargerybms.config import DEMO_DEVICE_NAME, DEMO_TOPIC_PREFIX

    sent = load({"demo": True, "mqtt_host": "broker.lan"}, {}, {})
    assert (sent.topic_prefix, sent.device_name) == (DEMO_TOPIC_PREFIX, DEMO_DEVICE_NAME)
    assert sent.resolved_device_id == "chargerybms-demo" != load({}, {}, {}).resolved_device_id
    named = load({"demo": True, "mqtt_host": "b", "topic_prefix": "garage"}, {}, {"CHARGERY_DEVICE_NAME": "Shed"})
    assert (named.topic_prefix, named.device_name) == ("garage", "Shed")
    assert load({"demo": True, "mqtt_host": "b"}, {"TOPIC_PREFIX": "chargerybms"}, {}).topic_prefix == "chargerybms"
    # Printed, nothing reaches a broker: the demo shows the real names, as the README's first command.
    assert load({"demo": True}, {}, {}).topic_prefix == "chargerybms"
    # Without --demo nothing changes.
    assert load({"mqtt_host": "b"}, {}, {}).topic_prefix == "chargerybms"


def test_with_demo_nothing_is_saved_unless_a_state_dir_is_named(tmp_path: Path) -> None:
    """One rule (config.saved_in) that the energy meters and the health evidence both follow."""
    from chargerybms.config import saved_in
    from chargerybms.registry import build_views
    from chargerybms.views.energy import meter_path

    def stores(settings: object) -> list[object]:  # the health view's evidence file, wherever it lives
        return [v.store.path for v in build_views(settings) if hasattr(v, "store")]  # type: ignore[arg-type]

    demo = load({"demo": True}, {}, {})
    assert saved_in(demo) is None and meter_path(demo) is None
    assert stores(demo) == [None]
    named = load({"demo": True, "state_dir": str(tmp_path)}, {}, {})
    assert saved_in(named) == tmp_path and meter_path(named) == tmp_path / "energy-chargerybms.json"
    assert stores(named) == [tmp_path / "health-chargerybms.json"]
    real = load({}, {}, {})
    assert saved_in(real) is not None and meter_path(real) is not None and None not in stores(real)
