"""The child side of the process runner: one worker process, one tool call at a time.

A worker is started by :class:`~laios.execution._runners.process.ProcessRunner` with the
``forkserver`` (Linux) or ``spawn`` start method. It makes itself the leader of a new process
group (so that killing the group also kills any process a tool started), runs the runner's
``initializer`` once, then serves calls from its connection until it is told to stop:

* parent to child: a pickled :class:`~laios.execution._runners.base.ToolCall` (without its
  ``contextvars`` context), or ``None`` to stop;
* child to parent, in order: ``("progress", percent, message, details)`` and
  ``("checkpoint", name, data)`` while the tool runs, then ``("done", outcome, retire)``; each
  pickled after a byte saying which it is (:data:`EVENT` or :data:`DONE`), so that the caller
  knows what a message it cannot unpickle was; one larger than :data:`LARGE_MESSAGE_BYTES`
  comes just after a message of its own, :data:`LARGE`; and once, when the runner's
  ``initializer`` first returns, :data:`READY` alone (so that a worker that ends before it
  said so is known to have ended in its initializer; the caller's side hands a new worker its
  first call only then, so that the initializer's time is the call's queue wait, not the
  tool's), or :data:`INITIALIZER_RAISED` alone when it raised as the worker started (the
  worker serves calls all the same, trying it again before each).

Around each call the worker sets the call's limits (``RLIMIT_DATA`` for memory, kept while
the outcome is pickled to be sent back; for the CPU budget a ``ITIMER_PROF`` timer whose signal
ends the process, with ``RLIMIT_CPU`` as a backstop; soft limits only, restored after the
call), measures the call's CPU seconds (``time.process_time``, plus ``RUSAGE_CHILDREN``'s
growth: children reaped during the call) and peak resident memory (see :class:`_PeakMemory`),
and makes the caller's trace context and baggage current (W3C ``traceparent`` and ``baggage``),
so spans a tool opens here join the caller's trace when this process has an OpenTelemetry SDK
(set up by the initializer), and the tool reads the caller's baggage.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import errno
import logging
import math
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Mapping, Sequence
from contextvars import Token
from multiprocessing.connection import Connection, wait
from typing import Any, NamedTuple

from laios._compat.multiprocessing import forkserver_in_child
from laios._compat.otel import (
    global_logger_provider,
    global_meter_provider,
    global_tracer_provider,
)
from laios._exceptions import type_name
from laios._interrupts import discard_pending_sigint
from laios._text import shorten, shown_name
from laios.execution._checks import of_kind
from laios.execution._records import (
    UNPRINTABLE_KEY,
    UNPRINTABLE_MESSAGE,
    UNPRINTABLE_NAME,
    mapping_copy,
    sendable,
)
from laios.execution._runners.base import RawOutcome, Refusal, ToolCall
from laios.execution._runners.invoke import (
    WatchedCall,
    call_tool,
    call_tool_async,
    is_async_tool,
    take_pending_cancellation,
    unasked_cancellation,
)
from laios.execution.redaction import (
    MAX_TRACEBACK_BYTES,
    scrub,
    scrub_head,
    scrubbed_traceback,
    secret_fields_of_tool,
    secret_values,
    secret_values_before_run,
    secret_values_now_and_before,
)
from laios.execution.tracing import exception_stacktrace, stacktrace_then
from laios.tools.registry import returned_coroutine

__all__ = [
    "CPU_BUDGET_ENFORCED",
    "DONE",
    "EVENT",
    "INITIALIZER_RAISED",
    "LARGE",
    "LARGE_MESSAGE_BYTES",
    "LONGEST_CPU_BUDGET",
    "MARK_CALL_BEGUN",
    "MARK_CPU_START",
    "MARK_PEAK_MEASURED",
    "MARK_SIZE",
    "MEMORY_LIMIT_ENFORCED",
    "PIPE_CLOSED_EXIT",
    "READY",
    "SIMPLE_TOOL_ADVICE",
    "WORKER_NAME",
    "CpuLimitExceeded",
    "InitializerFailed",
    "MemoryLimitExceeded",
    "ToolNotLoadable",
    "ToolNotPicklable",
    "UnpicklablePart",
    "call_secrets",
    "cpu_budget_words",
    "describe_error",
    "describe_for_pickle",
    "not_picklable_outcome",
    "pickled_message",
    "serve",
    "status_kb",
    "unpicklable_advice",
    "unpicklable_part",
    "worker_label",
]

try:  # POSIX only: limits are enforced where the platform has them
    import resource
except ImportError:  # pragma: no cover (Windows)
    resource = None  # type: ignore[assignment]

_MB = 1024 * 1024

#: Whether a worker can enforce a call's memory limit here: ``RLIMIT_DATA`` counts a
#: process's heap and private anonymous mappings (where Python allocates) on Linux 4.7+ only.
MEMORY_LIMIT_ENFORCED = resource is not None and sys.platform == "linux"

#: Whether a worker can enforce a call's CPU budget here (a CPU timer, or ``RLIMIT_CPU``).
CPU_BUDGET_ENFORCED = hasattr(signal, "setitimer") or resource is not None

#: The advice, in a refusal of a tool that cannot be pickled, for a tool made by
#: ``create_simple_tool``: it has no class of the user's to move, its function travels.
SIMPLE_TOOL_ADVICE = (
    "for a tool from create_simple_tool, pass it a module-level function, not a lambda or a "
    "function defined inside another"
)

#: The first byte of a message from a worker: a progress report or checkpoint, or an outcome.
EVENT = b"e"
DONE = b"d"
#: A message of its own sent just before a message larger than :data:`LARGE_MESSAGE_BYTES`:
#: the caller's reader thread then reads that one on a thread of its own, so that its
#: transfer holds no other worker's messages.
LARGE = b"l"
LARGE_MESSAGE_BYTES = 1024 * 1024
#: The message a worker sends once, when the runner's ``initializer`` first returned (never
#: without one): until then, a worker that ends ended in its initializer.
READY = b"r"
#: The message a worker sends when the runner's ``initializer`` raised as it started: it
#: takes calls all the same (each one tries the initializer again first, and fails naming
#: its error while it raises; see ``_Worker.run``).
INITIALIZER_RAISED = b"i"

#: The largest resource limit the platform takes (``setrlimit`` takes a C ``long long``): a
#: memory limit past it limits nothing and is not set.
_LARGEST_LIMIT = 2**63 - 1

#: The exit code of a worker that could not send a call's outcome because its end of the pipe
#: to the caller was closed under it (by the tool: ``os.closerange``, say), or closed and its
#: descriptor number taken by something the tool opened since. A tool that calls
#: ``os._exit(86)`` is taken for one that closed the pipe.
PIPE_CLOSED_EXIT = 86

#: The name of every worker process (``multiprocessing.current_process().name`` there).
WORKER_NAME = "laios-process-worker"


def worker_label(pid: int) -> str:
    """How a call's outcome names the worker process that ran it (``"pid 4242"``)."""
    return f"pid {pid}"


#: The longest CPU budget set, in seconds (about 68 years; a CPU timer cannot hold much more
#: on every platform): a budget past it is no budget.
LONGEST_CPU_BUDGET = float(2**31 - 1)


class CpuLimitExceeded(Exception):
    """A tool used more CPU seconds than its budget (``cpu_limit_percent``)."""


class MemoryLimitExceeded(MemoryError):
    """A tool allocated past the task's ``memory_limit_mb`` (raised in place of the tool's
    ``MemoryError``; the worker that hit it is not reused)."""


class ToolNotPicklable(Exception):
    """What a tool returned or raised could not be sent back from the worker process."""


