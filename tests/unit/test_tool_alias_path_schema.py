"""A field read through an ``AliasPath`` is described under the name a caller passes: the path's
first step, an object (or array) holding the field where the path leads; as a plain alias and
the first name of ``AliasChoices`` are described under that name."""

from __future__ import annotations

import json
from typing import Annotated, Any

import pydantic
import pytest
from pydantic import AliasChoices, AliasPath, BaseModel, ConfigDict, Field
from pydantic.dataclasses import dataclass
from typing_extensions import TypedDict

from laios.tools._schema import parameters_from_model
from laios.tools.base import BaseTool, ToolInput

#: ``validate_by_name`` and ``validate_by_alias`` came in pydantic 2.11 (before, only
#: ``populate_by_name``, which 2.11 reads as ``validate_by_name``).
needs_by_name_options = pytest.mark.skipif(
    tuple(int(part) for part in pydantic.VERSION.split(".")[:2]) < (2, 11),
    reason="pydantic < 2.11 has no validate_by_name / validate_by_alias",
)


def _parameters(tool: BaseTool) -> dict[str, dict[str, Any]]:
    schema = tool.get_schema()
    json.dumps(schema, allow_nan=False)
    return {p["name"]: p for p in schema["parameters"]}


class WeatherInput(ToolInput):
    model_config = ConfigDict(extra="forbid")

    city: str = Field(validation_alias=AliasPath("where", "city"), description="The city.")
    country: str = Field("NO", validation_alias=AliasPath("where", "country"))
    days: int = 3


class Weather(BaseTool):
    name = "weather"
    description = "Forecasts the weather."
    input_model = WeatherInput

    def _execute(self, input_data: WeatherInput) -> str:
        return f"{input_data.city}, {input_data.country}, {input_data.days}"


def test_a_path_field_is_described_under_the_name_the_caller_passes() -> None:
    params = _parameters(Weather())
    assert list(params) == ["where", "days"]
    where = params["where"]
    assert (where["type"], where["required"]) == ("object", True)
    assert where["schema"]["type"] == "object"
    assert where["schema"]["required"] == ["city"]
    inner = where["schema"]["properties"]
    assert list(inner) == ["city", "country"]
    assert (inner["city"]["type"], inner["city"]["description"]) == ("string", "The city.")
    assert inner["country"]["default"] == "NO"
    # (a language model reads the parameter's description first: it names the key it tells of)
    assert where["description"] == "city: The city."
    assert where["schema"]["description"] == "city: The city."


def test_a_call_made_from_the_description_validates() -> None:
    """A caller giving a value to each parameter the schema names, of the type it says, gets
    the run; the field's own name is refused."""
    tool = Weather()
    values = {"object": {"city": "Oslo"}, "integer": 5}
    call = {name: values[p["type"]] for name, p in _parameters(tool).items()}
    assert tool.execute(**call).data == "Oslo, NO, 5"
    assert not tool.execute(city="Oslo").success


class Deep(BaseModel):
    first: int = Field(validation_alias=AliasPath("points", 1, "x"))


class DeepInput(ToolInput):
    note: str = Field("", validation_alias=AliasPath("meta", "notes", "text"))
    deep: Deep


def test_deeper_paths_nest_and_an_index_is_an_array_position() -> None:
    params = {p.name: p for p in parameters_from_model(DeepInput)}
    assert list(params) == ["meta", "deep"]
    meta = params["meta"]
    assert (meta.type, meta.required) == ("object", False)
    assert meta.schema is not None
    notes = meta.schema["properties"]["notes"]
    assert notes["properties"]["text"]["type"] == "string"
    assert "required" not in meta.schema
    assert "required" not in notes
    # (the nested model's own schema tells the truth too)
    deep_schema = params["deep"].schema
    assert deep_schema is not None
    points = deep_schema["properties"]["points"]
    assert points["type"] == "array"
    assert points["prefixItems"][0] == {}
    assert points["prefixItems"][1]["properties"]["x"]["type"] == "integer"
    assert points["minItems"] == 2
    assert Deep.model_validate({"points": [{}, {"x": 4}]}).first == 4


class ChoicesInput(ToolInput):
    plain: str = Field(alias="Plain")
    named: str = Field(validation_alias=AliasChoices("named_a", "named_b"))
    mixed: str = Field(validation_alias=AliasChoices(AliasPath("m", "v"), "mixed_b"))
    paths: str = Field(validation_alias=AliasChoices(AliasPath("p", "v"), AliasPath("q", "v")))


