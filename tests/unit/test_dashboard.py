"""The Grafana dashboard (grafana/dashboards/laios-execution.json): generated, sound, honest.

Generated: the committed file is ``dashboard_json(MixinConfig())``. Honest: every metric it
charts is one laios exports (checked against the exposition of a real executor workload), and
every recording rule it would use is defined in rules.yml.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from exposition_workload import workload
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from laios.execution._families import FAMILIES
from laios.execution.executor import Executor
from laios.execution.prometheus import render_metrics
from laios.execution.store import MetricStore
from laios.mixin import MixinConfig
from laios.mixin.dashboard import PROCESS_KILLS, build_dashboard, dashboard_json
from laios.tools.registry import ToolRegistry

REPO = Path(__file__).resolve().parents[2]
DASHBOARD_PATH = REPO / "grafana" / "dashboards" / "laios-execution.json"
RULES_PATH = REPO / "grafana" / "prometheus" / "rules.yml"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
#: Metrics that carry a `tool` label: every query on them must honour the $tool variable.
TOOL_LABELLED = (
    "laios_tasks_total",
    "laios_task_results_total",
    "laios_task_duration_seconds",
    "laios_task_queue_wait_seconds",
    "laios_task_retries_total",
    "laios_task_errors_total",
    "laios_tasks_in_flight",
)
#: The variables that narrow every query, in the order they chain.
SCOPE = ("cluster", "namespace", "job", "instance")

DASHBOARD: dict[str, Any] = json.loads(DASHBOARD_PATH.read_text(encoding="utf-8"))
ALL_PANELS: list[dict[str, Any]] = DASHBOARD["panels"]
ROWS = [panel for panel in ALL_PANELS if panel["type"] == "row"]
PANELS = [panel for panel in ALL_PANELS if panel["type"] != "row"]
TARGETS: list[tuple[dict[str, Any], dict[str, Any]]] = [
    (panel, target) for panel in PANELS for target in panel.get("targets", [])
]
EXPRESSIONS = [target["expr"] for _, target in TARGETS]


def variable(name: str, dashboard: dict[str, Any] = DASHBOARD) -> dict[str, Any]:
    """The dashboard's template variable called ``name``."""
    matches: list[dict[str, Any]] = [
        v for v in dashboard["templating"]["list"] if v["name"] == name
    ]
    assert len(matches) == 1, f"expected one variable {name!r}"
    return matches[0]


def metric_names(expr: str) -> set[str]:
    """The ``laios_*`` metric names an expression reads."""
    return set(re.findall(r"\blaios_[a-z_]+\b(?!\s*(?:=~|!~|!=|=(?!=)))", expr))


def selectors(expr: str, metric: str) -> list[str]:
    """The label matchers written after each use of ``metric`` (``""`` when there are none)."""
    return [
        match.group(1) or ""
        for match in re.finditer(rf"\b{metric}(?:_bucket|_count|_sum)?\b(?:\{{([^}}]*)\}})?", expr)
    ]


def all_selectors(expr: str) -> list[str]:
    """The label matchers after every ``laios_*`` metric of an expression."""
    return [
        match.group(1) or "" for match in re.finditer(r"\blaios_[a-z_]+\b(?:\{([^}]*)\})?", expr)
    ]


def panel(title: str, dashboard: dict[str, Any] = DASHBOARD) -> dict[str, Any]:
    """The panel called ``title``."""
    (found,) = [p for p in dashboard["panels"] if p["title"] == title]
    return found


def expressions(dashboard: dict[str, Any]) -> list[str]:
    """Every panel query of a dashboard."""
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


# -- generated ----------------------------------------------------------------------------------


def test_committed_dashboard_is_the_generated_one() -> None:
    """grafana/dashboards/laios-execution.json is dashboard_json(MixinConfig()), byte for byte."""
    assert DASHBOARD_PATH.read_text(encoding="utf-8") == dashboard_json(MixinConfig()), (
        "grafana/dashboards/laios-execution.json is out of date: regenerate it with "
        "`python -m laios.mixin`"
    )


