"""A huge error message on a traced task: the span's status description keeps 1024 bytes of
it, scrubbed of the task's secrets, and costs work bounded by what it keeps, not by the
message's size. Checked against the real SDK."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from span_support import make_task, only

from laios.core.types import Context
from laios.execution.executor import Executor
from laios.execution.redaction import MAX_ERROR_BYTES, scrub
from laios.tools.base import BaseTool, ToolOutput
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="session-1", user_id="user-1")
API_KEY = "sk-live-0123456789abcdefXYZ"
#: A message of 40 MB: scrubbed whole, it takes the calling thread seconds of CPU time.
HUGE = 40_000_000
#: CPU seconds of the calling thread that a bounded scrub stays well under (a loaded machine
#: adds wall-clock time, not CPU time of this thread).
BOUND_SECONDS = 0.2


class Declines(BaseTool):
    name = "declines"
    description = "Returns a failed output whose error is the text it is given."

    def _execute(self, **kwargs: Any) -> Any:
        return ToolOutput(success=False, error=kwargs["error"])


@pytest.fixture
def registry() -> ToolRegistry:
    registry = ToolRegistry()
    registry.register_tools([Declines])
    return registry


def cpu_seconds(call: Callable[[], Any]) -> tuple[Any, float]:
    """``call()`` and the CPU seconds the calling thread spent in it."""
    started = time.thread_time()
    value = call()
    return value, time.thread_time() - started


def test_a_huge_error_message_costs_bounded_work_on_the_span(
    executor: Executor, exporter: InMemorySpanExporter
) -> None:
    """A failed output with a 40 MB error and a secret parameter: the span's status keeps
    1024 bytes, scrubbed, and recording it takes the calling thread well under a second of CPU
    (the tool runs inline: the message is built before the clock starts)."""
    error = "x" * HUGE
    task = make_task("declines", error=error, api_key=API_KEY)
    executor.execute_task(make_task("declines", error="warm", api_key=API_KEY), CONTEXT)
    exporter.clear()
    result, seconds = cpu_seconds(lambda: executor.execute_task(task, CONTEXT))
    assert not result.success
    span = only(exporter, "execute_tool declines")
    description = span.status.description
    assert description is not None
    assert len(description.encode("utf-8")) <= MAX_ERROR_BYTES
    assert description.startswith("x" * 512)
    assert seconds < BOUND_SECONDS, f"{seconds:.2f} s of CPU to record a {HUGE} byte error"


@pytest.mark.parametrize("filler", ["y", "\u00e9", "\u20ac", "\U0001f600"])
@pytest.mark.parametrize("before", [0, 330, 500, 990, 1000, 1005, 1010, 1020, 1024, 1030])
def test_a_secret_at_the_cut_of_a_huge_message_leaves_nothing_behind(
    executor: Executor, exporter: InMemorySpanExporter, before: int, filler: str
) -> None:
    """A secret written across the 1024-byte cut of the status description, in a message far
    longer than it (of characters of one to four bytes), is replaced before the cut, as in a
    short one: the description is what scrubbing the whole message and then cutting it
    gives."""
    error = filler * before + API_KEY + " " + "z" * 100_000
    executor.execute_task(make_task("declines", error=error, api_key=API_KEY), CONTEXT)
    description = only(exporter, "execute_tool declines").status.description
    assert description == scrub(error, [API_KEY], limit=MAX_ERROR_BYTES)
    assert API_KEY[:8] not in description


@pytest.mark.parametrize("length", [1, 1010, 1023, 1024, 1025, 1026, 2048])
def test_a_message_near_the_limit_is_cut_as_before(
    executor: Executor, exporter: InMemorySpanExporter, length: int
) -> None:
    """Messages around 1024 bytes long, with and without a secret in them: the description is
    the whole message scrubbed, cut to 1024 bytes where it is longer."""
    for error in ("m" * length, API_KEY + "m" * length, "m" * length + API_KEY):
        exporter.clear()
        executor.execute_task(make_task("declines", error=error, api_key=API_KEY), CONTEXT)
        description = only(exporter, "execute_tool declines").status.description
        assert description == scrub(error, [API_KEY], limit=MAX_ERROR_BYTES)
