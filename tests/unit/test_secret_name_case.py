"""A short secret written after its name in another letter case (``PASSWORD="ab1"``,
``Api_Key: 'xy9'``, as environment variables, constants and headers write names) is scrubbed as
it is after the name as the parameter writes it; and a value quoted after a header-style name
(``Api_Key: 'abcdefghij'``) is the value without its quotes, as after ``=``."""

from __future__ import annotations

import pytest

from laios.execution.redaction import REDACTED, SecretForms, scrub, scrub_head, secret_values

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
