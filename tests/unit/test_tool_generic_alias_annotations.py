"""A tool class whose ``_execute`` annotates a parameter with a generic alias (``list[int]``,
``dict[str, int]``) is made as any other, also on Python 3.10.

Python 3.10 takes ``list[int]`` for a class, and the checks of a tool class's entry point
asked ``issubclass(list[int], ToolInput)`` of it, which raises there: ``def _execute(self, *,
items: list[int])`` was refused with "issubclass() arg 1 must be a class".
"""

from collections.abc import Callable
from typing import Any

import pytest

from laios.tools.base import BaseTool, create_simple_tool


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


def test_a_generic_alias_as_input_model_gets_the_clear_refusal() -> None:
    """``input_model = list[int]`` is no :class:`ToolInput` subclass, and is refused saying so,
    also on Python 3.10, which takes the alias for a class that ``issubclass`` then refuses:
    defining the class, making it and ``create_simple_tool`` raised "issubclass() arg 1 must
    be a class" there."""

    class Listed(BaseTool):
        name = "listed"
        description = "Has a list for an input model."
        input_model = list[int]  # type: ignore[assignment]

        def _execute(self, items: Any = None, **kwargs: Any) -> Any:
            return items

    with pytest.raises(TypeError, match="input_model must be a ToolInput subclass"):
        Listed()
    with pytest.raises(TypeError, match="input_model must be a ToolInput subclass"):
        create_simple_tool("listed", "Has a list.", lambda items: items, input_model=list[int])  # type: ignore[arg-type]
