"""Base classes for tools: the unit of work a :class:`~laios.core.types.Task` invokes.

A tool subclasses :class:`BaseTool` (or :class:`AsyncBaseTool`), sets its class attributes and
implements ``_execute`` (or ``_execute_async``). Callers use :meth:`BaseTool.execute`, which
validates the input, runs the tool and always returns a :class:`ToolOutput`.

``_execute`` may be written in either of two styles:

* ``def _execute(self, input_data)`` receives the validated ``input_model`` instance (for the
  bare :class:`ToolInput`, a ``ToolInput`` carrying the keyword arguments as attributes);
* named parameters (``def _execute(self, path, limit=10)``) receive the parameters by name: the
  validated model's fields as the model holds them (a field typed with a model gives that
  model), or the raw keyword arguments for the bare :class:`ToolInput`;
* ``def _execute(self, **kwargs)`` alone receives the validated model's ``model_dump()`` (a
  nested model as a dict, as it always has), or the raw keyword arguments for the bare
  :class:`ToolInput`.

The style is read from the method's signature once, when the class is created: only a single
parameter named ``input_data``, annotated with a :class:`ToolInput` subclass, or positional-only
receives the model.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import functools
import inspect
import json
import logging
import re
import reprlib
import sys
import types
import typing
import unicodedata
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from enum import Enum
from typing import Annotated, Any, ClassVar, Literal, Optional, cast, overload

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    create_model,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import to_jsonable_python

from laios._callables import generator_kind, is_coroutine_function
from laios._compat.functools import partialmethod_of
from laios._compat.pydantic import complete_in, construct, is_instance
from laios._exceptions import (
    as_raised,
    exception_message,
    message_and_interrupt,
    propagates,
    type_name,
)
from laios._secret_types import SECRET_TYPES, aliased_type
from laios._text import shorten, shown_name
from laios.core.types import Permission, ToolParameter
from laios.tools._docstrings import parameter_descriptions
from laios.tools._input_errors import given_by_position, without_input_keys
from laios.tools._schema import parameters_from_model

__all__ = [
    "AsyncBaseTool",
    "BaseTool",
    "ToolCategory",
    "ToolCategoryValue",
    "ToolInput",
    "ToolOutput",
    "create_simple_tool",
]

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_NOT_BY_NAME = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.VAR_POSITIONAL)


class ToolCategory(str, Enum):
    """Broad area a tool works in."""

    FILESYSTEM = "filesystem"
    SHELL = "shell"
    WEB = "web"
    CODE = "code"
    DATA = "data"
    SYSTEM = "system"
    UTILITY = "utility"
    CUSTOM = "custom"


#: The value of a :class:`ToolCategory` member, which a tool may give instead of the member
#: (``category = "data"``, ``create_simple_tool(..., category="data")``); the tool instance
#: holds the member. Type checkers catch a misspelt value; at run time it is a ``ValueError``.
ToolCategoryValue = Literal[
    "filesystem", "shell", "web", "code", "data", "system", "utility", "custom"
]


class ToolInput(BaseModel):
    """Input of a tool. A tool subclasses it to declare its parameters as fields.

    The bare class declares no fields and keeps any keyword arguments as extra attributes, so a
    tool without a dedicated input model accepts anything. Subclasses may set their own
    ``model_config`` (for instance ``extra="forbid"``).

    Validation errors do not quote the rejected values (``hide_input_in_errors``): parameters
    often carry credentials, and Pydantic shortens a long value to a prefix and a suffix that
    no scrubbing of the whole value could find. A subclass may set it back to False.
    """

    model_config = ConfigDict(extra="allow", hide_input_in_errors=True)


class ToolOutput(BaseModel):
    """Result of one tool run.

    Attributes:
        success: Whether the tool succeeded.
        data: The tool's result value.
        error: Error message when the tool failed.
        metadata: Extra information, such as ``error_type`` for a failure. The executor copies
            it into ``TaskResult.metadata``, less any key named as one of its own
            (``outcome``, ``trace_id``, ``retry_exhausted``, ...; a failure's ``error_type``
            names the failure's type).

    Assignments are validated like the constructor's arguments, so a tool that fills in its
    output field by field fails at the wrong assignment (``ValidationError``), and
    ``output.success = "no"`` is ``False``, not a truthy string.

    ``data`` may be any value but a generator or an async generator (``TypeError``): nothing
    would consume it, so its body would never run while the tool reported success, as for a
    tool that returns one. Nor a coroutine (``TypeError``, a missing ``await``): it is closed,
    never run.
    """

    model_config = ConfigDict(validate_assignment=True)

    success: bool = True
    data: Any = None
    error: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("data")
    @classmethod
    def _refuse_unrun(cls, data: Any) -> Any:
        """Refuse a coroutine (closed first), a generator or an async generator (a
        ``TypeError``, raised as it is)."""
        if type(data) in _NOT_RUN:  # (one lookup: a tool's output is built on its hot path)
            if type(data) is _COROUTINE:
                raise missing_await_error("ToolOutput.data is", data)
            kind = _kind_of(data)
            raise TypeError(
                f"ToolOutput.data is {_a(kind)}, which nothing would consume: its body never "
                "runs, and the tool would report success without doing its work. Collect the "
                f"items and pass them instead: ToolOutput(data={_collected(kind)})"
            )
        return data


def _entry_function(cls: type, attr: str) -> tuple[Any, bool]:
    """``cls.<attr>`` as the class defines it (a staticmethod's or classmethod's function;
    ``None`` if there is none), and whether calling it binds its first parameter (to the
    instance or the class): all but a staticmethod and a callable object that is no
    descriptor (an instance of a class with ``__call__``) do. A ``functools.partialmethod``
    is the function it makes through the class: ``(self, x=1)`` for ``partialmethod(f, "a")``
    of ``def f(self, mode, x=1)``, which binds ``self``; a partial of the function already
    bound (or not bound at all) when it wraps a class method (or a static method)."""
    raw = inspect.getattr_static(cls, attr, None)
    if isinstance(raw, (staticmethod, classmethod)):
        return raw.__func__, isinstance(raw, classmethod)
    if isinstance(raw, functools.partialmethod):
        func = getattr(cls, attr)
        return func, not isinstance(func, functools.partial)
    if raw is not None and not hasattr(type(raw), "__get__"):
        return raw, False  # (a callable object, not a descriptor: called as it is)
    if isinstance(raw, functools.partial) and sys.version_info < (3, 14):
        # (Python 3.13 gives a partial a __get__ that only warns: it binds from 3.14 on)
        return raw, False
    return raw, True


def _uses_kwargs_style(cls: type, attr: str) -> bool:
    """Tell whether ``cls.<attr>`` takes its input as keyword arguments.

    The input model is passed positionally only to a method whose one parameter besides
    ``self`` is named ``input_data``, is annotated with a :class:`ToolInput` subclass, or can
    only be passed by position; any other signature gets the parameters by name, so that
    ``def _execute(self, who)`` is called as ``_execute(who=...)``.
    """
    params = _entry_parameters(cls, attr)
    if params is None:
        return False
    positional = [p for p in params if p.kind in _POSITIONAL]
    if len(positional) != 1:
        return not any(p.kind is inspect.Parameter.POSITIONAL_ONLY for p in positional)
    only = positional[0]
    takes_model = (
        only.kind is inspect.Parameter.POSITIONAL_ONLY
        or only.name == "input_data"
        or _is_input_class(only.annotation)
        or _names_input_model(cls, only.annotation)
    )
    return not takes_model


def _entry_parameters(cls: type, attr: str) -> list[inspect.Parameter] | None:
    """The parameters of ``cls.<attr>`` that a call gives (without the ``self`` or class that
    calling it binds), their annotations resolved (see :func:`_parameters`); ``None`` when
    there is no such function, or its signature cannot be read."""
    func, binds = _entry_function(cls, attr)
    params = None if func is None else _parameters(func, getattr(cls, "_annotation_locals", None))
    if params and binds and params[0].kind in _POSITIONAL:
        return params[1:]
    return params


def _def_keyword(cls: type) -> str:
    """How ``cls``'s entry point is defined, for a message: ``async def`` or ``def``."""
    return "async def" if getattr(cls, "is_async", False) is True else "def"


def _is_input_class(annotation: Any) -> typing.TypeGuard[type[ToolInput]]:
    """Whether ``annotation`` is a :class:`ToolInput` subclass. Never raises: a generic alias
    (``list[int]``), which Python 3.10 takes for a class that ``issubclass`` then refuses, is
    none."""
    try:
        return isinstance(annotation, type) and issubclass(annotation, ToolInput)
    except TypeError:
        return False


#: What ``typing.get_origin`` gives for ``Union[A, B]`` / ``Optional[A]`` and for ``A | B``.
_UNIONS = (typing.Union, types.UnionType)


def _holds_input_class(annotation: Any) -> bool:
    """Whether ``annotation`` is a :class:`ToolInput` subclass or a union holding one
    (``Optional[Query]``, ``Query | None``): a parameter so typed, refused elsewhere for where
    it stands, is meant for the input. (Which parameter takes the input is decided on the
    bare class only: a parameter typed ``Optional[Sub]`` may be a field of a nested model.)"""
    if typing.get_origin(annotation) in _UNIONS:
        return any(_is_input_class(arg) for arg in typing.get_args(annotation))
    return _is_input_class(annotation)


def _runs_itself(cls: type) -> bool:
    """Whether a class of the user's (``cls`` or a base class of it below this module's)
    defines one of :data:`_RUNNERS`: it may call its entry point its own way."""
    for klass in cls.__mro__:
        if klass.__module__ == __name__:  # (the base classes)
            return False
        if any(name in klass.__dict__ for name in _RUNNERS):
            return True
    return False


def _check_not_property(cls: type, attr: str) -> None:
    """Refuse ``cls.<attr>`` when it is a property (or a ``functools.cached_property``)
    returning the function to call: how that function takes its input cannot be read from the
    class, so every run would pass the input as one positional argument, whatever it takes
    (``lambda **kwargs: ...`` failing with "takes 0 positional arguments but 1 was given").

    Raises:
        TypeError: Saying what to write instead.
    """
    raw = inspect.getattr_static(cls, attr, None)
    if not isinstance(raw, (property, functools.cached_property)) or _runs_itself(cls):
        return
    kind = _def_keyword(cls)
    raise TypeError(
        f"Tool class {cls.__name__}: {attr} is a {type(raw).__name__}, so how the function it "
        f"returns takes its input cannot be read from the class, and every run would pass it "
        f"the validated input as one positional argument, whatever it takes. Define {attr} as "
        f"a method that calls that function, taking the parameters by name ({kind} "
        f"{attr}(self, ...)) or the input alone ({kind} {attr}(self, input_data))"
    )


def _check_one_argument(cls: type, attr: str) -> None:
    """Refuse ``cls.<attr>``, given the validated input as its one argument, when it needs
    more positional arguments than that (``def _execute(self, a, b, /)``): no run could call
    it; or when its positional-only first parameter has a default and other parameters take
    names (``def _execute(self, greeting="hello", /, **kwargs)``): that parameter, by the look
    of it optional, would be the input, and the others never be given.

    Raises:
        TypeError: Naming the parameters and saying what to write.
    """
    # (annotations resolved: a quoted ``Optional["Query"]`` is read as the model it names)
    params = _entry_parameters(cls, attr)
    if params is None:
        return
    required = [
        p.name for p in params if p.kind in _POSITIONAL and p.default is inspect.Parameter.empty
    ]
    kind = _def_keyword(cls)
    first = params[0] if params else None
    if (
        first is not None
        and first.kind is inspect.Parameter.POSITIONAL_ONLY
        and first.default is not inspect.Parameter.empty
        and first.name != "input_data"
        and not _holds_input_class(first.annotation)
        and not _names_input_model(cls, first.annotation)
        and any(p.kind not in _NOT_BY_NAME for p in params)
    ):
        # (``def _execute(self, greeting="hello", /, **kwargs)``: an optional parameter by
        # the look of it, which would be given the input, the others nothing by name)
        raise TypeError(
            f"Tool class {cls.__name__}: {attr} takes {first.name} only by position, with a "
            f"default, next to parameters it takes by name; but a positional-only first "
            f"parameter is given the validated input, so {first.name} would be the input and "
            f"the others never given. Take {first.name} by name like them: {kind} "
            f"{attr}(self, /, {first.name}=..., ...), or the input alone: {kind} "
            f"{attr}(self, input_data, /)"
        )
    if len(required) > 1:
        names = ", ".join(required)
        raise TypeError(
            f"Tool class {cls.__name__}: {attr} takes {names} by position, but it is given "
            f"one argument, the validated input (its first parameter is positional-only), so "
            f"every run would fail. Take the parameters by name: {kind} {attr}(self, {names}), "
            f"or the input alone: {kind} {attr}(self, input_data, /)"
        )


def _check_keyword_only_input(cls: type, attr: str) -> None:
    """Refuse ``cls.<attr>`` taking nothing by position and, by name only, a parameter that
    looks like the input (``def _execute(self, *, input_data)``, or one annotated with a
    :class:`ToolInput` subclass) and is no field of the input model: being keyword-only, it
    would be given a parameter of that name, never the validated input, and every other
    parameter refused with Python's bare "unexpected keyword argument". One that takes
    parameters by position too is checked by :func:`_check_input_among_parameters`.

    Raises:
        TypeError: Naming the parameter and saying what to write.
    """
    params = _entry_parameters(cls, attr)
    if not params:
        return
    model = getattr(cls, "input_model", None)
    fields = model.model_fields if _is_input_class(model) else {}
    if any(p.kind in _POSITIONAL for p in params):
        _check_input_among_parameters(cls, attr, params, model, fields)
        return
    for p in params:
        if p.kind is not inspect.Parameter.KEYWORD_ONLY or p.name in fields:
            continue
        if (
            p.name == "input_data"
            or _holds_input_class(p.annotation)
            or _names_input_model(cls, p.annotation)
        ):
            kind = _def_keyword(cls)
            others = (
                "the others would go to **kwargs"
                if any(q.kind is inspect.Parameter.VAR_KEYWORD for q in params)
                else "any other parameter would be refused"
            )
            raise TypeError(
                f"Tool class {cls.__name__}: {attr} takes {p.name} only by name (it follows "
                f"'*'), so it would be given a parameter named {p.name!r}, not the validated "
                f"input, and {others}. To take the input, write "
                f"{kind} {attr}(self, {p.name}, /); to take the parameters by name, name "
                f"them as the input model's fields: {kind} {attr}(self, *, path, ...)"
            )


def _check_input_among_parameters(
    cls: type, attr: str, params: list[inspect.Parameter], model: Any, fields: dict[str, Any]
) -> None:
    """Refuse a keyword-style ``cls.<attr>`` taking, next to other parameters, one that looks
    like the input (``def _execute(self, input_data: Query, verbose=False)``: named
    ``input_data``, or annotated with the input model or, for a model that is no bare
    :class:`ToolInput`, with any :class:`ToolInput` subclass) and is no field of the input
    model: with more than one parameter it is given them by name, so never the validated input,
    and every field of the model would be refused (or go to ``**kwargs``).

    Raises:
        TypeError: Naming the parameter and saying what to write.
    """
    bare = model is ToolInput or not _is_input_class(model)
    for p in params:
        if p.kind is not inspect.Parameter.POSITIONAL_OR_KEYWORD or p.name in fields:
            continue
        annotation = p.annotation
        if not (
            p.name == "input_data"
            or annotation is model
            or _names_input_model(cls, annotation)
            or (not bare and _holds_input_class(annotation))
        ):
            continue
        kind = _def_keyword(cls)
        others = [q for q in params if q is not p and q.kind not in _NOT_BY_NAME]
        named = [q for q in others if q.kind is not inspect.Parameter.VAR_KEYWORD]
        model_name = model.__name__ if isinstance(model, type) else "ToolInput"
        what = "the parameters" if bare else f"the fields of {model_name}"
        if any(q.kind is inspect.Parameter.VAR_KEYWORD for q in others):
            fate = f"{what} would go to **kwargs" + (
                f", {p.name} keeping its default"
                if p.default is not inspect.Parameter.empty
                else f", every run failing for want of {p.name}"
            )
        else:
            fate = f"{what} would be refused" + ("" if bare else ", so every run would fail")
        listed = ", ".join(q.name for q in named) or "**kwargs"
        shown = ", ".join(
            q.name if q.default is inspect.Parameter.empty else f"{q.name}=..." for q in named
        )
        by_name = ", ".join(
            [f for f in fields if f not in {q.name for q in named}] + ([shown] if shown else [])
        )
        take = f"{p.name}: {model_name}" if not bare or annotation is model else p.name
        declare = f" (declare {', '.join(q.name for q in named)} as " + (
            "fields of an input model)" if bare else f"a field of {model_name})"
        )
        raise TypeError(
            f"Tool class {cls.__name__}: {attr} takes {p.name} next to other parameters "
            f"({listed}), so it is given its parameters by name: {p.name} would be a parameter "
            f"named {p.name!r}, never the validated input, and {fate}. To take the input, "
            f"make it the only parameter: {kind} {attr}(self, {take})"
            f"{declare if named else ''}; to take the parameters by name, name them as the "
            f"input model's fields: {kind} {attr}(self, {by_name or '...'})"
        )


def _check_fields_taken(cls: type, attr: str) -> None:
    """Refuse a keyword-style ``cls.<attr>`` without ``**kwargs`` that has no parameter for a
    field of the class's input model: every run passes each field by name (but those declared
    ``Field(exclude=True)``), so every run would fail with Python's "unexpected keyword
    argument". Left alone: the bare :class:`ToolInput`, and a class that may pass something
    else (its own ``__init__``, which may give each instance a model, its own ``_as_kwargs``,
    or a runner of its own, ``execute`` or ``run_raising``).

    Raises:
        TypeError: Naming the fields and saying what to write.
    """
    model = getattr(cls, "input_model", None)
    if not _is_input_class(model) or model is ToolInput:
        return
    own_init = getattr(cls, "__init__", None) is not BaseTool.__dict__["__init__"]
    if own_init or getattr(cls, "_as_kwargs", None) is not BaseTool.__dict__["_as_kwargs"]:
        return
    if _runs_itself(cls):
        return
    params = _entry_parameters(cls, attr)
    if params is None or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return
    named = [p for p in params if p.kind not in _NOT_BY_NAME]
    by_name = {p.name for p in named}
    excluded = _excluded_fields(model)
    passed = [f for f in model.model_fields if f not in excluded]
    passed += [f for f in model.model_computed_fields if f not in passed]
    missing = [f for f in passed if f not in by_name]
    if not missing:
        return
    kind = _def_keyword(cls)
    model_name = model.__name__
    others = [p for p in named if p.name not in passed]
    if len(named) == 1 and others:  # (``def _execute(self, data)``: the model, by the look)
        whole = f"{others[0].name}: {model_name}"
        others = []
    else:
        whole = f"input_data: {model_name}"
    taken = passed + [
        p.name if p.default is inspect.Parameter.empty else f"{p.name}=..." for p in others
    ]
    raise TypeError(
        f"Tool class {cls.__name__}: {attr} has no parameter for {', '.join(missing)}, which "
        f"every run passes it by name as fields of its input model {model_name}, so every run "
        f"would fail. To be given the {model_name} itself, take it alone, annotated: {kind} "
        f"{attr}(self, {whole}); to take the fields by name: {kind} {attr}(self, "
        f"{', '.join(taken)}) (or add **kwargs to take them all)"
    )


def _only_var_keyword(func: Any, binds: bool = False) -> bool:
    """Whether ``func`` takes nothing by name but ``**kwargs`` (``self``, the first parameter
    when calling it ``binds`` one (a method's or a class method's), and positional-only
    parameters aside): such an entry point gets the validated model's dump."""
    params = _parameters(func)
    if params is None:
        return False
    if binds and params and params[0].kind in _POSITIONAL:
        params = params[1:]
    return all(
        p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.VAR_KEYWORD)
        or (i == 0 and p.name == "self")
        for i, p in enumerate(params)
    ) and any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def _bound_name(cls: type, attr: str) -> str | None:
    """The name ``cls.<attr>`` binds the instance to, when a keyword argument could clash with
    it: its first parameter, unless that is positional-only (or ``attr`` a staticmethod)."""
    func, binds = _entry_function(cls, attr)
    if func is None or not binds:
        return None
    params = _parameters(func)
    if not params or params[0].kind is not inspect.Parameter.POSITIONAL_OR_KEYWORD:
        return None
    return params[0].name


