"""Immutable records of things that happened: checkpoints and progress updates.

They live in their own module so that the store, the monitors and the executor can share them
without importing each other. :func:`summarize` is how the data that tools attach to them is
kept: as a bounded copy, never as a reference to the tool's own objects.
"""

from __future__ import annotations

import hashlib
import logging
import math
import numbers
import sys
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta, timezone, tzinfo
from datetime import time as time_of_day
from decimal import Decimal
from enum import Enum
from fractions import Fraction
from itertools import islice
from pathlib import PurePath
from typing import Any
from uuid import UUID

from laios._exceptions import exception_message, type_name
from laios._numbers import is_numpy_timedelta
from laios._text import shorten, shown_type
from laios.core.types import validated_utc
from laios.execution._checks import (
    as_float,
    is_real,
    not_real,
    number_repr,
    of_kind,
)
from laios.execution._logs import WarningLimiter

__all__ = [
    "MAX_DATA_BYTES",
    "MAX_DATA_DEPTH",
    "MAX_DATA_ITEMS",
    "MAX_DATA_STRING",
    "MAX_ID_CHARS",
    "MAX_TEXT",
    "Checkpoint",
    "ProgressStatus",
    "ProgressUpdate",
    "Unprintable",
    "checkpoint_data",
    "clamp_percent",
    "copy_data",
    "copy_update",
    "data_size",
    "printable",
    "record_id",
    "sendable",
    "summarize",
    "text_size",
]

#: Longest text (a message, a checkpoint name, a string value) the store keeps, in characters.
MAX_TEXT = 1024


_log = logging.getLogger(__name__)
#: Warnings about names and keys that could not be printed (at most one a minute).
_unprintable_warnings = WarningLimiter()


#: What a checkpoint's name, a key of its data and a progress message are recorded as when
#: they cannot be printed (see :func:`printable`), whichever runner ran the tool: these are
#: the one place that says so.
UNPRINTABLE_NAME = "<unprintable name>"
UNPRINTABLE_KEY = "<unprintable key>"
UNPRINTABLE_MESSAGE = "<unprintable message>"


class Unprintable(str):
    """A placeholder (:data:`UNPRINTABLE_NAME`, :data:`UNPRINTABLE_MESSAGE`) sent from a
    worker process in place of a name or a message it could not print, with the name of its
    class (see :func:`sendable`): :func:`printable`, in the caller's process, writes it as
    the placeholder and warns there, where the application's logging is. Elsewhere it reads
    as the placeholder."""

    #: The name of the class of what could not be printed, as :func:`printable` warns of it.
    type_shown: str

    def __new__(cls, placeholder: str, type_shown: str) -> Unprintable:
        text = super().__new__(cls, placeholder)
        text.type_shown = type_shown
        return text

    def __reduce__(self) -> tuple[Any, ...]:
        return (Unprintable, (str.__str__(self), self.type_shown))


def _text(value: Any) -> str | None:
    """``value`` as :func:`printable` writes it, ``None`` when it cannot be printed."""
    if type(value) is str:
        return value
    if of_kind(value, str):  # (not a value whose __class__ raises: a proxy's, described)
        return str.__str__(value)
    try:
        return str.__str__(str(value))
    except Exception:
        pass
    try:
        return str.__str__(repr(value))
    except Exception:
        return None


def printable(value: Any, placeholder: str) -> str:
    """``value`` as text, for a checkpoint's name, a key of its data or a progress message;
    never raises.

    A string is its own text (a ``(str, Enum)`` member its value, where ``str()`` gives
    ``"Class.MEMBER"``); anything else is its ``str()``, or, when that raises (a user's
    ``__str__`` may), its ``repr()``, else ``placeholder`` (:data:`UNPRINTABLE_NAME`,
    :data:`UNPRINTABLE_KEY` or :data:`UNPRINTABLE_MESSAGE`; with a warning, at most one a
    minute). So is an :class:`Unprintable` a worker process sent, warned of here.

    >>> printable("loaded", UNPRINTABLE_NAME)
    'loaded'
    >>> printable(3, UNPRINTABLE_KEY)
    '3'
    """
    if type(value) is Unprintable:  # (what a worker process could not print)
        shown = value.type_shown
    else:
        text = _text(value)
        if text is not None:
            return text
        shown = shown_type(value)  # (a class whose names cannot be read is still named)
    if _unprintable_warnings.should_log(placeholder) is not None:
        _log.warning(
            "a checkpoint name, data key or progress message of type %s could not be printed "
            "(its __str__ and __repr__ raise); it is recorded as %r",
            shown,
            placeholder,
        )
    return placeholder


