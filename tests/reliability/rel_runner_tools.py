"""The tools of the every-runner suite (``test_rel_every_runner``), as every road runs them.

A module of its own, as ``behaviour_lab`` (``tests/unit``) is, because the process and dask
roads pickle each tool and send it to a worker process, which must import the tool's class
(and the classes of what the tool raises or returns). Each tool comes twice, as ``beh_<name>``
(a ``BaseTool``) and ``beh_<name>_async`` (an ``AsyncBaseTool``, awaiting between its steps),
so that a road's ``task(name)`` picks its own kind. Every tool first calls ``lab.enter()``
(where it ran), and a tool that must be held uses the lab's gate (files, seen from every
process).

Tools that call back into their executor (``reenter``, ``shuts``) hold it as ``executor``:
such a tool cannot be sent to a worker process (an executor cannot be pickled).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from behaviour_lab import MAX_BLOCK_SECONDS, POLL, AsyncSlow, Lab, SyncSlow
from pydantic import BaseModel

from laios.core.types import Context, Task
from laios.execution.task_context import TaskContext
from laios.tools.base import AsyncBaseTool, BaseTool, ToolOutput

__all__ = [
    "EVERY_RUNNER_TOOLS",
    "INNER_TIMEOUT",
    "ApiError",
    "Creds",
    "CredsModel",
    "HostileMapping",
    "OddlyNamedError",
    "long_named_tools",
]

#: The timeout of the calls a tool makes on its own executor (a deadlock waits this long).
INNER_TIMEOUT = 5.0
#: Rows of the result of ``big_result``: each the same list of 1,000 ints, so that the
#: result has ``rows × 1,000`` items to walk but pickles in a few kilobytes (pickle sends the
#: shared row once).
BIG_ROWS = 10_000


class ApiError(Exception):
    """An exception whose ``__str__`` returns a number, as some client libraries' do."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code

    def __str__(self) -> str:
        return self.code  # type: ignore[return-value]


class HostileMapping(Mapping[str, Any]):
    """A mapping whose iteration raises (it pickles: it has no state)."""

    def __getitem__(self, key: str) -> Any:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("this mapping cannot be walked")

    def __len__(self) -> int:
        return 1


class OddlyNamedError(Exception):
    """An exception whose class name is not a safe ``error_type`` (renamed below); pickle
    cannot find the class by that name, so it cannot come back from a worker process."""


OddlyNamedError.__name__ = OddlyNamedError.__qualname__ = "Odd Name\n" + "x" * 500


@dataclass
class Creds:
    """Credentials as a dataclass parameter (its ``repr`` shows the key)."""

    api_key: str
    region: str = "eu"


class CredsModel(BaseModel):
    """Credentials as a pydantic model parameter (its ``repr`` shows the key)."""

    api_key: str
    region: str = "eu"


def _task(tool: str, **parameters: Any) -> Task:
    return Task(plan_id="plan-1", description=f"run {tool}", tool_name=tool, parameters=parameters)


class _Sync(BaseTool):
    lab: Lab

    def _execute(self, **kwargs: Any) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError


class _Async(AsyncBaseTool):
    lab: Lab

    async def _execute_async(self, **kwargs: Any) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def enter(self) -> TaskContext:
        return self.lab.enter(asyncio.get_running_loop())


# -- what tools raise and return ------------------------------------------------------------


class SyncApiError(_Sync):
    name = "beh_api_error"
    description = "Raises an ApiError whose message is not text."

    def _execute(self, **kwargs: Any) -> Any:
        self.lab.enter()
        raise ApiError(503)


class AsyncApiError(_Async):
    name = "beh_api_error_async"
    description = "Raises an ApiError whose message is not text (after awaiting)."

    async def _execute_async(self, **kwargs: Any) -> Any:
        self.enter()
        await asyncio.sleep(0)
        raise ApiError(503)


class SyncValueError(_Sync):
    name = "beh_value_error"
    description = "Raises ValueError('the tool failed')."

    def _execute(self, **kwargs: Any) -> Any:
        self.lab.enter()
        raise ValueError("the tool failed")


class AsyncValueError(_Async):
    name = "beh_value_error_async"
    description = "Raises ValueError('the tool failed') (after awaiting)."

    async def _execute_async(self, **kwargs: Any) -> Any:
        self.enter()
        await asyncio.sleep(0)
        raise ValueError("the tool failed")