def _name_clash(what: str, entry: str, bound: str) -> TypeError:
    """The error for a parameter named ``bound``, which ``entry(bound, ...)`` cannot be given
    by name (``what`` says whose parameter it is)."""
    return TypeError(
        f"{what} a parameter named {bound!r}, which {entry}({bound}, ...) cannot be given by "
        f"name: the tool instance is bound to that name. Make it positional-only: "
        f"def {entry}({bound}, /, ...)"
    )


def _clash_of(exc: TypeError, tool: str, entry: str, bound: str | None) -> TypeError | None:
    """The clear error for ``exc``, raised by calling tool ``tool``'s ``entry``, when a
    parameter has the name ``bound`` that its first parameter binds the instance to (Python
    says only "got multiple values for argument 'self'")."""
    if bound is None or f"multiple values for argument '{bound}'" not in str(exc):
        return None
    return _name_clash(f"Tool {shown_name(tool)!r} got", entry, bound)


_UNEXPECTED_KEYWORD = re.compile(r"unexpected keyword argument '([^']*)'")
_MISSING_ARGUMENTS = re.compile(
    r"missing \d+ required (?:positional|keyword-only) arguments?: (.*)"
)


def _mismatch_of(
    exc: TypeError, entry: str, model: type[ToolInput], is_async: bool
) -> TypeError | None:
    """The clear error for ``exc``, raised by calling a keyword-style entry point ``entry``,
    when it has no parameter for a keyword its input model ``model`` gave it, or needs one
    ``model`` does not pass; Python says only "got an unexpected keyword argument" or
    "missing ... required argument"."""
    if model is ToolInput:
        return None
    text = str(exc)
    missing = _MISSING_ARGUMENTS.search(text)
    if missing is not None:
        return _missing_of(text, re.findall(r"'([^']*)'", missing.group(1)), entry, model)
    found = _UNEXPECTED_KEYWORD.search(text)
    if found is None:
        return None
    keyword, model_name = found.group(1), model.__name__
    if keyword in model.model_fields or keyword in model.model_computed_fields:
        kind = "async def" if is_async else "def"
        hint = (
            f"{entry}() is given the fields of {model_name} by name, as its signature names "
            f"them; to be given the validated {model_name} instead, take it as the only "
            f"parameter, named input_data or annotated with {model_name}: "
            f"{kind} {entry}(self, input_data: {model_name})"
        )
    else:
        hint = (
            f"{keyword!r} is not a field of {model_name}, which keeps parameters it does not "
            f"declare and passes them on by name: add **kwargs to {entry}() to accept them, or "
            f'set model_config = ConfigDict(extra="forbid") on {model_name} to refuse them'
        )
    return TypeError(f"{exc}. {hint}")


def _missing_of(
    text: str, names: list[str], entry: str, model: type[ToolInput]
) -> TypeError | None:
    """The clear error for the entry point's "missing ... required argument" ``text``, when
    the parameters ``names`` it needs are ones ``model`` never passes: no fields of it, or
    fields declared ``Field(exclude=True)``."""
    model_name = model.__name__
    excluded = _excluded_fields(model)
    keeps_extras = model.model_config.get("extra") == "allow"
    hints: list[str] = []
    for name in names:
        if name in excluded:
            hints.append(
                f"{name!r} is a field of {model_name} declared Field(exclude=True), which is "
                f"never passed: drop exclude=True, or give it a default in {entry}()"
            )
        elif name not in model.model_fields and name not in model.model_computed_fields:
            given = (
                "the tool's description does not name it, and only a caller that gives it "
                "anyway (an extra parameter) runs the tool"
                if keeps_extras
                else f"{model_name} passes its fields alone, so no call can give it"
            )
            hints.append(
                f"{name!r} is not a field of {model_name}: {given}. Declare it as a field of "
                f"{model_name}, or give it a default in {entry}()"
            )
    return TypeError(f"{text}. {'; '.join(hints)}") if hints else None


def _parameters(
    func: Any, local_names: dict[str, Any] | None = None
) -> list[inspect.Parameter] | None:
    """``func``'s parameters, with string annotations resolved where they can be (in its
    module, then in ``local_names``: see :func:`_local_names`): one that cannot (a name
    imported only ``if TYPE_CHECKING:``, an attribute of a lazily loaded module that raises)
    stays a string, the others resolved. An annotation written quoted in a module with ``from
    __future__ import annotations`` (``x: "int"``, the text of a text) is resolved too, as
    ``typing.get_type_hints`` resolves it."""
    try:
        signature = inspect.signature(func, eval_str=True, locals=local_names)
        params = list(signature.parameters.values())
    except Exception:  # (whatever evaluating an annotation raised: resolved one by one below)
        try:
            params = list(inspect.signature(func).parameters.values())
        except (TypeError, ValueError):
            return None
    if not any(isinstance(p.annotation, str) for p in params):
        return params
    namespace = _globals_of(func)
    if namespace is None:
        return params
    return [
        p.replace(annotation=_resolved(p.annotation, namespace, local_names))
        if isinstance(p.annotation, str)
        else p
        for p in params
    ]


