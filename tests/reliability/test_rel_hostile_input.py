"""Hostile input: a clear exception for the caller's bugs, a failed result inside a run, and an
exposition that always stays valid.

Hypothesis generates resource-limit configs, task parameters, tool names (unicode, 10 KB long,
quotes, backslashes, newlines, braces, lone surrogates) and progress values (NaN, negative, huge,
infinite, strings). ``promtool check metrics`` (``LAIOS_REQUIRE_PROMETHEUS=1`` makes a missing
promtool a failure instead of a skip) checks the text that ``/metrics`` serves.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text
from rel_support import http_get, make_task, promtool_check, promtool_path, strict_json

from laios.core.types import Context, Task
from laios.execution.executor import Executor, ResourceLimits
from laios.execution.monitor import ExecutionMonitor
from laios.execution.server import make_wsgi_app, start_http_server
from laios.execution.store import MetricStore
from laios.execution.task_context import require_current_task
from laios.tools.base import BaseTool, ToolInput
from laios.tools.registry import ToolRegistry

OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
CTX = Context(session_id="hostile", user_id="u")
LIMIT_KEYS = ("timeout_seconds", "memory_limit_mb", "cpu_limit_percent")

#: Names a hostile or careless caller could give a tool.
HOSTILE_NAMES = [
    'quo"te',
    "back\\slash",
    "ends with \\",
    "new\nline",
    "carriage\r\nreturn",
    "tab\there",
    "{}",
    '{tool="x"} 1',
    "# HELP fake",
    "ünïcødé 😀 名前",
    "lone \ud800 surrogate",
    "nul\x00byte",
    "line\u2028separator",
    "le",
    "unknown",
    "other",
    "x" * 10_240,
]

ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(),
    st.binary(),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.fractions(),
    st.timedeltas(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


# -- resource limits: the caller's bug is a ValueError / TypeError --------------------------


@settings(max_examples=400, deadline=None)
@given(
    st.dictionaries(
        st.one_of(st.sampled_from(LIMIT_KEYS), st.text(max_size=20), st.integers(), st.none()),
        ANY_VALUE,
        max_size=4,
    )
)
def test_from_config_builds_valid_limits_or_raises_value_or_type_error(config: dict) -> None:
    """from_config gives limits that hold their invariants, or raises ValueError / TypeError."""
    try:
        limits = ResourceLimits.from_config(config)
    except (ValueError, TypeError):
        return
    timeout, memory, cpu = limits.timeout_seconds, limits.memory_limit_mb, limits.cpu_limit_percent
    assert timeout is None or (math.isfinite(timeout) and timeout > 0)
    assert memory is None or (isinstance(memory, int) and memory > 0)
    assert cpu is None or (math.isfinite(cpu) and cpu > 0)


@settings(max_examples=100, deadline=None)
@given(ANY_VALUE.filter(lambda v: not isinstance(v, dict)))
def test_from_config_refuses_a_non_mapping_with_type_error(config: Any) -> None:
    """Anything but a mapping given to from_config raises TypeError."""
    with pytest.raises(TypeError):
        ResourceLimits.from_config(config)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(LIMIT_KEYS), ANY_VALUE)
def test_resource_limits_constructor_accepts_or_raises_value_error(key: str, value: Any) -> None:
    """ResourceLimits(**{key: value}) is valid or raises ValueError (pydantic ValidationError)."""
    try:
        limits = ResourceLimits(**{key: value})
    except ValueError:
        return
    number = getattr(limits, key)
    assert number is None or (math.isfinite(number) and number > 0)


@pytest.mark.parametrize("limits", [{"timeout_seconds": 5}, "5", 5])
def test_executor_refuses_resource_limits_of_the_wrong_type(limits: Any) -> None:
    """Executor(resource_limits=<not a ResourceLimits>) raises TypeError naming from_config."""
    with pytest.raises(TypeError, match="from_config"):
        Executor(ToolRegistry(), resource_limits=limits, register_prometheus=False)


@pytest.mark.parametrize("workers", [0, -1, 1.5, "4", None, True, float("nan")])
def test_executor_refuses_a_bad_max_workers(workers: Any) -> None:
    """max_workers that is not a positive whole number raises ValueError."""
    with pytest.raises(ValueError, match="max_workers"):
        Executor(ToolRegistry(), max_workers=workers, register_prometheus=False)


def test_task_refuses_non_string_parameter_keys() -> None:
    """Task(parameters={1: ...}) raises ValueError (pydantic ValidationError)."""
    with pytest.raises(ValueError):
        Task(plan_id="p", description="d", tool_name="t", parameters={1: "x"})


# -- task parameters: a failed TaskResult when they reach execution -------------------------


class KwargsTool(BaseTool):
    name = "kwargs"
    description = "Takes any keyword arguments and returns how many it got."

    def _execute(self, **kwargs: Any) -> Any:
        return len(kwargs)


class _Strict(ToolInput):
    count: int


class ModelTool(BaseTool):
    name = "model"
    description = "Validates its input with a model (count: int)."
    input_model = _Strict

    def _execute(self, input_data: _Strict) -> Any:
        return input_data.count


class _Opaque:
    def __repr__(self) -> str:
        raise RuntimeError("repr refused")


PARAM_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(),
        st.binary(max_size=20),
        st.just(10**400),
        st.just("y" * 100_000),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=8), children, max_size=4),
        st.frozensets(st.integers(), max_size=3),
    ),
    max_leaves=20,
)
PARAMETERS = st.dictionaries(
    st.one_of(st.text(max_size=30), st.sampled_from(["self", "api_key", "", "input_data"])),
    PARAM_VALUES,
    max_size=6,
)


@dataclass
class TracedExecutor:
    """An executor tracing into memory with content capture on."""

    executor: Executor
    exporter: InMemorySpanExporter


@pytest.fixture(scope="module")
def traced() -> Iterator[TracedExecutor]:
    """One executor for the module's hypothesis examples (capture on, SDK provider)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = ToolRegistry()
    registry.register_tools([KwargsTool, ModelTool])
    executor = Executor(
        registry,
        store=MetricStore(),
        register_prometheus=False,
        tracer_provider=provider,
        capture_content=True,
    )
    yield TracedExecutor(executor, exporter)
    executor.shutdown()
    provider.shutdown()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    parameters=PARAMETERS,
    tool=st.sampled_from(["kwargs", "model"]),
    timeout=st.sampled_from([None, 5.0]),
)
def test_hostile_parameters_give_a_task_result(
    traced: TracedExecutor, parameters: dict, tool: str, timeout: float | None
) -> None:
    """Any parameters: a success or a failed TaskResult (never an exception), bounded spans."""
    traced.exporter.clear()
    task = make_task(tool)
    task.parameters = parameters
    result = traced.executor.execute_task(task, CTX, timeout=timeout)
    assert result.metadata["outcome"] in ("success", "error")
    if not result.success:
        assert result.error
        assert result.metadata["error_type"]
    for span in traced.exporter.get_finished_spans():
        for value in (span.attributes or {}).values():
            if isinstance(value, str):
                assert len(value.encode("utf-8", "replace")) <= 4096
        assert len((span.status.description or "").encode("utf-8", "replace")) <= 1024