def test_choices_are_described_by_their_first_name_else_their_first_path() -> None:
    params = {p.name: p for p in parameters_from_model(ChoicesInput)}
    assert list(params) == ["Plain", "named_a", "mixed_b", "p"]
    assert params["p"].schema is not None
    assert params["p"].schema["properties"]["v"]["type"] == "string"
    assert (
        ChoicesInput.model_validate(
            {"Plain": "a", "named_a": "b", "mixed_b": "c", "p": {"v": "d"}}
        ).paths
        == "d"
    )


class SharedInput(ToolInput):
    where: dict[str, str] = {}
    city: str = Field(validation_alias=AliasPath("where", "city"))


def test_a_path_through_a_field_of_its_own_describes_both() -> None:
    params = {p.name: p for p in parameters_from_model(SharedInput)}
    assert list(params) == ["where"]
    where = params["where"]
    assert (where.type, where.required) == ("object", True)
    assert where.schema is not None
    own, path = where.schema["allOf"]
    assert own["additionalProperties"] == {"type": "string"}
    assert path["properties"]["city"]["type"] == "string"


class BrokenSchemaInput(ToolInput):
    model_config = ConfigDict(json_schema_extra={"properties": []})

    city: str = Field(validation_alias=AliasPath("where", "city"))
    country: str = Field("NO", validation_alias=AliasPath("where", "country"))
    named: str = Field(validation_alias=AliasChoices("named_a", "named_b"))


def test_a_model_without_a_schema_names_its_parameters_the_same_way() -> None:
    params = {p.name: p for p in parameters_from_model(BrokenSchemaInput)}
    assert list(params) == ["where", "named_a"]
    assert (params["where"].type, params["where"].required) == ("object", True)


class DescribedInput(ToolInput):
    city: str = Field(validation_alias=AliasPath("where", "city"), description="The city.")
    street: str = Field("", validation_alias=AliasPath("where", "street"))
    country: str = Field(
        "NO", validation_alias=AliasPath("where", "country"), description="Its country code."
    )
    note: str = Field(
        "", validation_alias=AliasPath("meta", "notes", "text"), description="A note."
    )
    first: int = Field(
        0, validation_alias=AliasPath("points", 0, "x"), description="Where it starts."
    )
    tag: str = Field("", validation_alias=AliasPath("bare", "tag"))


def test_a_path_parameter_is_described_by_the_fields_it_holds() -> None:
    params = {p.name: p for p in parameters_from_model(DescribedInput)}
    assert list(params) == ["where", "meta", "points", "bare"]
    assert params["where"].description == "city: The city.\ncountry: Its country code."
    assert params["meta"].description == "text of notes: A note."
    assert params["points"].description == "x of the item at index 0: Where it starts."
    # (no field tells anything: nothing is made up)
    assert params["bare"].description == ""
    assert params["bare"].schema is not None
    assert "description" not in params["bare"].schema
    # (the nested schema keeps each field's own description)
    where = params["where"].schema
    assert where is not None
    assert where["properties"]["city"]["description"] == "The city."
    assert where["properties"]["country"]["description"] == "Its country code."
    assert "description" not in where["properties"]["street"]
    meta = params["meta"].schema
    assert meta is not None
    assert meta["properties"]["notes"]["properties"]["text"]["description"] == "A note."


class DescribedSharedInput(ToolInput):
    where: dict[str, str] = Field({}, description="Other places.")
    city: str = Field(validation_alias=AliasPath("where", "city"), description="The city.")


def test_a_path_through_a_field_of_its_own_is_described_by_both() -> None:
    (where,) = parameters_from_model(DescribedSharedInput)
    assert where.description == "Other places.\ncity: The city."
    assert where.schema is not None
    own, path = where.schema["allOf"]
    assert own["description"] == "Other places."
    assert path["properties"]["city"]["description"] == "The city."


class DescribedBrokenSchemaInput(ToolInput):
    model_config = ConfigDict(json_schema_extra={"properties": []})

    city: str = Field(validation_alias=AliasPath("where", "city"), description="The city.")
    country: str = Field("NO", validation_alias=AliasPath("where", "country"))
    last: int = Field(validation_alias=AliasPath("points", -1))


