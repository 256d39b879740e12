"""Where a tool's input model declares secrets by type (or by a name its callers need not use).

A field typed ``pydantic.SecretStr``, ``SecretBytes`` or ``Secret[...]`` (or ``Optional`` of
one, a list or a dict of them, or a model, dataclass or ``TypedDict`` with such a field) says
that what the caller passes there is a secret, whatever the field is called. So does a field
with a secret-looking name and an alias that does not look so (``api_key`` passed as ``k``).
The tool's parameters hold that value as plain text (pydantic wraps it only inside the tool),
so the redaction must be told where to look: :func:`declared_secrets` reads the model once and
describes those places as a :class:`SecretFields` tree (the redaction module's
``secret_fields`` calls it, telling it which names look secret).
"""

from __future__ import annotations

import collections.abc
import dataclasses
import threading
import types
import typing
import weakref
from collections.abc import Callable
from typing import Any, Union

from pydantic import AliasChoices, AliasPath, BaseModel, RootModel

from laios._secret_types import SECRET_TYPES, aliased_type
from laios._type_hints import is_typeddict, resolved_hints

__all__ = ["SecretFields", "declared_secrets"]

#: Deepest nesting of type arguments and models read (deeper types are taken as not secret).
_MAX_TYPE_DEPTH = 32


class SecretFields:
    """Where secrets are declared in a value of a model: a node of a tree, read-only once
    made (it may refer back to itself, as a recursive model does).

    Attributes:
        fields: For a mapping (or an object's fields): under each of these keys, ``True`` when
            everything there is secret, the :class:`SecretFields` of the value there, or
            ``False`` (nothing secret: a model's declared field, whose other fields are
            secret by type).
        items: For the items of a list, tuple or set, and the values of a mapping under the
            other keys: ``True``, their :class:`SecretFields`, or ``None`` (nothing secret).
        names: For a key that is one of several names of a model field (its name, alias and
            validation aliases), all of those names: a short secret passed under one of them
            may be written under another (``pin=…`` for a field passed as ``X-Pin``).
    """

    __slots__ = ("fields", "items", "names")

    def __init__(self) -> None:
        self.fields: dict[Any, SecretFields | bool] = {}
        self.items: SecretFields | bool | None = None
        self.names: dict[str, tuple[str, ...]] = {}

    def inner(self, key: Any) -> SecretFields | bool | None:
        """What is declared under ``key`` of a mapping (``None`` or ``False``: nothing
        secret)."""
        try:
            return self.fields.get(key, self.items)
        except TypeError:  # a key that cannot be hashed
            return self.items

    def __repr__(self) -> str:  # (one level: the tree may loop)
        def said(inner: SecretFields | bool | None) -> str:
            return "secret" if inner is True else "…" if inner else "-"

        fields = ", ".join(f"{key!r}: {said(inner)}" for key, inner in self.fields.items())
        return f"SecretFields({{{fields}}}, items={said(self.items)})"


_Shape = Union[SecretFields, bool, None]  # noqa: UP007 (a runtime alias, read at run time)

_cache: weakref.WeakKeyDictionary[type, SecretFields | None] = weakref.WeakKeyDictionary()
_cache_lock = threading.Lock()


def declared_secrets(model: Any, is_secret_name: Callable[[str], bool]) -> SecretFields | None:
    """Where a pydantic model (a tool's ``input_model``) declares secrets by type, or by a
    secret-looking name of a field passed under an ordinary alias: ``None`` when it declares
    none, at any depth. Computed once per model class, then kept (as long as
    the class lives).

    Args:
        model: A pydantic model class; anything else declares nothing.
        is_secret_name: Whether a name looks secret: the redaction module's
            ``is_secret_key``, given by it (it reads its models through this module), the
            same at every call (the answer is kept per model).
    """
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return None
    try:
        return _cache[model]
    except KeyError:
        pass
    found = _analyse(model, is_secret_name)
    with _cache_lock:
        _cache.setdefault(model, found)
    return _cache.get(model, found)


def _analyse(model: type, is_secret_name: Callable[[str], bool]) -> SecretFields | None:
    """The :class:`SecretFields` of ``model`` (``None``: nothing secret), never raising."""
    try:
        analysis = _Analysis(is_secret_name)
        return _pruned(analysis.final(analysis.shape_of_class(model, 0)))
    except Exception:  # a type too odd to read: it declares nothing
        return None


