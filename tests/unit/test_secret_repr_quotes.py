"""A secret holding a single quote, written by ``repr`` inside a longer text that also holds a
double quote: ``repr`` then quotes the text with single quotes and writes each ``'`` of the
secret as ``\\'``, a form that differs from the ``repr`` of the secret alone. It must not reach
spans or logs, with content capture off or on."""

from __future__ import annotations

import logging
import subprocess
from typing import Any

import pytest
from secret_runs import traced_run

from laios.execution.redaction import REDACTED, scrub, secret_values
from laios.tools.base import BaseTool

PASSWORD = "Xk'9qP-7zTw!"
#: Pieces of the secret that must not be left behind.
PIECES = ("Xk\\'9qP", "9qP-7zTw")


class Migrate(BaseTool):
    name = "migrate"
    description = "Fails to run a client command line that carries the password."

    def _execute(self, **kwargs: Any) -> Any:
        command = ["sh", "-c", f'mysql -p{kwargs["password"]} -e "SELECT 1"']
        raise subprocess.CalledProcessError(1, command)


def test_the_form_differs_from_the_repr_of_the_secret_alone() -> None:
    written = repr(f'-p{PASSWORD} -e "SELECT 1"')
    assert "Xk\\'9qP-7zTw!" in written
    assert repr(PASSWORD)[1:-1] not in written


@pytest.mark.parametrize(
    "text",
    [
        repr(f'-p{PASSWORD} -e "SELECT 1"'),
        str(KeyError(f'login "bob" with {PASSWORD} refused')),
        repr(f'say "{PASSWORD}\\n"'),
        repr(f'-p{PASSWORD} -e "SELECT 1"'.encode()),
    ],
)
def test_scrub_replaces_the_secret_with_its_single_quote_escaped(text: str) -> None:
    out = scrub(text, secret_values({"password": PASSWORD}), limit=None)
    assert REDACTED in out
    for piece in PIECES:
        assert piece not in out


@pytest.mark.parametrize("capture", [False, True])
def test_the_escaped_secret_reaches_no_span_and_no_log(
    capture: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="laios")
    result, span = traced_run(Migrate, {"password": PASSWORD}, capture=capture)
    assert not result.success
    assert f"mysql -p{REDACTED} -e" in (span.status.description or "")
    seen = span.to_json() + "\n".join(r.getMessage() for r in caplog.records)
    for piece in PIECES:
        assert piece not in seen
