"""The pydantic types that say a value is a secret.

One definition for every place that reads them: a tool's input model (which fields are
secret, :mod:`laios.execution._secret_fields`), a ``create_simple_tool`` function's
parameters (:mod:`laios.tools.base`) and the values met in a task's parameters
(:mod:`laios.execution.redaction`). Kept apart from both packages, as ``laios.tools`` cannot
import ``laios.execution`` (whose executor imports ``laios.tools``).
"""

from __future__ import annotations

from typing import Any

from pydantic import Secret, SecretBytes, SecretStr

__all__ = ["SECRET_TYPES", "aliased_type"]

#: ``SecretStr``, ``SecretBytes`` and ``Secret[...]`` (the first two are no ``Secret``): a
#: value of one of them, or one a field or parameter typed so is given, is a secret.
SECRET_TYPES = (SecretStr, SecretBytes, Secret)


def aliased_type(annotation: Any) -> Any:
    """The type ``annotation`` names under another name: the value of a ``type X = ...``
    alias (``TypeAliasType``), or the type a ``NewType("DbPassword", SecretStr)`` is made of,
    which pydantic validates it as (so a field of it holds a ``SecretStr``); ``None`` for any
    other annotation. Never raises."""
    for name in ("__value__", "__supertype__"):
        try:
            value = getattr(annotation, name, None)
        except Exception:  # (an annotation object whose attribute reads fail)
            continue
        if value is not None:
            return value
    return None
