"""A parameter without an annotation is described by a plain default (``y=3`` as an integer,
``bool`` before ``int``). A value that reads as the default's type is converted to it, as
before (``"3"`` to ``3``, ``"false"`` to ``False``: what a model or a command line passes is
text); any other value is given to the function as it is, as Python's own call takes it (``s=0``
takes ``0.5``): the user wrote no type, so none is enforced. One without a telling default is
described as taking any value instead of being called a string. An annotated parameter is
validated as annotated."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import Field

from laios.tools.base import BaseTool, create_simple_tool
from laios.tools.registry import ToolRegistry

#: What the schema of a parameter that takes any value says.
ANY_VALUE = {"type": ["string", "number", "integer", "boolean", "object", "array", "null"]}


def _parameters(tool: BaseTool) -> dict[str, dict[str, Any]]:
    schema = tool.get_schema()
    json.dumps(schema, allow_nan=False)
    return {p["name"]: p for p in schema["parameters"]}


def test_a_plain_default_describes_the_parameter_of_a_function() -> None:
    tool = create_simple_tool("m", "Multiplies.", lambda x, y=3: x * y)
    params = _parameters(tool)
    assert params["y"]["type"] == "integer"
    assert params["y"]["default"] == 3
    assert tool.execute(x=2, y=4).data == 8
    assert tool.execute(x=2).data == 6


@pytest.mark.parametrize(
    ("default", "given"),
    [(0, 0.5), (7, "seven"), (False, "maybe"), ("", 5), ("a", None), (1.5, "x")],
    ids=["int-float", "int-str", "bool-str", "str-int", "str-none", "float-str"],
)
def test_a_parameter_typed_by_no_annotation_takes_any_value(default: Any, given: Any) -> None:
    """The default's type describes the parameter; it does not refuse what a caller gives
    that does not read as that type, which the function gets as given (a direct call would
    take it too)."""

    def func(s=default):  # type: ignore[no-untyped-def]
        return s

    tool = create_simple_tool("slp", "Returns.", func)
    result = tool.execute(s=given)
    assert result.success, result.error
    assert result.data == given
    assert type(result.data) is type(given)


@pytest.mark.parametrize(
    ("default", "given", "converted"),
    [
        (0, "3", 3),
        (False, "false", False),
        (False, "yes", True),
        (False, 1, True),
        (1.5, "2", 2.0),
        (1.5, 3, 3.0),
    ],
    ids=["int-text", "bool-false", "bool-yes", "bool-one", "float-text", "float-int"],
)
def test_a_value_that_reads_as_the_default_s_type_is_converted(
    default: Any, given: Any, converted: Any
) -> None:
    """Text a model or a command line passes for ``n=0`` or ``flag=False`` reaches the function
    as the number or the truth value it says, as before: ``"false"`` must not arrive as a
    string, which Python takes for true."""

    def func(s=default):  # type: ignore[no-untyped-def]
        return s

    tool = create_simple_tool("slp", "Returns.", func)
    result = tool.execute(s=given)
    assert result.success, result.error
    assert result.data == converted
    assert type(result.data) is type(converted)


def test_an_int_default_takes_a_fraction() -> None:
    tool = create_simple_tool("slp", "e", lambda s=0: s)
    assert _parameters(tool)["s"]["type"] == "integer"
    result = tool.execute(s=0.5)
    assert result.success, result.error
    assert result.data == 0.5


@pytest.mark.parametrize("default", [None, [], (), {}], ids=["none", "list", "tuple", "dict"])
def test_other_defaults_take_any_value_too(default: Any) -> None:
    def func(s=default):  # type: ignore[no-untyped-def]
        return s

    tool = create_simple_tool("f", "Returns.", func)
    assert _parameters(tool)["s"]["schema"] == ANY_VALUE
    assert tool.execute(s=0.5).data == 0.5
    assert tool.execute().data == default


def test_an_annotated_parameter_is_still_validated_as_annotated() -> None:
    def func(a: int, b: int = 0, c: bool = False, d: str = "", e: float | None = None):  # type: ignore[no-untyped-def]
        return (a, b, c, d, e)

    tool = create_simple_tool("typed", "Returns.", func)
    params = _parameters(tool)
    assert [params[k]["type"] for k in "abcde"] == [
        "integer",
        "integer",
        "boolean",
        "string",
        "number",
    ]
    assert tool.execute(a="4", c="yes", e="1.5").data == (4, 0, True, "", 1.5)
    for bad in ({"a": 0.5}, {"a": 1, "b": 0.5}, {"a": 1, "c": "perhaps"}, {"a": 1, "d": 5}):
        refused = tool.execute(**bad)
        assert not refused.success
        assert refused.metadata["error_type"] == "ValidationError"


def test_a_docstring_description_keeps_the_default_s_type() -> None:
    def func(s=0):  # type: ignore[no-untyped-def]
        """Sleep.

        Args:
            s: Seconds to sleep.
        """
        return s

    tool = create_simple_tool("slp", "Sleeps.", func)
    param = _parameters(tool)["s"]
    assert (param["type"], param["description"], param["schema"]) == (
        "integer",
        "Seconds to sleep.",
        None,
    )
    assert tool.execute(s=0.25).data == 0.25


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


def _any_constrained(x: Any = Field(3, ge=0)):  # type: ignore[no-untyped-def]  # noqa: B008
    return x


def _any_or_int(x: int | Any = 3):  # type: ignore[no-untyped-def]
    return x


@pytest.mark.parametrize(
    ("func", "given"),
    [(_any_constrained, 2), (_any_or_int, [1])],
    ids=["any-with-bound", "union-with-any"],
)
def test_a_parameter_of_no_told_type_is_no_string_when_merged(func: Any, given: Any) -> None:
    """A parameter whose JSON type cannot be told but whose schema says more (``Any`` with a
    bound, a union with ``Any``) is reported as a ``"string"``, as ``type`` must name one of
    six; its ``schema`` says it takes any type, so that the merged schema a consumer makes
    (``{"type": p["type"], **p["schema"]}``) does not refuse what the tool takes. It said
    ``{"type": "string", "ge": 0, ...}``, refusing the ``2`` the tool took."""
    tool = create_simple_tool("f", "Returns.", func)
    param = _parameters(tool)["x"]
    merged = {"type": param["type"], **(param["schema"] or {})}
    assert merged["type"] == ANY_VALUE["type"], merged
    assert tool.execute(x=given).data == given
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(merged)
    jsonschema.validate(given, merged)
