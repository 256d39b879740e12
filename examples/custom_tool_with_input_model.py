"""A tool that declares and validates its parameters with a Pydantic input model.

Shows a ``ToolInput`` subclass with types, defaults and constraints, a ``_validate`` hook, a
tool that reports a failure with ``ToolOutput(success=False)``, the schema a planner would read,
and what the executor returns for valid and invalid parameters.

Run it with::

    python examples/custom_tool_with_input_model.py
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ConfigDict, Field

from laios import Context, Task
from laios.core.types import Permission
from laios.execution.executor import Executor
from laios.tools.base import BaseTool, ToolCategory, ToolInput, ToolOutput
from laios.tools.registry import ToolRegistry

INVENTORY = {"apple": 12, "pear": 0, "plum": 40}


class ReserveInput(ToolInput):
    """Parameters of the ``reserve_stock`` tool."""

    model_config = ConfigDict(extra="forbid")  # a misspelt parameter is an error, not ignored

    item: str = Field(description="What to reserve")
    quantity: int = Field(1, ge=1, le=100, description="How many (1-100)")
    note: str | None = Field(None, max_length=80, description="Free text for the warehouse")


class ReserveStock(BaseTool):
    """Reserves items from the inventory."""

    name = "reserve_stock"
    description = "Reserves items from the warehouse inventory."
    category = ToolCategory.DATA
    required_permissions = {Permission.FILESYSTEM_WRITE}
    input_model = ReserveInput

    def _validate(self, input_data: ReserveInput) -> None:
        if input_data.item not in INVENTORY:
            raise KeyError(f"unknown item {input_data.item!r}")

    def _execute(self, input_data: ReserveInput) -> ToolOutput | dict[str, object]:
        available = INVENTORY[input_data.item]
        if available < input_data.quantity:
            return ToolOutput(
                success=False,
                error=f"only {available} {input_data.item}(s) left",
                metadata={"error_type": "out_of_stock", "available": available},
            )
        INVENTORY[input_data.item] = available - input_data.quantity
        return {
            "item": input_data.item,
            "reserved": input_data.quantity,
            "left": available - input_data.quantity,
        }


def main() -> None:
    registry = ToolRegistry()
    tool = registry.register_tool(ReserveStock)
    print("schema:", json.dumps(tool.get_schema()["parameters"][1], sort_keys=True))

    context = Context(session_id="shop-1", user_id="clerk")
    cases: list[dict[str, Any]] = [
        {"item": "apple", "quantity": 5},
        {"item": "apple", "quantity": "3"},  # "3" is coerced to 3 by the model
        {"item": "apple", "quantity": 500},  # violates le=100
        {"item": "apple", "qty": 2},  # extra="forbid"
        {"item": "kiwi"},  # refused by _validate
        {"item": "pear"},  # the tool reports a failure itself
    ]
    with Executor(registry) as executor:
        for params in cases:
            task = Task(
                plan_id="order-7",
                description="reserve",
                tool_name="reserve_stock",
                parameters=params,
            )
            result = executor.execute_task(task, context)
            if result.success:
                print(f"{params} -> {result.output}")
            else:
                summary = " / ".join(line.strip() for line in (result.error or "").splitlines()[:3])
                print(f"{params} -> {result.metadata['error_type']}: {summary}")
    print("inventory now:", INVENTORY)


if __name__ == "__main__":
    main()
