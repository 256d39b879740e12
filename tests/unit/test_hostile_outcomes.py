"""Hostile outcomes: exceptions that cannot be printed, values that cannot be walked.

Whatever a tool raises or returns, the caller gets its one result by its timeout, the store
counts it once, and observability (spans, logs, content capture) never changes the outcome:
a failure while recording it is logged and counted as an ``internal`` error instead.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterator, Mapping
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


class ApiError(Exception):
    """An exception whose ``__str__`` returns a number, as some client libraries' do."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code

    def __str__(self) -> str:
        return self.code  # type: ignore[return-value]


class RaiseApiError(BaseTool):
    name = "api"
    description = "Raises an ApiError whose message is not text."

    def _execute(self, **kwargs: Any) -> Any:
        raise ApiError(503)


class HostileMapping(Mapping[str, Any]):
    """A mapping whose iteration raises."""

    def __getitem__(self, key: str) -> Any:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("this mapping cannot be walked")

    def __len__(self) -> int:
        return 1


class FailWith(BaseTool):
    name = "fail"
    description = "Fails with a plain error."

    def _execute(self, **kwargs: Any) -> Any:
        raise ValueError("the tool failed")


def _registry() -> ToolRegistry:
    registry = ToolRegistry()
    registry.register_tools([RaiseApiError, FailWith])
    return registry


def _counts(store: MetricStore, tool: str) -> tuple[dict[str, int], dict[str, int], int]:
    (snapshot,) = [t for t in store.snapshot().tools if t.tool == tool]
    outcomes = {name: h.count for name, h in snapshot.outcomes.items() if h.count}
    errors = {name: c.value for name, c in snapshot.errors.items()}
    return outcomes, errors, snapshot.in_flight


CONTEXT = Context(session_id="s", user_id="u")
MODES = ("inline", "timeout", "async", "parallel", "retry")


def _run(executor: Any, mode: str, task: Task) -> Any:
    if mode == "inline":
        return executor.execute_task(task, CONTEXT)
    if mode == "timeout":
        return executor.execute_task(task, CONTEXT, timeout=5)
    if mode == "async":
        return asyncio.run(asyncio.wait_for(executor.execute_async(task, CONTEXT, timeout=5), 10))
    if mode == "parallel":
        coroutine = executor.execute_parallel([task], CONTEXT, timeout=5)
        return asyncio.run(asyncio.wait_for(coroutine, 10))[0]
    return executor.execute_with_retry(task, CONTEXT, max_retries=0, timeout=5)


@pytest.mark.parametrize("mode", MODES)
def test_an_exception_whose_message_is_not_text_is_an_error_outcome(
    make_executor: Any, mode: str
) -> None:
    """A tool raising an exception whose __str__ returns a number ends 'error' (named after its
    class), is counted once and leaves nothing in flight, on every road."""
    store = MetricStore()
    executor = make_executor(tool_registry=_registry(), store=store)
    task = Task(plan_id="p", description="d", tool_name="api")
    result = _run(executor, mode, task)
    assert result.metadata["outcome"] == "error"
    assert result.metadata["error_type"] == "ApiError"
    assert "ApiError" in result.error
    assert _counts(store, "api") == ({"error": 1}, {"ApiError": 1}, 0)
    assert executor.get_running_tasks() == []


