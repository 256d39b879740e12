"""Tools under hostile use: odd signatures, odd parameters, odd names, secrets in bad input."""

from __future__ import annotations

import asyncio
import json
import math
import warnings
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import Field

from laios.core.types import Context, Permission, Task
from laios.execution.executor import Executor
from laios.tools.base import AsyncBaseTool, BaseTool, ToolInput, ToolOutput, create_simple_tool
from laios.tools.registry import ToolRegistry

# Long enough that pydantic would shorten its repr to a prefix and a suffix, which a scrubber
# looking for the whole value cannot find.
LONG_SECRET = "sk-live-" + "A1b2C3d4E5" * 8


class KeyInput(ToolInput):
    api_key: int


class KeyTool(BaseTool):
    name = "key_tool"
    description = "Takes an API key that must be a number."
    input_model = KeyInput

    def _execute(self, input_data: KeyInput) -> int:
        return input_data.api_key


def _pieces(secret: str) -> list[str]:
    """Every 12-character slice of ``secret``: none of them may show."""
    return [secret[i : i + 12] for i in range(len(secret) - 11)]


def test_a_validation_error_does_not_quote_a_long_secret() -> None:
    """A rejected parameter's value, even shortened, is not quoted in the tool's error."""
    output = KeyTool().execute(api_key=LONG_SECRET)
    assert output.success is False
    assert output.metadata["error_type"] == "ValidationError"
    assert "api_key" in (output.error or "")
    assert not [piece for piece in _pieces(LONG_SECRET) if piece in (output.error or "")]


def test_a_simple_tool_validation_error_does_not_quote_a_long_secret() -> None:
    """The input model made from a function's signature hides rejected values too."""

    def call(token: int) -> int:
        return token

    output = create_simple_tool("call", "Calls.", call).execute(token=LONG_SECRET)
    assert output.success is False
    assert "token" in (output.error or "")
    assert not [piece for piece in _pieces(LONG_SECRET) if piece in (output.error or "")]


def test_an_executed_task_with_a_rejected_secret_leaks_no_part_of_it() -> None:
    """Through the executor, no slice of a long rejected secret reaches the task's error."""
    registry = ToolRegistry()
    registry.register_tool(KeyTool)
    with Executor(registry, register_prometheus=False) as executor:
        task = Task(plan_id="p", description="d", tool_name="key_tool")
        task.parameters = {"api_key": LONG_SECRET}
        result = executor.execute_task(task, Context(session_id="s", user_id="u"))
    assert result.success is False
    assert not [piece for piece in _pieces(LONG_SECRET) if piece in (result.error or "")]


class EchoKwargs(BaseTool):
    name = "echo_kwargs"
    description = "Returns its keyword arguments."

    def _execute(self, **kwargs: Any) -> Any:
        return kwargs


def test_execute_with_a_parameter_named_self_never_raises() -> None:
    """``execute(self=...)`` returns an output instead of raising a TypeError about itself."""
    output = EchoKwargs().execute(self="me")
    assert isinstance(output, ToolOutput)


def test_a_simple_tool_takes_a_parameter_named_self() -> None:
    """A function with a ``self`` parameter gets it, through execute and the registry."""
    tool = create_simple_tool("selfish", "Takes self.", lambda self, x: (self, x))
    assert tool.execute(self=1, x=2).data == (1, 2)
    registry = ToolRegistry()
    registry.register_tool(tool)
    assert registry.execute_tool("selfish", self=3, x=4).data == (3, 4)


def test_an_async_tool_takes_a_parameter_named_self() -> None:
    """The async entry points take a ``self`` parameter too."""

    async def selfish(self: Any) -> Any:
        return self

    tool = create_simple_tool("selfish_async", "Takes self.", selfish)
    assert isinstance(tool, AsyncBaseTool)
    assert asyncio.run(tool.execute_async(self=5)).data == 5
    assert tool.execute(self=6).data == 6


