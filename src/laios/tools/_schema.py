"""Tool parameter descriptions derived from a Pydantic model's JSON schema.

:meth:`laios.tools.base.BaseTool.get_parameters` reports one
:class:`~laios.core.types.ToolParameter` per field of the tool's input model. The JSON type of a
field is read from its schema:

* a plain ``"type"`` (the first non-``null`` entry when it is a list);
* otherwise, the first alternative of ``anyOf`` / ``oneOf`` / ``allOf`` that names a type, so
  ``int | None`` is an ``"integer"``;
* otherwise, the Python type shared by all ``enum`` (or ``const``) values;
* otherwise ``"object"`` for a schema with ``properties`` and ``"array"`` for one with ``items``.

A field whose type none of these tell (``Any``, for instance) is reported as ``"string"``.
References to ``$defs`` (nested models, enums) are followed.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from laios.core.types import ToolParameter

__all__ = ["parameters_from_model"]

_JSON_TYPES = ("string", "number", "integer", "boolean", "object", "array")
_PLAIN_KEYS = frozenset({"type", "title", "description", "default"})
_ENUM_KINDS: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (bool, "boolean"),
    (int, "integer"),
    ((int, float), "number"),
    (str, "string"),
)


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
    """Return the JSON type of a property schema, or None when it does not name one."""
    schema = _deref(schema, defs)
    declared = schema.get("type")
    for candidate in declared if isinstance(declared, list) else [declared]:
        if candidate in _JSON_TYPES:
            return str(candidate)
    for key in ("anyOf", "oneOf", "allOf"):
        for variant in schema.get(key, ()):
            found = _json_type(variant, defs) if isinstance(variant, dict) else None
            if found is not None:
                return found
    values = schema.get("enum", [schema["const"]] if "const" in schema else [])
    for kind, name in _ENUM_KINDS:
        if values and all(isinstance(v, kind) for v in values):
            return name
    return "object" if "properties" in schema else "array" if "items" in schema else None


def _has_ref(value: Any) -> bool:
    if isinstance(value, dict):
        return "$ref" in value or any(_has_ref(v) for v in value.values())
    return isinstance(value, list) and any(_has_ref(v) for v in value)


def parameters_from_model(model: type[BaseModel]) -> list[ToolParameter]:
    """Describe the fields of ``model`` as tool parameters, from its JSON schema.

    A field whose JSON type cannot be told (``Any``, for instance) is reported as ``"string"``.
    ``ToolParameter.schema`` carries the field's JSON schema when it says more than the type
    (items, properties, enum values, bounds, alternatives), with ``$defs`` when it refers to them.

    Args:
        model: A Pydantic model class, typically a :class:`ToolInput` subclass.

    Returns:
        One parameter per property of the model's schema, in declaration order.
    """
    full = model.model_json_schema()
    defs: dict[str, Any] = full.get("$defs", {})
    required = set(full.get("required", ()))
    params: list[ToolParameter] = []
    for name, prop in full.get("properties", {}).items():
        resolved = _deref(prop, defs)
        detail: dict[str, Any] | None = None
        if resolved.keys() - _PLAIN_KEYS:
            detail = dict(resolved)
            if defs and _has_ref(detail):
                detail["$defs"] = defs
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