@pytest.mark.parametrize("capture", [False, True])
def test_a_parameter_that_cannot_be_walked_does_not_change_the_outcome(
    make_executor: Any, capture: bool
) -> None:
    """With spans (and content capture), a failing task whose parameter cannot be walked still
    ends with the tool's own error, and so does its span. With capture, the parameter is
    captured as a placeholder naming its type: no fault, nothing counted 'internal'."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    store = MetricStore()
    executor = make_executor(
        tool_registry=_registry(),
        store=store,
        tracer_provider=provider,
        capture_content=capture,
    )
    task = Task(plan_id="p", description="d", tool_name="fail", parameters={})
    task.parameters["config"] = HostileMapping()
    result = executor.execute_task(task, CONTEXT, timeout=5)
    assert result.metadata["outcome"] == "error"
    assert result.metadata["error_type"] == "ValueError"
    assert result.error == "the tool failed"
    outcomes, errors, in_flight = _counts(store, "fail")
    assert outcomes == {"error": 1}
    assert errors["ValueError"] == 1
    assert errors.get("internal", 0) == 0
    assert in_flight == 0
    (span,) = exporter.get_finished_spans()
    assert span.name == "execute_tool fail"
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "the tool failed"
    assert span.attributes is not None
    if capture:
        assert span.attributes["gen_ai.tool.call.arguments"] == (
            '{"config":"<HostileMapping object (its items could not be read)>"}'
        )


class RemoteHandle:
    """A client object whose every attribute not set on it is fetched remotely, failing with an
    error of its own (not ``AttributeError``) while disconnected."""

    def __repr__(self) -> str:
        return "<RemoteHandle disconnected>"

    def __getattr__(self, name: str) -> Any:
        raise ConnectionError(f"not connected: cannot fetch {name!r}")


@pytest.mark.parametrize("mode", MODES)
def test_a_parameter_whose_unknown_attributes_raise_is_captured(
    make_executor: Any, mode: str, laios_records: list[logging.LogRecord]
) -> None:
    """With content capture on, a parameter whose ``__getattr__`` raises an error of its own is
    captured as its repr, with the other arguments, on every supported pydantic version: no
    ERROR logged, nothing counted 'internal', the outcome the tool's."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    store = MetricStore()
    executor = make_executor(
        tool_registry=_registry(), store=store, tracer_provider=provider, capture_content=True
    )
    task = Task(
        plan_id="p",
        description="d",
        tool_name="fail",
        parameters={"client": RemoteHandle(), "query": "rows"},
    )
    result = _run(executor, mode, task)
    assert result.metadata["outcome"] == "error"
    assert result.error == "the tool failed"
    outcomes, errors, in_flight = _counts(store, "fail")
    assert (outcomes, errors.get("internal", 0), in_flight) == ({"error": 1}, 0, 0)
    assert not [record for record in laios_records if record.levelno >= logging.ERROR]
    (span,) = [s for s in exporter.get_finished_spans() if s.name == "execute_tool fail"]
    assert span.attributes is not None
    assert json.loads(str(span.attributes["gen_ai.tool.call.arguments"])) == {
        "client": "<RemoteHandle disconnected>",
        "query": "rows",
    }


class AddsToItsParameters:
    """A parameter whose repr adds an entry to the parameters holding it, the first time: the
    parameters change size while they are captured, as when another thread changes a dict the
    caller shares between tasks."""

    def __init__(self, parameters: dict[str, Any]) -> None:
        self.parameters = parameters

    def __repr__(self) -> str:
        self.parameters.setdefault("added_meanwhile", True)
        return "<AddsToItsParameters>"


