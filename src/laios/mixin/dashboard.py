"""The laios Grafana dashboard, as code: :func:`build_dashboard` and :func:`dashboard_json`.

``grafana/dashboards/laios-execution.json`` is ``dashboard_json(MixinConfig())``; a team
regenerates it for its own labels with ``python -m laios.mixin --selector ...``.

Built with plain Python (the small helpers of :mod:`laios.mixin._grafana`) rather than a
dashboard library, for three reasons found when trying them:

* ``grafana-foundation-sdk`` needs Python 3.11 (laios supports 3.10), and it versions its builds
  for each Grafana release with an epoch (``1769699379!11.6.0``): a plain ``pip install``
  picks the build with the newest epoch, which is the one for Grafana 10.1, so a ``>=`` floor
  cannot ask for the Grafana 11 builders.
* ``grafanalib`` has had no release since January 2024 and writes the old JSON (schema 12, the
  pre-10 heatmap).
* The dashboard is a few hundred lines of dictionaries either way; without a library the
  output is exactly the JSON Grafana 11 stores (schema 39), the tests read it as Grafana does,
  and generating it needs nothing beyond laios itself (no extra to install).

The queries read raw ``laios_*`` metrics, never recording rules, so the dashboard works where
the rules are not loaded and does not change when they do. Every query carries the
configuration's selector and one matcher per template variable (``job=~"$job"``); "All" is the
regex ``.*``, which also matches series without that label, so ``cluster`` and ``namespace``
work on a plain Prometheus that has neither.
"""

from __future__ import annotations

import json
from typing import Any

from laios.mixin import _grafana as g
from laios.mixin.config import FAILURE_TYPES, MixinConfig, as_written

__all__ = ["FAILED_OUTCOMES", "PROCESS_KILLS", "build_dashboard", "dashboard_json"]

#: Outcomes that count as failures (a cancellation is the caller's choice, not a failure).
FAILED_OUTCOMES = "error|timeout|rejected"
#: The ``error_type`` values of a process runner killing or losing a worker process (its
#: others, ``not_picklable`` and ``initializer_failed``, leave the worker as it was).
PROCESS_KILLS = ("worker_crashed", "memory_limit", "cpu_limit", "terminated")
#: The metric whose labels the scope's template variables list (the group labels,
#: ``instance``): a gauge of the executor, which a process exports from its start, with its
#: target's labels and its stores' constant labels (``laios_tasks_total`` waits for a first
#: task, and ``laios_build_info`` has no constant labels).
_SCOPE_SOURCE = "laios_executor_workers"
#: The metric whose ``tool`` labels the tool variable lists.
_TOOL_SOURCE = "laios_tasks_total"
#: Burn rate of the fast multiwindow SLO alert (2 % of a 30-day budget in an hour).
_FAST_BURN = 14.4
_RATE = "$__rate_interval"
_OUTCOME_COLORS = {
    "success": "green",
    "error": "red",
    "timeout": "orange",
    "cancelled": "blue",
    "rejected": "purple",
}
_EXEMPLARS = (
    " The dots are exemplars: hover one and follow its trace_id to the trace of that very task."
)


def _scope_labels(config: MixinConfig) -> list[str]:
    """The labels that get a template variable before ``tool``: the group labels, ``instance``."""
    labels = list(config.group_labels)
    if "instance" not in labels:
        labels.append("instance")
    return labels


def _per(numerator: str, denominator: str) -> str:
    """``numerator / denominator``, with no value where the denominator is 0.

    Divided by 0, PromQL gives +Inf (or NaN for 0/0), which a panel draws as a point off its
    scale or a number that means nothing: attempts in a window where no result was returned
    (a call still in a long backoff inside ``execute_with_retry``), busy workers of executors
    with no worker open. ``(denominator > 0)`` keeps only the series whose denominator is not 0.
    """
    return f"{numerator}\n/ ({denominator} > 0)"


