"""A tool's refused parameters are described in words a caller can act on.

The failed output (and the task's error) names the tool, the parameter and what was expected;
it carries no link to pydantic's error pages and no name of a model the library made up from
the function's signature.
"""

from __future__ import annotations

from typing import Any

from laios.core.types import Context, Task
from laios.execution import Executor
from laios.tools.base import BaseTool, ToolInput, create_simple_tool
from laios.tools.registry import ToolRegistry

SECRET = "sk-live-0123456789abcdefghijklmnopqrstuvwxyz"


def add(a: int, b: int = 2) -> int:
    return a + b


def _task_error(tool: BaseTool, **parameters: Any) -> str:
    registry = ToolRegistry()
    registry.register_tool(tool)
    with Executor(registry) as executor:
        result = executor.execute_task(
            Task(plan_id="p", description="d", tool_name=tool.name, parameters=parameters),
            Context(session_id="s", user_id="u"),
        )
    assert not result.success
    assert result.metadata["error_type"] == "ValidationError"
    assert result.error is not None
    return result.error


def test_a_function_tool_names_the_parameter_without_a_link() -> None:
    """Wrong type, missing and unknown parameters: each named, with what was expected."""
    tool = create_simple_tool("add", "Adds.", add)
    wrong = tool.execute(a=SECRET).error or ""
    missing = tool.execute(b=1).error or ""
    extra = tool.execute(a=1, token=SECRET).error or ""
    for error in (wrong, missing, extra):
        assert "errors.pydantic.dev" not in error
        assert "For further information" not in error
        assert SECRET not in error
    assert "\na\n" in wrong
    assert "valid integer" in wrong
    assert "\na\n" in missing
    assert "Field required" in missing
    assert "\ntoken\n" in extra
    assert "Extra inputs are not permitted" in extra


def test_the_task_error_carries_no_link_for_a_model_of_the_users() -> None:
    """A hand-written input model keeps its own name; the link goes through the executor too."""

    class ReadInput(ToolInput):
        path: str
        limit: int = 10

    class Read(BaseTool):
        name = "read"
        description = "Reads."
        input_model = ReadInput

        def _execute(self, path: str, limit: int) -> str:
            return path[:limit]

    error = _task_error(Read(), path="/x", limit="many")
    assert "errors.pydantic.dev" not in error
    assert "ReadInput" in error
    assert "\nlimit\n" in error
    assert "valid integer" in error
    function_error = _task_error(create_simple_tool("add", "Adds.", add), a="x")
    assert "errors.pydantic.dev" not in function_error


def test_a_function_tool_is_named_not_the_model_made_of_its_signature() -> None:
    """The error says whose parameters were refused: the tool's, by the name it was given."""
    tool = create_simple_tool("add", "Adds.", add)
    nothing = create_simple_tool("five", "Gives 5.", lambda: 5)
    refused = [tool.execute(a="x").error or "", nothing.execute(x=1).error or ""]
    assert refused[0].startswith("1 validation error for parameters of tool 'add'\na\n")
    assert refused[1].startswith("1 validation error for parameters of tool 'five'\nx\n")
    assert "AddToolInput" not in _task_error(tool, b=1)
