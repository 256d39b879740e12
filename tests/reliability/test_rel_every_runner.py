"""The guarantees found by hostile testing, on every runner that exists.

Each guarantee has regression tests of its own (the table "Which runners each guarantee is
tested on" in ``docs/reliability.md`` names them), mostly on the default roads. Those about
what crosses the runner seam — a tool's exception and result, huge timeouts, content capture,
a fork, calls back into the executor, secrets, ``error_type``, record bytes, long ids,
``on_progress`` callbacks — run here down every road of the runner behaviour suite
(``tests/unit/test_runner_behaviour.py``), reusing its roads, its lab and its clusters:

* ``inline``: a synchronous tool under ``execute_task`` with no timeout (the caller's thread);
* ``thread``: with a timeout (the thread runner's workers);
* ``loop_caller`` / ``loop_thread``: an async tool on the caller's loop (``execute_async``) /
  on the executor's loop thread (``execute_task``);
* ``process`` / ``process_async``: on a ``ProcessRunner`` (a worker process);
* ``dask`` / ``dask_async``: on a ``DaskRunner`` (a process of a Dask worker).

The HTTP server's limits, the ``Accept`` header, the dependency floors, ``laios status`` and
tool registration involve no runner: their tests are elsewhere (see the table). Where a
guarantee takes another form on a runner (a tool that holds its executor cannot be sent to a
worker process; a Dask runner does not survive a fork), the test says what holds there
instead.

One process pool per executor (its workers fork from one forkserver in milliseconds) and one
Dask cluster for the whole module; timing bounds are generous (a deadlock or a walk of ten
million items takes seconds, the work itself milliseconds).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry, generate_latest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
import test_runner_behaviour as behaviour
from forked import in_child
from rel_runner_tools import (
    EVERY_RUNNER_TOOLS,
    INNER_TIMEOUT,
    LONG_NAME,
    Creds,
    CredsModel,
    HostileMapping,
    long_named_tools,
)
from rel_support import logs_text, span_text
from test_runner_behaviour import Road

from laios.core.types import Task, TaskResult
from laios.execution._records import MAX_DATA_BYTES, data_size
from laios.execution.executor import Executor, ResourceLimits
from laios.execution.monitor import ExecutionMonitor
from laios.execution.redaction import MAX_VALUE_BYTES
from laios.execution.server import MAX_STATUS_TEXT, status_document
from laios.execution.store import MetricStore
from laios.tools.registry import ToolRegistry

# The runner behaviour suite's fixtures, for this module's roads (module-scoped ones — the
# forkserver, the Dask cluster — start once for this module).
exporter = behaviour.exporter
provider = behaviour.provider
tracer = behaviour.tracer
gate = behaviour.gate
lab = behaviour.lab
forkserver = behaviour.forkserver
dask_clusters = behaviour.dask_clusters

ROADS = behaviour.ROADS
TIMED_ROADS = behaviour.TIMED_ROADS
LOCAL_ROADS = behaviour.LOCAL_ROADS
REMOTE_ROADS = behaviour.REMOTE_ROADS
CALLER_LOOP_ROADS = behaviour.CALLER_LOOP_ROADS
WAIT = behaviour.WAIT

#: Past threading.TIMEOUT_MAX (about 292 years): no limit.
HUGE = 1e10
#: A real limit, just short of what the platform can wait for.
NEAR_MAX = threading.TIMEOUT_MAX * 0.99
#: Longest a call with content capture on may take, round trip included (walking ten million
#: items took seconds).
CAPTURE_SECONDS = 2.0
#: Longest a forked child may take for its task (it starts a forkserver of its own on the
#: process roads).
CHILD_TIMEOUT = 10.0
#: The planted secrets: one per hiding place, so that each place must be found on its own.
DEEP_SECRET = "sk-live-DEEP123456"
OBJECT_SECRET = "sk-live-DATACLASS12"
MODEL_SECRET = "sk-live-PYDANTIC34"
ODD_SECRET = 'sk-live/AB+CD "EF"\\12 é34'
SAFE_ERROR_TYPE = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")
#: Roads where an on_progress callback runs on the thread that delivers the runner's reports
#: or the loop that runs the task: a call it makes back into the executor is refused.
REFUSING_CALLBACK_ROADS = ("loop_thread", *REMOTE_ROADS)


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def tools(registry: ToolRegistry, lab: behaviour.Lab) -> ToolRegistry:
    """The test registry with this module's tools added (the lab's are there already)."""
    for cls in EVERY_RUNNER_TOOLS:
        tool = cls()
        tool.lab = lab  # type: ignore[attr-defined]
        registry.register_tool(tool)
    for tool in long_named_tools():
        tool.lab = lab  # type: ignore[attr-defined]
        registry.register_tool(tool)
    return registry


@pytest.fixture(params=ROADS)
def road(request: pytest.FixtureRequest, tools: ToolRegistry) -> Road:
    """Every road."""
    return behaviour._road(request)


@pytest.fixture(params=LOCAL_ROADS)
def local_road(request: pytest.FixtureRequest, tools: ToolRegistry) -> Road:
    """The roads that run the tool in the test's own process."""
    return behaviour._road(request)


