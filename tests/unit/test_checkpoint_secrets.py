"""Secrets a tool puts in checkpoint data and progress stay out of spans and ``/status``,
wherever in the data they are: in a value, and in a key."""

from __future__ import annotations

import enum
import json
import logging
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from secret_runs import statuses_at_progress

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.redaction import REDACTED
from laios.execution.server import status_document
from laios.execution.store import MetricStore
from laios.execution.task_context import require_current_task
from laios.tools.base import BaseTool
from laios.tools.registry import ToolRegistry

SECRET = "sk-live-CHECKPOINT-KEY-777"


class KeysBySecret(BaseTool):
    name = "keys_by_secret"
    description = "Uses its key as a key of its checkpoint data and progress details."

    def _execute(self, **kwargs: Any) -> Any:
        key = kwargs["api_key"]
        task = require_current_task()
        task.progress(50, "half", **{key: "seen", "cache": {key: 1}})
        task.checkpoint("indexed", {key: "seen", f"{'k' * 60}{key}": 1, "plain": "kept"})
        return "ok"


def run_traced(tool: type[BaseTool], parameters: dict[str, Any]) -> tuple[str, list[str]]:
    """Run ``tool`` traced; return the text of its spans and ``/status`` at its progress."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    statuses = statuses_at_progress(tool, parameters, provider)
    provider.shutdown()
    text = "\n".join(
        f"{span.name} {dict(span.attributes or {})}" for span in exporter.get_finished_spans()
    )
    return text, statuses


def test_a_secret_used_as_a_checkpoint_key_stays_out_of_the_span() -> None:
    """A checkpoint data key that is (or holds, where the key is cut) a secret value is
    scrubbed before it becomes part of an attribute name; other keys stay as they are."""
    spans, statuses = run_traced(KeysBySecret, {"api_key": SECRET})
    assert "checkpoint indexed {'laios.checkpoint." in spans
    assert "laios.checkpoint.plain" in spans
    assert f"laios.checkpoint.{REDACTED}" in spans
    assert SECRET not in spans
    assert SECRET[:8] not in spans  # (not even its start, where a long key is cut)
    assert statuses
    assert all(SECRET not in status for status in statuses)


class CountsBySecret(BaseTool):
    name = "counts_by_secret"
    description = "Puts its numeric PIN in a checkpoint under an ordinary key."

    def _execute(self, **kwargs: Any) -> Any:
        pin = kwargs["secret_pin"]
        require_current_task().checkpoint("dialled", {"number": int(pin), "as_float": 2.5})
        return "ok"


def test_a_checkpoint_number_equal_to_a_secret_is_redacted() -> None:
    """A number in checkpoint data equal to a secret value is ``[REDACTED]`` on the span,
    as it is in captured arguments and results; other numbers stay numbers."""
    spans, _ = run_traced(CountsBySecret, {"secret_pin": "48151623"})
    assert f"'laios.checkpoint.number': '{REDACTED}'" in spans
    assert "'laios.checkpoint.as_float': 2.5" in spans
    assert "48151623" not in spans


class Field(enum.Enum):
    PASSWORD = "password"
    HOST = "host"


class HeaderName:
    """A header name kept as an object, written as its text."""

    def __str__(self) -> str:
        return "Authorization"


class KeysByObjects(BaseTool):
    name = "keys_by_objects"
    description = "Checkpoints data under keys that are not strings."

    def _execute(self, **kwargs: Any) -> Any:
        require_current_task().checkpoint(
            "signed_in",
            {
                Field.PASSWORD: "hunter2-hunter2",
                HeaderName(): "Bearer abc-def-ghi",
                Field.HOST: "db",
            },
        )
        return "ok"


def test_a_checkpoint_key_that_is_not_a_string_is_judged_by_its_text() -> None:
    """A key that is not a string (an enum member, a header-name object) names its attribute
    by its text; when that text is secret-looking the value is ``[REDACTED]``."""
    spans, _ = run_traced(KeysByObjects, {})
    assert f"'laios.checkpoint.Field.PASSWORD': '{REDACTED}'" in spans
    assert f"'laios.checkpoint.Authorization': '{REDACTED}'" in spans
    assert "'laios.checkpoint.Field.HOST': 'db'" in spans
    assert "hunter2" not in spans
    assert "abc-def-ghi" not in spans


class NamesBySecret(BaseTool):
    name = "names_by_secret"
    description = "Quotes its key in the names of its checkpoints."

    def _execute(self, **kwargs: Any) -> Any:
        key = kwargs["api_key"]
        task = require_current_task()
        task.checkpoint(f"authenticated with {key}")  # (no data)
        task.checkpoint(f"{'n' * 240}{key}", {"plain": "kept"})  # (the key across the cut)
        return "ok"


def test_a_secret_in_a_checkpoint_name_stays_out_of_the_span_name() -> None:
    """A checkpoint name that quotes a secret value (with data or without, whole or where the
    name is cut to 256 characters) is scrubbed before it becomes the span's name, as its data
    and the tool's progress messages are."""
    spans, _ = run_traced(NamesBySecret, {"api_key": SECRET})
    assert f"checkpoint authenticated with {REDACTED}" in spans
    assert f"checkpoint {'n' * 240}{REDACTED}"[:200] in spans
    assert SECRET not in spans
    assert SECRET[:8] not in spans