class _Queries:
    """Writes the PromQL of the panels with the selector and the variables' matchers."""

    def __init__(self, config: MixinConfig) -> None:
        self.config = config
        self.scope = [f'{label}=~"${label}"' for label in _scope_labels(config)]

    def of(self, metric: str, *more: str, tool: bool = True) -> str:
        """``metric`` with the selector, the variables' matchers and ``more``.

        A metric without a ``tool`` label (``tool=False``: a gauge of the executor, the custom
        metrics) takes the selector's matchers but those on the labels of the laios series
        (``tool=~"fetch|parse"`` would match none of its series)."""
        if not tool:
            return metric + self.config.process_matchers(*self.scope, *more)
        return metric + self.config.matchers(*self.scope, 'tool=~"$tool"', *more)

    def rate(self, metric: str, *more: str, tool: bool = True, window: str = _RATE) -> str:
        """``rate(metric{...}[window])``."""
        return f"rate({self.of(metric, *more, tool=tool)}[{window}])"

    def ratio(self, metric: str, by: str = "") -> str:
        """The share of ``metric``'s rate whose outcome is a failure, optionally ``by`` labels.

        As the recording rules compute it: results that failed over the results that were not
        cancelled (what the error-ratio and burn-rate alerts page on), attempts that failed
        over every attempt (``laios:task_error_ratio:rate5m``). No value where nothing counted
        finished in the window (:func:`_per`).
        """
        return _per(*self._ratio_terms(metric, by))

    def _ratio_terms(self, metric: str, by: str = "") -> tuple[str, str]:
        """The numerator and the denominator of :meth:`ratio`."""
        total = f"sum by ({by}) " if by else "sum"
        failed = self.rate(metric, f'outcome=~"{FAILED_OUTCOMES}"')
        valid = ['outcome!="cancelled"'] if metric == "laios_task_results_total" else []
        return f"{total}({failed})", f"{total}({self.rate(metric, *valid)})"

    def share(self, metric: str) -> str:
        """:meth:`ratio` of all selected tools as one number, 0 when nothing counted finished
        in the window (where the ratio is 0/0, NaN) or nothing ever failed (no failed series).

        Where there is no series of ``metric`` at all (no laios target selected), no value."""
        failed, valid = self._ratio_terms(metric)
        return f"{_per(failed, valid)}\nor {valid} * 0"

    def quantile(self, q: float, metric: str, by: str, *more: str) -> str:
        """``histogram_quantile`` of a histogram's buckets, summed ``by`` labels plus ``le``."""
        buckets = self.rate(f"{metric}_bucket", *more)
        return f"histogram_quantile({q},\n  sum by ({by}) ({buckets}))"


def _variables(config: MixinConfig) -> list[dict[str, Any]]:
    variables = [g.datasource_variable("prometheus")]
    chained: list[str] = []
    for label in [*_scope_labels(config), "tool"]:
        if label == "tool":
            source = _TOOL_SOURCE + config.matchers(*chained)
        else:  # (a gauge has no tool label: the selector's matchers on one are left out)
            source = _SCOPE_SOURCE + config.process_matchers(*chained)
        title = label.replace("_", " ").capitalize()
        variables.append(g.query_variable(label, title, f"label_values({source}, {label})"))
        chained.append(f'{label}=~"${label}"')
    return variables


