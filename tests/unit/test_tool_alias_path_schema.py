"""A field read through an ``AliasPath`` is described under the name a caller passes: the path's
first step, an object (or array) holding the field where the path leads; as a plain alias and
the first name of ``AliasChoices`` are described under that name."""

from __future__ import annotations

import json
from typing import Any

from pydantic import AliasChoices, AliasPath, BaseModel, ConfigDict, Field

from laios.tools._schema import parameters_from_model
from laios.tools.base import BaseTool, ToolInput


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