def sendable(value: Any, placeholder: str) -> str:
    """``value`` as :func:`printable` writes it, for a worker process to send to the caller's
    process; never raises, and warns of nothing: one that cannot be printed is an
    :class:`Unprintable` (``placeholder`` and its class's name), which ``printable`` warns of
    there (a worker's log does not reach the application's handlers). An ``Unprintable``
    itself (from a worker's own worker process) goes on as it is.

    >>> sendable(3, UNPRINTABLE_MESSAGE)
    '3'
    """
    if type(value) is Unprintable:
        return value
    text = _text(value)
    return text if text is not None else Unprintable(placeholder, shown_type(value))


#: Longest task id the store keeps as it is, in characters (see :func:`record_id`).
MAX_ID_CHARS = 256
#: Characters of a longer id kept before its digest.
_ID_PREFIX_CHARS = 200


def record_id(task_id: str) -> str:
    """The id the store keeps a task under, and looks it up by: ``task_id`` itself when it
    has at most :data:`MAX_ID_CHARS` characters; a longer one as its first 200 characters,
    ``"…"`` and a 128-bit digest of the whole id (233 characters), so that a huge id costs a
    few hundred bytes however long the store keeps it, while a lookup by the whole id still
    finds it and two ids stay two. A value that is not a string is returned as it is.

    >>> record_id("task-1")
    'task-1'
    >>> len(record_id("x" * 1_000_000))
    233
    """
    if not isinstance(task_id, str) or len(task_id) <= MAX_ID_CHARS:
        return task_id
    whole = task_id.encode("utf-8", "surrogatepass")
    return f"{task_id[:_ID_PREFIX_CHARS]}…{hashlib.blake2b(whole, digest_size=16).hexdigest()}"


#: Most bytes kept of one checkpoint's data or of one progress update's details, as
#: :func:`data_size` estimates them; past it, the rest is cut (see :func:`summarize`).
MAX_DATA_BYTES = 4096
#: Longest string (value or key) kept inside data, in characters.
MAX_DATA_STRING = 256
#: Most items kept of one container (dict, list, tuple, set) inside data.
MAX_DATA_ITEMS = 100
#: Deepest nesting of containers copied into data; deeper containers are described instead.
MAX_DATA_DEPTH = 6
#: Largest integer kept inside data, in bits; larger ones are described instead.
_MAX_INT_BITS = 256
#: Immutable values of bounded size that are kept as they are.
_KEPT = (Enum, date, time_of_day, timedelta, tzinfo, UUID, complex, range)
#: Estimated bytes of an empty container and of each item it holds (CPython 3.11 sizes, the
#: pointers to the items included; a set's and a dict's tables rounded up).
_CONTAINER_BYTES: dict[type, tuple[int, int]] = {
    dict: (128, 48),
    list: (56, 8),
    tuple: (40, 8),
    set: (216, 84),
    frozenset: (216, 84),
}
#: Fewest bytes any value can take once cut: the string ``"…"`` with some room to spare.
_MIN_ROOM = 80
#: Fewest bytes left for another item of a container to be copied.
_MIN_ITEM = 160
#: Smallest budget :func:`summarize` accepts (enough for a dict saying what was left out).
_MIN_LIMIT = 512


def text_size(text: str) -> int:
    """The bytes of memory a string takes, as :func:`data_size` counts them.

    CPython stores a string with one, two or four bytes per character, depending on its widest
    character, after a header of 49 to 76 bytes; this is ``sys.getsizeof(text)`` on 3.11.

    Args:
        text: Any string.

    Returns:
        The estimated size in bytes.
    """
    if text.isascii():
        return 49 + len(text)
    widest = ord(max(text))
    if widest < 0x100:
        return 73 + len(text)
    if widest < 0x10000:
        return 74 + 2 * len(text)
    return 76 + 4 * len(text)


