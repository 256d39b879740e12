"""The process runner: every tool call runs in a worker process that can really be killed.

A thread cannot be stopped; a process can. :class:`ProcessRunner` keeps up to
``max_workers`` worker processes (started with ``forkserver`` where the platform has it except
on macOS, ``spawn`` elsewhere;
never ``fork`` from a threaded parent), each serving one call at a time over a pipe of its own
(see :mod:`~laios.execution._runners.process_worker` for the worker's side). One reader thread
in the caller's process receives every worker's messages in order and reports them to the
calls' events: progress and checkpoints while a tool runs, then its outcome (a message larger
than ``LARGE_MESSAGE_BYTES`` is read and loaded on a thread of its own, so that its transfer
holds no other worker's messages; so is one whose loading may run code that takes long: see
:func:`_load_here`). A delivery runs the call's callbacks on that thread; one that outlasts
``TAKE_OVER_AFTER`` has a standby thread take over reading the other workers (see
:meth:`_Pool.read`).

* **Kill.** When a call is abandoned (its task timed out, or was cancelled while running) the
  worker's whole process group is killed (``SIGKILL``: what the tool started goes too), the
  call's outcome is ``"killed"``, and a fresh worker replaces it at once. On Linux, what the
  call had used until then (CPU seconds, peak memory) is read just before the kill (see
  :func:`_usage_at_kill`), and the runner says which worker it killed (``worker_at_kill``).
* **Limits.** A call's ``memory_limit_mb`` and ``cpu_seconds`` are enforced in the worker
  (``RLIMIT_DATA``, and a CPU-time timer with ``RLIMIT_CPU`` behind it); a worker that hit
  one is not reused. Signals can be ignored, so on Linux the reader thread also watches the
  CPU clock of each worker running a call with a budget, and kills a worker that goes past
  its budget (see :class:`_CpuWatch`). A limit the platform does not let a worker enforce
  (memory off Linux; CPU without ``setitimer`` and ``RLIMIT_CPU``) is logged once per
  process as not enforced, never dropped in silence.
* **Crashes.** A worker that dies while running a call (``os._exit``, a signal, a crash in C)
  ends that call with ``error_type`` ``worker_crashed`` (``cpu_limit`` when the CPU budget
  ended it) and is replaced; what is left of its process group is killed (what the tool
  started there must not run on, orphaned); the other calls go on. A worker's end is seen
  through its sentinel (a ``forkserver`` worker's is told by the forkserver; a ``spawn``
  worker's is a pipe, which a process a tool forked holds open too) and, for a ``spawn``
  worker on Linux, through a pidfd (see :func:`_open_pidfd`).
* **Initializer.** A new worker runs the runner's ``initializer`` before it takes a call: it
  is handed its first call only once it says the initializer returned (``READY``) or raised
  (``INITIALIZER_RAISED``), so that a call waits in the queue meanwhile and its task starts
  when the worker can begin the tool (the initializer's time is queue wait, not the tool's
  running time, and a timeout then leaves the worker starting for the next call). One that
  ends in the initializer fails the first queued call, saying so.
* **Stops.** A worker told to stop, or retiring after a limit, exits by itself; one that has
  not within ``_STOP_GRACE`` seconds (something in it hangs as it exits) is killed with its
  group, so that it keeps neither its place nor ``shutdown(wait=True)`` waiting.

What crosses to a worker is pickled: the tool object and the call's parameters (a call whose
tool or parameters cannot be pickled is refused at once, ``error_type`` ``not_picklable``), and
what comes back (a value or exception that cannot be sent back becomes a clear error).
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import io
import logging
import math
import multiprocessing
import multiprocessing.process
import multiprocessing.util
import os
import pickle
import selectors
import signal
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from multiprocessing.connection import Connection, wait
from typing import Any

from laios._callables import is_coroutine_function
from laios._compat.multiprocessing import (
    forget_child,
    forget_ended_forkserver,
    forkserver_in_child,
    main_file,
)
from laios._exceptions import type_name
from laios._interrupts import sigint_held
from laios._text import shorten, shown_name
from laios.execution._checks import as_text, number_repr, process_count, switch
from laios.execution._finalizing import detach, finalize_elsewhere
from laios.execution._forks import reset_after_fork
from laios.execution._logs import WarningLimiter
from laios.execution._runners.base import (
    SHUTDOWN,
    Handle,
    RawOutcome,
    Refusal,
    RunEvents,
    RunnerStats,
    StopResult,
    ToolCall,
    on_event_loop,
)
from laios.execution._runners.process_worker import (
    CPU_BUDGET_ENFORCED,
    DONE,
    INITIALIZER_RAISED,
    LARGE,
    LONGEST_CPU_BUDGET,
    MARK_CALL_BEGUN,
    MARK_CPU_START,
    MARK_PEAK_MEASURED,
    MARK_SIZE,
    MEMORY_LIMIT_ENFORCED,
    PIPE_CLOSED_EXIT,
    READY,
    WORKER_NAME,
    CpuLimitExceeded,
    MemoryLimitExceeded,
    call_secrets,
    coroutine_refusal,
    cpu_budget_words,
    describe_error,
    describe_for_pickle,
    serve,
    status_kb,
    unpicklable_advice,
    unpicklable_part,
    worker_label,
)

__all__ = ["DEFAULT_START_METHOD", "CpuLimitExceeded", "ProcessRunner", "WorkerCrashed"]

_log = logging.getLogger("laios.execution")

#: ``forkserver`` where the platform has it (Linux and other POSIX systems but macOS, where
#: ``spawn`` is the safe default), else ``spawn``.
DEFAULT_START_METHOD = (
    "forkserver"
    if sys.platform != "darwin" and "forkserver" in multiprocessing.get_all_start_methods()
    else "spawn"
)

#: How a worker ends when its call used up its CPU budget (see ``process_worker``).
_CPU_LIMIT_SIGNALS = frozenset(
    -getattr(signal, name) for name in ("SIGPROF", "SIGXCPU") if hasattr(signal, name)
)

#: Whether the caller's side can read a worker's CPU clock (Linux: the clock id that
#: ``clock_getcpuclockid`` gives for a process is ``(~pid << 3) | 2``).
_WATCH_CPU = sys.platform == "linux" and hasattr(time, "clock_gettime")

#: CPU seconds a worker may use past its call's budget before the reader kills it: the
#: worker's own timer and ``RLIMIT_CPU`` stop a tool sooner, unless it ignores their signals.
_CPU_GRACE = 0.5

#: Seconds a worker told to stop (or retiring by itself) has to exit before the reader kills
#: it with its group: its exit takes milliseconds, unless something in it hangs (a standard
#: stream a tool put in place that never flushes, a thread it left holding the GIL).
_STOP_GRACE = 2.0

#: The shortest wait between two looks at a worker's CPU clock, in seconds.
_CPU_WATCH_STEP = 0.05

#: The most CPU seconds a worker can use per second (all its threads at once).
_CPUS = os.cpu_count() or 1

#: The most a call is pickled on the thread of a running event loop (``execute_async``,
#: ``execute_parallel``), in bytes: a larger one is pickled, and sent, on another thread,
#: so that the loop is never held for longer than pickling this much takes.
LOOP_PICKLE_BYTES = 256 * 1024

#: The largest call written to its worker on the thread that hands it over, in bytes: a
#: larger one is written on a thread of its own. A worker reads nothing while a thread its last
#: tool left holds the GIL, and a write larger than the pipe holds (a socket's buffers, a few
#: hundred KiB on Linux) would then hold that thread until the call's timeout had long passed.
SEND_HERE_BYTES = 64 * 1024

#: The most threads a runner pickles such calls on at once: more calls wait their turn, in
#: the order they came, so that many large calls at once never mean a thread each. (The
#: threads that read large messages, and send large calls the reader takes from the queue, need
#: no such bound: there is at most one of each per worker.)
PICKLING_THREADS = 4

#: Seconds one delivery (a call's callbacks: ``on_progress``, the store's and monitor's
#: listeners, a synchronous span exporter) may hold the thread reading the workers before a
#: standby thread takes over the reading of every other worker (see :meth:`_Pool.read`).
TAKE_OVER_AFTER = 0.1

#: The most threads that read the workers at once: the one reading, a standby one, and those
#: left in a delivery that outlasted ``TAKE_OVER_AFTER``. With all of them in such deliveries,
#: the other workers' messages wait until one of those returns, as with a single reader.
READER_THREADS = 4


class TooLarge(Exception):
    """A call pickled on the caller's thread outgrew its bound (:data:`LOOP_PICKLE_BYTES` on
    an event loop's thread, :data:`SEND_HERE_BYTES` on any other)."""


class _BoundedSink:
    """Where a call is pickled on the caller's thread: takes up to ``limit`` bytes and raises
    :class:`TooLarge` past that. The pickler hands it each 64 KiB frame as it is done, and a
    large ``bytes`` (or buffer) value whole, so it stops early and copies little."""

    __slots__ = ("limit", "parts", "size")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[bytes] = []
        self.size = 0

    def write(self, data: Any) -> int:
        data = data if type(data) is bytes else bytes(data)
        self.size += len(data)
        if self.size > self.limit:
            raise TooLarge
        self.parts.append(data)
        return len(data)

    def take(self) -> bytes:
        """What was written, and an empty sink for the next call."""
        parts = self.parts
        self.parts = []
        self.size = 0
        return parts[0] if len(parts) == 1 else b"".join(parts)


class _ThreadPickler(threading.local):
    """A thread's pickler for calls pickled up to a bound, kept for its next call: making a
    pickler and its sink costs about a quarter of what pickling a small call does, and keeping
    them makes a bounded pickling cost what ``pickle.dumps`` does. One that raised is dropped
    (a new one is made), so that no half-done state is kept."""

    def __init__(self) -> None:
        self.busy = False
        self.renew()

    def renew(self) -> None:
        self.sink = _BoundedSink(SEND_HERE_BYTES)
        self.pickler = pickle.Pickler(self.sink, pickle.HIGHEST_PROTOCOL)


_THREAD_PICKLER = _ThreadPickler()


def pickled(value: Any, limit: int | None = None) -> bytes:
    """``value`` pickled; with ``limit``, at most that many bytes of it.

    Raises:
        TooLarge: When the pickle would be larger than ``limit``.
    """
    if limit is None:
        return pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
    here = _THREAD_PICKLER
    if here.busy:  # (a ``__reduce__`` that submits a call of its own: a pickler of its own)
        sink = _BoundedSink(limit)
        pickle.Pickler(sink, pickle.HIGHEST_PROTOCOL).dump(value)
        return sink.take()
    here.busy = True
    try:
        sink = here.sink
        sink.limit = limit
        try:
            here.pickler.dump(value)
        except BaseException:
            here.renew()
            raise
        here.pickler.clear_memo()  # (the memo holds what was pickled)
        return sink.take()
    finally:
        here.busy = False


def _not_picklable(call: ToolCall, exc: BaseException, limit: int | None = None) -> Refusal:
    """The refusal of a call that cannot be pickled, naming what in it cannot be (the tool,
    or the first parameter that fails on its own: by name and type, never by value). A
    coroutine for a tool (a plain ``get_tool`` around an async lookup) is closed, and the
    refusal says what is wrong with it."""
    refused = coroutine_refusal(call, "a worker process")
    if refused is not None:
        return refused
    what = "its tool or parameters cannot be pickled"
    advice = (
        "Define the tool class at module level and pass plain, picklable parameters (numbers, "
        "strings, lists, dicts, dataclasses, models)"
    )
    part = unpicklable_part(call, lambda value: pickled(value, limit), undecided=(TooLarge,))
    if part is not None:
        what = f"{part} cannot be pickled"
        advice = unpicklable_advice(part, "an importable module", "in processes")
    return Refusal(
        "not_picklable",
        f"Task '{shorten(call.task_id, 128)}' cannot be sent to a worker process: {what} "
        f"({describe_error(exc, call_secrets(call))}). {advice}",
    )


#: The limits a worker cannot enforce on this platform ("memory", "cpu"); none on Linux.
_UNENFORCED_LIMITS = frozenset(
    name
    for name, enforced in (("memory", MEMORY_LIMIT_ENFORCED), ("cpu", CPU_BUDGET_ENFORCED))
    if not enforced
)

#: Logs the warning for each of them once per process.
_UNENFORCED_WARNINGS = WarningLimiter(math.inf)

_UNENFORCED_WHY = {
    "memory": ("memory_limit_mb", "RLIMIT_DATA limits what Python allocates on Linux only"),
    "cpu": ("cpu_limit_percent", "it has neither a CPU timer (setitimer) nor RLIMIT_CPU"),
}


def _warn_unenforced(call: ToolCall) -> None:
    """Log once per process, for each limit a worker cannot enforce here, that a call came
    with it (a limit that cannot be enforced is never ignored in silence)."""
    given = []
    if call.memory_limit_mb is not None:
        given.append("memory")
    if call.cpu_seconds is not None and call.cpu_seconds <= LONGEST_CPU_BUDGET:
        given.append("cpu")
    for name in given:
        if name not in _UNENFORCED_LIMITS or _UNENFORCED_WARNINGS.should_log(name) is None:
            continue
        option, why = _UNENFORCED_WHY[name]
        _log.warning(
            "ProcessRunner cannot enforce ResourceLimits.%s on this platform (sys.platform is "
            "%r; %s): tasks run without that limit, and only a task's timeout stops one that "
            "goes past it. Said once per process",
            option,
            sys.platform,
            why,
        )


