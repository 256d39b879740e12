"""Tests for laios.tools.registry."""

from __future__ import annotations

import gc
import logging
import sys
import threading
import time
from typing import Any

import pytest
from odd_values import EqRaises, OddText, Unusable

from laios.core.types import Permission
from laios.tools.base import AsyncBaseTool, BaseTool, ToolCategory, ToolOutput, create_simple_tool
from laios.tools.registry import ToolRegistry


class EchoTool(BaseTool):
    name = "echo"
    description = "Returns its keyword arguments"
    category = ToolCategory.UTILITY

    def _execute(self, **kwargs: Any) -> Any:
        return kwargs


class OtherEcho(EchoTool):
    description = "Another tool under the name echo"


class ReadTool(EchoTool):
    name = "read"
    description = "Reads files"
    category = ToolCategory.FILESYSTEM
    required_permissions = {Permission.FILESYSTEM_READ}


class ShellTool(EchoTool):
    name = "shell"
    description = "Runs commands"
    category = ToolCategory.SHELL
    required_permissions = {Permission.SHELL_EXECUTE, Permission.FILESYSTEM_READ}


class AsyncTool(AsyncBaseTool):
    name = "async"
    description = "Async echo"

    async def _execute_async(self, **kwargs: Any) -> Any:
        return kwargs


class ControlFlow(Exception):
    _laios_propagate = True


def make_registry(*tools: type[BaseTool] | BaseTool) -> ToolRegistry:
    registry = ToolRegistry()
    registry.register_tools(tools)
    return registry


def make_tool_class(index: int) -> type[BaseTool]:
    return type(f"Tool{index}", (EchoTool,), {"name": f"tool_{index}"})


def test_register_class_instantiates_it() -> None:
    """Registering a class stores an instance of it under its name."""
    registry = ToolRegistry()
    returned = registry.register_tool(EchoTool)
    assert isinstance(registry.get_tool("echo"), EchoTool)
    assert registry.get_tool("echo") is returned


def test_register_instance_stores_that_instance() -> None:
    """Registering an instance stores that very object."""
    tool = EchoTool()
    assert make_registry(tool).get_tool("echo") is tool


def test_register_rejects_other_objects() -> None:
    """Registering something that is not a tool raises TypeError."""
    with pytest.raises(TypeError):
        ToolRegistry().register_tool(object)  # type: ignore[arg-type]


def test_registering_a_plain_function_names_create_simple_tool() -> None:
    """A plain function is refused with a message pointing to ``create_simple_tool``."""

    def double(n: int) -> int:
        return 2 * n

    with pytest.raises(TypeError, match=r"create_simple_tool\(name, description, double\)"):
        ToolRegistry().register_tool(double)  # type: ignore[arg-type]
    with pytest.raises(TypeError) as refused:
        ToolRegistry().register_tool("double")  # type: ignore[arg-type]
    assert "create_simple_tool" not in str(refused.value)


class _NeedsClient(BaseTool):
    name = "needs_client"
    description = "Built with a client."

    def __init__(self, client: Any, *, retries: int = 3) -> None:
        super().__init__()
        self.client = client

    def _execute(self) -> Any:
        return self.client


@pytest.mark.parametrize("many", [False, True], ids=["register_tool", "register_tools"])
def test_a_class_that_needs_arguments_is_refused_saying_to_register_an_instance(
    many: bool,
) -> None:
    """The registry builds a class with no arguments: one whose ``__init__`` needs some is
    refused naming them and saying to register an instance instead, not with the bare
    "missing 1 required positional argument"; an instance of it registers."""
    registry = ToolRegistry()
    register: Any = registry.register_tools if many else registry.register_tool
    with pytest.raises(TypeError) as refused:
        register([_NeedsClient] if many else _NeedsClient)
    message = str(refused.value)
    assert "_NeedsClient() needs client" in message
    assert "register_tool(_NeedsClient(client=...))" in message
    assert "retries" not in message
    assert len(registry) == 0
    assert registry.register_tool(_NeedsClient("db")).client == "db"


