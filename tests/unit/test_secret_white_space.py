"""A secret value given with white space around it (pasted with a space, read from a file or
an environment file with its line end) is quoted by a tool without it: tools and HTTP
clients strip tokens before they use them (``token.strip()``). The value without its white
space is the secret too, and must not reach spans or logs."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from secret_runs import traced_run

from laios.execution.redaction import REDACTED, scrub, secret_values
from laios.tools.base import BaseTool


@pytest.mark.parametrize(
    "given", ["  hunter22  ", "hunter2\n", " pw-1234", "pw-1234\t", "hunter22 \r\n"]
)
def test_the_value_without_its_white_space_is_scrubbed(given: str) -> None:
    stripped = given.strip()
    secrets = secret_values({"password": given})
    text = f"bad password {stripped} given; {stripped!r}; password={stripped}"
    out = scrub(text, secrets, limit=None)
    assert stripped not in out, out
    assert f"password={REDACTED}" in out


def test_a_short_value_without_its_white_space_is_scrubbed_after_its_name() -> None:
    secrets = secret_values({"password": "x9z\n"})
    assert scrub("password=x9z, {'password': 'x9z'}", secrets) == (
        f"password={REDACTED}, {{'password': '{REDACTED}'}}"
    )


def test_a_value_of_white_space_alone_is_no_secret_of_ordinary_text() -> None:
    secrets = secret_values({"password": "   \n"})
    assert scrub("a b  c", secrets) == "a b  c"


class Login(BaseTool):
    name = "login"
    description = "Strips its token, as a client does, and fails quoting it."

    def _execute(self, **kwargs: Any) -> Any:
        token = kwargs["token"].strip()
        raise PermissionError(f"token {token} refused")


@pytest.mark.parametrize("capture", [False, True])
def test_a_stripped_token_reaches_no_span_and_no_log(
    capture: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="laios")
    result, span = traced_run(Login, {"token": "tk-77aa\n"}, capture=capture)
    assert not result.success
    assert f"token {REDACTED} refused" in (span.status.description or "")
    seen = span.to_json() + "\n".join(record.getMessage() for record in caplog.records)
    assert "tk-77aa" not in seen
