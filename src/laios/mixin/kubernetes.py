"""Prometheus Operator manifests for laios: a ServiceMonitor, a PodMonitor and a PrometheusRule.

Apply the ServiceMonitor **or** the PodMonitor, not both: each makes Prometheus scrape the same
pods, and every series would be stored twice under two ``job`` labels. Both scrape the container
port named ``metrics`` at ``/metrics`` and take the ``job`` label from the scraped object's
``app.kubernetes.io/name`` label (falling back to the Service's name, or to
``<namespace>/<PodMonitor name>``); the operator adds ``namespace``, ``pod`` and ``container``
(and ``service`` for a ServiceMonitor). The PrometheusRule holds exactly the groups of
``rules.yml``. The three are named after the labels they select (:func:`manifest_name`,
``laios-orders-api``), so that several services can apply theirs in one namespace. See
docs/guides/kubernetes.md.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from laios.mixin.config import MixinConfig
from laios.mixin.rules import rule_groups

__all__ = [
    "API_VERSION",
    "METRICS_PATH",
    "PORT_NAME",
    "labels_id",
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
#: A label value that is a name as it is: lower case letters and digits, single dashes between.
_AS_NAME = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
#: The hex digits of :func:`labels_id`.
_ID_DIGITS = 10


def manifest_name(config: MixinConfig) -> str:
    """The name of the three objects: :attr:`~laios.mixin.config.MixinConfig.manifest_name`
    when set; else ``laios`` plus the value of the one label of ``match_labels`` when that
    value is already such a name (lower case letters, digits and single dashes, at most 57
    characters), or just ``laios`` for the value ``laios``; else ``laios``, the values (in
    the order of their keys) in lower case with each run of other characters made a ``-``,
    cut to fit, and ten hex digits of :func:`labels_id`.

    Two services that generate their manifests for their own labels and apply them in one
    namespace must not share a name: the second ``kubectl apply`` would replace the first's
    monitor and rules. Where the values alone would not tell two label sets apart (several
    labels, upper case, ``_`` or ``.``, a value cut), the digest does.

    >>> manifest_name(MixinConfig(match_labels=(("app.kubernetes.io/name", "orders-api"),)))
    'laios-orders-api'
    >>> manifest_name(MixinConfig(match_labels=(("app.kubernetes.io/name", "Orders_API"),)))
    'laios-orders-api-8f57f41597'
    """
    if config.manifest_name is not None:
        return config.manifest_name
    value = _value_as_name(config)
    if value is not None:
        return NAME if value == NAME else f"{NAME}-{value}"
    return _digested(config, labels_id(config))


def rule_name(config: MixinConfig) -> str:
    """The PrometheusRule's name: :func:`manifest_name`, plus the selector's
    :attr:`~laios.mixin.config.MixinConfig.selector_id` when there is a selector (where the
    two do not fit in 63 characters, the values are cut further and :func:`labels_id` is
    added before it).

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
    if len(name) + 1 + len(config.selector_id) <= _MAX_NAME:
        return f"{name}-{config.selector_id}"
    # A derived name too long for the suffix (a set manifest_name always leaves it room).
    return _digested(config, labels_id(config), config.selector_id)


def labels_id(config: MixinConfig) -> str:
    """Ten hex digits of the SHA-256 of ``match_labels`` as ``key=value`` lines, sorted: the
    same labels in any order give the same digest, two label sets two.

    >>> labels_id(MixinConfig())
    'ba698be252'
    """
    lines = sorted(f"{key}={value}" for key, value in config.match_labels)
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()[:_ID_DIGITS]


def _value_as_name(config: MixinConfig) -> str | None:
    """The value of the one match label when ``laios-<value>`` is a name that loses nothing
    of it (names of objects generated before the digest was added keep being these)."""
    if len(config.match_labels) != 1:
        return None
    ((_, value),) = config.match_labels
    if _AS_NAME.fullmatch(value) and len(NAME) + 1 + len(value) <= _MAX_NAME:
        return value
    return None


def _digested(config: MixinConfig, *ids: str) -> str:
    """``laios``, the values of ``match_labels`` (in the order of their keys) as a name cut to
    fit, then ``ids``, joined by dashes."""
    values = "-".join(value for _, value in sorted(config.match_labels))
    slug = re.sub(r"[^a-z0-9]+", "-", values.lower()).strip("-")
    room = _MAX_NAME - len(NAME) - sum(1 + len(part) for part in ids) - 1
    return "-".join(part for part in (NAME, slug[:room].rstrip("-"), *ids) if part)


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
