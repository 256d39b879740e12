"""The generated rules: selectors and group labels from MixinConfig, runbooks, SLO arithmetic."""

from __future__ import annotations

import json
import math
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from laios.core.types import Context, Task
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.mixin.__main__ import main as mixin_main
from laios.mixin.config import MixinConfig
from laios.mixin.rules import BURN_RATES, alert_names, rule_groups, runbook_url
from laios.mixin.writer import DASHBOARD_PATH, RULES_PATH, render
from laios.tools.base import create_simple_tool
from laios.tools.registry import ToolRegistry

REPO = Path(__file__).resolve().parents[2]
RUNBOOKS = REPO / "docs" / "runbooks"
RULES_TESTS = REPO / "grafana" / "prometheus" / "rules.test.yml"
#: Raw metrics (not recording rules) read by the rules: every use must carry the selector.
#: A read of ``up`` or a ``laios_*`` metric (not a label such as ``laios_selector="..."``).
RAW_METRIC = re.compile(r"(?<![\w:])(up|laios_[a-z_]+)\b(?!\s*(?:=~|!~|!=|=(?!=)))(\{[^}]*\})?")


def rules(config: MixinConfig) -> list[dict[str, Any]]:
    """Every rule of every group for ``config``."""
    return [rule for group in rule_groups(config) for rule in group["rules"]]


def alerts(config: MixinConfig) -> list[dict[str, Any]]:
    return [rule for rule in rules(config) if "alert" in rule]


def records(config: MixinConfig) -> list[dict[str, Any]]:
    return [rule for rule in rules(config) if "record" in rule]


# -- selectors and labels -----------------------------------------------------------------------


def test_every_raw_metric_carries_the_selector() -> None:
    """With selector job="orders-api", each read of up or a laios_* metric has that matcher."""
    config = MixinConfig(selector='job="orders-api"')
    reads = [
        (rule.get("record") or rule["alert"], match.group(0))
        for rule in rules(config)
        for match in RAW_METRIC.finditer(rule["expr"])
    ]
    assert reads
    assert [read for read in reads if 'job="orders-api"' not in read[1]] == []


@pytest.mark.parametrize(
    ("selector", "own"),
    [
        ('job="orders-api"', 'laios_selector="job=\\"orders-api\\""'),
        ("", 'laios_selector=""'),
    ],
)
def test_every_read_of_a_recording_rule_is_of_its_own_rule_set(selector: str, own: str) -> None:
    """Each read of a laios:* record matches laios_selector on the set's own selector (empty
    without one): the rules of another selector in the same Prometheus record the same names,
    and a set that read them would count a tool twice and alert on it twice."""
    config = MixinConfig(selector=selector)
    reads = [
        (rule.get("record") or rule["alert"], match.group(0))
        for rule in rules(config)
        for match in re.finditer(r"laios:[a-z0-9_:]+(\{[^}]*\})?", rule["expr"])
    ]
    assert reads
    assert [read for read in reads if own not in read[1]] == []


def test_a_selectors_records_and_alerts_carry_it() -> None:
    """With a selector, every recording rule and alert puts it in laios_selector, spaces
    around its matchers left out; without one, none does."""
    config = MixinConfig(selector='job = "orders-api", team=~"a|b"')
    assert {rule["labels"]["laios_selector"] for rule in rules(config)} == {
        'job="orders-api",team=~"a|b"'
    }
    assert [
        rule for rule in rules(MixinConfig()) if "laios_selector" in rule.get("labels", {})
    ] == []


def test_recording_rules_keep_the_labels_the_selector_names() -> None:
    """Selecting on a label outside the group labels keeps it in every recorded series, so
    that two selectors' rules never write the same series."""
    config = MixinConfig(selector='service="orders",tool!="ping"', group_labels=("team",))
    assert config.record_labels == ("team", "service")
    lists = [
        match.group(1)
        for rule in records(config)
        for match in re.finditer(r"\bby \(([^)]*)\)", rule["expr"])
    ]
    assert lists
    assert [labels for labels in lists if not labels.startswith("team, service, tool")] == []


def test_no_rule_names_a_job() -> None:
    """The default rules match no literal job: a job called orders-api is watched like laios."""
    assert [rule["expr"] for rule in rules(MixinConfig()) if "job=" in rule["expr"]] == []


def test_every_aggregation_keeps_the_group_labels() -> None:
    """With group labels team, job, every `by (...)` and `on (...)` list starts with them."""
    config = MixinConfig(group_labels=("team", "job"))
    lists = [
        match.group(1)
        for rule in rules(config)
        for match in re.finditer(r"\b(?:by|on) \(([^)]*)\)", rule["expr"])
    ]
    assert lists
    assert [labels for labels in lists if not labels.startswith("team, job")] == []


@pytest.mark.parametrize(
    "config", [MixinConfig(), MixinConfig(selector='job="orders-api"', group_labels=("team",))]
)
def test_alerts_on_one_process_keep_every_label_of_its_target(config: MixinConfig) -> None:
    """An alert about one process (its texts name $labels.instance) never aggregates `by` a
    list, which would drop the target's other labels (pod, container, a store's pool)."""
    per_process = [
        rule
        for rule in alerts(config)
        if "$labels.instance" in rule["annotations"]["summary"] + rule["annotations"]["description"]
    ]
    assert {rule["alert"] for rule in per_process} >= {
        "LaiosMetricsDown",
        "LaiosExecutorSaturated",
        "LaiosQueueGrowing",
        "LaiosAbandonedThreads",
    }
    assert [rule["alert"] for rule in per_process if re.search(r"\bby \(", rule["expr"])] == []


def test_recording_rules_aggregate_by_group_labels_and_tool() -> None:
    """Each recording rule's aggregations keep cluster, namespace, job and tool."""
    lists = [
        match.group(1)
        for rule in records(MixinConfig())
        for match in re.finditer(r"\bby \(([^)]*)\)", rule["expr"])
    ]
    assert len(lists) >= len(records(MixinConfig()))
    assert [
        labels for labels in lists if not labels.startswith("cluster, namespace, job, tool")
    ] == []


def test_alerts_read_only_recording_rules_that_exist() -> None:
    """Every laios:* name an alert reads is recorded by a rule of the groups."""
    config = MixinConfig()
    recorded = {rule["record"] for rule in records(config)}
    used = {
        name for rule in alerts(config) for name in re.findall(r"laios:[a-z0-9_:]+", rule["expr"])
    }
    assert used
    assert used - recorded == set()


# -- what the alerts watch ----------------------------------------------------------------------


def alert_exprs(config: MixinConfig, name: str) -> list[str]:
    return [rule["expr"] for rule in alerts(config) if rule["alert"] == name]


