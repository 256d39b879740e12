"""A long tool that reports checkpoints and progress, and stops when it is cancelled.

The tool works through a list of files, reporting progress after each one, adding a checkpoint
at the end of each phase, and checking for cancellation between files. The script runs it on a
background thread, watches it through the executor and the global execution monitor, cancels it
part-way, and prints what was recorded. It also cancels a task before it is submitted.

Run it with::

    python examples/checkpoints_progress_cancellation.py
"""

from __future__ import annotations

import threading
import time
from typing import Any

from laios import Context, Task, TaskResult
from laios.execution.executor import Executor
from laios.execution.monitor import get_execution_monitor
from laios.execution.task_context import TaskCancelledError, current_task
from laios.tools.base import BaseTool
from laios.tools.registry import ToolRegistry


class Backup(BaseTool):
    """Copies files one by one; stops cleanly between files when cancelled."""

    name = "backup"
    description = "Backs up a list of files."

    def _execute(self, **kwargs: Any) -> dict[str, Any]:
        files: list[str] = kwargs["files"]
        task = current_task()
        if task is None:  # called directly, outside an executor: nothing to report to
            return {"copied": len(files)}
        task.checkpoint("listed", {"files": len(files)})
        copied = 0
        try:
            for number, name in enumerate(files, start=1):
                task.raise_if_cancelled()
                time.sleep(0.02)  # copy the file
                copied += 1
                task.progress(100 * number / len(files), f"copied {name}", file=name)
        except TaskCancelledError:
            task.checkpoint("interrupted", {"copied": copied})  # clean up, then re-raise
            raise
        task.checkpoint("copied", {"files": copied})
        return {"copied": copied}


def main() -> None:
    registry = ToolRegistry()
    registry.register_tool(Backup)
    context = Context(session_id="nightly", user_id="ops")
    files = [f"file-{n:03}.dat" for n in range(200)]
    task = Task(
        plan_id="nightly", description="backup", tool_name="backup", parameters={"files": files}
    )
    events: list[str] = []
    box: list[TaskResult] = []

    with Executor(registry) as executor:
        worker = threading.Thread(
            target=lambda: box.append(
                executor.execute_task(
                    task, context, on_progress=lambda event, data: events.append(event)
                )
            )
        )
        worker.start()
        monitor = get_execution_monitor()
        deadline = time.monotonic() + 5
        latest = None
        while time.monotonic() < deadline:
            latest = monitor.get_progress(task.id)
            if latest is not None and latest.progress_percent >= 10:
                break
            time.sleep(0.01)
        assert latest is not None, "the backup reported no progress within 5 s"
        running = [t.id for t in executor.get_running_tasks()]
        status = executor.get_task_status(task.id)
        print(f"running now: {running == [task.id]}; status: {status.value if status else None}")
        print(f"progress before cancelling: {latest.progress_percent:.1f}%")
        print(f"cancel_task -> {executor.cancel_task(task.id)}")
        worker.join()

        result = box[0]
        outcome = result.metadata["outcome"]
        print(f"outcome={outcome} status={task.status.value} error={result.error!r}")
        metrics = executor.get_metrics(task.id)
        assert metrics is not None
        for point in metrics.checkpoints:
            print(f"  checkpoint {point['name']:<12} {point['data']}")
        history = monitor.get_progress_history(task.id)
        print(
            f"progress updates: {len(history)}, first {history[0].status.value}, "
            f"last {history[-1].status.value} at {history[-1].progress_percent:.1f}%"
        )
        print(
            f"on_progress events: started={events.count('started')} "
            f"progress={events.count('progress')} last={events[-1]}"
        )
        print(f"cancel_task after it finished -> {executor.cancel_task(task.id)}")

        later = Task(
            id="backup-tomorrow",
            plan_id="nightly",
            description="backup",
            tool_name="backup",
            parameters={"files": files},
        )
        print(f"cancel before submitting -> {executor.cancel_task(later.id)}")
        skipped = executor.execute_task(later, context)
        print(f"that task: outcome={skipped.metadata['outcome']} error={skipped.error!r}")


if __name__ == "__main__":
    main()
