"""The pydantic types that say a value is a secret.

One definition for every place that reads them: a tool's input model (which fields are
secret, :mod:`laios.execution._secret_fields`), a ``create_simple_tool`` function's
parameters (:mod:`laios.tools.base`) and the values met in a task's parameters
(:mod:`laios.execution.redaction`). Kept apart from both packages, as ``laios.tools`` cannot
import ``laios.execution`` (whose executor imports ``laios.tools``).
"""

from __future__ import annotations

from pydantic import Secret, SecretBytes, SecretStr

__all__ = ["SECRET_TYPES"]

#: ``SecretStr``, ``SecretBytes`` and ``Secret[...]`` (the first two are no ``Secret``): a
#: value of one of them, or one a field or parameter typed so is given, is a secret.
SECRET_TYPES = (SecretStr, SecretBytes, Secret)