def test_error_alerts_read_final_results_not_attempts() -> None:
    """The error ratio and burn-rate alerts read results after retries, never attempts."""
    config = MixinConfig()
    exprs = alert_exprs(config, "LaiosToolErrorRatioHigh") + alert_exprs(
        config, "LaiosErrorBudgetBurn"
    )
    assert exprs
    assert all("laios:task_result" in expr for expr in exprs)
    assert [
        expr for expr in exprs if "laios:tasks:" in expr or "laios:task_error_ratio" in expr
    ] == []
    (ratio,) = (
        rule for rule in records(config) if rule["record"] == "laios:task_result_error_ratio:rate5m"
    )
    assert "laios:task_results:rate5m" in ratio["expr"]


def test_vanished_targets_are_watched_with_absent() -> None:
    """LaiosMetricsAbsent is absent(up{selector}); without a selector, absent(laios_build_info)."""
    (with_selector,) = alert_exprs(MixinConfig(selector='job="orders-api"'), "LaiosMetricsAbsent")
    (default,) = alert_exprs(MixinConfig(), "LaiosMetricsAbsent")
    assert with_selector == 'absent(up{job="orders-api"})'
    assert default == "absent(laios_build_info)"


def test_down_targets_are_up_equals_zero_of_a_job_selector() -> None:
    """LaiosMetricsDown with a selector on job (every target has one) is up{selector} == 0."""
    (expr,) = alert_exprs(MixinConfig(selector='job=~"orders-.*"'), "LaiosMetricsDown")
    assert expr == 'up{job=~"orders-.*"} == 0'


@pytest.mark.parametrize(
    "selector", ['job!="batch"', 'job!~"batch|cron"', 'instance!="10.0.0.1:8489",tool="x"']
)
def test_target_alerts_of_a_selector_naming_no_target_watch_the_laios_targets(
    selector: str,
) -> None:
    """A selector that only leaves jobs or instances out matches the `up` of every other
    target of the Prometheus (a node exporter): the target alerts watch, as the default rules
    do, the targets that exported laios_build_info, with the selector's target matchers."""
    config = MixinConfig(selector=selector)
    matchers = config.process_matchers()
    (down,) = alert_exprs(config, "LaiosMetricsDown")
    (absent,) = alert_exprs(config, "LaiosMetricsAbsent")
    assert down == (
        f"up{matchers} == 0\nand on (cluster, namespace, job, instance)\n"
        f"present_over_time(laios_build_info{matchers}[1d])\n"
    )
    assert absent == f"absent(laios_build_info{matchers})"


@pytest.mark.parametrize("alert", ["LaiosMetricsDown", "LaiosMetricsAbsent"])
def test_target_alerts_of_a_label_up_may_lack_read_the_laios_series_too(alert: str) -> None:
    """A selector naming a job and another label (a store's pool) also finds its targets by
    their laios series; up{...} requires the label where the matcher matches an empty value
    (pool!="batch" would match every target of the job without a pool)."""
    (expr,) = alert_exprs(MixinConfig(selector='job="orders-api",pool!="batch"'), alert)
    assert 'up{job="orders-api",pool!="batch",pool!=""}' in expr
    assert 'present_over_time(laios_executor_workers{job="orders-api",pool!="batch"}[1d])' in expr


@pytest.mark.parametrize("selector", ['namespace="shop"', 'pool!="batch",namespace="shop"'])
@pytest.mark.parametrize("alert", ["LaiosMetricsDown", "LaiosMetricsAbsent"])
def test_target_alerts_of_a_selector_naming_no_job_watch_laios_targets_only(
    alert: str, selector: str
) -> None:
    """A selector that names no job or instance (a namespace, a store's pool) picks in `up`
    every target there, another exporter's too: the target alerts read no such `up`, only the
    targets whose laios series matched it."""
    config = MixinConfig(selector=selector)
    (expr,) = alert_exprs(config, alert)
    assert f"up{config.process_matchers()}" not in expr
    assert f"present_over_time(laios_executor_workers{config.process_matchers()}[1d])" in expr


def test_target_alerts_leave_out_matchers_on_the_laios_series_labels() -> None:
    """tool is no label of a target: a selector on tool only watches every laios target, as
    the default rules do; the rest of a selector applies."""
    assert alert_exprs(MixinConfig(selector='tool!="ping"'), "LaiosMetricsAbsent") == [
        "absent(laios_build_info)"
    ]
    assert alert_exprs(MixinConfig(selector='job="a",tool!="ping"'), "LaiosMetricsAbsent") == [
        'absent(up{job="a"})'
    ]


def test_burn_rate_alerts_follow_the_sre_workbook() -> None:
    """Four burn-rate alerts: 14.4 over 1h/5m and 6 over 6h/30m page, 3 and 1 open tickets."""
    config = MixinConfig()
    burns = [rule for rule in alerts(config) if rule["alert"] == "LaiosErrorBudgetBurn"]
    assert [
        (rule["labels"]["long"], rule["labels"]["short"], rule["labels"]["severity"], rule["for"])
        for rule in burns
    ] == [
        ("1h", "5m", "critical", "2m"),
        ("6h", "30m", "critical", "15m"),
        ("1d", "2h", "warning", "1h"),
        ("3d", "6h", "warning", "3h"),
    ]
    assert [burn.factor for burn in BURN_RATES] == [14.4, 6, 3, 1]


def test_burn_rate_thresholds_follow_the_objective() -> None:
    """With objective 0.995 every burn-rate window compares against factor × 0.005."""
    config = MixinConfig(availability_objective=0.995)
    thresholds = [
        re.findall(r"> \(([\d.]+) \* ([\d.e-]+)\)", expr)
        for expr in alert_exprs(config, "LaiosErrorBudgetBurn")
    ]
    assert thresholds == [[(f, "0.005")] * 2 for f in ("14.4", "6", "3", "1")]


@pytest.mark.parametrize(
    ("objective", "windows"),
    [(0.95, ["1h", "6h", "1d", "3d"]), (0.9, ["6h", "1d", "3d"]), (0.8, ["1d", "3d"])],
)
def test_burn_rate_alerts_that_could_never_fire_are_left_out(
    objective: float, windows: list[str]
) -> None:
    """A burn rate whose threshold (factor × budget) is 100 % or more of the results, which no
    error ratio exceeds, has no alert: 14.4 × 10 % at objective 0.9, 6 × 20 % at 0.8."""
    burns = [
        rule
        for rule in alerts(MixinConfig(availability_objective=objective))
        if rule["alert"] == "LaiosErrorBudgetBurn"
    ]
    assert [rule["labels"]["long"] for rule in burns] == windows


def test_both_windows_of_a_burn_rate_alert_are_read() -> None:
    """Each burn-rate alert reads its long and its short window's results."""
    for rule in alerts(MixinConfig()):
        if rule["alert"] == "LaiosErrorBudgetBurn":
            labels = rule["labels"]
            windows = re.findall(r"laios:task_results:rate(\w+)", rule["expr"])
            assert sorted(set(windows)) == sorted({labels["long"], labels["short"]})


