"""Tools for the Dask cluster test: defined at module level, so that the tool processes of the
Dask workers can unpickle them (they import this module by name: the workers are started with
this directory on their ``PYTHONPATH``).

Every run of a tool writes one note (a small JSON file) to the directory the test passes as the
``box`` parameter, before it does anything else: which task (``tag``) it is, when it started,
its process and the chain of its ancestors' pids (the Dask worker process and its nanny are
among them), and the trace context it saw. A tool process shares no memory with the test, and
a run that is killed later (a timeout, a killed Dask worker) still leaves its note.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from opentelemetry import trace

from laios.tools.base import BaseTool

#: Longest a hanging tool hangs when nothing kills it (a failing test never hangs the run).
HANG_SECONDS = 60.0


def ancestors(pid: int) -> list[int]:
    """The pids of ``pid``'s parent, grandparent, ... up to (not including) pid 1 (Linux)."""
    chain: list[int] = []
    while pid > 1 and len(chain) < 64:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
                pid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            break
        if pid > 1:
            chain.append(pid)
    return chain


def seen_trace() -> dict[str, str]:
    """The trace id and span id current in this process, as lowercase hex."""
    context = trace.get_current_span().get_span_context()
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}


def note_run(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Write this run's note to the box (atomically: readers see all of it or nothing)."""
    pid = os.getpid()
    run = {
        "tag": kwargs["tag"],
        "tool": kwargs.get("tool"),
        "pid": pid,
        "ancestors": ancestors(pid),
        "started": time.time(),
        **seen_trace(),
    }
    path = Path(kwargs["box"]) / f"{kwargs['tag']}-{pid}-{time.monotonic_ns()}.json"
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(run))
    temporary.replace(path)
    return run


def read_runs(box: str | Path, tag: int | None = None) -> list[dict[str, Any]]:
    """Every note written to ``box`` so far (one per run of a tool), or those of task ``tag``."""
    pattern = "*.json" if tag is None else f"{tag}-*.json"
    return [json.loads(path.read_text()) for path in Path(box).glob(pattern)]


def count_runs(box: str | Path) -> int:
    """How many notes ``box`` holds (cheaper than reading them)."""
    with os.scandir(box) as entries:
        return sum(entry.name.endswith(".json") for entry in entries)


class Quick(BaseTool):
    name = "dask_quick"
    description = "Returns the trace id and span id it saw (its run's note says the same)."

    def _execute(self, **kwargs: Any) -> Any:
        run = note_run(kwargs)
        return {"tag": run["tag"], "trace_id": run["trace_id"], "span_id": run["span_id"]}


class Fail(BaseTool):
    name = "dask_fail"
    description = "Raises ValueError."

    def _execute(self, **kwargs: Any) -> Any:
        note_run(kwargs)
        raise ValueError(f"task {kwargs['tag']} fails on purpose")


class Hang(BaseTool):
    name = "dask_hang"
    description = "Sleeps far past any timeout of the test (its process is killed)."

    def _execute(self, **kwargs: Any) -> Any:
        note_run(kwargs)
        time.sleep(HANG_SECONDS)
        return "woke up"


TOOLS = (Quick, Fail, Hang)