def test_dashboard_json_is_sorted_indented_and_ends_with_a_newline() -> None:
    """dashboard_json writes sorted keys with a 2-space indent and one trailing newline."""
    text = dashboard_json(MixinConfig())
    document = json.loads(text)
    assert text == json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    assert not text.endswith("\n\n")


def test_dashboard_json_is_the_same_on_every_call() -> None:
    """Two calls with equal configurations give identical text."""
    assert dashboard_json(MixinConfig(selector='job="a"')) == dashboard_json(
        MixinConfig(selector='job="a"')
    )


def test_build_dashboard_rejects_anything_but_a_config() -> None:
    """build_dashboard(None) raises TypeError naming MixinConfig."""
    with pytest.raises(TypeError, match="MixinConfig"):
        build_dashboard(None)  # type: ignore[arg-type]


# -- identity and variables -------------------------------------------------------------------


def test_dashboard_has_a_stable_uid_and_title() -> None:
    """The uid is "laios-execution" and the title names laios."""
    assert DASHBOARD["uid"] == "laios-execution"
    assert DASHBOARD["title"] == "laios execution"


def test_dashboard_uid_comes_from_the_config() -> None:
    """MixinConfig(dashboard_uid=...) sets the generated dashboard's uid."""
    assert build_dashboard(MixinConfig(dashboard_uid="orders-laios"))["uid"] == "orders-laios"


def test_dashboards_of_two_selectors_get_two_uids_and_titles() -> None:
    """Without dashboard_uid, the dashboards of two selectors have their own uid and title:
    imported into one Grafana (one folder), neither replaces nor blocks the other."""
    orders = build_dashboard(MixinConfig(selector='job="orders-api"'))
    billing = build_dashboard(MixinConfig(selector='job="billing"'))
    assert orders["uid"] != billing["uid"]
    assert orders["title"] != billing["title"]
    assert {orders["uid"], billing["uid"]}.isdisjoint({DASHBOARD["uid"]})
    assert {orders["title"], billing["title"]}.isdisjoint({DASHBOARD["title"]})
    assert orders["title"] == 'laios execution {job="orders-api"}'


def test_a_derived_uid_is_stable_and_valid_for_grafana() -> None:
    """A selector's uid is "laios-execution-" and ten hex digits of its matchers: at most 40
    letters, digits and dashes, the same for every run and for the same matchers written with
    other spaces or in another order."""
    uid = build_dashboard(MixinConfig(selector='namespace="shop",job=~"orders-.*"'))["uid"]
    assert re.fullmatch(r"laios-execution-[0-9a-f]{10}", uid)
    assert (
        uid
        == "laios-execution-"
        + hashlib.sha256(b'job=~"orders-.*"\nnamespace="shop"').hexdigest()[:10]
    )
    assert (
        build_dashboard(MixinConfig(selector=' job =~ "orders-.*" , namespace="shop"'))["uid"]
        == uid
    )


def test_a_uid_that_is_set_wins_over_the_derived_one() -> None:
    """dashboard_uid set with a selector is the uid, as given."""
    config = MixinConfig(selector='job="orders-api"', dashboard_uid="laios-execution")
    assert build_dashboard(config)["uid"] == "laios-execution"


def test_schema_version_is_current() -> None:
    """schemaVersion is 39 or later (Grafana 10.3+)."""
    assert DASHBOARD["schemaVersion"] >= 39


def test_dashboard_does_not_need_import_inputs() -> None:
    """No __inputs section and no ${DS_...} placeholders: it loads as a file or an import."""
    text = DASHBOARD_PATH.read_text(encoding="utf-8")
    assert "__inputs" not in DASHBOARD
    assert "DS_PROMETHEUS" not in text


def test_variables_are_datasource_then_the_scope_then_tool() -> None:
    """The variables are datasource, cluster, namespace, job, instance and tool, in that order."""
    names = [v["name"] for v in DASHBOARD["templating"]["list"]]
    assert names == ["datasource", *SCOPE, "tool"]


