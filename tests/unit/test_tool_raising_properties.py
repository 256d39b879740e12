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
