"""A tool's ``_execute`` gets its parameters the way its signature asks for them.

One positional parameter named ``input_data``, or annotated with a ``ToolInput`` subclass,
receives the validated input model; any other signature gets the parameters by name
(``def _execute(self, who)`` is called as ``_execute(who="world")``). ``create_simple_tool``
describes a function's parameters from its signature.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, Field

from laios.tools.base import AsyncBaseTool, BaseTool, ToolInput, create_simple_tool


class Greet(BaseTool):
    name = "greet"
    description = "Greets someone."

    def _execute(self, who):  # type: ignore[no-untyped-def]  # the most natural way to write it
        return f"hello, {who}"


class GreetWithDefault(BaseTool):
    name = "greet_default"
    description = "Greets someone, or the world."

    def _execute(self, who: str = "world", punctuation: str = "!") -> str:
        return f"hello, {who}{punctuation}"


class NameInput(ToolInput):
    who: str


class GreetModel(BaseTool):
    name = "greet_model"
    description = "Greets from an input model."
    input_model = NameInput

    def _execute(self, data: NameInput) -> str:  # annotated with the input model
        return f"hello, {data.who}"


class GreetInputData(BaseTool):
    name = "greet_input_data"
    description = "Greets from the input model, by the conventional name."
    input_model = NameInput

    def _execute(self, input_data):  # type: ignore[no-untyped-def]
        return f"hello, {input_data.who}"


class AsyncGreet(AsyncBaseTool):
    name = "async_greet"
    description = "Greets someone, as a coroutine."

    async def _execute_async(self, who: str) -> str:
        return f"hello, {who}"


def test_a_named_parameter_receives_its_value() -> None:
    assert Greet().execute(who="world").data == "hello, world"


def test_named_parameters_with_defaults_bind_by_name() -> None:
    tool = GreetWithDefault()
    assert tool.execute().data == "hello, world!"
    assert tool.execute(who="you", punctuation=".").data == "hello, you."


def test_a_parameter_annotated_with_the_input_model_receives_the_model() -> None:
    assert GreetModel().execute(who="model").data == "hello, model"


def test_a_parameter_named_input_data_receives_the_model() -> None:
    assert GreetInputData().execute(who="data").data == "hello, data"


def test_async_tools_bind_by_name_too() -> None:
    assert asyncio.run(AsyncGreet().execute_async(who="loop")).data == "hello, loop"


def test_a_missing_parameter_is_a_clear_failure() -> None:
    output = Greet().execute()
    assert not output.success
    assert "who" in (output.error or "")


def test_a_simple_tool_describes_its_functions_parameters() -> None:
    def add(a: int, b: int = 2) -> int:
        return a + b

    tool = create_simple_tool("add", "Adds two numbers.", add)
    parameters = {p["name"]: p for p in tool.get_schema()["parameters"]}
    assert set(parameters) == {"a", "b"}
    assert parameters["a"]["required"] is True
    assert parameters["b"]["required"] is False
    assert tool.execute(a=1).data == 3
    assert tool.execute(a=1, b=5).data == 6


def test_a_simple_tool_from_a_lambda_describes_its_parameters() -> None:
    tool = create_simple_tool("add", "Adds two numbers.", lambda a, b: a + b)
    assert [p["name"] for p in tool.get_schema()["parameters"]] == ["a", "b"]
    assert tool.execute(a=1, b=2).data == 3


def test_a_tool_with_named_parameters_describes_them_in_its_schema() -> None:
    """With the bare ToolInput, named parameters of _execute are what the schema describes
    (a model asked for the schema has nothing else to go by); the input still passes through
    unvalidated, as with the bare ToolInput always."""
    parameters = {p["name"]: p for p in GreetWithDefault().get_schema()["parameters"]}
    assert set(parameters) == {"who", "punctuation"}
    assert parameters["who"]["required"] is False
    assert parameters["who"]["type"] == "string"
    assert [p["name"] for p in Greet().get_schema()["parameters"]] == ["who"]
    assert Greet().get_parameters()[0].required is True
    assert [p["name"] for p in AsyncGreet().get_schema()["parameters"]] == ["who"]
    assert Greet().execute(who=5).data == "hello, 5"  # (still passed through as given)


def test_a_tool_taking_any_keyword_with_the_bare_input_describes_no_parameter() -> None:
    assert PlotAnyKeywordBare().get_schema()["parameters"] == []


class PlotAnyKeywordBare(BaseTool):
    name = "any_keyword_bare"
    description = "Takes any keyword."

    def _execute(self, **kwargs: Any) -> Any:
        return kwargs


@pytest.mark.parametrize("func", [lambda **kwargs: kwargs, lambda *args, **kwargs: kwargs])
def test_a_simple_tool_taking_any_keyword_keeps_accepting_anything(func: Any) -> None:
    tool = create_simple_tool("any", "Takes anything.", func)
    assert tool.execute(x=1, y="two").data == {"x": 1, "y": "two"}


class Point(BaseModel):
    x: int
    y: int


@dataclasses.dataclass
class Window:
    start: int
    end: int


class PlotInput(ToolInput):
    point: Point
    when: Window
    label: str = "p"


class Plot(BaseTool):
    name = "plot"
    description = "Plots a point."
    input_model = PlotInput

    def _execute(self, *, point: Point, when: Window, label: str) -> tuple[type, type]:
        return type(point), type(when)


class AsyncPlot(AsyncBaseTool):
    name = "async_plot"
    description = "Plots a point, as a coroutine."
    input_model = PlotInput

    async def _execute_async(self, point: Point, when: Window, label: str) -> tuple[type, type]:
        return type(point), type(when)


def test_a_parameter_typed_with_a_model_receives_the_validated_model() -> None:
    """Keyword-style parameters get the validated values, not their dumped dicts."""
    output = Plot().execute(point={"x": 1, "y": 2}, when={"start": 0, "end": 5})
    assert output.success, output.error
    assert output.data == (Point, Window)


def test_an_async_tool_gets_the_validated_model_by_name_too() -> None:
    """An async tool written with named parameters gets the validated values as well."""
    output = asyncio.run(
        AsyncPlot().execute_async(point=Point(x=1, y=2), when={"start": 0, "end": 5})
    )
    assert output.success, output.error
    assert output.data == (Point, Window)


class PlotAnyKeyword(BaseTool):
    name = "plot_any_keyword"
    description = "Plots a point, taking any keyword."
    input_model = PlotInput

    def _execute(self, **kwargs: Any) -> Any:
        return kwargs


def test_a_tool_taking_any_keyword_keeps_getting_the_models_dump() -> None:
    """``_execute(self, **kwargs)`` alone names no parameter to type: it gets the validated
    model's ``model_dump()`` (nested models as dicts), as such tools always have."""
    output = PlotAnyKeyword().execute(point={"x": 1, "y": 2}, when={"start": 0, "end": 5})
    assert output.success, output.error
    assert output.data == {"point": {"x": 1, "y": 2}, "when": {"start": 0, "end": 5}, "label": "p"}
    simple = create_simple_tool("plot_kw", "Plots.", lambda **kw: kw, input_model=PlotInput)
    output = simple.execute(point={"x": 1, "y": 2}, when={"start": 0, "end": 5})
    assert output.success, output.error
    assert output.data["point"] == {"x": 1, "y": 2}