class _ChildEvents:
    """One call's :class:`~laios.execution.task_context.TaskEvents` inside the worker: sends
    progress and checkpoints to the caller, in order, until the call ends.

    Every message of the worker goes under one lock (a tool's threads may report at once),
    and a call's events are closed under it before its outcome is sent: what a thread of the
    tool reports later is dropped, never taken for the worker's next call.

    ``cancel_requested`` is false while the call runs (a cancellation kills the worker:
    nothing to notice here) and true once it has ended, as on the caller's side: a thread
    or an asyncio task the tool left behind in the worker, which serves later calls, sees
    its task finished and can stop.
    """

    def __init__(
        self,
        conn: Connection,
        lock: threading.Lock,
        parameters: Mapping[str, Any] | None = None,
        tool: Any = None,
        pipe: tuple[int, int] | None = None,
    ) -> None:
        self._conn = conn
        self._lock = lock
        self._pipe = pipe  # what ``conn`` is open on (see :func:`_send_on_pipe`)
        self._open = True
        self._pid = os.getpid()
        self._parameters = parameters
        self._tool = tool  # (its input model may declare secrets by type)
        # Read before the tool runs: it may take a secret out of a nested parameter.
        self._secrets_before = secret_values_before_run(parameters, tool)

    def secrets(self) -> list[str]:
        """The call's secret values, scrubbed from the description of a value that cannot be
        pickled before that description is cut (a cut secret could no longer be found).
        Never raises: parameters that cannot be walked give none (the caller's side reports
        that fault)."""
        if not self._parameters:
            return []
        try:
            fields = secret_fields_of_tool(self._tool)
            return secret_values_now_and_before(self._parameters, self._secrets_before, fields)
        except Exception:
            return []

    @property
    def cancel_requested(self) -> bool:
        """Whether the call has ended (see the class)."""
        return not self._open

    def close(self) -> None:
        """The call ended: report nothing more (call with the worker's send lock held)."""
        self._open = False

    # A name and a message go as text, as the caller's side records them (see sendable):
    # one that cannot be pickled would go as its description, one that cannot be printed as
    # its class's name, where a tool on a thread has the placeholder; and the caller's side
    # warns of one that cannot be printed, where the application's logging is.
    def progress(self, percent: float, message: str | None, details: dict[str, Any]) -> None:
        text = None if message is None else sendable(message, UNPRINTABLE_MESSAGE)
        self._send(("progress", percent, text, details))

    def checkpoint(self, name: str, data: Mapping[str, Any] | None) -> None:
        self._send(("checkpoint", sendable(name, UNPRINTABLE_NAME), mapping_copy(data)))

    def _send(self, message: tuple[Any, ...]) -> None:
        if os.getpid() != self._pid:  # a process the tool forked: not the worker's to say
            return
        data = pickled_message(message, self.secrets)
        with self._lock:
            if self._open:
                _send_on_pipe(self._conn, self._pipe, EVENT + data)

    # (a worker never calls these: the caller's side decides when a call starts and ends)
    def started(self) -> bool:
        return True

    def finished(self, outcome: RawOutcome) -> None:
        pass

    def refused(self, refusal: Any) -> None:
        pass


def _send_on_pipe(conn: Connection, pipe: tuple[int, int] | None, data: bytes) -> None:
    """Send ``data`` on the worker's end of its pipe, unless the descriptor is no longer open
    on that pipe (``pipe``, its device and inode when the worker started).

    A tool may close the descriptor, then open a file or socket that is given the same
    number: without this check the worker would write the message into the tool's file and
    wait for the next call on it. One ``fstat`` (about a microsecond) per message.

    Raises:
        OSError: When the descriptor is closed, or open on something else.
    """
    if _identity(conn.fileno()) != pipe:
        raise OSError(errno.EBADF, "the worker's end of the pipe was closed under it")
    if len(data) > LARGE_MESSAGE_BYTES:
        conn.send_bytes(LARGE)
    conn.send_bytes(data)


def _cut(text: str) -> str:
    """``text`` cut to 200 characters for a message (the cut marked with ``...``)."""
    return text if len(text) <= 200 else text[:197] + "..."


class UnpicklablePart(NamedTuple):
    """What in a call cannot be pickled on its own: its tool, or a parameter. Names only:
    a value never appears in it (it may be a secret)."""

    #: Whether it is the call's tool (else one of its parameters).
    is_tool: bool
    #: The tool's name, or the parameter's, cut to 64 characters.
    name: str
    #: The name of the value's type, cut to 64 characters.
    kind: str

    def __str__(self) -> str:
        what = "tool" if self.is_tool else "parameter"
        return f"its {what} '{self.name}' ({self.kind})"


def unpicklable_advice(part: UnpicklablePart, module: str, run_where: str) -> str:
    """What to do, in a refusal naming ``part``: ``module`` says where the tool's class goes
    (``"an importable module"``), ``run_where`` where tools run (``"in processes"``)."""
    if part.is_tool:
        return (
            f"Define the tool class at module level in {module} (not inside a function), "
            f"with picklable attributes; {SIMPLE_TOOL_ADVICE}"
        )
    return (
        f"Pass plain, picklable values as the parameters of tools run {run_where} (numbers, "
        "strings, lists, dicts, dataclasses, models), not functions, locks, open files or "
        "connections"
    )


def coroutine_refusal(call: ToolCall, destination: str) -> Refusal | None:
    """The ``not_picklable`` refusal of ``call`` when its tool is a coroutine (a plain
    ``get_tool`` around an async lookup: closed, see :func:`returned_coroutine`), saying what
    is wrong with it rather than that it cannot be pickled; ``destination`` is where it could
    not be sent (``"a worker process"``). ``None`` for a call of a tool."""
    coroutine = returned_coroutine(call.tool)
    if coroutine is None:
        return None
    return Refusal(
        "not_picklable",
        f"Task '{shorten(call.task_id, 128)}' cannot be sent to {destination}: the tool "
        f"registry returned {coroutine}",
    )


def call_secrets(call: ToolCall) -> list[str]:
    """The secret values of ``call``'s parameters, to scrub from a message about it; none
    when they cannot be walked."""
    try:
        return secret_values(call.parameters, secret_fields_of_tool(call.tool))
    except Exception:
        return []


def _dumps(value: Any) -> object:
    return pickle.dumps(value, pickle.HIGHEST_PROTOCOL)


def unpicklable_part(
    call: ToolCall,
    dumps: Callable[[Any], object] = _dumps,
    *,
    undecided: tuple[type[BaseException], ...] = (),
) -> UnpicklablePart | None:
    """The first part of ``call`` that ``dumps`` (``pickle.dumps`` by default) fails on alone:
    its tool, then each parameter in turn; to name in the refusal of a call that cannot be
    pickled. ``None`` when each part pickles alone, or ``dumps`` raises one of ``undecided``
    first (nothing can be said). ``KeyboardInterrupt`` goes on to the caller; any other
    exception (``SystemExit`` from a ``__reduce__`` too) marks the part."""
    candidates: list[tuple[bool, str, Any]] = [(True, call.tool_name, call.tool)]
    parameters = call.parameters
    if isinstance(parameters, dict):
        candidates.extend((False, str(name), value) for name, value in parameters.items())
    for is_tool, name, value in candidates:
        try:
            dumps(value)
        except undecided:
            return None
        except KeyboardInterrupt:
            raise
        except BaseException:
            return UnpicklablePart(is_tool, name[:64], type_name(type(value))[:64])
    return None


def describe_error(exc: BaseException, secrets: Sequence[str] = ()) -> str:
    """``exc`` as ``Type: text`` for a message: scrubbed of ``secrets``, cut to 200
    characters; ``?`` for a text that cannot be made (whatever its ``__str__`` raises:
    ``SystemExit`` too, which would end the worker, or the caller's reader thread). Never
    raises."""
    try:
        text = str(exc)
    except BaseException:
        text = "?"
    return f"{type_name(type(exc))}: {scrub_head(text, secrets, 200)}"


