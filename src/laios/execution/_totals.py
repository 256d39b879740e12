"""The stores an exporter reports, what gone stores leave behind, and the totals of both.

A :class:`StoreTable` is the bookkeeping behind
:class:`~laios.execution.prometheus.StoreCollector`: the stores exported into one registry.
Its one product is :meth:`StoreTable.totals`, a list of :class:`ExportedTotals`, one per set of
constant labels; both exporters (the ``prometheus_client`` collector and the direct renderer of
:mod:`laios.execution._exposition`) and the ``/status`` document start from it, so they cannot
disagree on a number or a label.

The lifecycle of a store in a table:

- **While the store lives**, it is reported: its counters, histograms and gauges, added to the
  other stores with the same constant labels.
- **The table never keeps a store alive.** It holds the store through a weak reference, and
  strongly only the store's :class:`~laios.execution._aggregates.StoreCounts`: the object the
  store counts into, which does not refer back to the store.
- **When the store is gone**, its counts are final (no method of a store that no longer exists
  can run), and they are *folded*: added into the totals of its label set, which the table keeps
  for as long as it lives. So no ``laios_*`` counter ever goes backwards, while the store's
  gauges (tasks in flight, workers, busy workers, queue depth, abandoned threads) leave with it.

Why the counts are held rather than read by a finalizer when the store dies: a weak reference
is cleared before its callback runs, and the callback runs in whatever thread the garbage
collector happens to run in, at any allocation, possibly while that thread holds this table's
lock. A callback that read the counts would leave a moment in which the store is already gone
and its counts not yet folded, and a scrape in that moment would see every counter of the store
drop (Prometheus reads a drop as a counter reset); and it could not wait for the lock. Holding
the counts closes that gap: a scrape reads a gone store's counts from the table as long as they
are not folded, and the fold itself happens under the table's lock. The weak reference's
callback (the finalizer) folds at once when it gets the lock without waiting; otherwise the next
scrape or the next store added does it. Until then, a gone store costs its counts only, which
are O(tools × outcomes × buckets).

The folded totals are bounded like a store's aggregates: per label set, at most
``max_tool_labels`` tools (further ones fold into ``other``), ``max_error_types`` error types
per tool and ``max_custom_metrics`` custom metrics (the largest limits of the stores that joined
the label set), and at most :data:`MAX_LABEL_SETS` label sets per table. A key past a limit that
a live store of the label set still exports keeps its own label, for as long as one does:
folded into ``other`` while the live store's part is still exported under that key, its
series would drop by the gone store's part. So the keys past the limits are never more than
the live stores export.
"""

from __future__ import annotations

import functools
import heapq
import operator
import sys
import threading
import weakref
from collections.abc import Callable, Collection, Hashable, Iterable, Mapping
from dataclasses import dataclass, replace
from itertools import chain
from typing import TYPE_CHECKING, TypeVar

from laios._text import shorten
from laios.execution._aggregates import (
    DURATION_BUCKETS,
    ERROR_TYPE_OTHER,
    MAX_RECENT_FAILURES,
    QUEUE_WAIT_BUCKETS,
    TOOL_OTHER,
    TOOL_UNKNOWN,
    CustomMetricSnapshot,
    Exemplar,
    FailedTaskSnapshot,
    LabelSet,
    RawHistogram,
    RunningTaskSnapshot,
    StoreAggregates,
    StoreCounts,
    StoreSnapshot,
    ToolAggregates,
    ToolSnapshot,
)
from laios.execution._families import STORE_GAUGE_FIELDS
from laios.execution._forks import reset_after_fork

if TYPE_CHECKING:
    from laios.execution.store import MetricStore

__all__ = [
    "LABEL_SET_OTHER",
    "MAX_LABEL_LENGTH",
    "MAX_LABEL_SETS",
    "ExportedTotals",
    "StoreTable",
    "add_custom",
    "capped_totals",
    "export_label",
    "gauge_sums",
    "is_other_label_set",
    "newer",
    "other_label_set",
    "read_stores",
    "recent_error_exemplars",
    "snapshot_of",
    "sum_totals",
]

#: Longest label value exported, in characters; longer names are cut (and merged if they clash).
MAX_LABEL_LENGTH = 200
#: Most distinct sets of constant labels one table (one registry) exports.
MAX_LABEL_SETS = 100
#: Exemplars ``laios_task_errors_total`` carries in one scrape: those of the most recent
#: sampled failures (one per tool and error type). Every one of them costs a hundred bytes in
#: every scrape; the traces of older failures are on the duration histogram's buckets.
MAX_ERROR_EXEMPLARS = 50
#: The value of every constant label of a set past the first :data:`MAX_LABEL_SETS` sets where
#: they are bounded by folding (the retired totals of the multiprocess mode, the histograms of
#: the OpenTelemetry instruments): such a set joins the one with the same names and every value
#: ``other``; past :data:`MAX_LABEL_SETS` of those (one per set of names), the one without
#: constant labels.
LABEL_SET_OTHER = "other"

