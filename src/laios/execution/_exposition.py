"""The ``laios_*`` metric families written straight to exposition text, for fast scrapes.

``prometheus_client`` builds a ``Metric`` and a ``Sample`` object for every series and formats
each sample with several Python calls; 200 tools are ~26k samples, far too slow to scrape. The
:class:`StoreRenderer` writes the same text, byte for byte, in both the Prometheus text format
(0.0.4) and OpenMetrics (1.0.0), from :meth:`MetricStore.aggregates()
<laios.execution.store.MetricStore.aggregates>`: the label part of every line is escaped once
per tool and cached, so a render is mostly integers ``%``-formatted into cached templates.

This module also holds the label rules both exporters share (:func:`export_label`,
:func:`newer`), so that the collector in :mod:`laios.execution.prometheus` and this renderer
cannot drift apart. The families' names, types and help texts come from the table in
:mod:`laios.execution._families`, which the collector is built from too; the ``# HELP`` and
``# TYPE`` lines are written once, at import.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import accumulate, chain
from typing import TYPE_CHECKING, cast

from prometheus_client.utils import floatToGoString

from laios.execution._aggregates import (
    DURATION_BUCKETS,
    OUTCOMES,
    Exemplar,
    RawHistogram,
    ToolAggregates,
)
from laios.execution._families import (
    ABANDONED_THREADS,
    BUILD,
    CUSTOM,
    DURATION,
    ERRORS,
    FAMILIES,
    IN_FLIGHT,
    QUEUE_DEPTH,
    QUEUE_WAIT,
    RESULTS,
    RETRIES,
    TASKS,
    WORKERS,
)
from laios.execution._records import shorten

if TYPE_CHECKING:
    from laios.execution.store import MetricStore

__all__ = [
    "BOUNDS",
    "MAX_EXEMPLAR_CHARS",
    "MAX_LABEL_LENGTH",
    "ExportedTotals",
    "StoreRenderer",
    "export_label",
    "newer",
    "read_stores",
    "sum_totals",
]

#: Longest label value exported, in characters; longer names are cut (and merged if they clash).
MAX_LABEL_LENGTH = 200
#: OpenMetrics limits the characters of an exemplar's label names and values together.
MAX_EXEMPLAR_CHARS = 128
#: ``le`` values as prometheus_client writes them (``repr`` of a float: "0.001", "1.0", "300.0").
BOUNDS: tuple[str, ...] = (*(repr(float(b)) for b in DURATION_BUCKETS), "+Inf")
#: Counts below this are written as ``f"{n}.0"``, which is what ``floatToGoString`` gives them;
#: from 10**6 on it switches to exponent notation ("1.5e+06").
_PLAIN_BELOW = 1_000_000
_OUTCOME_SET = frozenset(OUTCOMES)
#: How prometheus_client writes a sample value ("1.0", "0.25", "1.5e+06", "+Inf").
_float_text = cast("Callable[[float], str]", floatToGoString)


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


def newer(current: Exemplar | None, candidate: Exemplar | None) -> Exemplar | None:
    """Of two exemplars, the newer one (the candidate on a tie); ``None`` loses."""
    if candidate is None:
        return current
    if current is None or candidate.timestamp >= current.timestamp:
        return candidate
    return current


def _escape(value: str) -> str:
    """Escape a label value as both text formats do."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _number(value: int) -> str:
    """``floatToGoString(float(value))``, without the float for the usual small counts."""
    if 0 <= value < _PLAIN_BELOW:
        return f"{value}.0"
    return _float_text(value)


def _float(value: float) -> str:
    """``floatToGoString(value)``: from 10**6 on, Go writes exponents sooner than ``repr``."""
    if 0.0 <= value < _PLAIN_BELOW:
        return repr(value)
    return _float_text(value)


#: Characters of an exemplar's label names ("trace_id", "span_id"), counted in its limit.
_EXEMPLAR_NAME_CHARS = len("trace_id") + len("span_id")


