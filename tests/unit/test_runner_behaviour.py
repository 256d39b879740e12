"""One behaviour suite, run down every road a tool can take through the executor.

* ``inline``: a synchronous tool under ``execute_task`` with no timeout (the caller's thread);
* ``thread``: a synchronous tool under ``execute_task`` with a timeout (worker threads);
* ``loop_caller``: an async tool under ``execute_async`` (an asyncio task on the caller's loop);
* ``loop_thread``: an async tool under ``execute_task`` (the executor's own loop thread);
* ``process``: a synchronous tool under ``execute_task`` with a timeout, on an executor whose
  runner is a :class:`~laios.execution.runners.ProcessRunner` (a worker process);
* ``process_async``: an async tool under ``execute_async`` on the caller's loop, same runner
  (an event loop in a worker process);
* ``dask``: a synchronous tool under ``execute_task`` with a timeout, on an executor whose
  runner is a :class:`~laios.execution.runners.DaskRunner` (a process that a Dask worker's own
  process runner started);
* ``dask_async``: an async tool under ``execute_async`` on the caller's loop, same runner (an
  event loop in such a process).

Each road gets the same tools, once written as ``BaseTool`` and once as ``AsyncBaseTool``
(``beh_<name>`` and ``beh_<name>_async``), and a :class:`Road` that runs a task the road's way.
The tools and their :class:`~behaviour_lab.Lab` live in ``behaviour_lab``: a worker process
must import the tools, and the lab keeps what they report in files, so that a tool in a worker
process reports to the same lab (and waits at the same gate) as one on the caller's side.

Fixtures: ``road`` (every road), ``timed_road`` (the roads that enforce a timeout and queue:
all but inline), ``local_road`` (the roads that run the tool in the test's own process),
``sync_road``, ``loop_road`` (the executor's event loops), ``thread_road`` and
``remote_road`` (the process and dask roads).

Where the remote roads (process and dask) differ, the tests say what is true there instead: a
worker process never sees its task cancelled (a timeout or ``cancel_task`` kills it: no
``finally`` runs, no thread is abandoned, a new worker takes its place), and a span it makes
cannot reach the test's exporter (the tool notes the span it sees as current instead: the task
span, carried over).

The dask roads share one ``LocalCluster`` (2 worker processes of 2 threads: starting one takes
seconds), started when the first dask road needs it; a road built with ``capacity_one`` uses a
cluster of one worker with one thread instead (a Dask runner cannot hold an executor to one
tool at a time: the cluster's threads are its capacity), also started on first use. Both close
at the end of the module; without Dask's ``distributed`` the dask roads are skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from behaviour_lab import (
    LAB_TOOLS,
    POLL,
    Gate,
    Lab,
    ToolExploded,
    scheduler_task_keys,
    start_forkserver,
    stop_tool_processes,
)
from dask_cleanup import forget_clients_of_closed_loops
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from runner_hooks import HookedRunner

from laios.core.types import Context, Task, TaskResult, TaskStatus
from laios.execution.executor import Executor
from laios.execution.monitor import ExecutionMonitor, ProgressStatus
from laios.execution.runners import DaskRunner, ProcessRunner, ThreadRunner
from laios.execution.store import MetricStore
from laios.tools.registry import ToolRegistry

ROADS = (
    "inline",
    "thread",
    "loop_caller",
    "loop_thread",
    "process",
    "process_async",
    "dask",
    "dask_async",
)
TIMED_ROADS = tuple(kind for kind in ROADS if kind != "inline")
PROCESS_ROADS = ("process", "process_async")
DASK_ROADS = ("dask", "dask_async")
#: The roads that run the tool in a process of its own, killed to stop it.
REMOTE_ROADS = PROCESS_ROADS + DASK_ROADS
LOCAL_ROADS = tuple(kind for kind in ROADS if kind not in REMOTE_ROADS)
SYNC_ROADS = ("inline", "thread", "process", "dask")
ASYNC_ROADS = ("loop_caller", "loop_thread", "process_async", "dask_async")
LOOP_ROADS = ("loop_caller", "loop_thread")
#: The roads whose caller awaits the task on an event loop of its own (``execute_async``).
CALLER_LOOP_ROADS = ("loop_caller", "process_async", "dask_async")
#: The roads of a synchronous tool under ``execute_task`` with a timeout (the test's, or
#: :data:`LONG_TIMEOUT`).
TIMEOUT_ROADS = ("thread", "process", "dask")

#: The timeout the thread, process and dask roads use when a test sets none (never reached).
LONG_TIMEOUT = 30.0
#: A timeout short enough to strike while a tool is blocked.
SHORT_TIMEOUT = 0.5
#: How late a timed-out result may come back (a loaded 2-core machine is slow, not this slow).
LATE_MARGIN = 5.0
#: How long a test waits for something it expects to happen.
WAIT = 10.0
#: Worker processes of a process road's runner (started on demand; one for ``capacity_one``).
PROCESS_WORKERS = 2
#: Seconds a dask road's cluster may take to start (and its workers' forkservers).
CLUSTER_START = 60.0


# -- roads ----------------------------------------------------------------------------------


class Pending:
    """A task run on a background thread (see :meth:`Road.start`)."""

    def __init__(self, thread: threading.Thread, box: list[Any]) -> None:
        self.thread = thread
        self.box = box

    def result(self, timeout: float = WAIT) -> TaskResult:
        """The run's result, once it returned (fails the test if it does not in time)."""
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the run did not return in time"
        assert len(self.box) == 1, "the run raised instead of returning a result"
        result: TaskResult = self.box[0]
        return result


