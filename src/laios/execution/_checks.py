"""Checks of constructor arguments shared by the executor and its runners."""

from __future__ import annotations

from typing import Any

__all__ = ["check_task_fields", "positive_int"]


def positive_int(name: str, value: Any) -> int:
    """``value`` when it is a whole number of 1 or more (not a ``bool``).

    Raises:
        ValueError: Naming ``name`` and the value given, otherwise.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive whole number, got {value!r}")
    return value


def check_task_fields(task: Any, *names: str) -> None:
    """Refuse a ``Task`` built without validation (``model_construct``) whose fields ``names``
    (of ``id``, ``tool_name`` and ``parameters``) have a type no road can take: ``id`` and
    ``tool_name`` must be strings, ``parameters`` a dict (subclasses pass).

    Raises:
        TypeError: Naming the field and the type it has.
    """
    for name in names:
        kind, what = (dict, "a dict") if name == "parameters" else (str, "a string")
        value = getattr(task, name, None)
        if not isinstance(value, kind):
            raise TypeError(
                f"Task.{name} must be {what}, got {type(value).__name__} (was the Task built "
                "without validation, e.g. with Task.model_construct?)"
            )
