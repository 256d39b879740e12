"""Prometheus Operator manifests for laios: a ServiceMonitor, a PodMonitor and a PrometheusRule.

Apply the ServiceMonitor **or** the PodMonitor, not both: each makes Prometheus scrape the same
pods, and every series would be stored twice under two ``job`` labels. Both scrape the container
port named ``metrics`` at ``/metrics`` and take the ``job`` label from the scraped object's
``app.kubernetes.io/name`` label (falling back to the Service's name, or to
``<namespace>/<PodMonitor name>``); the operator adds ``namespace``, ``pod`` and ``container``
(and ``service`` for a ServiceMonitor). The PrometheusRule holds exactly the groups of
``rules.yml``. The three are named ``laios``, plus the values of the labels they select
(``laios-orders-api``), so that several services can apply theirs in one namespace. See
docs/guides/kubernetes.md.
"""

from __future__ import annotations

import re
from typing import Any

from laios.mixin.config import MixinConfig
from laios.mixin.rules import rule_groups

__all__ = [
    "API_VERSION",
    "METRICS_PATH",
    "PORT_NAME",
    "manifest_name",
    "manifests",
    "pod_monitor",
    "prometheus_rule",
    "rule_name",
    "service_monitor",
]

#: The Prometheus Operator's API group and version of all three kinds.
API_VERSION = "monitoring.coreos.com/v1"
#: The name the scraped port must have: the Service's port for a ServiceMonitor, the
#: container's port for a PodMonitor.
PORT_NAME = "metrics"
#: The scraped path: what laios.execution.server serves.
METRICS_PATH = "/metrics"
#: Where the ``job`` label comes from (the recommended Kubernetes label for an application name).
JOB_LABEL = "app.kubernetes.io/name"
#: The name of the three objects for the default ``match_labels``; others add their values.
NAME = "laios"
#: The longest name a Kubernetes object may have and still be a label value (63).
_MAX_NAME = 63


def manifest_name(config: MixinConfig) -> str:
    """The name of the three objects: ``laios``, plus the values of ``match_labels``.

    Two services that generate their manifests for their own labels and apply them in one
    namespace must not share a name: the second ``kubectl apply`` would replace the first's
    monitor and rules.

    >>> manifest_name(MixinConfig(match_labels=(("app.kubernetes.io/name", "orders-api"),)))
    'laios-orders-api'
    """
    values = "-".join(value for _, value in config.match_labels)
    slug = re.sub(r"[^a-z0-9]+", "-", values.lower()).strip("-")
    if slug in ("", NAME):
        return NAME
    return f"{NAME}-{slug}"[:_MAX_NAME].rstrip("-")


def rule_name(config: MixinConfig) -> str:
    """The PrometheusRule's name: :func:`manifest_name`, plus the selector's
    :attr:`~laios.mixin.config.MixinConfig.selector_id` when there is a selector.

    Two rule sets generated for one service's labels with two selectors (a pool each) are
    two sets of rules and must not replace each other; their monitors, which select the same
    Services or pods, are one object.

    >>> rule_name(MixinConfig(match_labels=(("app.kubernetes.io/name", "orders-api"),),
    ...                       selector='pool="search"'))
    'laios-orders-api-49ee7e9b90'
    """
    name = manifest_name(config)
    if not config.selector_id:
        return name
    suffix = f"-{config.selector_id}"
    return name[: _MAX_NAME - len(suffix)].rstrip("-") + suffix


def _metadata(config: MixinConfig, name: str | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": manifest_name(config) if name is None else name}
    if config.manifest_labels:
        metadata["labels"] = dict(config.manifest_labels)
    return metadata


def _endpoint() -> dict[str, Any]:
    return {"port": PORT_NAME, "path": METRICS_PATH, "scheme": "http"}


def service_monitor(config: MixinConfig) -> dict[str, Any]:
    """A ServiceMonitor scraping the port ``metrics`` of the Services with ``match_labels``."""
    return {
        "apiVersion": API_VERSION,
        "kind": "ServiceMonitor",
        "metadata": _metadata(config),
        "spec": {
            "jobLabel": JOB_LABEL,
            "selector": {"matchLabels": dict(config.match_labels)},
            "endpoints": [_endpoint()],
        },
    }


def pod_monitor(config: MixinConfig) -> dict[str, Any]:
    """A PodMonitor scraping the container port ``metrics`` of the pods with ``match_labels``."""
    return {
        "apiVersion": API_VERSION,
        "kind": "PodMonitor",
        "metadata": _metadata(config),
        "spec": {
            "jobLabel": JOB_LABEL,
            "selector": {"matchLabels": dict(config.match_labels)},
            "podMetricsEndpoints": [_endpoint()],
        },
    }


def prometheus_rule(config: MixinConfig) -> dict[str, Any]:
    """A PrometheusRule whose ``spec.groups`` are :func:`laios.mixin.rules.rule_groups`."""
    return {
        "apiVersion": API_VERSION,
        "kind": "PrometheusRule",
        "metadata": _metadata(config, rule_name(config)),
        "spec": {"groups": rule_groups(config)},
    }


def manifests(config: MixinConfig) -> dict[str, dict[str, Any]]:
    """The manifests by file name under ``deploy/kubernetes/``."""
    return {
        "servicemonitor.yaml": service_monitor(config),
        "podmonitor.yaml": pod_monitor(config),
        "prometheusrule.yaml": prometheus_rule(config),
    }