class WorkerCrashed(Exception):
    """The worker process running a tool died before the tool returned."""


class _Call:
    """One accepted call (the runner's handle for it)."""

    __slots__ = (
        "cpu_seconds",
        "events",
        "idle_worker",
        "killed_on",
        "memory_limit_mb",
        "payload",
        "pickled_here",
        "pickled_late",
        "state",
        "tool_name",
        "unsent",
        "usage",
        "worker",
        "written",
    )

    # What the call had used when its worker was killed for it (see ``_usage_at_kill``): set
    # then only, never on a call's usual way (read with ``getattr``).
    usage: tuple[float, float]
    # The worker killed for it, as a worker names itself in a call's outcome (``"pid N"``):
    # set then only, as ``usage`` is.
    killed_on: str
    # How long pickling it on the caller's thread took, when that pickling ended past its
    # deadline (it never starts then): set then only, as ``usage`` is.
    pickled_late: float
    # The most the caller's thread pickled of it before handing it to a pickling thread
    # (``LOOP_PICKLE_BYTES`` on an event loop's): set then only, as ``usage`` is.
    pickled_here: int

    def __init__(
        self,
        events: RunEvents,
        payload: bytes,
        tool_name: str,
        cpu_seconds: float | None = None,
        memory_limit_mb: int | None = None,
    ) -> None:
        self.events = events
        self.payload = payload
        self.tool_name = tool_name
        self.cpu_seconds = cpu_seconds  # its CPU budget (None: none)
        self.memory_limit_mb = memory_limit_mb  # its memory limit (None: none)
        self.worker: _Worker | None = None
        # Whether it was reserved on a worker idle when it was placed (it never waited in the
        # queue): while reserved, it is being handed to that worker.
        self.idle_worker = False
        # pickling (off the caller's thread, see ``ProcessRunner.submit``), queued, reserved (a
        # worker is set aside for it; not sent yet), running (sent to its worker), done or
        # abandoned; changed under the pool's lock.
        self.state = "queued"
        # Whether its write to its worker began (from then on, stopping it kills the worker);
        # whether it was given up once handed to a worker, before its write began (never sent).
        self.written = False
        self.unsent = False


class _Worker:
    """One worker process and the caller's end of its pipe."""

    __slots__ = (
        "awaiting",
        "call",
        "conn",
        "killed",
        "mark",
        "over_budget",
        "pid",
        "pidfd",
        "process",
        "ready",
        "replacement",
        "sending",
        "stop_by",
        "stopping",
    )

    def __init__(
        self,
        process: Any,
        conn: Connection,
        ready: bool = True,
        pidfd: int | None = None,
        mark: Any = None,
    ) -> None:
        self.process = process
        self.conn = conn
        self.pid: int = process.pid
        # The call mark it shares with this process (see ``_new_mark``; ``None``: none).
        self.mark = mark
        # A pidfd that becomes readable when the process ends (``None``: none; see
        # ``_open_pidfd``); the reader closes it once the worker is gone.
        self.pidfd = pidfd
        # Whether the runner's initializer returned in it (see ``READY``; with none, at once):
        # one that ends before then ended in its initializer, before any tool started.
        self.ready = ready
        # Whether it waits to be handed its first call until it says its initializer returned
        # or raised (``READY``, ``INITIALIZER_RAISED``; see ``_Pool.initialized``): a new
        # worker with an initializer. Changed under the pool's lock.
        self.awaiting = not ready
        self.call: _Call | None = None  # the call it runs now
        self.killed = False  # killed by the runner (its call, if any, was abandoned)
        self.stopping = False  # told to stop (no call will be sent to it)
        self.stop_by = math.inf  # when it must have exited once stopping (monotonic)
        self.over_budget = False  # killed by the runner for going past its call's CPU budget
        # Calls being written to ``conn`` outside the pool's lock: while there are any, its
        # pipe is not closed, even once the worker is gone (see ``_Pool.send``).
        self.sending = 0
        # What becomes of it once it has ended, as its call's error says (see ``_Pool.lost``).
        self.replacement = ""


def _cpu_clock(pid: int) -> int:
    """The CPU clock of process ``pid`` (all its threads), for ``time.clock_gettime``: what
    ``clock_getcpuclockid`` gives for it on Linux."""
    return (~pid << 3) | 2


class _CpuWatch:
    """A running call's CPU budget, watched from the caller's side.

    The worker stops a call at its budget by itself (a CPU timer, ``RLIMIT_CPU``), but both
    work through signals a tool can ignore, catch or lift. So the reader thread also reads
    the worker's CPU clock: first when the call could have used its budget and the grace
    (running on every CPU at once), then again as often as the rest could be used up, and
    kills the worker once it is past both. Between calls, and for calls without a budget,
    nothing is watched.

    The budget counts from when the worker begins the call, as the worker's own timer does
    (the call mark says when, and the worker's CPU seconds then): not what the worker uses
    before, reading the call or running the runner's initializer (which may import a lot).
    Without a call mark, it counts from when the call is sent.
    """

    __slots__ = ("budget", "call", "clock", "due", "mark", "stop_at", "worker")

    def __init__(self, worker: _Worker, call: _Call, budget: float) -> None:
        self.worker = worker
        self.call = call
        self.budget = budget
        self.clock = _cpu_clock(worker.pid)
        self.stop_at = time.clock_gettime(self.clock) + budget + _CPU_GRACE
        self.due = time.monotonic() + (budget + _CPU_GRACE) / _CPUS
        # (read until the worker has begun the call; then ``stop_at`` counts from its start)
        self.mark = worker.mark

    def over(self, now: float) -> bool:
        """Whether the worker is past the budget; if not, when to look again (``due``).

        Raises:
            OSError: When the worker is gone.
        """
        mark = self.mark
        if mark is not None:
            start = mark[MARK_CPU_START]
            if mark[MARK_CALL_BEGUN] == 0.0 or start < 0:  # not begun yet (or already over)
                time.clock_gettime(self.clock)  # (raises when the worker is gone)
                self.due = now + max((self.budget + _CPU_GRACE) / _CPUS, _CPU_WATCH_STEP)
                return False
            self.stop_at = start + self.budget + _CPU_GRACE
            self.mark = None
        left = self.stop_at - time.clock_gettime(self.clock)
        if left <= 0:
            return True
        self.due = now + max(left / _CPUS, _CPU_WATCH_STEP)
        return False


def _start_with_interrupts_held(process: Any) -> None:
    """Start ``process`` with SIGINT held back in this thread (restored after: one that came
    to the thread meanwhile is then delivered).

    The process inherits the hold: the forkserver (started by the first worker start) and a
    spawned worker, both still in the caller's process group, where a terminal's Ctrl-C,
    sent to its whole foreground group, would otherwise kill one in its imports (the
    forkserver ignores SIGINT only once its preloads are imported) and fail the next start.
    The caller decides when workers stop; a worker takes SIGINT again once it leads a group
    of its own (see :func:`~laios.execution._runners.process_worker.serve`), and a process
    the forkserver starts for other code takes it at once (see
    :mod:`~laios.execution._runners.forkserver_children`).
    """
    with sigint_held():
        process.start()


def on_a_thread(
    target: Callable[..., object], name: str, *args: Any, daemon: bool = False, **kwargs: Any
) -> bool:
    """Run ``target(*args, **kwargs)`` on a new thread called ``name``; ``False`` when no
    thread could be had ("can't start new thread": a process or memory limit, such as a
    container's pids limit), for the caller to do the work where it is instead."""
    try:
        thread = threading.Thread(target=target, name=name, args=args, kwargs=kwargs)
        thread.daemon = daemon
        thread.start()
    except RuntimeError:
        return False
    return True


def _open_pidfd(pid: int) -> int | None:
    """A pidfd for process ``pid`` (a ``spawn`` worker, just started), which becomes readable
    when it ends; ``None`` where there are none (not Linux, Python before 3.9, Linux before
    5.3) or the system refused one (no descriptor left).

    A ``spawn`` worker's sentinel is a pipe that closes as it exits, and so is its pipe to the
    caller: a process a tool forked (and left running) holds both open, and the worker's end
    would then never be seen (its call would wait for its timeout, or for ever). A pidfd is
    about the process alone. (A ``forkserver`` worker's end is told by the forkserver.)
    """
    try:
        fd: int = os.pidfd_open(pid)  # type: ignore[attr-defined,unused-ignore]
    except (AttributeError, OSError):
        return None
    return fd


def _close_pidfd(worker: _Worker) -> None:
    """Close ``worker``'s pidfd, if it has one (once it is gone)."""
    fd, worker.pidfd = worker.pidfd, None
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)


def _new_mark(context: Any) -> Any:
    """A worker's call mark: doubles in shared memory where the worker notes whether it has
    begun the last call sent to it, and the CPU seconds its process had used when its current
    call began (see ``process_worker.serve``), for :func:`_usage_at_kill` (read only where a
    worker's CPU clock can be, on Linux); ``None`` where the memory could not be had. Made
    once per worker; the worker writes it at each call (three stores in memory, no system
    call), this process marks each call it sends as not begun yet (one store), and reads it
    only when it kills the worker or asks whether the worker had begun a call whose time ran
    out."""
    try:
        return context.RawArray("d", [-1.0] * MARK_SIZE)
    except Exception:  # (no shared memory to be had: calls killed report 0.0, as elsewhere)
        return None


def _usage_at_kill(worker: _Worker) -> tuple[float, float] | None:
    """What the call ``worker`` runs had used, read just before the runner kills the worker
    for it: the CPU seconds of the worker process (all its threads) since the call began,
    from the worker's CPU clock (children the tool started are not counted), and the peak
    resident memory since then in MB (``VmHWM``, which the worker resets as each call begins;
    ``0.0`` when that is not measured). ``None`` when they cannot be read: no call mark, no
    CPU clock of another process to read (not Linux), the worker has not begun the call
    (still reading it, or running the initializer) or has ended it, or it is gone."""
    mark = worker.mark
    if mark is None or not _WATCH_CPU:
        return None
    start = mark[MARK_CPU_START]
    if start < 0:
        return None
    try:
        cpu = time.clock_gettime(_cpu_clock(worker.pid)) - start
    except OSError:
        return None
    memory = 0.0
    if mark[MARK_PEAK_MEASURED]:
        try:
            with open(f"/proc/{worker.pid}/status", "rb") as status:
                memory = (status_kb(status.read(), b"VmHWM:") or 0) / 1024
        except (OSError, ValueError):
            pass
    return max(cpu, 0.0), memory


def _kill_group(pid: int, *, ended: bool = False) -> None:
    """Kill a worker and every process in its group (the worker leads its own group).

    ``ended``: the worker has ended already; kill what is left in its group, what its tool
    started there. A worker that ends by itself kills them first; one that dies (``os._exit``
    in a tool, a signal: its CPU budget's, or ``SIGKILL`` from the OOM killer) would leave
    them running, orphaned. While one of them lives, the group's id cannot be given to
    another process; once none does, there is nothing to kill (and only the group is asked,
    never the pid alone, which may be another process's by now).
    """
    if hasattr(os, "killpg"):
        try:
            os.killpg(pid, signal.SIGKILL)
            return
        except (ProcessLookupError, PermissionError):
            pass  # not a group leader yet (just started): the worker alone
    if ended:
        return  # (nothing is left in its group, and its pid alone is never asked)
    with contextlib.suppress(ProcessLookupError, PermissionError, OSError):
        os.kill(pid, signal.SIGKILL if hasattr(signal, "SIGKILL") else signal.SIGTERM)


#: The exit code ``multiprocessing`` gives a forkserver's worker when the forkserver ended
#: before it could say how the worker ended.
_SERVER_GONE_EXIT = 255


#: The pauses before a worker start the forkserver ended in is tried again, one try per
#: pause: ``multiprocessing`` reuses its forkserver until ``os.waitpid`` finds it dead (a
#: killed one may take a moment to be), then starts a new one at the next start. Only once a
#: forkserver has started a worker in this process: one that ends before it started any was
#: ended by its preloads (a module that raises when imported), as the next one would be.
_SERVER_RETRY_PAUSES = (0.05, 0.5)

#: The processes (by pid: a forked child starts a forkserver of its own) where a forkserver
#: started a worker: one that ends as it starts another there was not ended by the preloads
#: it imported before (it is killed, or the preloads changed since).
_started_by_a_forkserver: set[int] = set()


def _exists(pid: int) -> bool:
    """Whether process ``pid`` exists (a forkserver's worker that ended does not: the
    forkserver waited for it before it said so)."""
    try:
        os.kill(pid, 0)
    except OSError:  # (``PermissionError``: the pid is another user's process by now)
        return False
    return True


#: Longest the reader waits for a worker whose sentinel says it ended to be waited for (see
#: :func:`_exit_code`).
_EXIT_CODE_WAIT = 0.2


def _exit_code(process: Any) -> int | None:
    """The exit code of a worker ``process`` whose sentinel says it ended; ``None`` when it
    cannot be read (its children are reaped by the kernel: ``SIGCHLD`` ignored).

    A ``spawn`` worker's sentinel is a pipe that closes as the process exits, a moment before
    it can be waited for (its other threads still ending): it is waited for briefly, without
    blocking (a worker whose tool closed that pipe runs on), while it exists.
    """
    process.join(0)
    code: int | None = process.exitcode
    if code is None:
        deadline = time.monotonic() + _EXIT_CODE_WAIT
        while code is None and time.monotonic() < deadline and _exists(process.pid):
            time.sleep(0.001)
            code = process.exitcode
    return code


