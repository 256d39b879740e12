"""The live page that the HTTP endpoint serves at ``/``.

One self-contained HTML document (``_live_page.html`` beside this module: inline CSS and
vanilla JavaScript, no external asset) that reads ``status`` relative to where it is mounted
every two seconds and draws rates, failure ratios, latency percentiles, small charts, the
running tasks and the latest failures. Everything it shows comes from the ``/status``
document; it writes data into the page as text only.

It is served with a Content-Security-Policy that allows exactly its own inline script and
style (by their SHA-256 hashes), requests to its own origin, and nothing else.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from dataclasses import dataclass
from importlib.resources import files

__all__ = ["LivePage", "live_page", "live_page_answer"]

_RESOURCE = "_live_page.html"


@dataclass(frozen=True)
class LivePage:
    """The page's bytes and the policy it is served with."""

    body: bytes
    content_security_policy: str


def _hash_of(html: str, tag: str) -> str:
    """The CSP source (``'sha256-…'``) of the one inline ``<tag>`` element of ``html``."""
    blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", html, flags=re.DOTALL)
    if len(blocks) != 1:
        raise RuntimeError(f"{_RESOURCE} must hold exactly one <{tag}> element")
    digest = hashlib.sha256(blocks[0].encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


@functools.cache
def live_page() -> LivePage:
    """The page, read from the package once, with its Content-Security-Policy."""
    html = files("laios.execution").joinpath(_RESOURCE).read_text("utf-8")
    policy = "; ".join(
        (
            "default-src 'none'",
            f"script-src {_hash_of(html, 'script')}",
            f"style-src {_hash_of(html, 'style')}",
            "connect-src 'self'",
            "img-src data:",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )
    return LivePage(html.encode("utf-8"), policy)


def live_page_answer() -> tuple[str, list[tuple[str, str]], bytes]:
    """The status, headers (a new list each time) and body of an answer to ``GET /``."""
    page = live_page()
    headers = [
        ("Content-Type", "text/html; charset=utf-8"),
        ("Content-Security-Policy", page.content_security_policy),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
        ("Cache-Control", "no-cache"),
    ]
    return "200 OK", headers, page.body
