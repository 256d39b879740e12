"""Recording rules and alerts for laios, as Python data: the source of ``rules.yml``.

:func:`rule_groups` returns the ``groups`` of a Prometheus rule file (and of the generated
PrometheusRule's ``spec``) for a :class:`~laios.mixin.config.MixinConfig`. Every expression reads
its raw metrics through the config's selector and aggregates ``by`` its group labels plus
``tool``, so the same rules fit a job called ``laios``, ``orders-api`` or a Kubernetes namespace.

Two counters tell different stories and the rules keep them apart:

- ``laios_tasks_total`` counts **attempts**: every try of ``execute_with_retry`` is one. It shows
  what a tool's dependency does (a flaky API failing 37 % of its calls) and what the executor's
  threads go through (timeouts, rejections).
- ``laios_task_results_total`` counts **results returned to callers**, after retries. Alerts on
  what callers see (the error ratio, the availability SLO) read this one: a failure that a retry
  recovered is not a failure of the service.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from laios.mixin._yaml import Commented
from laios.mixin.config import (
    FAILURE_TYPES,
    RULE_SET_LABEL,
    MixinConfig,
    as_written,
    braced,
    matcher_parts,
)

__all__ = [
    "BURN_RATES",
    "SLO_WINDOWS",
    "TOP_DURATION_BUCKET",
    "BurnRate",
    "alert_names",
    "burn_rates",
    "rule_groups",
    "runbook_url",
    "unreachable_burn_rates",
    "unreachable_latency",
]

#: Outcomes that are failures. A cancellation is the caller's choice: neither good nor bad.
FAILED = "error|timeout|rejected"
#: A tool's error ratio alert waits for this much traffic (results per second): 3 a minute, so
#: that one failure out of three calls does not wake anyone.
MIN_TOOL_RESULTS_PER_SECOND = 0.05
#: The share of a tool's results that may fail before LaiosToolErrorRatioHigh fires.
TOOL_ERROR_RATIO = 0.1
#: Timeouts per second of one tool before LaiosToolTimeouts fires (3 a minute).
TOOL_TIMEOUTS_PER_SECOND = 0.05
#: LaiosExecutorSaturated counts saturated rejections over this window, and needs one in every
#: such window for SATURATION_FOR_MINUTES: a single rejection is seen for less than the window,
#: so it cannot page. Three samples at a 1-minute scrape, so a missed scrape breaks nothing.
SATURATION_WINDOW_MINUTES = 3
#: How long rejections must keep coming before LaiosExecutorSaturated pages; longer than
#: SATURATION_WINDOW_MINUTES.
SATURATION_FOR_MINUTES = 5
#: The SLO period the burn rates are measured against, in hours (30 days).
SLO_PERIOD_HOURS = 30 * 24


@dataclass(frozen=True, slots=True)
class BurnRate:
    """One multiwindow burn-rate alert of the Google SRE workbook (chapter "Alerting on SLOs").

    It fires when the error ratio over both windows is above ``factor`` times the error budget
    (1 - objective): the long window proves the burn is real, the short one that it is still
    going on, so the alert resolves within ``short`` of the burn stopping.
    """

    long: str
    short: str
    factor: float
    severity: str
    wait: str
    long_hours: float

    @property
    def budget_spent(self) -> float:
        """Share of a 30-day error budget spent over the long window at this burn rate."""
        return self.factor * self.long_hours / SLO_PERIOD_HOURS


#: Pages (critical) for fast burns, tickets (warning) for slow ones.
BURN_RATES = (
    BurnRate("1h", "5m", 14.4, "critical", "2m", 1),
    BurnRate("6h", "30m", 6, "critical", "15m", 6),
    BurnRate("1d", "2h", 3, "warning", "1h", 24),
    BurnRate("3d", "6h", 1, "warning", "3h", 72),
)


def burn_rates(config: MixinConfig) -> tuple[BurnRate, ...]:
    """The burn rates of :data:`BURN_RATES` that get an alert under ``config``'s objective.

    An alert fires when the error ratio is above ``factor × (1 - objective)``; at a low
    objective that threshold of the fastest burns is 100 % of the results or more, which no
    error ratio exceeds (14.4 × 10 % at 0.9). Such an alert could never fire, so there is none.
    """
    budget = config.error_budget
    return tuple(burn for burn in BURN_RATES if burn.factor * budget < 1)


def unreachable_burn_rates(config: MixinConfig) -> list[str]:
    """One message per burn rate left out by :func:`burn_rates`, saying why and what to do."""
    objective = config.availability_objective
    kept = burn_rates(config)
    return [
        f"LaiosErrorBudgetBurn {burn.long}/{burn.short} ({_number(burn.factor)}x): left out, "
        f"it could never fire at objective {_number(objective)} (its threshold is "
        f"{_percent(burn.factor * config.error_budget)} of results); an objective of "
        f"{_number(_objective_giving(burn))} or more gives it"
        for burn in BURN_RATES
        if burn not in kept
    ]


#: A round objective whose error budget a float holds below 1, advised for the 1x burn rate's
#: alert: every objective from about 6e-17 up gives it (below, ``1 - objective`` is 1 in a
#: float, ``1 - 1e-17`` say).
_LEAST_OBJECTIVE = 1e-16


def _objective_giving(burn: BurnRate) -> float:
    """The objective, to four decimals, from which ``burn`` gets an alert (its threshold,
    ``factor × (1 - objective)``, below 100 %); :data:`_LEAST_OBJECTIVE` for the 1x burn rate,
    whose threshold is below 100 % at any objective whose budget is below 1 in a float (a
    round figure above the edge, about 6e-17)."""
    return max(math.ceil((1 - 1 / burn.factor) * 10_000) / 10_000, _LEAST_OBJECTIVE)


#: The top finite bound of the default buckets of ``laios_task_duration_seconds`` (a store's
#: ``duration_buckets``), the most a ``histogram_quantile`` of them reads: a p95 of tasks that
#: all took longer is this.
TOP_DURATION_BUCKET = 300.0


def unreachable_latency(config: MixinConfig) -> list[str]:
    """A message when LaiosToolLatencyHigh's threshold cannot be passed by a store with the
    default duration buckets (the p95 it compares reads at most :data:`TOP_DURATION_BUCKET`),
    saying what to do; none when it can."""
    threshold = config.latency_p95_seconds
    if threshold < TOP_DURATION_BUCKET:
        return []
    top = _number(TOP_DURATION_BUCKET)
    return [
        f"LaiosToolLatencyHigh: its threshold of {_number(threshold)} s can never be passed by "
        f"a store with the default buckets of laios_task_duration_seconds, whose top bound is "
        f"{top} s (the p95 of tasks that all took longer reads {top} s): it fires only for "
        f"stores given duration_buckets with a bound above {_number(threshold)} s "
        f"(MetricStore(duration_buckets=...)); a threshold under {top} s works with the "
        "default buckets"
    ]


#: Every window the burn-rate alerts read, short ones first.
SLO_WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")


def runbook_url(config: MixinConfig, alert: str) -> str:
    """The runbook of ``alert``: ``runbook_url_base`` plus the name in kebab case and ``.md``.

    >>> runbook_url(MixinConfig(), "LaiosToolErrorRatioHigh")
    'docs/runbooks/laios-tool-error-ratio-high.md'
    """
    return config.runbook_url_base + re.sub(r"(?<!^)(?=[A-Z])", "-", alert).lower() + ".md"


def alert_names(config: MixinConfig) -> list[str]:
    """The names of the alerts :func:`rule_groups` defines, each once, in order."""
    names = [rule["alert"] for rule in _alerts(config)]
    return list(dict.fromkeys(names))


def rule_groups(config: MixinConfig) -> list[dict[str, Any]]:
    """The rule groups for ``config``: recording rules on attempts, on results, then alerts."""
    return [
        {"name": "laios-recording", "rules": _attempt_records(config)},
        {"name": "laios-results", "rules": _result_records(config)},
        {"name": "laios-alerts", "rules": _alerts(config)},
    ]


# -- PromQL helpers ------------------------------------------------------------------------------


def _labels(by: tuple[str, ...], *more: str) -> str:
    """``by`` plus ``more``, each once, as a grouping list: ``cluster, namespace, job, tool``.

    ``by`` is the config's ``group_labels`` (what alerts aggregate by) or its
    ``record_labels`` (what recording rules keep: the selector's labels too)."""
    return ", ".join(dict.fromkeys((*by, *more)))


def _sum(by: tuple[str, ...], inner: str, *more: str) -> str:
    """``inner`` summed by ``by`` plus ``more`` (see :func:`_labels`)."""
    labels = _labels(by, *more)
    return f"sum by ({labels}) ({inner})" if labels else f"sum ({inner})"


def _recorded(config: MixinConfig, record: str, *matchers: str) -> str:
    """A recording rule's series of this rule set, with ``matchers``.

    In one Prometheus, the rules of other selectors record the same names, for their own
    targets and by their own labels: a set reads only the series whose ``laios_selector``
    label is its own selector (the default set's have none, which ``=""`` matches), never
    another set's, which would count a tool twice or alert on it twice."""
    own = f"{RULE_SET_LABEL}={_promql_string(config.rule_set)}"
    return record + braced((*matchers, own))


def _promql_string(text: str) -> str:
    """``text`` as a double-quoted PromQL string."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _rule_set_labels(config: MixinConfig) -> dict[str, str]:
    """The label every recorded series and alert of a selector's rules carries (none without
    a selector): the selector, which tells them from another set's in the same Prometheus."""
    return {RULE_SET_LABEL: config.rule_set} if config.rule_set else {}