class DaskClusters:
    """The dask roads' clusters, each started on first use; :meth:`close` closes them.

    ``client()`` is the shared cluster's (2 worker processes of 2 threads: every dask road);
    ``client(capacity_one=True)`` that of a cluster of one worker with one thread (one tool at
    a time). Each worker's forkserver is started with the cluster (see
    ``behaviour_lab.start_forkserver``), before any test's clock runs.
    """

    #: ``(n_workers, threads_per_worker)``: the shared cluster, the capacity-one cluster.
    SHARED = (2, 2)
    SINGLE = (1, 1)

    def __init__(self, distributed: Any) -> None:
        self._distributed = distributed
        self._started: dict[tuple[int, int], tuple[Any, Any]] = {}  # shape: (cluster, client)
        #: The pid of each Dask worker process started so far, by address.
        self.worker_pids: dict[str, int] = {}

    def client(self, *, capacity_one: bool = False) -> Any:
        shape = self.SINGLE if capacity_one else self.SHARED
        if shape not in self._started:
            self._started[shape] = self._start(*shape)
        return self._started[shape][1]

    def _start(self, n_workers: int, threads_per_worker: int) -> tuple[Any, Any]:
        import dask

        # Tool processes are children of a Dask worker: the workers must not be daemonic.
        with dask.config.set({"distributed.worker.daemon": False}):
            cluster = self._distributed.LocalCluster(
                n_workers=n_workers,
                threads_per_worker=threads_per_worker,
                processes=True,
                dashboard_address=":0",
            )
        client = self._distributed.Client(cluster, timeout=CLUSTER_START)
        try:
            client.wait_for_workers(n_workers, timeout=CLUSTER_START)
            pids: dict[str, int] = client.run(start_forkserver)
        except BaseException:
            client.close()
            cluster.close()
            raise
        self.worker_pids.update(pids)
        return cluster, client

    def close(self) -> None:
        for cluster, client in self._started.values():
            # (Else each worker that ran a tool takes its nanny's 4 s to close: see
            # behaviour_lab.stop_tool_processes.)
            with contextlib.suppress(Exception):
                client.run(stop_tool_processes)
            client.close()
            cluster.close()
        self._started.clear()


class Road:
    """Runs a task down one road, with that road's kind of tool."""

    def __init__(
        self,
        kind: str,
        make_executor: Callable[..., Executor],
        make_task: Callable[..., Task],
        context: Context,
        lab: Lab,
        provider: TracerProvider,
        in_thread: Callable[..., tuple[threading.Thread, list[Any]]],
        dask_clusters: DaskClusters | None = None,
    ) -> None:
        self.kind = kind
        self.is_async = kind in ASYNC_ROADS
        #: Whether the tool runs in a process of its own, outside the test's (the executor's
        #: runner is a ProcessRunner or a DaskRunner).
        self.in_process = kind in REMOTE_ROADS
        #: Whether the tool runs on a Dask worker (in a process of that worker's process runner).
        self.on_dask = kind in DASK_ROADS
        assert (dask_clusters is not None) is self.on_dask, kind
        self.dask_clusters = dask_clusters
        self._make_executor = make_executor
        self._make_task = make_task
        self.context = context
        self.lab = lab
        self.provider = provider
        self._in_thread = in_thread
        self.caller_loops: list[asyncio.AbstractEventLoop] = []
        #: Tasks still running on a caller's loop after its call returned (loop_caller,
        #: process_async, dask_async).
        self.lingering: list[asyncio.Task[Any]] = []
        self.executor = self.build()

    def build(self, *, capacity_one: bool = False, **options: Any) -> Executor:
        """A new traced executor for this road (``capacity_one``: one tool at a time;
        ``options``: more ``Executor`` arguments, such as ``capture_content``)."""
        kwargs: dict[str, Any] = {"tracer_provider": self.provider, **options}
        if self.dask_clusters is not None:
            client = self.dask_clusters.client(capacity_one=capacity_one)
            kwargs["runner"] = DaskRunner(client=client)
        elif self.in_process:
            kwargs["runner"] = ProcessRunner(1 if capacity_one else PROCESS_WORKERS)
        elif capacity_one:
            kwargs["max_async_tools" if self.is_async else "max_workers"] = 1
        self.executor = self._make_executor(**kwargs)
        return self.executor

    @property
    def store(self) -> MetricStore:
        return self.executor.store

    @property
    def runner(self) -> ProcessRunner:
        """The process roads' runner (of the executor built last)."""
        assert isinstance(self.executor.runner, ProcessRunner), self.kind
        return self.executor.runner

    @property
    def dask_workers(self) -> dict[str, int]:
        """The dask roads' Dask worker processes: their pids, by address."""
        assert self.dask_clusters is not None, self.kind
        return self.dask_clusters.worker_pids

    def tool(self, base: str) -> str:
        """The name of this road's version of a tool."""
        return f"beh_{base}_async" if self.is_async else f"beh_{base}"

    def task(self, base: str, **parameters: Any) -> Task:
        """A task for this road's version of tool ``base``."""
        return self._make_task(self.tool(base), **parameters)

    def run(
        self,
        task: Task,
        timeout: float | None = None,
        on_progress: Callable[[str, Any], None] | None = None,
    ) -> TaskResult:
        """Run ``task`` this road's way; the caller waits for the result."""
        executor, context = self.executor, self.context
        if self.kind == "inline":
            assert timeout is None, "a timeout takes a task off the inline road"
            return executor.execute_task(task, context, on_progress=on_progress)
        if self.kind in TIMEOUT_ROADS:
            limit = LONG_TIMEOUT if timeout is None else timeout
            return executor.execute_task(task, context, timeout=limit, on_progress=on_progress)
        if self.kind in CALLER_LOOP_ROADS:

            async def on_this_loop() -> TaskResult:
                self.caller_loops.append(asyncio.get_running_loop())
                result = await executor.execute_async(
                    task, context, timeout=timeout, on_progress=on_progress
                )
                # Before asyncio.run cancels what is left: a tool the executor should have
                # stopped must not be found still running on this loop.
                self.lingering.extend(await tasks_left_running())
                return result

            return asyncio.run(on_this_loop())
        return executor.execute_task(task, context, timeout=timeout, on_progress=on_progress)

    def run_with_retry(self, task: Task, **kwargs: Any) -> TaskResult:
        """Run ``task`` with retries (no delay) this road's way."""
        executor, context = self.executor, self.context
        kwargs.setdefault("retry_delay", 0.0)
        if self.kind in CALLER_LOOP_ROADS:
            return asyncio.run(executor.execute_with_retry_async(task, context, **kwargs))
        if self.kind in TIMEOUT_ROADS:
            kwargs.setdefault("timeout", LONG_TIMEOUT)
        return executor.execute_with_retry(task, context, **kwargs)

    def start(
        self,
        task: Task,
        timeout: float | None = None,
        on_progress: Callable[[str, Any], None] | None = None,
    ) -> Pending:
        """Run ``task`` this road's way on a background thread."""
        thread, box = self._in_thread(self.run, task, timeout, on_progress)
        return Pending(thread, box)

    def wait_running(self, task: Task) -> bool:
        """Wait until the caller's side knows ``task`` started (its status is RUNNING).

        (On a dask road the tool can be running before the caller's side hears of it: the
        worker's "started" message comes through the scheduler.)
        """
        return wait_for(lambda: task.status is TaskStatus.RUNNING)

    def wait_queued(self, task: Task) -> bool:
        """Wait until the store shows ``task`` queued (accepted, not started).

        On a dask road, until its status is pending (the store has its record: accepted) and
        the scheduler holds its call's Dask task (the runner has it: its ``submit`` returned).
        Not with the store's snapshot, which asks the runner's stats under the store's lock:
        a DaskRunner's stats wait for the Dask client's event loop, which may be waiting for
        that lock to report a start (a deadlock). And the executor gives up a task cancelled
        after its record appeared but before the runner's ``submit`` returned only on the
        caller's side: a Dask worker still starts its tool.
        """
        if not self.on_dask:
            return wait_for(
                lambda: any(
                    r.task_id == task.id and r.state == "queued"
                    for r in self.store.snapshot().running
                )
            )
        runner = self.executor.runner
        assert isinstance(runner, DaskRunner)
        prefix = f"laios-{task.tool_name}-"  # (the Dask runner's key for a call of the tool)
        return wait_for(
            lambda: (
                self.executor.get_task_status(task.id) is TaskStatus.PENDING
                and any(
                    key.startswith(prefix)
                    for key in runner.client.run_on_scheduler(scheduler_task_keys)
                )
            )
        )


