"""The Dask runner on a real ``LocalCluster`` of worker processes.

One cluster serves the module (starting one takes seconds); each test builds its own
``DaskRunner`` on that cluster's client. Tools come from ``process_tools``, which the Dask
workers import by name, and talk to the tests through files.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import process_tools
import pytest
from dask_cleanup import forget_clients_of_closed_loops
from process_tools import KEY, Caller, alive

distributed = pytest.importorskip("distributed")

from opentelemetry import baggage  # noqa: E402
from opentelemetry import context as otel_context  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)

from laios._compat.dask import cancel_reason  # noqa: E402
from laios.core.types import Context, Task, TaskResult, TaskStatus  # noqa: E402
from laios.execution.executor import Executor  # noqa: E402
from laios.execution.runners import DaskRunner, Runner  # noqa: E402
from laios.execution.store import MetricStore  # noqa: E402
from laios.tools.base import create_simple_tool  # noqa: E402
from laios.tools.registry import ToolRegistry  # noqa: E402

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="checked on Linux")

WAIT = 30.0


def wait_for(predicate: Callable[[], Any], timeout: float = WAIT) -> Any:
    return process_tools.wait_until(predicate, timeout)


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    import dask

    # Tool processes are children of the Dask workers: no daemonic workers, also when the
    # nanny restarts one (it reads the setting then), so it stays set for the module.
    with dask.config.set({"distributed.worker.daemon": False}):
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=2, processes=True, dashboard_address=":0"
        )
        client = distributed.Client(cluster)
        yield client
        client.close()
        cluster.close()
    forget_clients_of_closed_loops()


@pytest.fixture
def tools() -> ToolRegistry:
    registry = ToolRegistry()
    for cls in process_tools.TOOLS:
        registry.register_tool(cls())
    return registry


@pytest.fixture
def make(client: Any, tools: ToolRegistry) -> Iterator[Callable[..., Executor]]:
    built: list[Executor] = []

    def build(**kwargs: Any) -> Executor:
        runner = DaskRunner(client=client)
        kwargs.setdefault("store", MetricStore())
        kwargs.setdefault("register_prometheus", False)
        executor = Executor(tools, runner=runner, **kwargs)
        built.append(executor)
        return executor

    yield build
    for executor in built:
        executor.shutdown(wait=False)
    built.clear()
    forget_clients_of_closed_loops()


def task(tool: str, **parameters: Any) -> Task:
    return Task(plan_id="p", description=tool, tool_name=tool, parameters=parameters)


CONTEXT = Context(session_id="session-1", user_id="user-1")


def warm(executor: Executor, client: Any) -> None:
    """Have every worker of the cluster serve a call first. A worker's first call also starts
    the processes its tools run in, which takes a second or more: longer than the short
    timeouts of the tests that need their tool to have started before its timeout (and a
    test may be the first on the module's cluster, or on a worker the nanny restarted)."""
    workers = set(client.nthreads())
    served: set[str] = set()

    def all_served() -> bool:
        calls = [task("pid") for _ in range(4 * len(workers))]
        results = asyncio.run(executor.execute_parallel(calls, CONTEXT, timeout=WAIT))
        served.update(r.metadata["worker"].split(" ", 1)[0] for r in results if r.success)
        return workers <= served

    assert wait_for(all_served), f"no call ran on {sorted(workers - served)}"


def test_the_dask_runner_is_a_runner(client: Any) -> None:
    runner = DaskRunner(client=client)
    assert isinstance(runner, Runner)
    assert runner.can_stop
    assert runner.stats.workers == 4  # 2 workers x 2 threads
    runner.shutdown()


def test_a_tool_runs_on_a_dask_worker_and_says_where(make: Callable[..., Executor]) -> None:
    executor = make()
    result = executor.execute_task(task("pid"), CONTEXT, timeout=WAIT)
    assert result.success, result.error
    assert result.output != os.getpid()
    worker = result.metadata["worker"]
    assert worker.startswith("tcp://127.0.0.1:")
    assert worker.endswith(f"pid {result.output}")


def test_two_identical_calls_run_twice(make: Callable[..., Executor], tmp_path: Any) -> None:
    executor = make()
    first = executor.execute_task(task("progress", steps=3), CONTEXT, timeout=WAIT)
    second = executor.execute_task(task("progress", steps=3), CONTEXT, timeout=WAIT)
    assert first.success
    assert second.success
    assert first.task_id != second.task_id


def test_progress_and_checkpoints_arrive_in_order(make: Callable[..., Executor]) -> None:
    process_tools.check_progress_in_order(make(), task, CONTEXT, 50, WAIT)


def test_a_hung_tool_is_killed_on_its_worker(
    make: Callable[..., Executor], client: Any, tmp_path: Any
) -> None:
    executor = make()
    warm(executor, client)
    box = str(tmp_path)
    result = executor.execute_task(task("hang", box=box), CONTEXT, timeout=2.0)
    assert result.metadata["outcome"] == "timeout"
    assert result.metadata["worker_killed"] is True
    assert result.metadata.get("worker") in client.nthreads(), result.metadata
    hung = process_tools.read_note(box, "hang")
    assert hung is not None, "the tool never started"
    assert wait_for(lambda: not alive(hung["pid"])), "the tool's process is still alive"
    assert wait_for(lambda: not alive(hung["grandchild"])), "the tool's child is still alive"
    assert executor.abandoned_threads == 0
    # The Dask workers serve on.
    assert executor.execute_task(task("pid"), CONTEXT, timeout=WAIT).success


def test_cancelling_a_running_tool_kills_it_and_names_its_worker(
    make: Callable[..., Executor], client: Any, tmp_path: Any
) -> None:
    """A call killed by ``cancel_task`` names the Dask worker that ran it, in its metadata and
    span, as a completed call does (the address alone: the caller is not told which of that
    worker's tool processes had the call)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    executor = make(tracer_provider=provider)
    box = str(tmp_path)
    hang = task("hang", box=box)
    caller = Caller(executor, hang, CONTEXT)
    hung = wait_for(lambda: process_tools.read_note(box, "hang"))
    assert hung is not None, "the tool never started"
    # (Running on the caller's side too: its worker's "started" report has arrived.)
    assert wait_for(lambda: executor.get_task_status(hang.id) == TaskStatus.RUNNING)
    # (The scheduler's word for where the call's Dask task runs.)
    ran_on = [
        address
        for address, keys in client.processing().items()
        if any(str(key).startswith("laios-hang-") for key in keys)
    ]
    assert executor.cancel_task(hang.id)
    result = caller.returned(WAIT, "the cancelled call did not return")
    assert result.metadata["outcome"] == "cancelled"
    assert result.metadata["worker_killed"] is True
    assert [result.metadata.get("worker")] == ran_on, result.metadata
    (span,) = [s for s in exporter.get_finished_spans() if s.name == "execute_tool hang"]
    assert span.attributes is not None
    assert span.attributes["laios.worker"] == result.metadata["worker"]
    assert span.attributes["laios.worker.killed"] is True
    provider.shutdown()
    assert wait_for(lambda: not alive(hung["pid"]))


def test_a_call_given_up_before_its_worker_began_it_names_no_worker(
    make: Callable[..., Executor], tmp_path: Any
) -> None:
    """A call cancelled before a Dask worker reported it began was killed nowhere: its result
    names no worker."""
    executor = make()
    runner = executor.runner
    assert isinstance(runner, DaskRunner)
    submit = runner.submit
    box = str(tmp_path)
    hang = task("hang", box=box)

    def cancelled_as_sent(call: Any, events: Any) -> Any:
        handle = submit(call, events)
        assert executor.cancel_task(hang.id)  # (its worker has not even received it yet)
        return handle

    runner.submit = cancelled_as_sent  # type: ignore[method-assign]
    result = executor.execute_task(hang, CONTEXT, timeout=WAIT)
    assert result.metadata["outcome"] == "cancelled"
    assert "worker_killed" not in result.metadata, result.metadata
    assert "worker" not in result.metadata, result.metadata


def test_a_cancel_before_the_runner_handed_back_its_call_says_its_tool_was_killed(
    make: Callable[..., Executor], tmp_path: Any
) -> None:
    """``cancel_task`` from ``on_progress``'s ``"started"`` event, handled before the runner's
    ``submit`` has handed back its call: the tool is killed where it runs, and the result says
    so (``worker_killed``), as it does for a cancel once the call is handed back."""
    executor = make()
    runner = executor.runner
    assert isinstance(runner, DaskRunner)
    submit = runner.submit
    cancelled = threading.Event()

    def handed_back_late(call: Any, events: Any) -> Any:
        handle = submit(call, events)
        cancelled.wait(WAIT)  # (the "started" event arrives meanwhile, from the cluster)
        return handle

    runner.submit = handed_back_late  # type: ignore[method-assign]
    box = str(tmp_path)
    hang = task("hang", box=box)

    def on_progress(event: str, data: Any) -> None:
        if event == "started":
            assert executor.cancel_task(hang.id)
            cancelled.set()

    result = executor.execute_task(hang, CONTEXT, timeout=WAIT, on_progress=on_progress)
    assert cancelled.is_set(), "the call never started"
    assert result.metadata["outcome"] == "cancelled"
    assert "cancelled while running" in (result.error or "")
    assert result.metadata.get("worker_killed") is True, result.metadata
    hung = process_tools.read_note(box, "hang")
    if hung is not None:  # (killed before or after the tool wrote its note)
        assert wait_for(lambda: not alive(hung["pid"]))


def test_failures_come_back_with_their_class_and_message(make: Callable[..., Executor]) -> None:
    executor = make()
    result = executor.execute_task(task("fails"), CONTEXT, timeout=WAIT)
    assert result.metadata["error_type"] == "ValueError"
    assert result.error == "bad input 7"


def test_a_failures_span_has_the_traceback_it_raised_with_on_the_worker(
    make: Callable[..., Executor],
) -> None:
    """The exception event's stack trace was the exception's last line alone: its frames and
    its cause stayed on the worker."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    executor = make(tracer_provider=provider)
    result = executor.execute_task(task("fails_deep", api_key=KEY), CONTEXT, timeout=WAIT)
    assert result.metadata["error_type"] == "LookupError"
    (span,) = [s for s in exporter.get_finished_spans() if s.name == "execute_tool fails_deep"]
    (event,) = span.events
    assert event.attributes is not None
    stack = str(event.attributes["exception.stacktrace"])
    assert "in _check_quota" in stack
    assert "ValueError: invalid literal for int()" in stack
    assert stack.rstrip().endswith("LookupError: no quota for [REDACTED]")
    assert KEY not in stack


def test_suppressed_instrumentation_reaches_the_tool(make: Callable[..., Executor]) -> None:
    """A call made under suppress_instrumentation() has it suppressed around its tool too:
    it was not, and the tool's instrumented calls made spans."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    executor = make(tracer_provider=provider)
    token = otel_context.attach(otel_context.set_value("suppress_instrumentation", True))
    try:
        result = executor.execute_task(task("suppression_seen"), CONTEXT, timeout=WAIT)
    finally:
        otel_context.detach(token)
    assert result.success, result.error
    assert result.output["plain"] is True
    assert exporter.get_finished_spans() == ()


def test_on_progress_sees_the_callers_context_and_the_task_span(
    make: Callable[..., Executor],
) -> None:
    """The worker's reports reach ``on_progress`` on a thread of the runner's: it saw neither
    the caller's context variables nor the task span there (a span it made started a trace
    of its own)."""
    import contextvars

    from opentelemetry import trace

    request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("rid", default=None)
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    executor = make(tracer_provider=provider)
    seen: list[tuple[str, str | None, int]] = []

    def on_progress(event: str, data: Any) -> None:
        span_id = trace.get_current_span().get_span_context().span_id
        seen.append((event, request_id.get(), span_id))

    token = request_id.set("req-42")
    try:
        result = executor.execute_task(
            task("progress", steps=1), CONTEXT, timeout=WAIT, on_progress=on_progress
        )
    finally:
        request_id.reset(token)
    assert result.success, result.error
    (span,) = [s for s in exporter.get_finished_spans() if s.name == "execute_tool progress"]
    own = span.context.span_id
    assert seen == [
        ("started", "req-42", own),
        ("progress", "req-42", own),
        ("completed", "req-42", own),
    ]


def test_the_callers_span_reaches_the_tool_when_the_executor_makes_no_spans(
    make: Callable[..., Executor],
) -> None:
    """With the ``NoOpTracerProvider`` the tool on its worker saw no span at all (on a worker
    thread it sees the caller's)."""
    from opentelemetry import trace

    provider = TracerProvider(shutdown_on_exit=False)
    executor = make(tracer_provider=trace.NoOpTracerProvider())
    with provider.get_tracer("tests.caller").start_as_current_span("request") as caller:
        result = executor.execute_task(task("trace_seen"), CONTEXT, timeout=WAIT)
    assert result.success, result.error
    span_context = caller.get_span_context()
    assert result.output == {
        "trace_id": f"{span_context.trace_id:032x}",
        "span_id": f"{span_context.span_id:016x}",
    }
    provider.shutdown()


def test_a_batch_spreads_over_the_cluster(make: Callable[..., Executor]) -> None:
    executor = make()

    async def batch() -> list[TaskResult]:
        tasks = [task("sleep_async", seconds=0.2) for _ in range(8)]
        return await executor.execute_parallel(tasks, CONTEXT, timeout=WAIT)

    results = asyncio.run(batch())
    assert all(r.success for r in results), [r.error for r in results]
    workers = {r.metadata["worker"].split(" ", 1)[0] for r in results}
    assert len(workers) == 2  # both Dask workers took part
    snapshot = executor.store.snapshot()
    assert sum(t.total for t in snapshot.tools) == 8


def test_the_callers_trace_reaches_the_tool(make: Callable[..., Executor]) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    executor = make(tracer_provider=provider)
    result = executor.execute_task(task("trace_seen"), CONTEXT, timeout=WAIT)
    assert result.success, result.error
    (span,) = [s for s in exporter.get_finished_spans() if s.name == "execute_tool trace_seen"]
    context = span.get_span_context()
    assert context is not None
    assert result.output == {
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
    }
    assert span.attributes is not None
    assert span.attributes["laios.worker"] == result.metadata["worker"]
    provider.shutdown()


def test_the_callers_baggage_reaches_the_tool(make: Callable[..., Executor]) -> None:
    executor = make()
    token = otel_context.attach(baggage.set_baggage("user.id", "user-7"))
    try:
        result = executor.execute_task(task("baggage_seen"), CONTEXT, timeout=WAIT)
    finally:
        otel_context.detach(token)
    assert result.success, result.error
    assert result.output == {"user.id": "user-7"}


def test_an_unreachable_scheduler_is_a_clear_error_at_construction() -> None:
    started = time.monotonic()
    with pytest.raises(ConnectionError, match="cannot reach the Dask scheduler"):
        DaskRunner("tcp://127.0.0.1:9", connect_timeout=2)
    assert time.monotonic() - started < 15


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("n_workers", 1025),
        ("n_workers", 10**19),
        ("threads_per_worker", 1025),
        ("threads_per_worker", 10**19),
    ],
)
def test_a_local_cluster_past_the_bound_is_refused_before_it_starts(
    monkeypatch: pytest.MonkeyPatch, name: str, value: int
) -> None:
    """``n_workers`` or ``threads_per_worker`` past 1,024 (processes each: Dask workers, or
    the tool processes of each) is refused at the call, naming the option and the range;
    no local cluster is started (``n_workers=10**19`` tried to start that many workers)."""
    started: list[dict[str, Any]] = []

    def no_cluster(**options: Any) -> Any:
        started.append(options)
        raise RuntimeError("a local cluster was started")

    monkeypatch.setattr(distributed, "LocalCluster", no_cluster)
    with pytest.raises(ValueError, match=rf"^{name} must be a whole number from 1 to 1024"):
        DaskRunner(**{name: value})
    assert started == []