def test_replacing_a_tool_logs_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """A second tool with the same name replaces the first and logs a warning."""
    registry = make_registry(EchoTool)
    with caplog.at_level(logging.WARNING, logger="laios.tools.registry"):
        registry.register_tool(OtherEcho)
    assert isinstance(registry.get_tool("echo"), OtherEcho)
    assert [r.name for r in caplog.records] == ["laios.tools.registry"]
    assert "echo" in caplog.records[0].getMessage()


def test_registering_same_instance_again_is_silent(caplog: pytest.LogCaptureFixture) -> None:
    """Registering the already registered instance again logs nothing."""
    tool = EchoTool()
    registry = make_registry(tool)
    with caplog.at_level(logging.WARNING, logger="laios.tools.registry"):
        registry.register_tool(tool)
    assert caplog.records == []


def test_register_tools_registers_all() -> None:
    """register_tools registers every given tool."""
    assert sorted(t.name for t in make_registry(EchoTool, ReadTool).list_tools()) == [
        "echo",
        "read",
    ]


def test_register_tools_is_all_or_nothing() -> None:
    """If one tool of a batch cannot be built, none of the batch is registered."""
    broken = type("Broken", (EchoTool,), {"name": ""})
    registry = ToolRegistry()
    with pytest.raises(ValueError):
        registry.register_tools([ReadTool, broken])
    assert len(registry) == 0


def test_get_tool_unknown_is_none() -> None:
    """get_tool returns None for an unknown name."""
    assert ToolRegistry().get_tool("missing") is None


def test_has_tool() -> None:
    """has_tool tells registered names from unknown ones."""
    registry = make_registry(EchoTool)
    assert (registry.has_tool("echo"), registry.has_tool("read")) == (True, False)


def test_list_tools_keeps_registration_order() -> None:
    """list_tools returns tools in the order they were registered."""
    registry = make_registry(ShellTool, EchoTool, ReadTool)
    assert [t.name for t in registry.list_tools()] == ["shell", "echo", "read"]


def test_list_tools_filters_by_category() -> None:
    """list_tools(category=...) keeps only tools of that category."""
    registry = make_registry(ShellTool, EchoTool, ReadTool)
    assert [t.name for t in registry.list_tools(category=ToolCategory.SHELL)] == ["shell"]


def test_list_tools_filters_by_permission() -> None:
    """list_tools(permission=...) keeps only tools requiring that permission."""
    registry = make_registry(ShellTool, EchoTool, ReadTool)
    names = [t.name for t in registry.list_tools(permission=Permission.FILESYSTEM_READ)]
    assert names == ["shell", "read"]


def test_list_tools_filters_accept_string_values() -> None:
    """list_tools accepts category and permission as their string values, combined."""
    registry = make_registry(ShellTool, EchoTool, ReadTool)
    tools = registry.list_tools(category="filesystem", permission="filesystem.read")
    assert [t.name for t in tools] == ["read"]


def test_execute_tool_runs_the_tool() -> None:
    """execute_tool passes the keyword arguments to the named tool."""
    assert make_registry(EchoTool).execute_tool("echo", a=1) == ToolOutput(data={"a": 1})


def test_execute_tool_unknown_name() -> None:
    """execute_tool on an unknown name returns the documented failure."""
    output = ToolRegistry().execute_tool("nope")
    assert output == ToolOutput(
        success=False, error="Tool not found: nope", metadata={"error_type": "tool_not_found"}
    )


class _HugeText:
    """A name whose str() is 100,000 characters long."""

    def __str__(self) -> str:
        return "z" * 100_000


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("x" * 100_000, "x" * 127 + "…"),  # cut to 128 characters, the cut marked
        ("y" * 128, "y" * 128),  # as long as a name is shown whole
        (_HugeText(), "z" * 127 + "…"),  # its str(), cut alike
    ],
    ids=["huge", "longest shown whole", "huge str"],
)
def test_execute_tool_names_a_huge_unknown_name_briefly(name: Any, said: str) -> None:
    """An unknown name of 100,000 characters is cut to 128 in the error (as the executor
    cuts it), not quoted whole."""
    output = ToolRegistry().execute_tool(name)
    assert output == ToolOutput(
        success=False,
        error=f"Tool not found: {said}",
        metadata={"error_type": "tool_not_found"},
    )


