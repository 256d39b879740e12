"""Parameter descriptions read from a function's docstring.

A tool described from a function's signature (:func:`~laios.tools.base.create_simple_tool`,
or a tool class whose ``_execute`` takes named parameters) describes each parameter with what
the function's docstring says of it, in any of the three common styles:

* Google: an ``Args:`` (or ``Arguments:``, ``Parameters:``, ``Keyword Args:``, ...) section of
  ``name: text`` or ``name (type): text`` entries, an entry's text going on over the lines
  indented further than its name;
* NumPy: a ``Parameters`` section underlined with dashes, of ``name : type`` lines, each
  followed by its text indented further;
* Sphinx: ``:param name: text`` (or ``:param type name: text``) fields, going on over the lines
  indented further.

An entry's lines are joined with spaces, its paragraphs (parted by a blank line) with a blank
line. Reading never raises: a docstring that is not text, or that these rules do not make sense
of, describes nothing.
"""

from __future__ import annotations

import functools
import inspect
import re
from typing import Any

__all__ = ["parameter_descriptions"]

#: The headers of a Google-style section that lists parameters (compared without case).
_GOOGLE_HEADERS = frozenset(
    {
        "args",
        "arguments",
        "parameters",
        "params",
        "keyword args",
        "keyword arguments",
        "other parameters",
    }
)
#: The headers of a NumPy-style section that lists parameters (compared without case).
_NUMPY_HEADERS = frozenset({"parameters", "other parameters", "keyword arguments"})
_NUMPY_UNDERLINE = re.compile(r"-{3,}")
# An entry's names: ``name``, ``a, b``, ``*args`` (written ``\\*args`` too). Matched from the
# start of a line, and then nothing but plain string methods, so that no line of a docstring,
# however long, takes more than one pass.
_NAMES = re.compile(r"[\w*\\]+(?:[ \t]*,[ \t]*[\w*\\]+)*")
#: The field names of a Sphinx-style parameter (``:param name: text``).
_SPHINX_FIELDS = frozenset(
    {"param", "parameter", "arg", "argument", "key", "keyword", "kwarg", "kwparam"}
)
_NAME = re.compile(r"[A-Za-z_]\w*")

#: The longest docstring read: past it, the rest says nothing of the parameters.
_MAX_DOC = 100_000
#: How many ``functools.partial`` layers are looked through for the function's docstring.
_MAX_PARTIALS = 64


def parameter_descriptions(func: Any) -> dict[str, str]:
    """What the docstring of ``func`` says of each of its parameters, by name (the first entry
    of a name wins). Never raises: an empty dict when there is nothing to read.

    The docstring read is the one of what is called: of a function or a method itself (not an
    inherited one), of the function a ``functools.partial`` wraps, and of an object's
    ``__call__``.
    """
    try:
        doc = _docstring(func)
        if not isinstance(doc, str) or not doc.strip():
            return {}
        return _parsed(inspect.cleandoc(doc[:_MAX_DOC]).splitlines())
    except Exception:  # (a docstring too odd to read describes nothing)
        return {}


def _docstring(func: Any) -> Any:
    """The docstring that describes the parameters ``func`` is called with."""
    for _ in range(_MAX_PARTIALS):
        if not isinstance(func, (functools.partial, functools.partialmethod)):
            break
        func = func.func
    if isinstance(func, (staticmethod, classmethod)):
        func = func.__func__
    if inspect.isroutine(func) or inspect.isclass(func):
        return getattr(func, "__doc__", None)
    # (a callable object: the parameters are its call's)
    return type(func).__call__.__doc__ if callable(func) else None


def _parsed(lines: list[str]) -> dict[str, str]:
    """The parameter descriptions of a docstring's lines, cleaned of their common indentation."""
    found: dict[str, str] = {}
    index = 0
    while index < len(lines):
        line = lines[index]
        stripped = line.strip()
        indent = _indent(line)
        if index + 1 < len(lines) and _is_underline(lines[index + 1]):
            if _words(stripped) in _NUMPY_HEADERS:
                index = _numpy_section(lines, index + 2, indent, found)
                continue
        elif stripped.endswith(":") and _words(stripped[:-1]) in _GOOGLE_HEADERS:
            index = _google_section(lines, index + 1, indent, found)
            continue
        field = _sphinx_field(stripped)
        if field is None:
            index += 1
            continue
        name, first = field
        text, index = _continued(lines, index + 1, indent, first)
        _add(found, [name], text)
    return found


