"""Tests for laios.tools.base."""

from __future__ import annotations

import inspect
import json
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any, ClassVar, Literal, Union, get_args

import pytest
from pydantic import ConfigDict, Field, ValidationError

from laios.core.types import Permission
from laios.tools.base import (
    BaseTool,
    ToolCategory,
    ToolCategoryValue,
    ToolInput,
    ToolOutput,
    create_simple_tool,
)


class PathInput(ToolInput):
    path: str = Field(description="File to read")
    limit: int = 10


class ModelStyleTool(BaseTool):
    name = "model_style"
    description = "Receives the validated input model"
    input_model = PathInput
    seen: ClassVar[list[Any]] = []

    def _execute(self, input_data: PathInput) -> Any:
        self.seen.append(input_data)
        return f"{input_data.path}:{input_data.limit}"


class KwargsStyleTool(BaseTool):
    name = "kwargs_style"
    description = "Receives keyword arguments"
    input_model = PathInput

    def _execute(self, **kwargs: Any) -> Any:
        return kwargs


class BareKwargsTool(BaseTool):
    name = "bare_kwargs"
    description = "No input model, keyword arguments"

    def _execute(self, **kwargs: Any) -> Any:
        return kwargs


class Boom(Exception):
    pass


class RaisingTool(BaseTool):
    name = "raising"
    description = "Raises what it is given"

    def _execute(self, **kwargs: Any) -> Any:
        raise kwargs["exc"]


class ControlFlow(Exception):
    _laios_propagate = True


def test_tool_category_values() -> None:
    """ToolCategory values are the lower-case member names."""
    assert [c.value for c in ToolCategory] == [c.name.lower() for c in ToolCategory]
    assert len(ToolCategory) == 8


def test_tool_category_value_lists_the_values() -> None:
    """ToolCategoryValue, the annotation's spelling of the values, matches the enum."""
    assert get_args(ToolCategoryValue) == tuple(c.value for c in ToolCategory)


def test_tool_output_defaults() -> None:
    """ToolOutput defaults to a success with no data, error or metadata."""
    assert ToolOutput().model_dump() == {
        "success": True,
        "data": None,
        "error": None,
        "metadata": {},
    }


def test_bare_tool_input_keeps_any_keyword() -> None:
    """The bare ToolInput accepts arbitrary keywords and exposes them as attributes."""
    data = ToolInput(anything=1, other="x")
    assert (getattr(data, "anything"), getattr(data, "other")) == (1, "x")  # noqa: B009


def test_tool_input_subclass_can_forbid_extras() -> None:
    """A ToolInput subclass may set its own config and refuse unknown keywords."""

    class Strict(ToolInput):
        model_config = ConfigDict(extra="forbid")
        a: int

    with pytest.raises(ValidationError):
        Strict(a=1, b=2)  # type: ignore[call-arg]


@pytest.mark.parametrize("name", ["", "   "])
def test_constructor_refuses_blank_name(name: str) -> None:
    """A tool whose name is missing or blank cannot be built."""
    cls = type("Nameless", (BareKwargsTool,), {"name": name})
    with pytest.raises(ValueError, match="name"):
        cls()


@pytest.mark.parametrize("description", ["", "  "])
def test_constructor_refuses_empty_description(description: str) -> None:
    """A tool with an empty description cannot be built."""
    cls = type("Undescribed", (BareKwargsTool,), {"description": description})
    with pytest.raises(ValueError, match="description"):
        cls()


def test_constructor_refuses_non_tool_input_model() -> None:
    """A tool whose input_model is not a ToolInput subclass cannot be built."""
    cls = type("BadModel", (BareKwargsTool,), {"input_model": dict})
    with pytest.raises(TypeError, match="input_model"):
        cls()


def test_constructor_coerces_category_value() -> None:
    """A category given as its string value becomes the ToolCategory member."""
    cls = type("Stringy", (BareKwargsTool,), {"category": "web"})
    assert cls().category is ToolCategory.WEB


