"""Taking a short-held lock on a hot path without forming a lock convoy.

With the GIL, a thread can be switched out while it holds one of our locks. Callers that then
block on the lock sleep in the operating system; each release wakes one of them, which takes
the lock *without* holding the GIL and so stalls the thread that released it the next time
that thread needs the lock. Every later acquisition becomes a hand-off between threads (two
context switches), and the queue of sleepers never drains while the callers keep coming: a
lock convoy. Eight threads calling ``execute_task`` at once lost about a tenth of their
throughput to it.

:func:`acquire_contended` waits differently: it yields the CPU (releasing the GIL, so that the
holder can run and release the lock) and tries again, and only after a few tries blocks like
``acquire()``. Use it after a failed non-blocking try::

    if not lock.acquire(False):
        acquire_contended(lock)

on threads that never take signals (a worker's). Where a Ctrl-C may land (any thread that may
be the main one), take the lock with ``with``, after :func:`wait_while_held`::

    if lock.locked():
        wait_while_held(lock)
    with lock:
        ...
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable

__all__ = ["SPINS", "acquire_contended", "wait_while_held"]

#: Yields before :func:`acquire_contended` blocks like ``acquire()``.
SPINS = 16

_yield: Callable[[], object] = getattr(os, "sched_yield", None) or functools.partial(time.sleep, 0)


def acquire_contended(lock: threading.Lock) -> None:
    """Take ``lock``, which a non-blocking ``acquire(False)`` just found held.

    Yields (up to :data:`SPINS` times) for the holder to finish, then blocks. Returns holding
    the lock.
    """
    for _ in range(SPINS):
        _yield()  # releases the GIL: the holder runs
        if lock.acquire(False):
            return
    lock.acquire()


def wait_while_held(lock: threading.Lock) -> None:
    """Before ``with lock:``, when ``lock.locked()``: yield (up to :data:`SPINS` times) for
    its holder to let it go, so that the ``with`` statement rarely blocks like ``acquire()``.

    Where a ``KeyboardInterrupt`` may land (the main thread takes signals right after a C call
    returns), a lock is taken with ``with``: a signal is not handled between the taking of the
    lock and the start of its block, as it is between an ``acquire()`` that returned and the
    ``try`` after it, where the interrupt would leave the lock held for ever.
    """
    for _ in range(SPINS):
        _yield()
        if not lock.locked():
            return
