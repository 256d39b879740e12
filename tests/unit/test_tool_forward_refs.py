"""A tool made from a function whose annotations hold quoted names inside them
(``Optional["Node"]``, ``list["Node"]``, without ``from __future__ import annotations``) resolves
them where the function was written; a name found nowhere takes any value, and the other
parameters keep their types. Either way every call can run.
"""

import json
from typing import Any, Optional

from pydantic import BaseModel

from laios.tools.base import BaseTool, create_simple_tool


def link(parent: Optional["Node"] = None, children: list["Node"] | None = None) -> Any:
    return parent, children


def guess(hint: Optional["Nowhere"] = None, limit: int = 0) -> Any:  # type: ignore[name-defined]  # noqa: F821
    return hint, limit


class Node(BaseModel):
    label: str


def _types(tool: BaseTool) -> dict[str, str]:
    schema = tool.get_schema()
    json.dumps(schema, allow_nan=False)
    return {p["name"]: p["type"] for p in schema["parameters"]}


def test_a_quoted_name_inside_an_annotation_is_resolved_in_the_functions_module() -> None:
    tool = create_simple_tool("link", "Links nodes.", link)
    assert _types(tool) == {"parent": "object", "children": "array"}
    output = tool.execute(parent={"label": "a"}, children=[{"label": "b"}])
    assert output.success, output.error
    assert output.data == (Node(label="a"), [Node(label="b")])
    assert tool.execute(parent={"label": 1}).metadata["error_type"] == "ValidationError"


def test_a_quoted_name_found_nowhere_takes_any_value_and_the_rest_stay_typed() -> None:
    tool = create_simple_tool("guess", "Guesses.", guess)
    assert _types(tool) == {"hint": "string", "limit": "integer"}
    output = tool.execute(hint=[1], limit="2")
    assert output.success, output.error
    assert output.data == ([1], 2)


def test_a_local_quoted_name_inside_an_annotation_is_resolved() -> None:
    class Leaf(BaseModel):
        size: int

    def grow(leaves: list["Leaf"]) -> int:
        return sum(leaf.size for leaf in leaves)

    tool = create_simple_tool("grow", "Grows.", grow)
    assert _types(tool) == {"leaves": "array"}
    output = tool.execute(leaves=[{"size": "2"}, {"size": 3}])
    assert output.success, output.error
    assert output.data == 5
