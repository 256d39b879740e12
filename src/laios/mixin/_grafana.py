"""Plain builders for the Grafana dashboard JSON (schema 39, Grafana 10.3 to 11.x).

Each function returns the dictionary Grafana stores for one part of a dashboard: a query, a
panel of one of the four types the laios dashboard uses, a row, a template variable. No
dashboard content lives here (that is :mod:`laios.mixin.dashboard`); only the shapes Grafana
expects, with the defaults it would fill in itself, so that a dashboard saved again from
Grafana's UI changes as little as possible.

Panels come out without ``id`` and ``gridPos``: :class:`Grid` places them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from laios.mixin.config import DATASOURCE_VARIABLE

__all__ = [
    "PROMETHEUS",
    "Grid",
    "Threshold",
    "color_overrides",
    "datasource_variable",
    "heatmap",
    "query_variable",
    "row",
    "stat",
    "table",
    "target",
    "timeseries",
]

#: Every panel and query reads the Prometheus chosen in the ``datasource`` variable.
PROMETHEUS: dict[str, str] = {"type": "prometheus", "uid": f"${{{DATASOURCE_VARIABLE}}}"}
#: Grafana's grid is 24 columns wide.
COLUMNS = 24


@dataclass(frozen=True, slots=True)
class Threshold:
    """A threshold step: ``color`` from ``value`` upwards (``None``: the base step)."""

    color: str
    value: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The step as Grafana stores it."""
        return {"color": self.color, "value": self.value}


def target(
    expr: str,
    *,
    legend: str = "",
    exemplar: bool = False,
    instant: bool = False,
    fmt: str = "time_series",
) -> dict[str, Any]:
    """A Prometheus query; its ``refId`` is set by the panel that holds it."""
    return {
        "datasource": dict(PROMETHEUS),
        "editorMode": "code",
        "exemplar": exemplar,
        "expr": expr,
        "format": fmt,
        "instant": instant,
        "legendFormat": legend,
        "range": not instant,
    }