def _overview(grid: g.Grid, q: _Queries, config: MixinConfig) -> None:
    budget = config.error_budget
    ratio_steps = (
        g.Threshold("green"),
        g.Threshold("orange", budget),
        g.Threshold("red", float(f"{_FAST_BURN * budget:.10g}")),
    )
    grid.row("Overview")
    grid.add(
        4,
        4,
        g.stat(
            "Results",
            "Results returned to callers per second (after retries), all selected tools.",
            "ops",
            g.target(f"sum({q.rate('laios_task_results_total')})"),
        ),
        g.stat(
            "Failed results",
            "Share of results returned to callers (after retries) whose outcome was error,"
            " timeout or rejected, out of those not cancelled (as the alerts count). Orange"
            " above the error budget of the availability objective"
            f" ({as_written(config.availability_objective)}); red at {_FAST_BURN:g} times the"
            " budget, where the fast-burn SLO alert pages. 0 when no result was returned in the"
            " window.",
            "percentunit",
            g.target(q.share("laios_task_results_total")),
            thresholds=ratio_steps,
        ),
        g.stat(
            "Failed attempts",
            "Share of attempts that failed (error, timeout, rejected); every attempt of a retried"
            " call counts, so this is above Failed results when retries help. 0 when no attempt"
            " finished in the window.",
            "percentunit",
            g.target(q.share("laios_tasks_total")),
            thresholds=ratio_steps,
        ),
        g.stat(
            "p95 latency",
            "95th percentile duration of successful tasks, all selected tools. Red above the"
            f" latency objective ({config.latency_p95_seconds:g} s).",
            "s",
            g.target(q.quantile(0.95, "laios_task_duration_seconds", "le", 'outcome="success"')),
            thresholds=(g.Threshold("green"), g.Threshold("red", config.latency_p95_seconds)),
        ),
        g.stat(
            "In flight",
            "Tasks whose tool is running now. A task that timed out stops counting at its"
            " timeout, even while its tool still holds a thread: see Abandoned threads by"
            " instance.",
            "short",
            g.target(f"sum({q.of('laios_tasks_in_flight')})"),
        ),
        g.stat(
            "Queue depth",
            "Tasks submitted and waiting to start, all selected processes. Orange from 1.",
            "short",
            g.target(f"sum({q.of('laios_executor_queue_depth', tool=False)})"),
            thresholds=(g.Threshold("green"), g.Threshold("orange", 1)),
        ),
    )
    grid.add(
        12,
        8,
        g.timeseries(
            "Results by outcome",
            "Results returned to callers per second by final outcome (after retries), stacked.",
            "ops",
            [
                g.target(
                    f"sum by (outcome) ({q.rate('laios_task_results_total')})",
                    legend="{{outcome}}",
                )
            ],
            stack=True,
            colors=_OUTCOME_COLORS,
        ),
        g.timeseries(
            "Attempts by outcome",
            "Attempts finished per second by outcome, stacked: every attempt of a retried call"
            " counts; rejected tasks never started.",
            "ops",
            [g.target(f"sum by (outcome) ({q.rate('laios_tasks_total')})", legend="{{outcome}}")],
            stack=True,
            colors=_OUTCOME_COLORS,
        ),
    )


def _red(grid: g.Grid, q: _Queries) -> None:
    grid.row("Tools: rate, errors, duration")
    grid.add(
        12,
        8,
        g.timeseries(
            "Results per second by tool",
            "Results returned to callers per second, by tool (after retries).",
            "ops",
            [g.target(f"sum by (tool) ({q.rate('laios_task_results_total')})", legend="{{tool}}")],
        ),
        g.timeseries(
            "Failed results by tool",
            "Per tool: share of results returned to callers whose final outcome was error,"
            " timeout or rejected, out of those not cancelled (what LaiosToolErrorRatioHigh"
            " reads). Gaps: the tool returned nothing but cancellations in the window.",
            "percentunit",
            [g.target(q.ratio("laios_task_results_total", "tool"), legend="{{tool}}")],
            max_value=1,
        ),
        g.timeseries(
            "Attempts per second by tool",
            "Attempts finished per second, by tool (every outcome, every retry).",
            "ops",
            [g.target(f"sum by (tool) ({q.rate('laios_tasks_total')})", legend="{{tool}}")],
        ),
        g.timeseries(
            "Failed attempts by tool",
            "Per tool: share of attempts that failed (error, timeout, rejected). Above the"
            " failed results of the same tool when retries recover. Gaps: no attempt of the"
            " tool finished in the window.",
            "percentunit",
            [g.target(q.ratio("laios_tasks_total", "tool"), legend="{{tool}}")],
            max_value=1,
        ),
    )
    grid.add(
        8,
        8,
        *(
            g.timeseries(
                f"Latency p{round(quantile * 100)} by tool",
                f"p{round(quantile * 100)} of the time from a task's start to its outcome, by"
                " tool: successes and errors (timed-out, cancelled and rejected tasks have no"
                " duration; see Timeouts by tool)." + _EXEMPLARS,
                "s",
                [
                    g.target(
                        q.quantile(
                            quantile,
                            "laios_task_duration_seconds",
                            "tool, le",
                            'outcome!="rejected"',
                        ),
                        legend="{{tool}}",
                        exemplar=True,
                    )
                ],
            )
            for quantile in (0.5, 0.95, 0.99)
        ),
    )


