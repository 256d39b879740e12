"""What a plain callable the caller handed over returned (see also ``laios._callables``)."""

from __future__ import annotations

import contextlib
import inspect

__all__ = ["never_run", "unawaited_error"]


def never_run(returned: object) -> bool:
    """Whether ``returned`` is work that nothing here will run: a coroutine (an async function
    behind a plain callable), a generator or an async generator (a function written with
    ``yield``, whose body runs only when something iterates it)."""
    return (
        inspect.iscoroutine(returned)
        or inspect.isgenerator(returned)
        or inspect.isasyncgen(returned)
    )


def unawaited_error(returned: object, what: str, instead: str) -> TypeError:
    """The error for ``what`` (a plain callable) having returned work that nothing here will
    run (see :func:`never_run`), or an awaitable that nothing here will await. A coroutine, a
    generator or an async generator is closed first: Python does not warn later that a
    coroutine was never awaited, and a generator's body can no longer start."""
    if inspect.iscoroutine(returned):
        returned.close()
    elif inspect.isgenerator(returned) or inspect.isasyncgen(returned):
        _close(returned)
        return TypeError(
            f"{what} returned a {type(returned).__name__}, whose body never runs (nothing "
            f"here iterates it): {instead}"
        )
    return TypeError(
        f"{what} returned a {type(returned).__name__}, which is never awaited: {instead}"
    )


def _close(generator: object) -> None:
    """Close a generator or an async generator; what closing it raised is dropped (the caller
    reports the generator itself)."""
    with contextlib.suppress(Exception):
        if inspect.isgenerator(generator):
            generator.close()
        elif inspect.isasyncgen(generator):
            closing = generator.aclose()
            try:
                # (one that never started ends at once: its body does not run)
                closing.send(None)
            except StopIteration:
                pass
            finally:
                closing.close()


def refuse_unawaited(returned: object, what: str, instead: str) -> None:
    """Raise :func:`unawaited_error` when ``what`` (a plain callable, called just now)
    returned work that nothing here will run (see :func:`never_run`): a coroutine, a
    generator or an async generator, closed first.

    Raises:
        TypeError: As said.
    """
    if returned is not None and never_run(returned):
        raise unawaited_error(returned, what, instead)
