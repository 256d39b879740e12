"""Helpers of the reliability suite: controllable tools, polling, threads, exposition, promtool.

The kit tools coordinate with a test through a ``Kit``: they hang until the kit releases them,
poll for cancellation, fail a given number of times, or report what they saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import os
import shutil
import subprocess
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.task_context import require_current_task
from laios.tools.base import AsyncBaseTool, BaseTool, ToolOutput
from laios.tools.registry import ToolRegistry

#: Longest any kit tool blocks, so that a broken test can never hang the run.
MAX_BLOCK_SECONDS = 10.0

#: A context variable of the suite's own, to follow the caller's context into tools.
REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("rel_request_id", default="")


class Kit:
    """Coordinates the kit tools with a test: release hung tools, count calls, see entries."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls: Counter[str] = Counter()
        self.exits: dict[str, float] = {}
        #: How many times a polling tool has read its task's cancellation flag, by task id.
        self.polls: Counter[str] = Counter()
        self.seen: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._entered = 0
        self._entered_ids: set[str] = set()
        self._condition = threading.Condition(self._lock)

    def called(self, tool: str) -> int:
        """Count a call of ``tool``; return how many calls it has had so far."""
        with self._lock:
            self.calls[tool] += 1
            return self.calls[tool]

    def enter(self, task_id: str) -> None:
        """A tool started running ``task_id``."""
        with self._condition:
            self._entered += 1
            self._entered_ids.add(task_id)
            self._condition.notify_all()

    def has_entered(self, task_id: str) -> bool:
        """Whether the tool of ``task_id`` has started."""
        with self._lock:
            return task_id in self._entered_ids

    @property
    def entered(self) -> int:
        """How many tools have started so far."""
        with self._lock:
            return self._entered

    def wait_entered(self, count: int = 1, timeout: float = 20.0) -> bool:
        """Wait until ``count`` tools have started; return whether they did in time (the
        timeout only bounds a failing test: tools start in milliseconds, but on a loaded
        machine eight hung tools, half of them on threads that replace abandoned ones, once
        took longer than 5 s to have all started)."""
        with self._condition:
            return self._condition.wait_for(lambda: self._entered >= count, timeout)

    def poll(self, task_id: str) -> None:
        """A polling tool is about to read its task's cancellation flag."""
        with self._lock:
            self.polls[task_id] += 1

    def exited(self, task_id: str) -> None:
        """A tool is returning now (its exit time is kept)."""
        with self._lock:
            self.exits[task_id] = time.perf_counter()


class _KitTool(BaseTool):
    kit: Kit


class FastTool(_KitTool):
    name = "fast"
    description = "Returns at once."

    def _execute(self, **kwargs: Any) -> Any:
        self.kit.called(self.name)
        return kwargs.get("value", "ok")


class HangTool(_KitTool):
    name = "hang"
    description = "Blocks until the kit releases it, ignoring cancellation."

    def _execute(self, **kwargs: Any) -> Any:
        task = require_current_task()
        self.kit.called(self.name)
        self.kit.enter(task.task_id)
        self.kit.release.wait(MAX_BLOCK_SECONDS)
        self.kit.exited(task.task_id)
        return "late"


class SleepTool(_KitTool):
    name = "sleep"
    description = (
        "Sleeps `seconds` (or until the kit releases it: `until_released`), then reports "
        "progress and a checkpoint (`late_report`)."
    )

    def _execute(self, **kwargs: Any) -> Any:
        task = require_current_task()
        self.kit.called(self.name)
        self.kit.enter(task.task_id)
        if kwargs.get("until_released"):
            self.kit.release.wait(MAX_BLOCK_SECONDS)
        else:
            time.sleep(float(kwargs.get("seconds", 0.0)))
        if kwargs.get("late_report"):
            task.progress(99, "late progress")
            task.checkpoint("late", {"rows": 1})
        self.kit.exited(task.task_id)
        return "slept"


class PollCancelTool(_KitTool):
    name = "poll_cancel"
    description = "Polls cancellation every `interval` s; returns (or raises with `raise`)."

    def _execute(self, **kwargs: Any) -> Any:
        task = require_current_task()
        interval = float(kwargs.get("interval", 0.01))
        self.kit.called(self.name)
        self.kit.enter(task.task_id)
        deadline = time.monotonic() + float(kwargs.get("max_seconds", MAX_BLOCK_SECONDS))
        while time.monotonic() < deadline and not self.kit.release.is_set():
            self.kit.poll(task.task_id)
            if task.cancelled:
                self.kit.exited(task.task_id)
                if kwargs.get("raise"):
                    task.raise_if_cancelled()
                return "stopped early"
            time.sleep(interval)
        self.kit.exited(task.task_id)
        return "ran to the end"


