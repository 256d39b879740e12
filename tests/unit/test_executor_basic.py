"""Executor basics: construction, results, task fields, callbacks, monitoring and the reference
examples. Each call path must return a ``TaskResult`` and never raise."""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import operator
from datetime import timezone
from typing import Any

import pytest
from odd_values import ClassRaises

from laios.core.types import Context, Task, TaskResult, TaskStatus
from laios.execution.executor import (
    ExecutionMetrics,
    ExecutionMode,
    Executor,
    ResourceLimits,
    TaskMonitor,
)
from laios.execution.prometheus import ensure_collector
from laios.execution.runners import ThreadRunner
from laios.execution.store import MetricStore
from laios.tools.base import create_simple_tool
from laios.tools.registry import ToolRegistry

# -- construction ---------------------------------------------------------------------------


def test_constructor_defaults(registry: ToolRegistry, store: MetricStore) -> None:
    """Executor(registry) uses 4 workers, monitoring on and empty ResourceLimits."""
    executor = Executor(registry, store=store, register_prometheus=False)
    try:
        assert executor.max_workers == 4
        assert executor.enable_monitoring is True
        assert executor.resource_limits == ResourceLimits()
        assert executor.store is store
        assert executor.tool_registry is registry
        assert isinstance(executor.task_monitor, TaskMonitor)
        assert executor.is_shutdown is False
        assert executor.abandoned_threads == 0
    finally:
        executor.shutdown()


def test_constructor_rejects_a_non_registry() -> None:
    """A tool registry of the wrong type is refused with TypeError."""
    with pytest.raises(TypeError, match="tool_registry"):
        Executor(object(), register_prometheus=False)  # type: ignore[arg-type]


def test_constructor_rejects_a_dict_of_limits(registry: ToolRegistry) -> None:
    """resource_limits given as a dict is refused, pointing at from_config."""
    with pytest.raises(TypeError, match="from_config"):
        Executor(registry, {"timeout_seconds": 1}, register_prometheus=False)  # type: ignore[arg-type]


@pytest.mark.parametrize("workers", [0, -1, 1.5, True, "4"])
def test_constructor_rejects_bad_max_workers(registry: ToolRegistry, workers: Any) -> None:
    """max_workers must be a positive whole number."""
    with pytest.raises(ValueError, match="max_workers"):
        Executor(registry, max_workers=workers, register_prometheus=False)


@pytest.mark.parametrize(
    ("build", "option"),
    [
        (lambda r: Executor(r, record_capacity=0, register_prometheus=False), "record_capacity"),
        (lambda r: TaskMonitor(MetricStore(), capacity=0), "capacity"),
        (lambda r: MetricStore(record_capacity=0), "record_capacity"),
    ],
    ids=["executor", "task_monitor", "store"],
)
def test_a_refused_record_capacity_names_the_option_given(
    registry: ToolRegistry, build: Any, option: str
) -> None:
    """``Executor(record_capacity=0)`` and ``TaskMonitor(capacity=0)`` said "record capacity
    must be a positive integer", naming no option the caller passed."""
    with pytest.raises(ValueError, match=rf"^{option} must be a positive whole number, got 0$"):
        build(registry)


def test_constructor_rejects_a_bad_store(registry: ToolRegistry) -> None:
    """store must be a MetricStore."""
    with pytest.raises(TypeError, match="store"):
        Executor(registry, store={}, register_prometheus=False)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["no", 1, None])
def test_constructor_rejects_a_measure_cpu_time_that_is_not_a_bool(
    registry: ToolRegistry, value: Any
) -> None:
    """measure_cpu_time must be True or False (a string like "no" would read as true)."""
    with pytest.raises(TypeError, match="measure_cpu_time"):
        Executor(registry, measure_cpu_time=value, register_prometheus=False)


@pytest.mark.parametrize("value", ["no", "false", 0, 1])
def test_constructor_rejects_a_capture_content_that_is_not_a_bool(
    registry: ToolRegistry, value: Any
) -> None:
    """capture_content must be None, True or False (a string like "false" would read as true)."""
    with pytest.raises(TypeError, match="capture_content"):
        Executor(registry, capture_content=value, register_prometheus=False)


def test_a_capture_content_number_is_not_called_a_string(registry: ToolRegistry) -> None:
    """The refusal of ``capture_content=0`` names the int, without the aside about strings."""
    with pytest.raises(TypeError) as raised:
        Executor(registry, capture_content=0, register_prometheus=False)  # type: ignore[arg-type]
    assert str(raised.value) == "capture_content must be None, True or False, got int"


@pytest.mark.parametrize("name", ["enable_monitoring", "register_prometheus"])
@pytest.mark.parametrize("value", ["no", "false", b"0", None, 0.0, object()])
def test_constructor_rejects_a_switch_that_is_not_a_bool_or_a_whole_number(
    registry: ToolRegistry, name: str, value: Any
) -> None:
    """enable_monitoring and register_prometheus take True/False (or 0/1): a string like
    "false", which would read as true, is refused naming the argument."""
    kwargs: dict[str, Any] = {"register_prometheus": False, name: value}
    with pytest.raises(TypeError, match=name):
        Executor(registry, **kwargs)


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("false", "got str (a string like 'false' would read as true)"),
        (b"0", "got bytes (a string like 'false' would read as true)"),
        (1.0, "got float 1.0 (of the numbers, only the whole numbers 0 and 1 are taken)"),
        (object(), "got object"),
        (None, "got None"),
    ],
)
def test_a_refused_switch_says_why_for_the_kind_of_value_given(
    registry: ToolRegistry, value: Any, said: str
) -> None:
    """The reason given fits the value: strings read as true, a float is not a whole number;
    a ``None`` is just named (no talk of strings for a float or ``None``)."""
    with pytest.raises(TypeError) as caught:
        Executor(registry, enable_monitoring=value, register_prometheus=False)
    message = str(caught.value)
    assert message == f"enable_monitoring must be True or False, {said}", message


@pytest.mark.parametrize("name", ["enable_monitoring", "register_prometheus"])
@pytest.mark.parametrize("value", [2, -1, 10**20])
def test_constructor_rejects_a_whole_number_other_than_zero_or_one_for_a_switch(
    registry: ToolRegistry, name: str, value: int
) -> None:
    """Only 0 and 1 say False and True: enable_monitoring=2 (a count given to the wrong
    parameter, say) is refused naming the argument, as a string is."""
    kwargs: dict[str, Any] = {"register_prometheus": False, name: value}
    with pytest.raises(TypeError, match=rf"{name} must be True or False, got int {value} "):
        Executor(registry, **kwargs)