@pytest.mark.parametrize("mode", MODES)
def test_parameters_changed_while_captured_are_captured(
    make_executor: Any, mode: str, laios_records: list[logging.LogRecord]
) -> None:
    """With content capture on, parameters (a plain dict) that change size while they are
    captured are captured from a snapshot taken in one step: no ERROR logged ("dictionary
    changed size during iteration"), nothing counted 'internal', the outcome the tool's."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    store = MetricStore()
    executor = make_executor(
        tool_registry=_registry(), store=store, tracer_provider=provider, capture_content=True
    )
    task = Task(plan_id="p", description="d", tool_name="fail", parameters={"query": "rows"})
    task.parameters["probe"] = AddsToItsParameters(task.parameters)
    task.parameters["last"] = "kept"
    result = _run(executor, mode, task)
    assert result.error == "the tool failed"
    outcomes, errors, in_flight = _counts(store, "fail")
    assert (outcomes, errors.get("internal", 0), in_flight) == ({"error": 1}, 0, 0)
    assert not [record for record in laios_records if record.levelno >= logging.ERROR]
    (span,) = [s for s in exporter.get_finished_spans() if s.name == "execute_tool fail"]
    assert span.attributes is not None
    captured = json.loads(str(span.attributes["gen_ai.tool.call.arguments"]))
    assert captured["query"] == "rows"
    assert captured["probe"] == "<AddsToItsParameters>"
    assert captured["last"] == "kept"


SECRET = "sk-live-ROWS-9f8e7d6c5b4a"


class LazyProxy:
    """An object loaded on first use, whose loading fails quoting the connection (even when
    asked for its class)."""

    def __init__(self, password: str) -> None:
        self._password = password

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        raise ConnectionError(f"could not read rows from postgres://app:{self._password}@db")


class ReturnLazyRows(BaseTool):
    name = "lazy_rows"
    description = "Returns a row that cannot be read once the tool is done."

    def _execute(self, **kwargs: Any) -> Any:
        return {"rows": [LazyProxy(kwargs["password"])]}


@pytest.mark.parametrize("mode", MODES)
def test_a_failing_capture_logs_its_traceback_without_the_secret(
    make_executor: Any, mode: str, laios_records: list[logging.LogRecord]
) -> None:
    """With content capture on, a result that raises while it is captured, quoting a secret
    parameter, is logged at ERROR with its traceback scrubbed; the outcome is the tool's."""
    registry = ToolRegistry()
    registry.register_tool(ReturnLazyRows)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    executor = make_executor(tool_registry=registry, tracer_provider=provider, capture_content=True)
    task = Task(
        plan_id="p", description="d", tool_name="lazy_rows", parameters={"password": SECRET}
    )
    result = _run(executor, mode, task)
    assert result.success
    logged = "\n".join(
        logging.Formatter("%(levelname)s %(message)s").format(record) for record in laios_records
    )
    assert "ERROR internal error while" in logged
    assert "ConnectionError: could not read rows from postgres://app:[REDACTED]@db" in logged
    assert SECRET not in logged


class RaiseGeneratorExit(AsyncBaseTool):
    name = "generator_exit"
    description = "An async tool that raises GeneratorExit itself (its loop is still open)."

    async def _execute_async(self, **kwargs: Any) -> Any:
        await asyncio.sleep(0)
        raise GeneratorExit


ASYNC_MODES = (*MODES, "async in task", "retry async")


@pytest.mark.parametrize("mode", ASYNC_MODES)
def test_an_async_tool_raising_generator_exit_is_an_error_outcome(
    make_executor: Any, mode: str
) -> None:
    """An async tool that raises ``GeneratorExit`` while its loop runs ends 'error' named after
    it, on every road, with its span ERROR and its exception event: it is not taken for its
    coroutine being closed by a closed loop (``loop_closed``), and never escapes the call."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = ToolRegistry()
    registry.register_tool(RaiseGeneratorExit)
    store = MetricStore()
    executor = make_executor(tool_registry=registry, store=store, tracer_provider=provider)
    task = Task(plan_id="p", description="d", tool_name="generator_exit")
    try:
        if mode == "async in task":  # (no timeout: the tool runs inside the awaiting task)
            result = asyncio.run(executor.execute_async(task, CONTEXT))
        elif mode == "retry async":
            result = asyncio.run(executor.execute_with_retry_async(task, CONTEXT, max_retries=0))
        else:
            result = _run(executor, mode, task)
    except GeneratorExit:
        pytest.fail("GeneratorExit escaped the call")
    assert result.metadata["outcome"] == "error"
    assert result.metadata["error_type"] == "GeneratorExit"
    assert _counts(store, "generator_exit") == ({"error": 1}, {"GeneratorExit": 1}, 0)
    (span,) = [s for s in exporter.get_finished_spans() if s.name.startswith("execute_tool")]
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "GeneratorExit"
    assert [event.name for event in span.events] == ["exception"]


class Interrupted(BaseException):
    """A ``BaseException`` of a library's own, as ``trio.Cancelled``, gevent's ``GreenletExit``
    or pytest's ``Failed`` are: neither an ``Exception`` nor one asyncio treats specially."""


