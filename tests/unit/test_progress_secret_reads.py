"""A tool's progress messages and checkpoints are scrubbed of its task's secrets without
reading the parameters for every message: the secret values (and the forms they may be
written in) are read once, and again only when the parameters may hold other secrets."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import BaseModel, ConfigDict

from laios.core.types import Context, Task
from laios.execution import redaction
from laios.execution.executor import Executor
from laios.execution.server import status_document
from laios.execution.store import MetricStore
from laios.execution.task_context import require_current_task
from laios.tools.base import BaseTool
from laios.tools.registry import ToolRegistry

SECRET = "sk-live-READ-ONCE-31337"
NEW_SECRET = "sk-live-SWAPPED-IN-2718"
NESTED_SECRET = "Bearer nested-WRITTEN-LATER-1618"
MESSAGES = 40


class Chatty(BaseTool):
    name = "chatty"
    description = "Quotes its key in many progress messages and checkpoints."

    def _execute(self, **kwargs: Any) -> Any:
        task = require_current_task()
        for step in range(MESSAGES):
            task.progress(step, f"step {step} with {kwargs['api_key']}")
            task.checkpoint("step", {"note": f"sent {kwargs['api_key']}"})
        return "ok"


class Swapped(BaseTool):
    name = "swapped"
    description = "Quotes a key its caller put into its parameters after its first message."

    def _execute(self, **kwargs: Any) -> Any:
        task = require_current_task()
        task.progress(10, f"first with {kwargs['api_key']}")  # (the caller swaps the key)
        task.progress(20, f"then with {NEW_SECRET}")
        return "ok"


class WritesNested(BaseTool):
    name = "writes_nested"
    description = "Writes a new token into its nested headers, then quotes the headers."

    def _execute(self, **kwargs: Any) -> Any:
        task = require_current_task()
        headers = kwargs["headers"]
        task.progress(10, f"first with {headers}")
        headers["Authorization"] = NESTED_SECRET  # (a refreshed token)
        task.progress(20, f"retrying with {headers}")
        kwargs["more"][0]["Cookie"] = "session=" + NEW_SECRET  # (deeper, in a list)
        task.progress(30, f"then with {kwargs['more']}")
        return "ok"


@dataclass
class Settings:
    api_key: str


class WritesField(BaseTool):
    name = "writes_field"
    description = "Changes its settings object's key, then quotes it."

    def _execute(self, **kwargs: Any) -> Any:
        task = require_current_task()
        settings = kwargs["settings"]
        task.progress(10, f"first with {settings.api_key}")
        settings.api_key = NEW_SECRET
        task.progress(20, f"then with {settings.api_key}")
        return "ok"


class Creds(BaseModel):
    model_config = ConfigDict(extra="allow")

    api_key: str
    region: str = "eu"


class WritesModel(BaseTool):
    name = "writes_model"
    description = "Changes its model's key, then adds a token as an extra field; quotes both."

    def _execute(self, **kwargs: Any) -> Any:
        task = require_current_task()
        creds = kwargs["creds"]
        task.progress(10, f"first with {creds.api_key}")
        creds.api_key = NEW_SECRET
        task.progress(20, f"then with {creds.api_key}")
        creds.token = NESTED_SECRET  # (an extra field, written later)
        task.progress(30, f"and with {creds.token}")
        return "ok"


class WritesLongList(BaseTool):
    name = "writes_long_list"
    description = "Appends a header pair to its long list of items, then quotes it."

    def _execute(self, **kwargs: Any) -> Any:
        task = require_current_task()
        items = kwargs["items"]
        task.progress(10, f"first of {len(items)}")
        items.append({"Authorization": NESTED_SECRET})
        task.progress(20, f"then with {items[-1]}")
        return "ok"


@pytest.fixture
def scans(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the reads of a set of parameters (redaction.secret_values calls) and the
    secrets whose encoded forms are worked out (redaction.encoded_forms calls)."""
    counts = [0, 0]
    read, forms = redaction.secret_values, redaction.encoded_forms

    def counted_read(*args: Any, **kwargs: Any) -> list[str]:
        counts[0] += 1
        return read(*args, **kwargs)

    def counted_forms(secret: str) -> list[str]:
        counts[1] += 1
        return forms(secret)

    monkeypatch.setattr(redaction, "secret_values", counted_read)
    monkeypatch.setattr(redaction, "encoded_forms", counted_forms)
    return counts


