"""A small WSGI service for tests/integration/test_gunicorn.py, run by a real gunicorn.

``/task?sleep=S`` runs one laios task (a tool that sleeps ``S`` seconds) and answers with the
worker's pid; ``/metrics`` is laios's WSGI app (multiprocess mode from ``LAIOS_MULTIPROC_DIR``),
with the serving worker's pid in an ``X-Pid`` header.
"""

from __future__ import annotations

import os
import time
import urllib.parse
from collections.abc import Iterable
from typing import Any

from laios import Context, Task
from laios.execution.executor import Executor
from laios.execution.server import make_wsgi_app
from laios.tools.base import create_simple_tool
from laios.tools.registry import ToolRegistry


def _nap(seconds: float = 0.0) -> float:
    time.sleep(seconds)
    return seconds


_tools = ToolRegistry()
_tools.register_tool(create_simple_tool("nap", "Sleeps a little.", _nap))
_executor = Executor(_tools, max_workers=2)
_metrics = make_wsgi_app()
_context = Context(session_id="gunicorn", user_id="test")


def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """Route ``/metrics`` to laios, anything else to one task."""
    pid = ("X-Pid", str(os.getpid()))
    if environ.get("PATH_INFO") == "/metrics":

        def with_pid(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
            return start_response(status, [*headers, pid], *args)

        return _metrics(environ, with_pid)
    query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    seconds = float(query.get("sleep", ["0"])[0])
    task = Task(plan_id="p", description="nap", tool_name="nap", parameters={"seconds": seconds})
    result = _executor.execute_task(task, _context, timeout=10)
    body = f"{os.getpid()} {result.success}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), pid])
    return [body]
