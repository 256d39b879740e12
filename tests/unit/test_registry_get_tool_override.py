"""A ``ToolRegistry`` subclass that overrides ``get_tool`` (aliases, tools built on first use)
is asked by every lookup of the registry's own, as the executor and ``get_tool_schema`` ask it:
``execute_tool``, ``has_tool`` and ``in`` find the tools it finds. ``execute_tool`` still never
raises when the override does, and ``has_tool`` and ``in`` answer ``False`` then, as they did
before they asked it (they never raised)."""

from __future__ import annotations

from typing import Any, TypeVar

import pytest

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import BaseTool, create_simple_tool
from laios.tools.registry import ToolRegistry


class Aliases(ToolRegistry):
    """Finds a tool under another name too."""

    def get_tool(self, name: str) -> BaseTool | None:
        return super().get_tool({"greet": "hello"}.get(name, name))


class Broken(ToolRegistry):
    """A lookup that fails."""

    def get_tool(self, name: str) -> BaseTool | None:
        raise LookupError("the tool store is down")


_Registry = TypeVar("_Registry", bound=ToolRegistry)


def _with_hello(registry: _Registry) -> _Registry:
    """``registry`` with a ``hello`` tool registered."""
    registry.register_tool(create_simple_tool("hello", "Greets.", lambda who="you": f"hi {who}"))
    return registry


def _aliases() -> Aliases:
    return _with_hello(Aliases())


def test_execute_tool_asks_get_tool() -> None:
    output = _aliases().execute_tool("greet", who="Ada")
    assert output.success is True
    assert output.data == "hi Ada"


def test_has_tool_and_in_ask_get_tool() -> None:
    registry = _aliases()
    assert registry.has_tool("greet") is True
    assert "greet" in registry
    assert registry.has_tool("nothing") is False
    assert "nothing" not in registry


def test_unknown_name_still_not_found() -> None:
    output = _aliases().execute_tool("nothing")
    assert output.success is False
    assert output.error == "Tool not found: nothing"
    assert output.metadata == {"error_type": "tool_not_found"}


def test_a_get_tool_that_raises_gives_a_failed_output() -> None:
    output = Broken().execute_tool("greet")
    assert output.success is False
    assert output.metadata == {"error_type": "LookupError"}
    assert output.error is not None
    assert "get_tool('greet') raised LookupError: the tool store is down" in output.error


def test_has_tool_and_in_answer_false_when_get_tool_raises() -> None:
    registry = Broken()
    assert registry.has_tool("greet") is False
    assert "greet" not in registry


def test_a_raising_get_tool_for_a_huge_name_is_named_shortened() -> None:
    name = "x" * 5000
    output = Broken().execute_tool(name)
    assert output.success is False
    assert output.error is not None
    assert len(output.error) < 400
    assert f"get_tool('{'x' * 127}…') raised LookupError" in output.error


class ReturnsClasses(ToolRegistry):
    """A lookup that hands out the tool's class instead of a tool."""

    def get_tool(self, name: str) -> Any:
        tool = super().get_tool(name)
        return type(tool) if tool is not None else None


def _returns_classes() -> ReturnsClasses:
    return _with_hello(ReturnsClasses())


def test_a_get_tool_that_returns_a_class_says_to_return_an_instance() -> None:
    """It failed with "execute() missing 1 required positional argument: 'self'"."""
    output = _returns_classes().execute_tool("hello", who="Ada")
    assert output.success is False
    assert output.error is not None
    assert "get_tool('hello') returned the class" in output.error, output.error
    assert "not a tool: return an instance" in output.error, output.error
    assert output.metadata == {"error_type": "TypeError"}
    with pytest.raises(TypeError, match=r"returned the class .*: return an instance"):
        _returns_classes().get_tool_schema("hello")


def test_an_executor_whose_registry_returns_a_class_says_to_return_an_instance() -> None:
    """The task failed with the same "missing 'self'" error, counted as the tool's own."""
    with Executor(_returns_classes(), store=MetricStore(), register_prometheus=False) as executor:
        task = Task(plan_id="p", description="d", tool_name="hello")
        result = executor.execute_task(task, Context(session_id="s", user_id="u"))
    assert result.success is False
    assert result.error is not None
    assert "get_tool('hello') returned the class" in result.error, result.error
    assert "not a tool: return an instance" in result.error, result.error


def greet(who: str = "you") -> str:
    return f"hi {who}"


class FunctionsByName:
    """A registry of the caller's own that keeps plain functions, not tools."""

    def get_tool(self, name: str) -> Any:
        return {"greet": greet}.get(name)


@pytest.mark.parametrize("timeout", [None, 5])
def test_an_executor_whose_registry_returns_a_function_says_to_wrap_it(
    timeout: float | None,
) -> None:
    """The task failed with "'function' object has no attribute 'execute'", which named
    neither the registry nor the fix."""
    with Executor(FunctionsByName(), store=MetricStore(), register_prometheus=False) as executor:
        task = Task(plan_id="p", description="d", tool_name="greet")
        result = executor.execute_task(task, Context(session_id="s", user_id="u"), timeout)
    assert result.success is False
    assert result.metadata["error_type"] == "TypeError"
    assert result.error is not None
    assert result.error.startswith(
        "The tool registry returned the function greet, not a tool (it has no execute() method)"
    ), result.error
    assert "create_simple_tool(name, description, func)" in result.error, result.error