#: Why a process runner was terminated, as its calls' errors say (see ``_Pool.terminate``).
TERMINATE_CALLED = "runner.terminate() was called"
TERMINATE_COLLECTED = (
    "it was garbage-collected without shutdown(): its executor was too, or nobody held it"
)
TERMINATE_EXITING = "the interpreter is exiting"

#: How a call's error ends when no worker replaces the one that ended under it.
NOT_REPLACED = "the runner was shut down, so no worker replaces it"


def _replacement(now: bool, closed: bool, terminated: bool = False) -> str:
    """What becomes of a worker that ended (or retires) under a call, as the call's error and
    the log's warning say it, the same words in the same situation: ``now``, a worker starts
    in its place at once; else one starts when a task needs one, unless the runner was shut
    down (``closed``) or ``terminated``: then none does."""
    if terminated:
        return "no worker replaces it"
    if now:
        return "a new worker process replaces it"
    if closed:
        return NOT_REPLACED
    return "a new worker process starts in its place when a task needs one"


def _crash_outcome(
    call: _Call,
    exitcode: int | None,
    terminated: str | None,
    over_budget: bool = False,
    *,
    server_gone: bool = False,
    initializing: bool = False,
    replacement: str,
    pid: int,
) -> RawOutcome:
    """The outcome of ``call``, whose worker (process ``pid``) ended under it, naming that
    worker as one names itself for a call it completed (``"pid 4242"``); ``replacement``:
    what becomes of the worker, as :func:`_replacement` says it."""
    outcome = _ended_under(
        call,
        exitcode,
        terminated,
        over_budget,
        server_gone=server_gone,
        initializing=initializing,
        replacement=replacement,
    )
    outcome.worker = worker_label(pid)
    return outcome


def _ended_under(
    call: _Call,
    exitcode: int | None,
    terminated: str | None,
    over_budget: bool,
    *,
    server_gone: bool,
    initializing: bool,
    replacement: str,
) -> RawOutcome:
    # (see :func:`_crash_outcome`)
    if terminated is not None:
        return RawOutcome(
            None,
            WorkerCrashed(
                f"Tool '{shown_name(call.tool_name)}' was stopped: its worker process was killed "
                f"because the process runner was terminated ({terminated}); {replacement}"
            ),
            error_type="terminated",
        )
    if over_budget or exitcode in _CPU_LIMIT_SIGNALS:
        budget = cpu_budget_words(call.cpu_seconds)
        # The worker's own count is lost with it: what it used is known to be its budget at
        # least (past the grace too when the runner's watch stopped it).
        used = 0.0
        if call.cpu_seconds is not None:
            used = call.cpu_seconds + (_CPU_GRACE if over_budget else 0.0)
        return RawOutcome(
            None,
            CpuLimitExceeded(
                f"Tool '{shown_name(call.tool_name)}' exceeded its CPU budget{budget} "
                "(cpu_limit_percent of its timeout); its worker process was stopped, and "
                f"{replacement}"
            ),
            used,
            error_type="cpu_limit",
        )
    if exitcode == PIPE_CLOSED_EXIT:  # (never the forkserver's ``server_gone`` code)
        if initializing:
            said = (
                f"The worker process for tool '{shown_name(call.tool_name)}' could not be used: "
                "the process runner's initializer closed the worker's end of the pipe to the "
                "executor (a file descriptor it did not open, as os.closerange(3, ...) "
                "does), before the tool started; the runner did not run the call again. Each "
                "new worker runs the initializer first, and one is started when a task needs "
                "it: fix the initializer (it must close only the file descriptors it opened)"
            )
        else:
            said = (
                f"Tool '{shown_name(call.tool_name)}' closed the worker's end of the pipe to the "
                "executor (a file descriptor it did not open, as os.closerange(3, ...) does), so "
                "its outcome could not be sent back; the runner did not run the call again, and "
                f"{replacement}. A tool run in a process must close only the file "
                "descriptors it opened (subprocess closes the others in the child by itself)"
            )
        return RawOutcome(None, WorkerCrashed(said), error_type="worker_crashed")
    if server_gone:
        return RawOutcome(
            None,
            WorkerCrashed(
                f"The worker process running tool '{shown_name(call.tool_name)}' could no longer "
                "be watched: the forkserver process that started it ended (killed, maybe by a "
                "tool: a worker's parent process is the forkserver, not your program), so it "
                "was stopped before the tool returned; the runner did not run the call again, "
                f"and {replacement}"
            ),
            error_type="worker_crashed",
        )
    # (a worker enforces it where it can: see the worker's run)
    limit = call.memory_limit_mb if MEMORY_LIMIT_ENFORCED else None
    if exitcode is None:
        how = "was lost"
    elif exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        how = f"was killed by {name}"
        if -exitcode == getattr(signal, "SIGKILL", None):  # (the runner's own are not crashes)
            how += (
                ", which the runner did not send (the tool itself, another process, or the "
                "kernel's out-of-memory killer when the machine ran short of memory may have"
                + (
                    ": set ResourceLimits.memory_limit_mb to fail such a task inside its tool "
                    "instead"
                    if limit is None
                    else ""
                )
                + "),"
            )
    else:
        how = f"exited with code {exitcode}"
    if initializing:
        return RawOutcome(
            None,
            WorkerCrashed(
                f"The worker process for tool '{shown_name(call.tool_name)}' {how} while running "
                "the process runner's initializer, before the tool started; the runner did not "
                "run the call again. Each new worker runs the initializer first, and one is "
                "started when a task needs it: fix the initializer (it must return, or raise, "
                "never end its process)"
            ),
            error_type="worker_crashed",
        )
    under = ""
    if limit is not None:
        # (code that cannot allocate may end its process instead of raising MemoryError,
        # which the worker would have told as the limit's)
        under = (
            f" while under its memory limit of {limit} MB (memory_limit_mb={limit}), which "
            "may be the cause: code that cannot allocate memory may end its process instead "
            "of raising MemoryError (a C library such as OpenBLAS does)"
        )
    return RawOutcome(
        None,
        WorkerCrashed(
            f"The worker process running tool '{shown_name(call.tool_name)}' {how} before the tool "
            f"returned{under}; the runner did not run the call again, and {replacement}"
        ),
        error_type="worker_crashed",
    )


class _Waiter:
    """What the reader thread waits on: the wake-up pipe, each worker's pipe and sentinel (and
    pidfd, when it has one: see :func:`_open_pidfd`).

    On POSIX one ``selectors`` selector lives as long as the reader (a worker is registered
    once); elsewhere ``multiprocessing.connection.wait`` is asked each time.
    """

    def __init__(self, wake: Connection) -> None:
        self.wake = wake
        self.workers: dict[Any, tuple[str, _Worker]] = {}
        self.selector: selectors.BaseSelector | None = None
        if os.name == "posix":
            self.selector = selectors.DefaultSelector()
            self.selector.register(wake, selectors.EVENT_READ, None)

    def watch(self, worker: _Worker) -> None:
        self.workers[worker.conn] = ("message", worker)
        self.workers[worker.process.sentinel] = ("death", worker)
        if worker.pidfd is not None:
            self.workers[worker.pidfd] = ("death", worker)
        if self.selector is not None:
            self.selector.register(worker.conn, selectors.EVENT_READ, ("message", worker))
            self.selector.register(worker.process.sentinel, selectors.EVENT_READ, ("death", worker))
            if worker.pidfd is not None:
                self.selector.register(worker.pidfd, selectors.EVENT_READ, ("death", worker))

    def watch_messages(self, worker: _Worker) -> None:
        """Wait for ``worker``'s messages again (after :meth:`forget_messages`)."""
        self.workers[worker.conn] = ("message", worker)
        if self.selector is not None:
            with contextlib.suppress(KeyError, ValueError, OSError):
                self.selector.register(worker.conn, selectors.EVENT_READ, ("message", worker))

    def forget_messages(self, worker: _Worker) -> None:
        """Stop waiting for ``worker``'s messages (its pipe is closed; its end is still
        watched through its sentinel)."""
        self.workers.pop(worker.conn, None)
        if self.selector is not None:
            with contextlib.suppress(KeyError, ValueError, OSError):
                self.selector.unregister(worker.conn)

    def forget(self, worker: _Worker) -> None:
        for key in (worker.conn, worker.process.sentinel, worker.pidfd):
            if key is None:
                continue
            self.workers.pop(key, None)
            if self.selector is not None:
                with contextlib.suppress(KeyError, ValueError, OSError):
                    self.selector.unregister(key)

    def ready(self, timeout: float | None = None) -> tuple[list[_Worker], list[_Worker], bool]:
        """Block until something happens (or ``timeout`` seconds pass): workers with a
        message, workers that ended, and whether the wake-up pipe was written to."""
        if self.selector is not None:
            tags = [key.data for key, _ in self.selector.select(timeout)]
        else:
            ready = wait([self.wake, *self.workers], timeout)
            tags = [self.workers.get(item) for item in ready]
        messages = [tag[1] for tag in tags if tag is not None and tag[0] == "message"]
        # (once each: a worker's sentinel and pidfd may both say it ended)
        ended = (tag[1] for tag in tags if tag is not None and tag[0] == "death")
        deaths = list(dict.fromkeys(ended))
        return messages, deaths, None in tags

    def close(self) -> None:
        if self.selector is not None:
            self.selector.close()


class _Delivery:
    """What a thread reading the workers delivers now (see :meth:`_Pool.delivering`)."""

    __slots__ = ("following", "kind", "since", "worker")

    def __init__(self, worker: _Worker, kind: str, since: float) -> None:
        self.worker = worker
        # "message" (a progress report or checkpoint, or an outcome whose worker's next
        # messages cannot be read yet): the worker's next messages wait for it; "outcome":
        # they are the next call's, and need not; "lost": the worker's end.
        self.kind = kind
        self.since = since
        # The next queued call its worker took, begun once the outcome is delivered, unless
        # the thread that takes over the reading begins it first (under the pool's lock).
        self.following: _Call | None = None


class _Reading:
    """What the thread reading the workers keeps (touched by that thread only: another one
    takes it over under the pool's lock, see :meth:`_Pool.read`)."""

    __slots__ = ("ended_meanwhile", "held", "transfers", "waiter", "watched")

    def __init__(self, waiter: _Waiter) -> None:
        self.waiter = waiter
        self.watched: dict[int, _Worker] = {}
        # The pids of workers whose message is read, loaded or delivered on another thread
        # (a large one's transfer; a delivery that outlasted ``TAKE_OVER_AFTER``): none of
        # their messages is read meanwhile, so that they are delivered in order.
        self.transfers: set[int] = set()
        self.ended_meanwhile: set[int] = set()  # those of them that have ended since
        # Workers whose end is reported on a thread that was taken over in that report: not
        # watched again (it is over once that thread hands them back).
        self.held: set[_Worker] = set()


