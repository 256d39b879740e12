"""A secret kept as an attribute of a plain object passed as a parameter is secret.

An SDK client (``OpenAI(api_key=…)``) or a settings object of a class of its own (neither a
dataclass, a pydantic model nor an ``attrs`` class) holds its key as an attribute: its own
attributes with secret-looking names are read, as a mapping's keys are.
"""

from __future__ import annotations

import enum
import logging
from collections import UserString
from typing import Any

import pytest
from secret_runs import failed_run_text

from laios.execution.redaction import secret_values
from laios.tools.base import BaseTool

SECRET = "tok-9fQ2xLmR7vKp3ZsW8nYb4HcD6gJt1AeU"


class Client:
    def __init__(self, api_key: str, base_url: str) -> None:
        self.api_key = api_key
        self.base_url = base_url
        self.timeout = 10


def test_an_attribute_with_a_secret_name_of_a_plain_object_is_secret() -> None:
    assert secret_values({"client": Client(SECRET, "https://api.example")}) == [SECRET]
    assert secret_values({"clients": [Client(SECRET, "x")]}) == [SECRET]
    # Its other attributes are not read (a large object is not walked through).
    assert secret_values({"client": Client("", "https://api.example/?x=1")}) == []
    # Objects without attributes of their own, and classes, hold none.
    assert secret_values({"a": object(), "b": Client, "c": len}) == []


class CallsWithItsClient(BaseTool):
    name = "calls_with_its_client"
    description = "Quotes the key of the client it was given."

    def _execute(self, **kwargs: Any) -> Any:
        client = kwargs["client"]
        if kwargs.get("fail"):
            raise PermissionError(f"401 from {client.base_url}: key {client.api_key} revoked")
        return {"key": client.api_key}


def test_the_key_of_a_client_given_as_a_parameter_reaches_no_span_and_no_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="laios")
    client = Client(SECRET, "https://api.example")
    text = failed_run_text(CallsWithItsClient, {"client": client}, "PermissionError")
    assert "revoked" in text
    assert SECRET[:8] not in text
    assert SECRET[:8] not in caplog.text


class Token:
    """A credential type of its own, whose text is the credential (as a ``str`` of it)."""

    def __init__(self, value: str) -> None:
        self._value = value

    def __str__(self) -> str:
        return self._value


class Keys(enum.Enum):
    PRODUCTION = SECRET


@pytest.mark.parametrize(
    "value",
    [Token(SECRET), UserString(SECRET), Keys.PRODUCTION],
    ids=["own-str", "UserString", "enum"],
)
def test_an_object_under_a_secret_name_is_secret_as_its_text_or_its_value(
    value: object, caplog: pytest.LogCaptureFixture
) -> None:
    """An object given under a secret-looking name (a credential type whose text is the
    credential, a ``UserString``, an enum member whose value is the key) holds the secret as
    its text, or as its value: a tool quoting it leaks it nowhere."""
    assert SECRET in secret_values({"api_key": value})
    caplog.set_level(logging.DEBUG, logger="laios")
    text = failed_run_text(QuotesItsKey, {"api_key": value}, "PermissionError")
    assert "revoked" in text
    assert SECRET[:8] not in text
    assert SECRET[:8] not in caplog.text


class QuotesItsKey(BaseTool):
    name = "quotes_its_key"
    description = "Quotes the key it was given, as text."

    def _execute(self, **kwargs: Any) -> Any:
        key = kwargs["api_key"]
        raise PermissionError(f"key {getattr(key, 'value', key)} revoked")
