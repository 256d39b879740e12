"""``python -m laios.mixin``: write the dashboard, the rules and the Kubernetes manifests.

Run from the repository root with no options, it rewrites the committed files exactly as they
are; with options it fits them to your deployment::

    python -m laios.mixin --selector 'job="orders-api"' --objective 0.995 --out my-monitoring

``--check`` writes nothing and exits 1 when a file differs from what it would write.
"""

from __future__ import annotations

import argparse
import errno
import math
import os
import stat
import sys
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path, PurePosixPath

from laios._output import (
    OutputParser,
    closed_stdout_status,
    number_argument,
    output_failure_status,
    parse_command_line,
    shell_quote,
)
from laios._text import quoted
from laios.mixin.config import DEFAULT_DASHBOARD_UID, LATENCY_RANGE, OBJECTIVE_RANGE, MixinConfig
from laios.mixin.writer import (
    OPTIONS,
    command_line,
    option_arguments,
    render,
    stale_files,
    write_files,
)

__all__ = ["PROG", "build_parser", "config_from_args", "main"]

#: The command's name in its usage, errors and the command line it suggests.
PROG = "python -m laios.mixin"

_DEFAULT = MixinConfig()
#: A directory only a checkout of laios' source has at its root.
_CHECKOUT_MARKER = Path("src", "laios", "mixin")


def _label(text: str) -> tuple[str, str]:
    key, equals, value = text.partition("=")
    if not equals:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {quoted(text)}")
    return key, value


def _rounded(text: str, value: float, hint: str) -> argparse.ArgumentTypeError:
    """The refusal of ``text``, which a float reads as ``value`` although it is written
    otherwise: named as given, and what to give instead."""
    return argparse.ArgumentTypeError(
        f"{quoted(text)} is read as {value!r}, as a float holds it: {hint}"
    )


def _out_of_range(requirement: str, text: str) -> argparse.ArgumentTypeError:
    """The refusal of ``text``, a number out of the range ``requirement`` states, named as
    typed: not as a float reads it (``1e999`` is ``inf``, ``0`` is ``0.0``)."""
    return argparse.ArgumentTypeError(f"{requirement}, got {quoted(text)}")


def _written_above_0(text: str) -> bool:
    """Whether ``text``, a number as ``number_argument`` takes it, is written above 0: no
    minus sign, and a digit other than 0 before its exponent, whatever the exponent (read
    from its digits: ``Decimal`` refuses an exponent of 20 digits or more)."""
    digits = text.lower().partition("e")[0]
    return not digits.startswith("-") and any(digit in digits for digit in "123456789")


def _written_below_1(text: str) -> bool:
    """Whether ``text``, a number that a float reads as 1, is written below 1."""
    try:
        return Decimal(text) < 1
    except InvalidOperation:  # (an exponent of 20 digits or more: "1e00000000000000000000")
        return False


def _objective(text: str) -> float:
    """``--objective``: a number (``number_argument``) that a float holds as less than 1 and
    more than 0 when it is written so, rather than rounded to 1 (17 nines or more) or to 0,
    which MixinConfig would refuse as out of range without a word on why; one out of range is
    refused as MixinConfig refuses it, named as typed."""
    value = number_argument(text)
    if value == 1.0 and _written_below_1(text):
        hint = "give at most 16 nines (0.9999999999999999, the closest to 1 a float holds)"
        raise _rounded(text, value, hint)
    if value == 0.0 and _written_above_0(text):
        raise _rounded(text, value, "give a ratio a float holds, 1e-300 or more")
    if not 0 < value < 1:
        raise _out_of_range(OBJECTIVE_RANGE, text)
    return value


def _latency(text: str) -> float:
    """``--latency-p95``: a number (``number_argument``) that a float holds as more than 0
    when it is written so, rather than rounded to 0 (``1e-400``), which MixinConfig would
    refuse as out of range (``got 0.0``) without a word on why; one out of range (``1e999``,
    which a float reads as infinite) is refused as MixinConfig refuses it, named as typed."""
    value = number_argument(text)
    if value == 0.0 and _written_above_0(text):
        raise _rounded(text, value, "give a number of seconds a float holds, 1e-300 or more")
    if not (value > 0 and math.isfinite(value)):
        raise _out_of_range(LATENCY_RANGE, text)
    return value


