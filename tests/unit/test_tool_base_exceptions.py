"""A tool that raises ``GeneratorExit``, ``SystemExit`` or a ``BaseException`` of a library's
own fails with a failed output when it runs on its own (``execute``, ``execute_async``,
``ToolRegistry.execute_tool``), as it fails its task under an executor: those methods promise
never to raise. A ``KeyboardInterrupt`` is the caller's Ctrl-C and goes on, as under the
executor; so does the closing of an ``execute_async`` coroutine that never resumes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator
from typing import Any

import pytest

from laios.tools.base import AsyncBaseTool, BaseTool, ToolOutput
from laios.tools.registry import ToolRegistry


class LibraryExit(BaseException):
    """A ``BaseException`` of a library's own (as gevent's ``GreenletExit`` is)."""


RAISED: list[tuple[Callable[[], BaseException], str, str]] = [
    (lambda: GeneratorExit("the stream was closed"), "GeneratorExit", "the stream was closed"),
    (lambda: SystemExit(2), "SystemExit", "2"),
    (lambda: LibraryExit("the greenlet was killed"), "LibraryExit", "the greenlet was killed"),
]


def _sync_tool(make: Callable[[], BaseException]) -> BaseTool:
    class Raising(BaseTool):
        name = "raising"
        description = "Raises what it was made to raise."

        def _execute(self, **kwargs: Any) -> Any:
            raise make()

    return Raising()


def _async_tool(make: Callable[[], BaseException]) -> AsyncBaseTool:
    class RaisingAsync(AsyncBaseTool):
        name = "raising_async"
        description = "Raises what it was made to raise, after a turn of the loop."

        async def _execute_async(self, **kwargs: Any) -> Any:
            await asyncio.sleep(0)
            raise make()

    return RaisingAsync()


def _failed(output: ToolOutput, error_type: str, message: str) -> None:
    assert output.success is False
    assert output.error == message
    assert output.metadata["error_type"] == error_type


@pytest.mark.parametrize(("make", "error_type", "message"), RAISED)
def test_execute_turns_a_base_exception_into_a_failed_output(
    make: Callable[[], BaseException], error_type: str, message: str
) -> None:
    _failed(_sync_tool(make).execute(), error_type, message)


@pytest.mark.parametrize(("make", "error_type", "message"), RAISED)
def test_execute_tool_turns_a_base_exception_into_a_failed_output(
    make: Callable[[], BaseException], error_type: str, message: str
) -> None:
    registry = ToolRegistry()
    registry.register_tool(_sync_tool(make))
    registry.register_tool(_async_tool(make))
    _failed(registry.execute_tool("raising"), error_type, message)
    _failed(registry.execute_tool("raising_async"), error_type, message)


@pytest.mark.parametrize(("make", "error_type", "message"), RAISED)
def test_execute_async_turns_a_base_exception_into_a_failed_output(
    make: Callable[[], BaseException], error_type: str, message: str
) -> None:
    tool = _async_tool(make)
    _failed(asyncio.run(tool.execute_async()), error_type, message)
    _failed(tool.execute(), error_type, message)


def test_a_cancelled_error_of_a_synchronous_tool_is_a_failed_output() -> None:
    """Nothing can cancel a synchronous call: the tool's own, as ``AsyncBaseTool.execute``
    reports one."""
    output = _sync_tool(lambda: asyncio.CancelledError()).execute()
    assert output.success is False
    assert output.metadata["error_type"] == "CancelledError"
    assert "'raising' was cancelled from inside" in str(output.error)


def test_a_keyboard_interrupt_goes_on() -> None:
    registry = ToolRegistry()
    registry.register_tool(_sync_tool(KeyboardInterrupt))
    registry.register_tool(_async_tool(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        registry.execute_tool("raising")
    with pytest.raises(KeyboardInterrupt):
        asyncio.run(_async_tool(KeyboardInterrupt).execute_async())


class _Suspend:
    """An awaitable that suspends its awaiter once, with no event loop."""

    def __await__(self) -> Generator[None, None, None]:
        yield


def test_closing_a_suspended_execute_async_still_closes_it() -> None:
    """The ``GeneratorExit`` that ``close()`` throws in is not the tool's: the coroutine ends,
    with no ``RuntimeError`` saying it ignored the close."""
    finished = []

    class Waits(AsyncBaseTool):
        name = "waits"
        description = "Waits once."

        async def _execute_async(self, **kwargs: Any) -> Any:
            try:
                await _Suspend()
            finally:
                finished.append(True)

    coroutine = Waits().execute_async()
    coroutine.send(None)
    coroutine.close()
    assert finished == [True]
    assert coroutine.cr_frame is None


def test_execute_tool_fails_for_a_get_tool_raising_generator_exit() -> None:
    class Lookup(ToolRegistry):
        def get_tool(self, name: Any) -> BaseTool | None:
            raise GeneratorExit("the lookup was closed")

    output = Lookup().execute_tool("anything")
    assert output.success is False
    assert output.metadata["error_type"] == "GeneratorExit"
    assert "get_tool('anything') raised GeneratorExit: the lookup was closed" in str(output.error)


def test_execute_tool_fails_for_an_own_execute_raising_a_base_exception() -> None:
    class OwnExecute(BaseTool):
        name = "own_execute"
        description = "Runs its own execute, which lets a BaseException out."

        def _execute(self, **kwargs: Any) -> Any:
            return None

        def execute(self, /, **kwargs: Any) -> ToolOutput:
            raise LibraryExit("the greenlet was killed")

    registry = ToolRegistry()
    registry.register_tool(OwnExecute)
    _failed(registry.execute_tool("own_execute"), "LibraryExit", "the greenlet was killed")