def test_capture_never_changes_the_outcome_of_a_task(traced: TracedExecutor) -> None:
    """A parameter whose repr() raises: the task runs and succeeds with capture on, as off."""
    task = make_task("kwargs")
    task.parameters = {"handle": _Opaque()}
    result = traced.executor.execute_task(task, CTX)
    assert result.success, result.error


def test_parameters_the_input_model_refuses_give_a_validation_error(
    traced: TracedExecutor,
) -> None:
    """Parameters the tool's input model refuses: failed result, error_type ValidationError."""
    result = traced.executor.execute_task(make_task("model", count="many"), CTX)
    assert not result.success
    assert result.metadata["error_type"] == "ValidationError"


# -- tool names: the exposition stays valid --------------------------------------------------


def _tool_class(name: str) -> type[BaseTool]:
    def run(self: BaseTool, **kwargs: Any) -> Any:
        task = require_current_task()
        task.progress(42, f"working on {name}")
        if kwargs.get("fail"):
            raise ValueError(f"refused {name}")
        return name

    return type("HostileTool", (BaseTool,), {"name": name, "description": "d", "_execute": run})


class _NamedTools:
    """A tool lookup of the caller's own (``ToolLookup``), holding tools under any name: most
    hostile names are refused by ``BaseTool`` and ``ToolRegistry``, but the executor must
    still cope with a tool renamed after it was made."""

    def __init__(self) -> None:
        self.tools: dict[str, BaseTool] = {}

    def get_tool(self, name: str, /) -> BaseTool | None:
        return self.tools.get(name)


