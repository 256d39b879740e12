"""Screenshots of the live page, as the docs show it: `laios demo` in headless Chromium.

Runs ``laios demo`` on a free port, opens the address it prints ("Live page: ...") in headless
Chromium at a desktop size (1280×1000) and a phone size (375×667, drawn at twice the density),
lets the page read ``/status`` for a while so that its charts fill, and writes one PNG per size.

    python docs/scripts/live_page_screenshot.py            # rewrites docs/images/live-page*.png

Needs Debian's ``chromium`` (``apt-get install chromium``) and ``playwright`` from PyPI (in the
``dev`` extra); Playwright drives the installed Chromium, it never downloads a browser.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
#: Flags that let Chromium run headless as root in a container, with nothing phoning home.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 1000}
PHONE = {"width": 375, "height": 667}


def start_demo(seconds: float) -> tuple[subprocess.Popen[str], str]:
    """Start `laios demo` on a free port; return it and the live page's address it printed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    argv = ["demo", "--port", "0", "--no-live", "--duration", str(seconds + 60)]
    demo = subprocess.Popen(
        [sys.executable, "-m", "laios", *argv],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert demo.stdout is not None
    found: list[str] = []

    def read() -> None:
        assert demo.stdout is not None
        for line in demo.stdout:
            if "Live page:" in line and not found:
                found.append(line.split("Live page:", 1)[1].split()[0])
        # (the rest of its output is read and dropped, so the demo never blocks on a full pipe)

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + 60
    while not found:
        if demo.poll() is not None or time.monotonic() > deadline:
            demo.kill()
            raise SystemExit("laios demo did not print its live page's address")
        time.sleep(0.1)
    return demo, found[0]


def stop_demo(demo: subprocess.Popen[str]) -> None:
    """Stop the demo as Ctrl-C does; kill it if it does not end."""
    demo.send_signal(signal.SIGINT)
    try:
        demo.wait(timeout=30)
    except subprocess.TimeoutExpired:
        demo.kill()
        demo.wait()


def wait_for_data(page: Page) -> None:
    """Wait until the page has drawn tools and failures from /status."""
    page.wait_for_selector("#tools-body tr[data-tool]", timeout=30_000)
    page.wait_for_selector("#failures li[data-trace-id]", timeout=60_000)


def main(argv: list[str] | None = None) -> int:
    """Write the screenshots; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    images = ROOT / "docs" / "images"
    parser.add_argument("--out", type=Path, default=images / "live-page.png")
    parser.add_argument("--phone-out", type=Path, default=images / "live-page-phone.png")
    parser.add_argument(
        "--seconds", type=float, default=60.0, help="how long the page reads /status first"
    )
    parser.add_argument("--full-page", action="store_true", help="the whole page, not a screen")
    parser.add_argument("--dark", action="store_true", help="as with a dark colour scheme")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args(argv)
    demo, address = start_demo(args.seconds)
    try:
        with sync_playwright() as playwright:
            # Headless, with a fresh temporary profile (--user-data-dir) that Playwright removes.
            browser = playwright.chromium.launch(executable_path=args.chromium, args=CHROMIUM_FLAGS)
            scheme = "dark" if args.dark else "light"
            desktop = browser.new_page(viewport=DESKTOP, color_scheme=scheme)
            phone = browser.new_page(
                viewport=PHONE, device_scale_factor=2, is_mobile=True, color_scheme=scheme
            )
            for page in (desktop, phone):
                page.goto(address)
            started = time.monotonic()
            for page in (desktop, phone):
                wait_for_data(page)
            time.sleep(max(args.seconds - (time.monotonic() - started), 0.0))
            for page, out in ((desktop, args.out), (phone, args.phone_out)):
                out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(out), full_page=args.full_page)
                print(f"wrote {out}")
            browser.close()
    finally:
        stop_demo(demo)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
