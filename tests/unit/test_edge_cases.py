"""Regression tests: cancellation races, lost outcomes, retained state, exposition and the CLI.

Each test pins down one behaviour at an edge that ordinary runs rarely reach: a cancellation
landing at an awkward moment, a worker thread the system refuses to start, a callback raising a
``BaseException``, an abandoned ``await``, a negative custom metric, a task timing out in the
queue, a malformed ``--url`` and an ``Accept-Encoding`` that refuses gzip.
"""

from __future__ import annotations

import asyncio
import gc
import gzip
import signal
import threading
import weakref
from collections.abc import Callable
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from laios import cli
from laios.core.types import Context, TaskStatus
from laios.execution import retry
from laios.execution.executor import Executor
from laios.execution.monitor import PerformanceMonitor
from laios.execution.prometheus import ensure_collector, render_metrics
from laios.execution.runners import Handle, Refusal, RunEvents, ThreadRunner, ToolCall
from laios.execution.server import make_wsgi_app
from laios.execution.store import MetricStore
from laios.tools.base import BaseTool, create_simple_tool
from laios.tools.registry import ToolRegistry

# -- helpers -----------------------------------------------------------------------------------


def _tool(store: MetricStore, tool: str) -> Any:
    """The snapshot of one tool's aggregates (fails when the store never saw the tool)."""
    matches = [t for t in store.snapshot().tools if t.tool == tool]
    assert len(matches) == 1, f"no aggregates for tool {tool!r}"
    return matches[0]


def _outcomes(store: MetricStore, tool: str) -> dict[str, int]:
    """How many tasks of ``tool`` the store counted per outcome (outcomes never seen left out)."""
    for snapshot in store.snapshot().tools:
        if snapshot.tool == tool:
            return {name: h.count for name, h in snapshot.outcomes.items() if h.count}
    return {}


def _assert_recorded_once(store: MetricStore, tool: str) -> None:
    """The task of ``tool`` is no longer running and was counted under exactly one outcome."""
    assert _tool(store, tool).in_flight == 0
    assert store.snapshot().running == []
    assert sum(_outcomes(store, tool).values()) == 1


class CancelWhileSubmitting(MetricStore):
    """A store that runs ``cancel_task(task_id)`` on another thread just before the record of
    the first submission with that id becomes visible, and waits for it."""

    def __init__(self, task_id: str) -> None:
        super().__init__()
        self.task_id = task_id
        self.executor: Executor | None = None
        self.cancel_returned: list[bool] = []

    def submit_record(self, rec: Any, running: bool) -> Any:
        if rec.task_id == self.task_id and not self.cancel_returned:
            executor = self.executor
            assert executor is not None
            canceller = threading.Thread(
                target=lambda: self.cancel_returned.append(executor.cancel_task(self.task_id))
            )
            canceller.start()
            canceller.join(5)
            assert self.cancel_returned, "cancel_task did not return"
        return super().submit_record(rec, running)


class PausingThreadRunner(ThreadRunner):
    """A thread runner that calls ``before_submit(call)`` on the caller's thread just before it
    takes each call (the job is recorded and visible to ``cancel_task`` by then)."""

    def __init__(self, before_submit: Callable[[ToolCall], None]) -> None:
        super().__init__(4, 4)
        self.before_submit = before_submit

    def submit(self, call: ToolCall, events: RunEvents) -> Handle | Refusal:
        self.before_submit(call)
        return super().submit(call, events)


# -- cancellation racing a task's start ----------------------------------------------------------


@pytest.mark.parametrize("path", ["plain", "with_callback"])
def test_cancel_right_after_preparation_of_a_timed_task_returns_cancelled(
    make_executor: Any, make_task: Any, context: Context, path: str
) -> None:
    """A timed task cancelled between its preparation and its hand-off ends 'cancelled'.

    The runner pauses the caller just before the hand-over (the job is recorded and visible
    to cancel_task) and cancels from another thread; with and without an ``on_progress``
    callback.
    """
    store = MetricStore()
    cancelled: list[bool] = []

    def cancel_from_elsewhere(call: ToolCall) -> None:
        canceller = threading.Thread(
            target=lambda: cancelled.append(executor.cancel_task(call.task_id))
        )
        canceller.start()
        canceller.join(5)

    executor = make_executor(store=store, runner=PausingThreadRunner(cancel_from_elsewhere))
    task = make_task("echo", text="hi")
    events: list[str] = []
    if path == "plain":
        result = executor.execute_task(task, context, timeout=5)
    else:
        result = executor.execute_task(
            task, context, timeout=5, on_progress=lambda event, data: events.append(event)
        )

    assert cancelled == [True]
    assert result.metadata["outcome"] == "cancelled"
    assert result.metadata["error_type"] == "cancelled"
    assert _outcomes(store, "echo") == {"cancelled": 1}
    assert events == ([] if path == "plain" else ["cancelled"])