@pytest.mark.parametrize("name", [["echo_kwargs"], {}, {"a"}])
def test_execute_tool_with_an_unhashable_name_never_raises(name: Any) -> None:
    """An unhashable tool name is an unknown tool, not a TypeError."""
    registry = ToolRegistry()
    registry.register_tool(EchoKwargs)
    output = registry.execute_tool(name)
    assert output.success is False
    assert output.metadata["error_type"] == "tool_not_found"


_OPAQUE = object()


def _odd_defaults(
    callback: Callable[[int], int] = abs,
    kind: type = int,
    ratio: float = math.nan,
    ceiling: float = math.inf,
    raw: bytes = b"\xff\xfe",
    anything: Any = _OPAQUE,
) -> None:
    """A function whose annotations and defaults JSON schema cannot express as they are."""


def test_get_schema_of_odd_annotations_and_defaults_is_strict_json() -> None:
    """Callables, classes, NaN, infinity and binary defaults give a schema that is strict JSON."""
    tool = create_simple_tool("odd", "Odd parameters.", _odd_defaults)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        schema = tool.get_schema()
    text = json.dumps(schema, allow_nan=False)
    assert [p["name"] for p in json.loads(text)["parameters"]] == [
        "callback",
        "kind",
        "ratio",
        "ceiling",
        "raw",
        "anything",
    ]


def test_one_tool_with_odd_annotations_does_not_break_get_all_schemas() -> None:
    """get_all_schemas describes every tool even when one has a parameter JSON cannot type."""
    registry = ToolRegistry()
    registry.register_tools([EchoKwargs, create_simple_tool("odd", "Odd.", _odd_defaults)])
    assert [s["name"] for s in registry.get_all_schemas()] == ["echo_kwargs", "odd"]


class RefusingSchema(ToolInput):
    path: str = Field(description="Where")

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> Any:
        raise RuntimeError("no schema for you")


def test_get_schema_of_a_model_whose_schema_raises_still_names_its_fields() -> None:
    """An input model that cannot make a JSON schema is described from its fields."""

    class Refusing(BaseTool):
        name = "refusing"
        description = "Its input model has no JSON schema."
        input_model = RefusingSchema

        def _execute(self, **kwargs: Any) -> Any:
            return kwargs

    params = Refusing().get_schema()["parameters"]
    assert [(p["name"], p["required"], p["description"]) for p in params] == [
        ("path", True, "Where")
    ]


async def _double(x: int) -> int:
    return 2 * x


class AsyncCallable:
    """An object whose ``__call__`` is a coroutine function."""

    async def __call__(self, x: int) -> int:
        return await _double(x)


def test_a_simple_tool_from_an_object_with_async_call_is_asynchronous() -> None:
    """An object with ``async def __call__`` gives an async tool whose coroutine is awaited."""
    tool = create_simple_tool("async_callable", "Doubles.", AsyncCallable())
    assert isinstance(tool, AsyncBaseTool)
    assert asyncio.run(tool.execute_async(x=2)).data == 4


def test_a_synchronous_tool_returning_a_coroutine_fails_clearly() -> None:
    """A lambda wrapping an async function fails, saying what to do, and never succeeds idly."""
    tool = create_simple_tool("lambda_async", "Doubles.", lambda x: _double(x))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the coroutine is closed, not left un-awaited
        output = tool.execute(x=2)
    assert output.success is False
    assert output.metadata["error_type"] == "TypeError"
    assert "coroutine" in (output.error or "")
    assert "async def" in (output.error or "")


def test_a_base_tool_whose_execute_returns_a_coroutine_fails_through_the_executor() -> None:
    """Through the executor, a synchronous tool that returns a coroutine is a failed task."""

    class Forgetful(BaseTool):
        name = "forgetful"
        description = "Forgets to await."

        def _execute(self, x: int) -> Any:
            return _double(x)

    registry = ToolRegistry()
    registry.register_tool(Forgetful)
    with Executor(registry, register_prometheus=False) as executor:
        task = Task(plan_id="p", description="d", tool_name="forgetful", parameters={"x": 1})
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            result = executor.execute_task(task, Context(session_id="s", user_id="u"))
    assert result.success is False
    assert "coroutine" in (result.error or "")