class SyncHostileResult(_Sync):
    name = "beh_hostile_result"
    description = "Returns a HostileMapping (a mapping whose iteration raises)."

    def _execute(self, **kwargs: Any) -> Any:
        self.lab.enter()
        return HostileMapping()


class AsyncHostileResult(_Async):
    name = "beh_hostile_result_async"
    description = "Returns a HostileMapping (after awaiting)."

    async def _execute_async(self, **kwargs: Any) -> Any:
        self.enter()
        await asyncio.sleep(0)
        return HostileMapping()


class SyncBigResult(_Sync):
    name = "beh_big_result"
    description = "Returns BIG_ROWS rows of the same 1,000 ints."

    def _execute(self, **kwargs: Any) -> Any:
        self.lab.enter()
        return [list(range(1000))] * BIG_ROWS


class AsyncBigResult(_Async):
    name = "beh_big_result_async"
    description = "Returns BIG_ROWS rows of the same 1,000 ints (after awaiting)."

    async def _execute_async(self, **kwargs: Any) -> Any:
        self.enter()
        await asyncio.sleep(0)
        return [list(range(1000))] * BIG_ROWS


class SyncChooser(_Sync):
    name = "beh_chooser"
    description = "Fails with the error_type it is given."

    def _execute(self, **kwargs: Any) -> Any:
        self.lab.enter()
        return ToolOutput(
            success=False, error="it failed", metadata={"error_type": kwargs["error_type"]}
        )


class AsyncChooser(_Async):
    name = "beh_chooser_async"
    description = "Fails with the error_type it is given (after awaiting)."

    async def _execute_async(self, **kwargs: Any) -> Any:
        self.enter()
        await asyncio.sleep(0)
        return ToolOutput(
            success=False, error="it failed", metadata={"error_type": kwargs["error_type"]}
        )


class SyncOddRaise(_Sync):
    name = "beh_odd_raise"
    description = "Raises an OddlyNamedError."

    def _execute(self, **kwargs: Any) -> Any:
        self.lab.enter()
        raise OddlyNamedError("odd")


class AsyncOddRaise(_Async):
    name = "beh_odd_raise_async"
    description = "Raises an OddlyNamedError (after awaiting)."

    async def _execute_async(self, **kwargs: Any) -> Any:
        self.enter()
        await asyncio.sleep(0)
        raise OddlyNamedError("odd")


class SyncBlobs(_Sync):
    name = "beh_blobs"
    description = "Adds a checkpoint and reports progress, each with a 100 kB bytearray."

    def _execute(self, **kwargs: Any) -> Any:
        task = self.lab.enter()
        task.checkpoint("blob", {"blob": bytearray(100_000)})
        task.progress(50, "blob", blob=bytearray(100_000))
        return "ok"


class AsyncBlobs(_Async):
    name = "beh_blobs_async"
    description = "Adds a checkpoint and reports progress, each with a 100 kB bytearray."

    async def _execute_async(self, **kwargs: Any) -> Any:
        task = self.enter()
        task.checkpoint("blob", {"blob": bytearray(100_000)})
        await asyncio.sleep(0)
        task.progress(50, "blob", blob=bytearray(100_000))
        return "ok"


# -- secrets --------------------------------------------------------------------------------


class SyncReveal(_Sync):
    name = "beh_reveal"
    description = (
        "Quotes its `reveal` text in progress and a checkpoint, waits at the gate, then fails "
        "quoting it (raised, or a failed ToolOutput when `how` is 'output')."
    )

    def _execute(self, **kwargs: Any) -> Any:
        task = self.lab.enter()
        text = kwargs["reveal"]
        task.progress(10, f"working with {text}")
        task.checkpoint("request", {"note": f"sent {text}"})
        self.lab.gate.enter()
        self.lab.gate.release.wait(MAX_BLOCK_SECONDS)
        if kwargs["how"] == "output":
            return ToolOutput(success=False, error=f"refused: {text}")
        raise RuntimeError(f"upstream refused {text}")


