"""Tools for the process runner's tests: defined at module level, so that a worker process
can unpickle them (it imports this module by name).

They talk to the test through files in a directory the test passes as the ``box`` parameter
(a worker process shares no memory with the test).
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import json
import mmap
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Any

from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import SecretStr

from laios.execution.runners import ToolCall
from laios.execution.task_context import require_current_task
from laios.tools.base import AsyncBaseTool, BaseTool, ToolInput

#: Longest a hanging tool hangs when nothing kills it (a failing test never hangs the run).
HANG_SECONDS = 60.0


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (Linux)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def wait_until(predicate: Callable[[], Any], timeout: float) -> Any:
    """Poll ``predicate`` until it returns something true (returned) or ``timeout`` passes
    (then its last answer is returned)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    return predicate()


@contextmanager
def traced_executor(tool: BaseTool, exporter: InMemorySpanExporter) -> Iterator[Any]:
    """An ``Executor`` running ``tool`` on a ``ProcessRunner(1)``, its spans exported to
    ``exporter``; shut down, its worker terminated, after the block."""
    # (imported here: a worker process imports this module for its tools alone)
    from laios.execution.executor import Executor
    from laios.execution.runners import ProcessRunner
    from laios.execution.store import MetricStore
    from laios.tools.registry import ToolRegistry

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = ToolRegistry()
    registry.register_tool(tool)
    runner = ProcessRunner(1)
    executor = Executor(
        registry,
        runner=runner,
        tracer_provider=provider,
        store=MetricStore(),
        register_prometheus=False,
    )
    try:
        yield executor
    finally:
        executor.shutdown(wait=False)
        runner.terminate()
        provider.shutdown()


class Caller:
    """``executor.execute_task(task, context, **options)`` run on a daemon thread, started at
    once: the test acts on the call meanwhile, then :meth:`returned` waits for its result. Its
    result goes to ``results`` (a list the test's own hooks may watch) or to a list of its own."""

    def __init__(
        self,
        executor: Any,
        task: Any,
        context: Any,
        results: list[Any] | None = None,
        **options: Any,
    ) -> None:
        self.results: list[Any] = [] if results is None else results
        self.thread = threading.Thread(
            target=lambda: self.results.append(executor.execute_task(task, context, **options)),
            daemon=True,
        )
        self.thread.start()

    def returned(self, wait: float, message: str | None = None) -> Any:
        """Wait up to ``wait`` seconds for the call to return and return its result (failing the
        test with ``message`` if it has not returned by then)."""
        self.thread.join(wait)
        if message is None:
            assert self.results
        else:
            assert self.results, message
        return self.results[0]


def note(box: str, name: str, value: Any) -> None:
    """Write ``value`` to the file ``name`` in ``box`` (atomically: readers see all or none)."""
    path = Path(box) / name
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(value))
    temporary.replace(path)


def read_note(box: str, name: str) -> Any:
    """What :func:`note` wrote, or ``None``."""
    path = Path(box) / name
    return json.loads(path.read_text()) if path.exists() else None


class Pid(BaseTool):
    name = "pid"
    description = "Returns the worker's process id."

    def _execute(self, **kwargs: Any) -> Any:
        return os.getpid()


class WaitsForAFile(BaseTool):
    name = "waits_for_a_file"
    description = "Waits until a file exists (at most HANG_SECONDS), then returns the pid."

    def _execute(self, **kwargs: Any) -> Any:
        path = Path(kwargs["path"])
        wait_until(path.exists, HANG_SECONDS)
        return os.getpid()


class KillsItsParent(BaseTool):
    name = "kills_its_parent"
    description = "Kills its process's parent (a worker's: the forkserver) with SIGKILL."

    def _execute(self, **kwargs: Any) -> Any:
        os.kill(os.getppid(), signal.SIGKILL)
        return os.getpid()


class SignalsHeld(BaseTool):
    name = "signals_held"
    description = "Returns the worker's pid, its parent's, and its blocked signals (SigBlk)."

    def _execute(self, **kwargs: Any) -> Any:
        status = Path("/proc/self/status").read_text()
        blocked = next(line.split()[1] for line in status.splitlines() if "SigBlk:" in line)
        return {"pid": os.getpid(), "parent": os.getppid(), "blocked": int(blocked, 16)}


class Hang(BaseTool):
    name = "hang"
    description = "Starts a grandchild process, says so, then hangs in a blocking call."

    def _execute(self, **kwargs: Any) -> Any:
        box = kwargs["box"]
        grandchild = subprocess.Popen(["sleep", "1000"])
        note(box, "hang", {"pid": os.getpid(), "grandchild": grandchild.pid})
        time.sleep(HANG_SECONDS)
        return "woke up"


class HangHoldingTheGil(BaseTool):
    name = "hang_holding_the_gil"
    description = (
        "Starts a grandchild process, says so, then hangs in one C call that holds the GIL "
        "(a regular expression that backtracks for ever): no other thread of its process runs."
    )

    def _execute(self, **kwargs: Any) -> Any:
        import re

        box = kwargs["box"]
        grandchild = subprocess.Popen(["sleep", "1000"])
        note(box, "hang", {"pid": os.getpid(), "grandchild": grandchild.pid})
        return bool(re.match(r"(a+)+$", "a" * 64 + "b"))


#: The descriptors :class:`LeaksDescriptors` left open (its worker keeps them).
LEAKED: list[int] = []


class LeaksDescriptors(BaseTool):
    name = "leaks_descriptors"
    description = (
        "Opens files until the process may open no more, leaves them open, returns (with "
        "child=True, first starts a child process it leaves running, and returns its pid)."
    )

    def _execute(self, **kwargs: Any) -> Any:
        child = subprocess.Popen(["sleep", "1000"]) if kwargs.get("child") else None
        try:
            while True:
                LEAKED.append(os.open(os.devnull, os.O_RDONLY))
        except OSError:
            pass
        return child.pid if child is not None else len(LEAKED)


class Exit(BaseTool):
    name = "exit"
    description = "Ends its worker process with os._exit(code)."

    def _execute(self, **kwargs: Any) -> Any:
        os._exit(kwargs.get("code", 3))


class Imports(BaseTool):
    name = "imports"
    description = "Imports a module by name and returns its name."

    def _execute(self, **kwargs: Any) -> Any:
        import importlib

        return importlib.import_module(kwargs["module"]).__name__


class RaisesUnmappedLibrary(BaseTool):
    name = "raises_unmapped_library"
    description = (
        "Raises the ImportError a C extension gives when the loader cannot map its library, "
        "as NumPy words it (the loader's own message as the one it was raised from)."
    )

    def _execute(self, **kwargs: Any) -> Any:
        try:
            loader = kwargs.get("loader", "failed to map segment from shared object")
            raise ImportError(f"libbig.so: {loader}")
        except ImportError as exc:
            raise ImportError("Importing the C-extensions failed.", name="big") from exc


