"""A tool whose entry point does not take its input model's fields by name fails saying how it
is called and what to write, not only Python's "got an unexpected keyword argument".

``_execute`` receives the validated model only as its one parameter named ``input_data`` or
annotated with the model; any other signature gets the fields by name. A tool written as
``def _execute(self, data)`` with an input model therefore fails every call (such a class is
refused when it is made, unless it has an ``__init__`` of its own: see
test_tool_missing_field_parameters.py); so does a keyword-style ``_execute`` without
``**kwargs`` when the caller sends a parameter the model keeps as an extra.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from pydantic import ConfigDict, Field

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.tools.base import AsyncBaseTool, BaseTool, ToolInput
from laios.tools.registry import ToolRegistry


class PathInput(ToolInput):
    path: str
    limit: int = 10


class TakesModelUnderAnotherName(BaseTool):
    name = "takes_model_as_data"
    description = "Takes its input model under another name."
    input_model = PathInput

    def __init__(self) -> None:
        # (an __init__ of its own, which may give each instance a model: the class is not
        # refused when it is made, and its runs say what is wrong)
        super().__init__()

    def _execute(self, data: Any) -> Any:
        return data.path


class TakesModelUnderAnotherNameAsync(AsyncBaseTool):
    name = "takes_model_as_data_async"
    description = "Takes its input model under another name."
    input_model = PathInput

    def __init__(self) -> None:
        # (an __init__ of its own, which may give each instance a model: the class is not
        # refused when it is made, and its runs say what is wrong)
        super().__init__()

    async def _execute_async(self, data: Any) -> Any:
        return data.path


class TakesFieldsOnly(BaseTool):
    name = "takes_fields_only"
    description = "Takes the declared fields by name, and nothing else."
    input_model = PathInput

    def _execute(self, path: str, limit: int) -> Any:
        return path


def test_an_entry_point_taking_the_model_by_another_name_says_what_to_write() -> None:
    """The failure names the entry point's signature and says how to receive the model.
    (``def _execute(self, input_data, context=None)`` is refused when its class is made: see
    test_tool_input_among_parameters.py.)"""
    output = TakesModelUnderAnotherName().execute(path="/data/a.txt")
    assert not output.success
    assert output.metadata["error_type"] == "TypeError"
    error = output.error or ""
    assert "unexpected keyword argument 'path'" in error
    assert "by name" in error
    assert "def _execute(self, input_data: PathInput)" in error


def test_an_async_entry_point_taking_the_model_by_another_name_says_what_to_write() -> None:
    """The same for ``_execute_async``."""
    output = asyncio.run(TakesModelUnderAnotherNameAsync().execute_async(path="/a"))
    assert not output.success
    assert "async def _execute_async(self, input_data: PathInput)" in (output.error or "")


def test_an_extra_parameter_the_entry_point_cannot_take_says_what_to_write() -> None:
    """A parameter the model keeps as an extra, which ``_execute`` has no name for, fails
    saying so and how to accept or refuse such parameters."""
    output = TakesFieldsOnly().execute(path="/a", colour="red")
    assert not output.success
    error = output.error or ""
    assert "unexpected keyword argument 'colour'" in error
    assert "not a field of PathInput" in error
    assert "**kwargs" in error
    assert 'extra="forbid"' in error


class StrictPathInput(PathInput):
    model_config = ConfigDict(extra="forbid")


class TracedPathInput(PathInput):
    trace: bool = Field(default=False, exclude=True)


class NeedsUndeclared(BaseTool):
    name = "needs_undeclared"
    description = "Needs a parameter its model does not declare."
    input_model = StrictPathInput

    def _execute(self, path: str, limit: int, encoding: str) -> Any:
        return path


class NeedsExcluded(BaseTool):
    name = "needs_excluded"
    description = "Needs a field its model never passes."
    input_model = TracedPathInput

    def _execute(self, path: str, limit: int, *, trace: bool) -> Any:
        return path


class NeedsUndeclaredAsync(AsyncBaseTool):
    name = "needs_undeclared_async"
    description = "Needs a parameter its model does not declare."
    input_model = PathInput

    async def _execute_async(self, path: str, encoding: str, **kwargs: Any) -> Any:
        return path


def test_a_parameter_the_model_does_not_pass_says_what_to_write() -> None:
    """A parameter ``_execute`` needs that is no field of its model (or an excluded one) is
    never passed but by a caller giving it as an extra: the failure says so, and to declare
    it or give it a default, besides Python's "missing ... required argument"."""
    output = NeedsUndeclared().execute(path="/a")
    assert not output.success
    error = output.error or ""
    assert "missing 1 required positional argument: 'encoding'" in error
    assert "'encoding' is not a field of StrictPathInput" in error
    assert "Declare it as a field of StrictPathInput" in error
    assert "give it a default" in error
    output = asyncio.run(NeedsUndeclaredAsync().execute_async(path="/a"))
    assert "'encoding' is not a field of PathInput" in (output.error or "")


def test_an_excluded_field_the_entry_point_needs_says_it_is_never_passed() -> None:
    """The same for a field declared ``Field(exclude=True)``, which is never passed."""
    output = NeedsExcluded().execute(path="/a", trace=True)
    error = output.error or ""
    assert "missing 1 required keyword-only argument: 'trace'" in error
    assert "'trace' is a field of TracedPathInput declared Field(exclude=True)" in error


def test_the_executor_reports_the_same_message() -> None:
    """A task running such a tool fails with the same actionable error."""
    registry = ToolRegistry()
    registry.register_tool(TakesModelUnderAnotherName)
    task = Task(
        plan_id="p", description="d", tool_name="takes_model_as_data", parameters={"path": "/a"}
    )
    with Executor(registry) as executor:
        result = executor.execute_task(task, Context(session_id="s", user_id="u"))
    assert not result.success
    assert result.metadata["error_type"] == "TypeError"
    assert "def _execute(self, input_data: PathInput)" in (result.error or "")


def test_a_missing_or_unknown_parameter_of_a_tool_without_a_model_reads_as_before() -> None:
    """With the bare ``ToolInput`` the caller's unknown parameter is the caller's mistake:
    Python's message is kept as it is."""

    class Greet(BaseTool):
        name = "greet_plain"
        description = "Greets."

        def _execute(self, who: str) -> str:
            return who

    output = Greet().execute(whom="x")
    # (Python 3.13 adds "Did you mean 'who'?")
    assert re.search(
        r"Greet\._execute\(\) got an unexpected keyword argument 'whom'(\. Did you mean 'who'\?)?$",
        output.error or "",
    )
