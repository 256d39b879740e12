"""The ``laios_*`` metric families written straight to exposition text, for fast scrapes.

``prometheus_client`` builds a ``Metric`` and a ``Sample`` object for every series and formats
each sample with several Python calls; 200 tools are thousands of samples, too slow to scrape.
The :class:`StoreRenderer` writes the same text, byte for byte, in both the Prometheus text
format (0.0.4) and OpenMetrics (1.0.0), from the :class:`~laios.execution._totals.ExportedTotals`
of a collector: the label part of every line is escaped once per tool and cached, so a render
is mostly integers ``%``-formatted into cached templates.

The label rules both exporters share (:func:`~laios.execution._totals.export_label`,
:func:`~laios.execution._totals.newer`) live in :mod:`laios.execution._totals`, where both
exporters' numbers come from. The families' names, types and help texts come from the table
in :mod:`laios.execution._families`, which the collector is built from too; the ``# HELP``
and ``# TYPE`` lines are written once, at import.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Sequence
from itertools import accumulate
from typing import cast

from prometheus_client.utils import floatToGoString

from laios.execution._aggregates import (
    DURATION_OUTCOMES,
    OUTCOMES,
    Exemplar,
    LabelSet,
    RawHistogram,
    every_outcome,
)
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
    STORE_GAUGE_FIELDS,
    STORE_GAUGES,
    TASKS,
    Family,
)
from laios.execution._totals import ExportedTotals, export_label

__all__ = [
    "MAX_EXEMPLAR_CHARS",
    "StoreRenderer",
    "bound_texts",
    "sample_names",
]

#: OpenMetrics limits the characters of an exemplar's label names and values together.
MAX_EXEMPLAR_CHARS = 128
#: Counts below this are written as ``f"{n}.0"``, which is what ``floatToGoString`` gives them;
#: from 10**6 on it switches to exponent notation ("1.5e+06").
_PLAIN_BELOW = 1_000_000
#: How prometheus_client writes a sample value ("1.0", "0.25", "1.5e+06", "+Inf").
_float_text = cast("Callable[[float], str]", floatToGoString)


@functools.lru_cache(maxsize=64)
def bound_texts(bounds: tuple[float, ...]) -> tuple[str, ...]:
    """The ``le`` values of histogram buckets with these bounds, ``+Inf`` last, as
    prometheus_client writes them ("0.005", "1.0", "300.0")."""
    return (*(_float_text(bound) for bound in bounds), "+Inf")


def sample_names(family: Family) -> tuple[str, ...]:
    """The names of the samples a family writes (what ``name[]`` filters on)."""
    name = family.name
    if family.kind == "counter":
        return (f"{name}_total",)
    if family.kind == "info":
        return (f"{name}_info",)
    if family.kind == "histogram":
        return (f"{name}_bucket", f"{name}_count", f"{name}_sum")
    if family.kind == "summary":
        return (f"{name}_count", f"{name}_sum")
    return (name,)


def _escape(value: str) -> str:
    """Escape a label value as both text formats do."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _label_text(pairs: Sequence[tuple[str, str]]) -> str:
    """Label pairs as a line writes them: sorted by name (as prometheus_client sorts them),
    values escaped."""
    return ",".join(f'{name}="{_escape(value)}"' for name, value in sorted(pairs))


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
#: The sample names of each family of :data:`FAMILIES`, in its order.
_SAMPLE_NAMES = tuple(frozenset(sample_names(family)) for family in FAMILIES)
#: Sample names of the families written anew at every render (per-tool ones are cached).
_BUILD_INFO = f"{BUILD.name}_info"
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

    def __init__(
        self, name: str, labels: Sequence[tuple[str, str]], bounds: tuple[float, ...]
    ) -> None:
        texts = bound_texts(bounds)
        self.prefixes: tuple[str, ...] = (
            *(f"{name}_bucket{{{_label_text([*labels, ('le', bound)])}}} " for bound in texts),
            f"{name}_count{{{_label_text(labels)}}} ",
            f"{name}_sum{{{_label_text(labels)}}} ",
        )
        self.template = self._template(("",) * len(texts))
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
    """The cached text pieces of one exported ``tool`` label value of one label set."""

    __slots__ = (
        "duration_bounds",
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

    def __init__(self, label: str, group: _GroupText) -> None:
        self.labels: tuple[tuple[str, str], ...] = (*group.labels, ("tool", label))
        self.duration_bounds = group.duration_bounds
        labels = _label_text(self.labels)
        self.tasks: dict[str, str] = {}
        self.tasks_template = self._template(self.task_prefix)
        self.results: dict[str, str] = {}
        self.results_template = self._template(self.result_prefix)
        self.durations: dict[str, _Histogram] = {}
        self.queue_wait = _Histogram(QUEUE_WAIT.name, self.labels, group.queue_wait_bounds)
        self.retries: dict[str, str] = {}
        self.in_flight = f"{IN_FLIGHT.name}{{{labels}}} "
        self.errors: dict[str, str] = {}
        self.error_exemplars: dict[str, tuple[Exemplar | None, str]] = {}

    @staticmethod
    def _template(prefix: Callable[[str], str]) -> str:
        """The lines of a counter by outcome, every outcome, as a ``%`` template of counts."""
        return "".join(prefix(outcome).replace("%", "%%") + "%d.0\n" for outcome in OUTCOMES)

    def _counter_prefix(self, cache: dict[str, str], family: Family, label: str, value: str) -> str:
        """The start of a line of counter ``family`` for this tool and ``label=value``
        (cached in ``cache`` by ``value``)."""
        prefix = cache.get(value)
        if prefix is None:
            labels = _label_text([*self.labels, (label, value)])
            prefix = cache[value] = f"{family.name}_total{{{labels}}} "
        return prefix

    def task_prefix(self, outcome: str) -> str:
        return self._counter_prefix(self.tasks, TASKS, "outcome", outcome)

    def result_prefix(self, outcome: str) -> str:
        return self._counter_prefix(self.results, RESULTS, "outcome", outcome)

    def retry_prefix(self, error_type: str) -> str:
        return self._counter_prefix(self.retries, RETRIES, "error_type", error_type)

    def keep_only(self, errors: Collection[str], retries: Collection[str]) -> None:
        """Forget the lines cached for error types no longer exported: those of stores gone
        and folded into ``other`` (stores that come and go, each failing its own way, would
        otherwise leave theirs here for good). Called once the tool's lines are written, so
        that every type exported is cached: a cache larger than the types has stale ones."""
        if len(self.errors) > len(errors):
            self.errors = {key: line for key, line in self.errors.items() if key in errors}
        if len(self.error_exemplars) > len(errors):
            self.error_exemplars = {
                key: cached for key, cached in self.error_exemplars.items() if key in errors
            }
        if len(self.retries) > len(retries):
            self.retries = {key: line for key, line in self.retries.items() if key in retries}

    def duration(self, outcome: str) -> _Histogram:
        histogram = self.durations.get(outcome)
        if histogram is None:
            labels = (*self.labels, ("outcome", outcome))
            histogram = _Histogram(DURATION.name, labels, self.duration_bounds)
            self.durations[outcome] = histogram
        return histogram

    def error_line(
        self, error_type: str, count: int, exemplar: Exemplar | None, openmetrics: bool
    ) -> str:
        prefix = self._counter_prefix(self.errors, ERRORS, "error_type", error_type)
        if not openmetrics or exemplar is None:
            return f"{prefix}{_number(count)}\n"
        cached = self.error_exemplars.get(error_type)
        if cached is None or cached[0] is not exemplar:
            cached = (exemplar, _exemplar_text(exemplar))
            self.error_exemplars[error_type] = cached
        return f"{prefix}{_number(count)}{cached[1]}\n"


class _GroupText:
    """The cached text pieces of one set of constant labels (with its bucket bounds)."""

    __slots__ = (
        "duration_bounds",
        "gauges",
        "labels",
        "queue_wait_bounds",
        "tools",
    )

    def __init__(self, totals: ExportedTotals) -> None:
        self.labels = totals.labels
        self.duration_bounds = totals.duration_buckets
        self.queue_wait_bounds = totals.queue_wait_buckets
        braced = f"{{{_label_text(self.labels)}}}" if self.labels else ""
        #: The start of each of ``STORE_GAUGES``' lines, before the value.
        self.gauges = tuple(f"{gauge.family.name}{braced} " for gauge in STORE_GAUGES)
        self.tools: dict[str, _ToolText] = {}

    def custom_labels(self, name: str, unit: str) -> str:
        return _label_text([*self.labels, ("name", name), ("unit", unit)])


#: A label set with its bucket bounds: what a :class:`_GroupText` is cached under.
_GroupKey = tuple[LabelSet, tuple[float, ...], tuple[float, ...]]


def _by_outcome(template: str, prefix: Callable[[str], str], counts: dict[str, int]) -> str:
    """The lines of a counter by outcome: every outcome (0 until it happens), then any other
    outcome a store recorded."""
    outcomes = every_outcome(counts)
    values = [counts.get(outcome, 0) for outcome in outcomes]
    if len(outcomes) == len(OUTCOMES) and min(values) >= 0 and max(values) < _PLAIN_BELOW:
        return template % tuple(values)
    return "".join(
        f"{prefix(outcome)}{_number(value)}\n"
        for outcome, value in zip(outcomes, values, strict=True)
    )


class StoreRenderer:
    """Writes the ``laios_*`` families of a collector's totals as exposition text.

    The output is what ``prometheus_client`` writes for :class:`StoreCollector
    <laios.execution.prometheus.StoreCollector>`'s families, in the same order. Text pieces are
    cached per label set and exported tool label; each render keeps only those it used. Safe to
    call from several threads (a race at worst rebuilds a cached piece).
    """

    def __init__(self) -> None:
        self._groups: dict[_GroupKey, _GroupText] = {}

    def render(
        self,
        totals: Sequence[ExportedTotals],
        version: str,
        *,
        openmetrics: bool,
        names: Collection[str] | None = None,
    ) -> str:
        """Return the families of ``totals`` as text, without ``# EOF``.

        Args:
            totals: What :meth:`StoreCollector.totals
                <laios.execution.prometheus.StoreCollector.totals>` returned, in its order.
            version: The ``version`` label of ``laios_build_info``.
            openmetrics: OpenMetrics 1.0.0 (with exemplars) rather than the text format 0.0.4.
            names: Sample names to write (as ``prometheus_client``'s ``restricted_registry``
                filters): a family is written with only its samples of these names, and left
                out when it has none. ``None``: every sample.
        """
        known_groups, groups = self._groups, {}
        tasks: list[str] = []
        results: list[str] = []
        durations: list[str] = []
        queue_waits: list[str] = []
        retries: list[str] = []
        errors: list[str] = []
        in_flight: list[str] = []
        gauges: list[list[str]] = [[] for _ in STORE_GAUGES]
        custom: list[str] = []
        for entry in totals:
            key = (entry.labels, entry.duration_buckets, entry.queue_wait_buckets)
            group = known_groups.get(key) or _GroupText(entry)
            groups[key] = group
            known_tools, tools = group.tools, {}
            live = entry.live
            for label, tool in entry.tools.items():
                text = known_tools.get(label) or _ToolText(label, group)
                tools[label] = text
                outcomes = tool.outcomes
                counts = {outcome: histogram[0] for outcome, histogram in outcomes.items()}
                tasks.append(_by_outcome(text.tasks_template, text.task_prefix, counts))
                results.append(_by_outcome(text.results_template, text.result_prefix, tool.results))
                for outcome in DURATION_OUTCOMES:
                    histogram = outcomes.get(outcome)
                    if histogram is not None:
                        durations.append(text.duration(outcome).render(histogram, openmetrics))
                if tool.queue_wait[0]:
                    queue_waits.append(text.queue_wait.render(tool.queue_wait, openmetrics))
                for error_type in sorted(tool.retry_errors):
                    count = tool.retry_errors[error_type]
                    retries.append(f"{text.retry_prefix(error_type)}{_number(count)}\n")
                for error_type in sorted(tool.errors):
                    count, exemplar = tool.errors[error_type]
                    errors.append(text.error_line(error_type, count, exemplar, openmetrics))
                text.keep_only(tool.errors, tool.retry_errors)
                if live:
                    in_flight.append(f"{text.in_flight}{_number(tool.in_flight)}\n")
            group.tools = tools
            if live:
                for gauge, prefix, field in zip(
                    gauges, group.gauges, STORE_GAUGE_FIELDS, strict=True
                ):
                    gauge.append(f"{prefix}{_number(getattr(entry, field))}\n")
            for (name, unit), (count, total) in entry.custom.items():
                labels = group.custom_labels(name, unit)
                custom.append(f"{_CUSTOM_COUNT}{{{labels}}} {_number(count)}\n")
                custom.append(f"{_CUSTOM_SUM}{{{labels}}} {_float(total)}\n")
        self._groups = groups

        build = f'{_BUILD_INFO}{{version="{_escape(version)}"}} 1.0\n'
        # In the order of FAMILIES: a family added to the table but not here fails every render
        # (the zip below is strict) instead of going missing.
        bodies = (
            [build],
            tasks,
            results,
            durations,
            queue_waits,
            retries,
            errors,
            in_flight,
            *gauges,
            custom,
        )
        parts: list[str] = []
        for header, body, samples in zip(_HEADERS[openmetrics], bodies, _SAMPLE_NAMES, strict=True):
            if names is None:
                parts.append(header)
                parts.extend(body)
                continue
            wanted = samples.intersection(names)
            if not wanted:
                continue
            lines = "".join(body)
            if wanted != samples:
                # Split at line feeds only: a label value may hold a carriage return, U+2028
                # or another character ``str.splitlines`` breaks at (only ``\n`` is escaped).
                lines = "".join(
                    f"{line}\n"
                    for line in lines.split("\n")
                    if line and line[: _end_of_name(line)] in wanted
                )
            if lines:
                parts.append(header)
                parts.append(lines)
        return "".join(parts)


def _end_of_name(line: str) -> int:
    """Where the sample name of an exposition line ends (at ``{`` or a space)."""
    brace, space = line.find("{"), line.find(" ")
    if brace < 0:
        return space
    return brace if space < 0 else min(brace, space)
