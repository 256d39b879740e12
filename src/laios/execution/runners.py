"""Runners: where a task's tool runs, behind one small protocol.

The executor keeps everything a caller sees on the caller's side (the job's state machine,
store records, spans, retries, results) and hands a runner a :class:`ToolCall` (data) with a
:class:`RunEvents` to report to; the runner answers with a :class:`RawOutcome` (data). See
``docs/architecture.md`` for the picture.

* :class:`ThreadRunner`: synchronous tools on worker threads (the default; a thread cannot be
  stopped, so an abandoned call is ``"left_running"``).
* :class:`LoopRunner`: coroutine tools as asyncio tasks (a timeout or cancellation cancels the
  coroutine: ``"stopped"``).
* :class:`InlineRunner`: a synchronous tool on the caller's own thread.
* :class:`DaskRunner`: every tool on a Dask cluster, in a killable process on a Dask worker
  (needs the ``dask`` extra).
* :class:`ProcessRunner`: every tool in a worker process (a timeout or cancellation kills the
  worker and what it started: ``"killed"``; memory and CPU limits are enforced).

A runner of your own is passed as ``Executor(registry, runner=...)``::

    from laios.execution.runners import ThreadRunner

    executor = Executor(registry, runner=ThreadRunner(max_workers=8, replacement_cap=8))
"""

from __future__ import annotations

from laios.execution._runners.base import (
    SHUTDOWN,
    Handle,
    RawOutcome,
    Refusal,
    RunEvents,
    Runner,
    RunnerStats,
    StopResult,
    ToolCall,
)
from laios.execution._runners.dask import DaskRunner, WorkerLost
from laios.execution._runners.inline import InlineRunner
from laios.execution._runners.invoke import call_tool, call_tool_async, is_async_tool
from laios.execution._runners.loop import AsyncSlots, LoopRunner, LoopThread
from laios.execution._runners.process import (
    DEFAULT_START_METHOD,
    CpuLimitExceeded,
    ProcessRunner,
    WorkerCrashed,
)
from laios.execution._runners.process_worker import (
    InitializerFailed,
    MemoryLimitExceeded,
    ToolNotLoadable,
    ToolNotPicklable,
)
from laios.execution._runners.thread import ThreadRunner

__all__ = [
    "DEFAULT_START_METHOD",
    "SHUTDOWN",
    "AsyncSlots",
    "CpuLimitExceeded",
    "DaskRunner",
    "Handle",
    "InitializerFailed",
    "InlineRunner",
    "LoopRunner",
    "LoopThread",
    "MemoryLimitExceeded",
    "ProcessRunner",
    "RawOutcome",
    "Refusal",
    "RunEvents",
    "Runner",
    "RunnerStats",
    "StopResult",
    "ThreadRunner",
    "ToolCall",
    "ToolNotLoadable",
    "ToolNotPicklable",
    "WorkerCrashed",
    "WorkerLost",
    "call_tool",
    "call_tool_async",
    "is_async_tool",
]