def test_permissions_are_copied_per_instance() -> None:
    """Changing one instance's permissions affects neither the class nor other instances."""

    class Perm(BareKwargsTool):
        required_permissions = {Permission.SHELL_EXECUTE}

    first, second = Perm(), Perm()
    first.required_permissions.add(Permission.CODE_EXECUTE)
    assert second.required_permissions == {Permission.SHELL_EXECUTE}
    assert Perm.required_permissions == {Permission.SHELL_EXECUTE}


def test_tool_without_execute_is_abstract() -> None:
    """A BaseTool subclass that does not define _execute cannot be instantiated."""
    cls = type("NoExec", (BaseTool,), {"name": "n", "description": "d"})
    with pytest.raises(TypeError):
        cls()


def test_input_data_style_receives_validated_model() -> None:
    """An _execute(self, input_data) tool gets the validated, coerced input model."""
    ModelStyleTool.seen.clear()
    output = ModelStyleTool().execute(path="a.txt", limit="3")
    assert output == ToolOutput(success=True, data="a.txt:3")
    assert isinstance(ModelStyleTool.seen[0], PathInput)


def test_kwargs_style_receives_model_fields() -> None:
    """An _execute(self, **kwargs) tool gets the validated fields, defaults included."""
    output = KwargsStyleTool().execute(path="a.txt", limit="3")
    assert output.data == {"path": "a.txt", "limit": 3}


def test_kwargs_style_with_bare_input_gets_raw_kwargs() -> None:
    """With the bare ToolInput, a keyword-style tool gets the caller's values unchanged."""
    payload = object()
    output = BareKwargsTool().execute(value=payload, n="1")
    assert output.data == {"value": payload, "n": "1"}
    assert output.data["value"] is payload


def test_input_data_style_with_bare_input_gets_attributes() -> None:
    """With the bare ToolInput, an input_data-style tool reads the kwargs as attributes."""

    class Attr(BaseTool):
        name = "attr"
        description = "reads attributes"

        def _execute(self, input_data: ToolInput) -> Any:
            return getattr(input_data, "city")  # noqa: B009

    assert Attr().execute(city="Oslo").data == "Oslo"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("def _execute(self, input_data): return type(input_data).__name__", "ToolInput"),
        ("def _execute(self, input_data, **kw): return type(input_data).__name__", "ToolInput"),
        ("def _execute(self, **kwargs): return kwargs", {"x": 1}),
        ("def _execute(self, *, x, **kwargs): return {'x': x}", {"x": 1}),
        ("def _execute(self, *, x): return {'x': x}", {"x": 1}),
        ("def _execute(self, *args, **kwargs): return args or kwargs", {"x": 1}),
        ("@staticmethod\ndef _execute(**kwargs): return kwargs", {"x": 1}),
    ],
)
def test_style_detection_from_signature(source: str, expected: Any) -> None:
    """A method with no positional parameter besides self is called with keywords."""
    namespace: dict[str, Any] = {}
    exec(source, namespace)
    cls = type(
        "Probe", (BaseTool,), {"name": "p", "description": "d", "_execute": namespace["_execute"]}
    )
    assert cls().execute(x=1) == ToolOutput(data=expected)


def test_style_is_detected_once_per_class(monkeypatch: pytest.MonkeyPatch) -> None:
    """Executing a tool does not inspect its signature again."""

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("signature inspected at execution time")

    tool = KwargsStyleTool()
    monkeypatch.setattr(inspect, "signature", fail)
    assert tool.execute(path="p").success


def test_plain_return_value_is_wrapped() -> None:
    """A plain return value becomes ToolOutput(success=True, data=value)."""
    assert BareKwargsTool().execute(a=1) == ToolOutput(success=True, data={"a": 1})


def test_tool_output_is_returned_as_is() -> None:
    """A ToolOutput returned by the tool reaches the caller unchanged, error included."""
    failure = ToolOutput(success=False, error="disk full", metadata={"path": "/x"})

    class Failing(BaseTool):
        name = "failing"
        description = "returns a failure"

        def _execute(self, **kwargs: Any) -> Any:
            return failure

    assert Failing().execute() is failure