def run(
    tool: type[BaseTool], parameters: dict[str, Any], on_progress: Any = None
) -> tuple[list[str], str]:
    """Run ``tool`` traced; return ``/status`` as seen at each of its progress reports and the
    text of its spans."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = ToolRegistry()
    registry.register_tool(tool)
    store = MetricStore()
    statuses: list[str] = []
    task = Task(plan_id="p", description="d", tool_name=tool.name, parameters=parameters)

    def seen(event: str, data: dict[str, Any]) -> None:
        if event == "progress":
            statuses.append(json.dumps(status_document(store.snapshot())))
            if on_progress is not None:
                on_progress(task)

    with Executor(
        registry, store=store, register_prometheus=False, tracer_provider=provider
    ) as executor:
        result = executor.execute_task(task, Context(session_id="s", user_id="u"), on_progress=seen)
    assert result.success, result.error
    provider.shutdown()
    spans = "\n".join(str(dict(span.attributes or {})) for span in exporter.get_finished_spans())
    return statuses, spans


@pytest.mark.parametrize(
    "parameters",
    [
        {"api_key": SECRET, "user": "alice", "retries": 3},
        {"api_key": SECRET, "headers": {"Accept": ["text/plain", ("q", 0.5)]}, "ids": [1, 2]},
    ],
    ids=["flat", "nested"],
)
def test_progress_and_checkpoints_read_the_secret_parameters_once(
    scans: list[int], parameters: dict[str, Any]
) -> None:
    """Forty progress messages and forty checkpoints, each quoting the key: the parameters are
    read, and the forms of their secret worked out, a few times in all, not once per message;
    the key is still scrubbed from each."""
    statuses, spans = run(Chatty, parameters)
    assert len(statuses) == MESSAGES
    assert all(SECRET not in status for status in statuses)
    assert all("with [REDACTED]" in status for status in statuses)
    assert SECRET not in spans
    assert spans.count("sent [REDACTED]") == MESSAGES
    assert scans[0] <= 4
    assert scans[1] <= 4


@pytest.mark.parametrize(
    "parameters",
    [
        {"api_key": SECRET, "settings": Settings("sk-settings-KEY-0042")},
        {"api_key": SECRET, "creds": Creds(api_key="sk-model-KEY-0042", retries=3)},
        {"api_key": SECRET, "ids": list(range(1500))},
    ],
    ids=["dataclass", "pydantic", "long_list"],
)
def test_object_and_long_parameters_are_read_once_too(
    scans: list[int], parameters: dict[str, Any]
) -> None:
    """Parameters holding a dataclass instance, a pydantic model or a list of more than 1000
    items, none changed by the tool: the parameters are read a few times in all, not once per
    message, as plain ones are; the keys are still scrubbed from each message."""
    statuses, spans = run(Chatty, parameters)
    assert len(statuses) == MESSAGES
    assert all(SECRET not in status for status in statuses)
    assert all("with [REDACTED]" in status for status in statuses)
    assert SECRET not in spans
    assert spans.count("sent [REDACTED]") == MESSAGES
    assert scans[0] <= 4
    assert scans[1] <= 4


def test_a_key_put_into_the_parameters_during_the_run_is_scrubbed(scans: list[int]) -> None:
    """The caller swaps the key in the task's parameters while the tool runs: the tool's next
    message, quoting the new key, is scrubbed of it (the parameters are read again)."""

    def swap(task: Task) -> None:
        task.parameters["api_key"] = NEW_SECRET

    statuses, _ = run(Swapped, {"api_key": SECRET}, swap)
    assert len(statuses) == 2
    assert SECRET not in statuses[0]
    assert NEW_SECRET not in statuses[1]
    assert "then with [REDACTED]" in statuses[1]


def test_a_token_written_into_a_nested_parameter_during_the_run_is_scrubbed() -> None:
    """A tool that writes new tokens into its nested parameters in place and quotes them: each
    message is scrubbed of the new token (the parameters hold other objects: they are read
    again), and of the old one."""
    parameters = {"headers": {"Authorization": "Bearer first-TOKEN-0001"}, "more": [{}]}
    statuses, _ = run(WritesNested, parameters)
    assert len(statuses) == 3
    assert "first-TOKEN-0001" not in statuses[0]
    assert "WRITTEN-LATER" not in statuses[1]
    assert "Authorization': '[REDACTED]'" in statuses[1]
    assert NEW_SECRET not in statuses[2]
    assert "Cookie': '[REDACTED]'" in statuses[2]


def test_a_key_changed_in_an_object_parameter_during_the_run_is_scrubbed(
    scans: list[int],
) -> None:
    """A key the tool sets on an object parameter (a dataclass instance) is scrubbed from its
    next message: the field holds another object, so the parameters are read again."""
    statuses, _ = run(WritesField, {"settings": Settings(SECRET)})
    assert len(statuses) == 2
    assert SECRET not in statuses[0]
    assert NEW_SECRET not in statuses[1]
    assert "then with [REDACTED]" in statuses[1]
    # (read at each message; the forms of the new key worked out once)
    assert scans[0] >= 2


def test_keys_written_into_a_model_parameter_during_the_run_are_scrubbed() -> None:
    """A pydantic model parameter whose field the tool sets anew, then to which it adds an
    extra field: each message is scrubbed of the new key, and of the token."""
    statuses, _ = run(WritesModel, {"creds": Creds(api_key=SECRET)})
    assert len(statuses) == 3
    assert SECRET not in statuses[0]
    assert NEW_SECRET not in statuses[1]
    assert "then with [REDACTED]" in statuses[1]
    assert "WRITTEN-LATER" not in statuses[2]


def test_a_token_appended_to_a_long_list_parameter_during_the_run_is_scrubbed() -> None:
    """A list parameter of more than 1000 items to which the tool appends a header: its next
    message, quoting it, is scrubbed of the token."""
    statuses, _ = run(WritesLongList, {"items": list(range(1500))})
    assert len(statuses) == 2
    assert "WRITTEN-LATER" not in statuses[1]
    assert "Authorization': '[REDACTED]'" in statuses[1]


#: Where the key of :class:`Rotating` settings is rotated (outside their fields).
ROTATED: list[str] = []


@dataclass
class Rotating:
    """Settings whose ``api_key`` is read from where it is rotated, not from the field it
    stores (its ``__getattribute__`` says so)."""

    api_key: str

    def __getattribute__(self, name: str) -> Any:
        if name == "api_key" and ROTATED:
            return ROTATED[-1]
        return object.__getattribute__(self, name)


class Rotates(BaseTool):
    name = "rotates"
    description = "Rotates its settings' key, then quotes it."

    def _execute(self, **kwargs: Any) -> Any:
        task = require_current_task()
        settings = kwargs["settings"]
        task.progress(10, f"first with {settings.api_key}")
        ROTATED.append(NEW_SECRET)  # (its fields still hold the same objects)
        task.progress(20, f"then with {settings.api_key}")
        return "ok"


def test_a_key_an_object_parameter_works_out_when_read_is_scrubbed() -> None:
    """An object parameter whose fields are not what reading them gives (its own
    ``__getattribute__``) is read again at each message: a key it gives after the tool
    rotated it is scrubbed."""
    ROTATED[:] = [SECRET]
    try:
        statuses, _ = run(Rotates, {"settings": Rotating("unused-field-value")})
    finally:
        ROTATED.clear()
    assert len(statuses) == 2
    assert SECRET not in statuses[0]
    assert NEW_SECRET not in statuses[1]
    assert "then with [REDACTED]" in statuses[1]
