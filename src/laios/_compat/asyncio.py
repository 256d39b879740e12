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
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

__all__ = ["forget_pending", "suspended_async_generators"]


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
