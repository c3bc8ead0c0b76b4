"""The daemon's timing rules, driven with plain numbers as the clock (no sleeping), and the
daemon's reaction to them with a recording sink."""

from __future__ import annotations

import itertools
import json
import random

import pytest
from helpers import RecordingSink

from chargerybms.config import load
from chargerybms.daemon import Daemon
from chargerybms.outputs.victron import EVERY as VICTRON_EVERY
from chargerybms.protocol import encode_cells, encode_impedances, encode_status
from chargerybms.schedule import BURST_DELAY, MAX_SLEEP, PROMISE, SAVE_EVERY, TICK_EVERY, Schedule
from chargerybms.sink import Connected

STALE, HEARTBEAT = 10.0, 60.0


def schedule(victron: bool = False) -> Schedule:
    return Schedule(0.0, stale_after=STALE, heartbeat=HEARTBEAT, periods={"victron": VICTRON_EVERY} if victron else {})


def test_link_is_not_said_before_the_first_frame_or_the_stale_timeout() -> None:
    s = schedule()
    assert s.link_online is None
    assert not s.poll(9.9).link_offline and s.link_online is None
    assert s.frame(9.95) is True  # a frame in time: online, and never offline before it
    assert s.frame(10.5) is False  # already online: no edge
    assert not s.poll(19.0).link_offline


def test_a_silent_start_is_offline_after_stale_after_once() -> None:
    s = schedule()
    assert s.poll(STALE).link_offline
    assert s.link_online is False
    assert not s.poll(STALE + 5).link_offline  # an edge, reported once
    assert s.frame(30.0) is True


def test_silence_after_frames_goes_offline_after_stale_after() -> None:
    s = schedule()
    s.frame(1.0)
    assert not s.poll(1.0 + STALE - 0.01).link_offline
    assert s.poll(1.0 + STALE).link_offline
    assert s.sleep(1.0 + STALE) <= MAX_SLEEP


def test_bytes_waiting_after_a_stall_are_read_before_the_link_is_judged_stale() -> None:
    # The daemon was stopped (SIGSTOP, a stalled machine) past stale_after while the BMS
    # went on sending: its bytes wait unread. They may hold frames: no offline blip.
    s = schedule()
    s.frame(1.0)
    assert s.poll(1.0 + BURST_DELAY).burst
    resumed = 1.0 + STALE + 5
    s.arrived(resumed)
    assert not s.poll(resumed).link_offline and s.link_online
    assert not s.poll(resumed + BURST_DELAY).link_offline  # the window closes: read right after
    assert s.frame(resumed + BURST_DELAY) is False  # the window's frames: still online, no edge
    assert not s.poll(resumed + BURST_DELAY + 0.01).link_offline and s.link_online


def test_bytes_that_make_no_frame_defer_a_stale_link_by_one_window_only() -> None:
    # Noise after the stale timeout: one window is waited for, not one after another.
    s = schedule()
    s.frame(1.0)
    assert s.poll(1.0 + BURST_DELAY).burst
    t = 1.0 + STALE
    s.arrived(t)
    assert not s.poll(t).link_offline
    assert not s.poll(t + BURST_DELAY).link_offline  # the window closes: read right after
    s.arrived(t + BURST_DELAY)  # read, no frame in it: the next window opens
    assert s.poll(t + BURST_DELAY + 0.01).link_offline and s.link_online is False
    assert not s.poll(t + 2 * BURST_DELAY).link_offline  # an edge, once


def test_the_burst_output_waits_for_the_rest_of_the_burst() -> None:
    s = schedule()
    s.frame(5.0)
    assert not s.poll(5.0).burst
    s.frame(5.004)  # the next frame of the burst, 4 ms later
    assert not s.poll(5.05).burst
    assert s.sleep(5.05) == pytest.approx(5.0 + BURST_DELAY - 5.05)
    assert s.poll(5.0 + BURST_DELAY).burst
    s.burst_sent(5.1)
    assert not s.poll(5.2).burst


def test_bytes_open_a_window_the_reader_leaves_alone_until_it_closes() -> None:
    s = schedule()
    assert not s.gathering
    s.arrived(5.0)  # the first piece of a burst, no whole frame in it yet
    assert s.gathering and s.sleep(5.0) == pytest.approx(BURST_DELAY)
    s.arrived(5.03)  # more pieces do not move the window
    assert s.sleep(5.03) == pytest.approx(5.0 + BURST_DELAY - 5.03)
    assert not s.poll(5.0 + BURST_DELAY - 0.001).burst and s.gathering
    assert not s.poll(5.0 + BURST_DELAY).burst  # closed, but nothing decoded: nothing to publish
    assert not s.gathering


def test_a_bms_silent_mid_burst_holds_nothing_back() -> None:
    s = schedule()
    s.frame(5.0)  # the status frame, then nothing more
    assert s.burst_pending and s.sleep(5.0) == pytest.approx(BURST_DELAY)
    assert s.poll(5.0 + BURST_DELAY).burst