def test_latency_threshold_follows_the_config() -> None:
    """LaiosToolLatencyHigh compares the p95 of successful tasks with latency_p95_seconds."""
    (expr,) = alert_exprs(MixinConfig(latency_p95_seconds=0.25), "LaiosToolLatencyHigh")
    assert expr == 'laios:task_success_duration_seconds:p95_5m{laios_selector=""} > 0.25'
    (p95,) = (
        r
        for r in records(MixinConfig())
        if r["record"] == "laios:task_success_duration_seconds:p95_5m"
    )
    assert 'outcome="success"' in p95["expr"]


@pytest.mark.parametrize("seconds", [123456789.123, 0.12345678901, 1.00000000001])
def test_a_latency_threshold_is_written_with_every_digit_it_was_given(seconds: float) -> None:
    """A threshold with more than ten significant digits is compared as given, not rounded to
    ten (123456789.123 as 123456789.1): the alert fires where the dashboard's threshold is."""
    config = MixinConfig(latency_p95_seconds=seconds)
    (expr,) = alert_exprs(config, "LaiosToolLatencyHigh")
    assert float(expr.rsplit("> ", 1)[1]) == seconds
    (alert,) = [r for r in rules(config) if r.get("alert") == "LaiosToolLatencyHigh"]
    assert f"above {seconds!r} s" in " ".join(alert["annotations"]["description"].split())


@pytest.mark.parametrize("threshold", ["300", "600"])
def test_a_latency_threshold_past_every_default_bucket_is_said_never_to_fire(
    threshold: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """histogram_quantile reads at most the top finite bucket, 300 s by default: a threshold
    there or above can never be passed by a store with the default buckets. The rules are
    written (a store with higher duration_buckets can pass it), and stderr says so."""
    assert mixin_main(["--latency-p95", threshold, "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "LaiosToolLatencyHigh" in err
    assert f"{threshold} s" in err
    assert "300 s" in err
    assert "duration_buckets" in err
    assert "LaiosToolLatencyHigh" in (tmp_path / "grafana/prometheus/rules.yml").read_text()


def test_a_latency_threshold_under_the_top_bucket_gets_no_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert mixin_main(["--latency-p95", "299.9", "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().err == ""


def test_the_top_bucket_the_notes_name_is_the_stores_default() -> None:
    from laios.execution.store import MetricStore
    from laios.mixin.rules import TOP_DURATION_BUCKET

    assert MetricStore().duration_buckets[-1] == TOP_DURATION_BUCKET


def test_saturation_queue_and_abandoned_work_are_watched() -> None:
    """Alerts exist on saturated rejections, a growing queue and abandoned threads."""
    config = MixinConfig()
    assert 'error_type="saturated"' in alert_exprs(config, "LaiosExecutorSaturated")[0]
    assert "deriv(laios_executor_queue_depth" in alert_exprs(config, "LaiosQueueGrowing")[0]
    assert "laios_executor_abandoned_threads" in alert_exprs(config, "LaiosAbandonedThreads")[0]


def minutes(duration: str) -> int:
    """A Prometheus duration in whole minutes or hours (``3m``, ``1h``) as minutes."""
    value, unit = int(duration[:-1]), duration[-1]
    return value * {"m": 1, "h": 60}[unit]


@pytest.mark.parametrize("config", [MixinConfig(), MixinConfig(selector='job="orders-api"')])
def test_one_saturated_rejection_cannot_outlast_the_saturation_alerts_wait(
    config: MixinConfig,
) -> None:
    """LaiosExecutorSaturated waits longer than the window its rejections are counted over,
    so that one rejection, seen in that window, never stays true long enough to page; and it
    requires threads held by timed-out tools."""
    (rule,) = (rule for rule in alerts(config) if rule["alert"] == "LaiosExecutorSaturated")
    (window,) = re.findall(r'error_type="saturated"[^\]]*\[(\w+)\]', rule["expr"])
    assert minutes(rule["for"]) > minutes(window)
    assert f"laios_executor_abandoned_threads{config.matchers()} > 0" in rule["expr"]


def test_a_saturated_executors_rejections_match_its_held_threads_gauge(overrun: Any) -> None:
    """A real saturated executor's saturated rejections, less tool and error_type, carry
    exactly the labels of its laios_executor_abandoned_threads sample, which is above 0: the
    one-to-one `and` of LaiosExecutorSaturated matches them."""
    release = threading.Event()
    tools = ToolRegistry()
    tools.register_tool(create_simple_tool("hang", "Blocks.", lambda: release.wait(30)))
    prometheus = CollectorRegistry()
    store = MetricStore(labels={"pool": "search"})
    executor = Executor(
        tools,
        max_workers=1,
        replacement_threads=0,
        store=store,
        prometheus_registry=prometheus,
    )
    ctx = Context(session_id="s", user_id="u")
    try:
        hung, _ = overrun(
            lambda: executor.execute_task(
                Task(plan_id="p", description="d", tool_name="hang"), ctx, 0.1
            )
        )
        refused = executor.execute_task(
            Task(plan_id="p", description="d", tool_name="hang"), ctx, 0.1
        )
        samples = [
            sample
            for family in text_string_to_metric_families(generate_latest(prometheus).decode())
            for sample in family.samples
        ]
    finally:
        release.set()
        executor.shutdown(wait=True)
    assert (hung.metadata["outcome"], refused.metadata["error_type"]) == ("timeout", "saturated")
    (rejections,) = (
        {key: value for key, value in s.labels.items() if key not in ("tool", "error_type")}
        for s in samples
        if s.name == "laios_task_errors_total" and s.labels.get("error_type") == "saturated"
    )
    (held,) = (s for s in samples if s.name == "laios_executor_abandoned_threads")
    assert rejections == held.labels == {"pool": "search"}
    assert held.value > 0


# -- annotations and runbooks -------------------------------------------------------------------


def test_every_alert_has_for_severity_summary_description_and_runbook() -> None:
    """Each alert waits, has a severity, a summary, a description and its runbook_url."""
    config = MixinConfig(runbook_url_base="https://wiki.example.com/laios/")
    incomplete = [
        rule["alert"]
        for rule in alerts(config)
        if not (
            rule["for"]
            and rule["labels"]["severity"] in ("critical", "warning")
            and rule["annotations"]["summary"]
            and rule["annotations"]["description"]
            and rule["annotations"]["runbook_url"] == runbook_url(config, rule["alert"])
        )
    ]
    assert incomplete == []


def test_runbook_url_is_the_base_and_the_name_in_kebab_case() -> None:
    """runbook_url is runbook_url_base + the alert name in lower case with dashes + .md."""
    config = MixinConfig(runbook_url_base="https://wiki.example.com/laios/")
    assert runbook_url(config, "LaiosToolErrorRatioHigh") == (
        "https://wiki.example.com/laios/laios-tool-error-ratio-high.md"
    )


def test_every_runbook_url_is_a_page_of_the_manual() -> None:
    """With the default base, every alert's runbook_url is an existing docs/runbooks/ page."""
    config = MixinConfig()
    urls = {rule["annotations"]["runbook_url"] for rule in alerts(config)}
    assert all(url.startswith("docs/runbooks/") for url in urls)
    assert sorted(url for url in urls if not (REPO / url).is_file()) == []


def test_runbook_index_links_every_runbook() -> None:
    """docs/runbooks/index.md links each alert's page, and no page is left over."""
    index = (RUNBOOKS / "index.md").read_text(encoding="utf-8")
    pages = {Path(runbook_url(MixinConfig(), name)).name for name in alert_names(MixinConfig())}
    assert sorted(page for page in pages if f"({page})" not in index) == []
    assert {path.name for path in RUNBOOKS.glob("*.md")} == pages | {"index.md"}


def test_alert_names_are_listed_once_each() -> None:
    """alert_names() has every alert once, LaiosErrorBudgetBurn included once for its four rules."""
    names = alert_names(MixinConfig())
    assert len(names) == len(set(names)) == len({rule["alert"] for rule in alerts(MixinConfig())})


# -- the promtool tests cover every alert rule --------------------------------------------------


def test_every_alert_rule_has_a_firing_and_a_quiet_promtool_test() -> None:
    """rules.test.yml fires each alert rule (each burn-rate window by its labels) and keeps
    each alert quiet in another case."""
    cases = [
        case
        for test in yaml.safe_load(RULES_TESTS.read_text(encoding="utf-8"))["tests"]
        for case in test.get("alert_rule_test", [])
    ]
    fired = [
        (case["alertname"], alert["exp_labels"])
        for case in cases
        for alert in case.get("exp_alerts") or []
    ]
    never_fired = [
        (rule["alert"], rule["labels"])
        for rule in alerts(MixinConfig())
        if not any(
            name == rule["alert"] and rule["labels"].items() <= labels.items()
            for name, labels in fired
        )
    ]
    quiet = {case["alertname"] for case in cases if not case.get("exp_alerts")}
    assert never_fired == []
    assert set(alert_names(MixinConfig())) - quiet == set()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"runbook_url_base": ""},
        {"selector": "job=orders-api"},
        {"selector": 'job="orders-api",'},
        {"match_labels": ()},
        {"match_labels": (("app.kubernetes.io/name", "has space"),)},
        {"match_labels": (("-bad", "x"),)},
        {"manifest_labels": (("release", "a"), ("release", "b"))},
        {"runbook_url_base": "http://x/\n#"},
        {"runbook_url_base": "https://wiki.example.com/run books/"},
        {"dashboard_uid": ""},
        {"dashboard_uid": "x" * 41},
        {"dashboard_uid": "orders/api"},
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, Any]) -> None:
    """Empty runbook base or one with spaces or control characters, a selector that is not
    label matchers, no match labels, invalid or repeated Kubernetes labels, a dashboard uid
    Grafana refuses (empty, over 40 characters, not letters, digits, - and _): ValueError at
    the call."""
    with pytest.raises(ValueError):
        MixinConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"group_labels": ("job\n",)},
        {"match_labels": (("app.kubernetes.io/name", "laios\n"),)},
        {"match_labels": (("app\n", "laios"),)},
        {"manifest_labels": (("release", "prod\n"),)},
    ],
)
def test_a_trailing_newline_does_not_pass_for_a_label(kwargs: dict[str, Any]) -> None:
    """A group label, Kubernetes label key or value ending in a newline is refused: ValueError."""
    with pytest.raises(ValueError):
        MixinConfig(**kwargs)


