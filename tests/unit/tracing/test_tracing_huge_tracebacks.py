"""A huge exception message: the span's ``exception.stacktrace``, the logged traceback of a
caller's callback and the callback's note keep a bounded part of it, scrubbed of the task's
secrets exactly as scrubbing the whole text and then cutting it does, at a cost bounded by
what they keep, not by the message's size."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from span_support import make_task, only

from laios.core.types import Context
from laios.execution._engine.job import describe_exception, scrubbed_message
from laios.execution.executor import Executor
from laios.execution.redaction import (
    MAX_TRACEBACK_BYTES,
    exception_traceback,
    scrub,
    scrubbed_traceback,
    truncate_bytes,
    utf8_text,
)
from laios.execution.tracing import MAX_STACKTRACE_BYTES, exception_stacktrace
from laios.tools.base import BaseTool
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="session-1", user_id="user-1")
API_KEY = "sk-live-0123456789abcdefXYZ"
#: A secret of several lines, as a key file is.
PEM = "-----BEGIN KEY-----\nMIIEabcdefgh1234\nzyxwvut98765QRS\n-----END KEY-----"
#: A message of 40 MB: scrubbed whole, it takes the calling thread about a second of CPU.
HUGE = 40_000_000
#: CPU seconds of the calling thread that a bounded scrub stays well under (a loaded machine
#: adds wall-clock time, not CPU time of this thread; Python's formatting of the traceback
#: copies the message a few times, a tenth of a second of it).
BOUND_SECONDS = 0.5


class Raises(BaseTool):
    name = "raises"
    description = "Raises a ValueError whose message is the text it is given."

    def _execute(self, **kwargs: Any) -> Any:
        raise ValueError(kwargs["error"])


class Echoes(BaseTool):
    name = "echoes"
    description = "Returns what it is given."

    def _execute(self, **kwargs: Any) -> Any:
        return "done"


@pytest.fixture
def registry() -> ToolRegistry:
    registry = ToolRegistry()
    registry.register_tools([Raises, Echoes])
    return registry


def cpu_seconds(call: Callable[[], Any]) -> tuple[Any, float]:
    """``call()`` and the CPU seconds the calling thread spent in it."""
    started = time.thread_time()
    value = call()
    return value, time.thread_time() - started


def test_a_huge_raised_message_costs_bounded_work_on_the_stacktrace(
    executor: Executor, exporter: InMemorySpanExporter
) -> None:
    """A tool raising an exception with a 40 MB message and a secret parameter: the span's
    ``exception.stacktrace`` keeps at most 8192 bytes, and recording it takes the calling
    thread well under a second of CPU (the tool runs inline: the message is built before the
    clock starts)."""
    error = "x" * HUGE + API_KEY
    task = make_task("raises", error=error, api_key=API_KEY)
    executor.execute_task(make_task("raises", error="warm", api_key=API_KEY), CONTEXT)
    exporter.clear()
    result, seconds = cpu_seconds(lambda: executor.execute_task(task, CONTEXT))
    assert not result.success
    (event,) = only(exporter, "execute_tool raises").events
    stack = event.attributes["exception.stacktrace"]
    assert len(stack.encode("utf-8")) <= MAX_STACKTRACE_BYTES
    assert "ValueError: " + "x" * 512 in stack
    assert seconds < BOUND_SECONDS, f"{seconds:.2f} s of CPU to record a {HUGE} byte error"


def test_a_huge_callback_message_costs_bounded_work(executor: Executor) -> None:
    """An ``on_progress`` callback raising an exception with a 40 MB message, the first time
    (its traceback logged) and again: reporting it takes the calling thread well under a
    second of CPU, and the task's note keeps the start of the message."""
    error = ValueError("y" * HUGE + API_KEY)

    def raising(event: str, data: dict[str, Any]) -> None:
        raise error

    task = make_task("echoes", api_key=API_KEY)
    for _ in range(2):
        result, seconds = cpu_seconds(
            lambda: executor.execute_task(task, CONTEXT, on_progress=raising)
        )
        assert result.success
        assert "y" * 512 in result.metadata["callback_error"]
        assert seconds < BOUND_SECONDS, f"{seconds:.2f} s of CPU to report a {HUGE} byte error"


def old_cut_stacktrace(stack: str) -> str:
    """How a stack trace, scrubbed whole, is cut to ``MAX_STACKTRACE_BYTES``: its long lines
    first, then its middle (as documented in docs/spans.md)."""
    stack = utf8_text(stack)
    if len(stack.encode("utf-8")) <= MAX_STACKTRACE_BYTES:
        return stack
    lines = [truncate_bytes(line, 1024) if len(line) > 256 else line for line in stack.split("\n")]
    stack = "\n".join(lines)
    encoded = stack.encode("utf-8")
    if len(encoded) <= MAX_STACKTRACE_BYTES:
        return stack
    marker = "\n…[truncated]\n"
    tail = MAX_STACKTRACE_BYTES - 2048 - len(marker.encode("utf-8"))
    head = encoded[:2048].decode("utf-8", "ignore")
    return head + marker + encoded[-tail:].decode("utf-8", "ignore")


