"""The Home Assistant app and the container's program (``chargery app``).

The app's files are held to the Supervisor's own rules, written down here from its source
(home-assistant/supervisor at 80f790bf, the last commit on Python 3.13; the file each rule
comes from is named beside it), and from the developer documentation
(home-assistant/developers.home-assistant, docs/apps/configuration.md, repository.md).
The program is run for real: options.json, a stand-in for the Supervisor's
``services/mqtt`` endpoint, a real mosquitto with a password, a pseudo-terminal BMS.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import ROOT, free_port
from supervisor_stand_in import Supervisor, mosquitto_service

import chargerybms
from chargerybms.commands import app
from chargerybms.config import SETTINGS_FIELDS, ConfigError, load

# --- the Supervisor's rules ------------------------------------------------------------------

# supervisor/const.py: FILE_SUFFIX_CONFIGURATION
CONFIG_SUFFIXES = (".yaml", ".yml", ".json")
# supervisor/const.py: ARCH_ALL (what base images exist for) and ARCH_DEPRECATED (accepted
# with a warning to "report this to the maintainer", supervisor/addons/validate.py).
ARCH_ALL = {"aarch64", "amd64"}
# supervisor/addons/const.py: RE_SLUG
RE_SLUG = re.compile(r"^[-_.A-Za-z0-9]+$")
# supervisor/addons/validate.py: RE_SERVICE
RE_SERVICE = re.compile(r"^(?P<service>mqtt|mysql):(?P<rights>provide|want|need)$")
# supervisor/addons/options.py: RE_SCHEMA_ELEMENT (the option types)
RE_SCHEMA_ELEMENT = re.compile(
    r"^(?:"
    r"|bool"
    r"|email"
    r"|url"
    r"|port"
    r"|device(?:\((?P<filter>subsystem=[a-z]+)\))?"
    r"|str(?:\((?P<s_min>\d+)?,(?P<s_max>\d+)?\))?"
    r"|password(?:\((?P<p_min>\d+)?,(?P<p_max>\d+)?\))?"
    r"|int(?:\((?P<i_min>\d+)?,(?P<i_max>\d+)?\))?"
    r"|float(?:\((?P<f_min>[\d\.]+)?,(?P<f_max>[\d\.]+)?\))?"
    r"|match\((?P<match>.*)\)"
    r"|list\((?P<list>.+)\)"
    r")\??$"
)
# supervisor/addons/validate.py: _SCHEMA_ADDON_CONFIG's keys (extra=vol.REMOVE_EXTRA: any
# other key is dropped without a word, so a misspelt one would silently do nothing).
ADDON_CONFIG_KEYS = {
    "name", "version", "slug", "description", "arch", "machine", "url", "startup", "boot", "init", "advanced",
    "stage", "ports", "ports_description", "watchdog", "webui", "ingress", "ingress_port", "ingress_entry",
    "ingress_stream", "panel_icon", "panel_title", "panel_admin", "homeassistant", "host_network", "host_pid",
    "host_ipc", "host_uts", "host_dbus", "devices", "udev", "tmpfs", "map", "environment", "privileged",
    "apparmor", "full_access", "audio", "video", "gpio", "usb", "uart", "devicetree", "kernel_modules",
    "realtime", "hassio_api", "hassio_role", "homeassistant_api", "stdin", "legacy", "docker_api", "auth_api",
    "services", "discovery", "backup_exclude", "backup_pre", "backup_post", "backup", "options", "schema",
    "image", "ulimits", "timeout", "journald", "breaking_versions",
}  # fmt: skip
BOOLEAN_KEYS = {"init", "uart", "ingress", "host_network", "hassio_api", "homeassistant_api", "udev", "usb", "gpio"}
STARTUP = {"initialize", "system", "services", "application", "once"}  # supervisor/const.py: AddonStartup
BOOT = {"auto", "manual", "manual_only"}  # supervisor/const.py: AddonBootConfig
# supervisor/addons/validate.py: RE_DOCKER_IMAGE_BUILD (build.yaml's build_from)
RE_DOCKER_IMAGE_BUILD = re.compile(r"^([a-zA-Z\-\.:\d{}]+/)*?([\-\w{}]+)/([\-\w{}]+)(:[\.\-\w{}]+)?$")


def read_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    data: dict[str, Any] = read_yaml(ROOT / "config.yaml")
    return data


def repository_files() -> list[str]:
    """What a clone of the repository holds (and what is about to be committed)."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:  # not a git checkout (a source archive): every file but dot-folders
        return [
            str(p.relative_to(ROOT))
            for p in ROOT.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(ROOT).parts)
        ]
    return out.stdout.splitlines()


