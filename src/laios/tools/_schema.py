"""Tool parameter descriptions derived from a Pydantic model's JSON schema.

:meth:`laios.tools.base.BaseTool.get_parameters` reports one
:class:`~laios.core.types.ToolParameter` per field of the tool's input model. The JSON type of a
field is read from its schema:

* a plain ``"type"`` (its non-``null`` entries when it is a list);
* otherwise, the types of all the alternatives of ``anyOf`` / ``oneOf``, ``null`` aside, so
  ``int | None`` is an ``"integer"``, or the first alternative of ``allOf`` that names a type;
* otherwise, the Python type shared by all ``enum`` (or ``const``) values but ``None``, so
  ``Literal[1, 2, None]`` is an ``"integer"`` as ``int | None`` is;
* otherwise ``"object"`` for a schema with ``properties`` and ``"array"`` for one with ``items``.

Of several types, integers and numbers are a ``"number"``; others (``int | str``) are a
``"string"``, as a ``Literal`` of mixed types is. A ``Decimal``, which takes a number or the
text of one, is a ``"number"``: its text alternative counts as the number it stands for (so
``Decimal | None`` is a ``"number"`` too, while ``Decimal | str`` is a ``"string"``).
A field whose type none of these tell (``Any``, for instance) is reported as ``"string"``; when
its schema constrains nothing either, it takes any value, and its ``ToolParameter.schema`` says
so (:data:`ANY_VALUE`). So is
a field that takes ``None`` alone (typed ``None`` or ``Literal[None]``), which has none of the
six types: its ``ToolParameter.schema`` says ``{"type": "null"}``.
References to ``$defs`` (nested models, enums) are followed, also the one a model that refers
to itself has as its whole schema.

The description is always strict JSON: a field JSON schema cannot express (a callable, a
class) is described as any value, a default that cannot be written as JSON (an object, bytes
that are not UTF-8, NaN, infinity) is left out, and so is any other non-finite number; a
``Decimal`` default is written as the number it is where a number tells it exactly. A model
whose JSON schema cannot be made at all is described from its fields' names, descriptions and
whether they are required.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import PydanticSerializationError

from laios.core.types import ToolParameter

__all__ = ["parameters_from_model"]

_JSON_TYPES = ("string", "number", "integer", "boolean", "object", "array")
#: The JSON schema of a parameter that takes any JSON value: the six types and ``null``. A
#: description merging it over the ``"type"`` (``{"type": p.type, **p.schema}``) reads so too.
ANY_VALUE: dict[str, Any] = {"type": [*_JSON_TYPES, "null"]}
_PLAIN_KEYS = frozenset({"type", "title", "description", "default"})
_ENUM_KINDS: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (bool, "boolean"),
    (int, "integer"),
    ((int, float), "number"),
    (str, "string"),
)


#: The key that marks the text alternative of a ``Decimal`` while the types are read; it is
#: never part of a description.
_NUMBER_TEXT = "x-laios-number-text"


class _ToolJsonSchema(GenerateJsonSchema):
    """JSON schema generation that describes what it cannot express instead of failing, and
    marks the text alternative of a ``Decimal`` as the number it stands for."""

    def decimal_schema(self, schema: Any) -> JsonSchemaValue:
        """Pydantic's schema of a ``Decimal`` (a number or its text), its text marked."""
        described = super().decimal_schema(schema)
        for alternative in described.get("anyOf", ()):
            if isinstance(alternative, dict) and alternative.get("type") == "string":
                alternative[_NUMBER_TEXT] = True
        return described

    def handle_invalid_for_json_schema(self, schema: Any, error_info: str) -> JsonSchemaValue:
        """A field JSON schema cannot express (a callable, a class) takes any value."""
        return {}

    def encode_default(self, dft: Any) -> Any:
        """Encode a default as strict JSON, or have it left out of the schema; a ``Decimal``
        (also in a list, a tuple or a dict) as the number it is where a number tells it
        exactly."""
        try:
            encoded = super().encode_default(_decimal_numbers(dft))
            json.dumps(encoded, allow_nan=False)
        except Exception as exc:  # caught by the caller, which then leaves the default out
            raise PydanticSerializationError(f"default not JSON: {type(exc).__name__}") from None
        return encoded

    def emit_warning(self, kind: Any, detail: str) -> None:
        """Say nothing: a left-out default is the documented behaviour, not news."""


