"""A registry whose ``get_tool`` is a plain ``def`` returning a coroutine (it wraps an async
lookup without awaiting it) fails the task saying so and what to write, and every coroutine
the lookups made is closed, never left for Python to warn "coroutine ... was never awaited".

The task failed saying "The tool registry returned an instance of coroutine, not a tool ...;
wrap a plain function with create_simple_tool(...)", which is no fix for it, and the coroutine
was left unclosed; under ``execute_with_retry`` a second one, from the retry's own lookup, too.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import warnings
from collections.abc import Coroutine
from typing import Any

import pytest

from laios.core.types import Context, Task, TaskResult
from laios.execution.executor import Executor
from laios.execution.runners import ProcessRunner
from laios.execution.store import MetricStore
from laios.tools.base import BaseTool, create_simple_tool
from laios.tools.registry import ToolRegistry


class AsyncInside(ToolRegistry):
    """A plain ``get_tool`` around an async lookup, keeping every coroutine it hands out."""

    def __init__(self) -> None:
        super().__init__()
        self.made: list[Coroutine[Any, Any, Any]] = []

    async def _lookup(self, name: str) -> BaseTool | None:
        return ToolRegistry.get_tool(self, name)

    def get_tool(self, name: str) -> Any:
        coroutine = self._lookup(name)
        self.made.append(coroutine)
        return coroutine


def _registry() -> AsyncInside:
    registry = AsyncInside()
    registry.register_tool(create_simple_tool("add", "Adds.", lambda a, b: a + b))
    return registry


def _task() -> Task:
    return Task(plan_id="p", description="d", tool_name="add", parameters={"a": 1, "b": 2})


CONTEXT = Context(session_id="s", user_id="u")


def _assert_said_and_closed(result: TaskResult, registry: AsyncInside) -> None:
    assert result.success is False
    error = result.error or ""
    assert "create_simple_tool" not in error, error
    assert error.startswith(
        "The tool registry returned a coroutine (AsyncInside._lookup), not a tool"
    ), error
    assert "get_tool must return the tool itself (or None)" in error, error
    assert registry.made
    states = [inspect.getcoroutinestate(c) for c in registry.made]
    assert states == ["CORO_CLOSED"] * len(states), states


@pytest.mark.parametrize("timeout", [None, 5])
def test_execute_task_says_what_to_write_and_closes_the_coroutine(
    timeout: float | None,
) -> None:
    registry = _registry()
    with Executor(registry, store=MetricStore(), register_prometheus=False) as executor:
        result = executor.execute_task(_task(), CONTEXT, timeout)
    _assert_said_and_closed(result, registry)


def test_execute_async_says_what_to_write_and_closes_the_coroutine() -> None:
    registry = _registry()
    with Executor(registry, store=MetricStore(), register_prometheus=False) as executor:
        result = asyncio.run(executor.execute_async(_task(), CONTEXT))
    _assert_said_and_closed(result, registry)


def test_execute_with_retry_closes_its_own_lookups_coroutine_too() -> None:
    registry = _registry()
    with Executor(registry, store=MetricStore(), register_prometheus=False) as executor:
        result = executor.execute_with_retry(_task(), CONTEXT, max_retries=1, retry_delay=0)
    assert len(registry.made) >= 2  # (the retry's own lookup, and an attempt's)
    _assert_said_and_closed(result, registry)


def test_execute_with_retry_async_closes_its_own_lookups_coroutine_too() -> None:
    registry = _registry()
    with Executor(registry, store=MetricStore(), register_prometheus=False) as executor:
        result = asyncio.run(
            executor.execute_with_retry_async(_task(), CONTEXT, max_retries=1, retry_delay=0)
        )
    assert len(registry.made) >= 2
    _assert_said_and_closed(result, registry)


def test_the_registrys_own_execute_tool_says_so_and_closes_it() -> None:
    registry = _registry()
    output = registry.execute_tool("add", a=1, b=2)
    assert output.success is False
    error = output.error or ""
    assert error.startswith(
        "The tool registry failed: get_tool('add') returned a coroutine (AsyncInside._lookup)"
    ), error
    assert "get_tool must return the tool itself (or None)" in error, error
    assert [inspect.getcoroutinestate(c) for c in registry.made] == ["CORO_CLOSED"]


def test_a_process_runner_says_what_to_write_and_closes_the_coroutine() -> None:
    """The call was refused as one whose tool "cannot be pickled", saying to define the tool
    class at module level, and the coroutine was left unclosed."""
    registry = _registry()
    executor = Executor(
        registry, store=MetricStore(), register_prometheus=False, runner=ProcessRunner(1)
    )
    with executor:
        result = executor.execute_task(_task(), CONTEXT)
        # (a huge id is quoted cut, as in every other message)
        huge = executor.execute_task(_task().model_copy(update={"id": "n" * 1_000_000}), CONTEXT)
    assert len(huge.error or "") < 2000, len(huge.error or "")
    assert result.success is False
    error = result.error or ""
    assert "module level" not in error, error
    assert "the tool registry returned a coroutine (AsyncInside._lookup), not a tool" in error
    assert "get_tool must return the tool itself (or None)" in error, error
    states = [inspect.getcoroutinestate(c) for c in registry.made]
    assert states == ["CORO_CLOSED"] * len(states), states


def test_the_registrys_own_get_tool_schema_says_so_and_closes_it() -> None:
    """It raised "'coroutine' object has no attribute 'get_schema'", the coroutine unclosed."""
    registry = _registry()
    with pytest.raises(TypeError) as caught:
        registry.get_tool_schema("add")
    message = str(caught.value)
    assert message.startswith(
        "The tool registry failed: get_tool('add') returned a coroutine (AsyncInside._lookup)"
    ), message
    assert [inspect.getcoroutinestate(c) for c in registry.made] == ["CORO_CLOSED"]


@pytest.mark.parametrize("ask", ["has_tool", "in"])
def test_has_tool_and_in_answer_false_say_why_and_close_it(
    ask: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Both answered True, for a registry that cannot run the tool, and left the coroutine for
    Python to warn that it was never awaited (a RuntimeWarning, an error under this suite)."""
    registry = _registry()
    with caplog.at_level("WARNING", logger="laios.tools.registry"):
        found = registry.has_tool("add") if ask == "has_tool" else "add" in registry
    assert found is False
    assert [inspect.getcoroutinestate(c) for c in registry.made] == ["CORO_CLOSED"]
    said = [r.getMessage() for r in caplog.records if r.name == "laios.tools.registry"]
    assert len(said) == 1, said
    assert said[0].startswith(
        "has_tool('add'): get_tool returned a coroutine (AsyncInside._lookup), not a tool"
    ), said
    assert "get_tool must return the tool itself (or None)" in said[0]
    assert "; answered False (said once per registry" in said[0], said


