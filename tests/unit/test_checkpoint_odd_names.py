"""A checkpoint whose name or data keys cannot be printed (their ``__str__`` raises) is
recorded all the same: the task's outcome is the tool's, the checkpoint is kept on the record
and as a span, and what cannot be printed is shown by its ``repr`` or a placeholder. So is one
whose data is an odd mapping: one that cannot be read, or a huge one (read only as far as
what is kept)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from checkpoint_runs import run_checkpoint
from opentelemetry.sdk.trace import ReadableSpan

from laios.execution._logs import WarningLimiter


class UnprintableText(str):
    """A string whose ``str()`` raises: its text is only reachable as a plain ``str``."""

    __slots__ = ()

    def __str__(self) -> str:
        raise RuntimeError("no str for you")


class ReprOnly:
    """A hashable key or name whose ``str()`` raises and whose ``repr()`` works (its text
    says nothing secret-looking, so a value under it is kept)."""

    def __str__(self) -> str:
        raise RuntimeError("no str for you")

    def __repr__(self) -> str:
        return "ReprOnly()"


class UnprintableKey:
    """A hashable key whose ``str()`` and ``repr()`` both raise."""

    def __str__(self) -> str:
        raise RuntimeError("no str for you")

    def __repr__(self) -> str:
        raise RuntimeError("no repr either")


def checkpoint_spans(spans: list[ReadableSpan]) -> list[ReadableSpan]:
    """The checkpoint spans among ``spans``."""
    return [span for span in spans if span.name.startswith("checkpoint ")]


@pytest.mark.parametrize(
    ("key", "shown"),
    [
        (UnprintableText("rows"), "rows"),
        (ReprOnly(), "ReprOnly()"),
        (UnprintableKey(), "<unprintable key>"),
    ],
    ids=["str-subclass", "repr-only", "nothing-printable"],
)
def test_a_data_key_that_cannot_be_printed_keeps_the_checkpoint_span(
    key: Any, shown: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The span is recorded with the key shown by its text, its ``repr`` or a placeholder;
    the other keys are kept, and nothing is logged above WARNING (at most one warning)."""
    with caplog.at_level(logging.WARNING, logger="laios"):
        result, _, spans = run_checkpoint("indexed", {key: 3, "plain": "kept"})
    assert result.success, result.error
    (span,) = checkpoint_spans(spans)
    assert span.name == "checkpoint indexed"
    attributes = dict(span.attributes or {})
    assert attributes[f"laios.checkpoint.{shown}"] == 3
    assert attributes["laios.checkpoint.plain"] == "kept"
    assert not [r for r in caplog.records if r.levelno > logging.WARNING]
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) <= 1


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        (UnprintableText("loaded"), "loaded"),
        (ReprOnly(), "ReprOnly()"),
        (UnprintableKey(), "<unprintable name>"),
    ],
    ids=["str-subclass", "repr-only", "nothing-printable"],
)
def test_a_checkpoint_name_that_cannot_be_printed_does_not_fail_the_task(
    name: Any, shown: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The task succeeds; the checkpoint is kept on the record and as a span under the
    name's text, its ``repr`` or a placeholder, with its data."""
    with caplog.at_level(logging.WARNING, logger="laios"):
        result, kept, spans = run_checkpoint(name, {"rows": 3})
    assert result.success, result.error
    assert (shown, {"rows": 3}) in [(point["name"], point["data"]) for point in kept]
    (span,) = checkpoint_spans(spans)
    assert span.name == f"checkpoint {shown}"
    assert dict(span.attributes or {})["laios.checkpoint.rows"] == 3
    assert not [r for r in caplog.records if r.levelno > logging.WARNING]
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) <= 1


class MeasurelessText(str):
    """A string whose ``len()``, indexing and ``str()`` raise: its text is only reachable as a
    plain ``str``."""

    __slots__ = ()

    def __len__(self) -> int:
        raise RuntimeError("no len for you")

    def __getitem__(self, index: Any) -> str:
        raise RuntimeError("no slices for you")

    def __str__(self) -> str:
        raise RuntimeError("no str for you")