def _published_after(arrivals: list[float]) -> tuple[list[float], int]:
    """The reader's loop over pieces arriving at ``arrivals`` (a whole frame in each): the
    delay from each piece to its publication, and the number of transmissions."""
    s = schedule()
    delays: list[float] = []
    waiting: list[float] = []  # arrived, not yet read
    pending: list[float] = []  # read, not yet published
    transmissions = 0
    queue = sorted(arrivals)
    now = 0.0
    while queue or waiting or pending:
        if s.gathering:
            now += s.sleep(now)  # the window's end: everything that arrived is read at once
            waiting += [t for t in queue if t <= now]
            queue = [t for t in queue if t > now]
        elif not waiting:
            now = max(now, queue[0])  # the port wakes the reader
            waiting.append(queue.pop(0))
        if waiting:
            s.frame(now)
            pending += waiting
            waiting = []
        if s.poll(now).burst:
            s.burst_sent(now)
            transmissions += 1
            delays += [now - t for t in pending]
            pending = []
    return delays, transmissions


def test_every_frame_is_published_within_the_window_of_its_arrival() -> None:
    rng = random.Random(25)
    # Bursts a second apart, each in pieces 0-16 ms apart (a USB adapter's latency timer).
    arrivals = [second + sum(rng.uniform(0, 0.016) for _ in range(k)) for second in range(60) for k in range(3)]
    delays, transmissions = _published_after(arrivals)
    assert transmissions == 60  # one per burst
    assert max(delays) <= BURST_DELAY + 1e-9 <= PROMISE
    # At line rate the bursts run together: a transmission every BURST_DELAY, none lost.
    line = [i / 100 for i in range(1000)]  # a frame every 10 ms for 10 s
    delays, transmissions = _published_after(line)
    assert len(delays) == len(line) and max(delays) <= BURST_DELAY + 1e-9
    assert transmissions == pytest.approx(10 / BURST_DELAY, rel=0.1)


def test_at_line_rate_the_burst_output_is_at_most_every_burst_delay() -> None:
    s = schedule()
    sent = 0
    for i in range(1000):  # a frame every millisecond for a second
        now = i / 1000
        s.frame(now)
        if s.poll(now).burst:
            s.burst_sent(now)
            sent += 1
    assert sent == pytest.approx(1 / BURST_DELAY, abs=1)


def test_heartbeat_only_while_online_and_only_when_nothing_is_pending() -> None:
    s = schedule()
    s.frame(0.0)
    s.poll(0.1)
    s.burst_sent(0.1)
    assert not s.poll(HEARTBEAT).burst
    s.frame(HEARTBEAT - 1)  # keep the link up
    s.poll(HEARTBEAT - 1 + BURST_DELAY)
    s.burst_sent(HEARTBEAT - 1 + BURST_DELAY)
    assert s.poll(2 * HEARTBEAT).link_offline  # silent since 59: offline at 69 already
    assert not s.poll(2 * HEARTBEAT).burst  # no heartbeat for a silent BMS


def test_victron_once_a_second_while_online_never_otherwise() -> None:
    s = schedule(victron=True)
    assert s.poll(0.5).periodic == ()  # no frame yet
    s.frame(1.0)
    times = []
    now = 1.0
    while now < 6.0:
        if s.poll(now).periodic == ("victron",):
            times.append(round(now, 2))
        s.frame(now)
        now += 0.05
    assert len(times) == 5 and all(
        b - a == pytest.approx(VICTRON_EVERY, abs=0.06) for a, b in itertools.pairwise(times)
    )
    assert s.poll(now + STALE).link_offline
    assert s.poll(now + STALE + 1).periodic == ()
    assert schedule(victron=False).poll(0.0).periodic == ()


def test_periodic_outputs_keep_their_own_periods() -> None:
    s = Schedule(0.0, stale_after=STALE, heartbeat=HEARTBEAT, periods={"fast": 1.0, "slow": 5.0})
    s.frame(0.0)
    seen: dict[str, list[float]] = {"fast": [], "slow": []}
    for i in range(100):  # 10 s, frames every 0.1 s
        now = i / 10
        s.frame(now)
        for name in s.poll(now).periodic:
            seen[name].append(now)
    assert len(seen["fast"]) == 10 and seen["slow"] == [0.0, 5.0]


def test_the_bookkeeping_tick_never_wakes_the_reader_by_itself() -> None:
    s = schedule()
    s.frame(0.0)
    assert s.poll(BURST_DELAY).tick  # the first round, at the first wake-up
    s.burst_sent(BURST_DELAY)
    # Frames every second: the next wake-up is the next frame's, not the tick's...
    assert s.sleep(0.5) == pytest.approx(MAX_SLEEP)
    # ... and the tick rides on it, once TICK_EVERY has passed.
    assert not s.poll(BURST_DELAY + TICK_EVERY - 0.01).tick
    assert s.poll(1.0 + BURST_DELAY).tick


def test_energy_is_saved_every_minute() -> None:
    s = schedule()
    saves = [t for t in range(0, 601) if s.poll(float(t)).save]
    assert saves == [int(SAVE_EVERY) * k for k in range(1, 11)]