def test_exactly_one_app_config_in_the_repository() -> None:
    # supervisor/store/data.py, _find_addon_configs: every path.glob("**/config.*") with a
    # suffix in FILE_SUFFIX_CONFIGURATION and no path part starting with "." or equal to
    # "rootfs" is read as an app.
    found = [
        name
        for name in repository_files()
        if Path(name).stem == "config"
        and Path(name).suffix in CONFIG_SUFFIXES
        and not any(part.startswith(".") or part == "rootfs" for part in Path(name).parts)
    ]
    assert found == ["config.yaml"]


def test_the_app_config_follows_the_supervisors_schema(config: dict[str, Any]) -> None:
    assert set(config) <= ADDON_CONFIG_KEYS, set(config) - ADDON_CONFIG_KEYS
    # supervisor/addons/validate.py: the required keys and their types
    assert isinstance(config["name"], str) and config["name"] == "Chargery BMS"
    assert isinstance(config["description"], str) and config["description"]
    assert RE_SLUG.match(config["slug"])
    assert isinstance(config["version"], str)  # a string, so that 0.10 stays 0.10
    assert config["arch"] and set(config["arch"]) <= ARCH_ALL  # no deprecated arch: no warning
    assert config.get("startup", "application") in STARTUP and config.get("boot", "auto") in BOOT
    for key in BOOLEAN_KEYS & set(config):
        assert isinstance(config[key], bool), key
    assert all(RE_SERVICE.match(s) for s in config["services"])
    assert isinstance(config["options"], dict) and isinstance(config["schema"], dict)
    for key, kind in config["schema"].items():
        assert isinstance(kind, str) and RE_SCHEMA_ELEMENT.match(kind), (key, kind)


def test_the_app_is_what_the_issue_asks(config: dict[str, Any]) -> None:
    assert config["version"] == chargerybms.__version__
    assert config["uart"] is True  # the host's serial adapters, to pick from
    assert config["init"] is False  # the daemon is PID 1 (the Dockerfile's ENTRYPOINT)
    assert config["services"] == ["mqtt:want"]
    assert config["schema"]["port"] == "device(subsystem=tty)"
    assert config["schema"]["mqtt_password"].startswith("password")
    assert not {"ports", "host_network", "full_access", "privileged", "hassio_api"} & set(config)  # nothing more


def _valid(kind: str, value: Any) -> bool:
    """A default value against its type, as supervisor/addons/options.py AddonOptions._single_validate
    checks it (device options are checked against the host's hardware: no default may name one)."""
    match = RE_SCHEMA_ELEMENT.match(kind)
    assert match is not None
    if kind.startswith(("str", "password")):
        return isinstance(value, str)
    if kind.startswith("int"):
        low, high = match.group("i_min"), match.group("i_max")
        return (
            isinstance(value, int)
            and not isinstance(value, bool)
            and (low is None or value >= int(low))
            and (high is None or value <= int(high))
        )
    if kind.startswith("float"):
        low, high = match.group("f_min"), match.group("f_max")
        return (
            isinstance(value, int | float)
            and (low is None or value >= float(low))
            and (high is None or value <= float(high))
        )
    if kind.startswith("bool"):
        return isinstance(value, bool)
    if kind.startswith("port"):
        return isinstance(value, int) and 1 <= value <= 65535
    if kind.startswith("list"):
        return str(value) in match.group("list").split("|")
    return False


