"""Exactly one outcome per accepted task, under concurrency, found by stateful testing.

Hypothesis drives random sequences of submissions (success, failure, exception, timeout,
cancellable and unknown tools; inline, pooled, async, parallel and retried), cancellations
(of running tasks, of any task submitted so far, and of ids not submitted yet), and a shutdown,
from 8 caller threads against one executor. A sampler thread reads the gauges throughout.
At the end of every sequence:

- every call returned a ``TaskResult`` (nothing raised), with one valid outcome;
- the sum of ``laios_tasks_total`` equals the task runs issued (a retried task counts each
  attempt), and each run fired exactly one terminal ``on_progress`` event;
- the in-flight and queue gauges never went below 0 and end at 0, and no thread stays abandoned.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from prometheus_client import CollectorRegistry
from rel_support import Kit, build_registry, make_task, sample_sum, samples, wait_until

from laios.core.types import Context, Task, TaskResult
from laios.execution.executor import Executor
from laios.execution.store import MetricStore

CALLER_THREADS = 8
OUTCOMES = {"success", "error", "timeout", "cancelled", "rejected"}
TERMINAL_EVENTS = {"completed", "failed", "timeout", "cancelled"}

#: kind -> (tool, parameters, timeout to use when the mode allows one)
KINDS: dict[str, tuple[str, dict[str, Any], float | None]] = {
    "success": ("fast", {}, 2.0),
    "failure": ("fail", {}, 2.0),
    "exception": ("boom", {}, 2.0),
    "timeout": ("sleep", {"seconds": 0.1}, 0.01),
    "cancellable": ("poll_cancel", {"interval": 0.005, "max_seconds": 0.3}, 2.0),
    "unknown": ("no_such_tool", {}, 2.0),
}
MODES = ("inline", "task_timeout", "async", "retry")


class Sampler:
    """Reads the store's gauges every millisecond and keeps the lowest values seen."""

    def __init__(self, executor: Executor, registry: CollectorRegistry) -> None:
        self.executor = executor
        self.registry = registry
        self.lowest = {"in_flight": 0, "queue_depth": 0, "abandoned": 0, "exported_in_flight": 0.0}
        self.reads = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rel-sampler", daemon=True)
        self._thread.start()

    def read(self) -> None:
        """Take one reading of the store and, every 20th time, of the exposition."""
        snapshot = self.executor.store.snapshot()
        low = self.lowest
        low["in_flight"] = min([low["in_flight"], *(t.in_flight for t in snapshot.tools)])
        low["queue_depth"] = min(low["queue_depth"], snapshot.queue_depth)
        low["abandoned"] = min(low["abandoned"], snapshot.abandoned_threads)
        if self.reads % 20 == 0:
            exported = [v for _, v in samples(self.registry, "laios_tasks_in_flight")]
            low["exported_in_flight"] = min([low["exported_in_flight"], *exported])
        self.reads += 1

    def _run(self) -> None:
        while not self._stop.wait(0.001):
            self.read()

    def stop(self) -> None:
        """Stop sampling (after one last reading)."""
        self._stop.set()
        self._thread.join(5.0)
        self.read()


