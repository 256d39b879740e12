"""What the executor writes on a task (``status``, ``result``, ``error``, ``started_at``,
``completed_at``) as an assignment would write it.

A plain ``Task`` (and a subclass that only adds fields) takes the values as they are, without
validating them again: they are valid already. A frozen subclass, or a frozen field, is not
written: the task stays as its owner made it, and the outcome is in the ``TaskResult``. A
subclass with validators of its own for these fields has the values validated first, as
``task.status = ...`` would, on a copy of the task (a validator is the class's code: it must
not run under the executor's lock); a value a validator refuses is not written, and logged once
per class (by its module and name) and field. The check is made once per class, and kept
while the class lives.
"""

from __future__ import annotations

import logging
import math
import weakref
from typing import Any

from pydantic import ValidationError

from laios._compat.pydantic import assignment_rules
from laios._text import shorten
from laios.core.types import Task
from laios.execution._logs import WarningLimiter

__all__ = ["task_fields"]

_log = logging.getLogger("laios.execution")

#: The fields the executor writes on a task.
WRITTEN = ("status", "result", "error", "started_at", "completed_at")

#: Per ``Task`` subclass: the written fields that are frozen, and whether its validators run.
#: Held weakly: a program may make a subclass per call (in a function), and let it go.
_RULES: weakref.WeakKeyDictionary[type, tuple[frozenset[str], bool]] = weakref.WeakKeyDictionary()
#: The refusals logged, once per class (module and name) and field (see :func:`_refused`).
_REFUSALS = WarningLimiter(math.inf)


def _rules(kind: type) -> tuple[frozenset[str], bool]:
    rules = _RULES.get(kind)
    if rules is None:
        try:
            rules = assignment_rules(kind, Task, WRITTEN)
        except Exception:  # (a class whose config or fields cannot be read: as a Task)
            rules = (frozenset(), False)
        rules = _RULES.setdefault(kind, rules)  # (the first one worked out, on a race)
    return rules


def task_fields(task: Task, fields: dict[str, Any]) -> dict[str, Any]:
    """The values of ``fields`` to write on ``task`` (without validation): ``fields`` itself
    for a plain ``Task``; for a subclass, without its frozen fields, and as its validators
    make them (without those they refuse)."""
    kind = type(task)
    if kind is Task:  # the common case
        return fields
    frozen, validated = _rules(kind)
    if frozen:
        fields = {name: value for name, value in fields.items() if name not in frozen}
    if not validated or not fields:
        return fields
    probe = task.model_copy()
    written: dict[str, Any] = {}
    # The status last: a model validator sees the times and the result it goes with.
    for name in sorted(fields, key=lambda name: name == "status"):
        try:
            setattr(probe, name, fields[name])
            written[name] = vars(probe)[name]
        except Exception as exc:
            _refused(kind, name, exc)
    return written


def _refused(kind: type, name: str, exc: Exception) -> None:
    """Log (once per class and field) that a task's validator refused a value."""
    module = kind.__module__
    # (by its module and name: an id is used again once its class is gone, and a class
    # made per call has the same name each time, its refusal already told)
    shown = f"{module}.{kind.__qualname__}" if type(module) is str else kind.__qualname__
    if _REFUSALS.should_log(f"{shown} {name}") is None:
        return
    # (not str(exc): a ValidationError quotes the value, which may be the tool's output)
    if isinstance(exc, ValidationError):
        why = "; ".join(str(error.get("msg", "")) for error in exc.errors(include_input=False))
    else:
        why = type(exc).__qualname__
    _log.warning(
        "a validator of %s refused the %s the executor set on one of its tasks; the field "
        "was left as it was (the task's outcome is in its TaskResult): %s",
        shorten(shown, 200),
        name,
        shorten(why, 1000),
    )