def test_the_options_match_the_schema(config: dict[str, Any]) -> None:
    options, schema = config["options"], config["schema"]
    # supervisor/addons/options.py, AddonOptions.__call__: an option not in the schema is dropped
    # with a warning; _check_missing_options: a schema entry not ending in "?" must have a value.
    assert set(options) <= set(schema)
    for key, kind in schema.items():
        if kind.endswith("?"):
            # docs/apps/configuration.md: an optional option has no default (a default makes it required)
            assert key not in options, key
        elif key in options and options[key] is not None:
            assert _valid(kind.rstrip("?"), options[key]), (key, kind, options[key])
        else:
            # null: the user must choose (the port, from the host's serial adapters)
            assert key in options and kind.startswith("device"), key


def test_options_schema_and_table_are_one(config: dict[str, Any]) -> None:
    assert {key: option.schema for key, option in app.OPTIONS.items()} == config["schema"]
    assert {key: option.default for key, option in app.OPTIONS.items() if not option.schema.endswith("?")} == config[
        "options"
    ]
    settings = {f.name for f in SETTINGS_FIELDS}
    for key, option in app.OPTIONS.items():
        # Options keep their setting's name, so a setting's error names the option typed.
        assert option.setting in (key, None) and (option.setting is None or option.setting in settings)


def test_translations_name_every_option(config: dict[str, Any]) -> None:
    # supervisor/addons/validate.py: SCHEMA_ADDON_TRANSLATIONS, SCHEMA_TRANSLATION_CONFIGURATION;
    # supervisor/store/data.py: _read_addon_translations reads translations/*.{yaml,yml,json}.
    translations = read_yaml(ROOT / "translations" / "en.yaml")
    assert set(translations) <= {"configuration", "network"}
    assert set(translations["configuration"]) == set(config["schema"])
    for key, entry in translations["configuration"].items():
        assert isinstance(entry["name"], str) and entry["name"], key
        assert isinstance(entry.get("description"), str) and entry["description"], key