#: The decimal exponent past which a number is out of a float's range (``1.8e308``).
_FLOAT_DIGITS = 308


def _decimal_numbers(value: Any) -> Any:
    """``value`` with each ``Decimal`` in it (itself, or in a list, a tuple or a dict) that a
    JSON number tells exactly as that number: an ``int`` when it is whole, else the ``float``
    whose text reads back as the same value (``Decimal("1.10")`` as ``1.1``). One with more
    digits than a float holds, or past a float's range, stays a ``Decimal``, written as its
    text."""
    if isinstance(value, Decimal):
        if not value.is_finite() or value.adjusted() > _FLOAT_DIGITS:
            return value  # (and ``int()`` of ``Decimal("1E+99999999")`` would take seconds)
        if value == value.to_integral_value():
            return int(value)
        number = float(value)
        return number if Decimal(repr(number)) == value else value
    if type(value) in (list, tuple):
        return type(value)(_decimal_numbers(item) for item in value)
    if type(value) is dict:
        return {key: _decimal_numbers(item) for key, item in value.items()}
    return value


def _finite(value: Any) -> Any:
    """``value`` without the NaN and infinite numbers strict JSON cannot hold."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items() if not _non_finite(v)}
    if isinstance(value, list):
        return [_finite(v) for v in value if not _non_finite(v)]
    return value


def _non_finite(value: Any) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


def _json_schema(model: type[BaseModel]) -> dict[str, Any] | None:
    """The model's JSON schema as strict JSON, or None when it cannot be made."""
    try:
        schema = model.model_json_schema(schema_generator=_ToolJsonSchema)
    except Exception:
        return None
    if not isinstance(schema, dict):
        return None
    finite: dict[str, Any] = _finite(schema)
    return finite


def _from_fields(model: type[BaseModel]) -> list[ToolParameter]:
    """Describe the fields of a model that has no JSON schema by what they declare."""
    return [
        ToolParameter(
            name=field.alias or name,
            type="string",
            description=field.description or "",
            required=field.is_required(),
        )
        for name, field in model.model_fields.items()
    ]