class _Union:
    """While a model is read: a value that may be any of ``parts`` (nodes not complete yet)."""

    __slots__ = ("parts",)

    def __init__(self, parts: list[Any]) -> None:
        self.parts = parts


class _Analysis:
    """One reading of a model.

    First the classes met are read into nodes (a class met again, as in a recursive model,
    refers to its node) and a union of several nodes is only noted (:class:`_Union`); then
    :meth:`final` copies the graph, merging each union's nodes into one node.
    """

    def __init__(self, is_secret_name: Callable[[str], bool]) -> None:
        self.is_secret_name = is_secret_name
        self.nodes: dict[type, SecretFields] = {}
        self.finals: dict[frozenset[int], SecretFields] = {}

    def shape_of(self, annotation: Any, depth: int) -> Any:
        """What an annotation declares: ``True`` (a secret), a node, a union, or ``None``."""
        if depth > _MAX_TYPE_DEPTH or annotation is None or annotation is Any:
            return None
        origin = typing.get_origin(annotation)
        # (``list[X]`` is an instance of ``type`` on Python 3.10: a class only without origin)
        if isinstance(annotation, type) and origin is None:
            if issubclass(annotation, SECRET_TYPES):
                return True
            return self.shape_of_class(annotation, depth)
        args = typing.get_args(annotation)
        if origin is None:
            value = aliased_type(annotation)  # (``type X = SecretStr``, a NewType of it)
            return self.shape_of(value, depth + 1) if value is not None else None
        if origin is typing.Annotated:
            return self.shape_of(args[0], depth + 1) if args else None
        if origin is Union or origin is types.UnionType:
            return _either([self.shape_of(arg, depth + 1) for arg in args])
        if not isinstance(origin, type):  # Literal, Callable…
            return None
        if issubclass(origin, SECRET_TYPES):  # Secret[int]
            return True
        if issubclass(origin, collections.abc.Mapping):
            value_type = args[1] if len(args) == 2 else None
            return _container(self.shape_of(value_type, depth + 1))
        if issubclass(origin, (str, bytes, bytearray)):
            return None
        if issubclass(origin, collections.abc.Iterable):
            item_types = [arg for arg in args if arg is not Ellipsis]
            return _container(_either([self.shape_of(arg, depth + 1) for arg in item_types]))
        return self.shape_of_class(origin, depth)

    def shape_of_class(self, cls: type, depth: int) -> Any:
        """What a class declares through its fields (a model, a dataclass, a TypedDict)."""
        node = self.nodes.get(cls)
        if node is not None:
            return node
        if issubclass(cls, RootModel):
            root = cls.model_fields.get("root")
            return self.shape_of(root.annotation, depth + 1) if root is not None else None
        if issubclass(cls, BaseModel):
            node = self.nodes[cls] = SecretFields()
            for name, info in cls.model_fields.items():
                # (a plain field is noted too: typed extra fields must not cover its name)
                shape = self.shape_of(info.annotation, depth + 1)
                keys = _keys_of(name, info, False if shape is None else shape)
                if shape is not True and _named_secret_in_part(keys, self.is_secret_name):
                    keys = _keys_of(name, info, True)
                for key, under in keys:
                    node.fields[key] = _either([node.fields.get(key), under])
                names = tuple(dict.fromkeys(key for key, _ in keys if type(key) is str))
                if len(names) > 1:
                    for key in names:
                        node.names[key] = tuple(dict.fromkeys((*node.names.get(key, ()), *names)))
            if cls.model_config.get("extra") == "allow":
                extra = typing.get_args(resolved_hints(cls).get("__pydantic_extra__"))
                if len(extra) == 2:  # dict[str, X]: every extra field is an X
                    node.items = self.shape_of(extra[1], depth + 1)
            return node
        if dataclasses.is_dataclass(cls) or is_typeddict(cls):
            node = self.nodes[cls] = SecretFields()
            for name, hint in resolved_hints(cls).items():
                shape = self.shape_of(hint, depth + 1)
                if shape is not None:
                    node.fields[name] = shape
            return node
        return None

    def final(self, shape: Any) -> _Shape:
        """``shape`` with every union merged into one node (a copy of the graph)."""
        if shape is None or shape is True:
            return shape
        parts = _flat_parts(shape)
        if any(part is True for part in parts):
            return True
        nodes = [part for part in parts if isinstance(part, SecretFields)]
        if not nodes:
            return None
        key = frozenset(id(node) for node in nodes)
        made = self.finals.get(key)
        if made is not None:
            return made
        made = self.finals[key] = SecretFields()
        names = dict.fromkeys(name for node in nodes for name in node.fields)
        for name in names:
            inner = self.final(_either([node.fields.get(name, node.items) for node in nodes]))
            made.fields[name] = False if inner is None else inner
        for node in nodes:
            for name, others in node.names.items():
                made.names[name] = tuple(dict.fromkeys((*made.names.get(name, ()), *others)))
        made.items = self.final(_either([node.items for node in nodes]))
        return made