def test_a_model_without_a_schema_describes_path_parameters_the_same_way() -> None:
    params = {p.name: p for p in parameters_from_model(DescribedBrokenSchemaInput)}
    assert params["where"].description == "city: The city."
    assert params["points"].description == "Read from the last item."


class LastInput(ToolInput):
    last: int = Field(validation_alias=AliasPath("points", -1), description="The latest reading.")
    before: int = Field(0, validation_alias=AliasPath("points", -2))


class Latest(BaseTool):
    name = "latest"
    description = "Reads the latest readings."
    input_model = LastInput

    def _execute(self, input_data: LastInput) -> tuple[int, int]:
        return input_data.last, input_data.before


def test_a_position_counted_from_the_end_is_told_in_the_description() -> None:
    """JSON Schema has no way to point at an item from the end of an array: the description
    says which item is read, and ``minItems`` asks for as many items as the required field
    needs (the one read from the 2nd from the end is not required)."""
    (points,) = _parameters(Latest()).values()
    assert (points["name"], points["type"], points["required"]) == ("points", "array", True)
    assert points["description"] == (
        "the last item: The latest reading.\nRead from the 2nd item from the end."
    )
    assert points["schema"]["minItems"] == 1
    assert "prefixItems" not in points["schema"]
    assert Latest().execute(points=[4, 5, 6]).data == (6, 5)
    assert Latest().execute(points=[6]).data == (6, 0)
    assert not Latest().execute(points=[]).success


class FromEndInput(ToolInput):
    before: int = Field(validation_alias=AliasPath("points", -2))
    x: int = Field(validation_alias=AliasPath("shapes", "corners", -3, "x"))
    y: int = Field(0, validation_alias=AliasPath("shapes", "corners", 1, "y"))


def test_positions_from_the_end_ask_for_enough_items_when_required() -> None:
    params = {p.name: p for p in parameters_from_model(FromEndInput)}
    points = params["points"]
    assert points.schema is not None
    assert points.description == "Read from the 2nd item from the end."
    assert points.schema["minItems"] == 2
    shapes = params["shapes"]
    assert shapes.schema is not None
    assert shapes.description == "Read from x of the 3rd item from the end of corners."
    corners = shapes.schema["properties"]["corners"]
    assert corners["minItems"] == 3
    assert corners["prefixItems"][1]["properties"]["y"]["type"] == "integer"
    assert shapes.schema["required"] == ["corners"]
    data = {"points": [1, 2], "shapes": {"corners": [{"x": 7}, {"y": 8}, {}]}}
    validated = FromEndInput.model_validate(data)
    assert (validated.before, validated.x, validated.y) == (1, 7, 8)


class PopulatedInput(ToolInput):
    model_config = ConfigDict(populate_by_name=True)

    user: str = Field(alias="userName", description="Who asks.")
    city: str = Field(validation_alias=AliasPath("where", "city"), description="The city.")
    named: str = Field("", validation_alias=AliasChoices(AliasPath("n", "v"), AliasPath("m", "v")))


class Populated(BaseTool):
    name = "populated"
    description = "Takes fields by name or alias."
    input_model = PopulatedInput

    def _execute(self, input_data: PopulatedInput) -> str:
        return f"{input_data.user} {input_data.city} {input_data.named}"


def test_a_field_its_own_name_takes_is_described_under_it_rather_than_a_path() -> None:
    """With ``populate_by_name=True`` the field's own name takes its value as well as its
    alias: a plain alias is still the name described, but a field read through a path is
    described under its own name, a plain value, as pydantic describes it."""
    params = _parameters(Populated())
    assert list(params) == ["userName", "city", "named"]
    assert (params["city"]["type"], params["city"]["required"]) == ("string", True)
    assert params["city"]["description"] == "The city."
    assert params["named"]["required"] is False
    tool = Populated()
    assert tool.execute(userName="a", city="b", named="c").data == "a b c"
    assert tool.execute(user="a", where={"city": "b"}).data == "a b "


def _by_name_tool(model: type[ToolInput]) -> BaseTool:
    class ByName(BaseTool):
        name = "by_name"
        description = "Takes fields by name."
        input_model = model

        def _execute(self, input_data: Any) -> dict[str, Any]:
            return input_data.model_dump()

    return ByName()