def test_a_worker_with_more_threads_than_the_bound_runs_its_calls(tools: ToolRegistry) -> None:
    """On a cluster of one's own whose worker has more threads than a process runner may
    have worker processes (1,024), the worker's tool processes are capped at that bound
    instead of its first call failing."""
    import dask

    with dask.config.set({"distributed.worker.daemon": False}):
        cluster = distributed.LocalCluster(
            n_workers=1, threads_per_worker=1500, processes=True, dashboard_address=":0"
        )
    client = distributed.Client(cluster)
    try:
        _serves_a_call(tools, DaskRunner(client=client))
    finally:
        client.close()
        cluster.close()


def test_a_worker_killed_mid_task_leaves_exactly_one_outcome(
    make: Callable[..., Executor], client: Any, tmp_path: Any
) -> None:
    executor = make()
    box = str(tmp_path)
    hang = task("hang", box=box)
    caller = Caller(executor, hang, CONTEXT, timeout=8)
    hung = wait_for(lambda: process_tools.read_note(box, "hang"))
    assert hung is not None, "the tool never started"

    # Kill the Dask worker process that runs the call.
    def running_on() -> list[str]:
        processing = client.processing()
        return [a for a, keys in processing.items() if any("laios-hang" in k for k in keys)]

    running = wait_for(running_on)
    assert running, "the call is not running on any Dask worker"
    (address,) = running
    dask_worker = client.run(os.getpid, workers=[address])[address]
    os.kill(dask_worker, signal.SIGKILL)
    assert wait_for(lambda: not alive(hung["pid"])), "the tool outlived its Dask worker"
    result = caller.returned(40, "the caller got no outcome")
    outcome = result.metadata["outcome"]
    # Dask runs a lost task again elsewhere (the tool hangs there too, until the timeout):
    # either way there is exactly one outcome, and it is said.
    assert outcome in ("timeout", "error"), result
    if outcome == "error":
        assert result.metadata["error_type"] == "worker_lost"
    wait_for(lambda: len(client.nthreads()) == 2, 60)  # the nanny restarts the worker