async def tasks_left_running(timeout: float = WAIT) -> list[asyncio.Task[Any]]:
    """The other tasks of the running loop that are still not done after up to ``timeout``."""
    me = asyncio.current_task()
    deadline = time.monotonic() + timeout
    while True:
        others = [t for t in asyncio.all_tasks() if t is not me]
        if not others or time.monotonic() >= deadline:
            return others
        await asyncio.sleep(POLL)


def wait_for(predicate: Callable[[], bool], timeout: float = WAIT) -> bool:
    """Poll ``predicate`` until it is true; return whether it became true in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(POLL)
    return bool(predicate())


def task_spans(exporter: InMemorySpanExporter, tool: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == f"execute_tool {tool}"]


def one_span(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    found = [s for s in exporter.get_finished_spans() if s.name == name]
    assert len(found) == 1, [s.name for s in exporter.get_finished_spans()]
    return found[0]


def parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def span_id(span: ReadableSpan | trace.Span) -> int:
    return span.get_span_context().span_id


def tool_snapshot(store: MetricStore, tool: str) -> Any:
    found = [t for t in store.snapshot().tools if t.tool == tool]
    assert len(found) == 1, [t.tool for t in store.snapshot().tools]
    return found[0]


def process_gone(pid: int) -> bool:
    """Whether process ``pid`` has ended (a zombie not reaped yet counts as ended)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return False  # (no /proc here, or it ended just now: the next look will say)


def ancestors(pid: int) -> list[int] | None:
    """The pids of the parent, grandparent, ... of process ``pid`` (``None``: no /proc here)."""
    found: list[int] = []
    while pid > 1:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                pid = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            return found or None
        found.append(pid)
    return found


def assert_worker_was_killed(road: Road, lab: Lab, task: Task, result: TaskResult) -> None:
    """The worker process that ran ``task`` was killed while the tool was blocked at the gate,
    and a new worker runs the next task."""
    assert result.metadata["worker_killed"] is True
    worker = lab.where[task.id].pid
    assert worker != os.getpid()
    assert wait_for(lambda: process_gone(worker)), f"worker {worker} is still alive"
    if road.on_dask:
        assert worker not in road.dask_workers.values()  # the tool's process, not the worker's
    else:
        assert wait_for(lambda: worker not in road.runner.worker_pids())  # (seen by its reader)
    assert not lab.finally_ran.is_set()  # killed, not stopped: its finally never ran
    assert not lab.saw_cancel.is_set()  # (current_task().cancelled is never true there)
    assert not lab.coroutine_cancelled.is_set()
    assert not lab.released()
    assert road.lingering == []  # (process_async: nothing left on the caller's loop)
    assert road.executor.abandoned_threads == 0
    assert road.store.snapshot().abandoned_threads == 0
    after = road.task("echo", text="after the kill")
    assert road.run(after).output == "after the kill"
    assert lab.where[after.id].pid not in (worker, os.getpid())


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    """A tracer provider of this test only (the global one is never set)."""
    tracer_provider = TracerProvider(shutdown_on_exit=False)
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield tracer_provider
    tracer_provider.shutdown()


@pytest.fixture
def tracer(provider: TracerProvider) -> trace.Tracer:
    return provider.get_tracer("tests.runner_behaviour")


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Gate]:
    """The conftest's gate made of files, so that tools in worker processes can use it (this
    overrides the conftest's ``gate``: ``make_executor`` and ``in_thread`` release this one
    before they wait for what is still running). Released at teardown."""
    the_gate = Gate(tmp_path / "gate")
    yield the_gate
    the_gate.release.set()


@pytest.fixture
def lab(registry: ToolRegistry, gate: Gate, tracer: trace.Tracer, tmp_path: Path) -> Lab:
    """The lab (in files of the test's temporary directory), with its tools added to the test
    registry."""
    the_lab = Lab(tmp_path / "lab", gate, tracer)
    for cls in LAB_TOOLS:
        tool = cls()
        tool.lab = the_lab  # type: ignore[attr-defined]
        registry.register_tool(tool)
    return the_lab


