"""A ``KeyboardInterrupt`` or ``SystemExit`` raised in the executor's own code while a
synchronous tool runs on the caller's thread (``execute_task`` with no timeout).

On Python 3.10 a real Ctrl-C lands wherever the main thread is, also in the executor's own code
around the tool (while the task is recorded, or while its outcome is reported). It used to
escape and leave the task ``running`` in the store for ever, so that a later
``shutdown(wait=True)``, which waits for the tasks on their callers' threads, never returned. The
task now ends ``cancelled`` (the caller was interrupted), the exception goes on, and the executor
stays usable.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from store_fakes import ArmedClock

from laios.core.types import Context, Task, TaskStatus
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import BaseTool
from laios.tools.registry import ToolRegistry

#: Longest a call may take: a call that hangs fails instead.
GUARD = 5.0


class Arming(BaseTool):
    name = "arming"
    description = "Arms the store's clock, then returns."

    clock: ArmedClock
    exc: BaseException

    def _execute(self, **kwargs: Any) -> Any:
        self.clock.armed = self.exc
        return "done"


class Plain(BaseTool):
    name = "plain"
    description = "Returns."

    def _execute(self, **kwargs: Any) -> Any:
        return "plain"


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_an_interrupt_in_the_executors_code_ends_the_inline_task_cancelled(
    exc_type: type[BaseException],
) -> None:
    clock = ArmedClock()
    store = MetricStore(clock=clock)
    arming = Arming()
    arming.clock = clock
    arming.exc = exc_type()
    registry = ToolRegistry()
    registry.register_tools([arming, Plain()])
    executor = Executor(registry, store=store, register_prometheus=False)
    context = Context(session_id="s", user_id="u")
    events: list[str] = []
    task = Task(plan_id="p", description="d", tool_name="arming")
    try:
        # The clock is read to report the outcome's execution time to on_progress: the
        # interrupt lands there, after the tool returned and before the task is recorded.
        with pytest.raises(exc_type):
            executor.execute_task(task, context, on_progress=lambda e, d: events.append(e))
        assert events[0] == "started"
        assert "completed" not in events
        assert task.status is TaskStatus.CANCELLED
        assert task.error == f"Task '{task.id}' was cancelled: the caller was interrupted"
        assert executor.get_running_tasks() == []
        assert all(t.in_flight == 0 for t in store.snapshot().tools)
        # Still usable.
        again = Task(plan_id="p", description="d", tool_name="plain")
        assert executor.execute_task(again, context).output == "plain"
    finally:
        # A shutdown from another thread waits for the tasks on their callers' threads: it
        # must not wait for the interrupted one.
        closer = threading.Thread(target=executor.shutdown, daemon=True)
        closer.start()
        closer.join(GUARD)
    assert not closer.is_alive(), "shutdown(wait=True) waited for the interrupted task"