def _registry_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "laios.tools.registry" and r.levelname == "WARNING"
    ]


@pytest.mark.parametrize("ask", ["has_tool", "in"])
def test_has_tool_and_in_answer_false_for_a_class_saying_to_return_an_instance(
    ask: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Both answered True, though every run of the tool fails ("get_tool('hello') returned the
    class ...: return an instance"): the answer now agrees with what running it does."""
    registry = _returns_classes()
    with caplog.at_level("WARNING", logger="laios.tools.registry"):
        found = registry.has_tool("hello") if ask == "has_tool" else "hello" in registry
    assert found is False
    said = _registry_warnings(caplog)
    assert len(said) == 1, said
    assert said[0].startswith("has_tool('hello'): get_tool returned the class "), said
    assert "not a tool: return an instance" in said[0], said
    assert "answered False" in said[0], said
    assert registry.has_tool("nothing") is False  # (None: unknown, as before)
    assert not registry.execute_tool("hello").success  # (what has_tool now agrees with)


def test_has_tool_warns_once_per_registry_of_a_class(caplog: pytest.LogCaptureFixture) -> None:
    registry = _returns_classes()
    registry.register_tool(create_simple_tool("bye", "Says bye.", lambda: "bye"))
    with caplog.at_level("DEBUG", logger="laios.tools.registry"):
        answers = [registry.has_tool(n) for n in ("hello", "hello", "bye")]
        answers.append("hello" in registry)
    assert answers == [False] * 4
    assert len(_registry_warnings(caplog)) == 1, _registry_warnings(caplog)
    later = [r.getMessage() for r in caplog.records if r.levelname == "DEBUG"]
    assert len(later) == 3, later
    assert all("answered False" in m for m in later), later
    with caplog.at_level("WARNING", logger="laios.tools.registry"):
        assert _returns_classes().has_tool("hello") is False  # (another registry: told too)
    assert len(_registry_warnings(caplog)) == 2, _registry_warnings(caplog)


class RegistryOfFunctions(ToolRegistry):
    """A registry subclass whose ``get_tool`` hands back plain functions, not tools."""

    def get_tool(self, name: str) -> Any:
        return {"greet": greet}.get(name)


@pytest.mark.parametrize("ask", ["has_tool", "in"])
def test_has_tool_and_in_answer_false_for_a_function_saying_to_wrap_it(
    ask: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Both answered True for a registry whose get_tool returns a plain function, though every
    run of it fails ("not a tool (it has no execute() method)"), as for a class."""
    registry = RegistryOfFunctions()
    with caplog.at_level("DEBUG", logger="laios.tools.registry"):
        found = [registry.has_tool("greet") if ask == "has_tool" else "greet" in registry]
        found.append(registry.has_tool("greet"))
    assert found == [False, False]
    said = _registry_warnings(caplog)
    assert len(said) == 1, said
    assert said[0].startswith(
        "has_tool('greet'): get_tool returned the function greet, not a tool (it has no "
        "execute() method)"
    ), said
    assert "create_simple_tool(name, description, func)" in said[0], said
    assert registry.has_tool("nothing") is False  # (None: unknown, as before)


def test_execute_tool_of_a_function_says_to_wrap_it() -> None:
    """The registry's own execute_tool said only "'function' object has no attribute
    'execute'", naming neither the registry nor the fix, which a run under an executor says."""
    output = RegistryOfFunctions().execute_tool("greet", who="you")
    assert output.success is False
    assert output.metadata["error_type"] == "TypeError"
    assert (output.error or "").startswith(
        "The tool registry failed: get_tool('greet') returned the function greet, not a tool "
        "(it has no execute() method)"
    ), output.error
    assert "create_simple_tool(name, description, func)" in (output.error or "")


class _AsyncLookingTool:
    """A tool of the caller's own making, not a BaseTool: ``is_async`` set, an ``execute``
    (which ``execute_tool`` calls) and no ``execute_async``; its ``execute`` has a bug."""

    name = "own"
    is_async = True

    def execute(self, **kwargs: Any) -> Any:
        return None.missing  # type: ignore[attr-defined]


class RegistryOfOwnTools(ToolRegistry):
    def get_tool(self, name: str) -> Any:
        return {"own": _AsyncLookingTool()}.get(name)


def test_execute_tool_keeps_a_tools_own_attribute_error() -> None:
    """execute_tool calls execute: the AttributeError its execute raised was told as "not a
    tool (it has no execute_async() method)", the tool's own error lost."""
    output = RegistryOfOwnTools().execute_tool("own")
    assert output.success is False
    assert "not a tool" not in (output.error or ""), output.error
    assert "missing" in (output.error or ""), output.error
