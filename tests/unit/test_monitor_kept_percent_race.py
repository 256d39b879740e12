"""ExecutionMonitor calls that keep "the last known percentage" (``update_task_progress`` with
no percentage, ``cancel_task``, ``complete_task(success=False)``) read it and record their update
as one step: an update another thread records meanwhile is never undone."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from laios.execution.monitor import ExecutionMonitor, ProgressStatus
from laios.execution.store import MetricStore


class _RacingClock:
    """A clock whose ``time()``, once armed, lets another thread run ``race`` to its end first:
    the store reads it as each update is made, so the race lands while the update is under
    way."""

    def __init__(self) -> None:
        self.race: Callable[[], None] | None = None
        self.raced = threading.Event()

    def time(self) -> float:
        race, self.race = self.race, None
        if race is not None:

            def run() -> None:
                race()
                self.raced.set()

            racer = threading.Thread(target=run)
            racer.start()
            racer.join(10.0)
        return time.time()

    def perf_counter(self) -> float:
        return time.perf_counter()


@pytest.mark.parametrize(
    ("keep", "status"),
    [
        (lambda m, t: m.update_task_progress(t.id, message="writing"), ProgressStatus.IN_PROGRESS),
        (lambda m, t: m.cancel_task(t.id), ProgressStatus.CANCELLED),
        (lambda m, t: m.complete_task(t, success=False), ProgressStatus.FAILED),
    ],
    ids=["update-message-only", "cancel_task", "complete_task-failed"],
)
def test_an_update_that_keeps_the_percent_never_undoes_another_threads(
    keep: Callable[[ExecutionMonitor, Any], None], status: ProgressStatus, make_task: Any
) -> None:
    """An update made by another thread while one that keeps the last percentage is under way
    stays the last percentage: the history read ``[40, 90, 40]``, the 90 % undone."""
    clock = _RacingClock()
    monitor = ExecutionMonitor(MetricStore(clock=clock))
    task = make_task("echo")
    monitor.update_task_progress(task.id, 40)
    clock.race = lambda: monitor.update_task_progress(task.id, 90)
    keep(monitor, task)
    assert clock.raced.is_set()
    history = monitor.get_progress_history(task.id)
    assert [u.progress_percent for u in history] == [40.0, 90.0, 90.0]
    assert history[-1].status is status


class _YieldingClock:
    """A clock whose ``time()`` gives the other threads a moment to run."""

    def time(self) -> float:
        time.sleep(0.0005)
        return time.time()

    def perf_counter(self) -> float:
        return time.perf_counter()


def test_message_only_updates_never_take_the_percent_back() -> None:
    """With one thread raising a task's percentage step by step and others reporting messages
    only, the recorded percentages never go down."""
    monitor = ExecutionMonitor(MetricStore(clock=_YieldingClock()))
    start = threading.Barrier(4)
    failures: list[BaseException] = []

    def raise_percent() -> None:
        start.wait(10.0)
        for percent in range(41):
            monitor.update_task_progress("job", percent)

    def report_messages(name: str) -> None:
        start.wait(10.0)
        for step in range(15):
            monitor.update_task_progress("job", message=f"{name} {step}")

    def guarded(work: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                work()
            except BaseException as exc:  # (reported by the test, not lost in a thread)
                failures.append(exc)

        return run

    threads = [threading.Thread(target=guarded(raise_percent))]
    threads += [
        threading.Thread(target=guarded(lambda n=f"r{i}": report_messages(n))) for i in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30.0)
    assert not failures
    assert not any(thread.is_alive() for thread in threads)
    # 41 + 3 * 15 = 86 updates: all of them kept (a history holds 100).
    percents = [u.progress_percent for u in monitor.get_progress_history("job")]
    assert len(percents) == 86
    went_down = [(a, b) for a, b in itertools.pairwise(percents) if b < a]
    assert not went_down, f"the percentage went down: {went_down} in {percents}"


def test_complete_task_twice_records_two_updates(make_task: Any) -> None:
    """complete_task records what it is told, each call one update (as the reference says): the
    monitor keeps no state of a task's own by which to refuse a second one."""
    monitor = ExecutionMonitor()
    task = make_task("echo")
    monitor.complete_task(task)
    monitor.complete_task(task)
    statuses = [u.status for u in monitor.get_progress_history(task.id)]
    assert statuses == [ProgressStatus.COMPLETED, ProgressStatus.COMPLETED]