class AsyncReveal(_Async):
    name = "beh_reveal_async"
    description = "As beh_reveal, awaiting at the gate."

    async def _execute_async(self, **kwargs: Any) -> Any:
        task = self.enter()
        text = kwargs["reveal"]
        task.progress(10, f"working with {text}")
        task.checkpoint("request", {"note": f"sent {text}"})
        self.lab.gate.enter()
        deadline = time.monotonic() + MAX_BLOCK_SECONDS
        while time.monotonic() < deadline and not self.lab.released():
            await asyncio.sleep(POLL)
        if kwargs["how"] == "output":
            return ToolOutput(success=False, error=f"refused: {text}")
        raise RuntimeError(f"upstream refused {text}")


# -- calling back into the executor ---------------------------------------------------------


class SyncReenter(_Sync):
    name = "beh_reenter"
    description = "Runs an echo task (with a timeout) and a batch of two on its own executor."
    executor: Any
    context: Context

    def _execute(self, **kwargs: Any) -> Any:
        self.lab.enter()
        one = self.executor.execute_task(
            _task("beh_echo", text="one"), self.context, timeout=INNER_TIMEOUT
        )
        batch = asyncio.run(
            self.executor.execute_parallel(
                [_task("beh_echo", text=text) for text in ("a", "b")],
                self.context,
                timeout=INNER_TIMEOUT,
            )
        )
        return {
            "outputs": [one.output, [r.output for r in batch]],
            "errors": [one.error, *(r.error for r in batch)],
        }


class AsyncReenter(_Async):
    name = "beh_reenter_async"
    description = "Awaits an echo task and a batch of two on its own executor."
    executor: Any
    context: Context

    async def _execute_async(self, **kwargs: Any) -> Any:
        self.enter()
        one = await self.executor.execute_async(
            _task("beh_echo_async", text="one"), self.context, timeout=INNER_TIMEOUT
        )
        batch = await self.executor.execute_parallel(
            [_task("beh_echo_async", text=text) for text in ("a", "b")],
            self.context,
            timeout=INNER_TIMEOUT,
        )
        return {
            "outputs": [one.output, [r.output for r in batch]],
            "errors": [one.error, *(r.error for r in batch)],
        }


class SyncShuts(_Sync):
    name = "beh_shuts"
    description = "Waits until two tools entered the gate, then shuts its executor down, waiting."
    executor: Any

    def _execute(self, **kwargs: Any) -> Any:
        self.lab.enter()
        self.lab.gate.enter()
        self.lab.gate.wait_entered(2, MAX_BLOCK_SECONDS)
        self.executor.shutdown(wait=True)
        return "shut down"


class AsyncShuts(_Async):
    name = "beh_shuts_async"
    description = "Awaits until two tools entered the gate, then shuts its executor down, waiting."
    executor: Any

    async def _execute_async(self, **kwargs: Any) -> Any:
        self.enter()
        self.lab.gate.enter()
        deadline = time.monotonic() + MAX_BLOCK_SECONDS
        while self.lab.gate.entered < 2 and time.monotonic() < deadline:
            await asyncio.sleep(POLL)
        self.executor.shutdown(wait=True)
        await asyncio.sleep(0)  # (the loop it runs on still runs it)
        return "shut down"


#: The name ``long_named_tools`` gives the slow tools: ``beh_<LONG_NAME>`` (5,000 characters).
LONG_NAME = "long" + "n" * 4996


def long_named_tools() -> tuple[BaseTool, BaseTool]:
    """The lab's slow tools (held at the gate) under 5,000-character names."""
    sync_tool, async_tool = SyncSlow(), AsyncSlow()
    sync_tool.name = f"beh_{LONG_NAME}"
    async_tool.name = f"beh_{LONG_NAME}_async"
    return sync_tool, async_tool


EVERY_RUNNER_TOOLS: tuple[type[BaseTool], ...] = (
    SyncApiError,
    AsyncApiError,
    SyncValueError,
    AsyncValueError,
    SyncHostileResult,
    AsyncHostileResult,
    SyncBigResult,
    AsyncBigResult,
    SyncChooser,
    AsyncChooser,
    SyncOddRaise,
    AsyncOddRaise,
    SyncBlobs,
    AsyncBlobs,
    SyncReveal,
    AsyncReveal,
    SyncReenter,
    AsyncReenter,
    SyncShuts,
    AsyncShuts,
)