def test_a_simple_tool_gets_the_types_its_function_is_annotated_with() -> None:
    """A function annotated with a model or a dataclass gets an instance of it."""

    def area(point: Point, when: Window) -> int:
        return point.x * point.y * (when.end - when.start)

    tool = create_simple_tool("area", "Computes an area.", area)
    output = tool.execute(point={"x": 2, "y": 3}, when={"start": 1, "end": 2})
    assert output.success, output.error
    assert output.data == 6


def test_a_default_of_another_type_reaches_the_function_without_a_warning() -> None:
    """A default the annotation does not match is passed as it is, with no serializer warning
    (which ``filterwarnings = error`` makes an exception)."""

    def tag(tags: list[str] = ()) -> Any:  # type: ignore[assignment]  # an immutable default
        return tags

    output = create_simple_tool("tag", "Tags.", tag).execute()
    assert output.success, output.error
    assert output.data == ()


def test_a_simple_tool_may_name_parameters_like_model_attributes() -> None:
    """Parameters named like a pydantic model's attributes (``json``, ``schema``, ``copy``,
    ``model_dump``) are described, validated and passed by their names, without a warning."""

    def check(json: str, schema: dict[str, Any], copy: bool = False, model_dump: int = 0) -> Any:
        return json, schema, copy, model_dump

    tool = create_simple_tool("check", "Checks a document against a schema.", check)
    parameters = {p["name"]: p for p in tool.get_schema()["parameters"]}
    assert list(parameters) == ["json", "schema", "copy", "model_dump"]
    assert parameters["json"]["type"] == "string"
    assert parameters["model_dump"]["type"] == "integer"
    assert parameters["json"]["required"] is True
    output = tool.execute(json="{}", schema={"type": "object"}, model_dump="3")
    assert output.success, output.error
    assert output.data == ("{}", {"type": "object"}, False, 3)
    missing = tool.execute(schema={})
    assert not missing.success
    assert "json" in (missing.error or "")
    assert "Field required" in (missing.error or "")


def test_a_simple_tool_may_name_parameters_with_a_leading_underscore() -> None:
    """A parameter whose name starts with an underscore (which pydantic takes for a private
    attribute, not a field) is described, validated and passed by its name like any other."""

    def fetch(_cursor: int, limit: int = 10) -> Any:
        return _cursor, limit

    tool = create_simple_tool("fetch_page", "Fetches a page of rows.", fetch)
    parameters = {p["name"]: p for p in tool.get_schema()["parameters"]}
    assert list(parameters) == ["_cursor", "limit"]
    assert parameters["_cursor"]["type"] == "integer"
    assert parameters["_cursor"]["required"] is True
    output = tool.execute(_cursor="3")
    assert output.success, output.error
    assert output.data == (3, 10)
    wrong = tool.execute(_cursor="not a number")
    assert wrong.metadata["error_type"] == "ValidationError"
    assert "_cursor" in (wrong.error or "")


