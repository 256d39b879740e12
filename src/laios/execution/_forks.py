"""What an executor does in a child made by ``os.fork()`` (a server forking preloaded workers).

A forked child has one thread, the one that called ``fork()``. Worker threads, the executor's
event loop thread and a process runner's reader thread do not exist in it; a lock another
thread held at that moment stays held for ever; worker processes belong to the parent. Objects
that keep such state register with :func:`reset_after_fork`; in the child, right after the
fork, each one's ``after_fork_in_child()`` gives it fresh state of its own (new locks, no
threads, nothing queued), so that the child's first task starts new workers as needed.

Nothing of the parent's work continues in the child: tasks the parent was running or had
queued are the parent's, and the child never reports them.
"""

from __future__ import annotations

import logging
import os
import weakref
from typing import Protocol

__all__ = ["ForkAware", "reset_after_fork"]

_log = logging.getLogger("laios.execution")


class ForkAware(Protocol):
    """An object with state a forked child must not inherit."""

    def after_fork_in_child(self) -> None:
        """Replace the inherited state with fresh state (called once, in the child)."""


_registered: weakref.WeakSet[ForkAware] = weakref.WeakSet()


def reset_after_fork(obj: ForkAware) -> None:
    """Call ``obj.after_fork_in_child()`` in every child forked from now on (while ``obj``
    lives)."""
    _registered.add(obj)


def _in_child() -> None:
    for obj in list(_registered):
        try:
            obj.after_fork_in_child()
        except Exception:  # one object must not leave the others unreset
            _log.exception("resetting %s after fork failed", type(obj).__name__)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_in_child)