@pytest.fixture(params=REMOTE_ROADS)
def remote_road(request: pytest.FixtureRequest, tools: ToolRegistry) -> Road:
    """The roads of a tool in a process of its own (process and dask)."""
    return behaviour._road(request)


@pytest.fixture
def unwedged(tools: ToolRegistry, gate: behaviour.Gate) -> Iterator[Callable[..., Any]]:
    """Like ``make_executor``, but its teardown cannot hang the run: each executor's
    ``shutdown(wait=True)`` must return within ``WAIT`` or the test errors (a tool that stopped
    its executor's loop under it leaves that shutdown waiting for ever). Give it to a road with
    ``use_unwedged``."""
    built: list[Any] = []

    def make(**kwargs: Any) -> Any:
        kwargs.setdefault("store", MetricStore())
        kwargs.setdefault("register_prometheus", False)
        executor = Executor(tools, **kwargs)
        built.append(executor)
        return executor

    yield make
    gate.release.set()
    for executor in built:
        bounded(lambda executor=executor: executor.shutdown(wait=True))


def use_unwedged(road: Road, unwedged: Callable[..., Any]) -> None:
    """Build the road's executor with ``unwedged`` from now on, and rebuild it now."""
    road._make_executor = unwedged
    road.build()


# -- helpers ----------------------------------------------------------------------------------


def bounded(call: Callable[[], Any], bound: float = WAIT) -> tuple[Any, float]:
    """Run ``call`` on a daemon thread; its value and the seconds it took. Fails the test,
    instead of hanging it, when the call does not return within ``bound`` seconds."""
    box: list[tuple[Any, float]] = []

    def run() -> None:
        started = time.monotonic()
        value = call()
        box.append((value, time.monotonic() - started))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(bound)
    assert not thread.is_alive(), f"the call did not return within {bound:g}s (a hang)"
    assert box, "the call raised instead of returning"
    return box[0]


def run_default(road: Road, task: Task) -> TaskResult:
    """Run ``task`` the road's way but with no timeout of the call's own (the executor's
    default applies)."""
    executor = road.executor
    if road.kind in CALLER_LOOP_ROADS:
        return asyncio.run(executor.execute_async(task, road.context))
    return executor.execute_task(task, road.context)


def counts(store: MetricStore, tool: str) -> tuple[dict[str, int], dict[str, int], int]:
    """One tool's outcomes, error types and tasks in flight, as the store counts them."""
    snapshot = behaviour.tool_snapshot(store, tool)
    outcomes = {name: h.count for name, h in snapshot.outcomes.items() if h.count}
    errors = {name: c.value for name, c in snapshot.errors.items()}
    return outcomes, errors, snapshot.in_flight


def task_span(exporter: InMemorySpanExporter, road: Road, base: str) -> ReadableSpan:
    (span,) = behaviour.task_spans(exporter, road.tool(base))
    return span


def status_text(store: MetricStore) -> str:
    return json.dumps(status_document(store.snapshot()), ensure_ascii=False)


def shared_rows(rows: int) -> list[list[int]]:
    """``rows`` times the same list of 1,000 ints: ``rows × 1,000`` items to walk, a few
    kilobytes to pickle (pickle sends the shared row once)."""
    return [list(range(1000))] * rows


# -- a hostile exception or value never changes the outcome, nor hangs the caller -------------