_V = TypeVar("_V")
_K = TypeVar("_K", bound=Hashable)


def export_label(value: str) -> str:
    """Return ``value`` as exported in a label: at most :data:`MAX_LABEL_LENGTH` characters,
    valid UTF-8 (a lone surrogate becomes a backslash escape)."""
    # Label values must be valid UTF-8 and should stay short; names are developer-chosen but
    # a lone surrogate or a megabyte-long name must not break or bloat a scrape.
    if len(value) > MAX_LABEL_LENGTH:
        value = shorten(value, MAX_LABEL_LENGTH)
    if not value.isascii():
        value = value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def is_other_label_set(labels: LabelSet) -> bool:
    """Whether ``labels`` is where sets past :data:`MAX_LABEL_SETS` are folded (every value
    :data:`LABEL_SET_OTHER`; the empty set too): it never counts towards the cap of the sets
    with values of their own."""
    return all(value == LABEL_SET_OTHER for _name, value in labels)


def other_label_set(labels: LabelSet) -> LabelSet:
    """The set ``labels`` is folded into past :data:`MAX_LABEL_SETS`: the same names, every
    value :data:`LABEL_SET_OTHER`."""
    return tuple((name, LABEL_SET_OTHER) for name, _value in labels)


#: The largest sum of a custom metric exported: a sum of finite parts that would pass it stays
#: here rather than becoming ``+Inf``, which it could never leave.
_MAX_SUM = sys.float_info.max


def add_custom(known: tuple[int, float] | None, count: int, total: float) -> tuple[int, float]:
    """A custom metric's ``(count, sum)`` with ``count`` and ``total`` added to ``known``
    (``None``: nothing yet); the sum stops at the largest float."""
    if known is None:
        return count, min(total, _MAX_SUM)
    return known[0] + count, min(known[1] + total, _MAX_SUM)


def newer(current: Exemplar | None, candidate: Exemplar | None) -> Exemplar | None:
    """Of two exemplars, the newer one (the candidate on a tie); ``None`` loses."""
    if candidate is None:
        return current
    if current is None or candidate.timestamp >= current.timestamp:
        return candidate
    return current


@dataclass(frozen=True, slots=True)
class ExportedTotals:
    """The aggregates of the stores with one set of constant labels, added together and keyed
    by exported label values: live stores and the folded totals of gone ones.

    Attributes:
        tools: Each exported ``tool`` label (sorted) with its summed aggregates (each carries
            its bucket bounds).
        custom: ``(name, unit)`` (sorted) with the summed ``(count, sum)``.
        workers: Worker threads of the live stores' open pools.
        busy_workers: Worker threads (or processes) of the live stores' runners running a
            tool now.
        queue_depth: Tasks waiting for a worker.
        abandoned_threads: Threads held by tools that overran their timeout.
        labels: The constant labels, ``(name, value)`` sorted by name; ``()`` for none.
        duration_buckets: Upper bounds of the duration histograms' buckets (``+Inf`` not
            included).
        queue_wait_buckets: Upper bounds of the queue-wait histograms' buckets.
        live: Whether a store with these labels is alive. The gauges (those of
            :data:`~laios.execution._families.STORE_GAUGES`, ``workers`` to
            ``abandoned_threads``, and each tool's ``in_flight``) are exported only then;
            otherwise only the counters and histograms the gone stores left.
    """

    tools: dict[str, ToolAggregates]
    custom: dict[tuple[str, str], tuple[int, float]]
    # The fields of STORE_GAUGES, in its order (each summed by gauge_sums).
    workers: int = 0
    busy_workers: int = 0
    queue_depth: int = 0
    abandoned_threads: int = 0
    labels: LabelSet = ()
    duration_buckets: tuple[float, ...] = DURATION_BUCKETS
    queue_wait_buckets: tuple[float, ...] = QUEUE_WAIT_BUCKETS
    live: bool = True


def gauge_sums(parts: Iterable[StoreAggregates | ExportedTotals]) -> dict[str, int]:
    """Each store-wide gauge of :data:`~laios.execution._families.STORE_GAUGES` summed over
    ``parts``, by field: the gauges of stores (or processes) added together."""
    sums = dict.fromkeys(STORE_GAUGE_FIELDS, 0)
    for part in parts:
        for field in STORE_GAUGE_FIELDS:
            sums[field] += getattr(part, field)
    return sums