def _number(value: float) -> str:
    """A number as PromQL and people write it: ``0.01``, ``14.4``, ``5``; one that ten
    significant digits would round with every digit it has (``123456789.123``), so that a
    threshold is the one given."""
    text = f"{value:.10g}"
    return text if float(text) == value else repr(value)


def _percent(value: float) -> str:
    """A share as a percentage, to ten significant digits: ``99.99999%``, never a rounded
    ``100%`` (``99.99999999999%`` for an objective of 0.9999999999999)."""
    return f"{as_written(value, 100)}%"


def _scope(config: MixinConfig) -> str:
    """A template naming where an alert fires: ``eu/shop/orders-api``, or ``orders-api`` when
    the other group labels are empty."""
    if not config.group_labels:
        return "this Prometheus"
    *outer, inner = config.group_labels
    prefix = "".join(f"{{{{ with $labels.{label} }}}}{{{{ . }}}}/{{{{ end }}}}" for label in outer)
    return f"{prefix}{{{{ $labels.{inner} }}}}"


def _record(config: MixinConfig, comment: str, record: str, expr: str) -> dict[str, Any]:
    labels = _rule_set_labels(config)
    if labels:
        return Commented(comment, record=record, expr=expr, labels=labels)
    return Commented(comment, record=record, expr=expr)


