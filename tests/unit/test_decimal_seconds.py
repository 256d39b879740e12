"""A ``Decimal`` given for a number of seconds is refused, as everywhere in the package, with
the error saying how to pass it (``float(value)``) instead of only that it is no real number."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.retry import RetryPolicy
from laios.execution.store import MetricStore
from laios.tools.base import create_simple_tool
from laios.tools.registry import ToolRegistry

CONTEXT = Context(session_id="s", user_id="u")


@pytest.fixture
def executor() -> Executor:
    registry = ToolRegistry()
    registry.register_tool(create_simple_tool("work", "Works.", lambda: "ok"))
    with Executor(registry, store=MetricStore(), register_prometheus=False) as executor:
        yield executor


def _task() -> Task:
    return Task(plan_id="p", description="d", tool_name="work")


def test_a_decimal_timeout_is_refused_saying_to_pass_float(executor: Executor) -> None:
    """execute_task(timeout=Decimal) is rejected, its error saying to pass float(value)."""
    result = executor.execute_task(_task(), CONTEXT, timeout=Decimal("1.5"))
    assert not result.success
    assert result.metadata["outcome"] == "rejected"
    assert result.metadata["error_type"] == "ValueError"
    assert result.error is not None
    assert "Decimal('1.5')" in result.error
    assert "pass float(value)" in result.error


def test_a_decimal_retry_delay_is_refused_saying_to_pass_float(executor: Executor) -> None:
    """execute_with_retry(retry_delay=Decimal) is rejected, its error saying to pass
    float(value)."""
    result = executor.execute_with_retry(_task(), CONTEXT, retry_delay=Decimal("0.1"))
    assert result.metadata["outcome"] == "rejected"
    assert result.error is not None
    assert "retry_delay" in result.error
    assert "pass float(value)" in result.error


@pytest.mark.parametrize("name", ["retry_delay", "backoff", "max_delay", "jitter", "deadline"])
def test_a_decimal_retry_option_says_to_pass_float(name: str) -> None:
    """Every number of a RetryPolicy refuses a Decimal saying to pass float(value)."""
    with pytest.raises(ValueError, match=rf"^{name} must be a real number, .*pass float\(value\)"):
        RetryPolicy(**{name: Decimal("0.5")})


def test_a_string_timeout_gets_no_conversion_hint(executor: Executor) -> None:
    """A value that is no number at all is not told to go through float()."""
    result = executor.execute_task(_task(), CONTEXT, timeout="1.5 s")  # type: ignore[arg-type]
    assert result.metadata["outcome"] == "rejected"
    assert result.error is not None
    assert "float(value)" not in result.error


def test_a_decimal_connection_timeout_says_to_pass_float() -> None:
    """start_http_server(connection_timeout=Decimal) says to pass float(value)."""
    from laios.execution.server import start_http_server

    with pytest.raises(TypeError, match=r"connection_timeout .*pass float\(value\)"):
        start_http_server(0, connection_timeout=Decimal("5"))  # type: ignore[arg-type]


def test_a_decimal_multiprocess_interval_says_to_pass_float(tmp_path: Path) -> None:
    """multiprocess.enable(interval=Decimal) says to pass float(value)."""
    from laios.execution import multiprocess

    with pytest.raises(TypeError, match=r"interval .*pass float\(value\)"):
        multiprocess.enable(tmp_path, interval=Decimal("5"))  # type: ignore[arg-type]
