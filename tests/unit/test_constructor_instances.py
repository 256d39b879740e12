"""Executor options that take an object refuse the object's class (a call's parentheses
forgotten) at the constructor, naming the option, instead of failing every task later."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry

from laios.core.types import Context, Task
from laios.execution.executor import Executor, ResourceLimits, TaskMonitor
from laios.execution.runners import ThreadRunner
from laios.execution.store import MetricStore
from laios.tools.base import BaseTool, create_simple_tool
from laios.tools.registry import ToolRegistry


def test_constructor_refuses_the_registry_class() -> None:
    """Executor(ToolRegistry) is refused, saying to pass an instance."""
    with pytest.raises(TypeError, match=r"tool_registry .* the class ToolRegistry itself"):
        Executor(ToolRegistry, store=MetricStore(), register_prometheus=False)  # type: ignore[arg-type]


def test_constructor_refuses_a_registry_whose_get_tool_is_not_callable() -> None:
    """A registry whose get_tool is no method (get_tool = None) is refused."""

    class NoLookup:
        get_tool = None

    with pytest.raises(TypeError, match="tool_registry"):
        Executor(NoLookup(), store=MetricStore(), register_prometheus=False)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("option", "cls"),
    [
        ("tracer_provider", TracerProvider),
        ("meter_provider", MeterProvider),
        ("prometheus_registry", CollectorRegistry),
        ("runner", ThreadRunner),
    ],
)
def test_constructor_refuses_a_class_for_an_object_option(
    registry: ToolRegistry, option: str, cls: type
) -> None:
    """tracer_provider, meter_provider, prometheus_registry and runner given as a class are
    refused with a TypeError that names the option and the class."""
    kwargs: dict[str, Any] = {"store": MetricStore(), "register_prometheus": False, option: cls}
    if option == "prometheus_registry":
        kwargs["register_prometheus"] = True
    with pytest.raises(TypeError, match=rf"{option} .* the class {cls.__name__} itself"):
        Executor(registry, **kwargs)


@pytest.mark.parametrize(
    ("option", "cls"), [("resource_limits", ResourceLimits), ("store", MetricStore)]
)
def test_constructor_refuses_the_class_of_limits_or_a_store(
    registry: ToolRegistry, option: str, cls: type
) -> None:
    """resource_limits=ResourceLimits and store=MetricStore are refused with a message that
    names the class and says to pass an instance, not that a metaclass or ``type`` was given."""
    kwargs: dict[str, Any] = {"store": MetricStore(), "register_prometheus": False, option: cls}
    with pytest.raises(TypeError, match=rf"{option} .* the class {cls.__name__} itself"):
        Executor(registry, **kwargs)


def test_assigned_limits_and_a_monitors_store_refuse_their_class(registry: ToolRegistry) -> None:
    """The resource_limits setter and TaskMonitor(store) say the same of a class."""
    executor = Executor(registry, store=MetricStore(), register_prometheus=False)
    try:
        with pytest.raises(TypeError, match=r"the class ResourceLimits itself"):
            executor.resource_limits = ResourceLimits  # type: ignore[assignment]
    finally:
        executor.shutdown()
    with pytest.raises(TypeError, match=r"store .* the class MetricStore itself"):
        TaskMonitor(MetricStore)  # type: ignore[arg-type]


def test_constructor_refuses_a_registry_whose_get_tool_is_async() -> None:
    """A registry whose get_tool is ``async def`` is refused at the constructor, saying so:
    each task would otherwise fail on a coroutine that is never awaited."""

    class AsyncLookup:
        async def get_tool(self, name: str) -> BaseTool | None:
            return None

    with pytest.raises(TypeError, match=r"tool_registry\.get_tool is an async function"):
        Executor(AsyncLookup(), store=MetricStore(), register_prometheus=False)  # type: ignore[arg-type]


def test_a_registry_class_with_a_class_level_get_tool_is_still_taken(context: Context) -> None:
    """A class whose get_tool is a classmethod (or a staticmethod) is a working registry as it
    is: it is accepted, and its tools run."""
    echo = create_simple_tool("echo", "Echoes.", lambda text: text)

    class ByClass:
        @classmethod
        def get_tool(cls, name: str) -> BaseTool | None:
            return echo if name == "echo" else None

    class ByStatic:
        @staticmethod
        def get_tool(name: str) -> BaseTool | None:
            return echo if name == "echo" else None

    for lookup in (ByClass, ByStatic):
        executor = Executor(lookup, store=MetricStore(), register_prometheus=False)
        task = Task(plan_id="p", description="d", tool_name="echo", parameters={"text": "hi"})
        result = executor.execute_task(task, context)
        executor.shutdown()
        assert result.output == "hi", result.error


class _StatsFailingRunner(ThreadRunner):
    """A working runner whose ``stats`` raises (it cannot count its workers now)."""

    @property
    def stats(self) -> Any:
        raise RuntimeError("the runner cannot count its workers")


def test_a_runner_whose_stats_raise_is_taken(
    context: Context, caplog: pytest.LogCaptureFixture
) -> None:
    """Whether an object is a runner is read from its type, never by calling its attributes:
    a runner whose ``stats`` raises is taken on every Python version (3.12 and later read no
    attribute for the check), its tasks run, and the store leaves it out of the gauges."""
    echo = create_simple_tool("echo", "Echoes.", lambda text: text)
    tools = ToolRegistry()
    tools.register_tool(echo)
    store = MetricStore()
    executor = Executor(
        tools, store=store, register_prometheus=False, runner=_StatsFailingRunner(1, 1)
    )
    try:
        task = Task(plan_id="p", description="d", tool_name="echo", parameters={"text": "hi"})
        assert executor.execute_task(task, context).output == "hi"
        with caplog.at_level("WARNING", logger="laios.execution.store"):
            assert store.snapshot().workers == 0
        assert "_StatsFailingRunner" in caplog.text
    finally:
        executor.shutdown()
