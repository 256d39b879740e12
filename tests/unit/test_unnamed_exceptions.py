"""Exceptions whose class cannot say its name, or whose instance cannot say much at all.

A tool's exception class may have a metaclass whose ``__name__``, ``__qualname__`` or
``__module__`` raises or is not text (a proxy, a mocking library), or an instance whose
``__notes__``, ``__str__`` or ``__repr__`` raises. Whatever it raises, the task ends as the
tool's own failure (``outcome="error"``, ``error_type`` the class's real name, the tool's
message), on every road, counted once, its span ERROR with an ``exception`` event: it is never
taken for a fault of the executor (``internal``) nor for a value the executor cannot inspect.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from laios.core.types import Context, Task
from laios.execution.store import MetricStore
from laios.tools.base import AsyncBaseTool, BaseTool
from laios.tools.registry import ToolRegistry

# (a Ctrl-C or SystemExit out of asyncio.run leaves tasks unretrieved: see the fixture)
pytestmark = pytest.mark.usefixtures("collect_interrupted_tasks")

_NAMES = ("__name__", "__qualname__", "__module__")


class NamelessMeta(type):
    """A metaclass whose classes raise when asked for their name or module."""

    def __getattribute__(cls, name: str) -> Any:
        if name in _NAMES:
            raise RuntimeError("this class will not say its name")
        return super().__getattribute__(name)


class NumberNameMeta(type):
    """A metaclass whose classes answer a number when asked for their name or module."""

    def __getattribute__(cls, name: str) -> Any:
        if name in _NAMES:
            return 42
        return super().__getattribute__(name)


class NamelessError(Exception, metaclass=NamelessMeta):
    """A tool's exception whose class cannot be named."""


class NumberNamedError(Exception, metaclass=NumberNameMeta):
    """A tool's exception whose class is named by a number."""


class NamelessStop(BaseException, metaclass=NamelessMeta):
    """A library's own ``BaseException`` whose class cannot be named."""


class NotesError(Exception):
    """An exception whose ``__notes__`` cannot be read."""

    @property
    def __notes__(self) -> Any:
        raise RuntimeError("no notes")


class UnprintableError(Exception, metaclass=NamelessMeta):
    """An exception whose class cannot be named and whose ``__str__`` and ``__repr__`` raise."""

    def __str__(self) -> str:
        raise RuntimeError("no message")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class ExitsWhenPrintedError(Exception):
    """An exception whose ``__str__`` raises ``SystemExit`` (which would end the thread that
    turns it into a failed result, leaving its caller waiting for ever)."""

    def __str__(self) -> str:
        raise SystemExit("not a message")


EXCEPTIONS: dict[str, Any] = {
    "nameless": lambda: NamelessError("the quota is used up"),
    "number": lambda: NumberNamedError("the quota is used up"),
    "nameless_base": lambda: NamelessStop("the quota is used up"),
    "notes": lambda: NotesError("the quota is used up"),
    "unprintable": lambda: UnprintableError("the quota is used up"),
    "exits_when_printed": lambda: ExitsWhenPrintedError("the quota is used up"),
}
EXPECTED_TYPE = {
    "nameless": "NamelessError",
    "number": "NumberNamedError",
    "nameless_base": "NamelessStop",
    "notes": "NotesError",
    "unprintable": "UnprintableError",
    "exits_when_printed": "ExitsWhenPrintedError",
}
UNPRINTABLE = "UnprintableError (its message could not be turned into text)"
UNPRINTABLE_MESSAGES = {
    "unprintable": UNPRINTABLE,
    "exits_when_printed": "ExitsWhenPrintedError (its message could not be turned into text)",
}


class RaiseIt(BaseTool):
    name = "raise_it"
    description = "Raises the exception it is told to."

    def _execute(self, **kwargs: Any) -> Any:
        raise EXCEPTIONS[kwargs["which"]]()


class RaiseItAsync(AsyncBaseTool):
    name = "raise_it_async"
    description = "Raises the exception it is told to, from a coroutine."

    async def _execute_async(self, **kwargs: Any) -> Any:
        await asyncio.sleep(0)
        raise EXCEPTIONS[kwargs["which"]]()


CONTEXT = Context(session_id="s", user_id="u")
ROADS = ("inline", "thread", "async", "async in task", "retry", "retry async")


def _run(executor: Any, road: str, task: Task) -> Any:
    if road == "inline":
        return executor.execute_task(task, CONTEXT)
    if road == "thread":
        return executor.execute_task(task, CONTEXT, timeout=5)
    if road == "async":
        return asyncio.run(asyncio.wait_for(executor.execute_async(task, CONTEXT, timeout=5), 10))
    if road == "async in task":  # (no timeout: the tool runs inside the awaiting task)
        return asyncio.run(asyncio.wait_for(executor.execute_async(task, CONTEXT), 10))
    if road == "retry":
        return executor.execute_with_retry(task, CONTEXT, max_retries=1, retry_delay=0, timeout=5)
    coroutine = executor.execute_with_retry_async(
        task, CONTEXT, max_retries=1, retry_delay=0, timeout=5
    )
    return asyncio.run(asyncio.wait_for(coroutine, 10))


def _errors(store: MetricStore, tool: str) -> dict[str, int]:
    (snapshot,) = [t for t in store.snapshot().tools if t.tool == tool]
    return {name: c.value for name, c in snapshot.errors.items() if c.value}


