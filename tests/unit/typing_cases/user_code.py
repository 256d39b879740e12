"""A service's own code against laios's public API, as the docs write it.

tests/unit/test_user_typing.py type-checks this file with ``mypy --strict`` (as a user's module
importing the installed package) and runs :func:`main`, so every case is real, working code.
Each block below is a documented usage that the shipped annotations once rejected.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any, TypedDict

from pydantic import Field

from laios import Context, Task
from laios.execution.executor import ExecutionMetrics, Executor, TaskMonitor
from laios.execution.monitor import ExecutionMonitor, PerformanceMonitor, ProgressTracker
from laios.execution.store import MetricStore
from laios.execution.task_context import require_current_task
from laios.tools.base import BaseTool, ToolInput, ToolOutput, create_simple_tool
from laios.tools.registry import ToolLookup, ToolRegistry


class ReserveInput(ToolInput):
    """Parameters of the ``reserve`` tool."""

    item: str = Field(description="What to reserve")
    quantity: int = Field(1, ge=1)


class Reserve(BaseTool):
    """An input model, and a ``_validate`` hook that takes it (docs/reference/tools.md)."""

    name = "reserve"
    description = "Reserves items."
    input_model = ReserveInput

    def _validate(self, input_data: ReserveInput) -> None:
        if input_data.item == "kiwi":
            raise KeyError(f"unknown item {input_data.item!r}")

    def _execute(self, input_data: ReserveInput) -> ToolOutput:
        return ToolOutput(success=True, data=f"{input_data.quantity} {input_data.item}")


class Loaded(TypedDict):
    """What the ``load`` tool records at its checkpoint."""

    rows: int
    table: str


class Load(BaseTool):
    """Checkpoint data given as any mapping (a TypedDict, a read-only view), as documented."""

    name = "load"
    description = "Loads rows."

    def _execute(self, **kwargs: Any) -> str:
        task = require_current_task()
        task.progress(100 * Fraction(1, 3), "a third")  # any real number, as documented
        loaded: Loaded = {"rows": 3, "table": str(kwargs["table"])}
        task.checkpoint("loaded", loaded)
        totals: Mapping[str, int] = {"rows": 3}
        task.checkpoint("totals", totals)
        return "loaded"


class Lookup(BaseTool):
    """A category given as its value, which docs/reference/tools.md allows next to the enum."""

    name = "lookup"
    description = "Looks a key up."
    category = "data"

    def _execute(self, key: str) -> str:
        return key.upper()


def summarise(text: str) -> str:
    """The function of a simple tool, whose category is given as a value too."""
    return text[:10]


def categories() -> list[str]:
    """Tools declared with category values; the instances hold the enum."""
    tools = [Lookup(), create_simple_tool("summarise", "Summarises.", summarise, category="data")]
    return [f"{tool.name}: {tool.get_schema()['category']}" for tool in tools]


async def fetch_page(url: str) -> str:
    """The coroutine function of a simple tool (docs/reference/tools.md)."""
    await asyncio.sleep(0)
    return f"<html from {url}>"


def simple_tools() -> list[str]:
    """An async function gives a tool with ``execute_async``; a lambda still gives a tool."""
    fetcher = create_simple_tool("fetch", "Fetches a page.", fetch_page)
    fetched = asyncio.run(fetcher.execute_async(url="https://example.org"))
    registry = ToolRegistry()
    registry.register_tool(create_simple_tool("double", "Doubles a number.", lambda n: 2 * n))
    doubled = registry.execute_tool("double", n=21)
    return [str(fetched.data), str(doubled.data)]


def checkpoints_outside_a_run() -> list[str]:
    """Checkpoints on metrics and a monitor of one's own, with mapping data."""
    totals: Mapping[str, int] = {"rows": 1}
    metrics = ExecutionMetrics("job-1")
    metrics.checkpoint("read", totals)
    monitor = TaskMonitor()
    task = Task(plan_id="p", description="d", tool_name="load")
    monitor.start_monitoring(task)
    monitor.checkpoint(task.id, "read", totals)
    watched = monitor.get_metrics(task.id)
    names = [point["name"] for point in metrics.checkpoints]
    return names + ([point["name"] for point in watched.checkpoints] if watched else [])


class ToolsByName:
    """A registry of one's own: anything with ``get_tool(name)`` (docs/reference/executor.md)."""

    def __init__(self, *tools: BaseTool) -> None:
        self._tools = {tool.name: tool for tool in tools}

    def get_tool(self, name: str) -> BaseTool | None:
        return self._tools.get(name)