def _google_section(lines: list[str], index: int, header_indent: int, found: dict[str, str]) -> int:
    """Read the entries of a Google-style section starting at ``lines[index]``; return the index
    of the first line after it."""
    entry_indent: int | None = None
    while index < len(lines):
        line = lines[index]
        if not line.strip():
            index += 1
            continue
        indent = _indent(line)
        if indent <= header_indent:
            break
        if entry_indent is None:
            entry_indent = indent
        entry = _google_entry(line.strip()) if indent == entry_indent else None
        if entry is None:  # (a line no entry's text goes on over: not one of ours)
            index += 1
            continue
        names, first = entry
        text, index = _continued(lines, index + 1, indent, first)
        _add(found, names, text)
    return index


def _numpy_section(lines: list[str], index: int, header_indent: int, found: dict[str, str]) -> int:
    """Read the entries of a NumPy-style section starting at ``lines[index]`` (after the
    underline); return the index of the first line after it."""
    while index < len(lines):
        line = lines[index]
        if not line.strip():
            index += 1
            continue
        indent = _indent(line)
        if indent < header_indent or (index + 1 < len(lines) and _is_underline(lines[index + 1])):
            break  # (a line less indented than the header, or the next section's header)
        names = _numpy_entry(line.strip()) if indent == header_indent else None
        if names is None:
            index += 1
            continue
        text, index = _continued(lines, index + 1, indent, "")
        _add(found, names, text)
    return index


def _google_entry(line: str) -> tuple[list[str], str] | None:
    """The names and the text of ``name: text``, ``name (type): text``, ``a, b: text``."""
    names = _NAMES.match(line)
    if names is None:
        return None
    rest = line[names.end() :].lstrip()
    if rest.startswith("("):
        closing = rest.find(")")
        if closing < 0:
            return None
        rest = rest[closing + 1 :].lstrip()
    if not rest.startswith(":"):
        return None
    return names.group().split(","), rest[1:]


def _numpy_entry(line: str) -> list[str] | None:
    """The names of ``name : type``, ``name``, ``a, b : type``."""
    names = _NAMES.match(line)
    if names is None:
        return None
    rest = line[names.end() :].lstrip()
    return names.group().split(",") if not rest or rest.startswith(":") else None


def _sphinx_field(line: str) -> tuple[str, str] | None:
    """The name and the text of ``:param name: text`` or ``:param type name: text``."""
    if not line.startswith(":"):
        return None
    closing = line.find(":", 1)
    if closing < 0:
        return None
    words = line[1:closing].split()
    if len(words) < 2 or words[0] not in _SPHINX_FIELDS:
        return None
    return words[-1], line[closing + 1 :]


def _is_underline(line: str) -> bool:
    return _NUMPY_UNDERLINE.fullmatch(line.strip()) is not None


def _words(text: str) -> str:
    """``text`` in lower case, its words parted by one space (how section headers compare)."""
    return " ".join(text.lower().split())


def _continued(lines: list[str], index: int, indent: int, first: str) -> tuple[str, int]:
    """An entry's text: ``first`` (the rest of its own line) and the lines from ``index`` on
    indented further than ``indent`` (blank lines between them part paragraphs). Returns the
    text and the index of the first line after it."""
    paragraphs: list[list[str]] = [[first.strip()] if first.strip() else []]
    while index < len(lines):
        line = lines[index]
        if line.strip():
            if _indent(line) <= indent:
                break
            paragraphs[-1].append(line.strip())
        elif paragraphs[-1]:
            paragraphs.append([])
        index += 1
    text = "\n\n".join(" ".join(words) for words in paragraphs if words)
    return text, index


def _add(found: dict[str, str], names: list[str], text: str) -> None:
    """Record ``text`` for each of ``names`` not recorded yet (``*args`` is ``args``)."""
    if not text:
        return
    for written in names:
        name = written.replace("\\", "").strip().lstrip("*")
        if _NAME.fullmatch(name) and name not in found:
            found[name] = text


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())