@pytest.mark.parametrize("label", ["outcome", "error_type", "le", "__name__", "laios_selector"])
def test_group_labels_of_the_laios_series_themselves_are_refused(label: str) -> None:
    """Grouping by a label the laios series carry (outcome: every failed share would be 100 %),
    one Prometheus reserves or the one the rules set is refused at the call, naming it."""
    with pytest.raises(ValueError, match=label):
        MixinConfig(group_labels=("namespace", label))


@pytest.mark.parametrize(
    "selector", ['outcome="success"', 'job="a",error_type!="cancelled"', 'le="+Inf"', 'name="x"']
)
def test_a_selector_on_a_label_of_the_laios_series_but_tool_is_refused(selector: str) -> None:
    """outcome="success" would make every failed share 0 and error_type="x" match no task:
    the alerts could never fire. Such a selector is refused, naming the label."""
    label = selector.split(",")[-1].split("=")[0].rstrip("!")
    with pytest.raises(ValueError, match=f"'{label}'"):
        MixinConfig(selector=selector)


@pytest.mark.parametrize(
    ("selector", "label"),
    [
        ('laios_selector="job=\\"a\\""', "laios_selector"),
        ('job="a",laios_selector=""', "laios_selector"),
        ('__name__=~"laios_.*"', "__name__"),
        ('job="a", __address__="10.0.0.1:8489"', "__address__"),
    ],
)
def test_a_selector_on_the_rule_set_label_or_a_reserved_label_is_refused(
    selector: str, label: str
) -> None:
    """laios_selector is set by the rules on their own recorded series (the raw metrics have
    none, so no query would match), and Prometheus keeps labels starting with __ for itself
    (__name__ next to a metric name is a PromQL error): such a selector is refused, naming
    the label."""
    with pytest.raises(ValueError, match=f"'{label}'"):
        MixinConfig(selector=selector)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"group_labels": ("cluster", "inf")},
        {"group_labels": ("NaN",)},
        {"selector": 'job="orders-api",Inf="x"'},
        {"selector": 'nan!=""'},
    ],
)
def test_a_label_promql_reads_as_a_number_is_refused(kwargs: dict[str, Any]) -> None:
    """inf and nan, in any case, are label names that PromQL reads as numbers in a by (...) or
    on (...) list: the rules group by the group labels and by the selector's, so every rule
    would fail to load ("unexpected number"). Such a label is refused at the call, naming it."""
    with pytest.raises(ValueError, match="number"):
        MixinConfig(**kwargs)


def test_labels_that_only_start_like_a_number_are_accepted() -> None:
    """infinity, nanny or info are plain label names to PromQL."""
    config = MixinConfig(group_labels=("infinity", "info"), selector='nanny="x"')
    assert config.record_labels == ("infinity", "info", "nanny")


def test_a_selector_on_tool_is_accepted() -> None:
    """tool is the one label of the laios series a selector may name (a team's tools)."""
    assert MixinConfig(selector='tool=~"fetch|parse"').selector_labels == ("tool",)


