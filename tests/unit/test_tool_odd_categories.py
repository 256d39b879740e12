"""A tool's ``category`` that is no category is refused with the ``ValueError`` listing the
categories, whatever it is: a function (which the tool class binds as a method), a value whose
hash raises, one whose ``repr()`` raises. Never a ``RecursionError`` or the value's own
exception."""

from __future__ import annotations

from typing import Any

import pytest

from laios.tools.base import BaseTool, ToolCategory, create_simple_tool


def _pick() -> str:
    return "data"


class UnhashableText(str):
    """A text whose hash raises (so does a lookup of it in any set or mapping)."""

    __slots__ = ()

    def __hash__(self) -> int:
        raise RuntimeError("no hash for this text")


class Unprintable:
    """A value whose ``repr()`` and ``str()`` raise."""

    def __repr__(self) -> str:
        raise RuntimeError("no repr")

    __str__ = __repr__


class ClassUnreadable:
    """A value whose ``__class__`` raises (a lazy proxy whose loading fails), as does an
    ``isinstance`` check of it against a class it is no instance of."""

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        raise ConnectionError("could not load the proxied value")


ODD_CATEGORIES: list[tuple[Any, str]] = [
    (_pick, "got the function _pick"),
    (UnhashableText("data"), "got 'data'"),
    (Unprintable(), "got <Unprintable instance at "),
]


@pytest.mark.parametrize(("category", "shown"), ODD_CATEGORIES)
def test_create_simple_tool_refuses_an_odd_category_listing_the_categories(
    category: Any, shown: str
) -> None:
    with pytest.raises(ValueError, match="category must be a ToolCategory or one of") as caught:
        create_simple_tool("pick", "Picks one.", lambda: 1, category=category)
    assert shown in str(caught.value)


@pytest.mark.parametrize(("category", "shown"), ODD_CATEGORIES)
def test_a_tool_class_with_an_odd_category_is_refused_listing_the_categories(
    category: Any, shown: str
) -> None:
    class Picks(BaseTool):
        name = "pick"
        description = "Picks one."

        def _execute(self, **kwargs: Any) -> int:
            return 1

    Picks.category = category  # type: ignore[assignment]
    with pytest.raises(ValueError, match="category must be a ToolCategory or one of") as caught:
        Picks()
    assert shown in str(caught.value)


def test_a_category_whose_class_cannot_be_read_is_refused_listing_the_categories() -> None:
    """A category whose ``__class__`` raises is refused as any other value that is no
    category: the refusal let its exception out, as it tried to tell whether it was a method.
    (Made here: pytest's own reading of a parameter fails on it.)"""
    with pytest.raises(ValueError, match="category must be a ToolCategory or one of") as caught:
        create_simple_tool("pick", "Picks one.", lambda: 1, category=ClassUnreadable())
    assert "got <" in str(caught.value)


def test_the_repr_of_a_tool_whose_category_is_a_method_ends() -> None:
    """A tool made without the checks (its own ``__init__``) whose category is a method: its
    repr names the method once, not again and again through the method's own repr."""

    class Unchecked(BaseTool):
        name = "unchecked"
        description = "Skips the checks."
        category = _pick  # type: ignore[assignment]

        def __init__(self) -> None:  # (no super().__init__(): no checks)
            pass

        def _execute(self, **kwargs: Any) -> int:
            return 1

    shown = repr(Unchecked())
    assert shown.startswith("Unchecked(name='unchecked', category=<bound method")
    assert len(shown) < 300


def test_a_valid_category_is_still_taken() -> None:
    tool = create_simple_tool("pick", "Picks one.", lambda: 1, category="data")
    assert tool.category is ToolCategory.DATA
