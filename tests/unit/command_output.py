"""Running a command (``python -m ...``) whose standard output cannot be written: to a full
disk (``> /dev/full``), with stdout closed (``>&-``), or to a pipe whose reader is gone
(``| true``). Each returns the finished process, its stderr as text."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence

__all__ = ["run_to_a_full_disk", "run_to_a_gone_reader", "run_with_stdout_closed"]

#: Seconds a command may take.
TIMEOUT = 60


def run_to_a_full_disk(module: str, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """``python -m module argv > /dev/full``."""
    with open("/dev/full", "w") as full:
        return subprocess.run(
            [sys.executable, "-m", module, *argv],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )


def run_with_stdout_closed(module: str, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """``python -m module argv >&-`` (Python then has no ``sys.stdout``)."""
    return subprocess.run(
        ["sh", "-c", 'exec "$@" >&-', "sh", sys.executable, "-m", module, *argv],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def run_to_a_gone_reader(module: str, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """``python -m module argv | true``, the reader gone before anything is written."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [sys.executable, "-m", module, *argv],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
    finally:
        os.close(write_end)