def _add_histograms(first: RawHistogram, second: RawHistogram) -> RawHistogram:
    exemplars = tuple(newer(a, b) for a, b in zip(first[3], second[3], strict=True))
    buckets = tuple(a + b for a, b in zip(first[2], second[2], strict=True))
    return (first[0] + second[0], first[1] + second[1], buckets, exemplars)


def _add_errors(
    first: tuple[int, Exemplar | None], second: tuple[int, Exemplar | None]
) -> tuple[int, Exemplar | None]:
    return (first[0] + second[0], newer(first[1], second[1]))


def _add_keyed(into: dict[str, _V], values: Mapping[str, _V], add: Callable[[_V, _V], _V]) -> None:
    """Add ``values`` into ``into``, each under its exported key (``add`` joins two values)."""
    for key, value in values.items():
        key = export_label(key)
        known = into.get(key)
        into[key] = value if known is None else add(known, value)


def _capped(
    values: dict[str, _V],
    cap: int,
    add: Callable[[_V, _V], _V],
    shared: Collection[str] = (),
) -> dict[str, _V]:
    """``values`` with the keys past the first ``cap`` joined (by ``add``) under ``other``,
    but for those in ``shared`` (keys a live store exports)."""
    if len(values) <= cap:
        return values
    kept: dict[str, _V] = {}
    other: _V | None = None
    for key, value in values.items():
        if key != ERROR_TYPE_OTHER and (len(kept) < cap or key in shared):
            kept[key] = value
        else:
            other = value if other is None else add(other, value)
    if other is not None:
        kept[ERROR_TYPE_OTHER] = other
    return kept


def _merged(rows: list[ToolAggregates]) -> ToolAggregates:
    """One tool's aggregates summed over the rows that share its label, with outcome and
    error-type keys as exported."""
    if len(rows) == 1:
        row = rows[0]
        keys = chain(row.outcomes, row.errors, row.results, row.retry_errors)
        if all(export_label(key) is key for key in keys):
            return row
    outcomes: dict[str, RawHistogram] = {}
    errors: dict[str, tuple[int, Exemplar | None]] = {}
    results: dict[str, int] = {}
    retry_errors: dict[str, int] = {}
    first = rows[0]
    queue_wait = first.queue_wait
    for index, row in enumerate(rows):
        _add_keyed(outcomes, row.outcomes, _add_histograms)
        if index:
            queue_wait = _add_histograms(queue_wait, row.queue_wait)
        _add_keyed(results, row.results, operator.add)
        _add_keyed(retry_errors, row.retry_errors, operator.add)
        _add_keyed(errors, row.errors, _add_errors)
    return ToolAggregates(
        first.tool,
        outcomes,
        queue_wait,
        sum(row.in_flight for row in rows),
        errors,
        first.duration_bounds,
        first.queue_wait_bounds,
        results,
        retry_errors,
    )


