"""A task id running while another run of it waits in the queue is still running for every view:
``is_running``, ``get_task_status`` and ``get_metrics`` agree with ``get_running_tasks``."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

from laios.core.types import Context, Task, TaskStatus
from laios.execution.executor import Executor
from laios.execution.monitor import ExecutionMonitor, ProgressStatus


@contextlib.contextmanager
def _running_and_queued(
    executor: Executor,
    make_task: Callable[..., Task],
    context: Context,
    gate: Any,
    wait_until: Callable[..., bool],
) -> Iterator[None]:
    """Two runs of task ``job-7`` on an executor of one worker: the first running (held at the
    gate), the second waiting in the queue; both end (the gate released) on leaving."""
    runs = [
        threading.Thread(
            target=executor.execute_task,
            args=(make_task("blocked", task_id="job-7"), context),
            kwargs={"timeout": 30},
        )
        for _ in range(2)
    ]
    runs[0].start()
    try:
        assert gate.wait_entered(1, timeout=10)
        runs[1].start()  # waits in the queue for the one worker
        assert wait_until(lambda: executor.store.snapshot().queue_depth == 1, timeout=10)
        yield
    finally:
        gate.release.set()
        for run in runs:
            if run.ident is not None:  # (started)
                run.join(30)


def test_a_queued_rerun_does_not_hide_the_run_in_progress(
    make_executor: Callable[..., Executor],
    make_task: Callable[..., Task],
    context: Context,
    gate: Any,
    wait_until: Callable[..., bool],
) -> None:
    executor = make_executor(max_workers=1)
    with _running_and_queued(executor, make_task, context, gate, wait_until):
        assert [task.id for task in executor.get_running_tasks()] == ["job-7"]
        assert executor.task_monitor.is_running("job-7")
        assert executor.get_task_status("job-7") is TaskStatus.RUNNING
        metrics = executor.get_metrics("job-7")  # the run started last, as documented
        assert metrics is not None
        assert metrics.start_time is not None
    assert not executor.task_monitor.is_running("job-7")


def test_a_checkpoint_goes_to_the_run_in_progress_not_the_queued_rerun(
    make_executor: Callable[..., Executor],
    make_task: Callable[..., Task],
    context: Context,
    gate: Any,
    wait_until: Callable[..., bool],
) -> None:
    """TaskMonitor.checkpoint(id) while a newer run of the id waits in the queue adds it to the
    run in progress, the one get_metrics shows."""
    executor = make_executor(max_workers=1)
    with _running_and_queued(executor, make_task, context, gate, wait_until):
        executor.task_monitor.checkpoint("job-7", "halfway")
        metrics = executor.get_metrics("job-7")
        assert metrics is not None
        assert "halfway" in [point["name"] for point in metrics.checkpoints]


def test_the_execution_monitor_shows_the_run_in_progress_not_the_queued_rerun(
    make_executor: Callable[..., Executor],
    make_task: Callable[..., Task],
    context: Context,
    gate: Any,
    wait_until: Callable[..., bool],
) -> None:
    """ExecutionMonitor reads and updates of an id whose newer run waits in the queue are about
    the run in progress: its STARTING, and an update shown on its row of the running tasks."""
    executor = make_executor(max_workers=1)
    monitor = ExecutionMonitor(executor.store)
    with _running_and_queued(executor, make_task, context, gate, wait_until):
        latest = monitor.get_progress("job-7")
        assert latest is not None
        assert latest.status is ProgressStatus.STARTING
        monitor.update_task_progress("job-7", 40, "outside")
        rows = {row.state: row for row in executor.store.running_snapshot()}
        assert (rows["running"].progress_percent, rows["running"].message) == (40.0, "outside")
