"""What a team changes to fit the mixin to its deployment: selectors, labels, objectives."""

from __future__ import annotations

import hashlib
import math
import numbers
import re
import sys
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import cast

from laios._numbers import is_numpy_timedelta
from laios._text import MAX_QUOTED_CHARS, quoted, shorten

__all__ = ["MixinConfig"]

_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
#: What :attr:`MixinConfig.availability_objective` and :attr:`MixinConfig.latency_p95_seconds`
#: must be, as their refusals say (``python -m laios.mixin`` says it of the number as typed).
OBJECTIVE_RANGE = "availability_objective must be between 0 and 1 (exclusive)"
LATENCY_RANGE = "latency_p95_seconds must be a positive, finite number of seconds"
#: Labels the ``laios_*`` series carry themselves or Prometheus gives a meaning to (as for a
#: store's constant labels): grouping by one would split the ratios the rules compute.
SERIES_LABELS = frozenset(
    {"tool", "outcome", "le", "error_type", "name", "unit", "version", "quantile"}
)
#: Label names PromQL reads as numbers (``Inf``, ``NaN``, in any case) in a ``by (...)`` or
#: ``on (...)`` list: no rule can group by them.
_NUMBER_WORDS = frozenset({"inf", "nan"})
#: The ``laios_task_errors_total`` series of failures: that counter counts a cancelled task too,
#: as ``error_type="cancelled"``, but a cancellation is the caller's choice, not a failure.
FAILURE_TYPES = 'error_type!="cancelled"'
#: The label on the recorded series and alerts of the rules of a selector, holding the selector
#: (:attr:`MixinConfig.rule_set`): each rule set reads only the series it recorded itself.
RULE_SET_LABEL = "laios_selector"
#: The name of the dashboard's template variable that picks the Prometheus data source; the
#: group labels get variables of their own names.
DATASOURCE_VARIABLE = "datasource"
#: The uid of the dashboard of the default configuration (no selector).
DEFAULT_DASHBOARD_UID = "laios-execution"
#: What Grafana accepts as a dashboard uid.
_DASHBOARD_UID = re.compile(r"[a-zA-Z0-9_-]{1,40}")
#: The escapes PromQL reads in a quoted string besides its quote: Go's, with a Unicode code point
#: that is not a surrogate and an octal byte of at most 255.
_ESCAPE = (
    r"\\(?:[abfnrtv\\]|[0-3][0-7]{2}|x[0-9a-fA-F]{2}"
    r"|u(?![dD][89a-fA-F])[0-9a-fA-F]{4}"
    r"|U(?:0000(?![dD][89a-fA-F])[0-9a-fA-F]{4}|000[1-9a-fA-F][0-9a-fA-F]{4}|0010[0-9a-fA-F]{4}))"
)
#: One PromQL label matcher is a label name, an operator and a quoted string (no line break in
#: a "..." or '...' string; a backslash only as an escape, ``\\.`` for a regex's ``\.``):
#: this is what follows the name.
_OPERATOR = r"=~|!~|!=|="
_QUOTED = rf"\"(?:[^\"\\\n]|{_ESCAPE}|\\\")*\"|'(?:[^'\\\n]|{_ESCAPE}|\\')*'|`[^`]*`"
_MATCHED = rf"\s*(?:{_OPERATOR})\s*(?:{_QUOTED})\s*"
_MATCHER = rf"\s*{_LABEL.pattern}{_MATCHED}"
_SELECTOR = re.compile(rf"^(?:{_MATCHER}(?:,{_MATCHER})*)?$")
#: One matcher of a valid selector: its label name, operator and quoted value captured.
_NAMED_MATCHER = re.compile(rf"\s*({_LABEL.pattern})\s*({_OPERATOR})\s*({_QUOTED})\s*")
#: One escape of a PromQL quoted string, for reading the string's value.
_ONE_ESCAPE = re.compile(_ESCAPE + r"|\\[\"']")
_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
#: What Python's ``re`` says of a regex that Go's RE2, which Prometheus uses, refuses too: other
#: errors may come from syntax only RE2 knows (``\pL``, ``(?i)`` in the middle), never refused.
_REGEX_ERRORS_OF_BOTH = (
    "missing ), unterminated subpattern",
    "unbalanced parenthesis",
    "unterminated character set",
    "nothing to repeat",
    "multiple repeat",
    "bad character range",
    "min repeat greater than max repeat",
)
#: What a rules file (YAML) cannot hold: control characters but tab, CR and NEL, and what is not
#: a character (a lone surrogate, which a byte of an argument that is not UTF-8 becomes).
_UNWRITABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff\ufffe\uffff]")
#: What Grafana replaces in a dashboard's queries with a variable's value: ``$name``,
#: ``${name...}`` and ``[[name]]`` or ``[[name:format]]`` (names of ASCII letters, digits and
#: ``_``). It has no escape; PromQL's ``\x24`` is a ``$`` that Grafana does not see.
_GRAFANA_VARIABLE = re.compile(r"\$\{?[A-Za-z0-9_]+|\[\[[A-Za-z0-9_]+(?::[A-Za-z0-9_]+)?\]\]")
#: A Kubernetes label key: an optional DNS-subdomain prefix and ``/``, then a name of at most 63.
_K8S_KEY = re.compile(
    r"(?:[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
)
#: The longest name (after the prefix and ``/``) of a Kubernetes label key.
_K8S_NAME_MAX = 63
#: The longest prefix (a DNS subdomain, before the ``/``) a Kubernetes label key may have.
_K8S_KEY_PREFIX_MAX = 253
#: What :attr:`MixinConfig.manifest_name` may be: a DNS label (what Kubernetes takes as the
#: name of most objects, and a label value), short enough that a dash and the ten hex digits
#: of :attr:`MixinConfig.selector_id` still fit in 63 characters.
_MANIFEST_NAME = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?")
MANIFEST_NAME_MAX = 52
#: A Kubernetes label value: empty, or at most 63 of these characters.
_K8S_VALUE = re.compile(r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")


@dataclass(frozen=True, slots=True)
class MixinConfig:
    """The settings every generated dashboard, rule and manifest is built from.

    Attributes:
        selector: PromQL label matchers (without braces) that pick the laios targets, added to
            every query, rule and alert: ``'job="orders-api"'`` or
            ``'namespace="shop",job=~"orders-.*"'``. The default picks every target that
            exports ``laios_*`` series. The recording rules also keep the labels it names
            (:attr:`record_labels`), and the recorded series and alerts of a selector's rules
            carry it in a ``laios_selector`` label (:attr:`rule_set`), so that the rules of
            several selectors, and the default ones, can share one Prometheus. Of the labels
            of the ``laios_*`` series themselves, only ``tool`` may be selected on (the
            target and per-process alerts leave it out: no target or gauge has it); nor may
            it name ``laios_selector`` or a label starting with ``__``, which Prometheus
            reserves. A ``=~`` or ``!~`` matcher's regex must compile, as Go's RE2 reads it
            (balanced parentheses and brackets, no repetition of nothing, though an
            assertion such as ``^`` or ``\\b`` may be repeated as RE2 allows, nor the syntax
            only Python's ``re`` has: lookarounds, backreferences, possessive quantifiers,
            ..., nor a group named ``(?<name>...)``, which only a Prometheus built with Go
            1.22 or later reads: write ``(?P<name>...)``); a
            control character but a tab is written as a PromQL escape (``\\x1b``). Nor may it
            hold ``$name``, ``${name}`` or ``[[name]]``, which Grafana would replace in the
            dashboard's queries with a variable's value (it has no escape): write the ``$`` as
            ``\\x24`` (a ``[`` as ``\\x5b``) in a ``"..."`` or ``'...'`` string, the same
            character to Prometheus.
        group_labels: Labels that tell deployments apart and that every recording rule and alert
            keeps (aggregations are ``by`` these plus ``tool``). Labels a target does not have
            are simply empty; the defaults fit Kubernetes and a plain ``job`` scrape alike.
            Each at most once, and none of the labels of the ``laios_*`` series themselves
            (``tool``, ``outcome``, ``error_type``, ``le``, ...), a name starting with ``__``,
            ``datasource`` (the dashboard's data source variable) nor ``inf`` or ``nan`` in any
            case (PromQL reads them as numbers in a ``by (...)`` list; nor may the selector
            name them).
        availability_objective: The share of final task results (after retries) that must not
            fail, for the multiwindow multi-burn-rate SLO alerts: ``0.99`` is 99 %. Any
            real number (a ``Decimal``, a ``Fraction``) is taken as its float, as is
            :attr:`latency_p95_seconds`.
        latency_p95_seconds: The p95 duration of successful tasks, in seconds (positive and
            finite), above which the latency alert fires.
        runbook_url_base: Where the runbooks live; an alert's ``runbook_url`` is this plus the
            alert's name in lower case with dashes and ``.md`` (``laios-tool-error-ratio-high.md``),
            so it ends with ``/`` (or ``=``, ``#``, ``-``): one ending in a letter or digit is
            refused, as the name would run into it.
            The default is the runbooks' path in this repository: point it at where your team
            hosts the documentation.
        dashboard_uid: The uid of the generated Grafana dashboard: 1 to 40 letters, digits,
            ``-`` and ``_`` (what Grafana accepts). ``None`` (the default) derives one from
            the selector (:attr:`resolved_dashboard_uid`): ``laios-execution`` without one, so
            that the dashboards of two selectors imported into one Grafana do not replace
            each other.
        match_labels: ``(key, value)`` pairs the generated ServiceMonitor and PodMonitor select
            on: the labels of your Service (ServiceMonitor) or of your pods (PodMonitor). Each
            a label Kubernetes takes: a key of at most 63 characters after an optional DNS
            subdomain prefix of at most 253 and a ``/``, a value of at most 63; each key once
            (as for :attr:`manifest_labels`).
        manifest_labels: ``(key, value)`` pairs put on the generated ServiceMonitor, PodMonitor
            and PrometheusRule themselves, so that your Prometheus's ``serviceMonitorSelector``,
            ``podMonitorSelector`` and ``ruleSelector`` pick them (kube-prometheus-stack selects
            ``release: <its release name>``).
        manifest_name: The name of the generated ServiceMonitor, PodMonitor and
            PrometheusRule (the PrometheusRule's plus ``-`` and the ten hex digits of
            :attr:`selector_id` with a selector): 1 to 52 lower case letters, digits and
            ``-``, starting and ending with a letter or digit. ``None`` (the default) derives
            it from :attr:`match_labels` (see :func:`laios.mixin.kubernetes.manifest_name`).
    """

    selector: str = ""
    group_labels: tuple[str, ...] = ("cluster", "namespace", "job")
    availability_objective: float = 0.99
    latency_p95_seconds: float = 5.0
    runbook_url_base: str = "docs/runbooks/"
    dashboard_uid: str | None = None
    match_labels: tuple[tuple[str, str], ...] = (("app.kubernetes.io/name", "laios"),)
    manifest_labels: tuple[tuple[str, str], ...] = ()
    manifest_name: str | None = None

    def __post_init__(self) -> None:
        self._check_types()
        if not isinstance(self.group_labels, tuple):
            raise TypeError(
                f"group_labels must be a tuple of label names, got {quoted(self.group_labels)}"
            )
        for label in self.group_labels:
            if not (isinstance(label, str) and _LABEL.fullmatch(label)):
                raise ValueError(f"group_labels: {quoted(label)} is not a Prometheus label name")
            if label == "tool":
                raise ValueError(
                    "group_labels must not contain 'tool' (every aggregation keeps it)"
                )
            if label == RULE_SET_LABEL:
                raise ValueError(
                    f"group_labels must not contain {RULE_SET_LABEL!r}: the rules of a selector "
                    "set it to the selector"
                )
            if label == DATASOURCE_VARIABLE:
                raise ValueError(
                    f"group_labels: {quoted(label)} is the name of the dashboard's data source "
                    "variable, which every panel reads: a variable for the label would "
                    "clash with it"
                )
            if label in SERIES_LABELS or label.startswith("__"):
                raise ValueError(
                    f"group_labels: {quoted(label)} is a label of the laios series themselves or "
                    "one Prometheus reserves; group by labels that tell deployments apart"
                )
            if label.lower() in _NUMBER_WORDS:
                raise ValueError(f"group_labels: {_read_as_number(label)}")
        if len(set(self.group_labels)) != len(self.group_labels):
            raise ValueError(f"group_labels: a label is given twice in {quoted(self.group_labels)}")
        if not 0 < self.availability_objective < 1:
            raise ValueError(f"{OBJECTIVE_RANGE}, got {self.availability_objective!r}")
        if not (self.latency_p95_seconds > 0 and math.isfinite(self.latency_p95_seconds)):
            raise ValueError(f"{LATENCY_RANGE}, got {self.latency_p95_seconds!r}")
        variable = _GRAFANA_VARIABLE.search(self.selector)
        if variable is not None:
            raise ValueError(
                f"selector {quoted(self.selector)} has {variable[0]!r} at position "
                f"{variable.start()}, which Grafana reads as a variable (such as "
                f"${DATASOURCE_VARIABLE}, a group label's or $__rate_interval) and replaces "
                "with its value in every query of the dashboard, so the panels would select "
                "other series than the rules (Grafana has no escape): write the $ as the "
                "PromQL escape \\x24 (a [ as \\x5b) in a \"...\" or '...' string, which "
                "Prometheus reads as the same character"
            )
        outside_strings = re.sub(_QUOTED, "", self.selector)
        if "{" in outside_strings or "}" in outside_strings:
            raise ValueError(
                "selector takes label matchers without braces, e.g. 'job=\"orders-api\"'"
            )
        template = self.selector.find("{{")
        if template >= 0:
            raise ValueError(
                f"selector {quoted(self.selector)} has '{{{{' at position {template}: the alerts "
                f"carry the selector in their {RULE_SET_LABEL} label, which Prometheus reads "
                "as a template, so the label would not be the selector: write a { as the "
                "PromQL escape \\x7b in a \"...\" or '...' string"
            )
        unwritable = _UNWRITABLE.search(self.selector)
        if unwritable is not None:
            raise ValueError(
                f"selector {quoted(self.selector)} has {unwritable[0]!r} at position "
                f"{unwritable.start()}, a control character or a lone surrogate (from bytes "
                "that are not UTF-8) that no rules file can hold: write a control character "
                "as a PromQL escape (\\x1b)"
            )
        if not _SELECTOR.fullmatch(self.selector):
            raise ValueError(
                f"selector {quoted(self.selector)} is not a list of PromQL label matchers such as "
                '\'job="orders-api"\' or \'namespace="shop",job=~"orders-.*"\' (in a quoted '
                "string a backslash starts a PromQL escape: write a regex's \\. as \\\\.)"
            )
        for label, operator, string in self._selector_parts:
            if operator in ("=~", "!~"):
                _check_regex(f"{label}{operator}{string}", _unquoted(string))
        for label in self.selector_labels:
            if label == RULE_SET_LABEL:
                raise ValueError(
                    f"selector {quoted(self.selector)} names {RULE_SET_LABEL!r}, the label the "
                    "rules put on their own recorded series and alerts: the laios series do not "
                    "have it, so no query would match (select targets, a store's constant "
                    "labels, or tools)"
                )
            if label.startswith("__"):
                raise ValueError(
                    f"selector {quoted(self.selector)} names {quoted(label)}: Prometheus "
                    "reserves the labels starting with __ for itself (the metric's name, a "
                    "target's address before relabelling), and the rules name every metric they "
                    "read (select targets, a store's constant labels, or tools)"
                )
            if label.lower() in _NUMBER_WORDS:
                raise ValueError(
                    f"selector {quoted(self.selector)} names {quoted(label)}, which the "
                    f"recording rules keep: {_read_as_number(label)} (select on another label)"
                )
            if label in SERIES_LABELS and label != "tool":
                raise ValueError(
                    f"selector {quoted(self.selector)} names {quoted(label)}, a label of the laios "
                    "series themselves: the rules compute their ratios and quantiles over it, and "
                    "the series without it would match nothing or everything (select targets, a "
                    "store's constant labels, or tools)"
                )
        if not self.runbook_url_base:
            raise ValueError("runbook_url_base must not be empty (the default is 'docs/runbooks/')")
        if "{{" in self.runbook_url_base:
            raise ValueError(
                f"runbook_url_base {quoted(self.runbook_url_base)} has '{{{{': Prometheus reads "
                "annotations as templates and would refuse the alerts (write it as %7B%7B)"
            )
        if not self.runbook_url_base.isprintable() or " " in self.runbook_url_base:
            raise ValueError(
                f"runbook_url_base {quoted(self.runbook_url_base)} is not a URL: it has spaces or "
                "control characters (write a space as %20)"
            )
        if self.runbook_url_base[-1].isalnum():  # (the alert's name would run into it)
            raise ValueError(
                f"runbook_url_base {quoted(self.runbook_url_base)} would make runbook URLs such "
                f"as {_shortened(self.runbook_url_base)}laios-metrics-down.md: end it with '/' "
                f"({_shortened(self.runbook_url_base)}/)"
            )
        if self.dashboard_uid is not None and not (
            isinstance(self.dashboard_uid, str) and _DASHBOARD_UID.fullmatch(self.dashboard_uid)
        ):
            raise ValueError(
                f"dashboard_uid {quoted(self.dashboard_uid)} is not a Grafana dashboard uid: 1 to "
                "40 letters, digits, '-' and '_'"
            )
        if not self.match_labels:
            raise ValueError(
                "match_labels must name at least one label: an empty selector would make the "
                "monitors scrape every Service or pod of their namespace"
            )
        _check_kubernetes_labels("match_labels", self.match_labels)
        _check_kubernetes_labels("manifest_labels", self.manifest_labels)
        if self.manifest_name is not None and not (
            _MANIFEST_NAME.fullmatch(self.manifest_name)
            and len(self.manifest_name) <= MANIFEST_NAME_MAX
        ):
            raise ValueError(
                f"manifest_name {quoted(self.manifest_name)} is not a name the three Kubernetes "
                f"objects can have: 1 to {MANIFEST_NAME_MAX} lower case letters, digits and "
                "'-', starting and ending with a letter or digit (the PrometheusRule's name "
                "adds '-' and ten hex digits with a selector, within Kubernetes' 63)"
            )

    def _check_types(self) -> None:
        """Raise ``TypeError`` naming the field whose value is of the wrong type; take a real
        number (a ``Decimal``, a ``Fraction``) for an objective as its float."""
        texts: dict[str, object] = {
            "selector": self.selector,
            "runbook_url_base": self.runbook_url_base,
        }
        for name in ("dashboard_uid", "manifest_name"):
            if getattr(self, name) is not None:
                texts[name] = getattr(self, name)
        for name, value in texts.items():
            if not isinstance(value, str):
                raise TypeError(f"{name} must be a string, got {quoted(value)}")
        for name in ("availability_objective", "latency_p95_seconds"):
            number: object = getattr(self, name)
            if (
                isinstance(number, bool)
                or is_numpy_timedelta(number)  # (a length of time NumPy calls an integer)
                or not isinstance(number, (numbers.Real, Decimal))
            ):
                raise TypeError(f"{name} must be a number, got {quoted(number)}")
            try:
                as_float = float(number)
            except OverflowError:  # (an int or a Fraction too large for a float)
                as_float = -math.inf if cast(float, number) < 0 else math.inf
            object.__setattr__(self, name, as_float)
        for name in ("match_labels", "manifest_labels"):
            pairs: object = getattr(self, name)
            if not isinstance(pairs, tuple):
                raise TypeError(
                    f"{name} must be a tuple of (key, value) pairs, got {quoted(pairs)}"
                )

    def matchers(self, *more: str) -> str:
        """Return ``{...}`` with the selector and ``more`` matchers, or ``""`` when empty."""
        return braced((self.selector, *more))

    @property
    def _selector_parts(self) -> tuple[tuple[str, str, str], ...]:
        """The selector's matchers, each as its label name, operator and quoted value."""
        # The selector is a valid list of matchers: each match starts where the last ended.
        return tuple(
            (match[1], match[2], match[3]) for match in _NAMED_MATCHER.finditer(self.selector)
        )

    @property
    def selector_matchers(self) -> tuple[str, ...]:
        """The selector's matchers, each without the spaces around it and its operator.

        >>> MixinConfig(selector='namespace = "shop", job=~"orders-.*"').selector_matchers
        ('namespace="shop"', 'job=~"orders-.*"')
        """
        return tuple("".join(parts) for parts in self._selector_parts)

    @property
    def process_selector_matchers(self) -> tuple[str, ...]:
        """The :attr:`selector_matchers` that apply to a process and its target: all but those
        on a label of the ``laios_*`` series themselves (``tool``, ``outcome``, ...), which
        ``up`` and the per-process gauges (``laios_executor_queue_depth``, ...) lack: a
        selector on ``tool`` would leave them nothing to match.

        >>> MixinConfig(selector='job="orders-api",tool=~"fetch|parse"').process_selector_matchers
        ('job="orders-api"',)
        """
        return tuple(
            "".join(parts) for parts in self._selector_parts if parts[0] not in SERIES_LABELS
        )

    def process_matchers(self, *more: str) -> str:
        """:meth:`matchers` for a series without the laios series' labels (``up``, a gauge of
        the executor): the :attr:`process_selector_matchers` and ``more``."""
        return braced((*self.process_selector_matchers, *more))

    @property
    def rule_set(self) -> str:
        """What tells this configuration's recorded series and alerts from those of another
        selector's rules in the same Prometheus: :attr:`selector_matchers` joined by commas,
        ``""`` without a selector. The rules put it in a ``laios_selector`` label.

        >>> MixinConfig(selector='job = "orders-api", team="a"').rule_set
        'job="orders-api",team="a"'
        """
        return ",".join(self.selector_matchers)

    @property
    def resolved_dashboard_uid(self) -> str:
        """The uid of the dashboard: :attr:`dashboard_uid` when set; else ``laios-execution``
        without a selector, and ``laios-execution-`` plus ten hex digits of the SHA-256 of
        the selector's matchers (sorted, one a line, spaces around them left out) with one.

        The same selector always gives the same uid, whatever the spaces or the order of its
        matchers; two selectors give two uids (of at most 40 characters, as Grafana needs).

        >>> MixinConfig().resolved_dashboard_uid
        'laios-execution'
        >>> MixinConfig(selector='job="orders-api"').resolved_dashboard_uid
        'laios-execution-789d1f3cfc'
        """
        if self.dashboard_uid is not None:
            return self.dashboard_uid
        if not self.selector_matchers:
            return DEFAULT_DASHBOARD_UID
        return f"{DEFAULT_DASHBOARD_UID}-{self.selector_id}"

    @property
    def selector_id(self) -> str:
        """Ten hex digits of the SHA-256 of the selector's matchers (sorted, one a line,
        spaces around them left out); ``""`` without a selector. It tells apart what is
        generated for two selectors: the dashboard's uid, the PrometheusRule's name.

        >>> MixinConfig().selector_id
        ''
        >>> MixinConfig(selector='job="orders-api"').selector_id
        '789d1f3cfc'
        """
        if not self.selector_matchers:
            return ""
        digest = hashlib.sha256("\n".join(sorted(self.selector_matchers)).encode("utf-8"))
        return digest.hexdigest()[:10]

    @property
    def selector_labels(self) -> tuple[str, ...]:
        """The label names the selector matches on, each once, in order.

        >>> MixinConfig(selector='namespace="shop",job=~"orders-.*"').selector_labels
        ('namespace', 'job')
        """
        return tuple(dict.fromkeys(label for label, _, _ in self._selector_parts))

    @property
    def record_labels(self) -> tuple[str, ...]:
        """The labels the recording rules keep besides ``tool``: the group labels, then those
        the selector names (but the ``laios_*`` series' own labels).

        Two rule sets generated for two selectors and loaded into one Prometheus write the
        same recording-rule names; keeping the selector's labels keeps their series apart,
        and lets each set's alerts read its own with the selector.

        >>> MixinConfig(selector='service="orders"', group_labels=("job",)).record_labels
        ('job', 'service')
        """
        extra = (label for label in self.selector_labels if label not in SERIES_LABELS)
        return tuple(dict.fromkeys((*self.group_labels, *extra)))

    @property
    def error_budget(self) -> float:
        """The share of results that may fail, ``1 - availability_objective``, subtracted in
        decimal from the objective as written so that it is written as given (``1e-07`` for
        0.9999999, not ``1.000000000583867e-07``; ``1e-13`` for 0.9999999999999, never 0).

        >>> MixinConfig(availability_objective=0.999).error_budget
        0.001
        """
        return float(1 - Decimal(repr(self.availability_objective)))

    @property
    def by(self) -> str:
        """The group labels as a PromQL grouping list: ``cluster, namespace, job``."""
        return ", ".join(self.group_labels)


def as_written(value: float, scale: int = 1) -> str:
    """``value`` times ``scale`` to ten significant digits, as people write it; a share below
    1 that ten digits would round up to a whole (an objective of many nines) with every digit
    it was given instead, never as the whole.

    >>> as_written(0.995, 100), as_written(0.9999999999999, 100), as_written(0.9999999999999)
    ('99.5', '99.99999999999', '0.9999999999999')
    """
    text = f"{value * scale:.10g}"
    if 0 <= value < 1 and float(text) >= scale:
        text = format((Decimal(repr(value)) * scale).normalize(), "f")
    return text


def braced(parts: Iterable[str]) -> str:
    """``{...}`` with the matchers of ``parts`` that are not empty, or ``""`` when none is.

    >>> braced(['job="orders-api"', "", 'tool="fetch"'])
    '{job="orders-api",tool="fetch"}'
    """
    kept = [part for part in parts if part]
    return "{" + ",".join(kept) + "}" if kept else ""


def matcher_parts(matcher: str) -> tuple[str, str, str]:
    """The label name, operator and quoted value of one matcher, as
    :attr:`MixinConfig.selector_matchers` gives them.

    >>> matcher_parts('pool!="batch"')
    ('pool', '!=', '"batch"')
    """
    match = _NAMED_MATCHER.fullmatch(matcher)
    if match is None:
        raise ValueError(f"{quoted(matcher)} is not a PromQL label matcher")
    return match[1], match[2], match[3]


def _unquoted(quoted: str) -> str:
    r"""The value of a PromQL quoted string (valid, as the selector's are), escapes read.

    >>> print(_unquoted(r'"a\\.b"'), _unquoted(r"`a\.b`"), _unquoted(r"'\x41\101\u00e9'"))
    a\.b a\.b AAé
    """
    if quoted[0] == "`":
        return quoted[1:-1]

    def read(match: re.Match[str]) -> str:
        escape = match[0][1:]
        if escape[0] in _SIMPLE_ESCAPES:
            return _SIMPLE_ESCAPES[escape[0]]
        if escape[0] in "xuU":
            return chr(int(escape[1:], 16))
        if escape[0].isdigit():
            return chr(int(escape, 8))
        return escape  # \\, \" or \'

    return _ONE_ESCAPE.sub(read, quoted[1:-1])


def _check_regex(matcher: str, regex: str) -> None:
    """Raise ``ValueError`` when ``regex`` is one Prometheus cannot compile: as far as Python's
    ``re`` can tell (only errors Go's RE2 makes too), and syntax that only Python reads
    (:func:`_python_only_syntax`)."""
    as_python, origin = _as_python_reads(regex)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # (FutureWarning on "[[", which RE2 reads fine)
            re.compile(as_python)
    except RecursionError:  # nested deeper than Python parses; RE2 takes up to 1000 levels
        pass
    except re.error as exc:
        if exc.msg.startswith(_REGEX_ERRORS_OF_BOTH):
            where = "" if exc.pos is None else f" at position {origin[exc.pos]}"
            raise ValueError(
                f"selector: {quoted(matcher)} is not a regular expression Prometheus can compile: "
                f"{exc.msg}{where} of {quoted(regex)} (for a literal character, escape it: "
                'job=~"a\\\\(b")'
            ) from None
    python_only = _python_only_syntax(regex)
    if python_only is not None:
        what, position = python_only
        raise ValueError(
            f"selector: {quoted(matcher)} is not a regular expression Prometheus can compile: "
            f"{what} at position {position} of {quoted(regex)} (Prometheus's regular "
            "expressions are Go's RE2: no lookaround, backreference, possessive quantifier, "
            "atomic group or comment, flags i, m, s and U only; escape a literal character "
            "with a backslash only when it is ASCII punctuation)"
        )


def _shortened(text: str) -> str:
    """``text`` cut to ``MAX_QUOTED_CHARS`` characters, the cut marked with an ellipsis."""
    return shorten(text, MAX_QUOTED_CHARS)


def _read_as_number(label: str) -> str:
    """Why ``label`` (``inf`` or ``nan`` in some case) cannot be grouped by."""
    return (
        f"PromQL reads {quoted(label)} as a number in a by (...) or on (...) list, so no "
        "rule could group by it (Prometheus would refuse the rules: unexpected number)"
    )


#: Escapes Go's RE2 reads (outside a character class), past ASCII punctuation, which it reads
#: as the character itself: octal ``\\0``, hex ``\\x``, control characters, Perl and
#: Unicode classes, and assertions (which are not escapes inside a class).
_RE2_ESCAPES = frozenset("0xafnrtvdDsSwWpP")
_RE2_ASSERTIONS = frozenset("AzbB")
#: What may follow ``(?`` in RE2: a named group (``P<`` and a name of ASCII letters, digits
#: and ``_``, ``>``) or flags (of ``imsU``, at least one after a ``-``) and ``:`` or ``)``.
_RE2_GROUP = re.compile(r"P<[A-Za-z0-9_]+>|[imsU]*(?:-[imsU]+)?[:)]")
#: A group named without the ``P``, ``(?<name>...)``, which RE2 reads only as built with Go
#: 1.22 or later: an older Prometheus refuses it.
_NEWER_RE2_GROUP = re.compile(r"<[A-Za-z0-9_]+>")
#: The POSIX classes RE2 has (in a character class: ``[[:alpha:]]``, ``[[:^digit:]]``).
_RE2_POSIX_CLASS = re.compile(
    r"\[:\^?(?:alnum|alpha|ascii|blank|cntrl|digit|graph|lower|print|punct|space|upper|word"
    r"|xdigit):\]"
)
#: A Unicode class after ``\\p`` or ``\\P``: a one-letter category, or in braces (``^``
#: negating it) a name, of :data:`_RE2_CLASS_NAMES`.
_RE2_UNICODE_CLASS = re.compile(r"[CLMNPSZ]|\{\^?([A-Za-z_]+)\}")
#: The names of Unicode classes RE2 knows: ``Any``, Go's categories and the scripts of Unicode
#: 17 (those of Unicode 14 and later, ``Kawi``, only a Prometheus built with Go 1.21 or later
#: reads; they have no other spelling, so they are taken).
_RE2_CLASS_NAME_LIST = """
Any C Cc Cf Co Cs L Ll Lm Lo Lt Lu M Mc Me Mn N Nd Nl No P Pc Pd Pe Pf Pi Po Ps S Sc Sk Sm So Z
Zl Zp Zs Adlam Ahom Anatolian_Hieroglyphs Arabic Armenian Avestan Balinese Bamum Bassa_Vah Batak
Bengali Beria_Erfe Bhaiksuki Bopomofo Brahmi Braille Buginese Buhid Canadian_Aboriginal Carian
Caucasian_Albanian Chakma Cham Cherokee Chorasmian Common Coptic Cuneiform Cypriot Cypro_Minoan
Cyrillic Deseret Devanagari Dives_Akuru Dogra Duployan Egyptian_Hieroglyphs Elbasan Elymaic
Ethiopic Garay Georgian Glagolitic Gothic Grantha Greek Gujarati Gunjala_Gondi Gurmukhi
Gurung_Khema Han Hangul Hanifi_Rohingya Hanunoo Hatran Hebrew Hiragana Imperial_Aramaic
Inherited Inscriptional_Pahlavi Inscriptional_Parthian Javanese Kaithi Kannada Katakana Kawi
Kayah_Li Kharoshthi Khitan_Small_Script Khmer Khojki Khudawadi Kirat_Rai Lao Latin Lepcha Limbu
Linear_A Linear_B Lisu Lycian Lydian Mahajani Makasar Malayalam Mandaic Manichaean Marchen
Masaram_Gondi Medefaidrin Meetei_Mayek Mende_Kikakui Meroitic_Cursive Meroitic_Hieroglyphs Miao
Modi Mongolian Mro Multani Myanmar Nabataean Nag_Mundari Nandinagari New_Tai_Lue Newa Nko Nushu
Nyiakeng_Puachue_Hmong Ogham Ol_Chiki Ol_Onal Old_Hungarian Old_Italic Old_North_Arabian
Old_Permic Old_Persian Old_Sogdian Old_South_Arabian Old_Turkic Old_Uyghur Oriya Osage Osmanya
Pahawh_Hmong Palmyrene Pau_Cin_Hau Phags_Pa Phoenician Psalter_Pahlavi Rejang Runic Samaritan
Saurashtra Sharada Shavian Siddham Sidetic SignWriting Sinhala Sogdian Sora_Sompeng Soyombo
Sundanese Sunuwar Syloti_Nagri Syriac Tagalog Tagbanwa Tai_Le Tai_Tham Tai_Viet Tai_Yo Takri
Tamil Tangsa Tangut Telugu Thaana Thai Tibetan Tifinagh Tirhuta Todhri Tolong_Siki Toto
Tulu_Tigalari Ugaritic Vai Vithkuqi Wancho Warang_Citi Yezidi Yi Zanabazar_Square
"""
_RE2_CLASS_NAMES = frozenset(_RE2_CLASS_NAME_LIST.split())
#: A counted repetition as RE2 reads it (``{,n}`` is no repetition to RE2: it is literal).
_RE2_REPEAT = re.compile(r"\{([0-9]+)(?:,([0-9]*))?\}")
#: What follows ``\\x`` in RE2: two hex digits, or any number of them in braces.
_RE2_HEX = re.compile(r"[0-9A-Fa-f]{2}|\{[0-9A-Fa-f]+\}")
#: The largest count of a repetition RE2 takes.
_RE2_MAX_REPEAT = 1000


#: The escapes of classes of characters (``\\d``, ``\\pL``, ...): no end of a range.
_CLASS_ESCAPES = frozenset("dDsSwWpP")
#: Flags in RE2's syntax, to be read as Python reads them: ``(?i)``, ``(?sU:``, ``(?i-U:``.
_RE2_FLAGS = re.compile(r"\(\?([imsU]*)(?:-([imsU]+))?([:)])")


def _python_stand_in(regex: str, start: int, *, in_class: bool) -> tuple[str, int] | None:
    """What Python's ``re`` reads as the escape of RE2's at ``start`` means, where Python has
    no such escape and would stop there, before the errors that come after (``\\pL{2}{3}``):
    the text, and where the escape ends; ``None`` for an escape Python reads as RE2 does.

    A Unicode class stands in as ``\\w`` (as the character ``\\x00`` in a character class,
    where it cannot start a range), ``\\x{...}`` as the same code point, ``\\Q...\\E`` as
    its text escaped, and ``\\z`` as Python's ``\\Z``.
    """
    escaped = regex[start + 1 : start + 2]
    if escaped in ("p", "P"):
        named = _RE2_UNICODE_CLASS.match(regex, start + 2)
        if named is None or (named[1] is not None and named[1] not in _RE2_CLASS_NAMES):
            return None
        return ("\\x00" if in_class else "\\w"), named.end()
    if escaped == "x" and regex.startswith("{", start + 2):
        hex_digits = _RE2_HEX.match(regex, start + 2)
        if hex_digits is None or int(hex_digits[0][1:-1], 16) > sys.maxunicode:
            return None
        return f"\\U{int(hex_digits[0][1:-1], 16):08x}", hex_digits.end()
    if escaped == "Q" and not in_class:  # (without its \\E, up to the end, as RE2 reads it)
        stop = regex.find("\\E", start + 2)
        if stop < 0:
            return re.escape(regex[start + 2 :]), len(regex)
        return re.escape(regex[start + 2 : stop]), stop + 2
    if escaped == "z" and not in_class:
        return "(?:\\Z)", start + 2
    return None


def _class_body(regex: str, start: int) -> int:
    """Where the body of the character class opened by the ``[`` at ``start`` begins: past a
    ``^`` that negates it, and past a ``]`` first in it, which is the character."""
    i = start + 1
    if regex.startswith("^", i):
        i += 1
    if regex.startswith("]", i):
        i += 1
    return i


def _as_python_reads(regex: str) -> tuple[str, list[int]]:
    """``regex`` written so that Python's ``re`` reads what is repeated as Go's RE2 does, and
    for each of its characters (and its end) the position in ``regex`` it comes from.

    RE2 repeats an empty-width assertion (``^*``, ``$?``, ``\\b+``) as any other expression,
    where Python says "nothing to repeat": each one outside a character class is put in a
    group of its own, ``(?:^)``, which Python repeats. RE2 reads a ``{`` that does not start a
    counted repetition (``{,2}``, which Python counts) as the character: it is escaped.
    """
    parts: list[str] = []
    origin: list[int] = []

    def put(text: str, position: int) -> None:
        parts.append(text)
        origin.extend([position] * len(text))

    i, end = 0, len(regex)
    in_class = False
    while i < end:
        char = regex[i]
        if char == "\\":
            escape = regex[i : i + 2]
            stand_in = _python_stand_in(regex, i, in_class=in_class)
            if stand_in is not None:
                text, i_after = stand_in
                put(text, i)
            elif not in_class and escape[1:] in _RE2_ASSERTIONS:
                put(f"(?:{escape})", i)
                i_after = i + 2
            else:
                for offset, text in enumerate(escape):
                    put(text, i + offset)
                i_after = i + len(escape)
            # A "-" after a class in a class is the character to RE2 ([\d-a]), a bad range
            # to Python.
            dash = regex[i_after : i_after + 2]
            if in_class and escape[1:] in _CLASS_ESCAPES and dash[:1] == "-" and dash != "-]":
                put("\\-", i_after)
                i_after += 1
            i = i_after
            continue
        if in_class:
            if char == "]":
                in_class = False
            put(char, i)
            i += 1
            continue
        if char == "[":
            in_class = True
            start, i = i, _class_body(regex, i)
            for offset, text in enumerate(regex[start:i]):
                put(text, start + offset)
            continue
        flags = _RE2_FLAGS.match(regex, i) if char == "(" else None
        if flags is not None:
            # Flags for the rest of the regex, (?i), set no operand in RE2: left out, as Python
            # takes them only at the start. In a group's, (?sU:, RE2's U (ungreedy), no flag
            # of Python's, is left out, and u stands in for no flag.
            if flags[3] == ":":
                on, off = flags[1].replace("U", ""), (flags[2] or "").replace("U", "")
                put(f"(?{on or 'u'}{'-' + off if off else ''}:", i)
            i = flags.end()
            continue
        if char in "^$":
            put(f"(?:{char})", i)
        elif char == "{" and _RE2_REPEAT.match(regex, i) is None:
            put("\\{", i)
        else:
            put(char, i)
        i += 1
    origin.append(end)
    return "".join(parts), origin


def _python_only_syntax(regex: str) -> tuple[str, int] | None:
    """What in ``regex`` Go's RE2 refuses though Python's ``re`` may take it, and where: a
    lookaround, backreference, atomic group, comment or flag RE2 lacks; a possessive
    quantifier; an escape RE2 lacks (``\\Z``, ``\\u``, a backslash before a letter or
    non-ASCII character it gives no meaning, a ``\\x`` without two hex digits or past the last
    code point, a Unicode class it lacks); a POSIX class or group name it lacks; a trailing
    backslash; a ``\\Q`` without its ``\\E``; a repeat count over 1000, or repetitions
    nested to over 1000 copies; and, where Python
    fails first on syntax only RE2 has, a bracket or parenthesis left open or closed without
    its opening one.
    ``None`` when there is none of these (RE2 may still refuse it for what Python refuses too).
    """
    i, end = 0, len(regex)
    in_class = False
    opened: list[int] = []  # where the groups open now opened
    # RE2 refuses repetitions nested to more than 1000 copies of what is innermost,
    # ((a{2}){501}): the most copies a repetition makes in each group open now (the
    # outermost first), and the copies of the last thing that a repetition would repeat.
    copies, last = [1], 1
    while i < end:
        char = regex[i]
        if char not in ")*+?" and not (char == "{" and _RE2_REPEAT.match(regex, i)):
            last = 1
        if char == "\\":
            if i + 1 == end:
                return "a trailing backslash", i
            escaped = regex[i + 1]
            if escaped == "Q" and not in_class:  # literal text up to \E
                stop = regex.find("\\E", i + 2)
                if stop < 0:  # (Prometheus puts the regex in ^(?:...)$: its ")$" too)
                    return "a \\Q without its \\E", i
                i = stop + 2
                continue
            if escaped in "1234567" and regex[i + 2 : i + 3] not in tuple("01234567"):
                return f"a backreference \\{escaped}", i
            known = (
                (escaped.isascii() and not escaped.isalnum())
                or escaped in "1234567"
                or escaped in _RE2_ESCAPES
                or (escaped in _RE2_ASSERTIONS and not in_class)
            )
            if not known:
                return f"an escape RE2 does not have (\\{escaped})", i
            if escaped == "x":  # \xHH or \x{H...}
                hex_digits = _RE2_HEX.match(regex, i + 2)
                if hex_digits is None:
                    return "a \\x without two hex digits or {...} of them", i
                if int(hex_digits[0].strip("{}"), 16) > sys.maxunicode:
                    shown = _shortened(hex_digits[0])
                    return f"a \\x{shown} past the last code point, \\x{{10FFFF}}", i
                i = hex_digits.end()
                continue
            if escaped in "pP":  # \pL, \p{Greek}
                named = _RE2_UNICODE_CLASS.match(regex, i + 2)
                if named is None or (named[1] is not None and named[1] not in _RE2_CLASS_NAMES):
                    stop = regex.find("}", i + 2) if regex.startswith("{", i + 2) else i + 2
                    shown = regex[i : stop + 1] if stop >= 0 else regex[i:]
                    return f"a Unicode class RE2 does not have ({_shortened(shown)})", i
                i = named.end()
                continue
            i += 2
            continue
        if in_class:
            if regex.startswith("[:", i):  # a POSIX class, [:alpha:]
                stop = regex.find(":]", i + 2)
                if stop >= 0:
                    if not _RE2_POSIX_CLASS.fullmatch(regex, i, stop + 2):
                        shown = _shortened(regex[i : stop + 2])
                        return f"a POSIX class RE2 does not have ({shown})", i
                    i = stop + 2
                    continue
            if char == "]":
                in_class = False
            elif regex.startswith("-[", i + 1):  # a range ending in "[": no POSIX class
                i += 2
            i += 1
            continue
        if char == "[":
            in_class = True
            i = _class_body(regex, i)
            continue
        if char == "(":
            opened.append(i)
            copies.append(1)
            if regex.startswith("?", i + 1):
                if _NEWER_RE2_GROUP.match(regex, i + 2):
                    return (
                        "a group named as (?<name>...), which only a Prometheus built with "
                        "Go 1.22 or later reads: write it (?P<name>...)",
                        i,
                    )
                if regex.startswith("P<", i + 2) and not _RE2_GROUP.match(regex, i + 2):
                    return (
                        "a group name RE2 does not take (in (?P<name>...), 1 or more ASCII "
                        "letters, digits and _)",
                        i,
                    )
                if not _RE2_GROUP.match(regex, i + 2):
                    return f"a group RE2 does not have ({regex[i : i + 4]}...)", i
                i += 2
                continue
        elif char == ")":
            if not opened:
                return "a ) without its (", i
            opened.pop()
            last = copies.pop()
            copies[-1] = max(copies[-1], last)
        after = None
        if char in "*+?":
            after = i + 1
        elif char == "{":
            repeat = _RE2_REPEAT.match(regex, i)
            if repeat is not None:
                counts = [int(count) for count in repeat.groups() if count]
                if max(counts) > _RE2_MAX_REPEAT:
                    return f"a repeat count over {_RE2_MAX_REPEAT}", i
                # (RE2 counts the most a repetition makes; the least when it has no most)
                most = counts[-1] if repeat[2] != "" else max(counts[0], 1)
                last *= most
                if last > _RE2_MAX_REPEAT:
                    return (
                        f"repetitions nested to make over {_RE2_MAX_REPEAT} copies of what "
                        "is innermost",
                        i,
                    )
                copies[-1] = max(copies[-1], last)
                after = repeat.end()
        if after is not None:
            lazy = after + 1 if regex.startswith("?", after) else after
            if regex.startswith("+", lazy):
                return "a possessive quantifier", lazy
            i = lazy
            continue
        i += 1
    if in_class:
        return "a [ without its ]", end
    if opened:
        return "a ( without its )", opened[-1]
    return None


def _why(key: object) -> str:
    """What makes ``key`` no Kubernetes label key (it is not one)."""
    if isinstance(key, str):
        key_name = key.rpartition("/")[2]
        if len(key_name) > _K8S_NAME_MAX and _K8S_KEY.fullmatch(key[: -len(key_name)] + "n"):
            return (
                f"its name has {len(key_name)} characters, and Kubernetes takes at most "
                f"{_K8S_NAME_MAX}"
            )
    return (
        "a key is an optional prefix of lower case letters, digits, '-' and '.' (a DNS "
        "subdomain) and '/', then a name of 1 to 63 letters, digits, '-', '_' or '.', starting "
        "and ending with a letter or digit"
    )


def _check_kubernetes_labels(name: str, pairs: tuple[tuple[str, str], ...]) -> None:
    """Raise ``ValueError`` unless ``pairs`` are (key, value) Kubernetes labels, keys unique."""
    for pair in pairs:
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise ValueError(f"{name}: expected (key, value) pairs, got {quoted(pair)}")
        key, value = pair
        if not (isinstance(key, str) and _K8S_KEY.fullmatch(key)):
            raise ValueError(f"{name}: {quoted(key)} is not a Kubernetes label key: {_why(key)}")
        prefix, slash, _ = key.rpartition("/")
        if slash and len(prefix) > _K8S_KEY_PREFIX_MAX:
            raise ValueError(
                f"{name}: {quoted(key)} is not a Kubernetes label key: its prefix, before the "
                f"'/', has {len(prefix)} characters, and Kubernetes takes at most "
                f"{_K8S_KEY_PREFIX_MAX} (a DNS subdomain)"
            )
        if not (isinstance(value, str) and _K8S_VALUE.fullmatch(value)):
            raise ValueError(
                f"{name}: {quoted(value)} (for {quoted(key)}) is not a Kubernetes label value: "
                "at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter "
                "or digit"
            )
    seen: set[str] = set()
    for key, _ in pairs:  # (one pass: a config may carry any number of labels)
        if key in seen:
            raise ValueError(f"{name}: the label key {quoted(key)} is given twice")
        seen.add(key)
