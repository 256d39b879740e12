"""A loop thread nobody holds any more ends: its thread exits and its loop (and the file
descriptors the loop holds) is closed, as a process runner's workers end with their runner."""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import time

from laios.execution.runners import AsyncSlots, LoopRunner, LoopThread

ROUNDS = 20
#: Longest a dropped loop thread may take to end (seconds): generous, for a loaded machine.
WITHIN = 10.0


def _ended(threads: list[threading.Thread], loops: list[asyncio.AbstractEventLoop]) -> bool:
    deadline = time.monotonic() + WITHIN
    for thread in threads:
        thread.join(max(deadline - time.monotonic(), 0.0))
    return not any(t.is_alive() for t in threads) and all(loop.is_closed() for loop in loops)


def test_loop_threads_dropped_without_stop_end_and_close_their_loops() -> None:
    """Twenty started loop threads dropped without stop(): threads gone, loops closed."""
    fds = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    threads, loops = [], []
    for _ in range(ROUNDS):
        loop_thread = LoopThread(name="laios-test-dropped")
        loops.append(loop_thread.loop)
        assert loop_thread.thread is not None
        threads.append(loop_thread.thread)
        del loop_thread
    gc.collect()
    assert _ended(threads, loops)
    if fds is not None:
        assert len(os.listdir("/proc/self/fd")) <= fds


def test_a_loop_runner_dropped_without_shutdown_ends_its_loop_thread() -> None:
    """A loop runner on a loop thread of its own, dropped unused: the thread ends too."""
    runner = LoopRunner(AsyncSlots(2), LoopThread(name="laios-test-dropped-runner"))
    assert runner.loop_thread is not None
    loop = runner.loop_thread.loop
    thread = runner.loop_thread.thread
    assert thread is not None
    del runner
    gc.collect()
    assert _ended([thread], [loop])


def test_a_loop_thread_still_held_keeps_running() -> None:
    """A loop thread that is still referenced keeps serving after a collection."""
    loop_thread = LoopThread(name="laios-test-held")
    future = asyncio.run_coroutine_threadsafe(asyncio.sleep(0, "ran"), loop_thread.loop)
    gc.collect()
    assert future.result(WITHIN) == "ran"
    assert loop_thread.thread is not None
    assert loop_thread.thread.is_alive()
    loop_thread.stop()
    assert not loop_thread.thread.is_alive()


def test_a_task_raising_system_exit_leaves_the_loop_thread_serving() -> None:
    """``SystemExit`` from a task on the loop (one a tool left behind) ends that task, not
    the loop every later async tool runs on."""
    loop_thread = LoopThread(name="laios-test-stray-exit")
    raised = threading.Event()

    async def exit_now() -> None:
        raised.set()
        raise SystemExit(9)

    asyncio.run_coroutine_threadsafe(exit_now(), loop_thread.loop)
    assert raised.wait(WITHIN)
    later = asyncio.run_coroutine_threadsafe(asyncio.sleep(0, "ran"), loop_thread.loop)
    assert later.result(WITHIN) == "ran"
    loop_thread.stop()
    assert loop_thread.loop.is_closed()


def test_a_coroutine_that_stops_the_loop_leaves_the_loop_thread_serving() -> None:
    """``loop.stop()`` called by a tool does not end the loop thread (only ``stop()`` does)."""
    loop_thread = LoopThread(name="laios-test-stray-stop")

    async def stop_the_loop() -> str:
        asyncio.get_running_loop().stop()
        await asyncio.sleep(0)
        return "went on"

    future = asyncio.run_coroutine_threadsafe(stop_the_loop(), loop_thread.loop)
    assert future.result(WITHIN) == "went on"
    loop_thread.stop()
    assert loop_thread.loop.is_closed()
