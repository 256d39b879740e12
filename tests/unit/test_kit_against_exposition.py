"""The operator's kit reads what laios really exports: every query of the dashboard and the rules,
parsed, against the families, types, labels and label values of a real executor's exposition.

tests/unit/test_dashboard.py checks that each metric name the kit reads is exported; this module
goes further: the labels each selector matches, each ``by``/``without``/``on`` list, each legend
and each ``$labels.x`` of an alert exist on what they read; matched label values are values laios
emits; ``rate`` and ``increase`` read counters (or a histogram's or summary's counters);
``histogram_quantile`` reads ``_bucket`` series with ``le`` kept; both sides of a one-to-one
operation carry the same labels. The same goes for the queries the docs and runbooks give, and
for the series the rules' unit tests feed. Each runbook opens with its alert's name, severity
and wait, and docs/metrics.md's catalogue lists the families exported. The PromQL parser below
covers the language the kit and the docs write (no ``@``, no ``offset``); an expression it
cannot read fails the test.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from exposition_workload import workload
from prometheus_client.parser import text_string_to_metric_families

from laios.mixin import MixinConfig

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = json.loads(
    (REPO / "grafana" / "dashboards" / "laios-execution.json").read_text(encoding="utf-8")
)
RULES = yaml.safe_load((REPO / "grafana" / "prometheus" / "rules.yml").read_text("utf-8"))
CONFIG = MixinConfig()
#: Labels Prometheus sets on every series it scrapes (the group labels come from the scrape
#: config or relabelling in the deployments the mixin is made for).
TARGET_LABELS = frozenset({*CONFIG.group_labels, "job", "instance"})
#: The aggregation operators of PromQL.
AGGREGATORS = frozenset(
    {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values"}
    | {"bottomk", "topk", "quantile", "limitk", "limit_ratio"}
)
#: Functions whose result has the labels of their (first vector) argument, less the name.
KEEPING = frozenset(
    {"rate", "irate", "increase", "delta", "idelta", "deriv", "resets", "changes"}
    | {f"{kind}_over_time" for kind in ("avg", "min", "max", "sum", "count", "last")}
    | {f"{kind}_over_time" for kind in ("stddev", "stdvar", "present", "quantile")}
    | {"abs", "ceil", "floor", "round", "clamp", "clamp_min", "clamp_max", "exp", "ln"}
    | {"log2", "log10", "sqrt", "sgn", "timestamp", "predict_linear", "holt_winters"}
)
#: Functions over a range of a counter, which a gauge breaks (it goes down).
COUNTER_FUNCTIONS = frozenset({"rate", "irate", "increase", "resets"})


# -- a real exposition -----------------------------------------------------------------------


@dataclass
class Exposed:
    """A family as the exposition writes it: type, sample names, label names, label values."""

    kind: str
    samples: set[str] = field(default_factory=set)
    labels: dict[str, set[str]] = field(default_factory=dict)


@pytest.fixture(scope="module")
def exposed() -> dict[str, Exposed]:
    """Each ``laios_*`` family of a real exposition by sample name (``_bucket``, ``_total``...)."""
    by_sample: dict[str, Exposed] = {}
    for family in text_string_to_metric_families(workload()):
        if not family.name.startswith("laios_"):
            continue
        for sample in family.samples:
            entry = by_sample.setdefault(sample.name, Exposed(family.type))
            entry.samples.add(sample.name)
            for label, value in sample.labels.items():
                entry.labels.setdefault(label, set()).add(value)
    return by_sample


# -- PromQL ----------------------------------------------------------------------------------


TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    | (?P<range>\[[^\]]*\])
    | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w:]))
    | (?P<name>[A-Za-z_:][\w:]*)
    | (?P<op>=~|!~|!=|==|>=|<=|[-+*/%^(){},=<>])
    )""",
    re.VERBOSE,
)


def tokens(expr: str) -> list[tuple[str, str]]:
    """The tokens of ``expr`` as (kind, text); a range ``[...]`` is one token."""
    out, at = [], 0
    expr = expr.rstrip()
    while at < len(expr):
        match = TOKEN.match(expr, at)
        if match is None or match.lastgroup is None or match.end() == at:
            raise Unreadable(f"cannot read {expr[at:]!r} in {expr!r}")
        kind = match.lastgroup
        out.append((kind, match.group(kind)))
        at = match.end()
    return out