class _Pool:
    """The worker processes, the queue and the reader thread (no reference to the runner,
    so that a runner nobody holds can be collected and its finalizer stop the pool)."""

    def __init__(
        self,
        max_workers: int,
        context: Any,
        initializer: Callable[..., object] | None,
        initargs: tuple[Any, ...],
    ) -> None:
        self.max_workers = max_workers
        self.context = context
        self.forkserver = context.get_start_method() == "forkserver"
        self.initializer = initializer
        self.initargs = initargs
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)  # a call ended or a worker went
        self.workers: dict[int, _Worker] = {}  # by pid
        self.idle: list[_Worker] = []
        self.starting = 0  # workers being started (counted against max_workers)
        self.queue: deque[_Call] = deque()
        self.pickling = 0  # calls accepted to be pickled off the caller's thread, not placed yet
        self.to_pickle: deque[tuple[_Call, ToolCall]] = deque()  # those waiting for a thread
        self.pickling_threads = 0  # threads pickling them (at most PICKLING_THREADS)
        self.closed = False
        self.terminated_by: str | None = None  # why every worker was killed (see terminate)
        self.wake_reader, self.wake_writer = multiprocessing.Pipe(duplex=False)
        self.reader: threading.Thread | None = None
        self.reader_threads()
        self.start_error: Exception | None = None  # why the last worker could not start
        self.start_tries = 0  # how many times it was tried
        self.cpu_watches: dict[int, _CpuWatch] = {}  # by worker pid (read by the reader)
        # Workers told to stop, or retiring, that have not exited yet: by pid (read by the
        # reader, which kills one still there at its ``stop_by``).
        self.exiting: dict[int, _Worker] = {}
        # Large messages read on threads of their own, for the reader to deliver: the worker,
        # the loaded message (``None``: dropped) and whether the pipe could be read.
        self.transferred: list[tuple[_Worker, tuple[Any, ...] | None, bool]] = []
        # Set while a thread tells a call's events it starts (its "started" callback runs
        # then, before the call is sent): such a thread cannot wait for the workers to exit.
        self.starting_here = threading.local()
        # Calls written to their worker on a thread of their own: from when they are marked
        # running (before that thread starts) until the write is over.
        self.writing: set[_Call] = set()
        reset_after_fork(self)

    @property
    def terminated(self) -> bool:
        """Whether every worker was killed (running calls end ``terminated``)."""
        return self.terminated_by is not None

    def after_fork_in_child(self) -> None:
        """In a forked child: no workers (they are the parent's, and go on serving it: the
        child neither stops nor kills them), nothing queued, no reader; pipes of its own, and
        a forkserver of its own for the workers it starts."""
        forkserver_in_child()
        for worker in self.workers.values():
            forget_child(worker.process)
            with contextlib.suppress(OSError):
                worker.conn.close()  # (the child's copy; the parent's end stays open)
            _close_pidfd(worker)  # (the child's copy)
        for conn in (self.wake_reader, self.wake_writer):
            with contextlib.suppress(OSError):
                conn.close()
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.workers = {}
        self.idle = []
        self.starting = 0
        self.queue = deque()
        self.pickling = 0
        self.to_pickle = deque()
        self.pickling_threads = 0
        self.cpu_watches = {}
        self.exiting = {}
        self.transferred = []
        self.writing = set()
        self.wake_reader, self.wake_writer = multiprocessing.Pipe(duplex=False)
        self.reader = None
        self.reader_threads()

    def reader_threads(self) -> None:
        """No thread reads the workers (see :meth:`read`)."""
        self.reading: _Reading | None = None
        self.leader: threading.Thread | None = None  # the one reading now
        self.standby: threading.Thread | None = None  # the one ready to take over
        self.readers: set[threading.Thread] = set()  # every one of them, stuck ones too
        # What the reading thread delivers now (the worker, "message" or "lost", since when),
        # set without the lock; how many threads were left in a delivery, not handed back yet.
        self.delivery: _Delivery | None = None
        self.stuck = 0
        self.standby_asleep = False  # waiting for a delivery to begin (woken by the reader)
        self.standby_wake = threading.Condition(self.lock)

    # -- starting workers --------------------------------------------------------------------

    def start_worker(self) -> _Worker | None:
        """Start a worker process (the caller counted it in ``starting``); ``None`` when the
        system refused.

        A start the forkserver ended in (killed, maybe by a tool: a worker's parent is the
        forkserver) is tried again after a pause: ``multiprocessing`` goes on using its
        forkserver until it sees the process dead, then starts a new one. Not before a
        forkserver started a worker in this process: one that ends at its first start was
        ended by a preload that raises when imported, and so would each new one be.

        Where ``SIGCHLD`` is ignored (the program has its children reaped at once), a
        forkserver that ended is gone before ``multiprocessing`` checks it, which then fails
        with ``ChildProcessError``: it is told to forget it, and the start tried again."""
        pauses = iter(_SERVER_RETRY_PAUSES if self.forkserver else ())
        # (a forkserver reaped already: forgotten once per try, so never in a loop)
        forgot = False
        tries = 0
        while True:
            tries += 1
            parent_end, child_end = multiprocessing.Pipe()
            mark = _new_mark(self.context)
            try:
                _check_main_importable()
                process = self.context.Process(
                    target=serve,
                    args=(child_end, self.initializer, self.initargs, mark),
                    name=WORKER_NAME,
                )
                _start_with_interrupts_held(process)
            except Exception as exc:
                parent_end.close()
                if self.forkserver and isinstance(exc, ChildProcessError) and not forgot:
                    # (another start may have forgotten it first: tried again all the same)
                    forget_ended_forkserver()
                    forgot = True
                    tries -= 1  # (no forkserver was asked: not a try)
                    continue
                replaceable = _server_ended(exc) and os.getpid() in _started_by_a_forkserver
                pause = next(pauses, None) if replaceable else None
                if pause is not None and not self.terminated:
                    _log.info(
                        "the forkserver ended as it started a worker process (%r); trying "
                        "the start again",
                        exc,
                    )
                    time.sleep(pause)
                    forgot = False  # (the server just ended: reaped at once, maybe)
                    continue
                if _importing_main(exc):
                    _told_to_guard_main()
                elif isinstance(exc, _MainNotImportable):
                    _told_main_not_importable(exc)
                else:
                    _log.exception("could not start a worker process")
                with self.lock:
                    self.starting -= 1
                    self.start_error = exc
                    self.start_tries = tries
                    self.changed.notify_all()  # (a close may wait for the start)
                self.wake()  # (the reader, once the pool is closed and empty, ends)
                return None
            finally:
                child_end.close()
            break
        if self.forkserver:
            _started_by_a_forkserver.add(os.getpid())
        pidfd = None if self.forkserver else _open_pidfd(process.pid)
        worker = _Worker(
            process, parent_end, ready=self.initializer is None, pidfd=pidfd, mark=mark
        )
        no_reader: RuntimeError | None = None
        with self.lock:
            self.starting -= 1
            reading = self.reader is not None
            if not reading:
                # (Started under the lock, so that no other start sees a reader that will not
                # run: the reader's first step waits for the lock.)
                reader = threading.Thread(
                    target=self.read, name="laios-process-reader", daemon=True
                )
                try:
                    reader.start()
                except RuntimeError as exc:  # "can't start new thread": a process limit
                    no_reader = exc
                else:
                    self.reader = reader
            if no_reader is None:
                self.workers[worker.pid] = worker
            else:  # nothing would read the worker: it is stopped, as a start that failed
                self.start_error = no_reader
                self.start_tries = 1
                self.changed.notify_all()  # (a close may wait for the start)
        if no_reader is not None:
            _log.error("could not start the thread that reads the worker processes: %r", no_reader)
            _kill_group(worker.pid)
            process.join()
            parent_end.close()
            _close_pidfd(worker)
            return None
        if reading:
            self.wake()
        return worker

    def start_in_background(self) -> None:
        """Start a worker (counted in ``starting`` by the caller) on a thread of its own, so
        that neither a submitting caller (maybe an event loop) nor the reader waits for a
        process to start; it then takes the first queued call."""
        if not on_a_thread(self._start_and_serve, "laios-process-start"):
            self._start_and_serve()  # (no thread to be had: started here)

    def _start_and_serve(self) -> None:
        worker = self.start_worker()
        if worker is not None:
            if self.initializer is not None:  # (the reader hands it its first call once its
                return  # initializer is through: see ``initialized``)
            with self.lock:
                following = self.next_for(worker)
            self.begin(worker, following)
            return
        with self.lock:  # no process could be started: with none at all, nothing will run
            if self.workers or self.starting:
                return
            refused = [call for call in self.queue if call.state == "queued"]
            self.queue.clear()
            for call in refused:
                call.state = "abandoned"
            refusal = _no_process(
                self.start_error, forkserver=self.forkserver, tries=self.start_tries
            )
        for call in refused:
            call.events.refused(refusal)

    def wake(self) -> None:
        """Make the reader look at the workers again."""
        with contextlib.suppress(OSError):
            self.wake_writer.send_bytes(b"")

    # -- running calls ---------------------------------------------------------------------

    def begin(self, worker: _Worker, call: _Call | None) -> None:
        """Send ``call`` (reserved on ``worker``) once its events say it may start; then the
        next queued call whenever one is refused, until the worker is busy or idle."""
        while call is not None:
            starting_here = self.starting_here
            outer = getattr(starting_here, "active", False)
            starting_here.active = True
            try:
                may_start = call.events.started()
            finally:
                starting_here.active = outer
            if may_start:
                with self.lock:
                    send = call.state == "reserved"  # (else abandoned since: nothing to run)
                    if send and call.events.cancel_requested:
                        # Stopped once it could start, before the runner handed back its handle
                        # (it is being handed over): it is never sent (see ``write_begins``).
                        send = False
                        call.state = "abandoned"
                        call.unsent = True
                    if send:
                        call.state = "running"
                        worker.sending += 1
                        if len(call.payload) > SEND_HERE_BYTES:  # (written on a thread of its
                            self.writing.add(call)  # own: being written from now on, see send)
                if send:
                    self.send(worker, call)
                    return
            with self.lock:  # too late to start (timed out, cancelled): the next one
                if call.state == "reserved":
                    call.state = "done"
                worker.call = None
                call = self.next_for(worker)

    def send(self, worker: _Worker, call: _Call, *, own_thread: bool = False) -> None:
        """Send a running call (counted in ``worker.sending``) to its worker; report it as
        crashed when the worker is gone and the reader, which saw it go before the call was
        sent, could not.

        The write runs outside the pool's lock (a large call takes a while), and the worker
        may die meanwhile. Its pipe is then closed only once the write is over (here, not by
        the reader): a write holds the descriptor's number, and a number closed under it
        may be given to the pipe of the worker that replaces the dead one at once, which
        would then run this call and answer it for its own next call. (A pipe the reader
        closed before the write began is refused by ``send_bytes`` with ``OSError``.)

        A call larger than :data:`SEND_HERE_BYTES` (``own_thread`` false) is handed to a
        thread of its own, whichever thread hands it to its worker: on the reader thread
        (which sends the queued calls freed workers take, and may run callbacks that submit
        calls) its write would hold every other worker's messages; on the caller's, it would
        hold the caller until the worker has read it all, past the task's timeout or
        cancellation when the worker does not read (a thread its last tool left holding the
        GIL), since the caller's side can kill the worker only once the call is handed over.
        """
        if len(call.payload) > SEND_HERE_BYTES and not own_thread:
            if not on_a_thread(self.send, "laios-process-send", worker, call, own_thread=True):
                self.send(worker, call, own_thread=True)  # (no thread to be had: written here)
            return
        if not own_thread and not self.write_begins(worker, call):
            return
        if call.cpu_seconds is not None and _WATCH_CPU:
            self.watch_cpu(worker, call, call.cpu_seconds)
        if worker.mark is not None:  # (the worker, idle, sets it as it begins the call)
            worker.mark[MARK_CALL_BEGUN] = 0.0
        try:
            with contextlib.suppress(OSError):
                worker.conn.send_bytes(call.payload)
        finally:
            with self.lock:
                if own_thread:
                    self.writing.discard(call)
                worker.sending -= 1
                gone = worker.pid not in self.workers
                if gone and not worker.sending:
                    with contextlib.suppress(OSError):
                        worker.conn.close()  # (the reader left it open for this write)
                orphaned = gone and call.state == "running"
                if orphaned:
                    call.state = "done"
        if orphaned:
            outcome = _crash_outcome(
                call,
                _exit_code(worker.process),
                self.terminated_by,
                initializing=not worker.ready,
                replacement=worker.replacement,
                pid=worker.pid,
            )
            call.events.finished(outcome)

    def write_begins(self, worker: _Worker, call: _Call) -> bool:
        """Mark a call sent here (see :meth:`send`) as being written to its worker; ``False``
        when it was given up since it was marked running (see :meth:`kill`), or its task was
        stopped meanwhile: it is not sent, and the worker, not killed, takes the next queued
        call or becomes idle."""
        with self.lock:
            if call.state == "running":
                if not call.events.cancel_requested:
                    call.written = True
                    return True
                # (stopped before its handle was handed back: see ``begin``)
                call.state = "abandoned"
                call.unsent = True
            worker.sending -= 1
            gone = worker.pid not in self.workers
            if gone and not worker.sending:
                with contextlib.suppress(OSError):
                    worker.conn.close()  # (the reader left it open for this write)
            following = self.next_for(worker) if worker.call is call else None
        if following is not None:
            self.begin(worker, following)
        return False

    def watch_cpu(self, worker: _Worker, call: _Call, budget: float) -> None:
        """Have the reader watch ``call``'s CPU budget on ``worker`` (before it is sent)."""
        if budget > LONGEST_CPU_BUDGET:  # (no budget, in the worker either)
            return
        try:
            watch = _CpuWatch(worker, call, budget)
        except OSError:  # the worker is gone: the reader reports the call
            return
        with self.lock:
            self.cpu_watches[worker.pid] = watch
        if threading.current_thread() is not self.leader:
            self.wake()  # (to wait no longer than the watch's first look)

    def check_cpu(self) -> None:
        """Look at the CPU clocks of the workers due for it; kill those past their budget."""
        now = time.monotonic()
        over: list[_Worker] = []
        with self.lock:
            for pid, watch in list(self.cpu_watches.items()):
                if watch.due > now:
                    continue
                worker = watch.worker
                if watch.call.state != "running" or worker.call is not watch.call:
                    del self.cpu_watches[pid]  # (its call ended)
                    continue
                try:
                    if not watch.over(now):
                        continue
                except OSError:  # gone: the reader sees it go
                    del self.cpu_watches[pid]
                    continue
                del self.cpu_watches[pid]
                worker.over_budget = True
                over.append(worker)
        for worker in over:
            _log.warning(
                "worker process %d running tool %r went past its CPU budget; killed",
                worker.pid,
                shown_name(worker.call.tool_name) if worker.call is not None else "?",
            )
            _kill_group(worker.pid)

    def cpu_due(self) -> float | None:
        """Seconds until the reader must look at a worker's CPU clock (``None``: no watch;
        under the lock)."""
        if not self.cpu_watches:
            return None
        due = min(watch.due for watch in self.cpu_watches.values())
        return max(due - time.monotonic(), 0.0)

    def next_for(self, worker: _Worker) -> _Call | None:
        """Reserve the next queued call on ``worker``, or make it idle (under the lock)."""
        if worker.pid not in self.workers:  # it ended meanwhile: it takes nothing more
            worker.call = None
            return None
        while self.queue:
            call = self.queue.popleft()
            if call.state == "queued":
                call.state = "reserved"
                call.worker = worker
                worker.call = call
                return call
        worker.call = None
        if self.closed:
            self.stop_worker(worker)
        else:
            self.idle.append(worker)
        self.changed.notify_all()
        return None

    def stop_worker(self, worker: _Worker) -> None:
        """Tell an idle worker to exit (under the lock)."""
        if not worker.stopping:
            self.mark_stopping(worker)
            with contextlib.suppress(OSError):
                worker.conn.send_bytes(pickle.dumps(None))
            if threading.current_thread() is not self.leader:
                self.wake()  # (to watch for its exit)

    def mark_stopping(self, worker: _Worker) -> None:
        """Note that ``worker`` exits by itself now, as it must within ``_STOP_GRACE``
        seconds (under the lock)."""
        worker.stopping = True
        worker.stop_by = time.monotonic() + _STOP_GRACE
        self.exiting[worker.pid] = worker

    def stop_due(self) -> float | None:
        """Seconds until the reader must kill a worker that has not exited by its
        ``stop_by`` (``None``: none is stopping; under the lock)."""
        if not self.exiting:
            return None
        due = min(worker.stop_by for worker in self.exiting.values())
        return max(due - time.monotonic(), 0.0)

    def check_stops(self) -> None:
        """Kill, with their groups, the workers that were to exit by now and have not (what
        they still do, a standard stream a tool put in place that never flushes, a thread
        holding the GIL, must not keep their place, or ``shutdown(wait=True)``, for ever)."""
        now = time.monotonic()
        with self.lock:
            late = [worker for worker in self.exiting.values() if worker.stop_by <= now]
            for worker in late:
                del self.exiting[worker.pid]
        for worker in late:
            _log.warning(
                "worker process %d did not exit within %.0f seconds of being stopped; killed",
                worker.pid,
                _STOP_GRACE,
            )
            _kill_group(worker.pid)

    # -- the reader thread -----------------------------------------------------------------

    def read(self) -> None:
        """Deliver every worker's messages and deaths, until the pool is closed and empty.

        A large message (announced by :data:`LARGE`) is read and loaded on a thread of its
        own (see :meth:`transfer`), and delivered here once it is in: meanwhile the reader
        goes on with the other workers, and waits for no more messages of that worker, so
        that its messages are delivered in order. A worker that ends meanwhile is reported
        once its message is in.

        Messages are delivered on the thread that reads them (no thread hop on a call's way
        back), which runs the call's callbacks then. One delivery that outlasts
        :data:`TAKE_OVER_AFTER` (a slow callback) must not hold the other workers' calls: a
        standby thread then takes over the reading of every worker but that one (whose
        messages wait, as a large one's transfer's do), and the thread held, once its delivery
        returns, hands that worker back and stands by in turn (or ends, when another one does).
        At most :data:`READER_THREADS` threads read at once.
        """
        me = threading.current_thread()
        state = _Reading(_Waiter(self.wake_reader))
        with self.lock:
            self.reading = state
            self.leader = me
            self.readers.add(me)
            self.start_standby(state)
        self.serve_reading(state, leading=True)

    def start_standby(self, state: _Reading) -> None:
        """Start a standby reader thread when there is none and the bound allows one (under
        the lock); none when no thread can be had (a delivery then holds every worker's
        messages until it returns, as with a single reader)."""
        if self.standby is not None or len(self.readers) >= READER_THREADS:
            return
        thread = threading.Thread(
            target=self.serve_reading, name="laios-process-reader", args=(state,), daemon=True
        )
        try:
            thread.start()  # (its first step waits for the lock)
        except RuntimeError:  # "can't start new thread": a process limit
            return
        self.standby = thread
        self.readers.add(thread)

    def serve_reading(self, state: _Reading, leading: bool = False) -> None:
        """A reader thread's life: read the workers while it leads, stand by otherwise."""
        me = threading.current_thread()
        taken: _Delivery | None = None
        while True:
            if not leading:
                taken = self.stand_by(state, me)
                if taken is None:
                    return
            if not self.lead(state, me, taken):
                return
            leading = False
            with self.lock:  # taken over in a delivery, which has returned: stand by
                if self.reading is not state or self.standby is not None:
                    self.readers.discard(me)
                    return
                self.standby = me

    def stand_by(self, state: _Reading, me: threading.Thread) -> _Delivery | None:
        """Wait until the reading thread's delivery outlasts :data:`TAKE_OVER_AFTER`, then
        take over the reading: the delivery taken over; ``None`` once reading is over."""
        with self.lock:
            while self.reading is state and self.standby is me:
                delivery = self.delivery
                if delivery is None:
                    # Asleep until a delivery begins (told by the reader, see ``delivering``),
                    # said before looking again, so that a delivery beginning meanwhile is seen.
                    self.standby_asleep = True
                    if self.delivery is None:
                        self.standby_wake.wait()
                    self.standby_asleep = False
                    continue
                late = delivery.since + TAKE_OVER_AFTER - time.monotonic()
                if late > 0:
                    self.standby_wake.wait(late)
                    continue
                self.leader = me
                self.standby = None
                self.delivery = None
                taken = _Delivery(delivery.worker, delivery.kind, delivery.since)
                taken.following, delivery.following = delivery.following, None
                self.stuck += 1
                self.start_standby(state)
                return taken
            self.readers.discard(me)
            if self.standby is me:
                self.standby = None
            return None

    def delivering(self, worker: _Worker, kind: str) -> _Delivery:
        """Note that the reading thread delivers ``worker``'s message or end now (``kind``:
        see :class:`_Delivery`), waking the standby thread to watch how long it takes."""
        self.delivery = delivery = _Delivery(worker, kind, time.monotonic())
        if self.standby_asleep:
            with self.lock:
                self.standby_asleep = False
                self.standby_wake.notify()
        return delivery

    def delivered(self, me: threading.Thread) -> bool:
        """The delivery :meth:`delivering` noted has returned: whether ``me`` still leads
        (``False``: it was taken over meanwhile, and hands back what it held)."""
        with self.lock:
            if self.leader is me:
                self.delivery = None
                return True
            return False

    def hand_back(self, entries: list[tuple[_Worker, tuple[Any, ...] | None, bool]]) -> None:
        """A thread taken over in a delivery hands back its worker (and what it had not done
        yet) to the reading thread."""
        with self.lock:
            self.transferred[:0] = entries
            self.stuck -= 1
        self.wake()

    def lead(self, state: _Reading, me: threading.Thread, taken: _Delivery | None) -> bool:
        """Read the workers until the pool is closed and empty (``False``), or until taken
        over in a delivery (``True``, once it has returned and been handed back)."""
        waiter = state.waiter
        watched = state.watched
        transfers = state.transfers
        ended_meanwhile = state.ended_meanwhile
        held = state.held
        if taken is not None:  # the thread taken over still delivers for this worker
            worker = taken.worker
            if taken.kind == "lost":  # (already forgotten: never watched again)
                held.add(worker)
            elif taken.kind == "message":
                waiter.forget_messages(worker)
                transfers.add(worker.pid)
            if taken.following is not None:  # (claimed from it: begun here, not after it)
                self.delivering(worker, "outcome")
                self.begin(worker, taken.following)
                if not self.delivered(me):
                    self.hand_back([])
                    return True
        while True:
            with self.lock:
                if (
                    self.closed
                    and not self.workers
                    and not self.starting
                    and not self.stuck
                    and not self.transferred
                ):
                    self.reader = None
                    self.reading = None
                    self.leader = None
                    self.standby = None
                    self.readers.discard(me)
                    self.changed.notify_all()
                    self.standby_wake.notify_all()
                    waiter.close()
                    return False
                current = dict(self.workers)
                timeout = self.cpu_due()
                stop_due = self.stop_due()
                if stop_due is not None:
                    timeout = stop_due if timeout is None else min(timeout, stop_due)
                transferred, self.transferred = self.transferred, []
            for index, (worker, message, readable) in enumerate(transferred):
                if worker in held:  # (its end, reported on a thread taken over, is over)
                    held.discard(worker)
                    continue
                transfers.discard(worker.pid)
                if message is not None:
                    kind = "message"
                    if message[0] == "done" and readable and worker.pid not in ended_meanwhile:
                        # (what it sends next is the next call's: read on, even while a slow
                        # callback delivers this outcome)
                        waiter.watch_messages(worker)
                        readable = False
                        kind = "outcome"
                    delivery = self.delivering(worker, kind)
                    self.handle(worker, message, delivery)
                    if not self.delivered(me):
                        back = [] if kind == "outcome" else [(worker, None, readable)]
                        self.hand_back([*back, *transferred[index + 1 :]])
                        return True
                if worker.pid in ended_meanwhile:
                    ended_meanwhile.discard(worker.pid)
                    watched.pop(worker.pid, None)
                    self.delivering(worker, "lost")
                    self.lost(worker)
                    if not self.delivered(me):
                        self.hand_back([(worker, None, False), *transferred[index + 1 :]])
                        return True
                elif readable:
                    waiter.watch_messages(worker)
            if transferred:
                continue  # (with the workers as they are now: one may have been lost)
            for pid in watched.keys() - current.keys():
                waiter.forget(watched.pop(pid))
            for pid in current.keys() - watched.keys():
                if current[pid] in held:
                    continue
                watched[pid] = current[pid]
                waiter.watch(current[pid])
            messages, deaths, woken = waiter.ready(timeout)
            if woken:
                with contextlib.suppress(OSError, EOFError):
                    while self.wake_reader.poll():
                        self.wake_reader.recv_bytes()
            for worker in messages:
                try:
                    data = worker.conn.recv_bytes()
                except (EOFError, OSError):
                    # The pipe is closed: the worker is gone (its sentinel says so), or a tool
                    # closed the worker's end while it runs on. Stop reading it, or every
                    # wait would return at once while the tool runs.
                    waiter.forget_messages(worker)
                    continue
                if data in (READY, INITIALIZER_RAISED):
                    following = self.initialized(worker, data == READY)
                    if following is not None:  # (its first call: begun as a next one is)
                        self.delivering(worker, "outcome")
                        self.begin(worker, following)
                        if not self.delivered(me):
                            self.hand_back([])
                            return True
                    continue
                if data == LARGE:
                    waiter.forget_messages(worker)
                    transfers.add(worker.pid)
                    if not on_a_thread(self.transfer, "laios-process-transfer", worker):
                        self.transfer(worker)  # (no thread to be had: read here, delivered next)
                    continue
                loaded = self.load_here(data)
                if loaded is not None:
                    kind = "outcome" if loaded[0] == "done" else "message"
                    delivery = self.delivering(worker, kind)
                    self.handle(worker, loaded, delivery)
                    if not self.delivered(me):
                        # (the other workers' messages and ends, still to be read, are read by
                        # the thread that took over: its waiter reports them again)
                        self.hand_back([] if kind == "outcome" else [(worker, None, True)])
                        return True
                else:  # (loaded elsewhere, as a large one)
                    waiter.forget_messages(worker)
                    transfers.add(worker.pid)
                    if not on_a_thread(
                        self.load_elsewhere, "laios-process-load", worker, data, daemon=True
                    ):
                        self.load_elsewhere(worker, data)
            for worker in deaths:
                if worker.pid in transfers:  # reported once its message is in
                    waiter.forget(worker)
                    ended_meanwhile.add(worker.pid)
                    if not worker.stopping:  # (what its tool left in its group may hold the
                        _kill_group(worker.pid, ended=True)  # pipe open: never the message)
                    continue
                waiter.forget(worker)  # (before lost() closes its pipe)
                watched.pop(worker.pid, None)
                self.delivering(worker, "lost")
                self.lost(worker)
                if not self.delivered(me):
                    self.hand_back([(worker, None, False)])
                    return True
            if timeout is not None:
                self.check_cpu()
                self.check_stops()

    def transfer(self, worker: _Worker) -> None:
        """Read and load a worker's large message (on a thread of its own), then hand it to
        the reader."""
        try:
            data = worker.conn.recv_bytes()
        except (EOFError, OSError):  # (the worker is gone, or its tool closed the pipe)
            self.hand_over(worker, None, readable=False)
            return
        message = self.load(worker, data)
        del data  # (a large message: not held while the reader reports it)
        self.hand_over(worker, message)

    def receive(self, worker: _Worker) -> None:
        """Deliver every message still waiting on ``worker``'s pipe."""
        conn = worker.conn
        try:
            while conn.poll():
                data = conn.recv_bytes()
                if data == READY:
                    worker.ready = True
                elif data != LARGE and data != INITIALIZER_RAISED:  # (a large one follows)
                    self.deliver(worker, data)
        except (EOFError, OSError):
            pass  # the pipe is closed

    def initialized(self, worker: _Worker, returned: bool) -> _Call | None:
        """``worker`` said its initializer returned (``returned``) or raised as it started:
        the call it takes first (reserved on it now), when it was waiting for that to take one
        (see ``_Worker.awaiting``); else ``None``, and it takes none, or is made idle.

        Until then a new worker takes no call: the calls wait in the queue (for the first
        worker free), and the initializer's time is their queue wait, not their tool's (its
        task starts when its worker can begin the tool). One whose initializer raised takes
        calls all the same: each tries the initializer again first (see the worker's ``run``).
        """
        with self.lock:
            if returned:
                worker.ready = True
            if not worker.awaiting:  # (it took its first call, or was stopped: see close)
                return None
            worker.awaiting = False
            return self.next_for(worker)

    def load_elsewhere(self, worker: _Worker, data: bytes) -> None:
        """Load a worker's message that :meth:`deliver_here` would not (on a thread of its
        own), then hand it to the reader."""
        message = self.load(worker, data)
        del data
        self.hand_over(worker, message)

    def hand_over(
        self, worker: _Worker, message: tuple[Any, ...] | None, readable: bool = True
    ) -> None:
        """Hand a message loaded on another thread (``None``: none; ``readable``: whether the
        pipe could be read) to the reader, which reports it."""
        with self.lock:
            self.transferred.append((worker, message, readable))
        self.wake()

    @staticmethod
    def load_here(data: bytes) -> tuple[Any, ...] | None:
        """A worker's message loaded on the reader thread, to be delivered there; ``None``
        when loading it could take long (see :func:`_load_here`): it is loaded elsewhere."""
        try:
            return _load_here(data)
        except BaseException:  # (one that fails to load is told elsewhere too, as ``load`` does)
            return None

    def deliver(self, worker: _Worker, data: bytes) -> None:
        message = self.load(worker, data)
        if message is not None:
            self.handle(worker, message)

    def load(self, worker: _Worker, data: bytes) -> tuple[Any, ...] | None:
        """A worker's message loaded; ``None`` for a progress report or checkpoint that
        cannot be (dropped: the call goes on)."""
        try:
            message: tuple[Any, ...] = pickle.loads(memoryview(data)[1:])
        except BaseException as exc:  # (``SystemExit`` too: the reader must go on)
            if data[:1] != DONE:  # a progress report or checkpoint: dropped, the call goes on
                call = worker.call
                _log.warning(
                    "a progress report or checkpoint of tool %r could not be loaded from its "
                    "worker process (%s); it was dropped",
                    shown_name(call.tool_name) if call is not None else "?",
                    type_name(type(exc)),
                )
                return None
            return ("done", _unloadable(worker, exc), False)
        return message

    def handle(
        self, worker: _Worker, message: tuple[Any, ...], delivery: _Delivery | None = None
    ) -> None:
        """Report a worker's loaded message to its call's events (``delivery``: as the
        reading thread noted it, see :meth:`delivering`)."""
        kind = message[0]
        with self.lock:
            call = worker.call
            current = call is not None and call.state == "running"
        if kind == "done":
            _, outcome, retire = message
            if isinstance(outcome, RawOutcome):
                # When the call ended, by this process's clock: as its report arrived.
                outcome.ended = time.monotonic()
            with self.lock:
                if call is not None and call.state == "running":
                    call.state = "done"
                if self.cpu_watches:
                    self.cpu_watches.pop(worker.pid, None)
                stays = not (retire or worker.killed or worker.over_budget)
                following = self.next_for(worker) if stays else None
                if following is not None and delivery is not None:
                    # (begun once the outcome is delivered, or where it was taken over: see
                    # ``lead``, which claims it under the lock)
                    delivery.following = following
                if retire:
                    worker.call = None
                    self.mark_stopping(worker)  # it exits by itself
                    if current and isinstance(
                        outcome.error, (MemoryLimitExceeded, CpuLimitExceeded)
                    ):
                        # (a worker starts in its place once it exits for the queued calls,
                        # else for the next one; none once the runner is shut down)
                        outcome.error = type(outcome.error)(
                            f"{outcome.error}; "
                            + _replacement(bool(self.queue), self.closed, self.terminated)
                        )
            if current and call is not None:
                call.events.finished(outcome)
            if following is not None and delivery is not None:
                with self.lock:
                    following, delivery.following = delivery.following, None
            if following is not None:
                self.begin(worker, following)
        elif current and call is not None:
            try:
                if kind == "progress":
                    call.events.progress(message[1], message[2], message[3])
                elif kind == "checkpoint":
                    call.events.checkpoint(message[1], message[2])
            except Exception:  # the job's own events: logged there; never stop the reader
                _log.exception("reporting a worker's event failed")

    def lost(self, worker: _Worker) -> None:
        """A worker process ended: kill what its tool left in its group, report its call
        (unless it was killed for it), replace it."""
        self.receive(worker)  # what it sent before it went
        exitcode = _exit_code(worker.process)
        # One that runs on though its sentinel says it ended closed that pipe (a ``spawn``
        # worker's, with every descriptor above 2), its pipe to the executor too: it is
        # killed with its group below, and its call told what its tool closed.
        closed_under = exitcode is None and _exists(worker.pid)
        # The forkserver tells when each of its workers ends; when it ends itself, every one of
        # them looks ended (with a made-up code), though they run on. Such a worker can no
        # longer be watched: it is stopped (below) and its call told why.
        server_gone = exitcode == _SERVER_GONE_EXIT and self.forkserver and _exists(worker.pid)
        if server_gone:  # (maybe still starting: not leading a group of its own yet)
            _kill_group(worker.pid)
        elif not worker.stopping:  # (one told to stop, or retiring, kills its group itself)
            _kill_group(worker.pid, ended=True)
        with self.lock:
            self.workers.pop(worker.pid, None)
            if not worker.sending:  # (else the write closes it once it is over: see send)
                with contextlib.suppress(OSError):
                    worker.conn.close()
            _close_pidfd(worker)  # (the reader waits on it no more)
            self.cpu_watches.pop(worker.pid, None)
            self.exiting.pop(worker.pid, None)
            with contextlib.suppress(ValueError):
                self.idle.remove(worker)
            call = worker.call
            worker.call = None
            report = call is not None and call.state == "running" and not worker.killed
            if call is not None and call.state == "running":
                call.state = "done"
            # A killed or crashed worker is replaced at once (so the next call need not wait
            # for a process to start); one that was told to stop, or that ended in the
            # initializer (its replacement would too, and so on for ever), only for queued
            # calls (a call with no worker to take it starts one).
            initializing = not worker.ready and not worker.killed and not server_gone
            # One that ended in its initializer before it took a call (see ``initialized``)
            # fails the first queued call, as it would have had it taken that call: else every
            # replacement would, and it would be replaced for as long as calls are queued.
            first = None
            if initializing and worker.awaiting and not worker.stopping and not self.terminated:
                first = self.first_queued()
                if first is not None:
                    call, report = first, True
                    first.state = "done"
                    first.worker = worker
            replace = bool(self.queue) or (
                not self.closed and not worker.stopping and not initializing
            )
            if replace:
                self.starting += 1
            worker.replacement = replacement = _replacement(replace, self.closed, self.terminated)
            self.changed.notify_all()
        if initializing and not worker.stopping and not self.terminated:
            _log.warning(
                "worker process %d ended (exit code %s) while running the process runner's "
                "initializer%s; %s",
                worker.pid,
                exitcode,
                f", before tool {shown_name(call.tool_name)!r} started" if report and call else "",
                replacement,
            )
        elif report and call is not None and not self.terminated:
            _log.warning(
                "worker process %d running tool %r ended (exit code %s); %s",
                worker.pid,
                shown_name(call.tool_name),
                exitcode,
                replacement,
            )
        if report and call is not None:
            outcome = _crash_outcome(
                call,
                PIPE_CLOSED_EXIT if closed_under else exitcode,
                self.terminated_by,
                worker.over_budget,
                server_gone=server_gone,
                initializing=initializing,
                replacement=replacement,
                pid=worker.pid,
            )
            # (a queued call, taken to fail: its task starts only now, unless too late)
            if call is not first or call.events.started():
                call.events.finished(outcome)
        if replace:
            self.start_in_background()

    def first_queued(self) -> _Call | None:
        """Take the first call still queued out of the queue (under the lock)."""
        while self.queue:
            call = self.queue.popleft()
            if call.state == "queued":
                return call
        return None

    # -- accepting calls ---------------------------------------------------------------------

    def place(self, call: _Call) -> bool:
        """Hand a pickled call to an idle worker, or queue it (starting a worker when fewer
        than ``max_workers`` run); ``False`` when the pool is closed."""
        with self.lock:
            if self.closed:
                return False
            worker, start = self.reserve_or_queue(call)
        self.dispatch(call, worker, start)
        return True

    def reserve_or_queue(self, call: _Call) -> tuple[_Worker | None, bool]:
        """Reserve an idle worker for ``call``, or queue it, counting a worker to start when
        fewer than ``max_workers`` run (under the lock): the worker reserved, and whether to
        start one (see :meth:`dispatch`)."""
        worker = self.idle.pop() if self.idle else None
        if worker is not None:
            call.state = "reserved"
            call.idle_worker = True
            call.worker = worker
            worker.call = call
            return worker, False
        call.state = "queued"
        self.queue.append(call)
        if len(self.workers) + self.starting < self.max_workers:
            self.starting += 1
            return None, True
        return None, False

    def dispatch(self, call: _Call, worker: _Worker | None, start: bool) -> None:
        """After :meth:`reserve_or_queue` (outside the lock): send ``call`` to the worker
        reserved for it, or start the worker counted."""
        if worker is not None:
            self.begin(worker, call)
        elif start:
            self.start_in_background()

    def pickle_later(self, call: _Call, portable: ToolCall) -> bool:
        """Accept ``call`` to be pickled, then placed, on one of the pool's pickling threads
        (started as needed, at most :data:`PICKLING_THREADS`); ``False`` when the pool is
        closed."""
        with self.lock:
            if self.closed:
                return False
            call.state = "pickling"
            self.pickling += 1
            self.to_pickle.append((call, portable))
            start = self.pickling_threads < PICKLING_THREADS
            if start:
                self.pickling_threads += 1
        if start and not on_a_thread(self.pickle_waiting, "laios-process-pickle"):
            self.pickle_waiting()  # (no thread to be had: pickled and placed here)
        return True

    def pickle_waiting(self) -> None:
        """Pickle and place the calls waiting for it, oldest first, until none is left (a
        pickling thread's work)."""
        while True:
            with self.lock:
                if not self.to_pickle:
                    self.pickling_threads -= 1
                    return
                call, portable = self.to_pickle.popleft()
            try:
                self.pickle_and_place(call, portable)
            except Exception:  # (the calls waiting behind it must still be served)
                _log.exception(
                    "could not hand call of tool %r to a worker", shown_name(call.tool_name)
                )
            del call, portable  # (nothing kept while waiting for the next)

    def pickle_and_place(self, call: _Call, portable: ToolCall) -> None:
        """Pickle an accepted call (on a pickling thread), then place it; refuse it when it
        cannot be pickled, or the runner was terminated meanwhile. (A call accepted before a
        shutdown still runs, as a queued one does.)

        The call stops being counted in ``pickling`` in the step that reserves a worker for
        it or queues it: ``close(wait=True)`` always has it to wait for.
        """
        refusal: Refusal | None = None
        try:
            call.payload = pickled(portable)
        except BaseException as exc:  # (``SystemExit`` too; no Ctrl-C reaches this thread)
            refusal = _not_picklable(portable, exc)
        deadline = portable.deadline
        if refusal is None and deadline is not None and time.monotonic() >= deadline:
            # Pickled past its deadline: it never starts. Its task is told now, while the call
            # still reads as being pickled (see ``preparing``), unless it ended already.
            call.events.started()  # (``False``, past its deadline: it abandons the call)
        with self.lock:
            self.pickling -= 1
            self.changed.notify_all()
            if call.state != "pickling":
                return  # given up meanwhile
            if refusal is None and self.terminated:
                refusal = SHUTDOWN
            if refusal is not None:
                call.state = "abandoned"
            else:
                worker, start = self.reserve_or_queue(call)
        if refusal is not None:
            call.events.refused(refusal)
            return
        self.dispatch(call, worker, start)

    def preparing(self, call: _Call) -> str | None:
        """See :meth:`ProcessRunner.preparing`."""
        took = getattr(call, "pickled_late", None)
        if took is not None:
            return pickled_late_words("a worker process", took)
        with self.lock:
            if call.state == "pickling":
                bound = getattr(call, "pickled_here", SEND_HERE_BYTES)
                return pickling_words("a worker process", bound)
            if call.state == "queued" and any(
                worker.awaiting and not worker.stopping for worker in self.workers.values()
            ):
                # (queued while a new worker runs the initializer: it takes a call only once
                # its initializer is through, see ``initialized``; the worker is left to it)
                return (
                    "while waiting to start (no worker was free yet: a new worker process was "
                    "still running the process runner's initializer, which had not returned); "
                    "the tool was never started"
                )
            if call.state == "reserved" and call.idle_worker:
                # (pickled on a runner's thread, which hands it to the worker set aside for it:
                # the task is recorded as started only then)
                return (
                    "while its call was being handed to its worker process (idle, set aside "
                    "for it once the call was pickled); the tool was never started"
                )
            if call in self.writing:
                return (
                    "while its call was still being written to its worker process; the tool "
                    "was never started, and the worker was stopped"
                )
            if call.unsent:
                # (given up once its worker was set aside for it, before it was sent)
                return (
                    "while its call was being handed to its worker process, before it was sent "
                    "there; the tool was never started"
                )
            worker = call.worker
            initializing = call.written and worker is not None and not worker.ready
            # (still running: a call that ended may have left its worker to the next one)
            written = call.written and call.state == "running"
        if initializing and worker is not None and not _has_messages(worker):
            # (sent to a worker whose initializer has not said it returned, and has not: the
            # worker reads a call only then; a message waiting may be that it did)
            return (
                "while its worker process was still running the process runner's initializer "
                "(it had not returned); the tool was never started, and the worker was stopped"
            )
        if written and worker is not None and _not_begun(worker):
            # (sent to a worker that had not got to it yet: one still starting up, or held up
            # on a busy machine; it is killed with the call, as one running the tool would be)
            return (
                "while its worker process had not taken its call yet (the worker was slow to "
                "get to it: still starting, or held up on a busy machine); the tool was never "
                "started, and the worker was stopped"
            )
        return None

    # -- stopping ----------------------------------------------------------------------------

    def kill(self, call: _Call) -> StopResult:
        """Give up ``call``: drop it from the queue, or kill the worker running it."""
        with self.lock:
            if call.state in ("queued", "pickling"):
                call.state = "abandoned"
                with contextlib.suppress(ValueError):
                    self.queue.remove(call)
                return "stopped"
            if call.state == "reserved" or (
                call.state == "running" and not call.written and call not in self.writing
            ):  # its worker was set aside, nothing was written yet: it is never sent
                call.state = "abandoned"
                call.unsent = True
                return "stopped"
            if call.state != "running" or call.worker is None:
                return "stopped"
            call.state = "abandoned"
            worker = call.worker
            worker.killed = True
            if worker.pid not in self.workers:  # it ended already: nothing to kill (and its
                return "stopped"  # pid may be another process's by now)
        usage = _usage_at_kill(worker)
        _kill_group(worker.pid)
        if usage is not None:
            call.usage = usage
        call.killed_on = worker_label(worker.pid)  # (as the worker names itself)
        return "killed"

    def close(self, wait: bool) -> None:
        """Refuse new calls; idle workers stop now, busy ones after their call (queued calls
        still run). With ``wait``, return once every worker has exited."""
        with self.lock:
            self.closed = True
            for worker in self.idle:
                self.stop_worker(worker)
            self.idle.clear()
            # A new worker still running the initializer, with no call left to take (see
            # ``initialized``), holds none: it is stopped now (killed, as it may run long yet).
            unneeded = []
            if not self.pickling and not any(call.state == "queued" for call in self.queue):
                unneeded = [w for w in self.workers.values() if w.awaiting and not w.stopping]
            for worker in unneeded:
                worker.awaiting = False
                self.mark_stopping(worker)
        for worker in unneeded:
            _kill_group(worker.pid)
        self.wake()
        if not wait:
            return
        with self.lock:
            if threading.current_thread() in self.readers:
                return  # (a callback on a reader thread: it cannot wait for itself)
            if getattr(self.starting_here, "active", False):
                return  # (a "started" callback: its call is sent once it returns)
            while self.workers or self.starting or self.pickling or self.reader is not None:
                self.changed.wait(1.0)

    def terminate(self, why: str = TERMINATE_CALLED) -> None:
        """Kill every worker now: running calls end ``terminated``, their error saying
        ``why`` (the first time), queued calls are refused."""
        with self.lock:
            if self.terminated_by is None:
                self.terminated_by = why
            self.closed = True
            dropped = [call for call in self.queue if call.state == "queued"]
            self.queue.clear()
            for call in dropped:
                call.state = "abandoned"
            workers = list(self.workers.values())
        for worker in workers:
            _kill_group(worker.pid)
        for call in dropped:
            with contextlib.suppress(Exception):
                call.events.refused(SHUTDOWN)
        self.wake()

    def stats(self) -> RunnerStats:
        with self.lock:
            busy = sum(1 for worker in self.workers.values() if worker.call is not None)
            return RunnerStats(
                workers=0 if self.closed else self.max_workers,
                busy=busy,
                queued=len(self.queue) + self.pickling,
            )