def test_an_exception_whose_message_is_not_text_ends_as_an_error(road: Road) -> None:
    """A tool raising an exception whose __str__ returns a number: the caller gets an error
    named after its class (by its timeout, on the timed roads), counted once, nothing left in
    flight or running."""
    result, _ = bounded(lambda: road.run(road.task("api_error")))
    assert result.metadata["outcome"] == "error", result.error
    assert result.metadata["error_type"] == "ApiError"
    assert "ApiError" in (result.error or "")
    assert counts(road.store, road.tool("api_error")) == ({"error": 1}, {"ApiError": 1}, 0)
    assert road.executor.get_running_tasks() == []
    assert road.store.snapshot().running == []


def test_an_exception_whose_message_is_not_text_ends_an_execute_with_retry(road: Road) -> None:
    """The same exception under execute_with_retry (execute_with_retry_async on the caller's
    loop) ends the call with the error, run once, instead of hanging it."""
    result, _ = bounded(lambda: road.run_with_retry(road.task("api_error"), max_retries=0))
    assert result.metadata["outcome"] == "error", result.error
    assert result.metadata["error_type"] == "ApiError"
    assert counts(road.store, road.tool("api_error"))[0] == {"error": 1}


def test_a_parameter_that_cannot_be_walked_keeps_the_tools_own_error(
    road: Road, exporter: InMemorySpanExporter
) -> None:
    """With spans and content capture, a failing task whose parameter raises when walked ends
    with the tool's own error; its span is ended, and captures the parameter as a placeholder
    naming its type (no recording fault: nothing counts 'internal')."""
    road.build(capture_content=True)
    task = road.task("value_error")
    task.parameters["config"] = HostileMapping()
    result, _ = bounded(lambda: road.run(task))
    assert result.metadata["outcome"] == "error"
    assert result.metadata["error_type"] == "ValueError"
    assert result.error == "the tool failed"
    outcomes, errors, in_flight = counts(road.store, road.tool("value_error"))
    assert outcomes == {"error": 1}
    assert errors["ValueError"] == 1
    assert "internal" not in errors
    assert in_flight == 0
    span = task_span(exporter, road, "value_error")
    assert span.end_time is not None
    arguments = json.loads(str(span.attributes["gen_ai.tool.call.arguments"]))
    assert arguments["config"] == "<HostileMapping object (its items could not be read)>"


def test_a_result_that_cannot_be_walked_keeps_the_success(
    road: Road, exporter: InMemorySpanExporter
) -> None:
    """With content capture on, a result that raises when walked still reaches its caller as
    a success, wherever the tool ran; its span is ended, and captures the result as a
    placeholder naming its type (no capture fault: nothing counts 'internal')."""
    road.build(capture_content=True)
    result, _ = bounded(lambda: road.run(road.task("hostile_result")))
    assert result.success, result.error
    assert result.metadata["outcome"] == "success"
    outcomes, errors, in_flight = counts(road.store, road.tool("hostile_result"))
    assert (outcomes, in_flight) == ({"success": 1}, 0)
    assert "internal" not in errors
    span = task_span(exporter, road, "hostile_result")
    assert span.end_time is not None
    captured = json.loads(str(span.attributes["gen_ai.tool.call.result"]))
    assert captured == "<HostileMapping object (its items could not be read)>"


# -- huge timeouts: no limit, and the caller and the store agree ------------------------------


@pytest.mark.parametrize("seconds", [HUGE, NEAR_MAX], ids=["past-max", "near-max"])
def test_a_huge_timeout_runs_the_task_and_the_store_agrees(road: Road, seconds: float) -> None:
    """timeout=1e10 (no limit) and a timeout just short of threading.TIMEOUT_MAX (a real
    limit, through every runner's deadline arithmetic) run the task; the store counts the
    success the caller sees."""
    task = road.task("echo", text="x")
    if road.kind == "inline":  # (the road itself has no timeout: pass it to the call)
        result = road.executor.execute_task(task, road.context, timeout=seconds)
    else:
        result = road.run(task, timeout=seconds)
    assert result.success, result.error
    assert result.output == "x"
    assert counts(road.store, road.tool("echo"))[0] == {"success": 1}
    metrics = road.executor.get_metrics(task.id)
    assert metrics is not None
    assert metrics.outcome == "success"


def test_a_huge_default_timeout_means_no_limit(road: Road) -> None:
    """ResourceLimits(timeout_seconds=1e10) as the executor's default: the task runs as with
    no timeout, and the store counts the success the caller sees."""
    road.build(resource_limits=ResourceLimits(timeout_seconds=HUGE))
    task = road.task("echo", text="x")
    result, _ = bounded(lambda: run_default(road, task))
    assert result.success, result.error
    assert counts(road.store, road.tool("echo"))[0] == {"success": 1}