def data_size(value: Any) -> int:
    """An estimate of the bytes of memory a summarized value holds.

    Strings count as :func:`text_size`; numbers, bytes and other kept objects as
    ``sys.getsizeof``; ``None``, booleans and enum members (shared objects) as nothing; a
    dict, list, tuple or set as its estimated table (a dict 128 bytes and 48 per item, a list
    56 and 8, a tuple 40 and 8, a set 216 and 84) plus what its keys and items count. Shared
    objects are counted each time they appear, so the estimate errs on the large side.

    Args:
        value: A value :func:`summarize` returned (or part of one). Any other value is measured
            too, at a cost that grows with its size.

    Returns:
        The estimated size in bytes.
    """
    kind = type(value)
    if value is None or kind is bool or isinstance(value, Enum):
        return 0
    if isinstance(value, str):
        return text_size(value)
    if isinstance(value, Mapping):
        if not value:
            return 64
        base, per_item = _CONTAINER_BYTES[dict]
        parts = sum(data_size(k) + data_size(v) for k, v in value.items())
        return base + per_item * len(value) + parts
    if isinstance(value, (list, tuple, set, frozenset)):
        base, per_item = _CONTAINER_BYTES.get(kind) or _CONTAINER_BYTES[list]
        return base + per_item * len(value) + sum(data_size(item) for item in value)
    return sys.getsizeof(value)


def summarize(
    data: Mapping[Any, Any] | Iterable[tuple[Any, Any]] | None, limit: int = MAX_DATA_BYTES
) -> tuple[dict[Any, Any], int]:
    """Copy a checkpoint's data or a progress update's details into a bounded summary.

    The copy holds no reference to the caller's mutable objects, so changing them afterwards
    does not change it, and its :func:`data_size` is at most ``limit`` bytes. Items are copied
    in order until the budget is spent:

    - ``None``, booleans, floats, integers up to 256 bits and enum members are kept (``int``,
      ``float`` and ``str`` subclasses as the plain type); larger integers become
      ``"<int of N bits>"``.
    - Strings (values and keys) are cut to 256 characters, or to the bytes left, ending in
      ``"…"``.
    - ``bytes`` and ``bytearray`` of up to 256 bytes are copied; longer ones, and every
      ``memoryview``, become a description such as ``"<bytearray 102400 bytes>"``.
    - Mappings become dicts, lists stay lists, tuples tuples, sets sets and frozensets
      frozensets (a ``deque`` becomes a list), with at most 100 items each and 6 levels of
      nesting. Items left out (past the count or the budget) are counted: a dict ends with a
      ``"…": "N more items"`` entry, the others with a ``"… N more items"`` item. A container
      nested too deep, or for which no room is left, becomes a description such as
      ``"<dict of 3 items>"``.
    - Dates, times, UUIDs, small decimals and fractions, complex numbers and ranges are kept;
      paths are kept when short. Anything else becomes its ``repr()`` cut as a string, or
      ``"<TypeName object>"`` when ``repr()`` raises (a key then becomes its ``str()``, else
      :data:`UNPRINTABLE_KEY`, as its checkpoint span has it).
    - A mapping whose ``len()`` or items raise (a closed ``shelve``) becomes
      ``{"…": "<TypeName object>"}``.

    Data that needs none of this (``str``, ``int``, ``float``, ``bool`` and ``None`` values,
    and lists, tuples and dicts of them, within the bounds above) and whose :func:`data_size`
    is at most ``limit`` is returned as an equal copy, in its order.

    Args:
        data: A mapping, or anything ``dict()`` accepts; ``None`` or empty gives ``{}``.
        limit: The byte budget (at least 512).

    Returns:
        ``(copy, size)``: the summary and its :func:`data_size`.

    Raises:
        TypeError, ValueError: When ``data`` is neither a mapping nor what ``dict()`` accepts
            (as ``dict(data)`` raises).
    """
    if data is None:
        return {}, 64
    if not isinstance(data, Mapping):
        data = dict(data)
    try:
        empty = not data
    except Exception:  # a mapping that cannot even be measured (a closed shelve): described
        empty = False
    if empty:
        return {}, 64
    limit = max(limit, _MIN_LIMIT)
    plain = _plain(data, limit, 0)
    if plain is not None:
        return plain
    try:
        copy, size = _mapping(data, limit, 0)
    except Exception:  # a hostile mapping (its len or items raised): say what it was
        copy = None
    if not isinstance(copy, dict):  # (the smallest budget always holds a dict)
        copy = {"…": _described(data)}
        size = data_size(copy)
    return copy, size