def test_exception_becomes_failed_output() -> None:
    """An exception raised by the tool becomes a failed output naming its type."""
    output = RaisingTool().execute(exc=Boom("went wrong"))
    assert output == ToolOutput(success=False, error="went wrong", metadata={"error_type": "Boom"})


def test_exception_without_message_reports_its_type() -> None:
    """An exception with an empty message gives its class name as the error."""
    assert RaisingTool().execute(exc=Boom()).error == "Boom"


def test_validation_error_becomes_failed_output() -> None:
    """Invalid input gives a failed output with error_type ValidationError, without running."""
    ModelStyleTool.seen.clear()
    output = ModelStyleTool().execute(limit="many")
    assert not output.success
    assert output.metadata == {"error_type": "ValidationError"}
    assert "path" in (output.error or "")
    assert ModelStyleTool.seen == []


def test_validate_hook_can_abort_the_run() -> None:
    """An exception from _validate stops the run and becomes a failed output."""
    ran: list[bool] = []

    class Guarded(BaseTool):
        name = "guarded"
        description = "refuses negative limits"
        input_model = PathInput

        def _validate(self, input_data: ToolInput) -> None:
            assert isinstance(input_data, PathInput)
            if input_data.limit < 0:
                raise ValueError("limit must be >= 0")

        def _execute(self, input_data: PathInput) -> Any:
            ran.append(True)

    output = Guarded().execute(path="p", limit=-1)
    assert (output.success, output.error, ran) == (False, "limit must be >= 0", [])


def test_base_exception_is_a_failed_output() -> None:
    """A BaseException that is not an Exception is a failed output too (execute never
    raises); a KeyboardInterrupt, the caller's Ctrl-C, passes through."""

    class Stop(BaseException):
        pass

    output = RaisingTool().execute(exc=Stop("stopped"))
    assert (output.success, output.error, output.metadata) == (
        False,
        "stopped",
        {"error_type": "Stop"},
    )
    with pytest.raises(KeyboardInterrupt):
        RaisingTool().execute(exc=KeyboardInterrupt())


def test_propagating_exception_passes_through() -> None:
    """An exception class with _laios_propagate = True is re-raised, not converted."""
    with pytest.raises(ControlFlow):
        RaisingTool().execute(exc=ControlFlow())


def test_propagation_is_inherited() -> None:
    """A subclass of a propagating exception class propagates too."""

    class SubFlow(ControlFlow):
        pass

    with pytest.raises(SubFlow):
        RaisingTool().execute(exc=SubFlow())


class Colour(str, Enum):
    RED = "red"
    BLUE = "blue"


class RichInput(ToolInput):
    text: str = Field(description="Some text")
    count: int = 1
    ratio: float = 0.5
    flag: bool = False
    options: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    maybe: int | None = None
    colour: Colour = Colour.RED


class RichTool(BareKwargsTool):
    name = "rich"
    input_model = RichInput
    required_permissions = {Permission.NETWORK_ACCESS, Permission.FILESYSTEM_READ}
    category = ToolCategory.DATA


def test_get_parameters_maps_json_types() -> None:
    """get_parameters reports the JSON type of each field."""
    types = {p.name: p.type for p in RichTool().get_parameters()}
    assert types == {
        "text": "string",
        "count": "integer",
        "ratio": "number",
        "flag": "boolean",
        "options": "object",
        "tags": "array",
        "maybe": "integer",
        "colour": "string",
    }


def test_get_parameters_required_default_and_description() -> None:
    """get_parameters reports required flags, defaults and field descriptions."""
    params = {p.name: p for p in RichTool().get_parameters()}
    assert (params["text"].required, params["text"].description) == (True, "Some text")
    assert (params["count"].required, params["count"].default) == (False, 1)
    assert params["count"].description == ""


