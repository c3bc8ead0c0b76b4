"""Settings: constants < environment < flags, the password's sources, validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from chargerybms.config import ConfigError, load


def test_flag_beats_environment_beats_constant() -> None:
    constants = {"MQTT_HOST": "from-constant", "MQTT_PORT": 1884, "CELLS": 8}
    env = {"CHARGERY_MQTT_HOST": "from-env", "CHARGERY_CELLS": "12"}
    s = load({"mqtt_host": "from-flag"}, constants, env)
    assert (s.mqtt_host, s.mqtt_port, s.cells) == ("from-flag", 1884, 12)
    assert load({}, constants, env).mqtt_host == "from-env"
    assert load({}, constants, {}).mqtt_host == "from-constant"
    assert load({}, {}, {}).mqtt_host == "127.0.0.1"


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
    assert load({}, {"MQTT_USERNAME": "u"}, {"CREDENTIALS_DIRECTORY": str(creds)}).mqtt_password == ""


def test_the_password_is_never_described() -> None:
    s = load({}, {"MQTT_USERNAME": "u"}, {"CHARGERY_MQTT_PASSWORD": "hunter2"})
    assert "hunter2" not in repr(s.describe()) and s.describe()["mqtt_password"] == "(set)"


def test_demo_prints_unless_a_broker_is_named() -> None:
    assert load({"demo": True}, {}, {}).dry_run is True
    assert load({"demo": True, "mqtt_host": "broker.lan"}, {}, {}).dry_run is False
    assert load({"demo": True}, {}, {"CHARGERY_MQTT_PORT": "1884"}).dry_run is False


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

    defaults = {f.name.upper(): f.default for f in SETTINGS_FIELDS}
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
        LOG.debug("settings: %s", s.describe())
        LOG.info("settings: %r", s)
    assert "hunter2-secret" not in caplog.text
    with pytest.raises(ConfigError) as error:
        load({"mqtt_port": 99999}, {"MQTT_USERNAME": "u"}, {"CHARGERY_MQTT_PASSWORD": "hunter2-secret"})
    assert "hunter2-secret" not in str(error.value)