def test_repository_and_build_files() -> None:
    # supervisor/store/validate.py: SCHEMA_REPOSITORY_CONFIG (name required; url, maintainer)
    repository = read_yaml(ROOT / "repository.yaml")
    assert isinstance(repository["name"], str) and set(repository) <= {"name", "url", "maintainer"}
    # supervisor/addons/validate.py: SCHEMA_BUILD_CONFIG; supervisor/addons/build.py: without
    # build_from the Supervisor passes BUILD_FROM=ghcr.io/home-assistant/{arch}-base:latest,
    # which has no Python: build.yaml names the Python base image for each arch.
    build = read_yaml(ROOT / "build.yaml")
    assert set(build) <= {"build_from", "squash", "args", "labels"}
    assert set(build["build_from"]) == set(read_yaml(ROOT / "config.yaml")["arch"])
    for arch, image in build["build_from"].items():
        assert RE_DOCKER_IMAGE_BUILD.match(image) and f"{arch}-base-python:" in image, image
    assert (ROOT / "icon.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "## " in (ROOT / "DOCS.md").read_text(encoding="utf-8")


def test_dockerfile_builds_from_build_from_and_runs_the_daemon_as_pid_1() -> None:
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    # A default usable by `docker build -t chargery .`; the Supervisor passes its own.
    assert any(re.fullmatch(r"ARG BUILD_FROM=\S+", line) for line in lines)
    assert "FROM $BUILD_FROM" in lines
    # Exec form, no shell or init in between: SIGTERM reaches the daemon (config.yaml init: false).
    entry = next(line for line in lines if line.startswith("ENTRYPOINT"))
    assert json.loads(entry.removeprefix("ENTRYPOINT")) == ["chargery", "app"]
    assert not any(line.startswith("CMD") for line in lines)
    # The build context is the repository: .dockerignore lets in only what pip needs.
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignore[ignore.index("*") :][:4] == ["*", "!pyproject.toml", "!README.md", "!chargerybms/"]


# --- the options-to-settings table ------------------------------------------------------------


def test_each_option_sets_its_setting() -> None:
    options = {
        "port": "/dev/serial/by-id/usb-FTDI-if00-port0",
        "cells": 16,
        "capacity_ah": 280.0,
        "topic_prefix": "house/bms",
        "device_name": "House battery",
        "victron": "serialbattery",
        "mqtt_host": "broker.lan",
        "mqtt_port": 1884,
        "mqtt_username": "chargery",
        "mqtt_password": "s3cret",
        "log_level": "warning",
    }
    values, level = app.settings_from_options(options)
    s = load({}, environ={}, options=values)
    assert (s.port, s.cells, s.capacity_ah, s.topic_prefix, s.device_name, s.victron) == (
        "/dev/serial/by-id/usb-FTDI-if00-port0", 16, 280.0, "house/bms", "House battery", "serialbattery"
    )  # fmt: skip
    assert (s.mqtt_host, s.mqtt_port, s.mqtt_username, s.mqtt_password) == ("broker.lan", 1884, "chargery", "s3cret")
    assert level == "warning"
    assert set(values) == {o.setting for o in app.OPTIONS.values() if o.setting}


def test_the_defaults_leave_the_settings_at_theirs(config: dict[str, Any]) -> None:
    values, level = app.settings_from_options({**config["options"], "port": "/dev/ttyUSB0"})
    s = load({}, environ={}, options=values)
    assert (s.cells, s.capacity_ah, s.victron, s.mqtt_host) == (None, None, None, None)  # 0, 0, "off": unset
    assert (s.topic_prefix, s.device_name, level) == ("chargerybms", "Chargery BMS", "info")


def test_an_unknown_option_names_the_closest() -> None:
    with pytest.raises(ConfigError, match="cels: not an option of the app; did you mean cells"):
        app.settings_from_options({"cels": 8})


def test_a_numeric_password_is_text_and_never_in_an_error() -> None:
    values, _ = app.settings_from_options({"mqtt_password": 123456})
    assert values["mqtt_password"] == "123456"
    with pytest.raises(ConfigError) as caught:
        load({}, environ={}, options=values)  # a password but no user name
    assert "123456" not in str(caught.value)


def test_the_environment_and_flags_still_win_over_options() -> None:
    # The same image for Docker users: CHARGERY_* variables and flags configure it too.
    values, _ = app.settings_from_options({"cells": 8, "topic_prefix": "from-options"})
    s = load({"cells": 12}, environ={"CHARGERY_TOPIC_PREFIX": "from-env"}, options=values)
    assert (s.cells, s.topic_prefix) == (12, "from-env")


# --- the Supervisor's MQTT service -------------------------------------------------------------


@pytest.fixture
def supervisor() -> Iterator[Supervisor]:
    s = Supervisor(None)
    yield s
    s.close()


def test_the_broker_is_asked_from_the_supervisor_with_the_token(supervisor: Supervisor) -> None:
    supervisor.service = mosquitto_service(1883)
    service = app.supervisor_mqtt(Supervisor.TOKEN, supervisor.url)
    assert supervisor.requests == [("/services/mqtt", "Bearer app-token")]
    assert app.broker_values(service) == {
        "mqtt_host": "127.0.0.1", "mqtt_port": 1883, "mqtt_username": "addons", "mqtt_password": "pw", "mqtt_tls": False
    }  # fmt: skip


def test_no_broker_app_says_what_to_do(supervisor: Supervisor) -> None:
    with pytest.raises(app.NoBroker, match=r"Service not enabled.*install and start the Mosquitto broker app"):
        app.supervisor_mqtt(Supervisor.TOKEN, supervisor.url)


def test_an_unreachable_supervisor_is_said() -> None:
    with pytest.raises(app.NoBroker, match="could not be asked"):
        app.supervisor_mqtt("t", f"http://127.0.0.1:{free_port()}", timeout=5)


def write_options(data: Path, **options: Any) -> None:
    (data / "options.json").write_text(json.dumps({"port": "/dev/ttyUSB0", **options}))


def test_the_mosquitto_apps_broker_and_login_are_used_when_no_host_is_given(
    tmp_path: Path, supervisor: Supervisor
) -> None:
    supervisor.service = mosquitto_service(1883, "from-the-supervisor")
    write_options(tmp_path, cells=16)
    got = app.app_settings(["--data", str(tmp_path), "--supervisor", supervisor.url], {"SUPERVISOR_TOKEN": "app-token"})
    s = got.settings
    assert (s.mqtt_host, s.mqtt_port, s.mqtt_username, s.mqtt_password) == (
        "127.0.0.1",
        1883,
        "addons",
        "from-the-supervisor",
    )
    assert (s.state_dir, s.cells) == (str(tmp_path), 16)  # the meters and the evidence in /data
    assert got.broker == "(from the Supervisor, provided by core_mosquitto)"


def test_an_own_login_on_the_mosquitto_app_keeps_its_own_password(tmp_path: Path, supervisor: Supervisor) -> None:
    supervisor.service = mosquitto_service(1883, "from-the-supervisor")
    write_options(tmp_path, mqtt_username="me", mqtt_password="mine")
    s = app.app_settings(["--data", str(tmp_path), "--supervisor", supervisor.url], {"SUPERVISOR_TOKEN": "app-token"})
    assert (s.settings.mqtt_host, s.settings.mqtt_username, s.settings.mqtt_password) == ("127.0.0.1", "me", "mine")
    write_options(tmp_path, mqtt_username="me")  # no password of its own: none, not the Supervisor's
    s = app.app_settings(["--data", str(tmp_path), "--supervisor", supervisor.url], {"SUPERVISOR_TOKEN": "app-token"})
    assert (s.settings.mqtt_username, s.settings.mqtt_password) == ("me", None)


def test_a_named_broker_is_used_without_asking_the_supervisor(tmp_path: Path, supervisor: Supervisor) -> None:
    write_options(tmp_path, mqtt_host="broker.lan", mqtt_port=1884, mqtt_username="u", mqtt_password="p")
    s = app.app_settings(["--data", str(tmp_path), "--supervisor", supervisor.url], {"SUPERVISOR_TOKEN": "app-token"})
    assert (s.settings.mqtt_host, s.settings.mqtt_port, s.settings.mqtt_password) == ("broker.lan", 1884, "p")
    assert supervisor.requests == []


def test_without_options_the_environment_configures_it(tmp_path: Path) -> None:
    # A Docker run: no options.json, no Supervisor; CHARGERY_* variables and flags.
    environ = {"CHARGERY_MQTT_HOST": "broker.lan", "CHARGERY_CELLS": "8"}
    s = app.app_settings(["--data", str(tmp_path), "--publish-cells"], environ).settings
    assert (s.mqtt_host, s.cells, s.publish_cells, s.state_dir) == ("broker.lan", 8, True, str(tmp_path))


def run_app_process(data: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "chargery.py"), "app", "--data", str(data), *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
        check=False,
    )