class Unreadable(Exception):
    """PromQL this reader cannot read."""


@dataclass
class Selector:
    name: str
    matchers: list[tuple[str, str, str]]
    range: str | None = None


@dataclass
class Aggregation:
    op: str
    grouping: str | None  # "by", "without" or None
    labels: list[str]
    args: list[Any]


@dataclass
class Call:
    name: str
    args: list[Any]


@dataclass
class Binary:
    op: str
    lhs: Any
    rhs: Any
    matching: str | None = None  # "on", "ignoring" or None
    labels: list[str] = field(default_factory=list)
    group: str | None = None  # "group_left", "group_right" or None
    include: list[str] = field(default_factory=list)


@dataclass
class Scalar:
    text: str


PRECEDENCE = [
    {"or"},
    {"and", "unless"},
    {"==", "!=", "<=", "<", ">=", ">"},
    {"+", "-"},
    {"*", "/", "%", "atan2"},
    {"^"},
]


class Parser:
    """A recursive-descent reader of PromQL into the node types above."""

    def __init__(self, expr: str) -> None:
        self.expr = expr
        self.toks = tokens(expr)
        self.at = 0

    def peek(self, ahead: int = 0) -> tuple[str, str]:
        index = self.at + ahead
        return self.toks[index] if index < len(self.toks) else ("end", "")

    def take(self, text: str | None = None) -> str:
        kind, value = self.peek()
        if kind == "end" or text not in (None, value):
            raise Unreadable(f"expected {text or 'more'!r}, got {value!r} in {self.expr!r}")
        self.at += 1
        return value

    def parse(self) -> Any:
        node = self.binary(0)
        if self.peek()[0] != "end":
            raise Unreadable(f"left over {self.toks[self.at :]} in {self.expr!r}")
        return node

    def label_list(self) -> list[str]:
        self.take("(")
        labels = []
        while self.peek()[1] != ")":
            labels.append(self.take())
            if self.peek()[1] == ",":
                self.take(",")
        self.take(")")
        return labels

    def binary(self, level: int) -> Any:
        if level == len(PRECEDENCE):
            return self.unary()
        lhs = self.binary(level + 1)
        while self.peek()[1] in PRECEDENCE[level]:
            node = Binary(self.take(), lhs, None)
            if self.peek()[1] == "bool":
                self.take()
            if self.peek()[1] in ("on", "ignoring"):
                node.matching = self.take()
                node.labels = self.label_list()
                if self.peek()[1] in ("group_left", "group_right"):
                    node.group = self.take()
                    if self.peek()[1] == "(":
                        node.include = self.label_list()
            # "^" is right-associative; the others left.
            node.rhs = self.binary(level if node.op == "^" else level + 1)
            lhs = node
        return lhs

    def unary(self) -> Any:
        if self.peek()[1] in ("-", "+"):
            self.take()
            return Binary("*", Scalar("-1"), self.unary())
        node = self.primary()
        while self.peek()[0] == "range":
            if isinstance(node, Selector):
                node = Selector(node.name, node.matchers, self.take())
            else:  # a subquery: its labels are its expression's
                self.take()
                node = Call("subquery", [node])
        return node

    def primary(self) -> Any:
        kind, value = self.peek()
        if kind in ("number", "string"):
            self.take()
            return Scalar(value)
        if value == "(":
            self.take()
            node = self.binary(0)
            self.take(")")
            return node
        if value == "{":
            return Selector("", self.matchers())
        if kind != "name":
            raise Unreadable(f"unexpected {value!r} in {self.expr!r}")
        self.take()
        if value in AGGREGATORS and self.peek()[1] in ("(", "by", "without"):
            node = Aggregation(value, None, [], [])
            if self.peek()[1] in ("by", "without"):
                node.grouping = self.take()
                node.labels = self.label_list()
            node.args = self.arguments()
            if self.peek()[1] in ("by", "without"):
                node.grouping = self.take()
                node.labels = self.label_list()
            return node
        if self.peek()[1] == "(":
            return Call(value, self.arguments())
        matchers = self.matchers() if self.peek()[1] == "{" else []
        return Selector(value, matchers)

    def arguments(self) -> list[Any]:
        self.take("(")
        args = []
        while self.peek()[1] != ")":
            args.append(self.binary(0))
            if self.peek()[1] == ",":
                self.take(",")
        self.take(")")
        return args

    def matchers(self) -> list[tuple[str, str, str]]:
        self.take("{")
        found = []
        while self.peek()[1] != "}":
            label, op, value = self.take(), self.take(), self.take()
            found.append((label, op, value[1:-1]))
            if self.peek()[1] == ",":
                self.take(",")
        self.take("}")
        return found


