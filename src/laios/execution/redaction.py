"""Keeping secrets and oversized values out of telemetry and logs.

Tool parameters often carry credentials. Nothing the executor emits (spans, logs, metrics,
``/status``, result metadata) contains them: values under secret-looking keys are replaced by
``[REDACTED]`` when content capture is on, and those values are scrubbed out of error text
before any error reaches telemetry or logs.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

__all__ = [
    "MAX_ERROR_BYTES",
    "MAX_SECRET_SCAN_ITEMS",
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
#: Most keys and items :func:`secret_values` looks at in one set of parameters.
MAX_SECRET_SCAN_ITEMS = 5000
#: Deepest nesting level that is read (deeper values are neither copied nor searched).
_MAX_DEPTH = 8
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
    """Collect the string values held under secret-looking keys (longest first).

    The work is bounded: at most ``MAX_SECRET_SCAN_ITEMS`` keys and items are looked at in all,
    and nothing deeper than 8 levels. Containers are read in turn, one item from each at a time
    in the order they were reached (top level first), so a container with millions of items
    takes only its share: secrets under secret-named keys of the top levels are found even next
    to such a container. Values beyond the bound are not collected, and are not scrubbed from
    error text.
    """
    found: list[str] = []
    # Containers being read: (their remaining (secret, value) items, depth of those items).
    pending: deque[tuple[Iterator[tuple[bool, Any]], int]] = deque()

    def visit(value: Any, secret: bool, depth: int) -> None:
        if isinstance(value, Mapping):
            if depth < _MAX_DEPTH:
                items = ((secret or is_secret_key(k), v) for k, v in value.items())
                pending.append((items, depth + 1))
        elif isinstance(value, (list, tuple, set, frozenset)):
            if depth < _MAX_DEPTH:
                pending.append((((secret, v) for v in value), depth + 1))
        elif secret and isinstance(value, (str, bytes, int)) and not isinstance(value, bool):
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
            found.append(text)
            # "Bearer abc…": the credential after an auth scheme leaks on its own too.
            scheme, _, rest = text.partition(" ")
            if rest and scheme.isalpha():
                found.append(rest)

    if _depth <= _MAX_DEPTH:
        visit(params, False, _depth)
    budget = MAX_SECRET_SCAN_ITEMS
    while pending and budget > 0:
        items, depth = pending.popleft()
        item = next(items, None)
        if item is None:
            continue
        budget -= 1
        pending.append((items, depth))
        visit(item[1], item[0], depth)
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


def redact(value: Any, secrets: Sequence[str] = (), *, limit: int | None = MAX_VALUE_BYTES) -> Any:
    """A JSON-ready copy of ``value`` with secrets replaced and long strings cut.

    Values under secret-looking keys become ``"[REDACTED]"``; every occurrence of one of
    ``secrets`` inside a string or a key (and a number equal to one) is replaced too, so a
    secret repeated under an ordinary key or echoed in a result does not leak. Strings longer
    than ``MAX_STRING_CHARS`` are truncated; anything not JSON-native becomes its ``repr``
    (truncated). Nesting deeper than 8 levels is replaced by ``"…"``.

    Keys that become equal once cut or scrubbed keep the last value, in the place of the
    first (as in a ``dict`` built from them).

    The copy stops once its compact JSON passes ``limit`` bytes (``None``: no limit), so the
    work done depends on ``limit``, not on the size of ``value``: every container still being
    copied at that point ends with a ``"…"`` item (a ``"…": "…"`` entry in a mapping). Up to
    its first ``limit`` bytes, the JSON of the copy is that of the complete copy (unless more
    than ``limit`` keys became equal to earlier ones, which also stops the copy).
    """
    copier = _Copier(secrets, limit)
    return copier.copy(value, 0)


class _Copier:
    """One :func:`redact` run: the secrets to replace and the work done so far.

    ``size`` counts the characters of the compact JSON of the copy written so far, a lower
    bound of its UTF-8 bytes (JSON escapes only add to a string); once it passes ``limit``,
    containers take no more items. ``repeated`` counts mapping keys that became equal to an
    earlier key once cut or scrubbed: they add nothing to ``size`` but cost work all the same.
    """

    __slots__ = ("limit", "longest", "numbers", "repeated", "secrets", "size")

    def __init__(self, secrets: Sequence[str], limit: int | None) -> None:
        self.secrets = [s for s in secrets if s]
        self.numbers = frozenset(self.secrets)
        self.longest = max(map(len, self.secrets), default=0)
        self.limit = limit
        self.size = 0
        self.repeated = 0

    def full(self) -> bool:
        """Whether the copy has passed its byte limit."""
        limit = self.limit
        return limit is not None and (self.size > limit or self.repeated > limit)

    def copy(self, value: Any, depth: int) -> Any:
        """The redacted copy of ``value`` found ``depth`` levels down."""
        if depth > _MAX_DEPTH:
            return self.string("…")
        if isinstance(value, Mapping):
            return self.copy_mapping(value, depth)
        if isinstance(value, (list, tuple, set, frozenset)):
            return self.copy_items(value, depth)
        if value is None or isinstance(value, bool):
            self.size += 5 if value is False else 4  # null, true, false
            return value
        if isinstance(value, (int, float)):
            try:
                if self.numbers and str(value) in self.numbers:
                    return self.string(REDACTED)
                # json writes an int or float subclass as the plain number; "inf" and "nan"
                # are shorter than json's "Infinity" and "NaN".
                number = int.__repr__(value) if isinstance(value, int) else float.__repr__(value)
            except ValueError:  # an int with too many digits to print
                value = _safe_repr(value)
            else:
                self.size += len(number)
                return value
        text = value if isinstance(value, str) else _safe_repr(value)
        return self.string(self.text(text, MAX_STRING_CHARS))

    def string(self, text: str) -> str:
        """Count ``text`` as a JSON string of the copy and return it."""
        self.size += len(text) + 2
        return text

    def copy_mapping(self, value: Mapping[Any, Any], depth: int) -> dict[str, Any]:
        """The redacted copy of a mapping (keys as strings)."""
        out: dict[str, Any] = {}
        sizes: dict[str, int] = {}  # what each value added to `size`
        self.size += 1  # "{"; "}" once written
        for key, inner in value.items():
            if self.full():
                out.setdefault("…", "…")
                break
            name = self.text(str(key), MAX_STRING_CHARS, mark=False)
            if name in out:  # the last value wins, in the place of the first
                self.repeated += 1
                self.size -= sizes[name]
            else:
                self.size += len(name) + 3 + (1 if out else 0)  # "name": and a comma
            before = self.size
            out[name] = self.string(REDACTED) if is_secret_key(key) else self.copy(inner, depth + 1)
            sizes[name] = self.size - before
        self.size += 1
        return out

    def copy_items(self, value: Iterable[Any], depth: int) -> list[Any]:
        """The redacted copy of a list, tuple or set (as a list)."""
        out: list[Any] = []
        self.size += 1  # "["; "]" once written
        for inner in value:
            if self.full():
                out.append("…")
                break
            if out:
                self.size += 1  # a comma
            out.append(self.copy(inner, depth + 1))
        self.size += 1
        return out

    def text(self, text: str, chars: int, mark: bool = True) -> str:
        """``text`` with every secret replaced, cut to ``chars`` characters (ending in ``…``
        when ``mark``), reading no more of ``text`` than those characters need."""
        head = self.scrub_head(text, chars + 1)
        if len(head) <= chars:
            return head
        return head[: chars - 1] + "…" if mark else head[:chars]

    def scrub_head(self, text: str, chars: int) -> str:
        """The first ``chars`` characters of ``text`` with every occurrence of a secret
        replaced by ``[REDACTED]`` (left to right; where several start, the longest wins).

        Only ``text`` up to the last character kept plus the longest secret is searched.
        """
        secrets = self.secrets
        if not secrets:
            return text[:chars]
        parts: list[str] = []
        size = pos = 0
        end = len(text)
        while size < chars and pos < end:
            need = chars - size
            # A secret starting before pos + need lies wholly before `stop`.
            stop = min(end, pos + need + self.longest)
            first, length = -1, 0
            for secret in secrets:
                at = text.find(secret, pos, stop)
                if 0 <= at < pos + need and (
                    first < 0 or at < first or (at == first and len(secret) > length)
                ):
                    first, length = at, len(secret)
            if first < 0:
                parts.append(text[pos : pos + need])
                break
            parts.append(text[pos:first])
            parts.append(REDACTED)
            size += first - pos + len(REDACTED)
            pos = first + length
        return "".join(parts)[:chars]


def _safe_repr(value: Any) -> str:
    """``repr(value)``, or a placeholder when the object's own ``__repr__`` fails."""
    try:
        return repr(value)
    except Exception:
        return f"<{type(value).__name__} object (repr failed)>"


def to_json(value: Any, limit: int | None = MAX_VALUE_BYTES, secrets: Sequence[str] = ()) -> str:
    """Redact ``value`` (see :func:`redact`) and render it as compact JSON of at most
    ``limit`` bytes (``None``: no limit), ending in ``…[truncated]`` when cut.

    Only as much of ``value`` is read as fits in ``limit`` bytes, however large ``value`` is.
    """
    try:
        text = json.dumps(
            redact(value, secrets, limit=limit),
            ensure_ascii=False,
            separators=(",", ":"),
            default=str,
        )
    except (TypeError, ValueError):
        text = json.dumps(redact(_safe_repr(value), secrets, limit=limit))
    return truncate_bytes(text, limit) if limit is not None else text
