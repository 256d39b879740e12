"""The manual builds: ``mkdocs build --strict`` succeeds (broken links, anchors and nav entries
are warnings, and strict mode turns them into failures)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _scripts import ROOT


def _missing_tools() -> list[str]:
    return [name for name in ("mkdocs", "material") if importlib.util.find_spec(name) is None]


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    missing = _missing_tools()
    if missing:
        message = f"{', '.join(missing)} not installed: pip install -e '.[docs]'"
        if os.environ.get("CI"):
            pytest.fail(f"the docs build must run in CI, but {message}")
        pytest.skip(message)
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")  # a banner of the theme, not a warning
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"
    assert (tmp_path / "site" / "index.html").is_file()
    assert (tmp_path / "site" / "reference" / "executor" / "index.html").is_file()
