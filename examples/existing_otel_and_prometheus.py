"""Hooking the executor into an application's own OpenTelemetry SDK and Prometheus registry.

The application already has a ``TracerProvider`` (here with an in-memory exporter, so that the
script can print what it recorded) and a custom ``prometheus_client.CollectorRegistry``. The
executor is handed both; its task spans nest under the application's request span, checkpoints
and retries become spans too, and the registry carries the ``laios_*`` metrics.

It needs the OpenTelemetry SDK, which the base install leaves out. Run it with::

    pip install "laios[sdk]"
    python examples/existing_otel_and_prometheus.py
"""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry, generate_latest

from laios import Context, Task
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.execution.task_context import current_task
from laios.tools.base import BaseTool
from laios.tools.registry import ToolRegistry

# The application's own telemetry, set up once at start-up.
exporter = InMemorySpanExporter()
provider = TracerProvider(resource=Resource.create({"service.name": "orders-api"}))
provider.add_span_processor(SimpleSpanProcessor(exporter))
tracer = provider.get_tracer("orders-api")
metrics_registry = CollectorRegistry()


class PriceOrder(BaseTool):
    """Prices an order; the database call is the tool's own span."""

    name = "price_order"
    description = "Computes the price of an order."
    attempts = 0

    def _execute(self, **kwargs: Any) -> dict[str, Any]:
        task = current_task()
        with tracer.start_as_current_span("db.select prices"):
            prices = {"apple": 0.5, "pear": 0.75}
        if task is not None:
            task.checkpoint("prices_loaded", {"items": len(prices)})
        if kwargs.get("flaky") and PriceOrder.attempts == 0:
            PriceOrder.attempts += 1
            raise ConnectionError("price cache unavailable")
        total = sum(prices[item] * count for item, count in kwargs["items"].items())
        return {"total": total}


def tree(spans: list[ReadableSpan]) -> list[str]:
    """The spans as an indented tree, parents first."""
    children: dict[int | None, list[ReadableSpan]] = {}
    for span in sorted(spans, key=lambda s: s.start_time or 0):
        parent = span.parent.span_id if span.parent is not None else None
        children.setdefault(parent, []).append(span)
    lines: list[str] = []

    def walk(parent: int | None, depth: int) -> None:
        for span in children.get(parent, []):
            status = span.status.status_code.name
            lines.append(f"{'  ' * depth}{span.name} [{status}]")
            walk(span.context.span_id, depth + 1)

    walk(None, 0)
    return lines


def main() -> None:
    registry = ToolRegistry()
    registry.register_tool(PriceOrder)
    executor = Executor(
        registry,
        store=MetricStore(),  # this component's own numbers…
        tracer_provider=provider,  # …the application's tracer provider…
        prometheus_registry=metrics_registry,  # …and its Prometheus registry
    )
    context = Context(session_id="checkout-42", user_id="ada")
    with tracer.start_as_current_span("POST /orders"):
        first = executor.execute_task(
            Task(
                plan_id="order-1",
                description="price",
                tool_name="price_order",
                parameters={"items": {"apple": 4}},
            ),
            context,
            timeout=5,
        )
        second = executor.execute_with_retry(
            Task(
                plan_id="order-1",
                description="price again",
                tool_name="price_order",
                parameters={"items": {"pear": 2}, "flaky": True},
            ),
            context,
            max_retries=2,
            retry_delay=0.01,
        )
    executor.shutdown()

    print("spans:")
    for line in tree(list(exporter.get_finished_spans())):
        print("  " + line)
    print(f"first: total={first.output['total']} trace_id={first.metadata['trace_id']}")
    print(f"second: total={second.output['total']} retries={second.metadata['retries']}")

    value = metrics_registry.get_sample_value(
        "laios_tasks_total", {"tool": "price_order", "outcome": "success"}
    )
    errors = metrics_registry.get_sample_value(
        "laios_task_errors_total", {"tool": "price_order", "error_type": "ConnectionError"}
    )
    print(f'laios_tasks_total{{tool="price_order",outcome="success"}} = {value}')
    print(f'laios_task_errors_total{{tool="price_order",error_type="ConnectionError"}} = {errors}')
    exposition = generate_latest(metrics_registry).decode()
    print(
        "metric families:",
        sorted(
            {
                line.split()[2]
                for line in exposition.splitlines()
                if line.startswith("# TYPE laios_")
            }
        ),
    )
    provider.shutdown()


if __name__ == "__main__":
    main()