class ExitsWhenShort(BaseTool):
    name = "exits_when_short"
    description = (
        "Allocates a number of MB and ends its worker process with os._exit(1) when that "
        "fails, as a C library that cannot allocate may (OpenBLAS does): no MemoryError comes "
        "out of it."
    )

    def _execute(self, **kwargs: Any) -> Any:
        try:
            block = bytearray(kwargs["mb"] * 1024 * 1024)
        except MemoryError:
            os._exit(1)
        return len(block) // (1024 * 1024)


class ChildExitCode(BaseTool):
    name = "child_exit_code"
    description = "Runs a child process that exits with code 3 and returns the code it read."

    def _execute(self, **kwargs: Any) -> Any:
        return subprocess.run([sys.executable, "-c", "raise SystemExit(3)"], check=False).returncode


class Allocate(BaseTool):
    name = "allocate"
    description = (
        "Allocates (and touches) a number of MB, then returns how many; with how='mmap' in a "
        "private anonymous mapping of its own. With wrap ('from', 'while', 'from None'), an "
        "allocation that fails is told as a ValueError of its own, raised from that error, "
        "while handling it, or from None."
    )

    def _execute(self, **kwargs: Any) -> Any:
        wrap = kwargs.get("wrap")
        if wrap is None:
            return self._allocate(**kwargs)
        try:
            return self._allocate(**kwargs)
        except (MemoryError, OSError) as exc:
            if wrap == "from":
                raise ValueError("could not load the file") from exc
            if wrap == "from None":
                raise ValueError("could not load the file") from None
            raise ValueError("could not load the file")  # noqa: B904 (raised while handling it)

    def _allocate(self, **kwargs: Any) -> Any:
        size = kwargs["mb"] * 1024 * 1024
        block: bytearray | mmap.mmap
        if kwargs.get("how") == "mmap":
            block = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        else:
            block = bytearray(size)
        for offset in range(0, size, 4096):  # touch every page: resident, not just reserved
            block[offset] = 1
        return kwargs["mb"]


class SizeRefused(MemoryError):
    """A tool's own refusal of a size it was asked for, as a ``MemoryError``."""


class RefusesToPickle:
    """A value whose pickling refuses with a ``MemoryError`` of its own (nothing allocated)."""

    def __reduce__(self) -> Any:
        raise SizeRefused("this value will not be pickled")


class ReturnsRefusesToPickle(BaseTool):
    name = "returns_refuses_to_pickle"
    description = "Returns a value whose pickling raises a MemoryError subclass of its own."

    def _execute(self, **kwargs: Any) -> Any:
        return RefusesToPickle()


class RefusesASize(BaseTool):
    name = "refuses_a_size"
    description = (
        "Refuses the number of MB it is given without allocating anything, raising a "
        "MemoryError of its own: a SizeRefused (a subclass), or with plain=True a MemoryError."
    )

    def _execute(self, **kwargs: Any) -> Any:
        error = MemoryError if kwargs.get("plain") else SizeRefused
        raise error(f"{kwargs['mb']} MB is more than this tool will allocate")


class AllocatesWithNumpy(BaseTool):
    name = "allocates_with_numpy"
    description = "Imports NumPy, then has it allocate a number of MB (zeroed), returning how many."

    def _execute(self, **kwargs: Any) -> Any:
        import numpy

        return numpy.zeros(kwargs["mb"] * 1024 * 1024, dtype=numpy.uint8).size // (1024 * 1024)


class AllocatesOnAFile(BaseTool):
    name = "allocates_on_a_file"
    description = (
        "Notes its pid in ``box``, waits until the file ``path`` exists (at most HANG_SECONDS), "
        "then allocates (and touches) a number of MB."
    )

    def _execute(self, **kwargs: Any) -> Any:
        note(kwargs["box"], "allocates_on_a_file", {"pid": os.getpid()})
        wait_until(Path(kwargs["path"]).exists, HANG_SECONDS)
        size = kwargs["mb"] * 1024 * 1024
        block = bytearray(size)
        for offset in range(0, size, 4096):  # touch every page: resident, not just reserved
            block[offset] = 1
        return kwargs["mb"]


class StartsThreads(BaseTool):
    name = "starts_threads"
    description = "Starts a number of threads that wait, then lets them end; returns how many."

    def _execute(self, **kwargs: Any) -> Any:
        release = threading.Event()
        started: list[threading.Thread] = []
        try:
            for _ in range(kwargs["count"]):
                thread = threading.Thread(target=release.wait)
                thread.start()
                started.append(thread)
        finally:
            release.set()
            for thread in started:
                thread.join()
        return len(started)


class LowersItsLimits(BaseTool):
    name = "lowers_its_limits"
    description = (
        "Lowers its worker's memory and CPU limits (the hard ones with hard=True) to a few MB "
        "and seconds past what it uses, then returns its pid."
    )

    def _execute(self, **kwargs: Any) -> Any:
        import resource

        with open("/proc/self/status") as handle:
            data = next(int(line.split()[1]) for line in handle if line.startswith("VmData:"))
        memory = data * 1024 + 20 * 1024 * 1024
        cpu = int(time.process_time()) + 30
        for which, value in ((resource.RLIMIT_DATA, memory), (resource.RLIMIT_CPU, cpu)):
            hard = value if kwargs.get("hard") else resource.getrlimit(which)[1]
            resource.setrlimit(which, (value, hard))
        return os.getpid()


class ClosesStandardDescriptors(BaseTool):
    name = "closes_standard_descriptors"
    description = "Closes descriptors 0, 1 and 2 (with reopen=True, opens a file in 1's place)."

    def _execute(self, **kwargs: Any) -> Any:
        for descriptor in (0, 1, 2):
            os.close(descriptor)
        if kwargs.get("reopen"):
            os.open(os.devnull, os.O_RDONLY)  # takes descriptor 0, the lowest free
            os.open(kwargs["path"], os.O_WRONLY | os.O_CREAT)  # 1
        return os.getpid()


class PrintsALine(BaseTool):
    name = "prints_a_line"
    description = "Prints a line to its standard output and error, then returns its pid."

    def _execute(self, **kwargs: Any) -> Any:
        print("a line", flush=True)
        print("a line", file=sys.stderr, flush=True)
        return os.getpid()


