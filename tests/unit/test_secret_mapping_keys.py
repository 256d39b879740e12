"""A token used as a key of a mapping under a secret-looking name is secret, even when it is
made of letters alone.

``{"api_keys": {"sk_live_…": "prod"}}`` keeps its tokens as keys: the keys there are secret
values unless they read as names (``username``, ``X-Api-Key``). A name is made of words
(joined by ``_ - .`` or a space, or written in camelCase); a run of 16 letters or more, or
letters whose case changes every letter or two, is no word.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from secret_runs import failed_run_text, statuses_at_progress

from laios.execution.redaction import secret_values
from laios.execution.task_context import require_current_task
from laios.tools.base import BaseTool

TOKENS = (
    "sk_live_abcdefghijklmnop",
    "AbCdEfGhIjKlMnOpQrStUv",
    "qWeRtZuIoPaSdFgHjKlYxC",
    "XKQPZMWLRTBVNHGJDFCSAE",
    "live-token-xkqpzmwlrtbvnhgjdfcs",
)

NAMES = (
    "username",
    "X-Api-Key",
    "client id",
    "aws_secret_access_key",
    "AWS_SECRET_ACCESS_KEY",
    "clientSecret",
    "myApiKeyId",
    "Authorization",
    "authentication",
    "openai",
    "HTTPSProxyPassword",
    "xApiKey",
)


@pytest.mark.parametrize("token", TOKENS)
def test_a_token_of_letters_used_as_a_key_under_a_secret_name_is_secret(token: str) -> None:
    assert token in secret_values({"api_keys": {token: "prod"}})
    assert token in secret_values({"tokens": {"prod": {token: 1}}})
    # (under an ordinary name a key is no secret, as before)
    assert token not in secret_values({"labels": {token: "prod"}})


def test_keys_that_read_as_names_under_a_secret_name_are_not_secret() -> None:
    found = secret_values({"credentials": dict.fromkeys(NAMES, "sk-live-0123456789")})
    assert not set(NAMES) & set(found)
    assert "sk-live-0123456789" in found


class UsesItsKey(BaseTool):
    name = "uses_its_key"
    description = "Quotes the token it holds as a key of its api_keys mapping."

    def _execute(self, **kwargs: Any) -> Any:
        (token,) = kwargs["api_keys"]
        task = require_current_task()
        task.progress(5, f"trying {token}")
        task.checkpoint("tried", {"token": token})
        if kwargs.get("fail"):
            raise PermissionError(f"key {token} was revoked")
        return {"used": token}


@pytest.mark.parametrize("token", TOKENS[:2])
def test_a_token_of_letters_used_as_a_key_reaches_no_span_log_or_status(
    token: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="laios")
    parameters = {"api_keys": {token: "prod"}}
    text = failed_run_text(UsesItsKey, parameters, "PermissionError")
    assert "was revoked" in text
    assert '"api_keys":"[REDACTED]"' in text  # (captured arguments, as before)
    assert token not in text
    assert "was revoked" in caplog.text
    assert token not in caplog.text
    statuses = statuses_at_progress(UsesItsKey, parameters)
    assert "trying [REDACTED]" in statuses[0]
    assert token not in statuses[0]