class _Group:
    """One set of constant labels in a table: its bucket bounds, its limits, and the folded
    totals of its gone stores (exported labels as keys, in-flight counts 0)."""

    __slots__ = (
        "custom",
        "duration_bounds",
        "labels",
        "max_custom_metrics",
        "max_error_types",
        "max_tool_labels",
        "members",
        "queue_wait_bounds",
        "tools",
    )

    def __init__(self, counts: StoreCounts) -> None:
        self.labels = counts.labels
        self.duration_bounds = counts.duration_bounds
        self.queue_wait_bounds = counts.queue_wait_bounds
        self.max_tool_labels = counts.max_tool_labels
        self.max_error_types = counts.max_error_types
        self.max_custom_metrics = counts.max_custom_metrics
        self.tools: dict[str, ToolAggregates] = {}
        self.custom: dict[tuple[str, str], tuple[int, float]] = {}
        #: The table's entries (live stores, and gone ones not folded yet) with these labels.
        self.members = 0

    def join(self, counts: StoreCounts) -> None:
        """Take in a store's limits (the group keeps the largest of each)."""
        self.max_tool_labels = max(self.max_tool_labels, counts.max_tool_labels)
        self.max_error_types = max(self.max_error_types, counts.max_error_types)
        self.max_custom_metrics = max(self.max_custom_metrics, counts.max_custom_metrics)

    def fold(self, final: StoreAggregates, live: _LiveKeys) -> None:
        """Add a gone store's final counts into the folded totals, within the limits; a key
        past a limit that a store in ``live`` exports keeps its own label (see :meth:`trim`)."""
        tools = self.tools
        for row in final.tools:
            label = export_label(row.tool)
            known = tools.get(label)
            if known is None and label not in (TOOL_UNKNOWN, TOOL_OTHER):
                named = len(tools) - (TOOL_UNKNOWN in tools) - (TOOL_OTHER in tools)
                if named >= self.max_tool_labels and label not in live.tools:
                    label = TOOL_OTHER
                    known = tools.get(label)
            tools[label] = self._kept(label, [row] if known is None else [known, row], live)
        custom = self.custom
        for entry in final.custom:
            key = (export_label(entry.name), export_label(entry.unit))
            if (
                key not in custom
                and len(custom) >= self.max_custom_metrics
                and key not in live.custom
            ):
                key = _CUSTOM_OTHER
            custom[key] = add_custom(custom.get(key), entry.count, entry.sum)

    def _kept(self, label: str, rows: list[ToolAggregates], live: _LiveKeys) -> ToolAggregates:
        """``rows`` merged as the folded row of ``label``, its error types within the limit."""
        merged = _merged(rows)
        cap, errors, retry_errors = self.max_error_types, merged.errors, merged.retry_errors
        if len(errors) > cap:  # (the live stores are read only when a limit is reached)
            errors = _capped(errors, cap, _add_errors, live.errors(label))
        if len(retry_errors) > cap:
            retry_errors = _capped(retry_errors, cap, operator.add, live.retries(label))
        return replace(merged, tool=label, in_flight=0, errors=errors, retry_errors=retry_errors)

    @property
    def beyond(self) -> bool:
        """Whether a folded key is past its limit (kept because a live store exported it)."""
        tools = self.tools
        named = len(tools) - (TOOL_UNKNOWN in tools) - (TOOL_OTHER in tools)
        custom, cap = self.custom, self.max_error_types
        return (
            named > self.max_tool_labels
            or len(custom) - (_CUSTOM_OTHER in custom) > self.max_custom_metrics
            or any(
                len(keys) - (ERROR_TYPE_OTHER in keys) > cap
                for row in tools.values()
                for keys in (row.errors, row.retry_errors)
            )
        )

    def trim(self, live: _LiveKeys) -> None:
        """Join the folded keys past a limit that no store in ``live`` exports any more into
        ``other``. Such a key's series has left the exposition, so ``other`` only grows; and
        the folded keys past the limits are never more than the live stores export."""
        tools = self.tools
        named = 0
        for label in list(tools):
            row = tools[label]
            if label not in (TOOL_UNKNOWN, TOOL_OTHER):
                named += 1
                if named > self.max_tool_labels and label not in live.tools:
                    del tools[label]
                    other = tools.get(TOOL_OTHER)
                    tools[TOOL_OTHER] = self._kept(
                        TOOL_OTHER, [row] if other is None else [other, row], live
                    )
                    continue
            tools[label] = self._kept(label, [row], live)
        custom = self.custom
        if len(custom) > self.max_custom_metrics:
            kept: dict[tuple[str, str], tuple[int, float]] = {}
            for place, (key, (count, total)) in enumerate(custom.items()):
                if place >= self.max_custom_metrics and key not in live.custom:
                    key = _CUSTOM_OTHER
                kept[key] = add_custom(kept.get(key), count, total)
            self.custom = kept

    @property
    def empty(self) -> bool:
        """Whether no gone store left anything to report."""
        return not self.tools and not self.custom


#: The key custom metrics past ``max_custom_metrics`` are counted under.
_CUSTOM_OTHER = ("other", "")


#: What live sources export: per tool label, its failures' and its retries' error types; and
#: the ``(name, unit)`` of the custom metrics.
_Keys = tuple[dict[str, tuple[set[str], set[str]]], set[tuple[str, str]]]


class _LiveKeys:
    """The keys (exported tool labels, error types, custom metrics) that live sources (the
    stores of a label set, or the files of live processes) still export, read once, when a
    fold first asks: only once a limit is reached.

    A gone source's key that one of them exports keeps its own label in the folded totals even
    past a limit: counted into ``other``, the key's series would drop by the gone source's part.
    """

    __slots__ = ("_keys", "_read")

    def __init__(self, read: Callable[[], _Keys]) -> None:
        self._read = read
        self._keys: _Keys | None = None

    def _all(self) -> _Keys:
        if self._keys is None:
            self._keys = self._read()
        return self._keys

    @property
    def tools(self) -> Collection[str]:
        """The exported ``tool`` labels."""
        return self._all()[0].keys()

    def errors(self, tool: str) -> Collection[str]:
        """The exported error types of failures of ``tool``."""
        found = self._all()[0].get(tool)
        return found[0] if found is not None else ()

    def retries(self, tool: str) -> Collection[str]:
        """The exported error types of retries of ``tool``."""
        found = self._all()[0].get(tool)
        return found[1] if found is not None else ()

    @property
    def custom(self) -> Collection[tuple[str, str]]:
        """The exported ``(name, unit)`` of custom metrics."""
        return self._all()[1]


