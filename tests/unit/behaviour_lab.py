"""The lab and the tools of the runner behaviour suite (``test_runner_behaviour``).

Import it as ``from behaviour_lab import Lab, ...`` (``tests/unit`` is on the path of its
tests, and worker processes get the same path). It is a module of its own, not the test
module, because the process roads pickle each tool and send it to a worker process, which must
be able to import the tool's class.

The lab works across processes: everything the tools report and everything the test holds them
with lives in files of one directory, and the lab pickles as that directory's paths (its
tracer stays behind). A tool in a worker process and the test therefore see the same lab:

* a :class:`Mark` is a ``threading.Event`` as a marker file (``set`` creates it);
* a :class:`Journal` is a file of JSON lines, appended to with one ``O_APPEND`` write per line
  (safe from several processes at once); a reader ignores an unfinished last line;
* the :class:`Gate` (the conftest gate's interface) is a ``released`` mark and a journal with
  one line per tool that entered;
* the :class:`Lab` journals each tool's start (task id, pid, thread, loop) and the span each
  ``nested`` tool saw as current.

Waiting for a mark or a count polls every :data:`POLL` seconds.

:func:`start_forkserver` readies a Dask worker of the dask roads and
:func:`stop_tool_processes` lets one close quickly (both run there with ``Client.run``);
:func:`scheduler_task_keys` runs on the Dask scheduler. They are here, not in the test module,
because Dask imports them by name.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from opentelemetry import trace

from laios.execution.task_context import TaskContext, current_task
from laios.tools.base import AsyncBaseTool, BaseTool, ToolOutput

__all__ = [
    "LAB_TOOLS",
    "MAX_BLOCK_SECONDS",
    "POLL",
    "Gate",
    "Journal",
    "Lab",
    "Mark",
    "ToolExploded",
    "Where",
    "scheduler_task_keys",
    "start_forkserver",
    "stop_tool_processes",
]

#: How often blocked and cooperative tools look at their gate or their task, and how often a
#: wait on the lab's files looks again.
POLL = 0.005
#: Longest a blocked tool waits for its gate, so that a failing test can never hang the run.
MAX_BLOCK_SECONDS = 10.0


class ToolExploded(Exception):
    """What the ``raise`` tools raise."""


def _poll(predicate: Callable[[], bool], timeout: float | None) -> bool:
    """Poll ``predicate`` until it is true (``timeout`` ``None``: no limit); return whether it
    became true in time."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while not predicate():
        if deadline is not None and time.monotonic() >= deadline:
            return predicate()
        time.sleep(POLL)
    return True


def start_forkserver() -> int:
    """Start this process's forkserver, with laios and this module preloaded; return the pid.

    Run on each Dask worker of the dask roads when its cluster starts (``Client.run``): the
    worker's process runner forks every tool process from that forkserver, which takes up to
    a second or two to start and import laios; forked from it, a tool process starts in
    milliseconds, well within a test's short timeout. (A forkserver's preload is set until it
    starts: the process runner the worker makes later uses this one as it is.)
    """
    import multiprocessing

    from laios.execution.runners import ProcessRunner

    ProcessRunner(1, preload=[__name__]).shutdown()  # (sets the forkserver's preload)
    process = multiprocessing.get_context("forkserver").Process(target=time.sleep, args=(0,))
    process.start()  # (returns once the forkserver has forked it: ready)
    process.join(30)
    return os.getpid()


def scheduler_task_keys(dask_scheduler: Any) -> list[str]:
    """The keys of the tasks the Dask scheduler holds (``Client.run_on_scheduler``)."""
    return [str(key) for key in dask_scheduler.tasks]


def stop_tool_processes() -> bool:
    """Shut down the process runner of this Dask worker (if it made one); return whether it did.

    Run on each Dask worker just before its cluster closes. The worker's process runner is
    never shut down by the worker itself, and the processes it started are not daemonic: a
    closing worker waits for them to end (``multiprocessing`` joins a process's children when
    it exits) until its nanny kills it, 4 seconds later. (It reaches into the Dask runner's
    private state: if that changes, this does nothing, and closing the cluster is only slower.)
    """
    from laios.execution._runners import dask

    runner = getattr(getattr(dask, "_STATE", None), "runner", None)
    if runner is None:
        return False
    runner.shutdown(wait=True)
    return True