def walk(node: Any) -> Iterator[Any]:
    """``node`` and every node under it."""
    yield node
    children: list[Any] = []
    if isinstance(node, Aggregation | Call):
        children = node.args
    elif isinstance(node, Binary):
        children = [node.lhs, node.rhs]
    for child in children:
        yield from walk(child)


# -- what a query reads ----------------------------------------------------------------------


@dataclass
class Kit:
    """The labels and types the kit's queries may read, and what is wrong with them."""

    exposed: dict[str, Exposed]
    recorded: dict[str, set[str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def labels_of(self, name: str, where: str) -> set[str] | None:
        """The labels a series called ``name`` has, or None (a problem) for an unknown name."""
        if name in self.exposed:
            return set(self.exposed[name].labels) | set(TARGET_LABELS)
        if name in self.recorded:
            return set(self.recorded[name])
        if name == "up":
            return set(TARGET_LABELS)
        self.problems.append(f"{where}: {name} is neither exported nor recorded")
        return None

    def value_problem(self, name: str, label: str, op: str, value: str) -> str | None:
        """What is wrong with matching ``label`` of ``name`` against ``value``, if anything:
        an outcome or error type laios never writes there."""
        if label not in ("outcome", "error_type") or "$" in value:
            return None
        everywhere = set().union(*(e.labels.get(label, set()) for e in self.exposed.values()))
        if name in self.exposed and op in ("=", "=~"):
            emitted = self.exposed[name].labels.get(label, set())
        else:
            # A recorded series has the values of every family with that label; a negative
            # matcher may leave out a value the family lacks (outcome!="rejected" on the
            # durations, which only success and error have), if laios writes it at all.
            emitted = everywhere
        wanted = value.split("|") if op in ("=~", "!~") else [value]
        known = set(emitted) | KNOWN_ERROR_TYPES if label == "error_type" else emitted
        missing = [v for v in wanted if v not in known]
        if missing:
            return f"{name}{{{label}{op}{value!r}}}: laios writes no {label} {missing} there"
        return None

    def labels(self, node: Any, where: str) -> set[str] | None:
        """The labels of what ``node`` gives (None for a scalar or where it cannot be told),
        after checking the labels and values it reads."""
        if isinstance(node, Scalar):
            return None
        if isinstance(node, Selector):
            return self.selector(node, where)
        if isinstance(node, Aggregation):
            return self.aggregation(node, where)
        if isinstance(node, Call):
            return self.call(node, where)
        assert isinstance(node, Binary)
        return self.binary(node, where)

    def selector(self, node: Selector, where: str) -> set[str] | None:
        have = self.labels_of(node.name, where)
        if have is None:
            return None
        for label, op, value in node.matchers:
            # (label="" matches a series without the label: a rule set's laios_selector="")
            if label not in have and (op, value) != ("=", ""):
                self.problems.append(f"{where}: {node.name} has no label {label}")
            problem = self.value_problem(node.name, label, op, value)
            if problem:
                self.problems.append(f"{where}: {problem}")
        return have

    def require(self, labels: list[str], have: set[str] | None, what: str, where: str) -> None:
        if have is None:
            return
        for label in labels:
            if label not in have:
                self.problems.append(f"{where}: {what} names {label}, which is not there")

    def aggregation(self, node: Aggregation, where: str) -> set[str] | None:
        inner = self.labels(node.args[-1], where)
        for arg in node.args[:-1]:
            self.labels(arg, where)
        self.require(node.labels, inner, f"{node.op} {node.grouping}", where)
        if node.op in ("topk", "bottomk", "limitk", "limit_ratio"):
            return inner
        if node.grouping == "by":
            return set(node.labels)
        if node.grouping == "without":
            return None if inner is None else inner - set(node.labels)
        return set()

    def call(self, node: Call, where: str) -> set[str] | None:
        results = [self.labels(arg, where) for arg in node.args]
        vectors = [r for r in results if r is not None]
        if node.name in COUNTER_FUNCTIONS:
            for selector in (arg for arg in node.args if isinstance(arg, Selector)):
                kind = self.exposed[selector.name].kind if selector.name in self.exposed else None
                counts = kind == "counter" or (
                    kind in ("histogram", "summary")
                    and selector.name.endswith(("_bucket", "_count", "_sum"))
                )
                if not counts:
                    self.problems.append(f"{where}: {node.name}() of {selector.name}, a {kind}")
        if node.name == "histogram_quantile":
            buckets = [s.name for s in walk(node.args[1]) if isinstance(s, Selector)]
            if not buckets or not all(name.endswith("_bucket") for name in buckets):
                self.problems.append(f"{where}: histogram_quantile over {buckets}")
            self.require(["le"], results[1], "histogram_quantile", where)
            return None if results[1] is None else results[1] - {"le"}
        if node.name in ("absent", "absent_over_time"):
            selectors = [s for s in walk(node.args[0]) if isinstance(s, Selector)]
            return {label for s in selectors for label, op, _ in s.matchers if op == "="}
        if node.name == "label_replace":
            return None if results[0] is None else results[0] | {node.args[1].text[1:-1]}
        if node.name in ("vector", "time", "scalar", "pi"):
            return None if node.name != "vector" else set()
        if node.name not in KEEPING and node.name != "subquery":
            self.problems.append(f"{where}: {node.name}() is not a function this test knows")
        return vectors[0] if vectors else None

    def binary(self, node: Binary, where: str) -> set[str] | None:
        lhs, rhs = self.labels(node.lhs, where), self.labels(node.rhs, where)
        if node.op == "or":
            return None if lhs is None or rhs is None else lhs & rhs
        if lhs is None or rhs is None:
            return lhs if rhs is None else rhs
        self.require(node.labels, lhs, f"{node.op} {node.matching} (left)", where)
        self.require(node.labels, rhs, f"{node.op} {node.matching} (right)", where)
        if node.matching == "on":
            left, right = lhs & set(node.labels), rhs & set(node.labels)
        else:
            left, right = lhs - set(node.labels), rhs - set(node.labels)
        if node.op in ("and", "unless"):
            return lhs
        if node.group is None and left != right:
            self.problems.append(
                f"{where}: {node.op} matches {sorted(left)} with {sorted(right)}: no series pair"
            )
        if node.group == "group_left":
            return lhs | set(node.include)
        if node.group == "group_right":
            return rhs | set(node.include)
        if node.matching == "on" and node.op not in ("==", "!=", "<", ">", "<=", ">="):
            return set(node.labels)
        return lhs

    def check(self, expr: str, where: str) -> set[str] | None:
        """The labels of ``expr``'s result, its problems noted."""
        try:
            tree = Parser(expr).parse()
        except Unreadable as exc:
            self.problems.append(f"{where}: cannot parse: {exc}")
            return None
        return self.labels(tree, where)


#: Error types that need a process or a Dask runner, a broken clock or a fork to happen: the
#: ones the docs list (docs/metrics.md), which the workload above cannot all produce.
KNOWN_ERROR_TYPES = frozenset(
    {"timeout", "cancelled", "tool_error", "callback_error", "internal", "loop_closed"}
    | {"worker_crashed", "memory_limit", "cpu_limit", "initializer_failed", "terminated"}
    | {"not_picklable", "worker_lost", "dask_worker_daemon", "tool_not_found", "shutdown"}
    | {"saturated", "no_thread", "task_factory_failed", "no_process", "dask", "clock"}
    | {"forked", "would_deadlock"}
)


def legend_labels(legend: str) -> set[str]:
    """The labels a Grafana legend template names (``{{tool}}``, ``{{ tool }}``)."""
    return set(re.findall(r"\{\{\s*(\w+)\s*\}\}", legend))


def annotation_labels(text: str) -> set[str]:
    """The labels an alert template reads (``$labels.tool``)."""
    return set(re.findall(r"\$labels\.(\w+)", text))


def grafana_free(expr: str) -> str:
    """``expr`` with Grafana's variables as Prometheus would receive them."""
    expr = re.sub(r"\$__(rate_interval|range|interval)", "5m", expr)
    return re.sub(r"\$\{?(\w+)\}?", ".*", expr)


def rules_kit(exposed: dict[str, Exposed]) -> tuple[Kit, dict[str, set[str] | None]]:
    """The kit with every recording rule's labels known; each alert's result labels."""
    kit = Kit(exposed)
    alerts: dict[str, set[str] | None] = {}
    for group in RULES["groups"]:
        for rule in group["rules"]:
            name = rule.get("record") or rule["alert"]
            result = kit.check(rule["expr"], f"rules.yml {name}")
            extra = set(rule.get("labels", {}))
            if "record" in rule:
                kit.recorded[rule["record"]] = (result or set()) | extra
            else:
                alerts[f"{name} {rule.get('labels')}"] = None if result is None else result
    return kit, alerts


# -- the tests -------------------------------------------------------------------------------


def test_the_workload_exports_every_outcome_and_kind_of_family(exposed: dict[str, Exposed]) -> None:
    """The exposition the checks read has each family, every outcome and the constant label."""
    assert exposed["laios_tasks_total"].labels["outcome"] == {
        "success",
        "error",
        "timeout",
        "cancelled",
        "rejected",
    }
    assert "saturated" in exposed["laios_task_errors_total"].labels["error_type"]
    assert "laios_task_retries_total" in exposed
    assert "laios_custom_metric_count" in exposed
    assert exposed["laios_executor_abandoned_threads"].labels == {"pool": {"search"}}


def test_every_rule_reads_exported_labels_and_values(exposed: dict[str, Exposed]) -> None:
    """Each rule's selectors, groupings, matchings and functions read what laios exports."""
    kit, _ = rules_kit(exposed)
    assert kit.recorded
    assert kit.problems == []


def test_every_alert_annotation_names_labels_of_its_result(exposed: dict[str, Exposed]) -> None:
    """Each ``$labels.x`` of an alert's summary or description is a label of its result, or
    of the alert's own labels (a label it lacks would be written as an empty string)."""
    missing = []
    rules = [r for g in RULES["groups"] for r in g["rules"] if "alert" in r]
    _, results = rules_kit(exposed)
    for rule in rules:
        result = results[f"{rule['alert']} {rule.get('labels')}"]
        assert result is not None, rule["alert"]
        have = result | set(rule.get("labels", {}))
        for text in rule["annotations"].values():
            missing += [(rule["alert"], x) for x in annotation_labels(text) - have]
    assert missing == []


def test_every_panel_reads_exported_labels_and_values(exposed: dict[str, Exposed]) -> None:
    """Each panel query's selectors, groupings and functions read what laios exports, and
    each legend names labels of its query's result."""
    kit, _ = rules_kit(exposed)
    kit.problems.clear()
    for panel in DASHBOARD["panels"]:
        for target in panel.get("targets", []):
            where = f"panel {panel['title']!r}"
            result = kit.check(grafana_free(target["expr"]), where)
            named = legend_labels(target.get("legendFormat", ""))
            if result is not None and not named <= result:
                kit.problems.append(f"{where}: legend names {sorted(named - result)}")
    assert kit.problems == []


def test_every_variable_lists_a_label_of_the_series_it_reads(exposed: dict[str, Exposed]) -> None:
    """Each ``label_values(series, label)`` variable reads a label that series carries."""
    kit, _ = rules_kit(exposed)
    problems = []
    for variable in DASHBOARD["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]
        query = query["query"] if isinstance(query, dict) else query
        series, label = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", query).groups()
        have = kit.check(grafana_free(series), f"variable {variable['name']}")
        if have is None or label not in have:
            problems.append((variable["name"], label))
    assert (problems, kit.problems) == ([], [])


#: How a description names the tasks of an outcome.
OUTCOME_WORDS = {"timeout": r"timed[- ]out", "cancelled": r"cancel", "rejected": r"reject"}


def rule_comments() -> dict[str, str]:
    """The comment written above each recording rule of rules.yml, by the rule's name."""
    text = (REPO / "grafana" / "prometheus" / "rules.yml").read_text(encoding="utf-8")
    found = re.findall(r"((?:^ *#.*\n)+) *- record: (\S+)", text, re.MULTILINE)
    return {record: " ".join(comment.replace("#", " ").split()) for comment, record in found}


def test_what_reads_the_durations_says_which_outcomes_have_none(
    exposed: dict[str, Exposed],
) -> None:
    """Only successes and errors have durations: a panel or recording rule of duration
    quantiles over every outcome says that timed-out, cancelled and rejected tasks are not in
    them. (It said "rejected tasks never ran and are left out", as if a timed-out task's
    duration were in its p99.)"""
    outcomes = exposed["laios_tasks_total"].labels["outcome"]
    without = outcomes - exposed["laios_task_duration_seconds_bucket"].labels["outcome"]
    assert without == set(OUTCOME_WORDS)
    texts = {
        f"panel {panel['title']!r}": panel["description"]
        for panel in DASHBOARD["panels"]
        for target in panel.get("targets", [])
        if "laios_task_duration_seconds" in target["expr"] and 'outcome="' not in target["expr"]
    }
    texts |= {
        f"rule {record}": comment
        for record, comment in rule_comments().items()
        if record.startswith("laios:task_duration_seconds:")
    }
    assert len(texts) >= 6
    silent = [
        (where, outcome)
        for where, text in texts.items()
        for outcome in sorted(without)
        if not re.search(OUTCOME_WORDS[outcome], text, re.IGNORECASE)
    ]
    assert silent == []


def fed_series(path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """The name and labels of each input series of a promtool rule test file."""
    for test in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
        for entry in test.get("input_series", []):
            name, body = re.fullmatch(r"([\w:]+)(?:\{(.*)\})?", entry["series"]).groups()
            yield name, dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', body or ""))


@pytest.mark.parametrize(
    "path",
    [
        REPO / "grafana" / "prometheus" / "rules.test.yml",
        *sorted((REPO / "tests" / "integration").glob("mixin_*.test.yml")),
    ],
    ids=lambda path: path.name,
)
def test_rule_tests_feed_series_laios_exports(exposed: dict[str, Exposed], path: Path) -> None:
    """The rules' unit tests work out their values from series laios could export: known
    names, labels of those families, and outcomes each family has. (rules.test.yml gave
    timed-out and rejected tasks durations, which laios never exports, and expected the p95 of
    every run to include them.)"""
    unlike = set()
    for name, labels in fed_series(path):
        if name == "up":
            continue
        if name not in exposed:
            unlike.add(f"{name} is not exported")
            continue
        # Labels of no laios family are the target's or a store's constant labels (any name).
        family = exposed[name].labels
        own = set().union(*(e.labels for e in exposed.values())) - {"pool"}
        unlike |= {f"{name} has no label {label}" for label in (set(labels) & own) - set(family)}
        if "outcome" in labels and labels["outcome"] not in family.get("outcome", set()):
            unlike.add(f'{name}{{outcome="{labels["outcome"]}"}} is never exported')
    assert sorted(unlike) == []


#: The pages whose ``promql`` blocks give queries to copy.
QUERY_PAGES = [
    REPO / "docs" / "metrics.md",
    REPO / "docs" / "grafana.md",
    REPO / "docs" / "guides" / "alerting.md",
    *sorted((REPO / "docs" / "runbooks").glob("*.md")),
]


def doc_queries() -> list[tuple[str, str]]:
    """(page, query) of each query of the ``promql`` blocks of those pages: the lines between
    comments and blank lines."""
    found = []
    for page in QUERY_PAGES:
        text = page.read_text(encoding="utf-8")
        for _, block in re.findall(r"^( *)```promql\n(.*?)^\1```", text, re.M | re.S):
            for query in re.split(r"\n(?:\s*\n|\s*#.*\n)+", "\n" + textwrap.dedent(block)):
                if query.strip():
                    found.append((page.name, query.strip()))
    return found


def test_every_query_of_the_docs_reads_exported_labels_and_values(
    exposed: dict[str, Exposed],
) -> None:
    """The queries the docs and runbooks give read what laios exports and the rules record."""
    kit, _ = rules_kit(exposed)
    queries = doc_queries()
    assert len(queries) >= 15
    for page, query in queries:
        kit.check(grafana_free(query), page)
    assert kit.problems == []


def opening(page: Path) -> tuple[str, str]:
    """The title of a runbook and its first paragraph, white space made single spaces."""
    title, first = page.read_text(encoding="utf-8").split("\n\n")[:2]
    return title, " ".join(first.split())


def in_words(duration: str) -> str:
    """A Prometheus duration of minutes or hours (``15m``) as the runbooks write it."""
    number, unit = re.fullmatch(r"(\d+)([mh])", duration).groups()
    word = {"m": "minute", "h": "hour"}[unit]
    return f"{number} {word}{'s' if number != '1' else ''}"


def test_every_runbook_opens_with_its_alert_severity_and_wait() -> None:
    """Each alert's runbook is titled with its name and opens with its severity and how long
    it waits (for a burn-rate alert: each pair of windows, after the severity it has)."""
    unlike = []
    for rule in (r for g in RULES["groups"] for r in g["rules"] if "alert" in r):
        title, first = opening(REPO / rule["annotations"]["runbook_url"])
        labels = rule["labels"]
        told = [
            (match.start(), match.group(1))
            for match in re.finditer(r"\*\*(?:Severity: )?(critical|warning)\.?\*\*", first)
        ]
        if "long" in labels:
            windows = f'`long="{labels["long"]}", short="{labels["short"]}"`'
            where = first.find(windows)
            told = [(at, severity) for at, severity in told if at < where] if where >= 0 else []
        elif in_words(rule["for"]) not in first.replace("For ", "for "):
            unlike.append((rule["alert"], rule["for"]))
        if title != f"# {rule['alert']}":
            unlike.append((rule["alert"], title))
        if not told or told[-1][1] != labels["severity"]:
            unlike.append((rule["alert"], labels["severity"], labels.get("long")))
    assert unlike == []


def catalogue() -> dict[str, tuple[str, set[str]]]:
    """docs/metrics.md's catalogue: name → (type, label names)."""
    text = (REPO / "docs" / "metrics.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(laios_\w+)` \| ([^|]+) \|([^|]*)\|", text, re.MULTILINE)
    return {
        name: (kind.split()[0], set(re.findall(r"`(\w+)`", labels))) for name, kind, labels in rows
    }


def test_the_metric_catalogue_is_what_laios_exports(exposed: dict[str, Exposed]) -> None:
    """Each family of the exposition is in docs/metrics.md's catalogue with its type and
    labels (a store's constant labels aside), and the catalogue lists no other."""
    exported = {}
    for name, entry in exposed.items():
        family = re.sub(r"_(bucket|count|sum)$", "", name) if entry.kind != "counter" else name
        labels = set(entry.labels) - {"le", "pool"}
        exported[family] = (entry.kind, exported.get(family, ("", set()))[1] | labels)
    assert catalogue() == exported


def test_the_trace_to_metrics_queries_read_exported_labels(exposed: dict[str, Exposed]) -> None:
    """The Tempo data source's links from a span to its tool's metrics read what laios exports,
    with ``$__tags`` as Grafana fills it in: a matcher on each tag's label."""
    source = yaml.safe_load(
        (REPO / "grafana" / "provisioning" / "datasources" / "tempo.yml").read_text("utf-8")
    )
    (tempo,) = source["datasources"]
    link = tempo["jsonData"]["tracesToMetrics"]
    # ("$$" escapes Grafana's expansion of environment variables in provisioning files.)
    tags = ",".join(f'{tag["value"]}="fetch"' for tag in link["tags"])
    kit = Kit(exposed)
    assert link["queries"]
    for query in link["queries"]:
        kit.check(query["query"].replace("$$__tags", tags), f"Tempo link {query['name']!r}")
    assert kit.problems == []
