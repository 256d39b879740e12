"""The benchmark command keeps working: every case runs, at tiny sizes, and reports a ratio.

The numbers of such a run mean nothing (sizes are 1% of the real ones); only the shape of the
output is checked. The real run is ``python tests/benchmarks/run.py`` (docs/performance.md).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

RUN = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"
CASES = ["N0", "P1", "P2", "P3", "P4", "P5", "P6", "P7", "P8"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RUN), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_every_case_reports_a_numeric_ratio_quickly() -> None:
    started = time.monotonic()
    proc = _run("--scale", "0.01", "--rounds", "2", "--json")
    elapsed = time.monotonic() - started

    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    cases = {case["case"]: case for case in report["cases"]}
    assert list(cases) == CASES
    for name, case in cases.items():
        ratio = case["ratio"]
        assert isinstance(ratio, float), name
        assert math.isfinite(ratio), name
        assert ratio > 0, name
        assert isinstance(case["passed"], bool), name
        assert case["target"], name
    env = report["environment"]
    assert {"python", "cpu_pinned", "laios", "date"} <= set(env)
    assert elapsed < 20, f"the smoke run took {elapsed:.1f} s"


def test_cases_can_be_selected_and_strict_fails_on_a_missed_target() -> None:
    # Whether a target is met at 1% of the sizes is noise; --strict must exit non-zero exactly
    # when some selected target is reported as failed.
    proc = _run("--scale", "0.01", "--rounds", "1", "--cases", "p5,N0", "--json", "--strict")

    report = json.loads(proc.stdout)
    assert [case["case"] for case in report["cases"]] == ["N0", "P5"]
    all_passed = all(case["passed"] for case in report["cases"])
    assert proc.returncode == (0 if all_passed else 1)


def test_an_unknown_case_is_an_error() -> None:
    proc = _run("--cases", "P9")

    assert proc.returncode == 2
    assert "unknown case" in proc.stderr


def test_the_step_profile_runs_and_accounts_for_every_step() -> None:
    steps = Path(__file__).resolve().parents[1] / "benchmarks" / "steps.py"
    proc = subprocess.run(
        [sys.executable, str(steps), "--calls", "200", "--rounds", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    rows = {}
    for line in proc.stdout.splitlines():
        name, _, value = line.rpartition(" ")
        try:
            rows[name.strip()] = float(value)
        except ValueError:
            continue
    assert "sum of the steps" in rows
    assert "execute_task(Task(...)) minus Task(...)" in rows
    assert "datetime.now(timezone.utc)" in rows
    firsts = ("find the tool", "record it", "run the tool", "of which: task status")
    firsts += ("of which: finish", "hand the result")
    assert len([k for k in rows if k.startswith(firsts)]) == len(firsts)
    assert rows["sum of the steps"] > 0