#: The packages whose code loading a worker's message may run on the reader thread: the
#: runner's own, the standard library's plain values, pydantic's models (their
#: ``__setstate__``).
_LOADED_HERE = frozenset(
    {
        "builtins",
        "collections",
        "copyreg",
        "datetime",
        "decimal",
        "enum",
        "fractions",
        "laios",
        "pathlib",
        "pydantic",
        "uuid",
    }
)

#: The hooks of a class that run when an object of it is loaded, or name what runs then.
_LOAD_HOOKS = ("__setstate__", "__reduce__", "__reduce_ex__", "__new__")


class _LoadElsewhere(Exception):
    """Loading a message would run code that may take long (see :func:`_load_here`)."""


def _loads_quickly(found: object) -> bool:
    """Whether what a message names loads quickly: a class none of whose load hooks is
    defined outside :data:`_LOADED_HERE` (so a plain class, a dataclass, a pydantic model, an
    exception), not a function (one a ``__reduce__`` named, which may do anything)."""
    if not isinstance(found, type):
        return False
    for klass in found.__mro__:
        hooks = vars(klass)
        for name in _LOAD_HOOKS:
            hook = hooks.get(name)
            if hook is None:
                continue
            # (where the hook's code was written: an enum's ``__new__`` is the enum module's)
            written = getattr(getattr(hook, "__func__", hook), "__module__", None)
            if not isinstance(written, str):
                written = getattr(klass, "__module__", "")
            if str(written).partition(".")[0] not in _LOADED_HERE:
                return False
    return True