def _alert(
    config: MixinConfig,
    name: str,
    expr: str,
    wait: str,
    labels: dict[str, str],
    summary: str,
    description: str,
    comment: str,
) -> dict[str, Any]:
    rule = {
        "alert": name,
        "expr": expr,
        "for": wait,
        "labels": {**labels, **_rule_set_labels(config)},
        "annotations": {
            "summary": summary,
            "description": " ".join(description.split()),
            "runbook_url": runbook_url(config, name),
        },
    }
    return Commented(comment, rule)


# -- recording rules -----------------------------------------------------------------------------


def _quantile(config: MixinConfig, q: str, metric: str, *matchers: str) -> str:
    rate = f"rate({metric}_bucket{config.matchers(*matchers)}[5m])"
    return f"histogram_quantile({q},\n  {_sum(config.record_labels, rate, 'tool', 'le')})\n"


def _attempt_records(config: MixinConfig) -> list[dict[str, Any]]:
    tasks = f"rate(laios_tasks_total{config.matchers()}[5m])"
    errors = f"rate(laios_task_errors_total{config.matchers(FAILURE_TYPES)}[5m])"
    failed = _sum(
        config.record_labels,
        _recorded(config, "laios:tasks:rate5m", f'outcome=~"{FAILED}"'),
        "tool",
    )
    finished = _sum(config.record_labels, _recorded(config, "laios:tasks:rate5m"), "tool")
    ran = 'outcome!="rejected"'
    return [
        _record(
            config,
            "Attempts finished per second, by tool and outcome (each try of a retried call).",
            "laios:tasks:rate5m",
            _sum(config.record_labels, tasks, "tool", "outcome"),
        ),
        _record(
            config,
            "Share of attempts that failed (error, timeout, rejected), by tool: what a tool's\n"
            "dependency does. What callers see is laios:task_result_error_ratio:rate5m.\n"
            "NaN (no result in alerts) when nothing finished.",
            "laios:task_error_ratio:rate5m",
            f"{failed}\n  / {finished}\n",
        ),
        _record(
            config,
            "Failures per second by tool and error type (cancellations, the callers' choice,\n"
            "left out).",
            "laios:task_errors:rate5m",
            _sum(config.record_labels, errors, "tool", "error_type"),
        ),
        _record(
            config,
            "Duration quantiles by tool, of successes and errors (timed-out, cancelled and\n"
            "rejected tasks have no duration).",
            "laios:task_duration_seconds:p50_5m",
            _quantile(config, "0.5", "laios_task_duration_seconds", ran),
        ),
        _record(
            config,
            "",
            "laios:task_duration_seconds:p95_5m",
            _quantile(config, "0.95", "laios_task_duration_seconds", ran),
        ),
        _record(
            config,
            "",
            "laios:task_duration_seconds:p99_5m",
            _quantile(config, "0.99", "laios_task_duration_seconds", ran),
        ),
        _record(
            config,
            "0.95 quantile of the duration of successful tasks, by tool (LaiosToolLatencyHigh).",
            "laios:task_success_duration_seconds:p95_5m",
            _quantile(config, "0.95", "laios_task_duration_seconds", 'outcome="success"'),
        ),
        _record(
            config,
            "Time waiting for a worker, 0.95 quantile, by tool.",
            "laios:task_queue_wait_seconds:p95_5m",
            _quantile(config, "0.95", "laios_task_queue_wait_seconds"),
        ),
    ]


