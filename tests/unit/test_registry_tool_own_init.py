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


class _Misfiled(BaseTool):
    name = "misfiled"
    description = "Has a category no tool can have."
    category = "bogus"  # type: ignore[assignment]

    def __init__(self) -> None:  # no super().__init__()
        self.client = "client"

    def _execute(self) -> int:
        return 1


class _BadPermission(_Blank):
    name = "bad_permission"
    required_permissions = {"root"}  # type: ignore[assignment]


class _NoDescription(_Blank):
    name = "no_description"
    description = ""


class _NotAModel(_Blank):
    name = "not_a_model"
    input_model = dict  # type: ignore[assignment]


@pytest.mark.parametrize(
    ("tool_class", "error", "attribute"),
    [
        (_Misfiled, ValueError, "category"),
        (_BadPermission, ValueError, "permissions"),
        (_NoDescription, ValueError, "description"),
        (_NotAModel, TypeError, "input_model"),
    ],
    ids=["category", "permission", "description", "input_model"],
)
@pytest.mark.parametrize("as_instance", [False, True], ids=["class", "instance"])
def test_an_attribute_the_constructor_refuses_is_refused(
    tool_class: Any, error: type[Exception], attribute: str, as_instance: bool
) -> None:
    # (registered, such a tool broke repr(tool), list_tools() and get_all_schemas())
    registry = ToolRegistry()
    with pytest.raises(error) as refused:
        registry.register_tool(tool_class() if as_instance else tool_class)
    message = str(refused.value)
    assert repr(tool_class.name) in message
    assert attribute in message
    assert len(registry) == 0
    assert registry.get_all_schemas() == []


def test_a_category_changed_on_a_built_tool_is_refused() -> None:
    class Checked(BaseTool):
        name = "checked"
        description = "Checked when made."

        def _execute(self) -> int:
            return 1

    tool = Checked()
    tool.category = "bogus"  # type: ignore[assignment]
    with pytest.raises(ValueError, match="Tool 'checked': category must be"):
        ToolRegistry().register_tool(tool)


def test_an_unchecked_tool_with_no_permissions_is_described_and_listed() -> None:
    class Loose(_Blank):
        name = "loose"
        category = "data"
        required_permissions = None  # type: ignore[assignment]

    registry = ToolRegistry()
    tool = registry.register_tool(Loose)
    assert registry.get_all_schemas() == [tool.get_schema()]
    assert tool.get_schema()["permissions"] == []
    assert registry.list_tools(category="data") == [tool]
    assert registry.list_tools(permission="shell.execute") == []
    assert repr(tool) == "Loose(name='loose', category='data')"


def test_the_repr_of_an_unchecked_tool_never_raises() -> None:
    assert repr(_Misfiled()) == "_Misfiled(name='misfiled', category='bogus')"