@pytest.fixture(scope="module")
def forkserver() -> None:
    """Start the forkserver, once, before a process road's clock runs: it takes up to a second
    to start and import laios (a runner's first worker waits for that, queued), while every
    worker is then forked from it in milliseconds."""
    ProcessRunner(1).shutdown()  # (a runner sets the forkserver's preload: laios)
    process = multiprocessing.get_context("forkserver").Process(target=time.sleep, args=(0,))
    process.start()  # (returns once the forkserver has forked it: ready)
    process.join(WAIT)
    assert process.exitcode == 0


@pytest.fixture(scope="module")
def dask_clusters() -> Iterator[DaskClusters]:
    """The dask roads' clusters (started on first use, closed after the module's last test);
    skips the test when Dask's ``distributed`` is not installed."""
    clusters = DaskClusters(pytest.importorskip("distributed"))
    yield clusters
    clusters.close()
    forget_clients_of_closed_loops()


def _road(request: pytest.FixtureRequest) -> Road:
    clusters = None
    if request.param in PROCESS_ROADS:
        request.getfixturevalue("forkserver")
    elif request.param in DASK_ROADS:
        clusters = request.getfixturevalue("dask_clusters")
    return Road(
        request.param,
        request.getfixturevalue("make_executor"),
        request.getfixturevalue("make_task"),
        request.getfixturevalue("context"),
        request.getfixturevalue("lab"),
        request.getfixturevalue("provider"),
        request.getfixturevalue("in_thread"),
        clusters,
    )


@pytest.fixture(params=ROADS)
def road(request: pytest.FixtureRequest) -> Road:
    """Every road."""
    return _road(request)


@pytest.fixture(params=TIMED_ROADS)
def timed_road(request: pytest.FixtureRequest) -> Road:
    """The roads that enforce a timeout and can queue a task (all but inline)."""
    return _road(request)


@pytest.fixture(params=LOCAL_ROADS)
def local_road(request: pytest.FixtureRequest) -> Road:
    """The roads that run the tool in the test's own process (all but the process roads)."""
    return _road(request)


@pytest.fixture(params=SYNC_ROADS)
def sync_road(request: pytest.FixtureRequest) -> Road:
    """The roads of synchronous tools."""
    return _road(request)


@pytest.fixture(params=LOOP_ROADS)
def loop_road(request: pytest.FixtureRequest) -> Road:
    """The roads of async tools on the executor's event loops (the caller's, its own)."""
    return _road(request)


@pytest.fixture(params=["thread"])
def thread_road(request: pytest.FixtureRequest) -> Road:
    """The worker-thread road."""
    return _road(request)


@pytest.fixture(params=REMOTE_ROADS)
def remote_road(request: pytest.FixtureRequest) -> Road:
    """The roads of a tool in a process of its own (process and dask; a sync tool, an async
    tool)."""
    return _road(request)


# -- where the tool runs --------------------------------------------------------------------


def test_tool_runs_where_its_road_says(road: Road) -> None:
    """The tool runs on the caller's thread, a worker, the caller's loop, the executor's loop,
    in a worker process, or in a process a Dask worker started (on an event loop there, for an
    async tool)."""
    task = road.task("echo", text="where")
    result = road.run(task)
    assert result.success
    where = road.lab.where[task.id]
    caller = threading.current_thread()
    if road.on_dask:
        # Neither the test's process nor a Dask worker's, but one that the Dask worker named
        # in the result ("tcp://127.0.0.1:PORT pid N") started.
        address, _, pid = result.metadata["worker"].partition(" pid ")
        assert address.startswith("tcp://127.0.0.1:")
        assert address in road.dask_workers
        assert int(pid) == where.pid
        assert where.pid != os.getpid()
        assert where.pid not in road.dask_workers.values()
        family = ancestors(where.pid)
        if family is not None:
            assert road.dask_workers[address] in family
            assert os.getpid() in family  # (the LocalCluster's nanny started the worker)
        assert (where.loop is not None) is road.is_async
        return
    if road.in_process:
        assert where.pid != os.getpid()
        assert where.pid in road.runner.worker_pids()  # (idle now, kept for the next call)
        assert (where.loop is not None) is road.is_async
        return
    assert where.pid == os.getpid()
    if road.kind == "inline":
        assert where.thread == caller.ident
        assert where.loop is None
    elif road.kind == "thread":
        assert where.thread != caller.ident
        assert where.thread_name.startswith("laios-worker")
        assert where.loop is None
    elif road.kind == "loop_caller":
        assert where.thread == caller.ident
        assert where.loop == id(road.caller_loops[-1])
    else:
        assert where.thread != caller.ident
        assert where.thread_name == "laios-loop"
        assert where.loop is not None


def test_a_runner_given_to_the_executor_runs_sync_tools_without_a_timeout(
    make_executor: Callable[..., Executor],
    make_task: Callable[..., Task],
    context: Context,
    lab: Lab,
) -> None:
    """Executor(runner=...) runs a synchronous tool even with no timeout: none runs inline."""
    runner = HookedRunner(ThreadRunner(2, 2, name="given-runner"))
    executor = make_executor(runner=runner)
    task = make_task("beh_echo", text="off the caller's thread")
    result = executor.execute_task(task, context)
    assert result.success
    assert result.output == "off the caller's thread"
    assert runner.submitted == [task.id]
    where = lab.where[task.id]
    assert where.thread != threading.get_ident()
    assert where.thread_name.startswith("given-runner")


# -- results ----------------------------------------------------------------------------------


def test_success_returns_the_tools_value(road: Road) -> None:
    """A tool that returns gives a successful result holding its value."""
    task = road.task("echo", text="hello")
    result = road.run(task)
    assert result.success is True
    assert result.output == "hello"
    assert result.error is None
    assert result.task_id == task.id
    assert result.metadata["outcome"] == "success"
    assert result.metadata["tool_name"] == road.tool("echo")


def test_success_completes_the_task(road: Road) -> None:
    """After a success the task is COMPLETED, holds the result and its start and end times."""
    task = road.task("echo", text="hello")
    road.run(task)
    assert task.status is TaskStatus.COMPLETED
    assert task.result == "hello"
    assert task.error is None
    assert task.started_at is not None
    assert task.completed_at is not None
    assert task.started_at <= task.completed_at