def test_datasource_variable_offers_prometheus_data_sources() -> None:
    """The `datasource` variable is of type datasource and lists Prometheus data sources."""
    datasource = variable("datasource")
    assert (datasource["type"], datasource["query"]) == ("datasource", "prometheus")


@pytest.mark.parametrize("name", [*SCOPE, "tool"])
def test_query_variables_are_multi_with_an_all_that_matches_absent_labels(name: str) -> None:
    """Each query variable is multi-value, includes All, and All is the regex .*."""
    found = variable(name)
    assert found["type"] == "query"
    assert found["datasource"] == DATASOURCE
    assert (found["multi"], found["includeAll"], found["allValue"]) == (True, True, ".*")
    assert found["current"]["value"] == ["$__all"]


def test_query_variables_chain_on_the_ones_before() -> None:
    """Each variable lists its label among series matching every variable before it: the
    scope's among the executor's gauges (a process has them from its start), the tools among
    the task counts."""
    chain = [*SCOPE, "tool"]
    for index, name in enumerate(chain):
        before = "".join(f'{label}=~"${label}",' for label in chain[:index]).rstrip(",")
        metric = "laios_tasks_total" if name == "tool" else "laios_executor_workers"
        source = f"{metric}{{{before}}}" if before else metric
        assert variable(name)["query"] == f"label_values({source}, {name})"


def test_the_scope_variables_list_a_process_that_ran_no_task_yet() -> None:
    """A process just started, or whose executors have run nothing yet, exports no task
    count: the scope variables read a series it has from the start, so that its job and
    instance can be chosen (and its workers and queue seen) before its first task."""
    tools = ToolRegistry()
    registry = CollectorRegistry()
    with Executor(
        tools, store=MetricStore(labels={"pool": "search"}), prometheus_registry=registry
    ):
        text = render_metrics(registry).decode()
    exported = {
        sample.name for family in text_string_to_metric_families(text) for sample in family.samples
    }
    for name in SCOPE:
        found = re.fullmatch(r"label_values\((\w+).*, (\w+)\)", variable(name)["query"])
        assert found is not None
        assert found.group(1) in exported, (
            f"variable {name} lists the {found.group(2)} of {found.group(1)}, which a process "
            "that ran no task does not export"
        )


def test_variables_honour_the_selector() -> None:
    """With a selector, every variable's label_values query carries it."""
    dashboard = build_dashboard(MixinConfig(selector='namespace="shop"'))
    for name in [*SCOPE, "tool"]:
        assert 'namespace="shop"' in variable(name, dashboard)["query"]


def test_variables_follow_the_group_labels() -> None:
    """group_labels=("env",) gives the variables datasource, env, instance and tool."""
    dashboard = build_dashboard(MixinConfig(group_labels=("env",)))
    assert [v["name"] for v in dashboard["templating"]["list"]] == [
        "datasource",
        "env",
        "instance",
        "tool",
    ]


# -- rows and panels ----------------------------------------------------------------------------


def test_rows_are_in_the_order_an_investigation_goes() -> None:
    """The rows: overview, per-tool RED, latency, queue, retries and errors, runners, custom."""
    assert [row["title"] for row in ROWS] == [
        "Overview",
        "Tools: rate, errors, duration",
        "Latency distribution",
        "Queue and saturation",
        "Retries and errors",
        "Runners and workers",
        "Custom metrics",
    ]


def test_every_row_heads_at_least_one_panel() -> None:
    """Between two rows (and after the last) there is at least one panel."""
    kinds = [panel["type"] for panel in ALL_PANELS]
    assert kinds[0] == "row"
    assert all(a != "row" or b != "row" for a, b in itertools.pairwise(kinds))
    assert kinds[-1] != "row"


def test_rows_are_full_width_and_expanded() -> None:
    """Every row spans the 24 columns and is expanded (its panels are on the dashboard)."""
    assert all(row["gridPos"]["w"] == 24 and row["collapsed"] is False for row in ROWS)


