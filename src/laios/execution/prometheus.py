"""Prometheus exposition of the metric store, rendered at scrape time.

:class:`StoreCollector` is a custom ``prometheus_client`` collector: it keeps no counters of its
own and turns the aggregates of its stores (:meth:`StoreCollector.totals`) into metric families
each time it is collected. The families (see ``docs/metrics.md``; their names, types, help texts
and label names are declared once, in :mod:`laios.execution._families`), each with the constant
labels of its store (``MetricStore(labels=...)``) but ``laios_build_info``:

- ``laios_build_info{version}`` (gauge, always 1)
- ``laios_tasks_total{tool,outcome}`` (counter; every outcome of every tool slot, zeros included)
- ``laios_task_duration_seconds{tool,outcome}`` (histogram, for the outcomes ``success`` and
  ``error``; exemplars ``{trace_id,span_id}``)
- ``laios_task_queue_wait_seconds{tool}`` (histogram)
- ``laios_task_retries_total{tool,error_type}`` and ``laios_task_errors_total{tool,error_type}``
  (counters)
- ``laios_tasks_in_flight{tool}``, ``laios_executor_workers``, ``laios_executor_busy_workers``,
  ``laios_executor_queue_depth``, ``laios_executor_abandoned_threads`` (gauges)
- ``laios_custom_metric{name,unit}`` (summary: ``_count`` and ``_sum`` of
  ``PerformanceMonitor.record_metric`` values)

For scrapes, :func:`render_metrics` (what ``/metrics`` serves) skips the ``Metric`` objects: it
writes these families straight from the stores (:meth:`StoreCollector.render`, ~8× faster)
and leaves the rest of the registry to ``prometheus_client``, with the collector muted meanwhile
in that thread only. Plain ``generate_latest(registry)`` goes through :meth:`collect` as before.

Several stores, one registry: :func:`ensure_collector` keeps one collector per registry, and a
second store handed to it joins that collector, which adds together the numbers of the stores
with the same constant labels (counts, sums and buckets are summed; of two exemplars the newer
one wins). The collector reports a store while it lives and never keeps it alive; when the
store is gone, its counts are folded into the collector's totals, so that no counter ever goes
backwards, and its gauges leave (see :mod:`laios.execution._totals`).

Example:
    >>> from prometheus_client import CollectorRegistry, generate_latest
    >>> from laios.execution.store import MetricStore
    >>> registry, store = CollectorRegistry(), MetricStore()
    >>> collector = ensure_collector(store, registry)
    >>> b"laios_executor_workers 0.0" in generate_latest(registry)
    True
"""

from __future__ import annotations

import contextlib
import re
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from importlib.metadata import PackageNotFoundError, version
from itertools import accumulate
from typing import NamedTuple, TypeVar
from urllib.parse import parse_qs

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.registry import Collector
from prometheus_client.samples import Exemplar as PromExemplar

from laios._exceptions import exception_message, type_name
from laios._text import shorten
from laios.execution._aggregates import (
    DURATION_OUTCOMES,
    Exemplar,
    LabelSet,
    RawHistogram,
    StoreSnapshot,
    every_outcome,
)
from laios.execution._checks import not_a_class, require_method, switch
from laios.execution._exposition import MAX_EXEMPLAR_CHARS as _MAX_EXEMPLAR_CHARS
from laios.execution._exposition import StoreRenderer, bound_texts
from laios.execution._families import (
    BUILD,
    CUSTOM,
    DURATION,
    ERRORS,
    FAMILIES,
    IN_FLIGHT,
    QUEUE_WAIT,
    RESULTS,
    RETRIES,
    STORE_GAUGES,
    TASKS,
    Family,
    Kind,
)
from laios.execution._totals import (
    MAX_LABEL_LENGTH,
    ExportedTotals,
    StoreTable,
    recent_error_exemplars,
    snapshot_of,
)
from laios.execution._totals import export_label as _label
from laios.execution.store import MetricStore, get_default_store

__all__ = [
    "MAX_LABEL_LENGTH",
    "ExportedTotals",
    "StoreCollector",
    "build_version",
    "ensure_collector",
    "names_from_query",
    "render_for_accept",
    "render_metrics",
    "unregister_collector",
]

