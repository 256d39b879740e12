"""The endpoint's routes, free of any server framework: a :class:`Request` in, a
:class:`Response` out.

The WSGI app, the ASGI app and :func:`~laios.execution.server.start_http_server` are thin
adapters around one :class:`Endpoint`, so content negotiation, gzip, ``HEAD``, ``401``,
``404``, ``405``, ``501`` and the ``500`` that replaces a traceback behave the same in all of them.
"""

from __future__ import annotations

import gzip
import ipaddress
import json
import logging
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from typing import Any, Literal, get_args
from urllib.parse import unquote, urlsplit

from prometheus_client import CollectorRegistry

from laios.execution._auth import MAX_PENDING_CHECKS, Authenticator
from laios.execution._checks import as_text, number_repr
from laios.execution._live_page import live_page_answer
from laios.execution._logs import LoggedRefusal, WarningLimiter, public_reason
from laios.execution.prometheus import names_from_query, render_for_accept

__all__ = [
    "ABSOLUTE_FORM",
    "ASTERISK_FOR_OPTIONS",
    "FRAGMENT",
    "NOSNIFF",
    "NOT_A_PATH",
    "STATUS_MODES",
    "Endpoint",
    "Request",
    "Response",
    "StatusMode",
    "check_allowed_hosts",
    "check_status_mode",
    "holds_fragment",
    "host_is_served",
    "is_loopback_address",
    "is_server_url",
    "url_problem",
]

_log = logging.getLogger("laios.execution.server")

#: What ``/status`` serves: everything, counts and percentiles only, or nothing (``404``).
StatusMode = Literal["full", "reduced", "off"]
STATUS_MODES: tuple[str, ...] = get_args(StatusMode)
_JSON = "application/json; charset=utf-8"
_OPEN_ROUTES = ("/healthz",)  # answered without credentials: they tell nothing
#: The methods every route allows, as ``Allow`` lists them.
_ALLOWED_METHODS = "GET, HEAD"
#: The methods HTTP defines (RFC 9110 section 9, and PATCH, RFC 5789): one no route allows
#: gets ``405``; any other (``FOO``, ``get``: methods are case-sensitive) is not recognised,
#: and gets ``501``.
_KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)
#: Why a request target holding a fragment (``#``) is answered ``400``.
FRAGMENT = (
    "the request target holds a fragment (#...), which a client keeps to itself: send the "
    "path and query without it (GET /metrics HTTP/1.1)"
)
#: Why ``*`` with another method than ``OPTIONS`` is answered ``400``.
ASTERISK_FOR_OPTIONS = (
    "the request target * is for OPTIONS only: send a path (GET /metrics HTTP/1.1)"
)
#: Why a request target that is not a path (nor a URL, nor ``*`` alone) is answered ``400``.
NOT_A_PATH = "the request target is not a path: send one starting with / (GET /metrics HTTP/1.1)"
#: The start of an absolute-form request target (``http://host:port/metrics``): a scheme.
ABSOLUTE_FORM = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
#: Why an absolute-form request target that cannot be served is answered ``400``.
_URL_REFUSED = (
    "the request target is a URL, but {}: send the path (GET /metrics HTTP/1.1) and the host "
    "in the Host header"
)
#: Sent with every answer: a browser must not take a body (``/metrics`` text holding label
#: values, a JSON error) for HTML or script because of what it contains.
NOSNIFF = ("X-Content-Type-Options", "nosniff")
#: Seconds between two warnings of the same kind (password checks refused, a request for
#: another host).
_WARN_EVERY = 60.0
#: A ``Host`` header: a name or IPv4 address, or an IPv6 address in brackets, then any port.
_HOST = re.compile(
    r"(?:\[(?P<ipv6>[0-9A-Fa-f:.]+(?:%[A-Za-z0-9._~-]+)?)\]|(?P<name>[A-Za-z0-9._-]*))(?::[0-9]*)?"
)
#: An IPv4 address as a browser sends it in ``Host`` (four decimal parts).
_DOTTED_QUAD = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")
#: A name in ``allowed_hosts``: labels of letters, digits, ``-`` and ``_``, dot-separated,
#: with an optional leading dot (the name and every name under it) and trailing dot.
_ALLOWED_NAME = re.compile(r"\.?[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\.?")
#: What no host to bind holds: control characters, and lone surrogates (the bytes of a
#: command-line argument that are not UTF-8), which the socket cannot even encode.
_NOT_IN_A_BIND_HOST = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
#: The longest host name, in characters, a trailing dot aside (RFC 1035's 255 octets on the
#: wire): an address, even an IPv6 one in brackets with a zone, is shorter.
_MOST_HOST_CHARS = 253
#: The longest label (a part between dots) of a host name, in characters (RFC 1035).
_MOST_LABEL_CHARS = 63
#: The second-level labels a country's registry sells names under (``co.uk``, ``com.au``,
#: ``ac.jp``): with a two-letter top-level domain, a public suffix a leading dot may not take.
_REGISTRY_LABELS = frozenset({"ac", "co", "com", "edu", "go", "gov", "ne", "net", "or", "org"})
#: The answer to a request for another host, at a server listening on loopback only.
_MISDIRECTED = (
    b"421 Misdirected Request: this server listens on loopback only, and answers requests "
    b"for localhost, a name under .localhost or .internal, or an IP address (127.0.0.1, "
    b"[::1]). This request names another host, as a web page using DNS rebinding would. "
    b"A proxy of yours forwarding a name: see allowed_hosts.\n"
)