@pytest.mark.parametrize("option", ["retry_delay", "max_delay", "deadline"])
def test_a_retry_wait_too_large_to_wait_for_is_refused_at_the_call(
    road: Road, lab: behaviour.Lab, option: str
) -> None:
    """execute_with_retry (and execute_with_retry_async) refuse a retry_delay, max_delay or
    deadline of 1e10 with a result naming the option; nothing runs or is counted."""
    result, _ = bounded(lambda: road.run_with_retry(road.task("fail"), **{option: HUGE}))
    assert result.metadata["outcome"] == "rejected"
    assert option in (result.error or "")
    assert lab.started_ids == []
    assert all(tool.total == 0 for tool in road.store.snapshot().tools)


# -- content capture stops at its budget ------------------------------------------------------


def test_a_huge_result_reaches_its_caller_promptly_with_capture_on(
    road: Road, exporter: InMemorySpanExporter
) -> None:
    """A result of ten million items (cheap to send back from a worker process) reaches the
    caller promptly with content capture on; the captured result is at most 4 KiB, valid JSON,
    marked as cut."""
    road.build(capture_content=True)
    result, seconds = bounded(lambda: road.run(road.task("big_result")))
    assert result.success, result.error
    assert seconds < CAPTURE_SECONDS
    attributes = task_span(exporter, road, "big_result").attributes or {}
    text = str(attributes["gen_ai.tool.call.result"])
    assert len(text.encode()) <= MAX_VALUE_BYTES
    json.loads(text)
    assert text.startswith("[[0,1,2,")
    assert '"…"' in text


def test_a_huge_parameter_does_not_delay_the_task_with_capture_on(
    road: Road, exporter: InMemorySpanExporter
) -> None:
    """A parameter of ten million items (cheap to send to a worker process) delays nothing
    with content capture on; the captured arguments are at most 4 KiB, cut, and keep the key
    out."""
    road.build(capture_content=True)
    task = road.task("echo", text="x", items=shared_rows(10_000), api_key=DEEP_SECRET)
    result, seconds = bounded(lambda: road.run(task))
    assert result.success, result.error
    assert seconds < CAPTURE_SECONDS
    attributes = task_span(exporter, road, "echo").attributes or {}
    text = str(attributes["gen_ai.tool.call.arguments"])
    assert len(text.encode()) <= MAX_VALUE_BYTES
    json.loads(text)
    assert '"…"' in text
    assert DEEP_SECRET not in text


# -- an executor used before os.fork() works in the child -------------------------------------


def test_an_executor_used_before_fork_works_in_the_child(road: Road, lab: behaviour.Lab) -> None:
    """After a fork, the child runs a task down the road the parent used (new threads, loop,
    worker processes of its own) with a store that starts from zero; the parent goes on.

    A Dask runner's client (its connection, the thread delivering the workers' reports) is the
    parent's: in the child, a Dask road refuses the task at once ('forked') instead of hanging
    past its timeout.
    """
    warm = road.task("echo", text="parent")
    assert road.run(warm).success
    parent_workers = road.runner.worker_pids() if road.in_process and not road.on_dask else []
    timeout = None if road.kind == "inline" else CHILD_TIMEOUT

    def child() -> dict[str, Any]:
        task = road.task("echo", text="child")
        started = time.monotonic()
        result = road.run(task, timeout=timeout)
        snapshot = road.store.snapshot()
        return {
            "task": task.id,
            "output": result.output,
            "error": result.error,
            "outcome": result.metadata.get("outcome"),
            "error_type": result.metadata.get("error_type"),
            "seconds": time.monotonic() - started,
            "total": sum(t.total for t in snapshot.tools),
        }

    outcome = in_child(child)
    assert "crashed" not in outcome, outcome
    assert outcome["seconds"] < CHILD_TIMEOUT
    assert outcome["total"] == 1  # the child's own task only: the parent's is the parent's
    if road.on_dask:
        assert (outcome["outcome"], outcome["error_type"]) == ("rejected", "forked"), outcome
        assert "fork" in outcome["error"]
        assert outcome["task"] not in lab.started_ids
    else:
        assert outcome["output"] == "child", outcome["error"]
        if road.in_process:
            worker = lab.where[outcome["task"]].pid
            assert worker != os.getpid()
            assert worker not in parent_workers  # a worker of the child's own
    after = road.task("echo", text="after the fork")
    assert road.run(after).output == "after the fork"
    assert sum(t.total for t in road.store.snapshot().tools) == 2


