"""A real Home Assistant for the tests and bench/ha_recorder.py, and a real browser on it.

Home Assistant runs from its own virtual environment (it needs Python >= 3.13.2):
``.ci/home-assistant.sh`` builds it and prints its python; the tests find it through the
environment variable CHARGERY_HA_PYTHON, else at the path that script uses. It starts in
a temporary configuration folder on a free loopback port, with the recorder on SQLite,
history, the frontend, the REST API and one YAML dashboard; its owner is created over the
REST API as in the browser's first onboarding step (a user, then a token; the other steps
are marked done beforehand), and the MQTT integration is added through the same config flow as the "Add
integration" dialog, pointing at the test's broker. The browser is Debian's chromium,
driven by Playwright, logged in by putting the tokens where the frontend keeps them
(``localStorage.hassTokens``, home-assistant/frontend src/common/auth/token_storage.ts).

Nothing here is mocked; every wait is a wait for a condition.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import IN_CI, free_port, wait_until

HA_PYTHON_ENV = "CHARGERY_HA_PYTHON"
HA_PYTHON_DEFAULT = "/var/cache/chargery-ci/ha-venv/bin/python"  # where .ci/home-assistant.sh puts it
CHROMIUM = "/usr/bin/chromium"
DASHBOARD_PATH = "chargery-test"  # the YAML dashboard's url path
BLUEPRINT = Path(__file__).resolve().parent.parent / "examples" / "ha-blueprint-cell-health.yaml"
BLUEPRINT_PREFIX = "bms/health"  # the topic prefix the blueprint's automation is set up for
BLUEPRINT_AUTOMATION = "automation.chargery_cut_offs_and_cell_health"
USER, PASSWORD = "owner", "chargery-test-password"


def missing(what: str) -> None:
    """Skip locally, fail in CI: a CI run never passes by not testing this."""
    if IN_CI:
        pytest.fail(f"CI is set but {what}")
    pytest.skip(what)


def ha_python() -> str:
    """The Home Assistant venv's python, or skip/fail saying how to get one."""
    python = os.environ.get(HA_PYTHON_ENV) or HA_PYTHON_DEFAULT
    if not os.access(python, os.X_OK):
        missing(f"Home Assistant is not installed at {python} (run .ci/home-assistant.sh, or set {HA_PYTHON_ENV})")
    check = subprocess.run(
        [python, "-c", "import homeassistant, hass_frontend"], check=False, capture_output=True, text=True
    )
    if check.returncode != 0:
        missing(f"{python} cannot import homeassistant and its frontend: {check.stderr.strip()[-300:]}")
    return python