def _run_named_tools(names: list[str]) -> tuple[MetricStore, CollectorRegistry]:
    """Hold tools under ``names`` and run each (success, failure, with a timeout)."""
    registry = _NamedTools()
    for name in names:
        tool = _tool_class("hostile_tool")()
        tool.name = name
        registry.tools[name] = tool
    store = MetricStore()
    prom = CollectorRegistry()
    executor = Executor(registry, store=store, prometheus_registry=prom)
    try:
        for name in names:
            assert executor.execute_task(make_task(name), CTX).success
            assert not executor.execute_task(make_task(name, fail=True), CTX, timeout=5.0).success
            unknown = executor.execute_task(make_task("not registered: " + name), CTX)
            assert unknown.metadata["error_type"] == "tool_not_found"
        executor.execute_with_retry(make_task(names[0], fail=True), CTX, retry_delay=0)
    finally:
        executor.shutdown()
    return store, prom


def _wsgi_get(store: MetricStore, prom: CollectorRegistry, path: str, accept: str = "") -> str:
    """Call the /metrics and /status WSGI app in-process; return the body."""
    app = make_wsgi_app(store, prom)
    status: list[str] = []
    environ = {"PATH_INFO": path, "REQUEST_METHOD": "GET", "HTTP_ACCEPT": accept}
    body = b"".join(app(environ, lambda s, h: status.append(s)))  # type: ignore[arg-type]
    assert status == ["200 OK"]
    return body.decode("utf-8")


def _assert_valid_exposition(store: MetricStore, prom: CollectorRegistry) -> None:
    text = _wsgi_get(store, prom, "/metrics")
    assert promtool_check(text) == ""
    families = list(parse_text(text))
    assert {f.name for f in families} >= {"laios_tasks", "laios_task_duration_seconds"}
    for family in families:
        for sample in family.samples:
            assert all(len(v) <= 200 for v in sample.labels.values())
    openmetrics = _wsgi_get(store, prom, "/metrics", accept=OPENMETRICS)
    assert openmetrics.endswith("# EOF\n")
    list(parse_openmetrics(openmetrics))
    strict_json(_wsgi_get(store, prom, "/status"))


def test_hostile_tool_names_keep_metrics_valid_over_http() -> None:
    """Registered and unknown hostile names: /metrics passes promtool, /status is strict JSON."""
    promtool_path()
    store, prom = _run_named_tools(HOSTILE_NAMES)
    with start_http_server(0, store=store, registry=prom) as server:
        text = http_get(f"{server.url}/metrics")[1]
        openmetrics = http_get(f"{server.url}/metrics", accept=OPENMETRICS)[1]
        status = http_get(f"{server.url}/status")[1]
    assert promtool_check(text) == ""
    tools = {s.labels["tool"] for f in parse_text(text) for s in f.samples if "tool" in s.labels}
    assert {'quo"te', "new\nline", "back\\slash", "unknown"} <= tools
    assert max(len(t) for t in tools) == 200
    list(parse_openmetrics(openmetrics))
    document = strict_json(status)
    assert {t["tool"] for t in document["tools"]} >= {'quo"te', "new\nline", "{}"}


TOOL_NAMES = st.lists(
    st.one_of(
        st.text(min_size=1, max_size=40),
        st.sampled_from(HOSTILE_NAMES),
        st.text(alphabet='"\\\n{}=, #', min_size=1, max_size=10),
    ).filter(lambda name: name.strip() != ""),
    min_size=1,
    max_size=8,
    unique=True,
)


@settings(max_examples=25, deadline=None)
@given(TOOL_NAMES)
def test_generated_tool_names_keep_the_exposition_valid(names: list[str]) -> None:
    """Hypothesis tool names: promtool-clean text, parseable OpenMetrics, strict-JSON /status."""
    promtool_path()
    store, prom = _run_named_tools(names)
    _assert_valid_exposition(store, prom)


