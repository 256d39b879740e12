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
so (:data:`ANY_VALUE`); otherwise its ``schema`` carries ``ANY_VALUE``'s ``type`` next to what
else it says (``Any`` with a bound, a union with ``Any``), so that merged over ``"string"`` it
does not refuse what the field takes. So is
a field that takes ``None`` alone (typed ``None`` or ``Literal[None]``), which has none of the
six types: its ``ToolParameter.schema`` says ``{"type": "null"}``.
References to ``$defs`` (nested models, enums) are followed, also the one a model that refers
to itself has as its whole schema.

Each parameter is named as a caller passes it, as pydantic's schema names a field with an alias
or ``AliasChoices`` (its first plain name), except for one read along a path alone (an
``AliasPath``, an ``AliasChoices`` of paths), which pydantic names by the field's own name
though that name does not take it: such a field is described under the path's first step, an
object holding it where the path leads (see :func:`_along_paths`), in nested models too, and
that parameter's description tells what each field it holds is (see :func:`_told`). Where the
model's configuration lets the field's own name take its value (``validate_by_name=True``, or
``populate_by_name=True``), a field read along a path is described under that name, as pydantic
does; where it lets no alias take one (``validate_by_alias=False``), every field is described
under its own name, which pydantic's schema does not do (see :func:`_names_taken`).

The description is always strict JSON: a field JSON schema cannot express (a callable, a
class) is described as any value, a default that cannot be written as JSON (an object, bytes
that are not UTF-8, NaN, infinity) is left out, and so is any other non-finite number; a
``Decimal`` default is written as the number it is where a number tells it exactly. A model
whose JSON schema cannot be made at all is described from its fields' names, descriptions and
whether they are required.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import PydanticSerializationError

from laios.core.types import ToolParameter
from laios.tools._aliases import Path, alias_paths

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
    """JSON schema generation that describes what it cannot express instead of failing,
    marks the text alternative of a ``Decimal`` as the number it stands for, and names each
    field as its model's configuration lets a caller pass it (see :meth:`_named`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Whether aliases were asked for, which a model's configuration may refuse.
        self._asked_by_alias = self.by_alias
        #: The core configurations of the models and dataclasses being described, innermost last.
        self._configs: list[Mapping[str, Any]] = []

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

    def model_schema(self, schema: Any) -> JsonSchemaValue:
        """Pydantic's schema of a model, its fields named as its configuration lets a caller
        pass them (see :meth:`model_fields_schema`)."""
        return self._configured(schema, functools.partial(super().model_schema, schema))

    def dataclass_schema(self, schema: Any) -> JsonSchemaValue:
        """Pydantic's schema of a dataclass, as :meth:`model_schema`."""
        return self._configured(schema, functools.partial(super().dataclass_schema, schema))

    def model_fields_schema(self, schema: Any) -> JsonSchemaValue:
        """Pydantic's schema of a model's fields, each under the name a caller passes it by:
        one read along a path under the path's first step (see :func:`_along_paths`)."""
        fields = [(name, field.get("validation_alias")) for name, field in schema["fields"].items()]
        config = self._configs[-1] if self._configs else {}
        return self._named(fields, config, functools.partial(super().model_fields_schema, schema))

    def dataclass_args_schema(self, schema: Any) -> JsonSchemaValue:
        """Pydantic's schema of a dataclass's fields, as :meth:`model_fields_schema`."""
        fields = [(field["name"], field.get("validation_alias")) for field in schema["fields"]]
        config = self._configs[-1] if self._configs else {}
        return self._named(fields, config, functools.partial(super().dataclass_args_schema, schema))

    def typed_dict_schema(self, schema: Any) -> JsonSchemaValue:
        """Pydantic's schema of a ``TypedDict``, as :meth:`model_fields_schema`."""
        fields = [(name, field.get("validation_alias")) for name, field in schema["fields"].items()]
        config = schema.get("config") or {}
        return self._named(fields, config, functools.partial(super().typed_dict_schema, schema))

    def _configured(self, schema: Any, describe: Callable[[], JsonSchemaValue]) -> JsonSchemaValue:
        self._configs.append(schema.get("config") or {})
        try:
            return describe()
        finally:
            self._configs.pop()

    def _named(
        self,
        fields: list[tuple[str, Any]],
        config: Mapping[str, Any],
        describe: Callable[[], JsonSchemaValue],
    ) -> JsonSchemaValue:
        """The schema ``describe`` makes of an object with ``fields`` (pairs of a field's name
        and its validation alias), its properties named as ``config`` lets a caller pass them:
        by no alias when it refuses them, by the field's own name rather than a path when it
        takes that name (see :func:`_names_taken`)."""
        if self.mode != "validation":
            return describe()
        by_alias, by_name = _names_taken(config)
        asked = self.by_alias
        # (read by pydantic for each field's name; a nested model sets it again for its own)
        self.by_alias = self._asked_by_alias and by_alias
        try:
            described = describe()
        finally:
            self.by_alias = asked
        if not (self._asked_by_alias and by_alias) or by_name:
            return described
        return _along_paths(described, fields)