def test_execute_tool_accepts_a_name_parameter() -> None:
    """A tool parameter called 'name' does not clash with the tool name argument."""
    assert make_registry(EchoTool).execute_tool("echo", name="x").data == {"name": "x"}


def test_execute_tool_keeps_tool_failure_unchanged() -> None:
    """A failed ToolOutput from the tool reaches the caller unchanged."""
    failure = ToolOutput(success=False, error="original message")

    class Failing(EchoTool):
        name = "failing"

        def _execute(self, **kwargs: Any) -> Any:
            return failure

    assert make_registry(Failing).execute_tool("failing") is failure


def test_execute_tool_never_raises_from_a_broken_execute() -> None:
    """execute_tool converts an exception from an overridden execute() into a failure."""

    class Broken(EchoTool):
        name = "broken"

        def execute(self, **kwargs: Any) -> ToolOutput:
            raise RuntimeError("broken execute")

    output = make_registry(Broken).execute_tool("broken")
    assert (output.success, output.error) == (False, "broken execute")
    assert output.metadata == {"error_type": "RuntimeError"}


def test_execute_tool_lets_propagating_exceptions_through() -> None:
    """execute_tool re-raises exceptions whose class sets _laios_propagate."""

    class Stopping(EchoTool):
        name = "stopping"

        def _execute(self, **kwargs: Any) -> Any:
            raise ControlFlow

    with pytest.raises(ControlFlow):
        make_registry(Stopping).execute_tool("stopping")


def test_execute_tool_runs_async_tools() -> None:
    """execute_tool runs an async tool to completion outside an event loop."""
    assert make_registry(AsyncTool).execute_tool("async", v=2).data == {"v": 2}


@pytest.mark.parametrize("name", [[], {}, ["echo"], {"echo"}], ids=repr)
def test_a_name_that_cannot_be_a_tool_name_is_unknown(name: Any) -> None:
    """get_tool, has_tool, get_tool_schema and unregister_tool answer as for any unknown
    name, as ``name in registry`` and execute_tool do, instead of raising "unhashable type"."""
    registry = ToolRegistry()
    registry.register_tool(EchoTool)
    assert registry.get_tool(name) is None
    assert registry.has_tool(name) is False
    assert registry.get_tool_schema(name) is None
    assert registry.unregister_tool(name) is False
    assert name not in registry
    assert registry.execute_tool(name).metadata["error_type"] == "tool_not_found"
    assert registry.has_tool("echo")


class _Unprintable:
    """A name whose str() and repr() raise."""

    def __str__(self) -> str:
        raise RuntimeError("no text")

    __repr__ = __str__


class _HashRaises(_Unprintable):
    """A name whose hash raises too."""

    def __hash__(self) -> int:
        raise RuntimeError("no hash")


@pytest.mark.parametrize("name", [_Unprintable(), _HashRaises()], ids=["unprintable", "hash"])
def test_execute_tool_never_raises_for_a_name_that_cannot_be_printed_or_hashed(
    name: Any,
) -> None:
    """A name whose str() and repr() raise (and whose hash raises) is an unknown name, named by
    its type: execute_tool returns the documented failure instead of raising what the name's
    methods raise, and get_tool, has_tool and ``in`` answer as for any unknown name."""
    registry = make_registry(EchoTool)
    output = registry.execute_tool(name)
    assert output == ToolOutput(
        success=False,
        error="Tool not found: <_Unprintable object>"
        if type(name) is _Unprintable
        else "Tool not found: <_HashRaises object>",
        metadata={"error_type": "tool_not_found"},
    )
    assert registry.get_tool(name) is None
    assert registry.has_tool(name) is False
    assert name not in registry


