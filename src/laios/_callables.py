"""What kind of callable the caller handed over (for the tools and the executor alike)."""

from __future__ import annotations

import inspect

__all__ = ["is_coroutine_function"]


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
