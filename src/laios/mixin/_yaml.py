"""A small, deterministic YAML writer for the mixin's files (rules, tests, Kubernetes manifests).

Why not PyYAML: it is not a dependency of laios, its output folds PromQL into quoted strings with
``\\n`` escapes, and it cannot write comments. The generated files are read by people (a rule
file is where an on-call person looks first), so this writer emits what a person would write:
block scalars (``|``) for multi-line expressions, folded scalars (``>-``) for long prose, plain
scalars where YAML reads them back as the same string, quotes everywhere else, and a comment
above any list item built with :class:`Commented`. The tests check that PyYAML reads every
output back as the data it was given.

Supported values: ``dict`` with ``str`` keys (written in insertion order), ``list``/``tuple``,
``str``, ``int``, ``bool`` and ``None``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["Commented", "dump"]

#: Lines of prose are folded before this column.
WIDTH = 100

#: Strings YAML 1.1 (PyYAML) would read as something else than a string when plain.
_RESERVED = frozenset(
    variant
    for word in ("y", "yes", "n", "no", "true", "false", "on", "off", "null", "~", "=", "<<")
    for variant in (word, word.capitalize(), word.upper())
)
#: Plain scalars: a letter, underscore or slash first, then no character YAML gives a meaning
#: to (a colon only inside a word: ``laios:tasks:rate5m``, ``https://example.com``).
_PLAIN = re.compile(r"[A-Za-z_/][A-Za-z0-9_./()+:-]*(?: [A-Za-z0-9_./()+:-]+)*")
#: Durations (``5m``, ``1h30m``) are plain too: YAML 1.1 has no number or date of that shape.
_DURATION = re.compile(r"(?:[0-9]+(?:ms|[smhdwy]))+")
#: Characters that may stay as they are inside a quoted or block scalar.
#: (Not NEL, LS or PS: YAML 1.1 reads them as line breaks; nor the byte order mark.)
_UNSAFE = re.compile(
    "[^\t\n\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]"
)


class Commented(dict[str, Any]):
    """A mapping written with ``# comment`` lines above it when it is a list item.

    It equals the plain ``dict`` with the same items, so data built with it compares equal to
    what a YAML parser reads back.
    """

    def __init__(self, comment: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.comment = comment


def dump(value: Any) -> str:
    """Return ``value`` as a YAML document ending in a newline."""
    if isinstance(value, Mapping) and value:
        return "".join(_mapping(value, 0))
    if isinstance(value, Sequence) and not isinstance(value, str) and value:
        return "".join(_sequence(value, 0))
    return _inline(value, 2) + "\n"


def _mapping(mapping: Mapping[str, Any], indent: int) -> list[str]:
    lines = []
    pad = " " * indent
    for key, item in mapping.items():
        if not isinstance(key, str):
            raise TypeError(f"YAML keys must be strings here, got {key!r}")
        head = f"{pad}{_key(key)}:"
        if isinstance(item, Mapping) and item:
            lines.append(head + "\n")
            lines.extend(_mapping(item, indent + 2))
        elif isinstance(item, Sequence) and not isinstance(item, str) and item:
            lines.append(head + "\n")
            lines.extend(_sequence(item, indent + 2))
        else:
            lines.append(f"{head} {_inline(item, indent + 2, len(head) + 1)}\n")
    return lines


def _sequence(sequence: Sequence[Any], indent: int) -> list[str]:
    lines: list[str] = []
    pad = " " * indent
    for item in sequence:
        if isinstance(item, Commented):
            lines.extend(f"{pad}# {line}".rstrip() + "\n" for line in item.comment.splitlines())
        if isinstance(item, Mapping) and item:
            nested = _mapping(item, indent + 2)
            lines.append(f"{pad}- {nested[0][indent + 2 :]}")
            lines.extend(nested[1:])
        elif isinstance(item, Sequence) and not isinstance(item, str) and item:
            nested = _sequence(item, indent + 2)
            lines.append(f"{pad}- {nested[0][indent + 2 :]}")
            lines.extend(nested[1:])
        else:
            lines.append(f"{pad}- {_inline(item, indent + 2, indent + 2)}\n")
    return lines


def _key(key: str) -> str:
    return key if _is_plain(key) else _double_quoted(key)


def _inline(value: Any, indent: int, column: int = 0) -> str:
    """A scalar or an empty collection, written after ``key:`` or ``-`` at ``column``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _string(value, indent, column)
    if isinstance(value, Mapping):
        return "{}"
    if isinstance(value, Sequence):
        return "[]"
    raise TypeError(f"cannot write {type(value).__name__} as YAML here: {value!r}")


def _is_plain(text: str) -> bool:
    if text in _RESERVED or ": " in text or text.endswith(":"):
        return False
    return bool(_PLAIN.fullmatch(text) or _DURATION.fullmatch(text))


def _string(text: str, indent: int, column: int) -> str:
    if _is_plain(text) and column + len(text) <= WIDTH:
        return text
    if "\n" in text and _fits_block(text):
        chomp = "" if text.endswith("\n") else "-"
        pad = " " * indent
        body = "".join(f"{pad}{line}\n" if line else "\n" for line in text.splitlines())
        return f"|{chomp}\n{body}".rstrip("\n")
    plain_chars = _UNSAFE.search(text) is None and "\n" not in text and "\t" not in text
    quoted = _single_quoted(text) if plain_chars else None
    if quoted is not None and column + len(quoted) <= WIDTH:
        return quoted
    if _fits_folded(text):
        return ">-\n" + "\n".join(" " * indent + line for line in _wrap(text, WIDTH - indent))
    return quoted if quoted is not None else _double_quoted(text)


def _fits_block(text: str) -> bool:
    """Whether a literal block scalar (``|`` or ``|-``) reads back as exactly ``text``."""
    lines = text.splitlines()
    return (
        _UNSAFE.search(text) is None
        and "\r" not in text
        and "\t" not in text
        and not text.endswith("\n\n")
        and bool(lines)
        and lines[0] != ""
        and not lines[0].startswith(" ")
        and all(line == line.rstrip(" ") for line in lines)
    )


def _fits_folded(text: str) -> bool:
    """Whether ``>-`` with lines broken at single spaces reads back as exactly ``text``."""
    return (
        _UNSAFE.search(text) is None
        and not any(c in text for c in "\n\r\t")
        and "  " not in text
        and text == text.strip(" ")
        and " " in text
    )


def _wrap(text: str, width: int) -> list[str]:
    """Break ``text`` at single spaces into lines of at most ``width`` where it can, never
    inside a ``{{ ... }}`` template action (a person reads those as one word)."""
    words: list[str] = []
    depth = 0
    for word in text.split(" "):
        if depth > 0:
            words[-1] += " " + word
        else:
            words.append(word)
        depth += word.count("{{") - word.count("}}")
    lines: list[str] = []
    line = ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return lines


def _single_quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _double_quoted(text: str) -> str:
    out = ['"']
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif _UNSAFE.match(char) is None:
            out.append(char)
        elif ord(char) <= 0xFF:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) <= 0xFFFF:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    out.append('"')
    return "".join(out)