def check_status_mode(status: Any) -> StatusMode:
    """Return ``status`` if it is a status mode; else raise naming the choices."""
    if not isinstance(status, str):
        raise TypeError(
            f"status must be one of {', '.join(STATUS_MODES)}, not {number_repr(status)}"
        )
    text = as_text(status)  # (compared as its text: a str subclass's own == may raise)
    if text not in STATUS_MODES:
        raise ValueError(
            f"status must be one of {', '.join(STATUS_MODES)}, got {number_repr(status)}"
        )
    mode: StatusMode = text  # type: ignore[assignment]  # checked just above
    return mode


@dataclass(frozen=True)
class Request:
    """What the endpoint needs of a request.

    Attributes:
        method: ``GET``, ``HEAD``, ...
        path: The path below the app's mount point, percent-decoded (``/metrics``).
        query: The raw query string, without ``?`` (``""`` when there is none).
        headers: Header names in lower case; repeated headers joined with ``", "``.
        target: The request target as the request carried it: the whole path, mount point
            included, and the query, not percent-decoded (``/laios/metrics?name[]=x``);
            ``None`` when the server does not pass it. A route is not served when the path
            ends with another spelling of the route (``/%6detrics``; see
            :func:`_written_path`), and a ``#`` in it is a fragment (see
            :func:`holds_fragment`).
    """

    method: str
    path: str
    query: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    target: str | None = None

    def header(self, name: str) -> str:
        """The value of header ``name`` (lower case), ``""`` when absent."""
        return self.headers.get(name, "")

    @property
    def raw_path(self) -> str | None:
        """The path of :attr:`target` (without query or fragment), ``None`` without one."""
        if self.target is None:
            return None
        return self.target.partition("?")[0].partition("#")[0]


def holds_fragment(request: Request) -> bool:
    """Whether ``request``'s target holds a fragment (``#...``), which a client keeps to
    itself and no request target may carry (RFC 9112 section 3.2): the one rule of the
    built-in server and both apps, which answer such a request ``400`` (:data:`FRAGMENT`).

    A ``#`` in the target as received, or in the query (which no server decodes: a ``#``
    meant as data is sent ``%23``), is a fragment, wherever the hosting server put it:
    gunicorn drops it from the path and query it passes but keeps it in ``RAW_URI``;
    wsgiref and uvicorn's h11 protocol leave it in the query (``?a=b#frag``) or the path
    (``/metrics#frag``). A ``#`` in the decoded path of a server that passes no target
    (wsgiref; an ASGI server without ``raw_path``) cannot be told from ``%23``: such a path
    is no route, and gets ``404``.
    """
    return "#" in request.query or (request.target is not None and "#" in request.target)


