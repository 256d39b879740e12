"""When the executor's event loop thread stops (at ``shutdown()``), the asyncio tasks still on
it (one a tool left behind, a tool left running) are cancelled and may end, as at the end of
``asyncio.run``; one that will not end is dropped with a warning of the executor's naming it,
never with asyncio's "Task was destroyed but it is pending!" error."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from _scripts import script_env

from laios.core.types import Context, Task
from laios.execution._logs import WarningLimiter
from laios.execution._runners import loop as loop_module
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import AsyncBaseTool
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="s", user_id="u")
#: Longest anything here may take (seconds): generous, for a loaded machine.
WAIT = 10.0


class LeavesATask(AsyncBaseTool):
    """Starts a task on its loop that runs until cancelled, and returns at once; the task's
    cleanup awaits (it needs the loop still running) before it says it ended."""

    name = "leaves_a_task"
    description = "Leaves a task behind."

    def __init__(self) -> None:
        super().__init__()
        self.running = threading.Event()
        self.cleaned_up = threading.Event()
        self.kept: set[asyncio.Task[None]] = set()

    async def _execute_async(self, **kwargs: Any) -> Any:
        self.kept.add(asyncio.get_running_loop().create_task(self._linger()))
        return "left one"

    async def _linger(self) -> None:
        self.running.set()
        try:
            await asyncio.sleep(WAIT * 6)
        finally:
            await asyncio.sleep(0)  # (a cleanup that awaits: a closed coroutine cannot)
            self.cleaned_up.set()


class Stubborn(AsyncBaseTool):
    """Catches every cancellation and carries on, until released."""

    name = "stubborn"
    description = "Swallows CancelledError."

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    async def _execute_async(self, **kwargs: Any) -> Any:
        while not self.release.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0.01)
        return "carried on"


class LeavesAGenerator(AsyncBaseTool):
    """Takes the first item of an async generator and keeps the generator, suspended at its
    ``yield``, past its return; the generator's ``finally`` awaits (closing it needs the loop)
    before it says it ran. With ``stubborn``, that ``finally`` swallows every cancellation
    and never ends."""

    name = "leaves_a_generator"
    description = "Leaves an async generator suspended."

    def __init__(self) -> None:
        super().__init__()
        self.closed = threading.Event()
        self.closing = threading.Event()
        self.kept: list[Any] = []

    async def _execute_async(self, **kwargs: Any) -> Any:
        generator = self._items(kwargs.get("stubborn", False))
        self.kept.append(generator)
        return await generator.__anext__()

    async def _items(self, stubborn: bool) -> Any:
        try:
            yield "first"
            yield "second"
        finally:
            self.closing.set()
            while stubborn:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.sleep(0.01)
            await asyncio.sleep(0)
            self.closed.set()


@pytest.fixture(autouse=True)
def _short_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    """A short grace before a cancelled tool counts as left running (the default is 1 s), and
    a fresh warning limiter; garbage that earlier tests left (tasks of loops they closed) is
    collected first, so that what asyncio logs about it is not taken for this test's."""
    gc.collect()
    monkeypatch.setattr(loop_module, "STOP_GRACE_SECONDS", 0.1)
    monkeypatch.setattr(loop_module, "_LEFT_RUNNING_WARNINGS", WarningLimiter())


@pytest.fixture
def stubborn() -> Iterator[Stubborn]:
    tool = Stubborn()
    yield tool
    tool.release.set()


def _executor(*tools: AsyncBaseTool) -> Executor:
    registry = ToolRegistry()
    for tool in tools:
        registry.register_tool(tool)
    return Executor(registry, store=MetricStore(), register_prometheus=False)


def _task(tool: str) -> Task:
    return Task(plan_id="p", description="d", tool_name=tool)


def _destroyed_pending(records: list[logging.LogRecord]) -> list[str]:
    return [r.getMessage() for r in records if "destroyed but it is pending" in r.getMessage()]


