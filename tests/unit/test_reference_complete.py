"""The Reference documents every public name of the API contract.

The contract is the execution API reference and the supporting API (the shared spec files).
Its public names are listed below, with the Reference page that must document each: the name
itself, its methods, fields or enum members, and every parameter of its constructor and methods
as the code declares them (read with ``inspect.signature``, so a new option cannot go
undocumented).
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import inspect
import re
from collections.abc import Callable
from functools import cache
from typing import Any

import pytest
from _scripts import ROOT

REFERENCE = ROOT / "docs" / "reference"

#: page -> {(module, public name): members (methods, fields, enum members) that must appear}
CONTRACT: dict[str, dict[tuple[str, str], tuple[str, ...]]] = {
    "executor.md": {
        ("laios.execution.executor", "Executor"): (
            "execute_task",
            "execute_async",
            "execute_parallel",
            "execute_with_retry",
            "get_running_tasks",
            "get_task_status",
            "get_metrics",
            "get_all_metrics",
            "cancel_task",
            "shutdown",
            "store",
            "abandoned_threads",
            "is_shutdown",
            "task_monitor",
        ),
        ("laios.execution.executor", "ResourceLimits"): (
            "from_config",
            "timeout_seconds",
            "memory_limit_mb",
            "cpu_limit_percent",
        ),
        ("laios.execution.executor", "ExecutionMetrics"): (
            "task_id",
            "start_time",
            "end_time",
            "execution_time",
            "cpu_time",
            "memory_peak_mb",
            "retries",
            "checkpoints",
            "outcome",
            "tool_name",
            "trace_id",
            "span_id",
            "start",
            "end",
            "checkpoint",
            "to_dict",
        ),
        ("laios.execution.executor", "TaskMonitor"): (
            "start_monitoring",
            "stop_monitoring",
            "get_running_tasks",
            "get_task_status",
            "get_metrics",
            "get_all_metrics",
            "checkpoint",
            "is_running",
            "clear_metrics",
        ),
        ("laios.execution.executor", "ExecutionMode"): ("SYNC", "ASYNC", "PARALLEL"),
        ("laios.execution.tracing", "Tracing"): ("enabled", "allowed", "capture_content"),
    },
    "monitor.md": {
        ("laios.execution.monitor", "ExecutionMonitor"): (
            "start_task",
            "update_task_progress",
            "complete_task",
            "cancel_task",
            "get_progress",
            "get_progress_history",
            "get_execution_stats",
            "add_progress_listener",
            "remove_progress_listener",
            "clear_task",
            "progress_tracker",
        ),
        ("laios.execution.monitor", "ProgressTracker"): (
            "update_progress",
            "get_progress",
            "get_history",
            "clear_progress",
            "add_listener",
            "remove_listener",
        ),
        ("laios.execution.monitor", "ProgressUpdate"): (
            "task_id",
            "status",
            "progress_percent",
            "message",
            "details",
            "timestamp",
        ),
        ("laios.execution.monitor", "ProgressStatus"): (
            "PENDING",
            "STARTING",
            "IN_PROGRESS",
            "COMPLETING",
            "COMPLETED",
            "FAILED",
            "CANCELLED",
        ),
        ("laios.execution.monitor", "ExecutionStats"): (
            "total_tasks",
            "completed_tasks",
            "failed_tasks",
            "cancelled_tasks",
            "running_tasks",
            "average_execution_time",
            "success_rate",
        ),
        ("laios.execution.monitor", "PerformanceMonitor"): (
            "record_metric",
            "get_metrics",
            "get_metric_summary",
            "clear_metrics",
        ),
        ("laios.execution.monitor", "get_execution_monitor"): (),
        ("laios.execution.monitor", "get_performance_monitor"): (),
    },
    "types.md": {
        ("laios.core.types", "Task"): (
            "id",
            "plan_id",
            "description",
            "tool_name",
            "parameters",
            "dependencies",
            "status",
            "result",
            "error",
            "started_at",
            "completed_at",
            "metadata",
        ),
        ("laios.core.types", "TaskStatus"): (
            "PENDING",
            "RUNNING",
            "COMPLETED",
            "FAILED",
            "CANCELLED",
            "BLOCKED",
        ),
        ("laios.core.types", "TaskResult"): (
            "task_id",
            "success",
            "output",
            "error",
            "logs",
            "execution_time_seconds",
            "metadata",
        ),
        ("laios.core.types", "Context"): (
            "session_id",
            "user_id",
            "messages",
            "relevant_memories",
            "metadata",
        ),
        ("laios.core.types", "Message"): ("id", "role", "content", "metadata", "timestamp"),
        ("laios.core.types", "Memory"): (
            "id",
            "content",
            "memory_type",
            "embedding",
            "metadata",
            "created_at",
            "accessed_at",
        ),
        ("laios.core.types", "MemoryType"): ("SHORT_TERM", "LONG_TERM", "EPISODIC"),
        ("laios.core.types", "Permission"): (
            "FILESYSTEM_READ",
            "FILESYSTEM_WRITE",
            "SHELL_EXECUTE",
            "NETWORK_ACCESS",
            "CODE_EXECUTE",
        ),
        ("laios.core.types", "ToolParameter"): (
            "name",
            "type",
            "description",
            "required",
            "default",
            "schema",
        ),
    },
    "tools.md": {
        ("laios.tools.base", "ToolCategory"): (
            "FILESYSTEM",
            "SHELL",
            "WEB",
            "CODE",
            "DATA",
            "SYSTEM",
            "UTILITY",
            "CUSTOM",
        ),
        ("laios.tools.base", "ToolInput"): (),
        ("laios.tools.base", "ToolOutput"): ("success", "data", "error", "metadata"),
        ("laios.tools.base", "BaseTool"): (
            "name",
            "description",
            "category",
            "required_permissions",
            "input_model",
            "is_async",
            "execute",
            "_execute",
            "_validate",
            "get_parameters",
            "get_schema",
        ),
        ("laios.tools.base", "AsyncBaseTool"): ("execute_async", "_execute_async", "execute"),
        ("laios.tools.base", "create_simple_tool"): (),
        ("laios.tools.registry", "ToolRegistry"): (
            "register_tool",
            "register_tools",
            "get_tool",
            "has_tool",
            "list_tools",
            "execute_tool",
            "get_tool_schema",
            "get_all_schemas",
            "unregister_tool",
            "clear",
        ),
    },
    "task-context.md": {
        ("laios.execution.task_context", "current_task"): (),
        ("laios.execution.task_context", "require_current_task"): (),
        ("laios.execution.task_context", "TaskContext"): (
            "task_id",
            "tool_name",
            "cancelled",
            "raise_if_cancelled",
            "checkpoint",
            "progress",
        ),
        ("laios.execution.task_context", "TaskCancelledError"): (),
    },
    "store.md": {
        ("laios.execution.store", "MetricStore"): (
            "snapshot",
            "abandoned_threads",
            "add_finish_listener",
            "remove_finish_listener",
            "finish_listeners",
        ),
        ("laios.execution.store", "get_default_store"): (),
        ("laios.execution.store", "FinishedTask"): (
            "tool",
            "outcome",
            "duration",
            "queue_wait",
            "started",
            "error_type",
            "exemplar",
        ),
    },
    "otel-metrics.md": {
        ("laios.execution.otel_metrics", "instrument_metrics"): (),
        ("laios.execution.otel_metrics", "MetricsInstrumentation"): (
            "uninstrument",
            "active",
            "store",
            "meter_provider",
        ),
        ("laios.execution.otel_metrics", "metric_views"): (),
    },
    "retry.md": {
        ("laios.execution.retry", "RetryPolicy"): (
            "max_retries",
            "retry_delay",
            "backoff",
            "max_delay",
            "jitter",
            "deadline",
            "retry_if",
            "delay",
        ),
        ("laios.execution.retry", "default_retry_if"): (),
        ("laios.execution.retry", "sleeps_disabled"): (),
        ("laios.execution.retry", "InvalidCallbackError"): (),
    },
    "server-and-prometheus.md": {
        ("laios.execution.server", "make_wsgi_app"): (),
        ("laios.execution.server", "make_asgi_app"): (),
        ("laios.execution.server", "start_http_server"): (),
        ("laios.execution.server", "MetricsServer"): ("shutdown", "close", "url", "port", "host"),
        ("laios.execution.server", "status_document"): (),
        ("laios.execution.prometheus", "ensure_collector"): (),
        ("laios.execution.prometheus", "unregister_collector"): (),
        ("laios.execution.prometheus", "StoreCollector"): (
            "stores",
            "add_store",
            "collect",
            "describe",
            "totals",
            "use_totals",
        ),
        ("laios.execution.web", "WebConfig"): (
            "tls_server_config",
            "basic_auth_users",
            "bearer_tokens",
            "headers",
            "authenticates",
        ),
        ("laios.execution.web", "TLSServerConfig"): (
            "cert_file",
            "key_file",
            "client_auth_type",
            "client_ca_file",
            "min_version",
            "max_version",
            "prefer_server_cipher_suites",
            "ssl_context",
            "requires_client_certificate",
        ),
        ("laios.execution.web", "load_web_config"): (),
        ("laios.execution.web", "hash_password"): (),
        ("laios.execution.web", "WebConfigError"): (),
    },
    "multiprocess.md": {
        ("laios.execution.multiprocess", "enable"): (),
        ("laios.execution.multiprocess", "enable_from_environment"): (),
        ("laios.execution.multiprocess", "current"): (),
        ("laios.execution.multiprocess", "disable"): (),
        ("laios.execution.multiprocess", "prepare_directory"): (),
        ("laios.execution.multiprocess", "sweep"): (),
        ("laios.execution.multiprocess", "gunicorn_on_starting"): (),
        ("laios.execution.multiprocess", "gunicorn_child_exit"): (),
        ("laios.execution.multiprocess", "MultiprocessExport"): (
            "directory",
            "interval",
            "registry",
            "path",
            "closed",
            "write",
            "totals",
            "start",
            "park",
            "close",
            "after_fork_in_child",
        ),
    },
}

#: Parameters not to look for: the object itself, catch-alls, and private hooks.
_IGNORED_PARAMETERS = {"self", "cls", "args", "kwargs", "extra_data", "details"}
#: Constructors whose parameters are internal (the executor builds these).
_INTERNAL_CONSTRUCTORS = {
    "MetricsServer",
    "TaskContext",
    "StoreCollector",
    "TaskCancelledError",
    "MultiprocessExport",
    "MetricsInstrumentation",
}

ENTRIES = [
    (page, module, name, members)
    for page, names in CONTRACT.items()
    for (module, name), members in names.items()
]
IDS = [f"{page}:{name}" for page, _, name, _ in ENTRIES]


@cache
def page_text(page: str) -> str:
    return (REFERENCE / page).read_text(encoding="utf-8")


def mentioned(text: str, word: str) -> bool:
    return re.search(rf"(?<![\w]){re.escape(word)}(?![\w])", text) is not None


def resolve(module: str, name: str) -> Any:
    return getattr(importlib.import_module(module), name)


def has_member(obj: Any, member: str) -> bool:
    if isinstance(obj, type) and issubclass(obj, enum.Enum):
        return member in obj.__members__
    if member in getattr(obj, "model_fields", {}):
        return True
    if dataclasses.is_dataclass(obj) and member in {f.name for f in dataclasses.fields(obj)}:
        return True
    if isinstance(obj, type) and member in getattr(obj, "__annotations__", {}):
        return True
    if hasattr(obj, member):
        return True
    # An attribute the constructor sets on the instance.
    init = getattr(obj, "__init__", None)
    try:
        source = inspect.getsource(init) if init is not None else ""
    except (OSError, TypeError):
        source = ""
    return re.search(rf"\bself\.{re.escape(member)}\s*(:[^=]*)?=", source) is not None


def signatures(
    name: str, obj: Any, members: tuple[str, ...]
) -> list[tuple[str, Callable[..., Any]]]:
    """The callables whose parameters must be documented: the object and its methods."""
    found: list[tuple[str, Callable[..., Any]]] = []
    if inspect.isfunction(obj):
        found.append((name, obj))
    elif isinstance(obj, type) and not issubclass(obj, enum.Enum):
        if name not in _INTERNAL_CONSTRUCTORS:
            found.append((name, obj))
        for member in members:
            if member in getattr(obj, "model_fields", {}):
                continue  # a field, even when it shadows a method of BaseModel
            value = inspect.getattr_static(obj, member, None)
            if isinstance(value, (classmethod, staticmethod)):
                value = value.__func__
            if inspect.isfunction(value):
                found.append((f"{name}.{member}", value))
    return found


@pytest.mark.parametrize(("page", "module", "name", "members"), ENTRIES, ids=IDS)
def test_the_contract_list_matches_the_code(
    page: str, module: str, name: str, members: tuple[str, ...]
) -> None:
    obj = resolve(module, name)
    missing = [member for member in members if not has_member(obj, member)]
    assert missing == [], f"{module}.{name} has no {missing}: fix this test's list"


@pytest.mark.parametrize(("page", "module", "name", "members"), ENTRIES, ids=IDS)
def test_public_name_is_documented(
    page: str, module: str, name: str, members: tuple[str, ...]
) -> None:
    text = page_text(page)
    assert mentioned(text, name), f"docs/reference/{page} does not document {name}"
    undocumented = [member for member in members if not mentioned(text, member)]
    assert undocumented == [], f"docs/reference/{page}: {name} lacks {undocumented}"


@pytest.mark.parametrize(("page", "module", "name", "members"), ENTRIES, ids=IDS)
def test_every_parameter_is_documented(
    page: str, module: str, name: str, members: tuple[str, ...]
) -> None:
    text = page_text(page)
    obj = resolve(module, name)
    undocumented = []
    for label, function in signatures(name, obj, members):
        try:
            parameters = inspect.signature(function).parameters
        except (TypeError, ValueError):
            continue
        for parameter in parameters:
            if parameter in _IGNORED_PARAMETERS or parameter.startswith("_"):
                continue
            if not mentioned(text, parameter):
                undocumented.append(f"{label}({parameter})")
    assert undocumented == [], f"docs/reference/{page} does not document {undocumented}"


def test_executor_signatures_match_the_reference() -> None:
    """The documented defaults of the Executor's methods are the code's defaults."""
    from laios.execution.executor import Executor

    text = page_text("executor.md")
    expected = {
        "__init__": {
            "resource_limits": None,
            "max_workers": 4,
            "enable_monitoring": True,
            "store": None,
            "tracer_provider": None,
            "capture_content": None,
            "record_capacity": None,
            "replacement_threads": None,
            "register_prometheus": True,
            "prometheus_registry": None,
            "meter_provider": None,
        },
        "execute_task": {"timeout": None, "on_progress": None},
        "execute_async": {"timeout": None, "on_progress": None},
        "execute_parallel": {"timeout": None, "on_progress": None},
        "execute_with_retry": {
            "max_retries": 3,
            "retry_delay": 1.0,
            "on_progress": None,
            "timeout": None,
            "backoff": 1.0,
            "max_delay": None,
            "jitter": 0.0,
            "deadline": None,
            "retry_if": None,
        },
        "shutdown": {"wait": True},
    }
    for method, defaults in expected.items():
        parameters = inspect.signature(getattr(Executor, method)).parameters
        actual = {name: p.default for name, p in parameters.items() if name in defaults}
        assert actual == defaults, f"Executor.{method}: the code's defaults changed"
        for name, default in defaults.items():
            assert re.search(rf"{name}: [^\n]*= {re.escape(repr(default))}", text), (
                f"docs/reference/executor.md: {method} should show {name} = {default!r}"
            )


def _module_constants() -> dict[str, set[str]]:
    """Upper-case names each public laios module assigns at its top level."""
    import ast
    import pkgutil

    import laios

    found: dict[str, set[str]] = {}
    for info in pkgutil.walk_packages(laios.__path__, "laios."):
        if any(part.startswith("_") for part in info.name.split(".")[1:]):
            continue
        module = importlib.import_module(info.name)
        tree = ast.parse(inspect.getsource(module))
        names = set()
        for node in tree.body:
            targets = node.targets if isinstance(node, ast.Assign) else []
            if isinstance(node, ast.AnnAssign):
                targets = [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name) and t.id.isupper()}
        found[info.name] = {n for n in names if not n.startswith("_")}
    return found


def test_every_constant_the_docs_name_is_exported() -> None:
    """A module constant a docs page names (in backticks, on a page that names the module) is
    in the module's ``__all__``, so that ``import *`` and API listings give what the docs
    promise."""
    pages = [p.read_text() for p in (ROOT / "docs").rglob("*.md")]
    missing = set()
    for module, names in _module_constants().items():
        exported = getattr(importlib.import_module(module), "__all__", None)
        if exported is None:
            continue
        for text in pages:
            if module in text:
                quoted = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", text))
                missing |= {f"{module}.{name}" for name in names & quoted - set(exported)}
    assert not sorted(missing)
