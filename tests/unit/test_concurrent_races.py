"""Public calls racing each other from many threads and event loops: each interleaving forced
with events and hooks, never with sleeps."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

from laios.core.types import Context, Task, TaskResult
from laios.execution.executor import Executor
from laios.execution.retry import RetryDetails


def test_cancel_task_stops_every_retry_loop_sharing_the_id(
    executor: Executor, make_task: Callable[..., Task], context: Context
) -> None:
    """Two execute_with_retry calls (one blocking, one async) of the same task id, both
    waiting between attempts: one cancel_task stops both, after one attempt each."""
    waiting = threading.Semaphore(0)
    results: dict[str, TaskResult] = {}

    def hook(details: RetryDetails) -> None:
        waiting.release()

    def blocking() -> None:
        results["blocking"] = executor.execute_with_retry(
            make_task("fail", task_id="shared"), context, retry_delay=30, on_retry=hook
        )

    def awaiting() -> None:
        results["async"] = asyncio.run(
            executor.execute_with_retry_async(
                make_task("fail", task_id="shared"), context, retry_delay=30, on_retry=hook
            )
        )

    threads = [threading.Thread(target=blocking), threading.Thread(target=awaiting)]
    for thread in threads:
        thread.start()
    assert waiting.acquire(timeout=10)
    assert waiting.acquire(timeout=10)
    started = time.monotonic()
    assert executor.cancel_task("shared") is True
    for thread in threads:
        thread.join(10)
    assert time.monotonic() - started < 10  # far from the 30 s waits
    assert sorted(results) == ["async", "blocking"]
    for result in results.values():
        assert result.metadata["retry_cancelled"] is True
        assert result.metadata["retries"] == 0


def test_queued_task_runs_when_its_worker_is_abandoned_after_shutdown(
    make_executor: Callable[..., Executor],
    make_task: Callable[..., Task],
    context: Context,
    gate: Any,
    in_thread: Callable[..., Any],
    wait_until: Callable[..., bool],
) -> None:
    """shutdown(wait=False) with a task queued behind the only worker: when the worker's
    tool overruns its timeout, a replacement thread runs the queued task (it does not wait
    for the hung tool)."""
    executor = make_executor(max_workers=1)
    hung, hung_box = in_thread(executor.execute_task, make_task("blocked"), context, timeout=0.3)
    assert gate.wait_entered(1)
    queued, queued_box = in_thread(
        lambda: asyncio.run(executor.execute_async(make_task("echo", text="hi"), context))
    )
    assert wait_until(lambda: executor.store.snapshot().queue_depth == 1)
    executor.shutdown(wait=False)
    hung.join(5)
    assert hung_box[0].metadata["outcome"] == "timeout"
    queued.join(5)  # the blocked tool still holds its thread (released at teardown only)
    assert not gate.release.is_set()
    assert queued_box, "the queued task waited for the hung tool"
    assert queued_box[0].success
    assert queued_box[0].output == "hi"
