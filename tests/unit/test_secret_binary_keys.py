"""A binary secret (random bytes that are not UTF-8 text: an HMAC or encryption key) is
scrubbed where a tool writes it as text the usual ways: in base64, standard or URL-safe, and in
hexadecimal."""

from __future__ import annotations

import base64
import logging
from typing import Any

import pytest
from pydantic import SecretBytes
from secret_runs import traced_run

from laios.execution.redaction import REDACTED, scrub, secret_values
from laios.tools.base import BaseTool, ToolInput

#: 32 bytes that are not UTF-8 (as a key from ``os.urandom`` almost never is).
KEY = bytes(range(200, 232))

WRITTEN = {
    "base64": lambda key: base64.b64encode(key).decode("ascii"),
    "url-safe base64": lambda key: base64.urlsafe_b64encode(key).decode("ascii"),
    "base64 without padding": lambda key: base64.b64encode(key).decode("ascii").rstrip("="),
    "hex": lambda key: key.hex(),
    "upper-case hex": lambda key: key.hex().upper(),
}


@pytest.mark.parametrize("how", sorted(WRITTEN))
def test_a_binary_secret_written_as_text_is_scrubbed(how: str) -> None:
    written = WRITTEN[how](KEY)
    secrets = secret_values({"signing_key": KEY})
    assert scrub(f"bad signature with {written} (len 32)", secrets) == (
        f"bad signature with {REDACTED} (len 32)"
    )


@pytest.mark.parametrize("how", ["hex", "upper-case hex"])
def test_a_secret_given_as_bytes_of_text_written_in_hex_is_scrubbed(how: str) -> None:
    """Bytes that happen to be text (a header value, ``b"Bearer …"``) are still binary data a
    tool may write in hex."""
    key = b"sk-live-ABCDEFGHIJKLMNOPQRSTUVWXYZ-0123456789"
    written = WRITTEN[how](key)
    secrets = secret_values({"signing_key": key})
    assert scrub(f"bad signature with {written}", secrets) == f"bad signature with {REDACTED}"


def test_a_binary_secret_in_a_longer_base64_text_is_scrubbed() -> None:
    """Inside the base64 of more data (``nonce + key``), at any place in a group of three
    bytes, the characters that encode the key alone are scrubbed."""
    secrets = secret_values({"api_key": KEY})
    for before in (b"", b"n", b"no", b"non"):
        written = base64.b64encode(before + KEY + b"tail").decode("ascii")
        scrubbed = scrub(written, secrets)
        assert REDACTED in scrubbed
        assert len(scrubbed.replace(REDACTED, "")) <= 4 + len(before) * 2 + 8


class KeyInput(ToolInput):
    key: SecretBytes


class SignsBadly(BaseTool):
    name = "signs_badly"
    description = "Quotes its binary key in base64 and in hex in its error."
    input_model = KeyInput

    def _execute(self, **kwargs: Any) -> Any:
        key = kwargs["key"].get_secret_value()
        raise ValueError(
            f"signature rejected for key {base64.b64encode(key).decode()} ({key.hex()})"
        )


def test_a_binary_key_quoted_by_its_tool_reaches_no_span(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="laios")
    result, span = traced_run(SignsBadly, {"key": KEY}, capture=True)
    assert result.metadata["error_type"] == "ValueError"
    text = f"{span.status.description} {dict(span.attributes or {})} " + str(
        [dict(event.attributes or {}) for event in span.events]
    )
    assert f"for key {REDACTED} ({REDACTED})" in text
    for written in WRITTEN.values():
        assert written(KEY)[:8] not in text
        assert written(KEY)[:8] not in caplog.text