def _keys_of_stores(counts: list[StoreCounts]) -> _Keys:
    """What live stores export, from their counts, read without their locks: copying a dict of
    strings runs in one step under the GIL, and a key added meanwhile is one a fold did not
    have to keep."""
    tools: dict[str, tuple[set[str], set[str]]] = {}
    custom: set[tuple[str, str]] = set()
    for part in counts:
        for slot in list(part.slots.values()):
            errors, retries = tools.setdefault(export_label(slot.label), (set(), set()))
            errors.update(map(export_label, list(slot.errors)))
            retries.update(map(export_label, list(slot.retry_errors)))
        custom.update((export_label(name), export_label(unit)) for name, unit in list(part.custom))
    return tools, custom


def _keys_of_totals(parts: Iterable[ExportedTotals]) -> _Keys:
    """What the totals of live processes export (their labels exported already)."""
    tools: dict[str, tuple[set[str], set[str]]] = {}
    custom: set[tuple[str, str]] = set()
    for totals in parts:
        for label, row in totals.tools.items():
            errors, retries = tools.setdefault(label, (set(), set()))
            errors.update(row.errors)
            retries.update(row.retry_errors)
        custom.update(totals.custom)
    return tools, custom


class _Entry:
    """A store in a table: a weak reference to it, and its counts."""

    __slots__ = ("counts", "ref")

    def __init__(self, ref: weakref.ref[MetricStore], counts: StoreCounts) -> None:
        self.ref = ref
        self.counts = counts


