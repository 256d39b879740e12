"""The Dask runner: tools run on a Dask cluster, each inside a killable worker process there.

Needs the ``dask`` extra (``pip install "laios[dask]"``: Dask's ``distributed``).

The caller's side is the same as for every runner: the job, its span, its store record, its
timeout. Each call becomes one Dask task (``pure=False``: two identical calls run twice) whose
function runs on a Dask worker and hands the tool to a
:class:`~laios.execution._runners.process.ProcessRunner` of that worker (one per Dask worker
process, as many processes as the worker has threads), so a tool past its timeout is killed
there and the Dask worker stays usable.

Everything the tool reports travels back in order on one Dask event topic per runner
(``Worker.log_event`` to ``Client.subscribe_topic``): ``started`` (with the worker's address
and pid), progress, checkpoints, and finally the outcome (or ``closed``: the worker closed under
the call, and killed its tool as it closed). The Dask future only tells the caller that a task
was lost (its worker died and Dask gave up on it, or it was cancelled).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import math
import multiprocessing
import os
import pickle
import threading
import time
import uuid
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from laios._callables import is_coroutine_function
from laios._compat.dask import (
    cancel_reason,
    drop_topic,
    drop_topic_handler,
    forget_topic,
    quiet_heartbeats_cut_by_close,
    scheduler_connection,
    stop_client_loop,
    task_released,
)
from laios._text import MAX_QUOTED_CHARS, quoted, shorten, shown_name
from laios.execution._checks import (
    MOST_PROCESSES,
    as_float,
    conversion_hint,
    is_real,
    number_repr,
    process_count,
    switch,
)
from laios.execution._forks import reset_after_fork
from laios.execution._records import (
    MAX_DATA_STRING,
    MAX_TEXT,
    UNPRINTABLE_MESSAGE,
    UNPRINTABLE_NAME,
    mapping_copy,
    sendable,
    summarize,
)
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
from laios.execution._runners.process import (
    LOOP_PICKLE_BYTES,
    PICKLING_THREADS,
    SEND_HERE_BYTES,
    TooLarge,
    on_a_thread,
    pickled,
    pickled_late_words,
    pickling_words,
)
from laios.execution._runners.process_worker import (
    SIMPLE_TOOL_ADVICE,
    call_secrets,
    coroutine_refusal,
    describe_error,
    not_picklable_outcome,
    pickled_message,
    unpicklable_advice,
    unpicklable_part,
)
from laios.execution.redaction import SecretForms, scrub_head
from laios.execution.tracing import MAX_CHECKPOINT_NAME_CHARS

__all__ = ["DaskRunner", "WorkerLost"]

_log = logging.getLogger("laios.execution")

#: Seconds to wait for a scheduler at construction.
DEFAULT_CONNECT_TIMEOUT = 10.0
#: Seconds an outcome may take to arrive after its Dask task finished before it counts as lost.
OUTCOME_GRACE = 10.0
#: Seconds calls accepted one after the other wait to be sent together (one scheduler message).
SEND_DELAY = 0.002
#: Seconds between two readings of the cluster's thread count (for ``stats``).
STATS_INTERVAL = 2.0
#: Seconds shutdown waits for kills still being sent, and for the scheduler to clear the
#: runner's reports, before it closes the client.
STOP_PATIENCE = 10.0
#: Longest ``abandon`` waits for the client to send the cancellation of a call that has not
#: started (its event loop may be busy delivering reports): then the cancellation goes on.
STOP_HANDOVER = 1.0
#: Seconds between two looks, while ``abandon`` waits, at whether a report's delivery (an
#: ``on_progress`` callback) holds the client's event loop; one that has held it that long
#: ends the wait.
HANDOVER_LOOK = 0.02
#: Seconds between two looks of a worker at a call it runs: whether the scheduler released
#: its task (its client went away), or its deadline passed long ago.
WATCH_INTERVAL = 0.5
#: Most keys of calls killed before they started that a worker remembers.
MAX_KILLED_KEYS = 10_000
#: Largest progress report or checkpoint a worker sends as the tool made it, pickled: a larger
#: one has its details (or data) replaced by the summary the caller's store keeps of them.
MAX_REPORT_BYTES = 8 * 1024

#: Seconds past a call's deadline (on the worker's clock) after which its worker kills the
#: tool by itself, when the caller's kill has not come (the caller is gone, or cut off).
DEADLINE_GRACE = 3.0

#: Why a call cannot go through the client a runner made itself, closed before the runner's
#: own shutdown (which closes it only once its calls ended): the two ways that happens.
_OWN_CLIENT_CLOSED = (
    ": the runner's Dask client is closed. Either the runner lost its scheduler and Dask "
    "closed the client when it could not reconnect within connect_timeout (start the "
    "scheduler again, or mend the network to it), or the application called "
    "runner.client.close() (leave that to the runner's shutdown); then make a new runner"
)


#: Why a call under way was lost when the cluster object the runner's client (``client=``) was
#: made on was closed.
_CLUSTER_CLOSED_UNDER_IT = (
    ": the Dask cluster was closed while the call was under way (the cluster the runner's "
    "client was made on: Dask closes the client with it); keep the cluster open until the "
    "executor has shut down"
)

#: Why a call whose Dask task was cancelled was lost (after "The call was lost on the Dask
#: cluster (how it ended)"), when Dask gave no reason (``"unknown"``, or none where Dask keeps
#: it elsewhere).
_CANCELLED = (
    ": the cluster cancelled its task, as it does every task when the cluster is restarted "
    "(client.restart()) or when the client loses its scheduler, or the application cancelled it"
)

#: Why a call was lost whose Dask task the cluster cancelled as it was restarted (Dask's reason
#: ``"scheduler-restart"``: the scheduler tells each of its clients of a restart, whichever
#: client asked for it).
_RESTARTED = (
    ": the cluster was restarted (client.restart(), by this application or another client of "
    "the cluster), which cancels every task on it"
)


class WorkerLost(Exception):
    """The Dask worker running a tool was lost (or the cluster gave up on the task)."""


_FORKED = Refusal(
    "forked",
    "This DaskRunner was made before os.fork(): its Dask client, its connection to the "
    "scheduler and the thread that delivers the workers' reports belong to the parent process. "
    "Make the DaskRunner (and its executor) in the child, after the fork (under gunicorn: in "
    "the post_fork hook, or without --preload)",
)


# Tool processes are children of the Dask worker: the workers of a local cluster must not be
# daemonic processes (which may not have children). Its nannies read Dask's process-wide
# setting each time they (re)start a worker, so it stays off while any local cluster of a
# DaskRunner runs, and comes back as it was when the last one closes (in whatever order).
_DAEMON_LOCK = threading.Lock()
_daemon_holders = 0
_daemon_setting: Any = None


#: What answers Dask's ``identity`` at an address that is not the scheduler's, as said in an
#: error (``type`` of the answer: Dask's class of the server).
_NOT_SCHEDULERS = {"Worker": "worker", "Nanny": "nanny"}


class _NotAScheduler(OSError):
    """What answered at the runner's address is not a Dask scheduler (a worker, a nanny, or a
    server of another protocol)."""


def _other_protocol(exc: BaseException) -> _NotAScheduler:
    """The error of an address where something answered that Dask could not read (what
    reading it raised: ``exc``), such as an HTTP server (the dashboard's port)."""
    return _NotAScheduler(
        "something answers there in another protocol than Dask's, such as the dashboard's "
        f"HTTP ({type(exc).__name__} reading its answer: {shorten(str(exc), 200)}); pass "
        "the address the scheduler listens on (as 'dask scheduler' prints it, 'Scheduler "
        "at: tcp://host:8786')"
    )


def _dask_said(exc: BaseException) -> tuple[str, BaseException | None]:
    """What Dask's error ``exc`` says, cut to ``MAX_QUOTED_CHARS`` characters (Dask's errors
    quote the address whole, which may be of any length) for an error of the runner to quote,
    and the cause to chain that error from: ``exc`` itself,
    unless its text was cut (a traceback would show it whole, after the error that cut it)."""
    said = str(exc)
    # (Dask quotes the address raw: one ending in a newline would break the error in two)
    one_line = "".join(c if c.isprintable() else repr(c)[1:-1] for c in said)
    if one_line == said and len(said) <= MAX_QUOTED_CHARS:
        return said, exc
    return shorten(one_line, MAX_QUOTED_CHARS), None


def _parsed(address: str) -> tuple[str, str] | None:
    """The scheme and the location Dask reads in ``address`` (one without a scheme has Dask's
    ``distributed.comm.default-scheme``); ``None`` when Dask cannot parse it: such an address
    is left to Dask's parser where the runner connects, refused there in its words."""
    comm: Any = importlib.import_module("distributed.comm")  # (distributed is not typed)
    try:
        scheme, location = comm.parse_address(address)
    except Exception:
        return None
    return scheme, location


def _check_port(scheme: str, location: str) -> None:
    """Raise ``ValueError`` when a ``tcp://`` or ``tls://`` address (its ``scheme`` and
    ``location``, as :func:`_parsed` gives them) has a port no scheduler can listen on (0,
    negative, past 65535). Dask parses such a port, and its client tries to connect there
    until its timeout, to say then that nothing could be reached. A location Dask cannot
    parse, or another scheme, is left to Dask."""
    comm: Any = importlib.import_module("distributed.comm")  # (distributed is not typed)
    try:
        port = comm.parse_host_port(location)[1] if scheme in ("tcp", "tls") else None
    except Exception:  # (refused by Dask's parser where the runner connects, in its words)
        return
    if isinstance(port, int) and not 1 <= port <= 65535:
        raise ValueError(f"port {port} is not one a scheduler can listen on: 1 to 65535")


def _check_protocol(address: str, scheme: str) -> None:
    """Raise ``ValueError`` when Dask knows ``scheme``, that of ``address``, but cannot make its
    connector in this installation (``ucx://`` without UCX): that failure, before anything
    is connected to, read as a server there answering in another protocol. A scheme Dask
    does not know is left to Dask."""
    comm: Any = importlib.import_module("distributed.comm")  # (distributed is not typed)
    try:
        backend = comm.registry.get_backend(scheme)
    except Exception:  # (refused by Dask where the runner connects, in its words)
        return
    try:
        backend.get_connector()
    except Exception as exc:
        said, cause = _dask_said(exc)
        raise ValueError(
            f"address {number_repr(address)}: the {scheme}:// protocol is not available in "
            f"this Dask installation ({type(exc).__name__}: {said}); install what Dask needs "
            "for it, or pass the scheduler's tcp:// address"
        ) from cause


#: The settings of Dask's configuration that name the files of a client's TLS context.
_TLS_FILES = (
    "distributed.comm.tls.ca-file",
    "distributed.comm.tls.client.cert",
    "distributed.comm.tls.client.key",
)


def _tls_files() -> str:
    """The settings of :data:`_TLS_FILES` that Dask's configuration sets, with their values
    (each cut short), for an error, each followed by why it cannot be read when it names a
    file that cannot be (``(missing)``, ``(a directory)``, ``(not readable)``); ``""`` when
    none is set, or the configuration cannot be read."""
    config: Any = importlib.import_module("dask").config  # (dask is not typed)
    named = []
    for key in _TLS_FILES:
        try:
            value = config.get(key, None)
        except Exception:  # (a configuration that cannot be read names nothing)
            continue
        if value is not None:
            named.append(f"{key} {quoted(value)}{_unreadable(value)}")
    return ", ".join(named)


def _unreadable(value: object) -> str:
    """Why the file a TLS setting's ``value`` names cannot be read, in parentheses after a
    space; ``""`` when it can, or ``value`` is no path (PEM text itself, which Dask takes
    too, or not a string). Looked at, not opened: a path may name a pipe."""
    if not isinstance(value, str) or "\n" in value:
        return ""
    try:
        if not os.path.exists(value):
            return " (missing)"
        if os.path.isdir(value):
            return " (a directory)"
        if not os.access(value, os.R_OK):
            return " (not readable)"
    except (OSError, ValueError):  # (a path the system cannot take: a NUL in it)
        return " (not a path the system can open)"
    return ""


def _check_tls(address: str, scheme: str) -> None:
    """Raise ``ValueError`` when Dask's configuration names TLS files for a client that
    cannot be read (missing, a directory, not PEM), whatever the scheme of ``address``:
    Dask's client makes that TLS context for every address, ``tcp://`` too, and its error
    names neither the address nor the file (the runner's handshake, which makes it too, read
    it as a scheduler it could not reach). Or when ``address`` is a ``tls://`` address (its
    ``scheme`` is ``tls``: also one without a scheme while Dask's
    ``distributed.comm.default-scheme``, which Dask gives it, is ``tls``) and Dask's
    configuration gives a client no TLS context: Dask's connector then fails before it
    connects, which read as a server there answering in another protocol, whether or not
    anything listened."""
    if scheme != "tls":
        what = f"a {scheme}:// address"
    elif "://" in address:
        what = "a tls:// address"
    else:
        what = (
            "an address without a scheme, which Dask's distributed.comm.default-scheme makes "
            "a tls:// one"
        )
    try:
        security: Any = importlib.import_module("distributed.security").Security()
        context = security.get_connection_args("client").get("ssl_context")
    except Exception as exc:
        said, cause = _dask_said(exc)
        files = _tls_files()
        named = (
            f"a client a TLS context ({type(exc).__name__}: {said}"
            + (f"; it names {files}" if files else "")
            + ")"
        )
        if scheme == "tls":
            raise ValueError(
                f"address {number_repr(address)} is {what}, and Dask's configuration cannot "
                f"give {named}: name readable PEM files there, or make a "
                "distributed.Client(address, security=distributed.Security(...)) and pass "
                "it as client="
            ) from cause
        raise ValueError(
            f"address {number_repr(address)} is {what}, and Dask's configuration cannot give "
            f"{named}, which Dask's client makes for every address: name readable PEM "
            "files there (a scheduler that uses them has a tls:// address), or remove them "
            "from the configuration"
        ) from cause
    if scheme != "tls" or context is not None:
        return
    raise ValueError(
        f"address {number_repr(address)} is {what}, and Dask's configuration gives a client "
        "no TLS certificates (distributed.comm.tls.ca-file, and "
        "distributed.comm.tls.client.cert and .key): set them, or make a "
        "distributed.Client(address, security=distributed.Security(...)) and pass it as client="
    )


def _await_handshake(address: str, timeout: float) -> None:
    """Raise ``OSError`` or ``TimeoutError`` unless a Dask scheduler at ``address`` completes
    distributed's handshake within ``timeout`` seconds, and answers as one
    (``_NotAScheduler``: a worker's or a nanny's address, or a server of another protocol).

    ``Client(address, timeout=...)`` bounds the connection, not the handshake after it, so a
    port that accepts and never answers (a wrong port) would hold it for ever. The probe runs
    on a thread of its own, with its own event loop (the caller may be inside one).
    """
    # (distributed is not typed)
    connect: Any = importlib.import_module("distributed.comm").connect
    security: Any = importlib.import_module("distributed.security").Security()
    args = security.get_connection_args("client")

    async def probe() -> None:
        try:
            comm = await asyncio.wait_for(connect(address, timeout=timeout, **args), timeout)
        except (OSError, asyncio.TimeoutError, ValueError):
            raise  # (ValueError: an address Dask cannot parse)
        except Exception as exc:  # its handshake answered in another protocol
            raise _other_protocol(exc) from exc
        try:
            # (Without arguments: a worker or a nanny answers too, where the client's own
            # question, with arguments only a scheduler takes, fails there.)
            await asyncio.wait_for(comm.write({"op": "identity", "reply": True}), timeout)
            answer = await asyncio.wait_for(comm.read(), timeout)
        except (OSError, asyncio.TimeoutError):
            raise
        except Exception as exc:  # an answer in another protocol, read as Dask's
            raise _other_protocol(exc) from exc
        finally:
            with contextlib.suppress(Exception):
                await comm.close()
        kind = answer.get("type") if isinstance(answer, dict) else None
        if kind in _NOT_SCHEDULERS:
            raise _NotAScheduler(
                f"a Dask {_NOT_SCHEDULERS[kind]} answers there, not the scheduler: pass the "
                "address the scheduler listens on (as 'dask scheduler' prints it, "
                "'Scheduler at: tcp://host:8786'; the workers' logs name it too, 'Registered "
                "to: ...')"
            )

    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            asyncio.run(probe())
            outcome.append(None)
        except BaseException as exc:  # (handed to the caller's thread)
            outcome.append(exc)

    thread = threading.Thread(target=run, name="laios-dask-handshake", daemon=True)
    _start_own_thread(thread, "that waits for the scheduler's answer to Dask's handshake")
    # (wait_for ends it at the timeout; the margin is for a slow CPU. A thread waits at most
    # TIMEOUT_MAX seconds, some 292 years: a longer timeout waits that long.)
    thread.join(min(timeout + 5.0, threading.TIMEOUT_MAX))
    if not outcome:
        raise TimeoutError(f"no handshake within {timeout:g}s")
    failure = outcome[0]
    if isinstance(failure, asyncio.TimeoutError):
        raise TimeoutError(f"no handshake within {timeout:g}s") from failure
    if failure is not None:
        raise failure


def _start_own_thread(thread: threading.Thread, purpose: str) -> None:
    """Start a thread of the constructor's, or raise a ``RuntimeError`` that says which and
    what to check when the system refuses it ("can't start new thread")."""
    try:
        thread.start()
    except RuntimeError as exc:
        raise RuntimeError(
            f"DaskRunner could not start its thread {purpose} ({exc}: the system refused a "
            "new thread): check the process's thread or process limit, such as a "
            "container's pids limit, or end threads the program no longer needs, then make "
            "the runner again"
        ) from exc


def _hold_daemon_off() -> None:
    global _daemon_holders, _daemon_setting
    import dask

    with _DAEMON_LOCK:
        if _daemon_holders == 0:
            _daemon_setting = dask.config.set({"distributed.worker.daemon": False})
        _daemon_holders += 1


def _release_daemon_off() -> None:
    global _daemon_holders, _daemon_setting
    with _DAEMON_LOCK:
        _daemon_holders -= 1
        if _daemon_holders == 0 and _daemon_setting is not None:
            _daemon_setting.__exit__(None, None, None)
            _daemon_setting = None


# -- the worker's side ----------------------------------------------------------------------------


class _WorkerState:
    """What one Dask worker process keeps: its process runner, and the calls it runs."""

    def __init__(self, processes: int, initializer: Any, initargs: tuple[Any, ...]) -> None:
        from laios.execution._runners.process import ProcessRunner

        self.runner = ProcessRunner(processes, initializer=initializer, initargs=initargs)
        self.lock = threading.Lock()
        self.running: dict[str, _WorkerCall] = {}
        #: Keys killed before they started here (the oldest forgotten past MAX_KILLED_KEYS),
        #: the kills that came before this worker's first call among them.
        self.killed: OrderedDict[str, None] = _KILLED_BEFORE_SETUP.copy()
        _KILLED_BEFORE_SETUP.clear()
        #: The ids of the Dask workers that use this state (under ``_STATE_LOCK``): more than
        #: one when they run in one process (a cluster of ``processes=False``).
        self.workers: set[str] = set()


#: The name of the worker plugin whose teardown ends the processes tools run in.
_PLUGIN_NAME = "laios-dask-runner"


def _closes_with(worker: Any, state: _WorkerState) -> None:
    """Have ``worker``'s close end ``state``'s tool processes once no other worker of this
    process uses them (a worker in the caller's own process would otherwise leave them, and
    their reader thread, running until the program exits). Called under ``_STATE_LOCK``."""
    from distributed import WorkerPlugin

    class _CloseTools(WorkerPlugin):
        def teardown(self, worker: Any) -> None:
            global _STATE
            with _STATE_LOCK:
                state.workers.discard(worker.id)
                if state.workers:
                    return
                if _STATE is state:
                    _STATE = None
            # (Runs on the worker's event loop: killing does not wait. The worker is closing:
            # what its tools would report could not reach their callers.)
            state.runner.terminate()

    state.workers.add(worker.id)
    # (The plugin is added on the worker's event loop; this runs on one of its threads.)
    worker.loop.add_callback(worker.plugin_add, plugin=_CloseTools(), name=_PLUGIN_NAME)


#: The name of the worker plugin that has a worker of the runner's own cluster log no
#: heartbeat its own close cut short.
_QUIET_CLOSE_PLUGIN = "laios-quiet-close"


def _register_quiet_close(client: Any) -> None:
    """Have the workers of the runner's own cluster (one to a process), closing as the runner
    shuts down, log no heartbeat that their close cut short, which Dask logs as an error with
    a traceback (a worker plugin: see :func:`laios._compat.dask.quiet_heartbeats_cut_by_close`).
    A plugin the workers cannot take is logged, and the runner works on without it."""
    from distributed import WorkerPlugin

    class _QuietClose(WorkerPlugin):
        def setup(self, worker: Any) -> None:
            quiet_heartbeats_cut_by_close(worker)

    try:
        client.register_plugin(_QuietClose(), name=_QUIET_CLOSE_PLUGIN)
    except Exception:
        _log.warning(
            "could not register the worker plugin that keeps the local Dask cluster's workers "
            "from logging heartbeats their own close cut short; they may log them as errors "
            "when the runner shuts down",
            exc_info=True,
        )


_STATE: _WorkerState | None = None
_STATE_LOCK = threading.Lock()
#: Keys killed on this worker before its first call set up its state (under ``_STATE_LOCK``):
#: a kill a caller sends everywhere may come before the call it stops.
_KILLED_BEFORE_SETUP: OrderedDict[str, None] = OrderedDict()


def _remember_killed(killed: OrderedDict[str, None], key: str) -> None:
    """Keep ``key`` as killed before it started, forgetting the oldest past
    ``MAX_KILLED_KEYS`` (a kill goes to every worker, and only one ever runs its call)."""
    killed[key] = None
    if len(killed) > MAX_KILLED_KEYS:
        killed.popitem(last=False)


def _state(worker: Any, setup: bytes) -> _WorkerState:
    """This worker's state, made by its first call (``setup``: the pickled initializer and
    its arguments, loaded here, only then)."""
    global _STATE
    with _STATE_LOCK:
        if _STATE is None:
            initializer, initargs = pickle.loads(setup)
            # (A worker of a cluster of one's own may have more threads than a process
            # runner may have processes: its calls past the bound wait for one.)
            processes = min(max(int(worker.state.nthreads), 1), MOST_PROCESSES)
            _STATE = _WorkerState(processes, initializer, initargs)
        if worker.id not in _STATE.workers:
            _closes_with(worker, _STATE)
        return _STATE


class _WorkerCall:
    """One call on a Dask worker: forwards its events to the caller, waits for its end."""

    cancel_requested = False

    def __init__(self, worker: Any, topic: str, key: str) -> None:
        self.worker = worker
        self.topic = topic
        self.key = key
        #: The call, once loaded here (its parameters' secrets are scrubbed before a cut).
        self.call: ToolCall | None = None
        self._secrets: SecretForms | None = None
        self.outcome: RawOutcome | None = None
        self.ended = threading.Event()
        self.handle: Handle | None = None
        #: The caller gave the call up (under the worker state's lock, as ``handle``).
        self.killed = False

    def send(self, kind: str, *parts: Any) -> None:
        # The parts travel pickled on their own: a caller that cannot load them (a class only
        # the workers have) still reads which call they belong to.
        self.send_body(kind, pickled_message((kind, *parts)))

    def send_body(self, kind: str, body: bytes) -> None:
        message = pickle.dumps((self.key, kind, body), pickle.HIGHEST_PROTOCOL)
        self.worker.log_event(self.topic, message)

    def secrets(self) -> SecretForms:
        """The secret values of the call's parameters, with their encoded forms (read and
        worked out once: the tool runs in another process, and cannot change them here)."""
        if self._secrets is None:
            self._secrets = SecretForms(call_secrets(self.call) if self.call is not None else ())
        return self._secrets

    # RunEvents of the worker's process runner
    def started(self) -> bool:
        return True

    # A report travels through the scheduler, which keeps the last ones: it is cut here as
    # the caller's side keeps it, its secrets scrubbed before the cut as there.
    def progress(self, percent: float, message: str | None, details: dict[str, Any]) -> None:
        if message is not None:
            # (one the tool process could not print goes on as it came: see sendable)
            message = sendable(message, UNPRINTABLE_MESSAGE)
            if len(message) > MAX_TEXT:
                message = scrub_head(message, self.secrets(), MAX_TEXT)
        body = pickled_message(("progress", percent, message, details))
        if len(body) > MAX_REPORT_BYTES:
            summary, _ = summarize(details)
            body = pickled_message(("progress", percent, message, summary))
        self.send_body("progress", body)

    def checkpoint(self, name: str, data: Mapping[str, Any] | None) -> None:
        data = mapping_copy(data)
        # (as text, as the caller's side records it: a name that cannot be pickled would go
        # as its description, one that cannot be printed as its class's name; the caller's
        # side warns of one that cannot be printed, where the application's logging is)
        name = self.cut_name(sendable(name, UNPRINTABLE_NAME))
        body = pickled_message(("checkpoint", name, data))
        if len(body) > MAX_REPORT_BYTES:
            summary, _ = summarize(_Scrubbed(data, self.secrets()) if data else None)
            body = pickled_message(("checkpoint", name, summary))
        self.send_body("checkpoint", body)

    def cut_name(self, name: str) -> str:
        """A checkpoint's name cut as its span's is, scrubbed of the call's secrets before the
        cut: a secret across the cut would leave its first characters behind."""
        if len(name) <= MAX_CHECKPOINT_NAME_CHARS:
            return name
        return scrub_head(name, self.secrets(), MAX_CHECKPOINT_NAME_CHARS)

    def finished(self, outcome: RawOutcome) -> None:
        self.end(outcome)

    def refused(self, refusal: Refusal) -> None:
        self.end(RawOutcome(None, WorkerLost(refusal.message), error_type=refusal.reason))

    def end(self, outcome: RawOutcome) -> None:
        if self.outcome is None:
            self.outcome = outcome
        self.ended.set()


class _Scrubbed(Mapping[Any, Any]):
    """A checkpoint's data with its string keys and values scrubbed of ``secrets`` (only
    those read), for :func:`summarize` to cut: the checkpoint's span scrubs them before it
    cuts them, and a secret across a cut would leave part of it behind."""

    def __init__(self, data: Mapping[Any, Any], secrets: Sequence[str]) -> None:
        self.data = data
        self.secrets = secrets

    def _scrub(self, value: Any) -> Any:
        if self.secrets and type(value) is str:
            return scrub_head(value, self.secrets, MAX_DATA_STRING + 1)
        return value

    def __len__(self) -> int:
        return len(self.data)

    def __iter__(self) -> Any:
        return (self._scrub(key) for key in self.data)

    def __getitem__(self, key: Any) -> Any:  # (summarize reads items() alone)
        return self._scrub(self.data[key])

    def items(self) -> Any:
        return ((self._scrub(key), self._scrub(value)) for key, value in self.data.items())


def serve_call(
    payload: bytes,
    key: str,
    topic: str,
    wall_deadline: float | None,
    setup: bytes,
) -> str:
    """Run one call on this Dask worker (the function of the call's Dask task).

    The call, and the ``worker_initializer`` with its arguments (``setup``), arrive pickled
    by the caller and are unpickled here, so that a tool or an initializer whose module this
    worker cannot import fails its own call (``not_picklable``) instead of the task's
    deserialization, which takes the Dask worker down.
    """
    from distributed import get_worker

    worker = get_worker()
    this = _WorkerCall(worker, topic, key)
    try:
        state = _state(worker, setup)
    except BaseException as exc:  # e.g. the initializer's module is not importable here
        # (BaseException: a ``__reduce__`` may raise ``SystemExit``, which would end the
        # Dask worker, and then each one Dask gives the task to next)
        from laios.execution._runners.process_worker import ToolNotLoadable

        this.send("started", f"{worker.address} pid {os.getpid()}")
        this.send(
            "done",
            RawOutcome(
                None,
                ToolNotLoadable(
                    f"The Dask worker {worker.address} could not set up the processes tools "
                    f"run in ({type(exc).__name__}: {exc}). The DaskRunner's "
                    "worker_initializer must be importable on its workers: a module-level "
                    "function of a module installed on (or on the path of) every worker"
                ),
                error_type="not_picklable",
            ),
        )
        return "not set up"
    with state.lock:
        if key in state.killed:
            del state.killed[key]
            return "killed"
        state.running[key] = this
    try:
        where = f"{worker.address} pid {os.getpid()}"
        if wall_deadline is not None and time.time() >= wall_deadline:
            # (Its caller's timeout ends it; or, when the caller's clock says the deadline is
            # still to come, this worker's clock runs ahead: the caller says so.)
            this.send("too_late", worker.address, time.time())
            return "too late"
        this.send("started", where)
        if multiprocessing.current_process().daemon:
            this.send("done", _daemonic_worker())
            return "refused"
        try:
            call: ToolCall = pickle.loads(payload)
        except BaseException as exc:  # e.g. the tool's module is not importable here
            # (BaseException: a parameter's ``__reduce__`` may raise ``SystemExit``)
            from laios.execution._runners.process_worker import ToolNotLoadable

            this.send(
                "done",
                RawOutcome(
                    None,
                    ToolNotLoadable(
                        f"The Dask worker {worker.address} could not load the call "
                        f"({type(exc).__name__}: {exc}). A tool run on a Dask cluster must be "
                        "importable on its workers: define its class (for a tool from "
                        "create_simple_tool, the function passed to it) at module level in a "
                        "module installed on (or on the path of) every worker"
                    ),
                    error_type="not_picklable",
                ),
            )
            return "not loadable"
        this.call = call
        if wall_deadline is not None:
            call.deadline = time.monotonic() + (wall_deadline - time.time())
        # The caller may give the call up while it loads (it counts as started since the
        # "started" report): a killed call is not handed to a tool process, and one killed
        # as it is handed over is killed there.
        with state.lock:
            killed = this.killed
        if not killed and task_released(worker, key):  # (its caller went away meanwhile)
            _stop_released(state, this, call.tool_name)
            killed = True
        if not killed:
            handle = state.runner.submit(call, this)
            if isinstance(handle, Refusal):
                this.refused(handle)
            else:
                with state.lock:
                    this.handle = handle
                    killed = this.killed
                if killed:
                    state.runner.abandon(handle)
        _watch(state, this, wall_deadline, call.tool_name)
        this.ended.wait()
        outcome = this.outcome
        assert outcome is not None
        if outcome.error_type == "terminated":
            # This worker's process runner is terminated only as the worker closes (see
            # _closes_with), or as its process exits: the process runner's own words for it
            # (its executor collected, or the interpreter exiting) are not the caller's. The
            # caller says what closed, knowing whether its cluster was closed.
            this.send("closed", worker.address)
            return "closed"
        if outcome.worker:
            outcome.worker = f"{worker.address} {outcome.worker}"
        this.send_body("done", _done_body(outcome, call.tool_name, worker.address, this.secrets))
        return "done"
    finally:
        with state.lock:
            state.running.pop(key, None)


def _done_body(
    outcome: RawOutcome, tool_name: str, address: str, secrets: Callable[[], Sequence[str]]
) -> bytes:
    """The ``done`` report of ``outcome``, pickled for the caller.

    What the tool returned or raised left its tool process pickled, and was loaded here: one
    that loads as something that cannot be pickled (a ``__reduce__`` that rebuilds another
    object) ends the call ``not_picklable``, described scrubbed of the call's secrets
    (``secrets()``, read only then), as its tool process does; the report would otherwise
    carry that description in place of an outcome, which the caller cannot end the call with.
    """
    try:
        return pickle.dumps(("done", outcome), pickle.HIGHEST_PROTOCOL)
    except BaseException as exc:  # (a ``__reduce__`` may raise ``SystemExit``)
        substitute = not_picklable_outcome(
            outcome,
            exc,
            secrets(),
            tool_name,
            f"its Dask worker {address}",
            "on Dask",
            as_loaded=True,
        )
        del exc  # (what the failed pickling held goes before the next one)
    return pickle.dumps(("done", substitute), pickle.HIGHEST_PROTOCOL)


def _watch(
    state: _WorkerState, this: _WorkerCall, wall_deadline: float | None, tool_name: str
) -> None:
    """Wait for the call to end; kill its tool first when nobody waits for it any more.

    That is when its deadline passed ``DEADLINE_GRACE`` seconds ago and no kill came from its
    caller (the caller is gone or cut off: a tool that hangs must not hold the worker for
    ever), or when the scheduler released its Dask task: the client that sent it went away
    (closed, or its process died) or cancelled it. Dask cannot stop a task's thread, so
    without this a tool with no timeout would run to its end for nobody.
    """
    while True:
        wait = WATCH_INTERVAL
        if wall_deadline is not None:
            wait = min(wait, max(wall_deadline + DEADLINE_GRACE - time.time(), 0.0))
        if this.ended.wait(wait):
            return
        if wall_deadline is not None and time.time() >= wall_deadline + DEADLINE_GRACE:
            _stop_here(
                state,
                this,
                TimeoutError(
                    f"Tool '{shown_name(tool_name)}' was killed on its Dask worker "
                    f"{this.worker.address}: its timeout passed {DEADLINE_GRACE:g}s ago and its "
                    "caller had not stopped it (the caller is gone or cut off from the cluster, or "
                    "the clocks disagree)"
                ),
                "timeout",
            )
            return
        if task_released(this.worker, this.key):
            _stop_released(state, this, tool_name)
            return


def _stop_released(state: _WorkerState, this: _WorkerCall, tool_name: str) -> None:
    """Kill the call whose Dask task the scheduler released (nobody waits for it)."""
    _stop_here(
        state,
        this,
        WorkerLost(
            f"Tool '{shown_name(tool_name)}' was killed on its Dask worker {this.worker.address}: "
            "the scheduler released its task (the client that sent it went away, or cancelled it)"
        ),
        "worker_lost",
    )


def _stop_here(
    state: _WorkerState, this: _WorkerCall, error: BaseException, error_type: str
) -> None:
    """Kill the call's tool (if it was handed to one) and end the call with ``error``."""
    with state.lock:
        this.killed = True
        handle = this.handle
    if handle is not None:
        state.runner.abandon(handle)
    this.end(RawOutcome(None, error, error_type=error_type))


def _named_where(outcome: RawOutcome, handle: _DaskCall) -> RawOutcome:
    """``outcome`` naming the Dask worker that reported the call's start, when it names no
    worker of its own (the call ended without an answer from a tool process: its worker
    died or closed, its task was released or cancelled): its address alone, as for a call
    killed there (the pid its ``started`` report gives is the Dask worker's, not a tool
    process's). Unchanged for a call no worker reported starting."""
    where = handle.where
    if outcome.worker is None and where is not None:
        outcome.worker = where.split(" ", 1)[0]
    return outcome


def _not_picklable(call: ToolCall, exc: BaseException) -> Refusal:
    """The refusal of a call that cannot be pickled, naming what in it cannot be (the tool,
    or the first parameter that fails on its own: by name and type, never by value). A
    coroutine for a tool (a plain ``get_tool`` around an async lookup) is closed, and the
    refusal says what is wrong with it."""
    refused = coroutine_refusal(call, "the Dask cluster")
    if refused is not None:
        return refused
    what = "its tool or parameters cannot be pickled"
    advice = (
        "Define the tool class at module level in a module the workers can import, and pass "
        f"plain, picklable parameters; {SIMPLE_TOOL_ADVICE}"
    )
    part = unpicklable_part(call)
    if part is not None:
        what = f"{part} cannot be pickled"
        advice = unpicklable_advice(part, "a module the workers can import", "on a Dask cluster")
    return Refusal(
        "not_picklable",
        f"Task '{shorten(call.task_id, 128)}' cannot be sent to the Dask cluster: {what} "
        f"({describe_error(exc, call_secrets(call))}). {advice}",
    )


def _clocks_disagree(worker: str, worker_time: float) -> Refusal:
    """The refusal of a call its worker did not start, its deadline past by the worker's
    clock, while the caller's clock says it is still to come."""
    ahead = worker_time - time.time()
    return Refusal(
        "clock",
        f"The Dask worker {worker} did not start the call: by its clock the call's deadline "
        f"had passed, while the caller's clock says it is still to come (the worker's clock "
        f"runs about {ahead:.0f}s ahead of the caller's). Keep the clocks of the caller and "
        "the Dask workers in sync (NTP)",
    )


def _unloadable(exc: BaseException) -> RawOutcome:
    from laios.execution._runners.process import WorkerCrashed

    return RawOutcome(
        None,
        WorkerCrashed(
            "What the tool sent back from its Dask worker could not be loaded in the caller's "
            f"process ({type(exc).__name__}: {exc}): install what its result or exception "
            "needs here too, or return plain values"
        ),
        error_type="not_picklable",
    )


def _daemonic_worker() -> RawOutcome:
    return RawOutcome(
        None,
        WorkerLost(
            "This Dask worker is a daemonic process, which may not start the process a tool "
            "runs in: start the workers with DASK_DISTRIBUTED__WORKER__DAEMON=False in their "
            "environment (or run 'dask worker --no-nanny')"
        ),
        error_type="dask_worker_daemon",
    )


async def kill_calls(keys: list[str]) -> None:
    """Kill the calls ``keys`` that this Dask worker runs, and keep the others from starting
    here (also when no call ran here yet): what a caller gave up at once (a batch past its
    timeout) travels as one message.

    A coroutine function: ``Client.run`` sends it without waiting for an answer only then.
    """
    with _STATE_LOCK:
        state = _STATE
        if state is None:  # no call ran here yet: remembered for the first one
            for key in keys:
                _remember_killed(_KILLED_BEFORE_SETUP, key)
            return
    for key in keys:
        with state.lock:
            this = state.running.get(key)
            if this is None:
                _remember_killed(state.killed, key)
                continue
            this.killed = True
            handle = this.handle
        if handle is not None:
            state.runner.abandon(handle)
        this.end(RawOutcome(None, WorkerLost("killed by its caller"), error_type="killed"))


def forget_reports(topic: str, dask_scheduler: Any = None) -> None:
    """Clear the events of ``topic`` that the Dask scheduler keeps (run on the scheduler).

    The scheduler forwards each event to the topic's subscribers when it arrives, and also
    keeps the last ones of each topic (``distributed.admin.low-level-log-length``, for ever):
    a runner's reports hold its tools' results, errors, progress and checkpoints, which are
    the caller's alone, may hold secrets and may be large. Dask has no public call for it:
    see :mod:`laios._compat.dask`.
    """
    forget_topic(dask_scheduler, topic)


def drop_reports(topic: str, dask_scheduler: Any = None) -> bool:
    """Drop ``topic`` from the Dask scheduler, with its events and subscribers (run on the
    scheduler, at the runner's shutdown). The scheduler keeps every topic it ever heard of for
    as long as it runs: a cluster that outlives many runners would keep one for each.
    ``False`` when the topic could not be dropped: its events are cleared then."""
    if drop_topic(dask_scheduler, topic):
        return True
    forget_topic(dask_scheduler, topic)
    return False


# -- the caller's side ----------------------------------------------------------------------------


def _release(future: Any) -> None:
    """Tell the scheduler this caller no longer needs the task's result."""
    with contextlib.suppress(Exception):
        future.release()


def _closed(client: Any) -> bool:
    """Whether a Dask client is closed or closing (by its owner, by a runner's shutdown, or
    by Dask when it lost its scheduler): nothing reaches the cluster through it any more."""
    return getattr(client, "status", None) in ("closing", "closed")


def _cluster_closed(client: Any) -> bool:
    """Whether the cluster object ``client`` was made on (``Client(cluster)``) is closed or
    closing: Dask then closes the client too, instead of trying to reconnect."""
    status = getattr(getattr(client, "cluster", None), "status", None)
    return getattr(status, "value", status) in ("closing", "closed")


def _loop_closed(client: Any) -> bool:
    """Whether the event loop ``client`` runs on is closed (an asynchronous client made in an
    ``asyncio.run`` that has returned): nothing asked of the client ever happens then, and a
    blocking call on it waits for ever. ``False`` for a closed client (see :func:`_closed`),
    whose loop Dask closes with it."""
    if _closed(client):
        return False
    loop = getattr(getattr(client, "loop", None), "asyncio_loop", None)
    try:
        return bool(loop is not None and loop.is_closed())
    except Exception:  # (a loop of another kind)
        return False


def _loop_stopped(client: Any) -> bool:
    """Whether the event loop ``client`` runs on is closed, or open and not running (an
    asynchronous client whose loop was stopped, or whose thread ended): nothing asked of the
    client happens until it runs again. ``False`` for a closed client (see :func:`_closed`)."""
    if _closed(client):
        return False
    loop = getattr(getattr(client, "loop", None), "asyncio_loop", None)
    try:
        return bool(loop is not None and (loop.is_closed() or not loop.is_running()))
    except Exception:  # (a loop of another kind)
        return False


#: Why a call cannot go through a client whose event loop is closed.
_LOOP_CLOSED = (
    ": the event loop of the runner's Dask client is closed (an asynchronous client made in "
    "an asyncio.run() that has returned, or on a loop closed since), so nothing sent through "
    "it would ever happen. Make the client, the runner and the executor on an event loop "
    "that runs for as long as the executor is used, or give the runner a synchronous client "
    "or the scheduler's address"
)

#: Why a call cannot go through a client whose event loop is open and not running.
_LOOP_STOPPED = (
    ": the event loop of the runner's Dask client is not running (an asynchronous client "
    "whose loop was stopped, or whose thread ended), so nothing sent through it, nor any "
    "report of the workers, gets through. Keep the loop the client was made on running for as "
    "long as the executor is used, or give the runner a synchronous client or the "
    "scheduler's address"
)


def _dask_reason(future: Any) -> str:
    """What Dask says failed the task of ``future`` (``": KilledWorker: ..."``, which names
    the worker whose log tells why), or ``""`` when it did not fail or Dask says nothing.

    Called on Dask's callback thread, where the future's exception, kept by the client, is
    read without asking the scheduler."""
    if getattr(future, "status", None) != "error":
        return ""
    try:
        error = future.exception(timeout=STOP_HANDOVER)
    except Exception:  # (closed client, timeout)
        return ""
    if error is None:
        return ""
    text = str(error)
    if len(text) > 500:
        text = text[:500] + "..."
    return f": {type(error).__name__}: {text}"


class _DaskCall:
    """One accepted call (the runner's handle for it)."""

    __slots__ = (
        "events",
        "future",
        "key",
        "pickled_here",
        "pickled_late",
        "pickling",
        "size",
        "state",
        "stopped",
        "where",
    )

    def __init__(self, key: str, events: RunEvents) -> None:
        self.key = key
        self.events = events
        self.future: Any = None
        #: Being pickled on one of the runner's threads (a large call); under the lock.
        self.pickling = False
        self.size = 0  # bytes of a large call, once pickled
        self.state = "queued"  # queued, running, done, abandoned; under the runner's lock
        self.where: str | None = None  # "address pid N" once started
        #: What :meth:`DaskRunner.abandon` answered first (a repeat call answers the same).
        self.stopped: StopResult = "stopped"
        #: How long pickling it on the caller's thread took, when that pickling ended past
        #: its deadline (it is never sent then); ``None`` otherwise.
        self.pickled_late: float | None = None
        #: The most the caller's thread pickled of a large call before handing it to a
        #: pickling thread (``LOOP_PICKLE_BYTES`` on an event loop's thread).
        self.pickled_here = SEND_HERE_BYTES


class DaskRunner:
    """Runs every tool call on a Dask cluster, inside a killable process on a Dask worker.

    Args:
        address: The scheduler to use (``"tcp://host:8786"``), left running at shutdown.
            ``None``: start a ``LocalCluster`` of worker processes, closed at shutdown.
        client: An existing ``distributed.Client`` to use instead (left open at shutdown).
        n_workers: Worker processes of the local cluster (started at construction), from 1
            to 1,024.
        threads_per_worker: Threads (and tool processes) per worker of the local cluster,
            from 1 to 1,024.
        connect_timeout: Seconds to wait for the scheduler at construction (for its answer
            to Dask's handshake, then for the client to connect).
        worker_initializer: Called once in each tool process on the workers (set up an
            OpenTelemetry SDK there); must be importable on the workers.
        worker_initargs: Arguments for ``worker_initializer``.

    Raises:
        ImportError: When Dask's ``distributed`` is not installed.
        ConnectionError: When the scheduler at ``address`` cannot be reached in time, or
            what answers there is not a scheduler (a worker, a nanny, another protocol).
        RuntimeError: When the system refuses the runner a thread ("can't start new
            thread": a process or container pids limit); the message names the thread.
        ValueError: When a number is out of range (``n_workers`` or ``threads_per_worker``
            not a whole number from 1 to 1,024), both ``address`` and ``client`` are
            given, ``client`` is closed or runs on a closed event loop (an asynchronous
            client made in an ``asyncio.run()`` that has returned), or ``address`` is not
            one Dask can parse (no scheme or port, ``http://``), is of a protocol this
            Dask installation cannot use (``ucx://`` without UCX), or is a ``tls://``
            address (or has no scheme while Dask's default scheme is ``tls``) while Dask's
            configuration gives a client no TLS certificates, or, whatever its scheme
            (``tcp://`` too), while that configuration names TLS files that cannot be read
            (missing, a directory, not PEM: Dask's client reads them for every address).
        TypeError: When ``address`` is not a string (a ``Client`` or a cluster object goes
            in ``client``), ``client`` is not a ``distributed.Client``, ``worker_initializer``
            is not callable or is an async function, ``worker_initargs`` is a string or not a
            sequence, or either cannot be pickled.
    """

    name = "dask"
    can_stop = True
    #: ``RunEvents.started`` comes once a Dask worker has begun the call (its report travels
    #: through the scheduler): the tool may be running during the ``"started"`` callback, and
    #: a cancellation or timeout then stops it as a running call.
    reports_start_late = True
    #: Runs every tool (async ones too) and enforces the calls' memory and CPU limits, in the
    #: process runner of each worker.
    isolated = True

    def __init__(
        self,
        address: str | None = None,
        *,
        client: Any = None,
        n_workers: int = 2,
        threads_per_worker: int = 4,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        worker_initializer: Callable[..., object] | None = None,
        worker_initargs: Sequence[Any] = (),
    ) -> None:
        try:
            import distributed
        except ImportError as exc:
            raise ImportError(
                "DaskRunner needs Dask's distributed package: pip install 'laios[dask]'"
            ) from exc
        if address is not None and not isinstance(address, str):
            raise TypeError(
                "address must be the scheduler's address as a string, such as "
                f"'tcp://scheduler:8786', got {type(address).__name__}; to use a "
                "distributed.Client (or a cluster object) the application has, pass "
                "client=Client(...)"
            )
        n_workers = process_count("n_workers", n_workers)
        threads_per_worker = process_count("threads_per_worker", threads_per_worker)
        if not is_real(connect_timeout) or not 0 < as_float(connect_timeout) < math.inf:
            raise ValueError(
                f"connect_timeout must be a finite number of seconds more than 0, got "
                f"{number_repr(connect_timeout)}{conversion_hint(connect_timeout)}"
            )
        connect_timeout = as_float(connect_timeout)
        if client is not None:
            if address is not None:
                raise ValueError(
                    "give DaskRunner an address or a client, not both (the client is "
                    f"connected already; got address={number_repr(address)})"
                )
            if not isinstance(client, distributed.Client):
                raise TypeError(
                    f"client must be a distributed.Client, got {type(client).__name__}; "
                    "to connect to a scheduler, pass its address instead"
                )
            if _closed(client):
                raise ValueError(
                    "the client is closed (closed by the application, or by Dask when it lost "
                    "its scheduler and could not reconnect): give DaskRunner an open client, "
                    "and keep it open until the executor has shut down, or pass the "
                    "scheduler's address and let the runner connect"
                )
            if _loop_closed(client):
                raise ValueError(
                    "the client's event loop is closed (an asynchronous client made in an "
                    "asyncio.run() that has returned, or on a loop closed since): nothing "
                    "asked of it would ever happen. Make the client and the DaskRunner on an "
                    "event loop that runs for as long as the executor is used, or give a "
                    "synchronous client (Client(address)) or the scheduler's address"
                )
        if isinstance(worker_initargs, (str, bytes)) or not isinstance(worker_initargs, Iterable):
            # (a string would be taken apart into one argument per character)
            raise TypeError(
                "worker_initargs must be a sequence (a list or tuple) of the initializer's "
                f"arguments, got {type(worker_initargs).__name__}; for one argument, write "
                "(value,)"
            )
        if worker_initializer is not None and not callable(worker_initializer):
            raise TypeError(
                f"worker_initializer must be callable, got {type(worker_initializer).__name__}"
            )
        if worker_initializer is not None and is_coroutine_function(worker_initializer):
            raise TypeError(
                "worker_initializer must be a plain function, not an async function: each "
                "tool process calls it and never awaits the coroutine it returns (pass a "
                "plain def)"
            )
        try:  # (they travel with every call, and to the tool processes by name)
            setup = pickle.dumps(
                (worker_initializer, tuple(worker_initargs)), pickle.HIGHEST_PROTOCOL
            )
        except Exception as exc:
            raise TypeError(
                "worker_initializer and worker_initargs must be picklable: a module-level "
                "function of a module the workers can import, and plain arguments "
                f"({type(exc).__name__}: {exc})"
            ) from exc
        client_class: Any = distributed.Client  # (distributed is not typed)
        cluster_class: Any = distributed.LocalCluster
        self._cluster: Any = None
        self._holds_daemon_off = False  # while the local cluster runs
        self._delivery_thread: int | None = None  # where the workers' reports are delivered
        # When the report being delivered began to be (its callbacks hold the loop); or None.
        self._delivering: float | None = None
        self._owns_client = client is None
        if client is None:
            if address is None:
                _hold_daemon_off()
                self._holds_daemon_off = True
                try:
                    self._cluster = cluster_class(
                        n_workers=n_workers,
                        threads_per_worker=threads_per_worker,
                        processes=True,
                        dashboard_address=":0",
                    )
                    client = client_class(self._cluster)
                    _register_quiet_close(client)
                except BaseException:
                    self._close_own()
                    raise
            else:
                parsed = _parsed(address)
                if parsed is not None:
                    _check_protocol(address, parsed[0])
                    _check_tls(address, parsed[0])
                try:
                    if parsed is not None:
                        _check_port(*parsed)
                    _await_handshake(address, connect_timeout)
                    client = client_class(address, timeout=connect_timeout)
                # (The address is described cut short, as is Dask's text, which quotes it.)
                except ValueError as exc:  # (Dask's parser: no scheme, no port, ...)
                    said, cause = _dask_said(exc)
                    raise ValueError(
                        f"address {number_repr(address)} is not a Dask scheduler address "
                        f"({said}): write it as 'tcp://host:8786', as 'dask scheduler' prints "
                        "it (the dashboard's http:// address is not the scheduler's)"
                    ) from cause
                except _NotAScheduler as exc:
                    raise ConnectionError(
                        f"{number_repr(address)} is not the Dask scheduler's address: {exc}"
                    ) from exc
                except (OSError, TimeoutError) as exc:
                    said, cause = _dask_said(exc)
                    raise ConnectionError(
                        f"cannot reach the Dask scheduler at {number_repr(address)} within "
                        f"{connect_timeout:g}s ({type(exc).__name__}: {said}); start it "
                        "(dask scheduler) or pass the right address"
                    ) from cause
        self.client = client
        self.address = address
        self._connect_timeout = connect_timeout
        self.closed = False
        self._topic = f"laios-{uuid.uuid4().hex}"
        self._lock = threading.Lock()
        self._calls: dict[str, _DaskCall] = {}
        #: The initializer and its arguments, pickled: loaded on a worker by its first call.
        self._setup = setup
        self._outbox: list[tuple[_DaskCall, bytes, float | None]] = []  # accepted, not sent
        #: Large calls accepted and not pickled yet (see _pickle_calls), and their threads.
        self._to_pickle: deque[tuple[_DaskCall, ToolCall, float | None]] = deque()
        self._picklers = 0
        self._flush_due = False
        self._cancel_queued = False  # shutdown(wait=False): calls not sent yet never are
        self._reported = False  # reports arrived that the scheduler still keeps
        self._stopping = 0  # stops being sent (the client stays open for them, a while)
        #: Stops asked for and not sent yet: (key to kill, future to cancel, workers).
        self._stops: list[tuple[str | None, Any, list[str] | None]] = []
        #: Set once the client's loop has sent the stops waiting now (``None``: none wait).
        self._stops_sent: threading.Event | None = None
        self._stop_tasks: set[asyncio.Future[None]] = set()  # (on the client's loop)
        #: Made before os.fork() in this (the child) process: every call is refused.
        self.forked = False
        #: Set by shutdown: wakes the thread that reads the cluster's size, which then ends.
        self._closing = threading.Event()
        #: Whether that thread runs; and whether it closes the client and the cluster as it
        #: ends (shutdown could start no thread to: see _close_without_a_thread).
        self._watching = False
        self._close_on_watcher = False
        # Dask's client keeps a topic's handler for ever, also after unsubscribe_topic: it
        # holds this runner only weakly, so that a client shared by many runners keeps none.
        on_event = weakref.WeakMethod(self._on_event)

        def deliver(event: Any) -> None:
            method = on_event()
            if method is not None:
                method(event)

        self._deliver = deliver
        #: The client's connection when it subscribed to the topic (see _follow_reconnection).
        self._subscribed_on = scheduler_connection(client)
        #: Whether the scheduler said, when last asked, that the cluster has no workers.
        self._no_workers = False
        try:
            client.subscribe_topic(self._topic, deliver)
            self._threads = self._count_threads()
            self._watching = True
            _start_own_thread(
                threading.Thread(target=self._watch_threads, name="laios-dask-stats", daemon=True),
                "that reads the cluster's size",
            )
        except BaseException:
            # A runner that was never made leaves nothing running: the client it connected
            # (not a caller's) and the local cluster it started.
            if self._owns_client:
                with contextlib.suppress(Exception):
                    client.close()
            self._close_own()
            raise
        reset_after_fork(self)

    def after_fork_in_child(self) -> None:
        """In a forked child: the client, its connection and its event loop thread are the
        parent's, and so are the calls. Refuse every call (``forked``), never touch the client
        (nor close the parent's cluster); ``shutdown`` only marks the runner shut down."""
        self.forked = True
        self._lock = threading.Lock()
        self._closing = threading.Event()  # (the parent's thread may have held its lock)
        self._watching = self._close_on_watcher = False  # (that thread is the parent's)
        self._calls = {}
        self._stopping = 0
        self._stops = []
        self._stops_sent = None
        self._stop_tasks = set()
        self._outbox = []
        self._to_pickle = deque()
        self._picklers = 0
        self._flush_due = False
        self._delivery_thread = None
        self._owns_client = False
        self._cluster = None
        self._holds_daemon_off = False

    @property
    def dashboard_link(self) -> str:
        """The address of Dask's own dashboard for the cluster."""
        return str(self.client.dashboard_link)

    @property
    def stats(self) -> RunnerStats:
        """Threads of the cluster's workers (as last read, at most ``STATS_INTERVAL`` seconds
        ago), calls running and calls queued. Never waits: a store reads it while holding its
        lock, and asking the cluster waits for the client's event loop, which delivers the
        workers' reports into that store."""
        with self._lock:
            calls = list(self._calls.values())
        return RunnerStats(
            workers=0 if self.closed or self.forked else self._threads,
            busy=sum(1 for call in calls if call.state == "running"),
            queued=sum(1 for call in calls if call.state == "queued"),
        )

    def _count_threads(self) -> int:
        if getattr(self.client, "asynchronous", False):
            # An asynchronous client asked on its own loop answers with a coroutine: the
            # stats thread reads the count instead (see _watch_threads).
            return 0
        if _loop_stopped(self.client):
            return 0  # (asking would wait for ever)
        try:
            threads = int(sum(self.client.nthreads().values()))
        except Exception:  # the cluster cannot be reached now
            self._no_workers = False  # (not known)
            return 0
        self._no_workers = threads == 0
        return threads

    def _watch_threads(self) -> None:
        """Keep the cluster's thread count fresh for :attr:`stats`, and clear the reports the
        scheduler keeps of this runner's topic (off the callers' paths)."""
        wait = STATS_INTERVAL if self._threads else 0.0  # (none read yet: read at once)
        probe: threading.Event | None = None
        try:
            while not self.closed and not self.forked:
                self._closing.wait(wait)
                wait = STATS_INTERVAL
                if not self.closed:
                    probe = self._look_at_loop(probe)
                    self._threads = self._count_threads()
                    self._forget_reports()
        finally:
            with self._lock:
                self._watching = False
                close = self._close_on_watcher
            if close:
                self._close_when_idle()

    def _forget_reports(self, everything: bool = False) -> None:
        """Clear this runner's topic on the scheduler (the reports were delivered already)."""
        if not (self._reported or everything):
            return
        if getattr(self.client, "status", None) != "running" or _loop_stopped(self.client):
            return  # (closed, or reconnecting: asking would wait for the scheduler)
        self._reported = False
        try:
            self.client.run_on_scheduler(forget_reports, self._topic)
        except Exception:  # the scheduler cannot be reached now: the next round tries again
            self._reported = True
            _log.debug("could not clear the reports of %s on the scheduler", self._topic)

    def _drop_topic(self) -> None:
        """Drop this runner's topic from the scheduler, its reports with it, and its handler
        from the client, at shutdown: on a cluster and a client that outlive many runners,
        each would keep one for every runner. When the scheduler cannot drop it (its reports
        are cleared then), the runner only unsubscribes from it; when the request failed, the
        reports are asked to be cleared on their own."""
        if getattr(self.client, "status", None) != "running" or _loop_stopped(self.client):
            self._unsubscribe()
            return
        try:
            dropped = bool(self.client.run_on_scheduler(drop_reports, self._topic))
        except Exception:  # (the scheduler is gone, or cannot run it)
            _log.debug("could not drop %s on the scheduler", self._topic, exc_info=True)
            self._unsubscribe()
            self._forget_reports(everything=True)
            return
        if dropped:
            drop_topic_handler(self.client, self._topic)
        else:
            self._unsubscribe()

    def _unsubscribe(self) -> None:
        with contextlib.suppress(Exception):  # (the cluster may be gone already)
            self.client.unsubscribe_topic(self._topic)

    def submit(self, call: ToolCall, events: RunEvents) -> Handle | Refusal:
        """Send ``call`` to the cluster as one Dask task, or refuse it (shut down, or made
        before a fork in this child process)."""
        if self.closed:
            return SHUTDOWN
        if self.forked:
            return _FORKED
        key = f"laios-{call.tool_name[:64]}-{uuid.uuid4().hex}"
        handle = _DaskCall(key, events)
        wall_deadline = None
        if call.deadline is not None:
            wall_deadline = time.time() + (call.deadline - time.monotonic())
        remote = ToolCall(
            call.task_id,
            call.tool_name,
            dict(call.parameters),
            call.tool,
            call.trace_id,
            call.span_id,
            call.sampled,
            call.measure_cpu,
            None,
            None,
            call.memory_limit_mb,
            call.cpu_seconds,
            call.baggage,
            call.suppressed,
            call.trace_state,
            call.trace_flags,
        )
        # A large call is pickled on one of the runner's threads: the caller (waiting for its
        # task's timeout) or the event loop is not held meanwhile.
        limit = LOOP_PICKLE_BYTES if on_event_loop() else SEND_HERE_BYTES
        began = time.monotonic()
        try:
            payload = pickled(remote, limit)
        except TooLarge:
            handle.pickled_here = limit
            with self._lock:
                self._calls[key] = handle
                handle.pickling = True
                self._to_pickle.append((handle, remote, wall_deadline))
                start = self._picklers < PICKLING_THREADS
                if start:
                    self._picklers += 1
            del remote
            if start:
                self._start_pickler()
            return handle
        except KeyboardInterrupt:
            raise  # (the caller's Ctrl-C: the executor records the task and lets it go on)
        except BaseException as exc:  # (a ``__reduce__`` may raise ``SystemExit`` too)
            return _not_picklable(remote, exc)
        if call.deadline is not None:
            now = time.monotonic()
            if now >= call.deadline:
                # Pickled past its deadline: it never starts, and is not sent. Its task times
                # out as its caller finds the deadline passed, the message saying why (see
                # ``preparing``), and gives it up (nothing to stop).
                handle.pickled_late = now - began
                return handle
        with self._lock:
            self._calls[key] = handle
            self._outbox.append((handle, payload, wall_deadline))
            flush = not self._flush_due
            self._flush_due = True
        if flush:
            self._send_soon()
        return handle

    def _send_soon(self) -> None:
        """Send the calls accepted from now to SEND_DELAY on (with those waiting already)."""
        # Calls accepted within SEND_DELAY go to the scheduler together, as one client.map:
        # a batch costs the scheduler far less than as many submits.
        timer = threading.Timer(SEND_DELAY, self._send)
        timer.daemon = True
        try:
            timer.start()
        except RuntimeError:  # no thread to be had: send the batch from here, now
            self._send()

    def _start_pickler(self) -> None:
        if not on_a_thread(self._pickle_calls, "laios-dask-pickle", daemon=True):
            self._pickle_calls()  # (no thread to be had: pickled here, now)

    def _pickle_calls(self) -> None:
        """Pickle the large calls accepted, in turn, and send each (on a pickling thread); a
        call given up meanwhile is dropped, one that cannot be pickled is refused."""
        while True:
            with self._lock:
                if not self._to_pickle:
                    self._picklers -= 1
                    return
                handle, remote, wall_deadline = self._to_pickle.popleft()
                wanted = handle.state == "queued"
            refusal: Refusal | None = None
            payload = b""
            if wanted:
                try:
                    payload = pickle.dumps(remote, pickle.HIGHEST_PROTOCOL)
                except BaseException as exc:  # (``SystemExit`` too; no Ctrl-C reaches here)
                    refusal = _not_picklable(remote, exc)
            del remote
            with self._lock:
                handle.pickling = False
                if handle.state != "queued":  # given up meanwhile: never sent
                    continue
                if refusal is not None:
                    handle.state = "done"
                    self._calls.pop(handle.key, None)
                    flush = False
                else:
                    handle.size = len(payload)
                    self._outbox.append((handle, payload, wall_deadline))
                    flush = not self._flush_due
                    self._flush_due = True
            del payload
            if refusal is not None:
                handle.events.refused(refusal)
            elif flush:
                self._send_soon()

    def preparing(self, handle: Handle) -> str | None:
        """Where ``handle``'s call is while the runner still prepares it (a large call is
        pickled, or waits for a thread to pickle it; a call was pickled on the caller's thread
        past its deadline), while a large call is sent, or while a call waits on a cluster
        without workers or on a client reconnecting to its scheduler, in words that end a
        timeout's message;
        ``None`` otherwise."""
        assert isinstance(handle, _DaskCall)
        took = handle.pickled_late
        if took is not None:
            return pickled_late_words("the Dask cluster", took)
        if (
            handle.state == "queued"
            and not handle.pickling
            and not self.closed
            and getattr(self.client, "status", None) == "connecting"
        ):
            # (Dask's client between losing its scheduler and reaching one again: nothing
            # takes the call to a worker meanwhile.)
            address = self.address or getattr(
                getattr(self.client, "scheduler", None), "address", None
            )
            where = f" at {address}" if isinstance(address, str) else ""
            return (
                f"while waiting to start (the connection to the Dask scheduler{where} was "
                "lost, and the runner's client is reconnecting to it: no call reaches a worker "
                "until a scheduler answers there again); the tool was never started"
            )
        if (
            handle.state == "queued"
            and not handle.pickling
            and self._no_workers
            and not self.closed
        ):
            # (As the scheduler said, at most STATS_INTERVAL seconds ago: a cluster whose
            # workers never came up, or all left, holds every call queued.)
            return (
                "while waiting to start (the Dask cluster has no workers: start them, "
                "'dask worker <scheduler address>', or give the LocalCluster n_workers); the "
                "tool was never started"
            )
        if handle.size and handle.where is None:  # (sent, not started)
            return (
                f"while its call ({handle.size / 1e6:.0f} MB pickled) was on its way to a Dask "
                "worker, or waiting there to start; the tool was never started"
            )
        if not handle.pickling:
            return None
        return pickling_words("the Dask cluster", handle.pickled_here)

    def _send(self) -> None:
        """Send the calls accepted since the last batch, as one ``client.map``."""
        with self._lock:
            batch = [item for item in self._outbox if item[0].state == "queued"]
            self._outbox = []
            self._flush_due = False
            cancelled = self.closed and self._cancel_queued
            if cancelled:  # shutdown(wait=False) came first: these never start
                for handle, _, _ in batch:
                    handle.state = "done"
                    self._calls.pop(handle.key, None)
        if cancelled:
            for handle, _, _ in batch:
                handle.events.refused(SHUTDOWN)
            return
        if not batch:
            return
        keys = [handle.key for handle, _, _ in batch]
        count = len(batch)
        try:
            if _loop_stopped(self.client):  # (asking it would wait for ever)
                closed = _loop_closed(self.client)
                raise RuntimeError(
                    f"the client's event loop is {'closed' if closed else 'not running'}"
                )
            if self._cluster_closing():
                # (Dask closes the client with its cluster, a moment later: the scheduler may
                # be gone already, and the calls would wait for the client's end.)
                raise RuntimeError("the cluster the client was made on is closed")
            self._follow_reconnection()
            futures = self.client.map(
                serve_call,
                [payload for _, payload, _ in batch],
                keys,
                [self._topic] * count,
                [deadline for _, _, deadline in batch],
                [self._setup] * count,
                key=keys,
                pure=False,
            )
        except Exception as exc:
            refusal = Refusal(
                "dask",
                f"The call could not be sent to the Dask cluster ({type(exc).__name__}: {exc})"
                + self._closed_client_advice(),
            )
            for handle, _, _ in batch:
                with self._lock:
                    self._calls.pop(handle.key, None)
                    pending = handle.state == "queued"
                    handle.state = "done"
                if pending:
                    handle.events.refused(refusal)
            return
        late: list[tuple[str | None, Any, list[str] | None]] = []
        for (handle, _, _), future in zip(batch, futures, strict=True):
            with self._lock:
                abandoned = handle.state not in ("queued", "running")
                if not abandoned:
                    handle.future = future
            if abandoned:  # given up while it was being sent (its kill went out then)
                late.append((None, future, None))
                continue
            future.add_done_callback(self._on_future_done)
        if late:
            self._stop_later(late)

    def _follow_reconnection(self) -> None:
        """Subscribe to the runner's topic again when the client reconnected since it last did:
        a scheduler started again at the runner's address knows no subscriber of it, and the
        workers' reports of the calls sent from then on would reach nobody (each call would
        end ``worker_lost``, however its tool did). The subscription goes first, on the same
        connection as the calls."""
        connection = scheduler_connection(self.client)
        if connection is self._subscribed_on:
            return
        self._subscribed_on = connection
        try:
            self.client.subscribe_topic(self._topic, self._deliver)
        except Exception:  # (closed: sending the calls fails and says so)
            _log.debug("could not subscribe again to %s", self._topic, exc_info=True)

    # -- what comes back ----------------------------------------------------------------------

    def _on_event(self, event: Any) -> None:
        """A message from a worker (on the client's event loop thread)."""
        self._delivery_thread = threading.get_ident()
        self._reported = True
        _, data = event
        try:
            key, kind, body = pickle.loads(data)
        except Exception:
            _log.exception("a message from a Dask worker could not be read")
            return
        try:
            _, *parts = pickle.loads(body)
        except Exception as exc:
            if kind != "done":
                _log.warning(
                    "a %s report from a Dask worker could not be loaded (%s)",
                    kind,
                    type(exc).__name__,
                )
                return
            parts = [_unloadable(exc)]
        future = None
        with self._lock:
            handle = self._calls.get(key)
            if handle is None or handle.state in ("done", "abandoned"):
                return
            rerun = False
            if kind == "started":
                # A second start is Dask running the task again after losing its worker: the
                # caller's side started already, and waits for this run's outcome.
                rerun = handle.state == "running"
                handle.state = "running"
                handle.where = parts[0]
            elif kind in ("done", "closed") or (kind == "too_late" and handle.state == "queued"):
                handle.state = "done"
                self._calls.pop(key, None)
                future, handle.future = handle.future, None
            elif kind == "too_late":
                return
        # (Read before the release: the client cancelled the task, as a restart of the cluster
        # does, before this report of what followed on the worker came.)
        cancelled = getattr(future, "status", None) == "cancelled"
        reason = cancel_reason(future)  # (None unless cancelled)
        if future is not None:
            _release(future)
        events = handle.events
        self._delivering = time.monotonic()
        try:
            self._hand_to_caller(handle, events, kind, parts, rerun, cancelled, reason)
        finally:
            self._delivering = None

    def _hand_to_caller(
        self,
        handle: _DaskCall,
        events: RunEvents,
        kind: str,
        parts: list[Any],
        rerun: bool,
        cancelled: bool,
        reason: str | None,
    ) -> None:
        """Hand a worker's report to the caller's side (on the client's event loop thread: the
        ``on_progress`` callbacks it runs hold that loop)."""
        if kind == "too_late":
            # (A call still queued at its deadline by the caller's clock too ends ``timeout``.)
            events.refused(_clocks_disagree(parts[0], parts[1]))
            return
        try:
            if kind == "started":
                if not rerun and not events.started():
                    self.abandon(handle)
            elif kind == "progress":
                events.progress(parts[0], parts[1], parts[2])
            elif kind == "checkpoint":
                events.checkpoint(parts[0], parts[1])
            elif kind == "done":
                outcome = parts[0]
                if isinstance(outcome, RawOutcome):
                    # When the call ended, by the caller's clock: as its report arrived.
                    outcome.ended = time.monotonic()
                if cancelled and outcome.error_type == "worker_lost":  # (killed as released)
                    outcome = self._ended_cancelled(outcome, reason)
                events.finished(_named_where(outcome, handle))
            elif kind == "closed":
                outcome = self._worker_closed(parts[0])
                if cancelled:
                    outcome = self._ended_cancelled(outcome, reason)
                events.finished(_named_where(outcome, handle))
        except Exception:
            _log.exception("reporting a Dask worker's %s event failed", kind)

    def _worker_closed(self, address: str) -> RawOutcome:
        """The outcome of a call whose Dask worker (at ``address``) closed while it ran, and
        killed its tool as it closed."""
        why = f"its Dask worker {address} closed while running it, and killed its tool"
        if self._cluster_closing():
            message = f"The call was lost on the Dask cluster ({why}){_CLUSTER_CLOSED_UNDER_IT}"
        else:
            message = (
                f"The call was lost on the Dask cluster: its Dask worker {address} closed while "
                "running it (the worker was stopped, retired or restarted, or its process was "
                "exiting), and killed its tool as it closed"
            )
        return RawOutcome(None, WorkerLost(message), error_type="worker_lost")

    def _ended_cancelled(self, reported: RawOutcome, reason: str | None) -> RawOutcome:
        """The outcome of a call whose Dask task was cancelled (for Dask's ``reason``, when
        known), for its worker's report (``reported``) of the kill that followed: its task
        released there, or the worker closed (a restart of the cluster cancels every task, then
        closes or restarts the workers). The call says it was cancelled, as it does when the
        cancellation comes first; the report stands while the cluster is closing (it says
        so)."""
        if self._cluster_closing():
            return reported
        message = self._cancelled("its Dask task ended 'cancelled'", reason)
        return RawOutcome(None, WorkerLost(message), error_type="worker_lost")

    def _cancelled(self, why: str, reason: str | None) -> str:
        """Why a call was lost whose Dask task was cancelled (``why``: how the task ended),
        for Dask's ``reason`` (see :func:`~laios._compat.dask.cancel_reason`). The one place
        that says it, for the cancellation handled first (:meth:`_lost`) as for the worker's
        report of the kill that followed it (:meth:`_ended_cancelled`)."""
        if reason == "scheduler-connection-lost":
            return self._scheduler_lost(why)
        lost = f"The call was lost on the Dask cluster ({why})"
        if reason == "scheduler-restart":
            return lost + _RESTARTED
        if reason is None or reason == "unknown":
            return lost + _CANCELLED
        # (Any other reason may be Dask's own, its scheduler's "lost dependencies" or "already
        # forgotten", or one given to client.cancel: the client reads them alike.)
        return (
            f"{lost}: its task was cancelled for the reason {quoted(reason)} (given by Dask, "
            "or to client.cancel(..., reason=...) by this application or another client of "
            "the cluster)"
        )

    def _cluster_closing(self) -> bool:
        """Whether the cluster object that the client given to the runner (``client=``) was
        made on is closed or closing (see :func:`_cluster_closed`). ``False`` for a client the
        runner made: its own cluster closes only once its calls ended."""
        return not self._owns_client and _cluster_closed(self.client)

    def _on_future_done(self, future: Any) -> None:
        """A call's Dask task ended. Its result is not needed (the outcome comes on the
        topic), so the future is released at once: a finished task that Dask still holds is
        run again when its worker dies. A task that did not finish was lost."""
        key = future.key
        status = future.status
        why = f"its Dask task ended '{status}'{_dask_reason(future)}"
        reason = cancel_reason(future)
        with self._lock:
            handle = self._calls.get(key)
            if handle is not None:
                handle.future = None
            pending = handle is not None and handle.state not in ("done", "abandoned")
        _release(future)
        if not pending or handle is None:
            return
        if status == "finished":
            # The outcome is on its way on the topic (it was sent before the task ended).
            timer = threading.Timer(OUTCOME_GRACE, self._lost, args=(handle, "no outcome arrived"))
            timer.daemon = True
            with contextlib.suppress(RuntimeError):  # (no thread: the outcome comes all the same)
                timer.start()
            return
        self._lost(handle, why, status, reason)

    def _lost(
        self, handle: _DaskCall, why: str, status: str | None = None, reason: str | None = None
    ) -> None:
        """End the call as lost (``why``: how, in words; ``status``: its Dask task's, when it
        ended; ``reason``: Dask's reason for cancelling it, when it says one: see
        :func:`~laios._compat.dask.cancel_reason`)."""
        with self._lock:
            if handle.state in ("done", "abandoned"):
                return
            started = handle.state == "running"
            handle.state = "done"
            self._calls.pop(handle.key, None)
        events = handle.events
        try:
            stopped = _loop_stopped(self.client)
            if stopped and not started:
                events.refused(
                    Refusal(
                        "dask",
                        "The call was cut off from the Dask cluster before its start was "
                        "reported "
                        f"({why}){self._closed_client_advice()}",
                    )
                )
                return
            if self.closed and not started:
                events.refused(SHUTDOWN)  # cancelled by shutdown() before it started
                return
            client_closed = self._client_closed()
            if stopped:
                message = (
                    f"The call was cut off from the Dask cluster ({why})"
                    f"{self._closed_client_advice()}. Its tool runs on, on its worker, until "
                    f"{DEADLINE_GRACE:g}s past its timeout (without one, to its end), unless the "
                    "loop runs again or the client is closed"
                )
            elif self._cluster_closing():
                # (Dask closes the client with its cluster: maybe not yet.)
                message = (
                    f"The call was lost on the Dask cluster ({why}){_CLUSTER_CLOSED_UNDER_IT}. "
                    "Its tool ends as its worker closes"
                )
            elif reason == "scheduler-connection-lost":
                # (The client cancels its tasks for this reason as it loses its scheduler; also
                # once Dask closed the client, past its reconnection: that came later.)
                message = self._cancelled(why, reason)
            elif client_closed and self._owns_client:
                # (the runner's own shutdown closes it only once its calls ended)
                message = f"The call was lost on the Dask cluster ({why}){_OWN_CLIENT_CLOSED}"
            elif client_closed:
                message = (
                    f"The call was lost on the Dask cluster ({why}): the runner's Dask client "
                    "was closed while the call was under way; keep the client open until the "
                    "executor has shut down (Dask also closes a client that lost its scheduler "
                    "and could not reconnect in time). Its worker stops the tool once the "
                    "scheduler has dropped the closed client's tasks"
                )
            elif status == "cancelled":
                # (A worker's death does not cancel a task: Dask runs it again, or fails it.)
                message = self._cancelled(why, reason)
            else:
                message = (
                    f"The call was lost on the Dask cluster ({why}): a worker died while "
                    "running it and the cluster gave up on it, or the scheduler went away"
                )
            outcome = RawOutcome(None, WorkerLost(message), error_type="worker_lost")
            if not started and not events.started():
                return
            events.finished(_named_where(outcome, handle) if started else outcome)
        except Exception:
            _log.exception("reporting a lost Dask task failed")

    def _scheduler_lost(self, why: str) -> str:
        """Why a call was lost whose Dask task the client cancelled as it lost its scheduler
        (``why``: how the task ended), and what follows."""
        address = self.address or getattr(getattr(self.client, "scheduler", None), "address", None)
        where = f" at {address}" if isinstance(address, str) else ""
        if not self._owns_client:
            wait = (
                "for its timeout (the client's timeout=..., by default Dask's "
                "distributed.comm.timeouts.connect)"
            )
            then = "make a new client and runner"
        elif self._cluster is None:
            wait = f"for connect_timeout ({self._connect_timeout:g}s)"
            then = "make a new runner"
        else:  # (the runner's own local cluster: its client has Dask's timeout)
            where += " (the runner's own local cluster's)"
            wait = "for Dask's distributed.comm.timeouts.connect"
            then = "make a new runner"
        return (
            f"The call was lost on the Dask cluster: the connection to the Dask scheduler"
            f"{where} was lost while the call was under way (the scheduler stopped or died, or "
            f"the network to it failed), and Dask dropped the call's task with it ({why}). The "
            f"runner's client tries to reconnect to that address {wait}: calls made meanwhile "
            "wait (up to their timeout, if any), and run once a scheduler answers there again; "
            f"past that, Dask closes the client and new calls are refused ({then}). The call is "
            "not run again by itself: run it again once the scheduler is back "
            "(execute_with_retry does, within its retries)"
        )

    def _cut_off(self) -> None:
        """End every call under way: the event loop of the runner's client does not run, so
        neither their reports nor their stops get through (their futures are let go, for when
        it runs again)."""
        # (The thread that ran the loop may have ended, and its id may be another's now.)
        self._delivery_thread = None
        with self._lock:
            calls = list(self._calls.values())
            futures = [handle.future for handle in calls if handle.future is not None]
            for handle in calls:
                handle.future = None
        for future in futures:
            _release(future)
        for handle in calls:
            self._lost(handle, "none of its reports can arrive any more")

    def _look_at_loop(self, probe: threading.Event | None) -> threading.Event | None:
        """Cut the calls under way off when the client's event loop did not run since the
        last look (``probe``: set by the loop then) and does not run now; returns the probe
        for the next look (``None``: no call is under way)."""
        if not self._calls:
            return None
        if probe is not None and not probe.is_set() and _loop_stopped(self.client):
            self._cut_off()
            return None
        probe = threading.Event()
        try:
            self.client.loop.add_callback(probe.set)
        except Exception:  # (a closed loop)
            if _loop_stopped(self.client):
                self._cut_off()
            return None
        return probe

    def _closed_client_advice(self) -> str:
        """What to do about a call that cannot be sent because the runner's client is closed
        (``""`` while it is open: the failure is something else)."""
        if _loop_closed(self.client):
            return _LOOP_CLOSED
        if _loop_stopped(self.client):
            return _LOOP_STOPPED
        if self._cluster_closing():  # (Dask closes the client with it: maybe not yet)
            return (
                ": the Dask cluster was closed (the cluster the runner's client was made on), "
                "and Dask closes the client with it; keep the cluster open until the executor "
                "has shut down, or make a new runner (and executor) on an open cluster's client"
            )
        if not self._client_closed():
            return ""
        if self._owns_client:
            return _OWN_CLIENT_CLOSED
        return (
            ": the runner's Dask client is closed (by the application, or by Dask when it lost "
            "its scheduler and could not reconnect in time); keep the client open until the "
            "executor has shut down, or make a new runner (and executor) with an open client"
        )

    def _client_closed(self) -> bool:
        """Whether the runner's Dask client is closed or closing (see :func:`_closed`)."""
        return _closed(self.client)

    # -- stopping ---------------------------------------------------------------------------

    def abandon(self, handle: Handle) -> StopResult:
        """Stop the call: cancel its Dask task, and kill its tool where it runs."""
        assert isinstance(handle, _DaskCall)
        with self._lock:
            state = handle.state
            if state in ("done", "abandoned"):
                # (abandoned already: by the runner itself when the job refused to start as
                # the call began on a worker, while the job had no handle yet to stop it with)
                return handle.stopped
            handle.state = "abandoned"
            self._calls.pop(handle.key, None)
            future, handle.future = handle.future, None
            if handle.pickling or handle.pickled_late is not None:
                return "stopped"  # (never sent: its pickling thread drops it, or none had it)
            if state == "running":
                handle.stopped = "killed"
        # Everywhere when it has not started yet (it may be starting right now).
        workers = None
        if state == "running" and handle.where is not None:
            workers = [handle.where.split(" ", 1)[0]]
        sent = self._stop_later([(handle.key, future, workers)])
        if state == "queued" and sent is not None and not on_event_loop():
            # A call given up before it started must not start: its cancellation is on its
            # way before this returns, as it was when each call waited for the client. Not on
            # an event loop: the timer of a batch gives hundreds of calls up there at once
            # (and the client's own loop is what sends them).
            self._hand_over(sent)
        return "killed" if state == "running" else "stopped"

    def _hand_over(self, sent: threading.Event) -> None:
        """Wait up to ``STOP_HANDOVER`` seconds for the client's loop to send a cancellation,
        but not while a report's delivery holds that loop: an ``on_progress`` callback may hold
        it for as long as it likes, and the caller's timeout (or ``cancel_task``) must not wait
        for it. The cancellation then leaves once the callback returns."""
        deadline = time.monotonic() + STOP_HANDOVER
        while True:
            now = time.monotonic()
            if now >= deadline or sent.wait(min(deadline - now, HANDOVER_LOOK)):
                return
            since = self._delivering
            if since is not None and time.monotonic() - since >= HANDOVER_LOOK:
                return  # (a callback holds the loop)

    def worker_at_kill(self, handle: Handle) -> str | None:
        """The address of the Dask worker :meth:`abandon` sent ``handle``'s kill to
        (``"tcp://10.0.0.7:39461"``), as its ``started`` report gave it; ``None`` for a call
        that had not begun on a worker (its kill went to none in particular). The caller is
        not told which of that worker's tool processes had the call: that pid comes back with
        an outcome only."""
        assert isinstance(handle, _DaskCall)
        where = handle.where
        if handle.stopped != "killed" or where is None:
            return None
        return where.split(" ", 1)[0]

    def _stop_later(
        self, stops: list[tuple[str | None, Any, list[str] | None]]
    ) -> threading.Event | None:
        """Cancel the Dask tasks and send the kills of ``stops`` without waiting: each is a
        call's key (``None``: no kill to send), its future (``None``: no task to cancel) and
        the workers its kill goes to (``None``: every worker). Returns what is set once they
        are sent (``None``: nothing can reach the cluster).

        They go out from the client's event loop, whose next turn takes all the stops asked
        for meanwhile: one cancellation message for their Dask tasks, one kill per group of
        workers. Waiting for the loop for each call in turn (about 12 ms on a busy client)
        gave a batch's queued calls up one after the other at their timeout, seconds late for
        hundreds of them; and a kill waits for the scheduler's answer, which may never come,
        while the caller's timeout must hold. A call that starts before its stop arrives is
        killed where it starts (see ``kill_calls``), or, past its deadline, never starts there.
        """
        if self._client_closed() or _loop_stopped(self.client):
            # Nothing reaches the cluster any more: the scheduler drops the tasks of a client
            # that went away, and the workers then kill their tools (see serve_call); a
            # client whose loop does not run sends nothing (its workers kill a tool past its
            # deadline by themselves).
            for _, future, _ in stops:
                if future is not None:
                    _release(future)
            return None
        with self._lock:
            self._stopping += len(stops)
            self._stops.extend(stops)
            sent = self._stops_sent
            if sent is not None:
                return sent  # (the loop's next turn sends them with the others)
            sent = self._stops_sent = threading.Event()
        try:
            self.client.loop.add_callback(self._send_stops)
        except Exception:  # the client's loop is gone: nothing reaches the cluster
            with self._lock:
                dropped, self._stops = self._stops, []
                self._stops_sent = None
                self._stopping -= len(dropped)
            _log.debug("could not reach the Dask client's loop to stop calls", exc_info=True)
            return None
        return sent

    def _send_stops(self) -> None:
        """Send the stops asked for since the last turn (on the client's event loop)."""
        with self._lock:
            stops, self._stops = self._stops, []
            sent, self._stops_sent = self._stops_sent, None
        futures = [future for _, future, _ in stops if future is not None]
        kills: dict[tuple[str, ...], list[str]] = {}
        for key, _, workers in stops:
            if key is not None:
                kills.setdefault(tuple(workers or ()), []).append(key)
        # Each goes out as a task of its own, in this order, before the futures are released
        # and before the waiting callers are let go (the loop runs its callbacks in order).
        sends: list[asyncio.Future[Any]] = []
        try:
            if futures:
                sends.append(asyncio.ensure_future(self.client.cancel(futures, asynchronous=True)))
            for where, keys in kills.items():
                kill = self.client.run(
                    kill_calls, keys, workers=list(where) or None, wait=False, asynchronous=True
                )
                sends.append(asyncio.ensure_future(kill))
        except Exception:
            _log.debug("could not reach the workers to stop %d calls", len(stops), exc_info=True)
        for future in futures:
            _release(future)
        if sent is not None:
            asyncio.get_running_loop().call_soon(sent.set)
        waiting = asyncio.ensure_future(self._await_stops(sends, len(stops)))
        self._stop_tasks.add(waiting)  # (the loop keeps its tasks only weakly)
        waiting.add_done_callback(self._stop_tasks.discard)

    async def _await_stops(self, sends: list[asyncio.Future[Any]], count: int) -> None:
        """Wait for the stops being sent (a scheduler that does not answer a kill holds no
        other), then count them off."""
        try:
            for outcome in await asyncio.gather(*sends, return_exceptions=True):
                if isinstance(outcome, BaseException):
                    _log.debug("could not reach the workers to stop calls: %r", outcome)
        finally:
            with self._lock:
                self._stopping -= count

    def owns_current_thread(self) -> bool:
        """Whether the calling thread is the one that delivers the workers' reports (a
        callback run for a task, calling back into the executor), or the one that runs the
        event loop of the runner's client (an asynchronous client's, the application's)."""
        if threading.get_ident() == self._delivery_thread:
            return True
        # (in asyncio.events.__all__: the running loop or None, without raising)
        loop = asyncio._get_running_loop()  # noqa: SLF001
        return loop is not None and loop is getattr(
            getattr(self.client, "loop", None), "asyncio_loop", None
        )

    def shutdown(self, wait: bool = True) -> None:
        """Refuse new calls. With ``wait``, let the accepted ones finish, then close the client
        (and the local cluster this runner started) before returning. Without, cancel the calls
        still queued on the cluster (they end ``rejected``, ``shutdown``), let the running ones
        finish, and close the client once they have.

        Raises:
            TypeError: When ``wait`` is not ``True`` or ``False`` (or ``0``/``1``), as
                ``Executor.shutdown`` says. Nothing is shut down then.
        """
        wait = switch("wait", wait)
        if self.closed:
            return
        self.closed = True
        self._closing.set()
        if self.forked:
            return  # (the client and the cluster are the parent's)
        if not wait:
            with self._lock:
                self._cancel_queued = True
                queued = [h for h in self._calls.values() if h.state == "queued"]
            # (Each done callback refuses its call: shut down.)
            self._stop_later([(None, h.future, None) for h in queued if h.future is not None])
        if wait and not self.owns_current_thread():
            self._close_when_idle()
        elif not on_a_thread(self._close_when_idle, "laios-dask-close", daemon=True):
            self._close_without_a_thread()

    def _close_without_a_thread(self) -> None:
        """Close the client and the cluster when no thread can be started to ("can't start
        new thread": a container's pids limit): on the thread that reads the cluster's size,
        which ends now that the runner is shut down, or else on the caller's thread (which
        then waits for the calls under way)."""
        with self._lock:
            self._close_on_watcher = self._watching
        if self._close_on_watcher:
            return
        if self.owns_current_thread():
            # (The calls' reports come through this thread: it cannot wait for them.)
            _log.error(
                "no thread could be started to close the Dask client%s once its calls end "
                "(the system refused a new thread): they stay open until the program exits",
                " and the local cluster" if self._cluster is not None else "",
            )
            return
        self._close_when_idle()

    def _close_when_idle(self) -> None:
        while True:
            with self._lock:
                if not self._calls:
                    break
            if _loop_stopped(self.client):
                # (Nothing they report gets through: waiting for them would be for ever.)
                self._cut_off()
                break
            time.sleep(0.01)
        # Kills still being sent, then the reports to clear, get STOP_PATIENCE in all: a
        # scheduler that hangs answers neither, and shutdown must end.
        patience = time.monotonic() + STOP_PATIENCE
        while time.monotonic() < patience and not _loop_stopped(self.client):
            with self._lock:
                if not self._stopping:
                    break
            time.sleep(0.01)
        if _loop_stopped(self.client):
            # (Nothing reaches the cluster: asking the client would wait for ever.)
            if self._owns_client:
                self._close_own()
            return
        # (Asking the scheduler waits for its answer, which a scheduler that hangs never gives.)
        forget = threading.Thread(target=self._drop_topic, name="laios-dask-forget", daemon=True)
        try:
            forget.start()
        except RuntimeError:  # (no thread to be had: the reports stay)
            self._unsubscribe()
        else:
            forget.join(max(patience - time.monotonic(), 0.1))
        if self._owns_client:
            with contextlib.suppress(Exception):
                self.client.close()
            # (Dask leaves the thread of a client it closed itself, after it lost its
            # scheduler, running; ``close`` does not stop it then. A client still closing,
            # its ``close`` cut short, keeps its loop: closing it again needs that loop.)
            if getattr(self.client, "status", None) == "closed":
                with contextlib.suppress(Exception):
                    stop_client_loop(self.client)
            self._close_own()

    def _close_own(self) -> None:
        """Close the local cluster this runner started, and give back the worker setting."""
        if self._cluster is not None:
            with contextlib.suppress(Exception):
                self._cluster.close()
        if self._holds_daemon_off:
            self._holds_daemon_off = False
            _release_daemon_off()

    def __repr__(self) -> str:
        where = self.address or ("local cluster" if self._cluster is not None else "client")
        return f"DaskRunner({where})"