_OPENMETRICS_TYPE = "application/openmetrics-text"
#: Name escapings (from ``Accept``) under which prometheus_client writes every ``laios_*`` name
#: unchanged in both formats ("dots" doubles each "_"; "values" prefixes OpenMetrics names).
_PLAIN_ESCAPINGS = frozenset({"underscores", "allow-utf-8"})
_EOF = b"# EOF\n"
#: What a ``registry`` argument must be, as its refusal says (see ``require_method``).
_A_REGISTRY = "a prometheus_client CollectorRegistry"
#: The version of OpenMetrics, and of the text format after 0.0.4, that ``/metrics`` writes.
_VERSION_1 = (1, 0, 0)
#: A quoted string (RFC 9110 5.6.4: a backslash in it escapes the next character; one left
#: open runs to the end), a run of other characters, or the separator: every character is in
#: one. Each alternative starts with its own kind of character and none backtracks into
#: another, so the text is read in one pass.
_QUOTED_OR_NOT = {
    sep: re.compile(rf'"(?:[^"\\]|\\.)*"?|[^"{sep}]+|{sep}', re.DOTALL) for sep in ",;"
}


def build_version() -> str:
    """Return the installed version of ``laios``, or ``"0.0.0+unknown"`` when not installed."""
    try:
        return version("laios")
    except PackageNotFoundError:
        return "0.0.0+unknown"


def _prom_exemplar(exemplar: Exemplar | None) -> PromExemplar | None:
    if exemplar is None:
        return None
    labels = {"trace_id": _label(exemplar.trace_id), "span_id": _label(exemplar.span_id)}
    if sum(len(k) + len(v) for k, v in labels.items()) > _MAX_EXEMPLAR_CHARS:
        return None
    return PromExemplar(labels, exemplar.value, exemplar.timestamp)


def _buckets_for_export(
    histogram: RawHistogram, bounds: tuple[float, ...]
) -> list[tuple[str, float] | tuple[str, float, PromExemplar]]:
    rows: list[tuple[str, float] | tuple[str, float, PromExemplar]] = []
    for bound, cumulative, exemplar in zip(
        bound_texts(bounds), accumulate(histogram[2]), histogram[3], strict=True
    ):
        converted = _prom_exemplar(exemplar)
        if converted is None:
            rows.append((bound, float(cumulative)))
        else:
            rows.append((bound, float(cumulative), converted))
    return rows


_M = TypeVar("_M", bound=Metric)

#: The ``prometheus_client`` class of each kind of family.
_CLASSES: dict[Kind, Callable[..., Metric]] = {
    "counter": CounterMetricFamily,
    "gauge": GaugeMetricFamily,
    "histogram": HistogramMetricFamily,
    "info": InfoMetricFamily,
    "summary": SummaryMetricFamily,
}


def _new(cls: Callable[..., _M], family: Family, constant: tuple[str, ...] = ()) -> _M:
    """An empty ``cls`` for ``family``: its name, help text and label names from the table,
    after the names of the ``constant`` labels."""
    if _CLASSES[family.kind] is not cls:
        raise TypeError(f"{family.name} is a {family.kind}, not a {cls}")
    return cls(family.name, family.help, labels=(*constant, *family.labels))


def _families(totals: Sequence[ExportedTotals], package_version: str) -> list[Metric]:
    build = _new(InfoMetricFamily, BUILD)
    build.add_metric([], {"version": package_version})
    # Every family of the table (the order the renderer writes), each gathering the samples of
    # every set of constant labels.
    families = [build, *(_new(_CLASSES[family.kind], family) for family in FAMILIES[1:])]
    for entry in totals:
        parts = _group_families(entry)
        for family, part in zip(families[1:], parts, strict=True):
            family.samples.extend(part.samples)
    return families


