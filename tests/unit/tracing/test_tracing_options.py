"""``Tracing`` (exported from ``laios.execution.tracing``) checks its options as the executor
does: a string for ``capture_content`` would read as true and turn content capture on, and a
value with no ``get_tracer`` is no tracer provider."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from laios.execution.executor import Executor
from laios.execution.tracing import Tracing
from laios.tools.registry import ToolRegistry


@pytest.mark.parametrize("value", ["no", "false", b"0", 0, 1, 0.0])
def test_a_capture_content_that_is_not_a_bool_is_refused(value: Any) -> None:
    with pytest.raises(TypeError, match=r"^capture_content must be None, True or False, got "):
        Tracing(capture_content=value)


@pytest.mark.parametrize("value", ["x", 5, object()])
def test_a_tracer_provider_without_get_tracer_is_refused(value: Any) -> None:
    with pytest.raises(
        TypeError, match=r"^tracer_provider must be an OpenTelemetry TracerProvider, got "
    ):
        Tracing(tracer_provider=value)


def test_a_tracer_provider_class_is_refused() -> None:
    with pytest.raises(TypeError, match=r"^tracer_provider must be an instance, got the class"):
        Tracing(tracer_provider=TracerProvider)  # type: ignore[arg-type]


def test_the_trace_api_module_is_refused_as_a_tracer_provider() -> None:
    """``tracer_provider=trace`` (``from opentelemetry import trace``) passed the check for
    ``get_tracer`` (the module has a function of that name), where ``meter_provider=metrics``
    is refused. It is refused too, by the executor and by ``Tracing``, saying what to pass."""
    wanted = (
        r"^tracer_provider must be an OpenTelemetry TracerProvider, got the module "
        r"opentelemetry\.trace: pass a provider \(an SDK TracerProvider\(\.\.\.\)\), or None "
        r"for the one installed globally$"
    )
    with pytest.raises(TypeError, match=wanted):
        Tracing(tracer_provider=trace)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=wanted):
        Executor(ToolRegistry(), register_prometheus=False, tracer_provider=trace)  # type: ignore[arg-type]


def test_good_options_are_taken() -> None:
    assert Tracing(TracerProvider(), capture_content=True).capture_content is True
    assert Tracing(None, capture_content=False).capture_content is False


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("no", "got str (a string like 'false' would read as true)"),
        (b"0", "got bytes (a string like 'false' would read as true)"),
        (0, "got int"),
        (1.0, "got float"),
        (object(), "got object"),
    ],
)
def test_the_refusal_speaks_of_strings_only_for_a_string(value: Any, said: str) -> None:
    with pytest.raises(TypeError) as raised:
        Tracing(capture_content=value)
    assert str(raised.value) == f"capture_content must be None, True or False, {said}"