class FailTool(_KitTool):
    name = "fail"
    description = "Returns a failed ToolOutput."

    def _execute(self, **kwargs: Any) -> Any:
        self.kit.called(self.name)
        return ToolOutput(success=False, error=str(kwargs.get("message", "upstream said no")))


class BoomTool(_KitTool):
    name = "boom"
    description = "Raises RuntimeError with `message`."

    def _execute(self, **kwargs: Any) -> Any:
        self.kit.called(self.name)
        raise RuntimeError(kwargs.get("message", "kaboom"))


class _Payload(BaseModel):
    count: int


class InvalidTool(_KitTool):
    name = "invalid"
    description = "Validates its payload itself and finds it invalid (pydantic ValidationError)."

    def _execute(self, **kwargs: Any) -> Any:
        self.kit.called(self.name)
        return _Payload.model_validate({"count": "not a number"})


class TransientTool(_KitTool):
    name = "transient"
    description = "Fails its first `fail_times` calls (per task id), then succeeds."

    def _execute(self, **kwargs: Any) -> Any:
        task = require_current_task()
        attempt = self.kit.called(f"transient:{task.task_id}")
        self.kit.called(self.name)
        if attempt <= int(kwargs.get("fail_times", 2)):
            return ToolOutput(success=False, error=f"transient failure {attempt}")
        return f"succeeded on attempt {attempt}"


class ContextVarTool(_KitTool):
    name = "ctxvar"
    description = "Returns the caller's REQUEST_ID as seen inside the tool."

    def _execute(self, **kwargs: Any) -> Any:
        self.kit.called(self.name)
        return REQUEST_ID.get()


class AsyncContextVarTool(AsyncBaseTool):
    name = "ctxvar_async"
    description = "Awaits once, then returns the caller's REQUEST_ID as seen inside the tool."
    kit: Kit

    async def _execute_async(self, **kwargs: Any) -> Any:
        self.kit.called(self.name)
        await asyncio.sleep(0)
        return REQUEST_ID.get()


KIT_TOOLS: tuple[type[_KitTool] | type[AsyncContextVarTool], ...] = (
    FastTool,
    HangTool,
    SleepTool,
    PollCancelTool,
    FailTool,
    BoomTool,
    InvalidTool,
    TransientTool,
    ContextVarTool,
    AsyncContextVarTool,
)


def build_registry(kit: Kit, extra: tuple[BaseTool, ...] = ()) -> ToolRegistry:
    """A registry of the kit tools (plus ``extra`` tool instances) wired to ``kit``."""
    registry = ToolRegistry()
    for cls in KIT_TOOLS:
        tool = cls()
        tool.kit = kit
        registry.register_tool(tool)
    for tool in extra:
        registry.register_tool(tool)
    return registry


def make_task(tool: str, *, task_id: str | None = None, **parameters: Any) -> Task:
    """A task for ``tool`` with ``parameters`` (and ``task_id`` when given)."""
    fields: dict[str, Any] = {
        "plan_id": "plan-rel",
        "description": f"run {tool}",
        "tool_name": tool,
        "parameters": parameters,
    }
    if task_id is not None:
        fields["id"] = task_id
    return Task(**fields)


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, step: float = 0.002) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes; return its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())


