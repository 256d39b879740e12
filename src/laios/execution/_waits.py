"""Blocking waits that a Ctrl-C ends promptly on the main thread.

A signal wakes a thread blocked in a wait, and Python then raises ``KeyboardInterrupt``. One
that arrives a moment earlier, after the thread released the GIL to block but before it did
(just when another thread, a tool's, gets to run), only marks the interrupt as pending: the
thread blocks until its wait ends on its own, and only then raises it. For a caller waiting
for a task that is the whole task. ``_thread.interrupt_main()`` always works that way: it
marks the interrupt and wakes nobody.

Only the main thread takes signals, so only there do these waits block a slice at a time
(:data:`SLICE`), taking a pending interrupt between two slices; on any other thread they are
the plain waits, with no wake-ups of their own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["SLICE", "acquire", "sleep", "wait"]

#: Longest single block of a wait on the main thread: how late a Ctrl-C that did not wake the
#: wait may be taken.
SLICE = 0.25


class _Acquirable(Protocol):
    def acquire(self, blocking: bool = ..., timeout: float = ...) -> bool: ...


class _Waitable(Protocol):
    def wait(self, timeout: float | None = ...) -> bool: ...


def acquire(lock: _Acquirable, timeout: float = -1.0) -> bool:
    """``lock.acquire(True, timeout)`` (``-1``: no timeout), a :data:`SLICE` at a time on the
    main thread. Returns whether the lock was taken."""
    if not _on_main_thread():
        return lock.acquire(True, timeout)
    return _in_slices(lambda seconds: lock.acquire(True, seconds), None if timeout < 0 else timeout)


def wait(event: _Waitable, timeout: float | None = None) -> bool:
    """``event.wait(timeout)`` (``None``: no timeout), a :data:`SLICE` at a time on the main
    thread. Returns what the last ``event.wait`` returned: whether the event was set (for a
    ``threading.Condition``, whether it was notified)."""
    if not _on_main_thread():
        return event.wait(timeout)
    return _in_slices(event.wait, timeout)


def sleep(seconds: float) -> None:
    """``time.sleep(seconds)``, a :data:`SLICE` at a time on the main thread."""
    if not _on_main_thread():
        time.sleep(seconds)
        return
    end = time.monotonic() + seconds
    while seconds > 0:
        time.sleep(min(seconds, SLICE))
        seconds = end - time.monotonic()


def _on_main_thread() -> bool:
    return threading.get_ident() == threading.main_thread().ident


def _in_slices(block: Callable[[float], bool], timeout: float | None) -> bool:
    """Call ``block(seconds)`` for at most :data:`SLICE` seconds at a time until it returns
    true (``True``) or ``timeout`` seconds have passed (``False``; ``None``: never)."""
    if timeout is None:
        while not block(SLICE):
            pass
        return True
    end = time.monotonic() + timeout
    while not block(min(timeout, SLICE)):
        timeout = end - time.monotonic()
        if timeout <= 0:
            return False
    return True