class _StuckStream:
    """A standard stream whose ``flush`` never returns (it waits on what it writes to)."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        time.sleep(HANG_SECONDS)


class StuckOnExit(BaseTool):
    name = "stuck_on_exit"
    description = (
        "Puts a standard output whose flush never returns in place of its worker's, then "
        "allocates a number of MB (default 0) and returns its pid."
    )

    def _execute(self, **kwargs: Any) -> Any:
        sys.stdout = _StuckStream()
        block = bytearray(kwargs.get("mb", 0) * 1024 * 1024)
        return os.getpid() + len(block) * 0


class SwellsWhenPickled:
    """A small value whose pickling allocates ``mb`` MB (its ``__reduce__`` builds its state)."""

    def __init__(self, mb: int) -> None:
        self.mb = mb

    def __reduce__(self) -> Any:
        return (bytes, (bytes(self.mb * 1024 * 1024),))


class ReturnsSwelling(BaseTool):
    name = "returns_swelling"
    description = "Returns a small value whose pickling allocates a number of MB."

    def _execute(self, **kwargs: Any) -> Any:
        return SwellsWhenPickled(kwargs["mb"])


class Spin(BaseTool):
    name = "spin"
    description = "Burns CPU for a number of CPU seconds (for ever without one)."

    def _execute(self, **kwargs: Any) -> Any:
        seconds = kwargs.get("seconds")
        start = time.process_time()
        while seconds is None or time.process_time() - start < seconds:
            pass
        return "spun"


class AllocatesAndSpins(BaseTool):
    name = "allocates_and_spins"
    description = (
        "Allocates (and touches) a number of MB, notes its pid and the CPU seconds its process "
        "had used then in ``box``, then burns CPU until killed (HANG_SECONDS at most)."
    )

    def _execute(self, **kwargs: Any) -> Any:
        size = kwargs["mb"] * 1024 * 1024
        block = bytearray(size)
        for offset in range(0, size, 4096):  # touch every page: resident, not just reserved
            block[offset] = 1
        note(kwargs["box"], "spinning", {"pid": os.getpid(), "cpu": time.process_time()})
        deadline = time.monotonic() + HANG_SECONDS
        while time.monotonic() < deadline:
            pass
        return len(block)


class SpinCatching(BaseTool):
    name = "spin_catching"
    description = (
        "Handles SIGPROF (the signal of its CPU budget's timer), then burns CPU for a number of "
        "CPU seconds; with how='raise' its handler raises a ValueError of its own, with "
        "how='return' it notes the signal and the tool returns once the seconds are burnt."
    )

    def _execute(self, **kwargs: Any) -> Any:
        import signal

        def stop(signum: int, frame: Any) -> None:
            if kwargs.get("how") == "raise":
                raise ValueError("stopped spinning")

        signal.signal(signal.SIGPROF, stop)
        start = time.process_time()
        while time.process_time() - start < kwargs["seconds"]:
            pass
        return "spun"


class SpinProfiled(BaseTool):
    name = "spin_profiled"
    description = (
        "Burns CPU for a number of CPU seconds under a sampling profiler of its own: a SIGPROF "
        "handler and an ITIMER_PROF timer every 10 ms, in place of its CPU budget's timer. "
        "With stop=True it puts both back as it found them before it returns (a profiler that "
        "cleans up), else it leaves them."
    )

    def _execute(self, **kwargs: Any) -> Any:
        import signal

        samples = []
        before = signal.signal(signal.SIGPROF, lambda signum, frame: samples.append(frame))
        signal.setitimer(signal.ITIMER_PROF, 0.01, 0.01)
        start = time.process_time()
        while time.process_time() - start < kwargs["seconds"]:
            pass
        if kwargs.get("stop"):
            signal.setitimer(signal.ITIMER_PROF, 0)
            signal.signal(signal.SIGPROF, before)
        return len(samples)


class SpinDeaf(BaseTool):
    name = "spin_deaf"
    description = (
        "Ignores SIGPROF and SIGXCPU (the signals a CPU budget sends), lifts its CPU timer and "
        "its soft CPU limit, then burns CPU for ever."
    )

    def _execute(self, **kwargs: Any) -> Any:
        import resource
        import signal

        signal.signal(signal.SIGPROF, signal.SIG_IGN)
        signal.signal(signal.SIGXCPU, signal.SIG_IGN)
        signal.setitimer(signal.ITIMER_PROF, 0)
        _, hard = resource.getrlimit(resource.RLIMIT_CPU)
        resource.setrlimit(resource.RLIMIT_CPU, (hard, hard))
        while True:
            pass


class LeavesAChild(BaseTool):
    name = "leaves_a_child"
    description = "Starts ``sleep 60`` in the worker's process group and returns its pid."

    def _execute(self, **kwargs: Any) -> Any:
        return subprocess.Popen(["sleep", "60"]).pid


class ChildThenEnds(BaseTool):
    name = "child_then_ends"
    description = (
        "Starts ``sleep 60`` in the worker's process group, notes both pids in ``box``, then "
        "ends its worker: ``os._exit(3)`` (``how='exit'``) or by burning CPU past any budget "
        "(``how='spin'``)."
    )

    def _execute(self, **kwargs: Any) -> Any:
        child = subprocess.Popen(["sleep", "60"])
        note(kwargs["box"], "child_then_ends", {"pid": os.getpid(), "child": child.pid})
        if kwargs["how"] == "exit":
            os._exit(3)
        while True:
            pass


class BusyChild(BaseTool):
    name = "busy_child"
    description = "Runs a child Python process that burns ``seconds`` CPU seconds, waits for it."

    def _execute(self, **kwargs: Any) -> Any:
        seconds = kwargs.get("seconds", 0.3)
        burn = (
            "import time\n"
            "start = time.process_time()\n"
            f"while time.process_time() - start < {seconds!r}:\n"
            "    pass\n"
        )
        subprocess.run([sys.executable, "-c", burn], check=True)
        return seconds


class ClosesDescriptors(BaseTool):
    name = "closes_descriptors"
    description = (
        "Closes every file descriptor above 2 (the worker's pipe to the caller among them), "
        "then returns after ``seconds``."
    )

    def _execute(self, **kwargs: Any) -> Any:
        os.closerange(3, 65536)
        time.sleep(kwargs.get("seconds", 0.0))
        return "closed"


class ReplacesItsPipe(BaseTool):
    name = "replaces_its_pipe"
    description = (
        "Closes every file descriptor above 2 (the worker's pipe to the caller among them), "
        "then opens ``kind`` (the file ``taken`` in ``box``, or socket pairs) until every "
        "descriptor up to 64 is taken again, and returns leaving them open."
    )

    def _execute(self, **kwargs: Any) -> Any:
        os.closerange(3, 65536)
        opened: list[int] = []
        while not opened or max(opened) < 64:
            if kwargs["kind"] == "file":
                path = os.path.join(kwargs["box"], "taken")
                opened.append(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND))
            else:
                first, second = socket.socketpair()
                opened += [first.detach(), second.detach()]
        return "replaced"


class Progress(BaseTool):
    name = "progress"
    description = "Reports progress and checkpoints ``steps`` times, in order."

    def _execute(self, **kwargs: Any) -> Any:
        task = require_current_task()
        steps = kwargs.get("steps", 100)
        for step in range(steps):
            task.progress(100 * step / steps, f"step {step}", step=step)
            if step % 10 == 0:
                task.checkpoint(f"checkpoint {step}", {"step": step})
        return steps


class _Unprintable:
    """A name or message that can be neither pickled nor printed: ``str()``, ``repr()`` and
    pickling all raise."""

    def __str__(self) -> str:
        raise RuntimeError("no str for you")

    def __repr__(self) -> str:
        raise RuntimeError("no repr either")

    def __reduce__(self) -> Any:
        raise TypeError("cannot pickle this")


class ReportsUnprintably(BaseTool):
    name = "reports_unprintably"
    description = "Reports progress and a checkpoint named by what can be neither sent nor shown."

    def _execute(self, **kwargs: Any) -> Any:
        task = require_current_task()
        task.progress(50, _Unprintable())  # type: ignore[arg-type]  (what is tested)
        task.checkpoint(_Unprintable(), {"rows": 1})  # type: ignore[arg-type]
        return "reported"


class Floods(BaseTool):
    name = "floods"
    description = (
        "Reports progress and a checkpoint, each megabytes large, quoting its ``api_key`` "
        "where the message and a data value are cut."
    )

    def _execute(self, **kwargs: Any) -> Any:
        task = require_current_task()
        size = kwargs.get("size", 4_000_000)
        key = kwargs["api_key"]
        marker = "flood-marker"
        task.progress(
            50,
            marker + "m" * (1020 - len(marker)) + key + "m" * size,
            blob="d" * size,
            items=list(range(size // 8)),
        )
        task.checkpoint(
            "c" * size,
            {"blob": "e" * 250 + key + "e" * size, "items": list(range(size // 8))},
        )
        return "flooded"


class NamesACheckpointAfterItsKey(BaseTool):
    name = "names_a_checkpoint_after_its_key"
    description = "Names a checkpoint with its ``api_key`` right where a long name is cut."

    def _execute(self, **kwargs: Any) -> Any:
        require_current_task().checkpoint("n" * 250 + kwargs["api_key"], {"step": 1})
        return "named"


class ReturnsLambda(BaseTool):
    name = "returns_lambda"
    description = "Returns something that cannot be pickled."

    def _execute(self, **kwargs: Any) -> Any:
        return lambda: None


class Unpicklable(Exception):
    """An exception that pickles but cannot be unpickled (its __init__ needs two arguments)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code