def test_cancel_during_submission_cancels_that_run_not_the_next(
    make_executor: Any, make_task: Any, context: Context
) -> None:
    """cancel_task racing a submission (another cancel pending) cancels that run, not the next."""
    store = CancelWhileSubmitting("job-7")
    executor = make_executor(store=store)
    store.executor = executor
    # An unrelated cancellation is already pending when the task is submitted.
    assert executor.cancel_task("some-other-task") is True

    first = executor.execute_task(make_task("echo", task_id="job-7", text="a"), context)
    second = executor.execute_task(make_task("echo", task_id="job-7", text="b"), context)

    assert store.cancel_returned == [True]
    assert first.metadata["outcome"] == "cancelled"
    assert second.success, second.error
    assert second.output == "b"
    assert _outcomes(store, "echo") == {"cancelled": 1, "success": 1}


def test_cancel_during_submission_with_nothing_pending_cancels_that_run(
    make_executor: Any, make_task: Any, context: Context
) -> None:
    """cancel_task racing a submission (nothing else pending) cancels that run, not the next."""
    store = CancelWhileSubmitting("job-8")
    executor = make_executor(store=store)
    store.executor = executor

    first = executor.execute_task(make_task("echo", task_id="job-8", text="a"), context)
    second = executor.execute_task(make_task("echo", task_id="job-8", text="b"), context)

    assert store.cancel_returned == [True]
    assert first.metadata["outcome"] == "cancelled"
    assert second.success, second.error


# -- a worker thread the system refuses to start -----------------------------------------------


