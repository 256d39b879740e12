"""A service's own code against laios's public API, as the docs write it.

tests/unit/test_user_typing.py type-checks this file with ``mypy --strict`` (as a user's module
importing the installed package) and runs :func:`main`, so every case is real, working code.
Each block below is a documented usage that the shipped annotations once rejected.
"""

from __future__ import annotations

from pydantic import Field

from laios import Context, Task
from laios.execution.executor import Executor
from laios.execution.store import MetricStore
from laios.tools.base import BaseTool, ToolInput, ToolOutput
from laios.tools.registry import ToolRegistry


class ReserveInput(ToolInput):
    """Parameters of the ``reserve`` tool."""

    item: str = Field(description="What to reserve")
    quantity: int = Field(1, ge=1)


class Reserve(BaseTool):
    """An input model, and a ``_validate`` hook that takes it (docs/reference/tools.md)."""

    name = "reserve"
    description = "Reserves items."
    input_model = ReserveInput

    def _validate(self, input_data: ReserveInput) -> None:
        if input_data.item == "kiwi":
            raise KeyError(f"unknown item {input_data.item!r}")

    def _execute(self, input_data: ReserveInput) -> ToolOutput:
        return ToolOutput(success=True, data=f"{input_data.quantity} {input_data.item}")


def main() -> list[str]:
    """Run every tool above once through an executor; return what each run said."""
    registry = ToolRegistry()
    registry.register_tools([Reserve])
    context = Context(session_id="s", user_id="u")
    said: list[str] = []
    with Executor(registry, store=MetricStore(), register_prometheus=False) as executor:
        runs: list[tuple[str, dict[str, object]]] = [
            ("reserve", {"item": "apple", "quantity": 2}),
            ("reserve", {"item": "kiwi"}),
        ]
        for tool_name, parameters in runs:
            task = Task(plan_id="p", description="d", tool_name=tool_name, parameters=parameters)
            result = executor.execute_task(task, context)
            said.append(str(result.output) if result.success else f"failed: {result.error}")
    return said


if __name__ == "__main__":
    print(main())