class RaisesUnpicklable(BaseTool):
    name = "raises_unpicklable"
    description = "Raises an exception that cannot be unpickled."

    def _execute(self, **kwargs: Any) -> Any:
        raise Unpicklable(503, "unavailable")


class RebuiltAsAnother(Exception):
    """An exception that pickles as something else: its ``__reduce__`` rebuilds an ``int``."""

    def __reduce__(self) -> Any:
        return (int, (5,))


class RaisesRebuiltAsAnother(BaseTool):
    name = "raises_rebuilt_as_another"
    description = "Raises an exception that unpickles as an int."

    def _execute(self, **kwargs: Any) -> Any:
        raise RebuiltAsAnother("quota exceeded")


class ReturnsUnpicklable(BaseTool):
    name = "returns_unpicklable"
    description = "Returns (does not raise) an exception that cannot be unpickled."

    def _execute(self, **kwargs: Any) -> Any:
        return Unpicklable(503, "unavailable")


class _PicklingError(Exception):
    """What :class:`FailsToPickleBadly` raises: its text cannot be made (``mode="no_text"``;
    ``"exit_text"``: making it raises ``SystemExit``), or is 1 MB ending with the key
    (``mode="long"``, and any other)."""

    def __init__(self, mode: str, key: str) -> None:
        super().__init__(mode, key)
        self.mode = mode
        self.key = key

    def __str__(self) -> str:
        if self.mode == "no_text":
            raise ValueError("no text")
        if self.mode == "exit_text":
            raise SystemExit("no text")
        return "x" * 1_000_000 + self.key


class _HidesItsName(type):
    """A metaclass whose classes raise when asked for their name (a proxy, a mock)."""

    def __getattribute__(cls, name: str) -> Any:
        if name in ("__name__", "__qualname__", "__module__"):
            raise RuntimeError("this class will not say its name")
        return super().__getattribute__(name)


class _NamelessPicklingError(_PicklingError, metaclass=_HidesItsName):
    """A :class:`_PicklingError` whose class cannot be named (``mode="nameless"``)."""


class FailsToPickleBadly:
    """A value whose pickling raises a :class:`_PicklingError`."""

    def __init__(self, mode: str, key: str) -> None:
        self.mode = mode
        self.key = key

    def __repr__(self) -> str:
        return "FailsToPickleBadly()"

    def __reduce__(self) -> Any:
        if self.mode == "nameless":
            raise _NamelessPicklingError(self.mode, self.key)
        raise _PicklingError(self.mode, self.key)


class ReturnsFailsToPickleBadly(BaseTool):
    name = "returns_fails_to_pickle_badly"
    description = "Returns a value whose pickling raises an exception of a hostile text."

    def _execute(self, **kwargs: Any) -> Any:
        return FailsToPickleBadly(kwargs["mode"], kwargs["api_key"])


def _fail_to_load(mode: str, key: str) -> Any:
    raise _PicklingError(mode, key)


class FailsToLoadBadly:
    """A value that pickles, and whose unpickling raises a :class:`_PicklingError`."""

    def __init__(self, mode: str, key: str) -> None:
        self.mode = mode
        self.key = key

    def __reduce__(self) -> Any:
        return (_fail_to_load, (self.mode, self.key))


class ReturnsFailsToLoadBadly(BaseTool):
    name = "returns_fails_to_load_badly"
    description = "Returns a value whose unpickling raises an exception of a hostile text."

    def _execute(self, **kwargs: Any) -> Any:
        return FailsToLoadBadly(kwargs["mode"], kwargs["api_key"])


class HoldsAKey:
    """A value that cannot be pickled (it holds a lock) and whose ``repr`` quotes a key after
    150 characters, across the 200 at which a worker cuts the description of such a value."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.lock = threading.Lock()

    def __repr__(self) -> str:
        return f"HoldsAKey({'z' * 150}{self.key})"


class ReturnsAKeyHolder(BaseTool):
    name = "returns_key_holder"
    description = "Checkpoints, then returns, a value that cannot be pickled and quotes its key."

    def _execute(self, **kwargs: Any) -> Any:
        holder = HoldsAKey(kwargs["api_key"])
        require_current_task().checkpoint("holding", {"holder": holder})
        return holder


class BecomesAKeyHolder:
    """A value that pickles, and loads as a :class:`HoldsAKey` (which cannot be pickled): it
    leaves its tool process, and cannot go on from the process that loaded it."""

    def __init__(self, key: str) -> None:
        self.key = key

    def __reduce__(self) -> Any:
        return (HoldsAKey, (self.key,))


class ReturnsWhatBecomesAKeyHolder(BaseTool):
    name = "returns_what_becomes_key_holder"
    description = "Returns a value that loads as one that cannot be pickled and quotes its key."

    def _execute(self, **kwargs: Any) -> Any:
        return BecomesAKeyHolder(kwargs["api_key"])


class TypedKeyInput(ToolInput):
    dsn: SecretStr


class ReturnsATypedKeyHolder(BaseTool):
    name = "returns_typed_key_holder"
    description = "As returns_key_holder, its key under a field typed SecretStr."
    input_model = TypedKeyInput

    def _execute(self, input_data: TypedKeyInput) -> Any:
        holder = HoldsAKey(input_data.dsn.get_secret_value())
        require_current_task().checkpoint("holding", {"holder": holder})
        return holder


class ExitsWhenLoaded:
    """A value that pickles, and whose unpickling raises ``SystemExit``."""

    def __reduce__(self) -> Any:
        return (sys.exit, (3,))


class ExitsWhenPickled:
    """A value whose pickling raises ``SystemExit`` (a ``__reduce__`` that gives up badly)."""

    def __reduce__(self) -> Any:
        raise SystemExit("cannot be pickled")


#: Set by a test's event loop when it gets a turn; see :class:`WaitsForTheLoop`.
LOOP_TURNED = threading.Event()
#: Whether each :class:`WaitsForTheLoop` was pickled after the loop had its turn.
PICKLED_AFTER_THE_LOOP_TURNED: list[bool] = []


class WaitsForTheLoop:
    """A parameter whose pickling waits (5 s at most) for the caller's event loop to get a
    turn: pickled on the loop's own thread, it waits in vain."""

    def __reduce__(self) -> Any:
        PICKLED_AFTER_THE_LOOP_TURNED.append(LOOP_TURNED.wait(5.0))
        return (str, ("waited",))


