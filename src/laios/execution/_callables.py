"""What a plain callable the caller handed over returned (see also ``laios._callables``)."""

from __future__ import annotations

import inspect

__all__ = ["unawaited_error"]


def unawaited_error(returned: object, what: str, instead: str) -> TypeError:
    """The error for ``what`` (a plain callable) having returned an awaitable that nothing here
    will await: an async function behind a plain callable, whose work would never happen. A
    coroutine is closed first, so Python does not warn later that it was never awaited."""
    if inspect.iscoroutine(returned):
        returned.close()
    return TypeError(
        f"{what} returned a {type(returned).__name__}, which is never awaited: {instead}"
    )


def refuse_unawaited(returned: object, what: str, instead: str) -> None:
    """Raise :func:`unawaited_error` when ``what`` (a plain callable, called just now)
    returned a coroutine: an async function behind it, whose work would never happen.

    Raises:
        TypeError: As said.
    """
    if returned is not None and inspect.iscoroutine(returned):
        raise unawaited_error(returned, what, instead)