def ha_version(python: str) -> str:
    out = subprocess.run(
        [python, "-c", "from homeassistant.const import __version__; print(__version__)"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


class HomeAssistant:
    """Home Assistant core in ``directory`` (its configuration folder), talking to the
    MQTT broker on ``broker_port``."""

    def __init__(self, directory: Path, broker_port: int, python: str | None = None) -> None:
        self.python = python or ha_python()
        self.directory = directory
        self.broker_port = broker_port
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.client_id = f"{self.url}/"
        self.log_path = directory / "home-assistant.log"
        self.database = directory / "home-assistant_v2.db"
        self.dashboard_file = directory / "dashboard.yaml"
        self.proc: subprocess.Popen[bytes] | None = None
        self.tokens: dict[str, Any] = {}

    # --- start and stop ----------------------------------------------------------------

    def write_config(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "configuration.yaml").write_text(
            f"""\
homeassistant:
  name: chargery test
  unit_system: metric
  time_zone: UTC
  country: DE
  currency: EUR
  latitude: 52.5
  longitude: 13.4
  elevation: 30
http:
  server_host: 127.0.0.1
  server_port: {self.port}
api:
frontend:
history:
recorder:
  db_url: sqlite:///{self.database}
  commit_interval: 1
lovelace:
  dashboards:
    {DASHBOARD_PATH}:
      mode: yaml
      filename: {self.dashboard_file.name}
      title: Battery
      icon: mdi:battery
      show_in_sidebar: true
logger:
  default: warning
automation: !include automations.yaml
"""
        )
        (self.directory / "automations.yaml").write_text("[]\n")  # add_blueprint_automation() fills it
        # The YAML dashboard is read when a page loads it: the tests write it later.
        self.dashboard_file.write_text("views: []\n")
        # Onboarding's other steps marked done: its core_config step would set up default
        # integrations (weather, radio, text-to-speech) whose libraries this venv has not.
        storage = self.directory / ".storage"
        storage.mkdir(exist_ok=True)
        (storage / "onboarding").write_text(
            json.dumps({"version": 4, "minor_version": 1, "key": "onboarding",
                        "data": {"done": ["core_config", "analytics", "integration"]}})
        )  # fmt: skip

    def start(self, timeout: float = 300) -> HomeAssistant:
        self.write_config()
        self._log = open(self.directory / "stdout.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [self.python, "-m", "homeassistant", "--config", str(self.directory), "--skip-pip",
             "--log-file", str(self.log_path)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        wait_until(self._serving, timeout, f"Home Assistant answering on {self.url}", every=0.5)
        self.onboard()
        self.add_mqtt()
        self.add_blueprint_automation()
        return self

    def _serving(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"Home Assistant exited ({self.proc.returncode}):\n{self.log()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{self.url}/api/onboarding", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # Home Assistant's own clean stop
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None
        with contextlib.suppress(AttributeError):
            self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # --- HTTP ---------------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None, *, auth: bool = True, form: bool = False) -> Any:
        headers = {}
        data = None
        if body is not None:
            if form:
                data = urllib.parse.urlencode(body).encode()
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            else:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
        if auth:
            headers["Authorization"] = f"Bearer {self.tokens['access_token']}"
        req = urllib.request.Request(f"{self.url}{path}", data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{method} {path}: {exc.code} {exc.read().decode(errors='replace')}") from None
        return json.loads(text) if text else None

    def onboard(self) -> None:
        """The owner, then a token for them: the browser's first onboarding step."""
        created = self.request(
            "POST",
            "/api/onboarding/users",
            {"client_id": self.client_id, "name": "Owner", "username": USER, "password": PASSWORD, "language": "en"},
            auth=False,
        )
        self.tokens = self.request(
            "POST",
            "/auth/token",
            {"grant_type": "authorization_code", "code": created["auth_code"], "client_id": self.client_id},
            auth=False,
            form=True,
        )
        onboarding = self.request("GET", "/api/onboarding", auth=False)
        assert all(step["done"] for step in onboarding), onboarding

    def add_mqtt(self) -> None:
        """The MQTT integration through its config flow, as the "Add integration" dialog does."""
        flow = self.request("POST", "/api/config/config_entries/flow", {"handler": "mqtt"})
        assert flow.get("step_id") == "broker", flow
        done = self.request(
            "POST",
            f"/api/config/config_entries/flow/{flow['flow_id']}",
            {"broker": "127.0.0.1", "port": self.broker_port},
        )
        assert done.get("type") == "create_entry", done
        wait_until(self._mqtt_loaded, 60, "the MQTT integration loaded", every=0.2)

    def add_blueprint_automation(self) -> None:
        """The shipped blueprint, unmodified, imported as a user does, and one automation made
        of it (homeassistant/components/blueprint/: blueprints/<domain>/<path>, use_blueprint),
        then the automations reloaded. After the MQTT integration: its trigger subscribes."""
        blueprints = self.directory / "blueprints" / "automation" / "chargery"
        blueprints.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(BLUEPRINT, blueprints / "cell-health.yaml")
        (self.directory / "automations.yaml").write_text(
            f"""\
- id: chargery_cell_health
  alias: Chargery cut-offs and cell health
  use_blueprint:
    path: chargery/cell-health.yaml
    input:
      topic_prefix: {BLUEPRINT_PREFIX}
"""
        )
        self.request("POST", "/api/services/automation/reload", {})
        wait_until(lambda: self.state(BLUEPRINT_AUTOMATION) == "on", 30, "the blueprint's automation on", every=0.2)

    def _mqtt_loaded(self) -> bool:
        entries = self.request("GET", "/api/config/config_entries/entry?domain=mqtt")
        return any(e["domain"] == "mqtt" and e["state"] == "loaded" for e in entries)

    # --- what Home Assistant knows ------------------------------------------------------

    def states(self) -> dict[str, dict[str, Any]]:
        return {s["entity_id"]: s for s in self.request("GET", "/api/states")}

    def state(self, entity_id: str) -> str | None:
        try:
            return str(self.request("GET", f"/api/states/{entity_id}")["state"])
        except AssertionError:
            return None

    def template(self, template: str) -> str:
        """Render a template as Home Assistant does (POST /api/template)."""
        req = urllib.request.Request(
            f"{self.url}/api/template",
            data=json.dumps({"template": template}).encode(),
            headers={"Authorization": f"Bearer {self.tokens['access_token']}", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=30) as response:
            return str(response.read().decode())

    def device_entities(self, any_entity_id: str) -> list[str]:
        """Every entity of the device of ``any_entity_id``, disabled ones too (the registry)."""
        rendered = self.template(f"{{{{ device_entities(device_id('{any_entity_id}')) | tojson }}}}")
        found: list[str] = json.loads(rendered)
        return found

    def warnings(self, *patterns: str) -> list[str]:
        """WARNING/ERROR lines of the log (and their continuation lines) matching a pattern."""
        out: list[str] = []
        entry: list[str] = []

        def flush() -> None:
            text = "\n".join(entry)
            if entry and any(re.search(p, text, re.IGNORECASE) for p in patterns):
                out.append(text)

        for line in self.log().splitlines():
            if re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", line):
                flush()
                entry = [line] if re.search(r" (WARNING|ERROR|CRITICAL) ", line) else []
            elif entry:
                entry.append(line)
        flush()
        return out

    def recorded_rows(self, entity_prefix: str) -> dict[str, int]:
        """Rows in the recorder's ``states`` table per entity whose id starts with one of
        ``<platform>.<entity_prefix>``."""
        with contextlib.closing(sqlite3.connect(f"file:{self.database}?mode=ro", uri=True, timeout=30)) as db:
            rows = db.execute(
                "SELECT m.entity_id, COUNT(*) FROM states s JOIN states_meta m ON s.metadata_id = m.metadata_id "
                "WHERE m.entity_id LIKE ? OR m.entity_id LIKE ? GROUP BY m.entity_id",
                (f"sensor.{entity_prefix}%", f"binary_sensor.{entity_prefix}%"),
            ).fetchall()
        return {str(e): int(n) for e, n in rows}

    # --- the browser --------------------------------------------------------------------

    def hass_tokens(self) -> dict[str, Any]:
        """What the frontend stores after a login (src/common/auth/token_storage.ts)."""
        return {
            "access_token": self.tokens["access_token"],
            "token_type": "Bearer",
            "expires_in": self.tokens["expires_in"],
            "refresh_token": self.tokens["refresh_token"],
            "hassUrl": self.url,
            "clientId": self.client_id,
            "expires": int(time.time() * 1000) + int(self.tokens["expires_in"]) * 1000,
        }


def chromium_path() -> str:
    path = shutil.which("chromium") or (CHROMIUM if os.access(CHROMIUM, os.X_OK) else None)
    if path is None:
        missing("chromium is not installed (apt-get install chromium)")
    assert path is not None
    return path


@contextlib.contextmanager
def browser() -> Iterator[Any]:
    """Headless Debian chromium under Playwright (whose own browser download is not used)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright is not installed (pip install -e '.[dev]')")
    executable = chromium_path()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield b
        finally:
            b.close()


def logged_in_page(browser: Any, ha: HomeAssistant, width: int = 1400, height: int = 1000) -> Any:
    context = browser.new_context(viewport={"width": width, "height": height}, locale="en-GB", timezone_id="UTC")
    context.add_init_script(f"window.localStorage.setItem('hassTokens', {json.dumps(json.dumps(ha.hass_tokens()))});")
    return context.new_page()


# Text of the page with shadow roots walked, and the custom elements found on the way.
WALK_JS = """
(root) => {
  const texts = [];
  const tags = {};
  const walk = (node) => {
    if (node.nodeType === Node.TEXT_NODE) { const t = node.textContent.trim(); if (t) texts.push(t); return; }
    if (![Node.ELEMENT_NODE, Node.DOCUMENT_FRAGMENT_NODE, Node.DOCUMENT_NODE].includes(node.nodeType)) return;
    if (node.tagName) { const tag = node.tagName.toLowerCase(); tags[tag] = (tags[tag] || 0) + 1;
      if (tag === 'style' || tag === 'script') return; }
    if (node.shadowRoot) walk(node.shadowRoot);
    for (const child of node.childNodes) walk(child);
  };
  walk(root || document);
  return {text: texts.join('\\n'), tags};
}
"""


def page_text(page: Any) -> tuple[str, dict[str, int]]:
    found = page.evaluate(WALK_JS)
    return str(found["text"]), dict(found["tags"])


def card_texts(page: Any, tag: str) -> list[str]:
    """The text of every ``tag`` element (a card), shadow roots walked, in page order."""
    js = """
    (tag) => {
      const found = [];
      const walk = (node) => {
        if (![Node.ELEMENT_NODE, Node.DOCUMENT_FRAGMENT_NODE, Node.DOCUMENT_NODE].includes(node.nodeType)) return;
        if (node.tagName && node.tagName.toLowerCase() === tag) found.push(node);
        if (node.shadowRoot) walk(node.shadowRoot);
        for (const child of node.children || []) walk(child);
      };
      walk(document);
      const text = (node) => {
        const parts = [];
        const go = (n) => {
          if (n.nodeType === Node.TEXT_NODE) { const t = n.textContent.trim(); if (t) parts.push(t); return; }
          if (n.tagName && ['style', 'script'].includes(n.tagName.toLowerCase())) return;
          if (n.shadowRoot) go(n.shadowRoot);
          for (const c of n.childNodes) go(c);
        };
        go(node);
        return parts.join('\\n');
      };
      return found.map(text);
    }
    """
    return [str(t) for t in page.evaluate(js, tag)]


def call_ws(page: Any, message: dict[str, Any]) -> Any:
    """A WebSocket API command through the page's own connection (the frontend's hass.callWS)."""
    page.wait_for_function("() => document.querySelector('home-assistant')?.hass?.connection")
    return page.evaluate("(m) => document.querySelector('home-assistant').hass.callWS(m)", message)


def open_dashboard(page: Any, ha: HomeAssistant, ready: str, timeout: float = 60) -> None:
    """Load the YAML dashboard and wait until its cards have rendered ``ready`` (a text).

    Home Assistant reads a changed YAML dashboard when a page asks for it and then tells
    every open page that it changed (homeassistant/components/lovelace/dashboard.py,
    LovelaceYAML._load_config): the first page to load a new file shows "Your dashboard was
    updated. Refresh to see changes?". So the page is loaded, then loaded again."""
    for _ in range(2):
        page.goto(f"{ha.url}/{DASHBOARD_PATH}/0", wait_until="domcontentloaded")
        wait_for_text(page, ready, timeout)


def wait_for_text(page: Any, text: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in page_text(page)[0]:
            return
        page.wait_for_timeout(200)
    shown, _ = page_text(page)
    raise AssertionError(f"the page did not show {text!r} within {timeout} s; it shows:\n{shown[:3000]}")
