"""GenAI ``execute_tool`` span attributes as the conventions define them: the tool call id the
model issued (when the caller passes it), the conversation id, and the tool's type."""

from __future__ import annotations

from typing import Any, ClassVar

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import BaseTool
from laios.tools.registry import ToolRegistry


class Search(BaseTool):
    name = "search"
    description = "Searches a document store."
    tool_type: ClassVar[str] = "datastore"

    def _execute(self, **kwargs: Any) -> Any:
        return ["doc-1"]


class Echo(BaseTool):
    name = "echo"
    description = "Returns its text."

    def _execute(self, **kwargs: Any) -> Any:
        return kwargs.get("text")


def run(task: Task, context: Context) -> ReadableSpan:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = ToolRegistry()
    registry.register_tools([Search, Echo])
    executor = Executor(
        registry, store=MetricStore(), register_prometheus=False, tracer_provider=provider
    )
    assert executor.execute_task(task, context).success
    executor.shutdown()
    (span,) = exporter.get_finished_spans()
    provider.shutdown()
    return span


def test_the_tool_call_id_the_model_issued_is_the_spans_call_id() -> None:
    task = Task(
        plan_id="p", description="d", tool_name="echo", metadata={"tool_call_id": "call_abc123"}
    )
    span = run(task, Context(session_id="s", user_id="u"))
    assert span.attributes is not None
    assert span.attributes["gen_ai.tool.call.id"] == "call_abc123"
    assert span.attributes["laios.task.id"] == task.id


class OddText(str):
    """A ``str`` subclass whose own methods fail (``Task.metadata`` keeps its values as given)."""

    def __len__(self) -> int:
        raise RuntimeError("no length")

    def __getitem__(self, index: Any) -> str:
        raise RuntimeError("no slicing")

    def __str__(self) -> str:
        raise RuntimeError("no text")


def test_a_tool_call_id_of_an_odd_str_subclass_is_its_plain_text() -> None:
    """A tool call id whose ``str`` subclass fails its own ``len()``, slicing or ``__str__``
    is read as the text it holds, as a checkpoint's value is: the task keeps its span."""
    task = Task(
        plan_id="p",
        description="d",
        tool_name="echo",
        metadata={"tool_call_id": OddText("call_odd")},
    )
    span = run(task, Context(session_id="s", user_id="u"))
    assert span.attributes is not None
    assert span.attributes["gen_ai.tool.call.id"] == "call_odd"
    assert type(span.attributes["gen_ai.tool.call.id"]) is str


def test_without_a_tool_call_id_the_task_id_is_the_call_id() -> None:
    task = Task(plan_id="p", description="d", tool_name="echo")
    span = run(task, Context(session_id="s", user_id="u"))
    assert span.attributes is not None
    assert span.attributes["gen_ai.tool.call.id"] == task.id


def test_the_session_is_the_conversation() -> None:
    task = Task(plan_id="p", description="d", tool_name="echo")
    span = run(task, Context(session_id="conv-42", user_id="u"))
    assert span.attributes is not None
    assert span.attributes["gen_ai.conversation.id"] == "conv-42"
    assert span.attributes["laios.session.id"] == "conv-42"


def test_the_tool_type_comes_from_the_tool() -> None:
    search = run(
        Task(plan_id="p", description="d", tool_name="search"), Context(session_id="s", user_id="u")
    )
    echo = run(
        Task(plan_id="p", description="d", tool_name="echo"), Context(session_id="s", user_id="u")
    )
    assert search.attributes is not None
    assert echo.attributes is not None
    assert search.attributes["gen_ai.tool.type"] == "datastore"
    assert echo.attributes["gen_ai.tool.type"] == "function"


def test_the_tracer_names_its_schema() -> None:
    span = run(
        Task(plan_id="p", description="d", tool_name="echo"), Context(session_id="s", user_id="u")
    )
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.schema_url.startswith("https://opentelemetry.io/schemas/")
