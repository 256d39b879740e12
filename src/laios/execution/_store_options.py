"""The checks of a store's export options: histogram bucket bounds and constant labels.

Both are checked when the store is made, so that a bad value fails at the call that passed it
rather than at a scrape, far away and much later.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from itertools import islice, pairwise

from laios.execution._aggregates import LabelSet
from laios.execution._checks import as_float, as_text, is_real, number_repr, reading

__all__ = [
    "MAX_BUCKETS",
    "MAX_CONSTANT_LABELS",
    "MAX_CONSTANT_LABEL_NAME",
    "MAX_CONSTANT_LABEL_VALUE",
    "MAX_COUNTED_LIMIT",
    "RESERVED_LABELS",
    "check_buckets",
    "check_labels",
]

#: Most bucket bounds of one histogram. Each bound is a series of every tool (and, for
#: durations, of every outcome): 40 is already more than a quantile estimate profits from.
MAX_BUCKETS = 40
#: Most constant labels of one store.
MAX_CONSTANT_LABELS = 10
#: Longest name of a constant label, in characters: as a value, it is written in every series
#: of the store (Prometheus sets no limit of its own, and a scrape's ``label_name_length_limit``
#: may refuse a long one).
MAX_CONSTANT_LABEL_NAME = 128
#: Longest value of a constant label, in characters.
MAX_CONSTANT_LABEL_VALUE = 128
#: The largest whole number a multiprocess file holds (every one is a count, a gauge of tasks
#: or threads, or a label limit); the other workers refuse a file with a larger one in it (its
#: worker's counts would be left out). So it is also the largest label limit
#: (``max_tool_labels``, ``max_error_types``, ``max_custom_metrics``) a store's exporters
#: keep: a larger one, given as "no limit", is kept as this, which no store ever reaches.
MAX_COUNTED_LIMIT = 2**63 - 1
#: Why each name a store's constant labels may not use is taken (names starting with ``__``,
#: Prometheus' own, are refused too).
_RESERVED_BECAUSE = {
    **dict.fromkeys(
        ("tool", "outcome", "error_type", "name", "unit", "version"),
        "the laios_* families use it themselves",
    ),
    "le": "Prometheus gives it to each histogram bucket (its upper bound)",
    "quantile": "Prometheus gives it to each quantile of a summary",
    **{
        target: (
            f"Prometheus sets {target!r} on every series it scrapes (the target's "
            f"{'scrape job' if target == 'job' else 'address'}), so a {target!r} label of the "
            f"store's own is renamed 'exported_{target}' on scrape and queries by {target!r} "
            "miss it; give the label another name (such as 'service', 'pool' or 'worker'), or "
            f"set {target!r} in Prometheus' scrape config (static labels or relabelling)"
        )
        for target in ("job", "instance")
    },
}
#: Label names a store's constant labels may not use: the labels of the ``laios_*`` families
#: themselves, the ones Prometheus gives a meaning to in an exposition (``le``, ``quantile``)
#: and the ones it sets on every scraped series itself (``job``, ``instance``).
RESERVED_LABELS = frozenset(_RESERVED_BECAUSE)
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def check_buckets(parameter: str, bounds: Iterable[float]) -> tuple[float, ...]:
    """Return ``bounds`` as a tuple of floats, or raise at the call that passed them.

    Args:
        parameter: The parameter's name, for the message.
        bounds: Upper bounds in seconds: finite, greater than 0, strictly increasing (so no
            bound twice), from 1 to :data:`MAX_BUCKETS` of them. ``+Inf`` is always added and
            must not be passed.

    Raises:
        TypeError: When ``bounds`` is not a sequence of numbers (a string, a boolean, a
            ``datetime.timedelta`` or NumPy's ``timedelta64``).
        ValueError: When a bound is not finite or not positive, the bounds are not strictly
            increasing, or there are none or too many.
    """
    if isinstance(bounds, (str, bytes)) or not isinstance(bounds, Iterable):
        raise TypeError(f"{parameter} must be a sequence of numbers, got {number_repr(bounds)}")
    values = list(bounds)
    if not values or len(values) > MAX_BUCKETS:
        raise ValueError(f"{parameter} must have from 1 to {MAX_BUCKETS} bounds, got {len(values)}")
    for value in values:
        if not is_real(value):  # (not a bool, nor NumPy's timedelta64: a length of time)
            raise TypeError(f"{parameter} must hold numbers of seconds, got {number_repr(value)}")
        # (an int or a Fraction too large for a float is infinite here, not an OverflowError)
        if not (math.isfinite(as_float(value)) and value > 0):
            raise ValueError(
                f"{parameter} must hold finite bounds greater than 0 (+Inf is always added), "
                f"got {number_repr(value)}"
            )
    floats = tuple(float(value) for value in values)
    for lower, upper in pairwise(floats):
        if upper <= lower:
            raise ValueError(
                f"{parameter} must be strictly increasing (sorted, no bound twice), "
                f"got {upper!r} after {lower!r}"
            )
    return floats


def check_labels(labels: Mapping[str, str] | None, *, name_limit: bool = True) -> LabelSet:
    """Return constant labels as ``(name, value)`` pairs sorted by name, or raise.

    Args:
        labels: Label names to values. A name of at most :data:`MAX_CONSTANT_LABEL_NAME`
            characters (unless ``name_limit`` is false) follows Prometheus' rules (letters,
            digits and ``_``, not starting with a digit), does not start with ``__`` and is
            not one of :data:`RESERVED_LABELS`; a value is a non-empty string of at most
            :data:`MAX_CONSTANT_LABEL_VALUE` characters that UTF-8 can encode. At most
            :data:`MAX_CONSTANT_LABELS` labels. A ``str`` subclass is checked, and kept, as
            its text.
        name_limit: Whether a name longer than :data:`MAX_CONSTANT_LABEL_NAME` characters is
            refused: a store's are; the labels of multiprocess files are not, since earlier
            versions wrote longer ones.

    Raises:
        TypeError: When ``labels`` is not a mapping (or reading it raises), or a name or
            value is not a string.
        ValueError: When a name or value breaks a rule above.
    """
    if labels is None:
        return ()
    if not isinstance(labels, Mapping):
        raise TypeError(f"labels must be a mapping of names to values, got {number_repr(labels)}")
    # (a mapping of the caller's own: reading it may raise, which says it cannot be used)
    with reading("labels"):
        count = len(labels)
    if count > MAX_CONSTANT_LABELS:
        raise ValueError(f"labels may hold at most {MAX_CONSTANT_LABELS} labels, got {count}")
    with reading("labels"):
        # (no more than it said it holds, and one more: one that holds more is refused)
        items = list(islice(labels.items(), MAX_CONSTANT_LABELS + 1))
    if len(items) > MAX_CONSTANT_LABELS:
        raise ValueError(
            f"labels may hold at most {MAX_CONSTANT_LABELS} labels, got more as it was read"
        )
    pairs: list[tuple[str, str]] = []
    for name, value in items:
        if not isinstance(name, str):
            raise TypeError(f"a label name must be a string, got {number_repr(name)}")
        # (a str subclass as its text: its own hash, ==, repr or encode may raise or differ)
        name = as_text(name)
        if name_limit and len(name) > MAX_CONSTANT_LABEL_NAME:
            raise ValueError(
                f"label name {number_repr(name)} is {len(name)} characters long; at most "
                f"{MAX_CONSTANT_LABEL_NAME}"
            )
        if not _LABEL_NAME.fullmatch(name):
            raise ValueError(
                f"label name {number_repr(name)} is not valid: letters, digits and '_' only, "
                "not starting with a digit"
            )
        if name.startswith("__"):
            raise ValueError(f"label name {name!r} is reserved: '__' names are Prometheus' own")
        if name in RESERVED_LABELS:
            raise ValueError(
                f"label name {name!r} is reserved: {_RESERVED_BECAUSE[name]} (reserved: "
                f"{', '.join(sorted(RESERVED_LABELS))}, and names starting with '__')"
            )
        if not isinstance(value, str):
            raise TypeError(
                f"the value of label {name!r} must be a string, got {number_repr(value)}"
            )
        value = as_text(value)
        if not value:
            raise ValueError(
                f"the value of label {name!r} is empty; Prometheus reads an empty label as no "
                "label at all"
            )
        if len(value) > MAX_CONSTANT_LABEL_VALUE:
            raise ValueError(
                f"the value of label {name!r} is {len(value)} characters long; at most "
                f"{MAX_CONSTANT_LABEL_VALUE}"
            )
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(
                f"the value of label {name!r} cannot be encoded as UTF-8: {number_repr(value)}"
            ) from None
        pairs.append((name, value))
    return tuple(sorted(pairs))
