"""What kind of callable the caller handed over (for the tools and the executor alike)."""

from __future__ import annotations

import functools
import inspect

__all__ = ["generator_kind", "is_coroutine_function"]


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


def generator_kind(func: object) -> str | None:
    """``"generator"`` or ``"async generator"`` when calling ``func`` gives a generator instead
    of doing the work (a function with ``yield``, an ``async def`` one with ``yield``, a
    ``functools.partial`` of one, or an object whose ``__call__`` is one); ``None`` otherwise.
    Never raises (an object that cannot be inspected is taken as a plain callable)."""
    try:
        if not (inspect.isroutine(func) or isinstance(func, functools.partial)):
            if isinstance(func, type) or not callable(func):
                return None
            func = type(func).__call__
        if inspect.isasyncgenfunction(func):
            return "async generator"
        if inspect.isgeneratorfunction(func):
            return "generator"
    except Exception:
        pass
    return None