class AuditedRegistry(ToolRegistry):
    """A ToolRegistry subclass; the executor's ``tool_registry`` keeps its type."""

    def registered(self) -> list[str]:
        return [tool.name for tool in self.list_tools()]


def run_reserve(executor: Executor[ToolLookup]) -> str:
    """Code that takes an executor over any registry."""
    task = Task(plan_id="p", description="d", tool_name="reserve", parameters={"item": "pear"})
    result = executor.execute_task(task, Context(session_id="s", user_id="u"))
    return str(result.output)


def own_registries() -> list[str]:
    """Executors over a registry-like object and over a registry subclass."""
    said: list[str] = []
    with Executor(ToolsByName(Reserve()), store=MetricStore(), register_prometheus=False) as own:
        said.append(run_reserve(own))
    audited = AuditedRegistry()
    audited.register_tool(Reserve)
    with Executor(audited, store=MetricStore(), register_prometheus=False) as executor:
        executor.tool_registry.register_tool(Load)
        said.append(" ".join(executor.tool_registry.registered()))
        said.append(tool_names(executor))
    return said


def tool_names(executor: Executor) -> str:
    """Code written for the usual executor (a bare ``Executor`` is one over a ToolRegistry)."""
    return " ".join(tool.name for tool in executor.tool_registry.list_tools())


def progress_of_ones_own() -> list[str]:
    """Progress recorded by hand (docs/reference/monitor.md): a status given as its value,
    and details given as any mapping."""
    counts: Mapping[str, int] = {"rows": 10}
    tracker = ProgressTracker()
    update = tracker.update_progress("job-1", "in_progress", 50.0, "half", details=counts)
    monitor = ExecutionMonitor()
    monitor.update_task_progress("job-2", percent=75, details=counts)
    latest = monitor.get_progress("job-2")
    said = [f"{update.status.value} {update.details['rows']}"]
    said += [f"{latest.progress_percent:.0f} {latest.details['rows']}"] if latest else []
    monitor.update_task_progress("job-3", Fraction(200, 3))  # any real number, as documented
    tracker.update_progress("job-3", "completing", Fraction(199, 2))
    performance = PerformanceMonitor()
    performance.record_metric("job-3", "hit_ratio", Fraction(3, 4))
    thirds = monitor.get_progress("job-3")
    percent = thirds.progress_percent if thirds else 0.0
    ratio = performance.get_metric_summary("job-3", "hit_ratio")["avg"]
    return [*said, f"{percent:.1f} {ratio}"]


class ImportTask(Task):
    """A service's own kind of task."""


def run_batches(executor: Executor, batch: Sequence[Task]) -> list[str]:
    """A batch given as any sequence of tasks, or a list of a Task subclass, as documented
    (``execute_parallel`` takes any iterable; results come back in its order)."""
    context = Context(session_id="s", user_id="u")
    imports = [
        ImportTask(plan_id="p", description="d", tool_name="load", parameters={"table": "a"})
    ]
    said: list[str] = []
    for tasks in (batch, tuple(batch), imports):
        results = asyncio.run(executor.execute_parallel(tasks, context))
        said.append(" ".join(str(result.output) for result in results))
    return said


def main() -> list[str]:
    """Run every tool above once through an executor; return what each run said."""
    registry = ToolRegistry()
    registry.register_tools([Reserve, Load])
    context = Context(session_id="s", user_id="u")
    said: list[str] = []
    with Executor(registry, store=MetricStore(), register_prometheus=False) as executor:
        runs: list[tuple[str, dict[str, object]]] = [
            ("reserve", {"item": "apple", "quantity": 2}),
            ("reserve", {"item": "kiwi"}),
            ("load", {"table": "orders"}),
        ]
        for tool_name, parameters in runs:
            task = Task(plan_id="p", description="d", tool_name=tool_name, parameters=parameters)
            result = executor.execute_task(task, context)
            said.append(str(result.output) if result.success else f"failed: {result.error}")
            metrics = executor.get_metrics(task.id)
            if tool_name == "load" and metrics is not None:
                said.append(" ".join(point["name"] for point in metrics.checkpoints))
        batch = [
            Task(plan_id="p", description="d", tool_name="reserve", parameters={"item": "fig"})
        ]
        said += run_batches(executor, batch)
    return (
        said
        + checkpoints_outside_a_run()
        + categories()
        + simple_tools()
        + own_registries()
        + progress_of_ones_own()
    )


if __name__ == "__main__":
    print(main())