def test_a_base_tool_with_async_def_execute_is_refused_when_defined() -> None:
    """``async def _execute`` on a BaseTool (a common first mistake) would never be awaited:
    the class is refused when it is defined, with an error naming the fix (subclass
    AsyncBaseTool and write ``_execute_async``), not when a task first runs it."""
    with pytest.raises(TypeError) as caught:

        class Misplaced(BaseTool):
            name = "misplaced"
            description = "An async method on a synchronous base class."

            async def _execute(self, x: int) -> int:
                return await _double(x)

    error = str(caught.value)
    assert "Misplaced" in error
    assert "AsyncBaseTool" in error
    assert "_execute_async" in error
    assert "async def _execute" in error


def test_a_base_tool_that_runs_its_async_execute_itself_is_taken() -> None:
    """A BaseTool that overrides ``execute`` runs ``_execute`` its own way: an ``async def
    _execute`` is its business, and the class is taken."""

    class OwnRunner(BaseTool):
        name = "own_runner"
        description = "Runs its coroutine itself."

        async def _execute(self, x: int) -> int:
            return await _double(x)

        def execute(self, **kwargs: Any) -> ToolOutput:
            return ToolOutput(success=True, data=asyncio.run(self._execute(kwargs["x"])))

    assert OwnRunner().execute(x=2).data == 4


@pytest.mark.parametrize("func", [None, 5, "print"])
def test_create_simple_tool_refuses_a_func_that_cannot_be_called(func: Any) -> None:
    """A func that is not callable is refused at the call, not when the tool first runs."""
    with pytest.raises(TypeError, match="callable"):
        create_simple_tool("broken", "Cannot run.", func)


@pytest.mark.parametrize("name", [5, None, b"bytes"])
def test_create_simple_tool_refuses_a_name_that_is_not_text(name: Any) -> None:
    """A name that is not a string is refused with a ValueError naming the problem."""
    with pytest.raises(ValueError, match="name"):
        create_simple_tool(name, "Has no name.", lambda: 1)


def test_create_simple_tool_takes_a_builtin_class_without_a_signature() -> None:
    """A builtin class such as dict, whose signature cannot be read, makes a working tool."""
    tool = create_simple_tool("make_dict", "Makes a dict.", dict)
    assert tool.execute(a=1).data == {"a": 1}


@pytest.mark.parametrize("permission", [Permission.SHELL_EXECUTE, "shell.execute"])
def test_a_single_permission_string_is_refused_with_a_clear_error(permission: Any) -> None:
    """A single permission where a set is expected is refused, saying so, not letter by letter."""
    with pytest.raises(ValueError, match="set of permissions"):
        create_simple_tool("shell", "Runs.", lambda: 1, permissions=permission)

    class OnePermission(BaseTool):
        name = "one_permission"
        description = "Declares one permission without a set."
        required_permissions = permission

        def _execute(self, **kwargs: Any) -> Any:
            return kwargs

    with pytest.raises(ValueError, match="set of permissions"):
        OnePermission()


class Builder(BaseTool):
    """Builds its output field by field, assigning whatever ``kind`` says."""

    name = "builder"
    description = "Fills in a ToolOutput after making it."

    def _execute(self, kind: str) -> ToolOutput:
        output = ToolOutput(success=False)
        if kind == "metadata":
            output.metadata = [1]  # type: ignore[assignment]
        else:
            output.success = "no"  # type: ignore[assignment]
        return output


def test_assigning_a_bad_field_to_a_tool_output_fails_the_task_clearly() -> None:
    """A ToolOutput field assigned a wrong type fails the run with a ValidationError."""
    registry = ToolRegistry()
    registry.register_tool(Builder)
    with Executor(registry, register_prometheus=False) as executor:
        task = Task(plan_id="p", description="d", tool_name="builder")
        task.parameters = {"kind": "metadata"}
        result = executor.execute_task(task, Context(session_id="s", user_id="u"))
    assert result.success is False
    assert result.metadata["error_type"] == "ValidationError"


def test_assigning_a_string_to_success_is_read_as_a_boolean() -> None:
    """``output.success = "no"`` is a failure, not a truthy string taken for success."""
    output = Builder().execute(kind="success")
    assert output.success is False
