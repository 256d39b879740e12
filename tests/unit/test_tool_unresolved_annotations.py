"""A tool made from a function whose module says ``from __future__ import annotations`` keeps
the types of its parameters when one annotation names something imported only for type
checkers (``if TYPE_CHECKING:``): that parameter takes any value, the others keep their types.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from laios.tools.base import BaseTool, create_simple_tool

if TYPE_CHECKING:  # (the case: a name that does not exist when the tool is made)
    from decimal import Decimal


def analyse(amount: Decimal, limit: int = 10, tags: list[str] | None = None) -> Any:
    return amount, limit, tags


def _types(tool: BaseTool) -> dict[str, str]:
    schema = tool.get_schema()
    json.dumps(schema, allow_nan=False)
    return {p["name"]: p["type"] for p in schema["parameters"]}


def test_an_unresolvable_annotation_leaves_the_other_parameters_typed() -> None:
    """``limit: int`` is described and validated as an integer next to ``amount: Decimal``."""
    tool = create_simple_tool("analyse", "Analyses.", analyse)
    assert _types(tool) == {"amount": "string", "limit": "integer", "tags": "array"}
    output = tool.execute(amount="1.5", limit="3", tags=["a"])
    assert output.success, output.error
    assert output.data == ("1.5", 3, ["a"])
    refused = tool.execute(amount="1.5", limit="many")
    assert not refused.success
    assert refused.metadata["error_type"] == "ValidationError"
    assert "limit" in (refused.error or "")


def test_a_tool_class_with_an_unresolvable_annotation_describes_the_others() -> None:
    """The same for a tool class's ``_execute``."""

    class Analyse(BaseTool):
        name = "analyse_class"
        description = "Analyses."

        def _execute(self, amount: Decimal, limit: int = 10) -> Any:
            return limit

    assert _types(Analyse()) == {"amount": "string", "limit": "integer"}


class _LazyModule:
    """A module loaded on first use whose backend is not installed, as lazy-import proxies
    are: reading any attribute raises (not an ``AttributeError``)."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"the backend providing {name} is not installed")


lazy = _LazyModule()


def embed(vector: lazy.Tensor, limit: int = 10) -> Any:
    return vector, limit


def test_an_annotation_that_raises_when_resolved_takes_any_value() -> None:
    """An annotation whose evaluation raises something other than a ``NameError`` (a lazy
    module's attribute, a subscript its class refuses) made ``create_simple_tool`` and the
    creation of a tool class raise that exception; it is unresolvable like any other."""
    tool = create_simple_tool("embed", "Embeds.", embed)
    assert _types(tool) == {"vector": "string", "limit": "integer"}
    output = tool.execute(vector=[1.0], limit="3")
    assert output.success, output.error
    assert output.data == ([1.0], 3)

    class Embed(BaseTool):
        name = "embed_class"
        description = "Embeds."

        def _execute(self, vector: lazy.Tensor, limit: int = 10) -> Any:
            return limit

    assert _types(Embed()) == {"vector": "string", "limit": "integer"}
    assert Embed().execute(vector=[1.0], limit=4).data == 4
