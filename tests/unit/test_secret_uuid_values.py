"""A secret given as a ``uuid.UUID`` under a secret-looking key (``session_id``, ``api_token``):
its text must not reach spans or logs when the tool quotes it, with content capture off or on."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import Secret

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.redaction import REDACTED, scrub, secret_values
from laios.execution.store import MetricStore
from laios.tools.base import BaseTool
from laios.tools.registry import ToolRegistry

SESSION = uuid.UUID("3f2b8c1e-9a4d-4e7b-8c2f-1a2b3c4d5e6f")


class Resume(BaseTool):
    name = "resume"
    description = "Fails to resume a session, quoting its id."

    def _execute(self, **kwargs: Any) -> Any:
        session = kwargs["session_id"]
        raise PermissionError(f"session {session} expired ({session!r}, {session.hex})")


@pytest.mark.parametrize(
    "parameters",
    [
        {"session_id": SESSION},
        {"auth": {"api_token": SESSION}},
        {"creds": Secret[uuid.UUID](SESSION)},
    ],
)
def test_the_text_of_a_secret_uuid_is_scrubbed(parameters: dict[str, Any]) -> None:
    text = f"session {SESSION} expired ({SESSION!r}, {SESSION.hex})"
    out = scrub(text, secret_values(parameters))
    assert out == f"session {REDACTED} expired (UUID('{REDACTED}'), {REDACTED})"


@pytest.mark.parametrize("capture", [False, True])
def test_a_secret_uuid_reaches_no_span_and_no_log(
    capture: bool, caplog: pytest.LogCaptureFixture
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = ToolRegistry()
    registry.register_tool(Resume)
    task = Task(
        plan_id="p", description="d", tool_name="resume", parameters={"session_id": SESSION}
    )
    caplog.set_level(logging.DEBUG, logger="laios")
    with Executor(
        registry,
        store=MetricStore(),
        tracer_provider=provider,
        capture_content=capture,
        register_prometheus=False,
    ) as executor:
        result = executor.execute_task(task, Context(session_id="s", user_id="u"))
    provider.shutdown()
    assert not result.success
    (span,) = exporter.get_finished_spans()
    assert (span.status.description or "").startswith(f"session {REDACTED} expired")
    seen = span.to_json() + "\n".join(r.getMessage() for r in caplog.records)
    assert str(SESSION) not in seen
    assert SESSION.hex not in seen