def _latency(grid: g.Grid, q: _Queries) -> None:
    grid.row("Latency distribution")
    buckets = q.rate("laios_task_duration_seconds_bucket", 'outcome!="rejected"')
    grid.add(
        16,
        10,
        g.heatmap(
            "Task duration",
            "How many tasks per second finished in each duration bucket, all selected tools:"
            " successes and errors (timed-out, cancelled and rejected tasks have no duration;"
            " see Timeouts by tool). A second band is a second population: a slow dependency,"
            " one slow tool, errors that fail fast." + _EXEMPLARS,
            g.target(f"sum by (le) ({buckets})", legend="{{le}}", exemplar=True, fmt="heatmap"),
            y_unit="s",
            cell_unit="ops",
        ),
    )
    grid.add(
        8,
        10,
        g.timeseries(
            "Latency p95 by outcome",
            "p95 duration of successes and of errors: errors that fail fast stay low."
            " Timed-out, cancelled and rejected tasks have no duration (see Timeouts by tool)."
            + _EXEMPLARS,
            "s",
            [
                g.target(
                    q.quantile(
                        0.95, "laios_task_duration_seconds", "outcome, le", 'outcome!="rejected"'
                    ),
                    legend="{{outcome}}",
                    exemplar=True,
                )
            ],
            colors=_OUTCOME_COLORS,
        ),
    )


def _saturation(grid: g.Grid, q: _Queries) -> None:
    grid.row("Queue and saturation")
    rejected = 'outcome="rejected"'
    grid.add(
        8,
        8,
        g.timeseries(
            "Queue depth by instance",
            "Per process: tasks submitted and waiting for a worker (or an async slot).",
            "short",
            [
                g.target(
                    f"sum by (instance) ({q.of('laios_executor_queue_depth', tool=False)})",
                    legend="{{instance}}",
                )
            ],
        ),
        g.timeseries(
            "Worker utilisation by instance",
            "Per process: worker threads running a tool now (worker processes of a process"
            " runner), per worker thread of the open executors, for every tool (the gauges have"
            " no tool label). A task run on its caller's thread (execute_task without a"
            " timeout) and an async tool on an event loop take no worker thread and do not"
            " count. A thread held by a timed-out tool counts until its tool returns: a pool"
            " held by hung tools reads 100 %, more while replacement threads run beside them"
            " (see Abandoned threads by instance). Whether tasks wait for a thread, Queue depth"
            " and Queue wait p95 tell. No value for a process with no worker open.",
            "percentunit",
            [
                g.target(
                    _per(
                        f"sum by (instance) ({q.of('laios_executor_busy_workers', tool=False)})",
                        f"sum by (instance) ({q.of('laios_executor_workers', tool=False)})",
                    ),
                    legend="{{instance}}",
                )
            ],
        ),
        g.timeseries(
            "Rejected tasks by tool",
            "Tasks refused before they started, per second, whatever the reason (Errors by tool"
            " and type says which): tool_not_found (a name not registered, label unknown),"
            " shutdown (the executor or its runner shut down), saturated (every worker held),"
            " no_thread (no worker thread could be started), would_deadlock (a call that would"
            " wait for its own thread or event loop), loop_closed and task_factory_failed (an"
            " async tool's event loop closed, or its task factory failed), not_picklable and"
            " no_process (a process runner could not send the call or start a worker), and a"
            " Dask runner's dask, clock and forked.",
            "ops",
            [
                g.target(
                    f"sum by (tool) ({q.rate('laios_tasks_total', rejected)})",
                    legend="{{tool}}",
                )
            ],
        ),
    )
    grid.add(
        12,
        9,
        g.timeseries(
            "Queue wait p95 by tool",
            "95th percentile time waited for a worker, by tool: from submission to start, or to"
            " the end of a task that timed out or was cancelled while still queued (a rejected"
            " task never waited and is not counted). Rising together with queue depth: the pool"
            " is too small, or held by hung tools.",
            "s",
            [
                g.target(
                    q.quantile(0.95, "laios_task_queue_wait_seconds", "tool, le"),
                    legend="{{tool}}",
                )
            ],
        ),
        g.heatmap(
            "Queue wait",
            "How many tasks per second ended their wait for a worker in each queue wait bucket,"
            " all selected tools: tasks that started, and tasks that timed out or were cancelled"
            " while still queued, with the wait they had (a rejected task never waited and is"
            " not counted).",
            g.target(
                f"sum by (le) ({q.rate('laios_task_queue_wait_seconds_bucket')})",
                legend="{{le}}",
                fmt="heatmap",
            ),
            y_unit="s",
            cell_unit="ops",
        ),
    )


