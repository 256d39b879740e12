"""The documented screenshot step works: docs/scripts/live_page_screenshot.py runs `laios demo`,
opens the live page it prints in headless Chromium and writes a PNG per screen size."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "docs" / "scripts" / "live_page_screenshot.py"


def png_size(path: Path) -> tuple[int, int]:
    """Width and height of a PNG file, read from its header."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_the_screenshot_script_writes_both_sizes(chromium_binary: str, tmp_path: Path) -> None:
    """The script writes a 1280×1000 desktop PNG and a 375×667 phone PNG (at twice the density)
    of the demo's live page."""
    desktop, phone = tmp_path / "desktop.png", tmp_path / "phone.png"
    argv = ["--seconds", "1", "--out", str(desktop), "--phone-out", str(phone)]
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *argv, "--chromium", chromium_binary],
        capture_output=True,
        text=True,
        timeout=110,
        stdin=subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert png_size(desktop) == (1280, 1000)
    assert png_size(phone) == (750, 1334)
    assert desktop.stat().st_size > 20_000  # a drawn page, not a blank one
    assert f"wrote {desktop}" in done.stdout
