"""Run Python scripts in fresh interpreters, a few at a time, for the docs and examples tests.

Each script runs as ``python -W error <file>`` in a clean environment (no content-capture or
retry-sleep switches inherited from the caller), with a timeout, so one broken or hanging
snippet fails its own test and nothing else.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: Longest a single script may run, in seconds.
TIMEOUT = 60.0
#: Environment switches that would change what a script does; removed before running it.
_INHERITED_SWITCHES = (
    "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
    "LAIOS_RETRY_SLEEP",
    "PYTHONWARNINGS",
)


@dataclass(frozen=True)
class Run:
    """What one script run produced."""

    returncode: int | None  # None when it timed out
    stdout: str
    stderr: str
    seconds: float

    def describe(self) -> str:
        """A failure message with the exit status and both output streams."""
        if self.returncode is None:
            status = f"timed out after {TIMEOUT:g}s"
        else:
            status = f"exit status {self.returncode}"
        return (
            f"{status} ({self.seconds:.1f}s)\n--- stdout ---\n{self.stdout}\n"
            f"--- stderr ---\n{self.stderr}"
        )


def script_env() -> dict[str, str]:
    """The environment scripts run in: the caller's, minus behaviour switches."""
    env = {k: v for k, v in os.environ.items() if k not in _INHERITED_SWITCHES}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    src = str(ROOT / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    return env


def run_script(path: Path, cwd: Path) -> Run:
    """Run ``path`` with the current interpreter, warnings as errors."""
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-W", "error", str(path)],
            cwd=cwd,
            env=script_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            timeout=TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        return Run(None, _text(exc.stdout), _text(exc.stderr), time.monotonic() - started)
    return Run(done.returncode, done.stdout, done.stderr, time.monotonic() - started)


#: The pytest timeout of tests whose module fixture calls :func:`run_all`: the first of them
#: pays for running every script (in its setup, which counts toward its timeout), which on a
#: machine busy with other work can take minutes.
RUNS_TIMEOUT = 900


def run_all(scripts: Mapping[str, Path], cwd: Path) -> dict[str, Run]:
    """Run several scripts concurrently; return their runs by key."""
    workers = max(2, min(6, (os.cpu_count() or 2) + 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {key: pool.submit(run_script, path, cwd) for key, path in scripts.items()}
        return {key: future.result() for key, future in futures.items()}


def _text(value: str | bytes | None) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value