class RaiseOwnBaseException(AsyncBaseTool):
    name = "own_base_exception"
    description = "An async tool that raises a BaseException subclass of its own."

    async def _execute_async(self, **kwargs: Any) -> Any:
        await asyncio.sleep(0)
        raise Interrupted("stopped by the library")


class RaiseOwnBaseExceptionSync(BaseTool):
    name = "own_base_exception_sync"
    description = "A synchronous tool that raises a BaseException subclass of its own."

    def _execute(self, **kwargs: Any) -> Any:
        raise Interrupted("stopped by the library")


@pytest.mark.parametrize("kind", ["async", "sync"])
@pytest.mark.parametrize("mode", ASYNC_MODES)
def test_a_tool_raising_a_base_exception_of_its_own_is_an_error_outcome(
    make_executor: Any, mode: str, kind: str
) -> None:
    """A tool raising a ``BaseException`` subclass of its own ends 'error' named after it, on
    every road, at once: it never escapes the call, never leaves its task running (the caller
    waiting for its timeout, or for ever) and ends its span once."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = ToolRegistry()
    registry.register_tools([RaiseOwnBaseException, RaiseOwnBaseExceptionSync])
    store = MetricStore()
    executor = make_executor(tool_registry=registry, store=store, tracer_provider=provider)
    name = "own_base_exception" if kind == "async" else "own_base_exception_sync"
    task = Task(plan_id="p", description="d", tool_name=name)
    outcome: list[Any] = []

    def call() -> None:  # (on a thread of its own: a call that never returns fails the test)
        try:
            if mode == "async in task":  # (no timeout: the tool runs inside the awaiting task)
                outcome.append(asyncio.run(executor.execute_async(task, CONTEXT)))
            elif mode == "retry async":
                coroutine = executor.execute_with_retry_async(task, CONTEXT, max_retries=0)
                outcome.append(asyncio.run(coroutine))
            else:
                outcome.append(_run(executor, mode, task))
        except BaseException as exc:
            outcome.append(exc)

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    caller.join(10)  # (the tool fails at once: its result is due in well under a second)
    assert outcome, "the call did not return"
    (result,) = outcome
    assert not isinstance(result, BaseException), f"{result!r} escaped the call"
    assert result.metadata["outcome"] == "error", result.error
    assert result.metadata["error_type"] == "Interrupted"
    assert _counts(store, name) == ({"error": 1}, {"Interrupted": 1}, 0)
    assert executor.get_running_tasks() == []
    (span,) = [s for s in exporter.get_finished_spans() if s.name.startswith("execute_tool")]
    assert span.attributes["error.type"] == "Interrupted"


class _Proxy:
    """A value whose attribute reads raise (a proxy whose backend is down)."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"backend down, cannot read {name}")


PROXY = _Proxy()


class ReturnProxy(BaseTool):
    name = "proxy"
    description = "Returns a value whose attribute reads raise."

    def _execute(self, **kwargs: Any) -> Any:
        return PROXY


class ReturnProxyAsync(AsyncBaseTool):
    name = "proxy_async"
    description = "Returns a value whose attribute reads raise, from a coroutine."

    async def _execute_async(self, **kwargs: Any) -> Any:
        return PROXY


@pytest.mark.parametrize("tool", ["proxy", "proxy_async"])
@pytest.mark.parametrize("mode", MODES)
def test_a_value_whose_attribute_reads_raise_is_a_result_like_any_other(
    make_executor: Any, mode: str, tool: str
) -> None:
    """A tool returning a value whose attribute reads raise succeeds with that value as its
    output, whatever the pydantic version (before 2.10, checking it against ToolOutput read
    one of its attributes, and the task failed with that read's error); so does
    ``registry.execute_tool``."""
    registry = ToolRegistry()
    registry.register_tools([ReturnProxy, ReturnProxyAsync])
    executor = make_executor(tool_registry=registry, store=MetricStore())
    result = _run(executor, mode, Task(plan_id="p", description="d", tool_name=tool))
    assert result.success, result.error
    assert result.output is PROXY
    output = registry.execute_tool(tool)
    assert output.success
    assert output.data is PROXY