def test_every_panel_and_target_uses_the_datasource_variable() -> None:
    """Each panel and each of its targets names the data source ${datasource}."""
    wrong = [panel["title"] for panel in PANELS if panel.get("datasource") != DATASOURCE]
    wrong += [f"{p['title']}/{t['refId']}" for p, t in TARGETS if t.get("datasource") != DATASOURCE]
    assert wrong == []


def test_every_panel_has_a_title_and_a_description() -> None:
    """No panel is untitled or undescribed."""
    assert all(str(panel.get("title", "")).strip() for panel in PANELS)
    assert [p["title"] for p in PANELS if len(p.get("description", "")) < 20] == []


def test_panel_titles_are_unique() -> None:
    """No two panels share a title."""
    titles = [panel["title"] for panel in PANELS]
    assert len(titles) == len(set(titles))


def test_every_panel_has_a_unit() -> None:
    """Each panel sets fieldConfig.defaults.unit."""
    missing = [
        p["title"] for p in PANELS if not p.get("fieldConfig", {}).get("defaults", {}).get("unit")
    ]
    assert missing == []


def test_every_panel_has_a_query() -> None:
    """Each panel has at least one target with an expression."""
    assert all(
        panel.get("targets") and all(t.get("expr") for t in panel["targets"]) for panel in PANELS
    )


def test_panel_ids_are_unique() -> None:
    """No two panels (rows included) share an id."""
    ids = [panel["id"] for panel in ALL_PANELS]
    assert len(ids) == len(set(ids))


def test_panels_fit_the_24_column_grid() -> None:
    """Every panel starts at x >= 0 and ends at column 24 at most."""
    assert all(
        p["gridPos"]["x"] >= 0 and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24 for p in ALL_PANELS
    )


def test_panels_do_not_overlap() -> None:
    """No two panels' (or rows') grid rectangles intersect."""

    def cells(panel: dict[str, Any]) -> set[tuple[int, int]]:
        grid = panel["gridPos"]
        return {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }

    overlapping = [
        (a["title"], b["title"])
        for a, b in itertools.combinations(ALL_PANELS, 2)
        if cells(a) & cells(b)
    ]
    assert overlapping == []


def test_latency_heatmap_reads_the_duration_buckets_as_a_heatmap() -> None:
    """A heatmap panel charts sum by (le) of the duration buckets, format heatmap, with
    exemplars, and Grafana does not recalculate the buckets."""
    heatmap = panel("Task duration")
    (target,) = heatmap["targets"]
    assert heatmap["type"] == "heatmap"
    assert heatmap["options"]["calculate"] is False
    assert heatmap["options"]["yAxis"]["unit"] == "s"
    assert target["format"] == "heatmap"
    assert target["exemplar"] is True
    assert target["expr"].startswith("sum by (le) (rate(laios_task_duration_seconds_bucket{")


def test_failed_results_are_shown_beside_failed_attempts() -> None:
    """One ratio divides failed final results (laios_task_results_total), another failed
    attempts (laios_tasks_total), overall and per tool."""
    for title, metric in [
        ("Failed results", "laios_task_results_total"),
        ("Failed attempts", "laios_tasks_total"),
        ("Failed results by tool", "laios_task_results_total"),
        ("Failed attempts by tool", "laios_tasks_total"),
    ]:
        (target,) = panel(title)["targets"]
        numerator, denominator = target["expr"].split("\n/ ")
        assert metric_names(numerator) == metric_names(denominator) == {metric}
        assert 'outcome=~"error|timeout|rejected"' in numerator


def outcome_matchers(expr: str) -> list[str]:
    return re.findall(r'outcome[=!~]+"[^"]*"', expr)