def _errors(grid: g.Grid, q: _Queries) -> None:
    grid.row("Retries and errors")
    timeout = 'outcome="timeout"'
    grid.add(
        8,
        8,
        g.timeseries(
            "Retries by tool and cause",
            "Attempts after the first, per second, made by execute_with_retry, by the error type"
            " of the attempt that was retried.",
            "ops",
            [
                g.target(
                    f"sum by (tool, error_type) ({q.rate('laios_task_retries_total')})",
                    legend="{{tool}}: {{error_type}}",
                )
            ],
        ),
        g.timeseries(
            "Attempts per result by tool",
            "Attempts made for each result returned to a caller: 1 without retries; 2 means"
            " every call took a retry on average. No value in a window where the tool returned"
            " no result (its attempts are of calls still retrying, in a long backoff).",
            "short",
            [
                g.target(
                    _per(
                        f"sum by (tool) ({q.rate('laios_tasks_total')})",
                        f"sum by (tool) ({q.rate('laios_task_results_total')})",
                    ),
                    legend="{{tool}}",
                )
            ],
            decimals=2,
        ),
        g.timeseries(
            "Timeouts by tool",
            "Tasks that overran their timeout, per second. A synchronous tool on a worker"
            " thread keeps its thread until it returns (see Abandoned threads).",
            "ops",
            [
                g.target(
                    f"sum by (tool) ({q.rate('laios_tasks_total', timeout)})",
                    legend="{{tool}}",
                )
            ],
        ),
    )
    grid.add(
        14,
        9,
        g.timeseries(
            "Errors by tool and type",
            "Failures per second by tool and error type: the exception class, timeout,"
            " tool_error, a runner's word (worker_crashed, memory_limit, ...) or a rejection"
            " reason (tool_not_found, saturated, shutdown, would_deadlock or a runner's own:"
            " no_thread, not_picklable, dask, ...); cancellations, the callers' choice,"
            " are left out. Counter exemplars point at the trace of the latest failure of each"
            " type.",
            "ops",
            [
                g.target(
                    "sum by (tool, error_type) ("
                    f"{q.rate('laios_task_errors_total', FAILURE_TYPES)})",
                    legend="{{tool}} {{error_type}}",
                    exemplar=True,
                )
            ],
        ),
    )
    grid.add(
        10,
        9,
        g.table(
            "Top failing tools and error types",
            "The 10 (tool, error type) pairs with the most failures over the dashboard's time"
            " range (cancellations, the callers' choice, left out).",
            "short",
            g.target(
                "topk(10,\n  sum by (tool, error_type) ("
                f"increase({q.of('laios_task_errors_total', FAILURE_TYPES)}[$__range])))",
                instant=True,
                fmt="table",
            ),
            rename={"tool": "Tool", "error_type": "Error type", "Value": "Failures"},
            sort_by="Failures",
        ),
    )


def _runners(grid: g.Grid, q: _Queries) -> None:
    grid.row("Runners and workers")
    kills = f'error_type=~"{"|".join(PROCESS_KILLS)}"'
    grid.add(
        8,
        8,
        g.timeseries(
            "Process kills by reason",
            "Tasks whose worker process a process runner killed or lost, per second:"
            " memory_limit (the tool allocated past memory_limit_mb), cpu_limit (it used up its"
            " CPU budget), worker_crashed (the process died), terminated (the runner killed"
            " every worker: its executor was collected without shutdown(), the interpreter"
            " exited, or runner.terminate() was called). Each kill but terminated costs a new"
            " worker process. Empty with the thread runner.",
            "ops",
            [
                g.target(
                    f"sum by (tool, error_type) ({q.rate('laios_task_errors_total', kills)})",
                    legend="{{tool}} {{error_type}}",
                    exemplar=True,
                )
            ],
        ),
        g.timeseries(
            "Abandoned threads by instance",
            "Per process: timed-out synchronous tools still holding a worker thread (Python"
            " cannot kill a thread), and async tools that swallowed their cancellation and"
            " still hold an async slot. Each one shrinks its pool until it returns; when every"
            " worker is held, new tasks are rejected as saturated.",
            "short",
            [
                g.target(
                    f"sum by (instance) ({q.of('laios_executor_abandoned_threads', tool=False)})",
                    legend="{{instance}}",
                )
            ],
        ),
        g.timeseries(
            "Workers by instance",
            "Per process: worker threads of the open executors (or the worker processes of a"
            " process runner, the workers of a Dask runner).",
            "short",
            [
                g.target(
                    f"sum by (instance) ({q.of('laios_executor_workers', tool=False)})",
                    legend="{{instance}}",
                )
            ],
        ),
    )


