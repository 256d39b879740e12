"""Dropping an asyncio task knowingly, without asyncio's error about it; naming the async
generators a loop will close.

A task still pending when it is collected makes asyncio log "Task was destroyed but it is
pending!" as an error: right for a task lost by mistake, noise for one given up on purpose
(an event loop thread stopping while a tool that swallows its cancellation runs on; the
executor says so itself, once). asyncio has no public switch for that; its own code gives up
tasks knowingly by clearing the task's ``_log_destroy_pending`` flag (``asyncio.wait_for``,
``loop.run_until_complete``), as other libraries do (tornado). Where a task has no such flag
(another task class), nothing is changed: asyncio logs as before.

The async generators a loop closes in ``shutdown_asyncgens()`` are in its private
``_asyncgens`` set (``BaseEventLoop``); they are read only to name, in a warning, one that
did not finish closing. A loop without that set (another loop class) names none.

Before Python 3.12.3 a ``TaskGroup`` whose task fails while the group waits for its tasks in
``__aexit__`` cancels the task running it (to stop its body) and never takes that back: the
task's cancellation count stays raised. Nothing public tells that cancellation from any
other, so :func:`in_a_task_group_that_cancelled_its_task` looks at where the coroutine waits
(``cr_await``, public) and at the group's private ``_parent_cancel_requested`` flag. Where
the group has no such flag (another Python), it says no: the cancellation is taken for any
other.

A ``SystemExit`` or ``KeyboardInterrupt`` a task's step raises leaves the loop's
``run_forever()`` at once; nothing public says which callback raised it. Its traceback goes
through the frame of ``asyncio.Handle._run`` that ran the callback, whose ``self`` is that
handle: :func:`raising_handle` reads it there. Where no such frame is found (another loop
class, such as uvloop's handles written in C), it names none.

Python 3.10 keeps no count of a task's cancellations either: a cancellation requested while
the task runs a step of its coroutine (the tool cancelling its own task) shows only in the
task's private ``_must_cancel`` flag until the task delivers it, which
:func:`cancel_requested_while_running` reads. A task without that flag (another task class)
says no. Before Python 3.13 that flag also shows a cancellation taken back (``uncancel``, the
count back to zero) that the task will deliver all the same: nothing public says so.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

__all__ = [
    "cancel_requested_while_running",
    "forget_pending",
    "in_a_task_group_that_cancelled_its_task",
    "raising_handle",
    "suspended_async_generators",
]

#: The code of ``asyncio.TaskGroup.__aexit__`` (Python 3.11+), where a group waits for its tasks.
_TASK_GROUP_EXIT: Any = getattr(
    getattr(getattr(asyncio, "TaskGroup", None), "__aexit__", None), "__code__", None
)

#: The code of ``asyncio.Handle._run``, where a loop runs a callback (a task's step).
_HANDLE_RUN: Any = getattr(getattr(asyncio.Handle, "_run", None), "__code__", None)

#: Awaits followed down a coroutine's chain at most (a chain is a few deep).
_MOST_AWAITS = 256


def forget_pending(task: asyncio.Task[Any]) -> None:
    """Keep asyncio from logging ``task`` as destroyed while pending when it is collected."""
    with contextlib.suppress(AttributeError):  # (the guarded write this module is for)
        task._log_destroy_pending = False  # type: ignore[attr-defined]  # noqa: SLF001


def suspended_async_generators(loop: asyncio.AbstractEventLoop) -> list[Any]:
    """The async generators ``loop`` would close in ``shutdown_asyncgens()`` (none known when
    the loop does not keep them where ``BaseEventLoop`` does)."""
    generators = getattr(loop, "_asyncgens", None)
    try:
        return list(generators) if generators is not None else []
    except TypeError:  # (not a collection: another loop class's attribute)
        return []


def in_a_task_group_that_cancelled_its_task(coroutine: Any) -> bool:
    """Whether ``coroutine`` waits (at the end of its chain of awaits) in a TaskGroup's
    ``__aexit__`` for the group's tasks, the group having cancelled the task running it
    because one of its tasks failed: a cancellation delivered there now is (or includes) the
    group's own."""
    if _TASK_GROUP_EXIT is None:
        return False
    innermost = None
    awaited = coroutine
    for _ in range(_MOST_AWAITS):
        if getattr(awaited, "cr_code", None) is not None:
            innermost = awaited
        following = getattr(awaited, "cr_await", None)
        if following is None:
            break
        awaited = following
    if innermost is None or innermost.cr_code is not _TASK_GROUP_EXIT:
        return False
    frame = innermost.cr_frame
    group = frame.f_locals.get("self") if frame is not None else None
    return getattr(group, "_parent_cancel_requested", False) is True


def cancel_requested_while_running(task: asyncio.Task[Any]) -> bool:
    """Whether a cancellation of ``task`` was requested while it ran the step of its coroutine
    that just ended (called right after that step, before the task goes on), and is still
    to be delivered."""
    return getattr(task, "_must_cancel", False) is True


def raising_handle(exc: BaseException) -> asyncio.Handle | None:
    """The loop callback out of which ``exc`` was raised (a task's step that raised
    ``SystemExit``), read from its traceback's frame of ``asyncio.Handle._run``; ``None``
    when the traceback has no such frame. Never raises."""
    if _HANDLE_RUN is None:
        return None
    try:
        tb = exc.__traceback__
        while tb is not None:
            frame = tb.tb_frame
            if frame.f_code is _HANDLE_RUN:
                handle = frame.f_locals.get("self")
                return handle if isinstance(handle, asyncio.Handle) else None
            tb = tb.tb_next
    except Exception:  # (a traceback of another shape: none known)
        pass
    return None