# --- the daemon's reaction, with a fake clock and a recording sink ----------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def daemon(clock: Clock, *flags: str, **values: object) -> tuple[Daemon, RecordingSink]:
    settings = load({"port": "/dev/null", "ha_discovery": False, **values, **dict.fromkeys(flags, True)}, environ={})
    sink = RecordingSink()
    return Daemon(settings, sink=sink, clock=clock), sink


CELLS = encode_cells([3300 + i for i in range(16)], energy_mwh=5_000_000, capacity_mah=100_000)
STATUS = encode_status(charge_end_mv=3650, mode=0, deci_amps=123, t1_deci=250, t2_deci=-15, soc=77)
IMPEDANCES = encode_impedances(0, 123, [7] * 16)


def test_a_burst_is_one_state_document_holding_all_three_frames() -> None:
    clock = Clock()
    d, sink = daemon(clock)
    for frame in (STATUS, CELLS, IMPEDANCES):
        d.handle_bytes(frame)
        d.housekeeping(clock.now)
        clock.now += 0.003
    assert sink.on("chargerybms/state") == []
    clock.now += BURST_DELAY
    d.housekeeping(clock.now)
    (state,) = sink.on("chargerybms/state")
    doc = json.loads(state)
    assert doc["current"] == -12.3 and doc["pack_voltage"] == 52.92 and doc["impedance_total"] == 11.2
    assert doc["link"] == "online"


def test_link_offline_is_also_said_in_state_and_at_a_clean_stop() -> None:
    clock = Clock()
    d, sink = daemon(clock, stale_after=5)
    d.handle_bytes(STATUS)
    assert sink.retained("chargerybms/link") == ["online"]
    clock.now += 5
    d.housekeeping(clock.now)
    assert sink.retained("chargerybms/link") == ["online", "offline"]
    assert json.loads(sink.on("chargerybms/state")[-1])["link"] == "offline"
    d.shutdown()
    assert sink.last_words == [("chargerybms/link", "offline"), ("chargerybms/status", "offline")]


def test_victron_documents_only_while_online() -> None:
    clock = Clock()
    d, sink = daemon(clock, victron="mqtt-battery", stale_after=3)
    for _ in range(40):  # 4 s of frames, 0.1 s apart
        d.handle_bytes(STATUS + CELLS)
        d.housekeeping(clock.now)
        clock.now += 0.1
    documents = sink.on("chargerybms/victron")
    assert 4 <= len(documents) <= 5
    assert json.loads(documents[-1])["Soc"] == 77
    for _ in range(100):  # 10 s of silence
        d.housekeeping(clock.now)
        clock.now += 0.1
    # Still sent while the link is online (the first 3 s of silence), none once it is stale.
    assert len(documents) + 2 <= len(sink.on("chargerybms/victron")) <= len(documents) + 3
    assert not any(retain for topic, _, retain in sink.published if topic == "chargerybms/victron")


def test_a_reconnect_in_the_middle_of_a_burst_does_not_split_it() -> None:
    clock = Clock()
    d, sink = daemon(clock)
    d.handle_bytes(STATUS)
    d.events.put(Connected())  # the MQTT thread has just (re)connected: everything is announced again
    d.housekeeping(clock.now)
    assert sink.on("chargerybms/current") == ["-12.3"]  # the values, republished
    assert sink.on("chargerybms/state") == []  # but the state waits for the burst
    clock.now += 0.004
    d.handle_bytes(CELLS)
    clock.now += BURST_DELAY
    d.housekeeping(clock.now)
    (state,) = sink.on("chargerybms/state")
    assert json.loads(state)["pack_voltage"] == 52.92
    assert sink.on("chargerybms/current") == ["-12.3", "-12.3"]  # and the burst's own, with its state


def test_a_burst_is_one_transmission_when_its_window_closes() -> None:
    clock = Clock()
    d, sink = daemon(clock)
    burst = STATUS + CELLS + IMPEDANCES
    for piece in (burst[i : i + 62] for i in range(0, len(burst), 62)):  # as a USB adapter hands it over
        d.handle_bytes(piece)
        d.housekeeping(clock.now)
        clock.now += 0.016
    assert sink.batches == []  # nothing yet: the window is open
    clock.now = 100.0 + BURST_DELAY
    d.housekeeping(clock.now)
    (batch,) = sink.batches
    topics = [topic for topic, _ in batch]
    assert {"chargerybms/current", "chargerybms/batteryvolt", "chargerybms/aggimped"} <= set(topics)
    assert topics[-1] == "chargerybms/state" and topics.count("chargerybms/state") == 1
    assert json.loads(batch[-1][1])["impedance_total"] == 11.2
    clock.now += 1.0  # the next burst, a second later: a document of its own
    d.handle_bytes(STATUS)
    clock.now += BURST_DELAY
    d.housekeeping(clock.now)
    assert len(sink.batches) == 2 and sink.batches[1][-1][0] == "chargerybms/state"


def test_a_burst_held_at_a_stop_goes_out_before_the_last_words() -> None:
    clock = Clock()
    d, sink = daemon(clock)
    d.handle_bytes(STATUS)
    d.shutdown()
    assert sink.on("chargerybms/current") == ["-12.3"] and len(sink.on("chargerybms/state")) == 1
