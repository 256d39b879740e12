"""A task ended (timed out, cancelled) just as a worker thread starts it keeps the fields of that
one outcome: the worker's "now running" never lands after them, and a run that never started
keeps no ``started_at`` of an earlier run."""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import datetime
from typing import Any

import pytest

from laios.core.types import Context, Task, TaskStatus
from laios.execution._engine import job as job_module
from laios.execution.executor import Executor
from laios.execution.monitor import ProgressStatus
from laios.execution.store import MetricStore
from laios.tools.base import create_simple_tool
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="s", user_id="u")


def _registry(calls: list[str]) -> ToolRegistry:
    registry = ToolRegistry()
    registry.register_tool(create_simple_tool("work", "Works.", lambda: calls.append("ran")))
    return registry


def _cancel_as_it_starts(store: MetricStore, executor: Executor, task: Task) -> list[bool]:
    """Have ``task``'s next run cancelled once the store counts it as started (told on the
    worker's thread, before the worker starts the tool); the list gets what cancel_task said."""
    cancelled: list[bool] = []

    def cancel_as_it_starts(update: Any) -> None:
        if update.status is ProgressStatus.STARTING and not cancelled:
            cancelled.append(executor.cancel_task(task.id))

    store.add_progress_listener(cancel_as_it_starts)
    return cancelled


