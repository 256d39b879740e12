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

from laios.execution.redaction import scrub, secret_values, to_json
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


class Tensor:
    """An array-like of its own (as a tensor library's): its text is a summary of its items,
    costly to make for a large one, and counted."""

    printed = 0

    def __init__(self, items: list[int]) -> None:
        self.items = items
        self.shape = (len(items),)

    def __str__(self) -> str:
        Tensor.printed += 1
        return f"tensor({self.items})"


class Buffer:
    """An object whose text is that of an array (``__array__``: NumPy reads it as one)."""

    def __array__(self) -> list[int]:
        return [101, 2023, 2003, 1037]

    def __str__(self) -> str:
        Tensor.printed += 1
        return "[ 101 2023 2003 1037]"


class Report:
    """An object whose text is its own: a document's, or a credential's."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


@pytest.mark.parametrize(
    "parameters",
    [
        {"token_ids": Tensor([101, 2023, 2003, 1037, 3231, 102])},
        {"key_points": Buffer()},
        {"private_notes": Report("x" * 8193)},
    ],
    ids=["shape", "__array__", "long"],
)
def test_an_array_or_a_document_under_a_secret_name_is_not_secret_as_its_text(
    parameters: dict[str, Any],
) -> None:
    """An array (``token_ids``, ``key_points``: names that look secret) or an object whose text
    is longer than 8,192 characters is not a credential: its text is not made (an array's costs
    its printing on every reading of the parameters) nor taken for a secret, which would have
    a message quoting it (``shape mismatch for input [ 101 2023 …]``) scrubbed."""
    Tensor.printed = 0
    assert secret_values(parameters) == []
    assert Tensor.printed == 0


def test_a_numpy_array_under_a_secret_name_is_not_secret_as_its_text() -> None:
    np = pytest.importorskip("numpy")
    ids = np.array([101, 2023, 2003, 1037, 3231, 102] * 3)
    secrets = secret_values({"token_ids": ids})
    assert secrets == []
    message = f"shape mismatch for input {ids}"
    assert scrub(message, secrets) == message


class QuotesItsKey(BaseTool):
    name = "quotes_its_key"
    description = "Quotes the key it was given, as text."

    def _execute(self, **kwargs: Any) -> Any:
        key = kwargs["api_key"]
        raise PermissionError(f"key {getattr(key, 'value', key)} revoked")


def test_a_user_string_is_written_as_its_text() -> None:
    """A ``UserString`` (text, though a sequence of letters) was written into captured content
    as a nest of lists, each letter a ``UserString`` again, cut off as "…" at the depth limit:
    ``{"note": [[[[...["…"]...]]]]}``. It is written as its text, and redacted under a
    secret-looking name as before."""
    assert to_json({"note": UserString("hello")}) == '{"note":"hello"}'
    assert to_json({"api_key": UserString("sk-live-1234567890")}) == '{"api_key":"[REDACTED]"}'
    assert to_json(
        {"note": UserString("key sk-live-1234567890")}, secrets=["sk-live-1234567890"]
    ) == ('{"note":"key [REDACTED]"}')


def test_a_key_of_several_lines_under_a_secret_name_is_secret_as_its_text() -> None:
    """A credential object whose text is a PEM key (several lines, a few kilobytes) under
    ``private_key`` is secret as that text; it was taken for a document, as text of more than
    one line or 1,024 characters was, and left in every message quoting it."""
    pem = "-----BEGIN PRIVATE KEY-----\n" + "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n" * 50
    pem += "-----END PRIVATE KEY-----"
    assert len(pem) > 1024
    assert secret_values({"private_key": Report(pem)}) == [pem]
    assert "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC" not in scrub(f"bad key: {pem}", [pem])


class SlottedCredentials:
    __slots__ = ("password", "user")

    def __init__(self, user: str, password: str) -> None:
        self.user = user
        self.password = password


class SlottedClient(SlottedCredentials):
    __slots__ = ("api_key", "unset_token")

    def __init__(self, api_key: str) -> None:
        super().__init__("bob", SECRET[::-1])
        self.api_key = api_key


def test_an_attribute_with_a_secret_name_held_in_a_slot_is_secret() -> None:
    """An object of a class with ``__slots__`` holds its attributes itself too, in its slots
    rather than a ``__dict__``: those with secret-looking names are read (a base class's
    slots too; a slot never set holds nothing), as a plain object's are."""
    assert secret_values({"creds": SlottedCredentials("bob", SECRET)}) == [SECRET]
    assert sorted(secret_values({"client": SlottedClient(SECRET)})) == sorted(
        [SECRET, SECRET[::-1]]
    )
    text = f"login {SECRET[::-1]} refused"
    assert scrub(text, secret_values({"c": SlottedClient("x" * 12)})) == "login [REDACTED] refused"