def _result_records(config: MixinConfig) -> list[dict[str, Any]]:
    records = []
    for window in SLO_WINDOWS:
        rate = f"rate(laios_task_results_total{config.matchers()}[{window}])"
        records.append(
            _record(
                config,
                (
                    "Results returned to callers per second, by tool and final outcome (one per\n"
                    "call, after its retries), over each window the burn-rate alerts read."
                )
                if window == SLO_WINDOWS[0]
                else "",
                f"laios:task_results:rate{window}",
                _sum(config.record_labels, rate, "tool", "outcome"),
            )
        )
    failed = _sum(
        config.record_labels,
        _recorded(config, "laios:task_results:rate5m", f'outcome=~"{FAILED}"'),
        "tool",
    )
    valid = _sum(
        config.record_labels,
        _recorded(config, "laios:task_results:rate5m", 'outcome!="cancelled"'),
        "tool",
    )
    records.append(
        _record(
            config,
            "Share of the results returned to callers that failed, by tool: failures over\n"
            "results that were not cancelled. NaN (no result in alerts) when there were none.",
            "laios:task_result_error_ratio:rate5m",
            f"{failed}\n  / {valid}\n",
        )
    )
    return records


# -- alerts --------------------------------------------------------------------------------------


def _alerts(config: MixinConfig) -> list[dict[str, Any]]:
    return [
        _metrics_down(config),
        _metrics_absent(config),
        *(_burn_rate(config, burn) for burn in burn_rates(config)),
        _tool_error_ratio(config),
        _tool_latency(config),
        _tool_timeouts(config),
        _tasks_rejected(config),
        _saturated(config),
        _queue_growing(config),
        _abandoned_threads(config),
    ]


#: Labels Prometheus gives every series of every target it scrapes.
_TARGET_LABELS = ("job", "instance")
#: The laios series whose presence says a target exports laios, with every label of its target
#: and the constant labels of its store (``laios_build_info`` has no store's labels).
_PRESENCE = "laios_executor_workers"


