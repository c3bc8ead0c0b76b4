"""Energy meters: integration, direction, atomic persistence, corrupt files, restarts."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from helpers import FakeClock, daemon_on

from chargerybms.battery import BatteryState
from chargerybms.protocol import decode_frame, encode_cells, encode_status
from chargerybms.views.energy import MAX_GAP, EnergyMeters


def test_integration_against_a_hand_computed_profile() -> None:
    m = EnergyMeters(None)
    t = 0.0
    # One hour charging at 1000 W, sampled every second: 1.000 kWh.
    for _ in range(3601):
        m.add(1000.0, 0.0, t)
        t += 1.0
    # Half an hour discharging at 500 W, sampled every 2 s: 0.250 kWh.
    for _ in range(901):
        m.add(0.0, 500.0, t)
        t += 2.0
    assert m.charged_kwh == pytest.approx(1.0, abs=0.001)
    assert m.discharged_kwh == pytest.approx(0.25, abs=0.001)


def test_gaps_and_pauses_are_not_integrated() -> None:
    m = EnergyMeters(None)
    m.add(1000.0, 0.0, 0.0)
    m.add(1000.0, 0.0, MAX_GAP + 100)  # the BMS was silent: the gap counts for nothing
    assert m.charged_wh == 0.0
    m.add(1000.0, 0.0, MAX_GAP + 110)
    assert m.charged_wh == pytest.approx(1000 * 10 / 3600)
    m.pause()
    m.add(1000.0, 0.0, MAX_GAP + 120)
    assert m.charged_wh == pytest.approx(1000 * 10 / 3600)
    m.add(1000.0, 0.0, MAX_GAP + 115)  # the clock going backwards is not negative energy
    assert m.charged_wh == pytest.approx(1000 * 10 / 3600)


def test_direction_comes_from_the_mode_byte() -> None:
    state = BatteryState()
    state.update(decode_frame(encode_cells([3300] * 16, energy_mwh=1, capacity_mah=1)), 0)
    state.update(decode_frame(encode_status(charge_end_mv=3650, mode=1, deci_amps=100, t1_deci=0, t2_deci=0, soc=5)), 0)
    assert state.directed_power() == (528.0, 0.0)
    state.update(decode_frame(encode_status(charge_end_mv=3650, mode=0, deci_amps=100, t1_deci=0, t2_deci=0, soc=5)), 0)
    assert state.directed_power() == (0.0, 528.0)
    state.update(decode_frame(encode_status(charge_end_mv=3650, mode=2, deci_amps=100, t1_deci=0, t2_deci=0, soc=5)), 0)
    assert state.directed_power() == (0.0, 0.0)
    state.update(decode_frame(encode_status(charge_end_mv=3650, deci_amps=100, t1_deci=0, t2_deci=0)), 0)
    assert state.directed_power() == (None, None)  # no mode byte: no guessing


def test_saved_atomically_and_never_lower_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "state" / "energy-x.json"
    m = EnergyMeters(path)
    m.add(3600.0, 0.0, 0.0)
    m.add(3600.0, 0.0, 10.0)  # 10 Wh
    m.save()
    assert json.loads(path.read_text())["energy_charged_wh"] == pytest.approx(10.0)
    assert not list(path.parent.glob("*.tmp"))
    again = EnergyMeters(path)
    assert again.charged_wh == pytest.approx(10.0)
    again.add(3600.0, 0.0, 0.0)
    again.add(3600.0, 0.0, 5.0)
    again.save()
    third = EnergyMeters(path)
    assert third.charged_wh == pytest.approx(15.0)
    assert (path.parent / "energy-x.json.bak").exists()


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "negative"])
def test_a_corrupt_file_is_reported_and_the_backup_used(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "energy.json"
    m = EnergyMeters(path)
    for t in (0.0, 10.0, 20.0):
        m.add(3600.0, 1800.0, t)
        m.save()  # each save keeps the one before as the backup
    good = m.charged_wh
    text = path.read_text()
    damaged = {
        "truncated": text[: len(text) // 2],
        "garbage": "\x00\xff{",
        "empty": "",
        "negative": text.replace('"energy_charged_wh": ', '"energy_charged_wh": -'),
    }
    path.write_text(damaged[damage])
    with caplog.at_level(logging.ERROR):
        loaded = EnergyMeters(path)
    assert "corrupt" in caplog.text and "backup" in caplog.text
    assert 0 < loaded.charged_wh <= good  # the backup: one save behind, never garbage
    assert loaded.charged_wh == pytest.approx(good - 10.0)
    assert list(tmp_path.glob("energy.json.corrupt-*"))  # kept for the user to look at


def test_both_copies_corrupt_is_reported_loudly(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "energy.json"
    path.write_text("{not json")
    (tmp_path / "energy.json.bak").write_text("[]")
    with caplog.at_level(logging.ERROR):
        loaded = EnergyMeters(path)
    assert loaded.charged_wh == 0.0
    assert "start again from 0" in caplog.text
    assert len(list(tmp_path.glob("*.corrupt-*"))) == 2


def test_unwritable_state_dir_is_an_error_line_not_a_crash(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    m = EnergyMeters(blocker / "sub" / "energy.json")
    m.add(3600.0, 0.0, 0.0)
    m.add(3600.0, 0.0, 1.0)
    with caplog.at_level(logging.ERROR):
        m.save()
    assert "cannot save" in caplog.text


def test_no_current_means_nothing_to_save(tmp_path: Path) -> None:
    path = tmp_path / "energy.json"
    m = EnergyMeters(path)
    for t in range(100):  # storage mode: 0 A for 100 s
        m.add(0.0, 0.0, float(t))
    m.save()
    assert not path.exists()  # an idle battery costs the SD card no writes
    m.add(0.0, 100.0, 100.0)
    m.add(0.0, 100.0, 101.0)
    m.save()
    assert path.exists()


# --- the daemon killed: at most a minute of energy lost (the daemon on a fake clock) ----------


DISCHARGE = encode_status(charge_end_mv=3650, mode=0, deci_amps=230, t1_deci=200, t2_deci=190, soc=60)  # -23 A
CELLS16 = encode_cells([3310] * 16, energy_mwh=5_000_000, capacity_mah=100_000)  # 52.96 V: about 1.2 kW


@pytest.mark.parametrize("kill_after", [65.0, 72.25, 119.9])
def test_the_daemon_killed_after_a_minute_loses_at_most_a_minute_of_energy(tmp_path: Path, kill_after: float) -> None:
    """Discharging at about 1.2 kW, a burst every 0.1 s, killed (no shutdown: nothing saved
    on the way out) more than a minute after the start: after the restart the meter is at
    least what was published a minute before the kill. Its loop turns as Daemon.run's do,
    on a fake clock, so the minute takes no minute."""
    clock = FakeClock()
    daemon, sink = daemon_on(clock, state_dir=str(tmp_path))
    published: list[tuple[float, float]] = []  # (when, energy_discharged) of each state document
    start = clock.now
    while clock.now < start + kill_after:
        daemon.housekeeping(clock.now)
        daemon.handle_bytes(DISCHARGE + CELLS16)
        clock.now += 0.05
        daemon.housekeeping(clock.now)
        clock.now += 0.05
        documents = sink.on("chargerybms/state")
        published += [(clock.now, json.loads(d)["energy_discharged"]) for d in documents[len(published) :]]
    killed = clock.now
    values = [v for _, v in published]
    assert values == sorted(values), "a published meter went down within a run"
    minute_before = max(v for t, v in published if t <= killed - 60)
    assert values[-1] > minute_before > 0

    # What the minute's save left on disk: at least what was published a minute before the
    # kill, at most what was measured by the kill.
    saved_wh = json.loads((tmp_path / "energy-chargerybms.json").read_text())["energy_discharged_wh"]
    assert minute_before <= round(saved_wh / 1000, 3) <= values[-1]

    clock.now += 5.0  # systemd's RestartSec
    restarted, sink = daemon_on(clock, state_dir=str(tmp_path))
    restarted.handle_bytes(DISCHARGE + CELLS16)
    clock.now += 0.2
    restarted.housekeeping(clock.now)
    state = json.loads(sink.on("chargerybms/state")[-1])
    assert state["energy_discharged"] >= round(saved_wh / 1000, 3) >= minute_before