def test_failed_output_is_a_tool_error(road: Road) -> None:
    """A failed ToolOutput gives an error result (error_type tool_error) and a FAILED task."""
    task = road.task("fail")
    result = road.run(task)
    assert result.success is False
    assert result.error == "quota exceeded"
    assert result.metadata["outcome"] == "error"
    assert result.metadata["error_type"] == "tool_error"
    assert result.metadata["quota"] == 5
    assert task.status is TaskStatus.FAILED


def test_raised_exception_is_an_error_named_after_its_class(road: Road) -> None:
    """A tool that raises gives an error result whose error_type is the exception's class."""
    task = road.task("raise")
    result = road.run(task)
    assert result.success is False
    assert result.error == "the tool exploded"
    assert result.metadata["outcome"] == "error"
    assert result.metadata["error_type"] == "ToolExploded"
    assert task.status is TaskStatus.FAILED


def test_raised_exception_is_an_event_on_the_task_span(
    road: Road, exporter: InMemorySpanExporter
) -> None:
    """The exception a tool raised is recorded on its task span as an 'exception' event."""
    road.run(road.task("raise"))
    [span] = task_spans(exporter, road.tool("raise"))
    events = [e for e in span.events if e.name == "exception"]
    assert len(events) == 1
    assert events[0].attributes is not None
    assert events[0].attributes["exception.type"] == f"{ToolExploded.__module__}.ToolExploded"
    assert span.attributes is not None
    assert span.attributes["error.type"] == "ToolExploded"
    assert span.status.status_code is trace.StatusCode.ERROR


# -- timeouts ---------------------------------------------------------------------------------


def test_timeout_while_running_ends_timeout(
    timed_road: Road, lab: Lab, overrun: Callable[..., tuple[Any, int]]
) -> None:
    """A tool still running at its timeout gives a timeout result, on time, and a FAILED task.
    (Run again when the tool never started: a worker slow to take the call, on a loaded
    machine, can let the short timeout pass first.)"""

    def run() -> tuple[Task, TaskResult, float]:
        task = timed_road.task("slow")
        started = time.monotonic()
        result = timed_road.run(task, timeout=SHORT_TIMEOUT)
        return task, result, time.monotonic() - started

    (task, result, elapsed), _ = overrun(
        run, lambda ran: "never started" not in (ran[1].error or "")
    )
    assert result.success is False
    assert result.metadata["outcome"] == "timeout"
    assert result.metadata["error_type"] == "timeout"
    assert f"exceeded its timeout of {SHORT_TIMEOUT:g}s while tool" in (result.error or "")
    assert task.status is TaskStatus.FAILED
    assert SHORT_TIMEOUT * 0.9 <= elapsed < SHORT_TIMEOUT + LATE_MARGIN
    assert task.id in lab.started_ids


def test_timeout_stops_the_running_coroutine(loop_road: Road, lab: Lab) -> None:
    """A timeout cancels an async tool's coroutine: its finally runs, no thread is abandoned."""
    result = loop_road.run(loop_road.task("slow"), timeout=SHORT_TIMEOUT)
    assert result.metadata["outcome"] == "timeout"
    assert "the tool was cancelled" in (result.error or "")
    assert lab.finally_ran.wait(WAIT)
    assert lab.coroutine_cancelled.is_set()
    assert not lab.released()  # it ended by cancellation, not because the gate opened
    assert loop_road.lingering == []  # (loop_caller: stopped by the executor, not asyncio.run)
    assert loop_road.executor.abandoned_threads == 0
    assert loop_road.store.snapshot().abandoned_threads == 0


def test_timeout_kills_the_worker_process(
    remote_road: Road, lab: Lab, overrun: Callable[..., tuple[Any, int]]
) -> None:
    """A timeout kills the worker process running the tool (no cooperation asked, no finally,
    no thread abandoned); the result says so, and a new worker runs the next task. (Run again
    when the tool never started: a worker slow to take the call, on a loaded machine, can let
    the short timeout pass first.)"""

    def run() -> tuple[Task, TaskResult]:
        task = remote_road.task("slow")
        return task, remote_road.run(task, timeout=SHORT_TIMEOUT)

    (task, result), _ = overrun(run, lambda ran: "never started" not in (ran[1].error or ""))
    assert result.metadata["outcome"] == "timeout"
    assert "the tool was stopped" in (result.error or "")
    assert task.status is TaskStatus.FAILED
    assert lab.gate.entered == 1  # it was blocked at the gate when its process was killed
    assert_worker_was_killed(remote_road, lab, task, result)


def test_timeout_counts_the_abandoned_thread_until_the_tool_returns(
    thread_road: Road, lab: Lab
) -> None:
    """A thread tool that overruns is counted as abandoned, and no longer once it returns."""
    executor = thread_road.executor
    result = thread_road.run(thread_road.task("slow"), timeout=SHORT_TIMEOUT)
    assert result.metadata["outcome"] == "timeout"
    assert "its thread was abandoned" in (result.error or "")
    assert executor.abandoned_threads == 1
    assert thread_road.store.snapshot().abandoned_threads == 1
    assert not lab.finally_ran.is_set()  # the tool is still running
    lab.gate.release.set()
    assert lab.finally_ran.wait(WAIT)
    assert wait_for(lambda: executor.abandoned_threads == 0)
    assert thread_road.store.snapshot().abandoned_threads == 0


def test_queued_task_past_its_deadline_never_starts(timed_road: Road, lab: Lab) -> None:
    """A task still queued when its timeout passes ends timeout and its tool never starts."""
    executor = timed_road.build(capacity_one=True)
    blocker = timed_road.start(timed_road.task("slow"))
    assert lab.gate.wait_entered(1, WAIT)
    late = timed_road.task("echo", text="too late")
    started = time.monotonic()
    result = timed_road.run(late, timeout=SHORT_TIMEOUT)
    elapsed = time.monotonic() - started
    assert result.metadata["outcome"] == "timeout"
    assert "the tool was never started" in (result.error or "")
    assert SHORT_TIMEOUT * 0.9 <= elapsed < SHORT_TIMEOUT + LATE_MARGIN
    lab.gate.release.set()
    assert blocker.result().success
    executor.shutdown(wait=True)  # whatever was still queued has gone through by now
    assert late.id not in lab.started_ids