def _up(matchers: tuple[str, ...]) -> str:
    """``up`` of the targets that carry every label ``matchers`` name and match them.

    A matcher that matches an empty value (``pool!="batch"``) also matches a target without
    that label: every other target of the Prometheus (a node exporter). Each label such a
    matcher may leave empty must be there (``pool!=""``); ``job`` and ``instance`` always are.
    """
    required = []
    for matcher in matchers:
        label, operator, value = matcher_parts(matcher)
        # A quoted value longer than its two quotes is not empty.
        if label in _TARGET_LABELS or (operator == "=" and len(value) > 2):
            continue
        required.append(f'{label}!=""')
    return "up" + braced(dict.fromkeys((*matchers, *required)))


def _watches_up_only(matchers: tuple[str, ...]) -> bool:
    """Whether the selector's target matchers name only labels every target has."""
    return all(matcher_parts(matcher)[0] in _TARGET_LABELS for matcher in matchers)


def _names_targets(matchers: tuple[str, ...]) -> bool:
    """Whether ``matchers`` pick targets by their job or instance (``job="orders-api"``,
    ``job=~"orders-.*"``) rather than only leave some out (``job!="batch"``) or pick them by
    another label (``namespace="shop"``): ``up`` of the targets picked so is every target
    there of the Prometheus (a node exporter, a database's), not only laios ones."""
    for matcher in matchers:
        label, operator, _ = matcher_parts(matcher)
        if label in _TARGET_LABELS and operator in ("=", "=~"):
            return True
    return False


def _laios_targets_only(matchers: tuple[str, ...]) -> bool:
    """Whether the target alerts must find the laios targets by their laios series, as the
    rules without a selector do: the selector names no target (it has no matcher, or its
    matchers on ``job`` and ``instance`` only leave some out)."""
    return _watches_up_only(matchers) and not _names_targets(matchers)


def _known_down(matchers: tuple[str, ...]) -> str:
    """The targets that are down and exported laios series matching ``matchers`` in the last
    day: a label only the laios series carry (a store's ``pool``) picks them, and a down
    target's own series are gone."""
    presence = _PRESENCE + braced(matchers)
    return f"up == 0\nand on ({', '.join(_TARGET_LABELS)})\npresent_over_time({presence}[1d])"


def _metrics_down(config: MixinConfig) -> dict[str, Any]:
    matchers = config.process_selector_matchers
    if _laios_targets_only(matchers):
        # Without a selector (or with one that only leaves jobs out), `up` is every target of
        # this Prometheus: keep those that exported laios metrics in the last day (a down
        # target's own series are gone).
        selected = braced(matchers)
        expr = (
            f"up{selected} == 0\nand on ({_labels(config.group_labels, 'job', 'instance')})\n"
            f"present_over_time(laios_build_info{selected}[1d])\n"
        )
    elif _watches_up_only(matchers):
        expr = f"{_up(matchers)} == 0"
    elif _names_targets(matchers):
        # The selector names laios jobs and a label `up` may lack (a store's constant label, a
        # label a relabelling puts on some targets only): the targets whose `up` matches it,
        # and those whose laios series did.
        expr = f"{_up(matchers)} == 0\nor\n(\n{_known_down(matchers)}\n)\n"
    else:
        # It names no laios job (`namespace="shop"`, `pool="search"`): `up` matching it may be
        # another exporter's; the targets whose laios series matched it in the last day.
        expr = f"{_known_down(matchers)}\n"
    return _alert(
        config,
        "LaiosMetricsDown",
        expr,
        "5m",
        {"severity": "critical"},
        "Prometheus cannot scrape laios on {{ $labels.instance }}",
        f"""For 5 minutes the /metrics endpoint of {{{{ $labels.instance }}}} (in {_scope(config)})
        has not answered Prometheus: the process is down or restarting, or it serves on another
        address or port. Every other laios alert is blind to this target while this one fires.""",
        "Without a scrape every other alert is silent.",
    )