def _exemplar_text(exemplar: Exemplar | None) -> str:
    """The `` # {…} value timestamp`` suffix of an OpenMetrics line; ``""`` for none or one
    that is too long."""
    if exemplar is None:
        return ""
    trace_id, span_id = exemplar.trace_id, exemplar.span_id
    # Ids are hex in practice: nothing to cut or escape then.
    plain = trace_id.isalnum() and span_id.isalnum() and trace_id.isascii() and span_id.isascii()
    if not plain:
        trace_id, span_id = export_label(trace_id), export_label(span_id)
    if _EXEMPLAR_NAME_CHARS + len(trace_id) + len(span_id) > MAX_EXEMPLAR_CHARS:
        return ""
    if not plain:
        trace_id, span_id = _escape(trace_id), _escape(span_id)
    return (
        f' # {{span_id="{span_id}",trace_id="{trace_id}"}} '
        f"{_float(exemplar.value)} {exemplar.timestamp}"
    )


def _headers(openmetrics: bool) -> tuple[str, ...]:
    """The ``# HELP``/``# TYPE`` lines of each family of :data:`FAMILIES`, in its order, as
    prometheus_client writes them."""
    headers: list[str] = []
    for family in FAMILIES:
        name, kind, doc = family.name, family.kind, family.help
        if openmetrics:
            doc = _escape(doc)
        else:  # the Prometheus text format renames counters and info metrics
            doc = doc.replace("\\", r"\\").replace("\n", r"\n")
            if kind == "counter":
                name += "_total"
            elif kind == "info":
                name, kind = name + "_info", "gauge"
        headers.append(f"# HELP {name} {doc}\n# TYPE {name} {kind}\n")
    return tuple(headers)


_HEADERS = {False: _headers(False), True: _headers(True)}
#: Sample names of the families written anew at every render (per-tool ones are cached).
_BUILD_INFO = f"{BUILD.name}_info"
_WORKERS = f"{WORKERS.name} "
_QUEUE_DEPTH = f"{QUEUE_DEPTH.name} "
_ABANDONED_THREADS = f"{ABANDONED_THREADS.name} "
_CUSTOM_COUNT = f"{CUSTOM.name}_count"
_CUSTOM_SUM = f"{CUSTOM.name}_sum"


class _Histogram:
    """The cached text of one histogram series: a line prefix per sample, and templates.

    ``template`` takes the cumulative bucket counts, the count and the sum. For OpenMetrics,
    ``with_exemplars`` keeps the last exemplars seen, their text, and a template with that text
    built in: an exemplar changes only when a sampled task lands in its bucket, so most scrapes
    reuse the template, and the others format only the exemplars that changed.
    """

    __slots__ = ("prefixes", "template", "with_exemplars")

    def __init__(self, name: str, labels: str) -> None:
        self.prefixes: tuple[str, ...] = (
            *(f'{name}_bucket{{le="{bound}",{labels}}} ' for bound in BOUNDS),
            f"{name}_count{{{labels}}} ",
            f"{name}_sum{{{labels}}} ",
        )
        self.template = self._template(("",) * len(BOUNDS))
        # One attribute, replaced whole, so that racing renders never mix two states.
        self.with_exemplars: tuple[tuple[Exemplar | None, ...], tuple[str, ...], str] | None = None

    def _template(self, suffixes: tuple[str, ...]) -> str:
        *buckets, count, total = (prefix.replace("%", "%%") for prefix in self.prefixes)
        lines = [
            f"{bucket}%d.0{suffix.replace('%', '%%')}\n"
            for bucket, suffix in zip(buckets, suffixes, strict=True)
        ]
        return "".join(lines) + f"{count}%d.0\n{total}%s\n"

    def render(self, histogram: RawHistogram, openmetrics: bool) -> str:
        """The histogram's lines; in OpenMetrics with the buckets' exemplars."""
        cumulative = tuple(accumulate(histogram[2]))
        count = cumulative[-1]
        # The collector adds sums starting from 0.0; adding 0.0 here gives the same float.
        total = _float(histogram[1] + 0.0)
        template, suffixes = self.template, None
        exemplars = histogram[3]
        if openmetrics and any(exemplars):
            cached = self.with_exemplars
            if cached is None or cached[0] != exemplars:  # identical objects compare at C speed
                if cached is None:
                    texts = tuple(map(_exemplar_text, exemplars))
                else:
                    texts = tuple(
                        text if exemplar is old else _exemplar_text(exemplar)
                        for exemplar, old, text in zip(exemplars, *cached[:2], strict=True)
                    )
                cached = (exemplars, texts, self._template(texts))
                self.with_exemplars = cached
            suffixes, template = cached[1], cached[2]
        if count < _PLAIN_BELOW and cumulative[0] >= 0:
            return template % (*cumulative, count, total)
        *buckets, count_prefix, total_prefix = self.prefixes
        lines = [
            f"{prefix}{_number(value)}{suffix}\n"
            for prefix, value, suffix in zip(
                buckets, cumulative, suffixes or ("",) * len(buckets), strict=True
            )
        ]
        lines.append(f"{count_prefix}{_number(count)}\n{total_prefix}{total}\n")
        return "".join(lines)