class StoreTable:
    """The stores one exporter reports, and the folded totals of those that are gone.

    See the module's documentation for the lifecycle. Safe to use from several threads.
    """

    def __init__(self) -> None:
        """Create an empty table."""
        self._lock = threading.Lock()
        self._entries: dict[int, _Entry] = {}  # by id(store), in the order the stores joined
        self._groups: dict[LabelSet, _Group] = {}
        self._gone = False  # a store died since the last prune (set by the weak references)
        reset_after_fork(self)

    def after_fork_in_child(self) -> None:
        """In a child made by ``os.fork()``: forget the parent's gone stores and their totals.

        The live stores stay (each starts from zero in the child, see
        :meth:`MetricStore.after_fork_in_child
        <laios.execution.store.MetricStore.after_fork_in_child>`).
        """
        self._lock = threading.Lock()
        self._entries = {key: e for key, e in self._entries.items() if e.ref() is not None}
        used = {entry.counts.labels for entry in self._entries.values()}
        self._groups = {labels: g for labels, g in self._groups.items() if labels in used}
        for group in self._groups.values():
            group.tools = {}
            group.custom = {}
            group.members = 0
        for entry in self._entries.values():
            self._groups[entry.counts.labels].members += 1
        self._gone = False

    def add(self, store: MetricStore) -> bool:
        """Report ``store`` from now on; ``False`` when it is reported already.

        Raises:
            ValueError: When the table reports stores with the same constant labels and other
                bucket bounds (their histograms could not be added together), or when the
                store's labels would be one label set too many (:data:`MAX_LABEL_SETS`).
        """
        counts = store.counts
        with self._lock:
            if self._gone:
                self._prune()
            entry = self._entries.get(id(store))
            if entry is not None:
                if entry.ref() is store:
                    return False
                self._prune()  # the id of a gone store, reused
            group = self._groups.get(counts.labels)
            if group is None:
                if len(self._groups) >= MAX_LABEL_SETS:
                    raise ValueError(
                        f"cannot export a store with labels {_shown(counts.labels)}: this "
                        f"registry already exports {MAX_LABEL_SETS} sets of constant labels, "
                        "the most it keeps (label values must not be unbounded: use one store "
                        "per pool, not per tenant or per request)"
                    )
                group = self._groups[counts.labels] = _Group(counts)
            else:
                for parameter, ours, theirs in (
                    ("duration_buckets", group.duration_bounds, counts.duration_bounds),
                    ("queue_wait_buckets", group.queue_wait_bounds, counts.queue_wait_bounds),
                ):
                    if ours != theirs:
                        raise ValueError(
                            f"cannot export a store with {parameter}={list(theirs)} into a "
                            f"registry that exports stores with the same labels "
                            f"{_shown(counts.labels)} and {parameter}={list(ours)}: the "
                            "histograms of one set of labels must share their buckets. Give "
                            "the store the same buckets, or other labels (MetricStore(labels="
                            "...)), or another registry"
                        )
                group.join(counts)
            group.members += 1
            self._entries[id(store)] = _Entry(weakref.ref(store, self._released), counts)
            return True

    def remove(self, store: MetricStore) -> bool:
        """Stop reporting ``store``, a live one, counts and all (nothing is folded); ``False``
        when it is not reported here."""
        with self._lock:
            entry = self._entries.get(id(store))
            if entry is None or entry.ref() is not store:
                return False
            del self._entries[id(store)]
            labels = entry.counts.labels
            group = self._groups[labels]
            group.members -= 1
            if not group.members and group.empty:  # (nothing left to report)
                del self._groups[labels]
            return True

    def stores(self) -> tuple[MetricStore, ...]:
        """The live stores, in the order they joined."""
        with self._lock:
            entries = list(self._entries.values())
        return tuple(store for store in (e.ref() for e in entries) if store is not None)

    def totals(self) -> list[ExportedTotals]:
        """The totals of each set of constant labels (sorted, no labels first): its live stores
        read now, plus the folded totals of its gone stores."""
        return self._read(None)

    def limits(self) -> dict[LabelSet, tuple[int, int, int]]:
        """The label limits of each set of constant labels: ``(max_tool_labels,
        max_error_types, max_custom_metrics)``, the largest of every store that joined it,
        live or gone (those its folded totals are kept within)."""
        with self._lock:
            return {
                labels: (group.max_tool_labels, group.max_error_types, group.max_custom_metrics)
                for labels, group in self._groups.items()
            }

    def snapshot(self) -> StoreSnapshot:
        """Everything :meth:`totals` reports, as one :class:`StoreSnapshot` (what ``/status``
        shows): every tool of every label set (each :class:`ToolSnapshot` carries its
        ``labels``), the tasks queued or running in the live stores, and the gauges summed
        over them."""
        running: list[RunningTaskSnapshot] = []
        failures: list[FailedTaskSnapshot] = []
        totals = self._read((running, failures))
        failures.sort(key=lambda failed: failed.finished_at)  # (stable: a store's own order)
        return snapshot_of(totals, running, tuple(failures[-MAX_RECENT_FAILURES:]))

    def _read(
        self, listed: tuple[list[RunningTaskSnapshot], list[FailedTaskSnapshot]] | None
    ) -> list[ExportedTotals]:
        """The totals of every label set; with ``listed``, also the live stores' running tasks
        and latest failures, added to its two lists."""
        with self._lock:
            if self._gone:
                self._prune()
            entries = list(self._entries.values())
            groups = [
                (group, dict(group.tools), dict(group.custom))
                for group in sorted(self._groups.values(), key=_group_key)
            ]
        reads: dict[LabelSet, list[StoreAggregates]] = {}
        live: set[LabelSet] = set()
        for entry in entries:
            store = entry.ref()
            if store is None:  # gone since the lock was released: its counts are final
                read = entry.counts.final()
            elif listed is None:
                read = store.aggregates()
            else:
                # (at one moment: read one after the other, a task ending in between would be
                # in flight in the counts but not running)
                read, running, failures = store.read_together()
                listed[0].extend(running)
                listed[1].extend(failures)
            if store is not None:
                live.add(read.labels)
            del store
            reads.setdefault(entry.counts.labels, []).append(read)
        return [
            _group_totals(group, folded, custom, reads.get(group.labels, ()), group.labels in live)
            for group, folded, custom in groups
        ]

    def _released(
        self,
        ref: weakref.ref[MetricStore],
        finalizing: Callable[[], bool] = sys.is_finalizing,
    ) -> None:
        """A store is gone (the weak reference's callback): fold it now if the lock is free
        at once, else leave it to the next scrape or store added.

        ``finalizing`` is bound here, not looked up: at the interpreter's exit, module globals
        may already be gone when a weak reference calls back, and nobody will scrape then.
        """
        self._gone = True
        if finalizing():
            return
        lock = self._lock
        if lock.acquire(blocking=False):
            try:
                self._prune()
            finally:
                lock.release()

    def _prune(self) -> None:
        """Fold the counts of every gone store, and forget label sets with nothing left to
        report (the caller holds the lock)."""
        self._gone = False
        entries = self._entries
        # Every gone store leaves the entries before any is folded: none is taken as live.
        gone = [entries.pop(key).counts for key, e in list(entries.items()) if e.ref() is None]
        folded: dict[LabelSet, _LiveKeys] = {}
        for counts in gone:
            self._groups[counts.labels].members -= 1
            live = folded.get(counts.labels)
            if live is None:
                same = [e.counts for e in entries.values() if e.counts.labels == counts.labels]
                live = folded[counts.labels] = _LiveKeys(functools.partial(_keys_of_stores, same))
            self._groups[counts.labels].fold(counts.final(), live)
        for labels, live in folded.items():
            group = self._groups[labels]
            if group.beyond:
                group.trim(live)
        if gone:
            used = {entry.counts.labels for entry in entries.values()}
            for labels in [k for k, g in self._groups.items() if g.empty and k not in used]:
                del self._groups[labels]


def _group_key(group: _Group) -> LabelSet:
    return group.labels


def _shown(labels: LabelSet) -> str:
    return "{" + ", ".join(f"{name}={value!r}" for name, value in labels) + "}"


