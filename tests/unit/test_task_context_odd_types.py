"""Values whose class's name cannot be read (a metaclass's ``__name__`` property raises) or is
huge, handed to a tool's ``TaskContext``: a wrong argument raises the documented
``TypeError`` with a short message, and checkpoint data holding such a value is kept (a
mapping that cannot be read is described by the name its class was created with)."""

from __future__ import annotations

from abc import ABCMeta
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

from laios.core.types import Context, Task
from laios.execution._logs import WarningLimiter
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.execution.task_context import TaskContext, require_current_task
from laios.tools.base import BaseTool
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="s", user_id="u")


class HidesNames(ABCMeta):
    """A metaclass whose classes' ``__name__`` cannot be read."""

    @property
    def __name__(cls) -> str:  # type: ignore[override]
        raise RuntimeError("no name here")


class Nameless(metaclass=HidesNames):
    """A value whose class's name cannot be read."""


class NamelessMapping(Mapping[str, Any], metaclass=HidesNames):
    """A mapping whose class's name cannot be read and that cannot be read either (a closed
    store's)."""

    def __getitem__(self, key: str) -> Any:
        raise OSError("closed")

    def __iter__(self) -> Iterator[str]:
        raise OSError("closed")

    def __len__(self) -> int:
        raise OSError("closed")


class HidesAllNames(type):
    """A metaclass whose classes' ``__name__`` and ``__qualname__`` cannot be read at all."""

    def __getattribute__(cls, name: str) -> Any:
        if name in ("__name__", "__qualname__"):
            raise RuntimeError(f"no {name} here")
        return super().__getattribute__(name)


class Unprintable(metaclass=HidesAllNames):
    """A message or checkpoint name that cannot be printed, of a class that cannot be named."""

    def __str__(self) -> str:
        raise ValueError("no str")

    def __repr__(self) -> str:
        raise ValueError("no repr")


#: A class with a name of 100,000 characters.
Huge = type("Huge" + "x" * 100_000, (), {})


class Events:
    cancel_requested = False

    def __init__(self) -> None:
        self.reports: list[Any] = []

    def progress(self, percent: float, message: str | None, details: dict[str, Any]) -> None:
        self.reports.append(percent)

    def checkpoint(self, name: str, data: Mapping[str, Any] | None) -> None:
        self.reports.append(name)


def raised(call: Callable[[], Any]) -> str:
    """What ``call`` raised, as ``"TypeError: message"`` (not the error itself: the values
    these tests pass defeat the printing of a traceback's arguments)."""
    try:
        call()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return "nothing"


@pytest.mark.parametrize("kind", ["nameless", "huge-name"])
def test_a_wrong_percent_or_checkpoint_data_raises_a_short_type_error(kind: str) -> None:
    value = Nameless() if kind == "nameless" else Huge()
    events = Events()
    task = TaskContext("t", "tool", events)  # type: ignore[arg-type]  (a fake of the protocol)
    percent = raised(lambda: task.progress(value))
    data = raised(lambda: task.checkpoint("n", value))
    assert percent.startswith("TypeError: progress percent must be a number, got "), percent
    assert data.startswith("TypeError: checkpoint data must be a mapping "), data
    assert len(percent) < 300
    assert len(data) < 300
    assert events.reports == []


class KeepsOddData(BaseTool):
    name = "keeps_odd_data"
    description = "Records checkpoints whose data hold values of nameless classes."

    def _execute(self, **kwargs: Any) -> Any:
        task = require_current_task()
        task.checkpoint("values", {"rows": 3, "odd": Nameless()})
        task.checkpoint("mapping", NamelessMapping())
        return "done"


def test_checkpoint_data_with_values_of_nameless_classes_is_kept() -> None:
    registry = ToolRegistry()
    registry.register_tool(KeepsOddData)
    executor = Executor(registry, store=MetricStore(), register_prometheus=False)
    task = Task(plan_id="p", description="odd data", tool_name=KeepsOddData.name)
    try:
        result = executor.execute_task(task, CONTEXT)
        checkpoints = executor.get_metrics(task.id).checkpoints
    finally:
        executor.shutdown()
    assert result.success, result.error
    data = {c["name"]: c["data"] for c in checkpoints}
    assert data["values"]["rows"] == 3
    assert "Nameless object" in data["values"]["odd"]
    assert data["mapping"] == {"…": "<NamelessMapping object>"}


class ReportsUnprintable(BaseTool):
    name = "reports_unprintable"
    description = "Reports a progress message and a checkpoint name that cannot be printed."

    def _execute(self, **kwargs: Any) -> Any:
        task = require_current_task()
        task.progress(40, Unprintable())  # type: ignore[arg-type]
        task.checkpoint(Unprintable())  # type: ignore[arg-type]
        return "done"


def test_an_unprintable_message_of_a_class_that_cannot_be_named_is_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A fresh limiter: the warning naming the class is written (once a minute otherwise).
    monkeypatch.setattr("laios.execution._records._unprintable_warnings", WarningLimiter())
    registry = ToolRegistry()
    registry.register_tool(ReportsUnprintable)
    executor = Executor(registry, store=MetricStore(), register_prometheus=False)
    task = Task(plan_id="p", description="odd text", tool_name=ReportsUnprintable.name)
    messages: list[Any] = []

    def on_progress(event: str, data: dict[str, Any]) -> None:
        if event == "progress":
            messages.append(data["message"])

    try:
        result = executor.execute_task(task, CONTEXT, on_progress=on_progress)
        names = [c["name"] for c in executor.get_metrics(task.id).checkpoints]
    finally:
        executor.shutdown()
    assert result.success, result.error
    assert messages == ["<unprintable message>"]
    assert names == ["started", "<unprintable name>", "finished"]
