"""Validation errors of a tool's input that quote none of the caller's mapping keys.

A :class:`~laios.tools.base.ToolInput` hides the rejected values in its ``ValidationError``
(``hide_input_in_errors``), but pydantic still writes the location of each error, and the
location of an entry of a mapping is its key: ``headers.sk-live-…``. A key is the caller's data
as much as a value is (a token used as a cache key, a credential kept as a header name), so
:func:`without_input_keys` writes ``[REDACTED]`` in its place. The names the model declares
(its fields, their aliases, and those of the models, dataclasses and ``TypedDict`` types its
fields hold) and the parameters' own names are kept: they say which field is wrong. The
mappings are found in the input as given, also inside a collection that is not a list (a
deque, a generator) and in the JSON text of a ``Json[...]`` field.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import typing
import weakref
from collections.abc import Collection, Iterator, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from laios._type_hints import is_typeddict, resolved_hints
from laios.tools._aliases import alias_paths

__all__ = ["HIDDEN_KEY", "POSITIONAL_ONLY_ERROR", "given_by_position", "without_input_keys"]

#: What a key of the caller's mapping is written as in a validation error's location.
HIDDEN_KEY = "[REDACTED]"
#: Deepest nesting of type arguments read for declared names.
_MAX_TYPE_DEPTH = 32

_declared: weakref.WeakKeyDictionary[type, frozenset[Any]] = weakref.WeakKeyDictionary()


def without_input_keys(
    exc: ValidationError, model: type[BaseModel], given: Mapping[str, Any]
) -> ValidationError | None:
    """``exc`` (raised validating ``given`` with ``model``) with every key of a mapping in the
    parameters written ``[REDACTED]`` in its locations, or ``None`` when it names none (or the
    model quotes its input: ``hide_input_in_errors=False``)."""
    if not model.model_config.get("hide_input_in_errors", False):
        return None
    errors = exc.errors(include_url=False)
    names = declared_names(model)
    changed = False
    for error in errors:
        loc = _hidden(error["loc"], given, names)
        if loc is not None:
            error["loc"] = loc
            changed = True
    if not changed:
        return None
    return _rebuilt(exc.title, errors)


#: The type of the error for a parameter given by name that can only be passed by position.
POSITIONAL_ONLY_ERROR = "positional_only_parameter"


def given_by_position(exc: ValidationError, names: Collection[str]) -> ValidationError | None:
    """``exc`` with each refusal of an unknown parameter named as one of ``names`` (parameters
    of the function that can only be passed by position) saying so, instead of pydantic's bare
    "Extra inputs are not permitted"; ``None`` when it has none. The other errors are kept as
    they were."""
    errors = exc.errors(include_url=False)
    changed = False
    for error in errors:
        loc = error["loc"]
        if error["type"] == "extra_forbidden" and len(loc) == 1 and loc[0] in names:
            error["type"] = POSITIONAL_ONLY_ERROR
            error["msg"] = (
                f"{loc[0]} can only be passed by position (it comes before the / of the "
                f"function's signature), and a tool passes its parameters by name, so it "
                f"cannot be given: the function keeps its default"
            )
            changed = True
    return _rebuilt(exc.title, errors) if changed else None


def _hidden(
    loc: tuple[int | str, ...], given: Mapping[str, Any], names: frozenset[Any]
) -> tuple[int | str, ...] | None:
    """``loc`` with the keys of the mappings in ``given`` it passes through hidden (``None``:
    there were none). The first item, the parameter's own name, is kept."""
    if not loc:
        return None
    current = given.get(loc[0]) if isinstance(loc[0], str) else None
    hidden = list(loc)
    for index in range(1, len(loc)):
        item = loc[index]
        current = _readable(current)
        if current is _CONSUMED:  # (cannot tell keys from indexes: hide every undeclared name)
            if isinstance(item, str) and item not in names:
                hidden[index] = HIDDEN_KEY
        elif isinstance(current, Mapping):
            found, value = _entry(current, item)
            if found:
                if item not in names:
                    hidden[index] = HIDDEN_KEY
                current = value
            # (otherwise a union member's tag, such as ``dict[str,int]``: nothing of the input)
        elif isinstance(current, (list, tuple)) and isinstance(item, int):
            current = current[item] if -len(current) <= item < len(current) else None
        elif isinstance(current, BaseModel) and isinstance(item, str):
            current = getattr(current, item, None)
    return tuple(hidden) if hidden != list(loc) else None


#: What :func:`_readable` gives for an input that validation consumed (a generator).
_CONSUMED = object()


