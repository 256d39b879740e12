"""A second scrape target for the Prometheus test: a process runner that has killed workers.

``laios demo`` runs its tools on threads, so it never shows what the dashboard's "Process
kills by reason" panel charts. This process does, for real: on a ``ProcessRunner`` with a
200 MB memory limit and a 10 % CPU ceiling it runs one tool that ends its worker process
(``worker_crashed``), one that allocates past the limit (``memory_limit``) and one that spins
through its CPU budget (``cpu_limit``), then serves ``/metrics`` until it is terminated.

Run as ``python -c "import kills_target; kills_target.main()"`` with this directory on
``PYTHONPATH``, so that the worker processes import the tools by this module's name. It prints
its port on the first line of stdout once the three kills are recorded.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any

from prometheus_client import CollectorRegistry

from laios.core.types import Context, Task
from laios.execution.executor import Executor, ResourceLimits
from laios.execution.runners import ProcessRunner
from laios.execution.server import start_http_server
from laios.execution.store import MetricStore
from laios.tools.base import BaseTool
from laios.tools.registry import ToolRegistry


class Crash(BaseTool):
    name = "crash"
    description = "Ends its worker process."

    def _execute(self, **kwargs: Any) -> Any:
        os._exit(3)


class Allocate(BaseTool):
    name = "allocate"
    description = "Allocates and touches 500 MB."

    def _execute(self, **kwargs: Any) -> Any:
        block = bytearray(500 * 1024 * 1024)
        for offset in range(0, len(block), 4096):
            block[offset] = 1
        return len(block)


class Spin(BaseTool):
    name = "spin"
    description = "Burns CPU until stopped."

    def _execute(self, **kwargs: Any) -> Any:
        while True:
            pass


def main() -> None:
    """Record one kill of each kind, print the metrics port, serve until SIGTERM."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    tools = ToolRegistry()
    tools.register_tools([Crash, Allocate, Spin])
    executor = Executor(
        tools,
        ResourceLimits(memory_limit_mb=200, cpu_limit_percent=10),
        runner=ProcessRunner(1, preload=[__name__]),
        store=MetricStore(),
        register_prometheus=False,
    )
    registry = CollectorRegistry()
    context = Context(session_id="kills", user_id="test")
    try:
        for tool, timeout in (("crash", 30.0), ("allocate", 30.0), ("spin", 2.0)):
            task = Task(plan_id="kills", description=tool, tool_name=tool)
            result = executor.execute_task(task, context, timeout=timeout)
            print(f"{tool}: {result.metadata.get('error_type')}", file=sys.stderr, flush=True)
        with start_http_server(0, store=executor.store, registry=registry) as server:
            print(server.port, flush=True)
            while not stop.wait(0.2):
                pass
    finally:
        executor.shutdown(wait=False)
