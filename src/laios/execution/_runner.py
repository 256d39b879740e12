"""Where a tool actually runs: the narrow seam between the executor and its worker threads.

The executor does everything around a task (store events, spans, progress, timeouts, retries)
and hands the runner a callable. ``ThreadRunner`` runs it on a daemon worker thread. Other
runners (a child process with a real kill on timeout, a distributed engine) can implement the
same four members: ``submit``, ``thread_abandoned``, ``thread_returned`` and ``shutdown``.

Python cannot kill a thread. When a task times out while its tool is still running, the thread
stays busy until the tool returns; the executor calls :meth:`ThreadRunner.thread_abandoned`, and
the runner starts a replacement thread so that capacity is not lost, up to ``replacement_cap``
extra threads. When every usable thread is held by an abandoned tool, ``submit`` refuses work at
once instead of queueing it forever.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Protocol

from laios.execution._locks import acquire_contended

__all__ = ["Runner", "ThreadRunner"]

_log = logging.getLogger("laios.execution")

#: Seconds an idle worker waits for work before its thread exits.
IDLE_TIMEOUT = 30.0


class Runner(Protocol):
    """What the executor needs from the thing that runs tools."""

    max_workers: int
    closed: bool

    def submit(self, work: Callable[[], None]) -> str | None:
        """Queue ``work``; return ``None`` when accepted, or why it was refused."""

    def thread_abandoned(self, thread_id: int | None) -> list[Callable[[], None]]:
        """A timed-out tool keeps the thread ``thread_id`` busy: replace its capacity (return
        queued work that can no longer run)."""

    def thread_returned(self, thread_id: int | None) -> None:
        """The abandoned tool on the thread ``thread_id`` finally returned."""

    def shutdown(self, wait: bool = True) -> None:
        """Stop accepting work; with ``wait``, run what is queued and join the threads."""


class ThreadRunner:
    """A pool of daemon worker threads that can replace capacity held by hung tools.

    Args:
        max_workers: Threads running tools at once.
        replacement_cap: Extra threads allowed to replace ones held by abandoned tools.
        name: Prefix of the worker threads' names.
    """

    def __init__(self, max_workers: int, replacement_cap: int, name: str = "laios-worker") -> None:
        self.max_workers = max_workers
        self.replacement_cap = replacement_cap
        self.closed = False
        self._name = name
        self._queue: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0  # workers waiting (or about to wait) for work; guarded by _lock
        self._threads: set[threading.Thread] = set()
        self._abandoned: set[int] = set()  # idents of threads held by abandoned tools
        self._counter = 0

    @property
    def abandoned(self) -> int:
        """Threads held by tools that timed out and have not returned."""
        return len(self._abandoned)

    def _allowed(self) -> int:
        """Threads allowed now: ``max_workers`` plus replacements of abandoned ones, up to
        ``replacement_cap`` (the caller holds the lock)."""
        return self.max_workers + min(len(self._abandoned), self.replacement_cap)

    def submit(self, work: Callable[[], None]) -> str | None:
        """Queue ``work`` for a worker thread.

        Returns:
            ``None`` when accepted; otherwise the reason it was refused (shut down, or
            saturated by abandoned tools).
        """
        lock = self._lock
        if not lock.acquire(False):  # (cheaper than ``with``: on every pooled task's path)
            acquire_contended(lock)  # (no lock convoy between callers: see _locks)
        try:
            if self.closed:
                return "shutdown"
            if self._idle:
                # A waiting worker takes it (an idle worker is never one held by an abandoned
                # tool, so the pool cannot be saturated).
                self._idle -= 1
            else:
                allowed = self._allowed()
                if allowed <= len(self._abandoned):
                    return "saturated"
                if len(self._threads) < allowed and not self._spawn() and not self._threads:
                    return "no_thread"  # no worker at all, and none could be started
            self._queue.put(work)
        finally:
            lock.release()
        return None

    def _spawn(self) -> bool:
        """Start a worker thread (caller holds the lock); ``False`` when the system refuses."""
        self._counter += 1
        thread = threading.Thread(
            target=self._work, name=f"{self._name}-{self._counter}", daemon=True
        )
        self._threads.add(thread)
        try:
            thread.start()
        except RuntimeError:  # "can't start new thread": a process or memory limit
            self._threads.discard(thread)
            _log.error("could not start a worker thread; running with %d", len(self._threads))
            return False
        return True

    def _work(self) -> None:
        me = threading.current_thread()
        get = self._queue.get
        while True:
            try:
                work = get(True, IDLE_TIMEOUT if not self.closed else 0.0)
            except queue.Empty:
                with self._lock:
                    if not self._queue.empty() and not self.closed:
                        continue
                    if self.closed or self._idle:
                        if not self.closed:
                            self._idle -= 1  # give up this worker's place as an idle one
                        self._threads.discard(me)
                        return
                continue
            if work is None:
                with self._lock:
                    self._threads.discard(me)
                return
            try:
                work()
            except BaseException:  # never lose a worker (the executor already reported it)
                _log.exception("a task raised out of its worker thread")
            work = None  # an idle worker must not keep its last job (and task) alive
            with self._lock:
                threads = len(self._threads)
                # (_allowed() is never below max_workers: most tasks skip the call.)
                if (self.closed and self._queue.empty()) or (
                    threads > self.max_workers and threads > self._allowed()
                ):
                    self._threads.discard(me)
                    return
                self._idle += 1

    def thread_abandoned(self, thread_id: int | None) -> list[Callable[[], None]]:
        """Count the thread ``thread_id`` (``threading.get_ident()``) as held by a timed-out
        tool; queued work gets a replacement thread at once.

        Returns:
            The queued work taken back because no usable thread is left (every thread is
            held by an abandoned tool and no replacement is allowed): the caller must refuse
            it, since it would otherwise wait for a hung tool to return.
        """
        if thread_id is None:
            return []
        with self._lock:
            self._abandoned.add(thread_id)
            allowed = self._allowed()
            if allowed <= len(self._abandoned):
                drained: list[Callable[[], None]] = []
                while True:
                    try:
                        work = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if work is not None:
                        drained.append(work)
                    else:
                        self._queue.put(None)  # a shutdown marker stays for the workers
                        break
                return drained
            # Work already queued must not wait for the hung tool: replace its thread now.
            if not self.closed and not self._queue.empty() and len(self._threads) < allowed:
                self._spawn()
        return []

    def thread_returned(self, thread_id: int | None) -> None:
        """The abandoned tool on the thread ``thread_id`` returned; surplus threads then exit."""
        if thread_id is None:
            return
        with self._lock:
            self._abandoned.discard(thread_id)

    def shutdown(self, wait: bool = True) -> None:
        """Refuse new work; queued work still runs. With ``wait``, join the workers.

        Threads held by abandoned tools are never waited for.
        """
        with self._lock:
            already = self.closed
            self.closed = True
            threads = list(self._threads)
            for _ in threads:
                self._queue.put(None)
        if already and not wait:
            return
        if wait:
            current = threading.current_thread()
            for thread in threads:
                if thread is not current and thread.ident not in self._abandoned:
                    thread.join()
