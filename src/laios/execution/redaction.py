"""Keeping secrets and oversized values out of telemetry and logs.

Tool parameters often carry credentials. Nothing the executor emits (spans, logs, metrics,
``/status``, result metadata) contains them: values under secret-looking keys are replaced by
``[REDACTED]`` when content capture is on, and those values are scrubbed out of error text
before any error reaches telemetry or logs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "MAX_ERROR_BYTES",
    "MAX_STRING_CHARS",
    "MAX_VALUE_BYTES",
    "REDACTED",
    "is_secret_key",
    "redact",
    "scrub",
    "secret_values",
    "to_json",
    "truncate_bytes",
]

#: What a secret value is replaced with.
REDACTED = "[REDACTED]"
#: Longest error text that reaches a span, an event or a log record, in UTF-8 bytes.
MAX_ERROR_BYTES = 1024
#: Longest captured argument or result (JSON) on a span, in UTF-8 bytes.
MAX_VALUE_BYTES = 4096
#: Longest single string inside captured arguments or results, in characters.
MAX_STRING_CHARS = 256
#: Shortest secret value scrubbed from free text (shorter ones would mangle ordinary words).
MIN_SCRUB_CHARS = 4

_SECRET_KEY = re.compile(
    r"key|token|secret|passw|authorization|cookie|credential|session_?id|private",
    re.IGNORECASE,
)


def is_secret_key(key: object) -> bool:
    """Whether a parameter name looks like it holds a secret (``api_key``, ``Authorization``…)."""
    return isinstance(key, str) and _SECRET_KEY.search(key) is not None


def truncate_bytes(text: str, limit: int = MAX_ERROR_BYTES) -> str:
    """Cut ``text`` so that its UTF-8 encoding is at most ``limit`` bytes, marking the cut."""
    encoded = text.encode("utf-8", "replace")
    if len(encoded) <= limit:
        return text
    marker = "…[truncated]"
    room = limit - len(marker.encode("utf-8"))
    if room < 0:  # no space even for the marker
        return encoded[: max(limit, 0)].decode("utf-8", "ignore")
    return encoded[:room].decode("utf-8", "ignore") + marker


def secret_values(params: Any, _depth: int = 0) -> list[str]:
    """Collect the string values held under secret-looking keys, at any depth (longest first)."""
    found: list[str] = []

    def visit(value: Any, secret: bool, depth: int) -> None:
        if depth > 8:
            return
        if isinstance(value, Mapping):
            for key, inner in value.items():
                visit(inner, secret or is_secret_key(key), depth + 1)
        elif isinstance(value, (list, tuple, set, frozenset)):
            for inner in value:
                visit(inner, secret, depth + 1)
        elif secret and isinstance(value, (str, bytes, int)) and not isinstance(value, bool):
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
            found.append(text)
            # "Bearer abc…": the credential after an auth scheme leaks on its own too.
            scheme, _, rest = text.partition(" ")
            if rest and scheme.isalpha():
                found.append(rest)

    visit(params, False, _depth)
    unique = {v for v in found if len(v) >= MIN_SCRUB_CHARS}
    return sorted(unique, key=len, reverse=True)


def scrub(text: str, secrets: Iterable[str], limit: int | None = MAX_ERROR_BYTES) -> str:
    """Replace every occurrence of each secret in ``text``, then truncate to ``limit`` bytes.

    Args:
        text: Free text such as an error message or a traceback.
        secrets: Values to remove (see :func:`secret_values`).
        limit: Byte limit of the result; ``None`` keeps the full length.
    """
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return truncate_bytes(text, limit) if limit is not None else text


def redact(value: Any, secrets: Sequence[str] = (), _depth: int = 0) -> Any:
    """A JSON-ready copy of ``value`` with secrets replaced and long strings cut.

    Values under secret-looking keys become ``"[REDACTED]"``; every occurrence of one of
    ``secrets`` inside a string (and a number equal to one) is replaced too, so a secret
    repeated under an ordinary key or echoed in a result does not leak. Strings longer than
    ``MAX_STRING_CHARS`` are truncated; anything not JSON-native becomes its ``repr``
    (truncated). Nesting deeper than 8 levels is replaced by ``"…"``.
    """
    if _depth > 8:
        return "…"
    if isinstance(value, Mapping):
        return {
            scrub(str(k), secrets, limit=None)[:MAX_STRING_CHARS]: REDACTED
            if is_secret_key(k)
            else redact(v, secrets, _depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple, set, frozenset)):
        return [redact(v, secrets, _depth + 1) for v in value]
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return REDACTED if secrets and str(value) in secrets else value
    text = value if isinstance(value, str) else _safe_repr(value)
    if secrets:
        text = scrub(text, secrets, limit=None)
    if len(text) > MAX_STRING_CHARS:
        text = text[: MAX_STRING_CHARS - 1] + "…"
    return text


def _safe_repr(value: Any) -> str:
    """``repr(value)``, or a placeholder when the object's own ``__repr__`` fails."""
    try:
        return repr(value)
    except Exception:
        return f"<{type(value).__name__} object (repr failed)>"


def to_json(value: Any, limit: int | None = MAX_VALUE_BYTES, secrets: Sequence[str] = ()) -> str:
    """Redact ``value`` (see :func:`redact`) and render it as compact JSON of at most
    ``limit`` bytes (``None``: no limit)."""
    try:
        text = json.dumps(
            redact(value, secrets), ensure_ascii=False, separators=(",", ":"), default=str
        )
    except (TypeError, ValueError):
        text = json.dumps(redact(_safe_repr(value), secrets))
    return truncate_bytes(text, limit) if limit is not None else text