def _readable(value: Any) -> Any:
    """``value`` in a form the walk along a location can follow: the JSON a ``Json[...]``
    field's text holds (an object or an array), a collection that is not a sequence (a deque,
    a set, a dict's values) as a list in the order validation read it, and :data:`_CONSUMED`
    for an iterator validation has consumed; anything else as it is."""
    if isinstance(value, (Mapping, list, tuple, BaseModel)):
        return value
    if isinstance(value, (str, bytes, bytearray)):
        if value.lstrip()[:1] not in ("{", "[", b"{", b"["):
            return value
        try:
            return json.loads(value)
        except ValueError:
            return value
    if isinstance(value, Iterator):
        return _CONSUMED
    if isinstance(value, Collection):
        try:
            return list(value)
        except Exception:  # (a collection of the caller's own that cannot be read again)
            return _CONSUMED
    return value


def _entry(mapping: Mapping[Any, Any], item: int | str) -> tuple[bool, Any]:
    """Whether ``item`` (a location's part) is a key of ``mapping``, and its value. Pydantic
    writes a key that is neither text nor an int as its ``repr`` (``b'…'``)."""
    try:
        if item in mapping:
            return True, mapping[item]
    except Exception:  # (a mapping of the caller's own that cannot look it up)
        return False, None
    try:
        for key, value in mapping.items():
            if not isinstance(key, (str, int)) and repr(key) == item:
                return True, value
    except Exception:
        pass
    return False, None


def _rebuilt(title: str, errors: list[Any]) -> ValidationError:
    """A ``ValidationError`` of ``errors`` (as ``errors()`` gave them, locations changed),
    with each error's type, message and context as they were."""
    details: list[InitErrorDetails] = []
    for error in errors:
        detail: dict[str, Any] = {"type": error["type"], "loc": error["loc"]}
        detail["input"] = error["input"]
        if "ctx" in error:
            detail["ctx"] = error["ctx"]
        try:  # (a type pydantic knows: its message is made again from the context)
            again = ValidationError.from_exception_data(title, [detail])  # type: ignore[list-item]
            known = again.errors(include_url=False)[0]["msg"] == error["msg"]
        except Exception:
            known = False
        if not known:  # (a custom error, even one typed as pydantic's: its message as written)
            detail = {
                "type": PydanticCustomError(error["type"], error["msg"]),
                "loc": error["loc"],
                "input": error["input"],
            }
        details.append(detail)  # type: ignore[arg-type]
    return ValidationError.from_exception_data(title, details, hide_input=True)


def declared_names(model: type[BaseModel]) -> frozenset[Any]:
    """The field names and aliases ``model`` declares, with those of the models, dataclasses
    and ``TypedDict`` types its fields hold (read once per model)."""
    try:
        return _declared[model]
    except KeyError:
        pass
    names: set[Any] = set()
    with contextlib.suppress(Exception):  # (a type too odd to read: hide more, not fail)
        _collect(model, names, set(), 0)
    found = frozenset(names)
    _declared[model] = found
    return found


def _collect(annotation: Any, names: set[Any], seen: set[int], depth: int) -> None:
    """Add the names declared by ``annotation`` and the types inside it to ``names``."""
    if depth > _MAX_TYPE_DEPTH or id(annotation) in seen:
        return
    seen.add(id(annotation))
    # (on Python 3.10 a parametrized generic, ``dict[str, int]``, passes for a class too)
    generic = typing.get_origin(annotation) is not None
    if not generic and isinstance(annotation, type) and issubclass(annotation, BaseModel):
        for name, field in annotation.model_fields.items():
            names.add(name)
            names.update(_alias_names(field.alias))
            names.update(_alias_names(field.validation_alias))
            _collect(field.annotation, names, seen, depth + 1)
    elif not generic and isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        hints = resolved_hints(annotation)
        for member in dataclasses.fields(annotation):
            names.add(member.name)
            _collect(hints.get(member.name, member.type), names, seen, depth + 1)
    elif not generic and isinstance(annotation, type) and is_typeddict(annotation):
        for name, inner in resolved_hints(annotation).items():
            names.add(name)
            _collect(inner, names, seen, depth + 1)
    for argument in typing.get_args(annotation):
        _collect(argument, names, seen, depth + 1)


def _alias_names(alias: Any) -> list[Any]:
    """The names an alias (a string, an ``AliasPath``, an ``AliasChoices``) reads."""
    return [step for path in alias_paths(alias) for step in path]
