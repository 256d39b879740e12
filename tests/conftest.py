"""Shared fixtures: a registry of small tools, a fresh executor, a context and task factory.

Every fixture builds new objects for each test (registry, store, executor), so tests never
share state through them. Tools report what they did through the ``calls`` list and
coordinate with tests through the ``gate`` (a tool blocked until the test releases it).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pydantic import ConfigDict

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.execution.task_context import current_task
from laios.tools.base import AsyncBaseTool, BaseTool, ToolInput, ToolOutput
from laios.tools.registry import ToolRegistry


def _let_subprocesses_keep_bytecode() -> None:
    """Let the Python processes the tests start keep compiled modules between them.

    Hundreds of processes the tests start import laios from its source tree: tool worker
    processes, Dask workers, command-line runs, the docs' blocks and the examples. Where the
    environment turns bytecode writing off (``PYTHONDONTWRITEBYTECODE``), each compiled every
    module of laios again, about 0.2 s of CPU apiece. They write it instead under a directory
    of their own (``PYTHONPYCACHEPREFIX``), never into the source tree, which is what turning
    it off keeps clean. A prefix the environment sets itself is kept."""
    if not os.environ.get("PYTHONDONTWRITEBYTECODE") or os.environ.get("PYTHONPYCACHEPREFIX"):
        return
    prefix = os.path.join(tempfile.gettempdir(), f"laios-tests-bytecode-{os.getuid()}")
    os.environ["PYTHONPYCACHEPREFIX"] = prefix
    del os.environ["PYTHONDONTWRITEBYTECODE"]


_let_subprocesses_keep_bytecode()

# The unit tests' helper module checks results too: a failed assertion of its shows the values
# compared, as one in a test module does.
pytest.register_assert_rewrite("process_tools")


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto`` (the suite's default): one test process per CPU, plus one.

    Many tests spend most of their time waiting (on worker processes, Dask clusters, servers,
    browsers and timeouts) rather than computing: with one process per CPU, a CPU idles about
    half of the run. ``PYTEST_XDIST_AUTO_NUM_WORKERS`` still sets the number."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None  # (pytest-xdist reads it)
    return len(os.sched_getaffinity(0)) + 1 if hasattr(os, "sched_getaffinity") else None


#: The roads of tests/unit/test_runner_behaviour.py (and the modules built on it) that run tools
#: on a Dask cluster: a module fixture that takes seconds to start.
DASK_ROADS = ("dask", "dask_async")


@pytest.hookimpl(tryfirst=True)  # (before pytest-xdist reads the xdist_group marks)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Keep tests that share a costly module fixture together on one worker (``--dist
    loadgroup``), so that it starts once, not once on each worker that draws one of them: a
    module's tests on a Dask road (its cluster), and each integration module's tests (the
    demo, Prometheus, the browser or the terminal that its module fixtures start)."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if item.path.parent.name == "integration":
            item.add_marker(pytest.mark.xdist_group(f"integration {item.path.name}"))
        elif callspec is not None and any(
            isinstance(value, str) and value in DASK_ROADS for value in callspec.params.values()
        ):
            item.add_marker(pytest.mark.xdist_group(f"dask roads of {item.path.name}"))


@pytest.fixture(autouse=True)
def _event_loop_policy_kept() -> Iterator[None]:
    """Fail a test that leaves another asyncio event loop policy in place than it found (and
    put the old one back): every later test on that worker would make its loops with it.
    uvicorn before 0.36 with ``loop="auto"`` installs uvloop's policy, for instance, and then
    ``asyncio.new_event_loop()`` gives a loop that runs ready callbacks after ``stop()``,
    which tests of a stopped loop do not expect. (Python 3.14 deprecates the policies.)"""
    if sys.version_info >= (3, 14):
        yield
        return
    before = asyncio.get_event_loop_policy()
    yield
    after = asyncio.get_event_loop_policy()
    if after is not before:
        asyncio.set_event_loop_policy(before)
        pytest.fail(
            f"the test left the asyncio event loop policy {after!r} in place of {before!r}",
            pytrace=False,
        )


#: Longest a blocked tool waits for its gate, so that a failing test can never hang the run.
MAX_BLOCK_SECONDS = 10.0


class Gate:
    """Lets a test hold tools inside their run and see how many have entered."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self._entered = 0
        self._condition = threading.Condition()

    def enter(self) -> None:
        """Called by a tool when it starts running."""
        with self._condition:
            self._entered += 1
            self._condition.notify_all()

    @property
    def entered(self) -> int:
        """How many tools have entered so far."""
        with self._condition:
            return self._entered

    def wait_entered(self, count: int = 1, timeout: float = 5.0) -> bool:
        """Wait until ``count`` tools have entered; return whether they did in time."""
        with self._condition:
            return self._condition.wait_for(lambda: self._entered >= count, timeout)