def test_shutdown_cancels_a_task_a_tool_left_on_the_loop_thread_and_lets_it_clean_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The task a tool left behind is cancelled at shutdown, and its cleanup (which awaits)
    runs to its end on the loop before the loop stops; asyncio logs nothing."""
    tool = LeavesATask()
    executor = _executor(tool)
    assert executor.execute_task(_task("leaves_a_task"), CONTEXT).success
    assert tool.running.wait(WAIT)
    with caplog.at_level(logging.WARNING):
        executor.shutdown(wait=True)
        assert tool.cleaned_up.is_set()
        assert all(task.cancelled() for task in tool.kept)
        tool.kept.clear()
        gc.collect()
    assert _destroyed_pending(caplog.records) == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_shutdown_drops_a_tool_left_running_with_a_warning_not_an_asyncio_error(
    stubborn: Stubborn, caplog: pytest.LogCaptureFixture, overrun: Any
) -> None:
    """A tool left running (it swallows every cancellation) is dropped when the loop stops:
    the shutdown does not wait for it, nothing stays counted, and the executor's warning names
    it instead of asyncio's "Task was destroyed but it is pending!" error."""
    executor = _executor(stubborn)
    with caplog.at_level(logging.WARNING):
        result, _ = overrun(lambda: executor.execute_task(_task("stubborn"), CONTEXT, timeout=0.3))
        assert result.metadata["outcome"] == "timeout"
        give_up = time.monotonic() + WAIT
        while executor.abandoned_threads != 1:
            assert time.monotonic() < give_up, "the tool was never counted as left running"
            time.sleep(0.01)
        started = time.monotonic()
        executor.shutdown(wait=True)
        assert time.monotonic() - started < WAIT
        assert executor.abandoned_threads == 0
        gc.collect()
    assert _destroyed_pending(caplog.records) == []
    dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert len(dropped) == 1
    assert "stubborn" in dropped[0]


def test_shutdown_closes_an_async_generator_a_tool_left_suspended(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An async generator a tool left suspended at a ``yield`` is closed as the loop stops
    (``loop.shutdown_asyncgens()``, as at the end of ``asyncio.run``): its ``finally`` runs to
    its end, awaits included; nothing is logged."""
    tool = LeavesAGenerator()
    executor = _executor(tool)
    result = executor.execute_task(_task("leaves_a_generator"), CONTEXT)
    assert result.output == "first", result.error
    with caplog.at_level(logging.WARNING):
        executor.shutdown(wait=True)
        assert tool.closed.is_set()
        tool.kept.clear()
        gc.collect()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_shutdown_does_not_wait_for_ever_for_an_async_generator_that_will_not_close(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An async generator whose ``finally`` never ends (it swallows every cancellation) holds
    the shutdown for the grace only; it is then dropped with one warning saying so."""
    tool = LeavesAGenerator()
    executor = _executor(tool)
    task = Task(
        plan_id="p", description="d", tool_name="leaves_a_generator", parameters={"stubborn": True}
    )
    assert executor.execute_task(task, CONTEXT).output == "first"
    with caplog.at_level(logging.WARNING):
        started = time.monotonic()
        executor.shutdown(wait=True)
        assert time.monotonic() - started < WAIT
        assert tool.closing.is_set()
        assert not tool.closed.is_set()
        tool.kept.clear()
        gc.collect()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "async generator" in warnings[0]


#: A script whose stubborn async tool, left running, is dropped as the loop thread stops; the
#: interpreter then closes its coroutine as it exits.
_DROPPED_AT_EXIT = """
import asyncio, time
from laios.core.types import Context, Task
from laios.execution._runners import loop as loop_module
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import create_simple_tool
from laios.tools.registry import ToolRegistry

loop_module.STOP_GRACE_SECONDS = 0.1


async def stubborn():
    end = time.monotonic() + 60
    while time.monotonic() < end:
        try:
            await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            pass


registry = ToolRegistry()
registry.register_tool(create_simple_tool("stubborn", "Swallows cancellation.", stubborn))
executor = Executor(registry, store=MetricStore(), register_prometheus=False)
task = Task(plan_id="p", description="d", tool_name="stubborn")
result = executor.execute_task(task, Context(session_id="s", user_id="u"), timeout=0.1)
assert result.metadata["outcome"] == "timeout", result
deadline = time.monotonic() + 10
while executor.abandoned_threads == 0 and time.monotonic() < deadline:
    time.sleep(0.01)
assert executor.abandoned_threads == 1
executor.shutdown(wait=True)
print("shut down")
"""


def test_a_script_whose_dropped_tool_is_closed_at_exit_exits(tmp_path: Any) -> None:
    """A stubborn async tool dropped as the loop thread stopped is closed by the interpreter as
    it exits; handing its end to the ``laios-finalizers`` thread then tried to start that
    thread, which cannot run once the interpreter is finalizing: on Python 3.10 and 3.11 the
    script never exited."""
    script = tmp_path / "dropped_at_exit.py"
    script.write_text(_DROPPED_AT_EXIT, encoding="utf-8")
    run = subprocess.run(
        [sys.executable, str(script)],
        env=script_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "shut down"