def _metrics_absent(config: MixinConfig) -> dict[str, Any]:
    matchers = config.process_selector_matchers
    if not matchers:
        expr = "absent(laios_build_info)"
        what = "target exporting laios metrics (laios_build_info)"
        summary = "No Prometheus target exports laios metrics"
    elif _laios_targets_only(matchers):
        # `up` of a selector that only leaves jobs out is there as long as any other target is.
        selected = config.process_matchers()
        expr = f"absent(laios_build_info{selected})"
        what = f"target exporting laios metrics (laios_build_info) matching {selected}"
        summary = f"No Prometheus target exporting laios metrics matches {selected}"
    elif not _names_targets(matchers):
        # `up` matching a selector that names no laios job may be another exporter's: no laios
        # series matches it, and none of the targets whose series did is merely down
        # (LaiosMetricsDown fires for those).
        selected = config.process_matchers()
        expr = f"absent({_PRESENCE}{selected})\nunless on ()\n(\n{_known_down(matchers)}\n)\n"
        what = f"target exporting laios metrics ({_PRESENCE}) matching {selected}"
        summary = f"No Prometheus target exporting laios metrics matches {selected}"
    else:
        selected = config.process_matchers()
        what = f"target matching {selected}"
        summary = f"No Prometheus target matches {selected}"
        if _watches_up_only(matchers):
            expr = f"absent({_up(matchers)})"
        else:
            # No target's `up` matches, nor any laios series, and none of the targets whose
            # series did is merely down (LaiosMetricsDown fires for those).
            expr = (
                f"(\nabsent({_up(matchers)})\nand\nabsent({_PRESENCE}{selected})\n)\n"
                f"unless on ()\n(\n{_known_down(matchers)}\n)\n"
            )
    return _alert(
        config,
        "LaiosMetricsAbsent",
        expr,
        "15m",
        {"severity": "critical"},
        summary,
        f"""For 15 minutes Prometheus has had no {what}: the service is not running anywhere, or
        service discovery lost it (a renamed job or label, a ServiceMonitor or PodMonitor that no
        longer selects it, a port no longer named "metrics"). LaiosMetricsDown cannot fire for a
        target Prometheus does not know, and every other laios alert is blind.""",
        "A target that vanished from discovery has no `up` series to be 0: watch for absence.",
    )


def _burn_rate(config: MixinConfig, burn: BurnRate) -> dict[str, Any]:
    budget = config.error_budget
    threshold = f"({_number(burn.factor)} * {_number(budget)})"

    def ratio(window: str) -> str:
        results = f"laios:task_results:rate{window}"
        failed = _sum(config.group_labels, _recorded(config, results, f'outcome=~"{FAILED}"'))
        valid = _sum(config.group_labels, _recorded(config, results, 'outcome!="cancelled"'))
        return f"{failed}\n  / {valid}\n  > {threshold}\n"

    scope = _scope(config)
    pace = "at that rate" if burn.factor == 1 else f"{_number(burn.factor)} times as fast"
    return _alert(
        config,
        "LaiosErrorBudgetBurn",
        f"{ratio(burn.long)}and\n{ratio(burn.short)}",
        burn.wait,
        {"severity": burn.severity, "long": burn.long, "short": burn.short},
        f"laios in {scope} burns its error budget: {{{{ $value | humanizePercentage }}}} of "
        f"results failed over {burn.long}",
        f"""Over the last {burn.long}, and still over the last {burn.short},
        {{{{ $value | humanizePercentage }}}} of the results laios returned to callers in
        {scope} were failures (error, timeout or rejected, counted once per call after its
        retries). The objective is {_percent(config.availability_objective)} success, so
        {_percent(budget)} of the results of 30 days may fail; failing {pace} spends
        {_percent(burn.budget_spent)} of that budget in {burn.long}.""",
        (
            f"Availability SLO ({_percent(config.availability_objective)} of results succeed), "
            f"burning {_number(burn.factor)}x over {burn.long} and {burn.short}: "
            + ("page." if burn.severity == "critical" else "ticket.")
        ),
    )


