"""Generator functions are no tools: a tool whose work would never run is refused, not a success.

Calling a generator function (``def`` with ``yield``) or an async generator function (``async
def`` with ``yield``) runs none of its body: it returns a generator to consume later. As a
tool's ``_execute``/``_execute_async`` or a ``create_simple_tool`` function, the tool used to
end ``success`` with that unconsumed generator as its output, its work never done. The
definition is refused where it is made, saying what to write instead; a generator returned at
run time (from a wrapped function the definition cannot see through) fails the task with a
``TypeError``, as a returned coroutine does.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from laios.core.types import Context, Task, TaskResult
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import AsyncBaseTool, BaseTool, ToolOutput, create_simple_tool
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="s", user_id="u")

#: Set when a generator's body ran (it must not, for a generator nobody consumes).
RAN: list[str] = []


def test_a_tool_class_whose_execute_is_a_generator_function_is_refused() -> None:
    """``def _execute(...): yield`` is refused when the class is made, saying to return the
    items instead."""
    with pytest.raises(TypeError, match=r"_execute is a generator function") as caught:

        class Lines(BaseTool):
            name = "lines"
            description = "Yields lines."

            def _execute(self, **kwargs: Any) -> Iterator[str]:
                yield "a line"

    assert "Lines" in str(caught.value)
    assert "list(" in str(caught.value)


def test_an_async_tool_class_whose_execute_async_is_an_async_generator_is_refused() -> None:
    """``async def _execute_async(...): yield`` is refused when the class is made, saying to
    return the items instead."""
    with pytest.raises(TypeError, match=r"_execute_async is an async generator function") as caught:

        class Stream(AsyncBaseTool):
            name = "stream"
            description = "Yields chunks."

            async def _execute_async(self, **kwargs: Any) -> AsyncIterator[str]:
                yield "a chunk"

    assert "Stream" in str(caught.value)
    assert "async for" in str(caught.value)


def test_the_other_generator_kinds_are_refused_too() -> None:
    """An async generator as a synchronous tool's ``_execute``, a generator as an async tool's
    ``_execute_async``, and a static generator method are refused alike."""
    with pytest.raises(TypeError, match=r"_execute is an async generator function"):

        class AsyncLines(BaseTool):
            name = "async_lines"
            description = "Yields lines."

            async def _execute(self, **kwargs: Any) -> AsyncIterator[str]:  # type: ignore[override]
                yield "a line"

    with pytest.raises(TypeError, match=r"_execute_async is a generator function"):

        class SyncStream(AsyncBaseTool):
            name = "sync_stream"
            description = "Yields chunks."

            def _execute_async(self, **kwargs: Any) -> Iterator[str]:  # type: ignore[override]
                yield "a chunk"

    with pytest.raises(TypeError, match=r"_execute is a generator function"):

        class StaticLines(BaseTool):
            name = "static_lines"
            description = "Yields lines."

            @staticmethod
            def _execute(**kwargs: Any) -> Iterator[str]:
                yield "a line"


def test_a_partialmethod_over_a_generator_function_is_refused_like_one() -> None:
    """A ``functools.partialmethod`` of a generator function as ``_execute`` (or of an async
    generator function as ``_execute_async``, of a static or class method too) is refused when
    the class is made, as the function itself would be, on every Python."""
    with pytest.raises(TypeError, match=r"_execute is a generator function"):

        class PartialLines(BaseTool):
            name = "partial_lines"
            description = "Yields lines."

            def _lines(self, mode: str, **kwargs: Any) -> Iterator[str]:
                yield mode

            _execute = functools.partialmethod(_lines, "a line")  # type: ignore[assignment]

    with pytest.raises(TypeError, match=r"_execute_async is an async generator function"):

        class PartialStream(AsyncBaseTool):
            name = "partial_stream"
            description = "Yields chunks."

            async def _chunks(self, mode: str, **kwargs: Any) -> AsyncIterator[str]:
                yield mode

            _execute_async = functools.partialmethod(_chunks, "a chunk")  # type: ignore[assignment]

    with pytest.raises(TypeError, match=r"_execute is a generator function"):

        class PartialClassLines(BaseTool):
            name = "partial_class_lines"
            description = "Yields lines."

            @classmethod
            def _lines(cls, mode: str, **kwargs: Any) -> Iterator[str]:
                yield mode

            _execute = functools.partialmethod(_lines, "a line")  # type: ignore[assignment]


def test_a_partialmethod_over_an_async_function_as_execute_is_refused_like_one() -> None:
    """A ``functools.partialmethod`` of an ``async def`` as a synchronous tool's ``_execute``
    (never awaited) is refused when the class is made, as the ``async def`` itself is."""
    with pytest.raises(TypeError, match=r"subclass AsyncBaseTool"):

        class PartialFetch(BaseTool):
            name = "partial_fetch"
            description = "Fetches."

            async def _fetch(self, mode: str, **kwargs: Any) -> str:
                return mode

            _execute = functools.partialmethod(_fetch, "a page")  # type: ignore[assignment]


def _lines(count: int) -> Iterator[int]:
    RAN.append("lines")
    yield from range(count)


async def _chunks(count: int) -> AsyncIterator[int]:
    RAN.append("chunks")
    for number in range(count):
        yield number


class _YieldingCallable:
    def __call__(self, count: int) -> Iterator[int]:
        yield from range(count)


@pytest.mark.parametrize(
    ("func", "kind"),
    [
        (_lines, "a generator function"),
        (_chunks, "an async generator function"),
        (functools.partial(_chunks, 2), "an async generator function"),
        (_YieldingCallable(), "a generator function"),
    ],
    ids=["generator", "async_generator", "partial", "callable_object"],
)
def test_create_simple_tool_refuses_a_generator_function(func: Any, kind: str) -> None:
    """A generator function (or a partial of one, or an object whose ``__call__`` is one) is
    refused by ``create_simple_tool``, saying what to pass instead."""
    with pytest.raises(TypeError, match=f"func is {kind}") as caught:
        create_simple_tool("gen", "Yields.", func)
    assert "return" in str(caught.value)


def _wrapped(func: Callable[..., Any]) -> Callable[..., Any]:
    """A decorator whose wrapper hides that ``func`` is a generator function."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    return wrapper