def _custom(grid: g.Grid, q: _Queries) -> None:
    grid.row("Custom metrics")
    grid.add(
        12,
        8,
        g.timeseries(
            "Custom metrics: mean value",
            "Mean of the values recorded with PerformanceMonitor.record_metric in each window,"
            " by name (the unit is in the legend); no value in a window where none was recorded."
            " Custom metrics carry no tool label.",
            "short",
            [
                g.target(
                    _per(
                        f"sum by (name, unit) ({q.rate('laios_custom_metric_sum', tool=False)})",
                        f"sum by (name, unit) ({q.rate('laios_custom_metric_count', tool=False)})",
                    ),
                    legend="{{name}} ({{unit}})",
                )
            ],
        ),
        g.timeseries(
            "Custom metrics: values recorded",
            "Values recorded per second with PerformanceMonitor.record_metric, by name and unit.",
            "ops",
            [
                g.target(
                    f"sum by (name, unit) ({q.rate('laios_custom_metric_count', tool=False)})",
                    legend="{{name}} ({{unit}})",
                )
            ],
        ),
    )


def build_dashboard(config: MixinConfig) -> dict[str, Any]:
    """Build the laios dashboard for ``config``, as the dictionary Grafana stores.

    Args:
        config: The selector, labels, objectives and uid to build it for. Without a
            ``dashboard_uid``, the uid is :attr:`MixinConfig.resolved_dashboard_uid`, derived
            from the selector; the title names the selector.

    Returns:
        The dashboard model (schema 39: Grafana 10.3 and later), ready for ``json.dumps``,
        the file provider or Grafana's import.

    Example:
        >>> from laios.mixin import MixinConfig
        >>> build_dashboard(MixinConfig(dashboard_uid="orders"))["uid"]
        'orders'
    """
    if not isinstance(config, MixinConfig):
        raise TypeError(f"config must be a MixinConfig, got {type(config).__name__}")
    q = _Queries(config)
    grid = g.Grid()
    _overview(grid, q, config)
    _red(grid, q)
    _latency(grid, q)
    _saturation(grid, q)
    _errors(grid, q)
    _runners(grid, q)
    _custom(grid, q)
    scope = f" Targets: {{{config.selector}}}." if config.selector else ""
    return {
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "description": "laios task executor: results and attempts, errors, latency (with"
        " exemplars linking to traces), queueing, runners and custom metrics. Generated by"
        " python -m laios.mixin; metric catalogue: docs/metrics.md; this dashboard:"
        " docs/grafana.md." + scope,
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "links": [],
        "panels": grid.panels,
        "refresh": "30s",
        "schemaVersion": 39,
        "tags": ["laios", "prometheus"],
        "templating": {"list": _variables(config)},
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {},
        "timezone": "",
        "title": _title(config),
        "uid": config.resolved_dashboard_uid,
        "version": 1,
        "weekStart": "",
    }


def _title(config: MixinConfig) -> str:
    """``laios execution``, and the selector after it: Grafana refuses a second dashboard of
    the same title in a folder, so two selectors' dashboards need two."""
    if not config.rule_set:
        return "laios execution"
    return f"laios execution {{{config.rule_set}}}"


def dashboard_json(config: MixinConfig) -> str:
    """The dashboard of ``config`` as the text committed to ``grafana/dashboards/``.

    Deterministic: sorted keys, 2-space indent, a trailing newline, so the same configuration
    always gives the same bytes and a regenerated file diffs only where the dashboard changed.
    """
    return json.dumps(build_dashboard(config), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
