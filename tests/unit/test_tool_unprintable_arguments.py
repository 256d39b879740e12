"""A wrong argument whose ``repr()`` raises (an object half built, whose repr reads an attribute
it never got) is refused with the clear ``TypeError``/``ValueError`` of any wrong argument, not
with what its repr raised."""

from __future__ import annotations

import pytest

from laios.tools.base import create_simple_tool
from laios.tools.registry import ToolRegistry


class HalfBuilt:
    """An object whose repr reads an attribute its constructor never set."""

    def __repr__(self) -> str:
        return f"HalfBuilt({self.endpoint})"  # type: ignore[attr-defined]


def test_register_tool_refuses_an_unprintable_object_as_no_tool() -> None:
    registry = ToolRegistry()
    with pytest.raises(TypeError, match="Expected a BaseTool subclass or instance, got <HalfBuilt"):
        registry.register_tool(HalfBuilt())
    assert len(registry) == 0


def test_create_simple_tool_refuses_an_unprintable_name_as_no_string() -> None:
    with pytest.raises(ValueError, match="name must be a non-blank string, got <HalfBuilt"):
        create_simple_tool(HalfBuilt(), "Does nothing.", lambda: 1)  # type: ignore[arg-type]
