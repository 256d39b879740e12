"""`promtool check metrics` on the exposition of a varied workload."""

from __future__ import annotations

import shutil
import subprocess
import threading
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.monitor import PerformanceMonitor
from laios.execution.prometheus import ensure_collector, render_metrics
from laios.execution.runners import RunnerStats
from laios.execution.store import MetricStore
from laios.tools.base import BaseTool
from laios.tools.registry import ToolRegistry

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"
HOSTILE_NAMES = ['quo"te', "back\\slash", "new\nline", "ünïcødé 😀", "tab\there", "bad\ud800"]

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which(PROMTOOL) is None,
        reason="promtool not installed (Debian: apt-get install prometheus)",
    ),
]


_POOLS: list[object] = []


class _Pool:
    """The part of a runner the store reads: one thread held by a hung tool (busy running it)."""

    stats = RunnerStats(workers=0, busy=1, abandoned=1)


def promtool_check(exposition: bytes) -> str:
    """Run `promtool check metrics` on ``exposition``; return everything it printed."""
    result = subprocess.run(
        [PROMTOOL, "check", "metrics"],
        input=exposition,
        capture_output=True,
        timeout=60,
        check=False,
    )
    return (result.stdout + result.stderr).decode(errors="replace") + (
        f"(exit {result.returncode})" if result.returncode else ""
    )


def varied_workload(store: MetricStore) -> None:
    """Several tools, every outcome, retries, errors, custom metrics and hostile names."""
    for tool in ["fetch", "parse", "summarise", *HOSTILE_NAMES]:
        slot = store.tool_slot(tool, True)
        for index, outcome in enumerate(["success", "error", "timeout", "cancelled", "rejected"]):
            task = SimpleNamespace(id=f"{tool}-{index}")
            rec = store.task_submitted(None, task, tool, slot, running=False)
            store.task_started(rec)
            error_type = {"error": "ValueError", "timeout": "timeout", "rejected": "saturated"}
            store.task_finished(
                rec,
                outcome=outcome,
                status=None,
                error_type=error_type.get(outcome),
                exemplar=(TRACE_ID, SPAN_ID),
            )
        store.task_retried(slot)
    unknown = store.tool_slot("not-registered", False)
    rec = store.task_submitted(None, SimpleNamespace(id="u"), "nope", unknown, running=True)
    store.task_finished(rec, outcome="rejected", status=None, error_type="tool_not_found")
    running = store.task_submitted(
        None, SimpleNamespace(id="r"), "fetch", store.tool_slot("fetch", True), running=True
    )
    assert running.state == "running"
    store.record_custom("t", "response_time", 1.25, "seconds")
    store.record_custom("t", 'odd "name"\n', 3, "bytes")
    pool = _Pool()
    _POOLS.append(pool)  # the store holds its pools only weakly
    store.register_runner(pool)


def test_promtool_accepts_the_exposition_of_a_varied_workload() -> None:
    """promtool prints nothing for the text exposition of a varied workload."""
    store, registry = MetricStore(), CollectorRegistry()
    ensure_collector(store, registry)
    varied_workload(store)
    exposition = generate_latest(registry)
    assert b"\nlaios_executor_busy_workers 1.0\n" in exposition
    assert promtool_check(exposition) == ""


def test_promtool_accepts_labelled_stores_with_their_own_buckets() -> None:
    """promtool prints nothing for stores with constant labels and buckets of their own, one
    of them gone (its counts folded)."""
    registry = CollectorRegistry()
    plain = MetricStore()
    search = MetricStore(labels={"pool": "search"}, duration_buckets=[0.05, 0.5, 5])
    gone = MetricStore(labels={"pool": "batch"}, queue_wait_buckets=[1, 60])
    for store in (plain, search, gone):
        ensure_collector(store, registry)
        varied_workload(store)
    del gone, store
    body = render_metrics(registry)
    assert b'laios_tasks_total{outcome="success",pool="batch",tool="fetch"} 1.0' in body
    assert promtool_check(body) == ""


def test_promtool_accepts_the_exposition_of_an_idle_store() -> None:
    """promtool prints nothing for a store that has seen no task."""
    store, registry = MetricStore(), CollectorRegistry()
    ensure_collector(store, registry)
    assert promtool_check(generate_latest(registry)) == ""


class Echo(BaseTool):
    name = "echo"
    description = "Returns its keyword arguments"

    def _execute(self, **kwargs: Any) -> Any:
        return kwargs


class Fail(BaseTool):
    name = "fail"
    description = "Always raises KeyError"

    def _execute(self, **kwargs: Any) -> Any:
        raise KeyError("always")


RELEASE = threading.Event()


class Hang(BaseTool):
    name = "hang"
    description = "Waits until released, to overrun its timeout"

    def _execute(self, **kwargs: Any) -> Any:
        RELEASE.wait(10)
        return None


def test_promtool_accepts_the_exposition_of_executor_runs() -> None:
    """promtool prints nothing after real runs: errors, timeouts, retries, custom metrics."""
    tools = ToolRegistry()
    tools.register_tools([Echo, Fail, Hang])
    hostile = {name: Echo() for name in HOSTILE_NAMES}
    for name, tool in hostile.items():  # (renamed after it was made: the registry refuses most)
        tool.name = name
    lookup = SimpleNamespace(get_tool=lambda name, /: hostile.get(name) or tools.get_tool(name))
    store, registry = MetricStore(), CollectorRegistry()
    context = Context(session_id="s", user_id="u")

    def task(tool: str) -> Task:
        return Task(plan_id="p", description="promtool", tool_name=tool)

    try:
        with Executor(lookup, store=store, prometheus_registry=registry) as executor:
            for name in ["echo", "fail", "missing", *HOSTILE_NAMES]:
                executor.execute_task(task(name), context, timeout=5)
            executor.execute_with_retry(task("fail"), context, max_retries=2, retry_delay=0.001)
            assert not executor.execute_task(task("hang"), context, timeout=0.05).success
            PerformanceMonitor(store).record_metric("t", "rows_read", 42, "rows")
            assert promtool_check(generate_latest(registry)) == ""
    finally:
        RELEASE.set()
