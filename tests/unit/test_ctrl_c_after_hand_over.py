"""A Ctrl-C that reaches the caller of ``execute_task`` after the runner has accepted its task,
but before the caller's wait for it has begun, ends the task ``cancelled``, as one during the
wait does: the tool is not left to run on and be counted as a success.

A signal is handled between two steps of the caller's code, wherever it arrives. The test
lands ``KeyboardInterrupt`` at each C call the caller makes from the moment the runner's
``submit`` returned until it blocks waiting for the task (a profile function raising it as the
call begins), one position per run.
"""

from __future__ import annotations

import sys
import threading
from types import FrameType
from typing import Any

import pytest

from laios.core.types import Context, Task, TaskStatus
from laios.execution.executor import Executor
from laios.execution.runners import Handle, Refusal, RunEvents, ThreadRunner, ToolCall
from laios.execution.store import MetricStore
from laios.tools.base import create_simple_tool
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="s", user_id="u")
#: More C calls than the caller makes between the hand-over and its wait.
MOST_POSITIONS = 60


class Accepting(ThreadRunner):
    """A thread runner that says when its ``submit`` has returned a task it accepted."""

    def __init__(self) -> None:
        super().__init__(max_workers=2, replacement_cap=2)
        self.accepted = threading.Event()

    def submit(self, call: ToolCall, events: RunEvents) -> Handle | Refusal:
        handle = super().submit(call, events)
        self.accepted.set()
        return handle


def _interrupt_at(position: int, runner: Accepting, landed: list[str]) -> Any:
    """A profile function raising KeyboardInterrupt as the ``position``-th C call after the
    hand-over begins (noting in ``landed`` the call's name and the module making it)."""
    calls = 0

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        nonlocal calls
        if event != "c_call" or not runner.accepted.is_set():
            return
        calls += 1
        if calls == position:
            sys.setprofile(None)
            landed.append(getattr(arg, "__name__", repr(arg)))
            landed.append(str(frame.f_globals.get("__name__")))
            raise KeyboardInterrupt

    return profile


def test_a_ctrl_c_anywhere_between_the_hand_over_and_the_wait_ends_the_task_cancelled() -> None:
    release = threading.Event()

    def work() -> str:
        release.wait(10)
        return "done"

    registry = ToolRegistry()
    registry.register_tool(create_simple_tool("work", "Works until released.", work))
    reached_the_wait = False
    for position in range(1, MOST_POSITIONS + 1):
        runner = Accepting()
        store = MetricStore()
        release.clear()
        landed: list[str] = []
        executor = Executor(registry, runner=runner, store=store, register_prometheus=False)
        task = Task(plan_id="p", description="d", tool_name="work")
        try:
            sys.setprofile(_interrupt_at(position, runner, landed))
            try:
                with pytest.raises(KeyboardInterrupt):
                    executor.execute_task(task, CONTEXT, timeout=30)
            finally:
                sys.setprofile(None)
                release.set()
        finally:
            executor.shutdown(wait=True)
        outcomes = {
            outcome: histogram.count
            for tool in store.snapshot().tools
            for outcome, histogram in tool.outcomes.items()
            if histogram.count
        }
        where = f"a Ctrl-C at C call {position} after the hand-over ({landed})"
        assert outcomes == {"cancelled": 1}, where
        assert task.status is TaskStatus.CANCELLED, where
        name, module = landed
        if name == "acquire" and module.startswith("laios."):
            # The caller's wait itself (laios's own call of a lock's acquire, not one inside
            # threading's Event or Condition): every step before it was tried.
            reached_the_wait = True
            break
    assert reached_the_wait, f"the wait was not reached within {MOST_POSITIONS} C calls"