def test_get_parameters_keeps_enum_values_in_schema() -> None:
    """An enum parameter carries its allowed values in ToolParameter.schema."""
    colour = next(p for p in RichTool().get_parameters() if p.name == "colour")
    assert colour.schema is not None
    assert colour.schema["enum"] == ["red", "blue"]


class LiteralInput(ToolInput):
    level: Literal[1, 2, None] = None
    ratio: Literal[0.5, 1, None] = None
    mode: Literal["fast", None] = None
    strict: Literal[True, None] = None
    mixed: Literal[1, "one"] = 1


def test_a_literal_with_none_among_its_values_is_described_by_the_other_values() -> None:
    """A Literal whose values are None and values of one JSON type is described by that type
    (as int | None is an "integer"); its values, None included, stay in the schema."""
    params = {p.name: p for p in _tool_of(LiteralInput).get_parameters()}
    assert {name: p.type for name, p in params.items()} == {
        "level": "integer",
        "ratio": "number",
        "mode": "string",
        "strict": "boolean",
        "mixed": "string",
    }
    assert params["level"].schema is not None
    assert params["level"].schema["enum"] == [1, 2, None]


class UnionInput(ToolInput):
    either: Union[int, str] = 1  # noqa: UP007 (the spelling under test)
    piped: int | str = 1
    maybe_either: int | str | None = None
    optional: int | None = None
    one_type: int | Literal[3] = 3
    lists: list[int] | list[str] = []
    numeric: int | float = 1


#: The type each field of :class:`UnionInput` is described with.
UNION_TYPES = {
    "either": "string",
    "piped": "string",
    "maybe_either": "string",
    "optional": "integer",
    "one_type": "integer",
    "lists": "array",
    "numeric": "number",
}


def _union_function(
    either: Union[int, str] = 1,  # noqa: UP007 (the spelling under test)
    piped: int | str = 1,
    maybe_either: int | str | None = None,
    optional: int | None = None,
    one_type: int | Literal[3] = 3,
    lists: list[int] | list[str] | None = None,
    numeric: int | float = 1,
) -> None:
    """Takes the fields of UnionInput."""


@pytest.mark.parametrize(
    "tool",
    [
        pytest.param(lambda: _tool_of(UnionInput), id="input-model"),
        pytest.param(lambda: create_simple_tool("f", "f", _union_function), id="function"),
    ],
)
def test_a_union_of_several_json_types_is_a_string(tool: Any) -> None:
    """``int | str`` takes a number or a text: it is a ``"string"``, as ``Literal[1, "one"]``
    is, with its alternatives in ``schema``; ``None`` among them does not count (``int |
    None`` stays an ``"integer"``), nor do alternatives of one JSON type (``list[int] |
    list[str]`` is an ``"array"``); an ``int | float`` is a ``"number"``."""
    params = {p.name: p for p in tool().get_parameters()}
    assert {name: p.type for name, p in params.items()} == UNION_TYPES
    either = params["either"].schema
    assert either is not None
    assert either["anyOf"] == [{"type": "integer"}, {"type": "string"}]


class Price(ToolInput):
    amount: Decimal


class DecimalInput(ToolInput):
    amount: Decimal
    amounts: list[Decimal]
    maybe: Decimal | None = None
    bounded: Annotated[Decimal, Field(ge=0, max_digits=6)] = Decimal(1)
    or_int: Decimal | int = 1
    or_text: Decimal | str = "1"
    price: Price | None = None


#: The type each field of :class:`DecimalInput` is described with.
DECIMAL_TYPES = {
    "amount": "number",
    "amounts": "array",
    "maybe": "number",
    "bounded": "number",
    "or_int": "number",
    "or_text": "string",
    "price": "object",
}


def _decimal_function(
    amount: Decimal,
    amounts: list[Decimal],
    maybe: Decimal | None = None,
    bounded: Annotated[Decimal, Field(ge=0, max_digits=6)] = Decimal(1),
    or_int: Decimal | int = 1,
    or_text: Decimal | str = "1",
    price: Price | None = None,
) -> None:
    """Takes the fields of DecimalInput."""


