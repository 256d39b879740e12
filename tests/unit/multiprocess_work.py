"""Shared by the multiprocess tests: recording tasks into a store, and forking a worker.

Import as ``from multiprocess_work import ...`` (``tests/unit`` is on the path of its tests).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from store_fakes import StatsOnlyRunner

from laios.execution.store import MetricStore

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"
HOSTILE_NAMES = ['quo"te', "back\\slash", "new\nline", "ünïcødé 😀", "bad\ud800"]
ERROR_TYPES = {"error": "ValueError", "timeout": "timeout", "rejected": "saturated"}
#: Longest a forked child may take before a test gives up on it.
CHILD_SECONDS = 20.0
_POOLS: list[object] = []


def run_tasks(store: MetricStore, count: int, tool: str = "echo", outcome: str = "success") -> None:
    """Record ``count`` finished tasks of ``tool`` with ``outcome`` (traced: with exemplars)."""
    slot = store.tool_slot(tool, True)
    for index in range(count):
        task = SimpleNamespace(id=f"{tool}-{index}")
        record = store.task_submitted(None, task, tool, slot, running=False)
        store.task_started(record)
        store.task_finished(
            record,
            outcome=outcome,
            status=None,
            error_type=ERROR_TYPES.get(outcome),
            exemplar=(TRACE_ID, SPAN_ID),
        )


def varied_workload(store: MetricStore) -> None:
    """Every outcome, retries, errors, custom metrics, gauges and hostile tool names."""
    for tool in ["fetch", "parse", *HOSTILE_NAMES]:
        for outcome in ["success", "error", "timeout", "cancelled", "rejected"]:
            run_tasks(store, 2, tool, outcome)
        store.task_retried(store.tool_slot(tool, True))
    slot = store.tool_slot("fetch", True)
    running = store.task_submitted(None, SimpleNamespace(id="r"), "fetch", slot, running=True)
    assert running.state == "running"
    store.record_custom("t", "response_time", 1.25, "seconds")
    store.record_custom("t", 'odd "name"\n', 3, "bytes")
    pool = StatsOnlyRunner(4, abandoned=1, busy=2)
    _POOLS.append(pool)  # the store holds its runners only weakly
    store.register_runner(pool)


def tasks_total(text: str, tool: str = "echo") -> float:
    """The sum of ``laios_tasks_total`` over the outcomes of ``tool`` in exposition text."""
    prefix = "laios_tasks_total{"
    total = 0.0
    for line in text.splitlines():
        if line.startswith(prefix) and f'tool="{tool}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def become_nobody() -> None:
    """Switch a forked child to the user ``nobody`` (65534), as gunicorn's ``--user`` switches
    its workers, having first imported what it could otherwise import only later, lazily:
    the interpreter's own files may be root's alone here (an install under ``/root``), and
    after the switch the child cannot read them. Which lazy imports are pending depends on
    what ran in this process before (``importlib_metadata``, imported by Dask, defers some
    of its own until first use)."""
    from laios.execution import _shared_totals

    _shared_totals.pid_namespace()  # (reads /proc once, then keeps it)
    import multiprocessing.util  # noqa: F401  (imported by multiprocess.enable)

    metadata = sys.modules.get("importlib_metadata")
    for name in getattr(metadata, "__lazy_modules__", ()):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    os.setgid(65534)
    os.setuid(65534)


@dataclass
class Child:
    """A forked child: its pid, and the pipe on which it reports."""

    pid: int
    reports: int

    def report(self) -> dict[str, Any]:
        """Wait for the child's next report (a JSON line)."""
        line = b""
        deadline = time.monotonic() + CHILD_SECONDS
        while not line.endswith(b"\n"):
            if time.monotonic() > deadline:
                raise TimeoutError("the child did not report in time")
            chunk = os.read(self.reports, 1)
            if not chunk:
                raise EOFError(f"the child ended without reporting: {line!r}")
            line += chunk
        report: dict[str, Any] = json.loads(line)
        assert "crashed" not in report, report["crashed"]
        return report

    def kill(self) -> None:
        """SIGKILL the child and reap it."""
        os.kill(self.pid, signal.SIGKILL)
        self.wait()

    def wait(self) -> int:
        """Reap the child; return its exit status (or -signal)."""
        deadline = time.monotonic() + CHILD_SECONDS
        while True:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                os.close(self.reports)
                return os.waitstatus_to_exitcode(status)
            if time.monotonic() > deadline:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
                os.close(self.reports)
                raise TimeoutError("the child hung")
            time.sleep(0.01)


def fork(work: Callable[[Callable[[dict[str, Any]], None]], None]) -> Child:
    """Fork; in the child run ``work(report)`` (``report`` sends a JSON line to the parent),
    then exit with ``os._exit`` (no atexit handlers: as a process that is killed)."""
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():  # (3.12+ warns about forking a threaded process)
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 0
        try:
            os.close(read_end)

            def report(document: dict[str, Any]) -> None:
                os.write(write_end, json.dumps(document).encode() + b"\n")

            work(report)
        except BaseException as exc:
            os.write(write_end, json.dumps({"crashed": repr(exc)}).encode() + b"\n")
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    return Child(pid, read_end)
