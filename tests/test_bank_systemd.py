"""The bank as a service under a real systemd (the booted Debian 12 of test_systemd.py, its
broker with passwords and its BMS stand-ins), installed with ``install.sh --bank`` as
docs/several-packs.md says: READY as the chargery user with the shared credential, the
bank of the daemons' packs on MQTT, a clean stop with `link` and `status` offline, and a
configuration error that is exit 2 and not restarted.

Needs root like test_systemd.py; skips without it, and fails when ``CI`` is set."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import IN_CI, ROOT
from test_systemd import BASE_ENV, MQTT, journal, main_pid, retained, setup, show, wait_until

pytestmark = pytest.mark.system

BANK_ENV = (
    "CHARGERY_BANK_MEMBERS=chargerybms/a,chargerybms/b\nCHARGERY_MQTT_USERNAME=chargery\nCHARGERY_STALE_AFTER=3\n"
)


@pytest.fixture(scope="module")
def bank_box() -> Iterator[Any]:
    sys.path.insert(0, str(ROOT / "tests" / "system"))
    from container import BootError, Container, build_rootfs

    container = None
    try:
        container = Container(build_rootfs())
        container.boot()
    except BootError as exc:
        if container is not None:
            container.destroy()  # a half-booted box is not left running
        if IN_CI:
            pytest.fail(f"CI is set but cannot boot systemd in systemd-nspawn here: {exc}")
        pytest.skip(f"cannot boot systemd in systemd-nspawn here: {exc}")
    try:
        setup(container)
        # Two packs: instances a and b of the template unit, on two BMS stand-ins.
        for name, port in (("a", 5002), ("b", 5003)):
            env = BASE_ENV.replace("5001", str(port))
            container.write(f"/etc/chargery/{name}.env", env, mode=0o640)
            container.run(f"chgrp chargery /etc/chargery/{name}.env")
            container.run(f"cp -p /etc/chargery/mqtt-password /etc/chargery/{name}.mqtt-password")
        container.run("systemctl enable --now chargery@a chargery@b")
        container.run("cd /src && ./install.sh --bank", timeout=300)
        container.write("/etc/chargery/bank.env", BANK_ENV, mode=0o640)
        container.run("chgrp chargery /etc/chargery/bank.env && systemctl restart chargery-bank")
        yield container
    finally:
        if os.environ.get("CHARGERY_KEEP_CONTAINER"):
            print(f"container kept: {container.dir}")
        else:
            container.destroy()


@pytest.fixture(autouse=True)
def bank_running(bank_box: Any) -> None:
    """Each test starts from the bank as installed and running, both packs up (any order)."""
    settings = bank_box.run("cat /etc/chargery/bank.env").stdout
    if settings != BANK_ENV:
        bank_box.write("/etc/chargery/bank.env", BANK_ENV, mode=0o640)
        bank_box.run("chgrp chargery /etc/chargery/bank.env")
    bank_box.run("systemctl start chargery@a chargery@b; systemctl reset-failed chargery-bank")
    bank_box.run("systemctl start chargery-bank")


def bank_state(box: Any, timeout: int = 15) -> dict[str, Any]:
    result = box.run(f"{MQTT} -t chargerybank/state -C 1 -W {timeout}", check=False)
    assert result.returncode == 0, f"no bank state: {result.stderr}"
    state: dict[str, Any] = json.loads(result.stdout)
    return state


def test_the_bank_service_runs_as_chargery_and_adds_up_the_packs(bank_box: Any) -> None:
    box = bank_box
    wait_until(lambda: show(box, "chargery-bank", "SubState")["SubState"] == "running", 30, "the bank READY")
    state = show(box, "chargery-bank", "Type", "ActiveState")
    assert state == {"Type": "notify", "ActiveState": "active"}
    pid = main_pid(box, "chargery-bank")
    assert box.run(f"ps -o user= -p {pid}").stdout.strip() == "chargery"
    wait_until(lambda: bank_state(box)["members_live"] == 2, 30, "both packs live in the bank")
    doc = bank_state(box)
    assert doc["members_missing"] == [] and doc["link"] == "online"
    assert doc["cell_count"] is not None and doc["current"] is not None
    assert retained(box, "chargerybank/link") == "online" and retained(box, "chargerybank/status") == "online"
    assert "main-secret" not in journal(box, "chargery-bank")
    wait_until(lambda: "packs live" in show(box, "chargery-bank", "StatusText")["StatusText"], 10, "its status line")

    # One pack's daemon stops: the bank goes on with the other and says which is missing.
    box.run("systemctl stop chargery@b")
    wait_until(lambda: "chargerybms/b: daemon stopped" in bank_state(box)["problems"], 20, "b left out")
    assert bank_state(box)["members_missing"] == ["chargerybms/b"]
    # Its clean stop says link offline, then status offline. Both may reach the bank before it
    # judges the members again (they are one transmission apart): the log names the member
    # and ends on the reason that is true now.
    log = journal(box, "chargery-bank")
    assert "chargerybms/b left out of the bank: " in log
    assert log.rstrip().endswith("daemon stopped")
    box.run("systemctl start chargery@b")
    wait_until(lambda: bank_state(box)["members_live"] == 2, 30, "b back")


def test_the_bank_service_stops_cleanly_and_refuses_a_bad_setting(bank_box: Any) -> None:
    box = bank_box
    box.run("systemctl stop chargery-bank")
    state = show(box, "chargery-bank", "ExecMainStatus", "Result", "ActiveState")
    assert state == {"ExecMainStatus": "0", "Result": "success", "ActiveState": "inactive"}
    assert retained(box, "chargerybank/link") == "offline" and retained(box, "chargerybank/status") == "offline"

    box.write("/etc/chargery/bank.env", "CHARGERY_MQTT_USERNAME=chargery\n", mode=0o640)  # no member
    box.run("chgrp chargery /etc/chargery/bank.env && systemctl start chargery-bank", check=False)
    # A restart that is coming shows as "activating (auto-restart)" for RestartSec: systemd
    # only says "failed" of a unit it will not restart (src/core/service.c, service_enter_dead).
    wait_until(lambda: show(box, "chargery-bank", "ActiveState")["ActiveState"] == "failed", 20, "failed")
    state = show(box, "chargery-bank", "ExecMainStatus", "ActiveState", "SubState", "NRestarts")
    assert state == {"ExecMainStatus": "2", "ActiveState": "failed", "SubState": "failed", "NRestarts": "0"}
    assert "configuration error: bank_members: no member named" in journal(box, "chargery-bank")
