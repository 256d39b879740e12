"""A Ctrl-C that reaches the caller of ``execute_task`` after its task was accepted, but before
the task was handed to its runner, ends the task ``cancelled``: it does not stay queued for
ever (shown as running, waited for by every ``shutdown``) with nothing left to run it.

The test lands ``KeyboardInterrupt`` as the executor begins the hand-over (a profile function
raising it as that function is called, where a pending signal is handled).
"""

from __future__ import annotations

import sys
import threading
from types import FrameType
from typing import Any

import pytest

from laios.core.types import Context, Task, TaskStatus
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import create_simple_tool
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="s", user_id="u")


def _interrupt_as(name: str) -> Any:
    """A profile function raising KeyboardInterrupt as the function ``name`` is called."""

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code.co_name == name:
            sys.setprofile(None)
            raise KeyboardInterrupt

    return profile


def test_a_ctrl_c_as_the_hand_over_begins_ends_the_task_cancelled() -> None:
    ran = threading.Event()
    registry = ToolRegistry()
    registry.register_tool(create_simple_tool("work", "Works.", ran.set))
    store = MetricStore()
    executor = Executor(registry, store=store, register_prometheus=False)
    task = Task(plan_id="p", description="d", tool_name="work")
    try:
        sys.setprofile(_interrupt_as("_hand_over"))
        try:
            with pytest.raises(KeyboardInterrupt):
                executor.execute_task(task, CONTEXT, timeout=30)
        finally:
            sys.setprofile(None)
        assert store.snapshot().running == []
        outcomes = {
            outcome: histogram.count
            for tool in store.snapshot().tools
            for outcome, histogram in tool.outcomes.items()
            if histogram.count
        }
        assert outcomes == {"cancelled": 1}
        assert task.status is TaskStatus.CANCELLED
        assert "the caller was interrupted" in (task.error or "")
    finally:
        done = threading.Thread(target=executor.shutdown, kwargs={"wait": True}, daemon=True)
        done.start()
        done.join(10)
    assert not done.is_alive(), "shutdown(wait=True) waited for a task nothing runs"
    assert not ran.is_set()
