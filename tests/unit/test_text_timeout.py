"""A per-call ``timeout`` written as text (``"30"``) is taken as ``ResourceLimits`` takes its
``timeout_seconds``: converted to the number it spells, then checked as that number."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from laios.core.types import Context
from laios.execution.executor import Executor, ResourceLimits


class _OddText(str):
    """Text whose comparisons and hash say nothing about its characters."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return False

    def __ne__(self, other: object) -> bool:
        return True

    def __hash__(self) -> int:
        raise TypeError("unhashable text")


@pytest.mark.parametrize("text", ["5", " 5 ", "5e0", "+5", _OddText("5")])
def test_a_timeout_written_as_text_runs_the_task(
    executor: Executor,
    make_task: Any,
    context: Context,
    run_via: Any,
    run_mode: str,
    text: str,
) -> None:
    """execute_task, execute_async, execute_parallel and execute_with_retry take
    ``timeout="5"`` as 5 seconds, as ResourceLimits(timeout_seconds="5") does."""
    assert ResourceLimits(timeout_seconds=text).timeout_seconds == 5.0
    result = run_via(executor, run_mode, make_task("echo", text="x"), context, timeout=text)
    assert result.metadata["outcome"] == "success", result.error
    assert result.success is True


def test_a_timeout_written_as_text_is_enforced(
    executor: Executor, make_task: Any, context: Context
) -> None:
    """The number the text spells is the timeout the task is held to."""
    result = executor.execute_task(make_task("blocked"), context, timeout="0.2")  # type: ignore[arg-type]
    assert result.metadata["outcome"] == "timeout", result.error
    assert "0.2" in (result.error or "")


def test_a_text_timeout_is_cut_by_the_retry_deadline(
    executor: Executor, make_task: Any, context: Context
) -> None:
    """execute_with_retry with a text timeout and a deadline compares the two as numbers:
    the attempt times out at its own timeout, well inside the deadline."""
    result = executor.execute_with_retry(
        make_task("blocked"),
        context,
        max_retries=0,
        timeout="0.2",  # type: ignore[arg-type]
        deadline=60,
    )
    assert result.metadata["outcome"] == "timeout", result.error


def test_a_text_timeout_is_taken_by_the_async_retry(
    executor: Executor, make_task: Any, context: Context
) -> None:
    """execute_with_retry_async takes a text timeout too, also under a deadline."""
    result = asyncio.run(
        executor.execute_with_retry_async(
            make_task("echo", text="x"),
            context,
            timeout="5",  # type: ignore[arg-type]
            deadline=60,
        )
    )
    assert result.metadata["outcome"] == "success", result.error


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("-1", "timeout must be more than 0 seconds, got '-1'"),
        ("0", "timeout must be more than 0 seconds, got '0'"),
        ("nan", "timeout must be more than 0 seconds, got 'nan'"),
        ("thirty", "timeout must be a real number of seconds, got 'thirty'"),
        ("", "timeout must be a real number of seconds, got ''"),
        ("30s", "timeout must be a real number of seconds, got '30s'"),
    ],
)
def test_text_that_is_no_valid_timeout_is_refused_naming_it(
    executor: Executor,
    make_task: Any,
    context: Context,
    run_via: Any,
    run_mode: str,
    calls: list[Any],
    text: str,
    says: str,
) -> None:
    """Text ResourceLimits would refuse as a timeout is refused per call too, the error quoting
    it as given; the tool is never called."""
    with pytest.raises(ValueError, match="timeout_seconds"):
        ResourceLimits(timeout_seconds=text)
    result = run_via(executor, run_mode, make_task("echo", text="x"), context, timeout=text)
    assert result.metadata["outcome"] == "rejected"
    assert result.metadata["error_type"] == "ValueError"
    assert (result.error or "").startswith(says), result.error
    assert calls == []
