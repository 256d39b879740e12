"""A secret given as a ``uuid.UUID`` under a secret-looking key (``session_id``, ``api_token``):
its text must not reach spans or logs when the tool quotes it, with content capture off or on."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
from pydantic import Secret
from secret_runs import traced_run

from laios.execution.redaction import REDACTED, scrub, secret_values
from laios.tools.base import BaseTool

SESSION = uuid.UUID("3f2b8c1e-9a4d-4e7b-8c2f-1a2b3c4d5e6f")


class Resume(BaseTool):
    name = "resume"
    description = "Fails to resume a session, quoting its id."

    def _execute(self, **kwargs: Any) -> Any:
        session = kwargs["session_id"]
        raise PermissionError(f"session {session} expired ({session!r}, {session.hex})")


@pytest.mark.parametrize(
    "parameters",
    [
        {"session_id": SESSION},
        {"auth": {"api_token": SESSION}},
        {"creds": Secret[uuid.UUID](SESSION)},
    ],
)
def test_the_text_of_a_secret_uuid_is_scrubbed(parameters: dict[str, Any]) -> None:
    text = f"session {SESSION} expired ({SESSION!r}, {SESSION.hex})"
    out = scrub(text, secret_values(parameters))
    assert out == f"session {REDACTED} expired (UUID('{REDACTED}'), {REDACTED})"


@pytest.mark.parametrize("capture", [False, True])
def test_a_secret_uuid_reaches_no_span_and_no_log(
    capture: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="laios")
    result, span = traced_run(Resume, {"session_id": SESSION}, capture=capture)
    assert not result.success
    assert (span.status.description or "").startswith(f"session {REDACTED} expired")
    seen = span.to_json() + "\n".join(r.getMessage() for r in caplog.records)
    assert str(SESSION) not in seen
    assert SESSION.hex not in seen