class HeldWhilePickled:
    """A parameter whose pickling waits (15 s at most) until :attr:`release` is set, counting
    the picklings under way at once (:attr:`at_once`, the most of them :attr:`most_at_once`)."""

    release = threading.Event()
    lock = threading.Lock()
    at_once = 0
    most_at_once = 0

    @classmethod
    def reset(cls) -> None:
        cls.release.clear()
        cls.at_once = cls.most_at_once = 0

    def __reduce__(self) -> Any:
        cls = type(self)
        with cls.lock:
            cls.at_once += 1
            cls.most_at_once = max(cls.most_at_once, cls.at_once)
        try:
            cls.release.wait(15.0)
        finally:
            with cls.lock:
                cls.at_once -= 1
        return (str, ("held",))


class InterruptedWhenPickled:
    """A value whose pickling is interrupted (``KeyboardInterrupt``: Ctrl-C meanwhile)."""

    def __reduce__(self) -> Any:
        raise KeyboardInterrupt


class ReturnsExitWhenLoaded(BaseTool):
    name = "returns_exit_when_loaded"
    description = "Returns a value whose unpickling raises SystemExit (a BaseException)."

    def _execute(self, **kwargs: Any) -> Any:
        return ExitsWhenLoaded()


class LeavesAThread(BaseTool):
    name = "leaves_a_thread"
    description = (
        "Starts a non-daemon thread that sleeps HANG_SECONDS, then returns its pid (or, given "
        "``mb``, allocates that many MB first)."
    )

    def _execute(self, **kwargs: Any) -> Any:
        threading.Thread(target=time.sleep, args=(HANG_SECONDS,), daemon=False).start()
        if "mb" in kwargs:
            return len(bytearray(kwargs["mb"] * 1024 * 1024))
        return os.getpid()


#: Released by ``ReleaseLateProgress`` (in the same worker process as ``ProgressLater``).
_RELEASE = threading.Event()
_LATE: list[threading.Thread] = []


class ProgressLater(BaseTool):
    name = "progress_later"
    description = "Returns, leaving a thread that reports progress once released."

    def _execute(self, **kwargs: Any) -> Any:
        task = require_current_task()

        def later() -> None:
            _RELEASE.wait(HANG_SECONDS)
            task.progress(50.0, "late progress of an ended call")

        thread = threading.Thread(target=later, daemon=True)
        thread.start()
        _LATE.append(thread)
        return os.getpid()


class _OddKey:
    """A checkpoint data key that cannot be pickled, whose ``str()`` raises; its ``repr()``
    too unless ``shown`` is given."""

    def __init__(self, shown: str | None = None) -> None:
        self.shown = shown

    def __reduce__(self) -> Any:
        raise TypeError("an odd key cannot be pickled")

    def __str__(self) -> str:
        raise RuntimeError("no str for you")

    def __repr__(self) -> str:
        if self.shown is None:
            raise RuntimeError("no repr either")
        return self.shown


class _Stage(str, Enum):
    """A string key whose ``str()`` is ``"_Stage.LOADED"``, not its text."""

    LOADED = "loaded"


class _QuietText(str):
    """A string key whose ``str()`` raises."""

    def __str__(self) -> str:
        raise RuntimeError("no str for you")


class _ClassRaises:
    """A value whose ``__class__`` raises, as a proxy's standing for nothing does: it cannot be
    pickled, and every ``isinstance`` check of it raises."""

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        raise RuntimeError("no class")


class ReportsProxies(BaseTool):
    name = "reports_proxies"
    description = (
        "Reports progress with a message, a detail and a checkpoint (its name, a key and a "
        "value) whose __class__ raises, then returns."
    )

    def _execute(self, **kwargs: Any) -> Any:
        task = require_current_task()
        task.progress(10, _ClassRaises(), detail=_ClassRaises())
        task.checkpoint(_ClassRaises(), {_ClassRaises(): 1, "value": _ClassRaises()})
        return "returned"


class ChecksOddKeys(BaseTool):
    name = "checkpoints_odd_keys"
    description = (
        "Adds a checkpoint whose data keys can be neither pickled nor printed, beside string "
        "keys whose str() is not their text."
    )

    def _execute(self, **kwargs: Any) -> Any:
        require_current_task().checkpoint(
            "odd keys",
            {
                _OddKey(): 1,
                _OddKey("OddKey()"): 2,
                "plain": 3,
                _Stage.LOADED: 4,
                _QuietText("rows"): 5,
            },
        )
        return "returned"


class WatchesItsHandle(BaseTool):
    name = "watches_its_handle"
    description = (
        "Returns at once, leaving a thread that notes in ``box`` whether its task handle "
        "still reads cancelled False during the call, then whether it turns True afterwards."
    )

    def _execute(self, **kwargs: Any) -> Any:
        task = require_current_task()
        box = kwargs["box"]
        during = task.cancelled

        def watch() -> None:
            deadline = time.monotonic() + HANG_SECONDS
            while not task.cancelled and time.monotonic() < deadline:
                time.sleep(0.01)
            note(box, "watched", {"during": during, "after": task.cancelled})

        threading.Thread(target=watch, daemon=True).start()
        return os.getpid()


class ReleaseLateProgress(BaseTool):
    name = "release_late_progress"
    description = "Releases ProgressLater's thread and waits until it has reported."

    def _execute(self, **kwargs: Any) -> Any:
        _RELEASE.set()
        for thread in _LATE:
            thread.join(HANG_SECONDS)
        return os.getpid()


class Forks(BaseTool):
    name = "forks"
    description = (
        "Forks; the child returns from the tool at once, the worker once the child has ended."
    )

    def _execute(self, **kwargs: Any) -> Any:
        child = os.fork()
        if child == 0:
            return "from the forked child"
        os.waitpid(child, 0)
        return "from the worker"


