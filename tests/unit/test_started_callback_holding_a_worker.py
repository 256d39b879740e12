"""A worker thread held past its task's deadline by the task's ``"started"`` callback is
handled as one held by a tool that overran its timeout.

The ``on_progress`` callback handles ``"started"`` on the worker thread, before the tool is
called. When the task's timeout strikes meanwhile, the caller gets ``timeout`` at once and the
tool never starts, but the callback keeps the thread until it returns. That thread used to be
counted as free: with one worker, the next pooled task waited in the queue for the callback and
timed out there although a replacement thread was allowed, ``shutdown(wait=True)`` waited for
the callback, and ``abandoned_threads`` said nothing held the thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from laios.core.types import Context, Task, TaskResult
from laios.execution.executor import Executor

#: The timeout of the task whose callback holds its worker.
TIMEOUT = 0.3
#: How long a call that must not wait for the callback may take, generously: far below the
#: 30 s the callback holds its thread (and the timeout of the call that follows).
PROMPT = 3.0


class HeldStart:
    """An ``on_progress`` callback that blocks on ``"started"`` until released (30 s at most)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.returned = threading.Event()

    def __call__(self, event: str, data: Any) -> None:
        if event == "started":
            self.release.wait(30.0)
            self.returned.set()


@pytest.fixture
def held() -> Iterator[HeldStart]:
    callback = HeldStart()
    yield callback
    callback.release.set()


def _hold_the_worker(
    executor: Executor, make_task: Callable[..., Task], context: Context, held: HeldStart
) -> TaskResult:
    """Run a task whose ``"started"`` callback is still running at its deadline.

    The timeout counts from the submission: on a loaded machine the worker may not have taken
    the task by then (it ends in the queue, its callback never called); it is run again then.
    """
    for _ in range(10):
        result = executor.execute_task(
            make_task("echo", text="never"), context, timeout=TIMEOUT, on_progress=held
        )
        if "'started'" in (result.error or ""):
            return result
    raise AssertionError(f"the worker never took the task in time: {result.error}")


def _timed(call: Callable[[], Any]) -> tuple[Any, float]:
    start = time.monotonic()
    returned = call()
    return returned, time.monotonic() - start


def _wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_the_next_task_gets_a_replacement_thread(
    make_executor: Callable[..., Executor],
    make_task: Callable[..., Task],
    context: Context,
    held: HeldStart,
) -> None:
    executor = make_executor(max_workers=1, replacement_threads=1)
    first = _hold_the_worker(executor, make_task, context, held)
    assert first.metadata["outcome"] == "timeout"
    assert executor.abandoned_threads == 1

    result, took = _timed(
        lambda: executor.execute_task(make_task("echo", text="next"), context, timeout=10.0)
    )
    assert result.metadata["outcome"] == "success", result.error
    assert took < PROMPT

    held.release.set()
    assert held.returned.wait(5.0)
    assert _wait_until(lambda: executor.abandoned_threads == 0)


def test_without_replacements_the_next_task_is_refused_saturated_at_once(
    make_executor: Callable[..., Executor],
    make_task: Callable[..., Task],
    context: Context,
    held: HeldStart,
) -> None:
    executor = make_executor(max_workers=1, replacement_threads=0)
    _hold_the_worker(executor, make_task, context, held)

    result, took = _timed(
        lambda: executor.execute_task(make_task("echo", text="next"), context, timeout=10.0)
    )
    assert result.metadata["error_type"] == "saturated", result.error
    assert took < PROMPT

    held.release.set()
    assert _wait_until(lambda: executor.abandoned_threads == 0)
    after = executor.execute_task(make_task("echo", text="after"), context, timeout=10.0)
    assert after.metadata["outcome"] == "success", after.error


def test_shutdown_does_not_wait_for_the_callback(
    make_executor: Callable[..., Executor],
    make_task: Callable[..., Task],
    context: Context,
    held: HeldStart,
) -> None:
    executor = make_executor(max_workers=1)
    _hold_the_worker(executor, make_task, context, held)

    _, took = _timed(lambda: executor.shutdown(wait=True))
    assert took < PROMPT
    assert not held.returned.is_set()


def test_a_started_callback_cancelling_its_own_task_leaves_the_queue_its_thread(
    make_executor: Callable[..., Executor],
    make_task: Callable[..., Task],
    context: Context,
    gate: Any,
) -> None:
    """The thread of a callback cancelling its own task is free as soon as the callback
    returns: it is not held, so with no replacement allowed the calls queued behind it still
    run on it rather than being refused ``saturated``."""
    executor = make_executor(max_workers=1, replacement_threads=0)
    own = make_task("echo", text="cancelled")

    def cancel_own(event: str, data: Any) -> None:
        if event == "started":
            executor.cancel_task(own.id)

    results: dict[str, TaskResult] = {}

    def run(name: str, task: Task, **options: Any) -> None:
        results[name] = executor.execute_task(task, context, timeout=30.0, **options)

    threads = [threading.Thread(target=run, args=("blocking", make_task("blocked")))]
    threads[0].start()
    assert gate.wait_entered(1)
    for queued, (name, task, options) in enumerate(
        [("own", own, {"on_progress": cancel_own}), ("next", make_task("echo", text="x"), {})],
        start=1,
    ):
        threads.append(threading.Thread(target=run, args=(name, task), kwargs=options))
        threads[-1].start()
        assert _wait_until(lambda queued=queued: executor.runner.stats.queued == queued)
    gate.release.set()
    for thread in threads:
        thread.join(10.0)
    assert results["own"].metadata["outcome"] == "cancelled", results["own"].error
    assert results["next"].metadata["outcome"] == "success", results["next"].error