# -- calling back into the executor never waits for itself ------------------------------------


def test_a_tool_holding_every_worker_can_call_back_into_its_executor(
    local_road: Road, tools: ToolRegistry
) -> None:
    """A tool holding the only worker thread (or async slot) runs a task with a timeout and a
    batch of two on its own executor at once, instead of waiting for itself."""
    road = local_road
    executor = road.build(capacity_one=True)
    tool = tools.get_tool(road.tool("reenter"))
    tool.executor, tool.context = executor, road.context  # type: ignore[union-attr]
    result, seconds = bounded(lambda: road.run(road.task("reenter")), bound=4 * INNER_TIMEOUT)
    assert result.success, result.error
    assert result.output["outputs"] == ["one", ["a", "b"]], result.output["errors"]
    assert seconds < INNER_TIMEOUT


def test_a_tool_holding_its_executor_is_refused_by_an_isolating_runner(
    remote_road: Road, lab: behaviour.Lab, tools: ToolRegistry
) -> None:
    """A tool that holds its executor cannot be sent to a worker process (an executor cannot
    be pickled): it is refused at once as not_picklable, never run — so it can never call back
    into its executor from there."""
    road = remote_road
    tool = tools.get_tool(road.tool("reenter"))
    tool.executor, tool.context = road.executor, road.context  # type: ignore[union-attr]
    task = road.task("reenter")
    result, _ = bounded(lambda: road.run(task))
    assert result.metadata["outcome"] == "rejected"
    assert result.metadata["error_type"] == "not_picklable"
    assert task.id not in lab.started_ids


def test_an_on_progress_callback_calling_back_into_its_executor_never_waits_for_itself(
    road: Road,
) -> None:
    """A callback (on the tool's thread, loop, or the thread delivering a worker's reports)
    that runs a task on the same executor gets its result at once: the task's, or — where
    waiting would block what must run or deliver it — a 'would_deadlock' refusal.
    The outer task keeps its outcome."""
    executor = road.build(capacity_one=True)
    inner: list[tuple[TaskResult, float]] = []

    def callback(event: str, data: Any) -> None:
        if event == "progress":
            started = time.monotonic()
            got = executor.execute_task(
                road.task("echo", text="inner"), road.context, timeout=INNER_TIMEOUT
            )
            inner.append((got, time.monotonic() - started))

    result, _ = bounded(
        lambda: road.run(road.task("progress"), on_progress=callback), bound=4 * INNER_TIMEOUT
    )
    assert result.output == "done", result.error
    ((got, seconds),) = inner
    assert seconds < INNER_TIMEOUT, got.error
    if road.kind in REFUSING_CALLBACK_ROADS:
        assert got.metadata["outcome"] == "rejected", got.error
        assert got.metadata["error_type"] == "would_deadlock"
    else:
        assert got.output == "inner", got.error


@pytest.mark.parametrize("on_event", ["started", "progress", "completed"])
def test_an_on_progress_callback_shutting_its_executor_down_does_not_wait_for_itself(
    road: Road, unwedged: Callable[..., Any], on_event: str
) -> None:
    """A callback calling shutdown(wait=True) on its own executor, whatever the event (on a
    process or Dask runner, "started" comes before the call is sent to its worker), returns,
    the executor is shut down, and the task still ends with its own outcome."""
    use_unwedged(road, unwedged)
    executor = road.executor
    returned: list[float] = []

    def callback(event: str, data: Any) -> None:
        if event == on_event:
            started = time.monotonic()
            executor.shutdown(wait=True)
            returned.append(time.monotonic() - started)

    result, _ = bounded(lambda: road.run(road.task("progress"), on_progress=callback))
    assert result.output == "done", result.error
    assert len(returned) == 1
    assert executor.is_shutdown


def test_tools_shutting_their_executor_down_do_not_wait_for_each_other(
    local_road: Road, tools: ToolRegistry, unwedged: Callable[..., Any]
) -> None:
    """Two tools running at once that each call shutdown(wait=True) on their executor both
    return (neither waits for itself or the other), on every road a tool can hold its
    executor on."""
    road = local_road
    use_unwedged(road, unwedged)
    tool = tools.get_tool(road.tool("shuts"))
    tool.executor = road.executor  # type: ignore[union-attr]
    first, second = road.start(road.task("shuts")), road.start(road.task("shuts"))
    results = [first.result(), second.result()]
    assert [r.output for r in results] == ["shut down", "shut down"], [r.error for r in results]
    assert road.executor.is_shutdown


