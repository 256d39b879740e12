"""Building pydantic models from values known to be valid, without validation.

``BaseModel.model_construct`` fills in defaults and checks field names on every call; the
executor builds a ``TaskResult`` per task from values it made itself, every field given. The
fast path writes the instance's ``__dict__`` and fields-set through ``BaseModel``'s own slot
descriptors. It is used only when those descriptors exist as expected (checked once, here);
otherwise :func:`construct` is ``model_construct``.
"""

from __future__ import annotations

from typing import Any, TypeGuard, TypeVar

from pydantic import BaseModel

__all__ = [
    "FAST_CONSTRUCT",
    "assign",
    "assignment_rules",
    "complete_in",
    "construct",
    "is_instance",
]

_M = TypeVar("_M", bound=BaseModel)
_T = TypeVar("_T")

_SLOTS = ("__dict__", "__pydantic_fields_set__", "__pydantic_extra__", "__pydantic_private__")


def _slot_setters() -> tuple[Any, ...] | None:
    setters = []
    for name in _SLOTS:
        descriptor = BaseModel.__dict__.get(name)
        setter = getattr(descriptor, "__set__", None)
        if setter is None:
            return None
        setters.append(setter)
    return tuple(setters)


_SETTERS = _slot_setters()

#: Whether :func:`construct` takes the fast path (pydantic still has the expected slots).
FAST_CONSTRUCT: bool = _SETTERS is not None

#: Every field name of a class built by :func:`construct` (each instance gets a copy).
_field_names: dict[type[BaseModel], set[str]] = {}


def _fast(cls: type[_M], values: dict[str, Any]) -> _M:
    assert _SETTERS is not None
    set_dict, set_fields, set_extra, set_private = _SETTERS
    model = object.__new__(cls)
    set_dict(model, values)
    names = _field_names.get(cls)
    if names is None:
        names = _field_names[cls] = set(cls.model_fields)
    set_fields(model, names.copy())  # (cheaper than building a set from ``values``)
    set_extra(model, None)
    set_private(model, None)
    return model


def _public(cls: type[_M], values: dict[str, Any]) -> _M:
    return cls.model_construct(**values)


#: Build a model from complete, already-valid field values, skipping validation: ``values``
#: must name every field (defaults are not filled in on the fast path) and becomes the
#: instance's ``__dict__``.
construct = _fast if FAST_CONSTRUCT else _public


def _assign_fast(model: BaseModel, values: dict[str, Any]) -> None:
    model.__dict__.update(values)
    model.__pydantic_fields_set__.update(values)


def _assign_public(model: BaseModel, values: dict[str, Any]) -> None:
    for name, value in values.items():
        setattr(model, name, value)


#: Set already-valid field values on ``model`` without validating them again; they show in
#: ``model_dump()`` and ``model_fields_set`` like validated assignments.
assign = _assign_fast if FAST_CONSTRUCT else _assign_public


def is_instance(value: object, cls: type[_T]) -> TypeGuard[_T]:
    """``isinstance(value, cls)``, ``False`` when the check itself raises: before pydantic
    2.10 a model class's ``isinstance`` reads an attribute of ``value``, and an object whose
    attribute reads raise (a proxy whose backend is down) made it raise that error."""
    try:
        return isinstance(value, cls)
    except Exception:
        return False


def assignment_rules(
    cls: type[BaseModel], base: type[BaseModel], names: tuple[str, ...]
) -> tuple[frozenset[str], bool]:
    """How an assignment to the fields ``names`` of a model of ``cls``, a subclass of ``base``,
    differs from one to a ``base`` instance: the fields among them that are frozen (all of
    them when the class is), and whether an assignment runs validation of ``cls``'s own (a
    validator of one of them, a model validator, or one of them declared anew).

    Reads ``__pydantic_decorators__``, where pydantic keeps a class's validators.
    """
    config = cls.model_config
    fields = cls.model_fields
    if config.get("frozen"):
        frozen = frozenset(names)
    else:
        frozen = frozenset(name for name in names if getattr(fields.get(name), "frozen", False))
    if not config.get("validate_assignment"):
        return frozen, False  # (an assignment sets the value as it is)
    decorators = getattr(cls, "__pydantic_decorators__", None)
    if decorators is None:
        return frozen, True  # (unknown: validated, to be safe)
    if any(getattr(decorators, kind, None) for kind in ("root_validators", "model_validators")):
        return frozen, True
    for kind in ("validators", "field_validators"):
        for decorator in getattr(decorators, kind, {}).values():
            targets = getattr(decorator.info, "fields", ())
            if "*" in targets or any(name in targets for name in names):
                return frozen, True
    base_fields = base.model_fields
    for name in names:
        field, original = fields.get(name), base_fields.get(name)
        if field is None or original is None:
            return frozen, True
        if field.annotation != original.annotation or field.metadata != original.metadata:
            return frozen, True  # (declared anew: its type, its own validators)
    return frozen, False


def complete_in(model: type[BaseModel], namespace: dict[str, Any]) -> bool:
    """Complete ``model``, whose annotations hold names pydantic did not find (a quoted name
    inside one, ``Optional["Node"]``, written in another module), with the names of
    ``namespace`` (through ``model_rebuild``'s ``_types_namespace``); whether it is complete."""
    try:
        model.model_rebuild(force=True, raise_errors=False, _types_namespace=namespace)
    except Exception:
        return False
    return bool(model.__pydantic_complete__)