def test_more_tools_than_the_label_cap_fold_into_other() -> None:
    """Past max_tool_labels registered names, further tools share the label "other"."""
    names = [f"tool_{index}" for index in range(210)]
    registry = ToolRegistry()
    for name in names:
        registry.register_tool(_tool_class(name))
    store = MetricStore()
    with Executor(registry, store=store, register_prometheus=False) as executor:
        for name in names:
            executor.execute_task(make_task(name), CTX)
    labels = {tool.tool for tool in store.snapshot().tools if tool.total}
    assert len(labels) == 201
    assert "other" in labels


# -- progress values -----------------------------------------------------------------------


class ReportsProgress(BaseTool):
    name = "reports"
    description = "Reports the progress value it is given, then returns what /status showed."
    app: Any = None

    def _execute(self, **kwargs: Any) -> Any:
        task = require_current_task()
        task.progress(kwargs["percent"], kwargs.get("message"))
        status: list[str] = []
        environ = {"PATH_INFO": "/status", "REQUEST_METHOD": "GET"}
        body = b"".join(self.app(environ, lambda s, h: status.append(s)))
        return body.decode("utf-8")


@pytest.fixture(scope="module")
def progress_executor() -> Iterator[Executor]:
    """An executor whose ``reports`` tool reads /status from inside the run."""
    store = MetricStore()
    prom = CollectorRegistry()
    tool = ReportsProgress()
    tool.app = make_wsgi_app(store, prom)
    registry = ToolRegistry()
    registry.register_tool(tool)
    executor = Executor(registry, store=store, prometheus_registry=prom)
    yield executor
    executor.shutdown()


PERCENTS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**300), max_value=10**300),
    st.sampled_from([float("nan"), -5, 1e9, float("inf"), float("-inf"), "50", None, True]),
    st.text(max_size=5),
    st.decimals(allow_nan=True),
    st.lists(st.integers(), max_size=2),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    percent=PERCENTS,
    message=st.one_of(st.none(), st.text(), st.just("m" * 100_000), st.just("lone \udfff")),
)
def test_progress_values_are_clamped_or_fail_the_task(
    progress_executor: Executor, percent: Any, message: str | None
) -> None:
    """Numbers are clamped to 0-100 (NaN -> 0) and /status stays strict JSON; others fail."""
    task = make_task("reports", percent=percent, message=message)
    result = progress_executor.execute_task(task, CTX)
    is_number = isinstance(percent, (int, float)) and not isinstance(percent, bool)
    if not is_number:
        assert not result.success
        assert result.metadata["error_type"] == "TypeError"
        return
    assert result.success, result.error
    (running,) = strict_json(result.output)["running"]
    expected = 0.0 if math.isnan(percent) else min(max(float(percent), 0.0), 100.0)
    assert running["progress_percent"] == round(expected, 2)
    assert running["message"] is None or len(running["message"]) <= 1024


@pytest.mark.parametrize(
    "percent", [float("nan"), -5, 1e9, float("inf"), float("-inf"), 0, 100, 55.5]
)
def test_execution_monitor_clamps_numbers(percent: float) -> None:
    """ExecutionMonitor.update_task_progress clamps numbers to 0-100 (NaN -> 0)."""
    monitor = ExecutionMonitor()
    monitor.update_task_progress("t-1", percent=percent)
    update = monitor.get_progress("t-1")
    assert update is not None
    expected = 0.0 if math.isnan(percent) else min(max(percent, 0.0), 100.0)
    assert update.progress_percent == expected


@pytest.mark.parametrize("percent", ["50", [50], Decimal("50"), True, object()])
def test_execution_monitor_refuses_non_numbers_with_type_error(percent: Any) -> None:
    """A percent that is not a real number raises TypeError (the caller's bug)."""
    with pytest.raises(TypeError):
        ExecutionMonitor().update_task_progress("t-1", percent=percent)


def test_huge_integer_progress_is_clamped(progress_executor: Executor) -> None:
    """progress(10**400) from inside a tool is clamped to 100 like any out-of-range number."""
    result = progress_executor.execute_task(make_task("reports", percent=10**400), CTX)
    assert result.success, result.error
    (running,) = json.loads(result.output)["running"]
    assert running["progress_percent"] == 100.0
