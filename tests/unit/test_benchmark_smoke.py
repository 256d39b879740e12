"""The benchmark command keeps working: every case runs, at tiny sizes, and reports a ratio
(or, for a case judged against a fixed budget, its number).

The numbers of such a run mean nothing (sizes are 1% of the real ones); only the shape of the
output is checked. The real run is ``python tests/benchmarks/run.py`` (docs/performance.md).
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"
STEPS = Path(__file__).resolve().parents[1] / "benchmarks" / "steps.py"
CASES = [
    "N0",
    "P1",
    "P2",
    "P3",
    "P4",
    "P5",
    "P6",
    "P7",
    "P8",
    "P9",
    "P10",
    "P11",
    "P12",
    "P13",
    "P14",
]
#: Cases measured against a fixed budget instead of a baseline: a number of seconds, no ratio.
ABSOLUTE = {"P12"}


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RUN), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_every_case_reports_a_numeric_ratio_quickly() -> None:
    # (Bounded by _run's timeout, not by a timed assertion: on a loaded machine the run,
    # which starts a local Dask cluster for P13, takes two or three times its usual 20 s.)
    proc = _run("--scale", "0.01", "--rounds", "2", "--json")

    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    cases = {case["case"]: case for case in report["cases"]}
    assert list(cases) == CASES
    for name, case in cases.items():
        ratio = case["ours"] if name in ABSOLUTE else case["ratio"]
        assert isinstance(ratio, float), name
        assert math.isfinite(ratio), name
        assert ratio > 0, name
        assert isinstance(case["passed"], bool), name
        assert case["target"], name
    env = report["environment"]
    assert {"python", "cpu_pinned", "laios", "date"} <= set(env)
    # The async cases ran at their smallest sizes, and P9 on a limit that fits its batch.
    assert cases["P9"]["unit"] == "ms/batch"
    assert cases["P9"]["title"].startswith("100 async tools")
    assert cases["P9"]["extra"]["max_async_tools"] >= 100
    assert cases["P10"]["unit"] == "us/call"
    assert len(cases["P10"]["rounds"]) == 2


def test_cases_can_be_selected_and_strict_fails_on_a_missed_target() -> None:
    # Whether a target is met at 1% of the sizes is noise; --strict must exit non-zero exactly
    # when some selected target is reported as failed.
    proc = _run("--scale", "0.01", "--rounds", "1", "--cases", "p10,p5,N0", "--json", "--strict")

    report = json.loads(proc.stdout)
    assert [case["case"] for case in report["cases"]] == ["N0", "P5", "P10"]
    all_passed = all(case["passed"] for case in report["cases"])
    assert proc.returncode == (0 if all_passed else 1)


def test_an_unknown_case_is_an_error() -> None:
    proc = _run("--cases", "P99")

    assert proc.returncode == 2
    assert "unknown case" in proc.stderr


def test_the_step_profile_runs_and_accounts_for_every_step() -> None:
    proc = subprocess.run(
        [sys.executable, str(STEPS), "--calls", "200", "--rounds", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    rows: dict[str, tuple[float, float | None]] = {}
    for line in proc.stdout.splitlines():
        match = re.fullmatch(r"(.+?)\s+(-?[\d.]+)(?:\s+(-?[\d.]+)%)?", line)
        if match:
            name, value, share = match.groups()
            rows[name] = (float(value), None if share is None else float(share))
    firsts = ("build the Task", "find the tool", "the tool's slot", "record it as running")
    firsts += ("run the tool", "record the finish", "build the result")
    steps = {name: row for name, row in rows.items() if name.startswith(firsts)}
    assert len(steps) == len(firsts), sorted(rows)
    for name, (_, share) in steps.items():
        assert share is not None, name
    whole, whole_share = rows["execute_task(Task(...)), whole"]
    assert whole > 0
    assert whole_share == 100.0
    total, _ = rows["sum of the steps"]
    assert total == pytest.approx(sum(us for us, _ in steps.values()), abs=0.05)
    assert "the rest (job, task fields, checks, calls between the steps)" in rows
    assert any(name.startswith("pooled road") for name in rows)
    assert "datetime.now(timezone.utc)" in rows
    assert "TaskResult(...) (validated)" in rows


def test_the_cpu_time_benchmark_reports_both_settings() -> None:
    """tests/benchmarks/cpu_time.py runs and prints a figure for each setting."""
    proc = subprocess.run(
        [sys.executable, str(RUN.parent / "cpu_time.py"), "--rounds", "2", "--calls", "20"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    figures = re.findall(r"measure_cpu_time=(True|False)\s+([\d.]+) µs/call", proc.stdout)
    assert [setting for setting, _ in figures] == ["False", "True"]
    assert all(float(value) > 0 for _, value in figures)