#: What :class:`_ReaderUnpickler` found by module and name, that loads here.
_FOUND: dict[tuple[str, str], Any] = {}


class _ReaderUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        found = _FOUND.get((module, name))
        if found is None:
            if module not in sys.modules:  # (importing it may take any time)
                raise _LoadElsewhere
            found = super().find_class(module, name)
            if module.partition(".")[0] not in _LOADED_HERE and not _loads_quickly(found):
                raise _LoadElsewhere
            _FOUND[module, name] = found
        return found


def _load_here(data: bytes) -> tuple[Any, ...]:
    """A worker's message (``data`` past its kind byte) loaded on the reader thread.

    Raises:
        _LoadElsewhere: When loading it may run code that takes long (a function a
            ``__reduce__`` named, a class's own ``__setstate__``: they may wait on the network)
            or import a module: on the one reader thread, that would hold every other worker's
            messages meanwhile.
    """
    stream = io.BytesIO(data)
    stream.seek(1)
    message: tuple[Any, ...] = _ReaderUnpickler(stream).load()
    return message


def _not_begun(worker: _Worker) -> bool:
    """Whether ``worker`` has not begun the call last sent to it, as its call mark says
    (``False`` without one: it cannot be told)."""
    mark = worker.mark
    return mark is not None and mark[MARK_CALL_BEGUN] == 0.0