@pytest.mark.parametrize("param", ["_limit", "json", "schema"])
def test_a_renamed_parameter_keeps_its_field_default(param: str) -> None:
    """A parameter renamed for its model (a leading underscore, a model attribute's name) whose
    default is a ``Field(...)`` is described, validated and defaulted by it as any other is.
    Its schema said no default (``None``) and no bound, ``ge=0`` was not applied (``-1``
    reached the function), and a call without it gave the function the ``FieldInfo`` itself."""
    namespace: dict[str, Any] = {"Field": Field}
    exec(  # (a parameter named by the test)
        f"def func({param}: int = Field(5, ge=0, description='How many.')):\n    return {param}\n",
        namespace,
    )
    tool = create_simple_tool("rows", "Returns rows.", namespace["func"])
    described = {p["name"]: p for p in tool.get_schema()["parameters"]}[param]
    assert (described["default"], described["required"], described["description"]) == (
        5,
        False,
        "How many.",
    )
    assert (described["schema"] or {}).get("minimum") == 0, described
    assert tool.execute().data == 5
    assert tool.execute(**{param: "7"}).data == 7
    refused = tool.execute(**{param: -1})
    assert refused.metadata["error_type"] == "ValidationError", refused
    assert param in (refused.error or "")


def test_a_class_tool_describes_parameters_with_a_leading_underscore() -> None:
    """A tool class whose ``_execute`` names a parameter with a leading underscore is
    described by it, as by its other parameters."""

    class Page(BaseTool):
        name = "page"
        description = "Fetches a page."

        def _execute(self, _cursor: int, limit: int = 10) -> Any:
            return _cursor, limit

    names = [p["name"] for p in Page().get_schema()["parameters"]]
    assert names == ["_cursor", "limit"]
    assert Page().execute(_cursor=1).data == (1, 10)


class AliasInput(ToolInput):
    user_name: str = Field(alias="userName")


class Hello(BaseTool):
    name = "hello"
    description = "Greets a user by the name the model validated."
    input_model = AliasInput

    def _execute(self, user_name: str, **extra: Any) -> str:
        return user_name


def test_an_extra_parameter_never_replaces_a_validated_field() -> None:
    """A caller passing a field's alias and also its name gets the validated field."""
    assert Hello().execute(userName="bob", user_name="mallory").data == "bob"


class SearchInput(ToolInput):
    query: str
    # Checked by _validate, never meant for the tool's logic: left out of model_dump().
    confirmed: bool = Field(default=False, exclude=True)


class Search(BaseTool):
    name = "search_excluding"
    description = "Searches, after a confirmation that _validate checks."
    input_model = SearchInput

    def _execute(self, query: str) -> str:
        return query


class SearchAnyKeyword(BaseTool):
    name = "search_excluding_any_keyword"
    description = "Searches, taking a parameter by name and any other keyword."
    input_model = SearchInput

    def _execute(self, query: str, **kwargs: Any) -> Any:
        return kwargs


def test_a_field_excluded_from_the_dump_is_not_passed_by_name() -> None:
    """A field declared Field(exclude=True) is left out of what a method taking its
    parameters by name receives, as model_dump() always left it out: such a method need not
    name it."""
    output = Search().execute(query="q", confirmed=True)
    assert output.success, output.error
    assert output.data == "q"
    assert SearchAnyKeyword().execute(query="q", confirmed=True).data == {}


def test_a_function_parameter_declared_excluded_is_still_passed() -> None:
    """``Field(exclude=True)`` on a function's own parameter keeps it out of the model's dump,
    not out of the call: the schema describes it, and the function gets what the caller gave.
    It was validated and then dropped: the function got its default, here the ``FieldInfo``
    itself, and a required one failed every call with "missing 1 required positional
    argument"."""

    def send(to: Annotated[str, Field(exclude=True)], key: str = Field("k", exclude=True)) -> Any:
        return to, key

    tool = create_simple_tool("send", "Sends.", send)
    assert [p["name"] for p in tool.get_schema()["parameters"]] == ["to", "key"]
    output = tool.execute(to="ann", key="secret")
    assert output.success, output.error
    assert output.data == ("ann", "secret")
    assert tool.execute(to="bob").data == ("bob", "k")


@pytest.mark.parametrize(
    "func",
    [lambda: 5, lambda *args: 5],
    ids=["no-parameters", "only-args"],
)
def test_a_function_taking_no_named_parameter_refuses_one_as_validation(func: Any) -> None:
    """A function that takes nothing by name (``lambda: 5``, ``def f(*args)``) refuses an
    unknown parameter at validation, as a function with named ones does, instead of failing
    in the call with Python's "unexpected keyword argument"."""
    tool = create_simple_tool("five", "Returns five.", func)
    refused = tool.execute(x=1)
    assert not refused.success
    assert refused.metadata["error_type"] == "ValidationError"
    assert "x" in (refused.error or "")
    assert tool.execute().data == 5
    assert tool.get_schema()["parameters"] == []
