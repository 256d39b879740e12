"""A secret quoted only in part, its last characters, is scrubbed too.

A tool may name a key by its end (``key ending …WXYZ-0123456789 was revoked``), and a text may
have been cut at the front inside a secret (a log line kept from its end). Any suffix of a
secret of at least ``MIN_PREFIX_CHARS`` characters is replaced wherever it occurs, as a prefix
of it is; a shorter one is kept (it would mangle ordinary words).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest
from secret_runs import failed_run_text, statuses_at_progress, traced_run

from laios.execution.redaction import (
    MIN_PREFIX_CHARS,
    REDACTED,
    SecretForms,
    redact,
    scrub,
    scrub_head,
    to_json,
)
from laios.execution.task_context import require_current_task
from laios.tools.base import BaseTool

SECRET = "sk-live-ABCDEFGHIJKLMNOPQRSTUVWXYZ-0123456789"


def suffixes_left(text: str, secret: str = SECRET) -> list[str]:
    """The suffixes of ``secret`` of ``MIN_PREFIX_CHARS`` characters or more found in
    ``text``."""
    return [secret[-n:] for n in range(MIN_PREFIX_CHARS, len(secret) + 1) if secret[-n:] in text]


@pytest.mark.parametrize("size", [MIN_PREFIX_CHARS, 12, 20, len(SECRET) - 1])
def test_scrub_replaces_a_suffix_of_a_secret(size: int) -> None:
    """A tool naming its key by its last characters, or a message cut at the front."""
    quoted = f"key ending …{SECRET[-size:]} was revoked"
    assert scrub(quoted, [SECRET]) == f"key ending …{REDACTED} was revoked"
    cut = f"{SECRET[-size:]} was refused"
    assert scrub(cut, [SECRET]) == f"{REDACTED} was refused"
    assert scrub(cut, SecretForms([SECRET])) == f"{REDACTED} was refused"


@pytest.mark.parametrize("size", [MIN_PREFIX_CHARS, 12, len(SECRET) - 1])
def test_scrub_head_and_redact_replace_a_suffix_of_a_secret(size: int) -> None:
    """The head scrub (progress messages, checkpoint values) and captured values too."""
    quoted = f"key ending …{SECRET[-size:]} was revoked"
    expected = f"key ending …{REDACTED} was revoked"
    assert scrub_head(quoted, [SECRET], 200) == expected
    assert scrub_head(quoted, SecretForms([SECRET]), 200) == expected
    assert redact({"note": quoted}, [SECRET]) == {"note": expected}
    named = f"sent …{SECRET[-size:]}"  # (a key: "token" would make its value secret)
    assert json.loads(to_json({named: 1}, secrets=[SECRET])) == {f"sent …{REDACTED}": 1}


def test_a_suffix_of_an_encoded_form_is_replaced() -> None:
    """The last characters of the URL-encoded or JSON-escaped secret are its suffix too."""
    secret = "more spaces and a p@ss/word"
    for written in ("and%20a%20p%40ss%2Fword", "a%20p%40ss/word", "and+a+p%40ss%2Fword"):
        assert suffixes_left(scrub(f"url ?k=…{written}", [secret]), written) == []
        assert suffixes_left(scrub_head(f"url ?k=…{written}", [secret], 100), written) == []


def test_a_suffix_shorter_than_the_minimum_is_kept() -> None:
    """Below ``MIN_PREFIX_CHARS`` the end of a secret is ordinary text."""
    short = SECRET[-(MIN_PREFIX_CHARS - 1) :]
    assert scrub(f"keys end like …{short}", [SECRET]) == f"keys end like …{short}"
    assert scrub_head(f"keys end like …{short}", [SECRET], 100) == f"keys end like …{short}"
    # A secret no longer than the minimum is replaced only whole.
    assert scrub("bcdefgh and abcdefgh", ["abcdefgh"]) == f"bcdefgh and {REDACTED}"


def test_a_long_secret_repeating_itself_is_scrubbed_of_its_suffixes_promptly() -> None:
    """A text that repeats a secret made of one character, or of a few, ends a suffix of it at
    every place: each is not measured against the whole secret in turn."""
    for secret in ("y" * 256, "xy" * 128, "abc" * 85):
        for text in (
            secret,
            secret[0] * 200_000,
            secret * 800,
            f"a{secret[len(secret) // 2 :]}b{secret}c",
            f"{secret[1:]}!" * 400,
        ):
            started = time.thread_time()
            scrubbed = scrub(text, [secret])
            head = scrub_head(text, SecretForms([secret]), 300)
            assert time.thread_time() - started < 5.0
            assert suffixes_left(scrubbed, secret) == []
            assert suffixes_left(head, secret) == []


def test_the_address_of_a_secret_url_is_not_a_suffix_to_scrub() -> None:
    """A connection string's host, port and path (after its user information) are no part of
    its secret: errors naming the database stay readable, while a suffix that reaches back
    into the password is still replaced."""
    dsn = "postgres://app:s3cret-pass@db.internal:5432/orders"
    text = "could not reach db.internal:5432/orders: timed out"
    for forms in ([dsn], SecretForms([dsn])):
        assert scrub(text, forms) == text
        assert scrub_head(text, forms, 200) == text
    sentry = "https://0123456789abcdef@o42.ingest.sentry.io/7"
    text = "POST o42.ingest.sentry.io/7 failed"
    assert scrub(text, [sentry]) == text
    assert scrub_head(text, [sentry], 200) == text
    for written in ("et-pass@db.internal:5432/orders", "@db.internal:5432/orders"):
        quoted = f"login …{written} refused"
        assert scrub(quoted, [dsn]) == f"login …{REDACTED} refused"
        assert scrub_head(quoted, [dsn], 200) == f"login …{REDACTED} refused"
    # A URL without user information: its end is its secret (a webhook's path).
    hook = "https://hooks.example.com/services/T000/B000/XXXXXXXXXXXXXXXX"
    assert scrub("posted to …/B000/XXXXXXXXXXXXXXXX", [hook]) == f"posted to …{REDACTED}"


def test_suffixes_next_to_each_other_to_prefixes_and_to_the_whole_secret_are_replaced() -> None:
    text = f"{SECRET[-10:]}{SECRET} {SECRET}{SECRET[-9:]}! {SECRET[-12:]}{SECRET[:12]}."
    for scrubbed in (scrub(text, [SECRET]), scrub_head(text, [SECRET], 500)):
        assert suffixes_left(scrubbed) == []
        assert SECRET[:MIN_PREFIX_CHARS] not in scrubbed
        # (occurrences that meet without sharing characters: one marker each)
        twice = REDACTED * 2
        assert scrubbed == f"{twice} {twice}! {twice}."
    periodic = "XYZ-abcd-abcd-abcd-abcd"
    text = "abcd-abcd-abcd-abcd-abcd-abcd-abcd-abcd"
    assert scrub(f"<{text}>", [periodic]) == f"<{REDACTED}>"
    assert scrub_head(f"<{text}>", [periodic], 100) == f"<{REDACTED}>"


def test_a_scrub_head_cut_keeps_no_suffix_after_its_marker() -> None:
    """Text kept after a replaced suffix, up to the cut, holds none of the secret."""
    text = f"a {SECRET[-20:]} b {SECRET[-9:]} c " + "z" * 100
    head = scrub_head(text, [SECRET], 30)
    assert head.startswith(f"a {REDACTED} b {REDACTED} c ")
    assert suffixes_left(head) == []


class QuotesASuffix(BaseTool):
    name = "quotes_a_suffix"
    description = "Quotes the last characters of its key in its progress, checkpoint, error."

    def _execute(self, **kwargs: Any) -> Any:
        key = kwargs["api_key"]
        task = require_current_task()
        task.progress(10, f"trying key …{key[-12:]}")
        if not kwargs.get("quiet"):
            task.checkpoint(f"sent …{key[-12:]}", {"note": f"key …{key[-12:]}"})
        if kwargs.get("fail"):
            raise PermissionError(f"401: key ending {key[-14:]} was revoked")
        return {"echo": f"used …{key[-16:]}"}


def test_a_suffix_quoted_by_a_tool_reaches_no_span_and_no_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Span status, exception event, checkpoint span and the failure's log keep none of it."""
    caplog.set_level(logging.DEBUG, logger="laios")
    text = failed_run_text(QuotesASuffix, {"api_key": SECRET}, "PermissionError")
    assert "was revoked" in text
    assert "laios.checkpoint.note" in text
    assert suffixes_left(text) == []
    assert suffixes_left(caplog.text) == []


def test_a_suffix_in_a_progress_message_and_a_captured_result_is_scrubbed() -> None:
    statuses = statuses_at_progress(QuotesASuffix, {"api_key": SECRET})
    assert statuses
    assert "trying key" in statuses[0]
    assert suffixes_left(statuses[0]) == []
    result, span = traced_run(QuotesASuffix, {"api_key": SECRET, "quiet": 1}, capture=True)
    assert result.success
    captured = str(span.attributes)
    assert "used …[REDACTED]" in captured
    assert suffixes_left(captured) == []