def _tool_error_ratio(config: MixinConfig) -> dict[str, Any]:
    per_minute = _number(MIN_TOOL_RESULTS_PER_SECOND * 60)
    valid = _sum(
        config.record_labels,
        _recorded(config, "laios:task_results:rate5m", 'outcome!="cancelled"'),
        "tool",
    )
    ratio = _recorded(config, "laios:task_result_error_ratio:rate5m")
    expr = (
        f"{ratio} > {_number(TOOL_ERROR_RATIO)}\n"
        f"and on ({_labels(config.record_labels, 'tool')})\n"
        # Per minute, rounded to a thousandth: the sum of a tool's outcome rates lands on
        # either side of an exact floor depending on the order Prometheus adds them in.
        f"round({valid} * 60, 0.001) >= {per_minute}\n"
    )
    return _alert(
        config,
        "LaiosToolErrorRatioHigh",
        expr,
        "15m",
        {"severity": "warning"},
        f"laios tool {{{{ $labels.tool }}}} in {_scope(config)} fails "
        "{{ $value | humanizePercentage }} of its calls",
        f"""For 15 minutes {{{{ $value | humanizePercentage }}}} of the calls of tool
        {{{{ $labels.tool }}}} in {_scope(config)} have failed after their retries (error,
        timeout or rejected), while it returned at least {per_minute} results a minute: callers
        see these failures. The dashboard's "Top failing tools and error types" table names the
        error types; an exemplar on "Errors by tool and type" links to the trace of a failure.""",
        (
            f"More than {_percent(TOOL_ERROR_RATIO)} of a tool's results fail, after retries, "
            f"while it returns at least\n{per_minute} a minute. Attempts that a retry recovered "
            "do not count."
        ),
    )


def _tool_latency(config: MixinConfig) -> dict[str, Any]:
    limit = _number(config.latency_p95_seconds)
    return _alert(
        config,
        "LaiosToolLatencyHigh",
        f"{_recorded(config, 'laios:task_success_duration_seconds:p95_5m')} > {limit}",
        "15m",
        {"severity": "warning"},
        f"laios tool {{{{ $labels.tool }}}} in {_scope(config)} is slow: p95 "
        "{{ $value | humanizeDuration }}",
        f"""For 15 minutes the 95th percentile duration of the successful tasks of tool
        {{{{ $labels.tool }}}} in {_scope(config)} has been above {limit} s (now
        {{{{ $value | humanizeDuration }}}}). Its dependency is slow, or its work has grown.
        "Latency p95 by tool" shows since when; an exemplar on it links to the trace of a slow
        task, whose checkpoint spans show which phase took the time.""",
        "Successful tasks only: failures and timeouts have their own alerts.",
    )


def _tool_timeouts(config: MixinConfig) -> dict[str, Any]:
    per_minute = _number(TOOL_TIMEOUTS_PER_SECOND * 60)
    return _alert(
        config,
        "LaiosToolTimeouts",
        _recorded(config, "laios:tasks:rate5m", 'outcome="timeout"')
        + f" > {_number(TOOL_TIMEOUTS_PER_SECOND)}",
        "10m",
        {"severity": "warning"},
        f"laios tool {{{{ $labels.tool }}}} in {_scope(config)} times out "
        '{{ printf "%.2f" $value }} times a second',
        f"""For 10 minutes tool {{{{ $labels.tool }}}} in {_scope(config)} has timed out
        {{{{ printf "%.2f" $value }}}} times a second (more than {per_minute} a minute, attempts
        included). Its dependency is slow or hanging, or its timeout is too short for its work.
        Each timed-out synchronous tool keeps its thread until it returns: watch
        laios_executor_abandoned_threads.""",
        "A tool keeps overrunning its timeout (attempts: each retry that times out holds a\n"
        "thread too).",
    )


def _tasks_rejected(config: MixinConfig) -> dict[str, Any]:
    return _alert(
        config,
        "LaiosTasksRejected",
        _recorded(config, "laios:tasks:rate5m", 'outcome="rejected"') + " > 0",
        "10m",
        {"severity": "warning"},
        f"laios rejects tasks for tool {{{{ $labels.tool }}}} in {_scope(config)}",
        f"""For 10 minutes tasks for tool {{{{ $labels.tool }}}} in {_scope(config)} have been
        rejected without running ({{{{ printf "%.2f" $value }}}}/s). error_type on
        laios_task_errors_total says why: tool_not_found (tool="unknown": a caller asks for a
        tool that is not registered), shutdown (tasks sent to a closed executor), saturated
        (see LaiosExecutorSaturated), would_deadlock, or a runner's own reason (no_thread,
        loop_closed, task_factory_failed, not_picklable, no_process, dask, clock, forked): see
        the runbook.""",
        "Tasks that never started: an unknown tool, an executor already shut down, saturation.",
    )