def _panel(
    kind: str,
    title: str,
    description: str,
    targets: Sequence[dict[str, Any]],
    defaults: dict[str, Any],
    options: dict[str, Any],
    overrides: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    if not targets:
        raise ValueError(f"panel {title!r} has no query")
    return {
        "datasource": dict(PROMETHEUS),
        "description": description,
        "fieldConfig": {"defaults": defaults, "overrides": list(overrides)},
        "options": options,
        "targets": [
            {**query, "refId": chr(ord("A") + index)} for index, query in enumerate(targets)
        ],
        "title": title,
        "type": kind,
    }


def _thresholds(steps: Sequence[Threshold]) -> dict[str, Any]:
    return {"mode": "absolute", "steps": [step.to_json() for step in steps]}


def color_overrides(colors: dict[str, str]) -> list[dict[str, Any]]:
    """Overrides giving the series named by each key (its legend) a fixed colour."""
    return [
        {
            "matcher": {"id": "byName", "options": name},
            "properties": [{"id": "color", "value": {"fixedColor": color, "mode": "fixed"}}],
        }
        for name, color in colors.items()
    ]


def timeseries(
    title: str,
    description: str,
    unit: str,
    targets: Sequence[dict[str, Any]],
    *,
    stack: bool = False,
    colors: dict[str, str] | None = None,
    decimals: int | None = None,
    max_value: float | None = None,
) -> dict[str, Any]:
    """A time series panel; lines start at 0 and are stacked when ``stack``."""
    defaults: dict[str, Any] = {
        "color": {"mode": "palette-classic"},
        "custom": {
            "axisBorderShow": False,
            "axisPlacement": "auto",
            "drawStyle": "line",
            "fillOpacity": 25 if stack else 10,
            "gradientMode": "none",
            "lineInterpolation": "linear",
            "lineWidth": 1,
            "pointSize": 4,
            "showPoints": "never",
            "spanNulls": False,
            "stacking": {"group": "A", "mode": "normal" if stack else "none"},
            "thresholdsStyle": {"mode": "off"},
        },
        "min": 0,
        "unit": unit,
    }
    if decimals is not None:
        defaults["decimals"] = decimals
    if max_value is not None:
        defaults["max"] = max_value
    options = {
        "legend": {"calcs": [], "displayMode": "list", "placement": "bottom", "showLegend": True},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    return _panel(
        "timeseries", title, description, targets, defaults, options, color_overrides(colors or {})
    )


def stat(
    title: str,
    description: str,
    unit: str,
    query: dict[str, Any],
    *,
    thresholds: Sequence[Threshold] = (Threshold("green"),),
    decimals: int | None = None,
) -> dict[str, Any]:
    """A stat panel showing the last value of one query, coloured by ``thresholds``."""
    defaults: dict[str, Any] = {
        "color": {"mode": "thresholds"},
        "thresholds": _thresholds(thresholds),
        "unit": unit,
    }
    if decimals is not None:
        defaults["decimals"] = decimals
    options = {
        "colorMode": "value",
        "graphMode": "area",
        "justifyMode": "auto",
        "orientation": "auto",
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "showPercentChange": False,
        "textMode": "auto",
        "wideLayout": True,
    }
    return _panel("stat", title, description, [query], defaults, options)


def heatmap(
    title: str,
    description: str,
    query: dict[str, Any],
    *,
    y_unit: str,
    cell_unit: str,
) -> dict[str, Any]:
    """A heatmap of a Prometheus histogram's buckets (``format: heatmap``, not recalculated)."""
    defaults: dict[str, Any] = {
        "custom": {
            "hideFrom": {"legend": False, "tooltip": False, "viz": False},
            "scaleDistribution": {"type": "linear"},
        },
        "unit": cell_unit,
    }
    options = {
        "calculate": False,
        "cellGap": 1,
        "cellValues": {"unit": cell_unit},
        "color": {
            "exponent": 0.5,
            "fill": "dark-orange",
            "mode": "scheme",
            "reverse": False,
            "scale": "exponential",
            "scheme": "Oranges",
            "steps": 64,
        },
        "exemplars": {"color": "rgba(255,0,255,0.7)"},
        "filterValues": {"le": 1e-9},
        "legend": {"show": True},
        "rowsFrame": {"layout": "auto"},
        "showValue": "never",
        "tooltip": {"mode": "single", "showColorScale": False, "yHistogram": True},
        "yAxis": {"axisPlacement": "left", "reverse": False, "unit": y_unit},
    }
    return _panel("heatmap", title, description, [query], defaults, options)


def table(
    title: str,
    description: str,
    unit: str,
    query: dict[str, Any],
    *,
    rename: dict[str, str],
    sort_by: str,
) -> dict[str, Any]:
    """A table of one instant query; ``rename`` names its columns (``Time`` is hidden)."""
    panel = _panel(
        "table",
        title,
        description,
        [query],
        {"custom": {"align": "auto", "cellOptions": {"type": "auto"}}, "unit": unit},
        {
            "cellHeight": "sm",
            "footer": {"countRows": False, "fields": "", "reducer": ["sum"], "show": False},
            "showHeader": True,
            "sortBy": [{"desc": True, "displayName": sort_by}],
        },
    )
    panel["transformations"] = [
        {
            "id": "organize",
            "options": {"excludeByName": {"Time": True}, "renameByName": dict(rename)},
        }
    ]
    return panel


def row(title: str) -> dict[str, Any]:
    """An expanded row: a heading over the panels placed after it."""
    return {"collapsed": False, "panels": [], "title": title, "type": "row"}


def datasource_variable(current_uid: str) -> dict[str, Any]:
    """The ``datasource`` variable: any Prometheus data source, ``current_uid`` first."""
    return {
        "current": {"selected": False, "text": current_uid, "value": current_uid},
        "hide": 0,
        "includeAll": False,
        "label": "Data source",
        "multi": False,
        "name": DATASOURCE_VARIABLE,
        "options": [],
        "query": "prometheus",
        "refresh": 1,
        "regex": "",
        "skipUrlSync": False,
        "type": "datasource",
    }


def query_variable(name: str, label: str, query: str) -> dict[str, Any]:
    """A multi-value query variable with "All" (``.*``), refreshed when the time range changes.

    Its "All" is the regex ``.*`` rather than the list of values found, so ``label=~"$name"``
    also matches series that do not have the label at all.
    """
    return {
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "datasource": dict(PROMETHEUS),
        "definition": query,
        "hide": 0,
        "includeAll": True,
        "label": label,
        "multi": True,
        "name": name,
        "options": [],
        "query": query,
        "refresh": 2,
        "regex": "",
        "skipUrlSync": False,
        "sort": 1,
        "type": "query",
    }


@dataclass
class Grid:
    """Places panels left to right in rows of the 24-column grid, and numbers them."""

    panels: list[dict[str, Any]] = field(default_factory=list)
    _x: int = field(default=0, init=False)
    _y: int = field(default=0, init=False)
    _line_height: int = field(default=0, init=False)

    def row(self, title: str) -> None:
        """Start a new row with a heading."""
        self._newline()
        self._put(row(title), COLUMNS, 1)
        self._newline()

    def add(self, width: int, height: int, *panels: dict[str, Any]) -> None:
        """Place ``panels``, each ``width`` columns wide and ``height`` high."""
        if not 0 < width <= COLUMNS:
            raise ValueError(f"width must be 1 to {COLUMNS}, got {width}")
        for panel in panels:
            if self._x + width > COLUMNS:
                self._newline()
            self._put(panel, width, height)

    def _put(self, panel: dict[str, Any], width: int, height: int) -> None:
        panel["id"] = len(self.panels) + 1
        panel["gridPos"] = {"h": height, "w": width, "x": self._x, "y": self._y}
        self.panels.append(panel)
        self._x += width
        self._line_height = max(self._line_height, height)

    def _newline(self) -> None:
        self._y += self._line_height
        self._x = 0
        self._line_height = 0