class _ToolText:
    """The cached text pieces of one exported ``tool`` label value."""

    __slots__ = (
        "durations",
        "error_exemplars",
        "errors",
        "in_flight",
        "labels",
        "queue_wait",
        "results",
        "results_template",
        "retries",
        "tasks",
        "tasks_template",
    )

    def __init__(self, label: str) -> None:
        self.labels = f'tool="{_escape(label)}"'
        self.tasks: dict[str, str] = {}
        self.tasks_template = self._template(self.task_prefix)
        self.results: dict[str, str] = {}
        self.results_template = self._template(self.result_prefix)
        self.durations: dict[str, _Histogram] = {}
        self.queue_wait = _Histogram(QUEUE_WAIT.name, self.labels)
        self.retries = f"{RETRIES.name}_total{{{self.labels}}} "
        self.in_flight = f"{IN_FLIGHT.name}{{{self.labels}}} "
        self.errors: dict[str, str] = {}
        self.error_exemplars: dict[str, tuple[Exemplar | None, str]] = {}

    @staticmethod
    def _template(prefix: Callable[[str], str]) -> str:
        """The lines of a counter by outcome, every outcome, as a ``%`` template of counts."""
        return "".join(prefix(outcome).replace("%", "%%") + "%d.0\n" for outcome in OUTCOMES)

    def task_prefix(self, outcome: str) -> str:
        prefix = self.tasks.get(outcome)
        if prefix is None:
            prefix = f'{TASKS.name}_total{{outcome="{_escape(outcome)}",{self.labels}}} '
            self.tasks[outcome] = prefix
        return prefix

    def result_prefix(self, outcome: str) -> str:
        prefix = self.results.get(outcome)
        if prefix is None:
            prefix = f'{RESULTS.name}_total{{outcome="{_escape(outcome)}",{self.labels}}} '
            self.results[outcome] = prefix
        return prefix

    def duration(self, outcome: str) -> _Histogram:
        histogram = self.durations.get(outcome)
        if histogram is None:
            labels = f'outcome="{_escape(outcome)}",{self.labels}'
            histogram = _Histogram(DURATION.name, labels)
            self.durations[outcome] = histogram
        return histogram

    def error_line(
        self, error_type: str, count: int, exemplar: Exemplar | None, openmetrics: bool
    ) -> str:
        prefix = self.errors.get(error_type)
        if prefix is None:
            labels = f'error_type="{_escape(error_type)}",{self.labels}'
            prefix = f"{ERRORS.name}_total{{{labels}}} "
            self.errors[error_type] = prefix
        if not openmetrics or exemplar is None:
            return f"{prefix}{_number(count)}\n"
        cached = self.error_exemplars.get(error_type)
        if cached is None or cached[0] is not exemplar:
            cached = (exemplar, _exemplar_text(exemplar))
            self.error_exemplars[error_type] = cached
        return f"{prefix}{_number(count)}{cached[1]}\n"


def _add_histograms(first: RawHistogram, second: RawHistogram) -> RawHistogram:
    exemplars = tuple(newer(a, b) for a, b in zip(first[3], second[3], strict=True))
    buckets = tuple(a + b for a, b in zip(first[2], second[2], strict=True))
    return (first[0] + second[0], first[1] + second[1], buckets, exemplars)