def test_no_broker_anywhere_is_one_line(tmp_path: Path, supervisor: Supervisor) -> None:
    (tmp_path / "options.json").write_text(json.dumps({"port": "/dev/ttyUSB0", "log_level": "info"}))
    done = run_app_process(tmp_path, "--supervisor", supervisor.url, env={"SUPERVISOR_TOKEN": Supervisor.TOKEN})
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "no MQTT broker" in done.stderr and "Mosquitto broker app" in done.stderr
    not_an_app = run_app_process(tmp_path)  # no SUPERVISOR_TOKEN: a Docker run without a broker named
    assert not_an_app.returncode == 2 and not_an_app.stderr.count("\n") == 1
    assert "no MQTT broker: none is named" in not_an_app.stderr


def test_a_wrong_option_is_one_line(tmp_path: Path) -> None:
    options = {"port": "/dev/ttyUSB0", "topic_prefix": "bms/#", "mqtt_host": "b"}
    (tmp_path / "options.json").write_text(json.dumps(options))
    done = run_app_process(tmp_path)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert done.stderr.startswith("chargery app: configuration error: topic_prefix: 'bms/#' is not a usable MQTT topic")


# --- the program end to end (the container test runs the same in the built image) ----------------


def frames() -> list[bytes]:
    from helpers import load_vectors

    vec = {v["id"]: bytes.fromhex(v["hex"]) for v in load_vectors("frames.json")}
    return [vec["A4"], vec["A1"], vec["A5"]]