def _has_messages(worker: _Worker) -> bool:
    """Whether ``worker`` sent something not read yet (or its pipe cannot be asked); the
    reader's to read: this only looks."""
    try:
        return worker.conn.poll()
    except (OSError, EOFError, ValueError):
        return True


def pickled_late_words(destination: str, took: float) -> str:
    """A timeout's words for a call still being pickled on the caller's thread (a small one),
    to be sent to ``destination``, when its deadline passed: pickling it took ``took``
    seconds."""
    return (
        f"while its call was still being pickled to be sent to {destination} (on the caller's "
        f"thread, where a small call is pickled: it took {took:.3g}s); the tool was never "
        "started"
    )


def pickling_words(destination: str, bound: int) -> str:
    """A timeout's words for a call still being pickled on one of the runner's threads, to be
    sent to ``destination``: a call larger than ``bound`` bytes is pickled there
    (``LOOP_PICKLE_BYTES`` from an event loop's thread, ``SEND_HERE_BYTES`` from another)."""
    where = ", from an event loop's thread," if bound == LOOP_PICKLE_BYTES else ""
    return (
        f"while its call was still being pickled to be sent to {destination} (a call larger "
        f"than {bound // 1024} KiB{where} is pickled on one of the runner's threads, at most "
        f"{PICKLING_THREADS} at once); the tool was never started"
    )


def _unloadable(worker: _Worker, exc: BaseException) -> RawOutcome:
    """The outcome of the call whose result ``worker`` sent back and this process cannot
    load (``exc``), naming the worker as its other outcomes do."""
    tool = worker.call.tool_name if worker.call is not None else "?"
    return RawOutcome(
        None,
        WorkerCrashed(
            f"What tool '{shown_name(tool)}' sent back from its worker process could not be loaded "
            f"({describe_error(exc)}). Return picklable data (plain values, dataclasses, "
            "models) from tools run in processes, whose classes can be imported and rebuilt "
            "in the executor's process too (an exception class whose __init__ takes other "
            "arguments than its message needs a __reduce__)"
        ),
        worker=worker_label(worker.pid),
        error_type="not_picklable",
    )


#: Pools alive in this process: killed at interpreter exit (a worker must not outlive it).
_POOLS: weakref.WeakSet[_Pool] = weakref.WeakSet()


@atexit.register
def _terminate_all() -> None:
    for pool in list(_POOLS):
        pool.terminate(TERMINATE_EXITING)


# A process started by multiprocessing (a Dask worker, say) joins its children before its
# atexit handlers run: finalizers of a priority of 0 or more run first, so the workers are
# gone by then instead of being waited for.
multiprocessing.util.Finalize(None, _terminate_all, exitpriority=100)