def _merged(rows: list[ToolAggregates]) -> ToolAggregates:
    """One tool's aggregates summed over the stores (and slots) that share its label, with
    outcome and error-type keys as exported; the collector's sums, in the same order."""
    if len(rows) == 1:
        row = rows[0]
        if all(export_label(key) is key for key in chain(row.outcomes, row.errors, row.results)):
            return row
    outcomes: dict[str, RawHistogram] = {}
    queue_wait = rows[0].queue_wait
    errors: dict[str, tuple[int, Exemplar | None]] = {}
    results: dict[str, int] = {}
    retries = in_flight = 0
    for index, row in enumerate(rows):
        for outcome, histogram in row.outcomes.items():
            key = export_label(outcome)
            known = outcomes.get(key)
            outcomes[key] = histogram if known is None else _add_histograms(known, histogram)
        if index:
            queue_wait = _add_histograms(queue_wait, row.queue_wait)
        retries += row.retries
        in_flight += row.in_flight
        for outcome, count in row.results.items():
            key = export_label(outcome)
            results[key] = results.get(key, 0) + count
        for error_type, (count, exemplar) in row.errors.items():
            key = export_label(error_type)
            known_count, known_exemplar = errors.get(key, (0, None))
            errors[key] = (known_count + count, newer(known_exemplar, exemplar))
    return ToolAggregates(rows[0].tool, outcomes, queue_wait, retries, in_flight, errors, results)


@dataclass(frozen=True, slots=True)
class ExportedTotals:
    """The stores' aggregates added together, keyed by exported label values.

    Attributes:
        tools: Each exported ``tool`` label (sorted) with its summed aggregates.
        custom: ``(name, unit)`` (sorted) with the summed ``(count, sum)``.
        workers: Worker threads of the stores' open pools.
        queue_depth: Tasks waiting for a worker.
        abandoned_threads: Threads held by tools that overran their timeout.
    """

    tools: dict[str, ToolAggregates]
    custom: dict[tuple[str, str], tuple[int, float]]
    workers: int = 0
    queue_depth: int = 0
    abandoned_threads: int = 0


def read_stores(stores: Iterable[MetricStore]) -> ExportedTotals:
    """Read each store once (:meth:`MetricStore.aggregates`) and add them together.

    Both exporters start here — :class:`StoreRenderer` and the ``prometheus_client`` collector
    — so they cannot disagree on a number or a label.
    """
    groups: dict[str, list[ToolAggregates]] = {}
    custom: dict[tuple[str, str], tuple[int, float]] = {}
    workers = queue_depth = abandoned = 0
    for store in stores:
        read = store.aggregates()
        workers += read.workers
        queue_depth += read.queue_depth
        abandoned += read.abandoned_threads
        for tool in read.tools:
            groups.setdefault(export_label(tool.tool), []).append(tool)
        for entry in read.custom:
            key = (export_label(entry.name), export_label(entry.unit))
            count, total = custom.get(key, (0, 0.0))
            custom[key] = (count + entry.count, total + entry.sum)
    return ExportedTotals(
        {label: _merged(groups[label]) for label in sorted(groups)},
        dict(sorted(custom.items())),
        workers,
        queue_depth,
        abandoned,
    )


def _by_outcome(template: str, prefix: Callable[[str], str], counts: dict[str, int]) -> str:
    """The lines of a counter by outcome: every outcome (0 until it happens), then any other
    outcome a store recorded."""
    extra = sorted(outcome for outcome in counts if outcome not in _OUTCOME_SET)
    values = [counts.get(outcome, 0) for outcome in OUTCOMES]
    if not extra and min(values) >= 0 and max(values) < _PLAIN_BELOW:
        return template % tuple(values)
    return "".join(
        f"{prefix(outcome)}{_number(counts.get(outcome, 0))}\n" for outcome in (*OUTCOMES, *extra)
    )


def sum_totals(parts: Iterable[ExportedTotals]) -> ExportedTotals:
    """Add exported totals together, as :func:`read_stores` adds stores: counts, sums, buckets
    and gauges are summed per exported label; of two exemplars the newer is kept."""
    groups: dict[str, list[ToolAggregates]] = {}
    custom: dict[tuple[str, str], tuple[int, float]] = {}
    workers = queue_depth = abandoned = 0
    for part in parts:
        workers += part.workers
        queue_depth += part.queue_depth
        abandoned += part.abandoned_threads
        for label, tool in part.tools.items():
            groups.setdefault(label, []).append(tool)
        for key, (count, total) in part.custom.items():
            known_count, known_total = custom.get(key, (0, 0.0))
            custom[key] = (known_count + count, known_total + total)
    return ExportedTotals(
        {label: _merged(groups[label]) for label in sorted(groups)},
        dict(sorted(custom.items())),
        workers,
        queue_depth,
        abandoned,
    )