def describe_for_pickle(value: Any, secrets: Sequence[str] = ()) -> str:
    """A short text standing in for a value that cannot be pickled: its ``repr``, scrubbed of
    ``secrets`` (see :func:`~laios.execution.redaction.scrub_head`) before it is cut to 200
    characters, so a secret across the cut leaves nothing behind."""
    try:
        text = repr(value)
    except BaseException:  # (``SystemExit`` too: it would end the worker)
        text = f"<{type_name(type(value))}>"
    if secrets:
        return scrub_head(text, secrets, 200)
    return _cut(text)


def pickled_message(
    message: tuple[Any, ...], secrets: Callable[[], Sequence[str]] | None = None
) -> bytes:
    """``message`` pickled for the caller's side; a part after the first that cannot be
    pickled goes as its description (a mapping keeps its keys, each value described),
    scrubbed of ``secrets()`` (read only then). Whatever a part's pickling raises (``SystemExit``
    too: ``progress`` and ``checkpoint`` raise nothing into the tool) but a
    ``KeyboardInterrupt`` (a Ctrl-C, the tool's to get) makes it go as its description."""
    try:
        return pickle.dumps(message, pickle.HIGHEST_PROTOCOL)
    except KeyboardInterrupt:
        raise
    except BaseException:
        first, *parts = message
        hidden = secrets() if secrets is not None else ()
        portable = (_portable(part, hidden) for part in parts)
        return pickle.dumps((first, *portable), pickle.HIGHEST_PROTOCOL)


def _portable(value: Any, secrets: Sequence[str]) -> Any:
    try:
        pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
    except KeyboardInterrupt:
        raise
    except BaseException:
        # (a value whose __class__ raises, a proxy's, is no dict: it goes as its description)
        if of_kind(value, dict):
            return {_key_text(key): _portable(item, secrets) for key, item in value.items()}
        return describe_for_pickle(value, secrets)
    return value


def _key_text(key: Any) -> str:
    """A key of a mapping that cannot be pickled, as its text, as the caller's side writes a
    key: a string as its own text (a ``(str, Enum)`` member its value), anything else as its
    ``str()``, else its ``repr()``, else :data:`UNPRINTABLE_KEY` (whatever they raise, but a
    ``KeyboardInterrupt``: ``checkpoint`` raises nothing of a key's own)."""
    if of_kind(key, str):
        return str.__str__(key)
    for read in (str, repr):
        try:
            return str.__str__(read(key))
        except KeyboardInterrupt:
            raise
        except BaseException:
            pass
    return UNPRINTABLE_KEY


# -- measuring and limiting ----------------------------------------------------------------


class _PeakMemory:
    """The process's peak resident memory (``VmHWM``), reset before each call.

    On Linux, writing ``5`` to ``/proc/self/clear_refs`` resets the peak to the current
    resident size; both files stay open for the worker's life (a read costs a few
    microseconds). Elsewhere only a worker's first call is measured (later ones report 0.0:
    the process-wide peak would be an earlier call's).
    """

    def __init__(self) -> None:
        self.reset_fd: int | None = None
        self.status_fd: int | None = None
        self.first = True
        try:
            self.reset_fd = os.open("/proc/self/clear_refs", os.O_WRONLY)
            self.status_fd = os.open("/proc/self/status", os.O_RDONLY)
        except OSError:
            pass

    def reset(self) -> bool:
        """Start measuring a call; ``False`` when its peak cannot be measured."""
        first, self.first = self.first, False
        if self.reset_fd is None:
            return first
        try:
            os.write(self.reset_fd, b"5")
        except OSError:
            return False
        return True

    def read_mb(self) -> float:
        """The peak since :meth:`reset`, in MB."""
        if self.status_fd is not None:
            peak = status_kb(os.pread(self.status_fd, 8192, 0), b"VmHWM:")
            if peak is not None:
                return peak / 1024
        if resource is not None:  # ru_maxrss: kB on Linux, bytes on macOS
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            return peak / _MB if sys.platform == "darwin" else peak / 1024
        return 0.0


def _data_size(status_fd: int | None = None) -> int:
    """This process's data size in bytes (``VmData``: heap and private anonymous mappings,
    what ``RLIMIT_DATA`` limits: the stacks of the threads it starts too; mapped files are
    not in it).

    ``status_fd``: ``/proc/self/status`` kept open (see :class:`_PeakMemory`), read without
    opening a file: a tool may have left no descriptor free."""
    if status_fd is not None:
        status = os.pread(status_fd, 8192, 0)
    else:
        with open("/proc/self/status", "rb") as handle:
            status = handle.read()
    return (status_kb(status, b"VmData:") or 0) * 1024


def status_kb(status: bytes, field: bytes) -> int | None:
    """The value in kB of ``field`` (``b"VmHWM:"``) in ``status``, the text of a process's
    ``/proc/<pid>/status``; ``None`` when it has no such field."""
    start = status.find(field)
    if start < 0:
        return None
    return int(status[start + len(field) : status.index(b"kB", start)])


class _SoftLimit:
    """Lower the soft limit ``which`` to ``value`` for the block (never above the hard limit;
    the hard limit is left alone, so that the soft one can be raised again); ``None``: leave
    it as it is.

    Entered, it is the limit as the block found it, whose :meth:`changed` tells whether the
    tool changed it for good. A tool may have lowered the hard limit below the soft one to put
    back: the soft limit is then put back as far as the hard one allows, never raising an
    error. (A class, not a generator: it is entered around every call, where a generator's
    context manager costs more than the limit it reads.)
    """

    __slots__ = ("before", "value", "which")

    def __init__(self, which: int, value: int | None) -> None:
        self.which = which
        self.value = value
        self.before = resource.getrlimit(which) if resource is not None else None

    def __enter__(self) -> _SoftLimit:
        value, before = self.value, self.before
        if value is not None and before is not None:
            hard = before[1]
            if hard != resource.RLIM_INFINITY:
                value = min(value, hard)
            resource.setrlimit(self.which, (value, hard))
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.value is None or self.before is None:
            return
        try:
            resource.setrlimit(self.which, self.before)
        except (ValueError, OSError):  # the tool lowered the hard limit
            lowered = resource.getrlimit(self.which)[1]
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(self.which, (lowered, lowered))

    def changed(self) -> bool:
        """Whether the call left the limit other than it found it: a hard limit the tool
        lowered (which this process cannot raise again), or a soft limit the tool changed
        that the call did not set (and so does not put back). A worker whose limit changed
        must not serve another call: that call would run under the tool's limit."""
        if self.before is None:
            return False
        now = resource.getrlimit(self.which)
        if self.value is not None:
            return now[1] != self.before[1]
        return now != self.before


class _CpuTimer:
    """End the process when it has used ``seconds`` more CPU time during the block
    (``ITIMER_PROF``, whose ``SIGPROF`` terminates the process when nothing handles it;
    ``RLIMIT_CPU`` is the whole-second backstop for a tool that installs a ``SIGPROF`` handler
    of its own); ``None``: no timer.

    Entered, it is the timer, whose ``exceeded`` tells, once the block is over, whether the
    block used up the budget. The timer is the judge: it counts the CPU time the kernel
    charged the process, which on a busy machine runs ahead of ``time.process_time()`` (a
    process running when a clock tick comes is charged the whole tick). So the timer is set
    to reload with a mark of its own (:data:`_CPU_TIMER_MARK`) when it runs out: still
    marked, it ran out (a process still there then had the signal handled or ignored by the
    tool) or it did not. Not marked any more, the tool set the timer for its own use (a
    profiler sampling on ``SIGPROF``): ``taken`` says whether the tool left it running, and
    the CPU seconds the block used decide.
    """

    __slots__ = ("exceeded", "seconds", "start", "taken")

    def __init__(self, seconds: float | None) -> None:
        if seconds is not None and seconds >= _CPU_TIMER_MARK / 2:
            seconds = None  # (a budget of months: RLIMIT_CPU and the runner's watch keep it)
        self.seconds = seconds if hasattr(signal, "setitimer") else None
        self.start = 0.0
        self.exceeded = False
        self.taken = False

    def __enter__(self) -> _CpuTimer:
        if self.seconds is not None:
            signal.signal(signal.SIGPROF, signal.SIG_DFL)
            self.start = time.process_time()
            signal.setitimer(signal.ITIMER_PROF, max(self.seconds, 0.001), _CPU_TIMER_MARK)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.seconds is not None:
            remaining, interval = signal.setitimer(signal.ITIMER_PROF, 0)
            if abs(interval - _CPU_TIMER_MARK) < 1.0:  # the budget's own timer
                # (run out, it reloaded with the mark: more left than any budget it is set for)
                self.exceeded = remaining > _CPU_TIMER_MARK / 2
            else:
                self.taken = remaining > 0.0 or interval > 0.0
                self.exceeded = time.process_time() - self.start >= self.seconds


