"""Exported totals in a file: the format the processes of :mod:`laios.execution.multiprocess`
share.

A file is one JSON document, written whole to a temporary name and renamed over the old one
(readers see the old or the new version, never a mix)::

    {"format": 1, "kind": "process", "pid": 4242,
     "sections": [{"bounds": [0.001, ..., 300.0], "totals": {...}}]}

A *section* is one :class:`~laios.execution._exposition.ExportedTotals` with the upper bounds
of its histogram buckets. The totals are written field by field from the dataclasses
themselves (:func:`encode`) and read back against their type annotations (:func:`decode`), so a
field added to ``ExportedTotals`` or ``ToolAggregates`` travels without a change here: a field
with a default may be missing from an older file; a field this version does not know makes
the file unreadable (:class:`UnreadableFile`) rather than silently dropped. Dicts are written
as lists of ``[key, value]`` pairs (keys may be tuples), tuples and named tuples as lists.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple, Union, get_args, get_origin, get_type_hints

from laios.execution._exposition import ExportedTotals

__all__ = [
    "FORMAT",
    "Section",
    "UnreadableFile",
    "decode",
    "dump",
    "encode",
    "read_document",
    "section_data",
    "sections_of",
    "write_document",
]

#: The version of the file layout. Files of another version are not read.
FORMAT = 1


class UnreadableFile(ValueError):
    """A file that is not a totals document this version can read (the message says why)."""


class Section(NamedTuple):
    """Totals with the upper bounds of their histogram buckets (``+Inf`` implied)."""

    bounds: tuple[float, ...]
    totals: ExportedTotals


def encode(value: Any) -> Any:
    """``value`` (dataclasses, dicts, tuples, numbers, strings, ``None``) as JSON-ready data."""
    if value is None or isinstance(value, (str, int, float)):
        return value
    if isinstance(value, tuple):
        return [encode(item) for item in value]
    if isinstance(value, dict):
        return [[encode(key), encode(item)] for key, item in value.items()]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: encode(getattr(value, field.name)) for field in _fields(type(value))}
    raise TypeError(f"cannot write a {type(value).__name__} to a totals file")


def decode(kind: Any, data: Any) -> Any:
    """Build a value of type ``kind`` from what :func:`encode` wrote.

    Raises:
        UnreadableFile: When ``data`` does not fit ``kind``.
    """
    try:
        return _decoder(kind)(data)
    except (TypeError, ValueError, KeyError) as exc:
        raise UnreadableFile(str(exc)) from exc


@functools.cache
def _fields(cls: type) -> tuple[dataclasses.Field[Any], ...]:
    return dataclasses.fields(cls)


@functools.cache
def _decoder(kind: Any) -> Callable[[Any], Any]:
    """A function building a ``kind`` from decoded JSON; built once per type."""
    if kind is int:
        return _integer
    if kind is float:
        return _number
    if kind is str:
        return _string
    origin, args = get_origin(kind), get_args(kind)
    if origin in (Union, types.UnionType):
        return _optional(kind, args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            item = _decoder(args[0])
            return lambda data: tuple(map(item, _list(data)))
        return _fixed_tuple(tuple(_decoder(arg) for arg in args), tuple)
    if origin is dict:
        key, item = _decoder(args[0]), _decoder(args[1])
        return lambda data: {key(pair[0]): item(pair[1]) for pair in map(_pair, _list(data))}
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        return _dataclass(kind)
    if isinstance(kind, type) and issubclass(kind, tuple) and hasattr(kind, "_fields"):
        hints = get_type_hints(kind)
        decoders = tuple(_decoder(hints[name]) for name in kind._fields)
        return _fixed_tuple(decoders, lambda items: kind(*items))
    raise TypeError(f"no totals-file reader for {kind!r}")


def _integer(data: Any) -> int:
    if type(data) is not int:
        raise TypeError(f"expected a whole number, got {data!r}")
    return data


def _number(data: Any) -> float:
    if type(data) not in (int, float):
        raise TypeError(f"expected a number, got {data!r}")
    return float(data)


def _string(data: Any) -> str:
    if not isinstance(data, str):
        raise TypeError(f"expected a string, got {data!r}")
    return data


def _list(data: Any) -> list[Any]:
    if not isinstance(data, list):
        raise TypeError(f"expected a list, got {type(data).__name__}")
    return data


def _pair(data: Any) -> list[Any]:
    if not isinstance(data, list) or len(data) != 2:
        raise TypeError(f"expected a [key, value] pair, got {data!r}")
    return data


def _entry(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict) or not {"bounds", "totals"} <= data.keys():
        raise UnreadableFile("a section is not {bounds, totals}")
    return data


def _optional(kind: Any, args: tuple[Any, ...]) -> Callable[[Any], Any]:
    others = [arg for arg in args if arg is not type(None)]
    if len(others) != 1 or len(others) == len(args):
        raise TypeError(f"no totals-file reader for {kind!r}")
    inner = _decoder(others[0])
    return lambda data: None if data is None else inner(data)


def _fixed_tuple(
    decoders: tuple[Callable[[Any], Any], ...], build: Callable[[tuple[Any, ...]], Any]
) -> Callable[[Any], Any]:
    def decode_tuple(data: Any) -> Any:
        items = _list(data)
        if len(items) != len(decoders):
            raise ValueError(f"expected {len(decoders)} items, got {len(items)}")
        return build(tuple(decoder(item) for decoder, item in zip(decoders, items, strict=True)))

    return decode_tuple


def _dataclass(cls: type) -> Callable[[Any], Any]:
    hints = get_type_hints(cls)
    fields = _fields(cls)
    decoders = {field.name: _decoder(hints[field.name]) for field in fields}
    required = frozenset(
        field.name
        for field in fields
        if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
    )

    def decode_dataclass(data: Any) -> Any:
        if not isinstance(data, dict):
            raise TypeError(f"expected the fields of {cls.__name__}, got {type(data).__name__}")
        unknown = data.keys() - decoders.keys()
        if unknown:
            raise ValueError(f"{cls.__name__} has no field {sorted(unknown)}")
        missing = required - data.keys()
        if missing:
            raise ValueError(f"{cls.__name__} lacks {sorted(missing)}")
        return cls(**{name: decoders[name](value) for name, value in data.items()})

    return decode_dataclass


def _check_histograms(section: Section) -> None:
    """Every histogram of ``section`` has one bucket (and exemplar slot) per bound, plus +Inf."""
    size = len(section.bounds) + 1
    for tool in section.totals.tools.values():
        for histogram in (*tool.outcomes.values(), tool.queue_wait):
            if len(histogram[2]) != size or len(histogram[3]) != size:
                raise UnreadableFile(
                    f"tool {tool.tool!r}: a histogram has {len(histogram[2])} buckets, "
                    f"its bounds say {size}"
                )


def sections_of(document: Mapping[str, Any]) -> list[Section]:
    """The sections of a document read by :func:`read_document`.

    Raises:
        UnreadableFile: When a section does not fit :class:`Section`.
    """
    sections = [
        Section(decode(tuple[float, ...], entry["bounds"]), decode(ExportedTotals, entry["totals"]))
        for entry in map(_entry, _list(document.get("sections", [])))
    ]
    for section in sections:
        _check_histograms(section)
    return sections


def section_data(section: Section) -> dict[str, Any]:
    """A section as written in a document's ``sections``."""
    return {"bounds": list(section.bounds), "totals": encode(section.totals)}


def read_document(path: Path) -> dict[str, Any]:
    """Read a document written by :func:`write_document`.

    Raises:
        FileNotFoundError: When there is no file at ``path``.
        UnreadableFile: When the file is not JSON, or of another :data:`FORMAT`.
    """
    try:
        document = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        raise UnreadableFile(f"not a JSON document: {exc}") from exc
    if not isinstance(document, dict):
        raise UnreadableFile("not a JSON object")
    if document.get("format") != FORMAT:
        raise UnreadableFile(
            f"written in format {document.get('format')!r}; this version reads {FORMAT}"
        )
    return document


def dump(document: Mapping[str, Any]) -> bytes:
    """The bytes :func:`write_document` writes for ``document``."""
    return json.dumps({"format": FORMAT, **document}, separators=(",", ":")).encode("utf-8")


def write_document(path: Path, body: bytes) -> None:
    """Replace the file at ``path`` with ``body`` (from :func:`dump`) at once: written to
    ``<path>.tmp`` and renamed over it, so that a reader sees the old or the new file whole."""
    temporary = path.with_name(path.name + ".tmp")
    try:
        with open(temporary, "wb") as file:
            file.write(body)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
