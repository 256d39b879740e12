"""`laios mixin` runs the generator of `python -m laios.mixin`, with its options and exit codes,
for an installation (pipx) whose `python` does not have the package."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from laios.cli import main
from laios.mixin.__main__ import build_parser

ROOT = Path(__file__).resolve().parents[2]


def _files(directory: Path) -> dict[str, bytes]:
    return {
        path.relative_to(directory).as_posix(): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def test_laios_help_lists_mixin(capsys: pytest.CaptureFixture[str]) -> None:
    """`laios --help` names the command among the others."""
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "mixin" in out.split("options:")[0]
    assert "Grafana dashboard" in out


def test_mixin_help_lists_the_generators_options(capsys: pytest.CaptureFixture[str]) -> None:
    """`laios mixin --help` is the generator's help, under the name `laios mixin`."""
    with pytest.raises(SystemExit) as exit_info:
        main(["mixin", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: laios mixin ")
    options = [
        option
        for action in build_parser()._actions
        for option in action.option_strings
        if option.startswith("--")
    ]
    assert len(options) >= 10
    assert [option for option in options if option not in out] == []


def test_mixin_writes_what_python_m_laios_mixin_writes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`laios mixin --out A` and `python -m laios.mixin --out B` write the same files."""
    options = ["--selector", 'job="orders-api"', "--manifest-label", "release=prom"]
    assert main(["mixin", *options, "--out", str(tmp_path / "a")]) == 0
    assert "wrote" in capsys.readouterr().out
    done = subprocess.run(
        [sys.executable, "-m", "laios.mixin", *options, "--out", str(tmp_path / "b")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    written = _files(tmp_path / "a")
    assert len(written) >= 4
    assert written == _files(tmp_path / "b")


def test_mixin_exit_codes_are_the_generators(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--check finding differences exits 1, naming `laios mixin` to regenerate; a bad option
    exits 2 with the generator's reason under `laios mixin`."""
    assert main(["mixin", "--check", "--objective", "0.999", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"regenerate with: laios mixin --objective 0.999 --out {tmp_path}" in err
    with pytest.raises(SystemExit) as exit_info:
        main(["mixin", "--objective", "2", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "laios mixin: error: argument --objective" in err
    assert list(tmp_path.iterdir()) == []


def test_mixin_without_out_outside_a_checkout_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Outside a checkout, `laios mixin` with no --out writes nothing into the current
    directory and says to give --out DIR."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["mixin"])
    assert exit_info.value.code == 2
    assert "--out DIR" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [["mixin"], ["mixin", "--check"]])
def test_an_empty_out_is_refused_not_taken_for_the_current_directory(
    command: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`--out ""` (as `--out "$DIR"` gives with DIR unset) names no directory: exit code 2
    saying so, nothing written into the current directory."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--out", ""])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --out: " in err
    assert "empty" in err
    assert list(tmp_path.iterdir()) == []


def test_check_of_the_current_directory_outside_a_checkout_suggests_a_command_that_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`laios mixin --check --out .` outside a checkout suggests `... --out .`: without it,
    `laios mixin` there asks for --out DIR instead of writing."""
    monkeypatch.chdir(tmp_path)
    assert main(["mixin", "--check", "--out", "."]) == 1
    (line,) = [
        line for line in capsys.readouterr().err.splitlines() if line.startswith("regenerate")
    ]
    assert line == "regenerate with: laios mixin --out ."
    assert main(["mixin", "--out", "."]) == 0
    assert main(["mixin", "--out", ".", "--check"]) == 0


def test_mixin_without_out_in_the_checkout_checks_the_committed_files(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """From the checkout's root, `laios mixin --check` compares the committed files."""
    monkeypatch.chdir(ROOT)
    assert main(["mixin", "--check"]) == 0
    assert "up to date" in capsys.readouterr().out


def test_laios_start_up_does_not_import_the_generator() -> None:
    """Building the `laios` parser leaves the generator unimported."""
    code = (
        "import sys; from laios.cli import build_parser; build_parser(); "
        "print(sorted(m for m in sys.modules if m.startswith('laios.mixin')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize(
    "name", ["\udcff", "caf\udcc3\udca9 n\udce9", "a\tb", "it's \\ $HOME", "ok"]
)
def test_the_out_suggested_to_regenerate_is_one_a_shell_reproduces(
    tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--check with an --out whose name holds bytes that are not UTF-8 (``$'\\xff'``), a tab,
    a quote or a backslash: the --out in its "regenerate with" line, given to bash, is that
    directory's bytes; it was shown as Python writes a lone surrogate ('\\udcff'), which no
    shell gives back."""
    out = tmp_path / name
    assert main(["mixin", "--check", "--out", str(out)]) == 1
    (line,) = [line for line in capsys.readouterr().err.splitlines() if "regenerate" in line]
    quoted = line.split(" --out ", 1)[1]
    assert quoted.isprintable(), quoted
    assert "\\udc" not in quoted
    done = subprocess.run(
        ["bash", "-c", f"printf %s {quoted}"], capture_output=True, check=True, env={}
    )
    assert done.stdout == os.fsencode(out)
