"""Soak: the demo's workload for 60 seconds, watched over HTTP like a real deployment.

The demo's six tools (``laios._demo.build_registry()``) are driven by the demo's own
``_Workload`` (single tasks with timeouts, hung tools, unknown tools, retries with backoff,
parallel batches, async imports with progress and cancellations) through a proxy that counts
every task run it issues. ``/metrics`` and ``/status`` are fetched every second. The store's
retention is set small (250 records and tracked ids, about 10 s of this workload) so that the
bounded structures are full after the warm-up: from then on any growth of the resident set would
be a leak.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from rel_support import http_get, wait_until

from laios._demo import _Workload, build_registry
from laios.core.types import Context, Task, TaskResult
from laios.execution.executor import Executor, ResourceLimits
from laios.execution.retry import sleeps_disabled
from laios.execution.server import start_http_server
from laios.execution.store import MetricStore

#: All of this module's tests read one costly run (a module fixture): on one worker, it runs once.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("rel_soak")]

DURATION = 60.0
WARM_UP = 15.0
RETENTION = 250
MB = 1024 * 1024


def rss_bytes() -> int:
    """The resident set size of this process, from /proc/self/status."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS line in /proc/self/status")


class CountingExecutor:
    """Forwards the workload's calls to the executor and counts the task runs they issue."""

    def __init__(self, executor: Executor) -> None:
        self._executor = executor
        self._lock = threading.Lock()
        self.runs = 0
        self.calls = 0

    def _count(self, runs: int) -> None:
        with self._lock:
            self.runs += runs
            self.calls += 1

    def execute_task(self, task: Task, context: Context, *args: Any, **kwargs: Any) -> TaskResult:
        result = self._executor.execute_task(task, context, *args, **kwargs)
        self._count(1)
        return result

    def execute_with_retry(self, task: Task, context: Context, **kwargs: Any) -> TaskResult:
        result = self._executor.execute_with_retry(task, context, **kwargs)
        self._count(int(result.metadata["retries"]) + 1)
        return result

    async def execute_async(self, task: Task, context: Context, **kwargs: Any) -> TaskResult:
        result = await self._executor.execute_async(task, context, **kwargs)
        self._count(1)
        return result

    async def execute_parallel(
        self, tasks: list[Task], context: Context, **kwargs: Any
    ) -> list[TaskResult]:
        results = await self._executor.execute_parallel(tasks, context, **kwargs)
        self._count(len(results))
        return results

    def cancel_task(self, task_id: str) -> bool:
        return self._executor.cancel_task(task_id)


@dataclass
class SoakRun:
    """What the soak observed."""

    rss: list[tuple[float, int]] = field(default_factory=list)
    polls: int = 0
    slowest_poll: float = 0.0
    failed_polls: list[str] = field(default_factory=list)
    runs_issued: int = 0
    calls: int = 0
    tasks_total: float = 0.0
    outcomes: dict[str, float] = field(default_factory=dict)
    workload_alive_at_end: bool = True
    workload_stopped: bool = False
    settled: bool = False


@pytest.fixture(scope="module")
def soak() -> Iterator[SoakRun]:
    """Run the demo workload for 60 s, polling the endpoint each second; settle; scrape."""
    store = MetricStore(record_capacity=RETENTION, max_tracked_ids=RETENTION)
    prom = CollectorRegistry()
    executor = Executor(
        build_registry(),
        ResourceLimits(timeout_seconds=5.0),
        max_workers=8,
        store=store,
        prometheus_registry=prom,
    )
    proxy = CountingExecutor(executor)
    server = start_http_server(0, store=store, registry=prom)
    workload = _Workload(proxy, Context(session_id="soak", user_id="soak"))  # type: ignore[arg-type]
    run = SoakRun()
    started = time.monotonic()
    workload.start()
    try:
        for tick in range(1, int(DURATION) + 1):
            time.sleep(max(0.0, started + tick - time.monotonic()))
            for path in ("/metrics", "/status"):
                poll_started = time.monotonic()
                try:
                    code, body = http_get(server.url + path, timeout=5.0)
                    if path == "/status":
                        json.loads(body)
                    if code != 200:
                        run.failed_polls.append(f"{path}: HTTP {code}")
                except Exception as exc:  # every failed poll is reported by the tests
                    run.failed_polls.append(f"{path}: {type(exc).__name__}: {exc}")
                run.slowest_poll = max(run.slowest_poll, time.monotonic() - poll_started)
                run.polls += 1
            run.rss.append((time.monotonic() - started, rss_bytes()))
        run.workload_alive_at_end = all(t.is_alive() for t in workload.threads)
        with sleeps_disabled():
            workload.join(timeout=30.0)
        run.workload_stopped = not any(t.is_alive() for t in workload.threads)
        run.settled = wait_until(
            lambda: (
                executor.abandoned_threads == 0
                and all(t.in_flight == 0 for t in store.snapshot().tools)
            ),
            timeout=10.0,
            step=0.05,
        )
        run.runs_issued, run.calls = proxy.runs, proxy.calls
        text = http_get(server.url + "/metrics")[1]
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "laios_tasks_total":
                    outcome = sample.labels["outcome"]
                    run.outcomes[outcome] = run.outcomes.get(outcome, 0.0) + sample.value
        run.tasks_total = sum(run.outcomes.values())
        yield run
    finally:
        workload.stop.set()
        server.shutdown()
        executor.shutdown(wait=False)


def test_the_workload_ran_every_kind_of_outcome(soak: SoakRun) -> None:
    """The soak issued thousands of runs with successes, errors, timeouts and rejections."""
    assert soak.calls > 500
    for outcome in ("success", "error", "timeout", "rejected"):
        assert soak.outcomes.get(outcome, 0) > 0, soak.outcomes


def test_rss_is_flat_after_warm_up(soak: SoakRun) -> None:
    """After 15 s of warm-up the resident set stays within +-5 MB until the end (60 s)."""
    after = [(t, rss) for t, rss in soak.rss if t >= WARM_UP]
    assert len(after) >= 40
    baseline = after[0][1]
    drift = [(round(t), (rss - baseline) / MB) for t, rss in after]
    assert all(abs(mb) <= 5.0 for _, mb in drift), drift


def test_counters_match_the_work_issued(soak: SoakRun) -> None:
    """The sum of laios_tasks_total equals the task runs the workload issued."""
    assert soak.workload_stopped, "the workload threads did not stop"
    assert soak.settled, "tasks were still in flight or abandoned 10 s after the workload stopped"
    assert soak.tasks_total == soak.runs_issued


def test_workload_threads_survived_the_soak(soak: SoakRun) -> None:
    """No workload thread died of an exception during the 60 s."""
    assert soak.workload_alive_at_end


def test_metrics_and_status_answered_every_second(soak: SoakRun) -> None:
    """Every poll of /metrics and /status (one each per second) answered 200 within 2 s."""
    assert soak.failed_polls == []
    assert soak.polls >= 2 * int(DURATION) - 4
    assert soak.slowest_poll < 2.0, f"slowest poll {soak.slowest_poll:.2f} s"
