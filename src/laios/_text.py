"""Cutting text to a length for a message or a record (for the tools and the executor alike)."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import TypeVar

from laios._compat.pydantic import is_instance
from laios._exceptions import type_name

__all__ = ["MAX_QUOTED_CHARS", "SHOWN_NAME_CHARS", "member_of", "quoted", "shorten", "shown_name"]

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


def shown_name(name: str) -> str:
    """A tool's name as every message and log line shows it: cut to :data:`SHOWN_NAME_CHARS`
    characters (see :func:`shorten`), whatever length a registry allows a name."""
    return shorten(name, SHOWN_NAME_CHARS)


def shown_type(value: object) -> str:
    """The name of ``value``'s class as a message or a description shows it: read past a
    metaclass whose ``__name__`` raises (see :func:`~laios._exceptions.type_name`), and cut
    to ``MAX_QUOTED_CHARS`` characters (a class may be made with a name of any size). Never
    raises."""
    return shorten(type_name(type(value)), MAX_QUOTED_CHARS)


def quoted(value: object) -> str:
    """``repr(value)`` for an error message (escapes for what is not printable), cut to
    :data:`MAX_QUOTED_CHARS` characters; a value whose ``repr`` raises is described by its
    type (``<Thing object>``). Never raises."""
    try:
        text = repr(value)
    except Exception:
        return f"<{shown_type(value)} object>"
    return shorten(text, MAX_QUOTED_CHARS)


_Member = TypeVar("_Member", bound=Enum)


def member_of(
    kind: type[_Member], argument: str, value: object, quote: Callable[[str], str]
) -> _Member:
    """``value`` as a member of ``kind`` (a ``str`` enum), given as option ``argument``: a
    member as it is, a string (a ``str`` subclass as its text) looked up among the values.
    Nothing else is looked up: the lookup would call the value's own hash and ``==``, which
    may raise; nor is any other method of it called.

    Args:
        kind: The enum.
        argument: The name the errors give the value.
        value: What the caller gave.
        quote: Quotes (and cuts) an unknown string for the ``ValueError``: the enum's own
            message quotes it whole, however long.

    Raises:
        TypeError: When ``value`` is neither a member nor a string, naming ``argument``, the
            type given (cut to :data:`SHOWN_NAME_CHARS`) and the values to pass.
        ValueError: When it is a string that is no value of ``kind``, naming ``argument`` and
            the values, and quoting the string with ``quote``.
    """
    if is_instance(value, kind):  # (the common case)
        return value
    if not is_instance(value, str):  # (nor a value whose __class__ raises: a proxy's)
        raise TypeError(
            f"{argument} must be a {kind.__name__} or one of its values ({_values(kind)}), got "
            f"{shorten(type_name(type(value)), SHOWN_NAME_CHARS)}"
        )
    text = str.__str__(value)  # (its own ``__str__`` may raise)
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"{argument} must be one of {_values(kind)}, got {quote(text)}") from None


def _values(kind: type[Enum]) -> str:
    """The values of ``kind``, as the errors of :func:`member_of` list them."""
    return ", ".join(repr(member.value) for member in kind)