class StoreRenderer:
    """Writes the ``laios_*`` families of one or more stores as exposition text.

    The output is what ``prometheus_client`` writes for :class:`StoreCollector
    <laios.execution.prometheus.StoreCollector>`'s families, in the same order. Text pieces are
    cached per exported tool label; each render keeps only the labels it used. Safe to call
    from several threads (a race at worst rebuilds a cached piece).
    """

    def __init__(self) -> None:
        self._tools: dict[str, _ToolText] = {}

    def render(self, stores: Iterable[MetricStore], version: str, *, openmetrics: bool) -> str:
        """Return the families of ``stores`` (added together) as text, without ``# EOF``.

        Args:
            stores: The stores to add together, in the collector's order.
            version: The ``version`` label of ``laios_build_info``.
            openmetrics: OpenMetrics 1.0.0 (with exemplars) rather than the text format 0.0.4.
        """
        return self.render_totals(read_stores(stores), version, openmetrics=openmetrics)

    def render_totals(self, read: ExportedTotals, version: str, *, openmetrics: bool) -> str:
        """Return the families of ``read`` as text, without ``# EOF`` (see :meth:`render`)."""
        custom, workers = read.custom, read.workers
        queue_depth, abandoned = read.queue_depth, read.abandoned_threads
        known_tools, tools = self._tools, {}
        tasks: list[str] = []
        results: list[str] = []
        durations: list[str] = []
        queue_waits: list[str] = []
        retries: list[str] = []
        errors: list[str] = []
        in_flight: list[str] = []
        for label, tool in read.tools.items():
            text = known_tools.get(label) or _ToolText(label)
            tools[label] = text
            outcomes = tool.outcomes
            extra = sorted(outcome for outcome in outcomes if outcome not in _OUTCOME_SET)
            counts = [outcomes[o][0] if o in outcomes else 0 for o in OUTCOMES]
            if not extra and min(counts) >= 0 and max(counts) < _PLAIN_BELOW:
                tasks.append(text.tasks_template % tuple(counts))
            else:
                tasks.extend(
                    f"{text.task_prefix(o)}{_number(outcomes[o][0] if o in outcomes else 0)}\n"
                    for o in (*OUTCOMES, *extra)
                )
            results.append(_by_outcome(text.results_template, text.result_prefix, tool.results))
            for outcome in (*OUTCOMES, *extra):
                histogram = outcomes.get(outcome)
                if histogram is not None:
                    durations.append(text.duration(outcome).render(histogram, openmetrics))
            if tool.queue_wait[0]:
                queue_wait = tool.queue_wait
                queue_waits.append(text.queue_wait.render(queue_wait, openmetrics))
            retries.append(f"{text.retries}{_number(tool.retries)}\n")
            for error_type in sorted(tool.errors):
                count, exemplar = tool.errors[error_type]
                errors.append(text.error_line(error_type, count, exemplar, openmetrics))
            in_flight.append(f"{text.in_flight}{_number(tool.in_flight)}\n")
        self._tools = tools

        # Unpacked rather than looked up by name: cheaper per render, and a family added to
        # the table but not written here fails every render instead of going missing.
        (
            build_header,
            tasks_header,
            results_header,
            duration_header,
            queue_wait_header,
            retries_header,
            errors_header,
            in_flight_header,
            workers_header,
            queue_depth_header,
            abandoned_header,
            custom_header,
        ) = _HEADERS[openmetrics]
        parts = [
            build_header,
            f'{_BUILD_INFO}{{version="{_escape(version)}"}} 1.0\n',
            tasks_header,
            *tasks,
            results_header,
            *results,
            duration_header,
            *durations,
            queue_wait_header,
            *queue_waits,
            retries_header,
            *retries,
            errors_header,
            *errors,
            in_flight_header,
            *in_flight,
            workers_header,
            f"{_WORKERS}{_number(workers)}\n",
            queue_depth_header,
            f"{_QUEUE_DEPTH}{_number(queue_depth)}\n",
            abandoned_header,
            f"{_ABANDONED_THREADS}{_number(abandoned)}\n",
            custom_header,
        ]
        for (name, unit), (count, total) in custom.items():
            labels = f'name="{_escape(name)}",unit="{_escape(unit)}"'
            parts.append(f"{_CUSTOM_COUNT}{{{labels}}} {_number(count)}\n")
            parts.append(f"{_CUSTOM_SUM}{{{labels}}} {_float(total)}\n")
        return "".join(parts)
