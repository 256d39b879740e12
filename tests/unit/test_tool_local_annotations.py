"""Tools defined inside a function, in a module with ``from __future__ import annotations``:
their annotations are strings naming the function's local classes, which are resolved with
the function's locals where Python still has them."""

from __future__ import annotations

import gc
import json
import weakref
from typing import Any

from pydantic import BaseModel

from laios.tools.base import BaseTool, create_simple_tool


def _types(tool: BaseTool) -> dict[str, str]:
    schema = tool.get_schema()
    json.dumps(schema, allow_nan=False)
    return {p["name"]: p["type"] for p in schema["parameters"]}


def test_a_simple_tool_from_a_local_function_gets_its_local_model() -> None:
    """``def ship(address: Address)`` with ``Address`` local: validated into an ``Address``."""

    class Address(BaseModel):
        city: str

    def ship(address: Address, copies: int = 1) -> Any:
        return address, copies

    tool = create_simple_tool("ship", "Ships.", ship)
    assert _types(tool) == {"address": "object", "copies": "integer"}
    output = tool.execute(address={"city": "Oslo"}, copies="2")
    assert output.success, output.error
    assert output.data == (Address(city="Oslo"), 2)
    refused = tool.execute(address={"town": "Oslo"})
    assert refused.metadata["error_type"] == "ValidationError"


def test_an_async_simple_tool_from_a_local_function_gets_its_local_model() -> None:
    """The same for an ``async def`` function."""

    class Address(BaseModel):
        city: str

    async def ship(address: Address) -> Any:
        return address

    tool = create_simple_tool("ship_async", "Ships.", ship)
    assert tool.execute(address={"city": "Oslo"}).data == Address(city="Oslo")


def test_a_local_tool_class_describes_its_local_annotations() -> None:
    """A tool class defined in a function describes ``def _execute(self, address: Address)``
    with the function's local ``Address``."""

    class Address(BaseModel):
        city: str

    class Ship(BaseTool):
        name = "ship_class"
        description = "Ships."

        def _execute(self, address: Address, copies: int = 1) -> Any:
            return address

    assert _types(Ship()) == {"address": "object", "copies": "integer"}
    assert Ship().execute(address={"city": "Oslo"}).data == {"city": "Oslo"}


def _factory() -> Any:
    class Gone(BaseModel):
        city: str

    def ship(address: Gone, copies: int = 1) -> Any:
        return address

    return ship


def test_a_local_name_no_longer_anywhere_takes_any_value() -> None:
    """A function whose defining function has returned (its locals gone, and not in its
    closure) is still made a tool: that parameter takes any value, the others keep types."""
    tool = create_simple_tool("ship_gone", "Ships.", _factory())
    assert _types(tool) == {"address": "string", "copies": "integer"}
    assert tool.execute(address={"city": "Oslo"}).data == {"city": "Oslo"}
    assert tool.execute(address={}, copies="x").metadata["error_type"] == "ValidationError"


def _closure_factory() -> Any:
    class Kept(BaseModel):
        city: str

    def ship(address: Kept) -> Any:
        assert isinstance(address, Kept)  # (the body uses it: it is in the closure)
        return address.city

    return ship


def test_a_local_name_in_the_closure_is_resolved() -> None:
    """A local name the function's body uses is kept in its closure, and found there."""
    tool = create_simple_tool("ship_closure", "Ships.", _closure_factory())
    assert tool.execute(address={"city": "Oslo"}).data == "Oslo"


class _Local:
    """An object local to the function that defines a tool."""


def test_defining_a_tool_keeps_none_of_the_defining_functions_locals_alive() -> None:
    """Reading the defining function's locals leaves no reference cycle behind: its locals go
    when it returns, without waiting for the garbage collector."""

    def make_class() -> weakref.ref[_Local]:
        local = _Local()

        class Tool(BaseTool):
            name = "kept_class"
            description = "Keeps nothing."

            def _execute(self, copies: int = 1) -> Any:
                return copies

        return weakref.ref(local)

    def make_simple() -> weakref.ref[_Local]:
        local = _Local()

        def ship(copies: int = 1) -> Any:
            return copies

        create_simple_tool("kept_simple", "Keeps nothing.", ship)
        return weakref.ref(local)

    gc.disable()
    try:
        refs = [make_class(), make_simple()]
        alive = [ref() is not None for ref in refs]
    finally:
        gc.enable()
    assert alive == [False, False]


#: A module of its own whose ``_same_name`` function defines ``Address`` (with a ``city``)
#: and returns a function annotated with it, without keeping it in its closure.
_OTHER_MODULE = """
from __future__ import annotations

from pydantic import BaseModel


def _same_name():
    class Address(BaseModel):
        city: str

    def ship(address: Address) -> object:
        return address

    return ship
"""


def _same_name() -> BaseTool:
    """Named as the other module's function, with a local ``Address`` of its own."""
    namespace: dict[str, Any] = {"__name__": "other_module"}
    exec(compile(_OTHER_MODULE, "other_module.py", "exec"), namespace)

    class Address(BaseModel):
        street: int

    return create_simple_tool("ship_other", "Ships.", namespace["_same_name"]())


def test_a_function_of_another_module_with_the_same_name_lends_no_local_names() -> None:
    """The defining function is looked for in the file it was written in: a function of the
    same name elsewhere on the stack (another module's) does not lend it its local classes."""
    tool = _same_name()
    assert _types(tool) == {"address": "string"}
    assert tool.execute(address={"city": "Oslo"}).data == {"city": "Oslo"}
