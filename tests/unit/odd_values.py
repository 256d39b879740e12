"""Values of the caller's own whose methods raise, for the tests of what a call does with
them (its own message, never the value's error)."""

from __future__ import annotations


class Unusable:
    """A value whose every method a lookup or a message could call raises."""

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("no ==")

    def __hash__(self) -> int:
        raise RuntimeError("no hash")

    def __str__(self) -> str:
        raise RuntimeError("no str")

    __repr__ = __str__


class OddText(str):
    """A string of the caller's own whose hash, ``==``, ``str()`` and ``repr()`` raise."""

    def __hash__(self) -> int:
        raise RuntimeError("no hash")

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("no ==")

    def __str__(self) -> str:
        raise RuntimeError("no str")

    __repr__ = __str__


class EqRaises(str):
    """A string of the caller's own whose ``==`` raises (its hash is str's)."""

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("no ==")

    __hash__ = str.__hash__


class LenRaises(str):
    """A string of the caller's own whose ``len()`` raises (its hash and ``==`` are str's)."""

    def __len__(self) -> int:
        raise RuntimeError("no len")


class ClassRaises:
    """A value whose ``__class__`` raises, as a proxy's does when what it stands for is gone
    (an unbound ``werkzeug.local.LocalProxy``): ``isinstance`` of it raises for any class it is
    not an instance of by its type."""

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        raise RuntimeError("no class")