def _group_families(entry: ExportedTotals) -> list[Metric]:
    """The families of one set of constant labels (every family but ``laios_build_info``, in
    the order of the table), their samples labelled with the constant labels first."""
    names = tuple(name for name, _ in entry.labels)
    values = [value for _, value in entry.labels]
    tasks = _new(CounterMetricFamily, TASKS, names)
    results = _new(CounterMetricFamily, RESULTS, names)
    duration = _new(HistogramMetricFamily, DURATION, names)
    queue_wait = _new(HistogramMetricFamily, QUEUE_WAIT, names)
    retries = _new(CounterMetricFamily, RETRIES, names)
    errors = _new(CounterMetricFamily, ERRORS, names)
    in_flight = _new(GaugeMetricFamily, IN_FLIGHT, names)
    durations, waits = entry.duration_buckets, entry.queue_wait_buckets
    for tool, row in entry.tools.items():
        for outcome in every_outcome(row.outcomes):
            histogram = row.outcomes.get(outcome)
            tasks.add_metric([*values, tool, outcome], float(histogram[0]) if histogram else 0.0)
        for outcome in every_outcome(row.results):
            results.add_metric([*values, tool, outcome], float(row.results.get(outcome, 0)))
        for outcome in DURATION_OUTCOMES:
            histogram = row.outcomes.get(outcome)
            if histogram is not None:
                buckets = _buckets_for_export(histogram, durations)
                duration.add_metric([*values, tool, outcome], buckets, histogram[1])
        if row.queue_wait[0]:
            queue_wait.add_metric(
                [*values, tool], _buckets_for_export(row.queue_wait, waits), row.queue_wait[1]
            )
        for error_type in sorted(row.retry_errors):
            count = row.retry_errors[error_type]
            retries.add_metric([*values, tool, error_type], float(count))
        for error_type in sorted(row.errors):
            count, exemplar = row.errors[error_type]
            errors.add_metric(
                [*values, tool, error_type], float(count), exemplar=_prom_exemplar(exemplar)
            )
        if entry.live:
            in_flight.add_metric([*values, tool], float(row.in_flight))
    gauges = [_new(GaugeMetricFamily, gauge.family, names) for gauge in STORE_GAUGES]
    if entry.live:
        for family, gauge in zip(gauges, STORE_GAUGES, strict=True):
            family.add_metric(values, float(getattr(entry, gauge.field)))
    custom = _new(SummaryMetricFamily, CUSTOM, names)
    for (name, unit), (count, total) in entry.custom.items():
        custom.add_metric([*values, name, unit], count, total)
    return [
        tasks,
        results,
        duration,
        queue_wait,
        retries,
        errors,
        in_flight,
        *gauges,
        custom,
    ]


