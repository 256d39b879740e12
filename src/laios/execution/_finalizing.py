"""Finalizers that never wait for a lock: their work is handed to a thread of its own.

The same thread does other work that must not run where it is found (see
:func:`run_elsewhere`): ending a call whose coroutine the collector closed.

An executor nobody holds any more (or a process runner) is shut down by its finalizer. A
finalizer runs where its object dies: where the last reference to it goes, or in the garbage
collector, which runs at whatever allocation a collection happens on, on any thread: maybe
inside one of the executor's own critical sections on that very thread (the store's, the
engine's, the async slots', a runner's). Those locks are not re-entrant, and a
``threading.Lock`` cannot say which thread holds it, so a finalizer cannot tell whether a
shutdown (which takes them) would wait there for ever. So it does none of that work itself: it
queues it (``SimpleQueue.put`` takes no lock a thread can hold; starting the thread is safe
too: threading's own lock for it is re-entrant), and a daemon thread, ``laios-finalizers``
(started the first time), does it a moment later.

An object shut down explicitly detaches its finalizer (:func:`detach`): it has nothing left
to do, and handing it over would start the thread for nothing.

At interpreter exit a daemon thread may never get to it, so the exit handler does the work of
every finalizer not called yet, and of those queued, on the exiting thread (registered with
``atexit`` when the first finalizer is made, as ``weakref.finalize`` registers its own, so it
runs at about the same point).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import queue
import sys
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from laios.execution._forks import reset_after_fork

__all__ = ["detach", "finalize_elsewhere", "run_elsewhere"]

_log = logging.getLogger("laios.execution")

#: Seconds the exit handler waits for a finalizer's work already under way on the thread.
EXIT_PATIENCE = 5.0

_Work = tuple[Callable[..., object], tuple[Any, ...]]


class _Finalizers:
    """The queue of finalizers' work, the thread that does it, and the finalizers not called
    yet (their work is done at interpreter exit)."""

    def __init__(self) -> None:
        self.queue: queue.SimpleQueue[_Work] = queue.SimpleQueue()
        self.thread: threading.Thread | None = None
        #: Threads doing a finalizer's work now (``set.add`` and ``discard`` take no lock).
        self.busy: set[int] = set()
        #: Finalizers not called yet, by the token their callback is given.
        self.pending: dict[object, weakref.finalize[Any, Any]] = {}
        self.exit_registered = False
        reset_after_fork(self)

    def after_fork_in_child(self) -> None:
        """In a forked child: no work queued (it was the parent's), no thread yet. The
        finalizers stay: the child's copies of their objects are finalized in the child."""
        self.queue = queue.SimpleQueue()
        self.thread = None
        self.busy = set()

    def finalize(self, obj: object, func: Callable[..., object], args: tuple[Any, ...]) -> Any:
        token = object()
        finalizer = weakref.finalize(obj, self.hand_over, token, func, args)
        finalizer.atexit = False  # (done by at_exit instead, on the exiting thread)
        self.pending[token] = finalizer
        if not self.exit_registered:
            self.exit_registered = True
            atexit.register(self.at_exit)
        return finalizer

    def detach(self, finalizer: weakref.finalize[Any, Any]) -> None:
        """Detach ``finalizer``, and forget it (nothing to call at exit)."""
        detached = finalizer.detach()  # (``None``: called or detached already)
        if detached is not None:
            _, _, (token, *_), _ = detached
            self.pending.pop(token, None)

    def hand_over(self, token: object, func: Callable[..., object], args: tuple[Any, ...]) -> None:
        """The finalizer's callback: queue its work for the thread (never do it here)."""
        self.pending.pop(token, None)
        self.put(func, args)

    def put(self, func: Callable[..., object], args: tuple[Any, ...]) -> None:
        """Queue ``func(*args)`` for the thread, starting it if need be."""
        self.queue.put((func, args))
        if sys.is_finalizing():
            # (past the exit handler: no thread can start any more, and on Python 3.10 and
            # 3.11 ``start()`` would wait for ever for one that never runs; the work, ending a
            # call of a process that is going away, is dropped)
            return
        thread = self.thread
        if thread is None or not thread.is_alive():
            # (Two finalizers at once may each start one: both then serve the queue.)
            self.thread = thread = threading.Thread(
                target=self.serve, name="laios-finalizers", daemon=True
            )
            with contextlib.suppress(RuntimeError):  # (at interpreter exit: at_exit does it)
                thread.start()

    def serve(self) -> None:
        get = self.queue.get
        me = threading.get_ident()
        while True:
            work = get()
            self.busy.add(me)
            try:
                self.run(work)
            finally:
                self.busy.discard(me)
            del work  # (nothing kept while waiting for the next)

    @staticmethod
    def run(work: _Work) -> None:
        func, args = work
        try:
            func(*args)
        except Exception:
            _log.exception("work handed to the laios-finalizers thread raised: %r", func)

    def at_exit(self) -> None:
        """At interpreter exit: call the finalizers not called yet, and do the work queued
        (theirs and any queued before) here, on the exiting thread; wait a moment for work
        the thread is doing."""
        for finalizer in list(self.pending.values()):
            finalizer()  # (queues its work)
        give_up = time.monotonic() + EXIT_PATIENCE
        while True:
            try:
                work = self.queue.get_nowait()
            except queue.Empty:
                if not self.busy or time.monotonic() >= give_up:
                    return
                time.sleep(0.01)  # (work under way on the thread may queue more)
                continue
            self.run(work)
            del work


_FINALIZERS = _Finalizers()


def finalize_elsewhere(
    obj: object, func: Callable[..., object], *args: Any
) -> weakref.finalize[Any, Any]:
    """``weakref.finalize(obj, func, *args)``, except that ``func(*args)`` never runs on the
    thread that finalizes ``obj``: it runs a moment later on the ``laios-finalizers`` thread
    (or, at interpreter exit, in the exit handler). Use it when ``func`` takes a lock that the
    finalizing thread might hold (see the module's docstring)."""
    finalizer: weakref.finalize[Any, Any] = _FINALIZERS.finalize(obj, func, args)
    return finalizer


def detach(finalizer: weakref.finalize[Any, Any]) -> None:
    """Detach ``finalizer``, made by :func:`finalize_elsewhere`: its work runs neither when its
    object is collected nor at interpreter exit. For an object shut down explicitly, whose
    finalizer would only do that again. Harmless when it was called or detached already."""
    _FINALIZERS.detach(finalizer)


def run_elsewhere(func: Callable[..., object], *args: Any) -> None:
    """Run ``func(*args)`` a moment later on the ``laios-finalizers`` thread (or at
    interpreter exit, in its exit handler), never here: for work found where it must not be
    done, such as in the garbage collector, which may run inside a locked section the work
    takes (``SimpleQueue.put`` takes no lock a thread can hold). An exception it raises is
    logged."""
    _FINALIZERS.put(func, args)
