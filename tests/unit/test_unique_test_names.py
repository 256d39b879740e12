"""Test modules are imported by their file name (the test directories are not packages), so
two test files with one name in different directories stop the whole run at collection."""

from __future__ import annotations

from collections import Counter

from _scripts import ROOT


def test_no_two_test_modules_share_a_file_name() -> None:
    """Every tests/**/test_*.py has a file name of its own."""
    names = Counter(path.name for path in (ROOT / "tests").rglob("test_*.py"))
    assert [name for name, count in names.items() if count > 1] == []