@pytest.mark.parametrize("value", [2, -1])
def test_task_monitor_rejects_a_whole_number_other_than_zero_or_one(value: int) -> None:
    """TaskMonitor(track_progress=2) is refused as Executor(enable_monitoring=2) is."""
    with pytest.raises(TypeError, match="track_progress must be True or False"):
        TaskMonitor(track_progress=value)


def test_constructor_takes_numpy_booleans_for_every_on_off_option(
    registry: ToolRegistry, store: MetricStore, make_task: Any, context: Context
) -> None:
    """NumPy's booleans (a computed configuration's) are taken by each on/off option, as
    ``ResourceLimits`` and ``complete_task`` take them; ``measure_cpu_time=np.False_`` was
    refused with "must be True or False, got bool"."""
    np = pytest.importorskip("numpy")
    executor = Executor(
        registry,
        store=store,
        enable_monitoring=np.True_,
        register_prometheus=np.False_,
        measure_cpu_time=np.False_,
        capture_content=np.False_,
    )
    try:
        task = make_task("echo", text="hi")
        assert executor.execute_task(task, context).success
        metrics = executor.get_metrics(task.id)
        assert metrics is not None
        assert metrics.cpu_time == 0.0
    finally:
        executor.shutdown()


@pytest.mark.parametrize("name", ["enable_monitoring", "register_prometheus"])
def test_constructor_refuses_an_array_of_booleans_for_a_switch_naming_it(
    registry: ToolRegistry, name: str
) -> None:
    """An array of booleans is no on/off value: refused naming the option, not with NumPy's
    "truth value of an array ... is ambiguous"."""
    np = pytest.importorskip("numpy")
    kwargs: dict[str, Any] = {"register_prometheus": False, name: np.array([True, False])}
    with pytest.raises(TypeError, match=rf"{name} must be True or False"):
        Executor(registry, **kwargs)


def test_constructor_takes_zero_and_one_for_its_switches(registry: ToolRegistry) -> None:
    """0 and 1 keep working as False and True (a positional enable_monitoring included)."""
    executor = Executor(registry, None, 4, 0, register_prometheus=0)
    assert executor.enable_monitoring is False
    executor.shutdown()


@pytest.mark.parametrize("value", ["console", 3, object()])
def test_constructor_rejects_a_tracer_provider_without_get_tracer(
    registry: ToolRegistry, value: Any
) -> None:
    """A tracer_provider that is no TracerProvider is refused with a TypeError naming it."""
    with pytest.raises(TypeError, match="tracer_provider"):
        Executor(registry, tracer_provider=value, register_prometheus=False)


@pytest.mark.parametrize("value", ["default", 3, {}])
def test_constructor_rejects_a_prometheus_registry_without_register(
    registry: ToolRegistry, value: Any
) -> None:
    """A prometheus_registry that is no CollectorRegistry is refused with a TypeError naming it."""
    with pytest.raises(TypeError, match="prometheus_registry"):
        Executor(registry, store=MetricStore(), prometheus_registry=value)