def test_execute_tool_names_an_unprintable_name_when_get_tool_raises() -> None:
    """A subclass's get_tool that raises for a name whose repr raises gives a failure naming
    the name by its type, instead of execute_tool raising the repr's exception."""

    class Failing(ToolRegistry):
        def get_tool(self, name: str) -> BaseTool | None:
            raise LookupError("backend down")

    output = Failing().execute_tool(_Unprintable())  # type: ignore[arg-type]
    assert output.success is False
    assert output.error == (
        "The tool registry failed: get_tool(<_Unprintable object>) raised LookupError: backend down"
    )


def test_get_tool_schema() -> None:
    """get_tool_schema returns the tool's schema, or None for an unknown name."""
    registry = make_registry(ReadTool)
    assert registry.get_tool_schema("read") == ReadTool().get_schema()
    assert registry.get_tool_schema("missing") is None


def test_get_all_schemas() -> None:
    """get_all_schemas returns one schema per tool, in registration order."""
    schemas = make_registry(ReadTool, EchoTool).get_all_schemas()
    assert [s["name"] for s in schemas] == ["read", "echo"]


def test_unregister_tool() -> None:
    """unregister_tool removes a tool and reports whether one was there."""
    registry = make_registry(EchoTool)
    assert (registry.unregister_tool("echo"), registry.unregister_tool("echo")) == (True, False)
    assert "echo" not in registry


def test_clear_removes_everything() -> None:
    """clear() empties the registry."""
    registry = make_registry(EchoTool, ReadTool)
    registry.clear()
    assert (len(registry), registry.list_tools()) == (0, [])


def test_len_and_contains() -> None:
    """len() counts tools; 'in' checks names and is False for non-strings."""
    registry = make_registry(EchoTool, ReadTool)
    assert len(registry) == 2
    assert ("read" in registry, "shell" in registry, 3 in registry) == (True, False, False)


def test_get_tool_does_not_wait_for_the_lock() -> None:
    """get_tool answers while another thread holds the registry's write lock."""
    registry = make_registry(EchoTool)
    holding, release = threading.Event(), threading.Event()
    found: list[BaseTool | None] = []

    def hold() -> None:
        with registry._lock:
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    reader = threading.Thread(target=lambda: found.append(registry.get_tool("echo")))
    holder.start()
    try:
        assert holding.wait(5)
        reader.start()
        reader.join(timeout=2)
        assert not reader.is_alive()
        assert isinstance(found[0], EchoTool)
    finally:
        release.set()
        holder.join()
        reader.join()


def test_concurrent_registration_and_reads() -> None:
    """Tools registered from many threads all end up present, while readers never fail."""
    registry = ToolRegistry()
    classes = [make_tool_class(i) for i in range(200)]
    errors: list[BaseException] = []
    done = threading.Event()

    def writer(chunk: list[type[BaseTool]]) -> None:
        for cls in chunk:
            registry.register_tool(cls)

    def reader() -> None:
        try:
            while not done.is_set():
                registry.list_tools(category=ToolCategory.UTILITY)
                registry.get_all_schemas()
        except BaseException as exc:
            errors.append(exc)

    readers = [threading.Thread(target=reader) for _ in range(2)]
    writers = [threading.Thread(target=writer, args=(classes[i::4],)) for i in range(4)]
    for thread in readers + writers:
        thread.start()
    for thread in writers:
        thread.join()
    done.set()
    for thread in readers:
        thread.join()
    assert errors == []
    assert len(registry) == 200


class NumberedTool(EchoTool):
    """An echo tool whose name is given per instance."""

    def __init__(self, index: int) -> None:
        self.name = f"numbered_{index}"
        super().__init__()


def _registration_seconds(count: int) -> float:
    tools = [NumberedTool(index) for index in range(count)]
    registry = ToolRegistry()
    collect = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for tool in tools:
            registry.register_tool(tool)
        elapsed = time.perf_counter() - start
    finally:
        if collect:
            gc.enable()
    assert len(registry) == count
    return elapsed


def test_registration_time_grows_linearly_with_the_number_of_tools() -> None:
    """Registering 40,000 tools one by one costs about 20 times as much as 2,000, not 400."""
    # The fastest of several runs of each: a busy machine only ever adds time to a run.
    baseline = min(_registration_seconds(2_000) for _ in range(5))
    large = min(_registration_seconds(40_000) for _ in range(3))
    # Linear growth gives a ratio near 20; copying the registry on each registration near 400.
    assert large < 100 * baseline + 0.05, (baseline, large)


