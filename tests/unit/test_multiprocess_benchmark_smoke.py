"""The multiprocess measurement keeps working: ``tests/benchmarks/multiprocess.py --quick``
prints its three figures (the real run is in docs/guides/multiprocess.md)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "multiprocess.py"

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def test_the_measurement_prints_write_scrape_and_sigkill_figures() -> None:
    """A quick run prints a write and scrape cost for 10 and 200 tools, and a SIGKILL loss."""
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    for tools, line in zip((10, 200), lines, strict=False):
        assert re.fullmatch(
            rf"{tools} tools: a write [\d.]+ ms \(\d+ KiB\), [\d.]+x a plain render \([\d.]+ ms\); "
            r"a scrape over 4 processes' files [\d.]+ ms, [\d.]+x",
            line,
        ), line
    assert re.fullmatch(
        r"SIGKILL, interval 0.1 s, 1 kills: lost \d+ tasks on average \(max \d+\), i\.e\. "
        r"[\d.]+ s of work on average, at most [\d.]+ s",
        lines[2],
    ), lines[2]