def _scalar_size(value: Any) -> int:
    """The size of a plain scalar that is kept as it is, or ``-1`` for any other value."""
    kind = type(value)
    if kind is str:
        return text_size(value) if len(value) <= MAX_DATA_STRING else -1
    if kind is int:
        return sys.getsizeof(value) if value.bit_length() <= _MAX_INT_BITS else -1
    if kind is float:
        return 24
    return 0 if value is None or kind is bool else -1


def _plain(value: Any, room: int, level: int) -> tuple[Any, int] | None:
    """An equal copy of plain data taking at most ``room`` bytes, and its size; ``None`` when
    ``value`` is not plain, or needs cutting to fit (the work stops there)."""
    kind = type(value)
    if kind is not dict and kind is not list and kind is not tuple:
        size = _scalar_size(value)
        return (value, size) if 0 <= size <= room else None
    if level > MAX_DATA_DEPTH or len(value) > MAX_DATA_ITEMS:
        return None
    if not value:
        size = 64 if kind is dict else _CONTAINER_BYTES[kind][0]
        return (type(value)(), size) if size <= room else None
    base, per_item = _CONTAINER_BYTES[kind]
    if kind is dict:
        pairs = list(value.items())  # (one C-level step: no other thread changes it meanwhile)
        size = base + per_item * len(pairs)
        copy: dict[Any, Any] = {}
        for key, item in pairs:
            key_size = _scalar_size(key) if type(key) is str or type(key) is int else -1
            if key_size < 0:
                return None
            size += key_size
            sized = _plain_item(item, room - size, level)
            if sized is None:
                return None
            copy[key], item_size = sized
            size += item_size
        return copy, size
    items = list(value)
    size = base + per_item * len(items)
    copies = []
    for item in items:
        sized = _plain_item(item, room - size, level)
        if sized is None:
            return None
        copies.append(sized[0])
        size += sized[1]
    return (copies if kind is list else tuple(copies)), size


def _plain_item(item: Any, room: int, level: int) -> tuple[Any, int] | None:
    """An item of a container at ``level``, as :func:`_plain` copies it, with its size;
    ``None`` when it does not fit in ``room`` bytes."""
    size = _scalar_size(item)
    if size < 0:
        return _plain(item, room, level + 1)
    return (item, size) if size <= room else None


def _described(value: Any) -> str:
    """``"<TypeName object>"``: what a value becomes when nothing better can be said."""
    return f"<{shown_type(value)} object>"


def _reserve(count: int) -> int:
    """Bytes kept for the entry that counts left-out items (its table slot included)."""
    return 200 + 2 * len(str(count))