class StoreCollector(Collector):
    """A collector that renders one or more metric stores at scrape time.

    Register it through :func:`ensure_collector` rather than ``registry.register``: that keeps
    one collector per registry, so a second store never causes a "Duplicated timeseries" error.

    The lifecycle of its stores: a store is reported while it lives, and the collector holds it
    weakly, so it never keeps a store alive (an executor holds its store; drop the executor and
    its store goes, unless you hold the store yourself). When a store is gone, its counters and
    histograms are folded into the totals of its constant labels, which the collector keeps
    (bounded by the label caps), so no ``laios_*`` counter goes backwards; its gauges leave.
    The fold happens at the next scrape or store added, or at once when the store is collected;
    see :mod:`laios.execution._totals` for why it is done that way.

    Args:
        store: The first store to render.
    """

    def __init__(self, store: MetricStore) -> None:
        self._table = StoreTable()
        self._table.add(_checked_store(store))
        # Read once: looking up package metadata scans sys.path, too slow for every scrape.
        self._version = build_version()
        self._renderer = StoreRenderer()
        self._muted = threading.local()
        self._source: Callable[[], list[ExportedTotals]] | None = None

    @property
    def stores(self) -> tuple[MetricStore, ...]:
        """The live stores this collector adds together, in the order they joined."""
        return self._table.stores()

    def add_store(self, store: MetricStore) -> bool:
        """Add ``store`` to the stores rendered; return ``False`` when it was already there.

        Raises:
            ValueError: When the collector already reports stores with the same constant labels
                and other bucket bounds, or 100 sets of constant labels already.
            TypeError: When ``store`` is not a ``MetricStore``.
        """
        return self._table.add(_checked_store(store))

    def totals(self) -> list[ExportedTotals]:
        """The numbers this collector exports: one :class:`ExportedTotals` per distinct set of
        constant labels (sorted, the empty set first), each the sum of its live stores (read
        now) and of the folded totals of its gone stores, with its labels and its histograms'
        bucket bounds.

        Every exporter starts here: :meth:`collect`, :meth:`render`, and :meth:`snapshot`
        (``/status``).
        """
        return self._table.totals()

    def limits(self) -> dict[LabelSet, tuple[int, int, int]]:
        """The label limits of each set of constant labels this collector exports:
        ``(max_tool_labels, max_error_types, max_custom_metrics)``, the largest of every store
        that joined it, live or gone (the folded totals of its gone stores are kept within
        them)."""
        return self._table.limits()

    def use_totals(self, source: Callable[[], list[ExportedTotals]] | None) -> None:
        """Export what ``source()`` returns at each collection instead of :meth:`totals`.

        :func:`laios.execution.multiprocess.enable` passes the totals of every worker process
        added together; ``None`` goes back to this process's own totals. :meth:`totals` stays
        this process's own (what the worker writes for the others to add).
        """
        self._source = source

    def _exported(self) -> list[ExportedTotals]:
        """What :meth:`collect` and :meth:`render` export: :meth:`totals`, or the source's."""
        source = self._source
        return recent_error_exemplars(self.totals() if source is None else source())

    def snapshot(self) -> StoreSnapshot:
        """What :meth:`collect` exports, as one snapshot (what ``/status`` shows): a
        :class:`~laios.execution._aggregates.ToolSnapshot` per tool of each set of constant
        labels (its ``labels`` set), and the gauges: :meth:`totals`, or in multiprocess mode the
        sum over the processes that :meth:`use_totals` passes. The tasks queued or running and
        the latest failures are those of this process's live stores."""
        own = self._table.snapshot()
        source = self._source
        if source is None:
            return own
        return snapshot_of(source(), own.running, own.failures)

    def collect(self) -> Iterator[Metric]:
        """Yield the metric families of the stores' current aggregates.

        Yields nothing in a thread inside :meth:`muted`, as :func:`render_metrics` is for this
        collector's registry: that function writes these families itself, faster.
        """
        if getattr(self._muted, "depth", 0):
            return
        yield from _families(self._exported(), self._version)

    def render(self, *, openmetrics: bool = False, names: Iterable[str] | None = None) -> str:
        """Return the families :meth:`collect` yields, written directly as exposition text.

        The text is what ``prometheus_client`` would write for them (the Prometheus text
        format 0.0.4, or OpenMetrics 1.0.0 with exemplars but without the final ``# EOF``),
        about eight times faster for 200 tools. With ``names``, only the samples of those
        names, as ``prometheus_client``'s ``restricted_registry(names)`` would write them
        (``TypeError`` for a single string rather than an iterable of names).
        """
        return self._renderer.render(
            self._exported(),
            self._version,
            openmetrics=openmetrics,
            names=_read_names(names),  # (each family reads them)
        )

    @contextlib.contextmanager
    def muted(self) -> Iterator[None]:
        """Make :meth:`collect` yield nothing in the calling thread, for the ``with`` block.

        :func:`render_metrics` renders the rest of the registry with ``prometheus_client``
        inside this block and writes this collector's families itself with :meth:`render`,
        so that they appear once. Other threads still collect everything; blocks nest.

        Yields:
            ``None``; the collector is muted until the block exits.
        """
        self._muted.depth = getattr(self._muted, "depth", 0) + 1
        try:
            yield
        finally:
            self._muted.depth -= 1

    def describe(self) -> Iterator[Metric]:
        """Yield the families (without samples) so registries can check names up front."""
        for family in _families([ExportedTotals({}, {})], self._version):
            family.samples = []
            yield family


_collectors: weakref.WeakKeyDictionary[CollectorRegistry, StoreCollector] = (
    weakref.WeakKeyDictionary()
)
_collectors_lock = threading.Lock()


def _checked_store(store: object) -> MetricStore:
    """``store``, when it is a :class:`MetricStore`.

    Raises:
        TypeError: Otherwise, naming what it is (the class itself: an instance is wanted).
    """
    not_a_class("store", store, "snapshot")
    if not isinstance(store, MetricStore):
        raise TypeError(f"store must be a MetricStore, got {type(store).__name__}")
    return store


def ensure_collector(
    store: MetricStore | None = None, registry: CollectorRegistry | None = None
) -> StoreCollector:
    """Make sure ``registry`` exports ``store``, and return the registry's collector.

    The first call for a registry creates and registers a :class:`StoreCollector`; later calls
    with the same registry add their store to it (idempotent for a store already there). Safe
    to call from several threads.

    Args:
        store: The store to export; defaults to :func:`~laios.execution.store.get_default_store`.
        registry: Where to register; defaults to ``prometheus_client.REGISTRY``.

    Returns:
        The one collector of ``registry``.

    Raises:
        ValueError: When another collector in ``registry`` already exports ``laios_*`` names
            (for example a ``StoreCollector`` registered by hand); when the registry exports
            stores with the same constant labels as ``store`` and other bucket bounds (their
            histograms cannot be added: give the store other labels or the same buckets); or
            when the registry exports 100 sets of constant labels already.
        TypeError: When ``store`` is not a ``MetricStore`` or ``registry`` not a registry (the
            two swapped, a class given for an instance), or cannot be looked over (its
            attribute lookups raise).
        ValueError: When the registry's ``register`` raises anything else (a registry of
            your own that refuses collectors), naming what it raised.

    Example:
        >>> from prometheus_client import CollectorRegistry
        >>> registry = CollectorRegistry()
        >>> ensure_collector(None, registry) is ensure_collector(None, registry)
        True
    """
    return collector_for(store, registry)


