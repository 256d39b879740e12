"""A secret quoted only in part, its first characters, is scrubbed too.

A tool may put the first characters of a token into its error (``token sk-live-AB… was
refused``), and text may have been cut to a length inside a secret before it is scrubbed. Any
prefix of a secret of at least ``MIN_PREFIX_CHARS`` characters is replaced wherever it
occurs, as the whole secret is; a shorter one is kept (it would mangle ordinary words).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

import process_tools
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from secret_runs import failed_run_text, statuses_at_progress, traced_run

from laios.core.types import Context, Task
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


def prefixes_left(text: str, secret: str = SECRET) -> list[str]:
    """The prefixes of ``secret`` of ``MIN_PREFIX_CHARS`` characters or more found in
    ``text``."""
    return [secret[:n] for n in range(MIN_PREFIX_CHARS, len(secret) + 1) if secret[:n] in text]


@pytest.mark.parametrize("size", [MIN_PREFIX_CHARS, 12, 20, len(SECRET) - 1])
def test_scrub_replaces_a_prefix_of_a_secret(size: int) -> None:
    """A tool quoting the first characters of its key, or a message cut inside it."""
    quoted = f"token {SECRET[:size]}… was refused"
    assert scrub(quoted, [SECRET]) == f"token {REDACTED}… was refused"
    cut = f"401 for token {SECRET[:size]}"
    assert scrub(cut, [SECRET]) == f"401 for token {REDACTED}"


@pytest.mark.parametrize("size", [MIN_PREFIX_CHARS, 12, len(SECRET) - 1])
def test_scrub_head_and_redact_replace_a_prefix_of_a_secret(size: int) -> None:
    """The head scrub (progress messages, checkpoint values) and captured values too."""
    quoted = f"token {SECRET[:size]}… was refused"
    expected = f"token {REDACTED}… was refused"
    assert scrub_head(quoted, [SECRET], 200) == expected
    assert scrub_head(quoted, SecretForms([SECRET]), 200) == expected
    assert redact({"note": quoted}, [SECRET]) == {"note": expected}
    named = f"sent {SECRET[:size]}"  # (a key: "token" would make its value secret)
    assert json.loads(to_json({named: 1}, secrets=[SECRET])) == {f"sent {REDACTED}": 1}


def test_a_prefix_of_an_encoded_form_is_replaced() -> None:
    """The first characters of the URL-encoded or JSON-escaped secret are its prefix too."""
    secret = "p@ss/word with spaces and more"
    for written in (
        "p%40ss%2Fword%20wi",
        "p%40ss/word%20with%20sp",
        "p%40ss%2Fword+with+spa",
    ):
        assert prefixes_left(scrub(f"url ?k={written}", [secret]), written) == []


def test_a_prefix_shorter_than_the_minimum_is_kept() -> None:
    """Below ``MIN_PREFIX_CHARS`` the start of a secret is ordinary text (``sk-live``)."""
    short = SECRET[: MIN_PREFIX_CHARS - 1]
    assert scrub(f"keys look like {short}…", [SECRET]) == f"keys look like {short}…"
    # A secret no longer than the minimum is replaced only whole.
    assert scrub("abcdefg and abcdefgh", ["abcdefgh"]) == f"abcdefg and {REDACTED}"


def test_a_long_secret_repeating_itself_in_a_longer_text_is_scrubbed_promptly() -> None:
    """A 100 kB secret of one character, in a text repeating it: every place in the text
    starts a prefix of it, yet each is not measured against the whole secret in turn."""
    long = "y" * 100_000  # (prefixes of a form this long are not looked for: whole only)
    for secret in ("y" * 256, long):
        for text in (secret, "y" * 200_000, f"a{secret}b{secret[: len(secret) // 2]}c"):
            started = time.thread_time()
            scrubbed = scrub(text, [secret])
            head = scrub_head(text, SecretForms([secret]), 300)
            assert time.thread_time() - started < 5.0
            if secret is not long:
                assert prefixes_left(scrubbed, secret) == []
                assert prefixes_left(head, secret) == []
            assert secret not in scrubbed
            assert secret not in head


def test_the_scheme_of_a_secret_url_is_not_a_prefix_to_scrub() -> None:
    """A connection string's scheme (``postgres``, ``https://``) is no part of its secret:
    errors naming the database or another address stay readable, while a prefix that goes on
    past the scheme is still replaced."""
    dsn = "postgres://app:s3cret-pass@db.internal:5432/orders"
    text = "could not reach the postgres server at postgresql://other-host"
    for forms in ([dsn], SecretForms([dsn])):
        assert scrub(text, forms) == text
        assert scrub_head(text, forms, 200) == text
    sentry = "https://0123456789abcdef@o42.ingest.sentry.io/7"
    text = "GET https://example.com/api failed"
    assert scrub(text, [sentry]) == text
    assert scrub_head(text, [sentry], 200) == text
    # Past the scheme, the user name and the password are secret: replaced as before.
    for written in ("postgres://app:s3cr", "postgres://app", "https://0123456"):
        quoted = f"login as {written}… refused"
        assert scrub(quoted, [dsn, sentry]) == f"login as {REDACTED}… refused"
        assert scrub_head(quoted, [dsn, sentry], 200) == f"login as {REDACTED}… refused"
    # Its URL-encoded form keeps the scheme too, and loses what follows it.
    assert scrub("postgres%3A%2F%2Fapp%3As3c…", [dsn]) == f"{REDACTED}…"
    # A password that merely starts with letters and a colon is no URL: prefixes go.
    password = "correcthorse:battery-staple"
    assert scrub("tried correcthorse first", [password]) == f"tried {REDACTED} first"


def test_prefixes_next_to_each_other_and_to_the_whole_secret_are_all_replaced() -> None:
    """A prefix followed by the whole secret, the whole secret followed by a prefix, and a
    prefix of a secret that repeats itself."""
    text = f"{SECRET[:10]}{SECRET} {SECRET}{SECRET[:9]}!"
    assert prefixes_left(scrub(text, [SECRET])) == []
    assert prefixes_left(scrub_head(text, [SECRET], 500)) == []
    periodic = "abcd-abcd-abcd-abcd-XYZ"
    text = "abcd-abcd-abcd-abcd-abcd-abcd-abcd-abcd"
    assert scrub(f"<{text}>", [periodic]) == f"<{REDACTED}>"
    assert scrub_head(f"<{text}>", [periodic], 100) == f"<{REDACTED}>"


def test_a_scrub_with_no_prefix_in_the_text_leaves_it_alone() -> None:
    text = "an ordinary message about sk-live keys"
    assert scrub(text, [SECRET]) == text
    assert scrub_head(text, [SECRET], 100) == text


class QuotesAPrefix(BaseTool):
    name = "quotes_a_prefix"
    description = "Quotes the first characters of its key in its progress, checkpoint, error."

    def _execute(self, **kwargs: Any) -> Any:
        key = kwargs["api_key"]
        task = require_current_task()
        task.progress(10, f"trying key {key[:12]}…")
        if not kwargs.get("quiet"):
            task.checkpoint(f"sent {key[:12]}", {"note": f"key {key[:12]}…"})
        if kwargs.get("fail"):
            raise PermissionError(f"401: key {key[:14]}… was refused")
        return {"echo": f"used {key[:16]}…"}


def test_a_prefix_quoted_by_a_tool_reaches_no_span_and_no_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Span status, exception event, checkpoint span and the failure's log keep none of it."""
    caplog.set_level(logging.DEBUG, logger="laios")
    text = failed_run_text(QuotesAPrefix, {"api_key": SECRET}, "PermissionError")
    assert "was refused" in text
    assert "laios.checkpoint.note" in text
    assert prefixes_left(text) == []
    assert prefixes_left(caplog.text) == []