def _fit(text: str, room: int) -> tuple[str, int]:
    """``text`` cut to ``MAX_DATA_STRING`` characters and to ``room`` bytes, and its size."""
    if len(text) > MAX_DATA_STRING:
        text = shorten(text, MAX_DATA_STRING)
    size = text_size(text)
    if size > room:  # cut to fit: with the "…", at least two bytes per character
        width = 4 if ord(max(text)) >= 0x10000 else 2
        keep = max((room - 76) // width - 1, 0)
        text = text[:keep] + "…"
        size = text_size(text)
    return text, size


def _value(value: Any, room: int, depth: int, as_key: bool = False) -> tuple[Any, int]:
    """A bounded copy of one value taking at most ``room`` bytes, and its size (``as_key``:
    a mapping's key, see :func:`_scalar`)."""
    try:
        return _copy(value, room, depth, as_key)
    except Exception:  # a hostile value (its len, items or repr raised): say what it was
        return _fit(_described(value), room)


def _copy(value: Any, room: int, depth: int, as_key: bool = False) -> tuple[Any, int]:
    kind = type(value)
    size = _scalar_size(value)
    if 0 <= size <= room:
        return value, size
    if isinstance(value, Enum):
        return value, 0
    if isinstance(value, str):
        return _fit(value if kind is str else str.__str__(value), room)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _binary(value, room)
    if isinstance(value, Mapping):
        if depth >= MAX_DATA_DEPTH:
            return _fit(f"<{shown_type(value)} of {len(value)} items>", room)
        return _mapping(value, room, depth + 1)
    if isinstance(value, (list, tuple, set, frozenset, deque)):
        if depth >= MAX_DATA_DEPTH:
            return _fit(f"<{shown_type(value)} of {len(value)} items>", room)
        return _collection(value, room, depth + 1)
    return _scalar(value, room, as_key)


def _kept(value: Any, room: int) -> tuple[Any, int]:
    """An immutable value kept as it is when it fits, else its text cut to fit."""
    size = data_size(value)
    if size <= room:
        return value, size
    return _fit(str(value), room)


def _scalar(value: Any, room: int, as_key: bool = False) -> tuple[Any, int]:
    """A number or another immutable value kept as it is, or else its short ``repr``; when
    that raises, ``"<TypeName object>"``, or for a mapping's key (``as_key``) its text as
    its checkpoint span has it (its ``str()``, else :data:`UNPRINTABLE_KEY`, warned of)."""
    if is_numpy_timedelta(value):  # (a length of time, which NumPy calls an integer)
        return _fit(repr(value), room)
    if isinstance(value, numbers.Integral):
        integer = int(value)
        if integer.bit_length() > _MAX_INT_BITS:
            return _fit(f"<int of {integer.bit_length()} bits>", room)
        return _kept(integer, room)
    kept = isinstance(value, _KEPT)
    if isinstance(value, Fraction):
        kept = max(value.numerator.bit_length(), value.denominator.bit_length()) <= 64
    elif isinstance(value, Decimal):
        kept = len(value.as_tuple().digits) <= 64
    elif isinstance(value, PurePath):
        kept = len(str(value)) <= MAX_DATA_STRING
    if kept:
        return _kept(value, room)
    if isinstance(value, numbers.Real):  # float subclasses and other float-like numbers
        return _kept(float(value), room)
    try:
        text = repr(value)
    except Exception:
        text = printable(value, UNPRINTABLE_KEY) if as_key else _described(value)
    return _fit(text, room)


def _binary(value: bytes | bytearray | memoryview, room: int) -> tuple[Any, int]:
    """Small ``bytes``/``bytearray`` copied, others described."""
    if isinstance(value, memoryview):
        return _fit(f"<memoryview {value.nbytes} bytes>", room)
    count = len(value)
    if count <= MAX_DATA_STRING:
        copy = bytes(value) if isinstance(value, bytes) else bytearray(value)
        size = data_size(copy)
        if size <= room:
            return copy, size
    return _fit(f"<{shown_type(value)} {count} bytes>", room)


def _key(key: Any, room: int, depth: int) -> tuple[Any, int]:
    """A mapping key: a summarized, hashable copy."""
    copy, size = _value(key, room, depth, as_key=True)
    try:
        hash(copy)
    except TypeError:  # (an unhashable copy of a hashable key)
        copy, size = _fit(_described(key), room)
    return copy, size


def _mapping(value: Mapping[Any, Any], room: int, depth: int) -> tuple[Any, int]:
    """A dict of at most ``MAX_DATA_ITEMS`` summarized items within ``room`` bytes (or, when
    not even one item would fit, a description of the mapping)."""
    count = len(value)
    if not count:
        return ({}, 64) if room >= 64 else _fit("{}", room)
    base, per_item = _CONTAINER_BYTES[dict]
    left = room - base - _reserve(count)
    if left < _MIN_ITEM:
        return _fit(f"<{shown_type(value)} of {count} items>", room)
    # One C-level step for a dict: no other thread can change it while it is read.
    pairs = list(islice(value.items(), MAX_DATA_ITEMS))
    copy: dict[Any, Any] = {}
    parts = 0  # bytes of the keys and values
    for key, item in pairs:
        if left < _MIN_ITEM:
            break
        key_copy, key_size = _key(key, left - per_item - _MIN_ROOM, depth)
        if key_copy in copy:  # equal to an earlier key once cut: left out
            continue
        item_copy, item_size = _value(item, left - per_item - key_size, depth)
        copy[key_copy] = item_copy
        parts += key_size + item_size
        left -= per_item + key_size + item_size
    if len(copy) < count:
        more, more_size = _fit(f"{count - len(copy)} more items", 128)
        if "…" in copy:  # (a key of the data itself: replaced)
            parts -= text_size("…") + data_size(copy["…"])
        copy["…"] = more
        parts += text_size("…") + more_size
    return copy, base + per_item * len(copy) + parts


def _collection(value: Any, room: int, depth: int) -> tuple[Any, int]:
    """A list, tuple, set or frozenset of at most ``MAX_DATA_ITEMS`` summarized items within
    ``room`` bytes (or, when not even one item would fit, a description of it)."""
    count = len(value)
    shape: type = list  # (a deque too)
    if isinstance(value, tuple):
        shape = tuple
    elif isinstance(value, frozenset):
        shape = frozenset
    elif isinstance(value, set):
        shape = set
    base, per_item = _CONTAINER_BYTES[shape]
    left = room - base - _reserve(count)
    if (left < _MIN_ITEM) if count else (base > room):
        return _fit(f"<{shown_type(value)} of {count} items>", room)
    items = list(islice(value, MAX_DATA_ITEMS))
    copy: list[Any] = []
    parts = 0
    for item in items:
        if left < _MIN_ITEM:
            break
        item_copy, item_size = _value(item, left - per_item, depth)
        copy.append(item_copy)
        parts += item_size
        left -= per_item + item_size
    if len(copy) < count:
        more, more_size = _fit(f"… {count - len(copy)} more items", 128)
        copy.append(more)
        parts += more_size
    if shape is set or shape is frozenset:
        members = set()
        for item in copy:
            try:
                members.add(item)
            except TypeError:  # (an unhashable copy of a hashable member)
                members.add(_described(item))
        kept = frozenset(members) if shape is frozenset else members
        return kept, data_size(kept)
    kept_items = tuple(copy) if shape is tuple else copy
    return kept_items, base + per_item * len(copy) + parts


def copy_data(value: Any) -> Any:
    """A copy of kept data (a :func:`summarize` result) that shares no mutable container
    with it: dicts, lists and sets are copied at every level (and tuples holding them), so
    whoever is handed the copy may change it without changing what a record keeps.

    Args:
        value: Kept data, or any value inside it.
    """
    kind = type(value)
    if kind is dict:
        return {key: copy_data(item) for key, item in value.items()}
    if kind is list:
        return [copy_data(item) for item in value]
    if kind is tuple:
        return tuple(copy_data(item) for item in value)
    if kind is set:
        return set(value)  # (its members are hashable, so immutable in kept data)
    return value


def mapping_copy(data: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``data`` as a dict, to send to another process: a dict as it is, any other mapping
    copied, and one that cannot be read as ``{"…": "<TypeName object>"}``."""
    if data is None or type(data) is dict:
        return data
    try:
        return dict(data)
    except Exception:  # (its items could not be read: the caller's side records what it was)
        return {"…": _described(data)}


def checkpoint_data(data: Any) -> Mapping[str, Any] | None:
    """``data`` when it may be a checkpoint's data: ``None`` or a mapping.

    Raises:
        TypeError: Otherwise, naming the type given (a list, even of pairs, is not data).
    """
    if data is None or isinstance(data, Mapping):
        return data
    raise TypeError(
        f"checkpoint data must be a mapping (a dict of values) or None, got {shown_type(data)}"
    )


def clamp_percent(value: Any) -> float:
    """Turn a caller's progress value into a percentage between 0 and 100.

    Args:
        value: A real number (``int``, ``float``, ``Fraction``, a NumPy scalar, ...). ``NaN``
            counts as 0; values outside 0–100 are clamped.

    Returns:
        A float in ``[0.0, 100.0]``.

    Raises:
        TypeError: When ``value`` is not a real number (``bool`` included).
        ValueError: When it is one of a class of the caller's own whose ``float()`` raises,
            naming what it raised (as a ``timeout`` is refused).
    """
    if not is_real(value):  # (NumPy's too)
        raise not_real("progress percent", value)
    try:
        try:
            number = float(value)
        except OverflowError:  # an int too large for a float: far past either end
            return 0.0 if value < 0 else 100.0
    except Exception as exc:  # (a number class of its own whose float() or < raises)
        raise ValueError(
            f"progress percent must be a real number, got {number_repr(value)}: float() of "
            f"it raised {type_name(type(exc))}: {shorten(exception_message(exc), 200)}"
        ) from None
    if math.isnan(number):
        return 0.0
    return min(max(0.0, number), 100.0)  # (max(0.0, -0.0) is 0.0: no negative zero)


class ProgressStatus(str, Enum):
    """Where a task is in its life, as progress listeners see it."""

    PENDING = "pending"
    STARTING = "starting"
    IN_PROGRESS = "in_progress"
    COMPLETING = "completing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True, slots=True)
class ProgressUpdate:
    """One progress report about a task (an immutable value).

    Attributes:
        task_id: The task the update is about.
        status: The task's phase.
        progress_percent: 0–100.
        message: A short human-readable note, or ``None``.
        details: Extra data supplied by the reporter (a store keeps a :func:`summarize` copy).
        timestamp: When the update was made (UTC).
    """

    task_id: str
    status: ProgressStatus
    progress_percent: float = 0.0
    message: str | None = None
    # (left out of the hash, a dict being unhashable: equal updates still hash equal)
    details: dict[str, Any] = field(default_factory=dict, hash=False)
    timestamp: datetime = field(default_factory=_utc_now)

    def __post_init__(self) -> None:
        """Refuse what the fields cannot hold, and normalize what they can (a status by its
        value, a real percent as a float, ``None`` details as ``{}``, a naive timestamp as
        UTC), so that a listener never sees a value of the wrong type.

        Raises:
            TypeError: When ``task_id`` is not a string, ``progress_percent`` not a real
                number, ``message`` neither ``None`` nor a string, ``details`` neither
                ``None`` nor a mapping, or ``timestamp`` not a ``datetime``.
            ValueError: When ``status`` is no ``ProgressStatus`` value,
                ``progress_percent`` is not between 0 and 100, or ``timestamp`` has no UTC
                form (at the edge of year 1 or 9999).
        """
        if not isinstance(self.task_id, str):
            raise TypeError(f"task_id must be a string, got {type(self.task_id).__name__}")
        if type(self.status) is not ProgressStatus:
            try:
                status = ProgressStatus(self.status)
            except ValueError:
                raise ValueError(
                    f"status must be a ProgressStatus, got {shorten(repr(self.status), 64)}"
                ) from None
            object.__setattr__(self, "status", status)
        percent = self.progress_percent
        if type(percent) is not float:
            if not is_real(percent):
                raise not_real("progress_percent", percent)
            percent = as_float(percent)  # (an int too large for a float: infinite)
        if not 0.0 <= percent <= 100.0:  # (NaN too)
            raise ValueError(
                f"progress_percent must be from 0 to 100, got {number_repr(self.progress_percent)}"
            )
        if percent == 0.0:  # (-0.0 too: kept as 0.0, as update_progress clamps it)
            percent = 0.0
        if percent is not self.progress_percent:
            object.__setattr__(self, "progress_percent", percent)
        if self.message is not None and not isinstance(self.message, str):
            raise TypeError(f"message must be a string or None, got {type(self.message).__name__}")
        details = self.details
        if type(details) is not dict:
            if details is None:
                object.__setattr__(self, "details", {})
            elif isinstance(details, Mapping):
                object.__setattr__(self, "details", dict(details))
            else:
                raise TypeError(f"details must be a mapping or None, got {type(details).__name__}")
        stamp = self.timestamp
        if not isinstance(stamp, datetime):
            raise TypeError(f"timestamp must be a datetime, got {type(stamp).__name__}")
        if stamp.tzinfo is not timezone.utc:
            try:
                stamp = validated_utc(stamp)
            except ValueError as exc:
                raise ValueError(f"timestamp {exc}") from None
            object.__setattr__(self, "timestamp", stamp)


#: The fields of a progress update that :func:`copy_update` shares (``details`` is copied).
_UPDATE_FIELDS = tuple(f.name for f in fields(ProgressUpdate) if f.name != "details")


def copy_update(update: ProgressUpdate) -> ProgressUpdate:
    """``update`` with its ``details`` a copy at every level (see :func:`copy_data`), built
    without checking its fields again: they were checked when it was made."""
    copied = object.__new__(ProgressUpdate)
    for name in _UPDATE_FIELDS:
        object.__setattr__(copied, name, getattr(update, name))
    object.__setattr__(copied, "details", copy_data(update.details))
    return copied


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A named milestone of a task (an immutable value).

    Attributes:
        name: The milestone's name.
        timestamp: Unix time (seconds) when it was reached.
        data: Data attached by whoever added it (a store keeps a :func:`summarize` copy).
    """

    name: str
    timestamp: float
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the checkpoint as ``{"name", "timestamp", "data"}`` (``data`` a copy, nested
        values included: changing it leaves the checkpoint alone)."""
        return {"name": self.name, "timestamp": self.timestamp, "data": copy_data(self.data)}
