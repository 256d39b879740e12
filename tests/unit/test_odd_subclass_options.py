"""Options given as subclasses of ``int``, ``float`` or ``str`` whose comparisons or hash say
nothing about their value are judged by their value, not by what their ``__eq__`` answers."""

from __future__ import annotations

import pytest

from laios.execution.executor import Executor
from laios.execution.monitor import ExecutionMonitor
from laios.execution.store import MetricStore
from laios.tools.registry import ToolRegistry


class _EqualsAnything(int):
    """A whole number that claims to equal anything (and cannot be hashed)."""

    def __eq__(self, other: object) -> bool:
        return True

    def __ne__(self, other: object) -> bool:
        return False

    __hash__ = None  # type: ignore[assignment]


@pytest.mark.parametrize("option", ["enable_monitoring", "register_prometheus"])
def test_a_whole_number_other_than_0_or_1_is_refused_as_a_switch_whatever_its_eq_says(
    option: str,
) -> None:
    """Executor(enable_monitoring=<an int of 4 equal to anything>) is refused as 4 is, instead
    of passing for 0 or 1 because it claims to equal them."""
    with pytest.raises(TypeError, match=rf"^{option} must be True or False, got .*4"):
        Executor(ToolRegistry(), store=MetricStore(), **{option: _EqualsAnything(4)})


def test_a_switch_of_0_or_1_of_an_odd_int_class_is_taken_by_its_value() -> None:
    """0 and 1 of such a class are still taken, as the booleans they say."""
    with Executor(
        ToolRegistry(),
        store=MetricStore(),
        enable_monitoring=_EqualsAnything(0),
        register_prometheus=_EqualsAnything(0),
    ) as executor:
        assert executor.enable_monitoring is False


def test_complete_task_refuses_an_odd_int_success_of_2() -> None:
    """ExecutionMonitor.complete_task(success=<2 equal to anything>) is refused as 2 is."""
    from laios.core.types import Task

    monitor = ExecutionMonitor()
    task = Task(plan_id="p", description="d", tool_name="t")
    monitor.start_task(task)
    with pytest.raises(TypeError, match="success must be True or False"):
        monitor.complete_task(task, success=_EqualsAnything(2))  # type: ignore[arg-type]
