"""Fixtures of the reliability suite: a kit of controllable tools and isolated executors.

Every test gets its own ``MetricStore``, its own Prometheus ``CollectorRegistry`` and a fresh
registry of kit tools (see ``rel_support``). Teardown releases the kit before shutting
executors down, so a failing test can never leave a tool blocked forever.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from rel_support import Background, Kit, build_registry

from laios.core.types import Context
from laios.execution.executor import Executor
from laios.execution.store import MetricStore


@pytest.fixture
def kit() -> Iterator[Kit]:
    """The test's kit; released at teardown."""
    kit = Kit()
    yield kit
    kit.release.set()


@pytest.fixture
def prom_registry() -> CollectorRegistry:
    """A private Prometheus registry."""
    return CollectorRegistry()


@pytest.fixture
def ctx() -> Context:
    """A plain execution context."""
    return Context(session_id="session-rel", user_id="user-rel")


@pytest.fixture
def new_executor(
    kit: Kit, store: MetricStore, prom_registry: CollectorRegistry
) -> Iterator[Callable[..., Executor]]:
    """Build executors over the kit registry, the test's store and Prometheus registry.

    ``store`` is the private ``MetricStore`` fixture of ``tests/conftest.py``.

    Teardown releases the kit, then shuts every executor down.
    """
    built: list[Executor] = []

    def make(**kwargs: Any) -> Executor:
        kwargs.setdefault("store", store)
        kwargs.setdefault("prometheus_registry", prom_registry)
        registry = kwargs.pop("tool_registry", None) or build_registry(kit)
        executor = Executor(registry, **kwargs)
        built.append(executor)
        return executor

    yield make
    kit.release.set()
    for executor in built:
        executor.shutdown(wait=True)


@pytest.fixture
def background(kit: Kit) -> Iterator[Background]:
    """Run callables on daemon threads; teardown releases the kit and joins them."""
    runner = Background()
    yield runner
    kit.release.set()
    runner.join()
