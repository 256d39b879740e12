"""The thread runner: synchronous tools on a pool of daemon worker threads.

Python cannot kill a thread. When a call is abandoned (its task timed out, or the awaiting
coroutine was cancelled) while its tool is still running, the thread stays busy until the tool
returns: :meth:`ThreadRunner.abandon` answers ``"left_running"``, counts the thread as held by
abandoned work, and starts a replacement thread so that capacity is not lost, up to
``replacement_cap`` extra threads. When every usable thread is held by abandoned work,
:meth:`~ThreadRunner.submit` refuses new calls at once (``saturated``) instead of queueing them
for ever, and calls already queued are refused the same way (the caller's side ends one whose
deadline has passed as timed out: see ``Job.refused``).
"""

from __future__ import annotations

import logging
import queue
import threading
import time

from laios.execution import _waits
from laios.execution._checks import number_repr, positive_int, switch, whole_number
from laios.execution._forks import reset_after_fork
from laios.execution._locks import acquire_contended, wait_while_held
from laios.execution._runners.base import (
    SHUTDOWN,
    Handle,
    Refusal,
    RunEvents,
    RunnerStats,
    StopResult,
    ToolCall,
)
from laios.execution._runners.invoke import call_tool_here

__all__ = ["IDLE_TIMEOUT", "ThreadRunner"]

_log = logging.getLogger("laios.execution")

#: Seconds an idle worker waits for work before its thread exits.
IDLE_TIMEOUT = 30.0
#: Calls given up in the queue that are left there at least (see ``ThreadRunner.abandon``):
#: clearing a short queue again and again would cost more than it frees.
_GIVEN_UP_SLACK = 16

_NO_THREAD = Refusal(
    "no_thread",
    "Executor could not start a worker thread (the system refused a new thread); the task was "
    "not started. Lower max_workers or raise the process's thread limit",
)


class _Work:
    """One accepted call on its way through the pool (the runner's handle for it)."""

    __slots__ = (
        "abandoned",
        "call",
        "events",
        "owner",
        "promised",
        "returned",
        "taken_by",
        "thread",
    )

    def __init__(self, call: ToolCall, events: RunEvents) -> None:
        self.call = call
        self.events = events
        # An idle worker (or a worker started for it) was counted out of ``_idle`` for it when
        # it was queued; otherwise the worker that takes it counts itself out then.
        self.promised = True
        self.thread: threading.Thread | None = None  # the worker running its tool; locked
        # The worker that took it from the queue (its "started" event runs there before the
        # tool is called); guarded by the lock.
        self.taken_by: threading.Thread | None = None
        self.returned = False  # the tool returned (or never started); guarded by the lock
        self.abandoned = False  # counted as holding a thread; guarded by the lock
        # The pool's worker that made this call and waits for it, when it was made past the
        # pool's limit (see ThreadRunner.submit); guarded by the lock.
        self.owner: threading.Thread | None = None