# -- cancellation -----------------------------------------------------------------------------


def test_cancel_before_submission_cancels_the_run(road: Road, lab: Lab) -> None:
    """cancel_task for an id not yet submitted cancels that task when it comes: it never runs."""
    assert road.executor.cancel_task("cancelled-in-advance") is True
    task = road.task("echo", task_id="cancelled-in-advance", text="never")
    result = road.run(task)
    assert result.metadata["outcome"] == "cancelled"
    assert "cancelled before it started" in (result.error or "")
    assert task.status is TaskStatus.CANCELLED
    assert task.id not in lab.started_ids


def test_cancel_queued_task_never_starts(timed_road: Road, lab: Lab) -> None:
    """cancel_task on a queued task ends it cancelled at once; its tool never starts."""
    executor = timed_road.build(capacity_one=True)
    blocker = timed_road.start(timed_road.task("slow"))
    assert lab.gate.wait_entered(1, WAIT)
    queued = timed_road.task("echo", text="never")
    waiting = timed_road.start(queued)
    assert timed_road.wait_queued(queued)
    assert executor.cancel_task(queued.id) is True
    result = waiting.result()
    assert result.metadata["outcome"] == "cancelled"
    assert "cancelled before it started" in (result.error or "")
    assert queued.status is TaskStatus.CANCELLED
    assert blocker.thread.is_alive()  # the blocker is still running: the cancel did not wait
    lab.gate.release.set()
    assert blocker.result().success
    executor.shutdown(wait=True)
    if timed_road.kind.startswith("dask"):
        # A Dask worker that takes the call up before the kill reaches it starts the tool, and
        # the kill then stops it (see the Dask guide); the task ended cancelled all the same.
        return
    assert queued.id not in lab.started_ids


def test_cancel_while_running_is_seen_by_the_tool(local_road: Road, lab: Lab) -> None:
    """cancel_task on a running tool makes current_task().cancelled true; it ends cancelled."""
    road = local_road
    task = road.task("cooperative")
    running = road.start(task)
    assert lab.gate.wait_entered(1, WAIT)
    assert road.executor.cancel_task(task.id) is True
    result = running.result()
    assert result.metadata["outcome"] == "cancelled"
    assert task.status is TaskStatus.CANCELLED
    # (On the executor's loop thread the coroutine may see its cancellation just after the
    # caller got the result.)
    assert lab.saw_cancel.wait(WAIT)
    assert not lab.released()


def test_cancel_stops_a_running_coroutine(loop_road: Road, lab: Lab) -> None:
    """cancel_task cancels a running async tool's coroutine: its finally runs at once."""
    task = loop_road.task("slow")
    running = loop_road.start(task)
    assert lab.gate.wait_entered(1, WAIT)
    assert loop_road.executor.cancel_task(task.id) is True
    result = running.result()
    assert result.metadata["outcome"] == "cancelled"
    assert "cancelled while running" in (result.error or "")
    assert lab.finally_ran.wait(WAIT)
    assert lab.coroutine_cancelled.is_set()
    assert not lab.released()
    assert loop_road.lingering == []  # (loop_caller: stopped by the executor, not asyncio.run)
    assert loop_road.executor.abandoned_threads == 0


def test_cancel_while_running_kills_the_worker_process(remote_road: Road, lab: Lab) -> None:
    """cancel_task on a tool in a worker process kills the process (the tool is not asked:
    current_task().cancelled stays false there); it ends cancelled, and a new worker runs the
    next task."""
    road = remote_road
    task = road.task("cooperative")
    running = road.start(task)
    assert lab.gate.wait_entered(1, WAIT)
    if road.on_dask:
        assert road.wait_running(task)  # (the worker's "started" may come after the tool's)
    assert road.executor.cancel_task(task.id) is True
    result = running.result()
    assert result.metadata["outcome"] == "cancelled"
    assert "cancelled while running" in (result.error or "")
    assert task.status is TaskStatus.CANCELLED
    assert_worker_was_killed(road, lab, task, result)


def test_cancel_from_the_started_callback_never_starts_the_tool(road: Road, lab: Lab) -> None:
    """cancel_task from on_progress during 'started' (the tool not called yet) ends the task
    cancelled before it started: its tool never runs, no worker is killed, and the task has no
    start. On a dask road the 'started' event comes once a Dask worker has begun the call: it
    is stopped as a running one, its process killed."""
    events: list[str] = []
    # (on Dask, a tool that returns at once may have returned before the cancel reaches it:
    # one that waits for the gate is still running there)
    task = road.task("slow" if road.on_dask else "echo", text="never")

    def on_progress(event: str, data: Any) -> None:
        events.append(event)
        if event == "started":
            assert road.executor.cancel_task(task.id) is True

    result = road.run(task, on_progress=on_progress)
    assert result.metadata["outcome"] == "cancelled"
    assert task.status is TaskStatus.CANCELLED
    assert events == ["started", "cancelled"]
    if road.on_dask:
        assert "cancelled while running" in (result.error or "")
        assert result.metadata["worker_killed"] is True
        return
    assert "was cancelled before it started" in (result.error or "")
    assert "'started' event" in (result.error or "")
    assert "worker_killed" not in result.metadata
    assert task.started_at is None
    road.executor.shutdown(wait=True)  # (a tool it wrongly started would have run by now)
    assert task.id not in lab.started_ids


