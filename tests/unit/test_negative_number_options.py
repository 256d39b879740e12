"""A number option given a negative number as a separate argument (``--latency-p95 -1e999``)
refuses it with its own words, quoting it as typed, as it does ``--latency-p95=-1e999``: not
with argparse's "expected one argument", as if the value were another option."""

from __future__ import annotations

import pytest

from laios import cli
from laios.mixin.__main__ import main as mixin_main

#: Negative numbers argparse's own pattern (``-1``, ``-.5``) does not take for numbers.
NEGATIVE = ["-1e999", "-1E+3", "-2.", "-inf", "-Infinity", "-nan"]

#: The refusals of the ``laios`` command's number options (status and demo).
LAIOS_OPTIONS = [
    (["status", "--interval"], "must be a finite positive number of seconds"),
    (["status", "--timeout"], "must be a finite positive number of seconds"),
    (["demo", "--duration"], "must be a finite positive number of seconds"),
    (["demo", "--port"], "must be a port number from 0 to 65535"),
]

#: The refusals of the generator's number options.
MIXIN_OPTIONS = [
    ("--objective", "availability_objective must be between 0 and 1 (exclusive)"),
    ("--latency-p95", "latency_p95_seconds must be a positive, finite number of seconds"),
]


def _refused_by_laios(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        cli.build_parser().parse_args(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def _refused_by_mixin(
    argv: list[str], capsys: pytest.CaptureFixture[str], *, through_laios: bool
) -> str:
    run = (lambda: cli.main(["mixin", *argv])) if through_laios else (lambda: mixin_main(argv))
    with pytest.raises(SystemExit) as exit_info:
        run()
    assert exit_info.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize(
    ("command", "reason", "value"),
    [(command, reason, value) for command, reason in LAIOS_OPTIONS for value in NEGATIVE],
)
def test_laios_refuses_a_negative_number_with_the_options_words(
    command: list[str], reason: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``laios status --interval -1e3`` is refused as ``--interval=-1e3`` is."""
    err = _refused_by_laios([*command, value], capsys)
    assert err.endswith(f"error: argument {command[1]}: {reason}, got {value!r}\n"), err
    assert err == _refused_by_laios([f"{command[0]}", f"{command[1]}={value}"], capsys)


@pytest.mark.parametrize("through_laios", [False, True], ids=["python-m", "laios-mixin"])
@pytest.mark.parametrize(
    ("option", "reason", "value"),
    [(option, reason, value) for option, reason in MIXIN_OPTIONS for value in NEGATIVE],
)
def test_the_generator_refuses_a_negative_number_with_the_options_words(
    option: str, reason: str, value: str, through_laios: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--latency-p95 -1e999`` is refused as out of range, quoting ``'-1e999'``, by
    ``python -m laios.mixin`` and ``laios mixin`` alike."""
    err = _refused_by_mixin([option, value, "--check"], capsys, through_laios=through_laios)
    assert err.endswith(f"error: argument {option}: {reason}, got {value!r}\n"), err


@pytest.mark.parametrize("value", ["-1_000", "-1x", "-٣"])
def test_a_negative_looking_value_is_refused_as_not_a_number(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A value that starts as a negative number but is none is the option's value all the
    same, refused as not a number (quoting it), not as a missing value."""
    err = _refused_by_laios(["status", "--interval", value], capsys)
    assert f"error: argument --interval: not a number: {value!r} (" in err
    err = _refused_by_mixin(["--latency-p95", value, "--check"], capsys, through_laios=False)
    assert f"error: argument --latency-p95: not a number: {value!r} (" in err


def test_an_unknown_option_is_still_refused_as_one(capsys: pytest.CaptureFixture[str]) -> None:
    """A word that starts with ``-`` but is not a number still reads as an option: the option
    before it is missing its value, and an unknown option is unrecognised."""
    err = _refused_by_laios(["status", "--interval", "--watch"], capsys)
    assert "error: argument --interval: expected one argument" in err
    err = _refused_by_laios(["status", "-x"], capsys)
    assert "unrecognized arguments: -x" in err
