"""A number option given a value too large for a float (an int of 10**400, a Fraction that
large) is refused at the call with an error that names the option and shows the value as
given, briefly: never as the infinity it becomes as a float, nor by its hundreds of digits
(or a ``ValueError`` about int digits, past 4,300 of them)."""

from __future__ import annotations

import re
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from laios.execution.limits import ResourceLimits
from laios.execution.monitor import ProgressStatus, ProgressUpdate

HUGE: list[Any] = [10**400, -(10**400), Fraction(10**400), Fraction(-(10**400)), 10**5000]
IDS = ["int", "negative int", "Fraction", "negative Fraction", "5000 digits"]


def check_message(message: str, name: str) -> None:
    assert name in message, message
    assert not re.search(r"\binf\b", message), message
    assert "digits" not in message, message
    assert "0" * 30 not in message, message
    assert len(message) < 600, message


@pytest.mark.parametrize("value", HUGE, ids=IDS)
@pytest.mark.parametrize("field", ["timeout_seconds", "cpu_limit_percent"])
def test_resource_limits_name_a_number_too_large_for_a_float(field: str, value: Any) -> None:
    with pytest.raises(ValueError) as info:
        ResourceLimits(**{field: value})
    message = str(info.value)
    check_message(message, field)
    assert "too large" in message or "greater than 0" in message, message


@pytest.mark.parametrize("value", HUGE, ids=IDS)
def test_a_progress_update_names_a_percent_too_large_for_a_float(value: Any) -> None:
    with pytest.raises(ValueError) as info:
        ProgressUpdate("t-1", ProgressStatus.IN_PROGRESS, value)
    check_message(str(info.value), "progress_percent")


@pytest.mark.parametrize("value", HUGE, ids=IDS)
def test_a_server_connection_timeout_too_large_is_shown_briefly(value: Any) -> None:
    from laios.execution.server import start_http_server

    with pytest.raises(ValueError) as info:
        start_http_server(0, connection_timeout=value)
    check_message(str(info.value), "connection_timeout")


@pytest.mark.parametrize("value", HUGE, ids=IDS)
def test_a_multiprocess_interval_too_large_is_shown_briefly(value: Any, tmp_path: Path) -> None:
    from laios.execution import multiprocess

    with pytest.raises(ValueError) as info:
        multiprocess.enable(tmp_path, interval=value)
    check_message(str(info.value), "interval")


@pytest.mark.parametrize("value", HUGE, ids=IDS)
def test_a_dask_connect_timeout_too_large_is_shown_briefly(value: Any) -> None:
    pytest.importorskip("distributed")
    from laios.execution.runners import DaskRunner

    make: Callable[..., Any] = DaskRunner
    with pytest.raises(ValueError) as info:
        make("tcp://127.0.0.1:1", connect_timeout=value)
    check_message(str(info.value), "connect_timeout")