def url_problem(url: str) -> str:
    """Why the absolute-form request target ``url`` (without its fragment) cannot be served,
    ``""`` when it can: a scheme other than ``http`` or ``https``, user information
    (``user@``), no host, or a host that does not parse (a bracket left open, a port that is
    not a number)."""
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
        parts.port  # noqa: B018  (raises for a port that is not a number)
    except ValueError:
        return "its host is not a host name or an IP address"
    if parts.scheme.lower() not in ("http", "https"):
        return "its scheme is not http or https"
    if "@" in parts.netloc:
        return "it holds user information (user@), which HTTP does not send there"
    if not hostname:
        return "it names no host"
    return ""


def _in_origin_form(request: Request) -> Request | str:
    """``request`` with an absolute-form target (``GET http://localhost/metrics``, which RFC
    9112 section 3.2.2 requires a server to accept) taken as its path and query; or the
    reason it cannot be served (see :func:`url_problem`).

    Servers differ: gunicorn passes the URL's path in ``PATH_INFO`` and the URL in
    ``RAW_URI``; wsgiref and uvicorn's h11 protocol pass the whole URL as the path. The
    built-in server passes the path and query of a URL it serves, and a URL it cannot serve
    as it came, for this answer.

    ``OPTIONS`` with a URL of empty path and no query (``OPTIONS http://localhost``) asks
    about the server as a whole: it is ``OPTIONS *`` (RFC 9112 section 3.2.4), and answered
    as that is.
    """
    raw = request.target if request.target is not None else request.path
    if ABSOLUTE_FORM.match(raw) is None:
        return request
    problem = url_problem(raw.partition("#")[0])
    if problem:
        return _URL_REFUSED.format(problem)
    if request.method == "OPTIONS" and is_server_url(raw) and not request.query:
        return replace(request, path="*", target=None if request.target is None else "*")
    path = request.path
    if ABSOLUTE_FORM.match(path) is not None:
        path = _after_authority(path)
    target = None if request.target is None else _after_authority(request.target)
    return replace(request, path=path, target=target)


def is_server_url(url: str) -> bool:
    """Whether the absolute-form target ``url`` has an empty path and no query (nor
    fragment): ``http://localhost:8489``, which with ``OPTIONS`` means ``OPTIONS *`` (RFC
    9112 section 3.2.4)."""
    return not any(char in url.partition("://")[2] for char in "/?#")


def _after_authority(url: str) -> str:
    """What follows the scheme and authority of ``url``: its path, query and fragment as
    they are (``/`` for none). Not split further: in a decoded path, a ``?`` or ``#`` was
    ``%3F`` or ``%23``, part of the path."""
    rest = url.partition("://")[2]
    end = min((at for at in map(rest.find, "/?#") if at >= 0), default=len(rest))
    after = rest[end:]
    return after if after.startswith("/") else f"/{after}"