def _saturated(config: MixinConfig) -> dict[str, Any]:
    window = f"{SATURATION_WINDOW_MINUTES}m"
    wait = SATURATION_FOR_MINUTES
    saturated = config.matchers('error_type="saturated"')
    rate = f"rate(laios_task_errors_total{saturated}[{window}])"
    # One process, named by every label of its target (pod, container, a store's pool, ...)
    # as the other per-process alerts are: sum its tools, keep the rest. Its rejections must
    # keep coming (one in every window, for longer than the window) while its threads are
    # held: a saturated executor holds at least max_workers of them, and the gauge adds up the
    # executors of a store and the live workers of a multiprocess server, so it is above 0
    # whenever one of them is saturated, and drops to 0 as soon as the hung tools return.
    expr = (
        f"sum without (tool, error_type)\n  ({rate}) > 0\n"
        f"and\nlaios_executor_abandoned_threads{config.process_matchers()} > 0\n"
    )
    return _alert(
        config,
        "LaiosExecutorSaturated",
        expr,
        f"{wait}m",
        {"severity": "critical"},
        "laios executor on {{ $labels.instance }} keeps rejecting tasks: saturated",
        f"""For {wait} minutes {{{{ $labels.instance }}}} (in {_scope(config)}) has kept
        rejecting tasks as saturated, never {SATURATION_WINDOW_MINUTES} minutes without one (now
        {{{{ printf "%.2f" $value }}}}/s), and tools that overran their timeout still hold its
        threads. Every worker and replacement thread is held: the tasks that need one are not
        running. Restart the process to recover now; then fix the hanging tool, or raise
        max_workers / replacement_threads.""",
        f"Tasks refused in every {window} for {wait}m, every worker and replacement thread held\n"
        "by hung tools: one refusal at a busy moment does not page.",
    )


def _queue_growing(config: MixinConfig) -> dict[str, Any]:
    depth = f"laios_executor_queue_depth{config.process_matchers()}"
    return _alert(
        config,
        "LaiosQueueGrowing",
        f"{depth} > 0\nand\nderiv({depth}[10m]) > 0\n",
        "15m",
        {"severity": "warning"},
        "laios queue on {{ $labels.instance }} keeps growing: {{ $value }} tasks waiting",
        f"""For 15 minutes tasks have been waiting for a worker on {{{{ $labels.instance }}}}
        (in {_scope(config)}) and the queue has kept growing (now {{{{ $value }}}} waiting):
        tasks arrive faster than the workers finish them, and every new one waits longer.
        "Queue wait p95 by tool" shows the wait; "Worker utilisation by instance" how many
        worker threads run a tool. Raise max_workers or add replicas, or find what holds
        the workers (slow tools, abandoned threads).""",
        "Tasks arrive faster than they finish: waiting tasks for 15 minutes, and more of them.",
    )


def _abandoned_threads(config: MixinConfig) -> dict[str, Any]:
    return _alert(
        config,
        "LaiosAbandonedThreads",
        f"laios_executor_abandoned_threads{config.process_matchers()} > 0",
        "15m",
        {"severity": "warning"},
        "{{ $value }} laios worker threads held by timed-out tools on {{ $labels.instance }}",
        f"""For 15 minutes {{{{ $labels.instance }}}} (in {_scope(config)}) has had at least one
        thread held by a tool that overran its timeout and has not returned (now
        {{{{ $value }}}}). Find the hung tool ("Timeouts by tool"), make it honour its timeout or
        cancellation, and restart the process if the threads never come back.""",
        "Python cannot kill a thread: a timed-out tool that never returns holds its thread\n"
        'forever, and the executor rejects tasks as "saturated" once all are held.',
    )
