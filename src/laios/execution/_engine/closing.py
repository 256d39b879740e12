"""Closing an executor from async code (``await executor.aclose()``, ``async with``).

A blocking ``shutdown(wait=True)`` called on a running event loop cannot wait for the tasks that
loop awaits: it would hold the loop they need (their timeouts strike and their results arrive
through it, and a tool may call into it). Nor does it wait for the async tools running on a
caller's loop, which end with that loop. :func:`close_awaiting` refuses new tasks at once, then
waits without blocking the loop:

* for the runners — worker threads, the executor's loop thread, a process or Dask runner — by
  running their blocking ``shutdown(wait=True)`` on a short-lived thread of its own
  (``laios-closing``), whose end it awaits;
* for the async tools awaited on the calling loop and on the other event loops that are running
  (other threads' loops), by polling their slots on the loop (a close is rare: a short poll
  costs the calls nothing, where a per-call notification would cost every call). A loop its
  owner stopped running runs nothing to its end: its tools are not waited for.

Called from inside the executor's own work (a tool, a task it started, a callback run for it,
one of its threads) it does not wait, as ``shutdown`` does not on its own threads: it would wait
for itself, or for another tool doing the same.

Cancelling the awaiting coroutine cancels only the wait: the executor stays shut down, the
tools run on, and the thread finishes the runners' shutdown (cancelled before it began, the
runners are shut down without waiting: their threads end after their tools).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from laios.execution._engine.engine import Engine

__all__ = ["close_awaiting"]

_log = logging.getLogger("laios.execution")

#: Seconds between two looks at the async tools still running on the calling loop: the first,
#: then doubling up to the last.
_FIRST_POLL = 0.001
_LAST_POLL = 0.05


async def close_awaiting(engine: Engine) -> None:
    """Refuse new tasks, then wait for every task in flight without blocking the running loop
    (see the module's docstring).

    Raises:
        RuntimeError: When no asyncio event loop runs in this thread (under trio): the executor
            is shut down without waiting, and the error says how to wait instead.
    """
    engine.close()
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        engine.shutdown(False)
        raise RuntimeError(
            "aclose() needs a running asyncio event loop, and none runs in this thread (under "
            "trio, or anyio with the trio backend); the executor was shut down without waiting "
            "for its tasks. To wait, call the blocking shutdown() from a worker thread, e.g. "
            "await trio.to_thread.run_sync(executor.shutdown)"
        ) from None
    if engine.inside_own_work():
        engine.shutdown(False)
        return
    # The async tools first: one on the executor's loop thread (a call a tool started there)
    # must end before the runners' shutdown stops that loop under it.
    try:
        await _async_tools_ended(engine, loop)
    except BaseException:
        # Cancelled (a Ctrl-C under asyncio.run) before the runners' shutdown: they are shut
        # down without waiting, as the thread would finish it had the wait begun there.
        try:
            engine.shutdown(False)
        except Exception:  # (a runner of the user's that raises: the cancellation goes on)
            _log.exception("aclose() was cancelled, and shutting the runners down then failed")
        raise
    await _runners_shut_down(engine, loop)
    await _async_tools_ended(engine, loop)  # (a loop that ran again meanwhile)


async def _async_tools_ended(engine: Engine, loop: asyncio.AbstractEventLoop) -> None:
    """Wait, polling on ``loop``, until no async tool of the executor is still to end on a
    running event loop (see :meth:`LoopRunner.in_flight`)."""
    delay = _FIRST_POLL
    loop_here = engine.loop_here
    while loop_here.in_flight(loop):
        await asyncio.sleep(delay)
        delay = min(delay * 2, _LAST_POLL)
        # (a call queued behind one whose loop stopped running meanwhile has its slot)
        loop_here.free_stuck()


async def _runners_shut_down(engine: Engine, loop: asyncio.AbstractEventLoop) -> None:
    """Run ``engine.shutdown(True)`` on a thread of its own, and await its end.

    Not on the loop's default executor: its threads may all be taken (by calls that wait for
    this executor's tasks, even), and it refuses work once ``asyncio.run`` is ending.
    """
    ended: asyncio.Future[None] = loop.create_future()

    def settle(error: BaseException | None) -> None:
        if ended.done():  # (the wait was cancelled)
            return
        if error is None:
            ended.set_result(None)
        else:
            ended.set_exception(error)

    def shut_down() -> None:
        error: BaseException | None = None
        try:
            engine.shutdown(True)
        except Exception as exc:
            error = exc
        with contextlib.suppress(RuntimeError):  # (the loop closed meanwhile: nobody waits)
            loop.call_soon_threadsafe(settle, error)

    thread = threading.Thread(target=shut_down, name="laios-closing", daemon=True)
    try:
        thread.start()
    except RuntimeError:  # "can't start new thread": shut down without waiting for them
        _log.warning(
            "aclose() could not start a thread to wait for the executor's worker threads and "
            "runners, and did not wait for them (new tasks are refused)"
        )
        engine.shutdown(False)
        return
    await ended
    # The thread has handed its outcome over and only returns now: it is gone when aclose()
    # returns (a check for leftover threads right after it would otherwise find it).
    thread.join()