@needs_by_name_options
def test_validate_by_name_describes_a_path_field_under_its_own_name() -> None:
    class ByNameInput(ToolInput):
        model_config = ConfigDict(validate_by_name=True)

        user: str = Field(alias="userName")
        city: str = Field(validation_alias=AliasPath("where", "city"))

    tool = _by_name_tool(ByNameInput)
    params = _parameters(tool)
    assert list(params) == ["userName", "city"]
    assert (params["city"]["type"], params["city"]["required"]) == ("string", True)
    assert tool.execute(userName="a", city="b").data == {"user": "a", "city": "b"}


@needs_by_name_options
def test_without_validate_by_alias_each_field_is_described_under_its_own_name() -> None:
    """``validate_by_alias=False``: no alias takes a value, only the field's name does, so
    the schema names no alias (pydantic's own schema names them still)."""

    class NamesOnlyInput(ToolInput):
        model_config = ConfigDict(validate_by_alias=False, validate_by_name=True)

        user: str = Field(alias="userName", description="Who asks.")
        named: str = Field(validation_alias=AliasChoices("named_a", "named_b"))
        city: str = Field(validation_alias=AliasPath("where", "city"))
        days: int = Field(3, validation_alias="Days")

    tool = _by_name_tool(NamesOnlyInput)
    params = _parameters(tool)
    assert list(params) == ["user", "named", "city", "days"]
    assert [params[name]["required"] for name in params] == [True, True, True, False]
    assert params["user"]["description"] == "Who asks."
    assert params["city"]["type"] == "string"
    assert tool.execute(user="a", named="b", city="c").data == {
        "user": "a",
        "named": "b",
        "city": "c",
        "days": 3,
    }
    assert not tool.execute(userName="a", named_a="b", where={"city": "c"}).success


@needs_by_name_options
def test_a_nested_model_is_described_by_its_own_configuration() -> None:
    class Inner(BaseModel):
        model_config = ConfigDict(validate_by_alias=False)

        user: str = Field(alias="userName")
        city: str = Field(validation_alias=AliasPath("where", "city"))

    @dataclass(config=ConfigDict(validate_by_name=True))
    class Spot:
        town: str = Field(validation_alias=AliasPath("place", "town"))

    class Corner(TypedDict):
        __pydantic_config__ = ConfigDict(validate_by_alias=False)

        street: Annotated[str, Field(alias="Street")]

    class Unconfigured(TypedDict):
        street: Annotated[str, Field(alias="Street")]

    class OuterInput(ToolInput):
        model_config = ConfigDict(validate_by_alias=False)

        inner: Inner = Field(alias="Inner")
        spot: Spot
        corner: Corner
        unconfigured: Unconfigured
        deep: Deep = Field(alias="Deep")

    params = {p.name: p for p in parameters_from_model(OuterInput)}
    assert list(params) == ["inner", "spot", "corner", "unconfigured", "deep"]
    properties = {name: list((p.schema or {}).get("properties", ())) for name, p in params.items()}
    assert properties["inner"] == ["user", "city"]
    assert properties["spot"] == ["town"]
    assert properties["corner"] == ["street"]
    # (a TypedDict of no configuration of its own is validated by the model's)
    assert properties["unconfigured"] == ["street"]
    # (a model that takes its aliases is described by them inside one that does not)
    assert properties["deep"] == ["points"]
    data = {
        "inner": {"user": "a", "city": "b"},
        "spot": {"town": "c"},
        "corner": {"street": "d"},
        "unconfigured": {"street": "e"},
        "deep": {"points": [{}, {"x": 1}]},
    }
    assert OuterInput.model_validate(data).spot.town == "c"


@needs_by_name_options
def test_a_model_without_a_schema_names_fields_by_its_configuration() -> None:
    class NamesOnlyBrokenInput(ToolInput):
        model_config = ConfigDict(validate_by_alias=False, json_schema_extra={"properties": []})

        user: str = Field(alias="userName")
        city: str = Field(validation_alias=AliasPath("where", "city"))

    class ByNameBrokenInput(ToolInput):
        model_config = ConfigDict(validate_by_name=True, json_schema_extra={"properties": []})

        user: str = Field(alias="userName")
        city: str = Field(validation_alias=AliasPath("where", "city"))

    assert [p.name for p in parameters_from_model(NamesOnlyBrokenInput)] == ["user", "city"]
    assert [p.name for p in parameters_from_model(ByNameBrokenInput)] == ["userName", "city"]