def test_worker_thread_that_cannot_start_rejects_tasks_and_pool_recovers(
    make_executor: Any, make_task: Any, context: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When no worker thread can start, pooled tasks are rejected 'no_thread'; later ones run."""
    store = MetricStore()
    executor = make_executor(store=store)
    real_start = threading.Thread.start

    def refusing_start(self: threading.Thread) -> None:
        if self.name.startswith("laios-worker"):
            raise RuntimeError("can't start new thread")
        real_start(self)

    monkeypatch.setattr(threading.Thread, "start", refusing_start)

    timed = executor.execute_task(make_task("echo", text="a"), context, timeout=1)
    batch = asyncio.run(
        executor.execute_parallel(
            [make_task("echo", text="b"), make_task("echo", text="c")], context
        )
    )

    for result in (timed, *batch):
        assert not result.success
        assert result.metadata["outcome"] == "rejected"
        assert result.metadata["error_type"] == "no_thread"
    snapshot = store.snapshot()
    assert snapshot.queue_depth == 0
    assert snapshot.running == []
    assert _outcomes(store, "echo") == {"rejected": 3}

    monkeypatch.undo()
    after = executor.execute_task(make_task("echo", text="d"), context, timeout=5)
    assert after.success, after.error
    assert after.output == "d"
    assert _outcomes(store, "echo") == {"rejected": 3, "success": 1}


def test_loop_thread_that_cannot_start_rejects_async_tasks_and_recovers(
    make_executor: Any, make_task: Any, context: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An async tool run with no running loop needs the executor's loop thread: when the
    system refuses it, the task is rejected 'no_thread' (the tool never ran: not an internal
    error), the loop made for it is closed, and once threads can be had the next task runs."""
    store = MetricStore()
    executor = make_executor(store=store)
    real_start = threading.Thread.start
    made: list[asyncio.AbstractEventLoop] = []
    real_new_loop = asyncio.new_event_loop

    def refusing_start(self: threading.Thread) -> None:
        if self.name == "laios-loop":
            raise RuntimeError("can't start new thread")
        real_start(self)

    def new_loop() -> asyncio.AbstractEventLoop:
        made.append(real_new_loop())
        return made[-1]

    monkeypatch.setattr(threading.Thread, "start", refusing_start)
    monkeypatch.setattr(asyncio, "new_event_loop", new_loop)

    results = [
        executor.execute_task(make_task("async_echo", text="a"), context),
        executor.execute_task(make_task("async_echo", text="b"), context, timeout=5),
    ]
    for result in results:
        assert not result.success
        assert result.metadata["outcome"] == "rejected", result.error
        assert result.metadata["error_type"] == "no_thread"
        assert "thread" in (result.error or "")
    assert made, "no loop was made for the loop thread"
    assert all(loop.is_closed() for loop in made), "a loop made for a thread that never ran"
    assert _outcomes(store, "async_echo") == {"rejected": 2}

    monkeypatch.undo()
    after = executor.execute_task(make_task("async_echo", text="c"), context, timeout=5)
    assert after.success, after.error
    assert after.output == "c"


# -- BaseException from on_progress ------------------------------------------------------------


def _exit_on_completed(event: str, data: dict[str, Any]) -> None:
    if event == "completed":
        raise SystemExit(1)


def test_system_exit_from_progress_callback_keeps_the_success(
    make_executor: Any, make_task: Any, context: Context
) -> None:
    """SystemExit raised by on_progress does not escape or change the outcome; recorded once."""
    store = MetricStore()
    executor = make_executor(store=store)

    result = executor.execute_task(
        make_task("echo", text="x"), context, on_progress=_exit_on_completed
    )

    assert result.success
    assert "SystemExit" in result.metadata["callback_error"]
    _assert_recorded_once(store, "echo")


def test_system_exit_from_progress_callback_does_not_hang_execute_async(
    make_executor: Any, make_task: Any, context: Context
) -> None:
    """execute_async returns the success when on_progress raises SystemExit."""
    store = MetricStore()
    executor = make_executor(store=store)

    async def run() -> Any:
        coroutine = executor.execute_async(
            make_task("echo", text="x"), context, on_progress=_exit_on_completed
        )
        return await asyncio.wait_for(coroutine, 5)

    result = asyncio.run(run())

    assert result.success
    assert "SystemExit" in result.metadata["callback_error"]
    _assert_recorded_once(store, "echo")


def test_keyboard_interrupt_from_inline_callback_propagates_after_recording(
    make_executor: Any, make_task: Any, context: Context
) -> None:
    """Ctrl-C raised by on_progress on the caller's thread goes on; the task is still recorded."""
    store = MetricStore()
    executor = make_executor(store=store)

    def interrupt_on_completed(event: str, data: dict[str, Any]) -> None:
        if event == "completed":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        executor.execute_task(
            make_task("echo", text="x"), context, on_progress=interrupt_on_completed
        )

    _assert_recorded_once(store, "echo")


@pytest.mark.parametrize("timeout", [None, 30], ids=["on the caller's thread", "on a worker"])
def test_ctrl_c_during_a_blocking_call_ends_the_task_cancelled_on_every_road(
    make_executor: Any, make_task: Any, context: Context, timeout: float | None
) -> None:
    """Ctrl-C while execute_task waits for its tool goes on to the caller and ends the task
    cancelled, whether the tool runs on the caller's own thread (the interrupt is raised inside
    the tool) or on a worker thread: an operator's Ctrl-C is not a failure of the tool."""
    store = MetricStore()
    registry = ToolRegistry()
    executor = make_executor(tool_registry=registry, store=store)
    caller = threading.get_ident()
    release = threading.Event()

    def work() -> None:
        if timeout is None:  # on the caller's thread: Ctrl-C lands in the tool
            raise KeyboardInterrupt
        signal.pthread_kill(caller, signal.SIGINT)  # Ctrl-C lands where the caller waits
        release.wait(30)

    registry.register_tool(create_simple_tool("work", "Works.", work))
    task = make_task("work")
    try:
        with pytest.raises(KeyboardInterrupt):
            executor.execute_task(task, context, timeout=timeout)
    finally:
        release.set()
    assert _outcomes(store, "work") == {"cancelled": 1}
    assert task.status is TaskStatus.CANCELLED
    assert "the caller was interrupted" in (task.error or "")


# -- what finished records keep ----------------------------------------------------------------


class CallbackFailure(ValueError):
    """What a test's ``on_progress`` raises (a class of its own, so a weakref can watch it)."""


def test_finished_record_drops_callback_error_and_task(
    make_executor: Any, make_task: Any, context: Context
) -> None:
    """A record of a task whose callback raised keeps no callback error; the Task is freed."""
    executor = make_executor()
    raised: list[weakref.ref[CallbackFailure]] = []

    def raise_on_progress(event: str, data: dict[str, Any]) -> None:
        if event == "progress":
            error = CallbackFailure("bad callback")
            raised.append(weakref.ref(error))
            raise error

    task = make_task("progress", api_key="sk-not-a-real-key")
    task_id = task.id
    result = executor.execute_task(task, context, on_progress=raise_on_progress)
    assert result.success
    assert "CallbackFailure" in result.metadata["callback_error"]

    metrics = executor.get_metrics(task_id)  # the record stays retained from here on
    assert metrics is not None
    assert metrics.outcome == "success"
    ref = weakref.ref(task)
    del task, result
    gc.collect()
    assert len(raised) == 1
    assert raised[0]() is None  # nothing, the retained record included, keeps the exception
    assert ref() is None


class BulkyOutput:
    """A large tool output that a weakref can watch."""

    def __init__(self) -> None:
        self.payload = bytes(1_000_000)


class BulkyTool(BaseTool):
    """Returns a new ``BulkyOutput``, keeping only a weak reference to it (in ``outputs``)."""

    name = "bulky"
    description = "Returns a new 1 MB object."

    def __init__(self) -> None:
        super().__init__()
        self.outputs: list[weakref.ref[BulkyOutput]] = []

    def _execute(self, **kwargs: Any) -> Any:
        output = BulkyOutput()
        self.outputs.append(weakref.ref(output))
        return output


def test_cancelled_await_of_execute_parallel_leaves_no_results_on_records(
    make_executor: Any, make_task: Any, context: Context, gate: Any, registry: Any
) -> None:
    """After the await of execute_parallel is cancelled, no retained record keeps a result."""
    bulky = registry.register_tool(BulkyTool)
    executor = make_executor()
    batch = [make_task("bulky"), make_task("blocked")]
    ids = {task.id for task in batch}

    async def run(tasks: list[Any]) -> Any:
        return await asyncio.wait_for(executor.execute_parallel(tasks, context), 0.3)

    with pytest.raises(asyncio.TimeoutError):
        asyncio.run(run(batch))

    metrics = executor.get_all_metrics()  # both records stay retained from here on
    assert {m.task_id for m in metrics} == ids
    del batch  # a task itself holds its result
    gc.collect()
    assert len(bulky.outputs) == 1
    assert bulky.outputs[0]() is None


# -- exported aggregates -----------------------------------------------------------------------


def test_negative_custom_metric_is_kept_but_not_exported() -> None:
    """A negative custom metric stays on the task but stays out of the OpenMetrics totals."""
    store = MetricStore()
    registry = CollectorRegistry()
    ensure_collector(store, registry)
    monitor = PerformanceMonitor(store)
    monitor.record_metric("task-1", "drift", -5.0, "seconds")
    monitor.record_metric("task-1", "drift", 2.0, "seconds")

    assert [s["value"] for s in monitor.get_metrics("task-1")["drift"]] == [-5.0, 2.0]

    text = render_metrics(registry, openmetrics=True).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    samples = {
        s.name: s.value
        for s in families["laios_custom_metric"].samples
        if s.labels.get("name") == "drift"
    }
    assert samples["laios_custom_metric_count"] == 1
    assert samples["laios_custom_metric_sum"] == 2.0


def test_task_timing_out_in_queue_has_its_wait_observed(
    make_executor: Any, make_task: Any, context: Context, gate: Any, in_thread: Any
) -> None:
    """A task that times out while queued has its wait observed in the queue-wait histogram."""
    store = MetricStore()
    executor = make_executor(store=store, max_workers=1)
    blocker, _ = in_thread(executor.execute_task, make_task("blocked"), context, timeout=30)
    assert gate.wait_entered(1)

    queued = executor.execute_task(make_task("blocked"), context, timeout=0.3)
    assert queued.metadata["outcome"] == "timeout"

    queue_wait = _tool(store, "blocked").queue_wait
    assert queue_wait.count == 2
    assert queue_wait.sum >= 0.25
    gate.release.set()
    blocker.join(5)


# -- cancelling a retry loop -------------------------------------------------------------------


def test_cancel_between_retry_attempts_stops_the_retries(
    make_executor: Any,
    make_task: Any,
    context: Context,
    calls: list[Any],
    in_thread: Any,
    wait_until: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """cancel_task during a retry wait returns True and no further attempt runs."""
    monkeypatch.delenv("LAIOS_RETRY_SLEEP", raising=False)
    waiting = threading.Event()
    real_sleep = retry.sleep

    def sleep_seen(seconds: float, stop: Any = None) -> None:
        waiting.set()
        real_sleep(seconds, stop)

    monkeypatch.setattr(retry, "sleep", sleep_seen)
    store = MetricStore()
    executor = make_executor(store=store)
    task = make_task("boom")
    thread, box = in_thread(
        executor.execute_with_retry, task, context, max_retries=5, retry_delay=30.0
    )
    assert wait_until(lambda: _outcomes(store, "boom") == {"error": 1})
    assert waiting.wait(5)  # the loop is in its 30 s wait before the second attempt

    assert executor.cancel_task(task.id) is True
    thread.join(10)

    assert not thread.is_alive(), "the retry loop waited on after cancel_task"
    result = box[0]
    assert not result.success
    assert result.metadata["retry_cancelled"] is True
    assert result.metadata["retries"] == 0
    assert [name for name, _ in calls] == ["boom"]
    assert _outcomes(store, "boom") == {"error": 1}


# -- command line ------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["localhost:abc", "localhost:99999"])
def test_status_with_malformed_url_reports_instead_of_crashing(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`laios status --url` with a non-numeric or out-of-range port exits 2 with a message."""
    assert cli.main(["status", "--url", url]) == 2
    captured = capsys.readouterr()
    assert "laios status:" in captured.err


# -- /metrics content coding -------------------------------------------------------------------


def _get_metrics(accept_encoding: str) -> tuple[dict[str, str], bytes]:
    app = make_wsgi_app(MetricStore(), CollectorRegistry())
    environ: dict[str, Any] = {
        "PATH_INFO": "/metrics",
        "REQUEST_METHOD": "GET",
        "HTTP_ACCEPT_ENCODING": accept_encoding,
    }
    setup_testing_defaults(environ)
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen["status"] = status
        seen["headers"] = headers
        return lambda data: None

    body = b"".join(app(environ, start_response))
    assert seen["status"].startswith("200")
    return dict(seen["headers"]), body


def test_metrics_honours_gzip_refused_by_q_zero() -> None:
    """/metrics sends identity for 'gzip;q=0, identity', with Vary: Accept, Accept-Encoding."""
    headers, body = _get_metrics("gzip;q=0, identity")
    assert "Content-Encoding" not in headers
    assert headers["Vary"] == "Accept, Accept-Encoding"
    assert b"laios_" in body


def test_metrics_gzips_when_gzip_is_accepted() -> None:
    """/metrics gzips for 'gzip', with Vary: Accept, Accept-Encoding."""
    headers, body = _get_metrics("gzip")
    assert headers["Content-Encoding"] == "gzip"
    assert headers["Vary"] == "Accept, Accept-Encoding"
    assert b"laios_" in gzip.decompress(body)


@pytest.mark.parametrize(
    ("accept_encoding", "gzipped"),
    [
        ("*", False),
        ("x-gzip", True),
        ("GZIP;Q=0.5", True),
        ("gzip;q=0, *", False),
        ("gzip;q=1.000", True),
        ("gzip;q=inf", False),
        ("gzip;q=2", False),
        ("gzip;q=1.5", False),
        ("gzip;q=nan", False),
        ("gzip;q=-1", False),
        ("gzip;q=abc", False),
    ],
)
def test_metrics_gzips_only_when_gzip_is_named(accept_encoding: str, gzipped: bool) -> None:
    """gzip is sent when Accept-Encoding names it (or x-gzip) with q above 0; ``*`` alone
    gets the body uncompressed, as the reference says. A q that is no q-value (a number from
    0 to 1: not ``inf``, ``2`` or ``abc``) makes gzip not acceptable, as a bad q in ``Accept``
    makes its range."""
    headers, body = _get_metrics(accept_encoding)
    assert (headers.get("Content-Encoding") == "gzip") is gzipped
    assert b"laios_" in (gzip.decompress(body) if gzipped else body)
