"""A tool's validation error names the rejected fields without quoting the keys of the mappings
its parameters hold: a key is the caller's data, as a value is, and may be a credential."""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
from typing import Annotated, Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import AfterValidator, BaseModel, ConfigDict, Json, ValidationError
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import BaseTool, ToolInput, create_simple_tool
from laios.tools.registry import ToolRegistry

SECRET = "sk-live-4f9a8b7c6d5e4f3a2b1c"


class Address(BaseModel):
    model_config = ConfigDict(extra="forbid")

    city: int


class HeadersInput(ToolInput):
    api_key: str = ""
    headers: dict[str, int] = {}
    rows: list[dict[str, int]] = []
    raw: dict[bytes, int] = {}
    address: Address | None = None


class Headers(BaseTool):
    name = "headers"
    description = "Takes headers."
    input_model = HeadersInput

    def _execute(self, input_data: HeadersInput) -> int:
        return len(input_data.headers)


def test_a_rejected_entry_of_a_mapping_is_named_without_its_key() -> None:
    """A key of a mapping parameter whose value is rejected does not show in the error."""
    output = Headers().execute(headers={SECRET: "not a number"})
    assert output.success is False
    assert output.metadata["error_type"] == "ValidationError"
    assert SECRET not in (output.error or "")
    assert "headers.[REDACTED]" in (output.error or "")


def test_keys_are_hidden_at_any_depth_and_of_any_type() -> None:
    """Keys in a list of mappings, bytes keys and a nested model's unknown keys are hidden."""
    rows = Headers().execute(rows=[{"a": 1}, {SECRET: "x"}])
    raw = Headers().execute(raw={SECRET.encode(): "x"})
    extra = Headers().execute(address={"city": 1, SECRET: 2})
    for output in (rows, raw, extra):
        assert output.success is False
        assert SECRET not in (output.error or ""), output.error
    assert "rows.1.[REDACTED]" in (rows.error or "")
    assert "address.[REDACTED]" in (extra.error or "")


def test_declared_field_names_are_still_named() -> None:
    """A nested model's fields and the parameters' own names are kept: they are not data."""
    output = Headers().execute(address={"city": "nowhere"})
    assert "address.city" in (output.error or "")
    assert "[REDACTED]" not in (output.error or "")


class Point(TypedDict):
    lat: int


@dataclasses.dataclass
class Place:
    point: Point


class PlacesInput(ToolInput):
    points: dict[str, Point] = {}
    places: dict[str, Place] = {}


def test_the_fields_of_typed_dicts_and_dataclasses_are_still_named() -> None:
    """The keys a ``TypedDict`` declares (of ``typing_extensions``, as pydantic wants before
    Python 3.12) are kept, also in a dataclass whose annotations are text (postponed)."""
    tool = create_simple_tool(
        "places", "Takes places.", lambda **kwargs: 0, input_model=PlacesInput
    )
    points = tool.execute(points={SECRET: {"lat": "x"}})
    places = tool.execute(places={SECRET: {"point": {"lat": "x"}}})
    assert "points.[REDACTED].lat" in (points.error or ""), points.error
    assert "places.[REDACTED].point.lat" in (places.error or ""), places.error


def test_a_secret_value_used_as_a_key_leaks_nowhere(caplog: pytest.LogCaptureFixture) -> None:
    """The value of ``api_key`` repeated as a key of a rejected mapping is in no result, span
    or log record."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = ToolRegistry()
    registry.register_tool(Headers)
    parameters = {"api_key": SECRET, "headers": {SECRET: "x"}}
    task = Task(plan_id="p", description="d", tool_name="headers", parameters=parameters)
    caplog.set_level(logging.DEBUG, logger="laios")
    with Executor(
        registry, store=MetricStore(), register_prometheus=False, tracer_provider=provider
    ) as executor:
        result = executor.execute_task(task, Context(session_id="s", user_id="u"))
    provider.shutdown()
    assert result.metadata["error_type"] == "ValidationError"
    assert SECRET not in (result.error or "")
    (span,) = exporter.get_finished_spans()
    events = [dict(event.attributes or {}) for event in span.events]
    assert SECRET not in f"{span.status.description} {events}"
    assert SECRET not in caplog.text


def test_a_simple_tool_hides_the_keys_too() -> None:
    """The input model made from a function's signature hides keys as it hides values."""

    def send(headers: dict[str, int]) -> int:
        return len(headers)

    output = create_simple_tool("send", "Sends.", send).execute(headers={SECRET: "x"})
    assert output.success is False
    assert SECRET not in (output.error or "")


def test_an_unknown_parameter_is_still_named() -> None:
    """A parameter name the tool does not take is the caller's choice of name, not data: the
    error names it, so that a misspelt name can be found."""

    def send(limit: int) -> int:
        return limit

    output = create_simple_tool("send_limit", "Sends.", send).execute(limt=3)
    assert output.success is False
    assert "limt" in (output.error or "")


