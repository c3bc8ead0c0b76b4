#!/usr/bin/env python3
"""What chargery costs Home Assistant's recorder: rows a day in its ``states`` table.

Home Assistant writes a row to its database (on a Raspberry Pi, the SD card) for every
change of an entity's state. This runs the real daemon on its simulator (``--demo``, a
16-cell pack by default, every entity enabled: the cells too) against a real mosquitto and
a real Home Assistant with its recorder on SQLite, once with ``--ha-max-age 0`` (every
value as it comes: chargery before it held values back for Home Assistant) and once with
the default, both at the same time under two device ids, and counts the rows each adds.
It prints figures; it asserts nothing.

    python3 bench/ha_recorder.py                 two cycles of the simulator (8 minutes)
    python3 bench/ha_recorder.py --seconds 60    a short run, as the test suite does

The simulator's pack charges, rests, discharges and rests in 240 s: 360 cycles a day, far
more change than a real pack's one or two, so the figures are an upper bound. The
daemon's timing (when a value may go out again) is in real seconds, so the run is at the
simulator's real speed; rows a day are the rows of the run scaled to 86,400 s.

Needs Home Assistant (.ci/home-assistant.sh, or CHARGERY_HA_PYTHON), mosquitto,
``pip install -e .[dev]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from ha_harness import HomeAssistant, ha_python, ha_version  # noqa: E402
from harness import Broker, DaemonProcess, wait_until  # noqa: E402

from chargerybms.config import Settings  # noqa: E402
from chargerybms.outputs.discovery import BASE_ENTITIES, HEALTH_ENTITIES, cell_entities, entity_id, health_cell_entities  # noqa: E402
from chargerybms.protocol import MODELS  # noqa: E402

DEFAULT_MAX_AGE = Settings().ha_max_age
CYCLE = 240  # seconds: SimulatedBms's default charge/rest/discharge/rest cycle


def rows_per_day(before: dict[str, int], after: dict[str, int], seconds: float) -> dict[str, float]:
    return {e: (after.get(e, 0) - before.get(e, 0)) * 86400 / seconds for e in after}


def group(rows: dict[str, float], device_id: str) -> dict[str, float]:
    """Rows a day per entity, the cells summed into two lines."""
    out: dict[str, float] = {}
    for e, n in rows.items():
        key = e.split(".", 1)[1].removeprefix(f"{device_id}_")
        if key.startswith("cell_") and key.endswith(("_voltage", "_impedance")):
            key = "cell_N_" + key.rsplit("_", 1)[1] + " (all cells)"
        out[key] = out.get(key, 0) + n
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2 * CYCLE, help="how long to count (default: two cycles)")
    parser.add_argument("--cells", type=int, default=16, choices=MODELS, help="simulated model (default: 16)")
    parser.add_argument("--max-age", type=float, default=DEFAULT_MAX_AGE, help="the --ha-max-age to compare with 0")
    parser.add_argument("--top", type=int, default=12, help="entities listed per run (default: 12)")
    args = parser.parse_args()

    try:
        python = ha_python()
    except BaseException as exc:  # pytest's skip or fail: there is no Home Assistant to run
        sys.exit(f"ha_recorder.py: {exc}")
    runs = {"today": 0.0, "held": args.max_age}
    entities = (*BASE_ENTITIES, *cell_entities(args.cells), *HEALTH_ENTITIES, *health_cell_entities(args.cells))
    expected = {name: {entity_id(e.platform, f"bench_{name}", e.key) for e in entities} for name in runs}
    with tempfile.TemporaryDirectory(prefix="ha-recorder-") as tmp:
        directory = Path(tmp)
        broker = Broker(directory / "broker").start()
        ha = HomeAssistant(directory / "ha", broker.port, python)
        daemons: list[DaemonProcess] = []
        try:
            ha.start()
            for name, max_age in runs.items():
                daemons.append(
                    DaemonProcess(
                        directory / name,
                        ["--demo", "--demo-model", str(args.cells), "--mqtt-host", "127.0.0.1",
                         "--mqtt-port", str(broker.port), "--topic-prefix", f"bench/{name}",
                         "--device-id", f"bench_{name}", "--ha-max-age", f"{max_age:g}"],
                    )
                )  # fmt: skip
            every = set().union(*expected.values())
            wait_until(lambda: every <= set(ha.states()), 120, "Home Assistant to create every entity", every=0.5)
            time.sleep(3)  # past the first burst of values that create the entities' first rows
            start = time.monotonic()
            before = {name: ha.recorded_rows(f"bench_{name}_") for name in runs}
            time.sleep(args.seconds)
            time.sleep(2)  # the recorder commits every second: let the last of the run land
            seconds = time.monotonic() - start - 2
            after = {name: ha.recorded_rows(f"bench_{name}_") for name in runs}
            version = ha_version(python)
        finally:
            for d in daemons:
                d.stop()
            ha.stop()
            broker.stop()

    print(
        f"Home Assistant {version}, recorder on SQLite; simulated BMS{args.cells}T, every entity enabled "
        f"({len(expected['today'])}, {4 * args.cells} of them per cell: voltage, impedance and the two health ratios); "
        f"counted {seconds:.0f} s "
        f"({seconds / CYCLE:.1f} of the simulator's {CYCLE} s charge/rest/discharge/rest cycles)"
    )
    for name, max_age in runs.items():
        rows = rows_per_day(before[name], after[name], seconds)
        total = sum(rows.values())
        cells = sum(n for e, n in rows.items() if "_cell_" in e and e.endswith(("_voltage", "_impedance")))
        label = "every value as it comes" if not max_age else "values held back (the default)"
        print(f"\n--ha-max-age {max_age:g} ({label}): {total:,.0f} rows/day added to `states`")
        print(f"  of which the {2 * args.cells} cell entities: {cells:,.0f}; the others: {total - cells:,.0f}")
        for key, n in sorted(group(rows, f"bench_{name}").items(), key=lambda kv: -kv[1])[: args.top]:
            print(f"    {key:34s} {n:>10,.0f}")


if __name__ == "__main__":
    main()