def test_a_tool_the_workers_cannot_import_fails_its_call_and_spares_the_workers(
    make: Callable[..., Executor], client: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A module only this process can import (the workers started before it existed).
    (tmp_path / "local_only_tools.py").write_text(
        "from laios.tools.base import BaseTool\n"
        "class LocalOnly(BaseTool):\n"
        "    name = 'local_only'\n"
        "    description = 'Importable here only.'\n"
        "    def _execute(self, **kwargs):\n"
        "        return 'ran'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import local_only_tools  # type: ignore[import-not-found]

    executor = make()
    executor.tool_registry.register_tool(local_only_tools.LocalOnly)
    result = executor.execute_task(task("local_only"), CONTEXT, timeout=WAIT)
    assert not result.success
    assert result.metadata["error_type"] == "not_picklable"
    assert "importable on its workers" in (result.error or "")
    assert len(client.nthreads()) == 2  # no worker was lost over it
    assert executor.execute_task(task("pid"), CONTEXT, timeout=WAIT).success


def test_a_simple_tool_the_workers_cannot_import_is_told_where_its_function_goes(
    make: Callable[..., Executor], tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tool from ``create_simple_tool`` has no class of the user's to move: the error says
    where its function must be defined."""
    (tmp_path / "local_only_functions.py").write_text("def doubled(x):\n    return 2 * x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import local_only_functions  # type: ignore[import-not-found]

    executor = make()
    executor.tool_registry.register_tool(
        create_simple_tool("doubled", "Doubles.", local_only_functions.doubled)
    )
    result = executor.execute_task(task("doubled", x=1), CONTEXT, timeout=WAIT)
    assert result.metadata["error_type"] == "not_picklable", result
    error = result.error or ""
    assert "importable on its workers" in error
    assert "create_simple_tool" in error
    assert "function" in error.split("create_simple_tool", 1)[1]


def test_a_parameter_whose_loading_exits_fails_its_call_and_spares_the_workers(
    make: Callable[..., Executor], client: Any
) -> None:
    """A ``SystemExit`` raised while the worker loads the call (a ``__reduce__`` that calls
    ``sys.exit``) is the call's failure, not the end of the Dask worker that loads it (and of
    the next ones Dask gives the task to, losing the other calls they run)."""
    executor = make()
    warm(executor, client)
    workers = set(client.nthreads())
    result = executor.execute_task(
        task("pid", value=process_tools.ExitsWhenLoaded()), CONTEXT, timeout=WAIT
    )
    assert result.metadata["error_type"] == "not_picklable", result
    assert "could not load the call (SystemExit: 3)" in (result.error or "")
    assert set(client.nthreads()) == workers  # no worker was lost (nor restarted) over it
    assert executor.execute_task(task("pid"), CONTEXT, timeout=WAIT).success


def test_a_result_whose_loading_exits_fails_its_call_and_spares_the_client(
    make: Callable[..., Executor], client: Any
) -> None:
    """A result whose loading on the caller's side raises ``SystemExit`` is the call's
    failure; it does not escape into the Dask client's event loop, and the runner serves on."""
    executor = make()
    warm(executor, client)
    result = executor.execute_task(task("returns_exit_when_loaded"), CONTEXT, timeout=WAIT)
    assert result.metadata["outcome"] == "error", result
    assert "SystemExit" in (result.error or "")
    assert executor.execute_task(task("pid"), CONTEXT, timeout=WAIT).success


@pytest.mark.parametrize(
    "value", [lambda: None, process_tools.ExitsWhenPickled()], ids=["lambda", "system_exit"]
)
def test_parameters_that_cannot_be_pickled_are_refused_clearly(
    make: Callable[..., Executor], value: Any
) -> None:
    executor = make()
    result = executor.execute_task(task("pid", callback=value), CONTEXT, timeout=WAIT)
    assert result.metadata["outcome"] == "rejected"
    assert result.metadata["error_type"] == "not_picklable"
    assert "cannot be pickled" in (result.error or "")


@pytest.mark.parametrize(
    ("name", "value", "kind"),
    [
        ("handle", threading.Lock(), "lock"),
        ("handle", (n for n in range(3)), "generator"),
        ("tool", threading.Lock(), "lock"),
    ],
    ids=["lock", "generator", "named_tool"],
)
def test_a_parameter_that_cannot_be_pickled_is_named_in_the_refusal(
    make: Callable[..., Executor], name: str, value: Any, kind: str
) -> None:
    """Refused before anything is sent, naming the parameter and its type (a parameter
    called ``tool`` too), never a value (the other parameters' values may be secrets)."""
    executor = make()
    refused = Task(plan_id="p", description="pid", tool_name="pid", parameters={"api_key": KEY})
    refused.parameters[name] = value
    result = executor.execute_task(refused, CONTEXT, timeout=WAIT)
    assert result.metadata["outcome"] == "rejected"
    assert result.metadata["error_type"] == "not_picklable"
    error = result.error or ""
    assert f"its parameter '{name}' ({kind}) cannot be pickled" in error, error
    assert "api_key" not in error
    assert KEY not in error
    assert "0x" not in error  # no repr of the value


def test_a_tool_that_cannot_be_pickled_is_named_in_the_refusal(
    make: Callable[..., Executor],
) -> None:
    """A tool class defined inside a function cannot travel: the refusal names that tool (not
    a parameter), and says where to define its class."""

    class LocalTool(process_tools.Pid):
        name = "local_tool"

    executor = make()
    executor.tool_registry.register_tool(LocalTool())
    result = executor.execute_task(task("local_tool"), CONTEXT, timeout=WAIT)
    assert result.metadata["outcome"] == "rejected"
    assert result.metadata["error_type"] == "not_picklable"
    error = result.error or ""
    assert "its tool 'local_tool' (LocalTool) cannot be pickled" in error, error
    assert "parameter" not in error.split("cannot be pickled", 1)[0]
    assert "module level" in error


def test_a_simple_tool_made_from_a_lambda_is_told_to_use_a_module_level_function(
    make: Callable[..., Executor],
) -> None:
    """Refused before anything is sent, with what to pass ``create_simple_tool`` instead, not
    only how to define a tool class (there is none to move)."""
    executor = make()
    executor.tool_registry.register_tool(create_simple_tool("doubled", "Doubles.", lambda x: 2 * x))
    result = executor.execute_task(task("doubled", x=1), CONTEXT, timeout=WAIT)
    assert result.metadata["outcome"] == "rejected"
    assert result.metadata["error_type"] == "not_picklable"
    error = result.error or ""
    assert "create_simple_tool" in error
    assert "module-level function" in error
    assert "lambda" in error


def test_finished_calls_hold_no_dask_futures(make: Callable[..., Executor], client: Any) -> None:
    """A future held after its outcome arrived would make Dask run the call again when its
    worker dies."""
    executor = make()

    async def batch() -> list[TaskResult]:
        tasks = [task("pid") for _ in range(5)] + [task("fails") for _ in range(5)]
        return await executor.execute_parallel(tasks, CONTEXT, timeout=WAIT)

    results = asyncio.run(batch())
    assert len(results) == 10
    assert wait_for(lambda: not [k for k in client.refcount if str(k).startswith("laios-")], 10)


def test_shutdown_cancels_what_is_still_queued_on_the_cluster(
    make: Callable[..., Executor],
) -> None:
    executor = make()
    results: list[list[TaskResult]] = []

    async def batch() -> list[TaskResult]:
        tasks = [task("sleep_async", seconds=1.0) for _ in range(12)]  # 4 threads: 8 queue
        return await executor.execute_parallel(tasks, CONTEXT, timeout=WAIT)

    caller = threading.Thread(target=lambda: results.append(asyncio.run(batch())))
    caller.start()
    assert wait_for(lambda: executor.runner.stats.busy >= 4, 10)
    executor.shutdown(wait=False)
    caller.join(WAIT)
    assert results, "the batch did not return"
    outcomes = [r.metadata["outcome"] for r in results[0]]
    assert outcomes.count("success") >= 4  # the running ones finished
    refused = [r for r in results[0] if r.metadata["outcome"] == "rejected"]
    assert refused, outcomes
    assert all(r.metadata["error_type"] == "shutdown" for r in refused)


def test_its_own_local_cluster_serves_on_after_the_nanny_restarts_a_worker(
    tools: ToolRegistry,
) -> None:
    runner = DaskRunner(n_workers=1, threads_per_worker=1)
    executor = Executor(tools, runner=runner, store=MetricStore(), register_prometheus=False)
    try:
        first = executor.execute_task(task("pid"), CONTEXT, timeout=WAIT)
        assert first.success, first.error
        before = set(runner.client.nthreads())
        with pytest.raises(Exception):  # noqa: B017 (the worker dies answering)
            runner.client.run(os._exit, 1)
        assert wait_for(lambda: set(runner.client.nthreads()) not in (set(), before), 60)
        again = executor.execute_task(task("pid"), CONTEXT, timeout=WAIT)
        assert again.success, again.error  # not dask_worker_daemon: the restart kept the setting
        assert again.output != first.output
    finally:
        executor.shutdown(wait=True)


def test_its_own_cluster_closes_without_logging_the_heartbeats_its_close_cut() -> None:
    """A worker of the runner's own cluster whose heartbeat to the scheduler is under way as
    it closes (the scheduler slow to answer: a busy machine) does not log that heartbeat, cut
    by its own close, as an error with a traceback: shutting the runner down leaves the
    program's stderr clean."""
    source = str(Path(__file__).resolve().parents[2] / "src")
    script = f"""
import asyncio, sys, threading
sys.path[:0] = [{source!r}]
from laios.execution.runners import DaskRunner

runner = DaskRunner(n_workers=2, threads_per_worker=1)
scheduler = runner._cluster.scheduler
answer = scheduler.handlers["heartbeat_worker"]
asked = set()
both_asked = threading.Event()

async def slow(**kwargs):
    asked.add(kwargs["address"])
    if len(asked) == 2:
        both_asked.set()
    await asyncio.sleep(60)
    return answer(**kwargs)

runner.client.loop.add_callback(scheduler.handlers.__setitem__, "heartbeat_worker", slow)
assert both_asked.wait({WAIT}), "no heartbeat came"
runner.shutdown(wait=True)
print("shut down")
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=3 * WAIT
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "shut down"
    assert "Traceback" not in done.stderr, done.stderr


def test_its_own_cluster_serves_when_the_workers_cannot_take_the_quieting_plugin(
    tools: ToolRegistry, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The plugin that keeps the workers from logging the heartbeats their close cut short is
    a nicety: when it cannot be registered, the runner says so in the log and serves."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("no plugin can be registered here")

    monkeypatch.setattr(distributed.Client, "register_plugin", refuse)
    _serves_a_call(tools, DaskRunner(n_workers=1, threads_per_worker=1))
    assert "could not register the worker plugin" in caplog.text


def _serves_a_call(tools: ToolRegistry, runner: DaskRunner) -> None:
    """An executor on ``runner`` runs a call to success, then shuts down (and the runner)."""
    executor = Executor(tools, runner=runner, store=MetricStore(), register_prometheus=False)
    try:
        result = executor.execute_task(task("pid"), CONTEXT, timeout=WAIT)
        assert result.success, result.error
    finally:
        executor.shutdown(wait=True)


def test_reading_the_store_during_dask_traffic_never_blocks_the_executor(
    make: Callable[..., Executor],
) -> None:
    """The store reads runner stats under its lock; reading them must never wait for the
    Dask client's event loop, which delivers the workers' reports into the store."""
    executor = make()
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            executor.store.snapshot()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        results: list[TaskResult] = []
        caller = threading.Thread(
            target=lambda: results.extend(
                executor.execute_task(task("progress", steps=3), CONTEXT, timeout=WAIT)
                for _ in range(20)
            )
        )
        caller.start()
        caller.join(WAIT)
        assert not caller.is_alive(), "the executor blocked while the store was read"
        assert all(r.success for r in results)
    finally:
        stop.set()
        reader.join(5)


def test_calls_accepted_together_are_sent_together_and_all_run(
    make: Callable[..., Executor], client: Any
) -> None:
    """A batch goes to the scheduler as one map; every call still runs once, in its own task."""
    executor = make()

    async def batch() -> list[TaskResult]:
        tasks = [task("pid") for _ in range(40)]
        return await executor.execute_parallel(tasks, CONTEXT, timeout=WAIT)

    results = asyncio.run(batch())
    assert all(r.success for r in results), [r.error for r in results]
    assert len({r.task_id for r in results}) == 40
    total = sum(t.total for t in executor.store.snapshot().tools)
    assert total == 40


def test_a_call_given_up_before_it_was_sent_never_runs(
    make: Callable[..., Executor], tmp_path: Any
) -> None:
    executor = make()
    box = str(tmp_path)
    hang = task("hang", box=box)
    caller = Caller(executor, hang, CONTEXT)
    # Cancelled at once: before, or just after, the batch that carries it is sent.
    assert wait_for(lambda: executor.cancel_task(hang.id), 5)
    result = caller.returned(WAIT)
    assert result.metadata["outcome"] == "cancelled"
    time.sleep(1.0)
    assert process_tools.read_note(box, "hang") is None or not alive(
        process_tools.read_note(box, "hang")["pid"]
    )


def test_a_call_timed_out_while_its_worker_loads_it_never_runs(
    make: Callable[..., Executor], client: Any, tmp_path: Any
) -> None:
    """A call given up after it started on a Dask worker but before its tool process got it
    is not handed to one afterwards."""
    executor = make()
    warm(executor, client)  # (the call reaches its loading before its timeout)
    box = str(tmp_path)
    slow = task("hang", box=box, slow=process_tools.SlowToLoad(box, 2.0))
    result = executor.execute_task(slow, CONTEXT, timeout=1.0)
    assert result.metadata["outcome"] == "timeout"
    assert wait_for(lambda: process_tools.read_note(box, "loaded")), "the call never loaded"
    # Once loaded, a call that went on would start its tool within moments.
    hung = wait_for(lambda: process_tools.read_note(box, "hang"), 3.0)
    assert hung is None or not alive(hung["pid"]), "the timed-out call ran on its worker"


def runner_keys_on_the_scheduler(client: Any, prefix: str) -> list[str]:
    """The keys of the scheduler's tasks that start with ``prefix``."""

    def keys(dask_scheduler: Any) -> list[str]:
        return [str(key) for key in dask_scheduler.tasks if str(key).startswith(prefix)]

    return list(client.run_on_scheduler(keys))


#: Calls in the large batch below: enough that giving them up one scheduler message after the
#: other (about 12 ms each on a loaded two-core machine) takes seconds past their timeout.
LARGE_BATCH = 300


def test_a_large_batch_past_its_timeout_ends_at_its_deadline(
    make: Callable[..., Executor], client: Any, tmp_path: Any
) -> None:
    """Hundreds of calls still queued on the cluster when their timeout passes all end at it:
    they are not given up one after the other, each waiting for the Dask client; the queued
    ones never start, and the cluster drops their tasks."""
    executor = make()
    warm(executor, client)  # (the first calls start, and are killed, at the timeout)
    box = str(tmp_path)
    ended: list[float] = []

    def on_progress(event: str, data: Any) -> None:
        if event == "timeout":
            ended.append(time.monotonic())

    tasks = [
        task("stamp_and_sleep", box=box, stamp=f"call-{n}", seconds=10.0)
        for n in range(LARGE_BATCH)
    ]
    started, started_wall = time.monotonic(), time.time()
    results = asyncio.run(
        executor.execute_parallel(tasks, CONTEXT, timeout=0.5, on_progress=on_progress)
    )
    returned = time.monotonic() - started
    assert [r.metadata["outcome"] for r in results] == ["timeout"] * LARGE_BATCH
    assert len(ended) == LARGE_BATCH
    last = max(ended) - started
    # (One call given up after the other, each waiting for the client: 4-6 s here.)
    assert last < 3.0, f"the last timeout was reported {last:.1f}s after the batch started"
    assert returned < 3.5, f"the batch returned after {returned:.1f}s"
    # The cluster drops the calls given up (the running ones are killed there) ...
    assert wait_for(lambda: runner_keys_on_the_scheduler(client, "laios-stamp_and_sleep") == [])
    # ... and a call still queued at its deadline never started. The first calls hold the
    # cluster's 4 threads until they are killed at their deadline; a thread that another
    # call frees before it (a worker the nanny restarted, a call of an earlier test) may start
    # one more in time, so what is checked is when each tool started: none well past the
    # deadline (loading a call into a tool process takes a moment, more under load).
    noted = {n: process_tools.read_note(box, f"call-{n}") for n in range(LARGE_BATCH)}
    stamps = {n: at for n, at in noted.items() if at is not None}
    deadline = started_wall + 0.5
    late = {n: round(at - deadline, 3) for n, at in stamps.items() if at > deadline + 1.0}
    assert not late, f"tools started after their deadline (seconds past it): {late}"
    assert len(stamps) < LARGE_BATCH // 10, f"{len(stamps)} of {LARGE_BATCH} calls started"
    # Their results say so (a few whose start report was on its way at the deadline say the
    # tool was stopped instead).
    never = [r for r in results if "the tool was never started" in (r.error or "")]
    assert len(never) > LARGE_BATCH // 2, [r.error for r in results][:8]


def test_a_call_whose_client_is_closed_under_it_says_so(client: Any, tools: ToolRegistry) -> None:
    """Closing the runner's client while a call runs fails the call with an error that names
    the closed client, not a lost worker."""
    own = distributed.Client(client.scheduler.address)
    executor = Executor(
        tools, runner=DaskRunner(client=own), store=MetricStore(), register_prometheus=False
    )
    try:
        running = task("sleep_async", seconds=1.0)
        caller = Caller(executor, running, CONTEXT)
        assert wait_for(lambda: executor.get_task_status(running.id) == TaskStatus.RUNNING)
        own.close()
        result = caller.returned(WAIT, "the call never ended")
        assert result.metadata["error_type"] == "worker_lost"
        assert "client was closed" in (result.error or "")
    finally:
        executor.shutdown(wait=False)
        own.close()


def test_a_call_sent_while_the_scheduler_is_gone_says_so(tools: ToolRegistry) -> None:
    """Dask closes a client that lost its scheduler and cannot reconnect in time: the calls it
    was holding are lost for that reason, not because the application closed the client (the
    runner made it, from an address)."""
    scheduler_only = distributed.LocalCluster(n_workers=0, processes=False, dashboard_address=":0")
    runner = DaskRunner(scheduler_only.scheduler_address, connect_timeout=1.0)
    executor = Executor(tools, runner=runner, store=MetricStore(), register_prometheus=False)
    try:
        scheduler_only.close()
        assert wait_for(lambda: runner.client.status == "connecting")
        result = executor.execute_task(task("pid"), CONTEXT, timeout=WAIT)
        assert result.metadata["error_type"] == "worker_lost", result
        assert "lost its scheduler" in (result.error or ""), result.error
        assert "keep the client open" not in (result.error or "")
    finally:
        executor.shutdown(wait=False)
        scheduler_only.close()


def test_a_tool_whose_client_is_closed_under_it_is_killed_on_its_worker(
    client: Any, tools: ToolRegistry, tmp_path: Any
) -> None:
    """Closing the runner's client while a tool runs stops the tool on its worker (the
    scheduler drops the tasks of a client that went away), and the call says so."""
    own = distributed.Client(client.scheduler.address)
    executor = Executor(
        tools, runner=DaskRunner(client=own), store=MetricStore(), register_prometheus=False
    )
    box = str(tmp_path)
    try:
        caller = Caller(executor, task("hang", box=box), CONTEXT)
        hung = wait_for(lambda: process_tools.read_note(box, "hang"))
        assert hung is not None, "the tool never started"
        own.close()
        result = caller.returned(WAIT, "the call never ended")
        assert result.metadata["error_type"] == "worker_lost"
        assert "client was closed" in (result.error or "")
        assert "stops the tool" in (result.error or "")
        # (The tool hangs for a minute when nothing kills it.)
        assert wait_for(lambda: not alive(hung["pid"])), "the tool ran on without its client"
        assert wait_for(lambda: not alive(hung["grandchild"]))
    finally:
        executor.shutdown(wait=False)
        own.close()


def test_a_tool_whose_caller_died_is_killed_on_its_worker(client: Any, tmp_path: Any) -> None:
    """A caller process that dies while its tool runs (no timeout: nothing else would ever
    stop it) leaves no tool running on the cluster."""
    box = str(tmp_path)
    here = os.path.dirname(os.path.abspath(__file__))
    source = os.path.join(os.path.dirname(os.path.dirname(here)), "src")
    script = f"""
import sys
sys.path[:0] = [{source!r}, {here!r}]
import process_tools
from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.runners import DaskRunner
from laios.execution.store import MetricStore
from laios.tools.registry import ToolRegistry

registry = ToolRegistry()
registry.register_tool(process_tools.Hang())
executor = Executor(registry, runner=DaskRunner({client.scheduler.address!r}),
                    store=MetricStore(), register_prometheus=False)
hang = Task(plan_id="p", description="hang", tool_name="hang", parameters={{"box": {box!r}}})
executor.execute_task(hang, Context(session_id="s", user_id="u"))
"""
    caller = subprocess.Popen([sys.executable, "-c", script])
    try:
        hung = wait_for(lambda: process_tools.read_note(box, "hang") or caller.poll() is not None)
        assert isinstance(hung, dict), "the tool never started"
    finally:
        caller.kill()
        caller.wait(WAIT)
    # (The tool hangs for a minute when nothing kills it.)
    assert wait_for(lambda: not alive(hung["pid"])), "the tool ran on without its caller"
    assert wait_for(lambda: not alive(hung["grandchild"]))


def reports_on_the_scheduler(client: Any, text: str) -> list[str]:
    """The laios topics whose events, kept by the Dask scheduler, contain ``text``."""
    return [
        topic
        for topic, events in client.get_events().items()
        if topic.startswith("laios-") and any(text.encode() in bytes(msg) for _, msg in events)
    ]


def test_the_scheduler_keeps_no_report_after_shutdown(
    make: Callable[..., Executor], client: Any
) -> None:
    """Outcomes and errors (which may hold secrets, or be huge) do not stay on the scheduler."""
    executor = make()
    result = executor.execute_task(task("fails"), CONTEXT, timeout=WAIT)
    assert result.metadata["error_type"] == "ValueError"
    executor.shutdown(wait=True)
    assert reports_on_the_scheduler(client, "bad input 7") == []


def test_runners_shut_down_leave_no_topic_on_a_shared_cluster(
    client: Any, tools: ToolRegistry
) -> None:
    """Executors made and shut down one after another on a long-lived cluster (one per job)
    leave neither their report topic on the scheduler nor its handler on the shared client,
    and the next runner on that client still gets its reports."""

    def topics_on_the_scheduler(dask_scheduler: Any) -> list[str]:
        return [name for name in dask_scheduler._broker._topics if name.startswith("laios-")]

    made = []
    for _ in range(2):
        runner = DaskRunner(client=client)
        made.append(runner._topic)
        with Executor(tools, runner=runner, store=MetricStore(), register_prometheus=False) as ex:
            process_tools.check_progress_in_order(ex, task, CONTEXT, 3, WAIT)
    shut_down = set(made[:-1])
    assert not shut_down & set(client.run_on_scheduler(topics_on_the_scheduler))
    assert not shut_down & set(client._event_handlers)
    assert made[-1] not in client._event_handlers


def test_a_topic_the_scheduler_cannot_drop_has_its_reports_cleared_once(
    client: Any, tools: ToolRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the scheduler keeps its topics out of reach (another Dask version), a runner shut
    down leaves its topic there, its reports cleared by the one request that tried to drop it
    (the scheduler is not asked again), and stops listening to it."""
    from laios.execution._runners import dask as dask_runner

    # (The client is the module's: a runner of an earlier test, shut down without waiting, may
    # still be asking about its own topic. Only the requests about this runner's are counted.)
    asked: list[tuple[str, Any]] = []
    run_on_scheduler = client.run_on_scheduler

    def recorded(function: Any, *args: Any, **kwargs: Any) -> Any:
        asked.append((getattr(function, "__name__", ""), args[0] if args else None))
        return run_on_scheduler(function, *args, **kwargs)

    # (The module's scheduler runs in this process: so do the functions run on it. The
    # runner's own rounds of clearing wait for an hour: only the shutdown's are seen.)
    monkeypatch.setattr(dask_runner, "drop_topic", lambda dask_scheduler, topic: False)
    monkeypatch.setattr(dask_runner, "STATS_INTERVAL", 3600.0)
    monkeypatch.setattr(client, "run_on_scheduler", recorded)
    runner = DaskRunner(client=client)
    executor = Executor(tools, runner=runner, store=MetricStore(), register_prometheus=False)
    result = executor.execute_task(task("fails"), CONTEXT, timeout=WAIT)
    assert result.metadata["error_type"] == "ValueError"
    executor.shutdown(wait=True)
    mine = [name for name, topic in asked if topic == runner._topic]
    assert mine[mine.index("drop_reports") :] == ["drop_reports"]
    monkeypatch.undo()
    assert reports_on_the_scheduler(client, "bad input 7") == []

    def listened(dask_scheduler: Any) -> list[str]:
        return [name for name, kept in dask_scheduler._broker._topics.items() if kept.subscribers]

    # (The client unsubscribes by a message of its own, not waited for.)
    assert wait_for(lambda: runner._topic not in client.run_on_scheduler(listened))


def test_the_scheduler_forgets_reports_while_the_runner_serves(
    make: Callable[..., Executor], client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long-lived runner's delivered reports are cleared from the scheduler as it goes."""
    from laios.execution._runners import dask as dask_runner

    monkeypatch.setattr(dask_runner, "STATS_INTERVAL", 0.1)
    executor = make()
    result = executor.execute_task(task("fails"), CONTEXT, timeout=WAIT)
    assert result.metadata["error_type"] == "ValueError"
    assert wait_for(lambda: reports_on_the_scheduler(client, "bad input 7") == [])
    assert executor.execute_task(task("pid"), CONTEXT, timeout=WAIT).success


def test_a_worker_initializer_that_is_not_callable_is_refused_at_construction(
    client: Any,
) -> None:
    """Not at every call on the workers, as a lost task."""
    with pytest.raises(TypeError, match="worker_initializer must be callable"):
        DaskRunner(client=client, worker_initializer="set_up_tracing")  # type: ignore[arg-type]


async def _async_setup() -> None:
    """A worker initializer written as a coroutine function (refused)."""


def test_an_async_worker_initializer_is_refused_at_construction() -> None:
    """Each tool process calls it and never awaits it: taken, its setup would never run (and a
    process runner on each worker would refuse it at every call, far from the cause)."""
    with pytest.raises(TypeError, match=r"^worker_initializer must be a plain function"):
        DaskRunner("tcp://127.0.0.1:9", worker_initializer=_async_setup)


def test_worker_initargs_that_cannot_be_pickled_are_refused_at_construction(
    client: Any,
) -> None:
    """They travel with every call: refused at construction, not at each call."""
    with pytest.raises(TypeError, match="worker_initargs"):
        DaskRunner(
            client=client,
            worker_initializer=process_tools.set_up_tracing,
            worker_initargs=(threading.Lock(),),
        )


@pytest.mark.parametrize("initargs", ["myapp-tools", b"myapp", 5], ids=["str", "bytes", "int"])
def test_worker_initargs_that_are_not_a_sequence_of_arguments_are_refused(initargs: Any) -> None:
    """A string is not taken apart into one argument per character (the initializer would
    then fail in every tool process), and a number is not called unpicklable."""
    with pytest.raises(TypeError, match=r"worker_initargs must be a sequence \(a list or tuple\)"):
        DaskRunner(
            "tcp://127.0.0.1:9",
            worker_initializer=process_tools.set_up_tracing,
            worker_initargs=initargs,
        )


@pytest.mark.parametrize("address", [8786, b"tcp://127.0.0.1:9"], ids=["int", "bytes"])
def test_an_address_that_is_not_a_string_is_refused_naming_the_option(address: Any) -> None:
    with pytest.raises(TypeError, match=r"address must be .*'tcp://scheduler:8786'"):
        DaskRunner(address)


def test_a_client_given_as_the_address_is_refused_with_what_to_write(client: Any) -> None:
    """``DaskRunner(client)`` (or a cluster object) is a likely slip for ``client=``."""
    for value in (client, client.cluster):
        with pytest.raises(TypeError, match=r"client="):
            DaskRunner(value)


def test_an_address_and_a_client_together_are_refused(client: Any) -> None:
    """One of them would be ignored silently (the address, while the runner names it)."""
    with pytest.raises(ValueError, match="address or a client"):
        DaskRunner("tcp://127.0.0.1:9", client=client)


def test_a_client_that_is_not_a_dask_client_is_refused_clearly() -> None:
    """A TypeError that says what is expected, not an AttributeError from inside."""
    with pytest.raises(TypeError, match=r"distributed\.Client"):
        DaskRunner(client="tcp://127.0.0.1:8786")


@pytest.mark.parametrize("seconds", [float("inf"), float("nan")])
def test_a_connect_timeout_that_is_not_finite_is_refused(seconds: float) -> None:
    """A ValueError at the call, not Dask's KeyError about a time unit."""
    with pytest.raises(ValueError, match="connect_timeout"):
        DaskRunner("tcp://127.0.0.1:9", connect_timeout=seconds)


@pytest.mark.parametrize("seconds", [1e12, 1e300, 10**30], ids=["1e12", "1e300", "10**30"])
def test_a_connect_timeout_longer_than_a_thread_can_wait_still_connects(
    client: Any, seconds: float
) -> None:
    """A finite connect_timeout is taken, however long: one past what a thread can wait
    (``threading.TIMEOUT_MAX``) failed with "OverflowError: timestamp out of range for
    platform time_t" instead of connecting to a scheduler that answers at once."""
    runner = DaskRunner(client.scheduler.address, connect_timeout=seconds)
    runner.shutdown()


def test_a_port_that_accepts_and_never_answers_is_refused_within_the_connect_timeout() -> None:
    """A listener that never speaks Dask's handshake (a wrong port) is a ConnectionError after
    about connect_timeout, not a constructor that waits for ever."""
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        address = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
        box: list[BaseException | None] = []

        def construct() -> None:
            try:
                DaskRunner(address, connect_timeout=0.5).shutdown()
                box.append(None)
            except BaseException as exc:
                box.append(exc)

        started = time.monotonic()
        thread = threading.Thread(target=construct, daemon=True)
        thread.start()
        thread.join(30)
        assert not thread.is_alive(), "DaskRunner() still waiting after 30 s"
    assert isinstance(box[0], ConnectionError)
    assert "0.5s" in str(box[0])
    assert time.monotonic() - started < 15


def test_a_workers_address_given_as_the_schedulers_is_refused_naming_it(client: Any) -> None:
    """A Dask worker's (or its nanny's) address speaks Dask's protocol, and is not the
    scheduler's: a ConnectionError that names the address and says what answered there."""
    info = client.scheduler_info()["workers"]
    worker = next(iter(info))
    for address, kind in ((worker, "worker"), (info[worker]["nanny"], "nanny")):
        with pytest.raises(ConnectionError) as raised:
            DaskRunner(address, connect_timeout=5)
        message = str(raised.value)
        assert repr(address) in message
        assert f"a Dask {kind} answers there" in message
        assert "scheduler" in message


def test_a_port_that_answers_in_another_protocol_is_refused_as_unreachable() -> None:
    """A listener that answers with something else than Dask's handshake (an HTTP server: the
    dashboard's port written as tcp://) is a ConnectionError naming the address, not whatever
    Dask's reading of its answer raised (a MemoryError for exabytes, say)."""
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
        stop = threading.Event()

        def answer() -> None:
            server.settimeout(0.2)
            while not stop.is_set():
                try:
                    peer, _ = server.accept()
                except OSError:
                    continue
                with peer:
                    peer.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n" * 64)
                    time.sleep(0.5)

        thread = threading.Thread(target=answer, daemon=True)
        thread.start()
        try:
            with pytest.raises(ConnectionError) as raised:
                DaskRunner(address, connect_timeout=2)
        finally:
            stop.set()
            thread.join(5)
    assert repr(address) in str(raised.value)


def test_a_call_timed_out_on_a_cluster_without_workers_says_it_has_none(
    tools: ToolRegistry,
) -> None:
    """A cluster whose workers never came up holds every call queued: its timeout says the
    cluster has no workers, not that none was free yet."""
    cluster = distributed.LocalCluster(n_workers=0, processes=True, dashboard_address=":0")
    client = distributed.Client(cluster)
    try:
        executor = Executor(
            tools, runner=DaskRunner(client=client), store=MetricStore(), register_prometheus=False
        )
        try:
            result = executor.execute_task(task("pid"), CONTEXT, timeout=3)
        finally:
            executor.shutdown(wait=False)
        assert result.metadata["outcome"] == "timeout"
        assert "the Dask cluster has no workers" in (result.error or "")
        assert "never started" in (result.error or "")
    finally:
        client.close()
        cluster.close()
        forget_clients_of_closed_loops()


def test_local_clusters_shut_down_in_any_order_leave_dask_settings_as_they_were() -> None:
    """The worker setting stays off while any own local cluster runs, then comes back."""
    import dask

    # (The module's cluster turns it off for the module: start from Dask's default.)
    with dask.config.set({"distributed.worker.daemon": True}):
        first = DaskRunner(n_workers=1, threads_per_worker=1)
        second = DaskRunner(n_workers=1, threads_per_worker=1)
        try:
            first.shutdown()
            # The second cluster's nanny reads it whenever it restarts a worker.
            assert dask.config.get("distributed.worker.daemon") is False
        finally:
            first.shutdown()
            second.shutdown()
        assert dask.config.get("distributed.worker.daemon") is True


def test_a_local_cluster_that_fails_to_start_leaves_dask_settings_as_they_were(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The constructor raises, and the worker setting it turned off comes back."""
    import dask

    def no_cluster(**kwargs: Any) -> Any:
        raise RuntimeError("no room for workers")

    monkeypatch.setattr(distributed, "LocalCluster", no_cluster)
    with dask.config.set({"distributed.worker.daemon": True}):
        with pytest.raises(RuntimeError, match="no room"):
            DaskRunner(n_workers=1, threads_per_worker=1)
        assert dask.config.get("distributed.worker.daemon") is True


def test_a_runner_shut_down_on_a_shared_client_is_freed(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client outlives many runners: it must not keep each one (and its calls) alive."""
    import gc
    import weakref

    from laios.execution._runners import dask as dask_runner

    monkeypatch.setattr(dask_runner, "STATS_INTERVAL", 0.05)
    registry = ToolRegistry()
    registry.register_tool(process_tools.Pid())
    executor = Executor(
        registry, runner=DaskRunner(client=client), store=MetricStore(), register_prometheus=False
    )
    assert executor.execute_task(task("pid"), CONTEXT, timeout=WAIT).success
    gone = weakref.ref(executor.runner)
    executor.shutdown(wait=True)
    del executor
    assert wait_for(lambda: gc.collect() is not None and gone() is None, 10)


def test_a_timeout_holds_while_the_scheduler_does_not_answer(
    make: Callable[..., Executor], client: Any, tmp_path: Any
) -> None:
    """The kill at a timeout goes out without waiting for the scheduler's answer."""
    executor = make()
    warm(executor, client)
    scheduler = client.cluster.scheduler
    original = scheduler.handlers["broadcast"]
    gate = threading.Event()

    async def slow_broadcast(*args: Any, **kwargs: Any) -> Any:
        while not gate.is_set():  # a scheduler too busy to answer Client.run
            await asyncio.sleep(0.05)
        return await original(*args, **kwargs)

    box = str(tmp_path)
    scheduler.handlers["broadcast"] = slow_broadcast
    try:
        caller = Caller(executor, task("hang", box=box), CONTEXT, timeout=1.0)
        result = caller.returned(15, "the caller was kept past its timeout")
        assert result.metadata["outcome"] == "timeout"
    finally:
        scheduler.handlers["broadcast"] = original
        gate.set()
    hung = process_tools.read_note(box, "hang")
    assert wait_for(lambda: not alive(hung["pid"])), "the kill never reached the worker"


def test_a_tool_past_its_timeout_is_killed_on_its_worker_when_no_kill_arrives(
    make: Callable[..., Executor], client: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker kills a tool a few seconds past its deadline by itself, when the caller's
    kill never reaches it (the caller is gone, or cut off from the cluster)."""
    from laios.execution._runners.dask import DaskRunner as Runner

    def lost_kills(self: Any) -> None:
        with self._lock:
            stops, self._stops = self._stops, []
            sent, self._stops_sent = self._stops_sent, None
            self._stopping -= len(stops)
        if sent is not None:
            sent.set()

    executor = make()
    warm(executor, client)
    monkeypatch.setattr(Runner, "_send_stops", lost_kills)
    box = str(tmp_path)
    result = executor.execute_task(task("hang", box=box), CONTEXT, timeout=1.5)
    assert result.metadata["outcome"] == "timeout"
    hung = process_tools.read_note(box, "hang")
    assert hung is not None, "the tool never started"
    assert wait_for(lambda: not alive(hung["pid"])), "the tool outlived its deadline"
    assert wait_for(lambda: not alive(hung["grandchild"]))


def test_shutdown_ends_while_the_scheduler_does_not_answer(
    make: Callable[..., Executor], client: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Neither the kills still being sent nor clearing the reports hold shutdown for ever."""
    from laios.execution._runners import dask as dask_runner

    monkeypatch.setattr(dask_runner, "STOP_PATIENCE", 0.5)
    executor = make()
    warm(executor, client)
    assert executor.execute_task(task("fails"), CONTEXT, timeout=WAIT).error  # a report
    scheduler = client.cluster.scheduler
    originals = {op: scheduler.handlers[op] for op in ("broadcast", "run_function")}
    gate = threading.Event()

    def unanswered(original: Any) -> Any:
        async def handler(*args: Any, **kwargs: Any) -> Any:
            while not gate.is_set():
                await asyncio.sleep(0.05)
            return await original(*args, **kwargs)

        return handler

    box = str(tmp_path)
    for op, original in originals.items():
        scheduler.handlers[op] = unanswered(original)
    try:
        timed_out = executor.execute_task(task("hang", box=box), CONTEXT, timeout=1.0)
        assert timed_out.metadata["outcome"] == "timeout"  # its kill is not sent yet
        closer = threading.Thread(target=executor.shutdown, kwargs={"wait": True})
        closer.start()
        closer.join(15)
        assert not closer.is_alive(), "shutdown waited for the scheduler"
    finally:
        scheduler.handlers.update(originals)
        gate.set()
    hung = process_tools.read_note(box, "hang")
    assert wait_for(lambda: not alive(hung["pid"])), "the kill never reached the worker"


def test_a_call_is_sent_even_when_no_thread_can_be_started_to_send_it(
    make: Callable[..., Executor], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No thread for the batch timer: the call goes out at once, and later calls too."""

    class NoThread(threading.Timer):
        def start(self) -> None:
            raise RuntimeError("can't start new thread")

    executor = make()
    with monkeypatch.context() as patch:
        patch.setattr(threading, "Timer", NoThread)
        first = executor.execute_task(task("pid"), CONTEXT, timeout=WAIT)
    assert first.success, first.error
    assert executor.execute_task(task("pid"), CONTEXT, timeout=WAIT).success
    assert executor.runner.stats.queued == 0


def _tcp_connections(process: Any) -> list[Any]:
    """``process``'s TCP sockets (``net_connections`` from psutil 6, ``connections`` before)."""
    listing = getattr(process, "net_connections", None) or process.connections
    return list(listing(kind="tcp"))


@pytest.mark.parametrize("wait", [False, True])
def test_shutdown_closes_its_own_cluster_when_no_thread_can_be_started_to_close_it(
    tools: ToolRegistry, monkeypatch: pytest.MonkeyPatch, wait: bool
) -> None:
    """No thread for the close (a container's pids limit): shutdown neither raises nor leaves
    the local cluster open; the call running still finishes. Also from a callback, on the
    thread that delivers the workers' reports, which cannot wait for them itself."""
    import psutil  # (a dependency of distributed's)

    runner = DaskRunner(n_workers=1, threads_per_worker=1)
    client = runner.client
    executor = Executor(tools, runner=runner, store=MetricStore(), register_prometheus=False)
    port = client.scheduler.address.rsplit(":", 1)[1]
    start = threading.Thread.start

    def refusing(self: threading.Thread) -> None:
        if self.name == "laios-dask-close":
            raise RuntimeError("can't start new thread")
        start(self)

    errors: list[BaseException] = []

    def on_progress(event: str, data: Any) -> None:
        if event == "started":  # (on the thread that delivers the reports)
            try:
                executor.shutdown(wait=wait)
            except BaseException as exc:
                errors.append(exc)

    try:
        assert executor.execute_task(task("pid"), CONTEXT, timeout=WAIT).success
        monkeypatch.setattr(threading.Thread, "start", refusing)
        result = executor.execute_task(
            task("sleep_async", seconds=0.5), CONTEXT, timeout=WAIT, on_progress=on_progress
        )
        assert not errors, errors
        assert result.success, result.error
        executor.shutdown(wait=False)  # (again, from the caller: shut down already)
        assert wait_for(lambda: client.status == "closed"), client.status

        def refused() -> bool:
            # Read from the system's table, not by connecting: a connection the scheduler
            # accepts as it closes is one an older distributed leaves for the collector.
            return not any(
                conn.status == psutil.CONN_LISTEN and conn.laddr.port == int(port)
                for conn in _tcp_connections(psutil.Process())
            )

        assert wait_for(refused), "the local cluster's scheduler still listens"
    finally:
        monkeypatch.undo()
        executor.shutdown(wait=False)
        forget_clients_of_closed_loops()


def test_shutdown_without_waiting_returns_when_no_thread_can_be_started_to_close(
    tools: ToolRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From the caller's thread, with no thread for the close: shutdown returns (it does not
    raise), and the local cluster closes once the call under way has finished."""
    runner = DaskRunner(n_workers=1, threads_per_worker=1)
    client = runner.client
    executor = Executor(tools, runner=runner, store=MetricStore(), register_prometheus=False)
    start = threading.Thread.start

    def refusing(self: threading.Thread) -> None:
        if self.name == "laios-dask-close":
            raise RuntimeError("can't start new thread")
        start(self)

    results: list[TaskResult] = []
    caller = threading.Thread(
        target=lambda: results.append(
            executor.execute_task(task("sleep_async", seconds=1.0), CONTEXT, timeout=WAIT)
        )
    )
    try:
        caller.start()
        assert wait_for(lambda: runner.stats.busy == 1)
        monkeypatch.setattr(threading.Thread, "start", refusing)
        executor.shutdown(wait=False)
        caller.join(WAIT)
        assert results, "the call did not return"
        assert results[0].success, results[0].error
        assert wait_for(lambda: client.status == "closed"), client.status
    finally:
        monkeypatch.undo()
        executor.shutdown(wait=False)
        forget_clients_of_closed_loops()


def test_an_outcome_the_caller_cannot_load_fails_its_task_at_once_and_says_why(
    make: Callable[..., Executor],
) -> None:
    """Not a lost task after a 10 s wait: the result came back but cannot be loaded here."""
    executor = make()
    executor.tool_registry.register_tool(process_tools.ReturnsWorkerOnly())
    started = time.monotonic()
    result = executor.execute_task(task("returns_worker_only"), CONTEXT, timeout=WAIT)
    assert result.metadata["error_type"] == "not_picklable", result.error
    assert "worker_only_library" in (result.error or "")
    assert time.monotonic() - started < 8
    assert executor.execute_task(task("pid"), CONTEXT, timeout=WAIT).success


def test_shutdown_without_waiting_from_a_callback_cancels_what_is_queued(
    make: Callable[..., Executor],
) -> None:
    """On the thread that delivers the workers' reports, the queued calls are cancelled too."""
    executor = make()
    results: list[list[TaskResult]] = []

    def on_progress(event: str, data: Any) -> None:
        if event == "completed":  # (a report being delivered)
            executor.shutdown(wait=False)

    async def batch() -> list[TaskResult]:
        tasks = [task("sleep_async", seconds=0.0)] + [
            task("sleep_async", seconds=1.0) for _ in range(11)
        ]
        return await executor.execute_parallel(
            tasks, CONTEXT, timeout=WAIT, on_progress=on_progress
        )

    caller = threading.Thread(target=lambda: results.append(asyncio.run(batch())))
    caller.start()
    caller.join(WAIT)
    assert results, "the batch did not return"
    outcomes = [r.metadata["outcome"] for r in results[0]]
    refused = [r for r in results[0] if r.metadata["outcome"] == "rejected"]
    assert refused, outcomes
    assert all(r.metadata["error_type"] == "shutdown" for r in refused)


def test_an_initializer_the_workers_cannot_import_fails_the_call_and_spares_the_workers(
    tools: ToolRegistry, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its Dask worker serves on, instead of dying over the task's deserialization."""
    import dask

    # A fresh worker (its process runner not set up yet), started before the module exists.
    with dask.config.set({"distributed.worker.daemon": False}):
        cluster = distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0"
        )
    client = distributed.Client(cluster)
    (tmp_path / "caller_only_setup.py").write_text("def set_up():\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import caller_only_setup  # type: ignore[import-not-found]

    runner = DaskRunner(client=client, worker_initializer=caller_only_setup.set_up)
    executor = Executor(tools, runner=runner, store=MetricStore(), register_prometheus=False)
    try:
        worker = set(client.nthreads())
        result = executor.execute_task(task("pid"), CONTEXT, timeout=WAIT)
        assert result.metadata.get("error_type") == "not_picklable", result
        assert "worker_initializer must be importable" in (result.error or "")
        assert set(client.nthreads()) == worker  # the same worker, alive
    finally:
        executor.shutdown(wait=True)
        client.close()
        cluster.close()


def test_a_runner_that_fails_to_subscribe_closes_the_client_it_made(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure after DaskRunner(address) connected (subscribing to its topic) closes the
    client it made: the scheduler is left with the clients it had before."""
    scheduler_address = client.scheduler.address
    before = set(client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.clients)))

    subscribe = distributed.Client.subscribe_topic

    def refuse(self: Any, topic: str, handler: Any) -> None:
        if topic.startswith("laios-"):  # (the client subscribes to topics of its own too)
            raise RuntimeError("subscribing failed")
        subscribe(self, topic, handler)

    monkeypatch.setattr(distributed.Client, "subscribe_topic", refuse)
    with pytest.raises(RuntimeError, match="subscribing failed"):
        DaskRunner(scheduler_address)

    def clients_now() -> set[str]:
        return set(client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.clients)))

    assert wait_for(lambda: clients_now() <= before)


@pytest.mark.parametrize("thread", ["laios-dask-handshake", "laios-dask-stats"])
def test_a_runner_refused_its_thread_at_construction_says_so_and_what_to_do(
    client: Any, monkeypatch: pytest.MonkeyPatch, thread: str
) -> None:
    """No thread for the scheduler's handshake or the cluster's size ("can't start new
    thread": a container's pids limit): the constructor says which thread could not be
    started and what to check, and leaves no client of its own connected."""
    scheduler_address = client.scheduler.address
    before = set(client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.clients)))
    start = threading.Thread.start

    def refusing(self: threading.Thread) -> None:
        if self.name == thread:
            raise RuntimeError("can't start new thread")
        start(self)

    with monkeypatch.context() as patch:
        patch.setattr(threading.Thread, "start", refusing)
        with pytest.raises(RuntimeError) as raised:
            DaskRunner(scheduler_address)
    message = str(raised.value)
    assert message.startswith("DaskRunner could not start its thread"), message
    assert "can't start new thread" in message
    assert "pids limit" in message
    assert isinstance(raised.value.__cause__, RuntimeError)

    def clients_now() -> set[str]:
        return set(client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.clients)))

    assert wait_for(lambda: clients_now() <= before)


@pytest.mark.parametrize(
    ("tool", "name"), [("returns_key_holder", "api_key"), ("returns_typed_key_holder", "dsn")]
)
def test_a_value_that_cannot_be_pickled_keeps_no_part_of_a_secret_it_quotes(
    make: Callable[..., Executor], tool: str, name: str
) -> None:
    """On a Dask worker too, a result and a checkpoint value that cannot be pickled are
    described scrubbed of the task's secrets (by name, or typed SecretStr by the tool's input
    model) before the description is cut: no slice of the key reaches the spans or result."""
    slices = process_tools.key_slices_left(make, task(tool, **{name: KEY}), CONTEXT, WAIT)
    assert slices == []


def test_a_result_its_dask_worker_cannot_pickle_again_fails_its_task_scrubbed(
    make: Callable[..., Executor], client: Any
) -> None:
    """A value that leaves its tool process, and that its Dask worker loads as one it cannot
    pickle on to the caller, ends the task ``not_picklable`` at once (it did not end at all,
    past its timeout too), its description scrubbed of the call's secrets; the runner serves on."""
    executor = make()
    warm(executor, client)
    call = Caller(
        executor, task("returns_what_becomes_key_holder", api_key=KEY), CONTEXT, timeout=WAIT
    )
    result = call.returned(WAIT + 10, "the task never ended")
    assert result.metadata["error_type"] == "not_picklable", result
    assert "cannot be sent back from its Dask worker" in (result.error or "")
    assert "HoldsAKey(zzz" in (result.error or "")
    assert [KEY[i : i + 8] for i in range(len(KEY) - 7) if KEY[i : i + 8] in result.error] == []
    assert executor.execute_task(task("pid"), CONTEXT, timeout=WAIT).success


def test_a_kill_that_reaches_a_fresh_worker_before_its_call_is_remembered(
    tools: ToolRegistry, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call given up before it started has its kill sent to every worker (``kill_calls``),
    and may reach one before the call does. On a worker that had run no call yet, the kill
    was dropped, and the call then ran to its end; it is now remembered there too, and the
    call never reaches its tool."""
    import dask

    from laios.execution._runners import dask as dask_module

    with dask.config.set({"distributed.worker.daemon": False}):
        cluster = distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0"
        )
    client = distributed.Client(cluster)
    runner = DaskRunner(client=client)
    executor = Executor(tools, runner=runner, store=MetricStore(), register_prometheus=False)
    # The call's key, known before it is sent, so that its kill can go first.
    monkeypatch.setattr(
        dask_module, "uuid", SimpleNamespace(uuid4=lambda: SimpleNamespace(hex="given-up"))
    )
    monkeypatch.setattr(dask_module, "OUTCOME_GRACE", 1.0)
    try:
        # What the runner sends for a call given up before it started (see _send_stops).
        client.run(dask_module.kill_calls, ["laios-stamp_and_sleep-given-up"])
        result = executor.execute_task(
            task("stamp_and_sleep", box=str(tmp_path), stamp="started", seconds=3.0),
            CONTEXT,
            timeout=WAIT,
        )
        assert not (tmp_path / "started").exists(), "the killed call ran its tool"
        assert not result.success
    finally:
        executor.shutdown(wait=True)
        client.close()
        cluster.close()


def test_calls_after_the_scheduler_came_back_get_their_outcomes(
    tools: ToolRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A runner made from an address reconnects to a scheduler started again at that address
    (within connect_timeout). The new scheduler knows nothing of the runner's event topic:
    the calls sent after it came back ran, but their reports went nowhere, and each ended
    ``worker_lost`` ("no outcome arrived") however well its tool did."""
    import socket

    import dask

    from laios.execution._runners import dask as dask_module

    monkeypatch.setattr(dask_module, "OUTCOME_GRACE", 3.0)  # (the old failure, sooner)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    first = distributed.LocalCluster(
        n_workers=0, processes=False, scheduler_port=port, dashboard_address=":0"
    )
    runner = DaskRunner(first.scheduler_address, connect_timeout=WAIT)
    executor = Executor(tools, runner=runner, store=MetricStore(), register_prometheus=False)
    second = None
    try:
        first.close()
        assert wait_for(lambda: runner.client.status == "connecting")
        with dask.config.set({"distributed.worker.daemon": False}):
            second = distributed.LocalCluster(
                n_workers=1,
                threads_per_worker=1,
                processes=True,
                scheduler_port=port,
                dashboard_address=":0",
            )
        assert wait_for(lambda: runner.client.status == "running"), "no reconnection"
        result = executor.execute_task(task("pid"), CONTEXT, timeout=WAIT)
        assert result.success, result.error
        assert result.metadata["worker"].startswith(second.scheduler_address.rsplit(":", 1)[0])
    finally:
        executor.shutdown(wait=False)
        first.close()
        if second is not None:
            second.close()


#: A Dask scheduler alone in a process (the test kills it): prints its address, then serves.
_SCHEDULER = """
import asyncio
from distributed import Scheduler

async def main():
    async with Scheduler(host="127.0.0.1", port=0, dashboard_address=":0") as scheduler:
        print(scheduler.address, flush=True)
        await scheduler.finished()

asyncio.run(main())
"""

#: A Dask worker of one thread, without a nanny, in a process of its own: it ends as it closes.
_WORKER = """
import asyncio
import sys
from distributed import Worker

async def main():
    async with Worker(sys.argv[1], nthreads=1) as worker:
        await worker.finished()

asyncio.run(main())
"""


@contextlib.contextmanager
def _scheduler_in_a_process() -> Iterator[tuple[subprocess.Popen[str], str]]:
    """A Dask scheduler in a process of its own (``Popen``, and its address), and a worker of
    one thread for it in another, whose tools import ``process_tools`` from this folder; both
    ended on leaving."""
    import laios

    here = os.path.dirname(os.path.abspath(__file__))
    source = os.path.dirname(os.path.dirname(os.path.abspath(laios.__file__)))
    path = [source, here, os.environ.get("PYTHONPATH", "")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(part for part in path if part))
    scheduler = subprocess.Popen(
        [sys.executable, "-c", _SCHEDULER], stdout=subprocess.PIPE, text=True, env=env
    )
    worker = None
    try:
        assert scheduler.stdout is not None
        address = scheduler.stdout.readline().strip()
        assert address.startswith("tcp://"), f"the scheduler did not start: {address!r}"
        worker = subprocess.Popen([sys.executable, "-c", _WORKER, address], env=env)
        yield scheduler, address
    finally:
        for process in (worker, scheduler):
            if process is not None:
                process.kill()
                process.wait(WAIT)
        if scheduler.stdout is not None:
            scheduler.stdout.close()


@pytest.mark.parametrize("given", [False, True], ids=["own-client", "given-client"])
def test_a_call_under_way_when_its_scheduler_dies_says_the_scheduler_was_lost(
    tools: ToolRegistry, tmp_path: Any, given: bool
) -> None:
    """A call running when the Dask scheduler died ended ``worker_lost`` with an error that
    said the cluster had cancelled its task, "as it does every task when the cluster is
    restarted (client.restart()) or when the client loses its scheduler, or the application
    cancelled it": three guesses, where Dask's client had said which (it cancels its tasks
    for "scheduler-connection-lost" as it loses its scheduler). The error now says that the
    connection to the scheduler at its address was lost, and what follows: the client
    reconnects for a while, and the call can be run again."""
    with _scheduler_in_a_process() as (scheduler, address):
        own = distributed.Client(address) if given else None
        runner = DaskRunner(client=own) if given else DaskRunner(address, connect_timeout=WAIT)
        executor = Executor(tools, runner=runner, store=MetricStore(), register_prometheus=False)
        box = str(tmp_path)
        try:
            caller = Caller(executor, task("hang", box=box), CONTEXT)
            hung = wait_for(lambda: process_tools.read_note(box, "hang"))
            assert hung is not None, "the tool never started"
            scheduler.kill()
            result = caller.returned(WAIT, "the call never ended")
            assert result.metadata["error_type"] == "worker_lost", result
            error = result.error or ""
            assert f"connection to the Dask scheduler at {address} was lost" in error, error
            assert "reconnect" in error, error
            assert "run it again" in error, error
            assert "client.restart()" not in error, error
            assert "the application cancelled" not in error, error
            # (Its worker closes as it loses the scheduler, and kills the tool as it closes.)
            assert wait_for(lambda: not alive(hung["pid"])), "the tool ran on"
            assert wait_for(lambda: not alive(hung["grandchild"]))
        finally:
            executor.shutdown(wait=False)
            if own is not None:
                own.close()
            forget_clients_of_closed_loops()


def test_a_client_that_is_closed_already_is_refused_clearly(client: Any) -> None:
    """A closed client (closed by the application, or by Dask after it lost its scheduler)
    failed with Dask's own ClosedClientError about a "subscribe-topic message"; it is now a
    ValueError that says the client is closed and what to pass instead."""
    closed = distributed.Client(client.scheduler.address)
    closed.close()
    with pytest.raises(ValueError, match="the client is closed") as raised:
        DaskRunner(client=closed)
    assert "address" in str(raised.value)


@pytest.mark.parametrize("address", ["inproc://x", "http://127.0.0.1:8787", "127.0.0.1", ""])
def test_an_address_dask_cannot_parse_is_refused_naming_it_and_the_form(address: str) -> None:
    """A malformed address raised whatever Dask's parser said ("not enough values to unpack
    (expected 3, got 1)" for ``inproc://x``), naming neither the option nor its form."""
    with pytest.raises(ValueError, match="tcp://host:8786") as raised:
        DaskRunner(address, connect_timeout=1.0)
    assert repr(address) in str(raised.value)


@pytest.mark.parametrize(
    ("address", "port"),
    [
        ("tcp://127.0.0.1:99999", "99999"),
        ("tcp://127.0.0.1:0", "0"),
        ("tcp://127.0.0.1:-1", "-1"),
        ("tcp://[::1]:70000", "70000"),
    ],
    ids=["past-65535", "zero", "negative", "ipv6"],
)
def test_an_address_whose_port_no_scheduler_can_listen_on_is_refused(
    address: str, port: str
) -> None:
    """Dask parses a port past 65535, 0 or below it, and its client tries to connect there
    until ``connect_timeout`` (10 s by default) has passed: the runner then said that it
    could not reach the scheduler, and to start it. No scheduler listens on such a port:
    the address is refused at once, naming the port and the form an address takes."""
    with pytest.raises(ValueError, match="tcp://host:8786") as raised:
        DaskRunner(address, connect_timeout=1.0)
    message = str(raised.value)
    assert repr(address) in message
    assert f"port {port} " in message


def test_a_tls_address_without_dasks_tls_configuration_is_refused_saying_so() -> None:
    """A ``tls://`` address, with no TLS certificates in Dask's configuration, was refused as
    one where "something answers there in another protocol than Dask's", whether anything
    listened there or not: Dask's connector fails before it connects. The error says what
    is missing and how to give it."""
    with pytest.raises(ValueError, match="tls://") as raised:
        DaskRunner("tls://127.0.0.1:1", connect_timeout=1.0)
    message = str(raised.value)
    assert "'tls://127.0.0.1:1'" in message
    assert "distributed.comm.tls.ca-file" in message
    assert "client=" in message
    assert "another protocol" not in message


def test_an_address_with_a_newline_is_quoted_on_one_line() -> None:
    """An address with a trailing newline was quoted raw in Dask's words, so the error ran over
    two lines: what Dask says is quoted with its control characters escaped."""
    with pytest.raises(ConnectionError, match="cannot reach the Dask scheduler") as raised:
        DaskRunner("tcp://127.0.0.1:1\n", connect_timeout=1.0)
    message = str(raised.value)
    assert "\n" not in message
    assert "tcp://127.0.0.1:1\\n" in message


def test_an_address_of_a_protocol_dask_cannot_use_is_refused_saying_so() -> None:
    """A ``ucx://`` address, in a Dask installation without UCX, was refused as one where
    "something answers there in another protocol than Dask's": Dask's connector for it
    cannot be made. The error says that the protocol is not available."""
    from distributed.comm import registry

    try:
        registry.get_backend("ucx").get_connector()
    except Exception:
        pass
    else:
        pytest.skip("this Dask installation can use ucx://")
    with pytest.raises(ValueError, match="ucx://") as raised:
        DaskRunner("ucx://127.0.0.1:1", connect_timeout=1.0)
    message = str(raised.value)
    assert "'ucx://127.0.0.1:1'" in message
    assert "the ucx:// protocol is not available in this Dask installation" in message
    assert "another protocol" not in message


@pytest.mark.parametrize("scheme", ["tls", "tcp"])
def test_an_address_with_readable_tls_files_configured_is_tried(
    tmp_path: Path, scheme: str
) -> None:
    """With readable certificates in Dask's configuration, a ``tls://`` address (which uses
    them) and a ``tcp://`` one (which does not) are tried as any other: nothing listens there,
    so the scheduler cannot be reached."""
    import dask
    from tls_certs import authority

    ca = authority(tmp_path)
    client_cert = ca.issue(tmp_path, "laios client", server=False)
    settings = {
        "distributed.comm.tls.ca-file": str(ca.cert_file),
        "distributed.comm.tls.client.cert": str(client_cert.cert_file),
        "distributed.comm.tls.client.key": str(client_cert.key_file),
    }
    with dask.config.set(settings):
        with pytest.raises(ConnectionError, match="cannot reach the Dask scheduler"):
            DaskRunner(f"{scheme}://127.0.0.1:1", connect_timeout=1.0)


def test_a_tls_address_whose_configured_certificates_cannot_be_read_is_refused_saying_so(
    tmp_path: Path,
) -> None:
    """With TLS files in Dask's configuration that do not exist, a bare ``FileNotFoundError``
    ("No such file or directory", naming neither the address nor the file) left the runner's
    construction: the error names the address, what Dask said and the files configured."""
    import dask

    missing = str(tmp_path / "missing" / "ca.pem")
    settings = {
        "distributed.comm.tls.ca-file": missing,
        "distributed.comm.tls.client.cert": str(tmp_path / "missing" / "client.pem"),
    }
    with dask.config.set(settings):
        with pytest.raises(ValueError, match="tls://") as raised:
            DaskRunner("tls://127.0.0.1:1", connect_timeout=1.0)
    message = str(raised.value)
    assert "'tls://127.0.0.1:1'" in message
    assert "FileNotFoundError" in message
    assert f"distributed.comm.tls.ca-file {missing!r} (missing)" in message


@pytest.mark.parametrize(
    ("unreadable", "why"), [("missing", "missing"), ("directory", "a directory")]
)
def test_a_tcp_address_with_configured_tls_files_that_cannot_be_read_is_refused_saying_so(
    tmp_path: Path, unreadable: str, why: str
) -> None:
    """Dask's client makes the TLS context its configuration names for every address,
    ``tcp://`` too: with files there that cannot be read, a ``tcp://`` address was refused
    with a ``ConnectionError`` saying that the scheduler could not be reached, and to start
    it. It is refused as a ``tls://`` address is, naming the address, what Dask said and the
    file that cannot be read."""
    import dask

    ca = str(tmp_path / "missing" / "ca.pem") if unreadable == "missing" else str(tmp_path)
    settings = {
        "distributed.comm.tls.ca-file": ca,
        "distributed.comm.tls.client.cert": ca,
    }
    with dask.config.set(settings):
        with pytest.raises(ValueError, match="tcp://") as raised:
            DaskRunner("tcp://127.0.0.1:1", connect_timeout=1.0)
    message = str(raised.value)
    assert "'tcp://127.0.0.1:1'" in message
    assert "cannot reach" not in message
    assert f"distributed.comm.tls.ca-file {ca!r} ({why})" in message
    assert "tls://" in message  # (what the files are for)


def test_an_address_without_a_scheme_is_tls_when_dasks_default_scheme_is() -> None:
    """Dask gives an address without a scheme its ``distributed.comm.default-scheme``: with
    ``tls`` there and no TLS certificates configured, such an address was refused as one
    where "something answers there in another protocol than Dask's". It is refused as a
    ``tls://`` one is, saying what is missing."""
    import dask

    with dask.config.set({"distributed.comm.default-scheme": "tls"}):
        with pytest.raises(ValueError, match="tls://") as raised:
            DaskRunner("127.0.0.1:1", connect_timeout=1.0)
    message = str(raised.value)
    assert "'127.0.0.1:1'" in message
    assert "distributed.comm.default-scheme" in message
    assert "distributed.comm.tls.ca-file" in message
    assert "another protocol" not in message


#: A host name of 1,600 labels: Dask parses it, and no resolver finds it.
_LONG_NAME = ".".join(["a" * 60] * 1600)


@pytest.mark.parametrize(
    ("address", "error"),
    [
        ("tcp://" + "a" * 100_000, ValueError),  # (no port: Dask's parser refuses it)
        ("tcp://" + "a" * 100_000 + ":8786", ValueError),  # (a label IDNA cannot encode)
        (f"tcp://{_LONG_NAME}:8786", ConnectionError),
    ],
    ids=["no-port", "long-label", "unreachable"],
)
def test_a_long_address_is_described_briefly(address: str, error: type[Exception]) -> None:
    """The error quoted the address whole, twice (once in Dask's own text): a message of
    200,000 characters. It describes the address cut short, and Dask's text too, which is
    chained from either when it was cut."""
    with pytest.raises(error) as raised:
        DaskRunner(address, connect_timeout=1.0)
    message = str(raised.value)
    assert len(message) <= 1000, message[:1000]
    assert address[:100] in message
    cause = raised.value.__cause__
    assert cause is None or len(str(cause)) <= 1000, str(cause)[:1000]


def test_a_long_address_given_with_a_client_is_described_briefly() -> None:
    """Refused before the client is looked at, the address cut short."""
    with pytest.raises(ValueError, match="address or a client") as raised:
        DaskRunner("tcp://" + "a" * 100_000, client=object())
    assert len(str(raised.value)) <= 1000


def test_a_call_whose_worker_the_nanny_restarted_for_memory_says_what_dask_said(
    tools: ToolRegistry,
) -> None:
    """A result too large for its Dask worker's memory limit: the nanny restarts the worker,
    the cluster gives up on the task, and the call ends ``worker_lost``. Its error said only
    that the task ended 'error'; it now carries Dask's own reason (``KilledWorker``, which
    names the worker whose logs tell why). Its ``metadata["worker"]`` was ``None``: it now
    names the Dask worker the call began on."""
    import dask

    config = {"distributed.worker.daemon": False, "distributed.scheduler.allowed-failures": 0}
    with dask.config.set(config):
        cluster = distributed.LocalCluster(
            n_workers=1,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            memory_limit="300MB",
        )
    own = distributed.Client(cluster)
    executor = Executor(
        tools, runner=DaskRunner(client=own), store=MetricStore(), register_prometheus=False
    )
    try:
        (address,) = own.nthreads()
        result = executor.execute_task(task("returns_swelling", mb=400), CONTEXT, timeout=WAIT)
        assert result.metadata["error_type"] == "worker_lost", result
        assert "KilledWorker" in (result.error or ""), result.error
        # The worker the call began on, which the nanny restarted: the one an operator looks at.
        assert result.metadata.get("worker") == address, result.metadata
    finally:
        executor.shutdown(wait=False)
        own.close()
        cluster.close()


def test_a_runner_made_on_an_asynchronous_client_in_its_loop_reads_the_cluster(
    client: Any,
) -> None:
    """``Client(..., asynchronous=True)`` answers on its own loop with coroutines: the runner
    made there read the cluster's threads as a coroutine it never awaited (a RuntimeWarning)
    and reported 0 workers until its next reading."""
    import gc
    import warnings

    async def scenario() -> list[str]:
        own = await distributed.Client(client.scheduler.address, asynchronous=True)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                runner = DaskRunner(client=own)
                gc.collect()
            try:
                expected = sum((await own.nthreads()).values())
                give_up = time.monotonic() + WAIT
                while runner.stats.workers != expected and time.monotonic() < give_up:
                    await asyncio.sleep(0.05)
                assert runner.stats.workers == expected
            finally:
                runner.shutdown(wait=False)
            return [str(w.message) for w in caught if "never awaited" in str(w.message)]
        finally:
            await own.close()

    assert asyncio.run(scenario()) == []


def test_shutdown_after_dask_closed_the_runners_client_leaves_no_thread_behind(
    tools: ToolRegistry,
) -> None:
    """Dask closes a client that lost its scheduler and could not reconnect, but leaves the
    client's event loop thread running; ``Client.close`` then does nothing. A runner made from
    an address left that thread ("IO loop") behind at shutdown, one per runner that outlived
    its scheduler."""
    scheduler_only = distributed.LocalCluster(n_workers=0, processes=False, dashboard_address=":0")
    before = set(threading.enumerate())
    runner = DaskRunner(scheduler_only.scheduler_address, connect_timeout=1.0)
    own = [t for t in set(threading.enumerate()) - before if t.name == "IO loop"]
    assert own, "the runner's client started no event loop thread of its own"
    executor = Executor(tools, runner=runner, store=MetricStore(), register_prometheus=False)
    try:
        scheduler_only.close()
        assert wait_for(lambda: runner.client.status == "closed"), runner.client.status
        executor.shutdown(wait=True)
        for thread in own:
            thread.join(WAIT)
        assert [t for t in own if t.is_alive()] == []
    finally:
        executor.shutdown(wait=False)
        scheduler_only.close()


def test_a_call_on_a_client_closed_under_the_runner_says_what_to_do(
    client: Any, tools: ToolRegistry
) -> None:
    """A call made once the runner's client was closed was refused with Dask's own words
    ("ClosedClientError: Client is closed. Can't send update-graph message."), which say
    neither whose client it is nor what to do."""
    own = distributed.Client(client.scheduler.address)
    executor = Executor(
        tools, runner=DaskRunner(client=own), store=MetricStore(), register_prometheus=False
    )
    try:
        own.close()
        result = executor.execute_task(task("pid"), CONTEXT, timeout=WAIT)
        assert result.metadata["error_type"] == "dask", result
        assert "client is closed" in (result.error or ""), result.error
        assert "keep the client open" in (result.error or ""), result.error
    finally:
        executor.shutdown(wait=False)
        own.close()


def test_a_call_after_the_runner_lost_its_scheduler_says_what_to_do(tools: ToolRegistry) -> None:
    """Once Dask closed a runner's own client (it lost its scheduler and could not reconnect
    within connect_timeout), new calls were refused with Dask's "Client is closed" alone."""
    scheduler_only = distributed.LocalCluster(n_workers=0, processes=False, dashboard_address=":0")
    runner = DaskRunner(scheduler_only.scheduler_address, connect_timeout=1.0)
    executor = Executor(tools, runner=runner, store=MetricStore(), register_prometheus=False)
    try:
        scheduler_only.close()
        assert wait_for(lambda: runner.client.status == "closed"), runner.client.status
        result = executor.execute_task(task("pid"), CONTEXT, timeout=WAIT)
        assert result.metadata["error_type"] == "dask", result
        assert "lost its scheduler" in (result.error or ""), result.error
        assert "make a new runner" in (result.error or ""), result.error
    finally:
        executor.shutdown(wait=False)
        scheduler_only.close()


def test_shutdown_leaves_no_stats_thread_behind(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The thread that reads the cluster's size for ``stats`` slept through its interval
    before it saw the runner shut down: it outlived ``shutdown()`` by up to that long."""
    from laios.execution._runners import dask as dask_module

    monkeypatch.setattr(dask_module, "STATS_INTERVAL", 3600.0)
    before = set(threading.enumerate())
    runner = DaskRunner(client=client)
    own = [t for t in set(threading.enumerate()) - before if t.name == "laios-dask-stats"]
    assert own
    runner.shutdown(wait=True)
    for thread in own:
        thread.join(WAIT)
    assert not any(t.is_alive() for t in own)


def test_a_client_whose_close_was_cut_short_keeps_its_loop(tools: ToolRegistry) -> None:
    """Shutdown stops the event loop of a client Dask closed itself; a client of its own whose
    close was cut short (a timeout) keeps its loop, which closing it again needs: stopped, the
    client's own ``__del__`` raised "IOLoop is closed"."""
    scheduler_only = distributed.LocalCluster(n_workers=0, processes=False, dashboard_address=":0")
    runner = DaskRunner(scheduler_only.scheduler_address)
    client = runner.client
    close = client.close

    def cut_short(*args: Any, **kwargs: Any) -> None:
        raise TimeoutError("the close was cut short")

    client.close = cut_short
    executor = Executor(tools, runner=runner, store=MetricStore(), register_prometheus=False)
    try:
        executor.shutdown(wait=True)
        assert client.status != "closed"
        close()  # as the client's __del__ does
        assert client.status == "closed"
    finally:
        client.close = close
        executor.shutdown(wait=False)
        scheduler_only.close()


def test_a_call_after_runner_client_was_closed_by_hand_does_not_blame_the_scheduler(
    client: Any, tools: ToolRegistry
) -> None:
    """``runner.client`` is public: an application may close the client the runner made for
    itself. A call then said only that the runner lost its scheduler (while it was up); it now
    names both ways such a client ends closed."""
    runner = DaskRunner(client.scheduler.address, connect_timeout=5.0)
    executor = Executor(tools, runner=runner, store=MetricStore(), register_prometheus=False)
    try:
        runner.client.close()
        result = executor.execute_task(task("pid"), CONTEXT, timeout=WAIT)
        assert result.metadata["error_type"] == "dask", result
        assert "runner.client.close()" in (result.error or ""), result.error
        assert "make a new runner" in (result.error or ""), result.error
    finally:
        executor.shutdown(wait=False)


def test_a_call_its_worker_deems_past_its_deadline_says_the_clocks_disagree(
    make: Callable[..., Executor], client: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker whose clock runs well ahead of the caller's finds a call past its deadline
    before the caller's timeout: the call never starts, and ends at once saying the clocks
    disagree. It waited for ``OUTCOME_GRACE`` and then blamed a dead worker or scheduler."""
    from laios.execution._runners import dask as dask_module

    executor = make()
    warm(executor, client)
    behind = SimpleNamespace(
        time=lambda: time.time() - 120.0, monotonic=time.monotonic, sleep=time.sleep
    )
    monkeypatch.setattr(dask_module, "time", behind)  # (the caller's clock, 2 minutes behind)
    box = str(tmp_path)
    started = time.monotonic()
    result = executor.execute_task(
        task("stamp_and_sleep", box=box, stamp="skewed"), CONTEXT, timeout=60.0
    )
    took = time.monotonic() - started
    assert result.metadata["outcome"] == "rejected", result.error
    assert result.metadata["error_type"] == "clock"
    error = result.error or ""
    assert "runs about 12" in error, error  # (120s ahead, give or take the trip)
    assert "NTP" in error
    assert took < dask_module.OUTCOME_GRACE / 2, f"the call ended after {took:.1f}s"
    assert process_tools.read_note(box, "skewed") is None, "the tool started"


def test_an_asynchronous_client_whose_loop_is_closed_is_refused_at_construction(
    client: Any,
) -> None:
    """An asynchronous client made in an ``asyncio.run`` that has returned runs on a closed
    loop: nothing asked of it ever happens. The runner took it, and each call then waited for
    its timeout ("no worker was free yet"), or for ever without one."""

    async def make() -> Any:
        return await distributed.Client(client.scheduler.address, asynchronous=True)

    own = asyncio.run(make())
    with pytest.raises(ValueError, match=r"event loop is closed.*asyncio\.run"):
        DaskRunner(client=own)
    del own
    forget_clients_of_closed_loops()


def test_a_call_after_the_loop_of_the_runners_client_closed_is_refused_at_once(
    client: Any, tools: ToolRegistry
) -> None:
    """A runner made in an ``asyncio.run`` on an asynchronous client of that loop, used after
    it returned: its calls are refused at once, saying why, and shutdown ends."""

    async def make() -> DaskRunner:
        own = await distributed.Client(client.scheduler.address, asynchronous=True)
        return DaskRunner(client=own)

    runner = asyncio.run(make())
    executor = Executor(tools, runner=runner, store=MetricStore(), register_prometheus=False)
    started = time.monotonic()
    result = executor.execute_task(task("pid"), CONTEXT, timeout=10.0)
    took = time.monotonic() - started
    assert result.metadata["outcome"] == "rejected", result.error
    assert result.metadata["error_type"] == "dask"
    assert "event loop is closed" in (result.error or ""), result.error
    assert took < 5.0, f"the call ended after {took:.1f}s"
    closer = threading.Thread(target=executor.shutdown, daemon=True)
    closer.start()
    closer.join(WAIT)
    assert not closer.is_alive(), "shutdown did not end"
    del executor, runner, closer
    forget_clients_of_closed_loops()


def test_calls_through_an_asynchronous_client_whose_loop_stopped_end_and_say_so(
    client: Any, tools: ToolRegistry, tmp_path: Any
) -> None:
    """An asynchronous client whose event loop stopped (the thread that ran it ended, the loop
    still open) sends and delivers nothing. A call under way then never ended without a
    timeout, a call made after waited for its timeout ("no worker was free yet"), and
    shutdown waited for ever for the call under way."""
    loop = asyncio.new_event_loop()
    runs = threading.Thread(target=loop.run_forever, daemon=True)
    runs.start()

    async def make() -> Any:
        return await distributed.Client(client.scheduler.address, asynchronous=True)

    own = asyncio.run_coroutine_threadsafe(make(), loop).result(WAIT)
    try:
        runner = DaskRunner(client=own)
        executor = Executor(tools, runner=runner, store=MetricStore(), register_prometheus=False)
        box = str(tmp_path)
        caller = Caller(executor, task("hang", box=box), CONTEXT)
        assert wait_for(lambda: process_tools.read_note(box, "hang")), "the tool never started"
        assert wait_for(lambda: runner.stats.busy == 1), "its start never arrived"
        # (started while the loop's thread lives: it cannot take that thread's id)
        go = threading.Event()
        closer = threading.Thread(target=lambda: go.wait() and executor.shutdown(), daemon=True)
        closer.start()
        loop.call_soon_threadsafe(loop.stop)
        runs.join(WAIT)
        result = caller.returned(WAIT, "the call under way never ended")
        assert result.metadata["error_type"] == "worker_lost", result.error
        assert "event loop of the runner's Dask client is not running" in (result.error or "")
        started = time.monotonic()
        late = executor.execute_task(task("pid"), CONTEXT, timeout=10.0)
        took = time.monotonic() - started
        assert late.metadata["outcome"] == "rejected", late.error
        assert late.metadata["error_type"] == "dask"
        assert "event loop of the runner's Dask client is not running" in (late.error or "")
        assert took < 5.0, f"the call ended after {took:.1f}s"
        go.set()
        closer.join(WAIT)
        assert not closer.is_alive(), "shutdown did not end"
    finally:
        # (the loop runs again to close the client: the scheduler then drops its tasks)
        runs = threading.Thread(target=loop.run_forever, daemon=True)
        runs.start()

        async def close() -> None:
            await own.close()

        asyncio.run_coroutine_threadsafe(close(), loop).result(WAIT)
        loop.call_soon_threadsafe(loop.stop)
        runs.join(WAIT)
        loop.close()


def test_huge_progress_reports_and_checkpoints_are_cut_on_the_worker(
    make: Callable[..., Executor], client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A progress report or checkpoint travels through the scheduler, which keeps it: a tool's
    megabytes-large message, details, checkpoint name and data went there whole, to be cut
    only on the caller's side. They are cut on the worker now, as the caller keeps them (the
    message's secret scrubbed before the cut, on the checkpoint's span too)."""
    from laios.execution._runners import dask as dask_runner

    monkeypatch.setattr(dask_runner, "STATS_INTERVAL", 3600.0)  # (the scheduler keeps them)
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    executor = make(tracer_provider=provider)
    messages: list[str] = []

    def on_progress(event: str, data: Any) -> None:
        if event == "progress":
            messages.append(data["message"])

    result = executor.execute_task(
        task("floods", api_key=KEY), CONTEXT, timeout=WAIT, on_progress=on_progress
    )
    assert result.success, result.error
    sizes = [
        len(bytes(message))
        for topic, events in client.get_events().items()
        if topic.startswith("laios-")
        for _, message in events
        if b"flood-marker" in bytes(message) or b"ccccc" in bytes(message)
    ]
    assert len(sizes) == 2, sizes
    assert max(sizes) < 16 * 1024, sizes
    (message,) = messages
    assert len(message) == 1024
    assert message.endswith("m[RE…"), message[-40:]  # ([REDACTED], cut)
    metrics = executor.get_metrics(result.task_id)
    assert metrics is not None
    (point,) = [p for p in metrics.checkpoints if p["name"].startswith("ccc")]
    assert len(point["name"]) == 256
    (span,) = [s for s in exporter.get_finished_spans() if s.name.startswith("checkpoint ccc")]
    assert span.attributes is not None
    blob = str(span.attributes["laios.checkpoint.blob"])
    assert blob.endswith("e[REDA…"), blob[-40:]  # ([REDACTED], cut)
    assert KEY[:5] not in blob


def test_a_long_checkpoint_name_cut_on_the_worker_keeps_no_part_of_a_secret(
    make: Callable[..., Executor],
) -> None:
    """A checkpoint name longer than the caller keeps was cut on the worker before it was
    scrubbed: a secret across the cut left its first characters on the checkpoint's span."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    executor = make(tracer_provider=provider)
    call = task("names_a_checkpoint_after_its_key", api_key=KEY)
    result = executor.execute_task(call, CONTEXT, timeout=WAIT)
    assert result.success, result.error
    (span,) = [s for s in exporter.get_finished_spans() if s.name.startswith("checkpoint nnn")]
    assert span.name.endswith("n[REDA…"), span.name[-40:]  # ([REDACTED], cut)
    assert KEY[:4] not in span.name


def test_a_checkpoint_name_and_message_that_cannot_be_printed_show_as_on_a_thread(
    make: Callable[..., Executor],
) -> None:
    """A checkpoint name and a progress message that can be neither pickled nor printed went
    as the name of their class (``<_Unprintable>``), where a tool on a thread has
    ``<unprintable name>`` and ``<unprintable message>``."""
    messages: list[Any] = []

    def on_progress(event: str, data: dict[str, Any]) -> None:
        if event == "progress":
            messages.append(data["message"])

    executor = make()
    call = task("reports_unprintably")
    result = executor.execute_task(call, CONTEXT, timeout=WAIT, on_progress=on_progress)
    assert result.success, result.error
    assert messages == ["<unprintable message>"]
    metrics = executor.get_metrics(call.id)
    assert metrics is not None
    names = [point["name"] for point in metrics.checkpoints]
    assert "<unprintable name>" in names, names


def test_what_cannot_be_printed_is_warned_of_in_the_callers_process(
    make: Callable[..., Executor], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The warnings that a checkpoint name and a progress message could not be printed were
    logged in the worker's processes, where the application's logging does not reach: a
    handler on the ``laios`` logger of the caller's process saw none, where it sees both for
    a tool on a thread."""
    import logging

    from laios.execution._logs import WarningLimiter

    warnings: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "could not be printed" in record.getMessage():
                warnings.append(record.getMessage())

    # (at most one warning a minute of each placeholder: a fresh count for this run)
    monkeypatch.setattr("laios.execution._records._unprintable_warnings", WarningLimiter())
    handler = Collect(logging.WARNING)
    logger = logging.getLogger("laios")
    logger.addHandler(handler)
    try:
        result = make().execute_task(task("reports_unprintably"), CONTEXT, timeout=WAIT)
    finally:
        logger.removeHandler(handler)
    assert result.success, result.error
    assert len(warnings) == 2, warnings
    assert all("of type _Unprintable " in message for message in warnings), warnings
    assert any("'<unprintable message>'" in message for message in warnings), warnings
    assert any("'<unprintable name>'" in message for message in warnings), warnings


def test_a_large_call_past_its_short_timeout_ends_then_and_says_why(
    make: Callable[..., Executor],
) -> None:
    """A call was pickled on the caller's thread: with a 200 MB parameter and a 0.2 s timeout,
    the task returned only once its call had been pickled, late, and said "no worker was free
    yet" although the workers were idle."""
    executor = make()
    big = b"x" * 200_000_000
    started = time.monotonic()
    result = executor.execute_task(task("pid", data=big), CONTEXT, timeout=0.2)
    took = time.monotonic() - started
    del big
    assert result.metadata["outcome"] == "timeout", result.error
    error = result.error or ""
    assert "still being pickled" in error or "MB pickled) was on its way" in error, error
    assert took < 5.0, f"the call ended after {took:.2f}s"  # (generous: a loaded machine)
    assert wait_for(lambda: executor.runner.stats.queued == 0)
    assert executor.execute_task(task("pid"), CONTEXT, timeout=WAIT).success


def test_a_timeout_while_a_large_call_from_a_loop_is_pickled_names_the_loops_bound(
    make: Callable[..., Executor],
) -> None:
    """From an event loop's thread a call is pickled off it past 256 KiB, not 64 KiB: the
    error of a timeout while it is pickled gives the bound that applied."""
    executor = make()
    held = process_tools.HeldWhilePickled
    held.reset()
    large = task("pid", blob=bytes(512 * 1024), gate=held())
    results: list[TaskResult] = []

    async def awaited() -> None:
        results.append(await executor.execute_async(large, CONTEXT, timeout=0.5))

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


def test_a_small_call_pickled_on_the_callers_thread_past_its_timeout_says_so(
    make: Callable[..., Executor],
) -> None:
    """A small call is pickled on the caller's thread: when its pickling ends past the task's
    timeout (a parameter slow to pickle), the error says the call was being pickled, not that
    no worker was free (the workers were idle), and it is never sent."""
    executor = make()
    held = process_tools.HeldWhilePickled
    held.reset()
    timeout = 0.2
    results: list[TaskResult] = []
    caller = threading.Thread(
        target=lambda: results.append(
            executor.execute_task(task("pid", gate=held()), CONTEXT, timeout=timeout)
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
    assert executor.execute_task(task("pid"), CONTEXT, timeout=WAIT).success


def test_a_large_call_that_cannot_be_pickled_is_refused_naming_the_parameter(
    make: Callable[..., Executor],
) -> None:
    """Pickled on one of the runner's threads (past 64 KiB), it is refused from there as a
    small one is at once: naming the parameter, never a value."""
    executor = make()
    refused = task("pid", api_key=KEY, data="x" * 200_000, handle=threading.Lock())
    result = executor.execute_task(refused, CONTEXT, timeout=WAIT)
    assert result.metadata["outcome"] == "rejected", result.error
    assert result.metadata["error_type"] == "not_picklable"
    error = result.error or ""
    assert "its parameter 'handle' (lock) cannot be pickled" in error, error
    assert KEY not in error


def test_a_blocking_call_on_the_loop_of_the_runners_asynchronous_client_is_refused(
    client: Any, tools: ToolRegistry
) -> None:
    """``execute_task`` on the thread that runs the event loop of the runner's asynchronous
    client blocks the loop that must send the call and deliver its outcome: it waited for its
    timeout ("no worker was free yet"), or for ever without one."""

    async def scenario() -> tuple[TaskResult, float, TaskResult]:
        own = await distributed.Client(client.scheduler.address, asynchronous=True)
        try:
            runner = DaskRunner(client=own)
            store = MetricStore()
            executor = Executor(tools, runner=runner, store=store, register_prometheus=False)
            try:
                started = time.monotonic()
                blocked = executor.execute_task(task("pid"), CONTEXT, timeout=10.0)
                took = time.monotonic() - started
                awaited = await executor.execute_async(task("pid"), CONTEXT, timeout=WAIT)
            finally:
                await executor.aclose()
            return blocked, took, awaited
        finally:
            await own.close()

    blocked, took, awaited = asyncio.run(scenario())
    assert blocked.metadata["outcome"] == "rejected", blocked.error
    assert blocked.metadata["error_type"] == "would_deadlock"
    assert "Await execute_async" in (blocked.error or ""), blocked.error
    assert took < 5.0, f"the call ended after {took:.1f}s"
    assert awaited.success, awaited.error


def test_an_in_process_cluster_closed_leaves_no_tool_process_behind(tools: ToolRegistry) -> None:
    """A Dask worker in the caller's own process (``processes=False``) keeps the processes
    its tools run in in that process too: once the executor, the client and the cluster were
    closed, the tool's process and its reader thread ran on until the program exited."""
    readers = {t for t in threading.enumerate() if t.name == "laios-process-reader"}
    cluster = distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0"
    )
    client = distributed.Client(cluster)
    try:
        with Executor(
            tools, runner=DaskRunner(client=client), store=MetricStore(), register_prometheus=False
        ) as executor:
            result = executor.execute_task(task("pid"), CONTEXT, timeout=WAIT)
        assert result.success, result.error
    finally:
        client.close()
        cluster.close()
        forget_clients_of_closed_loops()
    assert wait_for(lambda: not alive(result.output)), "the tool's process ran on"
    assert wait_for(
        lambda: {t for t in threading.enumerate() if t.name == "laios-process-reader"} <= readers
    ), "the reader thread of the tool's process ran on"


class _HoldClose(distributed.WorkerPlugin):
    """A Dask worker plugin whose teardown waits until ``until()`` is true (``WAIT`` seconds at
    most). A worker's close awaits its plugins' teardowns (the runner's, which kills the tools
    there, among them) before it closes its connection to the scheduler: held so, the report
    of a call its close ended reaches the caller, as it does on a loaded machine."""

    def __init__(self, until: Callable[[], Any]) -> None:
        self.until = until

    async def teardown(self, worker: Any) -> None:
        deadline = time.monotonic() + WAIT
        while not self.until() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)


def _in_process_worker(cluster: Any) -> Any:
    """The one worker of a ``processes=False`` cluster (it runs in this process)."""
    (worker,) = cluster.workers.values()
    return worker


@contextlib.contextmanager
def _in_process_cluster(tools: ToolRegistry) -> Iterator[tuple[Any, Any, Executor]]:
    """A cluster of one worker in this process (one thread), its client, and an executor
    whose runner uses that client; all closed on leaving (the executor without waiting)."""
    cluster = distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0"
    )
    client = distributed.Client(cluster)
    executor = Executor(
        tools, runner=DaskRunner(client=client), store=MetricStore(), register_prometheus=False
    )
    try:
        yield cluster, client, executor
    finally:
        executor.shutdown(wait=False)
        client.close()
        cluster.close()
        forget_clients_of_closed_loops()


def _on_worker_loop(worker: Any, work: Any) -> Any:
    """Run the coroutine ``work`` on ``worker``'s event loop, and return what it returns."""
    return asyncio.run_coroutine_threadsafe(work, worker.loop.asyncio_loop).result(WAIT)


def _hold_close(cluster: Any, until: Callable[[], Any]) -> None:
    worker = _in_process_worker(cluster)
    _on_worker_loop(worker, worker.plugin_add(plugin=_HoldClose(until), name="hold-close"))


@pytest.mark.parametrize("report_first", [False, True], ids=["as-it-comes", "report-first"])
def test_a_call_whose_cluster_is_closed_under_it_says_so(
    tools: ToolRegistry, tmp_path: Any, report_first: bool
) -> None:
    """Closing the cluster of the runner's client (``client=``) while a tool runs ended the
    call with an error that said the client was closed; Dask closes the client with its
    cluster, and the errors of that call and of the next one now say the cluster was closed.

    Two things reach the caller as the worker closes: its report that the tool was killed
    there, and (once the client is closed) the loss of the call's Dask task. On a loaded
    machine the report came first and said that the worker's process runner "was terminated
    (its executor was collected without shutdown(), or the interpreter is exiting)"; and the
    next call, sent before Dask had closed the client, was not refused as sent to a closed
    cluster. ``report_first`` holds the worker's close until the report has arrived."""
    with _in_process_cluster(tools) as (cluster, _, executor):
        box = str(tmp_path)
        closer = threading.Thread(target=cluster.close, daemon=True)
        try:
            caller = Caller(executor, task("hang", box=box), CONTEXT)
            if report_first:
                _hold_close(cluster, lambda: caller.results)
            hung = wait_for(lambda: process_tools.read_note(box, "hang"))
            assert hung is not None, "the tool never started"
            closer.start()
            result = caller.returned(WAIT, "the call never ended")
            assert result.metadata["error_type"] == "worker_lost", result
            assert "cluster was closed" in (result.error or ""), result.error
            assert "client was closed" not in (result.error or ""), result.error
            assert "collected" not in (result.error or ""), result.error
            assert "interpreter" not in (result.error or ""), result.error
            assert wait_for(lambda: not alive(hung["pid"])), "the tool ran on without its cluster"
            later = executor.execute_task(task("pid"), CONTEXT, timeout=WAIT)
            assert later.metadata["error_type"] == "dask", later
            assert "cluster was closed" in (later.error or ""), later.error
        finally:
            closer.join(WAIT)


def test_a_call_whose_worker_closes_under_it_says_so(tools: ToolRegistry, tmp_path: Any) -> None:
    """A Dask worker closed while it ran a tool (stopped, retired) kills the tool as it closes
    (its process runner is terminated): its report of that said the process runner "was
    terminated (its executor was collected without shutdown(), or the interpreter is
    exiting)", error_type ``terminated``. It now says that the worker closed, ``worker_lost``,
    and its ``metadata["worker"]`` (``None`` before) names that worker."""
    with _in_process_cluster(tools) as (cluster, _, executor):
        box = str(tmp_path)
        worker = _in_process_worker(cluster)
        closer = threading.Thread(
            target=_on_worker_loop, args=(worker, worker.close()), daemon=True
        )
        try:
            caller = Caller(executor, task("hang", box=box), CONTEXT)
            _hold_close(cluster, lambda: caller.results)
            hung = wait_for(lambda: process_tools.read_note(box, "hang"))
            assert hung is not None, "the tool never started"
            closer.start()
            result = caller.returned(WAIT, "the call never ended")
            assert result.metadata["error_type"] == "worker_lost", result
            error = result.error or ""
            assert f"Dask worker {worker.address} closed while" in error, error
            assert result.metadata.get("worker") == worker.address, result.metadata
            assert "collected" not in error, error
            assert "interpreter" not in error, error
            assert "cluster was closed" not in error, error
            assert wait_for(lambda: not alive(hung["pid"])), (
                "the tool ran on after its worker closed"
            )
        finally:
            closer.join(WAIT)


@pytest.mark.parametrize("report_first", [False, True], ids=["as-it-comes", "report-first"])
def test_a_call_whose_task_a_cluster_restart_cancels_says_so(
    tools: ToolRegistry, tmp_path: Any, report_first: bool
) -> None:
    """``client.restart()`` cancels every task on the cluster: a call under way ended
    ``worker_lost`` with an error that said "a worker died while running it and the cluster
    gave up on it, or the scheduler went away", neither of which had happened. It now says
    that the task was cancelled, and what cancels one.

    Two things reach the caller: the cancellation of the call's Dask task (delivered on
    Dask's callback thread), and the worker's report that it killed the tool (its task
    released, or the worker closed by the restart). On a loaded machine the report came first
    and said only that the worker closed, "stopped, retired or restarted". ``report_first``
    holds Dask's callback thread, and the worker's close, until the call has returned.

    The error then still guessed, "as it does every task when the cluster is restarted
    (client.restart()) or when the client loses its scheduler, or the application cancelled
    it", where Dask had said why (it cancels each task for "scheduler-restart"): it names the
    restart alone."""
    with _in_process_cluster(tools) as (cluster, client, executor):
        box = str(tmp_path)
        caller = Caller(executor, task("hang", box=box), CONTEXT)
        released = threading.Event()
        if report_first:
            _hold_close(cluster, lambda: caller.results)
        hung = wait_for(lambda: process_tools.read_note(box, "hang"))
        assert hung is not None, "the tool never started"
        if report_first:
            _hold_callbacks(client, lambda: caller.results or released.is_set())
        try:
            client.restart(wait_for_workers=False)
            result = caller.returned(WAIT, "the call never ended")
        finally:
            released.set()
        assert result.metadata["error_type"] == "worker_lost", result
        error = result.error or ""
        assert "ended 'cancelled'" in error, error
        assert "the cluster was restarted (client.restart()" in error, error
        assert "loses its scheduler" not in error, error
        assert "the application cancelled" not in error, error
        assert "worker died" not in error, error
        assert "connection to the Dask scheduler" not in error, error  # (it is up)
        assert wait_for(lambda: not alive(hung["pid"])), "the tool ran on after its cancellation"


def _hold_callbacks(client: Any, until: Callable[[], Any]) -> None:
    """Hold Dask's callback thread, which runs the done callbacks of every future of this
    process in turn (the runner's among them), until ``until()`` is true (``WAIT`` seconds at
    most)."""
    held = client.scatter(1)  # (done already: its callback runs at once)
    held.add_done_callback(lambda _: wait_for(until))


def test_a_call_whose_task_is_cancelled_says_so_when_the_workers_report_comes_first(
    tools: ToolRegistry, tmp_path: Any
) -> None:
    """A Dask task cancelled while its tool runs (here by the application) is released on
    its worker, which kills the tool and reports that it did. When that report reached the
    caller before the task's cancellation did (on Dask's callback thread, late on a loaded
    machine), the call said the worker killed the tool as "the scheduler released its task",
    not that the task was cancelled; it now says so whichever comes first."""
    with _in_process_cluster(tools) as (_, client, executor):
        box = str(tmp_path)
        caller = Caller(executor, task("hang", box=box), CONTEXT)
        hung = wait_for(lambda: process_tools.read_note(box, "hang"))
        assert hung is not None, "the tool never started"
        (key,) = client.futures  # (the call's Dask task, the only one)
        released = threading.Event()
        _hold_callbacks(client, lambda: caller.results or released.is_set())
        try:
            client.cancel([distributed.Future(key, client)])
            result = caller.returned(WAIT, "the call never ended")
        finally:
            released.set()
        assert result.metadata["error_type"] == "worker_lost", result
        error = result.error or ""
        assert "ended 'cancelled'" in error, error
        assert "the application cancelled it" in error, error
        assert wait_for(lambda: not alive(hung["pid"])), "the tool ran on after its cancellation"


def _cancel_running_call(
    executor: Executor, client: Any, box: str, report_first: bool, reason: str
) -> TaskResult:
    """Run ``hang`` on the module's cluster, cancel its Dask task with ``reason`` once the tool
    runs, as ``client.cancel(future, reason=...)`` does (on the scheduler, and in the client's
    future: its worker kills the tool as the task is released, and reports it), and return
    the call's result. ``report_first`` holds Dask's callback thread, and with it the
    runner's handling of the cancellation, until the call has returned: the worker's report
    comes first."""
    caller = Caller(executor, task("hang", box=box), CONTEXT)
    hung = wait_for(lambda: process_tools.read_note(box, "hang"))
    assert hung is not None, "the tool never started"
    (key,) = [key for keys in client.processing().values() for key in keys]
    future = distributed.Future(key, client)
    released = threading.Event()
    if report_first:
        _hold_callbacks(client, lambda: caller.results or released.is_set())
    try:
        client.cancel([future], reason=reason)
        result: TaskResult = caller.returned(WAIT, "the call never ended")
    finally:
        released.set()
    assert wait_for(lambda: not alive(hung["pid"])), "the tool ran on after its cancellation"
    kept = cancel_reason(future)
    if kept != reason:  # (older Dask, 2024.8 among them: the scheduler says "unknown")
        pytest.skip(
            f"distributed {distributed.__version__} does not keep the reason given to "
            f"client.cancel (it says {kept!r}): no runner can tell it"
        )
    return result


@pytest.mark.parametrize("report_first", [False, True], ids=["as-it-comes", "report-first"])
def test_a_call_whose_task_dask_cancelled_for_a_lost_scheduler_says_so_whichever_comes_first(
    make: Callable[..., Executor], client: Any, tmp_path: Any, report_first: bool
) -> None:
    """Dask's client cancels its futures for ``"scheduler-connection-lost"`` as it loses its
    scheduler. A call whose worker's report of the kill reached the caller before that
    cancellation was handled said that the cluster cancelled its task, "as it does every task
    when the cluster is restarted (client.restart()) or when the client loses its scheduler,
    or the application cancelled it", where the call handled the cancellation first said that
    the connection to the scheduler was lost: it now says so whichever comes first. (The
    reason is given here with the scheduler up, so that the worker's report can come.)"""
    result = _cancel_running_call(
        make(), client, str(tmp_path), report_first, reason="scheduler-connection-lost"
    )
    assert result.metadata["error_type"] == "worker_lost", result
    error = result.error or ""
    assert f"connection to the Dask scheduler at {client.scheduler.address} was lost" in error
    assert "ended 'cancelled'" in error, error
    assert "reconnect" in error, error
    assert "client.restart()" not in error, error
    assert "the application cancelled" not in error, error


@pytest.mark.parametrize("report_first", [False, True], ids=["as-it-comes", "report-first"])
def test_a_call_whose_task_the_application_cancelled_with_a_reason_quotes_it(
    make: Callable[..., Executor], client: Any, tmp_path: Any, report_first: bool
) -> None:
    """A call whose Dask task the application cancelled with a reason
    (``client.cancel(future, reason=...)``) said only what cancels a task in general, "as it
    does every task when the cluster is restarted (client.restart()) or when the client loses
    its scheduler, or the application cancelled it", dropping the reason given. It now quotes
    that reason, whichever comes first: the cancellation or the worker's report of the kill."""
    reason = "over budget \x1b[2J" + "x" * 300
    result = _cancel_running_call(make(), client, str(tmp_path), report_first, reason=reason)
    assert result.metadata["error_type"] == "worker_lost", result
    error = result.error or ""
    assert "ended 'cancelled'" in error, error
    assert "'over budget \\x1b[2Jxxx" in error, error  # (escaped, as repr writes it)
    assert "\x1b" not in error, error
    assert "x" * 300 not in error, error  # (cut)
    assert "client.restart()" not in error, error
    assert "connection to the Dask scheduler" not in error, error


@pytest.mark.parametrize("report_first", [False, True], ids=["as-it-comes", "report-first"])
def test_a_call_whose_task_dask_cancelled_for_a_reason_of_its_own_says_who_may_have_given_it(
    make: Callable[..., Executor], client: Any, tmp_path: Any, report_first: bool
) -> None:
    """Dask's scheduler cancels tasks for reasons of its own too (``"lost dependencies"``,
    ``"already forgotten"``). Such a reason was said to have been given to
    ``client.cancel(..., reason=...)`` by the application or another client of the cluster;
    the error now says that Dask may have given it. (Given here through ``client.cancel``, as
    the client reads it the same way whoever gives it.)"""
    result = _cancel_running_call(
        make(), client, str(tmp_path), report_first, reason="lost dependencies"
    )
    assert result.metadata["error_type"] == "worker_lost", result
    error = result.error or ""
    assert "its task was cancelled for the reason 'lost dependencies'" in error, error
    assert "given by Dask" in error, error
    assert "given to client.cancel(..., reason=...) by this application" not in error, error


def test_a_queued_call_given_up_while_a_callback_holds_the_clients_loop_ends_on_time(
    tools: ToolRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call given up before its worker's report of its start came (``cancel_task``, its
    timeout) waited for the client's event loop to send its cancellation, up to a second;
    while an ``on_progress`` callback held that loop, ``cancel_task`` returned a second late
    and a call ended a second past its timeout. Such a call now ends on time; its
    cancellation leaves once the callback returns. (The wait is made longer than the test's
    margins here, so that one shows.)"""
    from laios.execution._runners import dask as dask_runner

    monkeypatch.setattr(dask_runner, "STOP_HANDOVER", WAIT)
    held = threading.Event()
    release = threading.Event()

    def hold(event: str, data: Any) -> None:
        if event == "started":
            held.set()
            release.wait(3 * WAIT)

    with _in_process_cluster(tools) as (_, _client, executor):
        try:
            holder = Caller(executor, task("pid"), CONTEXT, timeout=4 * WAIT, on_progress=hold)
            assert held.wait(WAIT), "the first call never started"
            queued = task("pid")
            caller = Caller(executor, queued, CONTEXT, timeout=WAIT)
            assert wait_for(lambda: executor.runner.stats.queued == 1), "never submitted"
            started = time.monotonic()
            assert executor.cancel_task(queued.id)
            cancelling = time.monotonic() - started
            assert cancelling < WAIT / 3, f"cancel_task took {cancelling:.1f}s"
            result = caller.returned(WAIT / 3, "the cancelled call never ended")
            assert result.metadata["outcome"] == "cancelled", result
            timed = Caller(executor, task("pid"), CONTEXT, timeout=1.0)
            late = timed.returned(WAIT / 3, "the call did not end at its timeout")
        finally:
            release.set()
        assert holder.returned(WAIT).success
    assert late.metadata["outcome"] == "timeout", late
    assert late.execution_time_seconds < WAIT / 3, late


def test_a_call_timed_out_while_the_client_reconnects_says_the_scheduler_is_gone(
    tools: ToolRegistry,
) -> None:
    """A call made while the runner's client reconnected to its lost scheduler ended at its
    timeout saying that "a worker was free but had not taken it yet": there was no scheduler
    to give it to one. The error now says that the connection to the scheduler was lost and
    that the client is reconnecting."""
    with _scheduler_in_a_process() as (scheduler, address):
        runner = DaskRunner(address, connect_timeout=WAIT)
        executor = Executor(tools, runner=runner, store=MetricStore(), register_prometheus=False)
        try:
            assert executor.execute_task(task("pid"), CONTEXT, timeout=WAIT).success
            scheduler.kill()
            scheduler.wait(WAIT)
            assert wait_for(lambda: runner.client.status == "connecting"), runner.client.status
            result = executor.execute_task(task("pid"), CONTEXT, timeout=1.0)
        finally:
            executor.shutdown(wait=False)
            forget_clients_of_closed_loops()
    assert result.metadata["outcome"] == "timeout", result
    error = result.error or ""
    assert "a worker was free" not in error, error
    assert f"connection to the Dask scheduler at {address} was lost" in error, error
    assert "reconnecting" in error, error
    assert "the tool was never started" in error, error


def test_a_registry_handing_out_a_coroutine_is_told_so_and_the_coroutine_closed(
    client: Any,
) -> None:
    """A plain ``get_tool`` around an async lookup: the refusal said the tool "cannot be
    pickled" and to define its class at module level, and left the coroutine unclosed."""
    import inspect

    made: list[Any] = []

    class AsyncInside(ToolRegistry):
        async def _lookup(self, name: str) -> Any:
            return ToolRegistry.get_tool(self, name)

        def get_tool(self, name: str) -> Any:
            made.append(self._lookup(name))
            return made[-1]

    registry = AsyncInside()
    registry.register_tool(create_simple_tool("pid", "Its pid.", os.getpid))
    executor = Executor(
        registry, runner=DaskRunner(client=client), store=MetricStore(), register_prometheus=False
    )
    try:
        result = executor.execute_task(task("pid"), CONTEXT, timeout=WAIT)
    finally:
        executor.shutdown(wait=False)
    assert result.success is False
    error = result.error or ""
    assert "module level" not in error, error
    assert "the tool registry returned a coroutine (" in error, error
    assert "get_tool must return the tool itself (or None)" in error, error
    assert made
    assert [inspect.getcoroutinestate(c) for c in made] == ["CORO_CLOSED"] * len(made)


def test_a_huge_id_is_cut_in_a_not_picklable_refusal(make: Callable[..., Executor]) -> None:
    """A call refused before anything is sent quotes a 1 MB task id cut, as every other
    message does, never whole."""
    executor = make()
    refused = Task(
        id="n" * 1_000_000,
        plan_id="p",
        description="pid",
        tool_name="pid",
        parameters={"handle": threading.Lock()},
    )
    result = executor.execute_task(refused, CONTEXT, timeout=WAIT)
    assert result.metadata["error_type"] == "not_picklable"
    assert result.task_id == refused.id
    error = result.error or ""
    assert "nnn" in error
    assert len(error) < 2000, len(error)