@pytest.mark.parametrize(
    ("title", "record"),
    [
        ("Failed results", "laios:task_result_error_ratio:rate5m"),
        ("Failed results by tool", "laios:task_result_error_ratio:rate5m"),
        ("Failed attempts", "laios:task_error_ratio:rate5m"),
        ("Failed attempts by tool", "laios:task_error_ratio:rate5m"),
    ],
)
def test_failed_shares_are_the_ones_the_rules_compute(title: str, record: str) -> None:
    """A failed share divides what its recording rule divides: for results, failures over
    every result but the cancelled ones, the share the error-ratio and burn-rate alerts page
    on (the stat's thresholds are theirs)."""
    (target,) = panel(title)["targets"]
    groups = yaml.safe_load(RULES_PATH.read_text(encoding="utf-8"))["groups"]
    (rule,) = [r for g in groups for r in g["rules"] if r.get("record") == record]
    # (a stat's query ends with "or" the denominator times 0: 0, not NaN, on an idle service)
    ratio = target["expr"].split("\nor ")[0]
    panel_parts = [outcome_matchers(part) for part in ratio.split("\n/ ")]
    rule_parts = [outcome_matchers(part) for part in rule["expr"].split("\n  / ")]
    assert panel_parts == rule_parts


def test_ratio_thresholds_follow_the_availability_objective() -> None:
    """Failed results turns orange at the error budget and red at 14.4 times it."""
    dashboard = build_dashboard(MixinConfig(availability_objective=0.995))
    steps = panel("Failed results", dashboard)["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [step["value"] for step in steps] == [None, 0.005, 0.072]


def test_latency_threshold_follows_the_latency_objective() -> None:
    """The p95 latency stat turns red at latency_p95_seconds."""
    dashboard = build_dashboard(MixinConfig(latency_p95_seconds=0.25))
    steps = panel("p95 latency", dashboard)["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert steps[-1] == {"color": "red", "value": 0.25}


def test_process_kills_are_charted_by_their_error_types() -> None:
    """The process kills panel matches exactly worker_crashed, memory_limit, cpu_limit and
    terminated."""
    (target,) = panel("Process kills by reason")["targets"]
    (regex,) = re.findall(r'error_type=~"([^"]+)"', target["expr"])
    assert (
        set(regex.split("|"))
        == set(PROCESS_KILLS)
        == {"worker_crashed", "memory_limit", "cpu_limit", "terminated"}
    )


#: The process runner's error types that are no kill: a call refused before it was sent, or
#: run by no worker because the runner's initializer raised (the worker lives on).
NOT_KILLS = {"not_picklable", "initializer_failed"}


def test_every_kill_a_process_runner_reports_is_charted() -> None:
    """Each error type the process runner's modules report, but a refusal, is a reason of
    "Process kills by reason" and is named in its description and in docs/grafana.md."""
    runners = REPO / "src" / "laios" / "execution" / "_runners"
    reported = {
        error_type
        for module in ("process.py", "process_worker.py")
        for error_type in re.findall(
            r'error_type\s*=\s*"([a-z_]+)"', (runners / module).read_text(encoding="utf-8")
        )
    }
    assert reported > NOT_KILLS
    kills = reported - NOT_KILLS
    assert kills == set(PROCESS_KILLS)
    description = panel("Process kills by reason")["description"]
    row = next(
        line
        for line in (REPO / "docs" / "grafana.md").read_text(encoding="utf-8").splitlines()
        if "| Process kills by reason |" in line
    )
    unnamed = [kill for kill in sorted(kills) if kill not in description or f"`{kill}`" not in row]
    assert unnamed == []


def test_worker_utilisation_divides_the_busy_workers_by_the_workers() -> None:
    """ "Worker utilisation by instance" divides the worker threads running a tool now
    (laios_executor_busy_workers) by the worker threads: it divided the tasks in flight, but a
    task run on its caller's thread (execute_task without a timeout) or an async tool on an
    event loop takes no worker thread, so 20 async tools on 2 idle workers read 1000 %. Its
    description and docs/grafana.md say what it counts, that it is not for the selected tools,
    and that threads held by timed-out tools count (a saturated pool reads 100 % or more)."""
    (target,) = panel("Worker utilisation by instance")["targets"]
    assert metric_names(target["expr"]) == {"laios_executor_busy_workers", "laios_executor_workers"}
    assert "tool=" not in target["expr"]
    row = next(
        line
        for line in (REPO / "docs" / "grafana.md").read_text(encoding="utf-8").splitlines()
        if "| Worker utilisation by instance |" in line
    )
    for text in (panel("Worker utilisation by instance")["description"], row):
        assert "laios_executor_busy_workers" in text or "running a tool" in text, text
        assert "caller's thread" in text, text
        assert "async tool" in text, text
        assert "timed-out" in text, text
        assert "Queue depth" in text, text
        assert "Queue wait" in text, text
        assert "far above 100 %" not in text, text


@pytest.mark.parametrize("title", ["Errors by tool and type", "Top failing tools and error types"])
def test_failure_panels_leave_out_cancellations(title: str) -> None:
    """laios_task_errors_total counts a cancelled task as error_type="cancelled", but a
    cancellation is the caller's choice, not a failure (the ratios, the alerts and /status
    leave it out): the panels of failures by error type, which the error-ratio runbook sends
    the on-call to, do not list it."""
    for target in panel(title)["targets"]:
        for selector in selectors(target["expr"], "laios_task_errors_total"):
            assert 'error_type!="cancelled"' in selector, selector
    assert "cancel" in panel(title)["description"]


def _docs_row(title: str) -> str:
    """The row of docs/grafana.md's panel table that names ``title``."""
    return next(
        line
        for line in (REPO / "docs" / "grafana.md").read_text(encoding="utf-8").splitlines()
        if line.startswith("|") and (f" {title} |" in line or f" {title}," in line)
    )


def _rejection_reasons() -> set[str]:
    """Every reason laios rejects a task with (its ``error_type``): the first argument of each
    ``Refusal(...)`` written in src/laios/execution."""
    reasons = set()
    for path in (REPO / "src" / "laios" / "execution").rglob("*.py"):
        reasons |= set(re.findall(r'\bRefusal\(\s*"([a-z_]+)"', path.read_text("utf-8")))
    return reasons


def test_rejected_tasks_panel_names_every_rejection_reason() -> None:
    """ "Rejected tasks by tool" said a task is rejected for an unknown tool, an executor shut
    down or saturated; the runners refuse for more (no_thread, would_deadlock, not_picklable,
    a Dask runner's dask, ...). Its description and docs/grafana.md name each reason the code
    rejects with."""
    reasons = _rejection_reasons()
    assert {"tool_not_found", "shutdown", "saturated", "would_deadlock", "dask"} <= reasons
    title = "Rejected tasks by tool"
    for text in (panel(title)["description"], _docs_row(title)):
        missing = sorted(reason for reason in reasons if reason not in text)
        assert missing == [], text


def test_queue_wait_panels_say_waits_that_ended_in_the_queue_count() -> None:
    """A task whose timeout struck, or that was cancelled, while it waited for a worker counts
    its wait in laios_task_queue_wait_seconds (or the longest waits would be hidden): "Queue
    wait" said it counted the tasks that started."""
    for text in (
        panel("Queue wait")["description"],
        panel("Queue wait p95 by tool")["description"],
        _docs_row("Queue wait"),
    ):
        assert "timed out" in text, text
        assert "cancelled" in text, text
        assert "rejected" in text, text
    assert "started after" not in panel("Queue wait")["description"]


# -- queries ----------------------------------------------------------------------------------


def test_every_ratio_leaves_out_a_zero_denominator() -> None:
    """A division shows no value where its denominator is 0, never +Inf or NaN: "Attempts per
    result by tool" read +Inf in a window of attempts with no result returned (a long backoff
    inside execute_with_retry), a ratio of failures NaN in a window where nothing finished,
    "Worker utilisation" +Inf for busy workers of executors with none open. Every denominator
    is ``(... > 0)`` (tests/integration/test_promtool_rules.py evaluates them)."""
    unguarded = []
    for panel_, target in TARGETS:
        for denominator in target["expr"].split("\n/ ")[1:]:
            denominator = denominator.split("\nor ")[0]
            if not (denominator.startswith("(") and denominator.endswith(" > 0)")):
                unguarded.append((panel_["title"], denominator))
    assert unguarded == []
    divided = [panel_["title"] for panel_, target in TARGETS if "\n/ " in target["expr"]]
    assert "Attempts per result by tool" in divided


def test_rates_use_the_rate_interval() -> None:
    """Every rate() and increase() range is $__rate_interval, or $__range in an instant table."""
    wrong = []
    for panel, target in TARGETS:
        allowed = {"$__rate_interval"}
        if target.get("instant") and target.get("format") == "table":
            allowed.add("$__range")  # "top N over the dashboard's time range"
        ranges = re.findall(r"\b(?:rate|increase)\([^\[]*\[([^\]]+)\]", target["expr"])
        wrong += [(panel["title"], r) for r in ranges if r not in allowed]
    assert wrong == []


def test_tool_labelled_queries_filter_by_the_tool_variable() -> None:
    """Every selector of a metric with a `tool` label matches tool=~"$tool"."""
    unfiltered = [
        (panel["title"], metric)
        for panel, target in TARGETS
        for metric in TOOL_LABELLED
        for matchers in selectors(target["expr"], metric)
        if 'tool=~"$tool"' not in matchers
    ]
    assert unfiltered == []


def test_latency_quantiles_show_exemplars() -> None:
    """Each time-series target taking a quantile of the duration histogram has exemplar: true."""
    latency = [
        (panel, target)
        for panel, target in TARGETS
        if "histogram_quantile" in target["expr"]
        and "laios_task_duration_seconds_bucket" in target["expr"]
        and panel["type"] == "timeseries"
    ]
    assert len(latency) >= 3
    assert all(target["exemplar"] is True for _, target in latency)


def test_dashboard_shows_p50_p95_and_p99_latency_per_tool() -> None:
    """There are per-tool duration quantile queries for 0.5, 0.95 and 0.99."""
    quantiles = {
        re.search(r"histogram_quantile\(([\d.]+)", expr).group(1)  # type: ignore[union-attr]
        for expr in EXPRESSIONS
        if "laios_task_duration_seconds_bucket" in expr and "by (tool, le)" in expr
    }
    assert {"0.5", "0.95", "0.99"} <= quantiles


def test_every_query_is_narrowed_by_the_scope_variables() -> None:
    """Every laios_* selector of every query matches cluster, namespace, job and instance."""
    missing = [
        (expr.splitlines()[0], label)
        for expr in EXPRESSIONS
        for matchers in all_selectors(expr)
        for label in SCOPE
        if f'{label}=~"${label}"' not in matchers
    ]
    assert missing == []


def test_every_query_carries_the_selector() -> None:
    """With a selector, every laios_* selector of every panel query includes it."""
    dashboard = build_dashboard(MixinConfig(selector='job="orders-api"'))
    missing = [
        expr.splitlines()[0]
        for expr in expressions(dashboard)
        for matchers in all_selectors(expr)
        if 'job="orders-api"' not in matchers
    ]
    assert missing == []


def test_a_selector_on_tool_leaves_the_per_process_gauges_their_panels() -> None:
    """With a selector on tool, the gauges of a process (no tool label) are read with the rest
    of the selector, not with tool=~"...", which would leave their panels empty."""
    dashboard = build_dashboard(MixinConfig(selector='job="orders-api",tool=~"fetch|parse"'))
    reads = [
        (match.group(1), match.group(2))
        for expr in expressions(dashboard)
        for match in re.finditer(r"\b(laios_[a-z_]+)\b\{([^}]*)\}", expr)
    ]
    untooled = ("laios_executor_", "laios_custom_metric_")
    assert {name for name, _ in reads if name.startswith(untooled)} == {
        "laios_executor_queue_depth",
        "laios_executor_workers",
        "laios_executor_busy_workers",
        "laios_executor_abandoned_threads",
        "laios_custom_metric_sum",
        "laios_custom_metric_count",
    }
    wrong = [
        (name, matchers)
        for name, matchers in reads
        if name.startswith(untooled) and ("tool=" in matchers or 'job="orders-api"' not in matchers)
    ]
    assert wrong == []
    tools = [m for name, m in reads if name.startswith("laios_task")]
    assert tools
    assert all('tool=~"fetch|parse"' in matchers for matchers in tools)


def test_queries_use_the_configured_group_labels() -> None:
    """With group_labels=("env",), queries match env=~"$env" and no longer name cluster."""
    dashboard = build_dashboard(MixinConfig(group_labels=("env",)))
    exprs = expressions(dashboard)
    assert all('env=~"$env"' in expr for expr in exprs)
    assert not any("cluster" in expr for expr in exprs)


def test_dashboard_reads_raw_metrics_not_recording_rules() -> None:
    """No query reads a laios:* recording rule, so the dashboard works without rules.yml."""
    assert [expr for expr in EXPRESSIONS if "laios:" in expr] == []


# -- against what laios really exports --------------------------------------------------------


@pytest.fixture(scope="module")
def exposition() -> str:
    """The text exposition after a workload with every kind of event."""
    return workload()


@pytest.fixture(scope="module")
def exported_samples(exposition: str) -> set[str]:
    """Sample names in that exposition."""
    return {
        sample.name
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


def test_duration_panels_do_not_promise_timeouts(exposition: str) -> None:
    """A timed-out task has no duration series: a duration panel that names timeouts says so."""
    outcomes = {
        sample.labels["outcome"]
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == "laios_task_duration_seconds_bucket"
    }
    assert outcomes == {"success", "error"}
    promising = [
        panel["title"]
        for panel in PANELS
        if any("laios_task_duration_seconds" in t["expr"] for t in panel.get("targets", []))
        and "timeout" in panel["description"].lower()
        and "no duration" not in panel["description"]
    ]
    assert promising == []


def test_in_flight_panels_say_a_hung_tool_is_not_counted(exposition: str) -> None:
    """A tool that overran its timeout and still holds its thread is not in flight: the panels
    on laios_tasks_in_flight send the reader to the abandoned threads."""
    values = {
        (sample.name, sample.labels.get("tool")): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }
    assert values[("laios_executor_abandoned_threads", None)] == 1
    assert values.get(("laios_tasks_in_flight", "hang"), 0) == 0
    reading = [p["title"] for p in PANELS if "laios_tasks_in_flight" in str(p.get("targets"))]
    assert reading
    assert [t for t in reading if "Abandoned threads" not in panel(t)["description"]] == []


def test_every_dashboard_metric_is_exported(exported_samples: set[str]) -> None:
    """Each laios_* name in the dashboard's queries is a sample name of a real exposition."""
    referenced = set().union(*(metric_names(expr) for expr in EXPRESSIONS))
    assert referenced
    assert referenced - exported_samples == set()


def test_every_metric_in_the_rules_is_exported(exported_samples: set[str]) -> None:
    """Each laios_* name in rules.yml's expressions is a sample name of a real exposition."""
    groups = yaml.safe_load(RULES_PATH.read_text(encoding="utf-8"))["groups"]
    referenced = set().union(*(metric_names(rule["expr"]) for g in groups for rule in g["rules"]))
    assert referenced
    missing = referenced - exported_samples
    # The rules read laios_task_results_total, which a library without that family cannot
    # export yet; once the family exists, it must be in the exposition like every other.
    if missing == {"laios_task_results_total"} and "laios_task_results" not in {
        family.name for family in FAMILIES
    }:
        pytest.skip("this laios has no laios_task_results family yet")
    assert missing == set()


def test_every_recording_rule_the_dashboard_uses_is_defined() -> None:
    """Each laios:* name in the dashboard's queries is recorded by rules.yml."""
    groups = yaml.safe_load(RULES_PATH.read_text(encoding="utf-8"))["groups"]
    recorded = {rule["record"] for group in groups for rule in group["rules"] if "record" in rule}
    used = set().union(*(set(re.findall(r"\blaios:[a-z0-9_:]+", expr)) for expr in EXPRESSIONS))
    assert used - recorded == set()
