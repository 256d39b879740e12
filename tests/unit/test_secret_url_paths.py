"""A secret written into a URL by ``urllib.parse.quote`` as it is usually called (its default
``safe="/"`` keeps each ``/``), as a password is put into a connection URL: it must not reach
spans or logs, with content capture off or on."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.redaction import REDACTED, scrub, secret_values
from laios.execution.store import MetricStore
from laios.tools.base import BaseTool
from laios.tools.registry import ToolRegistry

#: Shaped like a cloud secret key: a ``/`` that ``quote`` keeps and a ``+`` it encodes.
PASSWORD = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
QUOTED = quote(PASSWORD)
#: Pieces of the secret that must not be left behind either.
PIECES = ("wJalrXUtnFEMI", "K7MDENG", "bPxRfiCYEXAMPLEKEY")


class Connect(BaseTool):
    name = "connect"
    description = "Fails to connect, quoting the connection URL it built."

    def _execute(self, **kwargs: Any) -> Any:
        url = f"postgresql://app:{quote(kwargs['password'])}@db.example/orders"
        if kwargs.get("fail", True):
            raise ConnectionError(f"cannot reach {url}")
        return {"url": url}


def test_the_form_differs_from_the_other_url_encodings() -> None:
    assert QUOTED not in (PASSWORD, quote(PASSWORD, safe=""))
    assert "/" in QUOTED


def test_scrub_replaces_the_secret_quoted_with_the_default_safe_characters() -> None:
    text = f"postgresql://app:{QUOTED}@db.example/orders"
    out = scrub(text, secret_values({"password": PASSWORD}))
    assert out == f"postgresql://app:{REDACTED}@db.example/orders"


@pytest.mark.parametrize("capture", [False, True])
@pytest.mark.parametrize("fail", [True, False])
def test_the_quoted_secret_reaches_no_span_and_no_log(
    capture: bool, fail: bool, caplog: pytest.LogCaptureFixture
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = ToolRegistry()
    registry.register_tool(Connect)
    task = Task(
        plan_id="p",
        description="d",
        tool_name="connect",
        parameters={"password": PASSWORD, "fail": fail},
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
    assert result.success is not fail
    (span,) = exporter.get_finished_spans()
    seen = span.to_json() + "\n".join(r.getMessage() for r in caplog.records)
    if fail:
        assert f"app:{REDACTED}@db.example" in (span.status.description or "")
    elif capture:
        assert f"app:{REDACTED}@db.example" in str(span.attributes["gen_ai.tool.call.result"])
    for piece in PIECES:
        assert piece not in seen
