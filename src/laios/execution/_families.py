"""The one table of the ``laios_*`` metric families: name, type, help text and label names.

Both exporters are built from :data:`FAMILIES`: the ``prometheus_client`` collector in
:mod:`laios.execution.prometheus` creates its ``*MetricFamily`` objects from it, and the direct
renderer in :mod:`laios.execution._exposition` writes its ``# HELP``/``# TYPE`` lines (and the
names of its sample lines) from it, once, at import. A family is added, renamed or reworded
here only, and the tests check that both exporters write every family of the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "ABANDONED_THREADS",
    "BUILD",
    "BUSY_WORKERS",
    "CUSTOM",
    "DURATION",
    "ERRORS",
    "FAMILIES",
    "IN_FLIGHT",
    "QUEUE_DEPTH",
    "QUEUE_WAIT",
    "RESULTS",
    "RETRIES",
    "STORE_GAUGES",
    "STORE_GAUGE_FIELDS",
    "TASKS",
    "WORKERS",
    "Family",
    "Kind",
    "StoreGauge",
]

#: The metric types used, named as OpenMetrics and ``prometheus_client`` name them.
Kind = Literal["counter", "gauge", "histogram", "info", "summary"]


@dataclass(frozen=True, slots=True)
class Family:
    """One metric family as both exporters declare it.

    Attributes:
        name: The family name as ``prometheus_client`` takes it and OpenMetrics writes it:
            without the ``_total`` of a counter or the ``_info`` of an info metric, which the
            Prometheus text format appends.
        kind: The metric type.
        help: The ``# HELP`` text, unescaped.
        labels: The label names, in the order the collector passes label values.
    """

    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()


BUILD = Family("laios_build", "info", "Version of the laios package.", ("version",))
TASKS = Family(
    "laios_tasks", "counter", "Tasks finished, by tool and outcome.", ("tool", "outcome")
)
RESULTS = Family(
    "laios_task_results",
    "counter",
    "Results returned to callers, by tool and final outcome (an execute_with_retry call counts "
    "once, after its retries).",
    ("tool", "outcome"),
)
DURATION = Family(
    "laios_task_duration_seconds",
    "histogram",
    "Time from a task's start to its outcome, in seconds.",
    ("tool", "outcome"),
)
QUEUE_WAIT = Family(
    "laios_task_queue_wait_seconds",
    "histogram",
    "Time a task waited between submission and start, in seconds.",
    ("tool",),
)
RETRIES = Family(
    "laios_task_retries",
    "counter",
    "Retries of tasks, by tool and the error type of the attempt retried.",
    ("tool", "error_type"),
)
ERRORS = Family(
    "laios_task_errors",
    "counter",
    "Tasks that did not succeed (error, timeout, cancelled, rejected), by tool and error type.",
    ("tool", "error_type"),
)
IN_FLIGHT = Family("laios_tasks_in_flight", "gauge", "Tasks whose tool is running now.", ("tool",))
WORKERS = Family("laios_executor_workers", "gauge", "Worker threads of the executors' pools.")
BUSY_WORKERS = Family(
    "laios_executor_busy_workers",
    "gauge",
    "Worker threads (or processes) of the executors' pools running a tool now.",
)
QUEUE_DEPTH = Family(
    "laios_executor_queue_depth", "gauge", "Tasks submitted and waiting for a worker."
)
ABANDONED_THREADS = Family(
    "laios_executor_abandoned_threads",
    "gauge",
    "Timed-out tools whose threads have not returned yet, and async tools left running.",
)
CUSTOM = Family(
    "laios_custom_metric",
    "summary",
    "Values recorded with PerformanceMonitor.record_metric: count and sum per name and unit.",
    ("name", "unit"),
)

#: Every family, in the order both exporters write them.
FAMILIES: tuple[Family, ...] = (
    BUILD,
    TASKS,
    RESULTS,
    DURATION,
    QUEUE_WAIT,
    RETRIES,
    ERRORS,
    IN_FLIGHT,
    WORKERS,
    BUSY_WORKERS,
    QUEUE_DEPTH,
    ABANDONED_THREADS,
    CUSTOM,
)


@dataclass(frozen=True, slots=True)
class StoreGauge:
    """A gauge of a store as a whole (no ``tool`` label), as every view shows it.

    Attributes:
        family: Its Prometheus family.
        field: The field of ``StoreAggregates`` and ``ExportedTotals`` that holds its value
            (summed over stores and over processes; 0 once they are gone).
        instrument: The name of its OpenTelemetry instrument (an asynchronous up-down counter).
        unit: The instrument's unit.
        description: The instrument's description.
    """

    family: Family
    field: str
    instrument: str
    unit: str
    description: str


#: The gauges of a store as a whole, in the order of :data:`FAMILIES`. Every view is built from
#: this table: the collector and the text renderer write a family per entry, the OpenTelemetry
#: bridge observes an instrument per entry, the totals (of stores, of processes) add up each
#: ``field``, and a gone store or process leaves each at 0. So a gauge is added here (with its
#: field on ``StoreAggregates`` and ``ExportedTotals``, and the store setting it). Exported only
#: while a store with their labels lives.
STORE_GAUGES: tuple[StoreGauge, ...] = (
    StoreGauge(
        WORKERS, "workers", "laios.executor.worker.count", "{worker}", "Workers of the runners."
    ),
    StoreGauge(
        BUSY_WORKERS,
        "busy_workers",
        "laios.executor.busy_worker.count",
        "{worker}",
        "Workers of the runners running a tool now.",
    ),
    StoreGauge(
        QUEUE_DEPTH,
        "queue_depth",
        "laios.executor.queue.depth",
        "{task}",
        "Tasks submitted and waiting to start.",
    ),
    StoreGauge(
        ABANDONED_THREADS,
        "abandoned_threads",
        "laios.executor.abandoned_thread.count",
        "{thread}",
        "Timed-out tools whose threads have not returned yet, and async tools left running.",
    ),
)

#: The fields of :data:`STORE_GAUGES`, in its order.
STORE_GAUGE_FIELDS: tuple[str, ...] = tuple(gauge.field for gauge in STORE_GAUGES)
