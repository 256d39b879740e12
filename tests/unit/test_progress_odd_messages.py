"""A progress message that cannot be printed (its ``__str__`` raises) is reported all the
same, as a checkpoint name is: the task's outcome is the tool's, and the message is shown by
its ``repr`` or a placeholder."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.monitor import ExecutionMonitor
from laios.execution.store import MetricStore
from laios.execution.task_context import TaskContext, require_current_task
from laios.tools.base import AsyncBaseTool, BaseTool
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="s", user_id="u")


class ReprOnly:
    """A message whose ``str()`` raises and whose ``repr()`` works."""

    def __str__(self) -> str:
        raise RuntimeError("no str for you")

    def __repr__(self) -> str:
        return "ReprOnly()"


class Unprintable:
    """A message whose ``str()`` and ``repr()`` both raise."""

    def __str__(self) -> str:
        raise RuntimeError("no str for you")

    def __repr__(self) -> str:
        raise RuntimeError("no repr either")


class Reports(BaseTool):
    name = "reports_odd_progress"
    description = "Reports progress with messages that cannot be printed."

    def _execute(self, **kwargs: Any) -> Any:
        task = require_current_task()
        task.progress(40, ReprOnly())
        task.progress(60, Unprintable())
        return "ok"


class ReportsAsync(AsyncBaseTool):
    name = "reports_odd_progress_async"
    description = "Reports progress with messages that cannot be printed, from a coroutine."

    async def _execute_async(self, **kwargs: Any) -> Any:
        task = require_current_task()
        task.progress(40, ReprOnly())
        task.progress(60, Unprintable())
        return "ok"


@pytest.mark.parametrize(
    ("tool", "timeout"),
    [(Reports.name, None), (Reports.name, 30.0), (ReportsAsync.name, None)],
    ids=["inline", "worker-thread", "async"],
)
def test_a_progress_message_that_cannot_be_printed_leaves_the_outcome_alone(
    tool: str, timeout: float | None
) -> None:
    registry = ToolRegistry()
    registry.register_tools([Reports, ReportsAsync])
    store = MetricStore()
    seen: list[Any] = []

    def on_progress(event: str, data: dict[str, Any]) -> None:
        if event == "progress":
            seen.append(data["message"])

    task = Task(plan_id="p", description="d", tool_name=tool)
    with Executor(registry, store=store, register_prometheus=False) as executor:
        result = executor.execute_task(task, CONTEXT, timeout=timeout, on_progress=on_progress)
    assert result.success, result.error
    assert seen == ["ReprOnly()", "<unprintable message>"]
    history = ExecutionMonitor(store).get_progress_history(task.id)
    assert [u.message for u in history if u.progress_percent in (40.0, 60.0)] == seen


class _Events:
    cancel_requested = False

    def __init__(self) -> None:
        self.reports: list[tuple[float, str | None, dict[str, Any]]] = []

    def progress(self, percent: float, message: str | None, details: dict[str, Any]) -> None:
        self.reports.append((percent, message, details))

    def checkpoint(self, name: str, data: Any) -> None:
        pass


def test_a_progress_detail_may_be_named_self() -> None:
    """``details`` are any keyword values: one named ``self`` raised ``TypeError: got multiple
    values for argument 'self'``."""
    events = _Events()
    TaskContext("t", "tool", events).progress(50, "half", self="me", rows=3)
    assert events.reports == [(50.0, "half", {"self": "me", "rows": 3})]


@pytest.mark.parametrize("percent", [True, False, "50", None, Decimal("50"), 1 + 0j])
def test_a_percentage_that_is_not_a_real_number_is_refused(percent: Any) -> None:
    """As documented: a flag, text, ``None``, a ``Decimal`` or a ``complex`` raises
    ``TypeError`` at the call, and nothing is reported."""
    events = _Events()
    with pytest.raises(TypeError, match="progress percent must be a"):
        TaskContext("t", "tool", events).progress(percent, "half")
    assert events.reports == []