def test_a_prefix_in_a_progress_message_and_a_captured_result_is_scrubbed() -> None:
    statuses = statuses_at_progress(QuotesAPrefix, {"api_key": SECRET})
    assert statuses
    assert "trying key" in statuses[0]
    assert prefixes_left(statuses[0]) == []
    result, span = traced_run(QuotesAPrefix, {"api_key": SECRET, "quiet": 1}, capture=True)
    assert result.success
    captured = str(span.attributes)
    assert "used [REDACTED]" in captured
    assert prefixes_left(captured) == []


@pytest.mark.skipif(sys.platform != "linux", reason="worker processes on Linux")
def test_a_prefix_quoted_in_a_worker_process_reaches_no_span() -> None:
    """The worker's traceback and message, scrubbed there and here, keep none of it."""
    exporter = InMemorySpanExporter()
    with process_tools.traced_executor(process_tools.FailsDeep(), exporter) as executor:
        task = Task(
            plan_id="p",
            description="d",
            tool_name="fails_deep",
            parameters={"api_key": SECRET, "prefix": 12},
        )
        result = executor.execute_task(task, Context(session_id="s", user_id="u"), timeout=30)
    assert result.metadata["error_type"] == "LookupError"
    (span,) = exporter.get_finished_spans()
    text = f"{span.status.description} {[dict(e.attributes or {}) for e in span.events]}"
    assert "no quota for [REDACTED]" in text
    assert prefixes_left(text) == []


def test_a_text_repeating_most_of_a_secret_between_other_characters_is_scrubbed_promptly() -> None:
    """Runs of a secret's first characters, each cut short by another character: every place
    in such a run starts a prefix of the secret, yet the run is not measured from each."""
    for secret in ("y" * 256, "xy" * 128):
        text = f"{secret[:-1]}!" * 2000  # (500 kB)
        started = time.thread_time()
        scrubbed = scrub(text, [secret], limit=None)
        head = scrub_head(text, SecretForms([secret]), 300)
        assert time.thread_time() - started < 2.0
        assert scrubbed == f"{REDACTED}!" * 2000
        assert prefixes_left(head, secret) == []