#: Whether pydantic has ``validate_by_name`` and ``validate_by_alias`` (2.11 and later); before,
#: ``populate_by_name`` alone lets a field's own name take its value besides its alias.
_BY_NAME_OPTIONS = "validate_by_name" in ConfigDict.__annotations__


def _names_taken(config: Mapping[str, Any]) -> tuple[bool, bool]:
    """Whether a field's alias, and whether its own name, take its value in a model with
    ``config`` (its ``model_config``, or the core configuration pydantic makes of it): the
    alias unless ``validate_by_alias=False``; the name with ``validate_by_name=True``, else
    with ``populate_by_name=True`` or when the alias does not, as pydantic reads them."""
    if not _BY_NAME_OPTIONS:
        return True, bool(config.get("populate_by_name"))
    by_alias = config.get("validate_by_alias", True) is not False
    by_name = config.get("validate_by_name")
    if by_name is None:
        by_name = bool(config.get("populate_by_name")) or not by_alias
    return by_alias, bool(by_name)


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
    """Describe the fields of a model that has no JSON schema by what they declare, each under
    the name a caller passes it by, as its JSON schema would (see :func:`_caller_path` and
    :func:`_names_taken`): one parameter for all the fields read along paths from the same
    one, described as :func:`_along_paths` describes it."""
    by_alias, by_name = _names_taken(model.model_config)
    kinds: dict[str, str] = {}
    required: dict[str, bool] = {}
    told: dict[str, list[str]] = {}
    for name, field in model.model_fields.items():
        alias = field.validation_alias if field.validation_alias is not None else field.alias
        if not by_alias:
            alias = None
        path = None if by_name else _caller_path(alias)
        if path is None:
            named = [p[0] for p in alias_paths(alias) if len(p) == 1 and isinstance(p[0], str)]
            caller = str(named[0]) if named else name
            kinds[caller] = "string"
            text = _told((), field.description)
        else:
            caller = str(path[0])
            kinds[caller] = "object" if isinstance(path[1], str) else "array"
            text = _told(path[1:], field.description)
        required[caller] = field.is_required() or required.get(caller, False)
        told.setdefault(caller, [])
        if text:
            told[caller].append(text)
    return [
        ToolParameter(
            name=caller,
            type=kind,
            description="\n".join(told[caller]),
            required=required[caller],
        )
        for caller, kind in kinds.items()
    ]


def _caller_path(alias: Any) -> Path | None:
    """The path a caller gives a field's value along when pydantic's JSON schema describes it
    under a name that does not take it: an alias of no plain name (an ``AliasPath``, an
    ``AliasChoices`` of paths alone) reads the first path, and pydantic names the field by
    its own name. ``None`` for a field a name takes (its alias's first, or its own)."""
    paths = alias_paths(alias)
    if not paths or any(len(path) == 1 and isinstance(path[0], str) for path in paths):
        return None
    first = paths[0]
    return first if len(first) > 1 and isinstance(first[0], str) else None


def _along_paths(described: JsonSchemaValue, fields: list[tuple[str, Any]]) -> JsonSchemaValue:
    """``described`` (the JSON schema of an object whose ``fields`` are pairs of a field's
    name and its validation alias) with each field read along a path (see
    :func:`_caller_path`) described under the path's first step instead of its own name: an
    object holding it under the next step (an array holding it at the position a step
    counts), and so on. The fields reading from the same first step are one property; where a
    field of that name is one too, the property is both (``allOf``). Required when one of the
    fields is."""
    properties = described.get("properties")
    if not isinstance(properties, dict):
        return described
    moved = {
        name: path
        for name, alias in fields
        if name in properties and (path := _caller_path(alias)) is not None
    }
    if not moved:
        return described
    required = described.get("required")
    required = required if isinstance(required, list) else []
    needed = {name for name in required if name not in moved}
    out: dict[str, Any] = {}
    built: set[str] = set()
    for key, prop in properties.items():
        path = moved.get(key)
        if path is None:
            head, value = key, prop
        else:
            head, value = str(path[0]), _along(path[1:], prop, key in required)
            if key in required:
                needed.add(head)
        if head not in out:
            out[head] = value
            if path is not None:
                built.add(head)
        elif head in built and path is not None:
            out[head] = _merged(out[head], value)
        else:
            out[head] = {"allOf": [out[head], value]}
            built.discard(head)
    # (each parameter made of paths is described by what its fields are, the field of its own
    # name first if one is part of it)
    heads = {str(path[0]) for path in moved.values()}
    told: dict[str, list[str]] = {}
    for key, prop in properties.items():
        path = moved.get(key)
        head = key if path is None else str(path[0])
        described_as = prop.get("description") if isinstance(prop, dict) else None
        text = _told(() if path is None else path[1:], described_as)
        if head in heads and text:
            told.setdefault(head, []).append(text)
    for head, texts in told.items():
        out[head] = {**out[head], "description": "\n".join(texts)}
    result = {**described, "properties": out}
    kept = [name for name in out if name in needed]
    kept += [name for name in required if name not in out and name not in moved]
    if kept:
        result["required"] = kept
    else:
        result.pop("required", None)
    return result