def _refuse_odd(value: int) -> int:
    if value % 2:
        raise PydanticCustomError("odd_number", "{value} is odd", {"value": value})
    return value


class EvenInput(ToolInput):
    counts: dict[str, Annotated[int, AfterValidator(_refuse_odd)]]


def test_the_rebuilt_error_keeps_the_errors_types_and_messages() -> None:
    """Hiding a key keeps each error's type and message, a custom error's too."""

    class Even(BaseTool):
        name = "even"
        description = "Takes even counts."
        input_model = EvenInput

        def _execute(self, input_data: EvenInput) -> int:
            return 0

    with pytest.raises(ValidationError) as raised:
        Even().run_raising(counts={SECRET: 3, "b": "x"})
    errors = raised.value.errors(include_url=False)
    assert [(e["type"], e["loc"], e["msg"]) for e in errors] == [
        ("odd_number", ("counts", "[REDACTED]"), "3 is odd"),
        ("int_parsing", ("counts", "[REDACTED]"), errors[1]["msg"]),
    ]
    assert SECRET not in str(raised.value)


def _refuse_spent(value: int) -> int:
    raise PydanticCustomError("missing", "the quota for {day} is spent", {"day": "today"})


class QuotaInput(ToolInput):
    quotas: dict[str, Annotated[int, AfterValidator(_refuse_spent)]]


def test_a_custom_error_of_a_type_pydantic_knows_keeps_its_own_message() -> None:
    """A custom error typed like one of pydantic's own (``missing``) keeps its message, not
    pydantic's for that type, when a key is hidden."""
    with pytest.raises(ValidationError) as raised:
        create_simple_tool(
            "quota", "Takes quotas.", lambda **kwargs: 0, input_model=QuotaInput
        ).run_raising(quotas={SECRET: 1})
    errors = raised.value.errors(include_url=False)
    assert [(e["type"], e["loc"], e["msg"]) for e in errors] == [
        ("missing", ("quotas", "[REDACTED]"), "the quota for today is spent"),
    ]


class QuotingInput(ToolInput):
    model_config = ConfigDict(hide_input_in_errors=False)

    headers: dict[str, int]


def test_a_model_that_quotes_its_input_quotes_the_keys_too() -> None:
    """``hide_input_in_errors=False`` has the keys quoted, as the values are."""

    class Quoting(BaseTool):
        name = "quoting"
        description = "Quotes its input."
        input_model = QuotingInput

        def _execute(self, **kwargs: Any) -> int:
            return 0

    output = Quoting().execute(headers={"X-Count": "x"})
    assert "headers.X-Count" in (output.error or "")


class CarriedInput(ToolInput):
    rows: list[dict[str, int]] = []
    encoded: Json[dict[str, int]] = {}
    encoded_rows: Json[list[dict[str, int]]] = []


class Carried(BaseTool):
    name = "carried"
    description = "Takes rows however they come."
    input_model = CarriedInput

    def _execute(self, input_data: CarriedInput) -> int:
        return len(input_data.rows)


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"rows": collections.deque([{SECRET: "x"}])}, id="deque"),
        pytest.param({"rows": ({SECRET: "x"} for _ in range(1))}, id="generator"),
        pytest.param({"rows": {"a": {SECRET: "x"}}.values()}, id="dict-view"),
        pytest.param({"encoded": json.dumps({SECRET: "x"})}, id="json-text"),
        pytest.param({"encoded": json.dumps({SECRET: "x"}).encode()}, id="json-bytes"),
        pytest.param({"encoded_rows": json.dumps([{SECRET: "x"}])}, id="json-list"),
    ],
)
def test_keys_are_hidden_in_mappings_given_in_any_container_or_as_json(
    params: dict[str, Any],
) -> None:
    """A key is hidden also when its mapping comes in a collection that is not a list (a
    deque, a generator, a dict's values) or as the JSON text of a ``Json[...]`` field."""
    output = Carried().execute(**params)
    assert output.metadata["error_type"] == "ValidationError"
    assert SECRET not in (output.error or "")
    assert "[REDACTED]" in (output.error or "")


def test_union_choices_of_a_text_value_are_still_named() -> None:
    """A text value rejected by every choice of a union is named with the choices tried."""

    class ChoiceInput(ToolInput):
        amount: int | list[int]

    class Choice(BaseTool):
        name = "choice"
        description = "Takes an amount."
        input_model = ChoiceInput

        def _execute(self, input_data: ChoiceInput) -> int:
            return 1

    output = Choice().execute(amount='{"not": "a number"}')
    assert "amount.int" in (output.error or "")
    assert "amount.list[int]" in (output.error or "")