def test_a_timeout_as_the_worker_starts_the_task_is_the_tasks_last_word(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A timeout that ends the task while its worker is marking it running leaves the task
    failed with its completed_at, and the worker fails on nothing."""
    caller = threading.current_thread()
    caller_returned = threading.Event()
    paused: list[str] = []

    class PausingDatetime(datetime):
        """The worker reads the time once as it marks the task running (the task's
        ``started_at``): it waits there until the caller's timeout has ended the task."""

        @classmethod
        def now(cls, tz: Any = None) -> Any:
            if threading.current_thread() is not caller and not paused:
                paused.append(threading.current_thread().name)
                assert caller_returned.wait(30)
            return datetime.now(tz)

    # No public hook runs between the worker's start of the task and its writing the task's
    # started_at: the job module's clock for task fields is the one place to hold it there.
    monkeypatch.setattr(job_module, "datetime", PausingDatetime)
    calls: list[str] = []
    caplog.set_level(logging.ERROR, logger="laios.execution")
    with Executor(_registry(calls), store=MetricStore(), register_prometheus=False) as executor:
        # A worker thread slower to start than the timeout (a loaded machine) finds the task
        # ended in the queue and never starts it: such a run is no race, and is run again.
        for _ in range(10):
            task = Task(plan_id="p", description="d", tool_name="work")
            caller_returned.clear()
            try:
                result = executor.execute_task(task, CONTEXT, timeout=0.2)
            finally:
                caller_returned.set()
            if paused:
                break
    assert paused, "the worker never reached the start of the task"
    assert result.metadata["outcome"] == "timeout"
    assert task.status is TaskStatus.FAILED
    assert task.completed_at is not None
    assert task.started_at is None or task.started_at <= task.completed_at
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_a_run_again_cancelled_as_its_worker_picks_it_up_keeps_no_earlier_start() -> None:
    """A task run again and cancelled after its worker took it from the queue but before its
    tool started has no started_at: not the earlier run's."""
    calls: list[str] = []
    store = MetricStore()
    task = Task(plan_id="p", description="d", tool_name="work")
    with Executor(_registry(calls), store=store, register_prometheus=False) as executor:
        assert executor.execute_task(task, CONTEXT, timeout=30).success
        assert task.started_at is not None
        cancelled = _cancel_as_it_starts(store, executor, task)
        result = executor.execute_task(task, CONTEXT, timeout=30)
    assert cancelled == [True]
    assert result.metadata["outcome"] == "cancelled"
    assert calls == ["ran"]  # the first run only
    assert task.status is TaskStatus.CANCELLED
    assert task.completed_at is not None
    assert task.started_at is None


def test_a_run_cancelled_as_its_worker_picks_it_up_is_recorded_as_never_started() -> None:
    """A run cancelled after its worker took it from the queue but before its tool started is
    recorded as never started, wherever the store shows it: no ``started`` checkpoint, a
    duration of 0, ``started`` false for finish listeners, and its queue wait counted once."""
    calls: list[str] = []
    store = MetricStore()
    ended: list[Any] = []
    store.add_finish_listener(ended.append)
    task = Task(plan_id="p", description="d", tool_name="work")
    with Executor(_registry(calls), store=store, register_prometheus=False) as executor:
        cancelled = _cancel_as_it_starts(store, executor, task)
        result = executor.execute_task(task, CONTEXT, timeout=30)
        metrics = executor.get_metrics(task.id)
    assert cancelled == [True]
    assert result.metadata["outcome"] == "cancelled"
    assert calls == []
    assert [event.started for event in ended] == [False]
    assert [event.duration for event in ended] == [0.0]
    assert metrics is not None
    assert [point["name"] for point in metrics.checkpoints] == ["finished"]
    assert metrics.execution_time == 0.0
    (tool,) = store.snapshot().tools
    assert tool.queue_wait.count == 1
    assert tool.outcomes["cancelled"].sum == 0.0
    assert tool.in_flight == 0


# -- a timeout's words, decided as the tool starts --------------------------------------------

#: How long a test waits for something it expects to happen.
WAIT = 10.0


class _Tools:
    """A synchronous and an async tool that note their call and then wait to be released."""

    def __init__(self) -> None:
        self.called: list[str] = []
        self.entered = threading.Event()
        self.release = threading.Event()

    def registry(self) -> ToolRegistry:
        registry = ToolRegistry()

        def held() -> str:
            self.called.append("held")
            self.entered.set()
            self.release.wait(WAIT)
            return "released"

        async def held_async() -> str:
            self.called.append("held_async")
            self.entered.set()
            for _ in range(int(WAIT / 0.01)):  # (cancelled at an await when it is stopped)
                if self.release.is_set():
                    break
                await asyncio.sleep(0.01)
            return "released"

        registry.register_tool(create_simple_tool("held", "Waits.", held))
        registry.register_tool(create_simple_tool("held_async", "Waits.", held_async))
        return registry


def _traced() -> tuple[Any, Any]:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def _assert_words_match_the_call(
    result: Any, task: Task, called: list[str], ended: list[Any], exporter: Any
) -> None:
    """A timed-out result says the tool was never started exactly when it was never called,
    and the task, the store's record and the span say the same."""
    assert result.metadata["outcome"] == "timeout"
    error = result.error or ""
    never = "the tool was never started" in error
    assert never is (not called), (called, error)
    assert [event.started for event in ended] == [bool(called)]
    assert (task.started_at is None) is never
    (span,) = [s for s in exporter.get_finished_spans() if s.name.startswith("execute_tool")]
    assert ("the tool was never started" in (span.status.description or "")) is never


@pytest.mark.parametrize("tool", ["held", "held_async"])
def test_a_timeout_striking_as_the_tool_is_allowed_to_start_says_what_happened(
    tool: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The caller's timeout strikes while the worker (a worker thread; for an async tool, the
    executor's loop thread) is marking the task as started, past its own look at the
    deadline: the result says the tool was never started only when it was never called, and
    the store's record, the task and the span agree with it.

    The worker waits in the store's "starting" report until the caller is deciding what the
    timeout's message says; the caller waits there until the worker has answered whether the
    tool may start, and, when it may, until the tool has been called."""
    tools = _Tools()
    caller = threading.current_thread()
    deciding = threading.Event()
    answered = threading.Event()
    answers: list[bool] = []
    starting: list[str] = []
    real_started = job_module.Job.started
    real_message = job_module.Job.timeout_message

    def started(self: Any) -> bool:
        answer = real_started(self)
        answers.append(answer)
        answered.set()
        return answer

    def timeout_message(self: Any, **kwargs: Any) -> str:
        if threading.current_thread() is caller and not deciding.is_set():
            deciding.set()
            assert answered.wait(WAIT)
            if answers[0]:
                assert tools.entered.wait(WAIT)
        return real_message(self, **kwargs)

    # No public hook runs on the caller's side while its timeout decides its message: the
    # job's own method is the one place to hold it there.
    monkeypatch.setattr(job_module.Job, "started", started)
    monkeypatch.setattr(job_module.Job, "timeout_message", timeout_message)

    def hold_the_start(update: Any) -> None:
        if update.status is ProgressStatus.STARTING and not starting:
            starting.append(threading.current_thread().name)
            deciding.wait(WAIT)

    store = MetricStore()
    ended: list[Any] = []
    store.add_finish_listener(ended.append)
    store.add_progress_listener(hold_the_start)
    provider, exporter = _traced()
    task = Task(plan_id="p", description="d", tool_name=tool)
    executor = Executor(
        tools.registry(), store=store, register_prometheus=False, tracer_provider=provider
    )
    try:
        result = executor.execute_task(task, CONTEXT, timeout=1.0)
    finally:
        tools.release.set()
        executor.shutdown(wait=True)
    assert starting, "the worker never reached the start of the task before its deadline"
    assert deciding.is_set()
    _assert_words_match_the_call(result, task, tools.called, ended, exporter)


def test_a_timeout_before_a_worker_thread_calls_the_tool_says_it_never_started() -> None:
    """The caller's timeout strikes once a worker thread was told the tool may start, before
    it calls the tool: the thread never calls it (the call was given up), and the result, the
    store's record, the task and the span say the tool was never started."""
    from runner_hooks import HookedRunner

    from laios.execution.runners import ThreadRunner

    tools = _Tools()
    caller_returned = threading.Event()

    def hold_once_allowed(call: Any, started: bool) -> None:
        if started:
            caller_returned.wait(WAIT)

    store = MetricStore()
    ended: list[Any] = []
    store.add_finish_listener(ended.append)
    provider, exporter = _traced()
    runner = HookedRunner(ThreadRunner(1, 1), after_start=hold_once_allowed)
    task = Task(plan_id="p", description="d", tool_name="held")
    executor = Executor(
        tools.registry(),
        runner=runner,
        store=store,
        register_prometheus=False,
        tracer_provider=provider,
    )
    try:
        result = executor.execute_task(task, CONTEXT, timeout=0.5)
    finally:
        caller_returned.set()
        tools.release.set()
        executor.shutdown(wait=True)  # (a tool it still called would have run by now)
    _assert_words_match_the_call(result, task, tools.called, ended, exporter)
    assert tools.called == []


@pytest.mark.parametrize("tool", ["held", "held_async"])
def test_a_timeout_striking_as_a_worker_takes_the_task_says_it_was_being_started(
    tool: str,
) -> None:
    """The caller's timeout strikes once a worker (a worker thread; for an async tool, the
    executor's loop thread) has taken the queued task, while the store tells its listeners the
    task is starting: the result said "while waiting to start (no worker was free yet)", but a
    worker was free and starting it. It says the task timed out as it was being started, and
    still that the tool was never started."""
    tools = _Tools()
    starting: list[str] = []
    returned = threading.Event()

    def hold_the_start(update: Any) -> None:
        if update.status is ProgressStatus.STARTING and not starting:
            starting.append(threading.current_thread().name)
            returned.wait(WAIT)

    store = MetricStore()
    store.add_progress_listener(hold_the_start)
    task = Task(plan_id="p", description="d", tool_name=tool)
    executor = Executor(tools.registry(), store=store, register_prometheus=False)
    try:
        result = executor.execute_task(task, CONTEXT, timeout=2.0)
    finally:
        returned.set()
        tools.release.set()
        executor.shutdown(wait=True)
    assert starting, "the worker never reached the start of the task before its deadline"
    assert result.metadata["outcome"] == "timeout"
    error = result.error or ""
    assert "was starting it; the tool was never started" in error, error
    assert "no worker was free" not in error, error
    assert "slot was free" not in error, error
    assert tools.called == []
