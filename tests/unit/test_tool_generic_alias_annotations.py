"""A tool class whose ``_execute`` annotates a parameter with a generic alias (``list[int]``,
``dict[str, int]``) is made as any other, also on Python 3.10.

Python 3.10 takes ``list[int]`` for a class, and the checks of a tool class's entry point
asked ``issubclass(list[int], ToolInput)`` of it, which raises there: ``def _execute(self, *,
items: list[int])`` was refused with "issubclass() arg 1 must be a class".
"""

from collections.abc import Callable
from typing import Any

import pytest

from laios.tools.base import BaseTool


def _keyword_only() -> type[BaseTool]:
    class KeywordOnly(BaseTool):
        name = "keyword_only"
        description = "Takes its items by name only."

        def _execute(self, *, items: list[int], weights: dict[str, int] | None = None) -> Any:
            return sum(items)

    return KeywordOnly


def _by_name() -> type[BaseTool]:
    class ByName(BaseTool):
        name = "by_name"
        description = "Takes its items by name."

        def _execute(self, items: list[int]) -> Any:
            return sum(items)

    return ByName


@pytest.mark.parametrize("make", [_keyword_only, _by_name])
def test_a_generic_alias_annotation_is_a_parameter_like_any_other(
    make: Callable[[], type[BaseTool]],
) -> None:
    output = make()().execute(items=[1, 2])
    assert output.success, output.error
    assert output.data == 3


def test_a_positional_only_generic_parameter_with_a_default_gets_the_clear_refusal() -> None:
    with pytest.raises(TypeError, match="takes items only by position, with a default"):

        class Positional(BaseTool):
            name = "positional"
            description = "Reads as taking its items."

            def _execute(self, items: list[int] = [], /, **kwargs: Any) -> Any:  # noqa: B006
                return items