def _directory(text: str) -> Path:
    if not text:
        # (`--out "$DIR"` with DIR unset: not taken for the current directory)
        raise argparse.ArgumentTypeError(
            "an empty path names no directory ('.' for the current one)"
        )
    return Path(text)


class _Once(argparse.Action):
    """Store an option's value; refuse a second, different one rather than let it replace the
    first (a second ``--selector`` would drop the first's matchers from every rule)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        given = f"_given_{self.dest}"  # (set once the option is given: a default is not)
        earlier = getattr(namespace, self.dest)
        if getattr(namespace, given, False) and earlier != values:
            raise argparse.ArgumentError(
                self,
                f"given twice, as {_as_given(earlier)} then {_as_given(values)}: give it once"
                + (" (matchers separated by commas)" if self.dest == "selector" else ""),
            )
        setattr(namespace, given, True)
        setattr(namespace, self.dest, values)


def _as_given(value: object) -> str:
    """An option's value as the refusal of a second one shows it (cut short, as a value may
    be of any length)."""
    if isinstance(value, tuple):
        return quoted(",".join(value))
    return quoted(str(value)) if isinstance(value, (str, Path)) else quoted(value)


def _group_labels(text: str) -> tuple[str, ...]:
    if not text:  # (no group labels, as the command line of a config without them gives it)
        return ()
    labels = tuple(label.strip() for label in text.split(","))
    if "" in labels:  # (`cluster,,job`: a typo, not a name to drop unsaid)
        raise argparse.ArgumentTypeError(
            f"{quoted(text)} has an empty label name (give the names separated by "
            "single commas, e.g. cluster,namespace,job)"
        )
    return labels


def build_parser(
    prog: str = PROG, *, out_needed_outside_checkout: bool = False
) -> argparse.ArgumentParser:
    """The command's options; each sets the :class:`MixinConfig` field of the same meaning.

    Args:
        prog: The command's name in its usage and errors (``laios mixin`` for the ``laios``
            command's).
        out_needed_outside_checkout: Leave ``--out`` without a default (``None``): :func:`main`
            then refuses to write into the current directory unless it is the root of a
            checkout of laios' source.
    """
    parser = OutputParser(
        prog=prog,
        description=(
            "Write laios' Grafana dashboard, Prometheus recording rules and alerts, and "
            "Prometheus Operator manifests for your labels. With no options, from the "
            "repository root, it reproduces the committed files."
        ),
    )
    parser.add_argument(
        OPTIONS["selector"],
        action=_Once,
        default=_DEFAULT.selector,
        metavar="MATCHERS",
        help="PromQL label matchers, without braces, that pick the laios targets in every "
        "query, rule and alert, e.g. 'job=\"orders-api\"' (default: every target exporting "
        "laios metrics)",
    )
    parser.add_argument(
        OPTIONS["group_labels"],
        action=_Once,
        type=_group_labels,
        default=_DEFAULT.group_labels,
        metavar="L1,L2",
        help="labels every recording rule and alert keeps, comma-separated (default: "
        f"{','.join(_DEFAULT.group_labels)})",
    )
    parser.add_argument(
        OPTIONS["availability_objective"],
        action=_Once,
        type=_objective,
        default=_DEFAULT.availability_objective,
        metavar="RATIO",
        help="share of results (after retries) that must succeed, for the burn-rate alerts "
        f"(default: {_DEFAULT.availability_objective})",
    )
    parser.add_argument(
        OPTIONS["latency_p95_seconds"],
        action=_Once,
        type=_latency,
        default=_DEFAULT.latency_p95_seconds,
        metavar="SECONDS",
        help="p95 duration of successful tasks above which LaiosToolLatencyHigh fires "
        f"(default: {_DEFAULT.latency_p95_seconds:g})",
    )
    parser.add_argument(
        OPTIONS["runbook_url_base"],
        action=_Once,
        default=_DEFAULT.runbook_url_base,
        metavar="URL",
        help="prefix of every alert's runbook_url, e.g. https://wiki.example.com/laios/ "
        f"(default: {_DEFAULT.runbook_url_base})",
    )
    parser.add_argument(
        OPTIONS["dashboard_uid"],
        action=_Once,
        default=_DEFAULT.dashboard_uid,
        metavar="UID",
        help=f"uid of the Grafana dashboard (default: {DEFAULT_DASHBOARD_UID} without "
        f"{OPTIONS['selector']}, {DEFAULT_DASHBOARD_UID}-<10 hex digits of the selector's "
        "SHA-256> with one)",
    )
    parser.add_argument(
        OPTIONS["match_labels"],
        type=_label,
        action="append",
        metavar="KEY=VALUE",
        help="a label of your Services / pods the ServiceMonitor and PodMonitor select on; "
        "repeat for several (default: "
        + ", ".join(f"{key}={value}" for key, value in _DEFAULT.match_labels)
        + ")",
    )
    parser.add_argument(
        OPTIONS["manifest_labels"],
        type=_label,
        action="append",
        metavar="KEY=VALUE",
        help="a label put on the three manifests, for your Prometheus's selectors (e.g. "
        "release=kube-prometheus-stack); repeat for several",
    )
    parser.add_argument(
        OPTIONS["manifest_name"],
        action=_Once,
        default=_DEFAULT.manifest_name,
        metavar="NAME",
        help="name of the three manifests' objects (default: laios plus the match labels' "
        "value when that one value is already such a name, else plus their values and ten "
        "hex digits of their SHA-256)",
    )
    parser.add_argument(
        "--out",
        action=_Once,
        type=_directory,
        default=None if out_needed_outside_checkout else Path(),
        metavar="DIR",
        help=(
            "directory to write into; needed except at the root of a checkout of laios' "
            "source, where the default, the current directory, updates the committed files"
            if out_needed_outside_checkout
            else "directory to write into (default: the current one; run it from the "
            "repository root to update the committed files)"
        ),
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 when a file under DIR differs from what would be written",
    )
    return parser


def config_from_args(args: argparse.Namespace) -> MixinConfig:
    """The :class:`MixinConfig` the parsed options describe (raises ``ValueError`` if invalid)."""
    return MixinConfig(
        selector=args.selector,
        group_labels=args.group_labels,
        availability_objective=args.objective,
        latency_p95_seconds=args.latency_p95,
        runbook_url_base=args.runbook_url_base,
        dashboard_uid=args.dashboard_uid,
        match_labels=tuple(args.match_label) if args.match_label else _DEFAULT.match_labels,
        manifest_labels=tuple(args.manifest_label or ()),
        manifest_name=args.manifest_name,
    )


def _under_option(message: str) -> str:
    """``message`` of a refused :class:`MixinConfig` field, put under the option that set it
    (``argument --objective: availability_objective must be ...``), as argparse puts its own."""
    for field, option in OPTIONS.items():
        if message.startswith(field) and not message[len(field) : len(field) + 1].isidentifier():
            return f"argument {option}: {message}"
    return message


def main(
    argv: Sequence[str] | None = None,
    *,
    prog: str = PROG,
    out_needed_outside_checkout: bool = False,
) -> int:
    """Run the command; return its exit code (0 done, 1 ``--check`` found differences or a
    file it could not read, or the output could not be written, 2 bad options or an ``--out``
    that cannot be written, 130 after Ctrl-C); started with stdout closed, it writes nothing
    and returns 1, as ``laios`` does.

    Args:
        argv: The arguments after the command's name; ``sys.argv[1:]`` when ``None``.
        prog: The command's name in its usage, errors and the command line ``--check``
            suggests (``laios mixin`` runs it as ``main(argv, prog="laios mixin", ...)``).
        out_needed_outside_checkout: Without ``--out``, write (and check) the current
            directory only when it is the root of a checkout of laios' source; elsewhere
            exit 2 asking for ``--out DIR`` (``laios mixin``, whose users mostly have the
            installed package, sets it).
    """
    parser = build_parser(prog, out_needed_outside_checkout=out_needed_outside_checkout)
    args = parse_command_line(parser, argv)
    if isinstance(args, int):  # --help whose text could not be written
        return args
    # Without --out, only the generator, or laios mixin at a checkout's root, writes here.
    out_optional = not out_needed_outside_checkout or _CHECKOUT_MARKER.is_dir()
    if args.out is None:  # (only when out_needed_outside_checkout)
        if not out_optional:
            parser.error(
                "give --out DIR, the directory to write the files into (only at the root of "
                "a checkout of laios' source does it default to the current directory)"
            )
        args.out = Path()
    closed = closed_stdout_status(parser.prog)
    if closed is not None:
        return closed
    try:
        return _run(parser, args, out_optional=out_optional)
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        # Only a failed write of the command's own output (it has no file name): the files'
        # errors are reported, with their path, where they are written.
        status = output_failure_status(exc, parser.prog)
        if status is None:
            raise
        return status


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace, *, out_optional: bool) -> int:
    try:
        config = config_from_args(args)
    except ValueError as exc:
        parser.error(_under_option(str(exc)))
    rendering = render(config)
    for message in (*rendering.skipped, *rendering.notes):
        print(message, file=sys.stderr)
    if args.check:
        try:
            stale = stale_files(rendering, args.out)
        except OSError as exc:  # a file without read permission, a failing disk, ...
            reason = exc.strerror or str(exc)
            print(f"{parser.prog}: cannot read {_shown(exc.filename)}: {reason}", file=sys.stderr)
            return 1
        for path in stale:
            print(f"{path}: {_found(args.out, path)}", file=sys.stderr)
        if stale:
            # With the --out that was checked: without it the command would write elsewhere
            # (or, for laios mixin outside a checkout, ask for --out).
            where = (
                ""
                if args.out == Path() and out_optional
                else " " + " ".join(map(shell_quote, option_arguments("--out", str(args.out))))
            )
            again = command_line(config, program=parser.prog)
            print(f"regenerate with: {again}{where}", file=sys.stderr)
            return 1
        print(f"{len(rendering.files)} files up to date")
        return 0
    try:
        written = write_files(rendering, args.out)
    except OSError as exc:  # a path that is a file, a directory without write permission, ...
        reason = exc.strerror or str(exc)
        where = f" ({_shown(exc.filename)})" if exc.filename else ""
        print(
            f"{parser.prog}: cannot write into {_shown(args.out)}: {reason}{where}",
            file=sys.stderr,
        )
        return 2
    for path in rendering.files:
        print(f"{'wrote' if path in written else 'unchanged'} {_shown(args.out / path)}")
    return 0


#: What stands where a generated file goes, when it is neither a file nor a directory (the
#: command ``--check`` suggests replaces it with the file).
_OTHER_KINDS = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _found(directory: Path, path: str) -> str:
    """What ``--check`` says of ``path`` under ``directory``, a generated file that is not up
    to date."""
    try:
        mode = (directory / path).stat().st_mode
    except OSError as exc:
        # (the command below would stop at a loop or at a file in the way, writing nothing)
        if exc.errno == errno.ELOOP:
            return "a loop of symbolic links, where the file goes: remove it, then regenerate"
        if exc.errno == errno.ENOTDIR:  # (--out, or a directory under it, is a file)
            names = reversed(PurePosixPath(path).parents[:-1])
            in_the_way = [(_shown(directory), directory)]
            in_the_way += [(str(name), directory / name) for name in names]
            for shown, parent in in_the_way:
                if parent.exists() and not parent.is_dir():
                    return (
                        f"{shown} is a file, where a directory goes: move it away, then regenerate"
                    )
        return "missing"  # (not one that differs: the command below writes it)
    if stat.S_ISDIR(mode):  # (the command below would stop at it, writing nothing)
        return "a directory, where the file goes: move it away, then regenerate"
    if stat.S_ISREG(mode):
        return "differs from the generator's output"
    kind = next((name for test, name in _OTHER_KINDS if test(mode)), "something else")
    return f"{kind}, not a file: regenerate replaces it"


def _shown(path: str | bytes | os.PathLike[str] | os.PathLike[bytes]) -> str:
    """``path`` as the messages show it: quoted as the "regenerate with" line quotes --out, so
    that a shell gives it back (bytes that are not UTF-8 and control characters in bash's
    ``$'...'``, not as Python's lone surrogates)."""
    return shell_quote(os.fsdecode(path))


if __name__ == "__main__":
    sys.exit(main())