def collector_for(
    store: MetricStore | None,
    registry: CollectorRegistry | None,
    option: str = "registry",
    way_out: str = "",
) -> StoreCollector:
    """:func:`ensure_collector`, its errors naming ``registry`` as ``option`` (the argument
    of the caller's own call that gave it), and a ``register`` that raises followed by
    ``way_out`` (another way of doing without, as ``", or register_prometheus=False"``)."""
    if store is None:
        store = get_default_store()
    else:
        _checked_store(store)
    if registry is None:
        registry = REGISTRY
    else:
        not_a_class(option, registry, "register")
        require_method(option, registry, "register", _A_REGISTRY)
    with _collectors_lock:
        collector = _collectors.get(registry)
        if collector is None:
            collector = StoreCollector(store)
            try:
                registry.register(collector)
            except ValueError as exc:  # (names it exports already: prometheus_client's refusal)
                said = exception_message(exc)
                if "Duplicated timeseries" not in said:
                    raise
                raise ValueError(
                    f"{option} already exports laios_* metrics: a StoreCollector registered by "
                    "hand, or another collector with laios_* names, is in it. Let laios "
                    "register the one collector it keeps per registry (an Executor does; or "
                    "call ensure_collector(store, registry)) instead of registering a "
                    "StoreCollector yourself, or unregister the other collector first "
                    f"(prometheus_client said: {shorten(said, 160)})"
                ) from exc
            except Exception as exc:
                raise ValueError(
                    f"{option}.register raised {type_name(type(exc))}: "
                    f"{shorten(exception_message(exc), 512)}; pass a working prometheus_client "
                    f"CollectorRegistry{way_out}"
                ) from exc
            _collectors[registry] = collector
        else:
            collector.add_store(store)
        return collector


def unregister_collector(registry: CollectorRegistry | None = None) -> StoreCollector | None:
    """Remove the collector :func:`ensure_collector` registered in ``registry``, if any.

    Args:
        registry: The registry; defaults to ``prometheus_client.REGISTRY``.

    Returns:
        The removed collector, or ``None`` when the registry had none.

    Raises:
        TypeError: When ``registry`` is not a registry.
    """
    if registry is None:
        registry = REGISTRY
    else:
        require_method("registry", registry, "unregister", _A_REGISTRY)
    with _collectors_lock:
        collector = _collectors.pop(registry, None)
        if collector is not None:
            # Someone may have unregistered it by hand already; forgetting it is enough then.
            with contextlib.suppress(KeyError):
                registry.unregister(collector)
        return collector


def names_from_query(query: str | bytes | None) -> frozenset[str] | None:
    """The ``name[]`` values of a URL query string, as ``prometheus_client``'s own endpoint
    reads them (``?name[]=laios_tasks_total&name[]=...``); ``None`` when there are none.

    Args:
        query: The query string (without ``?``), as a WSGI ``QUERY_STRING`` or an ASGI
            ``query_string``.

    Returns:
        The names to pass as ``names=`` to :func:`render_for_accept`, or ``None`` (no filter).

    Raises:
        TypeError: When ``query`` is not a ``str``, ``bytes`` or ``None`` (a framework's
            parsed parameters: pass the raw query string).
    """
    if query is not None and not isinstance(query, (str, bytes)):
        raise TypeError(
            "query must be the URL's query string (str or bytes) or None, got "
            f"{type(query).__name__}"
        )
    if not query:
        return None
    if isinstance(query, bytes):
        query = query.decode("latin-1")
    values = parse_qs(query).get("name[]")
    return frozenset(values) if values else None


