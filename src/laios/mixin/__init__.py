"""Dashboards, recording rules, alerts and Kubernetes manifests for laios, generated from Python.

In the style of the monitoring mixins: the committed files under ``grafana/`` and
``deploy/kubernetes/`` are this package's output for the default :class:`MixinConfig`, and a team
regenerates them for its own labels with ``python -m laios.mixin`` (see ``--help``).
"""

from laios.mixin.config import MixinConfig

__all__ = ["MixinConfig"]