def _group_totals(
    group: _Group,
    folded: dict[str, ToolAggregates],
    folded_custom: dict[tuple[str, str], tuple[int, float]],
    reads: Iterable[StoreAggregates],
    live: bool,
) -> ExportedTotals:
    """Add a label set's folded totals and its stores' reads together."""
    rows: dict[str, list[ToolAggregates]] = {label: [tool] for label, tool in folded.items()}
    custom = dict(folded_custom)
    reads = list(reads)
    for read in reads:
        for tool in read.tools:
            rows.setdefault(export_label(tool.tool), []).append(tool)
        for entry in read.custom:
            key = (export_label(entry.name), export_label(entry.unit))
            custom[key] = add_custom(custom.get(key), entry.count, entry.sum)
    return ExportedTotals(
        {label: _merged(rows[label]) for label in sorted(rows)},
        dict(sorted(custom.items())),
        **gauge_sums(reads),
        labels=group.labels,
        duration_buckets=group.duration_bounds,
        queue_wait_buckets=group.queue_wait_bounds,
        live=live,
    )


def sum_totals(parts: Iterable[ExportedTotals]) -> list[ExportedTotals]:
    """Add totals together per set of constant labels and bucket bounds, as one process adds
    its stores: counts, sums, buckets and gauges summed per exported label, of two exemplars
    the newer one; a set is live when any of its parts is. For the totals of several processes
    (:mod:`laios.execution.multiprocess`). Sorted by labels, the empty set first."""
    groups: dict[tuple[LabelSet, tuple[float, ...], tuple[float, ...]], list[ExportedTotals]] = {}
    for part in parts:
        key = (part.labels, part.duration_buckets, part.queue_wait_buckets)
        groups.setdefault(key, []).append(part)
    summed: list[ExportedTotals] = []
    for key in sorted(groups):
        group = groups[key]
        rows: dict[str, list[ToolAggregates]] = {}
        custom: dict[tuple[str, str], tuple[int, float]] = {}
        for part in group:
            for label, tool in part.tools.items():
                rows.setdefault(label, []).append(tool)
            for name, (count, total) in part.custom.items():
                custom[name] = add_custom(custom.get(name), count, total)
        labels, duration_buckets, queue_wait_buckets = key
        summed.append(
            ExportedTotals(
                {label: _merged(rows[label]) for label in sorted(rows)},
                dict(sorted(custom.items())),
                **gauge_sums(group),
                labels=labels,
                duration_buckets=duration_buckets,
                queue_wait_buckets=queue_wait_buckets,
                live=any(part.live for part in group),
            )
        )
    return summed


def _kept_first(values: Mapping[_K, _V], known: Collection[_K]) -> dict[_K, _V]:
    """``values`` with the keys in ``known`` first (in the order of ``known``), then the others
    (in their own order)."""
    first = {key: values[key] for key in known if key in values}
    return {**first, **{key: value for key, value in values.items() if key not in first}}


def capped_totals(
    totals: ExportedTotals,
    limits: tuple[int, int, int],
    previous: ExportedTotals | None = None,
    live: Callable[[], Iterable[ExportedTotals]] = tuple,
) -> ExportedTotals:
    """``totals`` within ``limits`` (tool labels, error types per tool, custom metrics), as a
    table keeps the folded totals of its gone stores: past ``max_tool_labels`` named tools,
    further ones are added into ``other``, past ``max_error_types`` error types of a tool
    (failures and retries each) further ones into ``other``, past ``max_custom_metrics``
    ``(name, unit)`` pairs further ones into ``("other", "")``. For the totals of gone processes
    (:mod:`laios.execution.multiprocess`), which would otherwise gather the labels of every
    process that ever ran.

    The keys ``previous`` (the totals that ``totals`` grew from) exports come first, in its
    order, so that those within the limits keep their place and no series they show moves into
    ``other`` and goes backwards. A key past a limit keeps its own label too while the totals
    that ``live`` returns export it (those of the live processes with the same labels, read
    only when a limit is reached): added into ``other`` while a live process still exports it,
    its series would drop by the gone processes' part. Once none does, it joins ``other`` (its
    series has left the exposition, so ``other`` only grows). So the keys past the limits are
    never more than the live processes export. The result keeps that order (the keys within the
    limits first), for the next call to take as ``previous``."""
    max_tools, max_errors, max_custom = limits
    shown = _LiveKeys(lambda: _keys_of_totals(live()))
    before = previous.tools if previous is not None else {}
    rows: dict[str, list[ToolAggregates]] = {}
    named = 0
    for label, tool in _kept_first(totals.tools, before).items():
        if label not in (TOOL_UNKNOWN, TOOL_OTHER):
            if named < max_tools:
                named += 1
            elif label not in shown.tools:
                label = TOOL_OTHER
        rows.setdefault(label, []).append(tool)
    tools: dict[str, ToolAggregates] = {}
    for label, parts in rows.items():
        merged = _merged(parts)
        known = before.get(label)
        errors = _kept_first(merged.errors, known.errors if known is not None else ())
        retry_errors = _kept_first(
            merged.retry_errors, known.retry_errors if known is not None else ()
        )
        if len(errors) > max_errors:  # (the live processes are read only past a limit)
            errors = _capped(errors, max_errors, _add_errors, shown.errors(label))
        if len(retry_errors) > max_errors:
            retry_errors = _capped(retry_errors, max_errors, operator.add, shown.retries(label))
        tools[label] = replace(merged, tool=label, errors=errors, retry_errors=retry_errors)
    custom: dict[tuple[str, str], tuple[int, float]] = {}
    for key, (count, total) in _kept_first(
        totals.custom, previous.custom if previous is not None else ()
    ).items():
        if key not in custom and len(custom) >= max_custom and key not in shown.custom:
            key = _CUSTOM_OTHER
        custom[key] = add_custom(custom.get(key), count, total)
    return replace(totals, tools=tools, custom=custom)


