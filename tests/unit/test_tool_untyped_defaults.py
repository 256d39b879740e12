"""A parameter without an annotation is typed by a plain default (``y=3`` as ``y: int = 3``,
``bool`` before ``int``), described and, for ``create_simple_tool``, validated as that type;
one without a telling default takes any value, and its description says so instead of calling
it a string."""

from __future__ import annotations

import json
from typing import Any

import pytest

from laios.tools.base import BaseTool, create_simple_tool
from laios.tools.registry import ToolRegistry

#: What the schema of a parameter that takes any value says.
ANY_VALUE = {"type": ["string", "number", "integer", "boolean", "object", "array", "null"]}


def _parameters(tool: BaseTool) -> dict[str, dict[str, Any]]:
    schema = tool.get_schema()
    json.dumps(schema, allow_nan=False)
    return {p["name"]: p for p in schema["parameters"]}


def test_a_plain_default_types_the_parameter_of_a_function() -> None:
    tool = create_simple_tool("m", "Multiplies.", lambda x, y=3: x * y)
    params = _parameters(tool)
    assert params["y"]["type"] == "integer"
    assert params["y"]["default"] == 3
    assert tool.execute(x=2, y="4").data == 8  # (converted as for y: int)
    refused = tool.execute(x=2, y="four")
    assert not refused.success
    assert refused.metadata["error_type"] == "ValidationError"
    assert "y" in (refused.error or "")


@pytest.mark.parametrize(
    ("default", "kind"),
    [(True, "boolean"), (1.5, "number"), ("a", "string"), (7, "integer")],
    ids=["bool", "float", "str", "int"],
)
def test_each_plain_type_of_default_gives_its_json_type(default: Any, kind: str) -> None:
    def func(value=default):  # type: ignore[no-untyped-def]
        return value

    params = _parameters(create_simple_tool("f", "Returns.", func))
    assert params["value"]["type"] == kind
    assert params["value"]["schema"] is None


def test_a_bool_default_refuses_what_is_no_bool() -> None:
    tool = create_simple_tool("flag", "Returns.", lambda flag=False: flag)
    assert tool.execute(flag="yes").data is True
    assert tool.execute(flag="perhaps").metadata["error_type"] == "ValidationError"


def test_a_parameter_without_a_telling_default_takes_any_json_value() -> None:
    """No default, ``None``, or a default of another type: any value, said so in the schema,
    whose JSON schema (type and detail together) is a valid one accepting any JSON value."""
    tool = create_simple_tool("any", "Returns.", lambda a, b=None, c=(1, 2): (a, b, c))
    registry = ToolRegistry()
    registry.register_tool(tool)
    schema = registry.get_tool_schema("any")
    assert schema is not None
    params = {p["name"]: p for p in schema["parameters"]}
    merged = []
    for name in ("a", "b", "c"):
        assert params[name]["schema"] == ANY_VALUE
        merged.append({"type": params[name]["type"], **params[name]["schema"]})
        assert merged[-1] == ANY_VALUE
    assert tool.execute(a=[1], b={"k": 1}, c="text").data == ([1], {"k": 1}, "text")
    jsonschema = pytest.importorskip("jsonschema")  # (not a dependency: checked where present)
    for schema in merged:
        jsonschema.Draft202012Validator.check_schema(schema)
        for value in ("x", 1, 1.5, True, None, [1], {"k": 1}):
            jsonschema.validate(value, schema)


def test_a_tool_class_is_described_by_its_defaults_too() -> None:
    class Repeat(BaseTool):
        name = "repeat"
        description = "Repeats."

        def _execute(self, who, times=2):  # type: ignore[no-untyped-def]
            return who * times

    params = _parameters(Repeat())
    assert params["times"]["type"] == "integer"
    assert params["times"]["default"] == 2
    assert params["who"]["schema"] == ANY_VALUE