class ForksASleeper(BaseTool):
    name = "forks_a_sleeper"
    description = (
        "Forks a child that sleeps for a minute (holding every descriptor the worker has) and "
        "never returns into the worker's code; returns the child's pid at once."
    )

    def _execute(self, **kwargs: Any) -> Any:
        child = os.fork()
        if child == 0:
            try:
                time.sleep(HANG_SECONDS)
            finally:
                os._exit(0)
        return child


class ProgressThatDoesNotLoad(BaseTool):
    name = "progress_that_does_not_load"
    description = "Reports progress whose details pickle but cannot be unpickled, then returns."

    def _execute(self, **kwargs: Any) -> Any:
        require_current_task().progress(50.0, "half", error=Unpicklable(503, "unavailable"))
        time.sleep(kwargs.get("seconds", 0.0))
        return "returned"


class ReportsWhatExitsWhenPickled(BaseTool):
    name = "reports_what_exits_when_pickled"
    description = (
        "Reports progress and a checkpoint whose details raise SystemExit when pickled, "
        "then returns."
    )

    def _execute(self, **kwargs: Any) -> Any:
        task = require_current_task()
        task.progress(50.0, "half", value=ExitsWhenPickled())
        task.checkpoint("saved", {"value": ExitsWhenPickled()})
        return "returned"


def _rebuilt_in_a_child_process(value: str) -> WorkerOnly:
    """Unpickles in a process started by ``multiprocessing`` (a Dask worker, a tool process)
    only: elsewhere it fails as a class missing there would (a library on the workers only)."""
    import multiprocessing

    if multiprocessing.parent_process() is None:
        raise ModuleNotFoundError("No module named 'worker_only_library'")
    return WorkerOnly(value)


class WorkerOnly:
    """A result that can be loaded on the workers but not in the caller's process."""

    def __init__(self, value: str) -> None:
        self.value = value

    def __reduce__(self) -> Any:
        return (_rebuilt_in_a_child_process, (self.value,))


class ReturnsWorkerOnly(BaseTool):
    name = "returns_worker_only"
    description = "Returns an object that the caller's process cannot unpickle."

    def _execute(self, **kwargs: Any) -> Any:
        return WorkerOnly("made on a worker")


def _loaded_slowly(box: str, seconds: float) -> SlowToLoad:
    """Takes ``seconds`` to load where a Dask worker loads a call (then notes ``loaded``);
    loads at once in a tool process."""
    import multiprocessing

    if multiprocessing.current_process().name != "laios-process-worker":
        time.sleep(seconds)
        note(box, "loaded", True)
    return SlowToLoad(box, seconds)


class SlowToLoad:
    """A parameter whose loading on a Dask worker takes a while (a large or costly value)."""

    def __init__(self, box: str, seconds: float) -> None:
        self.box = box
        self.seconds = seconds

    def __reduce__(self) -> Any:
        return (_loaded_slowly, (self.box, self.seconds))


def _loaded_once_a_file_exists(box: str, path: str) -> str:
    """Notes ``loading``, then waits until ``path`` exists (at most HANG_SECONDS): a value whose
    loading in the caller's process takes as long as the test wants (a ``__setstate__`` that
    connects somewhere, a module slow to import)."""
    note(box, "loading", True)
    wait_until(lambda: os.path.exists(path), HANG_SECONDS)
    return "loaded"


class SlowToLoadInTheCaller:
    def __init__(self, box: str, path: str) -> None:
        self.box = box
        self.path = path

    def __reduce__(self) -> Any:
        return (_loaded_once_a_file_exists, (self.box, self.path))


class ReturnsSlowToLoad(BaseTool):
    name = "returns_slow_to_load"
    description = "Returns a value whose loading in the caller waits until a file exists."

    def _execute(self, **kwargs: Any) -> Any:
        return SlowToLoadInTheCaller(kwargs["box"], kwargs["path"])


class Fails(BaseTool):
    name = "fails"
    description = "Raises ValueError."

    def _execute(self, **kwargs: Any) -> Any:
        raise ValueError("bad input 7")


class FailsHoldingMemory(BaseTool):
    name = "fails_holding_memory"
    description = "Allocates (and touches) a number of MB, held in a local, then raises ValueError."

    def _execute(self, **kwargs: Any) -> Any:
        block = b"x" * (kwargs["mb"] * 1024 * 1024)
        raise ValueError(f"failed holding {len(block)} bytes")


class ExitsWhenPrintedError(Exception):
    """An exception whose ``__str__`` raises ``SystemExit``."""

    def __str__(self) -> str:
        raise SystemExit("not a message")


class RaisesExitWhenPrinted(BaseTool):
    name = "raises_exit_when_printed"
    description = "Raises an exception whose __str__ raises SystemExit."

    def _execute(self, **kwargs: Any) -> Any:
        raise ExitsWhenPrintedError("the quota is used up")


def _parse_quota(text: str, api_key: str) -> int:
    return int(text)  # (raises ValueError: the cause below)


def _check_quota(api_key: str, prefix: int | None = None) -> None:
    try:
        _parse_quota("unlimited", api_key)
    except ValueError as exc:
        raise LookupError(f"no quota for {api_key[:prefix]}") from exc


class FailsDeep(BaseTool):
    """Raises from a helper, with a cause, quoting its secret parameter."""

    name = "fails_deep"
    description = "Raises LookupError from a helper, caused by a ValueError."

    def _execute(self, **kwargs: Any) -> Any:
        _check_quota(kwargs["api_key"], kwargs.get("prefix"))


class SuppressionSeen(BaseTool):
    """Returns whether instrumentation is suppressed where it runs, as instrumentations read
    it (the key ``suppress_instrumentation()`` sets, or its plain twin)."""

    name = "suppression_seen"
    description = "Says whether instrumentation is suppressed around it."

    def _execute(self, **kwargs: Any) -> Any:
        from opentelemetry import context as otel_context

        key = getattr(otel_context, "_SUPPRESS_INSTRUMENTATION_KEY", None)
        return {
            "key": bool(key is not None and otel_context.get_value(key)),
            "plain": bool(otel_context.get_value("suppress_instrumentation")),
        }


class TraceSeen(BaseTool):
    name = "trace_seen"
    description = "Returns the trace id and span id current in the worker, opens a span."

    def _execute(self, **kwargs: Any) -> Any:
        seen = trace.get_current_span().get_span_context()
        tracer = trace.get_tracer("tests.process_tools")
        with tracer.start_as_current_span("inside the worker"):
            pass
        return {"trace_id": f"{seen.trace_id:032x}", "span_id": f"{seen.span_id:016x}"}


class TraceStateSeen(BaseTool):
    name = "trace_state_seen"
    description = "Returns the trace id, tracestate and flags of the span current in the worker."

    def _execute(self, **kwargs: Any) -> Any:
        seen = trace.get_current_span().get_span_context()
        return {
            "trace_id": f"{seen.trace_id:032x}",
            "tracestate": seen.trace_state.to_header(),
            "flags": int(seen.trace_flags),
        }


class BaggageSeen(BaseTool):
    name = "baggage_seen"
    description = "Returns the OpenTelemetry baggage current in the worker, as a dict."

    def _execute(self, **kwargs: Any) -> Any:
        return dict(baggage.get_all())