# -- secrets stay out of telemetry, error_type is bounded -------------------------------------


def _encodings(secret: str) -> list[str]:
    return [
        quote(secret, safe=""),
        quote_plus(secret),
        repr(secret)[1:-1],
        json.dumps(secret)[1:-1],
    ]


def _nested(depth: int, leaf: Any) -> Any:
    for level in range(depth):
        leaf = {f"level{level}": leaf}
    return leaf


@pytest.mark.parametrize("how", ["raise", "output"])
def test_hidden_secrets_stay_out_of_every_channel(
    road: Road,
    lab: behaviour.Lab,
    exporter: InMemorySpanExporter,
    laios_records: list[logging.LogRecord],
    how: str,
) -> None:
    """Keys twelve levels deep, inside a dataclass and a pydantic model, and one quoted in
    its encoded forms, are quoted by the tool in progress, a checkpoint and its error (raised
    or returned): none reaches the spans, the DEBUG logs, /status during and after the run or
    the result's metadata; captured objects show their fields redacted."""
    road.build(capture_content=True)
    creds, model = Creds(api_key=OBJECT_SECRET), CredsModel(api_key=MODEL_SECRET)
    reveal = " ; ".join([f"key {DEEP_SECRET}", repr(creds), repr(model), *_encodings(ODD_SECRET)])
    task = road.task(
        "reveal",
        reveal=reveal,
        how=how,
        config=_nested(12, {"api_key": DEEP_SECRET}),
        creds=creds,
        model=model,
        api_key=ODD_SECRET,
    )
    running = road.start(task)
    assert lab.gate.wait_entered(1, WAIT)
    store = road.store
    assert behaviour.wait_for(lambda: "working with" in status_text(store))  # (reports arrive)
    during = status_text(store)
    lab.gate.release.set()
    result = running.result()
    assert result.metadata["outcome"] == "error"
    span = task_span(exporter, road, "reveal")
    assert "[REDACTED]" in (span.status.description or "")
    channels = {
        "spans": "\n".join(span_text(s) for s in exporter.get_finished_spans()),
        "logs": logs_text(laios_records),
        "status during": during,
        "status after": status_text(store),
        "metadata": json.dumps(result.metadata, default=str, ensure_ascii=False),
    }
    forbidden = [DEEP_SECRET, OBJECT_SECRET, MODEL_SECRET, ODD_SECRET, *_encodings(ODD_SECRET)]
    for name, text in channels.items():
        for form in forbidden:
            assert form not in text, f"{form!r} leaked into {name}"
    arguments = json.loads(str((span.attributes or {})["gen_ai.tool.call.arguments"]))
    assert arguments["creds"] == {"api_key": "[REDACTED]", "region": "eu"}
    assert arguments["model"] == {"api_key": "[REDACTED]", "region": "eu"}


def test_a_tool_chosen_error_type_is_bounded_everywhere(
    road: Road, exporter: InMemorySpanExporter
) -> None:
    """A tool's own error_type (label syntax, 10 kB) comes back from wherever it ran made
    safe and cut to 64 characters in the result, the span, /status and the error metric; past
    the store's cap, further types fold into 'other' there."""
    prometheus = CollectorRegistry()
    store = MetricStore(max_error_types=2)
    road.build(store=store, prometheus_registry=prometheus, register_prometheus=True)
    chosen = ['evil\nlabel{x="1"}', "E" * 10_000, "third"]
    expected = ["evil_label_x__1__", "E" * 64, "third"]
    for given, made_safe in zip(chosen, expected, strict=True):
        result = road.run(road.task("chooser", error_type=given))
        assert result.metadata["error_type"] == made_safe
    spans = behaviour.task_spans(exporter, road.tool("chooser"))
    assert [str((s.attributes or {})["error.type"]) for s in spans] == expected
    (tool_status,) = status_document(store.snapshot())["tools"]
    assert sorted(tool_status["errors"]) == sorted(["evil_label_x__1__", "E" * 64, "other"])
    text = generate_latest(prometheus).decode()
    labels = re.findall(r'^laios_task_errors_total\{[^\n]*error_type="([^"\n]*)"', text, re.M)
    assert sorted(labels) == sorted(["evil_label_x__1__", "E" * 64, "other"])


