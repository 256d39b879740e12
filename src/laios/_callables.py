"""What kind of callable the caller handed over (for the tools and the executor alike)."""

from __future__ import annotations

import functools
import inspect

__all__ = ["generator_kind", "is_coroutine_function"]

#: How many ``functools.partial`` and ``staticmethod`` layers :func:`_called` looks through.
_MAX_LAYERS = 64


def _called(func: object) -> object:
    """The function whose body runs when ``func`` is called: through the ``functools.partial``
    objects and callable ``staticmethod`` objects around it, the ``__call__`` of an object
    that is neither a function nor a class (``inspect`` looks through a partial of a function,
    but not of a callable object, nor through a ``staticmethod`` object)."""
    for _ in range(_MAX_LAYERS):
        if isinstance(func, functools.partial):
            func = func.func
        elif isinstance(func, staticmethod):
            func = func.__func__
        else:
            break
    if inspect.isroutine(func) or isinstance(func, type) or not callable(func):
        return func
    return type(func).__call__


def is_coroutine_function(func: object) -> bool:
    """Whether calling ``func`` gives a coroutine instead of doing the work: an ``async def``
    function or method, an object whose ``__call__`` is one, or a ``functools.partial`` (or a
    ``staticmethod`` object) of either. Never raises (an object that cannot be inspected is
    taken as a plain callable)."""
    try:
        if inspect.iscoroutinefunction(func):
            return True
        if isinstance(func, type) or not callable(func):
            return False
        return inspect.iscoroutinefunction(_called(func))
    except Exception:
        return False


def generator_kind(func: object) -> str | None:
    """``"generator"`` or ``"async generator"`` when calling ``func`` gives a generator instead
    of doing the work (a function with ``yield``, an ``async def`` one with ``yield``, an
    object whose ``__call__`` is one, or a ``functools.partial`` (or a ``staticmethod``
    object) of either); ``None`` otherwise. Never raises (an object that cannot be inspected
    is taken as a plain callable)."""
    try:
        if isinstance(func, type) or not callable(func):
            return None
        func = _called(func)
        if inspect.isasyncgenfunction(func):
            return "async generator"
        if inspect.isgeneratorfunction(func):
            return "generator"
    except Exception:
        pass
    return None