#: A context variable of the tools' own (a request id, say).
REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


def context_variables_seen() -> dict[str, Any]:
    return {"request_id": REQUEST_ID.get(), "baggage": dict(baggage.get_all())}


class SetsContextVariables(BaseTool):
    name = "sets_context_variables"
    description = (
        "Returns the request id and baggage it finds, then sets its own and leaves them set."
    )

    def _execute(self, **kwargs: Any) -> Any:
        seen = context_variables_seen()
        REQUEST_ID.set(kwargs["request_id"])
        otel_context.attach(baggage.set_baggage("request.id", kwargs["request_id"]))
        return seen


class ContextVariablesSeen(AsyncBaseTool):
    name = "context_variables_seen"
    description = "Returns the request id and baggage it finds (an async tool)."

    async def _execute_async(self, **kwargs: Any) -> Any:
        return context_variables_seen()


@dataclasses.dataclass
class NotedCall(ToolCall):
    """A runner's own kind of call (no slots: it may have attributes beside its fields), whose
    trace carrier adds its ``note``, and its ``origin`` when it has one, to the baggage."""

    note: str = ""

    def trace_carrier(self) -> dict[str, str]:
        carrier = ToolCall.trace_carrier(self)
        carrier["baggage"] = f"note={self.note},origin={getattr(self, 'origin', '-')}"
        return carrier


@dataclasses.dataclass(slots=True)
class SlottedNotedCall(ToolCall):
    """A runner's own kind of call, with slots."""

    note: str = ""


class Sleep(AsyncBaseTool):
    name = "sleep_async"
    description = "Awaits asyncio.sleep(seconds) in the worker and returns its pid."

    async def _execute_async(self, **kwargs: Any) -> Any:
        await asyncio.sleep(kwargs.get("seconds", 0.0))
        return os.getpid()


class StampAndSleep(BaseTool):
    name = "stamp_and_sleep"
    description = (
        "Notes the time it starts (``time.time()``) as ``stamp`` in ``box``, then sleeps "
        "``seconds``."
    )

    def _execute(self, **kwargs: Any) -> Any:
        note(kwargs["box"], kwargs["stamp"], time.time())
        time.sleep(kwargs.get("seconds", 0.0))
        return os.getpid()


class LeavesAnExitBehind(AsyncBaseTool):
    name = "leaves_an_exit_behind"
    description = "Leaves a task on the loop that raises SystemExit after it returned."

    async def _execute_async(self, **kwargs: Any) -> Any:
        async def exit_later() -> None:
            await asyncio.sleep(kwargs.get("seconds", 0.2))
            raise SystemExit(9)

        LEFT_BEHIND.add(asyncio.ensure_future(exit_later()))
        return os.getpid()


class StopsAsync(AsyncBaseTool):
    name = "stops_async"
    description = "Raises StopIteration('boom') in a coroutine."

    async def _execute_async(self, **kwargs: Any) -> Any:
        raise StopIteration("boom")


class AwaitsCancelled(AsyncBaseTool):
    name = "awaits_cancelled"
    description = "Awaits a future that something else cancelled."

    async def _execute_async(self, **kwargs: Any) -> Any:
        future = asyncio.get_running_loop().create_future()
        future.cancel()
        return await future


class CancelsItsAsyncioTask(AsyncBaseTool):
    name = "cancels_its_asyncio_task"
    description = (
        "Cancels the asyncio task it runs in, then awaits (or, with then='raise' or "
        "then='return', raises KeyError or returns without awaiting)."
    )

    async def _execute_async(self, **kwargs: Any) -> Any:
        this = asyncio.current_task()
        assert this is not None
        this.cancel()
        then = kwargs.get("then", "await")
        if then == "raise":
            raise KeyError("raised after cancelling its own task")
        if then == "return":
            return "returned"
        await asyncio.sleep(5)
        return "never"


#: Tasks a tool left on its loop (held, as asyncio holds tasks only weakly).
LEFT_BEHIND: set[asyncio.Future[None]] = set()


class _FileExporter(SpanExporter):
    """Appends each finished span as a JSON line to a file (for a worker's SDK)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def export(self, spans: Any) -> SpanExportResult:
        with open(self.path, "a") as handle:
            for span in spans:
                assert isinstance(span, ReadableSpan)
                context = span.get_span_context()
                assert context is not None
                parent = span.parent
                handle.write(
                    json.dumps(
                        {
                            "name": span.name,
                            "trace_id": f"{context.trace_id:032x}",
                            "parent_span_id": f"{parent.span_id:016x}" if parent else None,
                        }
                    )
                    + "\n"
                )
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


class FailsToPickleOnceArmed:
    """An initarg (for ``fail_while_file_exists``: a path that does not exist) whose pickling,
    once ``armed`` is set, waits for ``released``, then raises (a worker start that fails)."""

    def __init__(self) -> None:
        self.armed = threading.Event()
        self.released = threading.Event()

    def __reduce__(self) -> Any:
        if self.armed.is_set():
            self.released.wait(60)
            raise RuntimeError("initarg refused to pickle")
        return (str, (os.path.join(os.sep, "no", "such", "file"),))


def spin_for(seconds: float) -> None:
    """An initializer that burns ``seconds`` CPU seconds (as heavy imports do)."""
    start = time.process_time()
    while time.process_time() - start < seconds:
        pass


def fail_while_file_exists(path: str) -> None:
    """A worker initializer that raises while the file ``path`` exists."""
    if os.path.exists(path):
        raise RuntimeError(f"initializer refused: {os.path.basename(path)} exists")


def fail_once_then_sleep(path: str, seconds: float) -> None:
    """A worker initializer that raises the first time (creating the file ``path``), then,
    tried again before the worker's first call, sleeps ``seconds``."""
    if not os.path.exists(path):
        Path(path).touch()
        raise RuntimeError("initializer refused: first try")
    time.sleep(seconds)


def sigint_in_this_process(_: object = None) -> dict[str, bool]:
    """Whether SIGINT is blocked in this process, and whether one sent to it raises
    ``KeyboardInterrupt`` (for a process the test starts itself, a ``multiprocessing.Pool``'s)."""
    import signal

    blocked = signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, set())
    raised = False
    try:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.5)  # (a blocked one stays pending: nothing is raised)
    except KeyboardInterrupt:
        raised = True
    return {"blocked": blocked, "raised": raised}


