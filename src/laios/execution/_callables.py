"""What kind of callable the caller handed over."""

from __future__ import annotations

import inspect

__all__ = ["is_coroutine_function", "unawaited_error"]


def is_coroutine_function(func: object) -> bool:
    """Whether calling ``func`` gives a coroutine instead of doing the work: an ``async def``
    function or method, a ``functools.partial`` of one, or an object whose ``__call__`` is one.
    Never raises (an object that cannot be inspected is taken as a plain callable)."""
    try:
        if inspect.iscoroutinefunction(func):
            return True
        if inspect.isroutine(func) or isinstance(func, type) or not callable(func):
            return False
        return inspect.iscoroutinefunction(type(func).__call__)
    except Exception:
        return False


def unawaited_error(returned: object, what: str, instead: str) -> TypeError:
    """The error for ``what`` (a plain callable) having returned an awaitable that nothing here
    will await: an async function behind a plain callable, whose work would never happen. A
    coroutine is closed first, so Python does not warn later that it was never awaited."""
    if inspect.iscoroutine(returned):
        returned.close()
    return TypeError(
        f"{what} returned a {type(returned).__name__}, which is never awaited: {instead}"
    )
