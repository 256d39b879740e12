"""Cutting text to a length for a message or a record (for the tools and the executor alike)."""

from __future__ import annotations

__all__ = ["SHOWN_NAME_CHARS", "shorten"]

#: The longest name (a tool's, say) that a message shows whole, in characters: a longer one is
#: cut to this length (see :func:`shorten`), so that a huge name does not make a huge message.
SHOWN_NAME_CHARS = 128


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