@pytest.mark.parametrize("which", sorted(EXCEPTIONS))
@pytest.mark.parametrize("road", ROADS)
def test_an_exception_that_cannot_say_its_name_is_the_tools_own_failure(
    make_executor: Any, road: str, which: str
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = ToolRegistry()
    registry.register_tools([RaiseIt, RaiseItAsync])
    store = MetricStore()
    executor = make_executor(tool_registry=registry, store=store, tracer_provider=provider)
    tool = "raise_it_async" if road.startswith("async") else "raise_it"
    task = Task(plan_id="p", description="d", tool_name=tool, parameters={"which": which})
    result = _run(executor, road, task)
    name = EXPECTED_TYPE[which]
    assert result.metadata["outcome"] == "error", result.error
    assert result.metadata["error_type"] == name
    message = UNPRINTABLE_MESSAGES.get(which, "the quota is used up")
    assert result.error == message
    attempts = 2 if road.startswith("retry") else 1
    if road.startswith("retry"):
        assert result.metadata["retries"] == 1  # (an ordinary failure: retried)
    assert _errors(store, tool) == {name: attempts}  # (nothing counted as "internal")
    assert executor.get_running_tasks() == []
    spans = [s for s in exporter.get_finished_spans() if s.name.startswith("execute_tool")]
    assert len(spans) == attempts
    for span in spans:
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes is not None
        assert span.attributes["error.type"] == name
        (event,) = span.events
        assert event.name == "exception"
        assert event.attributes is not None
        assert str(event.attributes["exception.type"]).endswith(name)
        stack = str(event.attributes["exception.stacktrace"])
        assert name in stack
        if which not in UNPRINTABLE_MESSAGES:
            assert "the quota is used up" in stack
        assert "_execute" in stack  # (the tool's own frames)


class LoudCallbackError(Exception, metaclass=NamelessMeta):
    """What a caller's ``on_progress`` callback raises: its class cannot be named either."""


def _loud_callback(event: str, data: Any) -> None:
    raise LoudCallbackError("the callback failed")


def test_a_callback_exception_that_cannot_say_its_name_is_reported_as_one(
    make_executor: Any,
) -> None:
    registry = ToolRegistry()
    registry.register_tools([RaiseIt])
    store = MetricStore()
    executor = make_executor(tool_registry=registry, store=store)
    task = Task(plan_id="p", description="d", tool_name="raise_it", parameters={"which": "notes"})
    result = executor.execute_task(task, CONTEXT, on_progress=_loud_callback)
    assert result.metadata["error_type"] == "NotesError"
    assert "LoudCallbackError" in result.metadata["callback_error"]
    assert "the callback failed" in result.metadata["callback_error"]
    assert "internal" not in _errors(store, "raise_it")


class InterruptedWhenPrintedError(Exception):
    """An exception whose ``__str__`` is interrupted by Ctrl-C (``KeyboardInterrupt``)."""

    def __str__(self) -> str:
        raise KeyboardInterrupt


class RaiseInterruptedWhenPrinted(BaseTool):
    name = "interrupted_when_printed"
    description = "Raises an exception whose message is interrupted as it is turned into text."

    def _execute(self, **kwargs: Any) -> Any:
        raise InterruptedWhenPrintedError("the quota is used up")


class RaiseInterruptedWhenPrintedAsync(AsyncBaseTool):
    name = "interrupted_when_printed_async"
    description = "The same, from a coroutine."

    async def _execute_async(self, **kwargs: Any) -> Any:
        await asyncio.sleep(0)
        raise InterruptedWhenPrintedError("the quota is used up")


@pytest.mark.parametrize("road", ["inline", "async", "async in task"])
def test_a_ctrl_c_while_the_tools_exception_is_printed_goes_on_once_the_task_is_recorded(
    make_executor: Any, road: str
) -> None:
    """Ctrl-C landing in the ``__str__`` of the tool's exception on the caller's thread is the
    caller's: the task is recorded as the tool's failure, then the interrupt goes on."""
    registry = ToolRegistry()
    registry.register_tools([RaiseInterruptedWhenPrinted, RaiseInterruptedWhenPrintedAsync])
    store = MetricStore()
    executor = make_executor(tool_registry=registry, store=store)
    tool = "interrupted_when_printed" + ("_async" if road.startswith("async") else "")
    task = Task(plan_id="p", description="d", tool_name=tool)
    with pytest.raises(KeyboardInterrupt):
        _run(executor, road, task)
    assert executor.get_running_tasks() == []
    assert _errors(store, tool) == {"InterruptedWhenPrintedError": 1}


def test_a_ctrl_c_while_the_tools_exception_is_printed_on_a_worker_is_logged_and_dropped(
    make_executor: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """On a worker thread no caller can take it: the task ends as the tool's failure, and
    the interrupt is logged and dropped."""
    registry = ToolRegistry()
    registry.register_tools([RaiseInterruptedWhenPrinted])
    store = MetricStore()
    executor = make_executor(tool_registry=registry, store=store)
    task = Task(plan_id="p", description="d", tool_name="interrupted_when_printed")
    result = _run(executor, "thread", task)
    assert result.metadata["outcome"] == "error"
    assert result.error == (
        "InterruptedWhenPrintedError (its message could not be turned into text)"
    )
    assert "raised KeyboardInterrupt" in caplog.text
    assert "dropped" in caplog.text


def test_a_ctrl_c_while_a_tools_exception_is_printed_goes_on_out_of_execute() -> None:
    """Called directly, a tool whose exception's ``__str__`` is interrupted lets the
    interrupt go on out of ``execute``, as one the tool raised itself."""
    with pytest.raises(KeyboardInterrupt):
        RaiseInterruptedWhenPrinted().execute()
    registry = ToolRegistry()
    registry.register_tools([RaiseInterruptedWhenPrinted])
    with pytest.raises(KeyboardInterrupt):
        registry.execute_tool("interrupted_when_printed")