#: Tokens a tool is handed back while it runs (none of its parameters holds them).
REFRESHED = "eyJhbGciOiJIUzI1NiJ9.refreshed.Q7xZk2"
RENEWAL = "rt-9f8e7d6c5b4a-renewal"


class Refreshes(BaseTool):
    name = "refreshes"
    description = "Checkpoints a token it refreshed, under its name and quoted beside it."

    def _execute(self, **kwargs: Any) -> Any:
        require_current_task().checkpoint(
            "refreshed",
            {
                "access_token": REFRESHED,
                "status": f"refreshed {REFRESHED}",
                "next": f"https://api.example/v1/me?token={REFRESHED}",
                "n": 1,
                "oauth": {"refresh_token": RENEWAL},
                "renewal": f"renew with {RENEWAL}",
                "rows": [{"id": n} for n in range(3)],
            },
        )
        return "ok"


def test_a_secret_the_checkpoint_data_holds_is_scrubbed_from_its_other_entries() -> None:
    """A credential checkpoint data holds under a secret-looking name (a refreshed token, which
    no parameter held) is a secret value of that data: redacted under its name and scrubbed
    where another entry quotes it, capture on or off, not left as written beside its
    ``[REDACTED]``."""
    spans, _ = run_traced(Refreshes, {"user": "ann"})
    assert "'laios.checkpoint.access_token': '[REDACTED]'" in spans
    assert "'laios.checkpoint.status': 'refreshed [REDACTED]'" in spans
    assert "'laios.checkpoint.next': 'https://api.example/v1/me?token=[REDACTED]'" in spans
    assert "'laios.checkpoint.n': 1" in spans
    assert "'laios.checkpoint.renewal': 'renew with [REDACTED]'" in spans
    assert REFRESHED[:12] not in spans
    assert RENEWAL[:12] not in spans


class LogsIn(BaseTool):
    name = "logs_in"
    description = "Checkpoints its password, then reports progress."

    def _execute(self, **kwargs: Any) -> Any:
        task = require_current_task()
        task.checkpoint("login", {"password": kwargs["password"], "user": "ann"})
        task.progress(50, "logged in")
        return "ok"


def test_checkpoint_data_is_kept_as_given_for_the_process_and_scrubbed_where_exported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """What laios exports (spans, ``/status``, its log records) never holds a secret in
    checkpoint data; ``get_metrics(...).checkpoints``, read by the caller's own code in the
    same process, keeps the data as the tool gave it (documented, as for ``TaskResult``)."""
    password = "hunter2-hunter2"
    caplog.set_level(logging.DEBUG, logger="laios")
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = ToolRegistry()
    registry.register_tool(LogsIn)
    store = MetricStore()
    statuses: list[str] = []

    def on_progress(event: str, data: dict[str, Any]) -> None:
        if event == "progress":
            statuses.append(json.dumps(status_document(store.snapshot())))

    task = Task(
        plan_id="p", description="d", tool_name="logs_in", parameters={"password": password}
    )
    with Executor(
        registry, store=store, register_prometheus=False, tracer_provider=provider
    ) as executor:
        result = executor.execute_task(
            task, Context(session_id="s", user_id="u"), on_progress=on_progress
        )
        metrics = executor.get_metrics(task.id)
        every = executor.get_all_metrics()
    assert result.success, result.error
    assert metrics is not None
    (login,) = [point for point in metrics.checkpoints if point["name"] == "login"]
    assert login["data"] == {"password": password, "user": "ann"}
    assert password in str([m.to_dict() for m in every if m.task_id == task.id])
    spans = [span for span in exporter.get_finished_spans() if span.name == "checkpoint login"]
    assert len(spans) == 1
    assert spans[0].attributes is not None
    assert spans[0].attributes["laios.checkpoint.password"] == REDACTED
    assert spans[0].attributes["laios.checkpoint.user"] == "ann"
    assert statuses
    assert all(password not in status for status in statuses)
    assert all(password not in record.getMessage() for record in caplog.records)


def test_a_checkpoint_of_a_finished_task_is_ignored_without_logging_its_name(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A checkpoint added through the task monitor once its task has finished is ignored with
    a debug log, which quoted its name: a name made from the task's secret parameter wrote
    the secret to the log. The log names the task only."""
    registry = ToolRegistry()
    registry.register_tools([KeysBySecret])
    task = Task(
        plan_id="p",
        description="d",
        tool_name="keys_by_secret",
        parameters={"api_key": SECRET},
    )
    with Executor(registry, store=MetricStore(), register_prometheus=False) as executor:
        assert executor.execute_task(task, Context(session_id="s", user_id="u")).success
        with caplog.at_level(logging.DEBUG, logger="laios.execution"):
            executor.task_monitor.checkpoint(task.id, f"late {SECRET}")
    ignored = [r.getMessage() for r in caplog.records if "ignored" in r.getMessage()]
    assert len(ignored) == 1
    assert task.id in ignored[0]
    assert SECRET not in caplog.text