class OneOutcomeMachine(RuleBasedStateMachine):
    """Random submit / cancel / timeout / shutdown sequences from 8 threads: one outcome each."""

    def __init__(self) -> None:
        super().__init__()
        self.kit = Kit()
        self.store = MetricStore()
        self.registry = CollectorRegistry()
        self.executor = Executor(
            build_registry(self.kit),
            max_workers=4,
            store=self.store,
            prometheus_registry=self.registry,
        )
        self.ctx = Context(session_id="stateful", user_id="u")
        self.callers = ThreadPoolExecutor(CALLER_THREADS, thread_name_prefix="rel-caller")
        self.calls: list[tuple[str, Future[list[tuple[Task, TaskResult]]]]] = []
        self.cancellable: list[str] = []
        self.submitted: list[str] = []
        self.precancelled: set[str] = set()
        self.events: Counter[tuple[str, str]] = Counter()
        self.events_lock = threading.Lock()
        self.shut = False
        self.sampler = Sampler(self.executor, self.registry)

    # -- helpers -----------------------------------------------------------------------

    def on_progress(self, event: str, data: Any) -> None:
        with self.events_lock:
            self.events[(data["task_id"], event)] += 1

    def new_task(self, kind: str, task_id: str | None = None) -> tuple[Task, float | None]:
        tool, params, timeout = KINDS[kind]
        task = make_task(tool, task_id=task_id, **params)
        self.submitted.append(task.id)
        if kind == "cancellable":
            self.cancellable.append(task.id)
        return task, timeout

    def run(self, mode: str, task: Task, timeout: float | None) -> list[tuple[Task, TaskResult]]:
        executor, ctx, callback = self.executor, self.ctx, self.on_progress
        if mode == "inline":
            limit = timeout if task.tool_name == "sleep" else None
            result = executor.execute_task(task, ctx, timeout=limit, on_progress=callback)
        elif mode == "task_timeout":
            result = executor.execute_task(task, ctx, timeout=timeout, on_progress=callback)
        elif mode == "async":
            result = asyncio.run(
                executor.execute_async(task, ctx, timeout=timeout, on_progress=callback)
            )
        else:
            result = executor.execute_with_retry(
                task, ctx, max_retries=2, retry_delay=0, timeout=timeout, on_progress=callback
            )
        return [(task, result)]

    def run_batch(self, tasks: list[Task], timeout: float | None) -> list[tuple[Task, TaskResult]]:
        coroutine = self.executor.execute_parallel(
            tasks, self.ctx, timeout=timeout, on_progress=self.on_progress
        )
        return list(zip(tasks, asyncio.run(coroutine), strict=True))

    # -- rules -------------------------------------------------------------------------

    @rule(kind=st.sampled_from(sorted(KINDS)), mode=st.sampled_from(MODES))
    def submit(self, kind: str, mode: str) -> None:
        task, timeout = self.new_task(kind)
        self.calls.append((mode, self.callers.submit(self.run, mode, task, timeout)))

    @rule(kinds=st.lists(st.sampled_from(sorted(KINDS)), min_size=1, max_size=6))
    def submit_batch(self, kinds: list[str]) -> None:
        tasks = [self.new_task(kind)[0] for kind in kinds]
        timeout = KINDS["timeout"][2] if "timeout" in kinds else None
        self.calls.append(("parallel", self.callers.submit(self.run_batch, tasks, timeout)))

    @rule(mode=st.sampled_from(MODES))
    def cancel_before_submit(self, mode: str) -> None:
        task_id = f"pre-{uuid.uuid4()}"
        registered = self.executor.cancel_task(task_id)
        assert registered is (not self.shut)
        if registered:
            self.precancelled.add(task_id)
        task, timeout = self.new_task("success", task_id=task_id)
        self.calls.append((mode, self.callers.submit(self.run, mode, task, timeout)))

    @rule()
    def cancel_running(self) -> None:
        # Only a task whose tool has started (its caller is already waiting for it); wait a
        # little for one, and do nothing when none starts (queued, rejected or finished).
        def started() -> list[str]:
            return [i for i in self.cancellable if self.kit.has_entered(i)]

        if self.cancellable and wait_until(lambda: bool(started()), timeout=0.2):
            task_id = started()[0]
            self.cancellable.remove(task_id)
            self.executor.cancel_task(task_id)

    @rule(pick=st.integers(min_value=0))
    def cancel_any(self, pick: int) -> None:
        # Any task submitted so far, wherever it is: being accepted, queued, running or done.
        if self.submitted:
            self.executor.cancel_task(self.submitted[pick % len(self.submitted)])

    @rule(count=st.integers(min_value=2, max_value=8))
    def timeout_burst(self, count: int) -> None:
        # Several tools overrunning at once: abandoned threads, replacements, maybe saturation.
        for _ in range(count):
            task, timeout = self.new_task("timeout")
            self.calls.append(
                ("task_timeout", self.callers.submit(self.run, "task_timeout", task, timeout))
            )

    @precondition(lambda self: not self.shut and len(self.calls) >= 10)
    @rule()
    def shutdown(self) -> None:
        self.shut = True
        self.executor.shutdown(wait=False)

    @invariant()
    def gauges_never_negative(self) -> None:
        snapshot = self.store.snapshot()
        assert all(t.in_flight >= 0 for t in snapshot.tools)
        assert snapshot.queue_depth >= 0
        assert snapshot.abandoned_threads >= 0

    # -- the end of a sequence ----------------------------------------------------------

    def teardown(self) -> None:
        try:
            self.check_the_end()
        finally:
            self.kit.release.set()
            self.sampler.stop()
            self.callers.shutdown(wait=False)
            self.executor.shutdown(wait=True)

    def check_the_end(self) -> None:
        futures = [future for _, future in self.calls]
        _, pending = wait_futures(futures, timeout=30.0)
        assert not pending, f"{len(pending)} calls never returned"
        assert wait_until(lambda: self.store.abandoned_threads == 0, timeout=10.0)
        self.sampler.stop()

        runs = 0
        runs_per_task: Counter[str] = Counter()
        for mode, future in self.calls:
            assert future.exception() is None, repr(future.exception())
            for task, result in future.result():
                assert isinstance(result, TaskResult)
                outcome = result.metadata["outcome"]
                assert outcome in OUTCOMES
                assert result.success is (outcome == "success")
                if task.id in self.precancelled:
                    assert outcome in ("cancelled", "rejected"), outcome
                attempts = result.metadata["retries"] + 1 if mode == "retry" else 1
                runs += attempts
                runs_per_task[task.id] += attempts

        assert sample_sum(self.registry, "laios_tasks_total") == runs

        def terminal(task_id: str) -> int:
            return sum(self.events[(task_id, event)] for event in TERMINAL_EVENTS)

        # A task rejected before acceptance work fires "failed" too: every run fires one. A
        # caller whose deadline passed while its task was finishing has its result before the
        # outcome event fires: the event may come just after.
        wait_until(lambda: all(terminal(t) >= n for t, n in runs_per_task.items()), timeout=5.0)
        for task_id, attempts in runs_per_task.items():
            assert terminal(task_id) == attempts, (task_id, terminal(task_id), attempts)

        snapshot = self.store.snapshot()
        assert [t.in_flight for t in snapshot.tools if t.in_flight] == []
        assert snapshot.queue_depth == 0
        assert snapshot.abandoned_threads == 0
        assert self.executor.abandoned_threads == 0
        assert sample_sum(self.registry, "laios_tasks_in_flight") == 0
        assert all(value >= 0 for value in self.sampler.lowest.values()), self.sampler.lowest
        assert self.sampler.reads > 0


TestExactlyOneOutcome = OneOutcomeMachine.TestCase
TestExactlyOneOutcome.settings = settings(
    max_examples=25,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
