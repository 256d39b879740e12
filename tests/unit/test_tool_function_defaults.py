"""A tool made from a function gives an omitted parameter the function's own default: the very
object, as calling the function would, never a copy of it."""

from __future__ import annotations

import json
import threading
from typing import Any

from laios.tools.base import create_simple_tool


class Client:
    """A default no copy can be made of (it holds a lock) and that has no hash."""

    __hash__ = None  # type: ignore[assignment]  # (compared by value: unhashable, like a dataclass)

    def __init__(self) -> None:
        self.lock = threading.Lock()


CLIENT = Client()


def test_a_default_that_cannot_be_copied_reaches_the_function() -> None:
    """A default holding a lock is passed as it is when the caller leaves it out."""

    def fetch(url: str, client: Any = CLIENT) -> Any:
        return client

    tool = create_simple_tool("fetch_with_client", "Fetches.", fetch)
    output = tool.execute(url="https://example.org")
    assert output.success, output.error
    assert output.data is CLIENT


def test_a_mutable_default_is_the_functions_own_object() -> None:
    """A dict default is the function's object, as a direct call gives it, not a copy."""
    cache: dict[str, int] = {}

    def remember(key: str, seen: dict[str, int] = cache) -> int:
        seen[key] = seen.get(key, 0) + 1
        return len(seen)

    tool = create_simple_tool("remember", "Remembers keys.", remember)
    assert tool.execute(key="a").data == 1
    assert tool.execute(key="b").data == 2
    assert cache == {"a": 1, "b": 1}


def test_a_mutable_default_is_still_described() -> None:
    """The schema still shows a mutable default that has a JSON form, and leaves out one that
    has none."""

    def tag(tags: list[str] = ["new"], client: Any = CLIENT) -> Any:  # noqa: B006 (the case)
        return tags

    tool = create_simple_tool("tag_defaults", "Tags.", tag)
    schema = tool.get_schema()
    json.dumps(schema, allow_nan=False)
    params = {p["name"]: p for p in schema["parameters"]}
    assert params["tags"]["default"] == ["new"]
    assert not params["tags"]["required"]
    assert params["client"]["default"] is None
    assert not params["client"]["required"]


def test_a_none_default_lets_the_caller_pass_none() -> None:
    """``limit: int = None`` takes ``None`` given explicitly, as a direct call does, and still
    checks any other value against ``int``; the schema still calls it an integer."""

    def search(query: str, limit: int = None) -> Any:  # type: ignore[assignment]  # noqa: RUF013 (the case)
        return limit

    tool = create_simple_tool("search_limit", "Searches.", search)
    given = tool.execute(query="q", limit=None)
    assert given.success, given.error
    assert given.data is None
    assert tool.execute(query="q", limit="5").data == 5
    refused = tool.execute(query="q", limit="five")
    assert not refused.success
    assert refused.metadata["error_type"] == "ValidationError"
    (limit,) = [p for p in tool.get_schema()["parameters"] if p["name"] == "limit"]
    assert limit["type"] == "integer"
    assert not limit["required"]