#: What the CPU budget's timer reloads with when it runs out, in CPU seconds: a mark telling
#: that it ran out (a call never runs that long; BSD kernels refuse more than 10⁸ s).
_CPU_TIMER_MARK = 10_000_000.0


def _cpu_used(children: bool = False) -> float:
    """CPU seconds (user and system) this process used so far; with ``children``, those of
    its children that ended and were waited for (and of what they waited for) instead. 0
    without ``resource`` (not POSIX)."""
    if resource is None:
        return 0.0
    usage = resource.getrusage(resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


#: Where a worker's shared call mark (see :func:`serve`) holds the CPU seconds its process had
#: used when its current call began (``-1.0``: no call runs), whether that call's peak
#: memory is measured (``1.0``; ``0.0``: not), and whether the worker began the last call sent
#: to it (the caller's side sets ``0.0`` before it sends a call, the worker ``1.0`` as it
#: begins it: until then the tool has not started, whatever holds the worker up).
MARK_CPU_START, MARK_PEAK_MEASURED, MARK_CALL_BEGUN = 0, 1, 2

#: The size of that mark, in doubles.
MARK_SIZE = 3


class _Worker:
    """The serving loop's state: the connection, the event loop for async tools, and how
    peak memory is measured here."""

    def __init__(
        self,
        conn: Connection,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        mark: Any = None,
    ) -> None:
        self.conn = conn
        self.mark = mark  # the call mark shared with the caller's side (None: none)
        self.pid = os.getpid()
        self.initializer = initializer
        self.initargs = initargs
        self.initialized = initializer is None
        self.initializer_error: BaseException | None = None
        self.send_lock = threading.Lock()
        self.pipe = _identity(conn.fileno())  # what the pipe is open on, checked at each send
        # What standard input, output and error are open on: a worker whose tool closed or
        # replaced them serves no further call (its tools could no longer print).
        self.standard = _standard_identities()
        self.events = _ChildEvents(conn, self.send_lock, pipe=self.pipe)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.peak = _PeakMemory()
        # The secret values of the calls whose tasks are left on the loop, by task (weakly:
        # a task the tool dropped is still collected), and of the last ones collected: such
        # a task may raise, and have its traceback printed, during a later call.
        self.left: dict[weakref.ref[asyncio.Task[Any]], list[str]] = {}
        self.gone: collections.deque[list[str]] = collections.deque(maxlen=_GONE_CALLS)

    def secrets(self) -> list[str]:
        """Every secret value a traceback printed here may quote: the current (or last)
        call's, and those of the calls that left tasks on the loop. Never raises."""
        found = dict.fromkeys(self.events.secrets())
        for secrets in (*list(self.left.values()), *list(self.gone)):
            found.update(dict.fromkeys(secrets))
        return list(found)

    def report(
        self, exc: BaseException | None, heading: str, secrets: Sequence[str] | None = None
    ) -> str:
        """``heading`` and ``exc``'s traceback, scrubbed of ``secrets`` (:meth:`secrets` when
        not given) and cut to twice ``MAX_TRACEBACK_BYTES``."""
        if secrets is None:
            secrets = self.secrets()
        text = heading
        if exc is not None:
            text += scrubbed_traceback(exc, secrets)
        return scrub(text, secrets, MAX_TRACEBACK_BYTES * 2)

    def print_traceback(
        self, exc: BaseException | None, heading: str = "", secrets: Sequence[str] | None = None
    ) -> None:
        """Write :meth:`report` on stderr. Never raises."""
        with contextlib.suppress(Exception):
            sys.stderr.write(self.report(exc, heading, secrets))
            sys.stderr.flush()

    def thread_exception(self, args: threading.ExceptHookArgs) -> None:
        """``threading.excepthook`` here: what Python prints for an exception a thread (of
        a tool) did not catch, scrubbed (see :meth:`print_traceback`)."""
        if args.exc_type is SystemExit:  # (as Python's own hook: silent)
            return
        name = args.thread.name if args.thread is not None else threading.get_ident()
        error = args.exc_value if args.exc_value is not None else args.exc_type()
        self.print_traceback(error, f"Exception in thread {name}:\n")

    def unraisable(self, unraisable: Any) -> None:
        """``sys.unraisablehook`` here: what Python prints for an exception that could not be
        raised (in a ``__del__``, say), scrubbed (see :meth:`print_traceback`)."""
        message = unraisable.err_msg or "Exception ignored in"
        thing = unraisable.object
        with contextlib.suppress(Exception):
            secrets = self.secrets()
            shown = "" if thing is None else f" {describe_for_pickle(thing, secrets)}"
            self.print_traceback(unraisable.exc_value, f"{message}:{shown}\n", secrets)

    def print_python_errors_scrubbed(self) -> None:
        """Have what Python prints for an exception no code can catch (in a thread, in a
        ``__del__``) scrubbed, unless a module preloaded in the forkserver set its own hook
        (the initializer, run after, may set its own too)."""
        if threading.excepthook is threading.__excepthook__:
            threading.excepthook = self.thread_exception
        if sys.unraisablehook is sys.__unraisablehook__:
            sys.unraisablehook = self.unraisable

    def loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """The worker loop's exception handler: what asyncio's own handler logs (a task's
        exception never retrieved, a callback that raised), scrubbed of :meth:`secrets`, on
        the ``asyncio`` logger. Never raises."""
        with contextlib.suppress(Exception):
            secrets = self.secrets()
            lines = [str(context.get("message") or "Unhandled exception in event loop")]
            for key, value in context.items():
                if key not in ("message", "exception", "source_traceback"):
                    lines.append(f"{key}: {describe_for_pickle(value, secrets)}")
            error = context.get("exception")
            if not isinstance(error, BaseException):
                error = None
            heading = "\n".join(lines) + ("\n" if error is not None else "")
            logging.getLogger("asyncio").error(self.report(error, heading, secrets))

    def remember_left_tasks(self, loop: asyncio.AbstractEventLoop) -> None:
        """After an async call: keep its secret values for each task it left on the loop."""
        secrets: list[str] | None = None
        for task in asyncio.all_tasks(loop):
            ref = weakref.ref(task, self._collected)
            if ref not in self.left:
                if secrets is None:
                    secrets = self.events.secrets()
                self.left[ref] = secrets

    def _collected(self, ref: weakref.ref[asyncio.Task[Any]]) -> None:
        secrets = self.left.pop(ref, None)
        if secrets:
            self.gone.append(secrets)

    def initialize(self) -> bool:
        """Run the runner's initializer unless it succeeded already; ``False`` when it raised
        (the worker stays up, and tries again before its next call)."""
        if self.initialized:
            return True
        assert self.initializer is not None
        try:
            self.initializer(*self.initargs)
        except BaseException as exc:  # (``SystemExit`` too: the worker must not end)
            self.initializer_error = exc
            return False
        self.initialized = True
        self.initializer_error = None
        with self.send_lock, contextlib.suppress(OSError):  # (a closed pipe: told at the next
            _send_on_pipe(self.conn, self.pipe, READY)  # send, or the caller's side is gone)
        return True

    def run(self, call: ToolCall) -> tuple[bytes, bool]:
        """Run one call under its limits; return its pickled ``done`` message (see
        :func:`_result_message`) and whether to retire."""
        if not self.initialize():
            failed = _initializer_failed(call.tool_name, self.initializer_error)
            return _result_message(failed, False, call.tool_name)
        memory_limit = None
        if call.memory_limit_mb is not None and MEMORY_LIMIT_ENFORCED:
            memory_limit = _data_size(self.peak.status_fd) + call.memory_limit_mb * _MB
            if memory_limit > _LARGEST_LIMIT:  # more than a limit holds: no limit
                memory_limit = None
        cpu_seconds = call.cpu_seconds
        if cpu_seconds is not None and cpu_seconds > LONGEST_CPU_BUDGET:  # (no budget)
            cpu_seconds = None
        cpu_limit = None
        if cpu_seconds is not None and resource is not None:
            cpu_limit = max(math.ceil(_cpu_used() + cpu_seconds), 1)
        self.events = _ChildEvents(self.conn, self.send_lock, call.parameters, call.tool, self.pipe)
        measure_peak = self.peak.reset()
        cpu_start = time.process_time()
        children_start = _cpu_used(children=True)
        mark = self.mark
        if mark is not None:  # (read by the caller's side only when it kills this worker)
            mark[MARK_PEAK_MEASURED] = 1.0 if measure_peak else 0.0
            mark[MARK_CPU_START] = cpu_start
            mark[MARK_CALL_BEGUN] = 1.0
        # The memory limit also covers pickling the outcome to send it back: a result can take
        # more memory to pickle than to make (a ``__reduce__`` that builds its state, the
        # pickle's own copy), and that memory is the tool's too.
        with _SoftLimit(_RLIMIT_DATA, memory_limit) as data_limit:
            with (
                _TraceContext(call.trace_carrier(), call.suppressed),
                _CpuTimer(cpu_seconds) as cpu_timer,
                _SoftLimit(_RLIMIT_CPU, cpu_limit) as cpu_limit_held,
            ):
                outcome = self._call(call)
                if os.getpid() != self.pid:  # a process the tool forked returned from it: it
                    os._exit(0)  # ends here, never answering (or serving) in the worker's place
            # The worker's own CPU seconds, and those of the children reaped during the call.
            children = _cpu_used(children=True) - children_start
            outcome.cpu_seconds = time.process_time() - cpu_start + children
            if measure_peak:
                with contextlib.suppress(OSError):
                    outcome.memory_peak_mb = self.peak.read_mb()
            outcome.worker = worker_label(os.getpid())
            # A tool that changed its worker's limits for good (lowered a hard limit), or closed
            # or replaced its standard descriptors, has the worker replaced: the next call runs
            # under its own limits, and can print.
            retire = data_limit.changed() or cpu_limit_held.changed()
            retire = retire or _standard_identities() != self.standard
            limit = call.memory_limit_mb if memory_limit is not None else None
            if limit is not None and _out_of_memory(outcome.error):
                outcome.error = _memory_limit_exceeded(call.tool_name, limit)
                outcome.error_type = "memory_limit"
                retire = True
            elif (
                limit is not None
                and outcome.error is not None
                and _raised_out_of_memory(outcome.error)
            ):
                # The tool (or a library) told the failed allocation as an error of its own:
                # the limit's all the same, in the tool's words.
                told = describe_error(outcome.error, self.events.secrets())
                outcome.error = _memory_limit_exceeded(
                    call.tool_name, limit, f"; an allocation failed, and the tool raised {told}"
                )
                outcome.error_type = "memory_limit"
                retire = True
            elif limit is not None and outcome.error is not None:
                outcome.error = _refused_under_limit(outcome.error, limit)
            if cpu_timer.exceeded and outcome.error_type != "memory_limit":
                # Past its budget, the tool handled the timer's signal and ended before the
                # runner's watch stopped it: the budget's all the same.
                outcome.error = _cpu_budget_exceeded(
                    call, outcome.error, self.events.secrets(), cpu_timer.taken
                )
                outcome.error_type = "cpu_limit"
                retire = True
            message = _result_message(
                outcome,
                retire,
                call.tool_name,
                self.events.secrets,
                limit,
                traced=call.trace_id is not None,
            )
            if outcome.error is not None:
                _let_go_of_frames(outcome.error)
            if mark is not None:
                mark[MARK_CPU_START] = -1.0  # (the call is over)
            return message

    def send_outcome(self, message: bytes) -> None:
        """Send a call's ``done`` message, its events closed first (see :class:`_ChildEvents`)."""
        with self.send_lock:
            self.events.close()
            _send_on_pipe(self.conn, self.pipe, DONE + message)

    def _call(self, call: ToolCall) -> RawOutcome:
        if not is_async_tool(call.tool):
            # In a copy of the worker's context, as on the caller's side a tool runs in a copy
            # of its caller's: what it sets there (a context variable of its own, baggage it
            # attaches) never reaches the worker's next call. (An async tool's task runs in a
            # copy already.)
            outcome: RawOutcome = contextvars.copy_context().run(call_tool, call, self.events)
            return outcome
        if self.loop is None:
            self.loop = asyncio.new_event_loop()
            self.loop.set_exception_handler(self.loop_exception)
            asyncio.set_event_loop(self.loop)
        loop = self.loop
        watched = WatchedCall(call_tool_async(call, self.events))
        task = loop.create_task(_awaited(watched))
        try:
            return self._run_until_done(loop, task, watched)
        finally:
            with contextlib.suppress(Exception):
                self.remember_left_tasks(loop)

    def _run_until_done(
        self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[RawOutcome], watched: WatchedCall
    ) -> RawOutcome:
        while True:
            try:
                return loop.run_until_complete(task)
            except BaseException as exc:
                if task.done():  # (cancellation, or a BaseException, from the tool itself)
                    if task.cancelled():  # (nothing here cancels a call's task: the tool's own)
                        kind = unasked_cancellation(watched, only_the_tool=True)
                        return RawOutcome(None, exc, error_type=kind)
                    error = task.exception()
                    return RawOutcome(None, error) if error is not None else task.result()
                # Not this call's end: a task an earlier call left on the loop raised
                # SystemExit or KeyboardInterrupt, or the tool stopped the loop. The call
                # goes on (its timeout still holds).
                if not isinstance(exc, RuntimeError):
                    self.print_traceback(exc)


async def _awaited(watched: WatchedCall) -> RawOutcome:
    """Await a watched call (a task is made of a coroutine).

    A tool that cancelled its own task and then raised, without awaiting since, ends with
    its error, as asyncio ends a task whose coroutine does so: the cancellation still pending
    is taken here (a turn of the loop, on that path only), or it would end this task
    cancelled, the error dropped. One that returned so ends cancelled, as such a task does.
    """
    outcome: RawOutcome = await watched
    if watched.pending and outcome.error is not None:
        await take_pending_cancellation()
    return outcome


def _out_of_memory(error: BaseException | None) -> bool:
    """Whether ``error`` says an allocation failed: a ``MemoryError``, or the ``OSError``
    ``ENOMEM`` of a mapping the tool made itself (``mmap``), which ``RLIMIT_DATA`` counts too;
    not one of a class of the tool's own (a subclass) that a ``raise`` statement made (see
    :func:`_raised_by_a_statement`): a tool refusing a size itself. A plain ``MemoryError``
    raised by a statement is what a Python library raises when its allocation failed (SciPy's
    ``expm`` after a failed ``malloc``): it stays the limit's."""
    if isinstance(error, MemoryError):
        return type(error) is MemoryError or not _raised_by_a_statement(error)
    if isinstance(error, OSError) and error.errno == errno.ENOMEM:
        return type(error) is OSError or not _raised_by_a_statement(error)
    return False


def _raised_by_a_statement(error: BaseException) -> bool:
    """Whether ``error`` was first raised by a ``raise`` statement naming it (``raise
    MemoryError(...)``) in Python code: a tool (or a library written in Python) that refuses
    a size itself, not an allocation that failed. The interpreter, and a C library (NumPy's
    ``MemoryError`` subclass), raise it from the call that allocates; an exception raised
    again (``raise``, ``raise error``) keeps where it was first raised. ``False`` when that
    cannot be read (no traceback, a frame of no Python bytecode, memory short here)."""
    trace = error.__traceback__
    if trace is None:
        return False
    while trace.tb_next is not None:
        trace = trace.tb_next
    try:
        import dis

        offset = trace.tb_lasti
        for instruction in dis.get_instructions(trace.tb_frame.f_code):
            if instruction.offset == offset:
                return instruction.opname == "RAISE_VARARGS" and bool(instruction.arg)
    except Exception:  # (MemoryError too, under the call's limit: the limit's, as before)
        return False
    return False


def _raised_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` was raised from, or while handling, an error that says an allocation
    failed (see :func:`_out_of_memory`), a few links down the chain at most (whether or not
    the tool raised it ``from None``)."""
    seen = error.__cause__ or error.__context__
    for _ in range(8):
        if seen is None:
            return False
        if _out_of_memory(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


#: What ``threading`` raises when the system refuses a new thread (its stack, say).
_THREAD_REFUSED = "can't start new thread"
#: What the dynamic loader says when it could not map a shared library (glibc): its segments,
#: or the zeroed pages of its data (``.bss``), which the memory limit counts alike.
_LIBRARY_REFUSED = ("failed to map segment from shared object", "cannot map zero-fill pages")


def _refused_under_limit(error: BaseException, limit: int) -> BaseException:
    """``error``, or when it is one the memory limit (``limit`` MB) likely caused though it
    is no ``MemoryError``, the same error saying so: ``threading``'s own "can't start new
    thread" (``RLIMIT_DATA`` counts each thread's stack), or an ``ImportError`` of a shared
    library the loader could not map (its writable segments count too). The type, and the
    traceback, stay the tool's: the limit is the likely cause, not a certain one."""
    where = f"the tool ran under its memory limit of {limit} MB (memory_limit_mb={limit})"
    explained: BaseException
    if type(error) is RuntimeError and error.args == (_THREAD_REFUSED,):
        size = threading.stack_size()
        if not size and resource is not None:  # (glibc's default: the soft RLIMIT_STACK)
            soft = resource.getrlimit(resource.RLIMIT_STACK)[0]
            size = 0 if soft == resource.RLIM_INFINITY else soft
        each = f" ({size / _MB:g} MB a thread here)" if size else ""
        explained = RuntimeError(
            f"{_THREAD_REFUSED}: {where}, which each thread's stack counts against{each}; "
            "raise the limit, start fewer threads, or give them smaller stacks "
            "(threading.stack_size())"
        )
    elif type(error) is ImportError and _says_anywhere(error, _LIBRARY_REFUSED):
        explained = ImportError(
            f"{str(error).rstrip()}\n\n{where[0].upper()}{where[1:]}, which the memory of "
            "each shared library it loads counts against: import the module in the workers "
            "before any limit applies (ProcessRunner(preload=[...])), or raise the limit",
            name=error.name,
            path=error.path,
        )
    else:
        return error
    explained.__cause__ = error.__cause__
    explained.__context__ = error.__context__
    explained.__suppress_context__ = error.__suppress_context__
    return explained.with_traceback(error.__traceback__)


def _says_anywhere(error: BaseException, words: tuple[str, ...]) -> bool:
    """Whether ``error``, or an exception it was raised from or while handling, says one of
    ``words`` (a few links down the chain at most)."""
    seen: BaseException | None = error
    for _ in range(8):
        if seen is None:
            return False
        try:
            said = str(seen)
            if any(each in said for each in words):
                return True
        except Exception:  # (a ``__str__`` that raises says nothing)
            pass
        seen = seen.__cause__ or seen.__context__
    return False


#: How many calls' secret values a worker keeps after the last task they left on the loop
#: was collected (its traceback may be printed as it is; see :meth:`_Worker.loop_exception`).
_GONE_CALLS = 16

_RLIMIT_DATA = getattr(resource, "RLIMIT_DATA", 0)
_RLIMIT_CPU = getattr(resource, "RLIMIT_CPU", 0)


class _TraceContext:
    """Make the caller's span (when the task is traced) and baggage (when it has any) current
    during the block, and with ``suppressed`` suppress instrumentation around it, as the
    caller had (the keys ``suppress_instrumentation()`` sets).

    The W3C propagators read them, whatever ``OTEL_PROPAGATORS`` says here: the caller wrote
    them in W3C form (see :meth:`ToolCall.trace_carrier`).
    """

    __slots__ = ("carrier", "suppressed", "token")

    def __init__(self, carrier: dict[str, str], suppressed: bool = False) -> None:
        self.carrier = carrier
        self.suppressed = suppressed
        self.token: Token[Any] | None = None

    def __enter__(self) -> None:
        carrier = self.carrier
        if not carrier and not self.suppressed:
            return
        from opentelemetry import context as otel_context
        from opentelemetry.baggage.propagation import W3CBaggagePropagator
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        context = TraceContextTextMapPropagator().extract(carrier)
        context = W3CBaggagePropagator().extract(carrier, context)
        if self.suppressed:
            from laios._compat.otel import suppress_instrumentation_in

            context = suppress_instrumentation_in(context)
        self.token = otel_context.attach(context)

    def __exit__(self, *exc_info: object) -> None:
        if self.token is not None:
            from opentelemetry import context as otel_context

            otel_context.detach(self.token)
            self.token = None


def _let_go_of_frames(error: BaseException) -> None:
    """Drop the tracebacks of ``error``, sent, and of the exceptions it was raised from or
    while handling (a few dozen at most). They hold the tool's frames and what those held;
    and the frame that caught ``error`` holds the outcome that holds it (so may a tool's frame
    that raised it from a local), a cycle that only the garbage collector would free, maybe
    calls later: meanwhile the worker holds that memory, and later calls' peaks count it."""
    seen: set[int] = set()
    waiting = [error]
    while waiting and len(seen) < 64:
        exc = waiting.pop()
        if id(exc) in seen:
            continue
        seen.add(id(exc))
        with contextlib.suppress(Exception):  # (a tool's exception class may be hostile)
            exc.__traceback__ = None
            linked = [exc.__cause__, exc.__context__]
            grouped = getattr(exc, "exceptions", None)  # (an exception group's)
            if isinstance(grouped, tuple):
                linked.extend(grouped)
            waiting.extend(item for item in linked if isinstance(item, BaseException))


def cpu_budget_words(seconds: float | None) -> str:
    """How an error names a CPU budget of ``seconds``: `` of 1.5 CPU seconds`` ("" without
    one)."""
    if seconds is None:
        return ""
    shown = f"{seconds:.3g}"
    return f" of {shown} CPU second{'' if shown == '1' else 's'}"


def _cpu_budget_exceeded(
    call: ToolCall, error: BaseException | None, secrets: Sequence[str], taken: bool = False
) -> CpuLimitExceeded:
    """``taken``: the tool had set the CPU timer for its own use (see :class:`_CpuTimer`)."""
    # (the worker retires: the runner ends the message with whether one replaces it)
    then = "returned" if error is None else f"raised {describe_error(error, secrets)}"
    how = (
        "it had set the CPU timer that stops it there (ITIMER_PROF) for its own use, as a "
        "profiler sampling on SIGPROF does"
        if taken
        else "it handled the signal that stops it there"
    )
    return CpuLimitExceeded(
        f"Tool '{shown_name(call.tool_name)}' exceeded its CPU budget"
        f"{cpu_budget_words(call.cpu_seconds)} (cpu_limit_percent of its timeout): {how}, "
        f"and {then}"
    )


def _memory_limit_exceeded(tool_name: str, limit: int, what: str = "") -> MemoryLimitExceeded:
    # (the worker retires: the runner ends the message with whether one replaces it)
    return MemoryLimitExceeded(
        f"Tool '{shown_name(tool_name)}' exceeded its memory limit of {limit} MB "
        f"(memory_limit_mb={limit}){what}"
    )


def _stacktrace(error: BaseException, secrets: Callable[[], Sequence[str]] | None) -> str | None:
    """The stack trace of the tool's ``error`` for its span, scrubbed of ``secrets()`` (see
    :func:`~laios.execution.tracing.exception_stacktrace`); ``None`` when it cannot be made
    (memory short under the call's limit): the caller then records what the error alone says."""
    try:
        return exception_stacktrace(error, secrets() if secrets is not None else ())
    except Exception:
        return None


def _result_message(
    outcome: RawOutcome,
    retire: bool,
    tool_name: str,
    secrets: Callable[[], Sequence[str]] | None = None,
    memory_limit_mb: int | None = None,
    *,
    traced: bool = False,
) -> tuple[bytes, bool]:
    """The pickled ``done`` message and whether to retire; what cannot be pickled becomes a
    clear error (its description scrubbed of ``secrets()``, the call's secret values).

    ``traced``: the call has a task span, whose ``exception`` event is given the stack trace
    of an exception the tool raised, as formatted here (``RawOutcome.traceback``).

    ``memory_limit_mb``: the call's memory limit, which is in force while this runs; a
    ``MemoryError`` while pickling is then the limit's (the worker retires).
    """
    if traced and outcome.error is not None and outcome.error_type is None:
        # The tool's own exception: its frames and causes stay here when it is pickled.
        outcome.traceback = _stacktrace(outcome.error, secrets)
    try:
        if outcome.error is not None:  # (an exception may pickle, and fail to unpickle)
            rebuilt = pickle.loads(pickle.dumps(outcome.error, pickle.HIGHEST_PROTOCOL))
            if not isinstance(rebuilt, BaseException):  # (its ``__reduce__`` made another)
                raise TypeError(f"it is rebuilt as {type_name(type(rebuilt))}, not an exception")
            del rebuilt
        return pickle.dumps(("done", outcome, retire), pickle.HIGHEST_PROTOCOL), retire
    except BaseException as exc:  # (an unpickling may raise ``SystemExit``)
        if memory_limit_mb is not None and isinstance(exc, MemoryError) and _out_of_memory(exc):
            returned = "exception it raised" if outcome.error is not None else "value it returned"
            error = _memory_limit_exceeded(
                tool_name,
                memory_limit_mb,
                f" while the {returned} was pickled to be sent back from its worker process",
            )
            substitute = _failed_instead(outcome, error, "memory_limit")
            retire = True
        else:
            hidden = secrets() if secrets is not None else ()
            substitute = not_picklable_outcome(
                outcome, exc, hidden, tool_name, "its worker process", "in processes"
            )
        del exc  # (what the failed pickling held goes before the next one)
        return pickle.dumps(("done", substitute, retire), pickle.HIGHEST_PROTOCOL), retire


def _failed_instead(outcome: RawOutcome, error: BaseException, error_type: str) -> RawOutcome:
    """The outcome of ``error`` (``error_type``) in place of ``outcome``, whose measurements
    (CPU seconds, peak memory, where it ran) it keeps."""
    return RawOutcome(
        None,
        error,
        outcome.cpu_seconds,
        outcome.memory_peak_mb,
        outcome.worker,
        error_type=error_type,
    )


def not_picklable_outcome(
    outcome: RawOutcome,
    exc: BaseException,
    hidden: Sequence[str],
    tool_name: str,
    sent_from: str,
    run: str,
    *,
    as_loaded: bool = False,
) -> RawOutcome:
    """The ``not_picklable`` outcome that takes the place of ``outcome`` when what its tool
    returned or raised failed to pickle (``exc``) to be sent back from ``sent_from`` ("its
    worker process"): the value described, scrubbed of ``hidden``, with the advice for tools
    run ``run`` ("in processes"); ``as_loaded``: the value is described as it was loaded
    there (it came pickled from the tool's own process). The tool's stack trace, if any, stays
    on its span, followed by this error."""
    what = "raised an exception" if outcome.error is not None else "returned a value"
    value = outcome.error if outcome.error is not None else outcome.value
    loaded = "loaded there as " if as_loaded else ""
    error = ToolNotPicklable(
        f"Tool '{shown_name(tool_name)}' {what} that cannot be sent back from {sent_from} "
        f"({loaded}{type_name(type(value))}: {describe_for_pickle(value, hidden)}; "
        f"pickling failed with {describe_error(exc, hidden)}). Return picklable data "
        f"(plain values, dataclasses, models) from tools run {run}"
    )
    del exc, value  # (what the failed pickling held goes before the next one)
    substitute = _failed_instead(outcome, error, "not_picklable")
    if outcome.traceback is not None:
        # (what the tool raised, and where, stays on its span: only its object is lost)
        substitute.traceback = stacktrace_then(outcome.traceback, error)
    return substitute


def _take_interrupts() -> None:
    """Unblock SIGINT, held while this process started (see the process runner's
    ``_start_with_interrupts_held``), so that tools and the programs they start get it as usual.

    Called once the process leads a group of its own: a Ctrl-C sent to the caller's group
    before then is the caller's to act on, and is dropped here.
    """
    if not hasattr(signal, "pthread_sigmask"):
        return
    discard_pending_sigint()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _reap_children_as_usual() -> None:
    """Stop ignoring SIGCHLD, which a worker inherits from a caller that ignores it (to have
    its own children reaped at once): here the kernel would reap a tool's children before
    the tool waits for them, and ``subprocess`` would read 0 as their exit code."""
    if hasattr(signal, "SIGCHLD") and signal.getsignal(signal.SIGCHLD) == signal.SIG_IGN:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)


def _end_with_the_parent() -> None:
    """Kill this process's group as soon as the process that started it is gone."""
    parent = multiprocessing.parent_process()
    sentinel = getattr(parent, "sentinel", None)
    if sentinel is None:
        return

    identity = _identity(sentinel)

    def watch() -> None:
        wait([sentinel])
        if _identity(sentinel) != identity:
            # A tool closed the descriptor (maybe every one: ``os.closerange``), which may
            # wake the wait: the parent may well be alive. Ask the system instead.
            parent_pid = os.getppid()
            while os.getppid() == parent_pid:
                time.sleep(1.0)
        os.killpg(os.getpgid(0), signal.SIGKILL)

    try:
        threading.Thread(target=watch, name="laios-parent-watch", daemon=True).start()
    except RuntimeError as exc:
        # No thread to be had (a container's pids limit): the worker serves without it, and
        # ends when it next uses its pipe to a parent that is gone.
        with contextlib.suppress(Exception):
            sys.stderr.write(
                f"laios worker process {os.getpid()}: could not start the thread that ends it "
                f"with its parent process ({type(exc).__name__}: {exc}); it serves all the "
                "same, but should the parent end while a tool runs here, that tool runs until "
                "it returns\n"
            )
            sys.stderr.flush()


def _identity(descriptor: int) -> tuple[int, int] | None:
    """What ``descriptor`` is open on (device, inode); ``None`` once it is closed."""
    try:
        status = os.fstat(descriptor)
    except OSError:
        return None
    return status.st_dev, status.st_ino


def _standard_identities() -> tuple[tuple[int, int] | None, ...]:
    """What descriptors 0, 1 and 2 are open on (see :func:`_identity`)."""
    return _identity(0), _identity(1), _identity(2)


def serve(
    conn: Connection,
    initializer: Callable[..., object] | None,
    initargs: tuple[Any, ...],
    mark: Any = None,
) -> None:
    """A worker process's main function: serve calls from ``conn`` until told to stop.

    ``mark``: an array of :data:`MARK_SIZE` doubles in memory shared with the caller's side
    (``multiprocessing``'s ``RawArray``; ``None``: none), where the worker marks when each call
    begins (see :data:`MARK_CPU_START` and :data:`MARK_CALL_BEGUN`), so that the caller's side
    can tell what a call used when it kills the worker under it (the worker's own count ends
    with it), and whether the worker had begun the call at all.

    The process leads its own process group, so that a kill of the group also stops what the
    tool started, and kills that group when the process that started it ends (even by
    ``SIGKILL``, while a tool hangs here); SIGINT, held back while the process started, is
    taken again from then on (see :func:`_take_interrupts`), and SIGCHLD is not ignored
    (see :func:`_reap_children_as_usual`). Core dumps are turned off (a
    CPU budget ends the process with a signal). When it stops, the process ends at once
    (``os._exit``): a thread a tool left running ends with it, and a process a tool left
    running in its group is killed first (see :func:`_kill_the_rest_of_the_group`); neither
    is waited for.
    """
    code = 0
    served: list[_Worker] = []
    try:
        code = _serve(conn, initializer, initargs, served, mark)
    except BaseException as exc:
        if served:
            served[0].print_traceback(exc)
        else:  # (no call yet: no secret to scrub)
            traceback.print_exc()
        code = 1
    _flush_telemetry()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            if stream is not None:
                stream.flush()
    with contextlib.suppress(OSError):
        _kill_the_rest_of_the_group()
    os._exit(code)


#: Seconds a stopping worker gives the OpenTelemetry SDK of its process to export what it
#: holds (within the runner's grace for a stopping worker, after which it is killed).
FLUSH_SECONDS = 1.5


def _flush_telemetry() -> None:
    """Have the process's OpenTelemetry tracer, meter and logger providers (set up by an
    initializer, or by ``opentelemetry-instrument``) export what they hold: the spans of a
    batching processor, the metrics of a periodic reader since its last export, the log
    records of a batching log record processor. ``os._exit`` skips the
    SDK's own shutdown at exit, which would. For at most :data:`FLUSH_SECONDS`, on a thread
    of its own (the SDK's flush waits as long as its exporter does: a collector that does
    not answer must not keep the worker); never raises."""
    try:
        flushes = [
            flush
            for provider in (
                global_tracer_provider(),
                global_meter_provider(),
                global_logger_provider(),
            )
            if provider is not None and callable(flush := getattr(provider, "force_flush", None))
        ]
        if not flushes:
            return

        def flush_all() -> None:
            for flush in flushes:
                with contextlib.suppress(Exception):
                    flush()

        thread = threading.Thread(target=flush_all, name="laios-telemetry-flush", daemon=True)
        thread.start()
        thread.join(FLUSH_SECONDS)
    except Exception:  # (no thread to be had: the worker exits all the same)
        pass


def _kill_the_rest_of_the_group() -> None:
    """Kill every other process in this worker's process group: what tools started and left
    running there (a process started in a session of its own has left the group).

    On Linux the members are found in ``/proc`` and killed one by one, so that this process
    still ends with its own exit code (the caller's side reads it); a group that keeps
    gaining members (a fork bomb), platforms without ``/proc``, and a process that cannot
    read it (a tool left no descriptor free), get ``killpg``, which ends this process too.
    """
    me = os.getpid()
    if not hasattr(os, "killpg") or os.getpgid(0) != me:
        return  # (not a group of its own: not the worker's to kill)
    if sys.platform == "linux":
        for _ in range(10):
            try:
                others = _members_of_group(me)
            except OSError:  # (``/proc`` cannot be read: a tool left no descriptor free)
                break
            if not others:
                return
            for pid in others:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
    os.killpg(me, signal.SIGKILL)


def _members_of_group(group: int) -> list[int]:
    """The live processes of process group ``group`` but this one (read from ``/proc``: a few
    milliseconds for a few hundred processes)."""
    me = str(os.getpid())
    wanted = str(group).encode()
    members = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or name == me:
            continue
        try:
            descriptor = os.open(f"/proc/{name}/stat", os.O_RDONLY)
        except OSError:
            continue  # (gone meanwhile)
        try:
            stat = os.read(descriptor, 512)
        except OSError:
            continue
        finally:
            os.close(descriptor)
        # After the command's closing parenthesis: state, parent pid, process group.
        fields = stat.rsplit(b")", 1)[-1].split(None, 3)
        if len(fields) > 2 and fields[2] == wanted and fields[0] not in (b"Z", b"X"):
            members.append(int(name))
    return members


def _serve(
    conn: Connection,
    initializer: Callable[..., object] | None,
    initargs: tuple[Any, ...],
    served: list[_Worker],
    mark: Any = None,
) -> int:
    """Serve calls; return the process's exit code (:data:`PIPE_CLOSED_EXIT` when a call's
    outcome could not be sent because the pipe was closed under the worker). The worker is
    put in ``served`` once made (its secrets scrub a traceback of what ends it)."""
    if hasattr(os, "setsid"):
        with contextlib.suppress(OSError):  # (already a group leader)
            os.setsid()
        _end_with_the_parent()
    # A forkserver lives as long as a process holds the end of the pipe its program holds, as
    # each process it starts does: without this copy the server ends with the program, and
    # kills the worker's group then (the watch above cannot run while a tool holds the GIL in
    # a long C call). A tool that starts processes with ``forkserver`` starts its own server.
    forkserver_in_child()
    _take_interrupts()
    _reap_children_as_usual()
    if resource is not None:  # no core files
        with contextlib.suppress(ValueError, OSError):
            _, hard = resource.getrlimit(resource.RLIMIT_CORE)
            resource.setrlimit(resource.RLIMIT_CORE, (0, hard))
    worker = _Worker(conn, initializer, initargs, mark)
    served.append(worker)
    worker.print_python_errors_scrubbed()
    if not worker.initialize():  # (else it said READY: see ``initialize``)
        with worker.send_lock, contextlib.suppress(OSError):  # (a closed pipe: told at the
            _send_on_pipe(conn, worker.pipe, INITIALIZER_RAISED)  # next read or send)
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            if _identity(conn.fileno()) != worker.pipe:  # closed under the worker (by the
                return PIPE_CLOSED_EXIT  # initializer, or a thread a tool left): said so
            return 0  # the caller's side is gone
        call: Any = None
        try:
            call = pickle.loads(data)
        except BaseException as exc:  # e.g. the tool's class cannot be imported here
            message, retire = _result_message(_not_loadable(exc), False, "?")
        else:
            if call is None:
                return 0
            message, retire = worker.run(call)
        try:
            worker.send_outcome(message)
        except OSError:  # the pipe was closed (or replaced) under the worker: the caller
            return PIPE_CLOSED_EXIT  # reads the code
        if retire:
            return 0
        # Nothing of this call is kept while the worker waits for the next, and runs it: its
        # pickled outcome (as large as the tool's result) would count in that call's peak.
        del data, call, message


class InitializerFailed(Exception):
    """The process runner's ``initializer`` raised in the worker process, so the tool was not
    run."""


def _initializer_failed(tool_name: str, exc: BaseException | None) -> RawOutcome:
    return RawOutcome(
        None,
        InitializerFailed(
            f"Tool '{shown_name(tool_name)}' was not run: the process runner's initializer raised "
            f"in its worker process ({describe_error(exc) if exc is not None else 'None'}). It is "
            "tried again before the worker's next call; fix what it needs, or the initializer"
        ),
        worker=worker_label(os.getpid()),
        error_type="initializer_failed",
    )


class ToolNotLoadable(Exception):
    """The worker process could not unpickle a call (its tool's class is not importable
    there)."""


def _not_loadable(exc: BaseException) -> RawOutcome:
    return RawOutcome(
        None,
        ToolNotLoadable(
            f"The worker process could not load the call ({describe_error(exc)}). A tool "
            "run in a process, and its parameters' classes, must be importable and load there: "
            "define them at module level in "
            "an importable module (not in __main__ of an interactive session, not inside a "
            "function)"
        ),
        error_type="not_picklable",
    )
