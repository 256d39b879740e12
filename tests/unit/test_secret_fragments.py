"""A secret quoted only in its middle is scrubbed too.

A tool may quote a few characters from inside a token (``token …GHIJKLMNOPQRSTUVWXYZ… was
revoked``), neither its start nor its end. Any run of at least ``MIN_FRAGMENT_CHARS``
characters of a secret (or of one of its forms) longer than that is replaced wherever it
occurs; a shorter one is kept, and so are the scheme and the address of a URL-shaped secret.
"""

from __future__ import annotations

import json
import logging
import random
import string
import time
from typing import Any

import pytest
from secret_runs import failed_run_text, statuses_at_progress, traced_run

from laios.execution.redaction import (
    MIN_FRAGMENT_CHARS,
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


def fragments_left(text: str, secret: str = SECRET) -> list[str]:
    """The runs of ``MIN_FRAGMENT_CHARS`` characters of ``secret`` found in ``text``."""
    size = MIN_FRAGMENT_CHARS
    return [
        secret[at : at + size]
        for at in range(len(secret) - size + 1)
        if secret[at : at + size] in text
    ]


@pytest.mark.parametrize(("start", "end"), [(5, 25), (1, 13), (10, 40), (3, len(SECRET) - 1)])
def test_a_middle_fragment_of_a_secret_is_replaced(start: int, end: int) -> None:
    fragment = SECRET[start:end]
    quoted = f"key …{fragment}… was revoked"
    expected = f"key …{REDACTED}… was revoked"
    for secrets in ([SECRET], SecretForms([SECRET])):
        assert scrub(quoted, secrets) == expected
        assert scrub_head(quoted, secrets, 200) == expected
    assert redact({"note": quoted}, [SECRET]) == {"note": expected}
    named = f"sent …{fragment}…"  # (a key: "key" would make its value secret)
    assert json.loads(to_json({named: 1}, secrets=[SECRET])) == {f"sent …{REDACTED}…": 1}


def test_a_fragment_shorter_than_the_minimum_is_kept() -> None:
    short = SECRET[5 : 5 + MIN_FRAGMENT_CHARS - 1]
    text = f"keys look like …{short}…"
    assert scrub(text, [SECRET]) == text
    assert scrub_head(text, [SECRET], 200) == text


def test_a_fragment_of_an_encoded_form_is_replaced() -> None:
    secret = "more spaces and a p@ss/word in it"
    written = "and%20a%20p%40ss%2Fword%20in"
    scrubbed = scrub(f"url ?k=…{written}…", [secret])
    assert scrubbed == f"url ?k=…{REDACTED}…"


def test_the_scheme_and_address_of_a_secret_url_are_kept_its_user_information_is_not() -> None:
    dsn = "postgres://app:s3cret-password@db.internal:5432/orders"
    kept = "could not reach db.internal:5432/orders from postgres://"
    for secrets in ([dsn], SecretForms([dsn])):
        assert scrub(kept, secrets) == kept
        assert scrub_head(kept, secrets, 200) == kept
        quoted = "login as ://app:s3cret-pas… refused"
        assert scrub(quoted, secrets) == f"login as {REDACTED}… refused"
        assert scrub_head(quoted, secrets, 200) == f"login as {REDACTED}… refused"


def test_fragments_next_to_each_other_and_to_the_whole_secret_are_replaced_together() -> None:
    text = f"<{SECRET[3:20]}{SECRET[10:30]} {SECRET}{SECRET[5:18]}>"
    for scrubbed in (scrub(text, [SECRET]), scrub_head(text, [SECRET], 500)):
        assert fragments_left(scrubbed) == []
        assert REDACTED in scrubbed


def test_a_long_text_is_scrubbed_of_fragments_of_many_secrets_promptly() -> None:
    """A 1 MB text against 50 secrets: each fragment found, in a bounded time."""
    chooser = random.Random(5)
    alphabet = string.ascii_letters + string.digits
    secrets = ["".join(chooser.choice(alphabet) for _ in range(40)) for _ in range(50)]
    filler = "".join(chooser.choices(string.ascii_lowercase + " ", k=1_000_000))
    text = f"{filler[:300_000]}<{secrets[7][5:25]}>{filler[300_000:]}<{secrets[42][9:30]}>"
    started = time.thread_time()
    scrubbed = scrub(text, secrets, limit=None)
    assert time.thread_time() - started < 5.0
    assert f"<{REDACTED}>" in scrubbed
    assert secrets[7][5:25] not in scrubbed
    assert scrubbed.endswith(f"<{REDACTED}>")
    assert len(scrubbed) == len(text) - 20 - 21 + 2 * len(REDACTED)


def test_a_secret_repeating_itself_quoted_in_the_middle_is_scrubbed_promptly() -> None:
    for secret in ("y" * 256, "abcdefghijklmnopq" * 15):
        for text in (secret[7:200] * 100, "z" + secret[3:40] + "z", secret[0] * 100_000):
            started = time.thread_time()
            scrubbed = scrub(text, [secret])
            head = scrub_head(text, SecretForms([secret]), 300)
            assert time.thread_time() - started < 5.0
            assert fragments_left(scrubbed, secret) == []
            assert fragments_left(head, secret) == []


class QuotesAFragment(BaseTool):
    name = "quotes_a_fragment"
    description = "Quotes characters from the middle of its key everywhere it can."

    def _execute(self, **kwargs: Any) -> Any:
        key = kwargs["api_key"]
        task = require_current_task()
        task.progress(10, f"trying key …{key[5:25]}…")
        if not kwargs.get("quiet"):
            task.checkpoint("sent", {"note": f"key …{key[6:24]}…"})
        if kwargs.get("fail"):
            raise PermissionError(f"401: key …{key[5:25]}… was revoked")
        return {"echo": f"used …{key[4:30]}…"}


def test_a_fragment_quoted_by_a_tool_reaches_no_span_log_or_status(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="laios")
    text = failed_run_text(QuotesAFragment, {"api_key": SECRET}, "PermissionError")
    assert "was revoked" in text
    assert "laios.checkpoint.note" in text
    assert fragments_left(text) == []
    assert fragments_left(caplog.text) == []
    statuses = statuses_at_progress(QuotesAFragment, {"api_key": SECRET})
    assert "trying key" in statuses[0]
    assert fragments_left(statuses[0]) == []
    result, span = traced_run(QuotesAFragment, {"api_key": SECRET, "quiet": 1}, capture=True)
    assert result.success
    assert "used …[REDACTED]…" in str(span.attributes)
    assert fragments_left(str(span.attributes)) == []
