"""A tool class whose own ``__init__`` skips ``super().__init__()`` is not checked when it is
made, but the registry still checks its name: one whose ``name`` property raises is refused
with the ``TypeError`` naming the class and the attribute that a checked tool gets, not the
property's bare exception; a blank name is refused whether an instance or the class is given."""

from __future__ import annotations

from typing import Any

import pytest

from laios.tools.base import BaseTool
from laios.tools.registry import ToolRegistry


class _Unsettled(BaseTool):
    description = "Has no name it can tell."

    def __init__(self) -> None:  # no super().__init__()
        self.client = "client"

    @property
    def name(self) -> str:  # type: ignore[override]
        raise RuntimeError("settings not loaded")

    def _execute(self) -> int:
        return 1


class _Blank(BaseTool):
    name = "  "
    description = "Has a blank name."

    def __init__(self) -> None:  # no super().__init__()
        self.client = "client"

    def _execute(self) -> int:
        return 1


@pytest.mark.parametrize("given", [_Unsettled(), _Unsettled], ids=["instance", "class"])
@pytest.mark.parametrize("many", [False, True], ids=["register_tool", "register_tools"])
def test_a_raising_name_is_refused_naming_the_class(given: Any, many: bool) -> None:
    registry = ToolRegistry()
    register: Any = registry.register_tools if many else registry.register_tool
    with pytest.raises(TypeError) as refused:
        register([given] if many else given)
    message = str(refused.value)
    assert "Tool class _Unsettled" in message
    assert "reading its 'name' raised RuntimeError: settings not loaded" in message
    assert isinstance(refused.value.__cause__, RuntimeError)
    assert len(registry) == 0


@pytest.mark.parametrize("given", [_Blank(), _Blank], ids=["instance", "class"])
def test_a_blank_name_is_refused(given: Any) -> None:
    registry = ToolRegistry()
    with pytest.raises(ValueError, match="non-blank 'name'"):
        registry.register_tool(given)
    assert len(registry) == 0
