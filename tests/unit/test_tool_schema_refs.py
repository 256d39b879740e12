"""Parameters described from an input model whose JSON schema refers to ``$defs``."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from laios.tools.base import BaseTool, ToolInput


class Address(BaseModel):
    """A postal address."""

    city: str


class TreeInput(ToolInput):
    label: str
    address: Address | None = None
    children: list[TreeInput] = []


class Tree(BaseTool):
    name = "tree"
    description = "Walks a tree."
    input_model = TreeInput

    def _execute(self, input_data: TreeInput) -> int:
        return len(input_data.children)


def test_a_recursive_input_model_describes_its_parameters() -> None:
    """A model referring to itself (whose schema is a ``$ref`` to its own definition) still
    lists its fields, required ones included, instead of none."""
    schema = Tree().get_schema()
    json.dumps(schema, allow_nan=False)
    params: dict[str, Any] = {p["name"]: p for p in schema["parameters"]}
    assert list(params) == ["label", "address", "children"]
    assert (params["label"]["type"], params["label"]["required"]) == ("string", True)
    assert (params["address"]["type"], params["address"]["required"]) == ("object", False)
    assert params["children"]["type"] == "array"
    children = params["children"]["schema"]
    assert children["items"] == {"$ref": "#/$defs/TreeInput"}
    assert "label" in children["$defs"]["TreeInput"]["properties"]


class Street(BaseModel):
    name: str


class Home(BaseModel):
    street: Street


class Office(BaseModel):
    floor: int


class PlacesInput(ToolInput):
    home: Home | None = None
    offices: list[Office] = []
    note: str = ""


class Places(BaseTool):
    name = "places"
    description = "Describes places."
    input_model = PlacesInput

    def _execute(self, input_data: PlacesInput) -> int:
        return len(input_data.offices)


def test_a_parameter_carries_only_the_definitions_it_refers_to() -> None:
    """Each parameter's schema carries the definitions it refers to, also through another
    definition, and not those only the other parameters use: a model of many nested models
    does not repeat them all under every parameter."""
    params: dict[str, Any] = {p["name"]: p for p in Places().get_schema()["parameters"]}
    assert sorted(params["home"]["schema"]["$defs"]) == ["Home", "Street"]
    assert sorted(params["offices"]["schema"]["$defs"]) == ["Office"]
    assert params["note"]["schema"] is None