def render_metrics(
    registry: CollectorRegistry | None = None,
    *,
    openmetrics: bool = False,
    names: Iterable[str] | None = None,
) -> bytes:
    """Render ``registry`` for a scrape: exactly the body ``/metrics`` serves.

    The ``laios_*`` families of the registry's collector (see :func:`ensure_collector`) are
    written directly by :meth:`StoreCollector.render`; every other metric of the registry (a
    user's own, the process metrics of the default registry) is rendered by
    ``prometheus_client``. The result equals ``generate_latest(registry)`` (or the OpenMetrics
    ``generate_latest``) except that the ``laios_*`` families come last (before ``# EOF``).
    A registry without a collector is rendered by ``prometheus_client`` alone.

    Args:
        registry: The registry; defaults to ``prometheus_client.REGISTRY``.
        openmetrics: OpenMetrics 1.0.0 (with exemplars) instead of the text format 0.0.4.
        names: Only the samples of these names (``laios_tasks_total``,
            ``laios_task_duration_seconds_bucket``, ``process_cpu_seconds_total``, ...), as
            ``prometheus_client``'s ``restricted_registry(names)`` gives them: a family with
            none of them is left out. ``None``: everything.

    Returns:
        The UTF-8 body.

    Raises:
        TypeError: When ``names`` is a single string rather than an iterable of names,
            ``registry`` is not a registry or ``openmetrics`` is not ``True`` or ``False``.

    Example:
        >>> from prometheus_client import CollectorRegistry
        >>> registry = CollectorRegistry()
        >>> _ = ensure_collector(MetricStore(), registry)
        >>> render_metrics(registry, openmetrics=True).endswith(b"# EOF\\n")
        True
    """
    openmetrics = switch("openmetrics", openmetrics)  # (a string like "no" reads as true)
    encoder = generate_openmetrics if openmetrics else generate_latest
    return _render(registry, encoder, openmetrics=openmetrics, direct=True, names=names)


def render_for_accept(
    accept: str | bytes | None = None,
    registry: CollectorRegistry | None = None,
    *,
    names: Iterable[str] | None = None,
) -> tuple[bytes, str]:
    """Render ``registry`` in the format an ``Accept`` header asks for, as ``/metrics`` does.

    The media range with the highest q-value wins (a missing ``q`` means 1, ``q=0`` means "not
    acceptable"); on a tie OpenMetrics (or text 1.0.0) beats the plain text format, then the
    first range listed wins. A format refused with ``q=0`` is not served through a less
    specific range (``text/plain;q=0, */*`` gets OpenMetrics). A range naming a version this
    server does not write (OpenMetrics other than 1.0.0, text 1.0.1) is not acceptable, so the
    ``Content-Type`` always names the version written. The chosen range is handed to
    ``prometheus_client.exposition.choose_encoder`` for the encoder and ``Content-Type``. A
    comma or semicolon in a quoted parameter value (``x="a,b"``) is part of the value. A
    range that cannot be parsed (a bad ``q``, a ``version`` that is not dotted numbers, a
    parameter without ``=``) is skipped, so a malformed header never fails: with nothing usable
    left, the answer is the Prometheus text format 0.0.4. The body is built as
    :func:`render_metrics` builds it.

    Args:
        accept: The request's ``Accept`` header (``None`` or empty: the text format 0.0.4),
            as text or as the bytes an ASGI scope carries (read as Latin-1).
        registry: The registry; defaults to ``prometheus_client.REGISTRY``.
        names: Only the samples of these names (see :func:`render_metrics`); read them from
            a query string with :func:`names_from_query`.

    Returns:
        The body and its ``Content-Type``.

    Raises:
        TypeError: When ``names`` is a single string rather than an iterable of names,
            ``accept`` is not text (``str``, ``bytes`` or ``None``) or ``registry`` is not a
            registry.
    """
    if isinstance(accept, bytes):
        accept = accept.decode("latin-1")
    elif accept is not None and not isinstance(accept, str):
        raise TypeError(
            "accept must be the Accept header as text (str or bytes) or None, got "
            f"{type(accept).__name__}"
        )
    encoder, content_type = _negotiate(accept or "")
    escaping = "underscores"
    for param in content_type.split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key == "escaping":
            escaping = value
    # Under other escapings prometheus_client rewrites names: leave the whole body to it.
    direct = escaping in _PLAIN_ESCAPINGS
    openmetrics = content_type.startswith(_OPENMETRICS_TYPE)
    body = _render(registry, encoder, openmetrics=openmetrics, direct=direct, names=names)
    return body, content_type