def _flat_parts(shape: Any) -> list[Any]:
    """The nodes (and ``True``) a shape may be, unions flattened."""
    if not isinstance(shape, _Union):
        return [shape]
    return [part for inner in shape.parts for part in _flat_parts(inner)]


def _keys_of(name: str, info: Any, shape: Any) -> list[tuple[Any, Any]]:
    """The keys a model field is read from (its name, alias and validation aliases), each with
    what lies under it: ``shape``; below the first step of an ``AliasPath`` to a secret,
    ``True`` (all of it)."""
    keys: list[tuple[Any, Any]] = [(name, shape)]
    aliases: list[Any] = [info.alias, info.validation_alias]
    if isinstance(info.validation_alias, AliasChoices):
        aliases.extend(info.validation_alias.choices)
    for alias in aliases:
        if isinstance(alias, str):
            keys.append((alias, shape))
        elif isinstance(alias, AliasPath) and alias.path:
            deeper = len(alias.path) > 1 and shape is not False
            keys.append((alias.path[0], True if deeper else shape))
    return keys


def _named_secret_in_part(
    keys: list[tuple[Any, Any]], is_secret_name: Callable[[str], bool]
) -> bool:
    """Whether some of the names a model field is read from look secret (``api_key``) and
    others do not (its alias ``k``): a value passed under the ordinary one is the field's all
    the same, and secret as one passed under its own name is. (A field all of whose names look
    secret needs no note: each name is secret as a key.)"""
    names = {key for key, _ in keys if type(key) is str}
    secret = sum(1 for key in names if is_secret_name(key))
    return 0 < secret < len(names)


def _container(inner: Any) -> Any:
    """What a list or mapping declares when each of its items declares ``inner``."""
    if inner is None or inner is True:
        return inner  # (a list of secrets is secret as a whole)
    node = SecretFields()
    node.items = inner
    return node


def _either(shapes: list[Any]) -> Any:
    """What a value declares when it may be any of ``shapes`` (a union)."""
    present = [shape for shape in shapes if shape is not None]
    if not present:
        return None
    if any(shape is True for shape in present):
        return True
    if len(present) == 1:
        return present[0]
    return _Union(present)


def _pruned(shape: _Shape) -> SecretFields | None:
    """``shape`` with every branch that declares no secret left out (``None`` when nothing
    is left): a model without secret types costs nothing per call."""
    if shape is None or shape is False:
        return None
    if shape is True:  # a model whose root is a secret
        node = SecretFields()
        node.items = True
        return node
    # Which nodes lead to a secret: repeat until no more are found (the graph may loop).
    nodes = _reachable(shape)
    leads: set[int] = set()
    changed = True
    while changed:
        changed = False
        for node in nodes:
            if id(node) not in leads and any(
                _leads(inner, leads) for inner in (*node.fields.values(), node.items)
            ):
                leads.add(id(node))
                changed = True
    if id(shape) not in leads:
        return None
    for node in nodes:
        if not _leads(node.items, leads):
            node.items = None
        if node.items is None:  # (no typed extra fields: a plain field needs no note)
            node.fields = {key: inner for key, inner in node.fields.items() if _leads(inner, leads)}
        else:
            node.fields = {
                key: inner if _leads(inner, leads) else False for key, inner in node.fields.items()
            }
    return shape


def _leads(inner: _Shape, leads: set[int]) -> bool:
    return inner is True or (isinstance(inner, SecretFields) and id(inner) in leads)


def _reachable(root: SecretFields) -> list[SecretFields]:
    """Every node reachable from ``root``, each once."""
    seen: dict[int, SecretFields] = {}
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen[id(node)] = node
        stack.extend(
            inner
            for inner in (*node.fields.values(), node.items)
            if isinstance(inner, SecretFields)
        )
    return list(seen.values())
