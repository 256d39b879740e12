"""The mixin's files as text, written to (or compared with) a directory.

:func:`render` turns a :class:`~laios.mixin.config.MixinConfig` into the text of every generated
file, keyed by its path relative to the repository root. The output is deterministic: the same
config gives the same bytes (keys in a fixed order, one trailing newline), so the committed
files are exactly ``render(MixinConfig())`` and a test can tell when they drift.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import json
import os
import secrets
import stat
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, cast

from laios._output import shell_quote
from laios.mixin import _yaml
from laios.mixin.config import MixinConfig
from laios.mixin.kubernetes import manifests
from laios.mixin.rules import rule_groups, unreachable_burn_rates, unreachable_latency

__all__ = [
    "DASHBOARD_PATH",
    "KUBERNETES_DIR",
    "OPTIONS",
    "RULES_PATH",
    "Rendering",
    "command_line",
    "option_arguments",
    "render",
    "stale_files",
    "write_files",
]

RULES_PATH = "grafana/prometheus/rules.yml"
DASHBOARD_PATH = "grafana/dashboards/laios-execution.json"
KUBERNETES_DIR = "deploy/kubernetes"
#: The module that builds the dashboard; imported only when the files are rendered.
DASHBOARD_MODULE = "laios.mixin.dashboard"

#: MixinConfig field -> the option of ``python -m laios.mixin`` that sets it.
OPTIONS = {
    "selector": "--selector",
    "group_labels": "--group-labels",
    "availability_objective": "--objective",
    "latency_p95_seconds": "--latency-p95",
    "runbook_url_base": "--runbook-url-base",
    "dashboard_uid": "--dashboard-uid",
    "match_labels": "--match-label",
    "manifest_labels": "--manifest-label",
    "manifest_name": "--manifest-name",
}

_KUBERNETES_HEADERS = {
    "servicemonitor.yaml": (
        'ServiceMonitor for laios: Prometheus scrapes the port named "metrics" at /metrics of\n'
        "the Services labelled {labels}.\n"
        "Apply this or podmonitor.yaml, not both (both scrape the same pods)."
    ),
    "podmonitor.yaml": (
        'PodMonitor for laios: Prometheus scrapes the container port named "metrics" at\n'
        "/metrics of the pods labelled {labels}.\n"
        "Apply this or servicemonitor.yaml, not both (both scrape the same pods)."
    ),
    "prometheusrule.yaml": (
        "PrometheusRule for laios: the recording rules and alerts of grafana/prometheus/rules.yml\n"
        "(the same groups). What each alert means: docs/runbooks/."
    ),
}


@dataclass(frozen=True, slots=True)
class Rendering:
    """What :func:`render` produced.

    Attributes:
        files: File text by path relative to the output directory (``/``-separated).
        skipped: One message per file that could not be rendered, saying why.
        notes: One message per alert left out because it could never fire under the
            configuration (see :func:`laios.mixin.rules.burn_rates`), and one when
            LaiosToolLatencyHigh can never fire for a store with the default buckets
            (:func:`laios.mixin.rules.unreachable_latency`).
    """

    files: dict[str, str]
    skipped: tuple[str, ...]
    notes: tuple[str, ...] = ()


def command_line(config: MixinConfig, program: str = "python -m laios.mixin") -> str:
    """The ``python -m laios.mixin`` command (or ``program``, such as ``laios mixin``) that
    renders ``config`` (only non-default options), each argument quoted for a shell by
    :func:`~laios._output.shell_quote`: one that is not printable (a selector's newline in a
    raw string, a U+2028) in bash's ``$'...'``, so that the command stays on one line.

    >>> command_line(MixinConfig(selector='job="orders-api"'))
    'python -m laios.mixin --selector \\'job="orders-api"\\''
    """
    default = MixinConfig()
    args = program.split()
    for field in fields(MixinConfig):
        value = getattr(config, field.name)
        if value == getattr(default, field.name):
            continue
        option = OPTIONS[field.name]
        if field.name in ("match_labels", "manifest_labels"):
            for key, label_value in value:
                args += option_arguments(option, f"{key}={label_value}")
        elif field.name == "group_labels":
            args += option_arguments(option, ",".join(value))
        else:
            args += option_arguments(option, str(value))
    return " ".join(map(shell_quote, args))


def option_arguments(option: str, value: str) -> list[str]:
    """``option`` given ``value`` as command-line arguments: ``--option=value`` when the
    value starts with ``-``, which argparse would otherwise read as an option of its own.

    >>> option_arguments("--dashboard-uid", "orders"), option_arguments("--out", "-x")
    (['--dashboard-uid', 'orders'], ['--out=-x'])
    """
    return [f"{option}={value}"] if value.startswith("-") else [option, value]


def _header(text: str, config: MixinConfig) -> str:
    generated = (
        f"Generated by `{command_line(config)}` (src/laios/mixin/): change the options or the\n"
        "generator and run it again, do not edit this file."
    )
    return "".join(f"# {line}".rstrip() + "\n" for line in f"{text}\n{generated}".splitlines())


def _rules_file(config: MixinConfig) -> str:
    header = _header(
        "Recording rules and alerts for laios (metric catalogue: docs/metrics.md).\n"
        "What each alert means and what to do: docs/guides/alerting.md and docs/runbooks/.\n"
        "Unit tests (for the default options): promtool test rules "
        "grafana/prometheus/rules.test.yml",
        config,
    )
    return header + _yaml.dump({"groups": rule_groups(config)})


def _kubernetes_files(config: MixinConfig) -> dict[str, str]:
    labels = ", ".join(f"{key}={value}" for key, value in config.match_labels)
    return {
        f"{KUBERNETES_DIR}/{name}": _header(_KUBERNETES_HEADERS[name].format(labels=labels), config)
        + _yaml.dump(manifest)
        for name, manifest in manifests(config).items()
    }


def _dashboard_text() -> Callable[[MixinConfig], str] | None:
    """The dashboard module's text of a config, or None when that module is not installed.

    The module's ``dashboard_json`` decides the file's bytes where it has one; otherwise its
    ``build_dashboard`` result is written as sorted, 2-space-indented JSON with a newline.
    """
    try:
        module = importlib.import_module(DASHBOARD_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != DASHBOARD_MODULE:  # the module exists but an import inside it fails
            raise
        return None
    if hasattr(module, "dashboard_json"):
        return cast("Callable[[MixinConfig], str]", module.dashboard_json)
    build = cast("Callable[[MixinConfig], dict[str, Any]]", module.build_dashboard)
    return lambda config: (
        json.dumps(build(config), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    )


def render(config: MixinConfig) -> Rendering:
    """Render every file of the mixin for ``config``.

    The dashboard comes from ``laios.mixin.dashboard`` (its ``dashboard_json``, or else its
    ``build_dashboard``); where that module is missing, the dashboard is left out and
    :attr:`Rendering.skipped` says so.
    """
    files = {RULES_PATH: _rules_file(config)}
    skipped: list[str] = []
    dashboard_text = _dashboard_text()
    if dashboard_text is None:
        skipped.append(
            f"{DASHBOARD_PATH}: skipped, {DASHBOARD_MODULE} is not part of this installation "
            "(the dashboard is left as it is)"
        )
    else:
        files[DASHBOARD_PATH] = dashboard_text(config)
    files.update(_kubernetes_files(config))
    return Rendering(
        files=files,
        skipped=tuple(skipped),
        notes=(*unreachable_burn_rates(config), *unreachable_latency(config)),
    )


def stale_files(rendering: Rendering, directory: Path) -> list[str]:
    """The paths of ``rendering`` whose file under ``directory`` is missing or different.

    A file that cannot be read raises ``OSError`` whose ``filename`` is that file's path, even
    where the failed read named none (a read error, ``EIO``, after the file opened).
    """
    stale = []
    for path, text in rendering.files.items():
        target = directory / path
        try:
            same = target.is_file() and target.read_bytes() == text.encode("utf-8")
        except OSError as exc:
            if exc.filename is not None:
                raise
            # (OSError() makes the subclass of the errno: PermissionError for EACCES)
            raise OSError(exc.errno, exc.strerror or str(exc), str(target)) from exc
        if not same:
            stale.append(path)
    return stale


def write_files(rendering: Rendering, directory: Path) -> list[str]:
    """Write the files of ``rendering`` that differ under ``directory``; return their paths.

    The files are written all or none: each one's text goes first to a temporary file beside
    it, and only once every one is complete are they renamed over the old files, which keep
    their permissions (a symbolic link is followed: the file it points to is replaced). A
    write that fails (a full disk, a directory where a file goes) leaves every old file as
    it was, removes the temporary files and raises ``OSError`` naming the path that failed.
    """
    written = stale_files(rendering, directory)
    staged: list[tuple[Path, Path]] = []  # (temporary, target)
    try:
        for path in written:
            target = directory / path
            if target.is_symlink():
                target = _followed(target)
            if target.is_dir():  # (found now, before any file is replaced, not at the rename)
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(target))
            target.parent.mkdir(parents=True, exist_ok=True)
            staged.append((_stage(target, rendering.files[path].encode("utf-8")), target))
        for temporary, target in staged:
            os.replace(temporary, target)
    except BaseException:
        for temporary, _ in staged:
            with contextlib.suppress(OSError):  # (gone already when it was renamed)
                os.unlink(temporary)
        raise
    return written


def _followed(link: Path) -> Path:
    """The path the symbolic link ``link`` leads to (which need not exist); ``OSError``
    (``ELOOP``) naming ``link`` when its links lead back to one another."""
    try:
        target = link.resolve()
    except RuntimeError:  # a loop, before Python 3.13
        target = link
    if target.is_symlink():  # a loop (Python 3.13 stops resolving where it found it)
        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), str(link))
    return target


def _stage(target: Path, data: bytes) -> Path:
    """Write ``data`` to a new temporary file beside ``target``, with ``target``'s permissions;
    return its path."""
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    # Created as any new file is (0666 less the umask), then given the old file's mode.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        with contextlib.suppress(FileNotFoundError):
            os.chmod(temporary, stat.S_IMODE(target.stat().st_mode))
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return temporary