def test_cancel_during_a_started_callback_ends_the_task_at_once(timed_road: Road, lab: Lab) -> None:
    """cancel_task from another thread while on_progress handles 'started': the caller has the
    result at once, cancelled before it started (or, on a dask road, stopped as running)."""
    if timed_road.kind == "loop_caller":
        pytest.skip("the callback holds the awaiting loop: the caller cannot be woken meanwhile")
    road = timed_road
    task = road.task("echo", text="never")
    in_callback = threading.Event()
    release = threading.Event()

    def on_progress(event: str, data: Any) -> None:
        if event == "started":
            in_callback.set()
            release.wait(WAIT)

    try:
        pending = road.start(task, on_progress=on_progress)
        assert in_callback.wait(WAIT)
        assert road.executor.cancel_task(task.id) is True
        result = pending.result()
        assert not release.is_set()  # the caller did not wait for the callback
    finally:
        release.set()
    assert result.metadata["outcome"] == "cancelled"
    if road.on_dask:
        assert "cancelled while running" in (result.error or "")
        return
    assert "was cancelled before it started" in (result.error or "")
    assert "worker_killed" not in result.metadata
    assert task.started_at is None
    road.executor.shutdown(wait=True)
    assert task.id not in lab.started_ids


def test_timeout_during_the_started_callback_never_starts_the_tool(
    timed_road: Road, lab: Lab
) -> None:
    """A timeout striking while on_progress handles 'started' says the tool was never started,
    and it never is: no worker is killed, the task has no start. On a dask road the tool was
    under way: it is stopped as a running one, its process killed.

    On the loop_caller road the callback holds the awaiting loop, where the timeout would
    strike: the deadline, passed when the callback returns, ends the task all the same."""
    road = timed_road
    task = road.task("echo", text="never")
    release = threading.Event()
    events: list[str] = []

    def on_progress(event: str, data: Any) -> None:
        events.append(event)
        if event == "started":
            # (Elsewhere the caller has its result meanwhile, and releases the callback.)
            release.wait(SHORT_TIMEOUT * 4)

    try:
        result = road.run(task, timeout=SHORT_TIMEOUT, on_progress=on_progress)
    finally:
        release.set()
    assert result.metadata["outcome"] == "timeout"
    assert task.status is TaskStatus.FAILED
    assert events == ["started", "timeout"]
    error = result.error or ""
    if road.on_dask:
        assert "while tool 'beh_echo" in error
        assert "the tool was stopped" in error
        assert result.metadata["worker_killed"] is True
        return
    assert "while its on_progress callback was handling the 'started' event" in error
    assert "the tool was never started" in error
    assert "worker_killed" not in result.metadata
    assert task.started_at is None
    road.executor.shutdown(wait=True)
    assert task.id not in lab.started_ids


@pytest.fixture(params=("thread", "loop_thread", "process"))
def started_elsewhere_road(request: pytest.FixtureRequest) -> Road:
    """The roads whose worker asks whether a task may start on another thread than the one
    its caller's timeout strikes on (a worker thread, the executor's loop thread, a process
    runner's thread starting its first worker)."""
    return _road(request)