# -- files shared by processes --------------------------------------------------------------


class Mark:
    """A ``threading.Event`` that other processes see: set when its file exists."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def set(self) -> None:
        self.path.touch()

    def is_set(self) -> bool:
        return self.path.exists()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until set (for at most ``timeout`` seconds); return whether it is set."""
        return _poll(self.is_set, timeout)

    def __repr__(self) -> str:
        return f"Mark({self.path.name!r}, set={self.is_set()})"


class Journal:
    """A file of JSON lines that several processes append to."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, record: dict[str, Any]) -> None:
        """Add ``record`` as one line, in one write (appends from processes never interleave)."""
        line = (json.dumps(record) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def read(self) -> list[dict[str, Any]]:
        """The records written so far, in order (not a line still being written)."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        lines = text.split("\n")[:-1]  # (the part after the last newline is unfinished)
        return [json.loads(line) for line in lines]

    def __len__(self) -> int:
        return len(self.read())


class Gate:
    """The conftest gate's interface (``release``, ``enter()``, ``entered``,
    ``wait_entered(count, timeout)``), in files: tools in worker processes can use it too."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.release = Mark(root / "gate.released")
        self._entered = Journal(root / "gate.entered")

    def enter(self) -> None:
        """Called by a tool when it starts running."""
        self._entered.append({"pid": os.getpid()})

    @property
    def entered(self) -> int:
        """How many tools have entered so far."""
        return len(self._entered)

    def wait_entered(self, count: int = 1, timeout: float = 5.0) -> bool:
        """Wait until ``count`` tools have entered; return whether they did in time."""
        return _poll(lambda: self.entered >= count, timeout)


# -- the lab --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Where:
    """Where a tool ran: its process, its thread (``threading.get_ident()`` and name) and the
    ``id()`` of the event loop it ran on (``None`` for a synchronous tool)."""

    pid: int
    thread: int
    thread_name: str
    loop: int | None


class Lab:
    """Shared by the tools of one test: records what they did, holds them at the gate.

    Its state is in files under ``root`` (see the module's docstring): pickled into a worker
    process it is the same lab, without its ``tracer`` (that process has no SDK).
    """

    def __init__(self, root: Path, gate: Gate, tracer: trace.Tracer | None = None) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.gate = gate
        self.tracer = tracer
        self.finally_ran = Mark(root / "finally_ran")
        self.coroutine_cancelled = Mark(root / "coroutine_cancelled")
        self.saw_cancel = Mark(root / "saw_cancel")
        self._starts = Journal(root / "started")
        self._spans = Journal(root / "spans_seen")

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["tracer"] = None  # (an SDK tracer does not cross to a worker process)
        return state

    # -- what the tools call --------------------------------------------------------------------

    def enter(self, loop: asyncio.AbstractEventLoop | None = None) -> TaskContext:
        """Called by every tool first: note which task started, where."""
        task = current_task()
        assert task is not None, "a tool run by the executor sees its task"
        thread = threading.current_thread()
        self._starts.append(
            {
                "task": task.task_id,
                "pid": os.getpid(),
                "thread": thread.ident,
                "thread_name": thread.name,
                "loop": None if loop is None else id(loop),
            }
        )
        return task

    def note_current_span(self) -> None:
        """Record the trace id and span id of the span current in the tool now."""
        task = current_task()
        assert task is not None
        seen = trace.get_current_span().get_span_context()
        self._spans.append({"task": task.task_id, "trace": seen.trace_id, "span": seen.span_id})

    @contextlib.contextmanager
    def span(self, name: str) -> Iterator[None]:
        """A span of the tool's own, made with the lab's tracer (none in a worker process)."""
        if self.tracer is None:
            yield
            return
        with self.tracer.start_as_current_span(name):
            yield

    def released(self) -> bool:
        """Whether the test released the gate."""
        return self.gate.release.is_set()

    # -- what the tests read ----------------------------------------------------------------

    @property
    def started_ids(self) -> list[str]:
        """The task id of each tool start so far, in order (once per attempt)."""
        return [record["task"] for record in self._starts.read()]

    @property
    def attempts(self) -> Counter[str]:
        """How many times each task's tool started."""
        return Counter(self.started_ids)

    @property
    def where(self) -> dict[str, Where]:
        """Where each task's tool ran (its last attempt)."""
        return {
            record["task"]: Where(
                record["pid"], record["thread"], record["thread_name"], record["loop"]
            )
            for record in self._starts.read()
        }

    @property
    def spans_seen(self) -> dict[str, tuple[int, int]]:
        """``(trace_id, span_id)`` of the span current in each ``nested`` tool."""
        return {record["task"]: (record["trace"], record["span"]) for record in self._spans.read()}


# -- synchronous tools ----------------------------------------------------------------------


class _SyncTool(BaseTool):
    lab: Lab

    def _execute(self, **kwargs: Any) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError


class SyncEcho(_SyncTool):
    name = "beh_echo"
    description = "Returns its text."

    def _execute(self, **kwargs: Any) -> Any:
        self.lab.enter()
        return kwargs.get("text")


class SyncFail(_SyncTool):
    name = "beh_fail"
    description = "Returns a failed ToolOutput."

    def _execute(self, **kwargs: Any) -> Any:
        self.lab.enter()
        return ToolOutput(success=False, error="quota exceeded", metadata={"quota": 5})


class SyncRaise(_SyncTool):
    name = "beh_raise"
    description = "Raises ToolExploded."

    def _execute(self, **kwargs: Any) -> Any:
        self.lab.enter()
        raise ToolExploded("the tool exploded")


class SyncSlow(_SyncTool):
    name = "beh_slow"
    description = "Blocks until the gate opens (it ignores cancellation)."

    def _execute(self, **kwargs: Any) -> Any:
        self.lab.enter()
        try:
            self.lab.gate.enter()
            self.lab.gate.release.wait(MAX_BLOCK_SECONDS)
            return "released"
        finally:
            self.lab.finally_ran.set()


class SyncProgress(_SyncTool):
    name = "beh_progress"
    description = "Adds checkpoints and reports progress."

    def _execute(self, **kwargs: Any) -> Any:
        task = self.lab.enter()
        task.checkpoint("loaded", {"rows": 3})
        task.progress(50, "halfway", step=1)
        task.checkpoint("saved", MappingProxyType({"files": 2}))  # (any mapping)
        return "done"


class SyncNested(_SyncTool):
    name = "beh_nested"
    description = "Notes the span current in its run, and makes a span of its own there."

    def _execute(self, **kwargs: Any) -> Any:
        self.lab.enter()
        self.lab.note_current_span()
        with self.lab.span("inside the tool"):
            return "nested"


class SyncCooperative(_SyncTool):
    name = "beh_cooperative"
    description = "Works in small steps until its task is cancelled (or the gate opens)."

    def _execute(self, **kwargs: Any) -> Any:
        task = self.lab.enter()
        self.lab.gate.enter()
        deadline = time.monotonic() + MAX_BLOCK_SECONDS
        while time.monotonic() < deadline and not self.lab.released():
            if task.cancelled:
                self.lab.saw_cancel.set()
                return "stopped early"
            time.sleep(POLL)
        return "ran to the end"


class SyncFlaky(_SyncTool):
    name = "beh_flaky"
    description = "Fails the first two attempts of a task, then succeeds."

    def _execute(self, **kwargs: Any) -> Any:
        task = self.lab.enter()
        attempt = self.lab.attempts[task.task_id]
        if attempt <= 2:
            return ToolOutput(success=False, error=f"transient failure {attempt}")
        return f"succeeded on attempt {attempt}"


# -- the same tools, as coroutines ----------------------------------------------------------


class _AsyncTool(AsyncBaseTool):
    lab: Lab

    async def _execute_async(self, **kwargs: Any) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def enter(self) -> TaskContext:
        return self.lab.enter(asyncio.get_running_loop())


class AsyncEcho(_AsyncTool):
    name = "beh_echo_async"
    description = "Returns its text (after awaiting)."

    async def _execute_async(self, **kwargs: Any) -> Any:
        self.enter()
        await asyncio.sleep(0)
        return kwargs.get("text")


class AsyncFail(_AsyncTool):
    name = "beh_fail_async"
    description = "Returns a failed ToolOutput (after awaiting)."

    async def _execute_async(self, **kwargs: Any) -> Any:
        self.enter()
        await asyncio.sleep(0)
        return ToolOutput(success=False, error="quota exceeded", metadata={"quota": 5})


class AsyncRaise(_AsyncTool):
    name = "beh_raise_async"
    description = "Raises ToolExploded (after awaiting)."

    async def _execute_async(self, **kwargs: Any) -> Any:
        self.enter()
        await asyncio.sleep(0)
        raise ToolExploded("the tool exploded")


class AsyncSlow(_AsyncTool):
    name = "beh_slow_async"
    description = "Awaits until the gate opens (it ignores the cancelled flag)."

    async def _execute_async(self, **kwargs: Any) -> Any:
        self.enter()
        try:
            self.lab.gate.enter()
            deadline = time.monotonic() + MAX_BLOCK_SECONDS
            while time.monotonic() < deadline and not self.lab.released():
                await asyncio.sleep(POLL)
            return "released"
        except asyncio.CancelledError:
            self.lab.coroutine_cancelled.set()
            raise
        finally:
            self.lab.finally_ran.set()


class AsyncProgress(_AsyncTool):
    name = "beh_progress_async"
    description = "Adds checkpoints and reports progress (between awaits)."

    async def _execute_async(self, **kwargs: Any) -> Any:
        task = self.enter()
        task.checkpoint("loaded", {"rows": 3})
        await asyncio.sleep(0)
        task.progress(50, "halfway", step=1)
        await asyncio.sleep(0)
        task.checkpoint("saved", MappingProxyType({"files": 2}))  # (any mapping)
        return "done"


class AsyncNested(_AsyncTool):
    name = "beh_nested_async"
    description = (
        "Notes the span current in its run, and makes a span of its own (across an await)."
    )

    async def _execute_async(self, **kwargs: Any) -> Any:
        self.enter()
        self.lab.note_current_span()
        with self.lab.span("inside the tool"):
            await asyncio.sleep(0)
            return "nested"


class AsyncCooperative(_AsyncTool):
    name = "beh_cooperative_async"
    description = "Awaits in small steps until its task is cancelled (or the gate opens)."

    async def _execute_async(self, **kwargs: Any) -> Any:
        task = self.enter()
        self.lab.gate.enter()
        deadline = time.monotonic() + MAX_BLOCK_SECONDS
        try:
            while time.monotonic() < deadline and not self.lab.released():
                if task.cancelled:
                    self.lab.saw_cancel.set()
                    return "stopped early"
                await asyncio.sleep(POLL)
        except asyncio.CancelledError:
            self.lab.coroutine_cancelled.set()
            if task.cancelled:  # the flag is up before the coroutine is cancelled
                self.lab.saw_cancel.set()
            raise
        return "ran to the end"


class AsyncFlaky(_AsyncTool):
    name = "beh_flaky_async"
    description = "Fails the first two attempts of a task, then succeeds (after awaiting)."

    async def _execute_async(self, **kwargs: Any) -> Any:
        task = self.enter()
        await asyncio.sleep(0)
        attempt = self.lab.attempts[task.task_id]
        if attempt <= 2:
            return ToolOutput(success=False, error=f"transient failure {attempt}")
        return f"succeeded on attempt {attempt}"


LAB_TOOLS: tuple[type[BaseTool], ...] = (
    SyncEcho,
    SyncFail,
    SyncRaise,
    SyncSlow,
    SyncProgress,
    SyncNested,
    SyncCooperative,
    SyncFlaky,
    AsyncEcho,
    AsyncFail,
    AsyncRaise,
    AsyncSlow,
    AsyncProgress,
    AsyncNested,
    AsyncCooperative,
    AsyncFlaky,
)
