"""Reading an exception's class name and message without raising (for the tools and the
executor alike).

An exception's class may have a metaclass whose ``__name__`` raises or is not text (a proxy, a
mocking library), and its ``__str__`` may raise or give something other than text: turning
such an exception into a failed result must not fail in turn.
"""

from __future__ import annotations

import builtins
import re
from typing import Any

from pydantic.errors import PydanticImportError, PydanticUndefinedAnnotation, PydanticUserError
from pydantic_core import ValidationError

__all__ = [
    "as_raised",
    "exception_message",
    "message_and_interrupt",
    "propagates",
    "qualified_type_name",
    "type_name",
]

# What a class was created with, read past its metaclass (which may hide or replace them).
_TYPE_NAME: Any = type.__dict__["__name__"]
_TYPE_QUALNAME: Any = type.__dict__["__qualname__"]
_TYPE_MODULE: Any = type.__dict__["__module__"]


def type_name(kind: type) -> str:
    """The name of the class ``kind`` (an exception's, say); never raises.

    Its ``__name__``, or, when its metaclass makes that raise or gives something other than
    text, the name the class was created with.
    """
    try:
        name = kind.__name__
        if type(name) is str:
            return name
    except Exception:  # (a metaclass's own __getattribute__ or property)
        pass
    name = _TYPE_NAME.__get__(kind)
    return name if type(name) is str else "Exception"


def qualified_type_name(kind: type) -> str:
    """The class ``kind``'s name as OpenTelemetry's ``record_exception`` writes an
    ``exception.type``: its module and qualified name (the bare qualified name for builtins);
    never raises (read past a metaclass that hides or replaces them, as :func:`type_name`)."""
    try:
        module, name = kind.__module__, kind.__qualname__
        if type(module) is not str or type(name) is not str:
            raise TypeError("not text")
    except Exception:  # (a metaclass's own __getattribute__ or property)
        name = _TYPE_QUALNAME.__get__(kind)
        try:
            module = _TYPE_MODULE.__get__(kind)
        except Exception:
            module = None
        if type(module) is not str:
            module = None
        if type(name) is not str:
            name = type_name(kind)
    return f"{module}.{name}" if module and module != "builtins" else name


#: The message of the ``RuntimeError`` Python raises in place of a ``StopIteration`` that
#: leaves a coroutine. One that leaves a generator is not the tool's own: its ``generator
#: raised StopIteration`` (as on a sync tool's road) says where to look, and stays.
_STOP_ITERATION_CONVERTED = "coroutine raised StopIteration"


def as_raised(exc: BaseException) -> BaseException:
    """The exception as the code raised it: for the ``RuntimeError`` Python makes of a
    ``StopIteration`` raised in a coroutine (an async tool's ``raise StopIteration("...")``
    reads ``coroutine raised StopIteration``), that ``StopIteration``, so that an async tool's
    failure is described as the same sync tool's is; else ``exc``. Never raises."""
    cause = exc.__cause__
    if type(exc) is RuntimeError and isinstance(cause, StopIteration):
        args = exc.args
        if len(args) == 1 and type(args[0]) is str and args[0] == _STOP_ITERATION_CONVERTED:
            return cause
    return exc


#: What an ``asyncio.TaskGroup`` (or ``except*`` code) raises: Python 3.11+.
_EXCEPTION_GROUP: type[BaseException] | None = getattr(builtins, "BaseExceptionGroup", None)
#: Members of an exception group a message names (the rest are counted), and how deep into
#: groups within groups it goes.
_GROUP_MEMBERS = 3
_GROUP_DEPTH = 3


def exception_message(exc: BaseException) -> str:
    """The message of ``exc`` for a failed result's ``error``: its text, or its class's name
    (see :func:`type_name`) when that is empty; never raises (a ``__str__`` that fails or
    gives something other than text gives the class name and a note, whatever it raises:
    ``SystemExit`` too, which would end the thread reporting the task).

    An exception group (a failed ``asyncio.TaskGroup``) says what its members raised after
    its own text (``unhandled errors in a TaskGroup (1 sub-exception): KeyError: 'ada'``):
    its text alone names none of them. The text of pydantic's errors (a ``ValidationError``,
    a ``PydanticUserError``, ...) is given without the links to pydantic's error pages that
    they put under each error."""
    return _message(exc, _GROUP_DEPTH, None)


def message_and_interrupt(exc: BaseException) -> tuple[str, KeyboardInterrupt | None]:
    """:func:`exception_message`, and the ``KeyboardInterrupt`` (a Ctrl-C landing while
    ``__str__`` ran, or raised by it) that turning ``exc`` into text raised, if one did (the
    first): the caller records what it was recording, then lets the interrupt go on."""
    interrupts: list[KeyboardInterrupt] = []
    text = _message(exc, _GROUP_DEPTH, interrupts)
    return text, interrupts[0] if interrupts else None


#: The line pydantic adds under each error of a ``ValidationError`` (and, after a blank line,
#: under the message of its other errors), a link to its own error pages: it says nothing of
#: the parameters or of the tool, and a failed task's error leaves it out.
_LINK = re.compile(r"\n+[ \t]*For further information visit https?://\S+")

#: Pydantic's errors whose text carries that link: its ``ValidationError`` and its own errors
#: (``PydanticUserError`` from a model that is not fully defined, and the others).
_PYDANTIC_ERRORS = (
    ValidationError,
    PydanticUserError,
    PydanticUndefinedAnnotation,
    PydanticImportError,
)


def _message(exc: BaseException, depth: int, interrupts: list[KeyboardInterrupt] | None) -> str:
    try:
        text = str(exc)
    except BaseException as failed:  # (``SystemExit`` too: it would end the reporting thread)
        if interrupts is not None and isinstance(failed, KeyboardInterrupt):
            interrupts.append(failed)
        return f"{type_name(type(exc))} (its message could not be turned into text)"
    if type(text) is not str:  # an instance of a str subclass, which may behave in any way
        # (refuse str() or formatting): its text as plain str, copied without calling it
        text = str.__str__(text)
    text = text or type_name(type(exc))
    if isinstance(exc, _PYDANTIC_ERRORS):
        text = _LINK.sub("", text)
    group = _EXCEPTION_GROUP
    if group is not None and depth and isinstance(exc, group):
        text += _members(exc, depth - 1, interrupts)
    return text


def _members(group: BaseException, depth: int, interrupts: list[KeyboardInterrupt] | None) -> str:
    """``": TYPE: MESSAGE; ..."`` for the first members of an exception ``group`` (``""``
    when they cannot be read)."""
    try:
        members = tuple(group.exceptions)  # type: ignore[attr-defined]
    except Exception:
        return ""
    if not members:
        return ""
    named = [
        f"{type_name(type(member))}: {_message(member, depth, interrupts)}"
        for member in members[:_GROUP_MEMBERS]
    ]
    more = len(members) - _GROUP_MEMBERS
    if more > 0:
        named.append(f"and {more} more")
    return ": " + "; ".join(named)


def propagates(exc: BaseException) -> bool:
    """Whether ``exc``'s class says it passes through a tool's ``execute`` unchanged (its
    attribute ``_laios_propagate`` is True); never raises (False when its metaclass makes the
    lookup fail)."""
    try:
        return getattr(type(exc), "_laios_propagate", False) is True
    except Exception:
        return False