def test_a_timeout_striking_as_a_worker_starts_the_task_says_whether_the_tool_ran(
    started_elsewhere_road: Road, lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The caller's timeout strikes while the worker is marking the task as started, past its
    own look at the deadline: the error says the tool was never started exactly when it never
    started, and the task says the same (``started_at``).

    The worker waits in the store's "starting" report until the caller is wording the
    timeout; the caller waits there until the worker has answered whether the tool may start
    and, when it may, until the tool has started."""
    from laios.execution._engine.job import Job

    road = started_elsewhere_road
    caller = threading.current_thread()
    wording = threading.Event()
    answered = threading.Event()
    answers: list[bool] = []
    held: list[str] = []
    real_started, real_message = Job.started, Job.timeout_message

    def started(self: Job) -> bool:
        answer = real_started(self)
        answers.append(answer)
        answered.set()
        return answer

    def timeout_message(self: Job, **kwargs: Any) -> str:
        if threading.current_thread() is caller and not wording.is_set():
            wording.set()
            assert answered.wait(WAIT)
            if answers[0]:
                assert lab.gate.wait_entered(1, WAIT)
        return real_message(self, **kwargs)

    # No public hook runs on the caller's side while its timeout words its message: the job's
    # own method is the one place to hold it there.
    monkeypatch.setattr(Job, "started", started)
    monkeypatch.setattr(Job, "timeout_message", timeout_message)

    def hold_the_start(update: Any) -> None:
        if update.status is ProgressStatus.STARTING and threading.current_thread() is not caller:
            held.append(threading.current_thread().name)
            wording.wait(WAIT)

    road.store.add_progress_listener(hold_the_start)
    task = road.task("slow")
    result = road.run(task, timeout=1.0)
    lab.gate.release.set()
    road.executor.shutdown(wait=True)
    assert held, "the worker never reached the start of the task before its deadline"
    assert result.metadata["outcome"] == "timeout"
    started_ids = lab.started_ids
    never = "the tool was never started" in (result.error or "")
    assert never is (task.id not in started_ids), (started_ids, result.error)
    assert (task.started_at is None) is never


# -- progress and checkpoints -------------------------------------------------------------------


def test_progress_events_reach_on_progress(road: Road) -> None:
    """on_progress gets 'started', the tool's 'progress' report and 'completed', in order."""
    events: list[tuple[str, Any]] = []
    task = road.task("progress")
    road.run(task, on_progress=lambda event, data: events.append((event, data)))
    assert [event for event, _ in events] == ["started", "progress", "completed"]
    progress = events[1][1]
    assert progress["task_id"] == task.id
    assert progress["percent"] == 50
    assert progress["message"] == "halfway"
    assert progress["details"] == {"step": 1}
    assert events[2][1]["result"] == "done"


def test_progress_history_is_kept_in_the_store(road: Road) -> None:
    """The store's progress history holds the start, the tool's report and the completion."""
    task = road.task("progress")
    road.run(task)
    history = ExecutionMonitor(road.store).get_progress_history(task.id)
    assert [u.status for u in history] == [
        ProgressStatus.STARTING,
        ProgressStatus.IN_PROGRESS,
        ProgressStatus.COMPLETED,
    ]
    assert history[1].progress_percent == 50
    assert history[1].message == "halfway"
    assert history[2].progress_percent == 100


def test_checkpoints_are_in_the_task_metrics(road: Road) -> None:
    """The tool's checkpoints are in get_metrics().checkpoints, between 'started' and
    'finished'."""
    task = road.task("progress")
    road.run(task)
    metrics = road.executor.get_metrics(task.id)
    assert metrics is not None
    points = metrics.checkpoints
    assert [p["name"] for p in points] == ["started", "loaded", "saved", "finished"]
    assert points[1]["data"] == {"rows": 3}
    assert points[2]["data"] == {"files": 2}  # (given as a read-only mapping)
    assert points[3]["data"] == {"outcome": "success"}


def test_checkpoints_are_child_spans_of_the_task_span(
    road: Road, exporter: InMemorySpanExporter
) -> None:
    """Each checkpoint is a 'checkpoint {name}' span whose parent is the task span."""
    road.run(road.task("progress"))
    [task_span] = task_spans(exporter, road.tool("progress"))
    loaded = one_span(exporter, "checkpoint loaded")
    saved = one_span(exporter, "checkpoint saved")
    assert parent_id(loaded) == span_id(task_span)
    assert parent_id(saved) == span_id(task_span)
    assert loaded.context.trace_id == task_span.context.trace_id
    assert loaded.attributes is not None
    assert loaded.attributes["laios.checkpoint.rows"] == 3
    assert saved.attributes is not None
    assert saved.attributes["laios.checkpoint.files"] == 2


# -- spans --------------------------------------------------------------------------------------


def test_task_span_is_a_child_of_the_callers_span(
    road: Road, exporter: InMemorySpanExporter, tracer: trace.Tracer
) -> None:
    """One 'execute_tool {tool}' span per task, whose parent is the caller's current span."""
    tasks = [road.task("echo", text=str(i)) for i in range(2)]
    with tracer.start_as_current_span("caller") as caller:
        for task in tasks:
            assert road.run(task).success
    spans = task_spans(exporter, road.tool("echo"))
    assert len(spans) == 2
    assert sorted(s.attributes["laios.task.id"] for s in spans if s.attributes) == sorted(
        t.id for t in tasks
    )
    for span in spans:
        assert parent_id(span) == span_id(caller)
        assert span.context.trace_id == caller.get_span_context().trace_id


def test_span_made_inside_the_tool_is_a_child_of_the_task_span(
    road: Road, exporter: InMemorySpanExporter
) -> None:
    """A span the tool starts inside its run has the task span as its parent.

    (A worker process has no SDK, and its spans could not reach this exporter anyway: there the
    test checks that the span current in the tool is the task span, carried over as W3C trace
    context, as it is on every road.)
    """
    task = road.task("nested")
    result = road.run(task)
    assert result.success
    [task_span] = task_spans(exporter, road.tool("nested"))
    assert road.lab.spans_seen[task.id] == (task_span.context.trace_id, span_id(task_span))
    if not road.in_process:
        inside = one_span(exporter, "inside the tool")
        assert parent_id(inside) == span_id(task_span)
        assert inside.context.trace_id == task_span.context.trace_id
    assert result.metadata["span_id"] == format(span_id(task_span), "016x")


# -- retries ------------------------------------------------------------------------------------


def test_retry_succeeds_after_two_failures(road: Road, lab: Lab) -> None:
    """execute_with_retry runs a tool failing twice three times; the result says 2 retries."""
    task = road.task("flaky")
    result = road.run_with_retry(task, max_retries=3)
    assert result.success is True
    assert result.output == "succeeded on attempt 3"
    assert result.metadata["retries"] == 2
    assert "retry_exhausted" not in result.metadata
    assert lab.attempts[task.id] == 3


def test_retries_are_counted_in_the_store(road: Road) -> None:
    """The store counts the retries (laios_task_retries_total) and every attempt's outcome."""
    task = road.task("flaky")
    road.run_with_retry(task, max_retries=3)
    snapshot = tool_snapshot(road.store, road.tool("flaky"))
    assert snapshot.retries == 2
    assert snapshot.outcomes["error"].count == 2
    assert snapshot.outcomes["success"].count == 1
    metrics = road.executor.get_metrics(task.id)
    assert metrics is not None
    assert metrics.retries == 2


# -- the store ----------------------------------------------------------------------------------


def test_store_counts_outcomes_and_queue_waits(road: Road) -> None:
    """The store counts each outcome per tool, one queue wait per task, and none left in flight."""
    for text in ("a", "b"):
        road.run(road.task("echo", text=text))
    road.run(road.task("fail"))
    road.run(road.task("raise"))
    echo = tool_snapshot(road.store, road.tool("echo"))
    assert {name: h.count for name, h in echo.outcomes.items()} == {"success": 2}
    assert echo.queue_wait.count == 2
    assert echo.in_flight == 0
    fail = tool_snapshot(road.store, road.tool("fail"))
    assert {name: h.count for name, h in fail.outcomes.items()} == {"error": 1}
    assert {name: c.value for name, c in fail.errors.items()} == {"tool_error": 1}
    raised = tool_snapshot(road.store, road.tool("raise"))
    assert {name: c.value for name, c in raised.errors.items()} == {"ToolExploded": 1}
    assert raised.in_flight == 0
    assert road.store.snapshot().running == []


def test_store_keeps_the_record_of_the_run(road: Road) -> None:
    """get_metrics and get_task_status read the finished run's record in the store."""
    task = road.task("echo", text="kept")
    road.run(task)
    metrics = road.executor.get_metrics(task.id)
    assert metrics is not None
    assert metrics.outcome == "success"
    assert metrics.tool_name == road.tool("echo")
    assert metrics.start_time is not None
    assert metrics.end_time is not None
    assert metrics.execution_time >= 0
    assert road.executor.get_task_status(task.id) is TaskStatus.COMPLETED


def test_store_counts_a_timed_out_run_and_frees_its_slot(timed_road: Road, lab: Lab) -> None:
    """A timed-out run is counted as timeout and leaves nothing in flight, even while its tool
    is still running (thread) or being cancelled (loop)."""
    timed_road.run(timed_road.task("slow"), timeout=SHORT_TIMEOUT)
    slow = tool_snapshot(timed_road.store, timed_road.tool("slow"))
    assert {name: h.count for name, h in slow.outcomes.items()} == {"timeout": 1}
    assert {name: c.value for name, c in slow.errors.items()} == {"timeout": 1}
    assert slow.in_flight == 0
    assert slow.queue_wait.count == 1