@pytest.mark.broker
def test_the_app_finds_the_mosquitto_app_and_publishes(tmp_path: Path, supervisor: Supervisor) -> None:
    import signal

    from harness import Broker, DaemonProcess, FakeBms, Subscriber

    password = "Pa55-from-the-supervisor"
    broker = Broker(tmp_path / "broker", users={"addons": password, "test": "test"}).start()
    bms = FakeBms(tmp_path / "ttyUSB0").plug()
    bms.stream(frames(), interval=0.05)
    subscriber = Subscriber(broker, username="test", password="test")
    supervisor.service = mosquitto_service(broker.port, password)
    data = tmp_path / "data"
    data.mkdir()
    options = {"port": str(bms.path), "cells": 16, "capacity_ah": 0, "topic_prefix": "chargerybms",
               "device_name": "Garage battery", "victron": "off", "log_level": "debug"}  # fmt: skip
    (data / "options.json").write_text(json.dumps(options))
    daemon = DaemonProcess(
        tmp_path / "app",
        ["app", "--data", str(data), "--supervisor", supervisor.url],
        env={"SUPERVISOR_TOKEN": Supervisor.TOKEN, "CHARGERY_STATE_DIR": str(data)},
    )
    try:
        config = subscriber.wait("homeassistant/device/chargerybms/config", lambda p: "Garage battery" in p)
        assert json.loads(config.payload)["device"]["name"] == "Garage battery"
        state = json.loads(subscriber.wait("chargerybms/state", lambda p: json.loads(p)["cells_seen"]).payload)
        assert state["pack_voltage"] == 53.294
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(10) == 0
        subscriber.wait("chargerybms/link", lambda p: p == "offline")
        late = Subscriber(broker, ["chargerybms/link"], username="test", password="test")
        try:  # on subscribing, only a retained copy can come
            assert late.wait("chargerybms/link", timeout=5).payload == "offline"
        finally:
            late.close()
        assert (data / "energy-chargerybms.json").exists() or state["energy_charged"] == 0
        out = daemon.out_path.read_text()
        assert "MQTT broker 127.0.0.1:" in out and "from the Supervisor, provided by core_mosquitto" in out
        assert "DEBUG frame at" in out  # the option's level
        assert password not in out + daemon.log()
    finally:
        daemon.stop()
        subscriber.close()
        bms.close()
        broker.stop()


def test_the_compose_example_keeps_the_password_in_a_file() -> None:
    compose = read_yaml(ROOT / "compose.yaml")
    service = compose["services"]["chargery"]
    environment = service["environment"]
    settings = {f"CHARGERY_{f.name.upper()}" for f in SETTINGS_FIELDS}
    assert set(environment) <= settings, set(environment) - settings
    assert "CHARGERY_MQTT_PASSWORD" not in environment and "command" not in service
    assert environment["CHARGERY_MQTT_PASSWORD_FILE"] == "/run/secrets/mqtt_password"
    assert service["secrets"] == ["mqtt_password"] and "file" in compose["secrets"]["mqtt_password"]
    assert service["devices"][0].endswith(f":{environment['CHARGERY_PORT']}")
    assert any(volume.endswith(":/data") for volume in service["volumes"])  # the meters outlive the container
    assert service["build"] == "."
    # The user's password file next to it is never committed nor sent into a build.
    assert "/mqtt_password" in (ROOT / ".gitignore").read_text().splitlines()
