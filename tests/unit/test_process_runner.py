"""The process runner: real kills, enforced limits, measured resources, clear errors.

Tools come from ``process_tools`` (importable by name in the worker processes) and talk to the
tests through files in a temporary directory (``box``). The behaviour every runner shares
(outcomes, timeouts, cancellation, progress, spans, retries, store records) is tested in
``test_runner_behaviour.py``; this module tests what only a process can do.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import copy
import dataclasses
import datetime
import gc
import io
import json
import logging
import math
import multiprocessing
import os
import pickle
import re
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time
import types
import weakref
from collections.abc import Callable, Iterator
from enum import Enum
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import process_tools
import pytest
from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from process_tools import KEY, Caller, alive
from pydantic import BaseModel
from runner_hooks import HookedRunner

from laios.core.types import Context, Task, TaskResult, TaskStatus
from laios.execution._logs import WarningLimiter
from laios.execution._runners import process as process_runner
from laios.execution.executor import Executor
from laios.execution.limits import ResourceLimits
from laios.execution.runners import ProcessRunner, Refusal, Runner, ToolCall
from laios.execution.store import MetricStore
from laios.tools.base import create_simple_tool
from laios.tools.registry import ToolRegistry

pytestmark = pytest.mark.skipif(
    sys.platform != "linux", reason="kills, limits and measurements are checked on Linux"
)

#: How long a test waits for something it expects to happen (a loaded machine is slow).
WAIT = 15.0


def gone(pid: int, timeout: float = WAIT) -> bool:
    """Wait until process ``pid`` has ended; return whether it did in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.01)
    return not alive(pid)


def wait_for(predicate: Callable[[], Any], timeout: float = WAIT) -> Any:
    return process_tools.wait_until(predicate, timeout)


@pytest.fixture
def box(tmp_path: Path) -> str:
    return str(tmp_path)


@pytest.fixture
def tools() -> ToolRegistry:
    registry = ToolRegistry()
    for cls in process_tools.TOOLS:
        registry.register_tool(cls())
    return registry


@pytest.fixture
def task() -> Callable[..., Task]:
    def make(tool: str, **parameters: Any) -> Task:
        return Task(plan_id="p", description=f"run {tool}", tool_name=tool, parameters=parameters)

    return make


@pytest.fixture
def context() -> Context:
    return Context(session_id="session-1", user_id="user-1")


@pytest.fixture
def make(tools: ToolRegistry) -> Iterator[Callable[..., Executor]]:
    """Build executors on a process runner; every worker is gone after the test."""
    built: list[tuple[Executor, ProcessRunner]] = []

    def build(max_workers: int = 1, **kwargs: Any) -> Executor:
        runner = ProcessRunner(max_workers, **kwargs.pop("runner_options", {}))
        kwargs.setdefault("store", MetricStore())
        kwargs.setdefault("register_prometheus", False)
        executor = Executor(tools, runner=runner, **kwargs)
        built.append((executor, runner))
        return executor

    yield build
    for executor, runner in built:
        pids = runner.worker_pids()
        executor.shutdown(wait=False)
        runner.terminate()
        for pid in pids:
            assert gone(pid), f"worker {pid} outlived its executor"


def run_pid(executor: Executor, task: Callable[..., Task], context: Context) -> int:
    result = executor.execute_task(task("pid"), context, timeout=WAIT)
    assert result.success, result.error
    pid: int = result.output
    return pid


# -- the runner and its options -----------------------------------------------------------------


def test_the_process_runner_is_a_runner() -> None:
    runner = ProcessRunner(2)
    try:
        assert isinstance(runner, Runner)
        assert runner.can_stop
        assert runner.stats.workers == 2
        assert runner.start_method == "forkserver"
    finally:
        runner.terminate()


def test_a_tool_call_pickles_with_every_field_but_its_context() -> None:
    """What a process runner sends: the call's every field, and never the caller's
    ``contextvars`` context (which stays in the caller's process, and cannot be pickled)."""
    values: dict[str, Any] = {
        "task_id": "t-1",
        "tool_name": "pid",
        "parameters": {"n": 1},
        "tool": process_tools.Pid(),
        "trace_id": "1" * 32,
        "span_id": "2" * 16,
        "sampled": True,
        "measure_cpu": True,
        "deadline": 12.5,
        "context": contextvars.copy_context(),
        "memory_limit_mb": 64,
        "cpu_seconds": 0.5,
        "baggage": "k=v",
        "suppressed": True,
        "trace_state": "vendor=abc",
        "trace_flags": 0x02,
    }
    assert set(values) == {field.name for field in dataclasses.fields(ToolCall)}
    call = ToolCall(**values)
    loaded = pickle.loads(pickle.dumps(call, pickle.HIGHEST_PROTOCOL))
    assert loaded.context is None
    assert type(loaded.tool) is process_tools.Pid
    for name, value in values.items():
        if name not in ("context", "tool"):
            assert getattr(loaded, name) == value, name
    # A copy in this process keeps the context, and every field.
    copied = copy.copy(call)
    assert copied is not call
    for name, value in values.items():
        assert getattr(copied, name) is value, name
    assert loaded.trace_carrier() == {
        "traceparent": f"00-{'1' * 32}-{'2' * 16}-03",
        "tracestate": "vendor=abc",
        "baggage": "k=v",
    }


def test_a_tool_call_subclass_pickles_and_copies_as_itself() -> None:
    """A call of a runner's own subclass pickles as that subclass, with its fields and its
    other attributes (never its context), and copies with all of them."""
    for kind in (process_tools.NotedCall, process_tools.SlottedNotedCall):
        context = contextvars.copy_context()
        call = kind("t-1", "baggage_seen", {"n": 1}, context=context, memory_limit_mb=8, note="a")
        if kind is process_tools.NotedCall:
            call.extra = [1]  # type: ignore[attr-defined]
        loaded = pickle.loads(pickle.dumps(call, pickle.HIGHEST_PROTOCOL))
        assert type(loaded) is kind
        assert (loaded.note, loaded.memory_limit_mb, loaded.parameters) == ("a", 8, {"n": 1})
        assert loaded.context is None
        copied = copy.copy(call)
        assert type(copied) is kind
        assert (copied.note, copied.context) == ("a", context)
        if kind is process_tools.NotedCall:
            assert loaded.extra == [1]
            assert copied.extra is call.extra  # type: ignore[attr-defined]


def test_a_deep_copy_of_a_tool_call_keeps_its_context() -> None:
    """``copy.deepcopy`` in this process copies a call's every field deeply but its context,
    which it keeps (a runner that copies its call still runs the tool in the caller's context),
    a subclass's other attributes too."""
    context = contextvars.copy_context()
    for kind in (ToolCall, process_tools.NotedCall):
        call = kind("t-1", "pid", {"items": [1]}, process_tools.Pid(), context=context)
        if kind is process_tools.NotedCall:
            call.extra = [2]  # type: ignore[attr-defined]
        copied = copy.deepcopy(call)
        assert type(copied) is kind
        assert copied.context is context
        assert copied.parameters == {"items": [1]}
        assert copied.parameters["items"] is not call.parameters["items"]
        assert type(copied.tool) is process_tools.Pid
        if kind is process_tools.NotedCall:
            assert copied.extra == [2]  # type: ignore[attr-defined]
            assert copied.extra is not call.extra  # type: ignore[attr-defined]


def test_a_tool_call_subclass_reaches_the_worker_as_itself() -> None:
    """The worker runs the call it was given, a subclass's own ``trace_carrier`` and the
    attributes it reads too: a small call, and a large one (pickled on a thread later)."""
    runner = ProcessRunner(1)
    try:
        tool = process_tools.BaggageSeen()
        for size in (0, 2 * process_runner.SEND_HERE_BYTES):
            call = process_tools.NotedCall(
                "t-1", tool.name, {"padding": b"x" * size}, tool, note="from-the-runner"
            )
            call.origin = str(size)  # type: ignore[attr-defined]
            events = ScriptedEvents()
            assert not isinstance(runner.submit(call, events), Refusal)
            assert events.finished_event.wait(WAIT)
            assert events.outcomes[0].value == {"note": "from-the-runner", "origin": str(size)}
    finally:
        runner.terminate()


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"max_workers": 0}, ValueError),
        ({"max_workers": True}, ValueError),
        ({"start_method": "fork"}, ValueError),
        ({"start_method": "teleport"}, ValueError),
        ({"initializer": 42}, TypeError),
        ({"initializer": lambda: None}, TypeError),
        ({"preload": "myapp.tools"}, TypeError),
        ({"initializer": print, "initargs": "spans.jsonl"}, TypeError),
    ],
)
def test_bad_options_are_refused_at_construction(options: dict[str, Any], error: type) -> None:
    arguments = {"max_workers": 1, **options}
    with pytest.raises(error):
        ProcessRunner(**arguments)


@pytest.mark.parametrize("max_workers", [1025, 10**19, 10**400], ids=["1025", "10**19", "10**400"])
def test_more_worker_processes_than_the_bound_are_refused_with_the_range(
    max_workers: int,
) -> None:
    """``max_workers`` past 1,024 (each a process the runner may start) is refused at the call,
    the option and the allowed range named, instead of starting a process per call of a
    large batch until the system refuses."""
    with pytest.raises(ValueError, match=r"^max_workers must be a whole number from 1 to 1024"):
        ProcessRunner(max_workers)


def test_the_bound_itself_is_accepted_and_starts_nothing() -> None:
    """``max_workers=1024`` is accepted; workers still start on demand only."""
    runner = ProcessRunner(1024)
    try:
        assert runner.stats.workers == 1024
        assert runner.worker_pids() == []
    finally:
        runner.terminate()


@pytest.mark.parametrize("name", ["initargs", "preload"])
@pytest.mark.parametrize("value", [None, 5, 2.5, object()], ids=lambda v: type(v).__name__)
def test_initargs_or_preload_that_are_no_sequence_are_named_in_the_refusal(
    name: str, value: Any
) -> None:
    """``initargs=None`` said "'NoneType' object is not iterable", naming nothing."""
    with pytest.raises(TypeError, match=rf"^{name} must be a sequence \(a list or tuple\)"):
        ProcessRunner(max_workers=1, **{name: value})


@pytest.mark.parametrize(
    "initargs",
    [{"endpoint": "http://collector:4318"}, {"http://collector:4318", "spans"}],
    ids=["dict", "set"],
)
def test_initargs_given_as_a_mapping_or_a_set_are_refused(initargs: Any) -> None:
    """A dict (meant as keyword arguments) would pass its keys to the initializer, and a set its
    items in no set order: both are refused, naming the option, not passed on in silence."""
    with pytest.raises(TypeError, match=r"^initargs must be a sequence \(a list or tuple\)"):
        ProcessRunner(max_workers=1, initializer=print, initargs=initargs)


def test_initargs_that_cannot_be_pickled_are_refused_at_the_call() -> None:
    """``initargs`` travel to every worker pickled, as the initializer does: one that cannot be
    pickled (a lock) was taken, and every task then failed ``no_process`` while the runner
    tried to start a worker. It is refused at the call, naming the option."""
    with pytest.raises(TypeError, match=r"^initargs must be picklable") as raised:
        ProcessRunner(1, initializer=print, initargs=(threading.Lock(),))
    assert "lock" in str(raised.value)


async def _async_initializer() -> None:
    """An initializer written as a coroutine function (refused)."""


def test_an_async_initializer_is_refused_at_the_call() -> None:
    """A worker calls ``initializer`` and never awaits it: an ``async def`` one was taken, and
    each worker only made a coroutine and dropped it, its setup never done and the tasks
    succeeding without it. It is refused at the call, saying to pass a plain function."""
    with pytest.raises(TypeError, match=r"^initializer must be a plain function"):
        ProcessRunner(1, initializer=_async_initializer)


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
@pytest.mark.parametrize(
    ("preload", "error", "named"),
    [
        ([1], TypeError, "got 1 (int)"),
        (["os", b"json"], TypeError, "got b'json' (bytes)"),
        ([""], ValueError, "got ''"),
        (["os", ".json"], ValueError, "got '.json'"),
        (["myapp..tools"], ValueError, "got 'myapp..tools'"),
        (["myapp.tools."], ValueError, "got 'myapp.tools.'"),
    ],
    ids=["a number", "bytes", "an empty name", "a relative name", "a doubled dot", "a last dot"],
)
def test_a_preload_entry_that_is_no_module_name_is_refused_naming_it(
    method: str, preload: list[Any], error: type[Exception], named: str
) -> None:
    """An entry of ``preload`` that is no module name is refused at the call, naming the option
    and the entry: multiprocessing's own refusal named neither ("module_names must be a list of
    strings"), and an empty name was taken, then stopped the forkserver at its first start (an
    error on stderr, every task refused ``no_process``)."""
    with pytest.raises(error, match=r"^preload must be a sequence of module names") as raised:
        ProcessRunner(1, start_method=method, preload=preload)
    assert named in str(raised.value)


class _Module(str, Enum):
    """Module names kept as a ``(str, Enum)``, as a configuration may keep them."""

    JSON = "json"


