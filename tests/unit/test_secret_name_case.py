"""A short secret written after its name in another letter case (``PASSWORD="ab1"``,
``Api_Key: 'xy9'``, ``X-API-Key: xy9``, as environment variables, constants and headers write
names; any case) is scrubbed as it is after the name as the parameter writes it; and a value
quoted after a header-style name (``Api_Key: 'abcdefghij'``) is the value without its quotes,
as after ``=``."""

from __future__ import annotations

import pytest

from laios.execution.redaction import (
    REDACTED,
    SecretForms,
    scrub,
    scrub_head,
    secret_values,
)

SHORT = "xy9"


@pytest.mark.parametrize("name", ["password", "api_key", "x-api-key"])
@pytest.mark.parametrize(
    "write", [str.lower, str.upper, str.title, str.capitalize], ids=lambda f: f.__name__
)
@pytest.mark.parametrize(
    "shape",
    ["{}={}", "{}='{}'", '{}="{}"', "{}: {}", "{}: '{}'", '{}: "{}"'],
)
def test_a_short_secret_after_its_name_in_any_usual_case_is_scrubbed(
    name: str, write: object, shape: str
) -> None:
    """``PASSWORD="xy9"`` loses the value of ``password="xy9"``, in free text and in the head
    of a text scrubbed in parts (a log line, a status message)."""
    assert callable(write)
    secrets = secret_values({name: SHORT})
    text = f"failed: {shape.format(write(name), SHORT)} (and xy9 elsewhere stays)"
    expected = text.replace(f"{SHORT}", REDACTED, 1)
    assert scrub(text, secrets) == expected
    assert scrub(text, SecretForms(secrets)) == expected
    assert scrub_head(text, secrets, len(text)).startswith(expected[:40])


def test_a_short_value_after_another_name_in_capitals_is_kept() -> None:
    """The name still has to be the secret's: ``USER=xy9`` is left as it is."""
    secrets = secret_values({"password": SHORT})
    assert scrub("USER=xy9 User: 'xy9'", secrets) == "USER=xy9 User: 'xy9'"


@pytest.mark.parametrize("quote", ["'", '"'])
def test_a_quoted_value_after_a_header_style_name_in_text_is_the_value(quote: str) -> None:
    """A parameter text ``Api_Key: 'abcdefghij'`` has the secret ``abcdefghij``, as
    ``api_key='abcdefghij'`` has: it is scrubbed however a later text quotes it."""
    secrets = secret_values({"cmd": f"Api_Key: {quote}abcdefghij{quote}"})
    assert secrets == secret_values({"cmd": f"api_key={quote}abcdefghij{quote}"})
    for text in ("api_key=abcdefghij", 'API_KEY="abcdefghij"', "Api_Key: abcdefghij"):
        assert "abcdefghij" not in scrub(text, secrets)


@pytest.mark.parametrize(
    ("name", "written"),
    [
        ("x-api-key", "X-API-Key"),
        ("apiKey", "ApiKey"),
        ("clientSecret", "ClientSecret"),
        ("api_key", "API_Key"),
        ("API_KEY", "api_Key"),
    ],
)
@pytest.mark.parametrize("shape", ["{}={}", "{}: {}", "{}='{}'", '{}: "{}"'])
def test_a_short_secret_after_its_name_in_any_mixed_case_is_scrubbed(
    name: str, written: str, shape: str
) -> None:
    """The name counts in any letter case, not only the usual few: ``X-API-Key: xy9`` loses
    the value of ``x-api-key``, ``ApiKey=xy9`` that of ``apiKey``."""
    secrets = secret_values({name: SHORT})
    text = f"err {shape.format(written, SHORT)} end"
    expected = text.replace(SHORT, REDACTED)
    assert scrub(text, secrets) == expected
    assert scrub(text, SecretForms(secrets)) == expected
    assert scrub_head(text, secrets, len(text) + 20) == expected


def test_a_short_value_in_another_letter_case_is_kept() -> None:
    """Only the name's letter case is free: the value is the secret as given (``XY9`` is not
    ``xy9``)."""
    secrets = secret_values({"password": SHORT})
    assert scrub("PASSWORD=XY9 Password: Xy9", secrets) == "PASSWORD=XY9 Password: Xy9"


@pytest.mark.parametrize("quote", ["'", '"'])
def test_a_short_quoted_value_after_a_header_style_name_is_scrubbed_quoted_anywhere(
    quote: str,
) -> None:
    """A parameter text ``Api_Key: 'ab'`` has the secret ``ab`` after its name, and ``'ab'``,
    quotes and all (long enough to scrub from free text), wherever a text writes it."""
    secrets = secret_values({"cmd": f"Api_Key: {quote}ab{quote}"})
    assert scrub(f"rejected {quote}ab{quote} here", secrets) == f"rejected {REDACTED} here"
    assert scrub("API_KEY=ab; lab", secrets) == f"API_KEY={REDACTED}; lab"
