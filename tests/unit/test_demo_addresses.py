"""The addresses `laios demo` prints are ones a user can open and a Prometheus can scrape,
whatever address it was told to listen on."""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator

import pytest

from laios import _demo


def _banner(host: str, url: str) -> list[str]:
    args = argparse.Namespace(host=host, duration=None, runner="thread")
    return _demo._banner(args, url, int(url.rsplit(":", 1)[1]), "off", "plain", None)


@contextlib.contextmanager
def _demo_running(*options: str) -> Iterator[str]:
    """Run `laios demo --port 0 --no-live` with ``options``; yield its Live page address."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    demo = subprocess.Popen(
        [sys.executable, "-m", "laios", "demo", "--port", "0", "--no-live", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert demo.stdout is not None
        line = ""
        for line in demo.stdout:
            if line.lstrip().startswith("Live page:"):
                break
        yield line.split("Live page:", 1)[1].split()[0]
    finally:
        demo.send_signal(signal.SIGTERM)
        demo.communicate(timeout=60)


@pytest.mark.parametrize("host", ["", "0.0.0.0"])
def test_a_demo_on_every_address_prints_a_live_page_address_that_opens(host: str) -> None:
    """--host '' or 0.0.0.0: the Live page line names a loopback address that answers."""
    with _demo_running("--host", host) as url:
        assert url.startswith("http://127.0.0.1:"), url
        with urllib.request.urlopen(url, timeout=30) as response:
            assert response.status == 200


@pytest.mark.parametrize(
    ("host", "url", "shown"),
    [
        ("", "http://:8489", "127.0.0.1"),
        ("0.0.0.0", "http://0.0.0.0:8489", "127.0.0.1"),
        ("0", "http://0:8489", "127.0.0.1"),
    ],
)
def test_the_watch_command_of_a_demo_on_every_address_names_loopback(
    host: str, url: str, shown: str
) -> None:
    """The Watch line's command reaches the demo from this machine, not a wildcard address."""
    lines = _banner(host, _demo._reachable_url(url))
    assert f"  Watch:      laios status --url http://{shown}:8489 --watch" in lines


def _shell_words(command: str) -> list[str]:
    """The words bash makes of ``command`` with ``failglob`` on: as zsh, by default, it
    refuses a word that reads as a pattern no file matches (``[::1]``)."""
    done = subprocess.run(
        ["bash", "-O", "failglob", "-c", f'set -- {command}; printf "%s\\n" "$@"'],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


@pytest.mark.parametrize("host", ["::", "::1"])
def test_the_watch_command_of_an_ipv6_demo_can_be_pasted_into_a_shell(host: str) -> None:
    """The Watch line's command for a demo on IPv6 wrote its URL bare, ``http://[::1]:8489``:
    a pattern to the shell, which zsh refuses ("no matches found"). It is quoted, in the
    banner and at the top of the live view."""
    url = "http://[::1]:8489"
    for label, text in [*_demo._addresses(url), *_demo._view_addresses(url, None)]:
        if label == "Watch":
            assert _shell_words(text) == ["laios", "status", "--url", url, "--watch"]
    lines = _banner(host, url)
    assert f"  Watch:      laios status --url '{url}' --watch" in lines


def test_an_ipv6_wildcard_is_shown_as_ipv6_loopback() -> None:
    """--host ::: the addresses name [::1], the loopback of the same family."""
    assert _demo._reachable_url("http://[::]:8489") == "http://[::1]:8489"


def test_a_specific_address_is_shown_as_it_is() -> None:
    """An address that is not a wildcard (a name, an IPv4 or IPv6 address) is left as given."""
    for url in ("http://localhost:8489", "http://10.0.0.7:8489", "http://[::1]:8489"):
        assert _demo._reachable_url(url) == url


def test_the_prometheus_target_of_an_ipv6_address_is_bracketed() -> None:
    """--host ::1: the banner's scrape target is [::1]:PORT, as Prometheus writes it."""
    lines = _banner("::1", "http://[::1]:8489")
    assert any(line.startswith("  Prometheus: scrape [::1]:8489;") for line in lines), lines


def test_the_banner_says_a_wildcard_demo_listens_on_every_address() -> None:
    """--host 0.0.0.0: the first line says the demo listens on every address, not only the
    loopback one it names."""
    lines = _banner("0.0.0.0", "http://127.0.0.1:8489")
    assert lines[0] == "laios demo: serving http://127.0.0.1:8489 (listening on 0.0.0.0)"


@pytest.mark.parametrize("host", ["0", "0x0", "0.0"])
def test_a_short_form_of_0_0_0_0_is_every_address(host: str) -> None:
    """--host 0 (as ``ping 0`` reads it, 0.0.0.0) listens on every address: the banner said
    "serving http://0:8489", as for one address, with addresses a browser refuses to open,
    and asked for --host 0.0.0.0 to let the Compose setup's Prometheus reach it."""
    url = _demo._reachable_url(f"http://{host}:8489")
    assert url == "http://127.0.0.1:8489"
    lines = _banner(host, url)
    assert lines[0] == "laios demo: serving http://127.0.0.1:8489 (listening on 0.0.0.0)"
    assert "--host 0.0.0.0" not in "\n".join(lines)


def test_a_demo_behind_a_proxy_answers_the_names_it_is_told() -> None:
    """--allowed-host NAME: the demo on loopback answers a request forwarded with Host NAME,
    and still refuses other names (421)."""
    with _demo_running("--allowed-host", "metrics.example.com") as url:
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        for host, expected in (("metrics.example.com", 200), ("evil.example", 421)):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            connection.request("GET", "/metrics", headers={"Host": host})
            assert connection.getresponse().status == expected, host
            connection.close()
