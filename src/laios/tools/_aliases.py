"""The names a field's alias reads, as the paths a caller's input is looked up along."""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, AliasPath

__all__ = ["alias_paths"]

#: One way to a field's value in the input: keys of mappings (text) and positions in lists.
Path = tuple[str | int, ...]


def alias_paths(alias: Any) -> list[Path]:
    """The paths ``alias`` reads a field's value along, in the order they are tried: one of a
    single name for a string, the ``AliasPath``'s steps, each choice's of an ``AliasChoices``.
    The forms pydantic's core schema writes them in are read too (``"a"``, ``["a", 0]``,
    ``[["a"], ["b", 0]]``); none for anything else (``None``: no alias)."""
    if isinstance(alias, str):
        return [(alias,)]
    if isinstance(alias, AliasPath):
        return [tuple(alias.path)]
    if isinstance(alias, AliasChoices):
        return [path for choice in alias.choices for path in alias_paths(choice)]
    if isinstance(alias, list) and alias:
        if all(isinstance(choice, list) for choice in alias):
            return [tuple(choice) for choice in alias if choice]
        return [tuple(alias)]
    return []
