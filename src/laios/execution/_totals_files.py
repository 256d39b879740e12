"""Exported totals in a file: the format the processes of :mod:`laios.execution.multiprocess`
share.

A file is one JSON document, written whole to a temporary name and renamed over the old one
(readers see the old or the new version, never a mix)::

    {"format": 2, "kind": "process", "pid": 4242,
     "sections": [{"bounds": [0.001, ..., 300.0], "totals": {...}, "limits": [200, 50, 100]}]}

A *section* is one :class:`~laios.execution._exposition.ExportedTotals` with the upper bounds
of its histogram buckets and the label limits of its stores (``max_tool_labels``,
``max_error_types``, ``max_custom_metrics``; optional, so that files written with and without
them are read alike). The totals are written field by field from the dataclasses
themselves (:func:`encode`) and read back against their type annotations (:func:`decode`), so a
field added to ``ExportedTotals`` or ``ToolAggregates`` travels without a change here: a field
with a default may be missing from an older file; a field this version does not know makes
the file unreadable (:class:`UnreadableFile`) rather than silently dropped. So a change of the
fields is a new :data:`FORMAT` (``test_the_file_layout_changes_only_with_the_format_number``
holds the layout), and this version reads the older formats it knows (format 1, laios 0.1.0's:
see :mod:`._legacy_totals`); a file of any other format is another version's
(:class:`OtherVersion`), which a directory's processes never fold, delete or move. Tuples and named
tuples are written as lists; a dict field as an object when its keys are strings, else as a
list of ``[key, value]`` pairs (``custom`` is keyed by ``(name, unit)``). ``json`` writes all
but the dataclasses itself, in C: a write of 200 tools' totals takes a few milliseconds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import itertools
import json
import math
import os
import stat
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple, Union, get_args, get_origin, get_type_hints

from laios._text import shorten, shown_name
from laios.execution._legacy_totals import (
    LEGACY_FORMAT,
    moved_to_default_buckets,
    upgraded_entry,
)
from laios.execution._store_options import MAX_COUNTED_LIMIT, check_labels
from laios.execution._totals import ExportedTotals

__all__ = [
    "DEFAULT_LIMITS",
    "FILE_MODE",
    "FORMAT",
    "MAX_FILE_BYTES",
    "READABLE_FORMATS",
    "Limits",
    "NotPermitted",
    "OtherVersion",
    "Section",
    "TooLarge",
    "UnreadableFile",
    "decode",
    "dump",
    "encode",
    "read_document",
    "section_data",
    "sections_of",
    "set_file_mode",
    "write_document",
]

#: The version of the file layout this version writes (2: laios 0.1.0 wrote 1).
FORMAT = 2
#: The formats this version reads.
READABLE_FORMATS = (LEGACY_FORMAT, FORMAT)


class UnreadableFile(ValueError):
    """A file that is not a totals document this version can read (the message says why)."""


class OtherVersion(UnreadableFile):
    """A totals document of a format this version does not read: another laios version's
    (a newer one, in a rolling deploy), whose processes count it. Left where it is."""


class NotPermitted(UnreadableFile):
    """A file this process may not read (``EACCES``, ``EPERM``): its owner or mode keep this
    process out, which is how the directory is set up, not what the file holds. Left where
    it is: a process that may read it counts it."""


class TooLarge(UnreadableFile):
    """A file larger than :data:`MAX_FILE_BYTES`, left out without being read: what its
    process writes, past the bound, rather than damage that its next write repairs."""


#: The label limits of a section: tool labels, error types per tool, custom metrics.
Limits = tuple[int, int, int]
#: The limits of a section written without them (a ``MetricStore``'s defaults).
DEFAULT_LIMITS: Limits = (200, 50, 100)


class Section(NamedTuple):
    """Totals with the upper bounds of their histogram buckets (``+Inf`` implied), and the
    label limits of the stores they come from (``None``: not known, as in a file written
    without them)."""

    bounds: tuple[float, ...]
    totals: ExportedTotals
    limits: Limits | None = None


def _fields_of(value: Any) -> dict[str, Any]:
    """A dataclass instance's fields, for ``json.dumps(default=...)`` (which writes tuples,
    named tuples and dicts with string keys itself); a dict whose keys are not all strings
    becomes a list of ``[key, value]`` pairs."""
    if not dataclasses.is_dataclass(value) or isinstance(value, type):
        raise TypeError(f"cannot write a {type(value).__name__} to a totals file")
    fields = {}
    for field in _fields(type(value)):
        item = getattr(value, field.name)
        if isinstance(item, dict) and not all(type(key) is str for key in item):
            item = [[key, entry] for key, entry in item.items()]
        fields[field.name] = item
    return fields


def _json(value: Any) -> str:
    return json.dumps(value, default=_fields_of, separators=(",", ":"))


def encode(value: Any) -> Any:
    """``value`` (dataclasses, dicts, tuples, numbers, strings, ``None``) as the JSON data a
    file holds for it."""
    return json.loads(_json(value))


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
    if kind is bool:
        return _boolean
    if kind is float:
        return _number
    if kind is str:
        return _string
    origin, args = get_origin(kind), get_args(kind)
    if origin in (Union, types.UnionType):
        return _optional(kind, args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return _variable_tuple(args[0])
        return _fixed_tuple(tuple(_decoder(arg) for arg in args), tuple)
    if origin is dict:
        key, item = _decoder(args[0]), _decoder(args[1])
        return lambda data: {key(k): item(v) for k, v in _items(data)}
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        return _dataclass(kind)
    if isinstance(kind, type) and issubclass(kind, tuple) and hasattr(kind, "_fields"):
        hints = get_type_hints(kind)
        decoders = tuple(_decoder(hints[name]) for name in kind._fields)
        return _fixed_tuple(decoders, lambda items: kind(*items))
    raise TypeError(f"no totals-file reader for {kind!r}")


def _boolean(data: Any) -> bool:
    if type(data) is not bool:
        raise TypeError(f"expected true or false, got {data!r}")
    return data


def _integer(data: Any) -> int:
    if type(data) is not int:
        raise TypeError(f"expected a whole number, got {data!r}")
    if not 0 <= data <= MAX_COUNTED_LIMIT:  # (a negative counter, or one no float holds)
        raise ValueError(f"expected a count from 0 to 2**63 - 1, got {shorten(str(data), 40)}")
    return data


def _number(data: Any) -> float:
    if type(data) not in (int, float):
        raise TypeError(f"expected a number, got {data!r}")
    try:
        number = float(data)
    except OverflowError:  # (a whole number too large for a float)
        raise ValueError(f"expected a finite number, got {shorten(str(data), 40)}") from None
    if not math.isfinite(number):
        raise ValueError(f"expected a finite number, got {data!r}")
    return number


def _string(data: Any) -> str:
    if not isinstance(data, str):
        raise TypeError(f"expected a string, got {data!r}")
    return data


def _list(data: Any) -> list[Any]:
    if not isinstance(data, list):
        raise TypeError(f"expected a list, got {type(data).__name__}")
    return data


def _items(data: Any) -> Iterable[tuple[Any, Any]]:
    """The entries of a dict as written: an object (string keys) or ``[key, value]`` pairs."""
    if isinstance(data, dict):
        return data.items()
    pairs = _list(data)
    if not all(isinstance(pair, list) and len(pair) == 2 for pair in pairs):
        raise TypeError("expected [key, value] pairs")
    return pairs


def _entry(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict) or not {"bounds", "totals"} <= data.keys():
        raise UnreadableFile("a section is not {bounds, totals}")
    return data


def _variable_tuple(kind: Any) -> Callable[[Any], Any]:
    """A decoder of ``tuple[kind, ...]``; whole numbers and all-``None`` runs (bucket counts,
    exemplars) are checked in one pass instead of an item at a time."""
    item = _decoder(kind)
    empty = kind is not None and type(None) in get_args(kind)

    def decode_items(data: Any) -> tuple[Any, ...]:
        items = _list(data)
        fit = counts_fit(items) if item is _integer else None
        if fit is False:
            raise ValueError("expected counts from 0 to 2**63 - 1")
        if fit:
            return tuple(items)
        if empty and items.count(None) == len(items):
            return (None,) * len(items)
        return tuple(map(item, items))

    return decode_items


def counts_fit(items: Sequence[Any]) -> bool | None:
    """For ``items`` all plain ``int`` (bucket counts), whether each is a count a file may hold
    (0 to 2**63 - 1), checked at once rather than an item at a time; ``None`` when some item
    is not a plain ``int``."""
    if not set(map(type, items)) <= _INT:
        return None
    return not items or 0 <= min(items) <= max(items) <= MAX_COUNTED_LIMIT


_INT = frozenset({int})


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
    """Every histogram of ``section`` is one a store writes: one bucket (and exemplar slot)
    per bound of its kind (duration or queue wait), plus +Inf; bucket counts (each bucket's
    own) that add up to its count; a sum of zero or more (a store counts a negative span as
    0). The sum of a custom metric is never negative either (a store exports no negative
    sample). Added in, a negative sum would take an exported sum down, which Prometheus reads
    as a counter reset, and below zero, which OpenMetrics forbids."""
    totals = section.totals
    durations = len(section.bounds) + 1
    waits = len(totals.queue_wait_buckets) + 1
    for tool in totals.tools.values():
        for histogram, size in (
            *((histogram, durations) for histogram in tool.outcomes.values()),
            (tool.queue_wait, waits),
        ):
            count, total, buckets, exemplars = histogram
            if len(buckets) != size or len(exemplars) != size:
                raise UnreadableFile(
                    f"tool {shown_name(tool.tool)!r}: a histogram has {len(buckets)} buckets, "
                    f"its bounds say {size}"
                )
            if sum(buckets) != count:
                raise UnreadableFile(
                    f"tool {shown_name(tool.tool)!r}: a histogram's buckets hold {sum(buckets)} "
                    f"observations, its count says {count}"
                )
            if total < 0.0:
                raise UnreadableFile(
                    f"tool {shown_name(tool.tool)!r}: a histogram's sum is negative"
                )
    for (name, _), (_, total) in totals.custom.items():
        if total < 0.0:
            raise UnreadableFile(f"custom metric {shorten(name, 200)!r}: its sum is negative")


def _check_bounds(section: Section) -> None:
    """The bucket bounds of ``section`` are a store's: increasing, and the same in each place
    a file holds them (the section's, its totals', each tool's). Others would add counts into
    other buckets than their own (those of a section moved into bounds in common), or export
    the ``le`` of the buckets out of order."""
    totals = section.totals
    for kind, bounds in (("duration", section.bounds), ("queue-wait", totals.queue_wait_buckets)):
        if any(low >= high for low, high in itertools.pairwise(bounds)):
            raise UnreadableFile(f"its {kind} bucket bounds do not increase: {bounds!r}")
    if totals.duration_buckets != section.bounds:
        raise UnreadableFile("its totals' duration bucket bounds are not its section's bounds")
    for tool in totals.tools.values():
        if (tool.duration_bounds, tool.queue_wait_bounds) != (
            section.bounds,
            totals.queue_wait_buckets,
        ):
            raise UnreadableFile(
                f"tool {shown_name(tool.tool)!r}: its bucket bounds are not its section's"
            )


def _check_labels(section: Section) -> None:
    """The constant labels of ``section`` are those of a store: valid names, none reserved
    (``tool``, ``le``, ...), each once, sorted by name. Others would be added in as series
    that Prometheus refuses, failing the whole scrape. A name longer than a store may now
    take is read: earlier versions took and wrote it, and refusing it would throw away the
    file's other counts with it."""
    labels = section.totals.labels
    try:
        valid = check_labels(dict(labels), name_limit=False)
    except (TypeError, ValueError) as exc:
        raise UnreadableFile(f"its constant labels are not a store's: {exc}") from None
    if valid != tuple(labels):
        raise UnreadableFile(
            f"its constant labels are not a store's: {shorten(repr(labels), 200)} is not "
            "one label of each name, sorted by name"
        )


def sections_of(document: Mapping[str, Any]) -> list[Section]:
    """The sections of a document read by :func:`read_document`.

    Raises:
        UnreadableFile: When a section does not fit :class:`Section`.
    """
    legacy = document.get("format") == LEGACY_FORMAT
    entries = document.get("sections", [])
    if not isinstance(entries, list):
        raise UnreadableFile(f"its sections are not a list but {type(entries).__name__}")
    sections = []
    for entry in map(_entry, entries):
        of_0_1_0 = legacy and upgraded_entry(entry)
        section = Section(
            decode(tuple[float, ...], entry["bounds"]),
            decode(ExportedTotals, entry["totals"]),
            _limits(entry.get("limits")),
        )
        _check_histograms(section)
        _check_bounds(section)
        _check_labels(section)
        if of_0_1_0:
            bounds, totals = moved_to_default_buckets(section.bounds, section.totals)
            section = section._replace(bounds=bounds, totals=totals)
        sections.append(section)
    return sections


def _limits(data: Any) -> Limits | None:
    """A section's ``limits`` as read; ``None`` when it has none."""
    if data is None:
        return None
    limits: Limits = decode(Limits, data)
    if min(limits) < 1:
        raise UnreadableFile(f"a section's limits must be positive, got {limits!r}")
    return limits


def section_data(section: Section) -> dict[str, Any]:
    """A section as written in a document's ``sections`` (``limits`` only when known: a
    reader that does not know them passes over them)."""
    data: dict[str, Any] = {"bounds": section.bounds, "totals": section.totals}
    if section.limits is not None:
        data["limits"] = section.limits
    return data


#: Opens what is at a path without following a symbolic link there, and without waiting for
#: a writer when it is a named pipe (0 where the platform has no such flag).
_O_READ = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
#: The most bytes read of one file in the directory: a larger one is left out as unreadable
#: rather than read into memory. A process's file takes 6 KiB with 10 tools and 120 KiB with
#: 200; one label set at the default limits with 50 error types on each of 200 tools, 1.5 MiB.
MAX_FILE_BYTES = 32 << 20
#: What opening something that laios never writes in the directory may fail with: a symbolic
#: link (``ELOOP``), a socket or a device without its driver.
_NOT_OURS = frozenset({errno.ELOOP, errno.ENXIO, errno.ENODEV})
#: What opening a file this process may not read fails with (:class:`NotPermitted`).
_NOT_PERMITTED = frozenset({errno.EACCES, errno.EPERM})


def _too_large(size: int) -> TooLarge:
    return TooLarge(
        f"holds more than {MAX_FILE_BYTES >> 20} MiB, the most read of one file in the "
        f"directory ({size} bytes or more; a process's file takes 6 KiB with 10 tools, 120 "
        "KiB with 200)"
    )


def _read_regular_file(path: Path) -> bytes:
    """The bytes of the regular file at ``path``, of at most :data:`MAX_FILE_BYTES`.

    Anything else under a laios name is foreign to the directory and read as nothing: a named
    pipe would block the reader until someone writes to it (a scrape, and the fold holding the
    directory's lock, for ever), a link to ``/dev/zero`` would be read until memory runs out,
    and a link loop would fail every scrape.

    Raises:
        FileNotFoundError: When there is nothing at ``path``.
        NotPermitted: When this process may not open it.
        UnreadableFile: When it is not a regular file (a directory, a named pipe, a device, a
            socket, a symbolic link); :class:`TooLarge` when it is larger than
            :data:`MAX_FILE_BYTES` (of which no more than that is read).
    """
    try:
        fd = os.open(path, _O_READ)
    except OSError as exc:
        if exc.errno in _NOT_OURS:
            raise UnreadableFile(f"cannot be opened: {exc.strerror}") from exc
        if exc.errno in _NOT_PERMITTED:
            raise NotPermitted(f"cannot be opened: {exc.strerror}") from exc
        raise
    try:
        found = os.fstat(fd)
    except BaseException:
        os.close(fd)
        raise
    if not stat.S_ISREG(found.st_mode):
        os.close(fd)
        if stat.S_ISDIR(found.st_mode):
            raise UnreadableFile("a directory, not a file")
        raise UnreadableFile("not a regular file (a named pipe, a device or a socket)")
    if found.st_size > MAX_FILE_BYTES:
        os.close(fd)
        raise _too_large(found.st_size)
    with open(fd, "rb") as file:
        content = file.read(MAX_FILE_BYTES + 1)  # (it may have grown since)
    if len(content) > MAX_FILE_BYTES:
        raise _too_large(len(content))
    return content


def read_document(path: Path) -> dict[str, Any]:
    """Read a document written by :func:`write_document`.

    Raises:
        FileNotFoundError: When there is no file at ``path``.
        OtherVersion: When it is a document of a format this version does not read.
        NotPermitted: When this process may not read it.
        UnreadableFile: When the file is not JSON, or has no format number, or is not a
            regular file (a directory, a named pipe, a symbolic link, a device).
    """
    content = _read_regular_file(path)  # (its UnreadableFile says why, as it is)
    try:
        document = json.loads(content)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UnreadableFile(f"not a JSON document: {exc}") from exc
    except RecursionError as exc:  # nested deeper than the parser goes: garbage too
        raise UnreadableFile("not a JSON document: nested too deep") from exc
    if not isinstance(document, dict):
        raise UnreadableFile("not a JSON object")
    found = document.get("format")
    if type(found) is not int:
        raise UnreadableFile(f"not a totals document: its format is {found!r}")
    if found not in READABLE_FORMATS:
        readable = " and ".join(map(str, READABLE_FORMATS))
        raise OtherVersion(
            f"written by another laios version, in format {found}; this version reads "
            f"formats {readable}"
        )
    return document


def dump(document: Mapping[str, Any]) -> bytes:
    """The bytes :func:`write_document` writes for ``document`` (its sections as
    :func:`section_data` gives them)."""
    return _json({"format": FORMAT, **document}).encode("utf-8")


#: Creates a file that is not there yet, never following a symbolic link.
_O_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
#: The mode of every file laios creates in the directory, whatever the umask: read by every
#: process that shares the directory (gunicorn's master, started as root, and its workers,
#: switched to another user by ``--user``), written by its creator alone (files are replaced
#: by renaming, which needs only the directory's write access). Who else may read them is the
#: directory's mode's to say.
FILE_MODE = 0o644


def set_file_mode(fd: int) -> None:
    """Give the file just created at ``fd`` (by this process: its owner) :data:`FILE_MODE`,
    which a umask such as ``027`` or ``077`` narrowed. Nothing where the file system keeps no
    modes (the umask's mode stays, as before)."""
    with contextlib.suppress(OSError):
        os.fchmod(fd, FILE_MODE)


def write_document(path: Path, body: bytes) -> None:
    """Replace the file at ``path`` with ``body`` (from :func:`dump`) at once: written to
    ``<path>.tmp`` (created anew) and renamed over it, so that a reader sees the old or the
    new file whole."""
    temporary = path.with_name(path.name + ".tmp")
    # Whatever is left under the temporary name (a write cut short, or something planted: a
    # symbolic link would have the write go wherever it points, a named pipe would block it
    # for ever) is removed, and the file created anew, never through a link. Writers of one
    # name never race: the retired file is written under the directory's exclusive lock, a
    # process's own file under its export's lock.
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temporary)
    try:
        fd = os.open(temporary, _O_CREATE, FILE_MODE)
        set_file_mode(fd)  # (created anew, so this process's own)
        with open(fd, "wb") as file:
            file.write(body)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
