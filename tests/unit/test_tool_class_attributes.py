"""A tool class's ``is_async`` and ``tool_type`` are checked when the tool is made, not found
wrong at each run (or never)."""

from __future__ import annotations

from typing import Any

import pytest

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import AsyncBaseTool, BaseTool
from laios.tools.registry import ToolRegistry


def _sync_tool(**attributes: Any) -> type[BaseTool]:
    def _execute(self: BaseTool, **kwargs: Any) -> int:
        return 1

    namespace = {"name": "t", "description": "a tool", "_execute": _execute, **attributes}
    return type("SyncTool", (BaseTool,), namespace)


def _async_tool(**attributes: Any) -> type[BaseTool]:
    async def _execute_async(self: BaseTool, **kwargs: Any) -> int:
        return 1

    namespace = {"name": "t", "description": "a tool", "_execute_async": _execute_async}
    return type("AsyncTool", (AsyncBaseTool,), {**namespace, **attributes})


@pytest.mark.parametrize(
    "tool_class",
    [_sync_tool(is_async=True), _sync_tool(is_async="no"), _async_tool(is_async=False)],
    ids=["sync-marked-async", "a-string", "async-marked-sync"],
)
def test_an_is_async_that_does_not_match_the_base_class_is_refused(
    tool_class: type[BaseTool],
) -> None:
    """``is_async = True`` on a ``BaseTool`` (or a truthy string) failed every task with
    "'SyncTool' object has no attribute 'run_raising_async'", and ``is_async = False`` on an
    ``AsyncBaseTool`` every task with a NotImplementedError; the tool is refused when made."""
    with pytest.raises(TypeError, match=r"^Tool 't': is_async"):
        tool_class()


@pytest.mark.parametrize("tool_type", ["Extension", "tool", "", None, 5])
def test_a_tool_type_the_conventions_do_not_name_is_refused(tool_type: Any) -> None:
    """Anything but ``function``, ``extension`` or ``datastore`` was put on spans as
    ``function`` without a word: a misspelt type was lost."""
    tool_class = _sync_tool(tool_type=tool_type)
    with pytest.raises(ValueError, match=r"^Tool 't': tool_type must be one of"):
        tool_class()


@pytest.mark.parametrize("tool_type", ["function", "extension", "datastore"])
def test_the_tool_types_of_the_conventions_are_taken(tool_type: str) -> None:
    assert _sync_tool(tool_type=tool_type)().tool_type == tool_type


def test_tools_of_both_kinds_run_as_before() -> None:
    registry = ToolRegistry()
    sync_class = _sync_tool()
    async_class = _async_tool(name="a", tool_type="datastore")
    registry.register_tool(sync_class)
    registry.register_tool(async_class)
    executor = Executor(registry, store=MetricStore(), register_prometheus=False)
    context = Context(session_id="s", user_id="u")
    try:
        for name in ("t", "a"):
            task = Task(plan_id="p", description="d", tool_name=name)
            assert executor.execute_task(task, context).output == 1
    finally:
        executor.shutdown()


@pytest.mark.parametrize(
    ("attributes", "said"),
    [
        ({"name": 123}, "Tool class SyncTool must define a non-blank 'name', got 123 (int)"),
        ({"name": ("read",)}, "got ('read',) (tuple)"),
        (
            {"description": ["Reads."]},
            "Tool 't' must define a non-empty 'description', got ['Reads.'] (list)",
        ),
    ],
    ids=["int-name", "tuple-name", "list-description"],
)
def test_a_name_or_description_that_is_no_text_is_refused_saying_what_it_is(
    attributes: dict[str, Any], said: str
) -> None:
    """A name or description set to something other than text is refused saying what it is,
    not only that it is missing."""
    with pytest.raises(ValueError) as refused:
        _sync_tool(**attributes)()
    assert said in str(refused.value)
    assert "a string" in str(refused.value)


def test_a_missing_name_or_description_is_refused_as_before() -> None:
    """A blank one is refused without a value to show."""
    with pytest.raises(ValueError) as refused:
        _sync_tool(name="  ")()
    assert str(refused.value) == "Tool class SyncTool must define a non-blank 'name'"
    with pytest.raises(ValueError) as refused:
        _sync_tool(description="")()
    assert str(refused.value) == "Tool 't' must define a non-empty 'description'"