def read_stores(stores: Iterable[MetricStore]) -> list[ExportedTotals]:
    """Read each store once (:meth:`MetricStore.aggregates`) and add them together per set of
    constant labels, without folding anything: the live numbers of exactly these stores (the
    OpenTelemetry view reads so the stores its table cannot take). Stores with the same labels
    and other bucket bounds are kept apart."""
    parts: list[ExportedTotals] = []
    for store in stores:
        read = store.aggregates()
        rows: dict[str, list[ToolAggregates]] = {}
        for tool in read.tools:
            rows.setdefault(export_label(tool.tool), []).append(tool)
        first = read.tools[0] if read.tools else None
        parts.append(
            ExportedTotals(
                {label: _merged(rows[label]) for label in sorted(rows)},
                {
                    (export_label(entry.name), export_label(entry.unit)): (entry.count, entry.sum)
                    for entry in read.custom
                },
                **gauge_sums([read]),
                labels=read.labels,
                duration_buckets=first.duration_bounds if first is not None else DURATION_BUCKETS,
                queue_wait_buckets=(
                    first.queue_wait_bounds if first is not None else QUEUE_WAIT_BUCKETS
                ),
                live=True,
            )
        )
    return sum_totals(parts)


def recent_error_exemplars(
    totals: list[ExportedTotals], keep: int = MAX_ERROR_EXEMPLARS
) -> list[ExportedTotals]:
    """``totals`` with the exemplars of ``laios_task_errors_total`` cut to the ``keep`` newest
    (across every tool and label set); the counts stay. Both exporters write what this leaves,
    so that a scrape of many tools and error types stays bounded."""
    stamps = [
        exemplar.timestamp
        for entry in totals
        for tool in entry.tools.values()
        for _count, exemplar in tool.errors.values()
        if exemplar is not None
    ]
    if len(stamps) <= keep:
        return totals
    oldest_kept = heapq.nlargest(keep, stamps)[-1] if keep > 0 else float("inf")
    budget = sum(1 for stamp in stamps if stamp > oldest_kept)  # ties at the edge: first come
    room = keep - budget
    trimmed: list[ExportedTotals] = []
    for entry in totals:
        tools: dict[str, ToolAggregates] = {}
        for label, tool in entry.tools.items():
            errors: dict[str, tuple[int, Exemplar | None]] = {}
            for error_type, (count, exemplar) in tool.errors.items():
                if exemplar is not None and exemplar.timestamp <= oldest_kept:
                    if exemplar.timestamp == oldest_kept and room > 0:
                        room -= 1
                    else:
                        exemplar = None
                errors[error_type] = (count, exemplar)
            tools[label] = replace(tool, errors=errors)
        trimmed.append(replace(entry, tools=tools))
    return trimmed


def snapshot_of(
    totals: Iterable[ExportedTotals],
    running: list[RunningTaskSnapshot],
    failures: tuple[FailedTaskSnapshot, ...],
) -> StoreSnapshot:
    """``totals`` as one :class:`StoreSnapshot`, with the ``running`` tasks and latest
    ``failures`` given: a :class:`ToolSnapshot` per tool of each set of constant labels, the
    custom metrics, and the gauges summed over the entries."""
    entries = list(totals)
    return StoreSnapshot(
        tools=[
            ToolSnapshot.from_aggregates(tool, entry.labels)
            for entry in entries
            for tool in entry.tools.values()
        ],
        running=running,
        custom=[
            CustomMetricSnapshot(name, unit, count, total, entry.labels)
            for entry in entries
            for (name, unit), (count, total) in entry.custom.items()
        ],
        **gauge_sums(entries),
        failures=failures,
    )