def _told(steps: Path, description: Any) -> str:
    """What the description of a parameter says of a field it holds along ``steps``: the
    field's ``description`` after where it is (``"city: The city."``, ``"x of the last item:
    ..."``); where the field has none, nothing, unless a step counts from the end of an array,
    which JSON Schema cannot tell (``"Read from the last item."``)."""
    text = description.strip() if isinstance(description, str) else ""
    if not steps:
        return text
    where = " of ".join(_step_words(step) for step in reversed(steps))
    if text:
        return f"{where}: {text}"
    if any(isinstance(step, int) and step < 0 for step in steps):
        return f"Read from {where}."
    return ""


def _step_words(step: str | int) -> str:
    """One step of a path in words: a key as it is, a position as the item at it."""
    if isinstance(step, str):
        return step
    if step >= 0:
        return f"the item at index {step}"
    if step == -1:
        return "the last item"
    count = -step
    suffix = "th" if count % 100 in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(count % 10)
    return f"the {count}{suffix or 'th'} item from the end"


def _along(steps: Path, schema: dict[str, Any], required: bool) -> dict[str, Any]:
    """The schema of a value holding one that ``schema`` describes along ``steps``: a key of
    an object for a text step, a position in an array for a number (one counted from the end,
    which JSON Schema cannot point at, tells only that it is an array, as long as the count
    when ``required``: :func:`_told` says which item it is), each there when ``required``."""
    for step in reversed(steps):
        if isinstance(step, str):
            schema = {"type": "object", "properties": {step: schema}}
            if required:
                schema["required"] = [step]
        elif step >= 0:
            schema = {"type": "array", "prefixItems": [*([{}] * step), schema]}
            if required:
                schema["minItems"] = step + 1
        else:
            schema = {"type": "array"}
            if required:
                schema["minItems"] = -step
    return schema


_OBJECT_KEYS = frozenset({"type", "properties", "required"})
_ARRAY_KEYS = frozenset({"type", "prefixItems", "minItems"})


def _merged(first: Any, second: Any) -> Any:
    """One schema of two that :func:`_along` made for the same first step: their properties
    (or positions) together, each merged again where both have it, and ``allOf`` both where
    they describe a field (or differ in type)."""
    if first == {}:
        return second
    if second == {}:
        return first
    if not (isinstance(first, dict) and isinstance(second, dict)):
        return {"allOf": [first, second]}
    kinds = (first.get("type"), second.get("type"))
    if kinds == ("object", "object") and first.keys() | second.keys() <= _OBJECT_KEYS:
        properties = dict(first.get("properties", {}))
        for key, value in second.get("properties", {}).items():
            properties[key] = _merged(properties[key], value) if key in properties else value
        required = list(first.get("required", []))
        required += [key for key in second.get("required", []) if key not in required]
        merged: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            merged["required"] = required
        return merged
    if kinds == ("array", "array") and first.keys() | second.keys() <= _ARRAY_KEYS:
        ones, others = first.get("prefixItems", []), second.get("prefixItems", [])
        items = [
            _merged(ones[i] if i < len(ones) else {}, others[i] if i < len(others) else {})
            for i in range(max(len(ones), len(others)))
        ]
        merged = {"type": "array"}
        if items:
            merged["prefixItems"] = items
        least = max(first.get("minItems", 0), second.get("minItems", 0))
        if least:
            merged["minItems"] = least
        return merged
    return {"allOf": [first, second]}


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
        told = _json_type(prop, defs)
        if told is None and detail is not None and "type" not in detail:
            # (``Any`` with a bound, a union with ``Any``: any type, said so, or the schema a
            # consumer merges, ``{"type": "string", **schema}``, would refuse what it takes)
            detail = {"type": list(ANY_VALUE["type"]), **detail}
        params.append(
            ToolParameter(
                name=name,
                type=told or "string",
                description=prop.get("description") or resolved.get("description") or "",
                required=name in required,
                default=prop.get("default"),
                schema=detail,
            )
        )
    return params