def _deref(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Replace a top-level ``$ref`` by the definition it points to, keeping sibling keys."""
    seen: set[str] = set()
    while isinstance(ref := schema.get("$ref"), str) and ref not in seen:
        seen.add(ref)
        target = defs.get(ref.rsplit("/", 1)[-1])
        if not isinstance(target, dict):
            break
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def _json_type(schema: dict[str, Any], defs: dict[str, Any]) -> str | None:
    """Return the JSON type of a property schema, or None when it does not name one: the one
    type it takes (``null`` aside), ``"number"`` for integers and numbers, and ``"string"`` for
    several types (``int | str``), as a ``Literal`` of mixed types is."""
    types = _json_types(schema, defs)
    if not types:
        return None
    if types == {"integer", "number"}:
        return "number"
    return types.pop() if len(types) == 1 else "string"


def _json_types(schema: dict[str, Any], defs: dict[str, Any]) -> set[str] | None:
    """The JSON types of the six a property schema takes, ``null`` aside (an empty set for
    ``null`` alone), or None when it does not tell them."""
    schema = _deref(schema, defs)
    if schema.get(_NUMBER_TEXT) is True:
        return {"number"}
    declared = schema.get("type")
    listed = declared if isinstance(declared, list) else [declared]
    named = {str(candidate) for candidate in listed if candidate in _JSON_TYPES}
    if named:
        return named
    if listed and all(candidate == "null" for candidate in listed):
        return set()
    for key in ("anyOf", "oneOf"):
        variants = schema.get(key)
        if isinstance(variants, list) and variants:
            # (A union takes the types of all its alternatives; one that tells none takes any.)
            union: set[str] = set()
            for variant in variants:
                found = _json_types(variant, defs) if isinstance(variant, dict) else None
                if found is None:
                    return None
                union |= found
            return union
    for variant in schema.get("allOf", ()):
        found = _json_types(variant, defs) if isinstance(variant, dict) else None
        if found:
            return found
    values = schema.get("enum", [schema["const"]] if "const" in schema else [])
    # (None is JSON's null, not a type of the six: the other values tell the type, as for
    # an ``int | None``.)
    values = [value for value in values if value is not None] if isinstance(values, list) else []
    for kind, name in _ENUM_KINDS:
        if values and all(isinstance(v, kind) for v in values):
            return {name}
    return {"object"} if "properties" in schema else {"array"} if "items" in schema else None


def _unmarked(value: Any) -> Any:
    """``value`` without the marks :class:`_ToolJsonSchema` puts on a ``Decimal``'s text."""
    if isinstance(value, dict):
        return {k: _unmarked(v) for k, v in value.items() if k != _NUMBER_TEXT}
    if isinstance(value, list):
        return [_unmarked(v) for v in value]
    return value


def _refs(value: Any, found: list[Any]) -> None:
    """Add to ``found`` each ``$ref`` that ``value`` holds, at any depth."""
    if isinstance(value, dict):
        if "$ref" in value:
            found.append(value["$ref"])
        for item in value.values():
            _refs(item, found)
    elif isinstance(value, list):
        for item in value:
            _refs(item, found)


_DEFS_PREFIX = "#/$defs/"


def _referred_defs(value: Any, defs: dict[str, Any]) -> dict[str, Any] | None:
    """The definitions of ``defs`` that ``value`` refers to, also through another definition,
    in the order of ``defs`` (``None`` when it refers to none); all of ``defs`` when a
    reference is not to one of them (a ``$ref`` that ``json_schema_extra`` wrote)."""
    pending: list[Any] = []
    _refs(value, pending)
    if not pending:
        return None
    reached: set[str] = set()
    while pending:
        ref = pending.pop()
        if not isinstance(ref, str) or not ref.startswith(_DEFS_PREFIX):
            return defs
        name = ref[len(_DEFS_PREFIX) :]
        if name not in defs:
            return defs
        if name not in reached:
            reached.add(name)
            _refs(defs[name], pending)
    return {name: target for name, target in defs.items() if name in reached}


def parameters_from_model(model: type[BaseModel]) -> list[ToolParameter]:
    """Describe the fields of ``model`` as tool parameters, from its JSON schema.

    A field whose JSON type cannot be told (``Any``, for instance) is reported as ``"string"``,
    its ``schema`` :data:`ANY_VALUE` when nothing constrains it.
    ``ToolParameter.schema`` carries the field's JSON schema when it says more than the type
    (items, properties, enum values, bounds, alternatives, a type of none of the six such as
    ``null``), with the ``$defs`` it refers to (also through another definition), if any.
    Never raises for a field JSON schema cannot express, and never returns a value strict JSON
    cannot hold (see the module docstring).

    Args:
        model: A Pydantic model class, typically a :class:`ToolInput` subclass.

    Returns:
        One parameter per property of the model's schema, in declaration order.
    """
    full = _json_schema(model)
    if full is not None:
        try:
            return _from_schema(full)
        except Exception:  # (reshaped by json_schema_extra into what no JSON schema is)
            pass
    return _from_fields(model)


def _from_schema(full: dict[str, Any]) -> list[ToolParameter]:
    """One parameter per property of the model's JSON schema ``full``."""
    defs: dict[str, Any] = full.get("$defs", {})
    # A model that refers to itself (directly or through another) is itself a definition, and
    # its schema only a reference to it.
    model_schema = _deref(full, defs)
    required = set(model_schema.get("required", ()))
    params: list[ToolParameter] = []
    for name, prop in model_schema.get("properties", {}).items():
        resolved = _deref(prop, defs)
        detail: dict[str, Any] | None = None
        if "type" not in resolved and not resolved.keys() - _PLAIN_KEYS:
            # (no type and no other constraint: any value, which no type of the six tells)
            detail = {"type": list(ANY_VALUE["type"])}
        # (A type of none of the six, such as null, is told in the schema.)
        elif resolved.keys() - _PLAIN_KEYS or resolved.get("type", "string") not in _JSON_TYPES:
            detail = _unmarked(resolved)
            referred = _referred_defs(detail, defs) if defs else None
            if referred is not None:
                detail["$defs"] = _unmarked(referred)
        params.append(
            ToolParameter(
                name=name,
                type=_json_type(prop, defs) or "string",
                description=prop.get("description") or resolved.get("description") or "",
                required=name in required,
                default=prop.get("default"),
                schema=detail,
            )
        )
    return params