def test_a_group_label_given_twice_is_refused() -> None:
    """The same group label twice (two dashboard variables of one name) is refused."""
    with pytest.raises(ValueError, match="twice"):
        MixinConfig(group_labels=("job", "namespace", "job"))


#: A value of a hundred thousand characters, refused by each field given it.
_HUGE = "a b" * 33_000


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        pytest.param({"group_labels": (_HUGE,)}, ValueError, id="group_labels"),
        pytest.param({"group_labels": ("job", "a" * 10**5, "job")}, ValueError, id="twice"),
        pytest.param({"selector": f'job="{_HUGE}'}, ValueError, id="selector"),
        pytest.param({"selector": f'__{"a" * 10**5}="1"'}, ValueError, id="selector-label"),
        pytest.param({"selector": f'job=~"{"a" * 10**5}(?=x)"'}, ValueError, id="regex"),
        pytest.param({"selector": f'job=~"\\\\p{{{"A" * 10**5}}}"'}, ValueError, id="regex-class"),
        pytest.param({"selector": f'job=~"[[:{"a" * 10**5}:]]"'}, ValueError, id="regex-posix"),
        pytest.param({"selector": f'job=~"\\\\x{{{"F" * 10**5}}}"'}, ValueError, id="regex-hex"),
        pytest.param({"runbook_url_base": "a" * 10**5}, ValueError, id="runbook_url_base"),
        pytest.param({"runbook_url_base": _HUGE}, ValueError, id="runbook-with-spaces"),
        pytest.param({"dashboard_uid": _HUGE}, ValueError, id="dashboard_uid"),
        pytest.param({"manifest_name": _HUGE}, ValueError, id="manifest_name"),
        pytest.param({"match_labels": ((_HUGE, "x"),)}, ValueError, id="match_labels-key"),
        pytest.param({"match_labels": (("x", _HUGE),)}, ValueError, id="match_labels-value"),
        pytest.param({"manifest_labels": (("x", "1"), ("x", _HUGE))}, ValueError, id="keys"),
        pytest.param({"selector": [_HUGE]}, TypeError, id="selector-type"),
    ],
)
def test_a_huge_refused_value_is_described_briefly(
    fields: dict[str, Any], error: type[Exception]
) -> None:
    """A value of a hundred thousand characters is quoted cut short in the error refusing it
    (``python -m laios.mixin`` prints that error), not written out whole."""
    with pytest.raises(error) as refused:
        MixinConfig(**fields)
    assert len(str(refused.value)) < 1500, str(refused.value)[:300]


def test_group_labels_as_one_string_is_refused() -> None:
    """group_labels="job" (a string, not a tuple of names) is refused, not read as j, o, b."""
    with pytest.raises(TypeError, match="group_labels"):
        MixinConfig(group_labels="job")  # type: ignore[arg-type]


@pytest.mark.parametrize("base", ["https://wiki.example.com/{{laios}}/", "https://x/{{/"])
def test_a_runbook_base_with_template_braces_is_refused(base: str) -> None:
    """``{{`` in runbook_url_base is refused: Prometheus reads annotations as templates
    and would refuse to load every alert."""
    with pytest.raises(ValueError, match="runbook_url_base"):
        MixinConfig(runbook_url_base=base)


