"""Quickstart: define a tool, run tasks with an Executor, and read what was recorded.

Shows ``execute_task`` (success, a failing tool, an unknown tool), ``execute_with_retry``,
the result metadata and the per-task metrics the executor keeps.

Run it with::

    python examples/quickstart.py
"""

from __future__ import annotations

from laios import Context, Task
from laios.execution.executor import Executor, ResourceLimits
from laios.tools.base import BaseTool
from laios.tools.registry import ToolRegistry


class Greet(BaseTool):
    """Says hello to someone."""

    name = "greet"
    description = "Says hello."

    def _execute(self, **kwargs: object) -> str:
        who = kwargs.get("who")
        if not who:
            raise ValueError("nobody to greet: pass who=...")
        return f"hello, {who}"


def main() -> None:
    registry = ToolRegistry()
    registry.register_tool(Greet)
    context = Context(session_id="session-1", user_id="user-1")

    with Executor(registry, ResourceLimits(timeout_seconds=30), max_workers=4) as executor:
        task = Task(
            plan_id="plan-1", description="greet", tool_name="greet", parameters={"who": "world"}
        )
        result = executor.execute_task(task, context)
        print(f"success={result.success} output={result.output!r} status={task.status.value}")
        print(f"metadata: {result.metadata}")

        failing = Task(plan_id="plan-1", description="greet nobody", tool_name="greet")
        failed = executor.execute_task(failing, context)
        print(f"failed: error={failed.error!r} error_type={failed.metadata['error_type']}")

        unknown = Task(plan_id="plan-1", description="typo", tool_name="gret")
        rejected = executor.execute_task(unknown, context)
        print(f"unknown tool: {rejected.error!r} outcome={rejected.metadata['outcome']}")

        retried = executor.execute_with_retry(task, context, max_retries=3, retry_delay=0.5)
        print(f"Retries used: {retried.metadata.get('retries', 0)}")

        metrics = executor.get_metrics(task.id)
        assert metrics is not None
        names = [checkpoint["name"] for checkpoint in metrics.checkpoints]
        print(f"metrics of {task.id[:8]}: outcome={metrics.outcome} checkpoints={names}")
        print(f"tasks recorded by this executor: {len(executor.get_all_metrics())}")


if __name__ == "__main__":
    main()