def test_listing_during_registration_sees_whole_batches() -> None:
    """Readers listing, counting and iterating while a writer registers and unregisters
    batches never fail and always see either all of a batch or none of it."""
    registry = ToolRegistry()
    pairs = [(NumberedTool(2 * i), NumberedTool(2 * i + 1)) for i in range(3_000)]
    errors: list[BaseException] = []
    done = threading.Event()

    def writer() -> None:
        try:
            for first, second in pairs:
                registry.register_tools([first, second])
                registry.register_tool(first)
            for first, _second in pairs[::2]:
                registry.unregister_tool(first.name)
        finally:
            done.set()

    def reader() -> None:
        try:
            while not done.is_set():
                names = {tool.name for tool in registry.list_tools()}
                for name in names:
                    index = int(name.removeprefix("numbered_"))
                    partner = f"numbered_{index ^ 1}"
                    # The writer finally unregisters the first tool of every other pair.
                    if index % 4 > 1 and partner not in names:
                        raise AssertionError(f"{name} listed without {partner}")
                assert len(registry.get_all_schemas()) <= len(pairs) * 2
                assert len(registry) <= len(pairs) * 2
                repr(registry)
        except BaseException as exc:
            errors.append(exc)

    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        threads = [threading.Thread(target=reader) for _ in range(2)]
        threads.append(threading.Thread(target=writer))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        sys.setswitchinterval(switch_interval)
    assert errors == []
    assert len(registry) == len(pairs) * 2 - len(pairs[::2])
    assert [tool.name for tool in registry.list_tools()][:2] == ["numbered_1", "numbered_2"]


@pytest.mark.parametrize("given", [None, 5])
def test_register_tools_refuses_what_is_not_a_collection_of_tools(given: Any) -> None:
    """register_tools(None) said "'NoneType' object is not iterable", naming no method."""
    with pytest.raises(TypeError, match=r"register_tools expects an iterable of tools"):
        ToolRegistry().register_tools(given)


def test_register_tools_given_one_tool_class_says_to_pass_a_list() -> None:
    """One tool class given instead of a list of them: the message says to pass [Tool]."""

    class One(BaseTool):
        name = "one"
        description = "One tool."

        def _execute(self, **kwargs: Any) -> Any:
            return None

    with pytest.raises(TypeError, match=r"register_tools\(\[One\]\)|register_tool\(One\)"):
        ToolRegistry().register_tools(One)  # type: ignore[arg-type]


@pytest.mark.parametrize("given", [ToolRegistry, dict, ToolOutput])
def test_register_tools_given_a_class_that_is_no_tool_does_not_call_it_a_tool(given: Any) -> None:
    """register_tools(ToolRegistry) said "got the tool ToolRegistry: call
    register_tools([ToolRegistry]) or register_tool(ToolRegistry)", both of which are refused:
    a class that is no BaseTool subclass is named as a class that is no tool."""
    with pytest.raises(TypeError) as caught:
        ToolRegistry().register_tools(given)
    message = str(caught.value)
    assert message == (
        "register_tools expects an iterable of tools (BaseTool subclasses or instances), "
        f"got the class {given.__name__}, which is no tool"
    ), message


@pytest.mark.parametrize("kind", ["hash", "eq"])
def test_unregister_tool_of_a_name_whose_hash_or_eq_raises_is_false(kind: str) -> None:
    """``unregister_tool`` let the ``RuntimeError`` of a name's own hash (or ``==``, for a
    string equal to a registered name) out, where ``get_tool`` and ``has_tool`` answer as for
    an unknown name. It now answers ``False`` too, and removes nothing."""
    registry = make_registry(EchoTool)
    name = _HashRaises() if kind == "hash" else EqRaises("echo")
    assert registry.unregister_tool(name) is False  # type: ignore[arg-type]
    assert registry.has_tool("echo")