FILLERS = ["x", "\u00e9", "\u20ac", "\U0001f600", "ab\n", " \n"]
#: Texts a message may hold near a cut: secrets, their starts, ends and insides, their
#: encoded forms, lines of a key file, a value pydantic quoted by its ends.
PLACED = [
    API_KEY,
    API_KEY[:9],
    API_KEY[-9:],
    API_KEY[4:20],
    "p\u00e4ss-w\u00f6rd-9876",
    "p%C3%A4ss-w%C3%B6rd",
    "sk-live-0123456789abcdefXYZ".replace("-", "%2D"),
    "c2stbGl2ZS0wMTIzNDU2Nzg5",
    PEM,
    PEM.replace("\n", "\\n"),
    "MIIEabcdefgh1234",
    "\n",
    "input_value='sk-live-012345678...456789abcdefXYZ', input_type=str",
    "abcd",
]
#: Sets of secrets: one, one of several lines, a short one, many (with a non-ASCII one:
#: scores of forms, which a long text is searched for otherwise), none.
SECRET_SETS = [
    [API_KEY],
    [API_KEY, PEM],
    ["abcd", API_KEY],
    [
        API_KEY,
        "p\u00e4ss-w\u00f6rd-9876",
        "ghp_abcdefghijklmnop1234",
        "hunter2hunter2",
        "t0k\u00e9n/v&1+2",
    ],
    [],
]


def runs() -> st.SearchStrategy[str]:
    """A piece of a message: a run of one filler, of a length around the cuts, or a text
    that holds a secret or part of one."""
    lengths = st.one_of(
        st.integers(0, 40),
        st.integers(240, 270),
        st.integers(330, 345),
        st.integers(1000, 1040),
        st.integers(2000, 2100),
        st.integers(6000, 6200),
    )
    return st.one_of(
        st.builds(lambda filler, count: filler * count, st.sampled_from(FILLERS), lengths),
        st.sampled_from(PLACED),
    )


def messages() -> st.SearchStrategy[str]:
    """A message longer than any stack trace kept: a bulk (one long line, or many short
    ones) with pieces before it, inside it and after it."""
    bulk = st.sampled_from(
        ["z" * 70_000, "\u20ac" * 40_000, "line of text\n" * 6000, "q" * 30_000 + "\n" * 3]
    )
    parts = st.lists(runs(), max_size=8)
    return st.builds(
        lambda before, bulk, inside, after: (
            "".join(before)
            + bulk[: len(bulk) // 2]
            + "".join(inside)
            + bulk[len(bulk) // 2 :]
            + "".join(after)
        ),
        parts,
        bulk,
        parts,
        parts,
    )


def raised(message: str) -> ValueError:
    """A ValueError raised with ``message``, with its frames."""
    try:
        raise ValueError(message)
    except ValueError as exc:
        return exc


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(message=messages(), secrets=st.sampled_from(SECRET_SETS))
def test_a_huge_stacktrace_reads_as_scrubbed_whole_then_cut(
    message: str, secrets: list[str]
) -> None:
    """The span's ``exception.stacktrace``, the logged traceback and the callback's message
    of an exception with a long message holding secrets (across the cuts too) are what
    scrubbing the whole text and then cutting it gives."""
    exc = raised(message)
    stack = exception_traceback(exc)
    assert exception_stacktrace(exc, secrets) == old_cut_stacktrace(scrub(stack, secrets, None))
    whole = truncate_bytes(scrub(stack, secrets, limit=None), MAX_TRACEBACK_BYTES)
    assert scrubbed_traceback(exc, secrets) == whole
    assert scrubbed_message(exc, secrets) == scrub(describe_exception(exc), secrets)


@settings(max_examples=80, deadline=None)
@given(
    pieces=st.lists(runs(), max_size=10),
    secrets=st.sampled_from(SECRET_SETS),
)
def test_a_stacktrace_of_a_usual_size_reads_as_before(
    pieces: list[str], secrets: list[str]
) -> None:
    """Messages of up to tens of kilobytes, holding secrets around the cuts: the same."""
    exc = raised("".join(pieces))
    stack = exception_traceback(exc)
    assert exception_stacktrace(exc, secrets) == old_cut_stacktrace(scrub(stack, secrets, None))
    whole = truncate_bytes(scrub(stack, secrets, limit=None), MAX_TRACEBACK_BYTES)
    assert scrubbed_traceback(exc, secrets) == whole
    assert scrubbed_message(exc, secrets) == scrub(describe_exception(exc), secrets)
