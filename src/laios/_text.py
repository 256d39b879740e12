"""Cutting text to a length for a message or a record (for the tools and the executor alike)."""

from __future__ import annotations

__all__ = ["MAX_QUOTED_CHARS", "SHOWN_NAME_CHARS", "quoted", "shorten"]

#: The longest name (a tool's, say) that a message shows whole, in characters: a longer one is
#: cut to this length (see :func:`shorten`), so that a huge name does not make a huge message.
SHOWN_NAME_CHARS = 128


#: The longest description of a value (its ``repr``) that an error message quotes, in
#: characters: a value may be of any length.
MAX_QUOTED_CHARS = 200


def shorten(text: str, limit: int) -> str:
    """Return ``text`` cut to ``limit`` characters, marking the cut with an ellipsis.

    Args:
        text: Any string.
        limit: The longest result, in characters.

    Returns:
        ``text`` itself when it fits, otherwise its first characters followed by ``"…"``.
    """
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)] + "…"


def quoted(value: object) -> str:
    """``repr(value)`` for an error message (escapes for what is not printable), cut to
    :data:`MAX_QUOTED_CHARS` characters; a value whose ``repr`` raises is described by its
    type (``<Thing object>``). Never raises."""
    try:
        text = repr(value)
    except Exception:
        return f"<{shorten(type(value).__qualname__, MAX_QUOTED_CHARS)} object>"
    return shorten(text, MAX_QUOTED_CHARS)
