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
        ({"demo_model": 12}, "demo_model"),
        ({"port": " "}, "port"),
    ],
)
def test_bad_values_name_the_setting(values: dict[str, object], setting: str) -> None:
    flags = {k: v for k, v in values.items() if k != "mqtt_password"}
    constants = {"MQTT_PASSWORD": values["mqtt_password"]} if "mqtt_password" in values else {}
    with pytest.raises(ConfigError, match=f"^{setting}:"):
        load(flags, constants, {})
