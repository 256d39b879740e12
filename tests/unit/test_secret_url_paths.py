"""A secret written into a URL by ``urllib.parse.quote`` as it is usually called (its default
``safe="/"`` keeps each ``/``), as a password is put into a connection URL: it must not reach
spans or logs, with content capture off or on."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

import pytest
from secret_runs import traced_run

from laios.execution.redaction import REDACTED, scrub, secret_values
from laios.tools.base import BaseTool

#: Shaped like a cloud secret key: a ``/`` that ``quote`` keeps and a ``+`` it encodes.
PASSWORD = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
QUOTED = quote(PASSWORD)
#: Pieces of the secret that must not be left behind either.
PIECES = ("wJalrXUtnFEMI", "K7MDENG", "bPxRfiCYEXAMPLEKEY")


class Connect(BaseTool):
    name = "connect"
    description = "Fails to connect, quoting the connection URL it built."

    def _execute(self, **kwargs: Any) -> Any:
        url = f"postgresql://app:{quote(kwargs['password'])}@db.example/orders"
        if kwargs.get("fail", True):
            raise ConnectionError(f"cannot reach {url}")
        return {"url": url}


def test_the_form_differs_from_the_other_url_encodings() -> None:
    assert QUOTED not in (PASSWORD, quote(PASSWORD, safe=""))
    assert "/" in QUOTED


def test_scrub_replaces_the_secret_quoted_with_the_default_safe_characters() -> None:
    text = f"postgresql://app:{QUOTED}@db.example/orders"
    out = scrub(text, secret_values({"password": PASSWORD}))
    assert out == f"postgresql://app:{REDACTED}@db.example/orders"


@pytest.mark.parametrize("capture", [False, True])
@pytest.mark.parametrize("fail", [True, False])
def test_the_quoted_secret_reaches_no_span_and_no_log(
    capture: bool, fail: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="laios")
    result, span = traced_run(Connect, {"password": PASSWORD, "fail": fail}, capture=capture)
    assert result.success is not fail
    seen = span.to_json() + "\n".join(r.getMessage() for r in caplog.records)
    if fail:
        assert f"app:{REDACTED}@db.example" in (span.status.description or "")
    elif capture:
        assert f"app:{REDACTED}@db.example" in str(span.attributes["gen_ai.tool.call.result"])
    for piece in PIECES:
        assert piece not in seen