class _LookupRaises:
    """An argument whose every missing attribute's lookup raises an error other than
    ``AttributeError`` (a proxy whose back end is gone, say)."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"no {name} here")


class _ClosedRaises(ThreadRunner):
    """A runner whose ``closed`` raises once ``armed``."""

    armed = False

    def __getattribute__(self, name: str) -> Any:
        if name == "closed" and object.__getattribute__(self, "armed"):
            raise RuntimeError("closed cannot be read")
        return object.__getattribute__(self, name)


@pytest.mark.parametrize(
    "option",
    [
        "tool_registry",
        "store",
        "tracer_provider",
        "prometheus_registry",
        "meter_provider",
        "runner",
        "capture_content",
        "measure_cpu_time",
        "enable_monitoring",
        "register_prometheus",
    ],
)
def test_constructor_refuses_an_argument_whose_lookup_raises_naming_it(
    registry: ToolRegistry, option: str
) -> None:
    """An argument whose attribute lookup raised RuntimeError let it out of the constructor;
    it is refused with a TypeError naming the option, the error chained."""
    kwargs: dict[str, Any] = {"register_prometheus": False, option: _LookupRaises()}
    given = kwargs.pop("tool_registry", registry)
    with pytest.raises(TypeError, match=rf"\b{option}\b") as caught:
        Executor(given, **kwargs)
    cause = caught.value.__cause__
    assert cause is None or isinstance(cause, RuntimeError), repr(cause)


def test_constructor_refuses_a_runner_whose_closed_raises_naming_it(
    registry: ToolRegistry,
) -> None:
    runner = _ClosedRaises(1, 1)
    runner.armed = True
    try:
        with pytest.raises(TypeError, match=r"\brunner\b") as caught:
            Executor(registry, runner=runner, register_prometheus=False)
        assert isinstance(caught.value.__cause__, RuntimeError)
    finally:
        runner.armed = False
        runner.shutdown()


class _RefusingRegistry:
    """A Prometheus registry whose register raises (a faulty registry of the caller's own)."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def register(self, collector: Any) -> None:
        raise self.error

    def unregister(self, collector: Any) -> None:
        """Never reached: nothing was registered."""


def test_constructor_refuses_a_prometheus_registry_whose_register_raises(
    registry: ToolRegistry,
) -> None:
    """A prometheus_registry whose register raises made the bare RuntimeError escape the
    constructor; it is refused with a ValueError naming the option and what register raised."""
    faulty = _RefusingRegistry(RuntimeError("registry is read-only"))
    with pytest.raises(ValueError, match="prometheus_registry") as caught:
        Executor(registry, store=MetricStore(), prometheus_registry=faulty)  # type: ignore[arg-type]
    message = str(caught.value)
    assert "register raised RuntimeError: registry is read-only" in message
    assert "register_prometheus=False" in message
    assert isinstance(caught.value.__cause__, RuntimeError)
    # ensure_collector, behind the metrics endpoints, says the same of its registry.
    with pytest.raises(ValueError, match=r"^registry\.register raised RuntimeError"):
        ensure_collector(MetricStore(), faulty)  # type: ignore[arg-type]
    # The registry's own refusal of names it exports already says what to do instead.
    clash = _RefusingRegistry(ValueError("Duplicated timeseries in CollectorRegistry"))
    with pytest.raises(ValueError, match=r"^prometheus_registry already exports laios_\* "):
        Executor(registry, store=MetricStore(), prometheus_registry=clash)  # type: ignore[arg-type]
    # Any other ValueError of the registry's goes on as it is.
    other = _RefusingRegistry(ValueError("registry is frozen"))
    with pytest.raises(ValueError, match=r"^registry is frozen$"):
        Executor(registry, store=MetricStore(), prometheus_registry=other)  # type: ignore[arg-type]


def test_a_constructor_refused_at_registration_leaves_nothing_behind(
    registry: ToolRegistry, make_task: Any, context: Context
) -> None:
    """An executor refused at its Prometheus registration never came into being: the runner
    it was given is neither counted by the store (laios_executor_workers) nor shut down."""
    store = MetricStore()
    runner = ThreadRunner(2, 2)
    faulty = _RefusingRegistry(RuntimeError("registry is read-only"))
    with pytest.raises(ValueError, match="prometheus_registry"):
        Executor(registry, store=store, runner=runner, prometheus_registry=faulty)  # type: ignore[arg-type]
    assert store.snapshot().workers == 0
    with Executor(registry, store=MetricStore(), runner=runner, register_prometheus=False) as ok:
        assert ok.execute_task(make_task("echo", text="x"), context).success


def test_execution_mode_values() -> None:
    """ExecutionMode is a str enum with the documented values."""
    assert [m.value for m in ExecutionMode] == ["sync", "async", "parallel"]
    assert ExecutionMode.SYNC == "sync"


# -- results of each call path ---------------------------------------------------------------


@pytest.mark.parametrize("tool", ["echo", "echo_model", "async_echo", "async_echo_model"])
def test_both_tool_styles_and_async_tools_run_in_every_mode(
    executor: Executor,
    make_task: Any,
    context: Context,
    run_via: Any,
    run_mode: str,
    tool: str,
    calls: list[Any],
) -> None:
    """kwargs-style, input-model-style and async tools succeed through every call path."""
    result = run_via(executor, run_mode, make_task(tool, text="hi"), context)
    assert isinstance(result, TaskResult)
    assert result.success, result.error
    assert result.output == "hi"
    assert calls == [(tool, {"text": "hi"})]


def test_success_result_fields(executor: Executor, make_task: Any, context: Context) -> None:
    """A successful result carries the output, no error, the outcome and the tool name."""
    task = make_task("echo", text="hello")
    result = executor.execute_task(task, context)
    assert result.task_id == task.id
    assert result.success is True
    assert result.output == "hello"
    assert result.error is None
    assert result.execution_time_seconds >= 0.0
    assert result.metadata["outcome"] == "success"
    assert result.metadata["tool_name"] == "echo"
    assert "error_type" not in result.metadata


def test_task_fields_updated_on_success(
    executor: Executor, make_task: Any, context: Context, run_via: Any, run_mode: str
) -> None:
    """status, started_at, completed_at and result are set on success; error stays None."""
    task = make_task("echo", text="hello")
    run_via(executor, run_mode, task, context)
    assert task.status is TaskStatus.COMPLETED
    assert task.result == "hello"
    assert task.error is None
    assert task.started_at is not None
    assert task.completed_at is not None
    assert task.started_at.tzinfo == timezone.utc
    assert task.started_at <= task.completed_at


def test_task_fields_updated_on_failure(
    executor: Executor, make_task: Any, context: Context, run_via: Any, run_mode: str
) -> None:
    """status becomes FAILED and error holds the message when the tool fails."""
    task = make_task("boom", message="bad input")
    run_via(executor, run_mode, task, context)
    assert task.status is TaskStatus.FAILED
    assert task.error == "bad input"
    assert task.result is None
    assert task.started_at is not None
    assert task.completed_at is not None


def test_unknown_tool_fails_with_tool_not_found(
    executor: Executor, make_task: Any, context: Context, run_via: Any, run_mode: str
) -> None:
    """An unregistered tool gives 'Tool not found: NAME' in every call path."""
    task = make_task("no_such_tool")
    result = run_via(executor, run_mode, task, context)
    assert result.success is False
    assert result.error == "Tool not found: no_such_tool"
    assert result.metadata["error_type"] == "tool_not_found"
    assert result.metadata["outcome"] == "rejected"
    assert task.status is TaskStatus.FAILED


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("x" * 100_000, "x" * 127 + "…"),  # cut to 128 characters, the cut marked
        ("y" * 128, "y" * 128),  # as long as a name is shown whole
    ],
    ids=["huge", "longest shown whole"],
)
def test_an_unknown_tool_of_a_huge_name_is_named_briefly(
    executor: Executor,
    make_task: Any,
    context: Context,
    run_via: Any,
    run_mode: str,
    name: str,
    said: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An unregistered tool name of 100,000 characters is cut to 128 in the error, in the
    result, the task and the ``failed`` event alike, in every call path, and in what is
    logged of the failure; the result's ``tool_name`` is still the caller's, whole."""
    caplog.set_level(logging.DEBUG, logger="laios")
    events: list[tuple[str, dict[str, Any]]] = []
    task = make_task(name)
    result = run_via(
        executor, run_mode, task, context, on_progress=lambda *event: events.append(event)
    )
    assert result.error == task.error == f"Tool not found: {said}"
    assert result.metadata["error_type"] == "tool_not_found"
    assert result.metadata["tool_name"] == name
    assert [data["error"] for event, data in events if event == "failed"] == [result.error]
    assert caplog.records  # (the failure is logged at debug level)
    assert all(len(record.getMessage()) < 600 for record in caplog.records)


def test_tool_that_raises_fails_with_its_message(
    executor: Executor, make_task: Any, context: Context, run_via: Any, run_mode: str
) -> None:
    """A tool raising RuntimeError gives a failed result naming the exception."""
    result = run_via(executor, run_mode, make_task("boom", message="kaboom"), context)
    assert result.success is False
    assert result.error == "kaboom"
    assert result.metadata["error_type"] == "RuntimeError"
    assert result.metadata["outcome"] == "error"


def test_failed_tool_output_error_reaches_result_unchanged(
    executor: Executor, make_task: Any, context: Context, run_via: Any, run_mode: str
) -> None:
    """A ToolOutput(success=False, error=...) keeps its exact error and its metadata."""
    message = "quota exceeded for bucket 'reports' (429)"
    task = make_task("fail", message=message)
    result = run_via(executor, run_mode, task, context)
    assert result.success is False
    assert result.error == message
    assert task.error == message
    assert result.metadata["attempted_path"] == "/var/data"
    assert result.metadata["error_type"] == "tool_error"


def test_parameters_rejected_by_input_model(
    executor: Executor,
    make_task: Any,
    context: Context,
    run_via: Any,
    run_mode: str,
    calls: list[Any],
) -> None:
    """Parameters the tool's input model refuses give a ValidationError result, tool not run."""
    result = run_via(executor, run_mode, make_task("validated", count="many"), context)
    assert result.success is False
    assert result.metadata["error_type"] == "ValidationError"
    assert "count" in (result.error or "")
    assert calls == []


def test_valid_parameters_pass_the_input_model(
    executor: Executor, make_task: Any, context: Context
) -> None:
    """Parameters the input model accepts reach the tool validated."""
    result = executor.execute_task(make_task("validated", count="21"), context)
    assert result.success
    assert result.output == 42


# -- bad arguments -------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["task", "async", "retry"])
@pytest.mark.parametrize("not_a_task", ["echo", None, {"tool_name": "echo"}])
def test_non_task_argument_gives_failed_result(
    executor: Executor, context: Context, run_via: Any, mode: str, not_a_task: Any
) -> None:
    """Passing something other than a Task returns a failed result saying a Task is expected."""
    result = run_via(executor, mode, not_a_task, context)
    assert isinstance(result, TaskResult)
    assert result.success is False
    assert "expected a Task" in (result.error or "")
    assert result.task_id == "unknown"
    assert result.metadata["outcome"] == "rejected"


class _AttributesRaise:
    """An object whose attributes cannot be read (a proxy whose backend is down, say)."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"backend down, cannot read {name}")


def test_a_non_task_whose_attributes_raise_gives_failed_result(
    executor: Executor, context: Context, run_via: Any, run_mode: str
) -> None:
    """Something other than a Task whose attribute reads raise (an ``id`` included) is refused
    with a failed result saying a Task is expected, instead of the read's exception escaping
    every road, which never raises."""
    result = run_via(executor, run_mode, _AttributesRaise(), context)
    assert isinstance(result, TaskResult)
    assert result.success is False
    assert result.error == "expected a Task, got _AttributesRaise"
    assert result.task_id == "unknown"
    assert result.metadata["outcome"] == "rejected"


def test_a_context_whose_attributes_raise_gives_failed_result(
    executor: Executor, make_task: Any, run_via: Any, run_mode: str, calls: list[Any]
) -> None:
    """The same for a ``context`` that is no Context and whose attribute reads raise (before
    pydantic 2.10, checking it against a model class read one of its attributes)."""
    result = run_via(executor, run_mode, make_task("echo", text="x"), _AttributesRaise())
    assert result.success is False
    assert result.metadata["outcome"] == "rejected"
    assert (result.error or "").startswith("context must be a Context, got _AttributesRaise")
    assert calls == []


def test_ids_whose_attributes_raise_are_unknown(executor: Executor) -> None:
    """cancel_task, get_task_status and get_metrics given such an object as an id answer as
    for any id they do not know."""
    odd: Any = _AttributesRaise()
    assert executor.cancel_task(odd) is False
    assert executor.get_task_status(odd) is None
    assert executor.get_metrics(odd) is None


def test_a_non_task_whose_attributes_raise_gives_failed_result_async_retry(
    executor: Executor, context: Context
) -> None:
    """The same for execute_with_retry_async."""
    result = asyncio.run(executor.execute_with_retry_async(_AttributesRaise(), context))  # type: ignore[arg-type]
    assert result.success is False
    assert result.error == "expected a Task, got _AttributesRaise"
    assert result.metadata["outcome"] == "rejected"


@pytest.mark.parametrize("mode", ["task", "async", "retry"])
@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("id", 5, "Task.id must be a string, got int"),
        ("tool_name", None, "Task.tool_name must be a string, got NoneType"),
        ("parameters", ["a"], "Task.parameters must be a dict, got list"),
    ],
)
def test_a_task_built_without_validation_with_a_wrong_field_is_refused(
    executor: Executor, context: Context, run_via: Any, mode: str, field: str, value: Any, says: str
) -> None:
    """A Task made with model_construct (no validation) whose id, tool name or parameters
    have the wrong type is refused, saying which field: not an internal error."""
    fields: dict[str, Any] = {
        "id": "t-1",
        "plan_id": "p",
        "description": "d",
        "tool_name": "echo",
        "parameters": {},
    }
    fields[field] = value
    task = Task.model_construct(**fields)
    result = run_via(executor, mode, task, context)
    assert result.success is False
    assert says in (result.error or "")
    assert result.metadata["outcome"] == "rejected"


class _UnhashableId(str):
    """A task id whose hash raises: it can be no record's key."""

    def __hash__(self) -> int:
        raise RuntimeError("no hash here")


@pytest.mark.parametrize("mode", ["task", "task_timeout", "async", "parallel", "retry"])
def test_a_task_id_whose_hash_raises_is_refused_as_unusable(
    executor: Executor,
    context: Context,
    run_via: Any,
    mode: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A Task built without validation whose id is a str subclass whose hash raises was run
    into an internal error ("Internal error in the executor: RuntimeError: ...", logged as
    ERROR); it is refused, saying the id cannot be used."""
    task = Task.model_construct(id=_UnhashableId("x"), tool_name="echo", parameters={})
    with caplog.at_level(logging.ERROR, logger="laios"):
        result = run_via(executor, mode, task, context)
    assert result.success is False
    assert result.metadata["outcome"] == "rejected"
    assert result.metadata["error_type"] == "TypeError"
    assert "Task.id" in (result.error or "")
    assert "_UnhashableId" in (result.error or "")
    assert "RuntimeError" in (result.error or "")
    assert not caplog.records


def test_a_task_id_whose_hash_raises_is_refused_by_execute_with_retry_async(
    executor: Executor, context: Context
) -> None:
    """The same for execute_with_retry_async."""
    task = Task.model_construct(id=_UnhashableId("x"), tool_name="echo", parameters={})
    result = asyncio.run(executor.execute_with_retry_async(task, context))
    assert result.success is False
    assert result.metadata["outcome"] == "rejected"
    assert "Task.id" in (result.error or "")


def test_a_task_id_whose_hash_raises_is_never_found(executor: Executor) -> None:
    """Looking up an id whose hash raises raised that error out of calls that look ids up;
    such an id is never found, as an id that is not a string is not."""
    task_id = _UnhashableId("x")
    assert executor.cancel_task(task_id) is False
    assert executor.get_task_status(task_id) is None
    assert executor.get_metrics(task_id) is None
    monitor = executor.task_monitor
    assert monitor.get_task_status(task_id) is None
    assert monitor.get_metrics(task_id) is None
    assert monitor.stop_monitoring(task_id) is None
    assert monitor.is_running(task_id) is False
    monitor.checkpoint(task_id, "ignored")
    monitor.clear_metrics(task_id)
    # start_monitoring refuses such a task as it refuses an id that is not a string.
    task = Task.model_construct(id=task_id, tool_name="echo", parameters={})
    with pytest.raises(TypeError, match=r"Task\.id cannot be used"):
        TaskMonitor().start_monitoring(task)


@pytest.mark.parametrize("tool", ["echo", "echo_model", "async_echo"])
def test_a_parameter_name_that_is_not_a_string_is_named_in_the_error(
    executor: Executor,
    make_task: Any,
    context: Context,
    run_via: Any,
    run_mode: str,
    tool: str,
    calls: list[Any],
) -> None:
    """A key that is not a string, put into a task's parameters after it was built, fails the
    task naming that key, instead of Python's bare "keywords must be strings"; the tool is
    never called."""
    task = make_task(tool, text="x")
    task.parameters[7] = "seven"
    result = run_via(executor, run_mode, task, context)
    assert result.success is False
    assert result.metadata["error_type"] == "TypeError"
    assert result.error == (
        "Task.parameters has a key that is not a string, 7 (int): parameter names must be "
        "strings; the tool was not called"
    )
    assert calls == []


@pytest.mark.parametrize("bad_timeout", [0, -1, math.nan, "5 s", True])
def test_bad_timeout_gives_failed_result(
    executor: Executor,
    make_task: Any,
    context: Context,
    run_via: Any,
    run_mode: str,
    bad_timeout: Any,
    calls: list[Any],
) -> None:
    """timeout of 0, -1, NaN, a string or a bool is refused with a failed result naming it."""
    task = make_task("echo", text="x")
    result = run_via(executor, run_mode, task, context, timeout=bad_timeout)
    assert result.success is False
    assert "timeout" in (result.error or "")
    assert result.metadata["outcome"] == "rejected"
    assert result.task_id == task.id
    assert calls == []


class _Unprintable:
    """A value whose repr raises."""

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class _UnprintableFloat(float):
    """A float whose repr raises."""

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


@pytest.mark.parametrize(
    ("bad_timeout", "says"),
    [
        (_Unprintable(), "timeout must be a real number of seconds, got <_Unprintable object>"),
        (_UnprintableFloat(-1.0), "timeout must be more than 0 seconds, got <_UnprintableFloat"),
        ("x" * 1_000_000, "timeout must be a real number of seconds, got 'xxxx"),
    ],
    ids=["unprintable", "unprintable-float", "huge-string"],
)
def test_a_bad_timeout_that_cannot_be_quoted_whole_gives_failed_result(
    executor: Executor,
    make_task: Any,
    context: Context,
    run_via: Any,
    run_mode: str,
    bad_timeout: Any,
    says: str,
    calls: list[Any],
) -> None:
    """A timeout whose repr raises is refused with a failed result describing it by its type,
    instead of the repr's exception escaping execute_task, execute_async and execute_parallel
    (and being the retry calls' error); one with a huge repr is quoted cut short."""
    result = run_via(executor, run_mode, make_task("echo", text="x"), context, timeout=bad_timeout)
    assert result.success is False
    assert result.metadata["outcome"] == "rejected"
    assert (result.error or "").startswith(says), result.error
    assert len(result.error or "") < 300
    assert calls == []


def test_a_timeout_whose_class_cannot_be_read_gives_failed_result(
    executor: Executor,
    make_task: Any,
    context: Context,
    run_via: Any,
    run_mode: str,
    calls: list[Any],
) -> None:
    """A timeout whose ``__class__`` raises (a proxy standing for nothing) is refused with a
    failed result, instead of that error escaping the isinstance checks of every call."""
    result = run_via(
        executor, run_mode, make_task("echo", text="x"), context, timeout=ClassRaises()
    )
    assert result.success is False
    assert result.metadata["outcome"] == "rejected"
    error = result.error or ""
    assert error.startswith("timeout must be a real number of seconds, got <"), error
    assert "ClassRaises object" in error
    assert calls == []


class _NoFloat(float):
    """A float whose conversion to a plain float raises."""

    def __float__(self) -> float:
        raise RuntimeError("cannot convert")


def test_a_timeout_whose_conversion_raises_gives_failed_result(
    executor: Executor,
    make_task: Any,
    context: Context,
    run_via: Any,
    run_mode: str,
    calls: list[Any],
) -> None:
    """A timeout of a number class of its own whose float() raises is refused with a failed
    result naming the timeout and what float() raised, instead of that exception escaping
    execute_task, execute_async and execute_parallel (and being the retry calls' bare
    error)."""
    result = run_via(executor, run_mode, make_task("echo", text="x"), context, timeout=_NoFloat(2))
    assert result.success is False
    assert result.metadata["outcome"] == "rejected"
    assert result.metadata["error_type"] == "ValueError"
    assert result.error == (
        "timeout must be a real number of seconds, got 2.0: float() of it raised "
        "RuntimeError: cannot convert"
    )
    assert calls == []


def test_infinite_timeout_means_no_limit(
    executor: Executor, make_task: Any, context: Context
) -> None:
    """timeout=inf is accepted and runs the task without a limit."""
    result = executor.execute_task(make_task("echo", text="x"), context, timeout=math.inf)
    assert result.success


@pytest.mark.parametrize("mode", ["task", "async", "parallel", "retry"])
def test_non_callable_on_progress_gives_failed_result(
    executor: Executor, make_task: Any, context: Context, run_via: Any, mode: str
) -> None:
    """An on_progress that is not callable is refused with a failed TypeError result."""
    result = run_via(executor, mode, make_task("echo"), context, on_progress="print")
    assert result.success is False
    assert result.metadata["error_type"] == "TypeError"
    assert "on_progress" in (result.error or "")


class _Handler:
    def on_event(self, event: str) -> None:
        """A method that takes only the event."""

    def on_anything(self, *args: Any) -> None:
        """A method that takes whatever it is given."""


def _no_arguments() -> None:
    """A function that takes nothing."""


def _event_only(event: str) -> None:
    """A function that takes only the event."""


def _event_data_and_more(event: str, data: Any, more: Any) -> None:
    """A function that needs a third argument."""


def _keyword_only(event: str, data: Any, *, more: Any) -> None:
    """A function that needs a keyword-only argument."""


@pytest.mark.parametrize(
    "on_progress",
    [
        _no_arguments,
        _event_only,
        _event_data_and_more,
        _keyword_only,
        lambda: None,
        _Handler().on_event,
    ],
    ids=["no arguments", "event only", "a third", "keyword-only", "lambda", "method"],
)
@pytest.mark.parametrize("mode", ["task", "async", "parallel", "retry"])
def test_an_on_progress_that_cannot_take_event_and_data_gives_failed_result(
    executor: Executor,
    make_task: Any,
    context: Context,
    run_via: Any,
    mode: str,
    on_progress: Any,
) -> None:
    """An on_progress function or method that cannot be called with ``(event, data)`` is
    refused with a failed TypeError result naming its signature, as one that is not callable
    is, where the tool ran and every event logged a TypeError."""
    ran: list[str] = []
    executor.tool_registry.register_tool(
        create_simple_tool("mark", "Marks that it ran.", lambda: ran.append("ran"))
    )
    result = run_via(executor, mode, make_task("mark"), context, on_progress=on_progress)
    assert result.success is False
    assert result.metadata["error_type"] == "TypeError"
    assert "on_progress must take (event, data)" in (result.error or "")
    assert ran == []


@pytest.mark.parametrize(
    "on_progress",
    [
        lambda event, data: None,
        lambda *args: None,
        lambda event, data, more=None: None,
        _Handler().on_anything,
        functools.partial(_event_data_and_more, more=1),
        operator.eq,
    ],
    ids=["lambda", "*args", "a default", "method", "partial", "builtin"],
)
def test_an_on_progress_that_can_take_event_and_data_is_accepted(
    executor: Executor, make_task: Any, context: Context, on_progress: Any
) -> None:
    result = executor.execute_task(make_task("echo", text="x"), context, on_progress=on_progress)
    assert result.success, result.error


@pytest.mark.parametrize(
    "not_a_context",
    ["not a context", None, {"session_id": "s", "user_id": "u"}],
    ids=["str", "None", "dict"],
)
def test_a_context_that_is_not_a_context_gives_failed_result(
    executor: Executor,
    make_task: Any,
    run_via: Any,
    run_mode: str,
    not_a_context: Any,
    calls: list[Any],
) -> None:
    """A context that is not a Context is refused: a failed TypeError result naming the
    context parameter and the Context type; the tool does not run."""
    task = make_task("echo", text="x")
    result = run_via(executor, run_mode, task, not_a_context)
    assert result.success is False
    assert result.metadata["outcome"] == "rejected"
    assert result.metadata["error_type"] == "TypeError"
    assert "context must be a Context" in (result.error or "")
    assert type(not_a_context).__name__ in (result.error or "")
    assert result.task_id == task.id
    assert calls == []


def test_a_context_that_is_not_a_context_fails_an_async_retry_call(
    executor: Executor, make_task: Any, calls: list[Any]
) -> None:
    """execute_with_retry_async refuses a context that is not a Context too, with no retry."""
    result = asyncio.run(
        executor.execute_with_retry_async(make_task("echo", text="x"), "ctx", retry_delay=0.0)
    )
    assert result.success is False
    assert result.metadata["outcome"] == "rejected"
    assert "context must be a Context, got str" in (result.error or "")
    assert result.metadata["retries"] == 0
    assert calls == []


def test_a_subclass_of_context_is_accepted(
    executor: Executor, make_task: Any, run_via: Any, run_mode: str
) -> None:
    """A subclass of Context is a Context: the task runs."""

    class RequestContext(Context):
        request_id: str = "r-1"

    context = RequestContext(session_id="s", user_id="u")
    assert run_via(executor, run_mode, make_task("echo", text="x"), context).success


async def _async_callback(event: str, data: Any) -> None:
    """An ``async def`` on_progress: calling it only makes a coroutine."""


@pytest.mark.parametrize("mode", ["task", "task_timeout", "async", "parallel", "retry"])
def test_an_async_on_progress_gives_failed_result(
    executor: Executor,
    make_task: Any,
    context: Context,
    run_via: Any,
    mode: str,
    calls: list[Any],
    recwarn: pytest.WarningsRecorder,
) -> None:
    """An async def on_progress (whose coroutines nobody would await) is refused at the call:
    a failed TypeError result saying to pass a plain function; the tool does not run."""
    result = run_via(executor, mode, make_task("echo"), context, on_progress=_async_callback)
    assert result.success is False
    assert result.metadata["error_type"] == "TypeError"
    assert "plain function" in (result.error or "")
    assert calls == []
    assert not [w for w in recwarn if "never awaited" in str(w.message)]


def test_calls_after_shutdown_fail(
    executor: Executor, make_task: Any, context: Context, run_via: Any, run_mode: str
) -> None:
    """After shutdown() every call path returns a failed 'shut down' result."""
    executor.shutdown()
    task = make_task("echo", text="x")
    result = run_via(executor, run_mode, task, context)
    assert result.success is False
    assert "shut down" in (result.error or "")
    assert result.metadata["error_type"] == "shutdown"
    assert task.status is TaskStatus.FAILED


# -- on_progress ---------------------------------------------------------------------------


def test_on_progress_sequence_for_success(
    executor: Executor, make_task: Any, context: Context, run_via: Any, run_mode: str
) -> None:
    """A successful task fires 'started' then 'completed' with the result."""
    events: list[tuple[str, Any]] = []
    task = make_task("echo", text="hi")
    run_via(executor, run_mode, task, context, on_progress=lambda e, d: events.append((e, d)))
    assert [e for e, _ in events] == ["started", "completed"]
    assert events[0][1]["task_id"] == task.id
    assert events[0][1]["tool_name"] == "echo"
    assert events[1][1]["result"] == "hi"


@pytest.mark.parametrize("tool", ["fail", "boom"])
def test_on_progress_sequence_for_failure(
    executor: Executor, make_task: Any, context: Context, tool: str
) -> None:
    """A failing task fires 'started' then 'failed' with the error."""
    events: list[tuple[str, Any]] = []
    executor.execute_task(
        make_task(tool, message="nope"), context, on_progress=lambda e, d: events.append((e, d))
    )
    assert [e for e, _ in events] == ["started", "failed"]
    assert events[1][1]["error"] == "nope"
    assert events[1][1]["outcome"] == "error"


def test_on_progress_for_unknown_tool_fires_failed_only(
    executor: Executor, make_task: Any, context: Context
) -> None:
    """A task rejected before it starts fires only 'failed'."""
    events: list[str] = []
    executor.execute_task(make_task("nope"), context, on_progress=lambda e, d: events.append(e))
    assert events == ["failed"]


class CallbackError(Exception):
    pass


def raising_on(event: str, seen: list[str]) -> Any:
    def callback(name: str, data: Any) -> None:
        seen.append(name)
        if name == event:
            raise CallbackError(f"callback broke on {name}")

    return callback


def test_callback_raising_on_started_still_runs_the_tool(
    executor: Executor,
    make_task: Any,
    context: Context,
    run_via: Any,
    run_mode: str,
    calls: list[Any],
) -> None:
    """An on_progress raising at 'started' does not stop the tool: the task succeeds."""
    seen: list[str] = []
    task = make_task("echo", text="x")
    result = run_via(executor, run_mode, task, context, on_progress=raising_on("started", seen))
    assert result.success is True
    assert result.output == "x"
    assert "on_progress callback raised CallbackError" in result.metadata["callback_error"]
    assert "'started'" in result.metadata["callback_error"]
    assert len(calls) == 1
    assert task.status is TaskStatus.COMPLETED
    assert seen == ["started", "completed"]


def test_callback_raising_on_completed_keeps_the_success(
    executor: Executor,
    make_task: Any,
    context: Context,
    run_via: Any,
    run_mode: str,
    calls: list[Any],
) -> None:
    """An on_progress raising at 'completed' leaves the success and its output as they are."""
    seen: list[str] = []
    task = make_task("echo", text="x")
    result = run_via(executor, run_mode, task, context, on_progress=raising_on("completed", seen))
    assert result.success is True
    assert result.output == "x"
    assert "'completed'" in result.metadata["callback_error"]
    assert len(calls) == 1
    assert task.status is TaskStatus.COMPLETED


def test_callback_raising_on_progress_keeps_the_success(
    executor: Executor, make_task: Any, context: Context, run_via: Any, run_mode: str
) -> None:
    """An on_progress raising at 'progress' (from inside the tool) leaves the tool running."""
    seen: list[str] = []
    result = run_via(
        executor, run_mode, make_task("progress"), context, on_progress=raising_on("progress", seen)
    )
    assert result.success is True
    assert result.output == "done"
    assert "'progress'" in result.metadata["callback_error"]


def test_callback_raising_on_failed_keeps_the_original_error(
    executor: Executor, make_task: Any, context: Context
) -> None:
    """An on_progress raising at 'failed' leaves the tool's error and notes the callback."""
    seen: list[str] = []
    result = executor.execute_task(
        make_task("fail", message="original"), context, on_progress=raising_on("failed", seen)
    )
    assert result.error == "original"
    assert "on_progress callback raised" in result.metadata["callback_error"]


# -- monitoring methods --------------------------------------------------------------------


def test_running_task_is_visible_while_it_runs(
    executor: Executor, make_task: Any, context: Context, gate: Any
) -> None:
    """get_running_tasks and get_task_status report a task while its tool runs."""
    task = make_task("blocked")

    async def scenario() -> TaskResult:
        pending = asyncio.ensure_future(executor.execute_async(task, context))
        assert await asyncio.to_thread(gate.wait_entered, 1)
        assert executor.get_running_tasks() == [task]
        assert executor.get_task_status(task.id) is TaskStatus.RUNNING
        assert executor.get_metrics(task.id) is not None
        assert executor.get_metrics(task.id).outcome is None  # type: ignore[union-attr]
        gate.release.set()
        return await pending

    assert asyncio.run(scenario()).success
    assert executor.get_running_tasks() == []
    assert executor.get_task_status(task.id) is TaskStatus.COMPLETED


def test_get_task_status_of_unknown_id_is_none(executor: Executor) -> None:
    """get_task_status returns None for an id it never saw."""
    assert executor.get_task_status("never-seen") is None


def test_get_metrics_of_a_finished_task(
    executor: Executor, make_task: Any, context: Context
) -> None:
    """get_metrics returns the ExecutionMetrics of a finished task; None for an unknown id."""
    task = make_task("echo", text="x")
    executor.execute_task(task, context)
    metrics = executor.get_metrics(task.id)
    assert isinstance(metrics, ExecutionMetrics)
    assert metrics.task_id == task.id
    assert metrics.outcome == "success"
    assert executor.get_metrics("never-seen") is None


def test_get_all_metrics_lists_every_task_run(
    executor: Executor, make_task: Any, context: Context
) -> None:
    """get_all_metrics returns one entry per task run, oldest first."""
    assert executor.get_all_metrics() == []
    tasks = [make_task("echo", text=str(i)) for i in range(3)]
    for task in tasks:
        executor.execute_task(task, context)
    assert [m.task_id for m in executor.get_all_metrics()] == [t.id for t in tasks]


def test_monitoring_disabled_hides_records(
    make_executor: Any, make_task: Any, context: Context
) -> None:
    """With enable_monitoring=False the monitoring methods return [] / None."""
    executor = make_executor(enable_monitoring=False)
    task = make_task("echo", text="x")
    assert executor.execute_task(task, context).success
    assert executor.get_running_tasks() == []
    assert executor.get_task_status(task.id) is None
    assert executor.get_metrics(task.id) is None
    assert executor.get_all_metrics() == []


def test_monitoring_disabled_still_counts_aggregates(
    make_executor: Any, make_task: Any, context: Context
) -> None:
    """With monitoring off the store still counts the outcome (for Prometheus)."""
    store = MetricStore()
    executor = make_executor(enable_monitoring=False, store=store)
    executor.execute_task(make_task("echo"), context)
    [echo] = [t for t in store.snapshot().tools if t.tool == "echo"]
    assert echo.outcomes["success"].count == 1


# -- lifecycle -----------------------------------------------------------------------------


def test_context_manager_returns_the_executor_and_shuts_down(
    registry: ToolRegistry, make_task: Any, context: Context
) -> None:
    """'with Executor(...) as e' yields the executor and shuts it down on exit."""
    with Executor(registry, store=MetricStore(), register_prometheus=False) as executor:
        assert isinstance(executor, Executor)
        assert executor.execute_task(make_task("echo"), context).success
    assert executor.is_shutdown


def test_context_manager_shuts_down_when_the_block_raises(registry: ToolRegistry) -> None:
    """The executor is shut down even when the with-block raises (and the error propagates)."""
    executor = Executor(registry, store=MetricStore(), register_prometheus=False)
    with pytest.raises(KeyError), executor:
        raise KeyError("boom")
    assert executor.is_shutdown


def test_shutdown_twice_is_harmless(executor: Executor) -> None:
    """Calling shutdown() again (with or without wait) does nothing more."""
    executor.shutdown()
    executor.shutdown()
    executor.shutdown(wait=False)
    assert executor.is_shutdown


def test_shutdown_lets_queued_work_finish(
    make_executor: Any, make_task: Any, context: Context, gate: Any
) -> None:
    """shutdown(wait=True) runs tasks already queued before returning."""
    executor = make_executor(max_workers=1)
    tasks = [make_task("blocked"), make_task("echo", text="queued")]

    async def scenario() -> list[TaskResult]:
        pending = asyncio.ensure_future(executor.execute_parallel(tasks, context))
        assert await asyncio.to_thread(gate.wait_entered, 1)
        gate.release.set()
        await asyncio.to_thread(executor.shutdown, True)
        return await pending

    results = asyncio.run(scenario())
    assert [r.success for r in results] == [True, True]


# -- the reference's own examples ----------------------------------------------------------


def test_reference_example_context_manager(
    registry: ToolRegistry, make_task: Any, context: Context
) -> None:
    """The context-manager example of execution-api.md runs as written."""
    task = make_task("echo", text="hi")
    with Executor(registry, max_workers=4, store=MetricStore(), register_prometheus=False) as (
        executor
    ):
        result = executor.execute_task(task, context)
    assert result.success


def test_reference_example_execute_async(
    executor: Executor, make_task: Any, context: Context
) -> None:
    """'result = asyncio.run(executor.execute_async(task, context))' runs as written."""
    task = make_task("echo", text="hi")
    result = asyncio.run(executor.execute_async(task, context))
    assert result.success
    assert result.output == "hi"


def test_reference_example_execute_parallel(
    executor: Executor, make_task: Any, context: Context, capsys: pytest.CaptureFixture[str]
) -> None:
    """The execute_parallel example prints one line per task, in input order."""
    tasks = [make_task("echo", text="a"), make_task("fail"), make_task("echo", text="c")]
    results = asyncio.run(executor.execute_parallel(tasks, context))
    for r in results:
        print(f"Task {r.task_id[:8]}: success={r.success}, time={r.execution_time_seconds:.2f}s")
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith(f"Task {tasks[0].id[:8]}: success=True, time=")
    assert lines[1].startswith(f"Task {tasks[1].id[:8]}: success=False, time=")


def test_reference_example_execute_with_retry(
    executor: Executor, make_task: Any, context: Context, capsys: pytest.CaptureFixture[str]
) -> None:
    """The execute_with_retry example (retry_delay=0.5) runs and prints the retries used."""
    task = make_task("echo", text="hi")
    result = executor.execute_with_retry(task, context, max_retries=3, retry_delay=0.5)
    print(f"Retries used: {result.metadata.get('retries', 0)}")
    assert result.success
    assert capsys.readouterr().out == "Retries used: 0\n"


def test_reference_imports_work() -> None:
    """The import paths named in execution-api.md and supporting-api.md resolve."""
    from laios import Context as TopContext
    from laios import Task as TopTask
    from laios import TaskResult as TopResult
    from laios import TaskStatus as TopStatus
    from laios.execution.monitor import get_execution_monitor, get_performance_monitor

    assert (TopTask, TopStatus, TopResult, TopContext) == (Task, TaskStatus, TaskResult, Context)
    assert callable(get_execution_monitor)
    assert callable(get_performance_monitor)


def test_tool_raising_system_exit_gives_failed_result(
    registry: ToolRegistry, make_executor: Any, make_task: Any, context: Context
) -> None:
    """A tool calling sys.exit fails its task; the caller's process is not exited."""
    from laios.tools.base import create_simple_tool

    def leave() -> None:
        raise SystemExit(2)

    registry.register_tool(create_simple_tool("leave", "Calls sys.exit.", leave))
    executor = make_executor()
    result = executor.execute_task(make_task("leave"), context)
    assert result.success is False
    assert result.metadata["error_type"] == "SystemExit"


def test_async_tool_runs_from_inside_a_running_event_loop(
    executor: Executor, make_task: Any, context: Context
) -> None:
    """execute_task of an async tool works when called from code inside an event loop."""

    async def caller() -> TaskResult:
        return executor.execute_task(make_task("async_echo", text="nested"), context)

    result = asyncio.run(caller())
    assert result.success, result.error
    assert result.output == "nested"


def test_nested_execution_keeps_the_outer_task_context(
    registry: ToolRegistry, make_executor: Any, make_task: Any, context: Context
) -> None:
    """A tool running another task through the executor still reports to its own task."""
    from laios.execution.task_context import current_task
    from laios.tools.base import create_simple_tool

    executor = make_executor()
    inner = make_task("echo", text="inner")

    def outer() -> str:
        before = current_task()
        executor.execute_task(inner, context)
        after = current_task()
        assert after is before
        after.checkpoint("after-inner")  # type: ignore[union-attr]
        return "outer done"

    registry.register_tool(create_simple_tool("outer", "Runs a nested task.", outer))
    task = make_task("outer")
    result = executor.execute_task(task, context)
    assert result.success, result.error
    outer_points = [c["name"] for c in executor.get_metrics(task.id).checkpoints]  # type: ignore[union-attr]
    inner_points = [c["name"] for c in executor.get_metrics(inner.id).checkpoints]  # type: ignore[union-attr]
    assert outer_points == ["started", "after-inner", "finished"]
    assert inner_points == ["started", "finished"]


class DuckTool:
    """A tool that is not a BaseTool but has the same execute() contract."""

    name = "duck"
    description = "Quacks."

    def execute(self, **kwargs: Any) -> Any:
        from laios.tools.base import ToolOutput

        return ToolOutput(success=True, data="quack")


class DuckRegistry:
    """A registry-like object: the constructor accepts anything with get_tool()."""

    def get_tool(self, name: str) -> Any:
        return DuckTool() if name == "duck" else None


@pytest.mark.parametrize("mode", ["task", "task_timeout", "async", "parallel", "retry"])
def test_registry_like_object_with_plain_tools(
    make_executor: Any, make_task: Any, context: Context, run_via: Any, mode: str
) -> None:
    """A registry-like object whose tools only implement execute() runs them."""
    executor = make_executor(tool_registry=DuckRegistry())
    result = run_via(executor, mode, make_task("duck"), context)
    assert result.success, result.error
    assert result.output == "quack"