@pytest.mark.skipif(
    process_runner.DEFAULT_START_METHOD != "forkserver", reason="the forkserver's preloads"
)
def test_a_preload_entry_of_a_str_subclass_is_taken_as_its_text(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """An entry of ``preload`` of a ``str`` subclass (a ``(str, Enum)`` member) is a string, as
    the reference says: it was passed on to multiprocessing, which refused it with its own
    words ("module_names must be a list of strings"), naming neither the option nor the
    entry. It is taken as the text it holds, as ``start_method`` is."""
    executor = make(runner_options={"start_method": "forkserver", "preload": [_Module.JSON]})
    result = executor.execute_task(task("pid"), context, timeout=WAIT)
    assert result.success, result.error


def test_tools_run_in_another_process(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    executor = make()
    result = executor.execute_task(task("pid"), context, timeout=WAIT)
    pid = result.output
    assert pid != os.getpid()
    assert result.metadata["worker"] == f"pid {pid}"  # where it ran
    assert pid in executor.runner.worker_pids()  # type: ignore[attr-defined]
    # With no timeout a tool still runs in the worker (never on the caller's thread).
    result = executor.execute_task(task("pid"), context)
    assert result.output == pid


# -- real kills ---------------------------------------------------------------------------------


def test_a_hung_tool_is_killed_with_its_grandchildren_and_replaced(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context, box: str
) -> None:
    executor = make()
    # The worker is up first: the timeout is the tool's alone, not also a loaded machine's
    # start of a Python process (which may take longer than the timeout).
    worker = run_pid(executor, task, context)
    started = time.monotonic()
    result = executor.execute_task(task("hang", box=box), context, timeout=1.0)
    elapsed = time.monotonic() - started
    assert not result.success
    assert result.metadata["outcome"] == "timeout"
    hung = process_tools.read_note(box, "hang")
    assert hung is not None, "the tool never started"
    assert result.metadata["worker_killed"] is True, result.metadata
    assert elapsed < 1.0 + 5.0
    assert hung["pid"] == worker
    assert gone(hung["pid"]), "the worker running the hung tool is still alive"
    assert gone(hung["grandchild"]), "the process the tool started is still alive"
    assert executor.abandoned_threads == 0
    # The next task runs on a fresh worker.
    assert run_pid(executor, task, context) != hung["pid"]
    assert executor.store.snapshot().abandoned_threads == 0


def test_cancelling_a_running_tool_kills_its_worker_at_once(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context, box: str
) -> None:
    executor = make()
    hang = task("hang", box=box)
    caller = Caller(executor, hang, context)
    hung = wait_for(lambda: process_tools.read_note(box, "hang"))
    assert hung is not None, "the tool never started"
    asked = time.monotonic()
    assert executor.cancel_task(hang.id)
    result = caller.returned(WAIT, "the cancelled call did not return")
    returned = time.monotonic() - asked
    assert result.metadata["outcome"] == "cancelled"
    assert result.metadata["worker_killed"] is True
    assert returned < 1.0  # (measured: a few milliseconds; see docs/performance.md, P12)
    assert gone(hung["pid"])
    assert gone(hung["grandchild"])


class HandsBackLate(ProcessRunner):
    """A process runner that, once it has accepted a call of tool ``late`` (and may have sent it
    to a worker already), waits for :attr:`resume` before it hands the call's handle back: where
    the thread handing a call over may be preempted between the two."""

    def __init__(self, late: str) -> None:
        super().__init__(1)
        self.late = late
        self.resume = threading.Event()

    def submit(self, call: ToolCall, events: Any) -> Any:
        handle = super().submit(call, events)
        if call.tool_name == self.late:
            self.resume.wait(WAIT)
        return handle


def test_a_cancel_before_the_runner_hands_back_a_running_calls_handle_still_kills_it(
    tools: ToolRegistry, task: Callable[..., Task], context: Context, box: str
) -> None:
    """``cancel_task`` landing after the call was sent to its worker but before the runner
    handed its handle back ends the task as a cancel of a running call does: the worker is
    killed, and the result and the span say so."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    runner = HandsBackLate("hang")
    executor = Executor(
        tools,
        runner=runner,
        store=MetricStore(),
        register_prometheus=False,
        tracer_provider=provider,
    )
    try:
        run_pid(executor, task, context)  # (the worker is up)
        hang = task("hang", box=box)
        caller = Caller(executor, hang, context)
        hung = wait_for(lambda: process_tools.read_note(box, "hang"))
        assert hung is not None, "the tool never started"
        assert executor.cancel_task(hang.id)
        runner.resume.set()
        result = caller.returned(WAIT, "the cancelled call did not return")
        assert result.metadata["outcome"] == "cancelled"
        assert result.metadata.get("worker_killed") is True, result.metadata
        assert gone(hung["pid"])
        assert gone(hung["grandchild"])
        (span,) = [s for s in exporter.get_finished_spans() if s.name == "execute_tool hang"]
        assert span.attributes is not None
        assert span.attributes.get("laios.worker.killed") is True
        assert span.attributes["error.type"] == "cancelled"
        assert run_pid(executor, task, context) != hung["pid"]
    finally:
        runner.resume.set()
        executor.shutdown(wait=False)
        runner.terminate()
        provider.shutdown()


def cancel_from_another_thread(executor: Executor, task_id: str) -> None:
    """``cancel_task`` on a thread of its own, returning once it has."""
    answers: list[bool] = []
    canceller = threading.Thread(target=lambda: answers.append(executor.cancel_task(task_id)))
    canceller.start()
    canceller.join(WAIT)
    assert answers == [True], "cancel_task did not return in time, or found no task"


def assert_cancelled_before_its_tool_started(result: TaskResult, box: str) -> None:
    assert result.metadata["outcome"] == "cancelled"
    error = result.error or ""
    assert "while running" not in error, error
    assert "was cancelled before it started" in error, error
    assert "the tool was never started" in error, error
    assert "worker_killed" not in result.metadata, result.metadata
    assert process_tools.read_note(box, "hang") is None, "the tool ran"


@pytest.mark.parametrize("worker", ["idle", "starting"])
def test_a_cancel_once_a_call_may_start_before_it_is_sent_says_it_never_started(
    worker: str, tools: ToolRegistry, task: Callable[..., Task], context: Context, box: str
) -> None:
    """``cancel_task`` landing once the executor answered that a call may start, before the
    runner sent it to its worker (an idle one, or one started for it): the call is never sent,
    and the result says the task was cancelled before its tool started; no worker is killed,
    and it serves the next call."""
    results: list[TaskResult] = []
    executor: Executor

    def cancel_once_started(call: ToolCall, started: bool) -> None:
        if started and call.tool_name == "hang":
            cancel_from_another_thread(executor, call.task_id)

    runner = HookedRunner(ProcessRunner(1), after_start=cancel_once_started)
    executor = Executor(tools, runner=runner, store=MetricStore(), register_prometheus=False)
    try:
        if worker == "idle":
            run_pid(executor, task, context)  # (the only worker is up, and idle)
        results.append(executor.execute_task(task("hang", box=box), context, timeout=WAIT))
        pids = runner.inner.worker_pids()
        assert_cancelled_before_its_tool_started(results[0], box)
        assert pids == [run_pid(executor, task, context)]  # (nothing was killed)
    finally:
        executor.shutdown(wait=False)
        runner.inner.terminate()


def test_a_timeout_once_a_call_may_start_before_it_is_sent_says_it_never_started(
    tools: ToolRegistry, task: Callable[..., Task], context: Context, box: str
) -> None:
    """A timeout that passes once the executor answered that a call may start, before the
    runner sent it to the worker started for it: the call is never sent, the error says the
    tool was never started, not that it was running, and no worker is killed."""
    results: list[TaskResult] = []
    held: list[bool] = []

    def held_until_the_timeout(call: ToolCall, started: bool) -> None:
        if started and call.tool_name == "hang":
            held.append(True)
            wait_for(lambda: results)  # (the caller's timeout strikes meanwhile)

    runner = HookedRunner(ProcessRunner(1), after_start=held_until_the_timeout)
    executor = Executor(tools, runner=runner, store=MetricStore(), register_prometheus=False)
    try:
        # (a timeout the worker's start leaves time for: it passes while the call is held)
        results.append(executor.execute_task(task("hang", box=box), context, timeout=WAIT / 3))
        assert held, "the call was not allowed to start before its timeout"
        assert results[0].metadata["outcome"] == "timeout"
        error = results[0].error or ""
        assert "was running" not in error, error
        assert "the tool was never started" in error, error
        assert "worker_killed" not in results[0].metadata, results[0].metadata
        pid = run_pid(executor, task, context)
        assert runner.inner.worker_pids() == [pid]
        assert process_tools.read_note(box, "hang") is None, "the tool ran"
    finally:
        executor.shutdown(wait=False)
        runner.inner.terminate()


@pytest.mark.parametrize("worker", ["idle", "starting"])
def test_a_cancel_once_a_call_is_marked_running_before_its_write_says_it_never_started(
    worker: str,
    make: Callable[..., Executor],
    task: Callable[..., Task],
    context: Context,
    box: str,
) -> None:
    """``cancel_task`` landing once the runner marked a call as running, before it began to
    write it to its worker (an idle one, or one started for it): the call is not written, the
    result says the task was cancelled before its tool started, and the worker is not killed
    (it serves the next call)."""
    executor = make()
    if worker == "idle":
        run_pid(executor, task, context)
    runner = executor.runner
    assert isinstance(runner, ProcessRunner)
    pool = runner._pool
    send = pool.send
    hang = task("hang", box=box)

    def cancelled_first(worker: Any, call: Any, *, own_thread: bool = False) -> None:
        if call.tool_name == "hang":
            cancel_from_another_thread(executor, hang.id)
        send(worker, call, own_thread=own_thread)

    pool.send = cancelled_first  # type: ignore[method-assign]
    result = executor.execute_task(hang, context, timeout=WAIT)
    pids = runner.worker_pids()
    assert_cancelled_before_its_tool_started(result, box)
    assert pids == [run_pid(executor, task, context)]  # (nothing was killed)


@pytest.mark.parametrize("size", [512 * 1024, 2 * 1024 * 1024], ids=["512KiB", "2MiB"])
@pytest.mark.parametrize("stop", ["timeout", "cancel_task"])
def test_a_large_call_its_worker_does_not_read_still_ends_at_its_timeout_or_cancellation(
    stop: str,
    size: int,
    make: Callable[..., Executor],
    task: Callable[..., Task],
    context: Context,
) -> None:
    """A call larger than the pipe holds, sent to a worker that does not read it (stopped
    here; a thread its last tool left holding the GIL does the same), ends at its timeout or
    at ``cancel_task``: the caller is not held in the write, and the worker is killed."""
    executor = make()
    pid = run_pid(executor, task, context)
    os.kill(pid, signal.SIGSTOP)
    large = task("pid", blob=b"x" * size)
    timeout = 1.0 if stop == "timeout" else None
    caller = Caller(executor, large, context, timeout=timeout)
    if stop == "cancel_task":
        assert wait_for(
            lambda: any(
                running.task_id == large.id and running.state == "running"
                for running in executor.store.snapshot().running
            )
        ), "the call never started"
        assert executor.cancel_task(large.id)
    result = caller.returned(WAIT, "the caller was held in writing the call to its worker")
    assert result.metadata["outcome"] == ("timeout" if timeout else "cancelled")
    assert gone(pid), "the worker that did not read the call was not killed"


def test_a_timeout_while_a_large_call_is_pickled_ends_the_task_then_saying_so(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """A call larger than 64 KiB is pickled off the caller's thread: a timeout that passes
    while it is still pickled ends the task at the timeout, and the error says the call was
    still being pickled (a worker was idle: not that none was free)."""
    executor = make()
    run_pid(executor, task, context)  # (the only worker is up, and idle)
    held = process_tools.HeldWhilePickled
    held.reset()
    large = task("pid", blob=bytes(512 * 1024), gate=held())
    results: list[TaskResult] = []
    caller = threading.Thread(
        target=lambda: results.append(executor.execute_task(large, context, timeout=0.5)),
        daemon=True,
    )
    try:
        caller.start()
        caller.join(WAIT / 3)
        returned_at_the_timeout = not caller.is_alive()
    finally:
        held.release.set()
        caller.join(WAIT)
    assert returned_at_the_timeout, "the caller waited for the call's pickling past its timeout"
    assert results[0].metadata["outcome"] == "timeout"
    error = results[0].error or ""
    assert "no worker was free" not in error
    assert "while its call was still being pickled" in error, error
    assert "the tool was never started" in error
    assert run_pid(executor, task, context) > 0


def test_a_timeout_while_a_large_call_from_a_loop_is_pickled_names_the_loops_bound(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """From an event loop's thread a call is pickled off it past 256 KiB, not 64 KiB: the
    error of a timeout while it is pickled gives the bound that applied."""
    executor = make()
    run_pid(executor, task, context)  # (the only worker is up, and idle)
    held = process_tools.HeldWhilePickled
    held.reset()
    large = task("pid", blob=bytes(512 * 1024), gate=held())
    results: list[TaskResult] = []

    async def awaited() -> None:
        results.append(await executor.execute_async(large, context, timeout=0.5))

    caller = threading.Thread(target=lambda: asyncio.run(awaited()), daemon=True)
    try:
        caller.start()
        caller.join(WAIT / 3)
        returned_at_the_timeout = not caller.is_alive()
    finally:
        held.release.set()
        caller.join(WAIT)
    assert returned_at_the_timeout, "the caller waited for the call's pickling past its timeout"
    error = results[0].error or ""
    assert "while its call was still being pickled" in error, error
    assert "larger than 256 KiB" in error, error


def test_a_batch_cancelled_while_its_call_is_pickled_says_the_tool_never_started(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """A batch whose awaiting coroutine is cancelled while a call of it is still pickled
    (off the loop, no worker has it yet): the task's error says it was cancelled before it
    started and that its tool never started, as a task cancel_task stops there says."""
    executor = make()
    run_pid(executor, task, context)  # (the only worker is up, and idle)
    held = process_tools.HeldWhilePickled
    held.reset()
    large = task("pid", blob=bytes(512 * 1024), gate=held())

    async def cancelled_while_pickled() -> None:
        batch = asyncio.ensure_future(executor.execute_parallel([large], context, timeout=WAIT))
        until = time.monotonic() + WAIT
        while held.at_once == 0 and time.monotonic() < until:
            await asyncio.sleep(0.01)
        assert held.at_once == 1, "the call's pickling never began"
        batch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await batch

    try:
        asyncio.run(cancelled_while_pickled())
    finally:
        held.release.set()
    error = large.error or ""
    assert error.startswith(f"Task '{large.id}' was cancelled before it started: "), error
    assert "the awaiting coroutine was cancelled" in error, error
    assert "the tool was never started" in error, error


def test_a_small_call_pickled_on_the_callers_thread_past_its_timeout_says_so(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """A small call is pickled on the caller's thread: when its pickling ends past the task's
    timeout (a parameter slow to pickle), the error says the call was being pickled, not that
    no worker was free (the only worker was idle)."""
    executor = make()
    run_pid(executor, task, context)  # (the only worker is up, and idle)
    held = process_tools.HeldWhilePickled
    held.reset()
    timeout = 0.2
    results: list[TaskResult] = []
    caller = threading.Thread(
        target=lambda: results.append(
            executor.execute_task(task("pid", gate=held()), context, timeout=timeout)
        ),
        daemon=True,
    )
    started = time.monotonic()
    try:
        caller.start()
        assert wait_for(lambda: held.at_once == 1), "the call was not pickled"
        assert wait_for(lambda: time.monotonic() > started + 2 * timeout)
    finally:
        held.release.set()
        caller.join(WAIT)
    assert results[0].metadata["outcome"] == "timeout"
    error = results[0].error or ""
    assert "no worker was free" not in error, error
    assert "while its call was still being pickled" in error, error
    assert "on the caller's thread" in error, error
    assert "the tool was never started" in error
    assert run_pid(executor, task, context) > 0


def test_a_timeout_as_a_large_pickled_call_is_handed_to_its_worker_says_so(
    tools: ToolRegistry, task: Callable[..., Task], context: Context
) -> None:
    """A timeout that passes once a call larger than 64 KiB was pickled, while the runner's
    thread hands it to the idle worker set aside for it (before the task is recorded as
    started), says the call was being handed over, not that no worker was free."""
    results: list[TaskResult] = []

    def held_until_the_timeout(call: ToolCall) -> None:
        if "blob" in call.parameters:
            wait_for(lambda: results)  # (the caller's timeout strikes meanwhile)

    runner = HookedRunner(ProcessRunner(1), before_start=held_until_the_timeout)
    executor = Executor(tools, runner=runner, store=MetricStore(), register_prometheus=False)
    try:
        pid = run_pid(executor, task, context)  # (the only worker is up, and idle)
        large = task("pid", blob=bytes(512 * 1024))
        caller = Caller(executor, large, context, results, timeout=0.5)
        result = caller.returned(WAIT, "the caller waited past its timeout")
        assert result.metadata["outcome"] == "timeout"
        error = result.error or ""
        assert "no worker was free" not in error, error
        assert "while its call was being handed to its worker process" in error, error
        assert "the tool was never started" in error
        assert run_pid(executor, task, context) == pid  # (nothing was killed)
    finally:
        executor.shutdown(wait=False)
        runner.inner.terminate()


def test_a_timeout_while_a_large_call_is_written_to_its_worker_says_so(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """A timeout that passes while a call is still being written to its worker (one that does
    not read it: stopped here) says so, and the worker is killed."""
    executor = make()
    pid = run_pid(executor, task, context)
    os.kill(pid, signal.SIGSTOP)
    result = executor.execute_task(task("pid", blob=bytes(2 * 1024 * 1024)), context, timeout=0.5)
    assert result.metadata["outcome"] == "timeout"
    assert "while its call was still being written to its worker process" in (result.error or "")
    assert result.metadata["worker_killed"] is True
    assert gone(pid)


def test_a_timeout_before_a_large_calls_write_begins_says_it_was_being_written(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """A timeout that passes once a large call was handed to the thread that writes it to its
    worker, before that thread has begun (the task recorded as started, the tool not), says
    the call was still being written, not that the tool was running; the worker is killed."""
    executor = make()
    pid = run_pid(executor, task, context)
    runner = executor.runner
    assert isinstance(runner, ProcessRunner)
    pool = runner._pool
    results: list[TaskResult] = []
    send = pool.send

    def late_to_begin(worker: Any, call: Any, *, own_thread: bool = False) -> None:
        if own_thread:  # (the writing thread, as it starts)
            wait_for(lambda: results)  # (the caller's timeout strikes meanwhile)
        send(worker, call, own_thread=own_thread)

    pool.send = late_to_begin  # type: ignore[method-assign]
    large = task("pid", blob=bytes(512 * 1024))
    caller = Caller(executor, large, context, results, timeout=0.5)
    result = caller.returned(WAIT, "the caller waited past its timeout")
    assert result.metadata["outcome"] == "timeout"
    error = result.error or ""
    assert "while its call was still being written to its worker process" in error, error
    assert result.metadata["worker_killed"] is True
    assert gone(pid)


def test_a_queued_task_past_its_deadline_never_starts(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context, box: str
) -> None:
    executor = make(max_workers=1)
    results: list[TaskResult] = []
    caller = threading.Thread(
        target=lambda: results.append(
            executor.execute_task(task("hang", box=box), context, timeout=WAIT)
        )
    )
    caller.start()
    assert wait_for(lambda: process_tools.read_note(box, "hang")), "the tool never started"
    queued = executor.execute_task(task("pid"), context, timeout=0.5)  # the only worker hangs
    assert queued.metadata["outcome"] == "timeout"
    assert "never started" in (queued.error or "")
    executor.runner.terminate()  # type: ignore[attr-defined]
    caller.join(WAIT)


def test_the_executors_default_timeout_applies(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context, box: str
) -> None:
    executor = make(resource_limits=ResourceLimits(timeout_seconds=1.0))
    result = executor.execute_task(task("hang", box=box), context)
    assert result.metadata["outcome"] == "timeout"
    assert result.metadata["worker_killed"] is True


# -- crashes and bad input ------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_a_tool_that_ends_its_process_fails_and_the_pool_keeps_serving(
    method: str,
    make: Callable[..., Executor],
    task: Callable[..., Task],
    context: Context,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The error says how the worker ended, whatever the start method. A ``spawn`` worker's
    pipe closes as it exits, a moment before the process can be waited for: its exit code was
    then lost ("was lost"), and a CPU budget's signal taken for a crash. That moment is made
    sure here: for 20 ms after the worker ended, waiting for it finds it running still."""
    from multiprocessing import popen_spawn_posix

    poll = popen_spawn_posix.Popen.poll
    ended_at: dict[int, float] = {}

    def poll_a_moment_early(self: Any, flag: int = os.WNOHANG) -> int | None:
        if self.returncode is None:
            ended = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            now = time.monotonic()
            if ended is not None and now - ended_at.setdefault(self.pid, now) < 0.02:
                return None  # (ended, not waited for yet: answered as 20 ms earlier)
        code: int | None = poll(self, flag)
        return code

    monkeypatch.setattr(popen_spawn_posix.Popen, "poll", poll_a_moment_early)
    executor = make(runner_options={"start_method": method})
    result = executor.execute_task(task("exit", code=3), context, timeout=WAIT)
    assert not result.success
    assert result.metadata["outcome"] == "error"
    assert result.metadata["error_type"] == "worker_crashed"
    assert "exited with code 3" in (result.error or ""), result.error
    assert run_pid(executor, task, context) > 0


def test_a_c_extension_the_memory_limit_refuses_to_load_says_the_limit_refused_it(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """The writable segments of a shared library count against the memory limit: a tool
    importing a C extension too large for it (NumPy's OpenBLAS, 1 MB here) failed with the
    module's ``ImportError`` alone ("failed to map segment from shared object", under
    NumPy's advice about bad installs). The error now goes on to name the limit, and how to
    load the module before it applies."""
    pytest.importorskip("numpy")
    executor = make(resource_limits=ResourceLimits(memory_limit_mb=1))
    result = executor.execute_task(task("imports", module="numpy"), context, timeout=WAIT)
    if result.metadata["error_type"] == "memory_limit":  # (a NumPy whose Python part fails
        pytest.skip("this NumPy fails its import under the limit before loading its library")
    assert result.metadata["error_type"] == "ImportError", result.error
    error = result.error or ""
    loader = ("failed to map segment from shared object", "cannot map zero-fill pages")
    assert any(said in error for said in loader), error
    assert "memory limit of 1 MB (memory_limit_mb=1)" in error
    assert "preload" in error
    unlimited = make()
    loaded = unlimited.execute_task(task("imports", module="numpy"), context, timeout=WAIT)
    assert loaded.success, loaded.error


def test_a_result_that_cannot_come_back_is_not_retried(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """A tool whose result cannot be sent back from its worker (``not_picklable``) fails the
    same way at every attempt: ``execute_with_retry`` ran it again and again (its side
    effects too) for a result that could never come back. It is attempted once, as a call
    whose parameters cannot be sent is."""
    executor = make()
    result = executor.execute_with_retry(
        task("returns_lambda"), context, max_retries=3, retry_delay=0, timeout=WAIT
    )
    assert result.metadata["error_type"] == "not_picklable", result.error
    assert result.metadata["retries"] == 0
    assert "retry_exhausted" not in result.metadata
    assert len(executor.get_all_metrics()) == 1


@pytest.mark.parametrize(
    "loader", ["failed to map segment from shared object", "cannot map zero-fill pages"]
)
def test_an_unmapped_library_names_the_memory_limit_only_under_one(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context, loader: str
) -> None:
    """The loader's "failed to map segment from shared object", anywhere in the chain of the
    ``ImportError`` a tool lets out, is told as the memory limit's likely doing under a limit
    (the error's type and name kept), and left as it is without one. So is its "cannot map
    zero-fill pages" (a library's zeroed data refused, where its segments were not), which
    was left as it was."""
    limited = make(resource_limits=ResourceLimits(memory_limit_mb=100))
    unmapped = task("raises_unmapped_library", loader=loader)
    result = limited.execute_task(unmapped, context, timeout=WAIT)
    assert result.metadata["error_type"] == "ImportError", result.error
    error = result.error or ""
    assert error.startswith("Importing the C-extensions failed.")
    assert "memory limit of 100 MB (memory_limit_mb=100)" in error
    assert "preload" in error
    unlimited = make()
    result = unlimited.execute_task(unmapped, context, timeout=WAIT)
    assert result.error == "Importing the C-extensions failed."


def test_a_crash_retried_by_execute_with_retry_never_says_the_task_was_not_retried(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """A worker crash said "the task was not retried", meaning the runner's own runs: under
    ``execute_with_retry``, whose result says it was retried (``retries`` 1), the error
    contradicted it. The error now says that the runner did not run the call again."""
    executor = make()
    result = executor.execute_with_retry(
        task("exit", code=3), context, max_retries=1, retry_delay=0, timeout=WAIT
    )
    assert result.metadata["error_type"] == "worker_crashed"
    assert result.metadata["retries"] == 1
    error = result.error or ""
    assert "exited with code 3" in error
    assert "not retried" not in error, error
    assert "the runner did not run the call again" in error


def test_a_tool_that_leaves_no_descriptor_free_does_not_end_its_worker_under_a_memory_limit(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """A tool that leaves every descriptor its worker may have open does not make the worker's
    own work of the next call fail: the worker measures its data size for the next memory
    limit without opening a file, and the next tool runs."""
    executor = make(resource_limits=ResourceLimits(memory_limit_mb=100))
    before = run_pid(executor, task, context)
    leaked = executor.execute_task(task("leaks_descriptors"), context, timeout=WAIT)
    assert leaked.success, leaked.error
    assert run_pid(executor, task, context) == before  # (the same worker serves on)


def test_a_process_left_by_a_tool_that_leaves_no_descriptor_free_ends_at_shutdown(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """A worker that cannot look for the processes left in its group as it exits (no
    descriptor free to read ``/proc``) kills its whole group instead."""
    executor = make()
    result = executor.execute_task(task("leaks_descriptors", child=True), context, timeout=WAIT)
    assert result.success, result.error
    child: int = result.output
    try:
        executor.shutdown(wait=True)
        assert gone(child), "the tool's child outlived its worker"
    finally:
        kill_if_alive(child)


def test_a_worker_that_ends_under_a_memory_limit_says_the_limit_was_in_force(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """Code that cannot allocate may end its process instead of raising ``MemoryError`` (a C
    library such as OpenBLAS, imported under a small limit, exits with code 1): the task
    failed as a bare "exited with code 1", nothing naming the memory limit that was its
    likely cause. The error now says the tool ran under that limit; a crash without a limit
    says nothing of one."""
    executor = make(resource_limits=ResourceLimits(memory_limit_mb=100))
    result = executor.execute_task(task("exits_when_short", mb=300), context, timeout=WAIT)
    assert result.metadata["error_type"] == "worker_crashed", result.error
    error = result.error or ""
    assert "exited with code 1" in error
    assert "memory limit of 100 MB (memory_limit_mb=100)" in error
    fits = executor.execute_task(task("exits_when_short", mb=10), context, timeout=WAIT)
    assert fits.success, fits.error
    unlimited = make()
    crashed = unlimited.execute_task(task("exit", code=1), context, timeout=WAIT)
    assert crashed.metadata["error_type"] == "worker_crashed"
    assert "memory" not in (crashed.error or "")


@pytest.mark.parametrize("seconds", [0.0, 2.0])
def test_a_tool_that_closes_its_workers_pipe_is_told_so(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context, seconds: float
) -> None:
    """A tool that closes every file descriptor, its worker's pipe to the caller among them,
    then returns (at once, or 2 s later) fails with an error saying so; the caller does
    not spin meanwhile, and the pool keeps serving."""
    executor = make()
    before = run_pid(executor, task, context)
    cpu_before = time.process_time()
    result = executor.execute_task(
        task("closes_descriptors", seconds=seconds), context, timeout=WAIT
    )
    caller_cpu = time.process_time() - cpu_before
    assert result.metadata["outcome"] == "error"
    assert result.metadata["error_type"] == "worker_crashed"
    assert "closed the worker's end of the pipe" in (result.error or ""), result.error
    assert "os.closerange" in (result.error or "")
    assert caller_cpu < 0.5, "the caller spun while the tool ran on"
    assert gone(before)
    assert run_pid(executor, task, context) != before


def test_a_spawn_worker_whose_tool_closes_its_pipes_is_told_so(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """A ``spawn`` worker is watched through a pipe of its own too (its sentinel), which the
    tool closes with the others while it runs on: the error says that it closed the worker's
    pipe to the executor, not that the worker was lost."""
    executor = make(runner_options={"start_method": "spawn"})
    result = executor.execute_task(task("closes_descriptors", seconds=0.5), context, timeout=WAIT)
    assert result.metadata["error_type"] == "worker_crashed", result.error
    assert "closed the worker's end of the pipe" in (result.error or ""), result.error


@pytest.mark.parametrize("kind", ["file", "socketpair"])
def test_a_tool_that_puts_its_own_file_in_place_of_its_workers_pipe_is_told_so(
    make: Callable[..., Executor],
    task: Callable[..., Task],
    context: Context,
    box: str,
    kind: str,
) -> None:
    """A tool that closes its worker's pipe to the caller, then opens a file (or sockets)
    that takes the pipe's descriptor number, fails with the closed-pipe error; the worker
    writes nothing into the tool's file, and the pool keeps serving."""
    executor = make()
    before = run_pid(executor, task, context)
    result = executor.execute_task(
        task("replaces_its_pipe", box=box, kind=kind), context, timeout=WAIT
    )
    assert result.metadata["outcome"] == "error", result.error
    assert result.metadata["error_type"] == "worker_crashed"
    assert "closed the worker's end of the pipe" in (result.error or ""), result.error
    if kind == "file":
        assert (Path(box) / "taken").read_bytes() == b""
    assert gone(before)
    assert run_pid(executor, task, context) != before


@pytest.mark.parametrize("reopen", [False, True], ids=["closed", "replaced"])
def test_a_tool_that_closes_its_standard_descriptors_leaves_them_to_no_later_task(
    reopen: bool,
    box: str,
    make: Callable[..., Executor],
    task: Callable[..., Task],
    context: Context,
) -> None:
    """A tool that closes its worker's standard input, output and error (or puts a file of
    its own in their place) gets its result, and the next task prints as usual: the worker
    is replaced instead of serving on without them."""
    executor = make()
    path = str(Path(box) / "own-file")
    closing = task("closes_standard_descriptors", reopen=reopen, path=path)
    result = executor.execute_task(closing, context, timeout=WAIT)
    assert result.success, result.error
    printing = executor.execute_task(task("prints_a_line"), context, timeout=WAIT)
    assert printing.success, printing.error
    assert printing.output != result.output
    if reopen:
        assert Path(path).read_text() == ""


def test_a_process_a_tool_forks_never_answers_for_its_worker(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """A forked copy of the worker that returns from the tool ends without sending anything."""
    executor = make()
    result = executor.execute_task(task("forks"), context, timeout=WAIT)
    assert result.output == "from the worker"
    worker = result.metadata["worker"]
    again = executor.execute_task(task("pid"), context, timeout=WAIT)
    assert again.metadata["worker"] == worker
    assert f"pid {again.output}" == worker


def _pidfds() -> bool:
    """Whether this system has pidfds (``os.pidfd_open``: Python 3.9+, Linux 5.3+)."""
    try:
        os.close(os.pidfd_open(os.getpid()))
    except (AttributeError, OSError):
        return False
    return True


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_a_worker_a_forked_process_outlives_is_seen_to_crash_at_once(
    method: str, make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """A process an earlier tool forked keeps every descriptor of its worker open: a
    ``spawn`` worker's pipes (its sentinel too) then never closed when it died, and its next
    call waited for its timeout ("was stopped"), or for ever without one. On Linux the worker's
    end is watched through a pidfd too: its call fails at once with its exit code, as on a
    ``forkserver`` worker, and what is left in its group (the forked process) is killed."""
    if method == "spawn" and not _pidfds():
        pytest.skip("os.pidfd_open is not available here (Python 3.9+, Linux 5.3+)")
    executor = make(runner_options={"start_method": method})
    forked = executor.execute_task(task("forks_a_sleeper"), context, timeout=WAIT)
    assert forked.success, forked.error
    child = forked.output
    try:
        result = executor.execute_task(task("exit", code=3), context, timeout=WAIT)
        assert result.metadata["outcome"] == "error", result.error
        assert result.metadata["error_type"] == "worker_crashed", result.error
        assert "exited with code 3" in (result.error or ""), result.error
        assert gone(child), "the forked process outlived its worker"
        assert run_pid(executor, task, context) > 0
    finally:
        kill_if_alive(child)


def test_spawn_workers_replaced_again_and_again_leave_no_descriptor_open(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """Each ``spawn`` worker's pidfd is closed once the worker is gone and replaced."""
    executor = make(runner_options={"start_method": "spawn"})

    def crash_and_replace() -> int:
        result = executor.execute_task(task("exit", code=3), context, timeout=WAIT)
        assert result.metadata["error_type"] == "worker_crashed", result.error
        run_pid(executor, task, context)  # (its replacement serves)
        return len(os.listdir("/proc/self/fd"))

    before = crash_and_replace()
    crash_and_replace()
    assert crash_and_replace() <= before


def test_parameters_that_cannot_be_pickled_fail_the_task_at_once(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    executor = make()
    result = executor.execute_task(task("pid", callback=lambda: None), context, timeout=WAIT)
    assert not result.success
    assert result.metadata["error_type"] == "not_picklable"
    assert "cannot be pickled" in (result.error or "")
    assert run_pid(executor, task, context) > 0


def test_a_simple_tool_made_from_a_lambda_is_told_to_use_a_module_level_function(
    make: Callable[..., Executor], tools: ToolRegistry, task: Callable[..., Task], context: Context
) -> None:
    """A tool from ``create_simple_tool`` with a lambda cannot reach a worker; the refusal
    says what to pass instead, not only how to define a tool class (there is none to move)."""
    tools.register_tool(create_simple_tool("doubled", "Doubles.", lambda x: 2 * x))
    executor = make()
    result = executor.execute_task(task("doubled", x=1), context, timeout=WAIT)
    assert result.metadata["error_type"] == "not_picklable"
    error = result.error or ""
    assert "create_simple_tool" in error
    assert "module-level function" in error
    assert "lambda" in error


def test_an_async_tools_stop_iteration_fails_as_on_the_callers_side(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """An async tool's StopIteration fails the task with its message and StopIteration, as on
    the default runner: not Python's 'coroutine raised StopIteration' RuntimeError, which
    reached the caller without its cause (an exception's cause is not pickled)."""
    executor = make()
    result = executor.execute_task(task("stops_async"), context, timeout=WAIT)
    assert (result.error, result.metadata["error_type"]) == ("boom", "StopIteration")


def test_an_async_tools_own_cancelled_error_says_nothing_cancelled_it(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """An async tool letting out a CancelledError that nothing asked for ends 'cancelled' with
    an error saying so, as on the default runner: it read "Task '...' was cancelled", as if
    cancel_task or a timeout had stopped it."""
    executor = make()
    result = executor.execute_task(task("awaits_cancelled"), context, timeout=WAIT)
    assert result.metadata["outcome"] == "cancelled"
    assert "raised asyncio.CancelledError" in result.error
    assert "nothing cancelled its task" in result.error


def test_an_async_tool_that_cancels_its_own_task_is_told_so(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """An async tool cancelling its own asyncio task in a worker ends 'cancelled' with an
    error saying so: it read "nothing cancelled its task"."""
    executor = make()
    result = executor.execute_task(task("cancels_its_asyncio_task"), context, timeout=WAIT)
    assert result.metadata["outcome"] == "cancelled"
    assert "cancelled its own asyncio task" in result.error


def test_an_async_tool_that_cancels_its_own_task_then_raises_ends_with_its_error(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """As asyncio ends a task whose coroutine raises with a cancellation still pending, and
    as the executor's own loops do: the tool's error is the outcome. (It ended 'cancelled',
    the error dropped.) One that returns so ends 'cancelled', as asyncio ends such a task."""
    executor = make()
    raised = executor.execute_task(
        task("cancels_its_asyncio_task", then="raise"), context, timeout=WAIT
    )
    assert raised.metadata["outcome"] == "error", raised.error
    assert raised.metadata["error_type"] == "KeyError", raised.error
    assert "raised after cancelling its own task" in (raised.error or "")
    returned = executor.execute_task(
        task("cancels_its_asyncio_task", then="return"), context, timeout=WAIT
    )
    assert returned.metadata["outcome"] == "cancelled", returned.error
    assert "cancelled its own asyncio task" in (returned.error or "")
    assert executor.execute_task(task("pid"), context, timeout=WAIT).success


@pytest.mark.parametrize("mode", ["no_text", "exit_text", "long"])
def test_a_parameter_whose_pickling_error_is_hostile_is_refused_clearly(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context, mode: str
) -> None:
    """A parameter whose pickling raises an exception whose text cannot be made, or is 1 MB
    quoting the key: the task is refused ``not_picklable``, naming the parameter, in a short
    message without the key."""
    executor = make()
    hostile = task("pid", api_key=KEY, value=process_tools.FailsToPickleBadly(mode, KEY))
    result = executor.execute_task(hostile, context, timeout=WAIT)
    assert result.metadata["outcome"] == "rejected", result.error
    assert result.metadata["error_type"] == "not_picklable"
    assert "its parameter 'value' (FailsToPickleBadly) cannot be pickled" in (result.error or "")
    assert "_PicklingError" in (result.error or "")
    assert KEY not in (result.error or "")
    assert len(result.error or "") < 2000


def test_a_parameter_whose_pickling_raises_system_exit_is_refused_not_raised(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """A ``BaseException`` from pickling a parameter fails that task; execute_task returns."""
    executor = make()
    exits = task("pid", value=process_tools.ExitsWhenPickled())
    result = executor.execute_task(exits, context, timeout=WAIT)
    assert result.metadata["outcome"] == "rejected"
    assert result.metadata["error_type"] == "not_picklable"
    assert "SystemExit" in (result.error or "")
    assert executor.get_task_status(exits.id) == TaskStatus.FAILED
    assert run_pid(executor, task, context) > 0


def test_an_interrupt_while_pickling_parameters_reaches_the_caller_with_the_task_recorded(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """Ctrl-C while a task's parameters are pickled goes on to the caller, and the task is
    recorded as cancelled instead of staying queued for ever."""
    executor = make()
    interrupted = task("pid", value=process_tools.InterruptedWhenPickled())
    with pytest.raises(KeyboardInterrupt):
        executor.execute_task(interrupted, context, timeout=WAIT)
    metrics = executor.get_metrics(interrupted.id)
    assert metrics is not None
    assert metrics.outcome == "cancelled"
    assert executor.get_task_status(interrupted.id) == TaskStatus.CANCELLED
    assert run_pid(executor, task, context) > 0


def test_pickling_a_large_parameter_never_holds_the_callers_event_loop(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """``execute_async`` pickles a large call off the caller's loop: the loop gets its turn
    while the parameters are pickled."""
    executor = make()
    process_tools.LOOP_TURNED.clear()
    process_tools.PICKLED_AFTER_THE_LOOP_TURNED.clear()
    large = task("pid", blob=bytes(4 * 1024 * 1024), gate=process_tools.WaitsForTheLoop())

    async def main() -> TaskResult:
        asyncio.get_running_loop().call_soon(process_tools.LOOP_TURNED.set)
        return await executor.execute_async(large, context, timeout=WAIT)

    result = asyncio.run(main())
    assert result.success, result.error
    assert process_tools.PICKLED_AFTER_THE_LOOP_TURNED == [True]


@pytest.mark.parametrize("blob_mb", [0, 4])
def test_an_awaited_task_with_a_parameter_that_cannot_be_pickled_fails_naming_it(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context, blob_mb: int
) -> None:
    """An awaited task whose parameter cannot be pickled (pickled on the loop, or off it when
    the call is large) is a rejected result naming the parameter; nothing is raised."""
    executor = make()
    refused = task("pid", blob=bytes(blob_mb * 1024 * 1024), callback=lambda: None)
    result = asyncio.run(executor.execute_async(refused, context, timeout=WAIT))
    assert result.metadata["outcome"] == "rejected"
    assert result.metadata["error_type"] == "not_picklable"
    assert "parameter 'callback' (function)" in (result.error or ""), result.error
    assert executor.get_task_status(refused.id) == TaskStatus.FAILED
    assert run_pid(executor, task, context) > 0


def test_a_parameter_called_tool_that_cannot_be_pickled_is_named_as_a_parameter(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """A parameter named ``tool`` is not taken for the call's tool in the refusal."""
    executor = make()
    refused = task("pid")
    refused.parameters["tool"] = threading.Lock()
    result = executor.execute_task(refused, context, timeout=WAIT)
    assert result.metadata["error_type"] == "not_picklable"
    assert "its parameter 'tool' (lock) cannot be pickled" in (result.error or ""), result.error


def test_a_result_that_cannot_be_pickled_is_a_clear_error(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    executor = make()
    result = executor.execute_task(task("returns_lambda"), context, timeout=WAIT)
    assert not result.success
    assert result.metadata["error_type"] == "not_picklable"
    assert "cannot be sent back" in (result.error or "")
    result = executor.execute_task(task("raises_unpicklable"), context, timeout=WAIT)
    assert result.metadata["error_type"] == "not_picklable"
    assert "Unpicklable" in (result.error or "")
    assert run_pid(executor, task, context) > 0


def test_an_exception_that_unpickles_as_another_object_is_a_clear_error(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """An exception whose ``__reduce__`` rebuilds something else (an ``int``) cannot be sent
    back as the tool's error: the task fails ``not_picklable``, naming the exception and what
    it became, not with an error about the executor's own inspection of it."""
    executor = make()
    result = executor.execute_task(task("raises_rebuilt_as_another"), context, timeout=WAIT)
    assert result.metadata["error_type"] == "not_picklable", result.error
    error = result.error or ""
    assert "raised an exception that cannot be sent back" in error, error
    assert "RebuiltAsAnother" in error, error
    assert "it is rebuilt as int, not an exception" in error, error
    assert run_pid(executor, task, context) > 0


def test_a_result_that_does_not_load_here_says_what_to_do(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """A value that pickles in the worker but cannot be unpickled in the caller's process (an
    exception class whose ``__init__`` takes other arguments than its message): the error
    says why, and what to return instead, as for a value that does not pickle; it names the
    worker that sent it, as any other outcome of the worker does."""
    executor = make()
    worker = run_pid(executor, task, context)
    result = executor.execute_task(task("returns_unpicklable"), context, timeout=WAIT)
    assert result.metadata["error_type"] == "not_picklable", result.error
    error = result.error or ""
    assert "could not be loaded" in error, error
    assert "missing 1 required positional argument" in error, error
    assert "Return picklable data (plain values, dataclasses, models)" in error, error
    assert result.metadata.get("worker") == f"pid {worker}", result.metadata


@pytest.mark.parametrize("mode", ["no_text", "exit_text", "long"])
def test_a_value_whose_loading_error_is_hostile_fails_its_task_clearly(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context, mode: str
) -> None:
    """A value that pickles in the worker and whose unpickling here raises an exception whose
    text cannot be made, or is 1 MB: the task fails ``not_picklable`` with a short message,
    and the runner serves on."""
    executor = make()
    result = executor.execute_task(
        task("returns_fails_to_load_badly", mode=mode, api_key=KEY), context, timeout=WAIT
    )
    assert not result.success
    assert result.metadata["error_type"] == "not_picklable", result.error
    assert "could not be loaded" in (result.error or "")
    assert "_PicklingError" in (result.error or "")
    assert len(result.error or "") < 2000
    assert run_pid(executor, task, context) > 0


@pytest.mark.parametrize("mode", ["no_text", "exit_text", "long"])
def test_a_value_whose_pickling_error_is_hostile_fails_its_task_clearly(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context, mode: str
) -> None:
    """A value whose pickling raises an exception whose text cannot be made, or is 1 MB
    quoting the key: the task fails ``not_picklable`` with a short message without the key,
    and the worker serves on."""
    executor = make()
    pid = run_pid(executor, task, context)
    result = executor.execute_task(
        task("returns_fails_to_pickle_badly", mode=mode, api_key=KEY), context, timeout=WAIT
    )
    assert not result.success
    assert result.metadata["error_type"] == "not_picklable", result.error
    assert "cannot be sent back" in (result.error or "")
    assert "_PicklingError" in (result.error or "")
    assert KEY not in (result.error or "")
    assert len(result.error or "") < 2000
    assert run_pid(executor, task, context) == pid


def test_a_value_whose_pickling_error_hides_its_class_name_fails_its_task_clearly(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """A pickling error whose class's metaclass will not say its name (a proxy, a mock) is
    named by the name the class was made with, and the worker serves on: the worker described
    the error by ``type(exc).__name__``, which raised there."""
    executor = make()
    pid = run_pid(executor, task, context)
    result = executor.execute_task(
        task("returns_fails_to_pickle_badly", mode="nameless", api_key=KEY), context, timeout=WAIT
    )
    assert not result.success
    assert result.metadata["error_type"] == "not_picklable", result.error
    assert "pickling failed with _NamelessPicklingError: " in (result.error or "")
    assert KEY not in (result.error or "")
    assert run_pid(executor, task, context) == pid


@pytest.mark.parametrize(
    ("tool", "name"), [("returns_key_holder", "api_key"), ("returns_typed_key_holder", "dsn")]
)
def test_a_value_that_cannot_be_pickled_keeps_no_part_of_a_secret_it_quotes(
    make: Callable[..., Executor],
    task: Callable[..., Task],
    context: Context,
    tool: str,
    name: str,
) -> None:
    """A result and a checkpoint value that cannot be pickled are described scrubbed of the
    task's secrets (a secret-named parameter, or one the tool's input model types SecretStr)
    before the description is cut: no slice of a key their repr quotes across the cut
    reaches the spans or the result."""
    slices = process_tools.key_slices_left(make, task(tool, **{name: KEY}), context, WAIT)
    assert slices == []


def test_a_result_whose_unpickling_raises_a_base_exception_fails_only_its_task(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """A value whose unpickling raises ``SystemExit`` fails its task; the reader goes on."""
    executor = make()
    result = executor.execute_task(task("returns_exit_when_loaded"), context, timeout=WAIT)
    assert result.metadata["error_type"] == "not_picklable"
    assert "SystemExit" in (result.error or "")
    assert run_pid(executor, task, context) > 0


def test_a_parameter_whose_unpickling_raises_a_base_exception_fails_only_its_task(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """A parameter whose unpickling raises ``SystemExit`` in the worker is not_picklable."""
    executor = make()
    before = run_pid(executor, task, context)
    result = executor.execute_task(
        task("pid", value=process_tools.ExitsWhenLoaded()), context, timeout=WAIT
    )
    assert result.metadata["error_type"] == "not_picklable"
    assert "SystemExit" in (result.error or "")
    assert run_pid(executor, task, context) == before  # the worker serves on


def test_an_exception_whose_message_raises_system_exit_fails_only_its_task(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """An exception whose ``__str__`` raises ``SystemExit`` comes back and fails its task; the
    reader thread, which turns it into the task's error, goes on serving the next task."""
    executor = make()
    result = executor.execute_task(task("raises_exit_when_printed"), context, timeout=WAIT)
    assert result.metadata["error_type"] == "ExitsWhenPrintedError"
    assert result.error == "ExitsWhenPrintedError (its message could not be turned into text)"
    assert run_pid(executor, task, context) > 0


def test_an_exception_comes_back_with_its_class_and_message(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    executor = make()
    result = executor.execute_task(task("fails"), context, timeout=WAIT)
    assert result.metadata["error_type"] == "ValueError"
    assert result.error == "bad input 7"


# -- limits and measurements --------------------------------------------------------------------


@pytest.mark.parametrize("how", ["bytearray", "mmap"])
def test_an_allocation_past_the_memory_limit_fails_inside_the_tool(
    how: str, make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """Past the limit an allocation fails inside the tool: a ``MemoryError``, or for a mapping
    of its own (``mmap``) an ``OSError`` ``ENOMEM``; either is the limit's."""
    executor = make(resource_limits=ResourceLimits(memory_limit_mb=200))
    before = run_pid(executor, task, context)
    result = executor.execute_task(task("allocate", mb=500, how=how), context, timeout=WAIT)
    assert not result.success
    assert result.metadata["error_type"] == "memory_limit", result.error
    assert "memory limit of 200 MB" in (result.error or "")
    # The worker that hit the limit is not reused; an allocation under it works.
    assert gone(before)
    result = executor.execute_task(task("allocate", mb=50, how=how), context, timeout=WAIT)
    assert result.success, result.error


@pytest.mark.parametrize("wrap", ["from", "while", "from None"])
@pytest.mark.parametrize("how", ["bytes", "mmap"])
def test_an_error_a_tool_raises_for_an_allocation_the_limit_refused_is_the_limits(
    how: str, wrap: str, make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """A tool (or a library) that tells a failed allocation as an error of its own, raised
    from it or while handling it, hit the limit all the same: the task ends ``memory_limit``,
    its error naming the limit and keeping the tool's words, and the worker is not reused."""
    executor = make(resource_limits=ResourceLimits(memory_limit_mb=200))
    before = run_pid(executor, task, context)
    result = executor.execute_task(
        task("allocate", mb=500, how=how, wrap=wrap), context, timeout=WAIT
    )
    assert not result.success
    assert result.metadata["error_type"] == "memory_limit", result.error
    error = result.error or ""
    assert "memory limit of 200 MB (memory_limit_mb=200)" in error, error
    assert "ValueError: could not load the file" in error, error
    assert gone(before)
    result = executor.execute_task(task("allocate", mb=50, how=how, wrap=wrap), context)
    assert result.success, result.error


def test_a_memory_error_a_tool_raises_itself_under_a_memory_limit_is_the_tools(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """A tool that refuses a size it was asked for, raising a ``MemoryError`` subclass of its
    own (no allocation failed: memory was plentiful), under ``memory_limit_mb``: the task
    ended ``memory_limit``, its error saying that the tool "exceeded its memory limit", and the
    worker was replaced. It now ends with the tool's own error, and the worker serves on."""
    executor = make(resource_limits=ResourceLimits(memory_limit_mb=200))
    before = run_pid(executor, task, context)
    result = executor.execute_task(task("refuses_a_size", mb=10**9), context, timeout=WAIT)
    assert not result.success
    assert result.metadata["error_type"] == "SizeRefused", result.error
    error = result.error or ""
    assert "more than this tool will allocate" in error, error
    assert "exceeded its memory limit" not in error, error
    assert run_pid(executor, task, context) == before, "the worker was replaced"


def test_a_plain_memory_error_raised_by_python_code_under_a_memory_limit_is_the_limits(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """A plain ``MemoryError`` raised by a ``raise`` statement is what Python libraries raise
    when an allocation they asked for failed (SciPy's ``expm`` after a failed ``malloc``):
    under ``memory_limit_mb`` it stays the limit's (``memory_limit``), the worker replaced.
    Only a ``MemoryError`` class of the tool's own, raised by its code, is the tool's."""
    executor = make(resource_limits=ResourceLimits(memory_limit_mb=200))
    before = run_pid(executor, task, context)
    result = executor.execute_task(
        task("refuses_a_size", mb=10**9, plain=True), context, timeout=WAIT
    )
    assert result.metadata["error_type"] == "memory_limit", result.error
    assert "exceeded its memory limit" in (result.error or ""), result.error
    assert run_pid(executor, task, context) != before, "the worker was not replaced"


def test_a_memory_error_a_result_raises_itself_as_it_is_pickled_is_not_the_limits(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """A result whose ``__reduce__`` refuses with a ``MemoryError`` of its own (nothing
    allocated), under ``memory_limit_mb``: the task ended ``memory_limit``, its error saying
    that the tool exceeded its memory limit while its value was pickled. It now says that the
    value cannot be pickled, as it would without a limit."""
    executor = make(resource_limits=ResourceLimits(memory_limit_mb=200))
    result = executor.execute_task(task("returns_refuses_to_pickle"), context, timeout=WAIT)
    assert result.metadata["error_type"] == "not_picklable", result.error
    assert "exceeded its memory limit" not in (result.error or ""), result.error


def test_a_memory_error_a_c_library_raises_as_the_limit_refuses_it_is_the_limits(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """NumPy tells an allocation it could not make as a ``MemoryError`` subclass of its own,
    raised from C: under ``memory_limit_mb`` that is the limit's (``memory_limit``), as the
    interpreter's own ``MemoryError`` is."""
    pytest.importorskip("numpy")
    executor = make(resource_limits=ResourceLimits(memory_limit_mb=1000))
    result = executor.execute_task(task("allocates_with_numpy", mb=4000), context, timeout=WAIT)
    assert not result.success
    assert result.metadata["error_type"] == "memory_limit", result.error
    assert "memory limit of 1000 MB" in (result.error or ""), result.error


def test_a_thread_the_memory_limit_refuses_says_the_limit_refused_it(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """Each thread's stack counts against the memory limit: a tool whose threads it refuses
    fails with an error that names the limit, not a bare "can't start new thread"."""
    executor = make(resource_limits=ResourceLimits(memory_limit_mb=50))
    # (8 MB stacks by default: 40 threads need 320 MB)
    result = executor.execute_task(task("starts_threads", count=40), context, timeout=WAIT)
    assert not result.success
    assert result.metadata["error_type"] == "RuntimeError", result.error
    error = result.error or ""
    assert error.startswith("can't start new thread"), error
    assert "memory limit of 50 MB (memory_limit_mb=50)" in error
    assert "stack" in error
    # A few threads fit; without a limit, many do.
    few = executor.execute_task(task("starts_threads", count=2), context, timeout=WAIT)
    assert few.success, few.error
    unlimited = make()
    many = unlimited.execute_task(task("starts_threads", count=40), context, timeout=WAIT)
    assert many.success, many.error


@pytest.mark.parametrize(
    ("hard", "limits"),
    [
        (True, ResourceLimits(memory_limit_mb=200, cpu_limit_percent=100, timeout_seconds=60)),
        (False, ResourceLimits()),
    ],
    ids=["hard-with-limits", "soft-without-limits"],
)
def test_a_tool_that_lowers_its_workers_limits_succeeds_and_its_worker_is_not_reused(
    hard: bool,
    limits: ResourceLimits,
    make: Callable[..., Executor],
    task: Callable[..., Task],
    context: Context,
) -> None:
    """A tool that lowers its worker's memory or CPU limit (the hard one, which the worker
    cannot raise again) gets its result, and the next task gets a worker whose limits are
    its own: the worker is replaced, not crashed, nor left with limits that fail later tasks."""
    executor = make(resource_limits=limits)
    result = executor.execute_task(task("lowers_its_limits", hard=hard), context, timeout=WAIT)
    assert result.success, result.error
    assert gone(result.output)
    result = executor.execute_task(task("allocate", mb=50), context, timeout=WAIT)
    assert result.success, result.error


def test_a_result_whose_pickling_needs_more_than_the_memory_limit_fails_as_memory_limit(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """Pickling a tool's result to send it back counts against the task's memory limit: a
    small result that needs more than the limit to pickle fails ``memory_limit``."""
    executor = make(resource_limits=ResourceLimits(memory_limit_mb=100))
    before = run_pid(executor, task, context)
    result = executor.execute_task(task("returns_swelling", mb=150), context, timeout=WAIT)
    assert result.metadata["error_type"] == "memory_limit", result.error
    assert "memory limit of 100 MB" in (result.error or "")
    assert "pickled" in (result.error or "")
    assert gone(before)  # the worker that hit the limit is not reused
    fine = executor.execute_task(task("returns_swelling", mb=10), context, timeout=WAIT)
    assert fine.success, fine.error
    assert fine.output == bytes(10 * 1024 * 1024)


@pytest.mark.parametrize("blocking", [True, False], ids=["blocking", "async"])
def test_a_cpu_budget_a_task_without_a_timeout_cannot_have_is_warned_about_once(
    blocking: bool,
    make: Callable[..., Executor],
    task: Callable[..., Task],
    context: Context,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The CPU budget is ``cpu_limit_percent`` of the task's timeout: a task without one ran
    with no budget at all, in silence. The first such task now logs one warning (once per
    process) saying so; a task with a timeout has its budget, and says nothing."""
    from laios.execution._engine import engine as engine_module

    monkeypatch.setattr(engine_module, "_NO_CPU_BUDGET_WARNINGS", WarningLimiter(math.inf))
    executor = make(resource_limits=ResourceLimits(cpu_limit_percent=50))

    def run(**options: Any) -> TaskResult:
        if blocking:
            return executor.execute_task(task("pid"), context, **options)
        return asyncio.run(executor.execute_async(task("pid"), context, **options))

    def said() -> list[str]:
        return [r.getMessage() for r in caplog.records if "no CPU budget" in r.getMessage()]

    with caplog.at_level("WARNING", logger="laios.execution"):
        assert run(timeout=WAIT).success
        assert said() == []
        assert run().success
        assert run().success
    assert len(said()) == 1, said()
    message = said()[0]
    assert message.startswith("ResourceLimits.cpu_limit_percent gives no CPU budget"), message
    assert "timeout_seconds" in message


def test_a_cpu_spinner_is_stopped_by_its_cpu_budget(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    # 10 % of a 10 s timeout: a budget of 1 CPU second.
    executor = make(resource_limits=ResourceLimits(cpu_limit_percent=10))
    started = time.monotonic()
    result = executor.execute_task(task("spin"), context, timeout=10.0)
    elapsed = time.monotonic() - started
    assert not result.success
    assert result.metadata["error_type"] == "cpu_limit"
    assert "CPU budget of 1 CPU second (" in (result.error or "")
    assert elapsed < 8.0  # stopped by the budget (about 1 s), not by the timeout
    # The worker's own count is lost with it; the task used its budget at least.
    metrics = executor.get_metrics(result.task_id)
    assert metrics is not None
    assert metrics.cpu_time >= 1.0, metrics.cpu_time
    assert run_pid(executor, task, context) > 0


@pytest.mark.parametrize("blocking", [True, False], ids=["blocking", "async"])
def test_a_retry_deadline_leaves_an_attempts_cpu_budget_as_its_own_timeout_makes_it(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context, blocking: bool
) -> None:
    """An attempt whose timeout the retry call's ``deadline`` cut to the time left keeps the
    CPU budget of its own timeout (2 % of 60 s: 1.2 CPU seconds), as a task run alone has,
    not a budget nobody set computed from the time left."""
    executor = make(resource_limits=ResourceLimits(cpu_limit_percent=2, timeout_seconds=60))
    run_pid(executor, task, context)  # (a worker ready: the attempt starts at once)
    options: dict[str, Any] = {"max_retries": 0, "deadline": 40}
    if blocking:
        result = executor.execute_with_retry(task("spin"), context, **options)
    else:
        result = asyncio.run(executor.execute_with_retry_async(task("spin"), context, **options))
    assert result.metadata["error_type"] == "cpu_limit", result.error
    assert "CPU budget of 1.2 CPU seconds (" in (result.error or "")


def test_an_attempt_without_a_timeout_of_its_own_gets_no_cpu_budget_from_a_retry_deadline(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """No timeout, no CPU budget: an attempt the retry call's ``deadline`` stops is stopped
    by the deadline, and says so, not by a CPU budget made from the time the deadline left."""
    executor = make(resource_limits=ResourceLimits(cpu_limit_percent=20))
    run_pid(executor, task, context)  # (a worker ready: the attempt starts at once)
    result = executor.execute_with_retry(task("spin"), context, max_retries=0, deadline=3)
    assert result.metadata["error_type"] == "timeout", result.error
    assert "left of its retry deadline of 3s" in (result.error or "")


def test_a_tool_deaf_to_the_cpu_signals_is_still_stopped_by_its_cpu_budget(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """A tool that ignores SIGPROF and SIGXCPU and lifts its own CPU timer and soft limit
    is stopped by its budget all the same (not by its timeout), and reported as such."""
    # 5 % of a 30 s timeout: a budget of 1.5 CPU seconds.
    executor = make(resource_limits=ResourceLimits(cpu_limit_percent=5))
    before = run_pid(executor, task, context)
    started = time.monotonic()
    result = executor.execute_task(task("spin_deaf"), context, timeout=30.0)
    elapsed = time.monotonic() - started
    assert result.metadata["outcome"] == "error", result.error
    assert result.metadata["error_type"] == "cpu_limit"
    assert "CPU budget of 1.5 CPU seconds (" in (result.error or "")
    assert elapsed < 20.0  # stopped by the budget (about 2 s), not by the timeout
    metrics = executor.get_metrics(result.task_id)
    assert metrics is not None
    assert metrics.cpu_time >= 1.5, metrics.cpu_time
    assert gone(before), "the worker past its budget is still alive"
    assert run_pid(executor, task, context) != before


@pytest.mark.parametrize("how", ["raise", "return"])
def test_a_tool_that_handles_its_cpu_budgets_signal_and_ends_past_it_is_the_budgets(
    how: str, make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """A tool that handles the signal its CPU budget sends, and ends past the budget before
    the runner's watch stops it (raising an error of its own from the handler, or returning),
    went past its budget all the same: the task ends ``cpu_limit``, and the worker is not
    reused."""
    # 3 % of a 10 s timeout: a budget of 0.3 CPU seconds; the tool ends at 0.45, before the
    # watch's grace (0.5 s past the budget) and the whole-second RLIMIT_CPU backstop.
    executor = make(resource_limits=ResourceLimits(cpu_limit_percent=3))
    before = run_pid(executor, task, context)
    result = executor.execute_task(
        task("spin_catching", seconds=0.45, how=how), context, timeout=10.0
    )
    assert result.metadata["outcome"] == "error", result.error
    assert result.metadata["error_type"] == "cpu_limit", result.error
    assert "CPU budget of 0.3 CPU seconds (" in (result.error or ""), result.error
    assert "it handled the signal that stops it" in (result.error or ""), result.error
    assert gone(before), "the worker past its budget is reused"
    assert run_pid(executor, task, context) != before


def test_the_cpu_seconds_of_the_initializer_do_not_count_against_a_calls_budget(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """The runner's watch of a worker's CPU clock counted from when the call was sent: a
    worker's first call, whose initializer burnt more than the call's budget and the grace
    (heavy imports), had its worker killed while it still ran the initializer, and ended
    ``cpu_limit`` saying that the tool exceeded its budget, though it never started (every
    new worker's first call so). The budget now counts from when the worker begins the call,
    as the worker's own timer does."""
    # 5 % of a 10 s timeout: a budget of 0.5 CPU seconds; the initializer burns 1.5.
    executor = make(
        resource_limits=ResourceLimits(cpu_limit_percent=5),
        runner_options={"initializer": process_tools.spin_for, "initargs": (1.5,)},
    )
    result = executor.execute_task(task("pid"), context, timeout=10.0)
    assert result.success, result.error


def test_a_tool_profiling_itself_within_its_cpu_budget_is_not_said_to_exceed_it(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """A tool whose profiler set the CPU timer (``ITIMER_PROF``, on ``SIGPROF``) in place of
    its budget's, and stopped it before returning, within its budget but in the last 50 ms of
    it: the timer read as run out, so the task ended ``cpu_limit``, its error saying that the
    tool "handled the signal that stops it there", though it never came."""
    # 5 % of a 10 s timeout: a budget of 0.5 CPU seconds; the tool burns 0.475 of them.
    executor = make(resource_limits=ResourceLimits(cpu_limit_percent=5))
    result = executor.execute_task(
        task("spin_profiled", seconds=0.475, stop=True), context, timeout=10.0
    )
    assert result.success, result.error
    assert result.output > 0, "the profiler took no sample"


def test_a_tool_profiling_itself_past_its_cpu_budget_is_the_budgets(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """A tool whose profiler set the CPU timer in place of its budget's, and left it running,
    went on past its budget and returned before the runner's watch (0.5 s past the budget)
    stopped it: the timer read as not run out, and the task succeeded. It now ends
    ``cpu_limit``, its error saying how much it used and that it took the timer."""
    # A budget of 0.5 CPU seconds; the tool burns 0.75 (a new worker: the whole-second
    # RLIMIT_CPU backstop is at least a second away).
    executor = make(resource_limits=ResourceLimits(cpu_limit_percent=5))
    result = executor.execute_task(task("spin_profiled", seconds=0.75), context, timeout=10.0)
    assert result.metadata["outcome"] == "error", result
    assert result.metadata["error_type"] == "cpu_limit", result.error
    error = result.error or ""
    assert "CPU budget of 0.5 CPU seconds (" in error, error
    assert "set the CPU timer that stops it there" in error, error
    assert "handled the signal" not in error, error
    assert executor.get_metrics(result.task_id).cpu_time >= 0.75


def pretend_unenforced(monkeypatch: pytest.MonkeyPatch, *limits: str) -> None:
    """Have the runner take ``limits`` ("memory", "cpu") for ones the platform cannot enforce,
    none of them warned about yet in this process."""
    monkeypatch.setattr(process_runner, "_UNENFORCED_LIMITS", frozenset(limits))
    monkeypatch.setattr(process_runner, "_UNENFORCED_WARNINGS", WarningLimiter(math.inf))


@pytest.mark.parametrize(
    ("unenforced", "limits", "named"),
    [
        ("memory", ResourceLimits(memory_limit_mb=500), "memory_limit_mb"),
        ("cpu", ResourceLimits(cpu_limit_percent=50), "cpu_limit_percent"),
    ],
    ids=["memory", "cpu"],
)
def test_a_limit_the_platform_cannot_enforce_is_warned_about_once(
    make: Callable[..., Executor],
    task: Callable[..., Task],
    context: Context,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    unenforced: str,
    limits: ResourceLimits,
    named: str,
) -> None:
    """Where a worker cannot enforce a limit (the memory limit off Linux, a CPU budget without
    a CPU timer or ``RLIMIT_CPU``), the first task given it logs one warning naming the limit
    and the platform, instead of running without it in silence; the tasks run."""
    pretend_unenforced(monkeypatch, unenforced)
    executor = make(resource_limits=limits)
    with caplog.at_level(logging.WARNING, logger="laios.execution"):
        for _ in range(3):
            result = executor.execute_task(task("pid"), context, timeout=WAIT)
            assert result.success, result.error
    said = [record.getMessage() for record in caplog.records if named in record.getMessage()]
    assert len(said) == 1, said
    assert "cannot enforce" in said[0]
    assert sys.platform in said[0]


def test_no_warning_is_given_for_a_limit_no_task_has(
    make: Callable[..., Executor],
    task: Callable[..., Task],
    context: Context,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A CPU percentage without a timeout is no budget, so no warning is due for it."""
    pretend_unenforced(monkeypatch, "memory", "cpu")
    executor = make(resource_limits=ResourceLimits(cpu_limit_percent=50))
    with caplog.at_level(logging.WARNING, logger="laios.execution"):
        result = executor.execute_task(task("pid"), context)
    assert result.success, result.error
    assert not [record for record in caplog.records if "cannot enforce" in record.getMessage()]


def test_a_memory_limit_past_what_the_platform_can_set_is_no_limit(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """A memory limit of more bytes than a resource limit holds lets the tool run."""
    executor = make(resource_limits=ResourceLimits(memory_limit_mb=2**44))
    assert run_pid(executor, task, context) > 0


def test_a_cpu_budget_past_what_the_platform_can_set_is_no_budget(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """A CPU budget of more seconds than a CPU timer holds lets the tool run."""
    executor = make(resource_limits=ResourceLimits(cpu_limit_percent=1e20))
    assert run_pid(executor, task, context) > 0


def test_cpu_time_and_peak_memory_are_measured_per_task(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    executor = make()
    spun = executor.execute_task(task("spin", seconds=0.2), context, timeout=WAIT)
    assert spun.success
    assert executor.get_metrics(spun.task_id).cpu_time >= 0.15  # type: ignore[union-attr]
    big = executor.execute_task(task("allocate", mb=120), context, timeout=WAIT)
    small = executor.execute_task(task("allocate", mb=1), context, timeout=WAIT)
    assert big.success
    assert small.success
    big_peak = executor.get_metrics(big.task_id).memory_peak_mb  # type: ignore[union-attr]
    small_peak = executor.get_metrics(small.task_id).memory_peak_mb  # type: ignore[union-attr]
    assert big_peak >= 120
    # The same worker ran both: the second task does not report the first one's peak.
    assert 0 < small_peak < big_peak - 60


def test_a_large_result_a_worker_sent_is_not_in_its_next_tasks_peak_memory(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """A worker held the last outcome it sent, pickled, until its next call had ended: that
    call's peak memory counted it."""
    executor = make()
    peaks = []
    for name, parameters in (("pid", {}), ("returns_swelling", {"mb": 96}), ("pid", {})):
        result = executor.execute_task(task(name, **parameters), context, timeout=WAIT)
        assert result.success, result.error
        peaks.append(executor.get_metrics(result.task_id).memory_peak_mb)  # type: ignore[union-attr]
    assert 0 < peaks[2] < peaks[0] + 48, peaks


def test_what_a_failed_tool_held_is_not_in_its_workers_next_tasks_peak_memory(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """The exception a tool raised kept the tool's frames, with what they held, until the
    garbage collector found the cycle it made with the worker's own frame: the next tasks'
    peak memory counted them."""
    executor = make()
    peaks = []
    for name, parameters in (("pid", {}), ("fails_holding_memory", {"mb": 96}), ("pid", {})):
        result = executor.execute_task(task(name, **parameters), context, timeout=WAIT)
        peaks.append(executor.get_metrics(result.task_id).memory_peak_mb)  # type: ignore[union-attr]
    assert result.success, result.error
    # (the 96 MiB block, within a few: the first task's peak may count pages freed since)
    assert peaks[1] >= peaks[0] + 90, peaks
    assert 0 < peaks[2] < peaks[0] + 48, peaks


def test_a_task_killed_at_its_timeout_reports_what_its_worker_used_until_then(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context, box: str
) -> None:
    """A task whose worker was killed at its timeout reported a ``cpu_time`` and a
    ``memory_peak_mb`` of 0.0 (the worker's own count ends with it): a CPU hog looked idle.
    The runner now reads them just before the kill."""
    executor = make()
    run_pid(executor, task, context)  # (a worker ready: the call starts at once)
    hog = task("allocates_and_spins", mb=64, box=box)
    result = executor.execute_task(hog, context, timeout=1.0)
    assert result.metadata["outcome"] == "timeout", result.error
    assert result.metadata["worker_killed"] is True
    metrics = executor.get_metrics(result.task_id)
    assert metrics is not None
    assert metrics.cpu_time > 0.0
    assert metrics.memory_peak_mb >= 64, metrics.memory_peak_mb


def test_a_cancelled_task_reports_the_cpu_of_its_own_call_until_the_kill(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context, box: str
) -> None:
    """``cancel_task`` of a running task kills its worker: its ``cpu_time`` is what the
    worker used since the call began (read just before the kill), not 0.0, and not what
    the worker had used before the call."""
    executor = make()
    spun = executor.execute_task(task("spin", seconds=0.8), context, timeout=WAIT)
    assert spun.success, spun.error
    hog = task("allocates_and_spins", mb=1, box=box)
    caller = Caller(executor, hog, context)
    spinning = wait_for(lambda: process_tools.read_note(box, "spinning"))
    assert spinning, "the tool did not start"
    clock = (~spinning["pid"] << 3) | 2  # (the worker's CPU clock)
    assert wait_for(lambda: time.clock_gettime(clock) >= spinning["cpu"] + 0.2)
    assert executor.cancel_task(hog.id)
    result = caller.returned(WAIT)
    assert result.metadata["outcome"] == "cancelled", result.error
    assert result.metadata["worker_killed"] is True
    metrics = executor.get_metrics(result.task_id)
    assert metrics is not None
    assert 0.2 <= metrics.cpu_time < 0.8, metrics.cpu_time


def test_the_cpu_time_of_a_child_process_the_tool_waited_for_is_counted(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """A task's cpu_time includes the CPU seconds of a child process that ended and was
    waited for during the call, and only that call's."""
    executor = make()
    result = executor.execute_task(task("busy_child", seconds=0.3), context, timeout=WAIT)
    assert result.success, result.error
    assert executor.get_metrics(result.task_id).cpu_time >= 0.25  # type: ignore[union-attr]
    after = executor.execute_task(task("pid"), context, timeout=WAIT)  # the same worker
    assert executor.get_metrics(after.task_id).cpu_time < 0.2  # type: ignore[union-attr]


def test_a_child_process_inherits_the_soft_cpu_limit_not_the_budget_watch(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """A CPU-bound child process is not counted against its tool's budget; it inherits the
    worker's soft RLIMIT_CPU, which stops it (SIGXCPU) after its own CPU seconds."""
    # 2 % of a 60 s timeout: a budget of 1.2 CPU seconds; the child would burn 30.
    executor = make(resource_limits=ResourceLimits(cpu_limit_percent=2))
    result = executor.execute_task(task("busy_child", seconds=30.0), context, timeout=60.0)
    assert result.metadata["outcome"] == "error", result.error
    assert result.metadata["error_type"] == "CalledProcessError"  # the tool's own error
    assert "SIGXCPU" in (result.error or "")
    assert executor.get_metrics(result.task_id).cpu_time >= 1.0  # type: ignore[union-attr]


# -- progress, async tools, traces ------------------------------------------------------------


def test_progress_from_the_child_arrives_in_order(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    process_tools.check_progress_in_order(make(), task, context, 100, WAIT)


def test_a_callback_that_blocks_never_holds_another_workers_outcome(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """Every worker's messages are read on the runner's reader thread, which also runs the
    callbacks: while one task's ``on_progress`` blocks there, another worker's call still
    ends as soon as its tool returned (never timed out with its worker killed), and the
    blocked task's progress still comes before its outcome."""
    executor = make(2)
    warm = [
        threading.Thread(target=executor.execute_task, args=(task("pid"), context))
        for _ in range(2)
    ]
    for thread in warm:
        thread.start()
    for thread in warm:
        thread.join()
    inside = threading.Event()
    release = threading.Event()
    events: list[str] = []

    def blocks(event: str, data: Any) -> None:
        events.append(event)
        if event == "progress" and not inside.is_set():
            inside.set()
            release.wait(4 * WAIT)

    results: list[TaskResult] = []
    blocked = threading.Thread(
        target=lambda: results.append(
            executor.execute_task(task("progress", steps=1), context, on_progress=blocks)
        )
    )
    blocked.start()
    try:
        assert inside.wait(WAIT), "the blocking callback was never called"
        other = executor.execute_task(task("pid"), context, timeout=WAIT)
        assert other.success, other.error
        assert "worker_killed" not in other.metadata
        assert not release.is_set()
    finally:
        release.set()
        blocked.join(4 * WAIT)
    assert results, "the blocked task never ended"
    assert results[0].success, results[0].error
    assert events.index("progress") < events.index("completed"), events


def test_a_span_exporter_that_blocks_never_holds_another_workers_outcome(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """A synchronous span exporter runs where a task's span ends, on the reader thread for
    an outcome: while it blocks for one task, another worker's call still ends as soon as its
    tool returned, and the blocked worker serves calls again once the export has returned."""
    inside = threading.Event()
    release = threading.Event()

    class Blocks(InMemorySpanExporter):
        def export(self, spans: Any) -> Any:
            if any(span.name == "execute_tool progress" for span in spans):
                inside.set()
                release.wait(4 * WAIT)
            return super().export(spans)

    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(Blocks()))
    executor = make(2, tracer_provider=provider)
    results: list[TaskResult] = []
    blocked = threading.Thread(
        target=lambda: results.append(
            executor.execute_task(task("progress", steps=1), context, timeout=4 * WAIT)
        )
    )
    blocked.start()
    try:
        assert inside.wait(WAIT), "the blocking exporter was never called"
        for _ in range(3):
            other = executor.execute_task(task("pid"), context, timeout=WAIT)
            assert other.success, other.error
            assert "worker_killed" not in other.metadata
        assert not release.is_set()
    finally:
        release.set()
        blocked.join(4 * WAIT)
    assert results, "the blocked task never ended"
    assert results[0].success, results[0].error
    outcomes = [executor.execute_task(task("pid"), context, timeout=WAIT) for _ in range(4)]
    assert all(outcome.success for outcome in outcomes), [o.error for o in outcomes]


def test_a_call_waiting_for_a_busy_worker_is_queued_not_in_flight(
    make: Callable[..., Executor],
    tools: ToolRegistry,
    task: Callable[..., Task],
    context: Context,
    box: str,
) -> None:
    """With every worker busy, a call waits in the runner's queue: its task is queued (not in
    flight) until a worker takes it, and that wait is its queue wait, as on the thread runner
    (the task starts when its worker takes it, not when it is handed to the runner)."""
    tools.register_tool(process_tools.WaitsForAFile())
    store = MetricStore()
    executor = make(1, store=store)
    run_pid(executor, task, context)  # (the worker is up: the wait below is the queue's alone)
    path = Path(box) / "go"
    finished: list[tuple[str, float]] = []
    store.add_finish_listener(lambda done: finished.append((done.tool, done.queue_wait)))
    first = Caller(executor, task("waits_for_a_file", path=str(path)), context, timeout=4 * WAIT)
    try:
        assert wait_for(lambda: executor.runner.stats.busy == 1), "the first call never ran"
        queued = Caller(executor, task("pid"), context, timeout=4 * WAIT)
        assert wait_for(lambda: len(store.running_snapshot()) == 2), "the call was never queued"
        held = time.monotonic()
        while time.monotonic() - held < 0.3:  # (the state must hold while the worker is busy)
            states = {r.tool: r.state for r in store.running_snapshot()}
            assert states == {"waits_for_a_file": "running", "pid": "queued"}, states
            slots = {t.tool: t.in_flight for t in store.snapshot().tools}
            assert slots.get("pid", 0) == 0, slots
            time.sleep(0.02)
    finally:
        path.touch()
    assert first.returned(WAIT, "the first call never ended").success
    assert queued.returned(WAIT, "the queued call never ended").success
    (wait,) = [seconds for tool, seconds in finished if tool == "pid"][-1:]
    assert wait >= 0.3, finished


def test_a_call_queued_behind_an_outcome_whose_export_blocks_starts_at_once(
    make: Callable[..., Executor],
    tools: ToolRegistry,
    task: Callable[..., Task],
    context: Context,
    box: str,
) -> None:
    """The call a worker takes from the queue as its call ends starts once that call's
    outcome is delivered, or, when that delivery blocks (here, in a span exporter), on the
    thread that takes over the reading: it never waits for the delivery."""
    inside = threading.Event()
    release = threading.Event()

    class Blocks(InMemorySpanExporter):
        def export(self, spans: Any) -> Any:
            if any(span.name == "execute_tool waits_for_a_file" for span in spans):
                inside.set()
                release.wait(4 * WAIT)
            return super().export(spans)

    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(Blocks()))
    tools.register_tool(process_tools.WaitsForAFile())
    executor = make(1, tracer_provider=provider)
    path = Path(box) / "go"
    results: dict[str, TaskResult] = {}

    def run(name: str, tool: Task) -> None:
        results[name] = executor.execute_task(tool, context, timeout=4 * WAIT)

    first = threading.Thread(target=run, args=("first", task("waits_for_a_file", path=str(path))))
    first.start()
    queued = None
    try:
        wait_for(lambda: executor.runner.stats.busy == 1)
        queued = threading.Thread(target=run, args=("queued", task("pid")))
        queued.start()
        assert wait_for(lambda: executor.runner.stats.queued == 1), "the call was not queued"
        path.touch()
        assert inside.wait(WAIT), "the blocking exporter was never called"
        queued.join(WAIT)
        assert "queued" in results, "the queued call waited for the blocked delivery"
        assert results["queued"].success, results["queued"].error
        assert not release.is_set()
    finally:
        release.set()
        first.join(4 * WAIT)
        if queued is not None:
            queued.join(4 * WAIT)
    assert results["first"].success, results["first"].error
    assert results["queued"].output == results["first"].output  # (the same worker)


def test_progress_a_call_reports_after_it_ended_never_reaches_the_next_call(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """Progress from a thread of an ended call is dropped, not given to the worker's next call."""
    executor = make()
    first = executor.execute_task(task("progress_later"), context, timeout=WAIT)
    assert first.success, first.error
    events: list[tuple[str, Any]] = []
    second = executor.execute_task(
        task("release_late_progress"),
        context,
        timeout=WAIT,
        on_progress=lambda kind, data: events.append((kind, data)),
    )
    assert second.success, second.error
    assert second.output == first.output  # the same worker ran both
    assert [kind for kind, _ in events] == ["started", "completed"]


def test_a_thread_a_call_left_behind_sees_its_handle_cancelled_once_the_call_ended(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context, box: str
) -> None:
    """As on the caller's side, a finished task's handle reads cancelled True in the worker:
    a thread the tool left running there (the worker serves later calls) can stop."""
    executor = make()
    result = executor.execute_task(task("watches_its_handle", box=box), context, timeout=WAIT)
    assert result.success, result.error
    seen = wait_for(lambda: process_tools.read_note(box, "watched"), 10.0)
    assert seen == {"during": False, "after": True}


def test_checkpoint_keys_that_can_be_neither_pickled_nor_printed_do_not_fail_the_tool(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """As in the caller's process, such a key is written as its ``repr()``, else a
    placeholder: the tool's ``checkpoint`` raised the key's own ``__str__`` error. The other
    keys of its mapping go as their text, written as in the caller's process too: a string
    (a ``(str, Enum)`` member, one whose ``str()`` raises) as its own text."""
    executor = make()
    run = task("checkpoints_odd_keys")
    result = executor.execute_task(run, context, timeout=WAIT)
    assert result.success, result.error
    assert result.output == "returned"
    metrics = executor.get_metrics(run.id)
    assert metrics is not None
    kept = {point["name"]: point["data"] for point in metrics.checkpoints}
    assert kept["odd keys"] == {
        "<unprintable key>": 1,
        "OddKey()": 2,
        "plain": 3,
        "loaded": 4,
        "rows": 5,
    }


@pytest.mark.parametrize("in_process", [False, True], ids=["caller-thread", "worker-process"])
def test_progress_and_checkpoints_of_values_whose_class_raises_do_not_fail_the_tool(
    make: Callable[..., Executor],
    tools: ToolRegistry,
    task: Callable[..., Task],
    context: Context,
    in_process: bool,
) -> None:
    """A progress message or detail, or a checkpoint name, key or value, whose ``__class__``
    raises (a proxy standing for nothing) is reported as its description, and the tool goes
    on: the error of an ``isinstance`` check of it escaped ``progress`` and ``checkpoint``
    into the tool (a message or a name on every runner; a detail, a key or a value sent from
    a worker process), and the task failed with the bare "no class"."""
    if in_process:
        executor = make()
    else:
        executor = Executor(tools, store=MetricStore(), register_prometheus=False)
    events: list[tuple[str, Any]] = []
    run = task("reports_proxies")
    with executor:
        result = executor.execute_task(
            run, context, on_progress=lambda event, data: events.append((event, data))
        )
        assert result.success, result.error
        assert result.output == "returned"
        metrics = executor.get_metrics(run.id)
    progress = [data for event, data in events if event == "progress"]
    assert len(progress) == 1, events
    assert "ClassRaises object" in progress[0]["message"]
    assert metrics is not None
    assert any("ClassRaises object" in point["name"] for point in metrics.checkpoints)


def test_progress_that_cannot_be_unpickled_is_dropped_and_the_call_goes_on(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """A progress report the caller cannot unpickle is dropped; it never ends the call."""
    executor = make()
    result = executor.execute_task(
        task("progress_that_does_not_load", seconds=0.3), context, timeout=WAIT
    )
    assert result.success, result.error
    assert result.output == "returned"
    after = executor.execute_task(task("pid"), context, timeout=WAIT)
    assert after.success, after.error
    assert isinstance(after.output, int)


def test_progress_whose_pickling_raises_system_exit_is_described_and_the_tool_goes_on(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """``progress`` and ``checkpoint`` raise nothing but their documented ``TypeError``: a
    detail whose pickling raises ``SystemExit`` reaches the caller as its description, as one
    whose pickling raises an ``Exception`` does, and the tool goes on."""
    executor = make()
    events: list[tuple[str, Any]] = []
    result = executor.execute_task(
        task("reports_what_exits_when_pickled"),
        context,
        timeout=WAIT,
        on_progress=lambda event, data: events.append((event, data)),
    )
    assert result.success, result.error
    assert result.output == "returned"
    progress = [data for event, data in events if event == "progress"]
    assert len(progress) == 1, events
    assert "ExitsWhenPickled" in str(progress[0]), progress


def test_an_async_tool_runs_in_the_worker_without_blocking_the_loop(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    executor = make()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    async def main() -> TaskResult:
        ticking = asyncio.create_task(ticker())
        try:
            return await executor.execute_async(task("sleep_async", seconds=0.5), context)
        finally:
            ticking.cancel()

    result = asyncio.run(main())
    assert result.success, result.error
    assert result.output != os.getpid()
    assert ticks >= 10  # the loop went on while the worker slept


def test_a_task_an_async_tool_left_behind_never_decides_a_later_calls_outcome(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """``SystemExit`` raised by a task an earlier call left on the worker's loop is not the
    outcome of the call running when it fires."""
    executor = make()
    first = executor.execute_task(task("leaves_an_exit_behind", seconds=0.2), context, timeout=WAIT)
    assert first.success, first.error
    # The loop runs only during calls: the left task fires during this one (0.2 s < 0.5 s).
    later = executor.execute_task(task("sleep_async", seconds=0.5), context, timeout=WAIT)
    assert later.success, later.error
    assert later.output == first.output  # (the same worker)
    assert executor.execute_task(task("sleep_async"), context, timeout=WAIT).success


def test_the_callers_trace_reaches_the_child(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context, box: str
) -> None:
    spans_file = str(Path(box) / "spans.jsonl")
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    executor = make(
        tracer_provider=provider,
        runner_options={"initializer": process_tools.set_up_tracing, "initargs": (spans_file,)},
    )
    result = executor.execute_task(task("trace_seen"), context, timeout=WAIT)
    assert result.success, result.error
    (task_span,) = [s for s in exporter.get_finished_spans() if s.name == "execute_tool trace_seen"]
    span_context = task_span.get_span_context()
    assert span_context is not None
    assert result.output == {
        "trace_id": f"{span_context.trace_id:032x}",
        "span_id": f"{span_context.span_id:016x}",
    }
    assert result.metadata["trace_id"] == f"{span_context.trace_id:032x}"
    # The span the tool opened in the child (exported by the child's own SDK) joins the trace.
    line = wait_for(lambda: Path(spans_file).exists() and Path(spans_file).read_text())
    child_span = json.loads(line.splitlines()[0])
    assert child_span["name"] == "inside the worker"
    assert child_span["trace_id"] == f"{span_context.trace_id:032x}"
    assert child_span["parent_span_id"] == f"{span_context.span_id:016x}"
    provider.shutdown()


def test_the_callers_span_reaches_the_child_when_the_executor_makes_no_spans(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """An executor that makes no spans (given the ``NoOpTracerProvider``; or no SDK installed
    globally while the caller traces with a provider of its own) leaves the caller's span
    current inside the tool, as on a worker thread: the tool in its worker process saw no span
    at all, and the spans it opened began traces of their own."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    executor = make(tracer_provider=trace.NoOpTracerProvider())
    with provider.get_tracer("tests.caller").start_as_current_span("request") as caller:
        result = executor.execute_task(task("trace_seen"), context, timeout=WAIT)
    assert result.success, result.error
    assert "trace_id" not in result.metadata  # (the executor made no span)
    span_context = caller.get_span_context()
    assert result.output == {
        "trace_id": f"{span_context.trace_id:032x}",
        "span_id": f"{span_context.span_id:016x}",
    }
    # Under suppress_instrumentation() it sees none.
    token = otel_context.attach(otel_context.set_value("suppress_instrumentation", True))
    try:
        with provider.get_tracer("tests.caller").start_as_current_span("request"):
            result = executor.execute_task(task("trace_seen"), context, timeout=WAIT)
    finally:
        otel_context.detach(token)
    assert result.success, result.error
    assert result.output == {"trace_id": "0" * 32, "span_id": "0" * 16}
    provider.shutdown()


def test_a_stopping_worker_exports_what_its_telemetry_sdk_holds(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context, box: str
) -> None:
    """A worker ends with ``os._exit``, which skips the SDK's own shutdown at exit: the spans
    its batching processor held, its metrics since the last export, and the log records its
    batching log processor held, were lost when the runner stopped (the last seconds of every
    worker's telemetry). It exports them first."""
    spans_file = Path(box) / "spans.jsonl"
    metrics_file = Path(box) / "metrics.jsonl"
    logs_file = Path(box) / "logs.jsonl"
    executor = make(
        runner_options={
            "initializer": process_tools.set_up_batched_telemetry,
            "initargs": (str(spans_file), str(metrics_file), str(logs_file)),
        },
    )
    result = executor.execute_task(task("counts_and_traces"), context, timeout=WAIT)
    assert result.success, result.error
    assert not spans_file.exists()  # (held by the batching processor until the worker stops)
    assert not logs_file.exists()  # (likewise)
    executor.shutdown(wait=True)
    assert not alive(result.output)
    assert json.loads(spans_file.read_text().splitlines()[0])["name"] == "inside the worker"
    assert "tool.calls" in json.loads(metrics_file.read_text().splitlines()[-1])
    assert logs_file.exists(), "the log records held at the worker's exit were lost"
    assert json.loads(logs_file.read_text().splitlines()[0]) == "the tool's last words"


def test_a_result_slow_to_load_holds_up_no_other_workers_call(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context, box: str
) -> None:
    """A result whose loading in the caller's process takes long (its class's ``__reduce__`` or
    ``__setstate__`` does work there, its module is imported then) was loaded on the runner's
    one reader thread: every other worker's outcome waited behind it, and their tasks timed
    out though their tools had returned. It is loaded on a thread of its own."""
    executor = make(max_workers=2)
    go = os.path.join(box, "go")
    slow = Caller(executor, task("returns_slow_to_load", box=box, path=go), context, timeout=60.0)
    try:
        assert wait_for(lambda: process_tools.read_note(box, "loading")), "never loaded"
        result = executor.execute_task(task("pid"), context, timeout=WAIT)
        assert result.success, result.error
    finally:
        Path(go).touch()
    loaded = slow.returned(WAIT, "the slow result was never delivered")
    assert loaded.success, loaded.error
    assert loaded.output == "loaded"


class _Colour(Enum):
    RED = "red"


@dataclasses.dataclass
class _Point:
    x: int
    when: datetime.datetime


class _Model(BaseModel):
    name: str


class _Reconnects:
    def __reduce__(self) -> Any:
        return (_Reconnects, ())


class _SetsItsState:
    def __setstate__(self, state: Any) -> None:
        self.__dict__.update(state)


@pytest.mark.parametrize(
    ("value", "here"),
    [
        ({"a": [1, 2.5, "x", b"y", None]}, True),
        (_Point(1, datetime.datetime(2026, 1, 1)), True),
        (_Colour.RED, True),
        (_Model(name="n"), True),
        (ValueError("v"), True),
        (process_tools.SlowToLoadInTheCaller("box", "path"), False),
        (_Reconnects(), False),
        (_SetsItsState(), False),
    ],
    ids=["plain", "dataclass", "enum", "pydantic", "exception", "function", "reduce", "setstate"],
)
def test_only_a_message_that_may_load_slowly_leaves_the_reader_thread(
    value: Any, here: bool
) -> None:
    """Plain data and classes whose loading runs no code of their own are loaded on the reader
    thread (no thread is started for them); a function a ``__reduce__`` names, or a class's own
    ``__setstate__`` or ``__reduce__``, is loaded elsewhere."""
    stream = io.BytesIO()
    stream.write(b"d")
    pickler = pickle.Pickler(stream, pickle.HIGHEST_PROTOCOL)
    # (as a worker pickles them: not by the functions a library, such as tblib's pickling
    # support, may have registered for exceptions in this process)
    pickler.dispatch_table = {}
    pickler.dump(("done", value, False))
    data = stream.getvalue()
    if here:
        assert repr(process_runner._load_here(data)[1]) == repr(value)
    else:
        with pytest.raises(process_runner._LoadElsewhere):
            process_runner._load_here(data)


#: Baggage the caller sets: a value with characters the W3C header escapes, and a key the
#: caller's own code would read.
BAGGAGE = {"user.id": "user-7", "note": "a b,c=d;e%"}


def run_in_context(
    executor: Executor, task: Task, context: Context, caller: otel_context.Context
) -> TaskResult:
    """Run ``task`` with ``caller`` the caller's current OpenTelemetry context."""
    token = otel_context.attach(caller)
    try:
        return executor.execute_task(task, context, timeout=WAIT)
    finally:
        otel_context.detach(token)


@pytest.mark.parametrize("traced", [True, False])
def test_the_callers_baggage_reaches_the_child(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context, traced: bool
) -> None:
    provider = None
    if traced:
        provider = TracerProvider(shutdown_on_exit=False)
    # Untraced whatever provider an earlier test in this process made the global one.
    executor = make(tracer_provider=provider if traced else trace.NoOpTracerProvider())
    ctx = otel_context.get_current()
    for key, value in BAGGAGE.items():
        ctx = baggage.set_baggage(key, value, ctx)
    result = run_in_context(executor, task("baggage_seen"), context, ctx)
    assert result.success, result.error
    assert ("trace_id" in result.metadata) is traced
    assert result.output == BAGGAGE
    # Without baggage in the caller, the tool sees none (none is left from an earlier call).
    result = executor.execute_task(task("baggage_seen"), context, timeout=WAIT)
    assert result.success, result.error
    assert result.output == {}
    if provider is not None:
        provider.shutdown()


#: An upstream service's W3C trace context, with vendor entries in its ``tracestate``.
UPSTREAM = {
    "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "tracestate": "vendor=abc,other=x",
}


@pytest.mark.parametrize("traced", [True, False])
def test_the_callers_tracestate_reaches_the_child(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context, traced: bool
) -> None:
    """The caller's trace context crosses whole, ``tracestate`` with ``traceparent``: the span
    current in the worker (the task span, or the caller's own when the executor makes no spans)
    keeps the vendor entries, as it does on a worker thread."""
    provider = TracerProvider(shutdown_on_exit=False) if traced else trace.NoOpTracerProvider()
    executor = make(tracer_provider=provider)
    upstream = TraceContextTextMapPropagator().extract(UPSTREAM)
    result = run_in_context(executor, task("trace_state_seen"), context, upstream)
    assert result.success, result.error
    assert ("trace_id" in result.metadata) is traced
    assert result.output["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert result.output["tracestate"] == "vendor=abc,other=x"
    # Without a trace in the caller, the tool sees none (none is left from an earlier call).
    result = executor.execute_task(task("trace_state_seen"), context, timeout=WAIT)
    assert result.success, result.error
    assert result.output["tracestate"] == ""
    if isinstance(provider, TracerProvider):
        provider.shutdown()


@pytest.mark.parametrize("traced", [True, False])
def test_the_callers_trace_flags_reach_the_child(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context, traced: bool
) -> None:
    """Every W3C trace flag crosses, not the sampled one alone: the span current in the worker
    has the flags of the task span (or of the caller's own), the random-trace-id bit (0x02,
    which W3C Trace Context Level 2 samplers read) included, as on a worker thread."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    executor = make(tracer_provider=provider if traced else trace.NoOpTracerProvider())
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03"
    upstream = TraceContextTextMapPropagator().extract({"traceparent": traceparent})
    result = run_in_context(executor, task("trace_state_seen"), context, upstream)
    assert result.success, result.error
    expected = 0x03
    if traced:
        (task_span,) = exporter.get_finished_spans()
        expected = int(task_span.get_span_context().trace_flags)
        assert expected & 0x01
    assert result.output["flags"] == expected
    provider.shutdown()


def test_context_variables_a_tool_sets_never_reach_its_workers_next_call(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """As on the caller's side, where each tool runs in a copy of its caller's context: what a
    synchronous tool sets in its context (a variable of its own, baggage it attaches and never
    detaches) never reaches the next task of its worker, synchronous or async."""
    executor = make()
    clean = {"request_id": None, "baggage": {}}
    for request_id in ("r-1", "r-2"):
        result = executor.execute_task(
            task("sets_context_variables", request_id=request_id), context, timeout=WAIT
        )
        assert result.success, result.error
        assert result.output == clean
    result = executor.execute_task(task("context_variables_seen"), context, timeout=WAIT)
    assert result.success, result.error
    assert result.output == clean


def test_baggage_reaches_the_child_whatever_the_global_propagator(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """The worker's hop is the executor's own: it needs no propagator of the caller's (one
    that writes no W3C headers, or none at all, as ``OTEL_PROPAGATORS=none`` gives)."""
    from opentelemetry import propagate
    from opentelemetry.propagators.composite import CompositePropagator

    executor = make()
    before = propagate.get_global_textmap()
    propagate.set_global_textmap(CompositePropagator([]))
    try:
        caller = baggage.set_baggage("user.id", "user-7")
        result = run_in_context(executor, task("baggage_seen"), context, caller)
    finally:
        propagate.set_global_textmap(before)
    assert result.success, result.error
    assert result.output == {"user.id": "user-7"}


def test_a_baggage_value_that_cannot_be_written_leaves_the_task_alone(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("no text")

    executor = make()
    caller = baggage.set_baggage("odd", Unprintable())
    result = run_in_context(executor, task("baggage_seen"), context, caller)
    assert result.success, result.error
    assert result.output == {}


# -- when no thread can be had ---------------------------------------------------------------------


@pytest.fixture
def refuse_threads(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Names of threads that cannot be started from now on ("can't start new thread", as
    under a container's pids limit); the set may be changed during the test."""
    refused: set[str] = set()
    start = threading.Thread.start

    def refusing(self: threading.Thread) -> None:
        if self.name in refused:
            raise RuntimeError("can't start new thread")
        start(self)

    monkeypatch.setattr(threading.Thread, "start", refusing)
    return refused


def shuts_down(executor: Executor) -> bool:
    """Whether ``executor.shutdown()`` returns in time (called on a thread of its own)."""
    closer = threading.Thread(target=executor.shutdown, daemon=True)
    closer.start()
    closer.join(WAIT)
    return not closer.is_alive()


@pytest.mark.parametrize(
    ("refused", "parameters"),
    [
        ("laios-process-start", {}),
        ("laios-process-pickle", {"blob": bytes(512 * 1024)}),
        ("laios-process-send", {"blob": bytes(512 * 1024)}),
    ],
)
def test_a_call_runs_and_the_runner_shuts_down_when_no_thread_can_be_started_for_it(
    make: Callable[..., Executor],
    task: Callable[..., Task],
    context: Context,
    refuse_threads: set[str],
    refused: str,
    parameters: dict[str, Any],
) -> None:
    """The work a thread of the runner's would do (start a worker, pickle or write a large
    call) is done where the thread was asked for: the call runs, later calls too, and
    shutdown returns. Before, the call failed as an internal error, every later call
    waited for its timeout, and shutdown never returned."""
    executor = make()
    refuse_threads.add(refused)
    result = executor.execute_task(task("pid", **parameters), context, timeout=WAIT)
    assert result.success, result.error
    again = executor.execute_task(task("pid", **parameters), context, timeout=WAIT)
    assert again.success, again.error
    refuse_threads.clear()
    assert executor.execute_task(task("pid"), context, timeout=WAIT).success
    assert shuts_down(executor), "shutdown never returned"


def test_a_large_result_is_read_on_the_reader_when_no_thread_can_be_started_for_it(
    make: Callable[..., Executor],
    task: Callable[..., Task],
    context: Context,
    refuse_threads: set[str],
) -> None:
    executor = make()
    run_pid(executor, task, context)  # (the reader is running)
    refuse_threads.add("laios-process-transfer")
    result = executor.execute_task(task("returns_swelling", mb=2), context, timeout=WAIT)
    assert result.success, result.error
    assert len(result.output) == 2 * 1024 * 1024
    run_pid(executor, task, context)
    assert shuts_down(executor), "shutdown never returned"


def test_no_reader_thread_fails_the_call_as_not_started_and_the_next_call_runs(
    make: Callable[..., Executor],
    task: Callable[..., Task],
    context: Context,
    refuse_threads: set[str],
) -> None:
    """The first worker's start needs the thread that reads every worker's messages: when
    none can be had, the worker is stopped and the call refused, saying why; the next call,
    with threads to be had again, starts a worker and runs."""
    executor = make()
    refuse_threads.add("laios-process-reader")
    result = executor.execute_task(task("pid"), context, timeout=WAIT)
    assert not result.success
    assert result.metadata["error_type"] == "no_process", result.error
    assert "can't start new thread" in (result.error or "")
    assert "was not started" in (result.error or "")
    assert executor.runner.worker_pids() == []
    refuse_threads.clear()
    run_pid(executor, task, context)
    assert shuts_down(executor), "shutdown never returned"


# -- lifecycle ------------------------------------------------------------------------------------


def test_many_executor_lifecycles_leave_no_process_behind(
    tools: ToolRegistry, task: Callable[..., Task], context: Context
) -> None:
    """30 executors with a process runner, half shut down and half dropped, a third of them
    with a worker started (five of each kind of ending): every worker process they started is
    gone. (Each drop collects garbage, a full heap walk, and each worker is a process started:
    30 keep the suite quick.)"""
    pids: list[int] = []
    for index in range(30):
        executor = Executor(
            tools, runner=ProcessRunner(1), store=MetricStore(), register_prometheus=False
        )
        if index % 3 == 0:  # most of them start a worker; the rest never run anything
            pids.append(run_pid(executor, task, context))
        if index % 2 == 0:
            executor.shutdown(wait=True)
        else:  # dropped without shutdown: collected, and its workers go
            del executor
            gc.collect()
    assert pids
    assert all(gone(pid) for pid in pids), [pid for pid in pids if alive(pid)]


def test_shutdown_with_wait_lets_running_work_finish_then_stops_workers(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    executor = make(max_workers=2)
    pids = {run_pid(executor, task, context) for _ in range(3)}
    executor.shutdown(wait=True)
    assert all(gone(pid, 1.0) for pid in pids)
    refused = executor.execute_task(task("pid"), context)
    assert refused.metadata["error_type"] == "shutdown"


def test_a_thread_a_tool_left_running_does_not_hold_shutdown(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """A non-daemon thread a tool leaves behind ends with its worker at shutdown."""
    executor = make()
    result = executor.execute_task(task("leaves_a_thread"), context, timeout=WAIT)
    assert result.success, result.error
    stopper = threading.Thread(target=executor.shutdown, kwargs={"wait": True}, daemon=True)
    stopper.start()
    stopper.join(WAIT)
    assert not stopper.is_alive(), "shutdown(wait=True) waited for the tool's thread"
    assert gone(result.output)


def test_a_started_callback_on_the_callers_thread_shutting_down_does_not_wait_for_itself(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """With a worker idle, "started" is reported on the caller's own thread, before the call
    is sent: a callback calling shutdown(wait=True) there returned never (the worker it waited
    for was holding the call it was about to send). It returns, and the task runs."""
    executor = make()
    pid = run_pid(executor, task, context)  # a worker is idle now
    returned: list[bool] = []

    def on_progress(event: str, data: Any) -> None:
        if event == "started":
            executor.shutdown(wait=True)
            returned.append(True)

    box: list[TaskResult] = []
    caller = threading.Thread(
        target=lambda: box.append(
            executor.execute_task(task("pid"), context, on_progress=on_progress)
        ),
        daemon=True,
    )
    caller.start()
    caller.join(WAIT)
    assert not caller.is_alive(), "shutdown(wait=True) in the started callback waited for ever"
    assert returned == [True]
    assert box[0].output == pid, box[0].error
    assert executor.is_shutdown
    assert gone(pid)


def kill_if_alive(pid: int) -> None:
    """Clean up a process a test's tool left behind (not the test's child: nothing to reap)."""
    if alive(pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("wait", [True, False])
def test_a_process_a_tool_left_running_in_its_group_ends_at_shutdown(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context, wait: bool
) -> None:
    """A child process a tool started in the worker's group and left running is killed with
    the worker's group when the worker stops at shutdown."""
    executor = make()
    result = executor.execute_task(task("leaves_a_child"), context, timeout=WAIT)
    assert result.success, result.error
    child: int = result.output
    try:
        assert alive(child)
        worker = executor.runner.worker_pids()  # type: ignore[attr-defined]
        executor.shutdown(wait=wait)
        assert all(gone(pid) for pid in worker), "the worker outlived shutdown"
        assert gone(child), "the process the tool left running outlived shutdown"
    finally:
        kill_if_alive(child)


@pytest.mark.parametrize("how", ["exit", "cpu_limit", "killed_from_outside"])
def test_the_processes_a_tool_started_end_with_a_worker_that_dies_under_it(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context, box: str, how: str
) -> None:
    """A worker that dies while its tool runs (``os._exit``, its CPU budget's signal, a
    ``SIGKILL`` from outside as the OOM killer sends) takes the processes the tool started in
    its group with it: none is left running, orphaned, after the call failed."""
    executor = make(resource_limits=ResourceLimits(cpu_limit_percent=5))  # 1.5 s of 30 s
    timeout = 30.0
    if how == "killed_from_outside":
        caller = Caller(executor, task("hang", box=box), context, timeout=timeout)
        started = wait_for(lambda: process_tools.read_note(box, "hang"))
        assert started is not None, "the tool never started"
        os.kill(started["pid"], signal.SIGKILL)
        result = caller.returned(WAIT, "the call did not return")
        child = started["grandchild"]
    else:
        tool_how = "exit" if how == "exit" else "spin"
        result = executor.execute_task(
            task("child_then_ends", box=box, how=tool_how), context, timeout=timeout
        )
        child = process_tools.read_note(box, "child_then_ends")["child"]
    try:
        expected = "cpu_limit" if how == "cpu_limit" else "worker_crashed"
        assert result.metadata["error_type"] == expected, result.error
        if how == "killed_from_outside":  # what would send it, and what to do
            assert "was killed by SIGKILL" in (result.error or "")
            assert "out-of-memory killer" in (result.error or "")
            assert "memory_limit_mb" in (result.error or "")
        assert gone(child), "a process the tool started outlived its dead worker"
        assert run_pid(executor, task, context) > 0
    finally:
        kill_if_alive(child)


#: What a call's error ends with when the worker that ended under it is replaced at once, when
#: a task needs one (a worker retired at its memory limit exits first), or not at all.
REPLACED_NOW = "a new worker process replaces it"
REPLACED_ON_DEMAND = "a new worker process starts in its place when a task needs one"
NOT_REPLACED = "the runner was shut down, so no worker replaces it"


@pytest.mark.parametrize("shut_down", [False, True], ids=["serving", "shut_down"])
@pytest.mark.parametrize("how", ["killed_from_outside", "cpu_limit", "memory_limit"])
def test_a_worker_that_ends_under_its_call_is_said_to_be_replaced_only_as_it_is(
    make: Callable[..., Executor],
    task: Callable[..., Task],
    context: Context,
    box: str,
    how: str,
    shut_down: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every error (and the log's warning) about a worker that ended under its call (killed
    from outside, past its CPU budget, retired at its memory limit) says in the same words
    what takes its place: a new worker at once, one when a task needs it (a retired worker),
    or, after ``shutdown(wait=False)``, none."""
    limits = ResourceLimits(cpu_limit_percent=5, memory_limit_mb=200)  # 1.5 CPU s of 30 s
    executor = make(resource_limits=limits)
    runner = executor.runner
    assert isinstance(runner, ProcessRunner)
    go = os.path.join(box, "go")
    tool, parameters = {
        "killed_from_outside": ("hang", {"box": box}),
        "cpu_limit": ("child_then_ends", {"box": box, "how": "spin"}),
        "memory_limit": ("allocates_on_a_file", {"box": box, "path": go, "mb": 500}),
    }[how]
    caller = Caller(executor, task(tool, **parameters), context, timeout=30.0)
    started = wait_for(lambda: process_tools.read_note(box, tool))
    assert started is not None, "the tool never started"
    child = started.get("grandchild", started.get("child"))
    try:
        with caplog.at_level(logging.WARNING, logger="laios.execution"):
            if how == "killed_from_outside":
                if shut_down:
                    executor.shutdown(wait=False)
                os.kill(started["pid"], signal.SIGKILL)
            else:
                if shut_down:
                    runner.shutdown(wait=False)
                Path(go).touch()
            result = caller.returned(45.0, "the call did not return")
            expected = "worker_crashed" if how == "killed_from_outside" else how
            assert result.metadata["error_type"] == expected, result.error
            error = result.error or ""
            if shut_down:
                said = NOT_REPLACED
            else:
                said = REPLACED_ON_DEMAND if how == "memory_limit" else REPLACED_NOW
            assert error.endswith(said), error
            for other in {REPLACED_NOW, REPLACED_ON_DEMAND, NOT_REPLACED} - {said}:
                assert other not in error, error
            assert gone(started["pid"])
            if how == "killed_from_outside":  # (the log's warning says the same)
                pid = started["pid"]
                warned = wait_for(
                    lambda: [r for r in caplog.records if f"{pid} running" in r.getMessage()]
                )
                assert warned, "no warning"
                assert warned[0].getMessage().endswith(said), warned[0].getMessage()
        if shut_down:
            assert wait_for(lambda: not runner.worker_pids()), "a worker started after shutdown"
    finally:
        if child is not None:
            kill_if_alive(child)


def test_an_initializer_that_ends_its_worker_after_shutdown_is_not_said_to_be_replaced(
    make: Callable[..., Executor],
    task: Callable[..., Task],
    context: Context,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The warning about a worker that ended in the initializer says a new one starts when a
    task needs one, unless the runner was shut down: then none does, and it says so."""
    executor = make(runner_options={"initializer": time.sleep, "initargs": (60,)})
    runner = executor.runner
    assert isinstance(runner, ProcessRunner)
    with caplog.at_level(logging.WARNING, logger="laios.execution"):
        caller = Caller(executor, task("pid"), context, timeout=30.0)
        pids = wait_for(runner.worker_pids)
        assert pids, "no worker started"
        runner.shutdown(wait=False)
        os.kill(pids[0], signal.SIGKILL)
        result = caller.returned(WAIT, "the call did not return")
        assert result.metadata["error_type"] == "worker_crashed", result.error
        warned = wait_for(lambda: [r for r in caplog.records if "initializer" in r.getMessage()])
        assert warned, "no warning"
        message = warned[0].getMessage()
        assert message.endswith(NOT_REPLACED), message
        assert "when a task needs one" not in message, message


def test_a_worker_retired_at_its_memory_limit_gives_its_place_back(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """A worker retired at its memory limit exits, though its tool left a thread running."""
    executor = make(resource_limits=ResourceLimits(memory_limit_mb=200))
    result = executor.execute_task(task("leaves_a_thread", mb=500), context, timeout=WAIT)
    assert result.metadata["error_type"] == "memory_limit"
    assert run_pid(executor, task, context) > 0


def test_a_worker_retired_at_its_memory_limit_that_cannot_exit_is_killed(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """A retired worker whose exit hangs (its tool's standard output never flushes) is killed
    once its grace is over, so that its place goes to a new worker."""
    executor = make(resource_limits=ResourceLimits(memory_limit_mb=200))
    result = executor.execute_task(task("stuck_on_exit", mb=500), context, timeout=WAIT)
    assert result.metadata["error_type"] == "memory_limit", result.error
    started = time.monotonic()
    assert run_pid(executor, task, context) > 0
    assert time.monotonic() - started < process_runner._STOP_GRACE + WAIT / 2


def test_shutdown_kills_a_worker_that_cannot_exit(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """``shutdown(wait=True)`` returns although a worker's exit hangs (its tool's standard
    output never flushes): the worker is killed with its group once its grace is over."""
    executor = make()
    result = executor.execute_task(task("stuck_on_exit"), context, timeout=WAIT)
    assert result.success, result.error
    stopper = threading.Thread(target=executor.shutdown, kwargs={"wait": True}, daemon=True)
    stopper.start()
    stopper.join(WAIT)
    assert not stopper.is_alive(), "shutdown(wait=True) waited for a worker that cannot exit"
    assert gone(result.output)


#: The start of the programs the tests below run on their own: this directory's tool modules
#: importable, and what running a ProcessRunner takes.
_SCRIPT_PRELUDE = f"""import sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
import process_tools
from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.runners import ProcessRunner
from laios.tools.registry import ToolRegistry
"""


def _script_env(*paths: Path) -> dict[str, str]:
    """This process's environment for a program of ``_SCRIPT_PRELUDE``, whose ``PYTHONPATH``
    starts with ``paths`` and the ``src/`` of the laios under test."""
    env = dict(os.environ)
    src = str(Path(process_runner.__file__).resolve().parents[3])
    env["PYTHONPATH"] = os.pathsep.join([*map(str, paths), src, env.get("PYTHONPATH", "")])
    return env


def test_the_interpreter_exits_promptly_with_a_tool_still_running(tmp_path: Path) -> None:
    script = tmp_path / "main.py"
    note = tmp_path / "hang"
    script.write_text(
        _SCRIPT_PRELUDE
        + textwrap.dedent(
            f"""
            import threading

            if __name__ == "__main__":
                registry = ToolRegistry()
                registry.register_tool(process_tools.Hang())
                executor = Executor(registry, runner=ProcessRunner(1), register_prometheus=False)
                task = Task(plan_id="p", description="d", tool_name="hang",
                            parameters={{"box": {str(tmp_path)!r}}})
                context = Context(session_id="s", user_id="u")
                threading.Thread(
                    target=executor.execute_task, args=(task, context), daemon=True
                ).start()
                import time
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    if process_tools.read_note({str(tmp_path)!r}, "hang"):
                        break
                    time.sleep(0.01)
                print("leaving", flush=True)
            """
        )
    )
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 0, completed.stderr
    assert "leaving" in completed.stdout
    assert time.monotonic() - started < 30
    hung = json.loads(note.read_text())
    assert gone(hung["pid"]), "the worker outlived the interpreter"
    assert gone(hung["grandchild"]), "the tool's own child outlived the interpreter"


def test_terminate_ends_a_running_call_instead_of_leaving_its_caller_waiting(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context, box: str
) -> None:
    executor = make()
    caller = Caller(executor, task("hang", box=box), context)
    hung = wait_for(lambda: process_tools.read_note(box, "hang"))
    assert hung is not None, "the tool never started"
    executor.runner.terminate()  # type: ignore[attr-defined]
    result = caller.returned(WAIT, "the caller was left waiting")
    assert result.metadata["error_type"] == "terminated"
    # (It said the executor was collected without shutdown(), or the interpreter exiting.)
    assert "terminated (runner.terminate() was called)" in (result.error or ""), result.error
    assert "collected" not in (result.error or ""), result.error
    # (in the words every error about a worker that ended under its call uses)
    assert (result.error or "").endswith("; no worker replaces it"), result.error
    assert gone(hung["pid"])
    assert gone(hung["grandchild"])


@pytest.mark.parametrize("blocking", [True, False], ids=["blocking", "async"])
def test_a_call_ended_by_terminate_is_not_retried(
    make: Callable[..., Executor],
    task: Callable[..., Task],
    context: Context,
    box: str,
    blocking: bool,
) -> None:
    """A call whose worker ``terminate()`` killed (``terminated``: no worker replaces it) is
    not retried: the retry could only be refused (``shutdown``), after its wait, and the
    caller got that refusal, not the failure that ended the call."""
    executor = make()
    runner = executor.runner
    assert isinstance(runner, ProcessRunner)
    hang = task("hang", box=box)
    options: dict[str, Any] = {"max_retries": 3, "retry_delay": 0, "timeout": WAIT}
    results: list[TaskResult] = []

    def call() -> None:
        if blocking:
            results.append(executor.execute_with_retry(hang, context, **options))
        else:
            coroutine = executor.execute_with_retry_async(hang, context, **options)
            results.append(asyncio.run(coroutine))

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    hung = wait_for(lambda: process_tools.read_note(box, "hang"))
    assert hung is not None, "the tool never started"
    runner.terminate()
    caller.join(WAIT)
    assert results, "the caller was left waiting"
    (result,) = results
    assert result.metadata["error_type"] == "terminated", result.error
    assert result.metadata["retries"] == 0
    assert gone(hung["pid"])


def test_an_initializer_that_ends_its_worker_is_named_and_does_not_start_workers_in_a_loop(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """A worker that exits while running the initializer fails its task saying so (the tool
    never started), and is replaced only when a task needs a worker: not at once, which would
    start worker after worker for as long as the runner lives."""
    executor = make(max_workers=2, runner_options={"initializer": os._exit, "initargs": (4,)})
    runner = executor.runner
    assert isinstance(runner, ProcessRunner)
    pool = runner._pool
    starts: list[int] = []
    start_worker = pool.start_worker

    def counted() -> Any:
        starts.append(1)
        return start_worker()

    pool.start_worker = counted  # type: ignore[method-assign]
    for _ in range(2):
        result = executor.execute_task(task("pid"), context, timeout=WAIT)
        assert result.metadata["error_type"] == "worker_crashed"
        error = result.error or ""
        assert "exited with code 4 while running the process runner's initializer" in error
        assert "before the tool started" in error
    assert wait_for(lambda: not runner.worker_pids() and not pool.starting, 5.0), (
        f"workers are started over and over ({len(starts)} so far)"
    )
    assert len(starts) <= 3  # (one per task, and at most one replacement)


def test_an_initializer_that_closes_the_workers_pipe_is_named(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """An initializer that closes every descriptor above 2 (as daemon-style set-up code does)
    closes the worker's pipe to the caller: the task's error says so, not that the
    initializer ended its worker's process, which it did not."""
    executor = make(runner_options={"initializer": os.closerange, "initargs": (3, 65536)})
    result = executor.execute_task(task("pid"), context, timeout=WAIT)
    assert result.metadata["error_type"] == "worker_crashed", result.error
    error = result.error or ""
    assert "the process runner's initializer closed the worker's end of the pipe" in error, error
    assert "before the tool started" in error, error
    assert "exited with code" not in error, error


def test_the_initializers_time_is_the_first_calls_queue_wait_not_its_duration(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """A new worker's initializer ran after its first call was handed to it: that call's
    task read as started once handed over, so the initializer's time counted as the tool's
    running time (a quick tool's first call lasting as long as the initializer took) and not
    as its queue wait. The call now waits in the queue until a worker's initializer has
    returned: it starts when its worker can begin it."""
    store = MetricStore()
    finished: list[tuple[float, float]] = []
    store.add_finish_listener(lambda done: finished.append((done.duration, done.queue_wait)))
    executor = make(store=store, runner_options={"initializer": time.sleep, "initargs": (1.0,)})
    slow_start = task("pid")
    result = executor.execute_task(slow_start, context, timeout=WAIT)
    assert result.success, result.error
    (duration, queue_wait) = finished[-1]
    assert duration < 0.5, finished
    assert queue_wait > 0.7, finished
    assert result.execution_time_seconds < 0.5, result.execution_time_seconds


def test_a_timeout_while_the_initializer_runs_says_the_tool_never_started(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """A task whose new worker is still running the runner's initializer when its timeout
    passes never reached its tool: the error says where it was, not that the tool was stopped.
    The call waited in the queue (a new worker takes one only once its initializer is through):
    the worker, not killed, goes on to serve the next task."""
    executor = make(runner_options={"initializer": time.sleep, "initargs": (3.0,)})
    runner = executor.runner
    assert isinstance(runner, ProcessRunner)
    result = executor.execute_task(task("pid"), context, timeout=1.0)
    assert result.metadata["outcome"] == "timeout", result.error
    assert not result.metadata.get("worker_killed"), result.metadata
    error = result.error or ""
    assert "while waiting to start" in error, error
    assert "still running the process runner's initializer" in error, error
    assert "the tool was never started" in error, error
    (starting,) = runner.worker_pids()
    assert run_pid(executor, task, context) == starting  # (its initializer ran once)


def test_shutdown_does_not_wait_for_an_initializer_no_call_waits_for(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """A new worker whose only call timed out while it ran the initializer (the worker, not
    killed then, would take the next one) holds no call at shutdown: it is stopped at once,
    not waited for until its initializer returns."""
    executor = make(runner_options={"initializer": time.sleep, "initargs": (60,)})
    runner = executor.runner
    assert isinstance(runner, ProcessRunner)
    result = executor.execute_task(task("pid"), context, timeout=1.0)
    assert result.metadata["outcome"] == "timeout", result.error
    (pid,) = runner.worker_pids()
    shutdown = threading.Thread(target=executor.shutdown, kwargs={"wait": True}, daemon=True)
    shutdown.start()
    shutdown.join(WAIT)
    assert not shutdown.is_alive(), "shutdown(wait=True) waits for the initializer"
    assert gone(pid)


def test_a_cancel_while_the_initializer_runs_says_the_tool_never_started(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """As for a timeout: a task cancelled while its new worker still runs the runner's
    initializer never reached its tool (it was queued), and the worker is not killed."""
    executor = make(runner_options={"initializer": time.sleep, "initargs": (60,)})
    runner = executor.runner
    assert isinstance(runner, ProcessRunner)
    slow = task("pid")
    caller = Caller(executor, slow, context)
    pids = wait_for(runner.worker_pids)
    assert pids, "no worker started"
    assert executor.get_task_status(slow.id) == TaskStatus.PENDING
    assert executor.cancel_task(slow.id)
    result = caller.returned(WAIT, "the cancelled call did not return")
    assert result.metadata["outcome"] == "cancelled"
    assert not result.metadata.get("worker_killed"), result.metadata
    assert "was cancelled before it started" in (result.error or ""), result.error
    assert runner.worker_pids() == pids


def test_a_timeout_while_a_failed_initializer_is_tried_again_says_the_tool_never_started(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context, box: str
) -> None:
    """A worker whose initializer raised as it started takes calls all the same, each trying
    the initializer again first: a task whose timeout passes while that try runs never reached
    its tool, and its error says so; its worker is stopped."""
    marker = os.path.join(box, "tried")
    options = {"initializer": process_tools.fail_once_then_sleep, "initargs": (marker, 60.0)}
    executor = make(runner_options=options)
    result = executor.execute_task(task("pid"), context, timeout=4.0)
    assert result.metadata["outcome"] == "timeout", result.error
    assert result.metadata["worker_killed"] is True
    error = result.error or ""
    assert "while its worker process was still running the process runner's initializer" in error
    assert "the tool was never started" in error


def test_a_cancel_while_a_failed_initializer_is_tried_again_says_the_tool_never_started(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context, box: str
) -> None:
    """As for a timeout: a task cancelled while its worker tries again the initializer that
    raised as it started never reached its tool, and its error says so rather than that it
    was cancelled while running."""
    marker = os.path.join(box, "tried")
    options = {"initializer": process_tools.fail_once_then_sleep, "initargs": (marker, 60.0)}
    executor = make(runner_options=options)
    runner = executor.runner
    assert isinstance(runner, ProcessRunner)
    pool = runner._pool
    slow = task("pid")
    caller = Caller(executor, slow, context)
    # (the task reads as running once its call may start, a moment before the call is written
    # to the worker: cancelled in between, the call is never sent, and no worker is killed)
    written = wait_for(
        lambda: any(w.call is not None and w.call.written for w in pool.workers.values())
    )
    assert written, "the call was never written to its worker"
    assert executor.get_task_status(slow.id) == TaskStatus.RUNNING
    assert executor.cancel_task(slow.id)
    result = caller.returned(WAIT, "the cancelled call did not return")
    assert result.metadata["outcome"] == "cancelled"
    assert result.metadata["worker_killed"] is True
    error = result.error or ""
    assert "was cancelled before it started" in error, error
    assert "while its worker process was still running the process runner's initializer" in error
    assert "the tool was never started" in error


@pytest.fixture(params=["cpu watched", "cpu not watched"])
def cpu_watch(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs a test as on Linux, where the runner reads a worker's CPU clock, and as where it
    cannot (macOS, Windows): whether a worker has begun its call is known on both."""
    if request.param == "cpu not watched":
        monkeypatch.setattr(process_runner, "_WATCH_CPU", False)


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="no SIGSTOP")
@pytest.mark.usefixtures("cpu_watch")
def test_a_timeout_before_the_worker_took_the_call_says_the_tool_never_started(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """A task whose worker has not taken its call yet when its timeout passes (a worker slow
    to get to it: a loaded machine, a worker still starting up) never reached its tool: the
    error says so, not that the tool was stopped while running."""
    executor = make()
    pid = run_pid(executor, task, context)
    os.kill(pid, signal.SIGSTOP)  # (idle: it cannot read the next call until it is killed)
    result = executor.execute_task(task("pid"), context, timeout=1.0)
    assert result.metadata["outcome"] == "timeout", result.error
    assert result.metadata["worker_killed"] is True
    error = result.error or ""
    assert "while its worker process had not taken its call yet" in error, error
    assert "the tool was never started" in error, error
    assert "was running" not in error, error
    assert gone(pid), "the worker that never took its call was not stopped"
    assert run_pid(executor, task, context) != pid  # (a new worker serves the next task)


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="no SIGSTOP")
@pytest.mark.usefixtures("cpu_watch")
def test_a_cancel_before_the_worker_took_the_call_says_the_tool_never_started(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """As for a timeout: a task cancelled once its call was written to a worker that has not
    taken it yet never reached its tool, and its error says so."""
    executor = make()
    runner = executor.runner
    assert isinstance(runner, ProcessRunner)
    pool = runner._pool
    pid = run_pid(executor, task, context)
    os.kill(pid, signal.SIGSTOP)  # (idle: it cannot read the next call until it is killed)
    slow = task("pid")
    caller = Caller(executor, slow, context)
    written = wait_for(
        lambda: any(w.call is not None and w.call.written for w in pool.workers.values())
    )
    assert written, "the call was never written to its worker"
    assert executor.cancel_task(slow.id)
    result = caller.returned(WAIT, "the cancelled call did not return")
    assert result.metadata["outcome"] == "cancelled", result.error
    assert result.metadata["worker_killed"] is True
    error = result.error or ""
    assert "was cancelled before it started" in error, error
    assert "while its worker process had not taken its call yet" in error, error
    assert "the tool was never started" in error, error


def test_a_failing_initializer_fails_each_task_clearly_without_restarting_workers(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context, box: str
) -> None:
    """A worker whose initializer raised stays up and fails each call, naming the error."""
    broken = os.path.join(box, "broken")
    Path(broken).touch()
    options = {"initializer": process_tools.fail_while_file_exists, "initargs": (broken,)}
    executor = make(runner_options=options)
    first = executor.execute_task(task("pid"), context, timeout=WAIT)
    assert first.metadata["error_type"] == "initializer_failed"
    assert "initializer" in (first.error or "")
    assert "RuntimeError: initializer refused: broken exists" in (first.error or "")
    worker = first.metadata.get("worker")
    second = executor.execute_task(task("pid"), context, timeout=WAIT)
    assert second.metadata["error_type"] == "initializer_failed"
    assert second.metadata.get("worker") == worker  # the same worker: none was restarted


def test_a_worker_whose_initializer_failed_serves_once_it_succeeds(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context, box: str
) -> None:
    """The initializer is tried again before each call until it succeeds."""
    broken = os.path.join(box, "broken")
    Path(broken).touch()
    options = {"initializer": process_tools.fail_while_file_exists, "initargs": (broken,)}
    executor = make(runner_options=options)
    failed = executor.execute_task(task("pid"), context, timeout=WAIT)
    assert failed.metadata["error_type"] == "initializer_failed"
    os.remove(broken)
    assert run_pid(executor, task, context) > 0


def test_shutdown_waits_no_longer_than_a_worker_start_that_fails(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """A worker start that fails after ``shutdown(wait=True)`` began (here the replacement of a
    killed worker) ends the wait: the reader thread, waiting for that start, is told."""
    initarg = process_tools.FailsToPickleOnceArmed()
    options = {"initializer": process_tools.fail_while_file_exists, "initargs": (initarg,)}
    executor = make(runner_options=options)
    runner = executor.runner
    assert isinstance(runner, ProcessRunner)
    worker = run_pid(executor, task, context)
    initarg.armed.set()
    os.kill(worker, signal.SIGKILL)  # (replaced at once: the replacement waits to pickle)
    assert process_tools.wait_until(lambda: worker not in runner.worker_pids(), WAIT)
    shutdown = threading.Thread(target=executor.shutdown, kwargs={"wait": True}, daemon=True)
    shutdown.start()
    assert process_tools.wait_until(lambda: runner.closed, WAIT)
    initarg.released.set()
    shutdown.join(WAIT)
    assert not shutdown.is_alive(), "shutdown(wait=True) still waits for the failed start"


def test_a_simple_tool_from_a_module_level_function_runs_in_a_worker(
    make: Callable[..., Executor], tools: ToolRegistry, task: Callable[..., Task], context: Context
) -> None:
    tools.register_tool(create_simple_tool("simple_pid", "Returns the process id.", os.getpid))
    tools.register_tool(create_simple_tool("simple_lambda", "Cannot be sent.", lambda: 1))
    executor = make()
    result = executor.execute_task(task("simple_pid"), context, timeout=WAIT)
    assert result.success, result.error
    assert result.output != os.getpid()
    refused = executor.execute_task(task("simple_lambda"), context, timeout=WAIT)
    assert refused.metadata["error_type"] == "not_picklable"


def test_the_task_span_says_the_worker_was_killed(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context, box: str
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    executor = make(tracer_provider=provider)
    run_pid(executor, task, context)  # (the worker is up first: the timeout is the tool's alone)
    result = executor.execute_task(task("hang", box=box), context, timeout=0.5)
    assert result.metadata["worker_killed"] is True
    (span,) = [s for s in exporter.get_finished_spans() if s.name == "execute_tool hang"]
    assert span.attributes is not None
    assert span.attributes["laios.worker.killed"] is True
    assert span.attributes["error.type"] == "timeout"
    provider.shutdown()


def test_a_killed_call_says_which_worker_was_killed(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context, box: str
) -> None:
    """A task whose worker was killed for it (at its timeout, or cancelled) said
    ``worker_killed`` but not which worker: ``metadata["worker"]`` and the span's
    ``laios.worker`` were set only for an outcome the worker sent back. They now name the
    killed worker as for a completed call (``"pid N"``)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    executor = make(tracer_provider=provider)
    try:
        hang = task("hang", box=box)
        caller = Caller(executor, hang, context)
        hung = wait_for(lambda: process_tools.read_note(box, "hang"))
        assert hung is not None, "the tool never started"
        assert executor.cancel_task(hang.id)
        result = caller.returned(WAIT, "the cancelled call did not return")
        assert result.metadata["worker_killed"] is True
        assert result.metadata.get("worker") == f"pid {hung['pid']}", result.metadata
        (span,) = [s for s in exporter.get_finished_spans() if s.name == "execute_tool hang"]
        assert span.attributes is not None
        assert span.attributes.get("laios.worker") == f"pid {hung['pid']}"
        # At a timeout too, in the form a completed call's is (the replacement worker up
        # first: the timeout is the tool's alone, not also the start of a process).
        replacement = run_pid(executor, task, context)
        timed_out = executor.execute_task(task("hang", box=box), context, timeout=0.5)
        assert timed_out.metadata["worker_killed"] is True
        assert re.fullmatch(r"pid \d+", timed_out.metadata.get("worker", "")), timed_out.metadata
        assert timed_out.metadata["worker"] == f"pid {replacement}"
        assert run_pid(executor, task, context) != hung["pid"]
        done = executor.execute_task(task("pid"), context, timeout=WAIT)
        assert done.metadata["worker"] == f"pid {done.output}"
    finally:
        provider.shutdown()


def test_a_crashed_call_says_which_worker_crashed(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context
) -> None:
    """A task whose worker process died under it (``worker_crashed``) had no
    ``metadata["worker"]`` and no ``laios.worker`` span attribute, though the runner logged
    the pid. They now name the worker as for a completed or killed call (``"pid N"``)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    executor = make(tracer_provider=provider)
    try:
        pid = run_pid(executor, task, context)  # (the one worker, up before the crash)
        crashed = executor.execute_task(task("exit", code=3), context, timeout=WAIT)
        assert crashed.metadata["error_type"] == "worker_crashed", crashed.error
        assert crashed.metadata.get("worker") == f"pid {pid}", crashed.metadata
        (span,) = [s for s in exporter.get_finished_spans() if s.name == "execute_tool exit"]
        assert span.attributes is not None
        assert span.attributes.get("laios.worker") == f"pid {pid}"
    finally:
        provider.shutdown()


class KillsWithoutSaying(ProcessRunner):
    """A process runner whose ``worker_at_kill`` raises."""

    def worker_at_kill(self, handle: Any) -> str | None:
        raise RuntimeError("no worker to name")


def test_a_runner_that_cannot_say_where_a_killed_call_ran_still_ends_it(
    tools: ToolRegistry,
    task: Callable[..., Task],
    context: Context,
    box: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    runner = KillsWithoutSaying(1)
    executor = Executor(tools, runner=runner, store=MetricStore(), register_prometheus=False)
    try:
        hang = task("hang", box=box)
        caller = Caller(executor, hang, context)
        assert wait_for(lambda: process_tools.read_note(box, "hang")), "the tool never started"
        assert executor.cancel_task(hang.id)
        result = caller.returned(WAIT, "the cancelled call did not return")
        assert result.metadata["outcome"] == "cancelled"
        assert result.metadata["worker_killed"] is True
        assert "worker" not in result.metadata
        assert "no worker to name" in caplog.text
    finally:
        executor.shutdown(wait=False)
        runner.terminate()


class ScriptedEvents:
    """A call's events, driven by the test: ``on_started`` runs inside ``started()``."""

    cancel_requested = False

    def __init__(self, on_started: Callable[[], None] | None = None) -> None:
        self.on_started = on_started
        self.outcomes: list[Any] = []
        self.refusals: list[Any] = []
        self.finished_event = threading.Event()

    def started(self) -> bool:
        if self.on_started is not None:
            self.on_started()
        return True

    def progress(self, percent: float, message: str | None, details: dict[str, Any]) -> None:
        pass

    def checkpoint(self, name: str, data: dict[str, Any] | None) -> None:
        pass

    def finished(self, outcome: Any) -> None:
        self.outcomes.append(outcome)
        self.finished_event.set()

    def refused(self, refusal: Any) -> None:
        self.refusals.append(refusal)
        self.finished_event.set()


def _call(tool: Any, **parameters: Any) -> ToolCall:
    return ToolCall(
        task_id=f"t-{time.monotonic_ns()}", tool_name=tool.name, parameters=parameters, tool=tool
    )


def _pid_call(runner: ProcessRunner) -> Any:
    """Run tool ``pid`` on ``runner`` and return its outcome (whose ``value`` is the pid of the
    worker that ran it)."""
    events = ScriptedEvents()
    runner.submit(_call(process_tools.Pid()), events)
    assert events.finished_event.wait(WAIT)
    return events.outcomes[0]


def test_a_runner_shut_down_then_collected_lets_its_running_call_finish(tmp_path: Path) -> None:
    """``shutdown(wait=False)`` lets the running calls finish. A runner collected after it was
    terminated by its finalizer all the same: the call ended ``terminated``, its error blaming
    an executor "collected without shutdown()". The shutdown now detaches the finalizer."""
    runner = ProcessRunner(1)
    go = tmp_path / "go"
    started = threading.Event()
    events = ScriptedEvents(on_started=started.set)
    runner.submit(_call(process_tools.WaitsForAFile(), path=str(go)), events)
    assert started.wait(WAIT), "the call never started"
    pids = runner.worker_pids()
    runner.shutdown(wait=False)
    collected = weakref.ref(runner)
    del runner
    gc.collect()
    assert collected() is None, "the runner was not collected"
    go.touch()
    assert events.finished_event.wait(WAIT), "the call never ended"
    outcome = events.outcomes[0]
    assert outcome.error is None, outcome.error
    assert outcome.value in pids
    assert wait_for(lambda: not any(alive(pid) for pid in pids)), "the worker ran on"


def test_a_runner_collected_while_its_call_runs_says_so(tmp_path: Path) -> None:
    """A runner collected without shutdown() is terminated: its running call ends
    ``terminated``, its error saying the runner was garbage-collected (and not that the
    interpreter may be exiting, or that ``terminate()`` was called)."""
    runner = ProcessRunner(1)
    started = threading.Event()
    events = ScriptedEvents(on_started=started.set)
    runner.submit(_call(process_tools.WaitsForAFile(), path=str(tmp_path / "never")), events)
    assert started.wait(WAIT), "the call never started"
    pids = runner.worker_pids()
    collected = weakref.ref(runner)
    del runner
    gc.collect()
    assert collected() is None, "the runner was not collected"
    assert events.finished_event.wait(WAIT), "the call never ended"
    outcome = events.outcomes[0]
    assert outcome.error_type == "terminated", outcome
    assert "garbage-collected without shutdown()" in str(outcome.error), outcome.error
    assert "interpreter" not in str(outcome.error), outcome.error
    assert wait_for(lambda: not any(alive(pid) for pid in pids)), "the worker ran on"


def test_a_call_given_up_as_it_is_dispatched_is_not_sent_and_kills_nothing() -> None:
    runner = ProcessRunner(1)
    try:
        busy = ScriptedEvents()
        runner.submit(_call(process_tools.Spin(), seconds=0.3), busy)  # holds the only worker
        handle: list[Any] = []
        answers: list[str] = []
        # The timeout strikes just as the queued call is dispatched to the freed worker.
        late = ScriptedEvents(on_started=lambda: answers.append(runner.abandon(handle[0])))
        handle.append(runner.submit(_call(process_tools.Pid()), late))
        assert busy.finished_event.wait(WAIT)
        assert wait_for(lambda: answers)
        assert answers == ["stopped"]  # nothing was running: nothing to kill
        (worker,) = runner.worker_pids()
        assert not late.outcomes  # never sent, never reported
        assert _pid_call(runner).value == worker  # the same worker serves on
    finally:
        runner.terminate()


def test_a_worker_that_dies_as_a_call_is_dispatched_fails_that_call() -> None:
    runner = ProcessRunner(1)
    try:
        pid = _pid_call(runner).value

        def kill_the_worker() -> None:
            os.kill(pid, 9)
            assert gone(pid)
            wait_for(lambda: pid not in runner.worker_pids())

        doomed = ScriptedEvents(on_started=kill_the_worker)
        runner.submit(_call(process_tools.Pid()), doomed)
        assert doomed.finished_event.wait(WAIT), "the call was left without an outcome"
        assert doomed.outcomes[0].error_type == "worker_crashed"
        assert _pid_call(runner).value != pid
    finally:
        runner.terminate()


class PausedBeforeWriting(Connection):
    """A worker's connection whose next write runs ``pause`` first, after the descriptor to
    write to was taken: where a thread of the caller's may be preempted in ``send_bytes``."""

    pause: Callable[[], None]

    def _send(self, buf: Any, write: Callable[[int, Any], int] = os.write) -> None:
        def paused(handle: int, data: Any) -> int:
            pause, self.pause = self.pause, lambda: None  # (once)
            pause()
            return write(handle, data)

        super()._send(buf, paused)  # type: ignore[misc]


def test_a_call_sent_as_its_worker_dies_never_reaches_the_replacement() -> None:
    """A call whose worker dies while it is being written to it (its pipe's descriptor taken,
    nothing written yet) fails as ``worker_crashed``. The dead worker's descriptor is not
    closed under the write, so it is never given to the replacement's pipe: the call is never
    written to the new worker, whose calls each get their own outcome."""
    runner = ProcessRunner(1)
    try:
        dead = _pid_call(runner).value
        replacement: list[int] = []

        def kill_the_worker_and_wait_for_its_replacement() -> None:
            os.kill(dead, signal.SIGKILL)
            pids = wait_for(lambda: [pid for pid in runner.worker_pids() if pid != dead])
            assert pids, "the dead worker was not replaced"
            replacement.extend(pids)

        conn = runner._pool.workers[dead].conn
        conn.__class__ = PausedBeforeWriting
        conn.pause = kill_the_worker_and_wait_for_its_replacement  # type: ignore[attr-defined]
        doomed = ScriptedEvents()
        runner.submit(_call(process_tools.Spin(), seconds=0), doomed)  # would return "spun"
        assert doomed.finished_event.wait(WAIT), "the call was left without an outcome"
        assert doomed.outcomes[0].error_type == "worker_crashed"
        for _ in range(3):
            after = _pid_call(runner)
            assert after.value == replacement[0], after
        assert runner.stats.busy == 0
    finally:
        runner.terminate()


class PausedWhileReading(Connection):
    """A worker's connection that runs ``pause`` before it reads the body of its first large
    message: a transfer that takes as long as the test wants."""

    pause: Callable[[], None]

    def _recv(self, size: int, read: Callable[[int, int], bytes] = os.read) -> Any:
        if size > 1024 * 1024:
            pause, self.pause = self.pause, lambda: None  # (once)
            pause()
        return super()._recv(size, read)  # type: ignore[misc]


def test_a_large_result_being_read_never_holds_a_small_result_of_another_worker() -> None:
    """While one worker's large result is being read, another worker's small result is
    delivered: the large one's transfer (here, held until then) does not hold the others."""
    runner = ProcessRunner(2)
    try:
        warm = [ScriptedEvents(), ScriptedEvents()]
        for events in warm:
            runner.submit(_call(process_tools.Spin(), seconds=0.2), events)
        assert all(events.finished_event.wait(WAIT) for events in warm)
        assert wait_for(lambda: len(runner.worker_pids()) == 2 and runner.stats.busy == 0)
        transfer_began = threading.Event()
        small = ScriptedEvents()
        small_first: list[bool] = []

        def hold_the_transfer_until_the_small_result_is_in() -> None:
            transfer_began.set()
            small_first.append(small.finished_event.wait(WAIT))

        for pid in runner.worker_pids():
            conn = runner._pool.workers[pid].conn
            conn.__class__ = PausedWhileReading
            conn.pause = hold_the_transfer_until_the_small_result_is_in  # type: ignore[attr-defined]
        large = ScriptedEvents()
        runner.submit(_call(process_tools.ReturnsSwelling(), mb=8), large)
        assert transfer_began.wait(WAIT)
        runner.submit(_call(process_tools.Pid()), small)
        assert small.finished_event.wait(WAIT), "the small result waited for the large one"
        assert isinstance(small.outcomes[0].value, int)
        assert large.finished_event.wait(WAIT)
        assert small_first == [True]
        assert large.outcomes[0].value == bytes(8 * 1024 * 1024)
    finally:
        runner.terminate()


class PausedBeforeALargeWrite(Connection):
    """A worker's connection that runs ``pause`` before it writes the body of its first
    message larger than 1 MiB: a large call whose sending takes as long as the test wants."""

    pause: Callable[[], None]

    def _send(self, buf: Any, write: Callable[[int, Any], int] = os.write) -> None:
        if len(buf) > 1024 * 1024:
            pause, self.pause = self.pause, lambda: None  # (once)
            pause()
        super()._send(buf, write)  # type: ignore[misc]


class RefusedAtItsStart(ScriptedEvents):
    """A call's events that refuse to let it start (its deadline passed while it was queued)."""

    def started(self) -> bool:
        return False


@pytest.mark.parametrize("refused_first", [0, 1, 2])
def test_a_large_queued_call_being_sent_never_holds_a_small_result_of_another_worker(
    tmp_path: Path, refused_first: int
) -> None:
    """A queued call larger than 1 MiB that a freed worker takes is sent while another
    worker's small result is delivered, also when the calls queued before it were refused
    at their start: its write (here, held until then) does not hold the others."""
    runner = ProcessRunner(2)
    try:
        first, second = tmp_path / "first", tmp_path / "second"
        holders = [ScriptedEvents(), ScriptedEvents()]
        for path, events in zip((first, second), holders, strict=True):
            runner.submit(_call(process_tools.WaitsForAFile(), path=str(path)), events)
        assert wait_for(lambda: runner.stats.busy == 2)
        small_first: list[bool] = []

        def hold_the_write_until_the_small_result_is_in() -> None:
            second.touch()
            small_first.append(holders[1].finished_event.wait(5.0))

        for pid in runner.worker_pids():
            conn = runner._pool.workers[pid].conn
            conn.__class__ = PausedBeforeALargeWrite
            conn.pause = hold_the_write_until_the_small_result_is_in  # type: ignore[attr-defined]
        refused = [RefusedAtItsStart() for _ in range(refused_first)]
        for events in refused:
            runner.submit(_call(process_tools.Pid()), events)
        large = ScriptedEvents()
        runner.submit(_call(process_tools.Pid(), blob=bytes(2 * 1024 * 1024)), large)
        assert runner.stats.queued == refused_first + 1
        first.touch()
        assert large.finished_event.wait(WAIT)
        assert small_first == [True], "the small result waited for the large call's write"
        assert isinstance(large.outcomes[0].value, int)
        assert holders[1].outcomes[0].value != large.outcomes[0].value
        assert not any(events.outcomes for events in refused)
    finally:
        runner.terminate()


def test_many_large_calls_submitted_from_an_event_loop_are_pickled_on_a_few_threads() -> None:
    """Large calls submitted at once from an event loop are pickled (and sent) on a few
    threads of the runner's, in turn, not on a thread each; every one of them runs."""
    runner = ProcessRunner(2)
    held = process_tools.HeldWhilePickled
    held.reset()
    calls = [ScriptedEvents() for _ in range(24)]

    def pickling_threads() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "laios-process-pickle"]

    async def submit_all() -> int:
        for events in calls:
            call = _call(process_tools.Pid(), blob=bytes(512 * 1024), gate=held())
            runner.submit(call, events)
        return len(pickling_threads())

    try:
        started = asyncio.run(submit_all())
        assert wait_for(lambda: held.at_once > 0)
        assert started < len(calls), f"{started} threads pickle {len(calls)} calls"
        assert started <= process_runner.PICKLING_THREADS
        assert runner.stats.queued == len(calls)
        held.release.set()
        assert all(events.finished_event.wait(WAIT) for events in calls)
        assert all(isinstance(events.outcomes[0].value, int) for events in calls)
        assert 0 < held.most_at_once <= process_runner.PICKLING_THREADS
        assert wait_for(lambda: not pickling_threads()), "pickling threads were left waiting"
    finally:
        held.release.set()
        runner.terminate()


def test_shutdown_waiting_for_a_large_call_being_pickled_returns_once_it_has_run() -> None:
    """``shutdown(wait=True)`` called while a large call from an event loop is pickled returns
    once that call has run and its worker exited, never as the call goes from its pickling
    thread to the queue."""
    runner = ProcessRunner(1)
    pool = runner._pool
    held = process_tools.HeldWhilePickled
    held.reset()
    events = ScriptedEvents()
    finished_when_shut: list[bool] = []

    def shut() -> None:
        runner.shutdown(wait=True)
        finished_when_shut.append(events.finished_event.is_set())

    closer = threading.Thread(target=shut)
    place = pool.place

    def place_once_shutdown_looked_again(call: Any, **options: Any) -> bool:
        # (a call placed apart from its pickling: shutdown, woken by the pickling's end, gets
        # to look at the pool first, and either returns or waits again)
        assert wait_for(lambda: not closer.is_alive() or pool.changed._waiters)  # type: ignore[attr-defined]
        return place(call, **options)

    pool.place = place_once_shutdown_looked_again  # type: ignore[method-assign]

    async def submit() -> None:
        runner.submit(_call(process_tools.Pid(), blob=bytes(512 * 1024), gate=held()), events)

    try:
        asyncio.run(submit())
        assert wait_for(lambda: held.at_once == 1)
        closer.start()
        assert wait_for(lambda: runner.closed and pool.changed._waiters)  # type: ignore[attr-defined]
        held.release.set()
        closer.join(WAIT)
        assert finished_when_shut == [True]
        assert isinstance(events.outcomes[0].value, int)
        assert not runner.worker_pids()
    finally:
        held.release.set()
        runner.terminate()
        if closer.is_alive():
            closer.join(WAIT)


def test_a_worker_that_dies_while_its_large_result_is_read_fails_that_call_only() -> None:
    """A worker killed while its large result is being read fails its call as crashed; the
    pool serves on."""
    runner = ProcessRunner(1)
    try:
        pid = _pid_call(runner).value

        def kill_the_worker() -> None:
            os.kill(pid, signal.SIGKILL)
            assert gone(pid)

        conn = runner._pool.workers[pid].conn
        conn.__class__ = PausedWhileReading
        conn.pause = kill_the_worker  # type: ignore[attr-defined]
        doomed = ScriptedEvents()
        runner.submit(_call(process_tools.ReturnsSwelling(), mb=8), doomed)
        assert doomed.finished_event.wait(WAIT), "the call was left without an outcome"
        assert doomed.outcomes[0].error_type == "worker_crashed"
        assert _pid_call(runner).value != pid
    finally:
        runner.terminate()


def _kill_the_parent_of_a_running_tool(tmp_path: Path, tool: str, tool_name: str) -> None:
    """Run ``process_tools.<tool>`` on a process runner in a program of its own, kill that
    program outright (no atexit, no finalizers) once the tool runs, and check that neither the
    worker nor the tool's own child outlived it."""
    script = tmp_path / "main.py"
    script.write_text(
        _SCRIPT_PRELUDE
        + textwrap.dedent(
            f"""
            import threading, time

            if __name__ == "__main__":
                registry = ToolRegistry()
                registry.register_tool(process_tools.{tool}())
                executor = Executor(registry, runner=ProcessRunner(1), register_prometheus=False)
                task = Task(plan_id="p", description="d", tool_name={tool_name!r},
                            parameters={{"box": {str(tmp_path)!r}}})
                context = Context(session_id="s", user_id="u")
                threading.Thread(
                    target=executor.execute_task, args=(task, context), daemon=True
                ).start()
                time.sleep(60)
            """
        )
    )
    parent = subprocess.Popen([sys.executable, str(script)], env=_script_env())
    hung = None
    try:
        hung = wait_for(lambda: process_tools.read_note(str(tmp_path), "hang"))
        assert hung is not None, "the tool never started"
        time.sleep(0.2)  # (into its C call, for a tool that makes one)
        parent.kill()
        parent.wait(WAIT)
        worker_gone = gone(hung["pid"])
        grandchild_gone = gone(hung["grandchild"])
    finally:
        parent.kill()
        parent.wait(WAIT)
        if hung is not None:
            with contextlib.suppress(OSError):
                os.killpg(hung["pid"], signal.SIGKILL)  # (never left spinning by a failure)
    assert worker_gone, "the worker outlived its killed parent"
    assert grandchild_gone, "the tool's own child outlived the killed parent"


def test_workers_die_with_a_parent_killed_by_sigkill(tmp_path: Path) -> None:
    """A parent that is killed outright leaves no worker behind: each worker watches its
    parent and kills its own process group when the parent is gone."""
    _kill_the_parent_of_a_running_tool(tmp_path, "Hang", "hang")


@pytest.mark.skipif(
    process_runner.DEFAULT_START_METHOD != "forkserver" or sys.platform != "linux",
    reason="workers of a forkserver, found in /proc",
)
def test_workers_die_with_a_parent_killed_by_sigkill_while_a_tool_holds_the_gil(
    tmp_path: Path,
) -> None:
    """A worker whose tool holds the GIL in a long C call cannot run the thread that watches
    its parent: the forkserver, which ends with the parent, kills the worker's group then."""
    _kill_the_parent_of_a_running_tool(tmp_path, "HangHoldingTheGil", "hang_holding_the_gil")


@pytest.mark.skipif(
    process_runner.DEFAULT_START_METHOD != "forkserver", reason="workers of a forkserver"
)
def test_a_call_whose_forkserver_a_tool_killed_is_not_called_a_worker_exit(tmp_path: Path) -> None:
    """A tool that kills its worker's parent kills the forkserver, which told the runner when
    each of its workers ended: a call running on another worker meanwhile is not reported as
    its worker's exit (the code ``multiprocessing`` makes up then, 255), but says the
    forkserver ended."""
    script = tmp_path / "main.py"
    released = tmp_path / "released"
    script.write_text(
        _SCRIPT_PRELUDE
        + textwrap.dedent(
            f"""
            import json, pathlib, threading

            if __name__ == "__main__":
                registry = ToolRegistry()
                registry.register_tool(process_tools.WaitsForAFile())
                registry.register_tool(process_tools.KillsItsParent())
                runner = ProcessRunner(2)
                executor = Executor(registry, runner=runner, register_prometheus=False)
                context = Context(session_id="s", user_id="u")
                held = {{}}
                waits = Task(plan_id="p", description="d", tool_name="waits_for_a_file",
                             parameters={{"path": {str(released)!r}}})
                thread = threading.Thread(
                    target=lambda: held.setdefault("result", executor.execute_task(
                        waits, context, timeout=60))
                )
                thread.start()
                assert process_tools.wait_until(lambda: runner.stats.busy == 1, 30)
                killer = Task(plan_id="p", description="d", tool_name="kills_its_parent")
                executor.execute_task(killer, context, timeout=60)
                pathlib.Path({str(released)!r}).touch()
                thread.join(60)
                result = held["result"]
                print(json.dumps({{"success": result.success, "error": result.error}}))
                executor.shutdown(wait=False)
                runner.terminate()
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env=_script_env(Path(__file__).parent),
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if not result["success"]:  # (it may also have run on: the forkserver ended after it)
        assert "exited with code 255" not in result["error"], result["error"]
        assert "forkserver" in result["error"], result["error"]


@pytest.mark.skipif(
    process_runner.DEFAULT_START_METHOD != "forkserver", reason="workers of a forkserver"
)
def test_workers_start_again_once_the_forkserver_was_killed(tmp_path: Path) -> None:
    """Worker starts that reach the forkserver as it is killed (it is stopped, the starts wait
    for its answer, then it is killed) fail at first (``EOFError``: ``multiprocessing`` takes
    it for running until it is seen dead); they are tried again, on a new forkserver, and
    every task runs, on the runner that started the killed forkserver and on one made next."""
    script = tmp_path / "main.py"
    script.write_text(
        _SCRIPT_PRELUDE
        + textwrap.dedent(
            """
            import json, os, signal, threading, time

            if __name__ == "__main__":
                registry = ToolRegistry()
                registry.register_tool(process_tools.SignalsHeld())
                registry.register_tool(process_tools.Pid())
                context = Context(session_id="s", user_id="u")
                first = Executor(registry, runner=ProcessRunner(1), register_prometheus=False)
                held = first.execute_task(
                    Task(plan_id="p", description="d", tool_name="signals_held"), context
                )
                server = held.output["parent"]
                os.kill(server, signal.SIGSTOP)  # (it takes no more starts, nor ends)
                second = Executor(registry, runner=ProcessRunner(2), register_prometheus=False)
                results = []

                def run(executor):
                    task = Task(plan_id="p", description="d", tool_name="pid")
                    results.append(executor.execute_task(task, context, timeout=60))

                threads = [threading.Thread(target=run, args=(second,)) for _ in range(4)]
                for thread in threads:
                    thread.start()
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and sum(
                    thread.name == "laios-process-start" for thread in threading.enumerate()
                ) < 2:
                    time.sleep(0.01)
                time.sleep(1.0)  # (the starts send the stopped server what to run, and wait)
                os.kill(server, signal.SIGKILL)
                for thread in threads:
                    thread.join(90)
                after = [threading.Thread(target=run, args=(ex,)) for ex in (first, second)]
                for thread in after:
                    thread.start()
                for thread in after:
                    thread.join(90)
                print(json.dumps([[r.success, r.error] for r in results]))
                for executor in (first, second):
                    executor.shutdown(wait=True)
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=240,
        env=_script_env(Path(__file__).parent),
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(results) == 6
    assert all(success for success, _ in results), results


#: A module the forkserver preloads: kills the forkserver importing it once the file named by
#: LAIOS_TEST_KILL exists.
_KILLING_PRELOAD = """
import os, signal

if os.path.exists(os.environ["LAIOS_TEST_KILL"]):
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.skipif(
    process_runner.DEFAULT_START_METHOD != "forkserver", reason="workers of a forkserver"
)
@pytest.mark.parametrize("sigchld", ["default", "ignored"])
def test_a_forkserver_killed_at_each_start_is_named_not_the_preload(
    tmp_path: Path, sigchld: str
) -> None:
    """When every new forkserver is killed as it starts (here by its preload, once a file
    exists), after one had started workers, the tasks are refused ``no_process`` saying the
    forkserver ended, each time it was tried, and that it may be killed: not that the system
    refused, nor a bare blame on the preload's import. Likewise in a program that ignores
    SIGCHLD, where each killed forkserver is reaped before ``multiprocessing`` checks it."""
    (tmp_path / "killing_preload.py").write_text(_KILLING_PRELOAD, encoding="utf-8")
    kill = tmp_path / "kill"
    script = tmp_path / "main.py"
    script.write_text(
        _SCRIPT_PRELUDE
        + textwrap.dedent(
            f"""
            import json, os, pathlib, signal

            if __name__ == "__main__":
                if {sigchld == "ignored"}:
                    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
                registry = ToolRegistry()
                registry.register_tool(process_tools.SignalsHeld())
                registry.register_tool(process_tools.Pid())
                context = Context(session_id="s", user_id="u")
                runner = ProcessRunner(1, preload=["killing_preload"])
                executor = Executor(registry, runner=runner, register_prometheus=False)
                held = executor.execute_task(
                    Task(plan_id="p", description="d", tool_name="signals_held"), context
                )
                pathlib.Path({str(kill)!r}).touch()
                os.kill(held.output["parent"], signal.SIGKILL)
                worker = held.output["pid"]  # (stopped once the runner sees the server gone)
                assert process_tools.wait_until(lambda: worker not in runner.worker_pids(), 60)
                task = Task(plan_id="p", description="d", tool_name="pid")
                result = executor.execute_task(task, context, timeout=60)
                executor.shutdown(wait=True)
                print(json.dumps({{"error": result.error,
                                  "error_type": result.metadata.get("error_type")}}))
            """
        )
    )
    env = _script_env(tmp_path)
    env["LAIOS_TEST_KILL"] = str(kill)
    program = subprocess.run(
        [sys.executable, str(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert program.returncode == 0, program.stderr[-2000:]
    report = json.loads(program.stdout.strip().splitlines()[-1])
    assert report["error_type"] == "no_process", report
    error = report["error"]
    assert "forkserver" in error
    assert "system refused" not in error
    assert "picklable" not in error
    assert "kill" in error, error
    assert f"{len(process_runner._SERVER_RETRY_PAUSES) + 1} times in a row" in error


@pytest.mark.skipif(
    process_runner.DEFAULT_START_METHOD != "forkserver", reason="workers of a forkserver"
)
def test_workers_start_again_after_the_forkserver_ended_with_sigchld_ignored(
    tmp_path: Path,
) -> None:
    """A program that ignores SIGCHLD (its children are reaped at once, by the kernel) runs
    tasks, and when its forkserver is killed the next worker starts on a new one: the tasks
    are not refused as if the system refused (``multiprocessing`` cannot ``waitpid`` a
    forkserver reaped already). In the workers SIGCHLD is not ignored: a tool reads the exit
    code of a child it waits for (with it ignored, ``subprocess`` reads 0)."""
    script = tmp_path / "main.py"
    script.write_text(
        _SCRIPT_PRELUDE
        + textwrap.dedent(
            """
            import json, os, signal

            if __name__ == "__main__":
                signal.signal(signal.SIGCHLD, signal.SIG_IGN)
                registry = ToolRegistry()
                registry.register_tool(process_tools.SignalsHeld())
                registry.register_tool(process_tools.ChildExitCode())
                context = Context(session_id="s", user_id="u")
                runner = ProcessRunner(1)
                executor = Executor(registry, runner=runner, register_prometheus=False)
                held = executor.execute_task(
                    Task(plan_id="p", description="d", tool_name="signals_held"), context
                )
                os.kill(held.output["parent"], signal.SIGKILL)
                worker = held.output["pid"]  # (stopped once the runner sees the server gone)
                assert process_tools.wait_until(lambda: worker not in runner.worker_pids(), 60)
                results = [
                    executor.execute_task(
                        Task(plan_id="p", description="d", tool_name="child_exit_code"),
                        context,
                        timeout=60,
                    )
                    for _ in range(2)
                ]
                executor.shutdown(wait=True)
                print(json.dumps([[r.success, r.error, r.output] for r in [held, *results]]))
            """
        )
    )
    program = subprocess.run(
        [sys.executable, str(script)],
        env=_script_env(),
        capture_output=True,
        text=True,
        timeout=WAIT * 8,
        check=False,
    )
    assert program.returncode == 0, program.stderr[-2000:]
    results = json.loads(program.stdout.strip().splitlines()[-1])
    assert all(success for success, _, _ in results), results
    assert [output for _, _, output in results[1:]] == [3, 3], results


def test_an_unknown_start_method_is_refused_with_the_usable_ones() -> None:
    """The message lists the start methods the runner takes ('fork' is not one of them), so
    it never reads "one of ['fork', ...] (not 'fork')"."""
    with pytest.raises(ValueError) as raised:
        ProcessRunner(1, start_method="teleport")
    message = str(raised.value)
    assert "'fork'" not in message.split(", got")[0]
    assert "'spawn'" in message
    assert "got 'teleport'" in message


#: A module the forkserver preloads: says so on the FIFO LAIOS_TEST_READY, then waits for a
#: line on the FIFO LAIOS_TEST_GO (the forkserver is then still importing its preloads).
_HELD_PRELOAD = """
import os

with open(os.environ["LAIOS_TEST_READY"], "w") as ready:
    ready.write("importing")
with open(os.environ["LAIOS_TEST_GO"]) as go:
    go.readline()
"""


@pytest.mark.skipif(
    process_runner.DEFAULT_START_METHOD != "forkserver", reason="the forkserver's preloads"
)
def test_ctrl_c_while_the_forkserver_preloads_does_not_stop_it(tmp_path: Path) -> None:
    """A terminal's Ctrl-C (SIGINT to the whole foreground group) while the forkserver still
    imports its preloads leaves it running: the worker starts, runs the call with SIGINT not
    blocked, nothing is printed, and no process is left when the program ends."""
    (tmp_path / "held_preload.py").write_text(_HELD_PRELOAD, encoding="utf-8")
    script = tmp_path / "main.py"
    script.write_text(
        _SCRIPT_PRELUDE
        + textwrap.dedent(
            """
            import json, signal

            if __name__ == "__main__":
                interrupted = []
                signal.signal(signal.SIGINT, lambda *_: interrupted.append(True))
                registry = ToolRegistry()
                registry.register_tool(process_tools.SignalsHeld())
                runner = ProcessRunner(1, preload=["held_preload"])
                executor = Executor(registry, runner=runner, register_prometheus=False)
                task = Task(plan_id="p", description="d", tool_name="signals_held")
                result = executor.execute_task(task, Context(session_id="s", user_id="u"))
                executor.shutdown(wait=True)
                print(json.dumps({"output": result.output, "error": result.error,
                                  "interrupted": bool(interrupted)}))
            """
        )
    )
    ready_path, go_path = tmp_path / "ready", tmp_path / "go"
    os.mkfifo(ready_path)
    os.mkfifo(go_path)
    # (Opened for reading and writing: neither open waits, nor does a read see an end.)
    ready = os.open(ready_path, os.O_RDWR)
    go = os.open(go_path, os.O_RDWR)
    env = _script_env(tmp_path)
    env.update(LAIOS_TEST_READY=str(ready_path), LAIOS_TEST_GO=str(go_path))
    try:
        program = subprocess.Popen(
            [sys.executable, str(script)],
            env=env,
            start_new_session=True,  # (a group of its own, as a terminal's foreground job)
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            readable, _, _ = select.select([ready], [], [], WAIT * 4)
            assert readable, "the forkserver never imported its preload"
            assert os.read(ready, 64) == b"importing"
            os.killpg(program.pid, signal.SIGINT)  # Ctrl-C, held in the forkserver's import
            os.write(go, b"go\n")
            out, err = program.communicate(timeout=WAIT * 4)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(program.pid, signal.SIGKILL)
            program.wait(WAIT)
    finally:
        os.close(ready)
        os.close(go)
    assert err == "", err
    assert program.returncode == 0
    report = json.loads(out)
    assert report["error"] is None
    assert report["interrupted"], "the program itself did not get the Ctrl-C"
    assert not report["output"]["blocked"] & (1 << (signal.SIGINT - 1)), "SIGINT held in worker"
    assert gone(report["output"]["pid"]), "the worker outlived the program"
    assert gone(report["output"]["parent"]), "the forkserver outlived the program"


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_a_worker_runs_tools_with_sigint_not_blocked(
    method: str,
    make: Callable[..., Executor],
    task: Callable[..., Task],
    context: Context,
) -> None:
    """SIGINT, held back while a worker starts, is not blocked while its tools run, whatever
    the start method (a tool, and what it starts, get a Ctrl-C sent to them)."""
    executor = make(runner_options={"start_method": method})
    result = executor.execute_task(task("signals_held"), context)
    assert result.success, result.error
    assert not result.output["blocked"] & (1 << (signal.SIGINT - 1))
    assert not signal.pthread_sigmask(signal.SIG_BLOCK, set()) & {signal.SIGINT}


@pytest.mark.skipif(
    process_runner.DEFAULT_START_METHOD != "forkserver", reason="the forkserver's children"
)
def test_processes_the_program_starts_with_the_forkserver_take_ctrl_c(tmp_path: Path) -> None:
    """Once a runner has started the process's forkserver (with SIGINT held back), a process
    the program itself starts with the forkserver method (a ``multiprocessing.Pool`` of that
    context) still has SIGINT unblocked: a Ctrl-C raises ``KeyboardInterrupt`` there."""
    script = tmp_path / "main.py"
    script.write_text(
        _SCRIPT_PRELUDE
        + textwrap.dedent(
            """
            import json, multiprocessing

            if __name__ == "__main__":
                registry = ToolRegistry()
                registry.register_tool(process_tools.SignalsHeld())
                executor = Executor(registry, runner=ProcessRunner(1), register_prometheus=False)
                task = Task(plan_id="p", description="d", tool_name="signals_held")
                result = executor.execute_task(task, Context(session_id="s", user_id="u"))
                with multiprocessing.get_context("forkserver").Pool(1) as pool:
                    child = pool.apply(process_tools.sigint_in_this_process)
                executor.shutdown(wait=True)
                print(json.dumps({"worker": result.output, "error": result.error,
                                  "child": child}))
            """
        )
    )
    program = subprocess.run(
        [sys.executable, str(script)],
        env=_script_env(),
        capture_output=True,
        text=True,
        timeout=WAIT * 4,
    )
    assert program.returncode == 0, program.stderr
    report = json.loads(program.stdout)
    assert report["error"] is None
    assert report["child"] == {"blocked": False, "raised": True}
    assert not report["worker"]["blocked"] & (1 << (signal.SIGINT - 1)), "SIGINT held in worker"


def _run_with_a_raising_preload(tmp_path: Path) -> tuple[str, dict[str, Any]]:
    """Run a task in a program whose runner preloads a module that raises when imported: the
    program's stderr, and the task's error and error type."""
    (tmp_path / "raising_preload.py").write_text('raise RuntimeError("no config")\n')
    script = tmp_path / "main.py"
    script.write_text(
        _SCRIPT_PRELUDE
        + textwrap.dedent(
            """
            import json

            if __name__ == "__main__":
                registry = ToolRegistry()
                registry.register_tool(process_tools.Pid())
                runner = ProcessRunner(1, preload=["raising_preload"])
                executor = Executor(registry, runner=runner, register_prometheus=False)
                task = Task(plan_id="p", description="d", tool_name="pid")
                result = executor.execute_task(task, Context(session_id="s", user_id="u"))
                executor.shutdown(wait=True)
                print(json.dumps({"error": result.error,
                                  "error_type": result.metadata.get("error_type")}))
            """
        )
    )
    program = subprocess.run(
        [sys.executable, str(script)],
        env=_script_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=WAIT * 4,
    )
    assert program.returncode == 0, program.stderr
    return program.stderr, json.loads(program.stdout)


REFUSED_PARENT_WATCH = """
import threading

_start = threading.Thread.start


def _refusing(self):
    if self.name == "laios-parent-watch":
        raise RuntimeError("can't start new thread")
    _start(self)


threading.Thread.start = _refusing
"""


@pytest.mark.skipif(
    process_runner.DEFAULT_START_METHOD != "forkserver", reason="the forkserver's preloads"
)
def test_a_worker_refused_the_thread_that_watches_its_parent_serves_all_the_same(
    tmp_path: Path,
) -> None:
    """A worker whose thread that ends it with its parent cannot be started ("can't start
    new thread": a container's pids limit) runs its calls: it is not a crash of the tool,
    nor a worker to replace at each call."""
    (tmp_path / "refused_parent_watch.py").write_text(REFUSED_PARENT_WATCH)
    script = tmp_path / "main.py"
    script.write_text(
        _SCRIPT_PRELUDE
        + textwrap.dedent(
            """
            import json

            if __name__ == "__main__":
                registry = ToolRegistry()
                registry.register_tool(process_tools.Pid())
                runner = ProcessRunner(1, preload=["refused_parent_watch"])
                executor = Executor(registry, runner=runner, register_prometheus=False)
                for _ in range(2):
                    task = Task(plan_id="p", description="d", tool_name="pid")
                    result = executor.execute_task(task, Context(session_id="s", user_id="u"))
                    print(json.dumps({"pid": result.output, "error": result.error}))
                executor.shutdown(wait=True)
            """
        )
    )
    program = subprocess.run(
        [sys.executable, str(script)],
        env=_script_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=WAIT * 4,
    )
    assert program.returncode == 0, program.stderr
    first, second = (json.loads(line) for line in program.stdout.splitlines())
    assert first["error"] is None, first["error"]
    assert second["error"] is None, second["error"]
    assert first["pid"] == second["pid"]  # (one worker served both)
    assert "Traceback" not in program.stderr, program.stderr
    assert "can't start new thread" in program.stderr


UNGUARDED_PROGRAM = """
import json, os
from laios.core.types import Context, Task
from laios.execution import Executor
from laios.execution.runners import ProcessRunner
from laios.tools.base import create_simple_tool
from laios.tools.registry import ToolRegistry


def pid() -> int:
    return os.getpid()


registry = ToolRegistry()
registry.register_tool(create_simple_tool("pid", "Returns the pid.", pid))
executor = Executor(registry, runner=ProcessRunner(1), register_prometheus=False)
result = executor.execute_task(
    Task(plan_id="p", description="d", tool_name="pid"),
    Context(session_id="s", user_id="u"),
    timeout=30,
)
print(json.dumps({"pid": os.getpid(), "error": result.error, **result.metadata}), flush=True)
executor.shutdown()
"""


def test_a_main_module_that_runs_tasks_when_imported_is_told_to_guard_them(
    tmp_path: Path,
) -> None:
    """A program without ``if __name__ == "__main__":`` runs its tasks again where its main
    module is imported to start workers: that run's tasks cannot start a worker, and their
    error says how to guard the program, not that something must be picklable."""
    (tmp_path / "program.py").write_text(UNGUARDED_PROGRAM)
    program = subprocess.run(
        [sys.executable, "program.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=WAIT * 4,
    )
    assert program.returncode == 0, program.stderr
    reports = [json.loads(line) for line in program.stdout.splitlines() if line.startswith("{")]
    assert [r for r in reports if r["error"] is None], reports  # (the program's own run)
    imported = [r for r in reports if r["error"] is not None]
    assert imported, program.stdout
    for report in imported:
        assert report["error_type"] == "no_process", report
        assert 'if __name__ == "__main__":' in report["error"], report["error"]
        assert "picklable" not in report["error"], report["error"]


UNGUARDED_BATCH = """
import os, sys
from laios.core.types import Context, Task
from laios.execution import Executor
from laios.execution.runners import ProcessRunner
from laios.tools.base import create_simple_tool
from laios.tools.registry import ToolRegistry


def pid() -> int:
    return os.getpid()


registry = ToolRegistry()
registry.register_tool(create_simple_tool("pid", "Returns the pid.", pid))
runner = ProcessRunner(2, start_method=sys.argv[1] if len(sys.argv) > 1 else "{method}")
executor = Executor(registry, runner=runner, register_prometheus=False)
for _ in range(3):
    result = executor.execute_task(
        Task(plan_id="p", description="d", tool_name="pid"),
        Context(session_id="s", user_id="u"),
        timeout=30,
    )
    print("ran" if result.success else "refused", flush=True)
executor.shutdown()
"""


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_a_main_module_that_runs_tasks_when_imported_says_so_in_one_line(
    tmp_path: Path, method: str
) -> None:
    """Where the program's main module is imported to start workers, its unguarded tasks
    cannot start one: stderr says once, in one line, how to guard the program, with no
    traceback of ``multiprocessing``'s own (a page of it for each start tried)."""
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} here")
    (tmp_path / "program.py").write_text(UNGUARDED_BATCH.replace("{method}", method))
    program = subprocess.run(
        [sys.executable, "program.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=WAIT * 4,
    )
    assert program.returncode == 0, program.stderr
    assert program.stdout.count("ran") == 3, program.stdout
    assert "refused" in program.stdout  # (the imported copy's tasks)
    assert "Traceback" not in program.stderr, program.stderr
    lines = program.stderr.splitlines()
    assert lines, "nothing said why the imported copy's tasks were refused"
    for line in lines:
        assert 'if __name__ == "__main__":' in line, program.stderr
    # At most once for each process that imports the main module: the forkserver, or each of
    # the two workers (spawn).
    assert len(lines) <= 2, program.stderr


PIPED_PROGRAM = """
import json, os, sys
from laios.core.types import Context, Task
from laios.execution import Executor
from laios.execution.runners import ProcessRunner
from laios.tools.base import create_simple_tool
from laios.tools.registry import ToolRegistry

registry = ToolRegistry()
registry.register_tool(create_simple_tool("pid", "Returns the pid.", os.getpid))
runner = ProcessRunner(1, start_method=sys.argv[1])
with Executor(registry, runner=runner, register_prometheus=False) as executor:
    for _ in range(2):
        result = executor.execute_task(
            Task(plan_id="p", description="d", tool_name="pid"),
            Context(session_id="s", user_id="u"),
            timeout=30,
        )
        error_type = result.metadata.get("error_type")
        print(json.dumps({"error_type": error_type, "error": result.error}), flush=True)
"""


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_a_program_read_from_standard_input_is_told_workers_cannot_import_it(
    tmp_path: Path, method: str
) -> None:
    """A worker process imports the program's main module from its file as it starts; a
    program Python read from standard input (``python -``, a script piped to it) has none.
    Its tasks are refused at once, saying so and what to do, rather than each failing as
    ``worker_crashed`` with a worker started (and ended by a ``FileNotFoundError``) for
    nothing."""
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} here")
    program = subprocess.run(
        [sys.executable, "-", method],
        input=PIPED_PROGRAM,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=WAIT * 4,
    )
    assert program.returncode == 0, program.stderr
    reports = [json.loads(line) for line in program.stdout.splitlines()]
    assert len(reports) == 2, program.stdout
    for report in reports:
        assert report["error_type"] == "no_process", report
        assert "standard input" in report["error"], report["error"]
        assert "from a file" in report["error"], report["error"]
    assert "FileNotFoundError" not in program.stderr, program.stderr


def test_a_frozen_program_is_left_to_its_own_start_up(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A frozen program (PyInstaller and the like, ``sys.frozen`` set) names a main file that
    is not there (inside the bundle) on every platform, and its executable, not Python, starts
    the workers: the check for a main module read from standard input must not refuse it."""
    main = types.ModuleType("__main__")
    main.__file__ = str(tmp_path / "bundle" / "app.py")  # (not a file, as in a bundle)
    monkeypatch.setitem(sys.modules, "__main__", main)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    process_runner._check_main_importable()  # (no _MainNotImportable)


@pytest.mark.skipif(
    process_runner.DEFAULT_START_METHOD != "forkserver", reason="the forkserver's preloads"
)
def test_a_preload_that_raises_at_import_is_named_as_the_likely_cause(tmp_path: Path) -> None:
    """A module in ``preload`` that raises (not ``ImportError``) when imported ends the
    forkserver as it starts: the tasks are refused ``no_process``, and the error points to
    the preloads, not to the initializer's pickling."""
    stderr, report = _run_with_a_raising_preload(tmp_path)
    assert "RuntimeError: no config" in stderr  # (the forkserver's own traceback)
    assert report["error_type"] == "no_process"
    assert "forkserver" in report["error"]
    assert "preload" in report["error"]
    assert "picklable" not in report["error"]


@pytest.mark.skipif(
    process_runner.DEFAULT_START_METHOD != "forkserver", reason="the forkserver's preloads"
)
def test_a_preload_that_raises_at_import_is_tried_once(tmp_path: Path) -> None:
    """A forkserver that ends at its first start, before it started any worker in the
    program, is not started again (as a killed one is): its preload raised, and would again.
    One forkserver ran the preload (one traceback on stderr), and the error says so."""
    stderr, report = _run_with_a_raising_preload(tmp_path)
    assert stderr.count("RuntimeError: no config") == 1, stderr
    assert report["error_type"] == "no_process"
    assert "times in a row" not in report["error"], report["error"]
    assert "before it started any" in report["error"], report["error"]


def test_a_result_past_its_timeout_while_the_awaiting_loop_is_held_times_out(
    make: Callable[..., Executor], task: Callable[..., Task], context: Context, box: str
) -> None:
    """A tool of a batch whose result comes back from its worker process past its timeout,
    while the loop of the coroutine awaiting it is held (so the timer that would have ended
    it at its deadline has not run), ends ``timeout``, its late value discarded, as under
    ``execute_task``."""
    executor = make(1)
    run_pid(executor, task, context)  # (the worker is up: the call starts at once)
    late = task("stamp_and_sleep", box=box, stamp="late", seconds=1.0)

    async def hold_the_loop() -> None:
        await asyncio.sleep(0)  # (the batch is submitted first)
        until = time.monotonic() + WAIT
        while time.monotonic() < until:  # (blocking: the loop, its timer with it, stands still)
            if executor.get_task_status(late.id) not in (
                None,
                TaskStatus.PENDING,
                TaskStatus.RUNNING,
            ):
                break
            time.sleep(0.01)

    async def main() -> list[Any]:
        results, _ = await asyncio.gather(
            executor.execute_parallel([late], context, timeout=0.5), hold_the_loop()
        )
        return results

    (result,) = asyncio.run(main())

    assert result.metadata["outcome"] == "timeout", (result.metadata, result.error)
    error = result.error or ""
    assert "exceeded its timeout of 0.5s while tool 'stamp_and_sleep' was running" in error
    assert "returned only after its deadline" in error, error
    assert result.output is None