#: How many frames up :func:`_local_names` looks for the function that defined a tool.
_MAX_FRAMES_UP = 64
_IDENTIFIER = re.compile(r"[^\W\d]\w*")


def _caller() -> types.FrameType | None:
    """The frame of the caller of the function calling this.

    Read with ``sys._getframe``, never kept in a local of this function: a frame holding
    itself is a reference cycle that keeps every caller's locals until the garbage collector
    runs.
    """
    try:
        return sys._getframe(2)  # noqa: SLF001 (documented; unlike currentframe, no cycle)
    except ValueError:  # (called from the outermost frame)
        return None


def _local_names(func: Any, frame: types.FrameType | None) -> dict[str, Any] | None:
    """The local names of the function that defined ``func`` which ``func``'s string
    annotations use and its module does not resolve (``None``: none needed or found).

    With ``from __future__ import annotations``, ``def ship(address: Address)`` written inside
    a function annotates with the text ``"Address"``, which names a local class of that
    function: Python keeps it in ``func``'s closure only when the body uses it too. It is
    looked up there, then in the locals of the defining function's frame, found by its name
    and file among ``frame`` and its callers (a tool class is made, and
    ``create_simple_tool`` is mostly called, while that function runs). Only the names the
    annotations use are kept.
    """
    unwrapped = inspect.unwrap(func) if callable(func) else func
    made_of = _partialmethod_func(unwrapped)
    if made_of is not None:
        unwrapped = made_of
    while isinstance(unwrapped, functools.partial):
        unwrapped = inspect.unwrap(unwrapped.func)
    unwrapped = getattr(unwrapped, "__func__", unwrapped)
    qualname = getattr(unwrapped, "__qualname__", "")
    annotations = getattr(unwrapped, "__annotations__", None)
    if not isinstance(qualname, str) or ".<locals>." not in qualname:
        return None
    if not isinstance(annotations, dict):
        return None
    texts = [a for a in annotations.values() if isinstance(a, str)]
    quoted = [ref for a in annotations.values() for ref in _quoted_names(a)]
    params = _parameters(func) if texts else None
    if not quoted and (not params or not any(isinstance(p.annotation, str) for p in params)):
        return None
    texts += quoted
    wanted = {name for text in texts for name in _IDENTIFIER.findall(text)}
    found: dict[str, Any] = {}
    owner = qualname.rsplit(".<locals>.", 1)[0]
    own_code = getattr(unwrapped, "__code__", None)
    # (a function of the same name in another module is not the one that defined ``func``)
    filename = getattr(own_code, "co_filename", None)
    for _ in range(_MAX_FRAMES_UP):
        if frame is None:
            break
        code = frame.f_code
        if code.co_filename == filename and (
            getattr(code, "co_qualname", code.co_name) == owner
            or (not hasattr(code, "co_qualname") and code.co_name == owner.rsplit(".", 1)[-1])
        ):
            found.update((k, v) for k, v in frame.f_locals.items() if k in wanted)
            break
        frame = frame.f_back
    free_names = getattr(own_code, "co_freevars", ())
    cells = getattr(unwrapped, "__closure__", None) or ()
    for name, cell in zip(free_names, cells, strict=False):
        if name in wanted:
            with contextlib.suppress(ValueError):  # (an empty cell)
                found[name] = cell.cell_contents
    return found or None


def _quoted_names(annotation: Any, depth: int = 8) -> list[str]:
    """The quoted names inside a non-string ``annotation`` (``"Node"`` of ``list["Node"]``,
    ``Optional["Node"]``); a ``Literal``'s values are no names."""
    if isinstance(annotation, typing.ForwardRef):
        return [annotation.__forward_arg__]
    if depth == 0 or isinstance(annotation, str):
        return []
    try:
        if typing.get_origin(annotation) is Literal:
            return []
        args = typing.get_args(annotation)
    except Exception:
        return []
    return [
        name
        for arg in args
        for name in ([arg] if isinstance(arg, str) else _quoted_names(arg, depth - 1))
    ]


def _partialmethod_func(func: Any) -> Any:
    """What the ``functools.partialmethod`` that made ``func`` (its function through the
    class) wraps, or ``None`` for any other ``func``."""
    made_by = partialmethod_of(func)
    return None if made_by is None else made_by.func


def _globals_of(func: Any) -> dict[str, Any] | None:
    """The module namespace ``func``'s annotations are written in, or ``None``."""
    seen: set[int] = set()
    while id(func) not in seen:
        seen.add(id(func))
        made_of = _partialmethod_func(func)  # (whose ``__globals__`` are functools')
        if made_of is not None:
            func = made_of
            continue
        namespace = getattr(func, "__globals__", None)
        if isinstance(namespace, dict):
            return namespace
        if isinstance(func, functools.partial):
            func = func.func
        elif hasattr(func, "__func__"):  # (a bound method, a classmethod, a staticmethod)
            func = func.__func__
        elif hasattr(func, "__wrapped__"):
            func = func.__wrapped__
        elif not inspect.isroutine(func) and not isinstance(func, type) and callable(func):
            func = type(func).__call__
        else:
            return None
    return None


def _resolved(
    annotation: str, namespace: dict[str, Any], local_names: dict[str, Any] | None = None
) -> Any:
    """``annotation`` evaluated in ``namespace`` and ``local_names`` (as ``eval_str`` does),
    again while that gives a text (``"'int'"``, a quoted annotation under ``from __future__
    import annotations``), or the last text if it cannot be."""
    for _ in range(_MAX_QUOTES):
        try:
            resolved = eval(annotation, namespace, local_names)  # (as eval_str=True does)
        except Exception:
            return annotation
        if not isinstance(resolved, str):
            return resolved
        annotation = resolved
    return annotation


#: How many times :func:`_resolved` evaluates an annotation that gives a text again.
_MAX_QUOTES = 4


def _annotated_model(cls: type, attr: str) -> type[ToolInput] | None:
    """The :class:`ToolInput` subclass that the one parameter of a model-style ``cls.<attr>``
    is annotated with (``def _execute(self, input_data: ReadInput)``), or None (none, the bare
    ``ToolInput``, or an annotation that cannot be resolved)."""
    params = _entry_parameters(cls, attr)
    if not params:
        return None
    annotation = params[0].annotation
    return annotation if _is_input_class(annotation) and annotation is not ToolInput else None


def _check_entry_model(cls: type[BaseTool], model: Any) -> None:
    """Refuse a tool whose entry point takes its input annotated with a model that its
    ``input_model`` (``model``) is not, nor a subclass of: the entry point would be given input
    never validated as the model it names, and the tool be described without its fields.
    Only for a tool without an ``__init__`` of its own, which may set its own model.

    Raises:
        TypeError: Naming the entry point, both models and what to write.
    """
    expected = cls._entry_model
    if expected is None or not _is_input_class(model) or issubclass(model, expected):
        return
    entry = cls._entry_point
    params = _entry_parameters(cls, entry) or []
    taken = params[0].name if params else "input_data"
    raise TypeError(
        f"Tool class {cls.__name__}: {entry} takes {taken}: {expected.__name__}, but its "
        f"input_model is {model.__name__}, so it would be given a {model.__name__}, never "
        f"validated as a {expected.__name__}, and the tool be described without the fields "
        f"of {expected.__name__}. Set input_model = {expected.__name__} on the class"
    )


def _names_input_model(cls: type, annotation: Any) -> bool:
    """Whether an unresolved (string) annotation names the class's input model."""
    if not isinstance(annotation, str):
        return False
    model = getattr(cls, "input_model", None)
    return isinstance(model, type) and annotation.rsplit(".", 1)[-1] == model.__name__


#: Unicode categories a tool name must not hold: control and format characters (a line feed,
#: a tab, a right-to-left override, a zero-width space), surrogates and line separators.
_NOT_IN_NAMES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def _check_tool_name(name: str) -> None:
    """Refuse a tool name that cannot be shown on one line as it is.

    A tool's name is the registry key, the ``tool`` label of metrics, part of span names and
    of log lines: a line feed in it forges a log line, a right-to-left override or a zero-width
    space makes two names look alike, and surrounding space makes one name look like another.
    Letters of any script, digits, inner spaces and punctuation (``.``, ``-``, ``_``, ``:``)
    are fine. A blank name is refused by :func:`checked_name`, in its caller's words.

    Raises:
        ValueError: Naming the first bad character, its code point and its position.
    """
    for position, char in enumerate(name):
        outer = (position == 0 or position == len(name) - 1) and char.isspace()
        if outer or unicodedata.category(char) in _NOT_IN_NAMES:
            where = "leading or trailing space" if outer else "a control or format character"
            raise ValueError(
                f"Tool name {name!r} has {where}, {char!r} (U+{ord(char):04X}) at position "
                f"{position}: a tool name is a registry key, a metric label and part of span "
                "names and log lines, so it is one line of visible text without surrounding "
                "space (letters, digits, inner spaces and punctuation such as . - _ are fine)"
            )


def checked_name(name: Any, refusal: Callable[[Any], str]) -> str:
    """``name``, checked to be a tool name: non-blank text that can be shown on one line as
    it is (see :func:`_check_tool_name`). The class, ``create_simple_tool`` and the registry
    all check a name so, each saying in its own words what a blank name is refused for.

    Args:
        name: The name to check: any value (a class attribute or property may hold anything).
        refusal: Gives the message for ``name`` when it is not a string or is blank.

    Returns:
        The name as a plain ``str`` (a ``str`` subclass as its text: a registry key whose own
        hash, ``==`` or ``repr`` raised would break lookups and messages).

    Raises:
        ValueError: ``refusal(name)`` for a name that is not a string or is blank; else from
            :func:`_check_tool_name`.
    """
    if not isinstance(name, str):
        raise ValueError(refusal(name))
    text = name if type(name) is str else str.__str__(name)
    if not text.strip():
        raise ValueError(refusal(name))
    _check_tool_name(text)
    return text


def _not_text(value: Any, attribute: str) -> str:
    """What a refusal of ``value``, a tool's ``attribute`` that should be text, adds when it
    is no string: the value and its type (nothing for a blank string or ``None``, which are
    only missing)."""
    if value is None or isinstance(value, str):
        return ""
    return (
        f", got {reprlib.repr(value)} ({type_name(type(value))}): a tool's {attribute} is a string"
    )


def _read(tool: BaseTool, attribute: str, what: str) -> Any:
    """``tool.<attribute>``, or a ``TypeError`` saying that reading it raised (a property of
    the tool's class), naming ``what`` (the tool), the attribute and the exception.

    Raises:
        TypeError: From the exception reading it raised.
    """
    try:
        return getattr(tool, attribute)
    except Exception as exc:
        if propagates(exc):
            raise
        raise TypeError(
            f"{what}: reading its {attribute!r} raised {type_name(type(exc))}: "
            f"{exception_message(exc)}; a tool's {attribute} is read when it is made, "
            "registered and described, so reading it must not raise"
        ) from exc


def read_name(tool: BaseTool) -> Any:
    """``tool.name``, or a ``TypeError`` naming the tool's class when reading it raises (a
    property of the tool's class): see :func:`_read`. Not yet checked to be a valid name.

    Raises:
        TypeError: From the exception reading it raised.
    """
    return _read(tool, "name", f"Tool class {type_name(type(tool))}")


def _permission_set(tool_name: str, permissions: Any) -> set[Permission]:
    """``permissions`` as a set of :class:`Permission` (``None``: none), refusing a single one
    given bare and anything that is not one, with a ``ValueError`` listing the permissions."""
    if permissions is None:
        return set()
    if isinstance(permissions, (str, bytes)):
        shown = shown_value(
            str.__str__(permissions) if isinstance(permissions, str) else permissions
        )
        raise ValueError(
            f"Tool {tool_name!r}: permissions must be a set of permissions, such as "
            f"{{Permission.SHELL_EXECUTE}}, not the single value {shown}"
        )
    try:
        # (a str subclass by its text; another value's lookup may raise in its hash or ==)
        return {Permission(str.__str__(p) if isinstance(p, str) else p) for p in permissions}
    except Exception as exc:
        if propagates(exc):
            raise
    known = ", ".join(p.value for p in Permission)
    raise ValueError(
        f"Tool {tool_name!r}: permissions must be a set of permissions, each a Permission or "
        f"one of {known}; got {shown_value(permissions)}"
    ) from None