@pytest.mark.parametrize(
    "base", ["https://wiki.example.com/laios", "docs/runbooks", "https://wiki/x#runbooks"]
)
def test_a_runbook_base_that_would_run_into_the_alert_name_is_refused(
    base: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A runbook_url_base ending in a letter or digit (a path without its last /) is refused,
    saying to end it with /: every runbook_url was made of it and the alert's name run
    together, https://wiki.example.com/laioslaios-metrics-down.md, a link that leads nowhere.
    The command says so as a usage error."""
    with pytest.raises(ValueError, match="end it with '/'") as raised:
        MixinConfig(runbook_url_base=base)
    assert f"{base}laios-metrics-down.md" in str(raised.value)
    with pytest.raises(SystemExit) as exit_info:
        mixin_main(["--runbook-url-base", base, "--check"])
    assert exit_info.value.code == 2
    assert "end it with '/'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "base", ["https://wiki.example.com/laios/", "https://wiki/?page=", "https://wiki/x#", "rb-"]
)
def test_a_runbook_base_ending_in_a_separator_is_taken(base: str) -> None:
    """A base ending in /, =, # or - is taken as it is, the alert's name appended."""
    config = MixinConfig(runbook_url_base=base)
    assert config.runbook_url_base == base


@pytest.mark.parametrize("seconds", [math.inf, 1e309])
def test_an_infinite_latency_objective_is_refused(seconds: float) -> None:
    """latency_p95_seconds=inf is refused: LaiosToolLatencyHigh would compare with +Inf and
    could never fire."""
    with pytest.raises(ValueError, match="latency_p95_seconds"):
        MixinConfig(latency_p95_seconds=seconds)


@pytest.mark.parametrize(
    "selector",
    [
        'job=~"orders\\.api"',
        'job="a\\q"',
        'job="a\\\'"',
        "job='a\\\"'",
        'job="a\\x4"',
        'job="a\\08"',
        'job="a\\400"',
        'job="a\\ud800"',
        'job="a\\U00110000"',
        'job="a\nb"',
    ],
)
def test_a_selector_string_prometheus_cannot_parse_is_refused(selector: str) -> None:
    """A quoted string with an escape PromQL does not know (a regex's ``\\.`` written once),
    a bad octal, hex or Unicode escape, or a line break is refused at the call; promtool would
    refuse every rule of the generated file."""
    with pytest.raises(ValueError, match="selector"):
        MixinConfig(selector=selector)


@pytest.mark.parametrize(
    "selector",
    [
        'job=~"orders\\\\.api"',
        'job="\\a\\b\\f\\n\\r\\t\\v\\\\\\""',
        "job='it\\'s'",
        'job="\\101\\x41\\u00e9\\U0001F600"',
        "job=`a\\.b`",
    ],
)
def test_a_selector_with_promql_escapes_is_accepted(selector: str) -> None:
    """Every escape PromQL reads in a quoted string (and anything in a backtick string) passes."""
    assert MixinConfig(selector=selector).selector == selector


@pytest.mark.parametrize(
    "selector",
    ['job="orders-api"', 'namespace="shop", job=~"orders-.*"', "job!~'test.*'", "job=`a`"],
)
def test_label_matcher_selectors_are_accepted(selector: str) -> None:
    """Selectors of one or more quoted label matchers, any operator, are accepted."""
    assert MixinConfig(selector=selector).matchers() == "{" + selector + "}"


@pytest.mark.parametrize(
    ("selector", "reason"),
    [
        ('job=~"orders-("', "missing \\)"),
        ('job!~"a)b"', "unbalanced parenthesis"),
        ("job=~'[a-z'", "unterminated character set"),
        ('job=~"*-api"', "nothing to repeat"),
        ('job=~"a**"', "multiple repeat"),
        ('job=~"^**"', "multiple repeat"),
        ('job=~"(?i)*"', "nothing to repeat"),
        ('job=~"a|*"', "nothing to repeat"),
        ('job=~"a{2,1}"', "min repeat greater than max repeat"),
        ("job=~`[z-a]`", "bad character range"),
        ('namespace="shop",job=~"\\\\\\\\("', "missing \\)"),
        ("job=~`\\pL{2}{3}`", "multiple repeat"),
        ("job=~`\\x{41}|{2}`", "nothing to repeat"),
        ("job=~`\\Qa\\E**`", "multiple repeat"),
        ("job=~`(?sU:a)**`", "multiple repeat"),
        ("job=~`a\\z|*`", "nothing to repeat"),
        ("job=~`[\\x{7A}-a]`", "bad character range"),
    ],
)
def test_a_regex_matcher_prometheus_cannot_compile_is_refused(selector: str, reason: str) -> None:
    """The value of a ``=~`` or ``!~`` matcher is a regular expression: one with unbalanced
    parentheses or brackets or a repetition of nothing is refused at the call, naming the
    matcher and why; Prometheus would refuse the rules that read it. So it is when the regex
    also has syntax only RE2 reads (``\\pL``, ``\\x{41}``, ``\\Q...\\E``, ``\\z``, flag
    ``U``), which Python's ``re`` would have stopped at first."""
    with pytest.raises(ValueError, match=f"not a regular expression.*{reason}"):
        MixinConfig(selector=selector)


@pytest.mark.parametrize(
    "selector",
    [
        'job=~"(?!batch).*"',
        'job=~"(?<=a)b"',
        "job=~`(a)\\1`",
        'job=~"a?+"',
        'job=~"a{2}+"',
        'job=~"(?>a)"',
        'job=~"(?x)a b"',
        'job=~"(?i-)a"',
        'job=~"(?#note)a"',
        "job=~`a\\Z`",
        "job=~`\\u00e9`",
        "job=~`\\é`",
        "job=~`a\\`",
        "job=~`[a\\`",
        "job=~`\\Qa.b`",
        "job=~`a\\x4`",
        'job=~"a{1001}"',
        'job=~"(?<name>a)"',
        'job=~"(?P<>a)"',
        'job=~"(?P<a-b>a)"',
        'job=~"(?P<é>a)"',
        'job=~"[[:word:][:foo:]]"',
        "job=~`\\x{110000}`",
        'job=~"(a{2}){501}"',
        "job=~`(?:a{10}(b|c{10}){10}){11}`",
        'job=~"(a{2,}){0,501}?"',
        "job=~`\\pA`",
        "job=~`[\\PX]`",
        "job=~`\\p{greek}`",
        "job=~`\\p{Cn}`",
        "job=~`\\p{LC}`",
        "job=~`\\p{Foo}`",
        "job=~`[\\P{^Old_Greek}]`",
        "job=~`\\p{}`",
        "job=~`\\p{L`",
        "job=~`a\\p`",
    ],
)
def test_a_regex_only_python_reads_is_refused(selector: str) -> None:
    """Syntax Python's ``re`` takes but Go's RE2, which Prometheus uses, does not (lookaround,
    backreferences, possessive quantifiers, atomic groups, flags but i, m, s and U, comments,
    escapes RE2 lacks, a trailing backslash, a \\Q without its \\E, a repeat count over
    1000, a group named as ``(?<name>...)``, which RE2 reads only since Go 1.22, or with a
    name of other characters than ASCII letters, digits and ``_``, a POSIX class RE2 does not
    have, a ``\\x{...}`` past the last code point, repetitions nested to more than 1000
    copies, a Unicode class RE2 lacks) is refused at the call, naming the matcher and what RE2
    lacks: Prometheus would refuse the rules that read it."""
    with pytest.raises(ValueError, match="not a regular expression Prometheus can compile"):
        MixinConfig(selector=selector)


def test_a_group_named_as_only_newer_re2_reads_says_how_to_write_it() -> None:
    """``(?<name>...)`` is refused (the RE2 of Prometheus built with Go before 1.22 refuses
    it) with the way every RE2 reads: ``(?P<name>...)``."""
    with pytest.raises(ValueError, match=re.escape("write it (?P<name>...)")):
        MixinConfig(selector='job=~"(?<name>orders)-api"')


@pytest.mark.parametrize(
    "selector",
    [
        "job=~`\\Qa.b\\E`",
        "job=~`\\x{e9}+\\x41\\p{Greek}+`",
        "job=~`a\\ b\\_\\-`",
        "job=~`\\012\\0`",
        "job=~`(?P<name>a)+?b*?c??`",
        "job=~`(?i:a)(?-s:.)(?sU)x{2}?y{1,1000}`",
        "job=~`[\\d\\-\\]\\pL]`",
        "job=~`\\Aa\\b\\B\\z`",
        "job=~`(?P<Name_1>a)[[:^alpha:][:word:]]\\x{10FFFF}`",
        "job=~`(a{2}){500}(a{0}){1000}(?:a{10}(b{10}){10}){10}(a*){1000}(a{1,}){1000}`",
        "job=~`\\pL\\PN\\pLu\\p{^Lu}\\p{Any}\\p{Greek}\\P{Old_Italic}[\\pZ]`",
        "job=~`[\\d-a][a\\s-z][\\D-\\d][\\d-\\pL][\\S--][\\w-a-z]`",
        "job=~`\\p{Han}\\p{Nko}\\p{SignWriting}\\P{^Nyiakeng_Puachue_Hmong}\\p{Kawi}`",
    ],
)
def test_regex_syntax_re2_takes_is_accepted(selector: str) -> None:
    """What RE2 reads (``\\Q...\\E``, ``\\x{..}``, escaped punctuation, octal escapes, named
    groups, lazy quantifiers, its four flags, Perl and Unicode classes, its assertions, a ``-``
    after a class in a class, which is the character) passes."""
    assert MixinConfig(selector=selector).selector == selector


@pytest.mark.parametrize(
    "selector",
    [
        'job=~"orders-(api|web)"',
        'job=~"\\\\(literal\\\\)"',
        'job="("',
        'job=~"\\\\pL+"',
        'job=~"a(?i)b"',
        'job=~"[[:alpha:]]+"',
        'job=~"[]a]"',
        'job=~"\\x28\\x29"',
        "job=~`a\\z`",
        'job=~"' + "(" * 600 + "a" + ")" * 600 + '"',
    ],
)
def test_regex_matchers_prometheus_compiles_are_accepted(selector: str) -> None:
    """A regex Go's RE2 compiles passes, whatever Python's ``re`` thinks of its syntax (``\\pL``,
    a flag in the middle, groups nested deeper than Python parses); an ``=`` matcher's value is
    no regex."""
    assert MixinConfig(selector=selector).selector == selector


@pytest.mark.parametrize(
    "selector",
    [
        'job=~"^+orders"',
        'job=~"^*"',
        'job=~"$?"',
        "job=~`a|\\b+a\\B*?\\A{2,}`",
        'job=~"(?i)^$+"',
        'job=~"a{,2}*"',
    ],
)
def test_a_repeated_assertion_re2_compiles_is_accepted(selector: str) -> None:
    """RE2 repeats an empty-width assertion (``^``, ``$``, ``\\A``, ``\\b``, ``\\B``) as it
    repeats a character, and reads ``{,2}`` as the characters themselves (so a ``*`` after it
    repeats the ``}``): ``promtool check rules`` takes these, where Python's ``re`` says
    "nothing to repeat" or "multiple repeat"."""
    assert MixinConfig(selector=selector).selector == selector


def test_an_objective_of_many_nines_is_written_as_given() -> None:
    """At 0.9999999 (seven nines) the texts say 99.99999 % and a budget of 0.00001 %, not a
    rounded "100% success"; the dashboard's Failed results panel turns orange above that
    budget, not above 0, and names the objective as given."""
    from laios.mixin.dashboard import build_dashboard

    config = MixinConfig(availability_objective=0.9999999)
    (burn, *_) = [
        rule
        for group in rule_groups(config)
        for rule in group["rules"]
        if rule.get("alert") == "LaiosErrorBudgetBurn"
    ]
    description = burn["annotations"]["description"]
    assert "The objective is 99.99999% success, so 1e-05% of the results" in description
    assert "* 1e-07)" in burn["expr"]
    (panel,) = [p for p in build_dashboard(config)["panels"] if p.get("title") == "Failed results"]
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [step["value"] for step in steps] == [None, 1e-07, 1.44e-06]
    assert "(0.9999999)" in panel["description"]


@pytest.mark.parametrize(
    ("objective", "percent", "budget", "red"),
    [
        (0.99999999999, "99.999999999%", "1e-11", 1.44e-10),
        (0.9999999999999, "99.99999999999%", "1e-13", 1.44e-12),
        (0.99999999999995, "99.999999999995%", "5e-14", 7.2e-13),
    ],
)
def test_an_objective_of_more_nines_than_ten_digits_hold_is_written_as_given(
    objective: float, percent: str, budget: str, red: float
) -> None:
    """Past ten significant digits the objective is not written as a rounded "100% success",
    nor its budget as 0 (an alert at ``14.4 * 0`` and a dashboard orange above 0): the texts,
    the thresholds and the expressions say the objective given."""
    from laios.mixin.dashboard import build_dashboard

    config = MixinConfig(availability_objective=objective)
    assert config.error_budget == float(budget)
    (burn, *_) = [rule for rule in alerts(config) if rule["alert"] == "LaiosErrorBudgetBurn"]
    description = burn["annotations"]["description"]
    assert f"The objective is {percent} success" in description
    assert f"* {budget})" in burn["expr"]
    assert "100%" not in json.dumps(rule_groups(config))
    (panel,) = [p for p in build_dashboard(config)["panels"] if p.get("title") == "Failed results"]
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [step["value"] for step in steps] == [None, float(budget), red]
    assert f"({objective!r})" in panel["description"]


@pytest.mark.parametrize("character", ["\x00", "\x01", "\x1b", "\x7f", "\x9b", "\udcff"])
def test_a_selector_with_a_character_a_rules_file_cannot_hold_is_refused(character: str) -> None:
    """A control character (ESC, DEL, ...) or a lone surrogate (a byte of an argument that is
    not UTF-8) is refused at the call: promtool refuses a rules file with the first ("yaml:
    control characters are not allowed"), and the second cannot be written at all."""
    with pytest.raises(ValueError, match=r"selector .* at position 6.*PromQL escape"):
        MixinConfig(selector=f'job="a{character}b"')


@pytest.mark.parametrize("character", ["\t", "\x85", "\u2028", "\ufeff", "\U0001f600"])
def test_a_selector_with_a_character_a_rules_file_holds_is_accepted(character: str) -> None:
    """A tab, a NEL, a line or byte-order mark or an emoji are written as they are."""
    assert MixinConfig(selector=f'job="a{character}b"').selector == f'job="a{character}b"'


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("selector", None),
        ("selector", b'job="a"'),
        ("availability_objective", "0.99"),
        ("availability_objective", None),
        ("availability_objective", True),
        ("latency_p95_seconds", "5"),
        ("runbook_url_base", None),
        ("runbook_url_base", 5),
        ("dashboard_uid", 5),
        ("match_labels", [("app", "laios")]),
        ("manifest_labels", {"release": "prom"}),
    ],
)
def test_a_field_of_the_wrong_type_is_refused_naming_it(field: str, value: Any) -> None:
    """A value of the wrong type is refused at the call with a TypeError naming the field,
    not an error of a comparison inside the check (or a config that holds a list)."""
    with pytest.raises(TypeError, match=f"^{field} must be"):
        MixinConfig(**{field: value})


