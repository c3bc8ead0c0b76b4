"""The Node-RED dashboard page (``examples/node-red-dashboard.json``) as a user sees it: a
real Node-RED with the FlowFuse dashboard package from the npm registry, the flow deployed
unmodified but for the broker port, a real mosquitto, the real daemon reading a
pseudo-terminal BMS, and the page opened in Debian's headless Chromium driven by
Playwright. Everything is asserted from the page's DOM; screenshots are saved beside the
test's files (and into docs/ with ``CHARGERY_SCREENSHOTS=docs``, for the README).

The dashboard's rules used here, from its source (FlowFuse/node-red-dashboard):
- ``ui/src/layouts/Group.vue``: each widget is ``#nrdb-ui-widget-<node id>``, and a widget
  whose ``visible`` state is false gets the class ``d-none``.
- ``ui/src/widgets/data-tracker.mjs`` and ``nodes/config/ui_base.js``: ``msg.visible`` sets
  that state, kept server side, so a page opened later gets it too.
- ``ui/src/widgets/ui-gauge/types/UIGaugeBattery.vue``: the battery gauge prints
  ``round((value - min) / (max - min) * 100)%`` in ``.nrdb-ui-gauge-battery--bglabel``.
- ``ui/src/widgets/ui-chart/UIChart.vue``: the chart draws the messages kept in the Vuex
  store (``data.messages[<node id>]``, the app is ``#app.__vue_app__``), each point as its
  ``_datapoint`` (``category``: the series, ``y``), which ``nodes/widgets/ui_chart.js`` adds.
  With ``window.Cypress`` set, it lists itself in ``window.uiCharts[<node id>]`` with its
  ECharts instance as ``chart`` (the axis as drawn is read from there).
- ``ui/src/widgets/ui-notification/UINotification.vue``: a notification is a Vuetify
  snackbar with the class ``nrdb-ui-notification``.
- ``ui/src/components/PWABadge.vue``: the toast "App is offline ready" belongs to the
  dashboard's service worker and says nothing about the battery, so "offline" is read from
  the page's own ``data-state``, never from text.

Timing promises checked here are those of the README's Node-RED section.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from harness import Broker, DaemonProcess, FakeBms, StartDaemon, Subscriber, broker_flags, wait_until
from helpers import IN_CI, ROOT, require_tool
from node_red_harness import NodeRed, dashboard_version, flow_for, node_red_home

from chargerybms.protocol import encode_cells, encode_status

pytestmark = [pytest.mark.broker, pytest.mark.node_red, pytest.mark.browser]

DASHBOARD = ROOT / "examples" / "node-red-dashboard.json"
FLOW = json.loads(DASHBOARD.read_text())
PAGE_PATH = next(n["path"] for n in FLOW if n["type"] == "ui-base") + next(
    n["path"] for n in FLOW if n["type"] == "ui-page"
)
GAUGE_ID = next(n["id"] for n in FLOW if n["type"] == "ui-gauge")
CHART_ID = next(n["id"] for n in FLOW if n["type"] == "ui-chart")
MAX_AGE = 3  # CHARGERY_MAX_AGE for this Node-RED: the flow reads it from the environment
STALE_AFTER = 2  # the daemon's --stale-after
# The README's promises: the page is offline this soon after...
WITHIN_STOP = 5  # ...chargery stops or dies
WITHIN_SILENCE = STALE_AFTER + 5  # ...the BMS goes silent (--stale-after + 5 s)
WITHIN_NO_DATA = MAX_AGE + 5  # ...no state comes for another reason (CHARGERY_MAX_AGE + 5 s)

READ_PAGE = (Path(__file__).resolve().parent / "node_red" / "dashboard_page.js").read_text()


def require_playwright() -> Any:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        message = "Playwright is not installed (pip install -e '.[dev]')"
        if IN_CI:
            pytest.fail(f"CI is set but {message}")
        pytest.skip(message)
    return sync_playwright


@dataclass
class Dashboard:
    broker: Broker
    node_red: NodeRed
    page: Any
    url: str
    shots: Path
    errors: list[str]

    def read(self) -> dict[str, Any]:
        found: dict[str, Any] = self.page.evaluate(READ_PAGE, [GAUGE_ID, CHART_ID])
        return found

    def wait(self, condition: Callable[[dict[str, Any]], Any], timeout: float, what: str) -> dict[str, Any]:
        seen: list[dict[str, Any]] = []

        def check() -> Any:
            seen[:] = [self.read()]
            return seen[0] if condition(seen[0]) else None

        try:
            found: dict[str, Any] = wait_until(check, timeout, what, every=0.1)
        except AssertionError as e:
            self.screenshot("failed")
            raise AssertionError(f"{e}; the page showed {seen[0] if seen else None}") from None
        return found

    def screenshot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    """One broker, Node-RED and browser for the whole module (the flow's context and the
    page carry over from test to test, as they would for a user whose BMS changes)."""
    directory = tmp_path_factory.mktemp("dashboard")
    chromium = require_tool("chromium")
    sync_playwright = require_playwright()
    dashboard_version(node_red_home())
    broker = Broker(directory / "broker").start()
    node_red = NodeRed(directory / "node-red", env={"CHARGERY_MAX_AGE": str(MAX_AGE)}, debug=False)
    playwright = sync_playwright().start()
    browser = None
    try:
        node_red.deploy(flow_for(DASHBOARD, broker))
        wait_until(
            lambda: "Connected to broker" in node_red.log(), 30, f"the flow's broker connection:\n{node_red.log()}"
        )
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-dev-shm-usage"])
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        # The dashboard's own test hook: with it, each chart lists itself in window.uiCharts
        # (ui/src/widgets/ui-chart/UIChart.vue, mounted), so its axis can be read as drawn.
        page.add_init_script("window.Cypress = true;")
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        url = f"http://127.0.0.1:{node_red.port}{PAGE_PATH}"
        page.goto(url)
        page.wait_for_selector("[data-chargery=battery]", timeout=30_000)
        shots = directory / "screenshots"
        shots.mkdir()
        yield Dashboard(broker, node_red, page, url, shots, errors)
    finally:
        if browser is not None:
            browser.close()
        playwright.stop()
        node_red.stop()
        broker.stop()


def bms_frames(cells_mv: list[int], soc: int, deci_amps: int = 230) -> list[bytes]:
    status = encode_status(charge_end_mv=3650, mode=1, deci_amps=deci_amps, t1_deci=215, t2_deci=-43, soc=soc)
    cells = encode_cells(cells_mv, energy_mwh=5_000_000, capacity_mah=100_000)
    return [status, cells]


def cell_voltages(count: int) -> tuple[list[int], int, int]:
    """Distinct-enough mV for ``count`` cells with one highest and one lowest (1-based)."""
    mv = [3300 + (i * 7) % 23 for i in range(count)]
    highest, lowest = count - 1, 3
    mv[highest - 1], mv[lowest - 1] = 3351, 3262
    return mv, highest, lowest


def start_pty_daemon(start_daemon: StartDaemon, bms: FakeBms, broker: Broker, name: str = "daemon") -> DaemonProcess:
    return start_daemon("--port", str(bms.path), *broker_flags(broker, "--stale-after", str(STALE_AFTER)), name=name)


def is_live_with(count: int) -> Callable[[dict[str, Any]], bool]:
    return lambda p: p["state"] == "live" and p["cellsState"] == "live" and len(p["cells"]) == count and p["gaugeShown"]


def shows_nothing_live(page: dict[str, Any]) -> bool:
    """Offline and not one value: no value tile, no cell, no gauge."""
    return (
        page["state"] == "offline"
        and page["cellsState"] == "offline"
        and page["values"] == {}
        and page["cells"] == []
        and not page["gaugeShown"]
    )


def latest_state(subscriber: Subscriber) -> dict[str, Any]:
    message = subscriber.wait("chargerybms/state", lambda p: json.loads(p)["link"] == "online")
    state: dict[str, Any] = json.loads(message.payload)
    return state


@pytest.mark.parametrize("count", [8, 16, 24])
def test_every_cell_as_the_bms_sent_it(
    dashboard: Dashboard, bms: FakeBms, start_daemon: StartDaemon, count: int
) -> None:
    mv, highest, lowest = cell_voltages(count)
    soc = 40 + count
    bms.plug().stream(bms_frames(mv, soc), interval=0.1)
    subscriber = Subscriber(dashboard.broker, ["chargerybms/state"])
    try:
        start_pty_daemon(start_daemon, bms, dashboard.broker)
        page = dashboard.wait(is_live_with(count), 30, f"{count} live cells on the page")
        state = latest_state(subscriber)
    finally:
        subscriber.close()

    # Every cell: its bar and its value, as the BMS sent it.
    assert [c["number"] for c in page["cells"]] == list(range(1, count + 1))
    assert [float(c["voltage"]) for c in page["cells"]] == [v / 1000 for v in mv]
    assert [c["text"] for c in page["cells"]] == [f"{v / 1000:.3f} V" for v in mv]
    # Bars: a taller bar for a higher cell; the highest the tallest, the lowest the shortest.
    heights = [c["height"] for c in page["cells"]]
    assert all(h > 0 for h in heights)
    by_voltage = [h for _, h in sorted(zip(mv, heights, strict=True))]
    assert by_voltage == sorted(by_voltage)
    assert heights[highest - 1] == max(heights) > heights[lowest - 1] == min(heights)
    # Marks on the right cells, and only there; the spread in mV.
    assert [c["number"] for c in page["cells"] if c["highest"]] == [highest]
    assert [c["number"] for c in page["cells"] if c["lowest"]] == [lowest]
    assert page["spread"] == str(max(mv) - min(mv))

    # State of charge (the gauge and its tile) and power, as chargery computed them.
    assert page["gaugeShown"] and page["gaugeText"] == f"{soc}%"
    values = page["values"]
    assert values["soc"] == {"raw": str(soc), "text": f"{soc} %"}
    assert float(values["power-in"]["raw"]) == state["charge_power"] > 0
    assert values["power-in"]["text"] == f"{state['charge_power']:.0f} W"
    assert abs(state["charge_power"] - sum(mv) / 1000 * 23.0) < 0.1  # pack voltage x current
    assert values["power-out"]["text"] == "0 W"
    assert values["current"]["text"] == "23.0 A"
    assert values["voltage"]["text"] == f"{state['pack_voltage']:.2f} V"
    assert values["mode"]["text"] == "Charge"
    assert values["temperature-1"]["text"] == "21.5 °C" and values["temperature-2"]["text"] == "-4.3 °C"
    assert values["energy-charged"]["raw"] != "" and values["energy-discharged"]["raw"] != ""

    # The chart: lowest and highest cell, plotted at once when the battery became live.
    chart = dashboard.wait(lambda p: p["chart"], 10, "points on the chart")["chart"]
    assert ["highest cell", max(mv) / 1000] in chart and ["lowest cell", min(mv) / 1000] in chart

    dashboard.screenshot(f"live-{count}-cells")
    if count == 16 and os.environ.get("CHARGERY_SCREENSHOTS") == "docs":  # the README's, without toasts
        for button in dashboard.page.query_selector_all(".nrdb-ui-notification button"):
            button.click()
        dashboard.wait(lambda p: not p["notifications"], 10, "the notifications closed")
        shutil.copy(dashboard.screenshot("readme"), ROOT / "docs" / "node-red-dashboard.png")


def raised(about: str) -> Callable[[dict[str, Any]], bool]:
    """The banner and the newest entry of the list: the offline alert, for this reason."""
    return lambda p: (
        p["banner"] is not None
        and p["banner"]["type"] == "offline"
        and about in p["banner"]["reason"]
        and bool(p["alerts"])
        and p["alerts"][0] == {"type": "offline", "raised": True, "reason": p["banner"]["reason"]}
    )


def live_and_cleared(about: str) -> Callable[[dict[str, Any]], bool]:
    """Live values, no banner, and the newest entry: cleared, with the reason it had."""
    return lambda p: (
        is_live_with(16)(p)
        and p["noAlert"]
        and bool(p["alerts"])
        and p["alerts"][0]["raised"] is False
        and about in p["alerts"][0]["reason"]
    )


def test_offline_with_no_value_after_sigkill_silence_and_lost_data_then_live_again(
    dashboard: Dashboard, bms: FakeBms, start_daemon: StartDaemon
) -> None:
    mv, _, _ = cell_voltages(16)
    bms.plug().stream(bms_frames(mv, 77), interval=0.1)
    daemon = start_pty_daemon(start_daemon, bms, dashboard.broker)
    dashboard.wait(is_live_with(16), 30, "live values")

    # SIGKILL: only the broker's Last Will speaks; the page is offline, shows no value, and
    # the banner, the list and a notification say why.
    daemon.signal(signal.SIGKILL)
    daemon.wait(5)
    dashboard.wait(shows_nothing_live, WITHIN_STOP, "offline after SIGKILL")
    page = dashboard.wait(
        lambda p: raised("not running")(p) and any("not running" in n for n in p["notifications"]), 2, "the alert"
    )
    assert "not running" in page["statusReason"]
    dashboard.screenshot("offline-killed")
    # A page opened now is offline too: no reading kept anywhere is shown as live.
    dashboard.page.reload()
    dashboard.page.wait_for_selector("[data-chargery=battery]")
    dashboard.wait(lambda p: shows_nothing_live(p) and raised("not running")(p), 10, "offline after a reload")

    # Back: live values, the banner gone, the list says cleared and what it was.
    daemon = start_pty_daemon(start_daemon, bms, dashboard.broker, name="again")
    page = dashboard.wait(live_and_cleared("not running"), 30, "live again")
    assert [float(c["voltage"]) for c in page["cells"]] == [v / 1000 for v in mv]
    assert page["gaugeText"] == "77%"

    # The BMS goes silent under a running daemon.
    bms.pause()
    dashboard.wait(shows_nothing_live, WITHIN_SILENCE, "offline after the BMS went silent")
    dashboard.wait(raised("the BMS is silent"), 2, "the alert")
    dashboard.screenshot("offline-silent")
    bms.resume()
    dashboard.wait(live_and_cleared("the BMS is silent"), 15, "live again after the silence")

    # The daemon hangs (stopped, its connection open: no Last Will yet): no state comes,
    # and after CHARGERY_MAX_AGE the page no longer shows the last reading.
    daemon.signal(signal.SIGSTOP)
    try:
        dashboard.wait(shows_nothing_live, WITHIN_NO_DATA, "offline when no state comes")
        dashboard.wait(raised(f"no data from chargery for {MAX_AGE} s"), 2, "the alert")
    finally:
        daemon.signal(signal.SIGCONT)
    dashboard.wait(live_and_cleared("no data"), 15, "live again after the hang")

    # The list holds every alert raised and cleared, newest first, with its reason.
    page = dashboard.read()
    assert [(a["type"], a["raised"]) for a in page["alerts"][:6]] == [("offline", False), ("offline", True)] * 3
    assert [a["reason"] for a in page["alerts"][1:6:2]] == [
        f"no data from chargery for {MAX_AGE} s",
        "the BMS is silent (no valid frame)",
        "chargery is not running (stopped, crashed or unreachable)",
    ]


def test_an_event_of_chargery_is_a_banner_a_list_entry_and_a_notification(
    dashboard: Dashboard, bms: FakeBms, start_daemon: StartDaemon
) -> None:
    """The daemon's events (cut-off causes, health warnings; the document fixed in
    interfaces) come from a real MQTT client here: the daemon does not publish them yet."""
    mv, _, _ = cell_voltages(8)
    bms.plug().stream(bms_frames(mv, 55), interval=0.1)
    start_pty_daemon(start_daemon, bms, dashboard.broker)
    dashboard.wait(lambda p: is_live_with(8)(p) and p["noAlert"], 30, "live values and no alert")
    cutoff = {"type": "cutoff", "message": "charge stopped: cell 7 reached 3.652 V (charge end voltage 3.650 V)",
              "time": "2026-11-30T12:00:00Z", "cell": 7, "direction": "charge", "voltage": 3.652, "end_voltage": 3.65,
              "current": 23.0, "temperature_1": 20.0, "temperature_2": 19.0, "explained": True}  # fmt: skip
    warning = {"type": "health_warning", "message": "cell 3 loses capacity faster than the others",
               "time": "2026-11-30T12:01:00Z", "cell": 3, "evidence": ["lowest at the end of 5 of 5 discharges"],
               "kind": "capacity"}  # fmt: skip
    publisher = Subscriber(dashboard.broker, ["chargerybms/nothing"])
    try:
        publisher.publish("chargerybms/event", json.dumps(cutoff))
        page = dashboard.wait(
            lambda p: (
                p["banner"]
                and p["banner"]["type"] == "cutoff"
                and any(cutoff["message"] in n for n in p["notifications"])
            ),
            10,
            "the cut-off banner and notification",
        )
        assert page["banner"]["reason"] == cutoff["message"]
        assert page["state"] == "live" and len(page["cells"]) == 8  # an event is no outage
        page = dashboard.wait(lambda p: p["alerts"] and p["alerts"][0]["type"] == "cutoff", 5, "the list")
        assert page["alerts"][0] == {"type": "cutoff", "raised": True, "reason": cutoff["message"]}
        publisher.publish("chargerybms/event", json.dumps(warning))
        page = dashboard.wait(
            lambda p: p["banner"]["type"] == "health_warning" and p["alerts"][0]["type"] == "health_warning",
            10,
            "the health warning",
        )
        assert page["banner"]["reason"] == warning["message"]
        assert [a["reason"] for a in page["alerts"][:2]] == [warning["message"], cutoff["message"]]
    finally:
        publisher.close()
    dashboard.screenshot("event")
    dashboard.page.click("[data-chargery=dismiss]")
    page = dashboard.wait(lambda p: p["noAlert"], 10, "the banner dismissed")
    assert page["alerts"][0]["reason"] == warning["message"]  # still in the list
    assert page["state"] == "live"
    # Nothing on the way logged an error (a node the dashboard rejected, a template that
    # failed, would have).
    assert "[error]" not in dashboard.node_red.log()
    assert dashboard.errors == []  # nor the page (a template Vue could not render would)


SIX_HOURS_MS = 6 * 3600 * 1000


def shows_the_last_six_hours(page: dict[str, Any]) -> bool:
    """The chart's axis is the six hours up to now (its right end at most a minute ahead)."""
    axis = page["chartAxis"]
    now = time.time() * 1000
    return bool(axis) and axis[1] - axis[0] == SIX_HOURS_MS and now - 1000 <= axis[1] <= now + 61_000


