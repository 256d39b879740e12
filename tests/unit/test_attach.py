"""A call whose task is given up while the runner is still accepting it is given up at the
runner too, as soon as the runner hands its handle back (a runner that does not ask the
caller before it starts a call, such as a remote one, would otherwise run it)."""

from __future__ import annotations

import threading
from typing import Any

from laios.core.types import Context, Task, TaskResult
from laios.execution.executor import Executor
from laios.execution.runners import Handle, Refusal, RunEvents, RunnerStats, StopResult, ToolCall
from laios.execution.store import MetricStore
from laios.tools.base import create_simple_tool
from laios.tools.registry import ToolRegistry


class SlowToHandBack:
    """Accepts a call, but hands its handle back only when the test says so."""

    name = "slow-to-hand-back"
    can_stop = True

    def __init__(self) -> None:
        self.accepted = threading.Event()
        self.hand_back = threading.Event()
        self.abandoned: list[Any] = []
        self.stats = RunnerStats(workers=1)

    def submit(self, call: ToolCall, events: RunEvents) -> Handle | Refusal:
        self.accepted.set()
        self.hand_back.wait(10)
        return call

    def abandon(self, handle: Handle) -> StopResult:
        self.abandoned.append(handle)
        return "stopped"

    def shutdown(self, wait: bool = True) -> None:
        pass


def test_a_task_cancelled_while_its_runner_accepts_it_is_given_up_at_the_runner() -> None:
    registry = ToolRegistry()
    registry.register_tool(create_simple_tool("noop", "Does nothing.", lambda: None))
    runner = SlowToHandBack()
    executor = Executor(registry, runner=runner, store=MetricStore(), register_prometheus=False)
    task = Task(plan_id="p", description="d", tool_name="noop")
    results: list[TaskResult] = []
    caller = threading.Thread(
        target=lambda: results.append(
            executor.execute_task(task, Context(session_id="s", user_id="u"), timeout=10)
        )
    )
    caller.start()
    assert runner.accepted.wait(10)
    assert executor.cancel_task(task.id)  # the task is queued: it ends cancelled at once
    runner.hand_back.set()
    caller.join(10)
    assert results
    assert results[0].metadata["outcome"] == "cancelled"
    assert len(runner.abandoned) == 1  # the runner was told to give the call up
    assert runner.abandoned[0].task_id == task.id