#: The formats ``/metrics`` writes, as :func:`_negotiate` tells them apart.
_OM_1, _TEXT_1, _TEXT_0 = "openmetrics 1.0.0", "text 1.0.0", "text 0.0.4"
_EVERY_FORMAT = frozenset({_OM_1, _TEXT_1, _TEXT_0})
_TEXT_FORMATS = frozenset({_TEXT_1, _TEXT_0})


class _Range(NamedTuple):
    """One parsed element of ``Accept``.

    Attributes:
        weight: Its q-value.
        served: ``None`` (no format this server writes), or the range to hand to
            ``choose_encoder`` (rebuilt from the checked ``version`` and ``escaping`` only),
            whether it is preferred to the plain text format 0.0.4 on a tie (OpenMetrics
            1.0.0, text 1.0.0), and the format it is served as.
        specificity: 3 for a type with a ``version``, 2 without, 1 for ``text/*``, 0 for
            ``*/*``: a refusal (``q=0``) of a format holds against less specific ranges.
        names: The formats the range names (what its ``q=0`` refuses).
    """

    weight: float
    served: tuple[str, bool, str] | None
    specificity: int
    names: frozenset[str]


def _negotiate(accept: str) -> tuple[Callable[[CollectorRegistry], bytes], str]:
    """The encoder and ``Content-Type`` for an ``Accept`` header; never raises on its content.

    A format a range refuses (``q=0``) is not served through a less specific range: with
    ``text/plain;q=0``, ``*/*`` stands for OpenMetrics 1.0.0 rather than the text format 0.0.4,
    and ``application/openmetrics-text;version=1.0.0;q=0`` leaves
    ``application/openmetrics-text`` nothing to serve.
    """
    elements = _split_unquoted(accept, ",")
    ranges = [parsed for parsed in map(_media_range, elements) if parsed is not None]
    # The most specific refusal of each format (-1: none).
    refused = dict.fromkeys(_EVERY_FORMAT, -1)
    for entry in ranges:
        if entry.weight <= 0.0:
            for name in entry.names:
                refused[name] = max(refused[name], entry.specificity)
    chosen, best = "", 0.0
    for entry in ranges:
        if entry.weight <= 0.0 or entry.served is None:
            continue
        media_range, preferred, served = entry.served
        if refused[served] > entry.specificity:
            if entry.specificity > 0 or refused[_OM_1] > 0:
                continue
            media_range, preferred = _OPENMETRICS_TYPE, True  # */*: the other format it takes
        if entry.weight > best:
            chosen, best = (media_range if preferred else ""), entry.weight
        elif entry.weight == best and preferred and not chosen:
            chosen = media_range
    try:
        return choose_encoder(chosen)
    except (TypeError, ValueError):
        # ``chosen`` holds only checked values; this guards against a prometheus_client that
        # refuses one of them (an escaping it does not know, say): serve the default then.
        return choose_encoder("")


def _media_range(element: str) -> _Range | None:
    """Parse one element of ``Accept``: its q-value and what this server can make of it.

    Returns ``None`` when the element cannot be parsed (see :class:`_Range`).

    A range naming a ``version`` matches only that version: OpenMetrics 1.0.0, and text 0.0.4
    or 1.0.0 (or any text version below 1.0.0, served as 0.0.4, the one text format before
    1.0.0). Another one (OpenMetrics 0.0.1 or 2.0.0, text 1.0.1) is not servable and is
    skipped, so that the ``Content-Type`` never names a version the body is not written in.
    """
    media_type, *raw_params = _split_unquoted(element, ";")
    media_type = media_type.strip().lower()
    if not media_type:
        return None
    params: dict[str, str] = {}
    for raw in raw_params:
        key, equals, value = raw.partition("=")
        key = key.strip().lower()
        if not key and not equals and not value.strip():
            continue  # an empty parameter, as in "text/plain;"
        if not key or not equals:
            return None
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        params[key] = value
    weight = _quality(params.get("q", "1"))
    if weight is None:
        return None
    version_text = params.get("version")
    version = None if version_text is None else _version(version_text)
    nothing: frozenset[str] = frozenset()
    if media_type == _OPENMETRICS_TYPE:
        if version_text is None:  # the latest: 1.0.0
            return _Range(weight, (_OPENMETRICS_TYPE, True, _OM_1), 2, frozenset({_OM_1}))
        if version != _VERSION_1:  # 0.0.1, 2.0.0, a draft, a version that does not parse
            return _Range(weight, None, 3, nothing)
        served = (_rebuilt(media_type, params.get("escaping")), True, _OM_1)
        return _Range(weight, served, 3, frozenset({_OM_1}))
    if media_type == "text/plain":
        if version_text is None:  # served as 0.0.4; names every text format
            return _Range(weight, ("", False, _TEXT_0), 2, _TEXT_FORMATS)
        if version is not None and version < _VERSION_1:
            return _Range(weight, ("", False, _TEXT_0), 3, frozenset({_TEXT_0}))
        if version != _VERSION_1:
            return _Range(weight, None, 3, nothing)
        served = (_rebuilt(media_type, params.get("escaping")), True, _TEXT_1)
        return _Range(weight, served, 3, frozenset({_TEXT_1}))
    if media_type == "text/*":
        return _Range(weight, ("", False, _TEXT_0), 1, _TEXT_FORMATS)
    if media_type == "*/*":
        return _Range(weight, ("", False, _TEXT_0), 0, _EVERY_FORMAT)
    return _Range(weight, None, 0, nothing)


