"""A tool's ``required_permissions`` given as ``None`` is read as none; a permission or a
category that is not one is refused with a message naming the tool and the valid values."""

from __future__ import annotations

from typing import Any

import pytest
from odd_values import OddText, Unusable

from laios.tools.base import BaseTool, create_simple_tool


def _tool_class(name: str, **declared: Any) -> type[BaseTool]:
    """A tool class named ``name`` declaring the class attributes ``declared``."""

    class Declares(BaseTool):
        description = "Declares its permissions and category."

        def _execute(self, **kwargs: Any) -> Any:
            return kwargs

    Declares.name = name
    for attribute, value in declared.items():
        setattr(Declares, attribute, value)
    return Declares


def test_no_permissions_given_as_none_is_no_permission() -> None:
    """``required_permissions = None`` is read as none, as ``permissions=None`` is."""
    tool = _tool_class("declares", required_permissions=None)()
    assert tool.required_permissions == set()
    assert tool.get_schema()["permissions"] == []


@pytest.mark.parametrize("permissions", [{"shell.exec"}, 5])
def test_a_value_that_is_not_a_permission_names_the_tool_and_the_permissions(
    permissions: Any,
) -> None:
    """A misspelt permission, or a value that is no set of them, is a ``ValueError`` naming the
    tool and listing the permissions."""
    with pytest.raises(ValueError, match=r"Tool 'declares'.*shell\.execute") as raised:
        _tool_class("declares", required_permissions=permissions)()
    assert "filesystem.read" in str(raised.value)
    with pytest.raises(ValueError, match=r"Tool 'declares'.*shell\.execute"):
        create_simple_tool("declares", "Declares.", lambda: 1, permissions=permissions)


@pytest.mark.parametrize("category", [None, "DATA", "databases"])
def test_a_category_that_is_not_one_names_the_tool_and_the_categories(category: Any) -> None:
    """A category that is not a ``ToolCategory`` value is a ``ValueError`` naming the tool and
    listing the categories."""
    with pytest.raises(ValueError, match=r"Tool 'categorised'.*filesystem.*custom"):
        _tool_class("categorised", category=category)()
    with pytest.raises(ValueError, match=r"Tool 'categorised'.*filesystem.*custom"):
        create_simple_tool("categorised", "Declares.", lambda: 1, category=category)


@pytest.mark.parametrize("kind", ["unusable item", "bare odd string"])
def test_permissions_whose_own_methods_raise_are_refused_naming_the_tool(kind: str) -> None:
    """A permission whose hash raised, or a single permission given bare whose ``repr``
    raised, let that ``RuntimeError`` out of the tool's constructor and ``create_simple_tool``.
    They are refused with the ``ValueError`` naming the tool and listing the permissions."""
    permissions: Any = [Unusable()] if kind == "unusable item" else OddText("shell.execute")
    with pytest.raises(ValueError, match=r"Tool 'declares'.*permission") as raised:
        _tool_class("declares", required_permissions=permissions)()
    assert "no " not in str(raised.value)
    with pytest.raises(ValueError, match=r"Tool 'declares'.*permission"):
        create_simple_tool("declares", "Declares.", lambda: 1, permissions=permissions)


def test_a_permission_of_a_string_class_of_ones_own_is_read_as_its_text() -> None:
    """A permission of a ``str`` subclass whose hash raises is taken by its text."""
    tool = _tool_class("declares", required_permissions=[OddText("shell.execute")])()
    assert tool.get_schema()["permissions"] == ["shell.execute"]
    simple = create_simple_tool("d", "D.", lambda: 1, permissions=[OddText("shell.execute")])
    assert simple.get_schema()["permissions"] == ["shell.execute"]
