"""A tool whose ``name`` or ``description`` property raises is refused when it is made, with a
message naming the tool class, the attribute and what it raised."""

from __future__ import annotations

import pytest

from laios.tools.base import BaseTool
from laios.tools.registry import ToolRegistry


class NamelessTool(BaseTool):
    description = "Has no name it can tell."

    @property
    def name(self) -> str:  # type: ignore[override]
        raise RuntimeError("settings not loaded")

    def _execute(self) -> int:
        return 1


class SilentTool(BaseTool):
    name = "silent"

    @property
    def description(self) -> str:  # type: ignore[override]
        raise KeyError("description")

    def _execute(self) -> int:
        return 1


@pytest.mark.parametrize(
    ("tool_class", "said"),
    [(NamelessTool, "NamelessTool"), (SilentTool, "'silent'")],
    ids=["name", "description"],
)
def test_a_raising_property_is_refused_naming_the_tool(
    tool_class: type[BaseTool], said: str
) -> None:
    registry = ToolRegistry()
    with pytest.raises(TypeError) as refused:
        registry.register_tool(tool_class)
    message = str(refused.value)
    attribute = "name" if tool_class is NamelessTool else "description"
    assert said in message
    assert f"its {attribute!r} raised" in message
    assert type(refused.value.__cause__).__name__ in message
    assert len(registry) == 0


class ModeTool(BaseTool):
    name = "mode"
    description = "Cannot tell whether it is asynchronous."

    @property
    def is_async(self) -> bool:  # type: ignore[override]
        raise RuntimeError("mode not configured")

    def _execute(self) -> int:
        return 1


class KindTool(BaseTool):
    name = "kind"
    description = "Cannot tell its tool type."

    @property
    def tool_type(self) -> str:  # type: ignore[override]
        raise LookupError("no tool type configured")

    def _execute(self) -> int:
        return 1


@pytest.mark.parametrize(
    ("tool_class", "attribute"),
    [(ModeTool, "is_async"), (KindTool, "tool_type")],
    ids=["is_async", "tool_type"],
)
def test_a_raising_is_async_or_tool_type_is_refused_naming_the_tool(
    tool_class: type[BaseTool], attribute: str
) -> None:
    """``is_async`` and ``tool_type`` are read when the tool is made, as the other attributes
    are: one whose reading raises is refused with the same ``TypeError``, its cause the
    exception."""
    registry = ToolRegistry()
    with pytest.raises(TypeError) as refused:
        registry.register_tool(tool_class)
    message = str(refused.value)
    assert f"Tool {tool_class.name!r}: reading its {attribute!r} raised" in message
    assert type(refused.value.__cause__).__name__ in message
    assert len(registry) == 0