def checked_attributes(tool: BaseTool, name: str) -> tuple[ToolCategory, set[Permission]]:
    """Check the class attributes of ``tool``, whose name ``name`` was checked (see
    :func:`checked_name`), as the constructor does; the tool is left as it is (the registry
    checks a tool whose own ``__init__`` skipped the constructor, and one changed since it was
    made).

    Returns:
        The tool's category as a :class:`ToolCategory` and its permissions as a set of
        :class:`Permission`, as the constructor stores them.

    Raises:
        ValueError: An empty description, an invalid category or permission, or
            a ``tool_type`` none of :data:`TOOL_TYPES`.
        TypeError: An ``input_model`` that is no :class:`ToolInput` subclass, an ``is_async``
            that does not match the base class, or an attribute (a property) whose reading
            raised.
    """
    what = f"Tool {name!r}"
    description = _read(tool, "description", what)
    if not isinstance(description, str) or not description.strip():
        raise ValueError(
            f"Tool {name!r} must define a non-empty 'description'"
            f"{_not_text(description, 'description')}"
        )
    model = _read(tool, "input_model", what)
    if not _is_input_class(model):
        raise TypeError(f"Tool {name!r}: input_model must be a ToolInput subclass")
    category = _category_of(name, _read(tool, "category", what))
    permissions = _permission_set(name, _read(tool, "required_permissions", what))
    _check_kind(tool, what)
    return category, permissions


#: The valid values of a tool's ``category``: the members and their values.
_CATEGORY_VALUES = frozenset({*ToolCategory, *(c.value for c in ToolCategory)})


def _category_of(tool_name: str, category: Any) -> ToolCategory:
    """``category`` as a :class:`ToolCategory`, or a ``ValueError`` listing the categories.

    The value is looked up before ``ToolCategory`` is called with it: the enum's own refusal
    would quote its ``repr()``, which may raise, or recurse (a function assigned to a tool
    class's ``category`` is a method of the tool, whose repr shows the tool's, its category
    included)."""
    why = ""
    try:
        if category in _CATEGORY_VALUES:
            return ToolCategory(category)
    except Exception as exc:  # (a hash or an equality that raises)
        why = f", whose hash or equality raised {type_name(type(exc))}"
    known = ", ".join(c.value for c in ToolCategory)
    raise ValueError(
        f"Tool {tool_name!r}: category must be a ToolCategory or one of {known}; "
        f"got {shown_value(category)}{why}"
    ) from None


def shown_value(value: Any) -> str:
    """A short repr of ``value`` that never raises: a method by the function it binds (a
    function assigned to a tool class's attribute), a value whose repr raises by its type."""
    # (its exact type: an isinstance() check reads the value's ``__class__``, which may raise)
    if type(value) is types.MethodType:
        function = value.__func__
        return f"the function {getattr(function, '__qualname__', type_name(type(function)))}"
    try:
        return reprlib.repr(value)
    except Exception:
        return f"<{type_name(type(value))} object>"


#: The tool types of the OpenTelemetry GenAI conventions (``gen_ai.tool.type``).
TOOL_TYPES = ("function", "extension", "datastore")


def _check_kind(tool: BaseTool, what: str) -> None:
    """Refuse a tool whose ``is_async`` does not match its base class, or whose ``tool_type``
    is none of :data:`TOOL_TYPES`: either would fail each run, or lose the type unsaid. Either
    read raising (a property) is refused as :func:`_read` says, naming ``what`` (the tool)."""
    is_async = _read(tool, "is_async", what)
    runs_async = isinstance(tool, AsyncBaseTool)
    if is_async is True:  # (the executor awaits its run_raising_async)
        matches = callable(getattr(tool, "run_raising_async", None))
    else:
        matches = is_async is False and not runs_async
    if not matches:
        raise TypeError(
            f"{what}: is_async is {shown_value(is_async)}, but the tool is "
            f"{'an AsyncBaseTool' if runs_async else 'a synchronous BaseTool'}: leave is_async "
            "to the base class (subclass AsyncBaseTool and define _execute_async for a tool "
            "whose work is a coroutine)"
        )
    tool_type = _read(tool, "tool_type", what)
    if not (isinstance(tool_type, str) and tool_type in TOOL_TYPES):
        raise ValueError(
            f"{what}: tool_type must be one of {', '.join(TOOL_TYPES)}, got "
            f"{shown_value(tool_type)}"
        )


def _failure(exc: Exception) -> ToolOutput:
    """Turn an exception into a failed :class:`ToolOutput`, or re-raise a control-flow one.
    Never raises otherwise: an exception class that hides its name (a metaclass's doing) is
    named by the name it was created with, a message that cannot be turned into text by its
    class name and a note. A ``KeyboardInterrupt`` raised while its message is turned into
    text (a Ctrl-C landing in its ``__str__``) goes on, as one the tool raised itself would."""
    if propagates(exc):
        raise exc
    return error_output(as_raised(exc))  # (an async tool's StopIteration, not a RuntimeError)


def base_exception_output(tool: BaseTool, exc: BaseException) -> ToolOutput:
    """The failed :class:`ToolOutput` of a ``BaseException`` other than ``KeyboardInterrupt``
    that a tool raised (``GeneratorExit``, ``SystemExit``, a library's own), as an executor
    fails the tool's task for it: ``execute`` never raises. A ``CancelledError`` out of a
    synchronous call is the tool's own (nothing can cancel such a call)."""
    if propagates(exc):
        raise exc
    if isinstance(exc, asyncio.CancelledError):
        return _cancelled_from_inside(tool)
    return error_output(exc)


def _cancelled_from_inside(tool: BaseTool) -> ToolOutput:
    """The failed :class:`ToolOutput` of a tool that raised ``CancelledError`` though nothing
    cancelled its call (named by its class when its name cannot be read)."""
    try:
        name = repr(str(tool.name))
    except Exception:
        name = f"of class {type_name(type(tool))}"
    return ToolOutput(
        success=False,
        error=f"Tool {name} was cancelled from inside (CancelledError)",
        metadata={"error_type": "CancelledError"},
    )


def _running_task() -> asyncio.Task[Any] | None:
    """The asyncio task running now, or ``None`` (no task, or no running event loop)."""
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None


def error_output(exc: BaseException) -> ToolOutput:
    """A failed :class:`ToolOutput` saying what ``exc`` says, its class name as the error
    type. A ``KeyboardInterrupt`` raised while its message is turned into text (a Ctrl-C
    landing in its ``__str__``) is raised instead."""
    message, interrupt = message_and_interrupt(exc)
    if interrupt is not None:
        raise interrupt from None  # (its context would be printed through that __str__)
    return ToolOutput(success=False, error=message, metadata={"error_type": type_name(type(exc))})


#: Per input model: the fields declared ``Field(exclude=True)``, which ``model_dump()`` leaves
#: out and so do the values passed by name.
_EXCLUDED_FIELDS: weakref.WeakKeyDictionary[type, tuple[str, ...]] = weakref.WeakKeyDictionary()


def _excluded_fields(model: type[ToolInput]) -> tuple[str, ...]:
    """The fields of ``model`` declared ``Field(exclude=True)`` (looked up once per model)."""
    excluded = _EXCLUDED_FIELDS.get(model)
    if excluded is None:
        excluded = tuple(name for name, info in model.model_fields.items() if info.exclude)
        _EXCLUDED_FIELDS[model] = excluded
    return excluded