def test_an_exception_class_with_an_odd_name_gives_a_bounded_error_type(
    road: Road, exporter: InMemorySpanExporter
) -> None:
    """An exception class whose name has a newline and 500 more characters gives a safe error
    type of at most 64 characters, on the result and the span. From a worker process such an
    exception cannot come back (pickle finds a class by its name): there the task fails as
    not_picklable, saying why."""
    result = road.run(road.task("odd_raise"))
    error_type = result.metadata["error_type"]
    assert SAFE_ERROR_TYPE.fullmatch(error_type)
    if road.in_process:
        assert error_type == "not_picklable"
        assert "cannot be sent back" in (result.error or "")
    else:
        assert error_type == ("Odd_Name_" + "x" * 500)[:64]
    span = task_span(exporter, road, "odd_raise")
    assert (span.attributes or {})["error.type"] == error_type


# -- records are bounded in bytes -------------------------------------------------------------


def test_blobs_in_checkpoints_and_progress_are_kept_as_small_summaries(road: Road) -> None:
    """A 100 kB bytearray in a checkpoint and in progress details is kept as a short summary
    in the task's record, wherever the tool ran (never the object, never its bytes)."""
    task = road.task("blobs")
    assert road.run(task).success
    summary = {"blob": "<bytearray 100000 bytes>"}
    metrics = road.executor.get_metrics(task.id)
    assert metrics is not None
    (point,) = [c for c in metrics.checkpoints if c["name"] == "blob"]
    assert point["data"] == summary
    (update,) = [u for u in ExecutionMonitor(road.store).get_progress_history(task.id) if u.message]
    assert update.details == summary
    assert data_size(update.details) <= MAX_DATA_BYTES


# -- long ids, raising callbacks --------------------------------------------------------------


def test_a_huge_task_id_and_tool_name_are_cut_on_spans_and_in_status(
    road: Road, lab: behaviour.Lab, exporter: InMemorySpanExporter
) -> None:
    """A 1 MB task id and a 5,000-character tool name cross to wherever the tool runs; the
    task span's attributes and /status (while it runs) hold at most 256 characters of each;
    the result keeps the whole id."""
    task = road.task(LONG_NAME, task_id="i" * 1_000_000)
    running = road.start(task)
    assert lab.gate.wait_entered(1, WAIT)
    assert road.wait_running(task)
    (entry,) = status_document(road.store.snapshot())["running"]
    lab.gate.release.set()
    result = running.result()
    assert result.success, result.error
    assert result.task_id == task.id
    assert len(entry["task_id"]) <= MAX_STATUS_TEXT
    assert entry["task_id"].endswith("…")
    assert len(entry["tool"]) <= MAX_STATUS_TEXT
    (span,) = [s for s in exporter.get_finished_spans() if s.name.startswith("execute_tool ")]
    assert len(span.name) <= MAX_STATUS_TEXT + len("execute_tool ")
    for key, value in (span.attributes or {}).items():
        assert not isinstance(value, str) or len(value) <= MAX_STATUS_TEXT, key


def test_a_raising_on_progress_callback_keeps_the_outcome_and_output(
    road: Road, exporter: InMemorySpanExporter, laios_records: list[logging.LogRecord]
) -> None:
    """A callback raising on 'started', 'progress' and 'completed' — wherever it runs — leaves
    the task's success and output; each exception is counted and is an event on the span, and
    the callback is logged once with its traceback."""

    def callback(event: str, data: Any) -> None:
        if event in ("started", "progress", "completed"):
            raise RuntimeError(f"callback broke on {event}")

    result, _ = bounded(lambda: road.run(road.task("progress"), on_progress=callback))
    assert result.success, result.error
    assert result.output == "done"
    assert "callback broke on started" in result.metadata["callback_error"]
    outcomes, errors, _ = counts(road.store, road.tool("progress"))
    assert (outcomes, errors) == ({"success": 1}, {"callback_error": 3})
    span = task_span(exporter, road, "progress")
    assert [e.name for e in span.events].count("laios.callback_error") == 3
    errors_logged = [r for r in laios_records if r.levelno == logging.ERROR]
    assert len(errors_logged) == 1
    assert "callback broke on started" in errors_logged[0].getMessage()
