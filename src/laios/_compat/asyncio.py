"""Dropping an asyncio task knowingly, without asyncio's error about it.

A task still pending when it is collected makes asyncio log "Task was destroyed but it is
pending!" as an error: right for a task lost by mistake, noise for one given up on purpose
(an event loop thread stopping while a tool that swallows its cancellation runs on; the
executor says so itself, once). asyncio has no public switch for that; its own code gives up
tasks knowingly by clearing the task's ``_log_destroy_pending`` flag (``asyncio.wait_for``,
``loop.run_until_complete``), as other libraries do (tornado). Where a task has no such flag
(another task class), nothing is changed: asyncio logs as before.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

__all__ = ["forget_pending"]


def forget_pending(task: asyncio.Task[Any]) -> None:
    """Keep asyncio from logging ``task`` as destroyed while pending when it is collected."""
    with contextlib.suppress(AttributeError):  # (the guarded write this module is for)
        task._log_destroy_pending = False  # type: ignore[attr-defined]  # noqa: SLF001
