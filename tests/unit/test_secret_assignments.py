"""A secret written as the value of a secret-looking name inside a text parameter is secret.

A URL's query (``https://api.example/v1?api_key=…``), a form body (``user=bob&password=…``),
an environment entry (``API_KEY=…``) or a header line (``Authorization: Bearer …``) passed as
text carries its secret under its name: that value is scrubbed wherever it appears, and
captured arguments show the text with it replaced.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from secret_runs import failed_run_text

from laios.execution.redaction import (
    MAX_JSON_TEXT_CHARS,
    MAX_NAMED_TEXT_CHARS,
    REDACTED,
    redact,
    scrub,
    secret_values,
)
from laios.tools.base import BaseTool

SECRET = "tok-9fQ2xLmR7vKp3ZsW8nYb4HcD6gJt1AeU"


@pytest.mark.parametrize(
    "text",
    [
        f"https://api.example/v1?api_key={SECRET}&x=1",
        f"user=bob&password={SECRET}",
        f"API_KEY={SECRET}",
        f"Authorization: Bearer {SECRET}",
        f"GET / HTTP/1.1\r\nHost: a\r\nX-Api-Key: {SECRET}\r\n",
        f"--token={SECRET} --verbose",
    ],
)
def test_a_value_under_a_secret_name_in_text_is_secret(text: str) -> None:
    assert SECRET in secret_values({"request": text})
    assert SECRET in secret_values({"lines": [text]})
    captured = json.dumps(redact({"request": text}, secret_values({"request": text})))
    assert SECRET not in captured


def test_ordinary_assignments_in_text_are_not_secret() -> None:
    texts = {
        "q": "max_tokens=256&token_count=3&keyword=cats",
        "prose": "The key: the first line. Set a=b.",
        "url": "https://example.com/?page=2&sort=name",
    }
    assert secret_values(texts) == []


class FetchesAUrl(BaseTool):
    name = "fetches_a_url"
    description = "Quotes the key of its URL's query in its error."

    def _execute(self, **kwargs: Any) -> Any:
        key = kwargs["url"].split("api_key=")[1].split("&")[0]
        if kwargs.get("fail"):
            raise PermissionError(f"401: key {key} was revoked")
        return {"used": key}


def test_a_key_in_a_url_query_reaches_no_span_and_no_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="laios")
    url = f"https://api.example/v1?api_key={SECRET}&x=1"
    text = failed_run_text(FetchesAUrl, {"url": url}, "PermissionError")
    assert "was revoked" in text
    assert SECRET[:8] not in text
    assert SECRET[:8] not in caplog.text


def test_long_text_is_not_read_for_named_values_or_as_json() -> None:
    """A long prompt or document is no URL, form or header: reading it would cost every read
    of the parameters."""
    filler = "words " * (MAX_NAMED_TEXT_CHARS // 6)
    assert SECRET in secret_values({"prompt": f"api_key={SECRET} " + filler[:100]})
    assert secret_values({"prompt": f"api_key={SECRET} " + filler}) == []
    body = {"api_key": SECRET, "rows": ["x" * 100] * (MAX_JSON_TEXT_CHARS // 100)}
    assert secret_values({"body": json.dumps(body)}) == []
    body["rows"] = []
    assert SECRET in secret_values({"body": json.dumps(body)})


@pytest.mark.parametrize(
    "text",
    [
        f"api%5Fkey={SECRET}",
        f"https://x.example/?api%5Fkey={SECRET}&x=1",
        f"https://x.example/?api%5fkey={SECRET}",
        f"user=bob&pass%77ord={SECRET}",
        f"%70assword={SECRET}&user=bob",
        f"user=bob&api+key={SECRET}",
        f"x=1&cl%C3%A9_token={SECRET}",
    ],
)
def test_a_value_under_a_percent_encoded_secret_name_in_text_is_secret(text: str) -> None:
    """A URL's query or a form body may write the name percent-encoded (``api%5Fkey``, a
    letter as ``pass%77ord``, ``+`` for a space): the name is read decoded, as the same name
    as a mapping's key would be."""
    assert SECRET in secret_values({"request": text})
    captured = json.dumps(redact({"request": text}, secret_values({"request": text})))
    assert SECRET not in captured


def test_ordinary_percent_encoded_names_in_text_are_not_secret() -> None:
    texts = {
        "q": "max%5Ftokens=256&token%5Fcount=3&key%77ord=cats",
        "form": "pass%77ord%5Fpolicy=strict&%6Beyword=x",
    }
    assert secret_values(texts) == []


def test_a_short_value_under_a_percent_encoded_name_is_scrubbed_after_it() -> None:
    """A value too short to scrub from free text, under a percent-encoded name: replaced
    after the name as the text writes it, and after the name decoded."""
    secrets = secret_values({"q": "https://h/?pass%77ord=xy9&x=1"})
    assert scrub("GET https://h/?pass%77ord=xy9&x=1 failed", secrets) == (
        f"GET https://h/?pass%77ord={REDACTED}&x=1 failed"
    )
    assert scrub("password=xy9 refused", secrets) == f"password={REDACTED} refused"


class FetchesAnEncodedUrl(BaseTool):
    name = "fetches_an_encoded_url"
    description = "Quotes the key of its URL's query, under a percent-encoded name, in its error."

    def _execute(self, **kwargs: Any) -> Any:
        key = kwargs["url"].split("api%5Fkey=")[1].split("&")[0]
        raise PermissionError(f"401: key {key} was revoked")


def test_a_key_under_a_percent_encoded_name_reaches_no_span_and_no_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="laios")
    url = f"https://api.example/v1?api%5Fkey={SECRET}&x=1"
    text = failed_run_text(FetchesAnEncodedUrl, {"url": url}, "PermissionError")
    assert "was revoked" in text
    assert SECRET[:8] not in text
    assert SECRET[:8] not in caplog.text
