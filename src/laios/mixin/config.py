"""What a team changes to fit the mixin to its deployment: selectors, labels, objectives."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["MixinConfig"]

_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


@dataclass(frozen=True, slots=True)
class MixinConfig:
    """The settings every generated dashboard, rule and manifest is built from.

    Attributes:
        selector: PromQL label matchers (without braces) that pick the laios targets, added to
            every query, rule and alert: ``'job="orders-api"'`` or
            ``'namespace="shop",job=~"orders-.*"'``. The default picks every target that
            exports ``laios_*`` series.
        group_labels: Labels that tell deployments apart and that every recording rule and alert
            keeps (aggregations are ``by`` these plus ``tool``). Labels a target does not have
            are simply empty; the defaults fit Kubernetes and a plain ``job`` scrape alike.
        availability_objective: The share of final task results (after retries) that must not
            fail, for the multiwindow multi-burn-rate SLO alerts: ``0.99`` is 99 %.
        latency_p95_seconds: The p95 duration of successful tasks above which the latency
            alert fires.
        runbook_url_base: Where the runbooks live; an alert's ``runbook_url`` is this plus the
            alert's name in lower case with dashes and ``.md`` (``laios-tool-error-ratio-high.md``).
            The default is the runbooks' path in this repository: point it at where your team
            hosts the documentation.
        dashboard_uid: The uid of the generated Grafana dashboard.
    """

    selector: str = ""
    group_labels: tuple[str, ...] = ("cluster", "namespace", "job")
    availability_objective: float = 0.99
    latency_p95_seconds: float = 5.0
    runbook_url_base: str = "docs/runbooks/"
    dashboard_uid: str = "laios-execution"

    def __post_init__(self) -> None:
        for label in self.group_labels:
            if not _LABEL.match(label):
                raise ValueError(f"group_labels: {label!r} is not a Prometheus label name")
        if "tool" in self.group_labels:
            raise ValueError("group_labels must not contain 'tool' (every aggregation keeps it)")
        if not 0 < self.availability_objective < 1:
            raise ValueError(
                "availability_objective must be between 0 and 1 (exclusive), "
                f"got {self.availability_objective!r}"
            )
        if not self.latency_p95_seconds > 0:
            raise ValueError(
                f"latency_p95_seconds must be positive, got {self.latency_p95_seconds!r}"
            )
        if "{" in self.selector or "}" in self.selector:
            raise ValueError(
                "selector takes label matchers without braces, e.g. 'job=\"orders-api\"'"
            )

    def matchers(self, *more: str) -> str:
        """Return ``{...}`` with the selector and ``more`` matchers, or ``""`` when empty."""
        parts = [part for part in (self.selector, *more) if part]
        return "{" + ",".join(parts) + "}" if parts else ""

    @property
    def by(self) -> str:
        """The group labels as a PromQL grouping list: ``cluster, namespace, job``."""
        return ", ".join(self.group_labels)
