"""An input model whose ``json_schema_extra`` reshapes its JSON schema into something no JSON
schema is (``properties`` a list, ``$defs`` a string) is described from its fields, as a model
with no JSON schema is; it never breaks ``get_schema()`` or ``get_all_schemas()``."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ConfigDict

from laios.tools.base import BaseTool, ToolInput
from laios.tools.registry import ToolRegistry


class PropertiesAsList(ToolInput):
    model_config = ConfigDict(json_schema_extra=lambda schema: schema.update(properties=[1]))

    count: int


class DefsAsText(ToolInput):
    model_config = ConfigDict(json_schema_extra={"$defs": "none"})

    count: int


class PropertyAsText(ToolInput):
    model_config = ConfigDict(
        json_schema_extra=lambda schema: schema["properties"].update(count="an integer")
    )

    count: int


def _tool_class(model: type[ToolInput]) -> type[BaseTool]:
    class Reshaped(BaseTool):
        name = f"reshaped_{model.__name__}"
        description = "Its model reshapes its JSON schema."
        input_model = model

        def _execute(self, input_data: Any) -> Any:
            return input_data

    return Reshaped


@pytest.mark.parametrize("model", [PropertiesAsList, DefsAsText, PropertyAsText])
def test_a_reshaped_schema_is_described_from_the_fields(model: type[ToolInput]) -> None:
    """The tool is described by its fields' names and whether they are required."""
    schema = _tool_class(model)().get_schema()
    json.dumps(schema, allow_nan=False)
    assert [(p["name"], p["required"]) for p in schema["parameters"]] == [("count", True)]


def test_a_reshaped_schema_does_not_break_get_all_schemas() -> None:
    """Every other tool is still listed."""
    registry = ToolRegistry()
    registry.register_tools([_tool_class(PropertiesAsList), _tool_class(PropertyAsText)])
    assert len(registry.get_all_schemas()) == 2
