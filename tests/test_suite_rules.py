"""The suite's own rules: a test waits for what it asserts, not by the clock, and draws no
unseeded randomness (a failure must be repeatable). Read from the tests' source."""

from __future__ import annotations

import ast
from pathlib import Path

from helpers import ROOT

TESTS = sorted((ROOT / "tests").rglob("*.py"))
# Seconds of fixed sleep left in tests/: each literal `time.sleep(x)` or Playwright
# `wait_for_timeout(ms)` of half a second or more, counted once where it is written.
BUDGET = 5.0
UNSEEDED = {"random", "uniform", "randint", "randrange", "choice", "choices", "shuffle", "sample", "gauss"}


def calls(paths: list[Path]) -> list[tuple[Path, ast.Call]]:
    found = []
    for path in paths:
        tree = ast.parse(path.read_text(), str(path))
        found += [(path, node) for node in ast.walk(tree) if isinstance(node, ast.Call)]
    return found


def fixed_sleeps(paths: list[Path]) -> list[tuple[str, float]]:
    """(where, seconds) of every fixed sleep of at least half a second."""
    sleeps = []
    for path, call in calls(paths):
        func = call.func
        if not (isinstance(func, ast.Attribute) and call.args and isinstance(call.args[0], ast.Constant)):
            continue
        value = call.args[0].value
        if not isinstance(value, int | float):
            continue
        is_time_sleep = func.attr == "sleep" and isinstance(func.value, ast.Name) and func.value.id == "time"
        seconds = value if is_time_sleep else value / 1000 if func.attr == "wait_for_timeout" else 0.0
        if seconds >= 0.5:
            sleeps.append((f"{path.name}:{call.lineno}", float(seconds)))
    return sleeps


def test_fixed_sleep_in_the_tests_stays_within_its_budget() -> None:
    sleeps = fixed_sleeps(TESTS)
    total = sum(seconds for _, seconds in sleeps)
    print(f"fixed sleep in tests/: {total:.1f} s in {len(sleeps)} places")
    assert total <= BUDGET, f"{total:.1f} s of fixed sleep (budget {BUDGET} s): wait_until a condition: {sleeps}"


def test_the_budget_counts_time_sleep_and_playwright_waits_only(tmp_path: Path) -> None:
    sample = tmp_path / "test_sample.py"
    sample.write_text("time.sleep(2)\ntime.sleep(0.1)\npage.wait_for_timeout(1500)\nschedule.sleep(9)\ntime.sleep(x)\n")
    assert fixed_sleeps([sample]) == [("test_sample.py:1", 2.0), ("test_sample.py:3", 1.5)]


def test_no_unseeded_randomness() -> None:
    """`random.uniform(...)` and friends draw from the shared, unseeded generator: use
    `random.Random(seed)` so a failing run can be repeated."""
    offenders = [
        f"{path.name}:{call.lineno}"
        for path, call in calls(TESTS)
        if isinstance(call.func, ast.Attribute)
        and isinstance(call.func.value, ast.Name)
        and call.func.value.id == "random"
        and call.func.attr in UNSEEDED
    ]
    assert not offenders, offenders