def timed(call: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """Call ``call(*args, **kwargs)``; return its value and the seconds it took."""
    started = time.perf_counter()
    value = call(*args, **kwargs)
    return value, time.perf_counter() - started


@contextlib.contextmanager
def request_id(value: str) -> Iterator[None]:
    """Set ``REQUEST_ID`` to ``value`` for the ``with`` block, then restore it."""
    token = REQUEST_ID.set(value)
    try:
        yield
    finally:
        REQUEST_ID.reset(token)


async def cancel_batch_once_running(
    executor: Executor, tasks: list[Task], ctx: Context, kit: Kit, running: int
) -> None:
    """Start ``execute_parallel(tasks)``, cancel it once ``running`` tools have entered.

    Asserts that they entered in time and that awaiting the batch raises CancelledError.
    """
    batch = asyncio.ensure_future(executor.execute_parallel(tasks, ctx))
    assert await asyncio.to_thread(kit.wait_entered, running)
    batch.cancel()
    with pytest.raises(asyncio.CancelledError):
        await batch


def worker_threads() -> set[threading.Thread]:
    """Live threads started by executors (named ``laios-worker-N``)."""
    return {t for t in threading.enumerate() if t.name.startswith("laios-worker")}


class Background:
    """Runs callables on daemon threads; their results (or exceptions) are kept in order."""

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []

    def start(self, target: Callable[..., Any], *args: Any, **kwargs: Any) -> list[Any]:
        """Run ``target`` on a new thread; return the box its outcome will be appended to.

        The box receives ``("ok", value, seconds)`` or ``("raised", exc, seconds)``.
        """
        box: list[Any] = []

        def run() -> None:
            started = time.perf_counter()
            try:
                value = target(*args, **kwargs)
            except BaseException as exc:  # surfaced to the test through the box
                box.append(("raised", exc, time.perf_counter() - started))
            else:
                box.append(("ok", value, time.perf_counter() - started))

        thread = threading.Thread(target=run, daemon=True)
        self.threads.append(thread)
        thread.start()
        return box

    def join(self, timeout: float = MAX_BLOCK_SECONDS) -> bool:
        """Join every thread; return whether all finished in time."""
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(deadline - time.monotonic(), 0.0))
        return not any(t.is_alive() for t in self.threads)


# -- reading the exposition ----------------------------------------------------------------


def exposition(registry: CollectorRegistry) -> str:
    """The registry's text exposition."""
    return generate_latest(registry).decode("utf-8")


def samples(registry: CollectorRegistry, name: str) -> list[tuple[dict[str, str], float]]:
    """Every sample called ``name`` in the text exposition, as ``(labels, value)``."""
    found = []
    for family in text_string_to_metric_families(exposition(registry)):
        for sample in family.samples:
            if sample.name == name:
                found.append((dict(sample.labels), float(sample.value)))
    return found


def sample_sum(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels``."""
    return sum(
        value
        for sample_labels, value in samples(registry, name)
        if all(sample_labels.get(k) == v for k, v in labels.items())
    )


def http_get(url: str, accept: str | None = None, timeout: float = 5.0) -> tuple[int, str]:
    """GET ``url``; return the status code and the body as text."""
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, response.read().decode("utf-8")


def strict_json(text: str) -> Any:
    """Parse JSON, refusing the non-standard constants NaN and Infinity."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


# -- promtool ------------------------------------------------------------------------------


def promtool_path() -> str:
    """``promtool``'s path; skip without it unless LAIOS_REQUIRE_PROMETHEUS=1 (then fail)."""
    path = shutil.which("promtool") or (
        "/usr/bin/promtool" if os.path.exists("/usr/bin/promtool") else None
    )
    if path is not None:
        return path
    reason = "promtool is not installed (Debian: apt-get install prometheus)"
    if os.environ.get("LAIOS_REQUIRE_PROMETHEUS") == "1":
        pytest.fail(f"{reason}, and LAIOS_REQUIRE_PROMETHEUS=1 requires it")
    pytest.skip(reason)


def promtool_check(text: str) -> str:
    """Run ``promtool check metrics`` on ``text``; return what it printed (empty when clean)."""
    result = subprocess.run(
        [promtool_path(), "check", "metrics"],
        input=text.encode("utf-8"),
        capture_output=True,
        timeout=60,
        check=False,
    )
    output = (result.stdout + result.stderr).decode("utf-8", "replace")
    return output + (f"(exit {result.returncode})" if result.returncode else "")


def span_text(span: ReadableSpan) -> str:
    """Everything a span carries, as text: name, status, attributes, events and theirs."""
    parts = [span.name, str(span.status.description)]
    parts += [f"{k}={v}" for k, v in (span.attributes or {}).items()]
    for event in span.events:
        parts.append(event.name)
        parts += [f"{k}={v}" for k, v in (event.attributes or {}).items()]
    return "\n".join(parts)


def logs_text(records: list[logging.LogRecord]) -> str:
    """Everything log records carry, as text: messages, tracebacks and stacks."""
    formatter = logging.Formatter()
    parts = []
    for record in records:
        parts.append(record.getMessage())
        if record.exc_info:
            parts.append(formatter.formatException(record.exc_info))
        if record.stack_info:
            parts.append(record.stack_info)
    return "\n".join(parts)