def _split_unquoted(text: str, separator: str) -> list[str]:
    """``text.split(separator)``, but for a separator in a quoted string (``x="a,b"``), which
    is part of its parameter's value; in one pass over ``text``."""
    if '"' not in text:
        return text.split(separator)
    pieces: list[str] = []
    piece: list[str] = []
    for match in _QUOTED_OR_NOT[separator].finditer(text):
        token = match.group()
        if token == separator:
            pieces.append("".join(piece))
            piece = []
        else:
            piece.append(token)
    pieces.append("".join(piece))
    return pieces


def _quality(text: str) -> float | None:
    """A q-value between 0 and 1, or ``None`` when ``text`` is not one."""
    try:
        weight = float(text)
    except ValueError:
        return None
    return weight if 0.0 <= weight <= 1.0 else None


def _version(text: str) -> tuple[int, ...] | None:
    """``"1.0.0"`` as ``(1, 0, 0)``; ``None`` unless every part is a plain decimal number."""
    parts = text.split(".")
    if not all(part.isascii() and part.isdigit() for part in parts):
        return None
    try:
        return tuple(int(part) for part in parts)
    except ValueError:  # more digits than int() converts (sys.get_int_max_str_digits())
        return None


def _rebuilt(media_type: str, escaping: str | None) -> str:
    """A media range of version 1.0.0 with only the parameters ``choose_encoder`` reads."""
    params = ["version=1.0.0"]
    if escaping is not None:
        params.append(f"escaping={escaping}")
    return "; ".join([media_type, *params])


def _read_names(names: Iterable[str] | None) -> frozenset[str] | None:
    """``names`` as a set, read once; ``None`` for ``None``.

    Raises:
        TypeError: When ``names`` is a single string (or bytes), whose characters would be
            taken for names and match nothing.
    """
    if names is None:
        return None
    if isinstance(names, (str, bytes)):
        text = names if isinstance(names, str) else names.decode("utf-8", "replace")
        raise TypeError(
            f"names must be an iterable of sample names, not a single string: names=[{text!r}]"
        )
    return frozenset(names)


def _render(
    registry: CollectorRegistry | None,
    encoder: Callable[[CollectorRegistry], bytes],
    *,
    openmetrics: bool,
    direct: bool,
    names: Iterable[str] | None,
) -> bytes:
    if registry is None:
        registry = REGISTRY
    else:  # (else prometheus_client fails on it, in words that name no argument)
        not_a_class("registry", registry, "collect")
        require_method("registry", registry, "collect", _A_REGISTRY)
    # Read once: prometheus_client's part and the laios_* part both filter by them, and an
    # iterator would be used up by the first.
    names = _read_names(names)
    with _collectors_lock:
        collector = _collectors.get(registry)
    source: Collector = registry if names is None else registry.restricted_registry(names)
    if collector is None or not direct:
        return encoder(source)  # type: ignore[arg-type]
    with collector.muted():
        body = encoder(source)  # type: ignore[arg-type]
    ours = collector.render(openmetrics=openmetrics, names=names).encode("utf-8")
    if openmetrics and body.endswith(_EOF):
        return body[: -len(_EOF)] + ours + _EOF
    return body + ours