def set_up_tracing(path: str) -> None:
    """A worker initializer: an SDK tracer provider that writes spans to ``path``."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_FileExporter(path)))
    trace.set_tracer_provider(provider)


class _LogFileExporter:
    """Appends the body of each exported log record as a JSON line to a file (built on the
    SDK's ``LogExporter`` when a worker sets it up: this module is imported without it)."""

    @staticmethod
    def make(path: str) -> Any:
        from opentelemetry.sdk._logs.export import LogExporter, LogExportResult

        class Exporter(LogExporter):  # type: ignore[misc]
            def export(self, batch: Any) -> Any:
                with open(path, "a") as handle:
                    for data in batch:
                        body = getattr(getattr(data, "log_record", data), "body", None)
                        handle.write(json.dumps(str(body)) + "\n")
                return LogExportResult.SUCCESS

            def force_flush(self, timeout_millis: int = 30_000) -> bool:
                return True

            def shutdown(self) -> None:
                pass

        return Exporter()


class _MetricFileExporter:
    """Appends the names of the metrics of each export as a JSON line to a file (built on the
    SDK's ``MetricExporter`` when a worker sets it up: this module is imported without it)."""

    @staticmethod
    def make(path: str) -> Any:
        from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult

        class Exporter(MetricExporter):
            def export(self, metrics_data: Any, timeout_millis: float = 10_000, **_: Any) -> Any:
                names = [
                    metric.name
                    for resource in metrics_data.resource_metrics
                    for scope in resource.scope_metrics
                    for metric in scope.metrics
                ]
                with open(path, "a") as handle:
                    handle.write(json.dumps(names) + "\n")
                return MetricExportResult.SUCCESS

            def force_flush(self, timeout_millis: float = 10_000) -> bool:
                return True

            def shutdown(self, timeout_millis: float = 30_000, **_: Any) -> None:
                pass

        return Exporter()


def set_up_batched_telemetry(spans_path: str, metrics_path: str, logs_path: str) -> None:
    """A worker initializer: SDK providers that batch, as in production (a span processor
    exporting once a minute, a metric reader exporting once a minute, a log record processor
    exporting once a minute behind the ``tests.process_tools`` logger), writing to files."""
    import logging

    from opentelemetry import _logs, metrics
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    logs = LoggerProvider()
    logs.add_log_record_processor(
        BatchLogRecordProcessor(_LogFileExporter.make(logs_path), schedule_delay_millis=60_000)
    )
    _logs.set_logger_provider(logs)
    logging.getLogger("tests.process_tools").addHandler(LoggingHandler(logger_provider=logs))

    provider = TracerProvider()
    provider.add_span_processor(
        BatchSpanProcessor(_FileExporter(spans_path), schedule_delay_millis=60_000)
    )
    trace.set_tracer_provider(provider)
    reader = PeriodicExportingMetricReader(
        _MetricFileExporter.make(metrics_path), export_interval_millis=60_000
    )
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))


class CountsAndTraces(BaseTool):
    name = "counts_and_traces"
    description = "Adds one to a counter of its own and opens a span, in its worker."

    def _execute(self, **kwargs: Any) -> Any:
        import logging

        from opentelemetry import metrics

        metrics.get_meter("tests.process_tools").create_counter("tool.calls").add(1)
        logging.getLogger("tests.process_tools").warning("the tool's last words")
        with trace.get_tracer("tests.process_tools").start_as_current_span("inside the worker"):
            pass
        return os.getpid()


TOOLS = (
    SpinProfiled,
    ReturnsRefusesToPickle,
    RefusesASize,
    AllocatesWithNumpy,
    ChecksOddKeys,
    ReportsProxies,
    WatchesItsHandle,
    FailsHoldingMemory,
    SetsContextVariables,
    ContextVariablesSeen,
    ReturnsSlowToLoad,
    CountsAndTraces,
    AllocatesOnAFile,
    Pid,
    FailsDeep,
    SuppressionSeen,
    ClosesStandardDescriptors,
    PrintsALine,
    StuckOnExit,
    LowersItsLimits,
    ReturnsFailsToPickleBadly,
    ReturnsFailsToLoadBadly,
    SignalsHeld,
    ReturnsSwelling,
    Hang,
    HangHoldingTheGil,
    LeaksDescriptors,
    Exit,
    ExitsWhenShort,
    Imports,
    RaisesUnmappedLibrary,
    Allocate,
    StartsThreads,
    Spin,
    AllocatesAndSpins,
    SpinDeaf,
    SpinCatching,
    LeavesAChild,
    ChildThenEnds,
    BusyChild,
    ClosesDescriptors,
    ReplacesItsPipe,
    Progress,
    ReportsUnprintably,
    Floods,
    NamesACheckpointAfterItsKey,
    ReturnsLambda,
    RaisesUnpicklable,
    RaisesRebuiltAsAnother,
    ReturnsUnpicklable,
    ReturnsAKeyHolder,
    ReturnsATypedKeyHolder,
    ReturnsWhatBecomesAKeyHolder,
    ReturnsExitWhenLoaded,
    LeavesAThread,
    ProgressLater,
    ReleaseLateProgress,
    Forks,
    ForksASleeper,
    ProgressThatDoesNotLoad,
    ReportsWhatExitsWhenPickled,
    Fails,
    RaisesExitWhenPrinted,
    TraceSeen,
    BaggageSeen,
    TraceStateSeen,
    Sleep,
    StampAndSleep,
    LeavesAnExitBehind,
    StopsAsync,
    AwaitsCancelled,
    CancelsItsAsyncioTask,
)


#: The secret the key-holding tools are given (see ``returns_key_holder``): long, so that any
#: slice of it a description kept would be found.
KEY = "sk-live-ABCDEFGHIJKLMNOPQRSTUVWXYZ-0123456789"


def key_slices_left(make: Callable[..., Any], task: Any, context: Any, wait: float) -> list[str]:
    """Run ``task`` on an executor ``make(tracer_provider=...)`` builds, check that its value
    could not be pickled, and return every 8-character slice of ``KEY`` found in its error
    or its spans (none, when the description was scrubbed before it was cut)."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    executor = make(tracer_provider=provider)
    result = executor.execute_task(task, context, timeout=wait)
    provider.shutdown()
    assert result.metadata["error_type"] == "not_picklable"
    assert "HoldsAKey(zzz" in (result.error or "")
    spans = exporter.get_finished_spans()
    assert any(span.name == "checkpoint holding" for span in spans)
    text = (result.error or "") + "".join(
        f"{span.attributes} {span.status.description} {[e.attributes for e in span.events]}"
        for span in spans
    )
    return [KEY[i : i + 8] for i in range(len(KEY) - 7) if KEY[i : i + 8] in text]


def check_progress_in_order(
    executor: Any, task: Callable[..., Any], context: Any, steps: int, wait: float
) -> None:
    """Run tool ``progress`` for ``steps`` steps on ``executor`` (``task(name, **parameters)``
    makes the call) and check that its progress events and its checkpoints arrive in order."""
    events: list[tuple[str, Any]] = []
    result = executor.execute_task(
        task("progress", steps=steps),
        context,
        timeout=wait,
        on_progress=lambda event, data: events.append((event, data)),
    )
    assert result.success, result.error
    seen = [data["details"]["step"] for event, data in events if event == "progress"]
    assert seen == list(range(steps))
    kinds = [event for event, _ in events]
    assert kinds[0] == "started"
    assert kinds[-1] == "completed"
    metrics = executor.get_metrics(result.task_id)
    assert metrics is not None
    names = [point["name"] for point in metrics.checkpoints]
    assert names == ["started", *(f"checkpoint {n}" for n in range(0, steps, 10)), "finished"]
