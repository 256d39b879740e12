"""Async tools that several loop-runner tests register."""

from __future__ import annotations

from typing import Any

from laios.tools.base import AsyncBaseTool


class Quick(AsyncBaseTool):
    """Returns ``"quick"`` at once: the call after a scenario, which must get a slot."""

    name = "quick"
    description = "Returns at once."

    async def _execute_async(self, **kwargs: Any) -> Any:
        return "quick"
