"""Captured arguments and results holding a container that cannot be read (listing its items
raises, as a lazy database row's may once its connection is gone): that container is written
as a placeholder naming its type, and the rest of the value is captured as usual."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from span_support import capturing_executor, make_task, only

from laios.core.types import Context, Task
from laios.execution.redaction import to_json
from laios.tools.base import BaseTool
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="session-1", user_id="user-1")
SECRET = "sk-live-0123456789abcdef"


class LazyRow(dict):  # type: ignore[type-arg]
    """A mapping whose items cannot be read any more (its connection is gone)."""

    def items(self) -> Any:
        raise ConnectionError("the connection is gone")

    keys = values = __iter__ = items


class LazyRows(Sequence[Any]):
    """A sequence whose items cannot be read any more."""

    def __len__(self) -> int:
        return 3

    def __getitem__(self, index: Any) -> Any:
        raise ConnectionError("the connection is gone")

    def __iter__(self) -> Iterator[Any]:
        raise ConnectionError("the connection is gone")


class Returns(BaseTool):
    name = "returns"
    description = "Returns a row it was not given."

    def _execute(self, **kwargs: Any) -> Any:
        return {"row": LazyRow(api_key=SECRET), "rows": LazyRows(), "n": 2}


class ReturnsRow(BaseTool):
    name = "returns_row"
    description = "Returns a row that cannot be read, or a sequence of rows, itself."

    def _execute(self, **kwargs: Any) -> Any:
        return LazyRow(api_key=SECRET) if kwargs.get("one") else LazyRows()


@pytest.fixture
def registry() -> ToolRegistry:
    tools = ToolRegistry()
    tools.register_tool(Returns)
    tools.register_tool(ReturnsRow)
    return tools


def run_captured(
    registry: ToolRegistry,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
    task: Task,
) -> tuple[Mapping[str, Any], list[str]]:
    """Run ``task`` with content capture on; check that it succeeded and that nothing was
    logged; return its span's attributes and the errors the store counted for its tools."""
    with capturing_executor(registry, provider) as executor:
        with caplog.at_level(logging.ERROR, logger="laios.execution"):
            result = executor.execute_task(task, CONTEXT)
        errors = [name for tool in executor.store.snapshot().tools for name in tool.errors]
    assert result.success, result.error
    assert not caplog.records
    attributes = only(exporter, "execute_tool").attributes
    assert attributes is not None
    return attributes, errors


def test_to_json_writes_an_unreadable_container_as_a_placeholder() -> None:
    text = to_json({"row": LazyRow(api_key=SECRET), "rows": LazyRows(), "q": "x"})
    assert json.loads(text) == {
        "row": "<LazyRow object (its items could not be read)>",
        "rows": "<LazyRows object (its items could not be read)>",
        "q": "x",
    }


def test_the_span_captures_the_rest_of_the_arguments_and_result(
    registry: ToolRegistry,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The whole attribute was lost, with an ERROR and its traceback logged for every task."""
    task = make_task("returns", row=LazyRow(api_key=SECRET), q="x")
    attributes, _ = run_captured(registry, provider, exporter, caplog, task)
    assert json.loads(str(attributes["gen_ai.tool.call.arguments"])) == {
        "row": "<LazyRow object (its items could not be read)>",
        "q": "x",
    }
    assert json.loads(str(attributes["gen_ai.tool.call.result"])) == {
        "row": "<LazyRow object (its items could not be read)>",
        "rows": "<LazyRows object (its items could not be read)>",
        "n": 2,
    }


@pytest.mark.parametrize(("one", "kind"), [(True, "LazyRow"), (False, "LazyRows")])
def test_a_result_that_cannot_be_read_itself_is_captured_as_its_placeholder(
    registry: ToolRegistry,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
    one: bool,
    kind: str,
) -> None:
    """A result that is itself a container whose items cannot be read is looked at for the
    secrets it holds, finds none it can read, and is captured as its placeholder: no internal
    error, and the span keeps the result."""
    task = make_task("returns_row", one=one)
    attributes, errors = run_captured(registry, provider, exporter, caplog, task)
    assert "internal" not in errors
    placeholder = f"<{kind} object (its items could not be read)>"
    assert json.loads(str(attributes["gen_ai.tool.call.result"])) == placeholder
