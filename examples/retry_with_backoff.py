"""Retries with exponential backoff, jitter, a deadline and a custom ``retry_if``.

A flaky tool fails a few times before it works; ``execute_with_retry`` waits longer after each
failure. A second call shows a failure that is not worth retrying (a client error) stopping at
once, and a third shows the deadline cutting retries short. The waits are kept short so that
the script finishes in about a second.

Run it with::

    python examples/retry_with_backoff.py
"""

from __future__ import annotations

import time
from dataclasses import replace
from itertools import pairwise
from typing import Any

from laios import Context, Task, TaskResult
from laios.execution.executor import Executor
from laios.execution.retry import RetryPolicy, default_retry_if
from laios.tools.base import BaseTool, ToolOutput
from laios.tools.registry import ToolRegistry


class FlakyService(BaseTool):
    """Answers 503 for its first ``failures`` calls per key, then 200; 404 for unknown keys."""

    name = "flaky_service"
    description = "Calls a service that is sometimes overloaded."

    def __init__(self) -> None:
        super().__init__()
        self.calls: dict[str, list[float]] = {}

    def _execute(self, **kwargs: Any) -> ToolOutput | str:
        key = kwargs["key"]
        calls = self.calls.setdefault(key, [])
        calls.append(time.monotonic())
        if key.startswith("missing"):
            return ToolOutput(
                success=False, error=f"HTTP 404 for {key}", metadata={"error_type": "http_404"}
            )
        if len(calls) <= int(kwargs.get("failures", 0)):
            return ToolOutput(
                success=False, error="HTTP 503 overloaded", metadata={"error_type": "http_503"}
            )
        return f"value of {key}"


def no_client_errors(result: TaskResult) -> bool:
    """Retry what the default rule retries, except HTTP 4xx answers."""
    if str(result.metadata.get("error_type", "")).startswith("http_4"):
        return False
    return default_retry_if(result)


def gaps(times: list[float]) -> list[float]:
    return [round(later - earlier, 2) for earlier, later in pairwise(times)]


def main() -> None:
    planned = RetryPolicy(retry_delay=0.05, backoff=2, max_delay=0.3)
    jittered = replace(planned, jitter=0.1)
    print("planned waits:", [planned.delay(n) for n in range(1, 6)])
    print("one draw with 10% jitter:", [round(jittered.delay(n), 3) for n in range(1, 6)])

    service = FlakyService()
    registry = ToolRegistry()
    registry.register_tool(service)
    context = Context(session_id="s-1", user_id="u-1")
    options: dict[str, Any] = {"retry_delay": 0.05, "backoff": 2, "max_delay": 0.3, "jitter": 0.1}

    with Executor(registry) as executor:
        flaky = Task(
            plan_id="p",
            description="get a",
            tool_name="flaky_service",
            parameters={"key": "a", "failures": 3},
        )
        result = executor.execute_with_retry(
            flaky, context, max_retries=5, retry_if=no_client_errors, **options
        )
        retries = result.metadata["retries"]
        print(f"flaky: success={result.success} output={result.output!r} retries={retries}")
        print("  seconds between attempts:", gaps(service.calls["a"]))

        missing = Task(
            plan_id="p",
            description="get missing",
            tool_name="flaky_service",
            parameters={"key": "missing-1"},
        )
        result = executor.execute_with_retry(
            missing, context, max_retries=5, retry_if=no_client_errors, **options
        )
        print(
            f"404: error={result.error!r} retries={result.metadata['retries']} (not worth retrying)"
        )

        down = Task(
            plan_id="p",
            description="get b",
            tool_name="flaky_service",
            parameters={"key": "b", "failures": 99},
        )
        started = time.monotonic()
        result = executor.execute_with_retry(down, context, max_retries=10, deadline=0.4, **options)
        print(
            f"deadline: retries={result.metadata['retries']} "
            f"deadline_exceeded={result.metadata.get('retry_deadline_exceeded', False)} "
            f"after {time.monotonic() - started:.2f}s"
        )

        exhausted = Task(
            plan_id="p",
            description="get c",
            tool_name="flaky_service",
            parameters={"key": "c", "failures": 99},
        )
        result = executor.execute_with_retry(exhausted, context, max_retries=2, retry_delay=0.01)
        print(
            f"exhausted: retries={result.metadata['retries']} "
            f"retry_exhausted={result.metadata['retry_exhausted']}"
        )


if __name__ == "__main__":
    main()
