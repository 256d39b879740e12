"""The refusal of a ``retry_if`` or ``on_retry`` that cannot be called as it will be: one
error for both, a ``TypeError`` and a ``ValueError`` alike, saying the signature expected."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

import laios.execution
from laios.core.types import Context, Task, TaskResult
from laios.execution import retry
from laios.execution.executor import Executor
from laios.execution.retry import RetryPolicy

#: The signature each option is called with, as its refusal says it.
EXPECTED = {
    "retry_if": "retry_if(result: TaskResult) -> bool",
    "on_retry": "on_retry(details: RetryDetails) -> None",
}


async def _async_callback(argument: Any) -> bool:
    return False


def _generator_callback(argument: Any) -> Any:
    yield False


def _two(argument: Any, extra: Any) -> bool:
    return False


BAD = {
    "not-callable": 7,
    "async-def": _async_callback,
    "generator": _generator_callback,
    "two-parameters": _two,
}


def _retry(executor: Executor, task: Task, context: Context, mode: str, **options: Any) -> Any:
    if mode == "blocking":
        return executor.execute_with_retry(task, context, **options)
    return asyncio.run(executor.execute_with_retry_async(task, context, **options))


def test_the_error_is_exported_and_is_both_a_type_and_a_value_error() -> None:
    """``InvalidCallbackError`` is public (``laios.execution.retry`` and
    ``laios.execution``), and a ``TypeError`` and a ``ValueError`` at once: an
    ``except ValueError`` written for ``retry_if`` and an ``except TypeError`` written for
    ``on_retry`` both keep catching it."""
    error = retry.InvalidCallbackError
    assert "InvalidCallbackError" in retry.__all__
    assert laios.execution.InvalidCallbackError is error
    assert "InvalidCallbackError" in laios.execution.__all__
    assert issubclass(error, TypeError)
    assert issubclass(error, ValueError)


@pytest.mark.parametrize("mode", ["blocking", "async"])
@pytest.mark.parametrize("bad", list(BAD), ids=list(BAD))
@pytest.mark.parametrize("option", ["retry_if", "on_retry"])
def test_both_callbacks_are_refused_with_the_same_error_type(
    executor: Executor,
    make_task: Callable[..., Task],
    context: Context,
    calls: list[Any],
    mode: str,
    bad: str,
    option: str,
) -> None:
    """A ``retry_if`` was refused as a ``ValueError``, an ``on_retry`` of the same kind of
    mistake as a ``TypeError``: a caller handling one missed the other. Both are an
    ``InvalidCallbackError`` now, the error quoting the signature expected; nothing runs."""
    result = _retry(executor, make_task("fail"), context, mode, retry_delay=0, **{option: BAD[bad]})
    assert result.metadata["outcome"] == "rejected"
    assert result.metadata["error_type"] == "InvalidCallbackError", result.error
    assert result.metadata["retries"] == 0
    assert result.error is not None
    assert result.error.startswith(f"{option} must be ")
    assert EXPECTED[option] in result.error
    assert calls == []


@pytest.mark.parametrize("bad", list(BAD), ids=list(BAD))
def test_retry_policy_raises_it_and_old_handlers_still_catch_it(bad: str) -> None:
    """``RetryPolicy(retry_if=...)`` raises ``InvalidCallbackError``, caught by
    ``except ValueError`` (what it raised before) and by ``except TypeError``."""
    with pytest.raises(retry.InvalidCallbackError) as raised:
        RetryPolicy(retry_if=BAD[bad])
    assert EXPECTED["retry_if"] in str(raised.value)
    with pytest.raises(ValueError, match=r"^retry_if must be "):
        RetryPolicy(retry_if=BAD[bad])
    with pytest.raises(TypeError, match=r"^retry_if must be "):
        RetryPolicy(retry_if=BAD[bad])


def test_values_out_of_range_are_still_plain_value_errors() -> None:
    """Only a callback's refusal changed: a bad number stays a plain ``ValueError``."""
    with pytest.raises(ValueError, match="jitter") as raised:
        RetryPolicy(jitter=2)
    assert type(raised.value) is ValueError


def test_a_good_retry_if_is_accepted(
    executor: Executor, make_task: Callable[..., Task], context: Context
) -> None:
    def never(result: TaskResult) -> bool:
        return False

    result = executor.execute_with_retry(make_task("fail"), context, retry_if=never)
    assert result.metadata["outcome"] == "error"
    assert result.metadata["retries"] == 0
