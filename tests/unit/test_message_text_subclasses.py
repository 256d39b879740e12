"""The ``error`` of a failed task is plain text, ``str`` itself, even when the tool's exception
says its message with an instance of a ``str`` subclass (its ``__str__`` returns one): such an
object behaves as its class makes it (here, it refuses ``str()``, formatting and hashing), and
a result that a caller prints or logs must not raise."""

from __future__ import annotations

import asyncio
from typing import Any, NoReturn

import pytest

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.tools.base import create_simple_tool
from laios.tools.registry import ToolRegistry


class GuardedText(str):
    """Text that refuses to be turned into text again, formatted or hashed."""

    __slots__ = ()

    def __str__(self) -> NoReturn:
        raise RuntimeError("this text cannot be shown")

    def __format__(self, spec: str) -> NoReturn:
        raise RuntimeError("this text cannot be formatted")

    def __hash__(self) -> NoReturn:
        raise RuntimeError("this text cannot be hashed")


class GuardedError(Exception):
    """An exception whose message is a :class:`GuardedText`."""

    def __str__(self) -> str:
        return GuardedText("the quota is used up")


def _fail() -> None:
    raise GuardedError


@pytest.fixture
def executor() -> Any:
    registry = ToolRegistry()
    registry.register_tool(create_simple_tool("fail", "Fails with a guarded message.", _fail))
    executor = Executor(registry, register_prometheus=False)
    yield executor
    executor.shutdown()


def _task() -> Task:
    return Task(plan_id="p", description="fails", tool_name="fail")


def _plain(error: object) -> None:
    assert type(error) is str
    assert error == "the quota is used up"
    assert f"{error}" == "the quota is used up"


@pytest.mark.parametrize("timeout", [None, 5.0], ids=["inline", "worker thread"])
def test_execute_task_gives_plain_text(executor: Executor, timeout: float | None) -> None:
    task = _task()
    result = executor.execute_task(task, Context(session_id="s", user_id="u"), timeout)
    assert result.success is False
    assert result.metadata["error_type"] == "GuardedError"
    _plain(result.error)
    _plain(task.error)


def test_the_awaiting_calls_and_retries_give_plain_text(executor: Executor) -> None:
    context = Context(session_id="s", user_id="u")
    _plain(asyncio.run(executor.execute_async(_task(), context)).error)
    _plain(asyncio.run(executor.execute_parallel([_task()], context))[0].error)
    _plain(executor.execute_with_retry(_task(), context, max_retries=1, retry_delay=0).error)


def test_the_failed_event_gives_plain_text(executor: Executor) -> None:
    events: list[tuple[str, Any]] = []
    executor.execute_task(
        _task(),
        Context(session_id="s", user_id="u"),
        on_progress=lambda e, d: events.append((e, d)),
    )
    assert [event for event, _ in events] == ["started", "failed"]
    _plain(events[-1][1]["error"])