def _validated_values(input_data: ToolInput, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` (the model's fields, as given) without those declared ``Field(exclude=True)``
    (``model_dump()`` never gave them), with the model's computed fields and its extras added;
    an extra never replaces a field (a caller who passed both a field's alias and its name
    gets the validated field)."""
    model = type(input_data)
    for name in _excluded_fields(model):
        values.pop(name, None)
    if model.model_computed_fields:
        for name in model.model_computed_fields:
            values[name] = getattr(input_data, name)
    extra = input_data.__pydantic_extra__
    if extra:
        for name, value in extra.items():
            values.setdefault(name, value)
    return values


#: What calling a function may give instead of doing its work: nothing of it ran yet.
_COROUTINE = types.CoroutineType
_GENERATORS = frozenset({types.GeneratorType, types.AsyncGeneratorType})
_NOT_RUN = frozenset({_COROUTINE, *_GENERATORS})


def _a(kind: str) -> str:
    """``kind`` ("generator" or "async generator") with its article."""
    return f"an {kind}" if kind.startswith("a") else f"a {kind}"


def _kind_of(generator: Any) -> str:
    """What ``generator`` (one of :data:`_GENERATORS`) is: "generator" or "async generator"."""
    return "async generator" if type(generator) is types.AsyncGeneratorType else "generator"


def _collected(kind: str) -> str:
    """The expression collecting the items of a ``kind`` ("generator" or "async generator")."""
    return "[item async for item in ...]" if kind == "async generator" else "list(...)"


def _how_to_return(kind: str) -> str:
    """What to write instead of a ``kind`` ("generator" or "async generator") function."""
    return f"collect the items and return them (return {_collected(kind)})"


#: What a ``functools.partialmethod`` may wrap around the function whose body runs.
_METHOD_WRAPPERS = (functools.partialmethod, staticmethod, classmethod)


def _entry_code(cls: type, attr: str) -> Any:
    """The callable whose body runs when ``cls.<attr>`` is called (``None`` if there is none):
    :func:`_entry_function`'s, but for a ``functools.partialmethod`` the function it wraps (a
    static or class method's own). The function a partialmethod makes through its class is
    neither a generator nor a coroutine function to ``inspect`` before Python 3.13, nor is the
    ``functools.partial`` it makes of a class method's bound method on any Python."""
    raw = inspect.getattr_static(cls, attr, None)
    if not isinstance(raw, functools.partialmethod):
        return _entry_function(cls, attr)[0]
    func: Any = raw
    seen: set[int] = set()
    while isinstance(func, _METHOD_WRAPPERS) and id(func) not in seen:
        seen.add(id(func))
        func = func.func if isinstance(func, functools.partialmethod) else func.__func__
    return func


def _generator_entry(cls: type, attr: str) -> str | None:
    """What kind of generator function ``cls.<attr>`` is (``None``: none)."""
    func = _entry_code(cls, attr)
    return generator_kind(func) if func is not None else None


#: The methods through which a tool is run: a class overriding one runs ``_validate`` itself.
_RUNNERS = ("execute", "run_raising", "execute_async", "run_raising_async")

#: What to write instead of a ``_validate`` whose body never runs.
_VALIDATE_ADVICE = (
    "Make it a plain def _validate(self, input_data) that raises to refuse the input (an "
    "asynchronous check goes at the start of _execute_async)"
)


def _check_validate_hook(cls: type) -> None:
    """Refuse ``cls`` when its ``_validate`` is an ``async def`` or a generator function: it
    is called, never awaited or iterated, so its body (the checks) would never run, and the
    tool would run on input it meant to refuse. A class that runs itself (overrides
    ``execute`` or ``run_raising``, or their async forms) may await its own hook.

    Raises:
        TypeError: Saying what to write instead.
    """
    func = _entry_code(cls, "_validate")
    if func is None or func is BaseTool.__dict__["_validate"]:
        return
    kind = generator_kind(func)
    if kind is None and not is_coroutine_function(func):
        return
    for klass in cls.__mro__:
        if klass.__module__ == __name__:  # (the base classes: they never await it)
            break
        if any(name in klass.__dict__ for name in _RUNNERS):
            return
    what = "an async def function" if kind is None else f"{_a(kind)} function (it contains yield)"
    raise TypeError(
        f"Tool class {cls.__name__}: _validate is {what}, which a tool calls but never "
        f"awaits or iterates, so its checks would never run and the tool would run on input "
        f"it meant to refuse. {_VALIDATE_ADVICE}"
    )


def _check_validate_result(tool: str, checked: object) -> None:
    """Fail a run whose ``_validate`` returned a coroutine, a generator or another awaitable
    (an ``async def`` hook behind a decorator): its checks never ran. A coroutine is closed,
    so Python does not warn later that it was never awaited.

    Raises:
        TypeError: Saying so and what to write instead.
    """
    if type(checked) is _COROUTINE:
        checked.close()
        what = "a coroutine"
    elif type(checked) in _GENERATORS:
        what = _a(_kind_of(checked))
    elif inspect.isawaitable(checked):
        what = "an awaitable"
    else:
        return
    raise TypeError(
        f"Tool {shown_name(tool)!r}: _validate returned {what}, which was not run, so its "
        f"checks never ran and the input was not checked. {_VALIDATE_ADVICE}"
    )


def _not_run(tool: str, result: Any, instead: str) -> TypeError:
    """The error for a tool having returned ``result``, a coroutine or generator whose work
    never ran (a coroutine is closed first, so Python does not warn that it was never
    awaited). ``instead``: what to write, for a coroutine."""
    if type(result) is _COROUTINE:
        result.close()
        return TypeError(
            f"Synchronous tool {shown_name(tool)!r} returned a coroutine, which was not run: "
            f"{instead}"
        )
    kind = _kind_of(result)
    return TypeError(
        f"Tool {shown_name(tool)!r} returned {_a(kind)}, which was not run: a tool returns its "
        f"result, not a generator for the caller to consume later; {_how_to_return(kind)}"
    )


def _refuse_pending(tool: str, result: Any) -> None:
    """Raise :func:`missing_await_error` when ``result`` is an awaitable, or a successful
    :class:`ToolOutput` holding one (as the executor reads it), instead of the tool's value (a
    missing ``await``): an asyncio ``Future`` or ``Task``, or an object with ``__await__``.
    Results of the types returned most (:data:`PLAIN_TYPES`, also as a ``ToolOutput``'s data)
    pass by one lookup: this runs after every tool run. A value that cannot be inspected (a
    proxy whose ``__class__`` raises) passes too."""
    kind = type(result)
    if kind in PLAIN_TYPES or (kind is ToolOutput and type(result.data) in PLAIN_TYPES):
        return
    try:
        if isinstance(result, ToolOutput):
            if not result.success:
                return
            result = result.data
        pending = isinstance(result, Awaitable)
    except Exception:
        return
    if pending:
        raise missing_await_error(f"Tool {shown_name(tool)!r} returned", result)


def missing_await_error(subject: str, awaitable: Any) -> TypeError:
    """The error for ``awaitable`` given where its value was due (a missing ``await``), after
    ``subject`` ("Tool 'x' returned", "ToolOutput.data is"): the tools and the executor word
    it so. A coroutine is closed (nothing will await it); any other awaitable (an asyncio
    ``Future`` or ``Task``) is left as it is: it may be shared, and a task the tool started
    runs on as the tool left it."""
    if type(awaitable) is _COROUTINE:
        with contextlib.suppress(Exception):
            awaitable.close()
        name = getattr(awaitable, "__qualname__", None) or "a coroutine"
        what = f"the coroutine {shorten(str(name), 128)}() instead of its value"
        after = "the coroutine was closed, never run"
    else:
        if isinstance(awaitable, asyncio.Task):
            name = "an asyncio Task"
        elif isinstance(awaitable, asyncio.Future):
            name = "an asyncio Future"
        else:
            name = f"a {shorten(type(awaitable).__qualname__, 128)} object"
        what = f"{name}, an awaitable, instead of its value"
        after = "nothing awaited it"
    return TypeError(f"{subject} {what}: a missing 'await' in the tool? ({after})")


#: The async tool classes whose plain ``_execute_async`` was found to return its value (see
#: :func:`_ran_synchronously`): each is told once.
_TOLD_SYNCHRONOUS: weakref.WeakSet[type] = weakref.WeakSet()

_logger = logging.getLogger("laios.tools")


def _ran_synchronously(cls: type, tool: str, result: Any) -> None:
    """Tell, once per class, that async tool class ``cls``'s ``_execute_async`` (a plain
    ``def``, or a decorator's) returned ``result``, no awaitable: its work ran synchronously on
    the event loop, blocking everything else on it. The run keeps its result: the work is
    done, and failing it would have a retry do it again."""
    if cls in _TOLD_SYNCHRONOUS:
        return
    _TOLD_SYNCHRONOUS.add(cls)
    entry = getattr(cls, "_entry_point", "_execute_async")
    _logger.warning(
        "Tool %r: %s.%s returned a value of type %s, not an awaitable: it is a plain def, so "
        "its work ran synchronously on the event loop, blocking everything else on it. "
        "Write it as async def %s (awaiting what it waits on), or, for synchronous work, "
        "subclass BaseTool and name the method _execute: the executor runs a synchronous "
        "tool off the event loop (told once per tool class)",
        shown_name(tool),
        cls.__name__,
        entry,
        shorten(type_name(type(result)), 128),
        entry,
    )


def _coroutine_advice(cls: type) -> str:
    """What a synchronous tool class ``cls`` whose entry point returned a coroutine should do
    instead: an ``async def _execute`` on a :class:`BaseTool` is never awaited, and moves to
    ``_execute_async`` on an :class:`AsyncBaseTool`; any other entry point forgot an ``await``."""
    entry = getattr(cls, "_entry_point", "_execute")
    func = _entry_code(cls, entry)
    if func is not None and is_coroutine_function(func):
        return (
            f"{cls.__name__} defines async def {entry}, which a BaseTool never awaits; "
            "subclass AsyncBaseTool instead and name the method _execute_async"
        )
    simple = cls.__dict__.get("_simple_function")
    hidden = _hidden_coroutine_function(simple if simple is not None else func)
    if hidden is not None and simple is not None:
        return (
            f"{hidden} is an async def function behind a decorator whose wrapper is a plain "
            "def, so the tool took it for a synchronous function and never awaited it: make "
            "the wrapper an async def that awaits it, or mark the wrapper with "
            "inspect.markcoroutinefunction (Python 3.12+)"
        )
    if hidden is not None:
        return (
            f"{cls.__name__}.{entry} is an async def function behind a decorator whose "
            "wrapper is a plain def, so a BaseTool never awaits it: subclass AsyncBaseTool "
            "and name the method _execute_async (which awaits what it returns)"
        )
    return "write the work as an async def function (or an AsyncBaseTool) so it is awaited"


def _hidden_coroutine_function(func: Any) -> str | None:
    """The name of the ``async def`` function that ``func``, no coroutine function itself,
    wraps (``functools.wraps`` of a decorator whose wrapper is a plain ``def``); ``None`` for
    any other ``func``. Never raises."""
    if func is None:
        return None
    try:
        inner = inspect.unwrap(func)
        if inner is func or not is_coroutine_function(inner):
            return None
    except Exception:  # (a cycle of __wrapped__, an attribute that raises)
        return None
    name = getattr(inner, "__qualname__", None)
    return shorten(name, 128) if isinstance(name, str) else "func"


#: Types of the values a tool returns most, none of them awaitable nor a :class:`ToolOutput`:
#: the tools and the executor ask no more of a result (or a ``ToolOutput``'s data) of one of
#: them (one lookup).
PLAIN_TYPES = frozenset({type(None), bool, int, float, str, bytes, list, tuple, dict, set})


def _wrap(value: Any) -> ToolOutput:
    """Return ``value`` if it is a :class:`ToolOutput`, else a successful output holding it."""
    # (a proxy whose backend is down, whose isinstance raises before pydantic 2.10, is no
    # ToolOutput, but a value like any other)
    if is_instance(value, ToolOutput):
        return value
    # Every field is given and valid, so validation is skipped (this is every tool's hot path).
    return construct(ToolOutput, {"success": True, "data": value, "error": None, "metadata": {}})


class BaseTool(abc.ABC):
    """Abstract base class of all tools.

    Subclasses set the class attributes below and implement ``_execute``. Exceptions whose class
    has the attribute ``_laios_propagate = True`` pass through :meth:`execute` unchanged, as
    does a ``KeyboardInterrupt``; every other exception (``SystemExit`` and ``GeneratorExit``
    too) becomes a failed :class:`ToolOutput`.

    Attributes:
        name: Unique tool name; must not be blank.
        description: What the tool does; must not be empty.
        category: Broad area the tool works in: a :class:`ToolCategory` member or its value
            (``"data"``); each instance holds the member.
        required_permissions: Permissions the tool needs. Each instance holds its own copy.
        input_model: Model that validates the keyword arguments of :meth:`execute`.
        tool_type: What kind of tool it is, as the OpenTelemetry GenAI conventions name it on
            the task span (``gen_ai.tool.type``): ``"function"`` (the default), ``"extension"``
            (calls an external API on the agent's side) or ``"datastore"`` (retrieves data).
        is_async: Whether the tool's work is a coroutine. False here; :class:`AsyncBaseTool`
            sets it to True. An executor running inside an event loop should await
            :meth:`AsyncBaseTool.execute_async` for tools where this is True.
    """

    name: str = ""
    description: str = ""
    category: ToolCategory | ToolCategoryValue = ToolCategory.CUSTOM
    required_permissions: set[Permission] = set()
    input_model: type[ToolInput] = ToolInput
    is_async: ClassVar[bool] = False
    tool_type: ClassVar[str] = "function"

    _entry_point: ClassVar[str] = "_execute"
    _kwargs_style: ClassVar[bool] = True
    #: The entry point's first parameter, when a parameter of that name would clash with it.
    _bound_name: ClassVar[str | None] = None
    #: A keyword-style entry point that takes ``**kwargs`` alone gets ``model_dump()``.
    _dumps_input: ClassVar[bool] = False
    #: The local names of the function defining the class that the entry point's string
    #: annotations use (see :func:`_local_names`); ``None``: none needed or found.
    _annotation_locals: ClassVar[dict[str, Any] | None] = None
    #: The model a model-style entry point's input is annotated with (``def _execute(self,
    #: input_data: ReadInput)``), if any: see :func:`_check_entry_model`.
    _entry_model: ClassVar[type[ToolInput] | None] = None
    #: Whether a run may hand the keyword arguments to the entry point as they are; set by
    #: ``__init__``. False here, for a tool whose own ``__init__`` does not call the base
    #: class's: its runs take the validating road.
    _passthrough: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Record once per class how its entry point (``_execute``) takes its input."""
        super().__init_subclass__(**kwargs)
        entry = cls._entry_point
        kind = _generator_entry(cls, entry)
        if kind is not None:
            raise TypeError(
                f"Tool class {cls.__name__}: {entry} is {_a(kind)} function (it contains "
                f"yield), so calling it would return {_a(kind)} whose body never runs, "
                "and the tool would succeed without doing its work. Return the result instead: "
                f"{_how_to_return(kind)}, and report progress along the way with "
                "current_task().progress(...)"
            )
        _check_not_property(cls, entry)
        if entry == "_execute" and cls.execute is BaseTool.execute:
            func = _entry_code(cls, entry)
            if func is not None and is_coroutine_function(func):  # never awaited: refused now
                raise TypeError(f"Tool class {cls.__name__}: {_coroutine_advice(cls)}")
        _check_validate_hook(cls)
        if entry in cls.__dict__:  # (an inherited entry point keeps what was found for it)
            cls._annotation_locals = _local_names(_entry_function(cls, entry)[0], _caller())
        cls._kwargs_style = _uses_kwargs_style(cls, entry)
        cls._entry_model = None
        if not cls._kwargs_style:
            _check_one_argument(cls, entry)
            cls._entry_model = _annotated_model(cls, entry)
        else:
            _check_keyword_only_input(cls, entry)
            _check_fields_taken(cls, entry)
        cls._bound_name = bound = _bound_name(cls, entry)
        model = getattr(cls, "input_model", None)
        if (
            cls._kwargs_style
            and bound is not None
            and _is_input_class(model)
            and bound in model.model_fields
        ):
            raise _name_clash(
                f"Tool class {cls.__name__}: its input model {model.__name__} declares",
                entry,
                bound,
            )
        if "_dumps_input" not in cls.__dict__:  # (create_simple_tool says for its function)
            cls._dumps_input = _only_var_keyword(*_entry_function(cls, cls._entry_point))

    def __init__(self) -> None:
        """Check the class attributes and give the instance its own permission set.

        Raises:
            ValueError: If ``name`` is missing or blank, has a control or format character
                or surrounding space (see :func:`_check_tool_name`), ``description`` is empty,
                ``category`` or a permission is not a valid enum value,
                ``required_permissions`` is a single permission rather than a set, or
                ``tool_type`` is none of :data:`TOOL_TYPES`.
            TypeError: If ``input_model`` is not a subclass of :class:`ToolInput`, or (for a
                class without an ``__init__`` of its own) not the model the entry point takes
                its input annotated with, nor a subclass of it; ``is_async`` does not match
                the base class (``True`` on an :class:`AsyncBaseTool` only), or reading
                ``name``, ``description``, ``category``, ``required_permissions`` or
                ``input_model`` (a property) raises.
        """
        cls = type(self)
        read = read_name(self)
        name = checked_name(
            read,
            lambda given: (
                f"Tool class {cls.__name__} must define a non-blank 'name'"
                f"{_not_text(given, 'name')}"
            ),
        )
        if type(read) is not str:
            # (a str subclass of the class's own, kept as its text: see checked_name)
            with contextlib.suppress(AttributeError):  # (a read-only property: read as it is)
                self.name = name
        self.category, self.required_permissions = checked_attributes(self, name)
        if cls._entry_model is not None and cls.__init__ is BaseTool.__init__:
            _check_entry_model(cls, self.input_model)
        # Bare ToolInput, no _validate hook, keyword style: the entry point (``_execute`` or
        # ``_execute_async``) takes the keyword arguments as they are.
        self._passthrough = (
            self._kwargs_style
            and self.input_model is ToolInput
            and cls._validate is BaseTool._validate
        )

    @reprlib.recursive_repr()
    def __repr__(self) -> str:
        """Return a short description with the tool's class, name and category (as the tool
        holds it when it is no valid one: a tool whose ``__init__`` skipped the checks; a
        category that is a method of the tool, whose repr shows the tool's, shows it as
        ``...`` the second time)."""
        category = self.category
        if isinstance(category, str) and category in _CATEGORY_VALUES:
            category = ToolCategory(category).value
        return f"{type(self).__name__}(name={self.name!r}, category={category!r})"

    def execute(self, /, **kwargs: Any) -> ToolOutput:
        """Validate ``kwargs``, run the tool and return its output. Never raises.

        Args:
            **kwargs: The tool's parameters.

        Returns:
            The :class:`ToolOutput` the tool returned, a successful output wrapping any other
            return value, or a failed output (``metadata["error_type"]`` names the exception)
            when validation or the tool raised.
        """
        try:
            result = self.run_raising(**kwargs)
        except Exception as exc:
            return _failure(exc)
        except KeyboardInterrupt:
            raise  # (the caller's Ctrl-C, as under an executor)
        except BaseException as exc:  # GeneratorExit, SystemExit, a library's own
            return base_exception_output(self, exc)
        return _wrap(result)

    def _entry_error(self, exc: TypeError) -> TypeError | None:
        """The clear error for ``exc`` when calling the entry point itself failed (a
        parameter named as its instance, a field it has no name for); ``None`` when ``exc``
        is the tool's own (raised inside the entry point, or before it was called)."""
        trace = exc.__traceback__
        if trace is None or trace.tb_next is not None:  # (raised inside a call, not by one)
            return None
        clear = _clash_of(exc, self.name, self._entry_point, self._bound_name)
        if clear is None and self._kwargs_style:
            clear = _mismatch_of(exc, self._entry_point, self.input_model, self.is_async)
        return clear

    def run_raising(self, /, **kwargs: Any) -> Any:
        """Validate ``kwargs`` and run the tool, letting any exception out.

        :meth:`execute` is this plus turning exceptions into a failed :class:`ToolOutput`.
        An executor calls this instead (when ``execute`` is not overridden) so that it gets
        the exception itself, for the task span, rather than only its message.

        Args:
            **kwargs: The tool's parameters.

        Returns:
            What ``_execute`` returned: a :class:`ToolOutput` or any other value.

        Raises:
            TypeError: If ``_execute`` returned a coroutine (it is closed, never run), a
                generator, or another awaitable (an asyncio ``Future`` or ``Task``, left as it
                is: a missing ``await``), also as the data of a successful
                :class:`ToolOutput`: the work it stands for would otherwise be reported done
                without having run, or while still running.
        """
        try:
            # Bare ToolInput, no _validate hook, keyword style: nothing to build or check
            # (unless the instance was given a model of its own since it was made).
            if self._passthrough and self.input_model is ToolInput:
                result = self._execute(**kwargs)
            else:
                input_data = self._build_input(kwargs)
                # (typed to return nothing, but an async def hook behind a decorator returns)
                checked: object = self._validate(input_data)  # type: ignore[func-returns-value]
                if checked is not None:
                    _check_validate_result(self.name, checked)
                if self._kwargs_style:
                    result = self._execute(**self._as_kwargs(input_data, kwargs))
                else:
                    result = self._execute(input_data)
        except TypeError as exc:
            clear = self._entry_error(exc)
            if clear is None:
                raise
            raise clear from None
        if type(result) in _NOT_RUN:  # (one lookup: this is every tool's hot path)
            raise _not_run(self.name, result, _coroutine_advice(type(self)))
        _refuse_pending(self.name, result)
        return result

    @abc.abstractmethod
    def _execute(self, *args: Any, **kwargs: Any) -> Any:
        """Run the tool's logic; written as ``(self, input_data)`` or ``(self, **kwargs)``.

        Returns:
            A :class:`ToolOutput`, or any value to wrap in a successful one.
        """

    def _validate(self, input_data: Any) -> None:  # noqa: B027 (optional hook)
        """Check the validated input before the tool runs. Does nothing by default.

        Typed ``Any`` like ``_execute``'s input, so that a subclass may annotate it with its
        own ``input_model`` (``def _validate(self, input_data: MyInput)``).

        Args:
            input_data: The validated input (an instance of ``input_model``).

        Raises:
            Exception: Any exception aborts the run with a failed output.
        """

    def _build_input(self, kwargs: dict[str, Any]) -> ToolInput:
        """Validate ``kwargs`` with ``input_model``; the bare :class:`ToolInput` skips it.

        Raises:
            ValidationError: If ``kwargs`` are not valid; it quotes no key of a mapping in
                them (as it quotes no value), unless the model quotes its input.
        """
        if self.input_model is ToolInput:
            return ToolInput.model_construct(**kwargs)
        try:
            return self.input_model.model_validate(kwargs)
        except ValidationError as exc:
            hidden = without_input_keys(exc, self.input_model, kwargs)
            if hidden is None:
                raise
            raise hidden from None

    def _as_kwargs(self, input_data: ToolInput, raw: dict[str, Any]) -> dict[str, Any]:
        """Return the keyword arguments for a keyword-style entry point: for named parameters,
        the validated values as the model holds them (a field typed with a model or a
        dataclass gives an instance of it), extra parameters and computed fields included,
        fields declared ``Field(exclude=True)`` left out (as ``model_dump()`` leaves them); for
        ``**kwargs`` alone, the model's ``model_dump()``, as such tools have always had it."""
        if self.input_model is ToolInput:
            return raw
        if self._dumps_input:
            return input_data.model_dump()
        return _validated_values(input_data, dict(input_data.__dict__))

    def get_parameters(self) -> list[ToolParameter]:
        """Describe the tool's parameters from the JSON schema of ``input_model``; with the
        bare :class:`ToolInput`, from the named parameters of the entry point (``def
        _execute(self, path, limit=10)``: ``path``, required, and ``limit``), which then are
        all there is to go by (the input itself still passes through unvalidated).

        Returns:
            One :class:`~laios.core.types.ToolParameter` per field, in declaration order.
        """
        model = self.input_model
        if model is ToolInput and self._kwargs_style:
            model = _signature_model(type(self))
        return parameters_from_model(model)

    def get_schema(self) -> dict[str, Any]:
        """Describe the tool as a plain dictionary.

        Returns:
            A dict with ``name``, ``description``, ``category`` (the value string),
            ``parameters`` (list of parameter dicts) and ``permissions`` (sorted values).
        """
        return {
            "name": self.name,
            "description": self.description,
            "category": _category_of(self.name, self.category).value,
            "parameters": [p.model_dump() for p in self.get_parameters()],
            "permissions": sorted(
                p.value for p in _permission_set(self.name, self.required_permissions)
            ),
        }


class AsyncBaseTool(BaseTool):
    """Base class of tools whose work is a coroutine.

    Subclasses implement ``async def _execute_async(self, input_data)`` or
    ``async def _execute_async(self, **kwargs)``; the style is detected as for ``_execute``.
    A plain ``def`` returning an awaitable is awaited; one returning its value keeps it, and
    a warning (once per class, logger ``laios.tools``) says that its work ran synchronously
    on the event loop, blocking it.
    """

    is_async: ClassVar[bool] = True
    _entry_point: ClassVar[str] = "_execute_async"

    def _execute(self, *args: Any, **kwargs: Any) -> Any:
        """Refuse synchronous use; asynchronous tools run through :meth:`execute_async`.

        Raises:
            NotImplementedError: Always.
        """
        raise NotImplementedError(
            f"{type(self).__name__} is asynchronous: call execute_async() instead of _execute()"
        )

    @abc.abstractmethod
    async def _execute_async(self, *args: Any, **kwargs: Any) -> Any:
        """Run the tool's logic; written as ``(self, input_data)`` or ``(self, **kwargs)``.

        Returns:
            A :class:`ToolOutput`, or any value to wrap in a successful one.
        """

    async def execute_async(self, /, **kwargs: Any) -> ToolOutput:
        """Validate ``kwargs``, await the tool and return its output. Never raises.

        Args:
            **kwargs: The tool's parameters.

        Returns:
            The tool's :class:`ToolOutput`, a successful output wrapping any other return
            value, or a failed output when validation or the tool raised.
        """
        task = _running_task()
        try:
            result = await self.run_raising_async(**kwargs)
        except Exception as exc:
            return _failure(exc)
        except (KeyboardInterrupt, asyncio.CancelledError):
            raise  # (the caller's Ctrl-C or cancellation)
        except GeneratorExit as exc:
            if task is None or _running_task() is not task:
                raise  # this coroutine is closed, never to resume: not the tool's
            return error_output(exc)  # raised by the tool, as the task running it ran it
        except BaseException as exc:  # SystemExit, a library's own
            return base_exception_output(self, exc)
        return _wrap(result)

    async def run_raising_async(self, /, **kwargs: Any) -> Any:
        """Validate ``kwargs`` and await the tool, letting any exception out.

        :meth:`execute_async` is this plus turning exceptions into a failed
        :class:`ToolOutput` (see :meth:`BaseTool.run_raising`).

        Args:
            **kwargs: The tool's parameters.

        Returns:
            What ``_execute_async`` returned: a :class:`ToolOutput` or any other value.

        Raises:
            TypeError: If the tool returned a generator or an async generator (its body never
                ran), or a coroutine or another awaitable, also as the data of a successful
                :class:`ToolOutput` (a missing ``await``): the work it stands for would
                otherwise be reported done.
        """
        try:
            if self._passthrough and self.input_model is ToolInput:  # (as in run_raising)
                result = self._execute_async(**kwargs)
            else:
                input_data = self._build_input(kwargs)
                # (typed to return nothing, but an async def hook behind a decorator returns)
                checked: object = self._validate(input_data)  # type: ignore[func-returns-value]
                if checked is not None:
                    _check_validate_result(self.name, checked)
                if self._kwargs_style:
                    result = self._execute_async(**self._as_kwargs(input_data, kwargs))
                else:
                    result = self._execute_async(input_data)
        except TypeError as exc:
            clear = self._entry_error(exc)
            if clear is None:
                raise
            raise clear from None
        if type(result) is _COROUTINE or inspect.isawaitable(result):
            result = await result
        elif type(result) not in _GENERATORS:  # (a generator is told as the one it is, below)
            _ran_synchronously(type(self), self.name, result)
        if type(result) in _GENERATORS:
            raise _not_run(self.name, result, "")
        _refuse_pending(self.name, result)
        return result

    def run_raising(self, /, **kwargs: Any) -> Any:
        """Refuse synchronous use; asynchronous tools run through :meth:`run_raising_async`.

        Raises:
            NotImplementedError: Always.
        """
        raise NotImplementedError(
            f"{type(self).__name__} is asynchronous: await run_raising_async() instead"
        )

    def execute(self, /, **kwargs: Any) -> ToolOutput:
        """Run the tool to completion with :func:`asyncio.run`. Never raises.

        Inside a running event loop the tool cannot be run synchronously from the loop's
        thread; a failed output then says to await :meth:`execute_async` instead.

        Args:
            **kwargs: The tool's parameters.

        Returns:
            The result of :meth:`execute_async`, or a failed output as described above.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            return ToolOutput(
                success=False,
                error=(
                    f"Asynchronous tool {self.name!r} cannot run synchronously inside a running "
                    "event loop; await execute_async() instead"
                ),
                metadata={"error_type": "RuntimeError"},
            )
        try:
            return asyncio.run(self.execute_async(**kwargs))
        except Exception as exc:
            return _failure(exc)
        except asyncio.CancelledError:
            # Nothing else can cancel the loop made here: the tool's own (it awaited something
            # that was cancelled), so a failure of the tool's like any other.
            return _cancelled_from_inside(self)


def _class_name(tool_name: str) -> str:
    parts = "".join(c if c.isalnum() else " " for c in tool_name).split()
    return "".join(p[:1].upper() + p[1:] for p in parts) + "Tool"


#: Per tool class with the bare ToolInput: the model its entry point's signature describes.
_SIGNATURE_MODELS: weakref.WeakKeyDictionary[type, type[ToolInput]] = weakref.WeakKeyDictionary()


def _signature_model(cls: type[BaseTool]) -> type[ToolInput]:
    """The input model :func:`_model_from_signature` makes of ``cls``'s entry point, made once
    per class (its schema only: such a tool's input is not validated with it)."""
    model = _SIGNATURE_MODELS.get(cls)
    if model is None:
        entry = getattr(cls, cls._entry_point)
        binds = _entry_function(cls, cls._entry_point)[1]
        if binds and not isinstance(inspect.getattr_static(cls, cls._entry_point), classmethod):
            entry = functools.partial(entry, None)  # (its signature without ``self``)
        try:
            model = _model_from_signature(cls.name, entry, cls._annotation_locals)[0]
        except Exception:  # (a signature no model can describe: no parameters)
            model = ToolInput
        _SIGNATURE_MODELS[cls] = model
    return model


class _NoParameters(ToolInput):
    """The input of a function that takes no parameter by name: any parameter is refused at
    validation (``Extra inputs are not permitted``), as for a function with named ones."""

    model_config = ConfigDict(extra="forbid")


def _no_parameters(model_name: str, title: str) -> type[ToolInput]:
    """A :class:`_NoParameters` whose refusals name the tool (``title``)."""
    return type(model_name, (_NoParameters,), {"model_config": ConfigDict(title=title)})


#: What a parameter without an annotation is, by the type of its default (exact types: a
#: ``bool`` default makes a ``"boolean"``, not an ``"integer"``; an ``IntEnum`` member tells
#: nothing): described as that JSON type, a hint to callers; a value that reads as that type is
#: converted to it (``"3"`` to ``3``, ``"false"`` to ``False``: a model or a command line passes
#: text), any other given to the function as it is, since its author wrote no type (``s=0``
#: takes ``0.5``).
_DEFAULT_TYPES: dict[type, Any] = {
    kind: Annotated[
        kind | Any,
        Field(union_mode="left_to_right"),
        WithJsonSchema({"type": json_type}),
    ]
    for kind, json_type in (
        (bool, "boolean"),
        (int, "integer"),
        (float, "number"),
        (str, "string"),
    )
}


def _model_from_signature(
    name: str, func: Callable[..., Any], local_names: dict[str, Any] | None = None
) -> tuple[type[ToolInput], dict[str, str]]:
    """An input model with a field per named parameter of ``func`` (its annotation; without
    one, any value, converted to the type of a ``bool``, ``int``, ``float`` or ``str`` default
    where it reads as one, and described as that type;
    its default, or required), so that the tool's schema describes them. A function
    taking ``**kwargs`` also accepts other names; one taking none by name (none at all,
    ``*args`` only, or parameters only by position, each with a default) a model of no fields
    that refuses any. One whose signature cannot be read (a builtin such as ``dict``), or
    that takes a parameter only by position without a default, gets the bare
    :class:`ToolInput`.

    A parameter named like an attribute of a pydantic model (``json``, ``schema``, ``copy``,
    ``model_dump``) would shadow it, and one with a leading underscore would be taken for a
    private attribute, not a field: its field gets another name, with the parameter's as its
    alias (so callers, errors and the schema use the parameter's name). Returned with the
    model: those field names, mapped to the parameter names ``func`` takes. String annotations
    are resolved in ``func``'s module, then in ``local_names`` (see :func:`_local_names`).
    """
    params = _parameters(func, local_names)
    if params is None:  # (a signature that cannot be read, as a builtin's: anything goes)
        return ToolInput, {}
    model_name = f"{_class_name(name)}Input"
    # (what a refused call's ValidationError is "for": the tool, not a model made up here)
    title = f"parameters of tool {name!r}"
    if not params:
        return _no_parameters(model_name, title), {}
    fields: dict[str, Any] = {}
    renamed: dict[str, str] = {}
    open_ended = False
    extras: dict[str, Any] = {}
    by_position: list[str] = []
    for param in params:
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            open_ended = True
            if _holds_secret_type(param.annotation):
                # ``**creds: SecretStr``: every other parameter is one, as for a field.
                extras["__pydantic_extra__"] = dict[str, param.annotation]  # type: ignore[name-defined]
        elif param.kind is inspect.Parameter.POSITIONAL_ONLY:
            if param.default is inspect.Parameter.empty:  # (no call by name could give it)
                return ToolInput, {}
            # (no call by name gives it either: the function keeps its default, and a
            # parameter of its name is refused saying why, or goes into its ``**kwargs``)
            by_position.append(param.name)
        elif param.kind is not inspect.Parameter.VAR_POSITIONAL:
            annotation = param.annotation
            if annotation is inspect.Parameter.empty:
                # (``y=3`` described as an integer, ``"4"`` taken as ``4``, but any value taken,
                # as Python's own call does: no type was written; a default of no plain type
                # tells nothing)
                annotation = _DEFAULT_TYPES.get(type(param.default), Any)
            elif isinstance(annotation, str):  # (not resolvable: any value)
                annotation = Any
            default = ... if param.default is inspect.Parameter.empty else param.default
            if default is None and annotation is not Any:
                # ``limit: int = None`` takes None, as a direct call does (what typing
                # once read as an implicit Optional), and is checked as an int otherwise.
                annotation = Optional[annotation]  # noqa: UP045 (any annotation object)
            fields[param.name] = (annotation, default)
    namespace: dict[str, Any] = {}
    if by_position and not open_ended:
        namespace["_refuse_by_position"] = _by_position_refusal(frozenset(by_position))
    if not fields and not extras:
        if open_ended:
            return ToolInput, {}
        model = _no_parameters(model_name, title)
        if namespace:
            model = type(model_name, (model,), namespace)
        return model, {}
    base = type(
        "_SimpleToolInput",
        (ToolInput,),
        {
            "model_config": ConfigDict(extra="allow" if open_ended else "forbid", title=title),
            "__annotations__": extras,
            **namespace,
        },
    )
    for param_name in [n for n in fields if n.startswith("_") or hasattr(base, n)]:
        annotation, default = fields.pop(param_name)
        field_name = f"p_{param_name}"
        while field_name in fields or field_name in renamed or hasattr(base, field_name):
            field_name = f"p{field_name}"
        fields[field_name] = (annotation, default)
        renamed[field_name] = param_name
    if renamed:  # (in the function's order, as the schema lists them)
        order = [p.name for p in params]
        fields = dict(
            sorted(fields.items(), key=lambda item: order.index(renamed.get(item[0], item[0])))
        )
    fields = {
        key: _field_spec(annotation, default, renamed.get(key))
        for key, (annotation, default) in fields.items()
    }
    # (where pydantic looks up a quoted name inside an annotation, ``Optional["Node"]``)
    names = {**(_globals_of(func) or {}), **(local_names or {})}
    texts = parameter_descriptions(func)

    def described(specs: dict[str, Any]) -> dict[str, Any]:
        # (each field described by what the docstring says of its parameter)
        return {
            key: (_described(annotation, texts.get(renamed.get(key, key))), default)
            for key, (annotation, default) in specs.items()
        }

    model = _new_model(model_name, base, described(fields), names)
    if model is None:
        # An annotation pydantic cannot use (a class of the caller's own, typing.TypedDict
        # before Python 3.12, a quoted name found nowhere): that parameter takes any value,
        # the others keep their types.
        usable = {key: _usable_field(base, key, spec, names) for key, spec in fields.items()}
        model = _new_model(model_name, base, described(usable), names)
    if model is None:  # (still none: describe nothing, accept anything)
        return ToolInput, {}
    # Each field is a parameter of ``func``, passed whatever its ``Field(exclude=True)``, which
    # keeps it out of the model's dump, not out of the call (``func`` would get its default).
    _EXCLUDED_FIELDS[model] = ()
    return cast("type[ToolInput]", model), renamed


def _described(annotation: Any, text: str | None) -> Any:
    """``annotation`` described by ``text``, what the function's docstring says of the
    parameter (see :mod:`laios.tools._docstrings`), unless that is nothing. The ``Field``
    carrying it comes first among the annotation's metadata, so that a description given
    explicitly (``Annotated[str, Field(description=...)]``, or a ``Field`` as the default)
    is merged over it and wins; one given inside the ``Optional`` a default of None makes of
    the annotation is taken for the parameter's, as the docstring's would be."""
    text = _explicit_description(annotation) or text
    if not text:
        return annotation
    described = Field(description=text)
    if typing.get_origin(annotation) is Annotated:
        inner, *metadata = typing.get_args(annotation)
        arguments = (inner, described, *metadata)
        return Annotated[arguments]
    return Annotated[annotation, described]


def _explicit_description(annotation: Any) -> str | None:
    """The description a ``Field`` in the metadata of ``annotation`` gives (the last one), also
    inside an ``Optional`` (``limit: Annotated[int, Field(description=...)] = None``, read as
    ``Optional[...]``, where pydantic would give it to the ``int`` alone), or None."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        others = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        annotation = others[0] if len(others) == 1 else annotation
    if typing.get_origin(annotation) is not Annotated:
        return None
    texts = [
        item.description
        for item in typing.get_args(annotation)[1:]
        if isinstance(item, FieldInfo) and item.description
    ]
    return texts[-1] if texts else None


def _by_position_refusal(names: frozenset[str]) -> Any:
    """A wrap validator for a model made from a function whose parameters ``names`` can only
    be passed by position (each with a default): a parameter given by one of their names is
    refused saying so (see :func:`~laios.tools._input_errors.given_by_position`), not with
    pydantic's bare "Extra inputs are not permitted"."""

    def refuse(cls: type[ToolInput], data: Any, handler: Callable[[Any], Any]) -> Any:
        try:
            return handler(data)
        except ValidationError as exc:
            clear = given_by_position(exc, names)
            if clear is None:
                raise
            raise clear from None

    return model_validator(mode="wrap")(classmethod(refuse))  # type: ignore[arg-type]


#: Most levels of an annotation :func:`_holds_secret_type` looks through.
_MAX_ANNOTATION_DEPTH = 16


def _holds_secret_type(annotation: Any, depth: int = 0) -> bool:
    """Whether ``annotation`` is, or holds (``Optional[SecretStr]``), a pydantic secret type
    (see :data:`~laios._secret_types.SECRET_TYPES`). Never raises."""
    if depth > _MAX_ANNOTATION_DEPTH:
        return False
    try:
        origin = typing.get_origin(annotation) or annotation
        if isinstance(origin, type) and issubclass(origin, SECRET_TYPES):
            return True
        # (``type X = SecretStr``, a NewType of it: no class, named otherwise)
        aliased = None if isinstance(annotation, type) else aliased_type(annotation)
        if aliased is not None:
            return _holds_secret_type(aliased, depth + 1)
        return any(_holds_secret_type(arg, depth + 1) for arg in typing.get_args(annotation))
    except Exception:  # (an annotation too odd to read: no secret declared)
        return False


def _check_takes_fields(name: str, func: Any, model: Any) -> None:
    """Refuse ``func`` when it has no parameter for a field of ``model`` (its input model, given
    to :func:`create_simple_tool`), which every call passes it by name (one taking ``**kwargs``
    takes them all), or when it needs a parameter ``model`` never passes: one that is not a
    field passed (an excluded one is not), while ``model`` keeps no extra parameters a caller
    could give it by. A ``model`` that is no :class:`ToolInput` is left to the tool to refuse.

    Raises:
        TypeError: Naming the tool, the parameters and the model.
    """
    if not _is_input_class(model) or model is ToolInput:
        return
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return
    excluded = _excluded_fields(model)
    passed = [f for f in model.model_fields if f not in excluded]
    passed += model.model_computed_fields
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        by_name = {p.name for p in params if p.kind is not inspect.Parameter.POSITIONAL_ONLY}
        missing = [f for f in passed if f not in by_name]
        if missing:
            names = ", ".join(missing)
            whole = _takes_model_whole(params, model)
            if whole is not None:
                fields = ", ".join(f"{field}=..." for field in passed)
                raise TypeError(
                    f"Tool {name!r}: func takes the {model.__name__} itself as {whole}, but "
                    f"the tool passes it the fields of its input model by name, "
                    f"func({fields}), so every call would fail. Take the fields as "
                    f"parameters, or write a BaseTool subclass with input_model = "
                    f"{model.__name__} and def _execute(self, input_data: {model.__name__}), "
                    f"which is given the model whole"
                )
            raise TypeError(
                f"Tool {name!r}: func has no parameter for {names}, which every call passes "
                f"it by name as fields of its input model {model.__name__}, so every call "
                f"would fail. Add the parameters to func (or **kwargs to take them all)"
            )
    if model.model_config.get("extra") == "allow":
        return  # (a caller may give any other parameter)
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    unfilled = [
        p.name
        for p in params
        if p.kind in named and p.default is inspect.Parameter.empty and p.name not in passed
    ]
    if unfilled:
        names = ", ".join(unfilled)
        raise TypeError(
            f"Tool {name!r}: func needs {names}, which its input model {model.__name__} never "
            f"passes (they are no fields it passes, and it keeps no other parameter a caller "
            f"gives), so every call would fail. Declare them as fields of {model.__name__} "
            f"(not excluded), or give them defaults in func"
        )


def _takes_model_whole(params: Any, model: type[ToolInput]) -> str | None:
    """The name of the parameter of a function that takes its input model whole, as a tool's
    ``_execute(self, input_data)`` does: named ``input_data``, or annotated with ``model``
    (also as its name, quoted or under ``from __future__ import annotations``); None when
    there is none."""
    for param in params:
        annotation = param.annotation
        if (
            param.name == "input_data"
            or annotation is model
            or (isinstance(annotation, str) and annotation.strip("'\"") == model.__name__)
        ):
            return str(param.name)
    return None


def _is_builtin(func: Any) -> bool:
    """Whether ``func`` (or the function a ``functools.partial`` of it calls) is a builtin,
    whose signature cannot be edited."""
    while isinstance(func, functools.partial):
        func = func.func
    return (
        inspect.isbuiltin(func)
        or inspect.ismethoddescriptor(func)
        or isinstance(func, types.MethodWrapperType)
    )


def _callable_name(func: Any) -> str:
    """How a wrapper shown in a message calls ``func``: a function by its name, a builtin of
    a module by its module and name (``math.sqrt``; ``len`` alone), anything else ``func``."""
    name = getattr(func, "__name__", None)
    if not isinstance(name, str) or not name.isidentifier():
        return "func"
    if inspect.isfunction(func):
        return name
    owner = getattr(func, "__self__", None)
    if inspect.isbuiltin(func) and isinstance(owner, types.ModuleType):
        return name if owner.__name__ == "builtins" else f"{owner.__name__}.{name}"
    return "func"


def _required_positional_only(func: Any) -> list[str]:
    """The names of ``func``'s parameters that can only be passed by position and have no
    default: no call by name can give them (none when its signature cannot be read)."""
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return []
    return [
        p.name
        for p in params
        if p.kind is inspect.Parameter.POSITIONAL_ONLY and p.default is inspect.Parameter.empty
    ]


def _check_builtin_signature(func: Any) -> None:
    """Refuse ``func`` when it is a builtin function whose signature cannot be read (``max``,
    ``getattr``), an object of a builtin type called as one (``operator.itemgetter("a")``),
    or a ``functools.partial`` of either (``partial(max, key=abs)``, whose signature cannot
    be read either): the tool could not tell its parameters (its schema would show none),
    and such a builtin mostly takes its arguments by position, which a tool's call never
    gives. A builtin class (``dict``) is left alone: it is called as any class is.

    Raises:
        TypeError: Naming the builtin and saying how to wrap it.
    """
    builtin = func
    for _ in range(_MAX_PARTIALS):
        if not isinstance(builtin, functools.partial):
            break
        builtin = builtin.func
    if inspect.isbuiltin(builtin):
        shown = getattr(builtin, "__name__", None)
        shown = shown if isinstance(shown, str) and shown.isidentifier() else "func"
        what = f"the builtin {shown}"
    elif (
        not isinstance(builtin, type)
        and not inspect.isroutine(builtin)
        and isinstance(type(builtin).__call__, types.WrapperDescriptorType)
    ):
        kind = type(builtin)
        shown = "func"
        what = f"an object of the builtin type {kind.__module__}.{kind.__qualname__}"
    else:
        return
    try:
        inspect.signature(func)
    except (TypeError, ValueError):
        pass
    else:
        return
    if builtin is not func:
        what = f"a functools.partial of {what}"
    raise TypeError(
        f"create_simple_tool: func is {what}, whose signature cannot be read, so "
        f"the tool cannot tell its parameters (its schema would show none) and would pass "
        f"them by name, which {shown} does not take, so every call would fail. Wrap "
        f"it in a function with named parameters: lambda values: {shown}(values)"
    )


#: How many ``functools.partial`` layers :func:`_check_builtin_signature` looks through.
_MAX_PARTIALS = 64


def _field_spec(annotation: Any, default: Any, alias: str | None) -> tuple[Any, Any]:
    """The (annotation, default) of the field for a parameter annotated ``annotation`` with
    ``default`` (``...``: required), under ``alias``. A ``Field(...)`` given as the default is
    the field's own, its default, constraints and description kept; the alias goes into the
    annotation, where that ``Field`` (an alias of its own, say) is merged over it."""
    if isinstance(default, FieldInfo):
        if alias is None:
            return annotation, default
        return Annotated[annotation, Field(alias=alias)], default
    return annotation, _field_default(default, alias)


def _field_default(default: Any, alias: str | None) -> Any:
    """The field default for a parameter's ``default`` (``...``: required), under ``alias``.

    Pydantic hands each instance a deep copy of a default that has no hash (a dict, a list, a
    dataclass): the function would get a copy where a call gives it its own object (a shared
    cache), and a default no copy can be made of (one holding a lock) would fail every call.
    Such a default is given by a factory returning the object itself, and described in the
    schema as pydantic describes the others (left out when it has no JSON form).
    """
    try:
        hash(default)
    except Exception:
        return Field(
            default_factory=lambda: default,
            alias=alias,
            json_schema_extra=_json_default(default),
        )
    return default if alias is None else Field(default, alias=alias)


def _json_default(default: Any) -> dict[str, Any] | None:
    """``{"default": <default as strict JSON>}``, or ``None`` when it has no JSON form."""
    try:
        encoded = to_jsonable_python(default)
        json.dumps(encoded, allow_nan=False)
    except Exception:
        return None
    return {"default": encoded}


def _new_model(
    name: str, base: type[ToolInput], fields: dict[str, Any], namespace: dict[str, Any]
) -> Any:
    """A model named ``name`` with ``fields`` on ``base``, or ``None`` if pydantic refuses one
    or cannot complete it with the names of ``namespace`` (a quoted name found nowhere: every
    validation would fail)."""
    try:
        model = create_model(name, __base__=base, **fields)
    except Exception:
        return None
    if model.__pydantic_complete__ or complete_in(model, namespace):
        return model
    return None


def _usable_field(
    base: type[ToolInput], key: str, spec: tuple[Any, Any], namespace: dict[str, Any]
) -> tuple[Any, Any]:
    """``spec`` (annotation, default) for field ``key`` if pydantic can make a model of it, else
    the same field taking any value."""
    if _new_model("_OneField", base, {key: spec}, namespace) is None:
        return (Any, spec[1])
    return spec


@overload
def create_simple_tool(
    name: str,
    description: str,
    func: Callable[..., Coroutine[Any, Any, Any]],
    category: ToolCategory | ToolCategoryValue = ...,
    permissions: set[Permission] | None = ...,
    input_model: type[ToolInput] | None = ...,
) -> AsyncBaseTool: ...


@overload
def create_simple_tool(
    name: str,
    description: str,
    func: Callable[..., Any],
    category: ToolCategory | ToolCategoryValue = ...,
    permissions: set[Permission] | None = ...,
    input_model: type[ToolInput] | None = ...,
) -> BaseTool: ...


def create_simple_tool(
    name: str,
    description: str,
    func: Callable[..., Any],
    category: ToolCategory | ToolCategoryValue = ToolCategory.CUSTOM,
    permissions: set[Permission] | None = None,
    input_model: type[ToolInput] | None = None,
) -> BaseTool:
    """Build a tool instance from a plain function.

    The tool calls ``func(**params)``, where ``params`` are the validated fields of
    ``input_model`` or, without an input model, the caller's keyword arguments. A coroutine
    function (an ``async def`` function, an object whose ``__call__`` is ``async def``, or a
    ``functools.partial`` or a ``staticmethod`` object of either) gives an
    :class:`AsyncBaseTool`.

    Args:
        name: Tool name.
        description: What the tool does.
        func: The function (or coroutine function) doing the work.
        category: Broad area the tool works in: a :class:`ToolCategory` member or its value.
        permissions: Permissions the tool needs.
        input_model: Model validating the parameters; the bare :class:`ToolInput` by default.

    Returns:
        An instance of a new tool class: an :class:`AsyncBaseTool` for a coroutine function
        (so typed, for type checkers, when ``func`` is annotated to return a coroutine).

    Raises:
        ValueError: If ``name`` is not a non-blank string or has a control or format
            character or surrounding space, ``description`` is empty, or ``category`` or a
            permission is not a valid value (``permissions`` must be a set, not a single
            permission).
        TypeError: If ``func`` is not callable, is a generator function or an async
            generator function (its body would never run: the tool would succeed idly), has
            a parameter without a default that can only be passed by position (no call by
            name could give it) or that an ``input_model`` keeping no extra parameters never
            passes, is a builtin function or an object of a builtin type whose
            signature cannot be read, or a ``functools.partial`` of one (``max``,
            ``operator.itemgetter("a")``: wrap it in a function with named parameters), has
            no parameter for a field of ``input_model`` (nor ``**kwargs``), or
            ``input_model`` is not a :class:`ToolInput` subclass.
    """
    name = checked_name(
        name,
        lambda given: (
            f"create_simple_tool: name must be a non-blank string, got {shown_value(given)}"
        ),
    )
    if not callable(func):
        raise TypeError(f"create_simple_tool: func must be callable, got {type(func).__name__}")
    kind = generator_kind(func)
    if kind is not None:
        raise TypeError(
            f"create_simple_tool: func is {_a(kind)} function (it contains yield): the "
            f"tool would return {_a(kind)} whose body never runs, and succeed without "
            f"doing its work. Pass a function that returns the result instead: "
            f"{_how_to_return(kind)}"
        )
    by_position = _required_positional_only(func)
    if by_position:
        names = ", ".join(by_position)
        wrapper = f"lambda {names}: {_callable_name(func)}({names})"
        raise TypeError(
            f"create_simple_tool: func takes {names} only by position (before the / of its "
            f"signature), but a tool is called with its parameters by name, so every call "
            f"would fail. "
            + (
                f"Wrap it in a function that takes them by name: {wrapper}"
                if _is_builtin(func)
                else f"Make them ordinary parameters (remove the /), or wrap func: {wrapper}"
            )
        )
    _check_builtin_signature(func)
    permissions = _permission_set(name, permissions or ())
    if input_model is not None:
        _check_takes_fields(name, func, input_model)
    renamed: dict[str, str] = {}
    if input_model is None:
        # (its caller is most often the function that defined ``func``: see _local_names)
        model, renamed = _model_from_signature(name, func, _local_names(func, _caller()))
    else:
        model = input_model
    attrs: dict[str, Any] = {
        "__doc__": description,
        "__module__": getattr(func, "__module__", None) or __name__,
        "name": name,
        "description": description,
        "category": category,
        "required_permissions": set(permissions),
        "input_model": model,
    }
    arguments = (name, description, func, category, set(permissions), input_model)

    def __reduce__(self: BaseTool) -> tuple[Any, ...]:
        # Pickled as the call that makes it (the class is made here, so it cannot be found
        # by name): a tool from a module-level function can be sent to a worker process.
        return (create_simple_tool, arguments)

    attrs["__reduce__"] = __reduce__
    attrs["_simple_function"] = func  # (named when a run of it goes wrong)
    # A model made from the function's signature is unpacked as the function is annotated;
    # a function taking ``**kwargs`` alone with an input model given gets its dump.
    attrs["_dumps_input"] = input_model is not None and _only_var_keyword(func)
    if renamed:

        def _as_kwargs(self: BaseTool, input_data: ToolInput, raw: dict[str, Any]) -> Any:
            # Fields renamed not to shadow the model's attributes go by the parameters' names.
            fields = {renamed.get(key, key): value for key, value in input_data.__dict__.items()}
            return _validated_values(input_data, fields)

        attrs["_as_kwargs"] = _as_kwargs
    base: type[Any]
    if is_coroutine_function(func):

        async def _execute_async(self: AsyncBaseTool, /, **kwargs: Any) -> Any:
            return await func(**kwargs)

        attrs["_execute_async"] = _execute_async
        base = AsyncBaseTool
    else:

        def _execute(self: BaseTool, /, **kwargs: Any) -> Any:
            return func(**kwargs)

        attrs["_execute"] = _execute
        base = BaseTool
    tool: BaseTool = type(_class_name(name), (base,), attrs)()
    return tool