class ProcessRunner:
    """Runs every tool call (sync and async tools) in a worker process that can be killed.

    Args:
        max_workers: Worker processes running tools at once (started on demand), from 1 to
            1,024.
        start_method: ``"forkserver"`` or ``"spawn"`` (default: ``DEFAULT_START_METHOD``,
            ``forkserver`` where the platform has it, except macOS, where it is ``spawn``).
            ``"fork"`` is refused: forking a threaded process can deadlock the child.
        initializer: Called once in each worker process before it serves calls (set up an
            OpenTelemetry SDK there, open connections, ...). Must be picklable. A new worker
            takes its first call only once it has returned (or raised): its time is the
            waiting calls' queue wait, not their tools' running time.
        initargs: Arguments for ``initializer``.
        preload: Modules the ``forkserver`` imports once, so that each new worker starts with
            them (the default preloads laios itself; add your tools' modules). Takes effect
            only if the process's forkserver has not started yet.

    Raises:
        ValueError: When ``max_workers`` is not a whole number from 1 to 1,024 (``True``
            included), ``start_method`` is unknown or ``"fork"``, or ``preload`` has an empty
            name or one with a leading, trailing or doubled dot.
        TypeError: When ``start_method`` is not a string, ``initializer`` is not callable, is
            an async function or cannot be pickled, ``initargs`` cannot be pickled,
            ``preload`` or ``initargs`` is a string (not a sequence of them), ``initargs`` is
            a mapping or a set, or ``preload`` has an entry that is not a string.
    """

    name = "process"
    can_stop = True
    #: Runs every tool (async ones too, on an event loop in the worker) and enforces the
    #: calls' memory and CPU limits.
    isolated = True

    def __init__(
        self,
        max_workers: int = 4,
        *,
        start_method: str | None = None,
        initializer: Callable[..., object] | None = None,
        initargs: Sequence[Any] = (),
        preload: Sequence[str] = (),
    ) -> None:
        max_workers = process_count("max_workers", max_workers)
        given = DEFAULT_START_METHOD if start_method is None else start_method
        usable = sorted(set(multiprocessing.get_all_start_methods()) - {"fork"})
        if not isinstance(given, str):
            # (refused before it is compared with the names: its own == may raise)
            raise TypeError(
                f"start_method must be one of {usable} (a string), got {number_repr(given)}"
            )
        method = as_text(given)  # (a str subclass is compared, and kept, as its text)
        if method == "fork":
            raise ValueError(
                "start_method='fork' is refused: forking a process that runs threads can "
                "deadlock the child; use 'forkserver' (Linux) or 'spawn'"
            )
        if method not in usable:
            raise ValueError(f"start_method must be one of {usable}, got {number_repr(method)}")
        for name, value in (("preload", preload), ("initargs", initargs)):
            if isinstance(value, (str, bytes)):
                raise TypeError(
                    f"{name} must be a sequence (a list or tuple), not a single string: "
                    f"got {value[:64]!r}"
                )
            if not isinstance(value, Iterable):
                raise TypeError(
                    f"{name} must be a sequence (a list or tuple), got {type(value).__name__}"
                )
        if isinstance(initargs, (Mapping, AbstractSet)):  # (keys, or items in no set order)
            raise TypeError(
                "initargs must be a sequence (a list or tuple) of the initializer's positional "
                f"arguments, got {type(initargs).__name__}: "
                + (
                    "its keys would be passed; pass keyword arguments with "
                    "functools.partial(initializer, name=value)"
                    if isinstance(initargs, Mapping)
                    else "its items have no set order"
                )
            )
        names: list[str] = []
        for module in preload:
            if not isinstance(module, str):
                raise TypeError(
                    "preload must be a sequence of module names (strings, as 'myapp.tools'), "
                    f"got {describe_for_pickle(module)[:64]} ({type(module).__name__})"
                )
            module = as_text(module)  # (multiprocessing takes only a plain str)
            if not module:
                raise ValueError(
                    "preload must be a sequence of module names (strings, as 'myapp.tools'), "
                    "got '' (an empty name stops the forkserver as it starts)"
                )
            if "" in module.split("."):
                # (no module has such a name; a relative one such as '.json' stops the
                # forkserver as it starts, as an empty one does)
                raise ValueError(
                    "preload must be a sequence of module names (strings, as 'myapp.tools'), "
                    f"got {module[:64]!r}: a module's full name has no leading, trailing or "
                    "doubled dot"
                )
            names.append(module)
        preload = tuple(names)
        if initializer is not None and not callable(initializer):
            raise TypeError(f"initializer must be callable, got {type(initializer).__name__}")
        if initializer is not None and is_coroutine_function(initializer):
            # (a worker calls it and never awaits it: its setup would never run)
            raise TypeError(
                "initializer must be a plain function, not an async function: each worker "
                "calls it and never awaits the coroutine it returns (pass a plain def)"
            )
        if initializer is not None:
            try:
                pickle.dumps(initializer, pickle.HIGHEST_PROTOCOL)
            except Exception as exc:
                raise TypeError(
                    "initializer must be picklable (a module-level function), got "
                    f"{describe_for_pickle(initializer)} ({describe_error(exc)})"
                ) from exc
        initargs = tuple(initargs)
        try:  # (they go to each worker as it starts, pickled with the initializer)
            pickle.dumps(initargs, pickle.HIGHEST_PROTOCOL)
        except RuntimeError:  # (a multiprocessing queue or lock: picklable only while a
            # process starts, which is when the runner sends them)
            pass
        except Exception as exc:
            raise TypeError(
                f"initargs must be picklable, got {describe_for_pickle(initargs)} "
                f"({describe_error(exc)})"
            ) from exc
        context = multiprocessing.get_context(method)
        if method == "forkserver":
            # (the last one gives the processes the forkserver starts for other code SIGINT
            # back, see ``forkserver_children``)
            modules = [
                "laios.execution._runners.process_worker",
                *preload,
                "laios.execution._runners.forkserver_children",
            ]
            context.set_forkserver_preload(modules)
        self.max_workers = max_workers
        self.start_method = method
        self._pool = _Pool(max_workers, context, initializer, initargs)
        _POOLS.add(self._pool)
        # (On a thread of its own: the collector may finalize the runner on a thread that
        # holds the pool's lock, its reader thread say, which terminate takes.)
        self._finalizer = finalize_elsewhere(self, self._pool.terminate, TERMINATE_COLLECTED)

    @property
    def stats(self) -> RunnerStats:
        """Worker processes allowed, calls running and calls queued."""
        return self._pool.stats()

    @property
    def closed(self) -> bool:
        """Whether :meth:`shutdown` was called."""
        return self._pool.closed

    def worker_pids(self) -> list[int]:
        """The process ids of the worker processes alive now."""
        with self._pool.lock:
            return list(self._pool.workers)

    def submit(self, call: ToolCall, events: RunEvents) -> Handle | Refusal:
        """Queue ``call`` for a worker process, or refuse it (shut down, not picklable).

        A call is pickled on the caller's thread only up to :data:`SEND_HERE_BYTES` (on the
        thread of a running event loop, ``execute_async`` or ``execute_parallel``, up to
        :data:`LOOP_PICKLE_BYTES`): a larger one is accepted at once and pickled, then sent,
        on one of a few threads of the runner's (see :data:`PICKLING_THREADS`; refused from
        there when it cannot be pickled), so that neither the loop nor the caller waiting for
        its task's timeout is held meanwhile.
        """
        on_loop = on_event_loop()
        deadline = call.deadline
        began = time.monotonic() if deadline is not None else 0.0
        try:  # (a call is pickled without its context)
            payload: bytes | None = pickled(call, LOOP_PICKLE_BYTES if on_loop else SEND_HERE_BYTES)
        except TooLarge:
            payload = None
        except KeyboardInterrupt:
            raise  # (the caller's Ctrl-C: the executor records the task and lets it go on)
        except BaseException as exc:  # (a ``__reduce__`` may raise ``SystemExit`` too)
            return _not_picklable(call, exc, LOOP_PICKLE_BYTES if on_loop else None)
        if _UNENFORCED_LIMITS:  # (never on Linux)
            _warn_unenforced(call)
        pool = self._pool
        handle = _Call(
            events, payload or b"", call.tool_name, call.cpu_seconds, call.memory_limit_mb
        )
        if payload is not None:
            if deadline is not None:
                now = time.monotonic()
                if now >= deadline:
                    # Pickled past its deadline: it never starts, and is not placed. Its task
                    # times out as its caller finds the deadline passed, the message saying
                    # why (see ``preparing``), and gives it up (nothing to stop).
                    handle.pickled_late = now - began
                    return handle
            return handle if pool.place(handle) else SHUTDOWN
        # (pickled later without the caller's context, which it does not keep alive meanwhile)
        portable = copy.copy(call)  # (a subclass's every attribute too)
        portable.context = None
        handle.pickled_here = LOOP_PICKLE_BYTES if on_loop else SEND_HERE_BYTES
        return handle if pool.pickle_later(handle, portable) else SHUTDOWN

    def preparing(self, handle: Handle) -> str | None:
        """Where ``handle``'s call is when the runner still prepares it (it is pickled, or
        waits for a thread to pickle it; it was pickled after its deadline; it is handed to the
        idle worker set aside for it; it is written to its worker; it is queued while a new
        worker runs the initializer; it waits in a worker trying again an initializer that
        raised, or not yet taken by its worker, as the worker's call mark says), or where it
        was given up before it was sent to its worker, in words that end a timeout's message
        (and, after a cancellation, say the tool never started); ``None`` otherwise."""
        assert isinstance(handle, _Call)
        return self._pool.preparing(handle)

    def abandon(self, handle: Handle) -> StopResult:
        """Kill the worker running the call (and its process group), or drop the call from
        the queue; the worker is replaced at once."""
        assert isinstance(handle, _Call)
        return self._pool.kill(handle)

    def usage_at_kill(self, handle: Handle) -> tuple[float, float] | None:
        """What ``handle``'s call had used when :meth:`abandon` killed its worker for it, read
        just before the kill: CPU seconds since the call began and peak memory in MB (``0.0``:
        not measured); ``None`` when its worker was not killed for it, or they could not be
        read (see :func:`_usage_at_kill`)."""
        return getattr(handle, "usage", None)

    def worker_at_kill(self, handle: Handle) -> str | None:
        """Which worker :meth:`abandon` killed for ``handle``'s call, in the words a worker
        uses for a call it completed (``"pid 4242"``); ``None`` when none was killed for it."""
        return getattr(handle, "killed_on", None)

    def shutdown(self, wait: bool = True) -> None:
        """Refuse new calls; queued and running calls finish, then the workers exit. With
        ``wait``, return once every worker process has exited.

        Raises:
            TypeError: When ``wait`` is not ``True`` or ``False`` (or ``0``/``1``), as
                ``Executor.shutdown`` says. Nothing is shut down then.
        """
        self._pool.close(switch("wait", wait))
        # (Collected, the runner would be terminated: its calls under way must finish.)
        detach(self._finalizer)

    def terminate(self) -> None:
        """Kill every worker process now: running calls end as failed (``error_type``
        ``terminated``), queued ones are refused."""
        self._pool.terminate()
        detach(self._finalizer)  # (nothing left for it to do)

    def __repr__(self) -> str:
        return f"ProcessRunner(max_workers={self.max_workers}, start_method={self.start_method!r})"


def _server_ended(exc: BaseException) -> bool:
    """Whether a worker start failed because the forkserver process ended as it started it
    (it closed its end of the socket or pipes the start goes through)."""
    return isinstance(exc, (EOFError, ConnectionError))


_IMPORTING_MAIN = (
    "this process is itself a worker process or a forkserver, importing the program's main "
    "module, and that module runs tasks when it is imported"
)
_GUARD_MAIN = (
    'Put the code that runs tasks under `if __name__ == "__main__":` in the main module (or in '
    "a function it calls there)"
)
#: The process that logged that its main module runs tasks when imported (once a process).
_told_main_pid: int | None = None


def _importing_main(exc: BaseException) -> bool:
    """Whether ``exc`` is ``multiprocessing``'s refusal to start a process in a process that
    imports the program's main module to start as a worker or a forkserver (a main module
    that runs tasks when imported)."""
    return isinstance(exc, RuntimeError) and "bootstrapping phase" in str(exc)


def _told_to_guard_main() -> None:
    """Log, in one line and once in this process, that its main module runs tasks when it is
    imported (each of its tasks is refused, saying so; ``multiprocessing``'s own message is a
    page long, and the same for each start tried)."""
    global _told_main_pid
    pid = os.getpid()  # (a process forked from this one has not said it yet)
    if _told_main_pid == pid:
        _log.debug("could not start a worker process: %s", _IMPORTING_MAIN)
        return
    _told_main_pid = pid
    _log.error(
        "could not start a worker process: %s (the tasks it runs here are refused). %s",
        _IMPORTING_MAIN,
        _GUARD_MAIN,
    )


class _MainNotImportable(RuntimeError):
    """The program's main module has no file a worker process could import it from."""


#: The process that logged that its main module cannot be imported in a worker (once a process).
_told_unimportable_pid: int | None = None


def _check_main_importable() -> None:
    """Raise :class:`_MainNotImportable` when a worker process could not import the program's
    main module as it starts.

    ``multiprocessing`` runs the main module's file again in each process it starts with
    ``spawn`` or ``forkserver`` (unless the module was run by name, ``python -m``), so that
    what it defines can be loaded there; a program Python read from standard input
    (``python -``, a script piped to it; its ``__file__`` is ``"<stdin>"``) or from a pipe
    (``python <(...)``), or whose file is gone, has no file there: each worker would end as it
    starts, with a ``FileNotFoundError`` of ``multiprocessing``'s own. The path is the one
    ``multiprocessing`` would send (see :func:`laios._compat.multiprocessing.main_file`)."""
    path = main_file()
    if path is None:  # (a module run by name, an interactive session: nothing to import)
        return
    if getattr(sys, "frozen", False):
        # (a frozen program, PyInstaller's and the like, starts its workers through its own
        # executable, which sets up their main module itself: its main file, inside the
        # bundle, need not exist)
        return
    if os.path.splitext(os.path.basename(path))[0] == "ipython" or os.path.isfile(path):
        return  # (multiprocessing imports no IPython main)
    if os.path.basename(path) == "<stdin>":
        where = (
            "the program's main module was read from standard input (python -, or a script "
            "piped to python), and a worker process, which runs the main module's file again "
            "as it starts, has no file to run"
        )
    else:
        where = (
            f"the program's main module, whose file ({path!r}) a worker process runs again as "
            "it starts, is not a file there (a program read from a pipe, or a file removed "
            "since)"
        )
    raise _MainNotImportable(
        f"{where}; the task was not started. Run the program from a file (python program.py), "
        "or as a module (python -m package.program), with the tools it runs in an importable "
        "module"
    )


def _told_main_not_importable(exc: _MainNotImportable) -> None:
    """Log, in one line and once in this process, that its main module cannot be imported
    in a worker process (each of its tasks is refused, saying so)."""
    global _told_unimportable_pid
    pid = os.getpid()
    if _told_unimportable_pid == pid:
        _log.debug("could not start a worker process: %s", exc)
        return
    _told_unimportable_pid = pid
    _log.error("could not start a worker process: %s", exc)


def _no_thread(exc: BaseException) -> bool:
    """Whether ``exc`` is Python's refusal of a new thread (a process or memory limit)."""
    return isinstance(exc, RuntimeError) and "can't start new thread" in str(exc)


def _no_process(exc: Exception | None, *, forkserver: bool, tries: int = 1) -> Refusal:
    """The refusal of calls no worker process could be started for (by a forkserver, or
    not; tried ``tries`` times), saying why."""
    why = "" if exc is None else f"{type(exc).__name__}: {str(exc)[:200]}"
    if exc is not None and forkserver and _server_ended(exc):
        if tries > 1:  # (a forkserver had started workers: its preloads imported, once)
            return Refusal(
                "no_process",
                f"Executor could not start a worker process ({why}): the forkserver process, "
                f"which starts them, ended as it started one, {tries} times in a row, after it "
                "had started others in this program: something ends it, a kill (maybe by a "
                "tool: a worker's parent process is the forkserver, not your program) or a "
                "module in the preload of a runner made since, which raises when imported (its "
                "traceback is then on stderr); the task was not started. Stop what ends it, "
                "then submit the task again",
            )
        return Refusal(
            "no_process",
            f"Executor could not start a worker process ({why}): the forkserver process ended "
            "as it started the first one, before it started any; the task was not started. A "
            "module in the runner's preload that raises when imported ends the forkserver (its "
            "traceback is on stderr): fix or remove it, then submit the task again",
        )
    if isinstance(exc, _MainNotImportable):
        return Refusal("no_process", f"Executor could not start a worker process: {exc}")
    if exc is not None and _importing_main(exc):
        return Refusal(
            "no_process",
            f"Executor could not start a worker process: {_IMPORTING_MAIN}; the task was not "
            f"started. {_GUARD_MAIN}",
        )
    if exc is None or isinstance(exc, OSError) or _no_thread(exc):
        return Refusal(
            "no_process",
            f"Executor could not start a worker process (the system refused{': ' if why else ''}"
            f"{why}); the task was not started. Check the process limit and memory, or lower "
            "max_workers",
        )
    return Refusal(
        "no_process",
        f"Executor could not start a worker process ({why}); the task was not started. What "
        "is sent to each worker, the runner's initializer and initargs, must be picklable",
    )