def _registry_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "laios.tools.registry" and r.levelname == "WARNING"
    ]


def test_has_tool_and_in_warn_once_per_registry(caplog: pytest.LogCaptureFixture) -> None:
    """Each call logged the warning again: a caller asking in a loop flooded the log."""
    registry = _registry()
    with caplog.at_level("DEBUG", logger="laios.tools.registry"):
        answers = [registry.has_tool(name) for name in ("add", "add", "other")]
        answers += ["add" in registry, "other" in registry]
    assert answers == [False] * 5
    assert len(registry.made) == 5
    assert [inspect.getcoroutinestate(c) for c in registry.made] == ["CORO_CLOSED"] * 5
    said = _registry_warnings(caplog)
    assert len(said) == 1, said
    assert said[0].startswith("has_tool('add'): get_tool returned a coroutine"), said
    assert "said once per registry" in said[0], said
    later = [r.getMessage() for r in caplog.records if r.levelname == "DEBUG"]
    assert len(later) == 4, later
    assert all(m.endswith("answered False") for m in later), later
    with caplog.at_level("WARNING", logger="laios.tools.registry"):
        assert _registry().has_tool("add") is False  # (another registry: told too)
    assert len(_registry_warnings(caplog)) == 2, _registry_warnings(caplog)


class AsyncGetTool(ToolRegistry):
    """A ``get_tool`` that is itself an ``async def``."""

    async def get_tool(self, name: str) -> BaseTool | None:  # type: ignore[override]
        return ToolRegistry.get_tool(self, name)


def test_an_async_def_get_tool_warns_once_and_leaves_no_coroutine_unawaited(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = AsyncGetTool()
    registry.register_tool(create_simple_tool("add", "Adds.", lambda a, b: a + b))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with caplog.at_level("WARNING", logger="laios.tools.registry"):
            answers = [registry.has_tool("add") for _ in range(3)] + ["add" in registry]
        gc.collect()
    assert answers == [False] * 4
    assert [str(w.message) for w in caught] == []
    said = _registry_warnings(caplog)
    assert len(said) == 1, said
    assert said[0].startswith(
        "has_tool('add'): get_tool returned a coroutine (AsyncGetTool.get_tool), not a tool"
    ), said


def test_an_async_def_get_tool_is_told_that_get_tool_itself_is_async(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Told "get_tool called an async function without awaiting it", which it did not: the
    async function is get_tool itself."""
    registry = AsyncGetTool()
    registry.register_tool(create_simple_tool("add", "Adds.", lambda a, b: a + b))
    with caplog.at_level("WARNING", logger="laios.tools.registry"):
        assert registry.has_tool("add") is False
    output = registry.execute_tool("add", a=1, b=2)
    with pytest.raises(TypeError) as caught:
        registry.get_tool_schema("add")
    for said in [*_registry_warnings(caplog), output.error or "", str(caught.value)]:
        assert "get_tool called an async function" not in said, said
        assert "get_tool is itself an async function (async def get_tool)" in said, said
        assert "make get_tool a plain def, awaiting nothing" in said, said
        assert "get_tool must return the tool itself (or None)" in said, said


def test_a_plain_get_tool_around_an_async_lookup_is_still_told_so() -> None:
    output = _registry().execute_tool("add", a=1, b=2)
    assert "get_tool called an async function without awaiting it" in (output.error or "")
