"""Secrets that overlap in a text leave no part of either behind.

Two secrets may share characters where they meet (``alpha-bravo-charlie`` and
``charlie-delta`` written as ``alpha-bravo-charlie-delta``), one may repeat itself
(``abab-abab`` in ``abab-abab-abab``), and one may lie inside another: every character that
belongs to an occurrence of a secret is replaced, whichever is replaced first.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.redaction import REDACTED, scrub, scrub_head, to_json
from laios.execution.store import MetricStore
from laios.tools.base import BaseTool
from laios.tools.registry import ToolRegistry

FIRST = "alpha-bravo-charlie"
SECOND = "charlie-delta-echo"
#: The two written as one: they share "charlie".
JOINED = "alpha-bravo-charlie-delta-echo"


def leftovers(text: str, secrets: list[str], size: int = 5) -> list[str]:
    """The ``size``-character slices of ``secrets`` found in ``text``."""
    slices = {s[i : i + size] for s in secrets for i in range(len(s) - size + 1)}
    return sorted(piece for piece in slices if piece in text)


@pytest.mark.parametrize("order", [[FIRST, SECOND], [SECOND, FIRST]])
def test_scrub_replaces_two_secrets_that_overlap(order: list[str]) -> None:
    """Two secrets sharing characters where they meet are replaced together."""
    text = f"denied for {JOINED} at once"
    scrubbed = scrub(text, order)
    assert leftovers(scrubbed, order) == []
    assert scrubbed == f"denied for {REDACTED} at once"


def test_scrub_replaces_a_secret_that_overlaps_itself() -> None:
    """A secret that repeats itself in the text leaves none of its characters."""
    secret = "abab-abab"
    assert scrub("x abab-abab-abab y", [secret]) == f"x {REDACTED} y"


def test_scrub_replaces_a_secret_inside_another_and_around_it() -> None:
    """A short secret inside a long one, and a third overlapping the long one's end."""
    secrets = ["sk-live-0123456789", "live-0123", "6789-tail"]
    scrubbed = scrub("a sk-live-0123456789-tail and live-0123 z", secrets)
    assert scrubbed == f"a {REDACTED} and {REDACTED} z"


def test_scrub_does_not_find_a_secret_inside_the_marker() -> None:
    """A secret that is part of ``[REDACTED]`` is not replaced inside the markers."""
    assert scrub("sk-live-0123456789 DACTYL", ["sk-live-0123456789", "DACT"]) == (
        f"{REDACTED} {REDACTED}YL"
    )


@pytest.mark.parametrize("order", [[FIRST, SECOND], [SECOND, FIRST]])
def test_scrub_head_replaces_two_secrets_that_overlap(order: list[str]) -> None:
    """Where text is cut after scrubbing, overlapping secrets leave nothing either."""
    for chars in (12, 20, 40, 200):
        head = scrub_head(f"denied for {JOINED} at once, {JOINED}", order, chars)
        assert leftovers(head, order) == []


def test_captured_values_replace_two_secrets_that_overlap() -> None:
    """A captured string or key quoting both secrets as one keeps no part of either."""
    captured = to_json({"url": f"https://x/?k={JOINED}", JOINED: 1}, secrets=[FIRST, SECOND])
    assert leftovers(captured, [FIRST, SECOND]) == []
    assert json.loads(captured) == {"url": f"https://x/?k={REDACTED}", REDACTED: 1}


class QuotesBoth(BaseTool):
    name = "quotes_both"
    description = "Fails quoting its two credentials written as one."

    def _execute(self, **kwargs: Any) -> Any:
        joined = kwargs["api_key"] + kwargs["token"].removeprefix("charlie")
        raise PermissionError(f"denied for {joined}")


def test_overlapping_secret_parameters_stay_out_of_the_span_and_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Two secret parameters quoted as one in a tool's error reach neither the span nor the
    DEBUG log, in part or whole."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = ToolRegistry()
    registry.register_tool(QuotesBoth)
    caplog.set_level(logging.DEBUG, logger="laios")
    parameters = {"api_key": FIRST, "token": SECOND}
    task = Task(plan_id="p", description="d", tool_name="quotes_both", parameters=parameters)
    with Executor(
        registry, store=MetricStore(), register_prometheus=False, tracer_provider=provider
    ) as executor:
        result = executor.execute_task(task, Context(session_id="s", user_id="u"))
    provider.shutdown()
    assert JOINED in (result.error or "")
    (span,) = exporter.get_finished_spans()
    text = f"{span.status.description} {[dict(e.attributes or {}) for e in span.events]}"
    assert f"denied for {REDACTED}" in text
    assert leftovers(text, [FIRST, SECOND]) == []
    assert leftovers(caplog.text, [FIRST, SECOND]) == []


def test_a_long_run_of_overlapping_occurrences_is_followed_only_as_far_as_the_cut() -> None:
    """A text that is one huge run of a self-overlapping secret costs bounded work where it
    is cut: the run ends the kept text with its marker."""
    text = "0" * 5_000_000 + " tail"
    started = time.thread_time()  # (work done: what a loaded machine does not stretch)
    head = scrub_head(f"pin {text}", ["0000"], 100)
    assert time.thread_time() - started < 2.0
    assert head == f"pin {REDACTED}"