class HiddenLines(BaseTool):
    name = "hidden_lines"
    description = "A generator behind a decorator."

    @_wrapped
    def _execute(self, count: int = 2) -> Iterator[int]:
        RAN.append("hidden_lines")
        yield from range(count)


class HiddenChunks(AsyncBaseTool):
    name = "hidden_chunks"
    description = "An async generator behind a decorator."

    @_wrapped
    async def _execute_async(self, count: int = 2) -> AsyncIterator[int]:
        RAN.append("hidden_chunks")
        for number in range(count):
            yield number


class ReturnsChunks(AsyncBaseTool):
    name = "returns_chunks"
    description = "Returns an async generator from a coroutine."

    async def _execute_async(self, count: int = 2) -> Any:
        return _chunks(count)


@pytest.fixture
def executor() -> Any:
    registry = ToolRegistry()
    registry.register_tools([HiddenLines(), HiddenChunks(), ReturnsChunks()])
    executor = Executor(registry, store=MetricStore(), register_prometheus=False)
    yield executor
    executor.shutdown()


def _task(tool: str) -> Task:
    return Task(plan_id="p", description="d", tool_name=tool)


def _run(executor: Executor, tool: str, road: str) -> TaskResult:
    """Run ``tool`` on ``road``: ``execute_task`` or awaiting ``execute_async``."""
    if road == "execute_task":
        return executor.execute_task(_task(tool), CONTEXT, timeout=10)
    return asyncio.run(executor.execute_async(_task(tool), CONTEXT))


@pytest.mark.parametrize("tool", ["hidden_lines", "hidden_chunks", "returns_chunks"])
@pytest.mark.parametrize("road", ["execute_task", "execute_async"])
def test_a_tool_returning_a_generator_fails_its_task(executor: Any, tool: str, road: str) -> None:
    """A generator returned at run time (the definition could not tell) fails the task with a
    ``TypeError`` saying the generator was not run, on both roads; its body never runs."""
    RAN.clear()
    result = _run(executor, tool, road)
    assert result.success is False
    assert result.metadata["outcome"] == "error"
    assert result.metadata["error_type"] == "TypeError"
    assert "generator" in (result.error or "")
    assert "was not run" in (result.error or "")
    assert result.output is None
    assert RAN == []


def test_calling_such_a_tool_directly_gives_a_failed_output() -> None:
    """``tool.execute()`` (and ``execute_async()``) of a tool returning a generator is a failed
    output, not a success holding the generator."""
    RAN.clear()
    output = HiddenLines().execute(count=3)
    assert output.success is False
    assert output.metadata["error_type"] == "TypeError"
    assert "generator" in (output.error or "")
    output = asyncio.run(HiddenChunks().execute_async(count=3))
    assert output.success is False
    assert "async generator" in (output.error or "")
    assert RAN == []


def _numbers() -> Iterator[int]:
    RAN.append("numbers")
    yield 1


async def _async_numbers() -> AsyncIterator[int]:
    RAN.append("async_numbers")
    yield 1


@pytest.mark.parametrize(
    ("make", "kind", "instead"),
    [
        (_numbers, "a generator", "ToolOutput(data=list(...))"),
        (_async_numbers, "an async generator", "ToolOutput(data=[item async for item in ...])"),
    ],
)
def test_a_tool_output_holding_a_generator_is_refused(
    make: Callable[[], Any], kind: str, instead: str
) -> None:
    """``ToolOutput(data=<generator>)`` raises a ``TypeError`` saying what to write instead, as a
    tool returning a generator fails: nothing would ever consume it. An assignment too."""
    RAN.clear()
    with pytest.raises(TypeError, match=rf"ToolOutput\.data is {kind}") as caught:
        ToolOutput(success=True, data=make())
    assert instead in str(caught.value)
    output = ToolOutput(data=[1])
    with pytest.raises(TypeError, match=rf"ToolOutput\.data is {kind}"):
        output.data = make()
    assert output.data == [1]
    assert RAN == []


class WrapsLines(BaseTool):
    name = "wraps_lines"
    description = "Returns a ToolOutput holding a generator."

    def _execute(self, count: int = 2) -> ToolOutput:
        return ToolOutput(data=(number for number in range(count)))


class WrapsChunks(AsyncBaseTool):
    name = "wraps_chunks"
    description = "Returns a ToolOutput holding an async generator."

    async def _execute_async(self, count: int = 2) -> ToolOutput:
        return ToolOutput(data=_chunks(count))


@pytest.mark.parametrize("tool", ["wraps_lines", "wraps_chunks"])
@pytest.mark.parametrize("road", ["execute_task", "execute_async"])
def test_a_tool_returning_a_tool_output_holding_a_generator_fails_its_task(
    tool: str, road: str
) -> None:
    """A tool that wraps a generator in its ``ToolOutput`` fails its task with the
    ``TypeError``, on both roads, instead of succeeding with the unconsumed generator."""
    registry = ToolRegistry()
    registry.register_tools([WrapsLines(), WrapsChunks()])
    with Executor(registry, store=MetricStore(), register_prometheus=False) as executor:
        result = _run(executor, tool, road)
    assert result.success is False
    assert result.metadata["error_type"] == "TypeError"
    assert "ToolOutput.data is" in (result.error or "")
    assert result.output is None