def test_an_objective_of_any_real_number_type_gives_the_files_of_its_float() -> None:
    """A Decimal or Fraction objective or latency is taken as its float: the same rules, not
    a TypeError from inside the generator after the check let it pass."""
    from decimal import Decimal
    from fractions import Fraction

    expected = rule_groups(MixinConfig(availability_objective=0.995, latency_p95_seconds=2.5))
    for objective, latency in ((Decimal("0.995"), Decimal("2.5")), (Fraction(199, 200), 2.5)):
        config = MixinConfig(availability_objective=objective, latency_p95_seconds=latency)  # type: ignore[arg-type]
        assert config.availability_objective == 0.995
        assert rule_groups(config) == expected


def test_a_latency_objective_too_large_for_a_float_is_refused() -> None:
    """10**400 seconds is refused with the field's ValueError, not an OverflowError."""
    with pytest.raises(ValueError, match="latency_p95_seconds must be a positive, finite"):
        MixinConfig(latency_p95_seconds=10**400)


def test_a_group_label_named_as_the_dashboards_data_source_variable_is_refused() -> None:
    """A group label ``datasource`` would give the dashboard two variables of that name, the
    data source one and the label's, which every panel reads as ``${datasource}``."""
    from laios.mixin.dashboard import build_dashboard

    names = [v["name"] for v in build_dashboard(MixinConfig())["templating"]["list"]]
    assert "datasource" in names
    with pytest.raises(ValueError, match=r"group_labels: 'datasource' .*dashboard"):
        MixinConfig(group_labels=("cluster", "datasource"))