@pytest.mark.parametrize("secret", [None, "sk-live-ODD-VALUE-4242"], ids=["plain", "secret"])
def test_a_text_value_that_cannot_be_measured_keeps_the_checkpoint_span(
    secret: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    """A ``str`` subclass value whose ``len()`` or slicing raises is recorded by its text, as
    the record keeps it, and scrubbed of the task's secrets: the span was lost and an internal
    error logged (with its traceback) and counted."""
    parameters = {"api_key": secret} if secret else {}
    value = MeasurelessText(f"token {secret}" if secret else "fine")
    with caplog.at_level(logging.WARNING, logger="laios"):
        result, kept, spans = run_checkpoint("odd value", {"note": value}, parameters)
    assert result.success, result.error
    assert "odd value" in [point["name"] for point in kept]
    (span,) = checkpoint_spans(spans)
    shown = dict(span.attributes or {})["laios.checkpoint.note"]
    assert shown == ("token [REDACTED]" if secret else "fine")
    assert not [r for r in caplog.records if r.levelno > logging.WARNING]


class Unreadable(Mapping[str, Any]):
    """A mapping whose items cannot be read."""

    def __getitem__(self, key: str) -> Any:
        raise KeyError(key)

    def __len__(self) -> int:
        return 3

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("this mapping cannot be read")


class Huge(Mapping[str, int]):
    """A mapping of a million computed items, counting how many were read."""

    def __init__(self) -> None:
        self.read = 0

    def __getitem__(self, key: str) -> int:
        self.read += 1
        return int(key[1:])

    def __len__(self) -> int:
        return 1_000_000

    def __iter__(self) -> Iterator[str]:
        for index in range(1_000_000):
            self.read += 1
            yield f"k{index}"


def test_checkpoint_data_that_cannot_be_read_does_not_fail_a_traced_task() -> None:
    """The record keeps such data described; the checkpoint span, which reads it too, failed
    the task with the mapping's own error (only when traced: untraced, the task succeeded)."""
    result, checkpoints, spans = run_checkpoint("unreadable", Unreadable())
    assert result.success, result.error
    assert "unreadable" in [point["name"] for point in checkpoints]
    assert [span.name for span in checkpoint_spans(spans)] == ["checkpoint unreadable"]


def test_a_huge_checkpoint_mapping_is_read_only_as_far_as_what_is_kept() -> None:
    """The record and the span keep a bounded part of the data; the span path copied the whole
    mapping first (a million items read, for a span that records a few dozen)."""
    data = Huge()
    result, checkpoints, spans = run_checkpoint("huge", data)
    assert result.success, result.error
    assert "huge" in [point["name"] for point in checkpoints]
    (span,) = checkpoint_spans(spans)
    assert span.attributes is not None
    assert span.attributes["laios.checkpoint.k0"] == 0
    assert data.read < 10_000, data.read


def test_a_data_key_that_cannot_be_printed_is_warned_of_under_its_placeholder(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key whose ``str()`` and ``repr()`` raise, over a list (read for secrets it may hold),
    is warned of as recorded under ``<unprintable key>``, not under an empty name."""
    monkeypatch.setattr("laios.execution._records._unprintable_warnings", WarningLimiter())
    with caplog.at_level(logging.WARNING, logger="laios"):
        result, _, spans = run_checkpoint("indexed", {UnprintableKey(): [1, 2]})
    assert result.success, result.error
    assert len(checkpoint_spans(spans)) == 1
    warned = [r.getMessage() for r in caplog.records if "could not be printed" in r.getMessage()]
    assert warned, "no warning of the key"
    assert all("recorded as '<unprintable key>'" in text for text in warned), warned


class StrOnly:
    """A hashable key whose ``repr()`` raises and whose ``str()`` works."""

    def __str__(self) -> str:
        return "str only"

    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


@pytest.mark.parametrize("traced", [True, False], ids=["traced", "untraced"])
@pytest.mark.parametrize(
    ("key", "shown"),
    [(UnprintableKey(), "<unprintable key>"), (StrOnly(), "str only")],
    ids=["nothing-printable", "str-only"],
)
def test_a_data_key_whose_repr_raises_is_recorded_as_its_span_has_it(
    key: Any, shown: str, traced: bool
) -> None:
    """The record kept such a key as ``<UnprintableKey object>`` (the name of its class),
    where its span has ``<unprintable key>``, as the key of a tool on the process runner is
    recorded: the record now has the span's text, its ``str()`` or that placeholder."""
    result, kept, spans = run_checkpoint("indexed", {key: 3, "plain": "kept"}, traced=traced)
    assert result.success, result.error
    (point,) = [point for point in kept if point["name"] == "indexed"]
    assert point["data"] == {shown: 3, "plain": "kept"}
    if traced:
        (span,) = checkpoint_spans(spans)
        assert dict(span.attributes or {})[f"laios.checkpoint.{shown}"] == 3