class ThreadRunner:
    """A pool of daemon worker threads that replaces capacity held by abandoned calls.

    Args:
        max_workers: Threads running tools at once.
        replacement_cap: Extra threads allowed to replace ones held by abandoned calls.
        name: Prefix of the worker threads' names.

    Raises:
        ValueError: When ``max_workers`` is not a positive whole number or ``replacement_cap``
            not a whole number, 0 or more.
        TypeError: When ``name`` is not a string.
    """

    name = "thread"
    can_stop = False

    def __init__(self, max_workers: int, replacement_cap: int, name: str = "laios-worker") -> None:
        max_workers = positive_int("max_workers", max_workers)
        cap = whole_number(replacement_cap)
        if cap is None or cap < 0:
            raise ValueError(
                "replacement_cap must be a whole number, 0 or more, got "
                f"{number_repr(replacement_cap)}"
            )
        replacement_cap = cap
        if not isinstance(name, str):
            raise TypeError(f"name must be a string, got {type(name).__name__}")
        self.max_workers = max_workers
        self.replacement_cap = replacement_cap
        self.closed = False
        self._thread_name = name
        self._queue: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        # Notified when a worker exits or its thread is held by an abandoned call (shutdown).
        self._changed = threading.Condition(self._lock)
        # Workers waiting (or about to wait) for work, less the promised calls queued for them;
        # guarded by _lock. Briefly -1 when a worker takes a call queued while all were busy
        # before the worker that counted itself idle for it has done so.
        self._idle = 0
        self._threads: set[threading.Thread] = set()
        self._held: set[threading.Thread] = set()  # threads held by abandoned calls; locked
        self._markers = 0  # shutdown markers (None) in the queue, not calls; locked
        self._given_up = 0  # calls abandoned in the queue since it was last cleared; locked
        # The pool's workers waiting for calls they made past the limit, with how many of those
        # calls have not returned: each lends its place to them (see submit); locked.
        self._owners: dict[threading.Thread, int] = {}
        self._counter = 0
        reset_after_fork(self)

    def after_fork_in_child(self) -> None:
        """In a forked child: no worker threads (they were the parent's), nothing queued."""
        self._queue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._idle = 0
        self._threads = set()
        self._held = set()
        self._markers = 0
        self._given_up = 0
        self._owners = {}

    @property
    def abandoned(self) -> int:
        """Threads held by abandoned calls whose tools have not returned."""
        return len(self._held)

    @property
    def stats(self) -> RunnerStats:
        """Threads allowed, busy, calls queued and threads held by abandoned calls."""
        with self._lock:
            busy = max(len(self._threads) - self._idle, 0)
            return RunnerStats(
                workers=0 if self.closed else self.max_workers,
                busy=busy,
                queued=max(self._queue.qsize() - self._markers, 0),
                abandoned=len(self._held),
            )

    def _allowed(self) -> int:
        """Threads allowed now: ``max_workers`` plus replacements of abandoned ones, up to
        ``replacement_cap`` (the caller holds the lock)."""
        return self.max_workers + min(len(self._held), self.replacement_cap)

    def _saturated_refusal(self) -> Refusal:
        return Refusal(
            "saturated",
            f"Executor is saturated: all {self.max_workers} worker threads and "
            f"{self.replacement_cap} replacement threads are held by tools that overran their "
            "timeout or whose caller stopped waiting (the coroutine awaiting them was cancelled "
            "or interrupted) and have not returned; the task was not started. Make the hung "
            "tool return (or honour cancellation), or raise max_workers / replacement_threads",
        )

    def submit(self, call: ToolCall, events: RunEvents) -> Handle | Refusal:
        """Queue ``call`` for a worker thread, or refuse it (shut down, saturated, no thread)."""
        work = _Work(call, events)
        lock = self._lock
        if lock.locked():  # (no lock convoy between callers: see _locks)
            wait_while_held(lock)
        with lock:  # (not acquire(): a Ctrl-C there would leave it held, see _locks)
            if self.closed:
                return SHUTDOWN
            if self._idle > 0:
                # A waiting worker takes it (an idle worker is never one held by an abandoned
                # call, so the pool cannot be saturated).
                self._idle -= 1
            else:
                allowed = self._allowed()
                if allowed <= len(self._held):
                    return self._saturated_refusal()
                # A call from one of the pool's own workers (a tool, or its on_progress
                # callback, calling back into the executor) may get a thread even past the
                # limit: the worker waits for it, and waiting for a free worker would wait
                # for itself. Each worker so waiting lends its place, one thread, to the calls
                # it makes (a batch of them runs on it and on the other workers, not on a
                # thread each); extra threads exit once the pool is back under its limit.
                grow = len(self._threads) < allowed
                if not grow and self.owns_current_thread():
                    owner = threading.current_thread()
                    owners = self._owners
                    lent = len(owners) + (owner not in owners)
                    grow = len(self._threads) < allowed + lent
                    work.owner = owner
                    owners[owner] = owners.get(owner, 0) + 1
                if not (grow and self._spawn()):
                    if not self._threads:
                        self._owned_done(work)
                        return _NO_THREAD  # no worker at all, and none could be started
                    # Every worker is busy: the first to be free takes it, and counts itself
                    # out of the idle ones then.
                    work.promised = False
            self._queue.put(work)
        return work

    def owns_current_thread(self) -> bool:
        """Whether the calling thread is one of this pool's workers (a tool, or a callback
        run for it, calling back into the executor)."""
        return threading.current_thread() in self._threads

    def _spawn(self) -> bool:
        """Start a worker thread (caller holds the lock); ``False`` when the system refuses."""
        self._counter += 1
        thread = threading.Thread(
            target=self._work, name=f"{self._thread_name}-{self._counter}", daemon=True
        )
        try:
            thread.start()
        except RuntimeError:  # "can't start new thread": a process or memory limit
            _log.error("could not start a worker thread; running with %d", len(self._threads))
            return False
        # Counted once started (it takes the lock, held here, before it looks at the count): a
        # Ctrl-C landing in start() leaves no thread counted that never ran, which shutdown
        # would wait for.
        self._threads.add(thread)
        return True

    def _work(self) -> None:
        me = threading.current_thread()
        get = self._queue.get
        lock = self._lock
        while True:
            try:
                work = get(True, IDLE_TIMEOUT if not self.closed else 0.0)
            except queue.Empty:
                with lock:
                    if not self._queue.empty() and not self.closed:
                        continue
                    if self.closed or self._idle > 0:
                        if not self.closed:
                            self._idle -= 1  # give up this worker's place as an idle one
                        self._exit(me)
                        return
                continue
            if work is None:
                with lock:
                    self._markers -= 1
                    self._exit(me)
                return
            if not lock.acquire(False):
                acquire_contended(lock)
            if not work.promised:  # queued while every worker was busy: this one is no more idle
                self._idle -= 1
            work.taken_by = me  # (given up from now on, it holds this thread: see abandon)
            lock.release()
            try:
                # The call's events run in the caller's context, as its tool does: its
                # on_progress callback sees the caller's context variables on every event.
                context = work.call.context
                if context is None:
                    self._run(work, me)
                else:
                    context.run(self._run, work, me)
            except BaseException:  # never lose a worker (the job already logged it)
                _log.exception("a task's events raised in its worker thread")
            if not lock.acquire(False):
                acquire_contended(lock)
            try:
                work.returned = True
                if work.abandoned:
                    self._held.discard(me)
                if work.owner is not None:
                    self._owned_done(work)
                work = None  # an idle worker must not keep its last call (and task) alive
                threads = len(self._threads)
                # (_allowed() is never below max_workers: most calls skip the sum.) A worker
                # over the limit stays while a promised call has no worker coming (``_idle``
                # below 0): the thread started for a worker's inner call may have taken a call
                # queued before it, and the inner call must not be left waiting for ever.
                if (self.closed and self._queue.empty()) or (
                    threads > self.max_workers
                    and threads > self._allowed() + len(self._owners)
                    and self._idle >= 0
                ):
                    self._exit(me)
                    return
                self._idle += 1
            finally:
                lock.release()

    def _run(self, work: _Work, me: threading.Thread) -> None:
        events = work.events
        if events.started() and self._take(work, me):
            outcome = call_tool_here(work.call, events)
            outcome.ended = time.monotonic()  # (its deadline is judged by it, see RawOutcome)
            events.finished(outcome)

    def _owned_done(self, work: _Work) -> None:
        """``work``, a call a worker made past the limit, has returned or left the queue: its
        worker lends its place no more once none of its calls is left (the caller holds the
        lock)."""
        owner = work.owner
        if owner is None:
            return
        work.owner = None
        owners = self._owners
        left = owners.get(owner, 0) - 1
        if left > 0:
            owners[owner] = left
        else:
            owners.pop(owner, None)

    def _exit(self, thread: threading.Thread) -> None:
        """Forget a worker that is exiting (the caller holds the lock)."""
        self._threads.discard(thread)
        self._changed.notify_all()  # a shutdown may be waiting for it

    def _take(self, work: _Work, thread: threading.Thread) -> bool:
        """Mark ``work``'s tool as running on ``thread``; ``False`` when it was abandoned
        before the tool started (it is skipped: nothing runs, nothing is held)."""
        with self._lock:
            if work.abandoned:
                return False
            work.thread = thread
            return True

    def preparing(self, handle: Handle) -> str | None:
        """Where ``handle``'s call was when it was given up before a worker thread called its
        tool (a thread told it may start skips it then: see ``_take``), in words that end a
        timeout's message; ``None`` otherwise (not given up, or its tool called)."""
        assert isinstance(handle, _Work)
        with self._lock:
            if not handle.abandoned or handle.thread is not None:
                return None
        return "before its worker thread called the tool; the tool was never started"

    def abandon(self, handle: Handle) -> StopResult:
        """Count the call's thread as held until its tool returns (a thread cannot be stopped).

        A call whose worker is still running its ``"started"`` event (the caller's
        ``on_progress`` callback) holds that thread the same way until the event returns; its
        tool never starts (the answer is ``"stopped"``).

        Queued calls get a replacement thread at once. When no usable thread is left (every
        thread is held and no replacement is allowed), queued calls are refused as
        ``saturated``: they would otherwise wait for a hung tool to return.
        """
        assert isinstance(handle, _Work)
        drained: list[_Work] = []
        with self._lock:
            if handle.returned or handle.abandoned:
                return "stopped"  # the tool already returned (or this was said before)
            handle.abandoned = True
            self._owned_done(handle)  # (its caller waits for it no more)
            if handle.taken_by is None:  # still queued: the worker that reaches it skips it
                self._given_up += 1
                if self._given_up > _GIVEN_UP_SLACK and 2 * self._given_up > self._queue.qsize():
                    self._clear_given_up()
                return "stopped"
            if handle.thread is None and handle.taken_by is threading.current_thread():
                # Its "started" callback cancelling its own task: the thread is free as soon
                # as the callback returns, so queued calls neither lose it nor are refused.
                return "stopped"
            # Taken by a worker: running its tool, or its "started" event (the caller's
            # on_progress callback, which may take as long as a hung tool). The tool never
            # starts then (see _take), but the thread stays busy until the event returns.
            self._held.add(handle.taken_by)
            self._changed.notify_all()  # a shutdown waiting for this thread no longer waits
            allowed = self._allowed()
            if allowed <= len(self._held):
                while True:
                    try:
                        queued = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if queued is None:
                        self._queue.put(None)  # a shutdown marker stays for the workers
                        break
                    self._forget_promise(queued)
                    self._owned_done(queued)
                    drained.append(queued)
            elif (
                self._queue.qsize() > self._markers
                and len(self._threads) < allowed
                and self._spawn()
            ):
                # Queued work must not wait for the hung tool, after shutdown() too (queued
                # calls still run then): the replacement exits once the queue is empty. It
                # waits for work, promised none: it counts as idle until it takes a call.
                self._idle += 1
            # (a tool never started was stopped: nothing of it runs, only its event)
            stopped = handle.thread is None
        if drained:
            refusal = self._saturated_refusal()
            for queued in drained:
                queued.events.refused(refusal)
        return "stopped" if stopped else "left_running"

    def _clear_given_up(self) -> None:
        """Take the calls given up while queued out of the queue (the caller holds the lock).

        A worker skips such a call when it reaches it, but while every worker stays busy (a
        tool running for hours) none is reached: without this, calls timing out in the queue
        would pile up there with their parameters for as long. The other calls and the
        shutdown markers keep their order (a worker may take one meanwhile, which is fine).
        A call taken out that an idle worker was promised gives that worker back to the idle
        ones (see :meth:`_forget_promise`).
        """
        kept: list[_Work | None] = []
        while True:
            try:
                queued = self._queue.get_nowait()
            except queue.Empty:
                break
            if queued is None or not queued.abandoned:
                kept.append(queued)
            else:
                self._forget_promise(queued)
                self._owned_done(queued)
        for queued in kept:
            self._queue.put(queued)
        self._given_up = 0

    def _forget_promise(self, work: _Work) -> None:
        """``work`` was taken out of the queue: the idle worker it was promised to stays idle
        (the caller holds the lock)."""
        if work.promised:
            self._idle += 1

    def shutdown(self, wait: bool = True) -> None:
        """Refuse new calls; queued calls still run. With ``wait``, join the workers.

        Threads held by abandoned calls are never waited for (nor is a thread whose call is
        abandoned while this waits: a tool that overruns its timeout then), and a call from
        one of the pool's own workers (a tool shutting its executor down) does not wait at all.

        Raises:
            TypeError: When ``wait`` is not ``True`` or ``False`` (or ``0``/``1``), as
                ``Executor.shutdown`` says. Nothing is shut down then.
        """
        wait = switch("wait", wait)
        with self._lock:
            already = self.closed
            self.closed = True
            threads = list(self._threads)
            if not already:  # (no thread starts once closed: one marker each is enough)
                for _ in threads:
                    self._queue.put(None)
                self._markers += len(threads)
        if already and not wait:
            return
        if wait and self.owns_current_thread():
            # Called by a tool of this pool: waiting for the workers would wait for itself, or
            # for another tool doing the same. The workers still exit once the queue is empty.
            wait = False
        if wait:
            current = threading.current_thread()
            seen = set(threads)

            def running() -> list[threading.Thread]:
                # Workers still running that are not held by an abandoned call, the ones started
                # meanwhile included (a replacement for a worker whose tool overran its timeout,
                # to run the calls still queued). One that is waited for here may be abandoned
                # meanwhile: the wait then ends without it.
                live = self._threads
                seen.update(live)
                held = self._held
                return [t for t in live if t not in held and t is not current]

            with self._changed:
                while running():
                    _waits.wait(self._changed)  # (a slice at a time on the main thread)
                gone = [t for t in seen if t not in self._threads and t is not current]
            for thread in gone:
                thread.join()  # (it has left its loop: only its last steps are left)