@pytest.mark.parametrize(
    "selector",
    [
        'job="$datasource"',
        'job="orders-$job"',
        "job='${datasource}'",
        'job=~"$__rate_interval"',
        "job=~`a$tool`",
        'job=~"[[instance]]"',
        'job=~"[[job:regex]]"',
    ],
)
def test_a_selector_grafana_would_read_a_variable_in_is_refused(selector: str) -> None:
    """``$name``, ``${name}`` or ``[[name]]`` in a selector's value is refused at the call:
    Grafana replaces it in every query of the dashboard with the value of the dashboard's
    variable of that name (the data source, a group label, ``$__rate_interval``), so the
    panels would select other series than the rules, without a word."""
    with pytest.raises(ValueError, match=r"^selector .* Grafana .*\\x24"):
        MixinConfig(selector=selector)


@pytest.mark.parametrize(
    "selector",
    [
        'job=~"orders-.*$"',
        'job=~"^(a|b)$"',
        'job="US$ 5"',
        'job=~"[[:alpha:]]+"',
        r'job="\x24datasource"',
    ],
)
def test_a_selector_with_a_dollar_grafana_leaves_alone_is_accepted(selector: str) -> None:
    """A ``$`` that no name follows (a regex's end anchor) is written as it is, as is the
    PromQL escape ``\\x24`` that Prometheus reads as ``$`` and Grafana does not read at all."""
    from laios.mixin.dashboard import dashboard_json

    config = MixinConfig(selector=selector)
    assert config.selector == selector
    assert json_escaped(selector) in dashboard_json(config)


@pytest.mark.parametrize(
    "selector",
    ['job=~"orders-[0-9]{2}"', "job=~'a{1,3}'", "job=~`x{2}`", 'job="a}b{c"', 'job="x}}"'],
)
def test_a_selector_with_braces_in_its_strings_is_accepted(selector: str) -> None:
    """A brace inside a quoted value (a regex's repetition, ``{2}``) is a character of the
    value, not the braces around matchers: it is accepted, and every rule, alert and panel
    reads it. It was refused as if the matchers were written in braces."""
    from laios.mixin.dashboard import dashboard_json

    config = MixinConfig(selector=selector)
    assert config.matchers() == "{" + selector + "}"
    assert {rule["labels"]["laios_selector"] for rule in rules(config)} == {selector}
    assert any(selector in rule["expr"] for rule in records(config))
    assert json_escaped(selector) in dashboard_json(config)


@pytest.mark.parametrize("selector", ['{job="x"}', 'job="x"}', '{job="x"', 'job="x",{a="b"}'])
def test_a_selector_in_braces_is_refused(selector: str) -> None:
    """Braces around or between the matchers, outside their quoted values, are refused."""
    with pytest.raises(ValueError, match="without braces"):
        MixinConfig(selector=selector)


@pytest.mark.parametrize("selector", ['job=~"a{{2}}"', "job='{{ .Value }}'", "job=`{{x`"])
def test_a_selector_with_a_template_opening_is_refused(selector: str) -> None:
    """``{{`` in a value is refused at the call: the alerts carry the selector in a label,
    which Prometheus reads as a template, so the alert's label would not be the selector
    (``{{ .Value }}`` becomes the alert's value) or the rules would not load."""
    with pytest.raises(ValueError, match=r"^selector .*'\{\{'.* template.*\\x7b"):
        MixinConfig(selector=selector)


def json_escaped(text: str) -> str:
    """``text`` as it appears inside a JSON string."""
    return json.dumps(text)[1:-1]


#: Pieces of selectors: PromQL's and regexes' punctuation, escapes, and what Grafana, YAML and
#: Prometheus's templates read.
_SELECTOR_PIECES = st.sampled_from(
    [
        "job",
        "tool",
        "le",
        "a_1",
        "=",
        "=~",
        "!=",
        "!~",
        ",",
        " ",
        '"',
        "'",
        "`",
        "\\",
        "\\\\",
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        "{2}",
        "*",
        "+",
        "?",
        "|",
        ".",
        "^",
        "$",
        "$x",
        "[[x]]",
        "{{",
        "#",
        ": ",
        "\\d",
        "\\pL",
        "\\x41",
        "\\x{41}",
        "\\u00e9",
        "\\Q",
        "\\E",
        "(?i)",
        "(?P<n>",
        "é",
        "\u2028",
        "\x85",
        "\n",
        "\t",
        "\x00",
        "\ud800",
    ]
)
_SELECTORS = st.lists(_SELECTOR_PIECES, max_size=12).map("".join) | st.builds(
    lambda label, operator, quote, body: f"{label}{operator}{quote}{body}{quote}",
    st.sampled_from(["job", "tool", "pool"]),
    st.sampled_from(["=", "=~", "!=", "!~"]),
    st.sampled_from(['"', "'", "`"]),
    st.lists(_SELECTOR_PIECES, max_size=8).map("".join),
)


@settings(max_examples=60, deadline=None)
@given(_SELECTORS)
def test_any_selector_is_refused_briefly_or_gives_files_that_read_back(selector: str) -> None:
    """A selector is refused with a ValueError whose message is one short printable line, or
    taken: then the rules are YAML and the dashboard JSON that read back, and each of its
    matchers is in the rules."""
    try:
        config = MixinConfig(selector=selector)
    except ValueError as exc:
        message = str(exc)
        assert message.isprintable(), message
        assert len(message) < 1500, message
        return
    files = render(config).files
    rules = yaml.safe_load(files[RULES_PATH])
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    for matcher in config.selector_matchers:
        assert any(matcher in expr for expr in exprs), matcher
    assert json.loads(files[DASHBOARD_PATH])["uid"] == config.resolved_dashboard_uid


def test_a_long_regex_of_unclosed_quotes_is_refused_in_linear_time() -> None:
    """A ``\\Q`` without its ``\\E`` is read to the end once, not searched for an ``\\E``
    again from each of 100,000 of them (minutes, for a regex of 200,000 characters)."""
    started = time.perf_counter()
    with pytest.raises(ValueError, match="without its"):
        MixinConfig(selector="job=~`" + "\\Q" * 100_000 + "`")
    assert time.perf_counter() - started < 5.0


@pytest.mark.parametrize("objective", [1e-300, 1e-17, 0.5, 0.9])
def test_the_objective_a_left_out_burn_rate_advises_gives_it(objective: float) -> None:
    """Each burn rate left out says which objective gives it; that objective does. Below
    about 1e-16 the 1x burn rate was left out (1 - objective is 1 in a float) with advice
    that "an objective of 0 or more gives it", which is no objective at all."""
    from laios.mixin.rules import burn_rates, unreachable_burn_rates

    messages = unreachable_burn_rates(MixinConfig(availability_objective=objective))
    assert messages
    for message in messages:
        factor = float(re.search(r"\(([\d.]+)x\)", message).group(1))  # type: ignore[union-attr]
        advised = re.search(r"an objective of (\S+) or more gives it$", message)
        assert advised is not None, message
        given = MixinConfig(availability_objective=float(advised.group(1)))
        assert factor in [burn.factor for burn in burn_rates(given)], message