def is_loopback_address(address: str) -> bool:
    """Whether ``address`` is an IP address of this machine's loopback: 127.0.0.0/8, ``::1``,
    or an IPv4 loopback address mapped into IPv6 (a zone, ``%lo``, is ignored)."""
    try:
        ip = ipaddress.ip_address(address.partition("%")[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool(ip.is_loopback or (mapped is not None and mapped.is_loopback))


def check_allowed_hosts(allowed_hosts: Any) -> tuple[str, ...]:
    """Return the names of ``allowed_hosts`` in the form :func:`host_is_served` compares
    (lower case, no trailing dot); raise naming the first that is not a host name.

    Each name is a host name without scheme, port or path: ``metrics.example.com`` allows
    that name only, ``.example.com`` allows ``example.com`` and every name under it (a
    leading dot before a public suffix, ``.com`` or ``.co.uk``, is refused). An IP
    address is taken too, IPv4 or IPv6 (``::1`` or ``[::1]``, kept as ``[::1]``).
    """
    if isinstance(allowed_hosts, (str, bytes)):
        raise TypeError(
            f"allowed_hosts must be a list of host names, not a single string: "
            f"allowed_hosts=[{number_repr(allowed_hosts)}]"
        )
    try:
        names = list(allowed_hosts)
    except TypeError:
        raise TypeError(
            "allowed_hosts must be an iterable of host names (a list), not "
            f"{number_repr(allowed_hosts)}"
        ) from None
    checked: list[str] = []
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"allowed_hosts: each name must be a string, not {number_repr(name)}")
        try:
            checked.append(allowed_name(name))
        except ValueError as exc:
            raise ValueError(f"allowed_hosts: {exc}") from None
    return tuple(checked)


def _ipv6_address(text: str) -> str | None:
    """``text`` as ``Host`` carries an IPv6 address (in brackets, compressed, lower case), if
    it is one, bracketed or not; else ``None``."""
    bare = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        address = ipaddress.IPv6Address(bare)
    except ValueError:
        return None
    return f"[{address}]"


def bind_host(host: str) -> str:
    """The host to bind for ``host``, as a plain ``str``: as it is, but an IPv6 address in
    brackets, as URLs write it (``[::1]``), is the address itself (``::1``).

    Raises:
        ValueError: When the host is longer than any host name (more than 253 characters,
            a trailing dot aside; its IDNA form too); when brackets hold anything else, or
            one is missing; or when the host holds a control character or a lone surrogate (a
            byte of a command-line argument that is not UTF-8), or white space (a space left
            around a configuration value), which no address or host name holds; or an
            invisible formatting character (a zero-width space, a soft hyphen, a
            right-to-left override), which IDNA drops or refuses; or when it is not ASCII and
            has no IDNA form, in which the socket looks a host name up (a label of more than
            63 characters).
    """
    # (Checked first: the socket would look it up as a name, and the OSError that fails the
    # bind would quote it whole.)
    if len(host.removesuffix(".")) > _MOST_HOST_CHARS:
        raise ValueError(
            f"it is {len(host)} characters long, and a host name is at most "
            f"{_MOST_HOST_CHARS} (an address fewer): give an address such as 127.0.0.1, or a "
            "host name"
        )
    unusable = _NOT_IN_A_BIND_HOST.search(host)
    if unusable is not None:
        raise ValueError(
            f"it holds {unusable[0]!r}, a control character or a byte that is not UTF-8: "
            "give an address such as 127.0.0.1, or a host name"
        )
    if any(char.isspace() for char in host):
        # (the socket would look it up as a name, which fails as one that does not resolve,
        # the space unseen in "cannot listen on 127.0.0.1 :8489")
        bare = host.strip()
        advice = (
            repr(bare)
            if bare and not any(char.isspace() for char in bare)
            else "an address such as 127.0.0.1, or a host name"
        )
        raise ValueError(
            f"it holds white space, which no address or host name holds: give {advice}"
        )
    if not host.isascii():
        # IDNA drops these (a zero-width space, a soft hyphen): the server would listen on
        # another name than the one it shows, which no one can tell from it or type.
        invisible = next((c for c in host if unicodedata.category(c) == "Cf"), None)
        if invisible is not None:
            raise ValueError(
                f"it holds U+{ord(invisible):04X}, an invisible formatting character that "
                "host names leave out: give the host name without it"
            )
        try:
            encoded = host.encode("idna")  # (as the socket encodes it: a TypeError failing)
        except UnicodeError as exc:
            raise ValueError(
                f"it is no host name that IDNA can encode ({exc.__cause__ or exc}): give an "
                "address such as 127.0.0.1, or a host name"
            ) from None
        if len(encoded.removesuffix(b".")) > _MOST_HOST_CHARS:
            raise ValueError(
                f"its IDNA form, which the socket looks up, is {len(encoded)} characters long, "
                f"and a host name is at most {_MOST_HOST_CHARS}: give a shorter host name"
            )
    if not host.startswith("[") and not host.endswith("]"):
        # (A str subclass, a (str, Enum) member, binds the text it holds, but formatted it
        # shows its name: the server's .host and .url would name "Host.LOCAL".)
        return str.__str__(host)
    inner = host.removeprefix("[").removesuffix("]")
    try:
        if len(inner) != len(host) - 2:
            raise ValueError("a bracket is missing")
        ipaddress.IPv6Address(inner)
    except ValueError:
        raise ValueError(
            "brackets hold an IPv6 address only (such as [::1]); give a host name or an IPv4 "
            "address without them"
        ) from None
    return inner


def allowed_name(name: str) -> str:
    """One name of ``allowed_hosts``, lower case without its trailing dot; or raise
    ``ValueError`` saying why it is not a host name (one longer than any, more than 253
    characters or with a label of more than 63, is described cut short), or why a leading dot
    may not stand before it (a top-level domain, ``.com``, or a country's registry domain,
    ``.co.uk``) (``laios demo --allowed-host`` checks its names with this). An IP address is
    taken, an IPv6 one (``::1`` or ``[::1]``) kept as ``Host`` carries it (``[::1]``); every
    address is served anyway."""
    if not name.strip():
        raise ValueError(f"a name is empty ({number_repr(name)})")
    address = _ipv6_address(name)
    if address is not None:
        return address
    problem = ""
    if "://" in name:
        problem = "a host name without scheme"
    elif name.startswith("[") and "]:" in name:
        problem = "a host name or IP address without port (any port is allowed)"
    elif name.startswith("["):
        problem = "an IPv6 address in brackets ('[::1]')"
    elif ":" in name:
        problem = "a host name without port (any port is allowed)"
    elif "/" in name:
        problem = "a host name without path"
    elif name.startswith("*"):
        problem = "a host name; for a domain and every name under it, use a leading dot"
    elif _ALLOWED_NAME.fullmatch(name.lower()) is None:
        problem = "a host name (letters, digits, '-', '_' and dots)"
    if problem:
        example = " such as 'metrics.example.com' or '.example.com'"
        raise ValueError(f"{number_repr(name)} is not {problem}: give names{example}")
    allowed = name.lower().removesuffix(".")
    # (no Host header of a real host name could match a longer one)
    if len(allowed.removeprefix(".")) > _MOST_HOST_CHARS:
        raise ValueError(
            f"{number_repr(name)} is {len(name)} characters long, and a host name is at most "
            f"{_MOST_HOST_CHARS} (a leading and a trailing dot aside): give a host name"
        )
    label = max(allowed.removeprefix(".").split("."), key=len)
    if len(label) > _MOST_LABEL_CHARS:
        raise ValueError(
            f"{number_repr(name)} has a label (a part between dots) of {len(label)} "
            f"characters, and a host name's labels are at most {_MOST_LABEL_CHARS}: give a "
            "host name"
        )
    if allowed.startswith(".") and _is_public_suffix(allowed[1:]):
        raise ValueError(
            f"{name!r} would allow every site registered under {allowed[1:]!r}, which a web page "
            f"using DNS rebinding could be: give the names you serve ('metrics.example.com'), "
            f"or a domain of yours with a leading dot ('.example.com')"
        )
    return allowed


def _is_public_suffix(domain: str) -> bool:
    """Whether ``domain`` is one anyone can register names under, as far as can be told
    without a list of them: a top-level domain (``com``, one label) or a country's registry
    domain (``co.uk``, ``com.au``). ``localhost`` and ``internal`` are not: they are never
    delegated, and loopback serves every name under them anyway."""
    labels = domain.split(".")
    if len(labels) == 1:
        return domain not in ("localhost", "internal")
    return len(labels) == 2 and labels[0] in _REGISTRY_LABELS and len(labels[1]) == 2


def host_is_served(host: str, allowed_hosts: Iterable[str] = ()) -> bool:
    """Whether a server on loopback only answers a request whose ``Host`` header is ``host``
    (any case, with or without a port or trailing dot): one that names something DNS
    rebinding cannot use, or a name of ``allowed_hosts``.

    DNS rebinding cannot use an IP address (``127.0.0.1``, ``10.0.0.7``, ``[::1]``),
    ``localhost`` or a name under ``.localhost`` (RFC 6761: never sent to DNS), or a name
    under ``.internal`` (reserved for private use, never delegated in public DNS; Docker's
    ``host.docker.internal``). A page that rebinds must be reached by a name its site's DNS
    answers for, which a browser sends in ``Host``; a page reached at an address was reached
    at that address. An empty value (HTTP/1.0 sends none) passes: a browser always sends one.

    ``allowed_hosts`` are names as :func:`check_allowed_hosts` returns them: each is served,
    and one starting with a dot serves the name without it and every name under it (an IP
    address among them changes nothing: every address is served).
    """
    host = host.strip()
    if not host:
        return True
    match = _HOST.fullmatch(host)
    if match is None:
        return False
    if match["ipv6"] is not None:
        return _is_address(match["ipv6"])
    name = match["name"].lower().removesuffix(".")
    return (
        name == "localhost"
        or name.endswith((".localhost", ".internal"))
        or (_DOTTED_QUAD.fullmatch(name) is not None and _is_address(name))
        or any(
            name == allowed or (allowed.startswith(".") and f".{name}".endswith(allowed))
            for allowed in allowed_hosts
        )
    )


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        return False
    return True


def joined_headers(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Header pairs as :attr:`Request.headers`: lower-case names, repeats joined."""
    headers: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


@dataclass(frozen=True)
class Response:
    """The answer: status code, headers (with ``Content-Length``) and body (empty for HEAD)."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    @property
    def status_line(self) -> str:
        """The status as WSGI writes it, e.g. ``200 OK``."""
        return f"{self.status} {HTTPStatus(self.status).phrase}"


def _json_body(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode("utf-8")


def _json(status: int, document: dict[str, Any], *headers: tuple[str, str]) -> Response:
    return Response(status, [("Content-Type", _JSON), *headers], _json_body(document))


class Endpoint:
    """Serves ``/metrics``, ``/status``, ``/healthz`` and the live page at ``/`` (with
    ``/status`` only) for one store and registry.

    Args:
        registry: What ``/metrics`` renders.
        status_document: Builds the ``/status`` document; ``None`` when ``/status`` is off.
        authenticator: Who may read ``/metrics`` and ``/status``.
        extra_headers: Added to every answer (the web configuration's headers), but for a
            header the route sets itself (the live page's ``Content-Security-Policy``).
            Every answer carries ``X-Content-Type-Options: nosniff`` once, configured or not.
        keep: An object the endpoint keeps alive as long as it lives (its store, which the
            registry's collector holds only weakly).
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        status_document: Callable[[], dict[str, Any]] | None,
        authenticator: Authenticator,
        extra_headers: Iterable[tuple[str, str]] = (),
        *,
        keep: object = None,
    ) -> None:
        self._keep = keep
        self._registry = registry
        self._status_document = status_document
        self._auth = authenticator
        self._warnings = WarningLimiter(_WARN_EVERY)
        self._extra_headers = tuple(extra_headers)
        self.routes: tuple[str, ...] = (
            ("/", "/metrics", "/status", "/healthz")
            if status_document
            else ("/metrics", "/healthz")
        )

    def handle(
        self,
        request: Request,
        *,
        loopback_only: bool = False,
        allowed_hosts: tuple[str, ...] = (),
    ) -> Response:
        """Answer ``request``; never raises (a failure is logged and answered ``500``).

        With ``loopback_only`` (a server listening on loopback only), a request whose ``Host``
        names another host, and none of ``allowed_hosts`` (see :func:`host_is_served`), is
        answered ``421`` before anything else but a fragment: see :meth:`_misdirected`.

        A target holding a fragment (see :func:`holds_fragment`) is answered ``400`` first:
        the fragment is no part of the path or query. Then an absolute-form target
        (``http://localhost/metrics``) is served as its path and query, or answered ``400``
        when it cannot be (see :func:`url_problem`).
        """
        try:
            host = request.header("host")
            served = _in_origin_form(request)
            if holds_fragment(request):
                response = _json(400, {"error": FRAGMENT})
            elif isinstance(served, str):
                response = _json(400, {"error": served})
            elif loopback_only and not host_is_served(host, allowed_hosts):
                response = self._misdirected(host)
            else:
                response = self._respond(served)
        except Exception as exc:
            self._failed(request.path if request.path in self.routes else "", exc)
            # (a failure that says what failed in words fit for the client: a multiprocess
            # scrape's, whose path the log names; any other exception's message may hold
            # anything, and is for the log only)
            response = _json(500, {"error": public_reason(exc) or "internal error"})
        return self._finish(request, response)

    def busy(self, request: Request, limit: int) -> Response:
        """Answer ``request`` ``503`` with ``Retry-After: 1`` without rendering anything, as
        ``limit`` requests are already being answered or waiting for it; warn (at most once a
        minute) that requests are being refused.

        The answer carries the configured headers and ``nosniff``, as every other one does.
        """
        if self._warnings.should_log("requests busy") is not None:
            _log.warning(
                "metrics endpoint: %d requests are being answered or waiting, the limit; "
                "answering 503 to new ones (a scraper asking too often, or a slow collector?)",
                limit,
            )
        response = _json(
            503,
            {"error": "too many requests at once"},
            ("Cache-Control", "no-store"),
            ("Retry-After", "1"),
        )
        return self._finish(request, response)

    def _finish(self, request: Request, response: Response) -> Response:
        """``response`` with the configured headers, ``nosniff`` and ``Content-Length``, and
        no body for ``HEAD``."""
        body = response.body
        # A route's own header wins over a configured one of the same name: the live page's
        # policy allows its inline script by hash, and a second policy would block it.
        own = {name.lower() for name, _ in response.headers}
        extra = [pair for pair in self._extra_headers if pair[0].lower() not in own]
        headers = [*response.headers, *extra]
        if not any(name.lower() == "x-content-type-options" for name, _ in headers):
            headers.append(NOSNIFF)  # (a configured one can only say nosniff too)
        headers.append(("Content-Length", str(len(body))))
        return Response(response.status, headers, b"" if request.method == "HEAD" else body)

    def _respond(self, request: Request) -> Response:
        path = _written_path(request)
        if path == "*":
            return self._server_wide(request)
        verdict = (
            "allowed" if path in _OPEN_ROUTES else self._auth.check(request.header("authorization"))
        )
        if verdict == "busy":
            self._busy()
            return _json(
                503,
                {"error": "too many password checks at once"},
                ("Cache-Control", "no-store"),
                ("Retry-After", "1"),
            )
        if verdict == "refused":
            return _json(
                401,
                {"error": "unauthorized"},
                ("Cache-Control", "no-store"),
                *self._auth.challenges,
            )
        if request.method not in _KNOWN_METHODS:
            # RFC 9110 section 15.6.2: not recognised, for any resource (405 would say the
            # method is known, and not allowed on this one).
            return _json(
                501,
                {
                    "error": "method not implemented: this server answers GET and HEAD "
                    "(methods are case-sensitive)"
                },
            )
        if path not in self.routes:
            return _json(404, {"error": "not found", "routes": list(self.routes)})
        if request.method not in ("GET", "HEAD"):
            return _json(405, {"error": "method not allowed"}, ("Allow", _ALLOWED_METHODS))
        return self._route(path, request)

    @staticmethod
    def _server_wide(request: Request) -> Response:
        """The answer to a request for ``*``, the server as a whole (RFC 9112 section 3.2.4).

        ``OPTIONS *`` gets ``200`` with ``Allow: GET, HEAD``, the methods every route allows
        (the list ``OPTIONS`` on a route gets with its ``405``), without credentials: it tells
        nothing of the data. Another method has no use for ``*``: ``400``; nor has a query,
        as ``*`` is the whole target (``*?a=b`` is neither it nor a path): ``400``. The
        built-in server leaves these to this answer, so every adapter gives the same one.
        """
        if request.query or request.target not in (None, "*"):
            return _json(400, {"error": NOT_A_PATH})
        if request.method == "OPTIONS":
            return Response(200, [("Allow", _ALLOWED_METHODS)], b"")
        return _json(400, {"error": ASTERISK_FOR_OPTIONS})

    def _failed(self, route: str, exc: Exception) -> None:
        """Log a failure to answer ``route`` with its traceback: at most once a minute per
        route and kind of exception, as scrapes repeat every few seconds and a failure that
        lasts (a collector whose backend is gone) would log the same traceback each time.
        A refusal whose reason is logged already (a multiprocess scrape that fails on purpose)
        is not logged again."""
        if isinstance(exc, LoggedRefusal):
            return
        held = self._warnings.should_log(f"failed {route} {type(exc).__qualname__}")
        if held is not None:
            _log.error(
                "serving %s failed (answered 500; logged at most once a minute%s)",
                route,
                f", {held} more failures since the last log" if held else "",
                exc_info=exc,
            )

    def _misdirected(self, host: str) -> Response:
        """The answer to a request for another host at a server on loopback: ``421``.

        A web page can make its own site's name resolve to 127.0.0.1 (DNS rebinding), and the
        browser then lets it read what this server answers; the request still names the page's
        site in ``Host``. ``421 Misdirected Request`` says this server is not the one for that
        name (``403`` would say the client lacks a permission it could get). Credentials are
        not checked: a ``401`` would have the browser prompt for them under the other site's
        name.
        """
        if self._warnings.should_log("misdirected") is not None:
            _log.warning(
                "metrics endpoint: answered 421 to a request for host %r: this server listens "
                "on loopback only and answers requests for localhost, a name under .localhost "
                "or .internal, or an IP address (a web page trying DNS rebinding, or a proxy "
                "that forwards its own Host header? Pass that name in allowed_hosts=); "
                "at most one such warning a minute",
                host[:100],
            )
        return Response(
            421,
            [("Content-Type", "text/plain; charset=utf-8"), ("Cache-Control", "no-store")],
            _MISDIRECTED,
        )

    def _busy(self) -> None:
        """Warn (at most once a minute) that password checks are being refused."""
        if self._warnings.should_log("busy") is not None:
            _log.warning(
                "metrics endpoint: %d password checks are running or waiting, the limit; "
                "answering 503 to requests whose password is not already known to be right "
                "(many wrong passwords at once?)",
                MAX_PENDING_CHECKS,
            )

    def _route(self, path: str, request: Request) -> Response:
        if path == "/healthz":
            return Response(200, [("Content-Type", "text/plain; charset=utf-8")], b"ok\n")
        if path == "/":  # the live page, which reads /status
            _status, headers, page = live_page_answer()
            return Response(200, headers, page)
        if path == "/status" and self._status_document is not None:
            return _json(200, self._status_document(), ("Cache-Control", "no-store"))
        names = names_from_query(request.query)
        body, content_type = render_for_accept(
            request.header("accept"), self._registry, names=names
        )
        headers = [("Content-Type", content_type), ("Vary", "Accept, Accept-Encoding")]
        if _accepts_gzip(request.header("accept-encoding")):
            body = gzip.compress(body)
            headers.append(("Content-Encoding", "gzip"))
        return Response(200, headers, body)


def _written_path(request: Request) -> str:
    """The path to route ``request`` by: its decoded path, or, when the path as received
    ends with another spelling of it, the path as received (which names no route).

    A route is served at its path as written only: ``/%6detrics`` (a percent-encoded
    letter) and ``//metrics`` are not ``/metrics``. RFC 3986 calls the first equivalent, but
    Prometheus and every HTTP client send a route's letters as they are, and a proxy rule
    that compares the path as sent (HAProxy's ``path``, Envoy without ``normalize_path``)
    would let the other spelling through to a server that decoded it. The mount point
    before the route is the hosting server's business and may be spelled any way. A path that
    is not the decoded end of the one received was rewritten by a middleware in front of the
    app, and is routed as given.
    """
    path = request.path or "/"
    raw = request.raw_path
    if raw is None or path in ("/", "*") or raw.endswith(path):
        return path
    if not unquote(raw, errors="replace").endswith(path):
        return path  # (rewritten: another path, not another spelling of it)
    return raw


def _accepts_gzip(accept_encoding: str) -> bool:
    """Whether ``Accept-Encoding`` allows gzip (``gzip;q=0`` refuses it). A ``q`` that is no
    q-value (a number from 0 to 1: not ``inf``, ``2`` or ``abc``) makes gzip not acceptable,
    as a bad ``q`` in ``Accept`` makes its range."""
    for part in accept_encoding.split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() not in ("gzip", "x-gzip"):
            continue
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    return False
                return 0.0 < weight <= 1.0  # (False for nan too)
        return True
    return False