class ConcurrencyProbe:
    """Measures how many tools run at the same moment."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.active = 0
        self.peak = 0

    def __enter__(self) -> ConcurrencyProbe:
        with self._lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.active -= 1


class _Recorded(BaseTool):
    """Base of the test tools: records each call in the shared ``calls`` list."""

    calls: list[tuple[str, dict[str, Any]]]
    gate: Gate
    probe: ConcurrencyProbe

    def record(self, params: dict[str, Any]) -> None:
        self.calls.append((self.name, dict(params)))

    def _execute(self, **kwargs: Any) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError


class EchoTool(_Recorded):
    name = "echo"
    description = "Returns its text parameter (keyword-argument style)."

    def _execute(self, **kwargs: Any) -> Any:
        self.record(kwargs)
        return kwargs.get("text")


class EchoModelTool(_Recorded):
    name = "echo_model"
    description = "Returns its text parameter (input-model style)."

    def _execute(self, input_data: ToolInput) -> Any:
        self.record(input_data.model_dump())
        return getattr(input_data, "text", None)


class SleepTool(_Recorded):
    name = "sleep"
    description = "Sleeps for the given number of seconds."

    def _execute(self, **kwargs: Any) -> Any:
        self.record(kwargs)
        time.sleep(float(kwargs.get("seconds", 0.0)))
        return "slept"


class FailTool(_Recorded):
    name = "fail"
    description = "Returns a failed ToolOutput."

    def _execute(self, **kwargs: Any) -> Any:
        self.record(kwargs)
        return ToolOutput(
            success=False,
            error=kwargs.get("message", "disk full: /var/data"),
            metadata={"attempted_path": "/var/data"},
        )


class BoomTool(_Recorded):
    name = "boom"
    description = "Raises RuntimeError."

    def _execute(self, **kwargs: Any) -> Any:
        self.record(kwargs)
        raise RuntimeError(kwargs.get("message", "kaboom"))


class BlockedTool(_Recorded):
    name = "blocked"
    description = "Waits until the test releases the gate (then reports, if `report` is set)."

    def _execute(self, **kwargs: Any) -> Any:
        self.record(kwargs)
        self.gate.enter()
        self.gate.release.wait(MAX_BLOCK_SECONDS)
        if kwargs.get("report"):
            task = current_task()
            assert task is not None
            task.checkpoint("after-release")
            task.progress(90, "late")
        return "released"


class ProgressTool(_Recorded):
    name = "progress"
    description = "Adds checkpoints and reports progress from inside the tool."

    def _execute(self, **kwargs: Any) -> Any:
        self.record(kwargs)
        task = current_task()
        assert task is not None
        task.checkpoint("loaded", {"rows": 3})
        task.progress(kwargs.get("percent", 50), "halfway", step=1)
        task.checkpoint("saved")
        return "done"


class AsyncEchoTool(AsyncBaseTool):
    name = "async_echo"
    description = "Returns its text parameter after awaiting (keyword-argument style)."
    calls: list[tuple[str, dict[str, Any]]]

    async def _execute_async(self, **kwargs: Any) -> Any:
        self.calls.append((self.name, dict(kwargs)))
        await asyncio.sleep(0.001)
        return kwargs.get("text")


class AsyncEchoModelTool(AsyncBaseTool):
    name = "async_echo_model"
    description = "Returns its text parameter after awaiting (input-model style)."
    calls: list[tuple[str, dict[str, Any]]]

    async def _execute_async(self, input_data: ToolInput) -> Any:
        self.calls.append((self.name, input_data.model_dump()))
        await asyncio.sleep(0.001)
        return getattr(input_data, "text", None)


class AsyncProgressTool(AsyncBaseTool):
    name = "async_progress"
    description = "Reports progress from inside an async tool."

    async def _execute_async(self, **kwargs: Any) -> Any:
        task = current_task()
        assert task is not None
        task.checkpoint("async-step")
        task.progress(25, "a quarter")
        await asyncio.sleep(0)
        return "async done"


class CountInput(ToolInput):
    model_config = ConfigDict(extra="forbid")

    count: int


class ValidatedTool(_Recorded):
    name = "validated"
    description = "Doubles an integer count; refuses anything else."
    input_model = CountInput

    def _execute(self, input_data: CountInput) -> Any:
        self.record(input_data.model_dump())
        return input_data.count * 2


class CpuTool(_Recorded):
    name = "cpu"
    description = "Burns CPU for a few tens of milliseconds."

    def _execute(self, **kwargs: Any) -> Any:
        self.record(kwargs)
        start = time.thread_time()
        total = 0
        while time.thread_time() - start < float(kwargs.get("seconds", 0.03)):
            total += sum(range(1000))
        return total


class PollCancelTool(_Recorded):
    name = "poll_cancel"
    description = "Works in small steps until the task is cancelled (or the gate opens)."

    def _execute(self, **kwargs: Any) -> Any:
        self.record(kwargs)
        task = current_task()
        assert task is not None
        self.gate.enter()
        deadline = time.monotonic() + MAX_BLOCK_SECONDS
        while time.monotonic() < deadline and not self.gate.release.is_set():
            if task.cancelled:
                return "stopped early"
            time.sleep(0.005)
        return "ran to the end"


class CooperativeTool(_Recorded):
    name = "cooperative"
    description = "Works in small steps, raising when cancelled (ends when the gate opens)."

    def _execute(self, **kwargs: Any) -> Any:
        self.record(kwargs)
        task = current_task()
        assert task is not None
        self.gate.enter()
        deadline = time.monotonic() + MAX_BLOCK_SECONDS
        while time.monotonic() < deadline and not self.gate.release.is_set():
            task.raise_if_cancelled()
            time.sleep(0.005)
        return "ran to the end"


class FlakyTool(_Recorded):
    name = "flaky"
    description = "Fails its first `fail_times` calls, then succeeds."

    def _execute(self, **kwargs: Any) -> Any:
        self.record(kwargs)
        attempt = sum(1 for name, _ in self.calls if name == self.name)
        if attempt <= int(kwargs.get("fail_times", 2)):
            return ToolOutput(success=False, error=f"transient failure {attempt}")
        return f"succeeded on attempt {attempt}"


class ConcurrentTool(_Recorded):
    name = "concurrent"
    description = "Sleeps while counted by the concurrency probe."

    def _execute(self, **kwargs: Any) -> Any:
        self.record(kwargs)
        with self.probe:
            time.sleep(float(kwargs.get("seconds", 0.05)))
        return "ok"


TOOL_CLASSES: tuple[type[BaseTool], ...] = (
    EchoTool,
    EchoModelTool,
    SleepTool,
    FailTool,
    BoomTool,
    BlockedTool,
    ProgressTool,
    AsyncEchoTool,
    AsyncEchoModelTool,
    AsyncProgressTool,
    ValidatedTool,
    CpuTool,
    PollCancelTool,
    CooperativeTool,
    FlakyTool,
    ConcurrentTool,
)


@pytest.fixture
def calls() -> list[tuple[str, dict[str, Any]]]:
    """Every tool call made during the test, as ``(tool_name, parameters)``."""
    return []


@pytest.fixture
def gate() -> Iterator[Gate]:
    """Holds ``blocked``, ``poll_cancel`` and ``cooperative`` tools; released at teardown."""
    gate = Gate()
    yield gate
    gate.release.set()


@pytest.fixture
def probe() -> ConcurrencyProbe:
    """Counts tools of the ``concurrent`` tool running at the same moment."""
    return ConcurrencyProbe()


@pytest.fixture
def registry(
    calls: list[tuple[str, dict[str, Any]]], gate: Gate, probe: ConcurrencyProbe
) -> ToolRegistry:
    """A fresh ``ToolRegistry`` holding the small test tools."""
    tools = ToolRegistry()
    for cls in TOOL_CLASSES:
        tool = cls()
        tool.calls = calls  # type: ignore[attr-defined]
        tool.gate = gate  # type: ignore[attr-defined]
        tool.probe = probe  # type: ignore[attr-defined]
        tools.register_tool(tool)
    return tools


@pytest.fixture
def collect_interrupted_tasks() -> Iterator[None]:
    """Collect, as the test ends, the asyncio tasks its ``KeyboardInterrupt`` or
    ``SystemExit`` left unretrieved.

    asyncio lets such an exception out of ``asyncio.run`` from the task it was raised in
    (``wait_for``'s own, a task the test made), which keeps it unretrieved; collected, that
    task logs "Task exception was never retrieved" with the traceback. Left to the collector,
    that happens at any later moment, in another test: on Python 3.11, formatting the
    traceback (whose carets ``traceback`` places with ``ast.parse``) while that test is inside
    ``ast.parse`` itself fails it with ``SystemError: AST constructor recursion depth
    mismatch``.
    """
    yield
    gc.collect()


@pytest.fixture
def store() -> MetricStore:
    """A fresh, private metric store."""
    return MetricStore()


@pytest.fixture
def context() -> Context:
    """A plain execution context."""
    return Context(session_id="session-1", user_id="user-1")


@pytest.fixture
def make_task() -> Callable[..., Task]:
    """Build a ``Task``: ``make_task("echo", text="hi")``, ``make_task(..., task_id="t-1")``."""

    def make(tool_name: str = "echo", *, task_id: str | None = None, **parameters: Any) -> Task:
        fields: dict[str, Any] = {
            "plan_id": "plan-1",
            "description": f"run {tool_name}",
            "tool_name": tool_name,
            "parameters": parameters,
        }
        if task_id is not None:
            fields["id"] = task_id
        return Task(**fields)

    return make


@pytest.fixture
def make_executor(registry: ToolRegistry, gate: Gate) -> Iterator[Callable[..., Executor]]:
    """Build executors over the test registry (fresh store, no Prometheus); all shut down after.

    Teardown releases the gate first, so that no blocked tool keeps ``shutdown`` waiting.
    """
    built: list[Executor] = []

    def make(**kwargs: Any) -> Executor:
        kwargs.setdefault("store", MetricStore())
        kwargs.setdefault("register_prometheus", False)
        executor = Executor(kwargs.pop("tool_registry", registry), **kwargs)
        built.append(executor)
        return executor

    yield make
    gate.release.set()
    for executor in built:
        executor.shutdown(wait=True)


@pytest.fixture
def executor(make_executor: Callable[..., Executor], store: MetricStore) -> Executor:
    """An executor over the test registry and the test's ``store``; shut down after the test."""
    return make_executor(store=store)


def _wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return bool(predicate())


@pytest.fixture
def wait_until() -> Callable[..., bool]:
    """``wait_until(predicate, timeout=5.0)``: poll until true; return whether it became true."""
    return _wait_until


def _overrun(
    run: Callable[[], Any], started: Callable[[Any], bool] | None = None, tries: int = 10
) -> tuple[Any, int]:
    """Call ``run`` (a call whose short timeout a hung tool is to overrun) until its tool
    started, by ``started(result)`` (by default: its result does not say the tool never
    started); return that result and how many calls it took.

    A short timeout counts from the submission: on a loaded machine, a worker thread can take
    longer than that to start (or to take the task up), and the task then ends ``timeout``
    without its tool ever starting, which is not the case such a test means to check."""
    for count in range(1, tries + 1):
        result = run()
        if started(result) if started else "never started" not in (result.error or ""):
            return result, count
    raise AssertionError(f"the tool never started in {tries} calls (the last: {result!r})")


@pytest.fixture
def overrun() -> Callable[..., tuple[Any, int]]:
    """``overrun(run, started=None, tries=10)``: call ``run`` until its tool started (did not
    end in the queue); return its result and how many calls it took."""
    return _overrun


#: Ways to run one task: ``execute_task`` inline and on a worker (with a timeout),
#: ``execute_async``, ``execute_parallel`` with one task, and ``execute_with_retry``.
RUN_MODES = ("task", "task_timeout", "async", "parallel", "retry")


def _run_via(executor: Executor, mode: str, task: Any, context: Any, **kwargs: Any) -> Any:
    if mode == "task":
        return executor.execute_task(task, context, **kwargs)
    if mode == "task_timeout":
        kwargs.setdefault("timeout", 5.0)
        return executor.execute_task(task, context, **kwargs)
    if mode == "async":
        return asyncio.run(executor.execute_async(task, context, **kwargs))
    if mode == "parallel":
        results = asyncio.run(executor.execute_parallel([task], context, **kwargs))
        assert len(results) == 1
        return results[0]
    if mode == "retry":
        kwargs.setdefault("retry_delay", 0.0)
        return executor.execute_with_retry(task, context, **kwargs)
    raise ValueError(mode)


@pytest.fixture(params=RUN_MODES)
def run_mode(request: pytest.FixtureRequest) -> str:
    """Each of the ways to run a task (see ``RUN_MODES``)."""
    return str(request.param)


@pytest.fixture
def run_via() -> Callable[..., Any]:
    """``run_via(executor, mode, task, context, **kwargs)``: run one task in a given mode."""
    return _run_via


@pytest.fixture
def in_thread(gate: Gate) -> Iterator[Callable[..., tuple[threading.Thread, list[Any]]]]:
    """``thread, box = in_thread(fn, *args, **kwargs)``: run ``fn`` on a daemon thread.

    Its return value lands in ``box``. Teardown releases the gate and joins the threads.
    """
    threads: list[threading.Thread] = []

    def start(target: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        box: list[Any] = []
        thread = threading.Thread(target=lambda: box.append(target(*args, **kwargs)), daemon=True)
        thread.start()
        threads.append(thread)
        return thread, box

    yield start
    gate.release.set()
    for thread in threads:
        thread.join(MAX_BLOCK_SECONDS)


@pytest.fixture
def laios_records() -> Iterator[list[logging.LogRecord]]:
    """Every record of the ``laios`` loggers during the test, at DEBUG level and above."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("laios")
    handler = Keep(logging.DEBUG)
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