def test_the_chart_shows_the_last_six_hours_also_while_chargery_is_offline(
    dashboard: Dashboard, bms: FakeBms, start_daemon: StartDaemon
) -> None:
    """Its axis once spanned whatever points it held: two days, on a page opened the day after
    chargery went offline. Now it is the last six hours, live or not, and moves on by itself."""
    (window,) = [n for n in FLOW if n.get("name") == "every minute"]
    assert window["type"] == "inject" and window["repeat"] == "60" and window["once"] is True
    mv, _, _ = cell_voltages(16)
    bms.plug().stream(bms_frames(mv, 60), interval=0.1)
    daemon = start_pty_daemon(start_daemon, bms, dashboard.broker)
    page = dashboard.wait(lambda p: is_live_with(16)(p) and p["chart"], 30, "live values and points on the chart")
    page = dashboard.wait(shows_the_last_six_hours, 10, "the last six hours on the chart's axis")
    low, high = page["chartAxis"]
    assert page["chartTimes"] and all(low <= t <= high for t in page["chartTimes"])

    daemon.stop()
    dashboard.wait(shows_nothing_live, WITHIN_STOP, "offline")
    # No point comes any more; the axis still moves on with the time (once a minute).
    moved = dashboard.wait(
        lambda p: shows_the_last_six_hours(p) and p["chartAxis"][1] > high, 75, "the axis moving on while offline"
    )
    assert moved["chartAxis"][1] - high >= 50_000
    # A page opened now shows the same six hours.
    dashboard.page.reload()
    dashboard.page.wait_for_selector("[data-chargery=battery]")
    reloaded = dashboard.wait(lambda p: shows_the_last_six_hours(p) and p["chart"], 15, "the axis after a reload")
    assert reloaded["chartAxis"] == moved["chartAxis"]
    dashboard.screenshot("chart-offline")
