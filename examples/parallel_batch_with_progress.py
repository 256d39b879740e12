"""A parallel batch with progress reporting, per-task timeouts and a summary.

Tools report progress from inside (``current_task().progress``); an ``on_progress`` callback
draws a one-line status per event, a progress listener on the execution monitor counts the
updates, and the batch ends with per-outcome counts and ``ExecutionStats``. One task fails and
one times out; neither affects the others, and results come back in input order.

Run it with::

    python examples/parallel_batch_with_progress.py
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from typing import Any

from laios import Context, Task
from laios.execution.executor import Executor
from laios.execution.monitor import ExecutionMonitor
from laios.execution.store import MetricStore
from laios.execution.task_context import current_task
from laios.tools.base import BaseTool
from laios.tools.registry import ToolRegistry


class Transcode(BaseTool):
    """Pretends to transcode a video in a few steps."""

    name = "transcode"
    description = "Transcodes a video file."

    def _execute(self, **kwargs: Any) -> str:
        task = current_task()
        file: str = kwargs["file"]
        steps = int(kwargs.get("steps", 4))
        for step in range(1, steps + 1):
            if task is not None:
                task.raise_if_cancelled()  # true after a timeout too: stop, free the thread
            if file.endswith(".broken"):
                raise RuntimeError(f"corrupt frame in {file}")
            time.sleep(0.02)
            if task is not None:
                task.progress(100 * step / steps, f"step {step}/{steps}")
        if task is not None:
            task.checkpoint("written", {"file": file})
        return file.replace(".mov", ".mp4")


class Printer:
    """An ``on_progress`` callback; called from several worker threads at once."""

    def __init__(self, names: dict[str, str]) -> None:
        self._names = names
        self._lock = threading.Lock()
        self.events: Counter[str] = Counter()

    def __call__(self, event: str, data: dict[str, Any]) -> None:
        with self._lock:
            self.events[event] += 1
            name = self._names[data["task_id"]]
            if event == "progress":
                if data["percent"] in (50.0, 100.0):
                    print(f"  {name:<12} {data['percent']:5.1f}% {data['message']}")
            elif event != "started":
                print(f"  {name:<12} {event}")


def main() -> None:
    registry = ToolRegistry()
    registry.register_tool(Transcode)
    store = MetricStore()
    monitor = ExecutionMonitor(store)
    updates: Counter[str] = Counter()
    monitor.add_progress_listener(lambda update: updates.update([update.status.value]))

    files = ["intro.mov", "talk.mov", "demo.broken", "outro.mov", "q-and-a.mov"]
    tasks = [
        Task(
            plan_id="conference",
            description=f"transcode {f}",
            tool_name="transcode",
            parameters={"file": f},
        )
        for f in files
    ]
    tasks.append(
        Task(
            plan_id="conference",
            description="transcode keynote",
            tool_name="transcode",
            parameters={"file": "keynote.mov", "steps": 100},  # about 2 s: past the timeout
        )
    )
    printer = Printer({task.id: task.parameters["file"] for task in tasks})
    context = Context(session_id="batch-1", user_id="editor")

    with Executor(registry, max_workers=3, store=store, register_prometheus=False) as executor:
        started = time.monotonic()
        results = asyncio.run(
            executor.execute_parallel(tasks, context, timeout=0.5, on_progress=printer)
        )
        elapsed = time.monotonic() - started

    print(f"{len(tasks)} tasks on 3 workers in {elapsed:.2f}s")
    for task, result in zip(tasks, results, strict=True):
        assert result.task_id == task.id  # results come back in input order
        shown = result.output if result.success else result.error
        print(f"  {task.parameters['file']:<12} {result.metadata['outcome']:<8} {shown}")
    print("outcomes:", dict(Counter(r.metadata["outcome"] for r in results)))
    print("on_progress events:", dict(printer.events))
    print("monitor updates:", dict(updates))
    stats = monitor.get_execution_stats(tasks)
    print(
        f"stats: completed={stats.completed_tasks} failed={stats.failed_tasks} "
        f"success_rate={stats.success_rate:.2f}"
    )


if __name__ == "__main__":
    main()