@pytest.mark.parametrize(
    "tool",
    [
        pytest.param(lambda: _tool_of(DecimalInput), id="input-model"),
        pytest.param(lambda: create_simple_tool("f", "f", _decimal_function), id="function"),
    ],
)
def test_a_decimal_is_a_number(tool: Any) -> None:
    """A ``Decimal`` takes a number or its text: it is the ``"number"`` a caller gives, also
    optional or bounded, while ``Decimal | str`` (any text) stays a ``"string"``; the schema
    is Pydantic's own, its text alternative included."""
    described = tool()
    params = {p.name: p for p in described.get_parameters()}
    assert {name: p.type for name, p in params.items()} == DECIMAL_TYPES
    pydantic_schema = DecimalInput.model_json_schema()
    expected = pydantic_schema["properties"]["amount"]
    assert params["amount"].schema == expected
    assert [alternative["type"] for alternative in expected["anyOf"]] == ["number", "string"]
    amounts = params["amounts"].schema
    assert amounts is not None
    assert amounts["items"] == {"anyOf": expected["anyOf"]}
    price = params["price"].schema
    assert price is not None
    assert price["$defs"] == pydantic_schema["$defs"]


class DecimalDefaults(ToolInput):
    price: Decimal = Decimal("1.10")
    whole: Decimal = Decimal(3)
    precise: Decimal = Decimal("0.1000000000000000000001")
    maybe: Decimal | None = Decimal("-2.5")
    prices: list[Decimal] = Field(default_factory=lambda: [Decimal("0.5")])
    fixed: list[Decimal] = [Decimal("0.25"), Decimal("1E+2")]


def test_a_decimal_default_is_written_as_the_number_it_is() -> None:
    """A ``"number"`` parameter's default is a number: a ``Decimal`` default is written as
    one when a number tells it exactly (``1.10`` as ``1.1``, also in a list), and as its text,
    which a ``Decimal`` parameter takes too, when no float can (more digits than a float
    holds)."""
    params = {p.name: p for p in _tool_of(DecimalDefaults).get_parameters()}
    defaults = {name: p.default for name, p in params.items()}
    assert defaults == {
        "price": 1.1,
        "whole": 3,
        "precise": "0.1000000000000000000001",
        "maybe": -2.5,
        "prices": None,
        "fixed": [0.25, 100],
    }
    assert type(defaults["whole"]) is int
    assert params["price"].type == "number"
    schema = params["fixed"].schema
    assert schema is not None
    assert schema["default"] == [0.25, 100]


class NoneInput(ToolInput):
    nothing: None = None
    only_none: Literal[None] = None


def test_a_field_that_takes_only_none_says_so_in_its_schema() -> None:
    """A field typed None (or Literal[None]) has none of the six types: it keeps the "string"
    every field of unknown type gets, and its schema says it takes null alone."""
    params = {p.name: p for p in _tool_of(NoneInput).get_parameters()}
    for name in ("nothing", "only_none"):
        assert params[name].type == "string"
        assert params[name].schema is not None
        assert params[name].schema["type"] == "null"


def _tool_of(model: type[ToolInput]) -> BaseTool:
    """A tool whose input model is ``model``."""

    class Described(BareKwargsTool):
        name = "described"
        input_model = model

    return Described()


def test_bare_input_has_no_parameters() -> None:
    """A tool with the bare ToolInput declares no parameters."""
    assert BareKwargsTool().get_parameters() == []


def test_get_schema_shape() -> None:
    """get_schema gives name, description, category value, parameters and sorted permissions."""
    schema = RichTool().get_schema()
    assert set(schema) == {"name", "description", "category", "parameters", "permissions"}
    assert (schema["name"], schema["category"]) == ("rich", "data")
    assert schema["permissions"] == ["filesystem.read", "network.access"]
    assert schema["parameters"][0]["name"] == "text"
    json.dumps(schema)


def test_repr_names_the_tool() -> None:
    """repr(tool) shows the class, name and category."""
    assert repr(RichTool()) == "RichTool(name='rich', category='data')"
