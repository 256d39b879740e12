"""With ``from __future__ import annotations``, an annotation written quoted (``x: "int"``,
as code written before that import often is) is the text of a text: it is resolved as
Python's ``typing.get_type_hints`` resolves it, so the parameter is described and checked as
an ``int``; it used to take any value, reaching the function unconverted ("5", not 5)."""

from __future__ import annotations

from typing import Any

from laios.tools.base import BaseTool, create_simple_tool


def scale(x: "int", factor: "float" = 2.0) -> Any:  # noqa: UP037 (quoted on purpose)
    return x * factor


class _Scale(BaseTool):
    name = "scale"
    description = "Scales."

    def _execute(self, x: "int", factor: "float" = 2.0) -> Any:  # noqa: UP037
        return x * factor


def test_a_quoted_annotation_is_resolved() -> None:
    tool = create_simple_tool("scale", "Scales.", scale)
    assert [(p.name, p.type) for p in tool.get_parameters()] == [
        ("x", "integer"),
        ("factor", "number"),
    ]
    assert tool.execute(x="5").data == 10.0
    assert tool.execute(x="five").metadata == {"error_type": "ValidationError"}


def test_a_tool_class_describes_a_quoted_annotation_by_its_type() -> None:
    assert [(p.name, p.type) for p in _Scale().get_parameters()] == [
        ("x", "integer"),
        ("factor", "number"),
    ]