@pytest.mark.parametrize("argument", ["category", "permission"])
@pytest.mark.parametrize("kind", ["unprintable", "int", "list"])
def test_list_tools_names_a_filter_that_is_no_string_in_a_type_error(
    argument: str, kind: str
) -> None:
    """A filter that is neither a member nor a string was looked up by its hash: one whose
    hash raised let that error out, and others were refused with a ``ValueError``. It is now
    a ``TypeError`` naming the argument, the type given and the values to pass, none of its
    own methods called."""
    value = {"unprintable": _HashRaises(), "int": 5, "list": ["x"] * 100_000}[kind]
    registry = make_registry(ShellTool, EchoTool)
    with pytest.raises(TypeError, match=rf"{argument} must be a .* or one of its values") as raised:
        registry.list_tools(**{argument: value})
    message = str(raised.value)
    assert f"got {type(value).__name__}" in message
    assert ("'shell'" if argument == "category" else "'shell.execute'") in message
    assert len(message) < 1000, len(message)


@pytest.mark.parametrize("argument", ["category", "permission"])
def test_list_tools_quotes_an_unknown_filter_short(argument: str) -> None:
    """An unknown string was quoted whole by the enum's own message (a 100 KB string made a
    100 KB message). The message names the argument and quotes the start of the value."""
    registry = make_registry(EchoTool)
    with pytest.raises(ValueError, match=rf"{argument} must be one of .*got 'xxx") as raised:
        registry.list_tools(**{argument: "x" * 100_000})
    assert len(str(raised.value)) < 1000, len(str(raised.value))


def test_list_tools_reads_a_filter_of_a_string_class_of_ones_own_as_its_text() -> None:
    """A ``str`` subclass whose hash and ``==`` raise filters by its text."""
    registry = make_registry(ShellTool, EchoTool, ReadTool)
    tools = registry.list_tools(
        category=OddText("filesystem"),  # type: ignore[arg-type]
        permission=OddText("filesystem.read"),  # type: ignore[arg-type]
    )
    assert [t.name for t in tools] == ["read"]


class _HashlessText(str):
    """A string of the caller's own whose hash raises."""

    def __hash__(self) -> int:
        raise RuntimeError("no hash")


class _ReprlessText(str):
    """A string of the caller's own whose ``repr`` raises."""

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


@pytest.mark.parametrize("kind", [_HashlessText, _ReprlessText, EqRaises])
@pytest.mark.parametrize("given", ["class", "instance", "simple"])
def test_a_tool_named_by_a_string_class_of_ones_own_is_registered_under_its_text(
    kind: type[str], given: str
) -> None:
    """A tool whose ``name`` is a ``str`` subclass was built and registered under that object:
    one whose hash raised broke ``register_tool``, one whose ``repr`` raised broke the tool's
    constructor, and one whose ``==`` raised was registered but never found by its name. The
    name is now taken as its text, by the constructor, ``create_simple_tool`` and the
    registry."""
    name = kind("named")
    if given == "simple":
        tool: Any = create_simple_tool(name, "d", lambda: 1)
    else:
        tool = type("Named", (EchoTool,), {"name": name})
        if given == "instance":
            tool = tool()
    registry = ToolRegistry()
    registered = registry.register_tool(tool)
    assert registry.get_tool("named") is registered
    assert type(registered.name) is str
    assert registry.execute_tool("named").success
    assert [t.name for t in registry.list_tools()] == ["named"]
    assert "named" in repr(registry)


@pytest.mark.parametrize("kind", [OddText, EqRaises, Unusable])
def test_repr_lists_the_names_tools_are_registered_under_whatever_their_name_became(
    kind: type,
) -> None:
    """A tool's ``name`` changed after registration to a value whose ``str()``, ``==`` or
    ordering raises made ``repr(registry)`` raise that error. It lists the names the tools
    are registered under (the names :meth:`get_tool` finds them by)."""
    registry = make_registry(ShellTool, EchoTool)
    registry.get_tool("echo").name = kind() if kind is Unusable else kind("renamed")  # type: ignore[union-attr]
    assert repr(registry) == "ToolRegistry(tools=['echo', 'shell'])"
