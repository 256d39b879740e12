"""A tool's name is the registry key, the ``tool`` label of metrics, part of span names and of
log lines: one that cannot be shown on one line as it is is refused when the tool is made or
registered, saying which character is wrong and where."""

from __future__ import annotations

import re
from typing import Any

import pytest

from laios.tools.base import BaseTool, create_simple_tool
from laios.tools.registry import ToolRegistry


def _tool_class(tool_name: str) -> type[BaseTool]:
    class Named(BaseTool):
        name = tool_name
        description = "Has a name."

        def _execute(self, **kwargs: Any) -> int:
            return 1

    return Named


@pytest.mark.parametrize(
    ("bad", "said"),
    [
        ("read\nfile", "(U+000A) at position 4"),
        ("read\tfile", "(U+0009) at position 4"),
        ("bell\x07", "(U+0007) at position 4"),
        ("del\x7f", "(U+007F) at position 3"),
        ("next\x85line", "(U+0085) at position 4"),
        ("line\u2028sep", "(U+2028) at position 4"),
        ("rtl\u202egnp.exe", "(U+202E) at position 3"),
        ("zero\u200bwidth", "(U+200B) at position 4"),
        (" padded", "(U+0020) at position 0"),
        ("padded ", "(U+0020) at position 6"),
        ("nbsp\u00a0", "(U+00A0) at position 4"),
    ],
)
def test_a_name_with_a_control_character_or_outer_space_is_refused(bad: str, said: str) -> None:
    """The class, ``create_simple_tool`` and the registry refuse it, naming the character."""
    with pytest.raises(ValueError, match=re.escape(said)):
        _tool_class(bad)()
    with pytest.raises(ValueError, match=re.escape(said)):
        create_simple_tool(bad, "Has a name.", lambda: 1)


@pytest.mark.parametrize("blank", ["", "   ", "\n"])
def test_a_blank_name_is_still_refused(blank: str) -> None:
    """An empty or blank name is refused as before."""
    with pytest.raises(ValueError, match="non-blank"):
        _tool_class(blank)()
    with pytest.raises(ValueError, match="non-blank"):
        create_simple_tool(blank, "Has a name.", lambda: 1)


@pytest.mark.parametrize(
    "good",
    ["read_lines", "fs.read", "web-fetch", "Überprüfen", "数据.查询", "v2:search", "read it", "a"],
)
def test_names_of_letters_digits_and_punctuation_are_accepted(good: str) -> None:
    """Dots, dashes, underscores, inner spaces and letters of any script are fine."""
    registry = ToolRegistry()
    registry.register_tool(_tool_class(good))
    registry.register_tool(create_simple_tool(good + "_simple", "Has a name.", lambda: 1))
    assert registry.has_tool(good)
    assert registry.has_tool(good + "_simple")


def test_the_registry_refuses_a_name_changed_after_the_tool_was_made() -> None:
    """A built tool whose name was set to a bad one afterwards is not registered, nor any
    other tool of the same batch."""
    tool = create_simple_tool("fine", "Has a name.", lambda: 1)
    tool.name = "not\nfine"
    registry = ToolRegistry()
    with pytest.raises(ValueError, match=re.escape("(U+000A) at position 3")):
        registry.register_tool(tool)
    with pytest.raises(ValueError, match=re.escape("(U+000A)")):
        registry.register_tools([_tool_class("other"), tool])
    assert len(registry) == 0
