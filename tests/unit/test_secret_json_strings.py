"""A secret inside JSON text passed as a string parameter is a secret too.

A tool may take a request body or a configuration as JSON text (``{"body": '{"api_key":
"…"}'}``): the values under secret-looking keys of that JSON are secret values, scrubbed
wherever they appear, as they would be in a mapping.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from secret_runs import failed_run_text

from laios.execution import redaction
from laios.execution.redaction import redact, secret_values
from laios.tools.base import BaseTool

SECRET = "tok-9fQ2xLmR7vKp3ZsW8nYb4HcD6gJt1AeU"


def test_values_under_secret_keys_of_json_text_are_secret() -> None:
    assert SECRET in secret_values({"body": json.dumps({"api_key": SECRET, "n": 1})})
    assert SECRET in secret_values({"rows": [json.dumps([{"auth": {"token": SECRET}}])]})
    # (JSON text inside JSON text, and under a secret name: its values one by one too)
    inner = json.dumps({"password": "hunter2x"})
    assert "hunter2x" in secret_values({"body": json.dumps({"payload": inner})})
    assert "hunter2x" in secret_values(
        {"credentials": json.dumps({"user": "bo", "pw": "hunter2x"})}
    )
    # Text that is not JSON, or JSON without secret names, holds no secret.
    assert secret_values({"body": "{not json", "other": "[1, 2]", "doc": '{"name": "x"}'}) == []


def test_captured_json_text_has_its_secret_redacted() -> None:
    parameters = {"body": json.dumps({"api_key": SECRET})}
    captured = json.dumps(redact(parameters, secret_values(parameters)))
    assert SECRET not in captured
    assert "[REDACTED]" in captured


class PostsABody(BaseTool):
    name = "posts_a_body"
    description = "Quotes the key it finds in its JSON body."

    def _execute(self, **kwargs: Any) -> Any:
        key = json.loads(kwargs["body"])["api_key"]
        if kwargs.get("fail"):
            raise PermissionError(f"401: key {key} was revoked")
        return {"used": key}


def test_a_secret_of_a_json_body_reaches_no_span_and_no_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="laios")
    text = failed_run_text(PostsABody, {"body": json.dumps({"api_key": SECRET})}, "PermissionError")
    assert "was revoked" in text
    assert SECRET[:8] not in text
    assert SECRET[:8] not in caplog.text


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({"api_key": SECRET}).encode(),
        bytearray(json.dumps({"auth": {"token": SECRET}}).encode()),
        f"user=bob&password={SECRET}".encode(),
        f"postgres://app:{SECRET}@db.internal/orders".encode(),
    ],
    ids=["json-bytes", "json-bytearray", "form-bytes", "url-bytes"],
)
def test_a_body_given_as_bytes_is_read_as_its_text(
    body: bytes | bytearray, caplog: pytest.LogCaptureFixture
) -> None:
    """A request body kept as bytes (``content=b'{"api_key": …}'``, a form body, a URL read
    from a file) is read for secrets as its UTF-8 text would be: captured, it shows
    ``[REDACTED]``, and a tool quoting it leaks it nowhere."""
    assert SECRET in secret_values({"body": body})
    caplog.set_level(logging.DEBUG, logger="laios")
    text = failed_run_text(QuotesItsBody, {"body": body}, "PermissionError")
    assert "[REDACTED]" in text
    assert SECRET[:8] not in text
    assert SECRET[:8] not in caplog.text


def test_bytes_that_are_no_utf8_text_hold_no_secret() -> None:
    assert secret_values({"blob": b'\xff\xfe{"api_key": "x"}', "raw": b"password=\xff"}) == []


class _Counting:
    """The secret-looking pattern, counting its searches."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern
        self.searches = 0

    def search(self, text: str) -> re.Match[str] | None:
        self.searches += 1
        return self.pattern.search(text)

    def finditer(self, text: str) -> Iterator[re.Match[str]]:
        return self.pattern.finditer(text)


#: A chat request's body of 3.5 kB, no name or word in which looks secret.
ORDINARY_BODY = json.dumps(
    {
        "model": "small",
        "messages": [{"role": "user", "content": " ".join(["the quick brown fox"] * 180)}],
    }
)


@pytest.mark.parametrize("body", [ORDINARY_BODY, ORDINARY_BODY.encode()], ids=["str", "bytes"])
def test_a_body_without_a_secret_word_is_not_searched_with_the_secret_pattern(
    body: str | bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A body holding no word a secret-looking name holds (``key``, ``token``, ``pass``…, in
    any letter case) is not searched for such names with the whole pattern, which took about
    2 ms for this body, on every reading of the parameters; one holding a secret name is."""
    counting = _Counting(redaction._SECRET_KEY)
    monkeypatch.setattr(redaction, "_SECRET_KEY", counting)
    assert secret_values({"body": body}) == []
    assert counting.searches == 0
    assert secret_values({"body": f"user=bob&Pass%77ord={SECRET}"}) == [SECRET]
    assert counting.searches > 0


def test_bytes_are_read_as_far_as_their_text_would_be() -> None:
    """Bytes are read as the text they decode to, as far as that text would be read: a body
    of 20,000 bytes ending with a connection URL gives up its password as the same body given
    as text does (it did not, read only up to 16,384 bytes), and so does a JSON body whose
    6,000 characters take 18,000 bytes."""
    url = f" postgres://app:{SECRET}@db.internal/orders".encode()
    body = b"x" * 20_000 + url
    assert secret_values({"body": body}) == secret_values({"body": body.decode()}) == [SECRET]
    document = json.dumps({"note": "\u4e2d" * 6000, "api_key": SECRET}, ensure_ascii=False)
    assert len(document) <= redaction.MAX_JSON_TEXT_CHARS < len(document.encode())
    assert secret_values({"body": document.encode()}) == [SECRET]


def test_bytes_longer_than_any_text_read_are_not_read() -> None:
    """Bytes longer than the UTF-8 of the longest text read (four bytes a character at most)
    are not decoded and read on every reading of the parameters: a file's content."""
    url = f"postgres://app:{SECRET}@db.internal/orders ".encode()
    body = url + b"x" * (4 * redaction.MAX_JSON_TEXT_CHARS)
    assert secret_values({"body": body}) == []


class QuotesItsBody(BaseTool):
    name = "quotes_its_body"
    description = "Quotes the body it was given."

    def _execute(self, **kwargs: Any) -> Any:
        raise PermissionError(f"400 for body {kwargs['body']!r}")


def test_a_body_given_as_a_memoryview_is_read_as_its_text() -> None:
    """A body kept as a ``memoryview`` (of a buffer read from a socket) is read for secrets as
    the bytes it views are: it was not, where ``bytes`` and ``bytearray`` were."""
    body = memoryview(json.dumps({"api_key": SECRET}).encode())
    assert SECRET in secret_values({"body": body})
