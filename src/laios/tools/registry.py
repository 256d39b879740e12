"""A thread-safe registry of tools, looked up by name.

Writes (registering, unregistering, clearing) are serialised by a lock and change the mapping in
place, a whole batch in one dictionary update, so registering a tool costs the same however many
tools are registered. Lookups by name (:meth:`ToolRegistry.get_tool`, :meth:`ToolRegistry.has_tool`,
``in``, :meth:`ToolRegistry.execute_tool`) are single dictionary operations that never wait for
the lock. Listing (:meth:`ToolRegistry.list_tools`, :meth:`ToolRegistry.get_all_schemas`,
``repr``) works on an immutable snapshot of the registered tools, rebuilt under the lock after a
write, so it never sees a half-applied write and never iterates a dictionary that is changing.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import reprlib
import threading
import types
from collections.abc import Iterable
from typing import Any, Protocol

from laios._exceptions import exception_message, propagates, type_name
from laios._text import SHOWN_NAME_CHARS, member_of, shorten, shown_name
from laios.core.types import Permission
from laios.tools.base import (
    BaseTool,
    ToolCategory,
    ToolOutput,
    base_exception_output,
    checked_attributes,
    checked_name,
    error_output,
    read_name,
    shown_value,
)

__all__ = ["ToolLookup", "ToolRegistry", "tool_not_found_message"]

logger = logging.getLogger("laios.tools.registry")


def _instantiate(tool: type[BaseTool] | BaseTool) -> tuple[str, BaseTool]:
    """Return ``tool`` if it is an instance, else a new instance of the class, with the name
    it is registered under (a plain ``str``: see ``checked_name``); its name and the other
    class attributes checked again, as the constructor checks them (a built tool's may have
    been changed since, and a class whose own ``__init__`` skips ``BaseTool.__init__`` was
    not checked at all)."""
    if isinstance(tool, BaseTool):
        built = tool
    elif isinstance(tool, type) and issubclass(tool, BaseTool):
        _check_built_bare(tool)
        built = tool()
    else:
        raise TypeError(_not_a_tool(tool))
    name = checked_name(
        read_name(built),
        lambda name: (
            f"Tool {type_name(type(built))}(name={reprlib.repr(name)}) must have a non-blank 'name'"
        ),
    )
    checked_attributes(built, name)
    return name, built


def _check_built_bare(tool: type[BaseTool]) -> None:
    """Refuse a tool class whose constructor needs arguments, which the registry (building it
    with none) cannot give, saying to register an instance instead.

    Raises:
        TypeError: Naming the arguments it needs.
    """
    try:
        parameters = inspect.signature(tool).parameters.values()
    except (TypeError, ValueError):  # (no signature to read: building it tells)
        return
    needed = [
        parameter
        for parameter in parameters
        if parameter.default is parameter.empty
        and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
    ]
    if not needed:
        return
    name = type_name(tool)
    given = ", ".join(
        "..." if parameter.kind is parameter.POSITIONAL_ONLY else f"{parameter.name}=..."
        for parameter in needed
    )
    raise TypeError(
        f"Tool class {name} cannot be registered as a class: the registry builds it with no "
        f"arguments, but {name}() needs {', '.join(p.name for p in needed)}. Build the tool "
        f"and register the instance: register_tool({name}({given}))"
    )


def _not_a_tool(tool: Any) -> str:
    """What registering ``tool``, neither a BaseTool subclass nor an instance, is told."""
    message = f"Expected a BaseTool subclass or instance, got {shown_value(tool)}"
    if callable(tool) and not isinstance(tool, type):
        func = getattr(tool, "__name__", "")
        func = func if isinstance(func, str) and func.isidentifier() else "func"
        message += (
            f"; to register a plain function, wrap it: create_simple_tool(name, description, "
            f"{func}) from laios.tools.base"
        )
    return message


class ToolLookup(Protocol):
    """What an ``Executor`` needs of its registry: a tool looked up by name.

    :class:`ToolRegistry` is one; so is any object of your own with this method, which the
    executor accepts in its place (``Executor(MyRegistry())``).
    """

    def get_tool(self, name: str, /) -> BaseTool | None:
        """Return the tool registered under ``name``, or ``None``."""
        ...


class ToolRegistry:
    """Holds tools by name and runs them.

    Safe to use from several threads at once.

    Example:
        >>> registry = ToolRegistry()
        >>> registry.register_tool(MyTool)  # doctest: +SKIP
        >>> registry.execute_tool("my_tool", path="/tmp")  # doctest: +SKIP
    """

    def __init__(self) -> None:
        """Create an empty registry."""
        self._lock = threading.RLock()
        # Changed in place, only under the lock; read without it, one operation at a time.
        self._tools: dict[str, BaseTool] = {}
        # The registered tools in registration order, or None after a write until next listed.
        self._snapshot: tuple[BaseTool, ...] | None = ()

    def _store(self, tools: Iterable[tuple[str, BaseTool]]) -> None:
        """Add ``tools``, each under its name, under one lock, warning about each name that
        replaces another tool."""
        replaced: list[tuple[str, BaseTool, BaseTool]] = []
        with self._lock:
            batch: dict[str, BaseTool] = {}
            for name, tool in tools:
                previous = batch.get(name)
                if previous is None:
                    previous = self._tools.get(name)
                if previous is not None and previous is not tool:
                    replaced.append((name, previous, tool))
                batch[name] = tool
            # One C-level update (string keys, replaced tools kept alive by ``replaced``): a
            # reader looking names up sees either none or all of the batch.
            self._tools.update(batch)
            self._snapshot = None
        for name, previous, tool in replaced:
            logger.warning(
                "Replacing tool %r (%s) with %s",
                name,
                type(previous).__name__,
                type(tool).__name__,
            )

    def _all(self) -> tuple[BaseTool, ...]:
        """Return the registered tools in registration order, as an immutable snapshot."""
        snapshot = self._snapshot
        if snapshot is None:
            with self._lock:
                snapshot = self._snapshot
                if snapshot is None:
                    snapshot = self._snapshot = tuple(self._tools.values())
        return snapshot

    def register_tool(self, tool_class: type[BaseTool] | BaseTool) -> BaseTool:
        """Register a tool under its ``name``.

        A tool already registered under the same name is replaced, with a logged warning.

        Args:
            tool_class: A :class:`BaseTool` subclass (instantiated with no arguments) or an
                already built tool instance.

        Returns:
            The registered tool instance.

        Raises:
            TypeError: If ``tool_class`` is neither a BaseTool subclass nor an instance, is a
                class whose ``__init__`` needs arguments (register an instance instead),
                reading the tool's ``name`` (or another checked attribute: a property) raises,
                or its ``input_model`` is no :class:`~laios.tools.base.ToolInput` subclass.
            ValueError: If the tool class refuses to be instantiated (blank name, ...), or the
                tool's name is blank or not one line of visible text, or its description,
                category or permissions are ones the constructor refuses (a tool whose own
                ``__init__`` skipped it, or one changed since it was made).
        """
        name, tool = _instantiate(tool_class)
        self._store([(name, tool)])
        return tool

    def register_tools(self, tool_classes: Iterable[type[BaseTool] | BaseTool]) -> list[BaseTool]:
        """Register several tools at once.

        All tools are built first; if any of them fails, none is registered.

        Args:
            tool_classes: BaseTool subclasses or instances.

        Returns:
            The registered tool instances, in the given order.

        Raises:
            TypeError: If ``tool_classes`` is not an iterable (one tool given alone, say), or
                an item is neither a BaseTool subclass nor an instance, or is a class whose
                ``__init__`` needs arguments.
            ValueError: If a tool class refuses to be instantiated.
        """
        if isinstance(tool_classes, type) and not issubclass(tool_classes, BaseTool):
            raise TypeError(
                "register_tools expects an iterable of tools (BaseTool subclasses or "
                f"instances), got the class {tool_classes.__name__}, which is no tool"
            )
        if isinstance(tool_classes, (BaseTool, type)):  # one tool, not a collection of them
            name = getattr(tool_classes, "__name__", None) or type(tool_classes).__name__
            raise TypeError(
                f"register_tools expects an iterable of tools, got the tool {name}: call "
                f"register_tools([{name}]) or register_tool({name})"
            )
        try:
            items = iter(tool_classes)
        except TypeError:
            raise TypeError(
                "register_tools expects an iterable of tools (BaseTool subclasses or "
                f"instances), got {type(tool_classes).__name__}"
            ) from None
        named = [_instantiate(item) for item in items]
        self._store(named)
        return [tool for _, tool in named]

    def unregister_tool(self, name: str) -> bool:
        """Remove the tool registered under ``name``.

        Args:
            name: Tool name.

        Returns:
            True if a tool was removed, False if there was none (also for a name that
            cannot be looked up: one that cannot be hashed, or whose hash or ``==`` raises).
        """
        with self._lock:
            try:
                removed = self._tools.pop(name, None)
            except Exception:  # an unhashable name (a list, one whose hash or == raises)
                return False
            if removed is None:
                return False
            self._snapshot = None
        return True

    def clear(self) -> None:
        """Remove every tool."""
        with self._lock:
            self._tools = {}
            self._snapshot = ()

    def get_tool(self, name: str) -> BaseTool | None:
        """Return the tool registered under ``name``, or None.

        Args:
            name: Tool name.

        Returns:
            The tool instance, or None if no tool has that name.
        """
        try:
            return self._tools.get(name)
        except Exception:  # an unhashable name (a list, one whose hash raises): no tool has it
            return None

    def has_tool(self, name: str) -> bool:
        """Tell whether a tool is registered under ``name``: whether :meth:`get_tool` (a
        subclass's own, if it overrides it) finds one that can be run.

        Args:
            name: Tool name.

        Returns:
            True if the registry holds a tool with that name; False when ``get_tool`` raises
            (logged at debug level), and when it returns what no run can use (a class, whose
            every run fails saying to return an instance; a coroutine, from a lookup that is
            an async function, not awaited, which is closed), logged at warning level saying
            what to write, once per registry (each later such answer at debug level).
        """
        try:
            found = self.get_tool(name)
        except Exception as exc:  # (a subclass's own get_tool)
            logger.debug(
                "has_tool(%s): get_tool raised %s; answered False",
                _quoted(name),
                type_name(type(exc)),
                exc_info=exc,
            )
            return False
        if found is None or isinstance(found, BaseTool):
            return found is not None
        if isinstance(found, type):  # (a subclass's own get_tool: runs need an instance)
            kind, said = "class", _returned_class(found)
        else:
            coroutine = returned_coroutine(found, self.get_tool)
            if coroutine is not None:
                # (a subclass's get_tool around an async lookup: nothing runs)
                kind, said = "coroutine", coroutine
            else:
                said = _no_way_to_run(found)
                if said is None:
                    return True  # (a tool of its own making, with the method runs call)
                kind = "no tool"  # (a plain function, say)
        self._unusable(name, kind, said)
        return False

    def _unusable(self, name: object, kind: str, said: str) -> None:
        """Log that :meth:`has_tool` answered ``False`` for ``name`` because ``get_tool``
        returned ``said`` (what no run can use): at warning level the first time this
        registry's ``get_tool`` returns that ``kind`` of value, at debug level after that (a
        caller asking in a loop is told once, not at every call)."""
        # Made here, not in __init__, which a subclass's own may skip; without the lock, as
        # every lookup runs: a dict's setdefault is one operation (one thread is first).
        told: dict[str, object] = self.__dict__.setdefault("_told_unusable", {})
        token = object()
        if told.setdefault(kind, token) is token:
            logger.warning(
                "has_tool(%s): get_tool returned %s; answered False (said once per registry: "
                "later such answers are logged at debug level)",
                _quoted(name),
                said,
            )
        else:
            logger.debug("has_tool(%s): get_tool returned %s; answered False", _quoted(name), said)

    def list_tools(
        self,
        category: ToolCategory | str | None = None,
        permission: Permission | str | None = None,
    ) -> list[BaseTool]:
        """List the registered tools, in registration order, optionally filtered.

        Args:
            category: Keep only tools of this category (enum member or value).
            permission: Keep only tools that require this permission (enum member or value).

        Returns:
            The matching tools.

        Raises:
            TypeError: If ``category`` or ``permission`` is neither a member nor a string.
            ValueError: If ``category`` or ``permission`` is a string that is not a valid
                value.
        """
        tools = list(self._all())
        if category is not None:
            wanted_category = member_of(ToolCategory, "category", category, _quoted)
            tools = [t for t in tools if t.category == wanted_category]
        if permission is not None:
            wanted_permission = member_of(Permission, "permission", permission, _quoted)
            tools = [t for t in tools if wanted_permission in (t.required_permissions or ())]
        return tools

    def execute_tool(self, name: str, /, **kwargs: Any) -> ToolOutput:
        """Run the tool registered under ``name`` (the one :meth:`get_tool` finds: a
        subclass's own, if it overrides it). Never raises.

        ``name`` is positional-only, so a tool may itself take a ``name`` parameter.

        Args:
            name: Tool name.
            **kwargs: The tool's parameters.

        Returns:
            The tool's output, or a failed output with ``error="Tool not found: NAME"`` (a
            name of more than 128 characters cut to 128, the cut marked "…") and
            ``metadata["error_type"] == "tool_not_found"`` for an unknown name (one naming
            the exception when ``get_tool`` raised, and one saying to return an instance when
            it returned a class).
        """
        try:
            tool = self.get_tool(name)
        except (KeyboardInterrupt, SystemExit):
            raise  # (interrupts the caller, as under an executor)
        except BaseException as exc:  # (a subclass's own get_tool; GeneratorExit too)
            return ToolOutput(
                success=False,
                error=(
                    f"The tool registry failed: get_tool({_quoted(name)}) raised "
                    f"{type_name(type(exc))}: {exception_message(exc)}"
                ),
                metadata={"error_type": type_name(type(exc))},
            )
        if tool is None:
            return ToolOutput(
                success=False,
                error=tool_not_found_message(name),
                metadata={"error_type": "tool_not_found"},
            )
        if isinstance(tool, type):  # (a subclass's own get_tool: its execute needs an instance)
            return ToolOutput(
                success=False,
                error=returned_class_message(name, tool),
                metadata={"error_type": "TypeError"},
            )
        try:
            return tool.execute(**kwargs)
        except Exception as exc:
            if propagates(exc):
                raise
            said = (
                returned_coroutine(tool, self.get_tool) or _no_way_to_run(tool, "execute")
                if isinstance(exc, AttributeError) and not isinstance(tool, BaseTool)
                else None
            )
            if said is not None:  # (a subclass's own get_tool, wrapping an async lookup)
                return ToolOutput(
                    success=False,
                    error=f"The tool registry failed: get_tool({_quoted(name)}) returned {said}",
                    metadata={"error_type": "TypeError"},
                )
            return error_output(exc)  # (a Ctrl-C in its __str__: it goes on)
        except KeyboardInterrupt:
            raise  # (the caller's Ctrl-C)
        except BaseException as exc:  # (an execute of its own letting GeneratorExit out)
            return base_exception_output(tool, exc)

    def get_tool_schema(self, name: str) -> dict[str, Any] | None:
        """Return the schema of the tool registered under ``name``, or None.

        Args:
            name: Tool name.

        Returns:
            The result of :meth:`BaseTool.get_schema`, or None for an unknown name.

        Raises:
            TypeError: When a subclass's own :meth:`get_tool` returned a class, not a tool,
                or a coroutine (closed).
        """
        tool = self.get_tool(name)
        if isinstance(tool, type):
            raise TypeError(returned_class_message(name, tool))
        try:
            return None if tool is None else tool.get_schema()
        except AttributeError:
            # (a subclass's get_tool around an async lookup, or an async def get_tool)
            said = returned_coroutine(tool, self.get_tool)
            if said is None:
                raise
            raise TypeError(
                f"The tool registry failed: get_tool({_quoted(name)}) returned {said}"
            ) from None

    def get_all_schemas(self) -> list[dict[str, Any]]:
        """Return the schema of every registered tool, in registration order.

        Returns:
            One :meth:`BaseTool.get_schema` dict per tool.
        """
        return [tool.get_schema() for tool in self._all()]

    def __len__(self) -> int:
        """Return the number of registered tools."""
        return len(self._tools)

    def __contains__(self, name: object) -> bool:
        """Tell whether a tool is registered under ``name`` (False for a non-string), as
        :meth:`has_tool` does."""
        return isinstance(name, str) and self.has_tool(name)

    def __repr__(self) -> str:
        """Return a short description listing the names the tools are registered under (not
        their ``name`` attributes, which may have been changed since to anything). Never
        raises."""
        with self._lock:  # (the keys are plain strings: sorting and quoting them cannot raise)
            names = sorted(self._tools)
        return f"ToolRegistry(tools={names!r})"


def _quoted(name: Any) -> str:
    """A tool name as a message quotes it: its ``repr``, cut to 128 characters (the cut marked
    "…"), or its type (``<Thing object>``) when its ``repr`` raises; never raises."""
    if isinstance(name, str):  # (a subclass's own repr is not called)
        return repr(str.__str__(shorten(name, SHOWN_NAME_CHARS)))
    try:
        text = repr(name)
    except Exception:
        return _unprintable(name)
    return shorten(text, SHOWN_NAME_CHARS) if isinstance(text, str) else _unprintable(name)


def tool_not_found_message(name: object) -> str:
    """``Tool not found: NAME``, the error of a name no tool has: a name longer than
    :data:`~laios._text.SHOWN_NAME_CHARS` characters cut short (the error is copied into
    results, spans and progress events). Never raises."""
    return f"Tool not found: {shown_name(_text(name))}"


def _text(name: Any) -> str:
    """A tool name as text (``Tool not found: NAME``): its ``str``, or its type when its
    ``str`` raises; never raises."""
    if type(name) is str:
        return name
    try:
        text = str(name)
    except Exception:
        return _unprintable(name)
    return text if isinstance(text, str) else _unprintable(name)


def _unprintable(name: Any) -> str:
    return f"<{shorten(type_name(type(name)), SHOWN_NAME_CHARS)} object>"


def closed_coroutine(value: Any) -> bool:
    """Whether ``value``, which a registry's ``get_tool`` returned, is a coroutine (a plain
    ``def get_tool`` returning an async lookup's coroutine, not awaited), which is closed
    here, so Python does not warn later that it was never awaited. Any other value is left
    as it is."""
    if type(value) is not types.CoroutineType:
        return False
    with contextlib.suppress(Exception):
        value.close()
    return True


def returned_coroutine(value: Any, lookup: Any = None) -> str | None:
    """What a run says of ``value``, which a registry's ``get_tool`` returned, when it is a
    coroutine (closed: see :func:`closed_coroutine`), after "returned". ``None`` for any other
    value (left as it is).

    Args:
        value: What ``get_tool`` returned.
        lookup: The ``get_tool`` method itself, when known: a coroutine of its own (an
            ``async def get_tool``) is told so, not that it called an async function.
    """
    if not closed_coroutine(value):
        return None
    name = getattr(value, "__qualname__", None)
    shown = f" ({shorten(name, SHOWN_NAME_CHARS)})" if isinstance(name, str) else ""
    if lookup is not None and _runs_code_of(lookup, getattr(value, "cr_code", None)):
        return (
            f"a coroutine{shown}, not a tool: get_tool is itself an async function (async def "
            "get_tool), but tools are looked up synchronously, so get_tool must return the "
            "tool itself (or None): make get_tool a plain def, awaiting nothing (the coroutine "
            "was closed, never run)"
        )
    return (
        f"a coroutine{shown}, not a tool: get_tool called an async function without awaiting "
        "it, but tools are looked up synchronously, so get_tool must return the tool itself "
        "(or None): make the lookup a plain function, awaiting nothing (the coroutine was "
        "closed, never run)"
    )


def _runs_code_of(lookup: Any, code: Any) -> bool:
    """Whether ``code`` is that of the function ``lookup`` (a method) is, or wraps (a
    decorator's ``__wrapped__``). Never raises."""
    try:
        func = getattr(lookup, "__func__", lookup)
        own = (getattr(func, "__code__", None), getattr(inspect.unwrap(func), "__code__", None))
        return code is not None and any(code is each for each in own)
    except Exception:  # (a lookup's own attribute that raises; a __wrapped__ cycle)
        return False


def _no_way_to_run(value: Any, method: str | None = None) -> str | None:
    """What is said of ``value``, which a registry's ``get_tool`` returned, after "returned",
    when it has no ``method`` to run it by, as a plain function has not (by default the one
    an executor calls: ``execute_async`` when its ``is_async`` is true, else ``execute``);
    ``None`` when it has one."""
    try:
        if method is None:
            method = "execute_async" if getattr(value, "is_async", False) else "execute"
        if hasattr(value, method):
            return None
    except Exception:  # (an object of its own whose lookups raise: its run says what)
        return None
    return not_a_tool(value, method)


def not_a_tool(value: Any, method: str) -> str:
    """What is said of ``value``, which a registry's ``get_tool`` returned, after "returned":
    it has no ``method`` to run it by (a registry of the caller's own keeping plain
    functions), and what to return instead."""
    if inspect.isroutine(value):
        name = getattr(value, "__qualname__", None)
        what = f"the function {shorten(name, 128)}" if isinstance(name, str) else "a function"
    else:
        what = f"an instance of {shorten(type(value).__qualname__, 128)}"
    return (
        f"{what}, not a tool (it has no {method}() method): a registry's get_tool must return "
        "a tool, such as a BaseTool instance; wrap a plain function with "
        "create_simple_tool(name, description, func)"
    )


def returned_class_message(name: Any, tool_class: type) -> str:
    """What a run says when a registry's ``get_tool(name)`` returned ``tool_class`` itself
    (a subclass's own ``get_tool``): a class cannot run, an instance of it can."""
    said = _returned_class(tool_class)
    return f"The tool registry failed: get_tool({_quoted(name)}) returned {said}"


def _returned_class(tool_class: type) -> str:
    """What is said of ``tool_class``, which a registry's ``get_tool`` returned, after
    "returned": a class, not a tool, and what to return instead."""
    shown = shorten(tool_class.__qualname__, SHOWN_NAME_CHARS)
    return (
        f"the class {shown}, not a tool: return an instance ({shown}()), as register_tool keeps one"
    )
