"""The content switch speaks both vocabularies: laios's on/off words and OpenTelemetry's GenAI
capture modes (``NO_CONTENT``, ``SPAN_ONLY``, ``EVENT_ONLY``, ``SPAN_AND_EVENT``).

Task spans are where laios records content, so the modes that put content on spans turn it on
and the others turn it off; an unknown value turns it off with one warning.
"""

from __future__ import annotations

import logging

import pytest

from laios.execution import _logs
from laios.execution.tracing import CAPTURE_CONTENT_ENV, Tracing


@pytest.mark.parametrize(
    ("value", "on"),
    [
        ("true", True),
        ("1", True),
        ("YES", True),
        ("on", True),
        ("false", False),
        ("0", False),
        ("no", False),
        ("off", False),
        ("", False),
        ("SPAN_ONLY", True),
        ("span_only", True),
        ("SPAN_AND_EVENT", True),
        ("EVENT_ONLY", False),
        ("NO_CONTENT", False),
    ],
)
def test_the_switch_reads_both_vocabularies(
    monkeypatch: pytest.MonkeyPatch, value: str, on: bool
) -> None:
    monkeypatch.setenv(CAPTURE_CONTENT_ENV, value)
    assert Tracing().capture_content is on


def test_an_unknown_value_turns_capture_off_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(_logs, "_warned_settings", set())
    monkeypatch.setenv(CAPTURE_CONTENT_ENV, "SPANS_PLEASE")
    with caplog.at_level(logging.WARNING, logger="laios.execution"):
        assert Tracing().capture_content is False
        assert Tracing().capture_content is False
    warnings = [r for r in caplog.records if CAPTURE_CONTENT_ENV in r.getMessage()]
    assert len(warnings) == 1
    assert "SPANS_PLEASE" in warnings[0].getMessage()
