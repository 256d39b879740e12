"""A tool made from a function keeps describing and checking its parameters whatever one of
them is annotated with.

A parameter whose annotation pydantic cannot validate (a class of the caller's own, a
``typing.TypedDict`` on Python 3.11) takes any value; the function's other parameters are
still described in the schema and validated.
"""

from __future__ import annotations

import json
import typing
from typing import Any

from laios.tools.base import BaseTool, create_simple_tool


class Connection:
    """A class pydantic has no schema for (no ``arbitrary_types_allowed``)."""


#: ``typing.TypedDict`` (not ``typing_extensions``'), which pydantic refuses on Python 3.11.
class Options(typing.TypedDict):
    depth: int


def _described(tool: BaseTool) -> dict[str, Any]:
    schema = tool.get_schema()
    json.dumps(schema, allow_nan=False)
    return {p["name"]: p for p in schema["parameters"]}


def test_a_parameter_of_a_class_pydantic_cannot_use_keeps_the_others_described() -> None:
    """One parameter typed with an unknown class takes any value; the others stay described
    and validated."""

    def query(conn: Connection, sql: str, limit: int = 10) -> Any:
        return conn, sql, limit

    tool = create_simple_tool("query", "Runs a query.", query)
    params = _described(tool)
    assert list(params) == ["conn", "sql", "limit"]
    assert params["sql"]["type"] == "string"
    assert params["sql"]["required"]
    assert params["limit"]["type"] == "integer"
    assert not params["limit"]["required"]
    assert params["limit"]["default"] == 10
    conn = Connection()
    output = tool.execute(conn=conn, sql="select 1", limit="3")
    assert output.success, output.error
    assert output.data == (conn, "select 1", 3)
    refused = tool.execute(conn=conn, sql="select 1", limit="many")
    assert not refused.success
    assert refused.metadata["error_type"] == "ValidationError"
    assert "limit" in (refused.error or "")


def test_a_typing_typed_dict_parameter_keeps_the_others_described() -> None:
    """A ``typing.TypedDict`` parameter (refused by pydantic on Python 3.11) takes any value;
    the others stay described and validated."""

    def search(options: Options, text: str) -> Any:
        return options, text

    tool = create_simple_tool("search", "Searches.", search)
    assert list(_described(tool)) == ["options", "text"]
    assert tool.execute(options={"depth": 1}, text="x").data == ({"depth": 1}, "x")
    assert tool.execute(options={"depth": 1}).metadata["error_type"] == "ValidationError"


def test_a_tool_class_with_such_a_parameter_describes_the_others() -> None:
    """A tool class whose ``_execute`` names such a parameter still describes the others."""

    class Query(BaseTool):
        name = "query_class"
        description = "Runs a query."

        def _execute(self, conn: Connection, sql: str) -> Any:
            return sql

    params = _described(Query())
    assert list(params) == ["conn", "sql"]
    assert params["sql"]["type"] == "string"
