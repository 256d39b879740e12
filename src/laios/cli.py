"""The ``laios`` command line: ``laios status`` and ``laios demo``.

``laios status`` reads the ``/status`` JSON of a running endpoint (see
:func:`laios.execution.server.start_http_server`) and shows it in the terminal, once or, with
``--watch``, redrawn until Ctrl-C. It uses only the standard library, so it works wherever the
package is installed. Rendering is done by functions that return strings
(:func:`render_status`, :func:`progress_bar`, :func:`format_seconds`); :func:`status_lines`
fits the status to a screen's width and height, for ``laios demo``'s live view.

Example:
    >>> progress_bar(52.0)
    '[#####.....]  52%'
"""

from __future__ import annotations

import argparse
import base64
import codecs
import contextlib
import functools
import http.client
import importlib
import io
import json
import math
import os
import re
import socket
import ssl
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal
from time import monotonic
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import SplitResult, quote, unquote, urlsplit, urlunsplit

from laios._output import (
    CREDENTIALS_PAST_HOST,
    OutputParser,
    closed_stdout_status,
    credentials_past_host,
    number_argument,
    output_failure_status,
    parse_command_line,
    printable_text,
    shown_url,
    without_credentials,
)
from laios._stops import stop_signals_as_ctrl_c
from laios._terminal import QUESTION_MARKS, clip, stream_is_terminal, table_lines, terminal_size
from laios._text import quoted

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = [
    "DEFAULT_URL",
    "StatusUnavailable",
    "build_parser",
    "fetch_status",
    "format_seconds",
    "main",
    "progress_bar",
    "render_status",
    "status_lines",
    "status_url",
    "watch_status",
]

#: The endpoint's port unless told otherwise (``laios.execution.server.DEFAULT_PORT``).
_DEFAULT_PORT = 8489
#: Where ``laios status`` looks unless given ``--url``.
DEFAULT_URL = f"http://127.0.0.1:{_DEFAULT_PORT}"
#: Largest ``/status`` body read, in bytes.
_MAX_BODY = 16 * 1024 * 1024
#: Bytes asked for at a time while reading the body.
_CHUNK = 64 * 1024
#: Largest magnitude shown for a number from the endpoint; larger ones are shown as ``-``.
_MAX_SHOWN = 1e15
_CLEAR = "\x1b[H\x1b[2J"
#: The longest single wait (a socket timeout, a sleep): a longer timeout or interval is waited
#: in parts, since the platform refuses waits past its time_t (about 9e9 seconds).
_LONGEST_WAIT = 86400.0
#: The shortest interval between the redraws of ``--watch``, in seconds: ten pictures a second
#: are more than a person reads; a shorter one (``1e-9``) would only poll the endpoint and
#: redraw the terminal as fast as they can.
_SHORTEST_INTERVAL = 0.1
#: Why an interval below :data:`_SHORTEST_INTERVAL` is refused, in words that follow it.
_INTERVAL_TOO_SHORT = (
    f"must be at least {_SHORTEST_INTERVAL:g} seconds (a shorter one would only poll the "
    "endpoint and redraw as fast as they can)"
)
_LOOPBACK = ("localhost", "127.0.0.1", "::1")


class StatusUnavailable(Exception):
    """Nothing usable answered at the status URL; the message is one line for the user."""


class _CredentialsNeeded(StatusUnavailable):
    """The endpoint answered 401: it runs, and wants (other) credentials."""


class _TLSFailed(StatusUnavailable):
    """Something answered over TLS, but no HTTP exchange came of it: a certificate the client
    does not trust, a handshake that failed (an https:// URL for a plain HTTP endpoint), or
    an http:// URL for an endpoint that speaks TLS."""


class _Misdirected(StatusUnavailable):
    """The endpoint answered 421: it listens on loopback only, and the URL names a host it
    does not answer for."""


class _StatusOff(StatusUnavailable):
    """A laios endpoint answered 404 without ``/status`` among its routes (``status="off"``)."""


class _TooLarge(StatusUnavailable):
    """The answer was longer than ``laios status`` reads (an endpoint runs there)."""


class _AnswerCutShort(StatusUnavailable):
    """Something answered, and the connection closed before the whole body came (so there is
    no advice to start an endpoint there: trying again is)."""


class _NoAnswerInTime(StatusUnavailable):
    """Something accepted the connection and gave no complete answer in time (so there is no
    advice to start an endpoint there: a larger ``--timeout`` is)."""


class _NotAStatus(StatusUnavailable):
    """Something answered with a body that is no ``/status`` document (so there is no advice
    to start an endpoint there: the URL is what to check)."""


class _RedirectedNowhere(StatusUnavailable):
    """The URL asked answered with a redirect, and nothing answered where it led (so there is
    no advice to start an endpoint at the URL asked)."""


class _HTTPFailure(StatusUnavailable):
    """Something answered with an HTTP error that no missing endpoint explains (a 404 or 403
    from something else there, a server's 500): the message says what to check instead."""


class _NoServerBehind(StatusUnavailable):
    """A proxy or gateway answered 502, 503 or 504: no server answers behind it, so the advice
    is to start the endpoint (on the port of the URL that answered: a redirect's target)."""

    def __init__(self, message: str, *, port: int | None, redirected: bool) -> None:
        super().__init__(message)
        #: The port of the URL that answered (``None``: its scheme's default).
        self.port = port
        #: Whether a redirect led there.
        self.redirected = redirected


class _ClosedUnanswered(StatusUnavailable):
    """Something accepted the connection and closed it without a word: a listener runs there
    (a container's published port, a port forward) with no endpoint answering behind it."""


#: How a connection closed without a word shows: a close after the request was read, or a
#: reset (a close with the request unread), while the request or its answer's head was awaited.
_CLOSED = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class _BadURL(StatusUnavailable):
    """The URL cannot be fetched at all (not a URL, not http(s), or naming no host): nothing
    was tried."""


#: Seconds the check of whether an endpoint speaks TLS may take at most (within the deadline).
_TLS_PROBE_SECONDS = 2.0
#: The start of OpenSSL's reason for an alert the peer sent: the peer speaks TLS.
_TLS_ALERTS = ("SSLV3_ALERT_", "TLSV1_ALERT_", "TLSV13_ALERT_")


def _speaks_tls(host: str, port: int, deadline: _Deadline) -> bool:
    """Whether the endpoint at ``host:port`` answers a TLS handshake: one that completes (its
    certificate is not checked: this only tells which protocol it speaks) or that it ends with
    a TLS alert of its own. Never raises."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        scoped, name = _in_zone(unquote(host))  # (a URL's host: its zone id percent-encoded)
        with deadline.connect((scoped, port)) as sock:
            sock.settimeout(min(deadline.remaining(), _TLS_PROBE_SECONDS))
            with context.wrap_socket(sock, server_hostname=name):
                return True
    except ssl.SSLError as exc:
        return str(exc.reason or "").startswith(_TLS_ALERTS)
    except (OSError, ValueError):
        return False


#: OpenSSL's verify codes for a certificate issued for other names than the host asked for
#: (X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH): trusting a CA changes nothing.
_NAME_MISMATCH = frozenset({62, 64})


def _trusting_advice(cacert: str | None) -> str:
    """How to have a certificate signed by a CA of one's own trusted, given ``--cacert``
    (``cacert``: the file it names, which replaces the system's CAs) or else ``SSL_CERT_FILE``
    as it is now (OpenSSL ignores it in silence when it names no file)."""
    if cacert is not None:
        return (
            f"--cacert names {_one_line(cacert)}, which must hold the certificate of the CA "
            "that signed it (PEM)"
        )
    named = os.environ.get("SSL_CERT_FILE")
    if not named:
        return (
            "if a CA of your own signed it, give that CA's certificate file (PEM) with "
            "--cacert, or name it in the SSL_CERT_FILE environment variable"
        )
    shown = _one_line(named)
    if not os.path.isfile(named):
        return (
            f"SSL_CERT_FILE names {shown}, which is not a file: name the certificate file "
            "(PEM) of the CA that signed it, or give that file with --cacert"
        )
    return (
        f"SSL_CERT_FILE names {shown}, which must hold the certificate of the CA that signed "
        "it (PEM); or give that CA's certificate file with --cacert"
    )


def _proxied(url: str) -> bool:
    """Whether urllib sends a request for ``url`` through a proxy (the environment's)."""
    parts = urlsplit(url)
    if parts.hostname in _LOOPBACK:
        return False  # (fetch_status never proxies its own machine)
    proxies = urllib.request.getproxies()
    return parts.scheme in proxies and not urllib.request.proxy_bypass(parts.netloc)


def _tls_instead(answering: _Answering, deadline: _Deadline) -> _TLSFailed | None:
    """For an http:// URL whose endpoint gave no HTTP answer (or a 400, as servers that speak
    TLS give a plain request), the error saying it speaks TLS, with the https:// URL to use;
    ``None`` when it does not (or a proxy stands between). Never raises for a URL whose port
    :func:`fetch_status` has read (or urllib, for a redirect's)."""
    parts = urlsplit(answering.url)
    if parts.scheme != "http" or parts.hostname is None or _proxied(answering.url):
        return None
    try:
        port = parts.port or 80
    except ValueError:
        return None
    if not _speaks_tls(parts.hostname, port, deadline):
        return None
    return _TLSFailed(
        f"{answering.named} speaks TLS, not plain HTTP (it gave no HTTP answer to a plain "
        f"request); use {answering.with_scheme('https')}"
    )


#: OpenSSL's reasons for an alert by which a server refuses the client certificate it got.
_CERTIFICATE_REFUSED = (
    "CERTIFICATE_REQUIRED",
    "UNKNOWN_CA",
    "BAD_CERTIFICATE",
    "CERTIFICATE_UNKNOWN",
    "CERTIFICATE_EXPIRED",
    "CERTIFICATE_REVOKED",
    "UNSUPPORTED_CERTIFICATE",
    "ACCESS_DENIED",
)


def _tls_refusal(
    answering: _Answering,
    reason: ssl.SSLError,
    deadline: _Deadline,
    cert: str | None,
) -> _TLSFailed | None:
    """For a TLS exchange that failed with ``reason``, the error saying the endpoint speaks TLS
    and ended it: as one that requires a client certificate does when none was given (``cert``:
    the file of the one given), or that refused the one given; ``None`` when
    the endpoint does not speak TLS (an https:// URL for a plain HTTP one)."""
    said = str(reason.reason or "")
    parts = urlsplit(answering.url)
    try:
        port = parts.port or 443
    except ValueError:
        return None
    if (
        cert is not None
        and said.startswith(_TLS_ALERTS)
        and any(refusal in said for refusal in _CERTIFICATE_REFUSED)
    ):
        return _TLSFailed(
            f"{answering.named} speaks TLS and refused the client certificate given in --cert "
            f"{_one_line(cert)} ({_one_line(reason)}): it takes one signed by a CA of its "
            "client_ca_file, in date and issued for client authentication"
        )
    if "CERTIFICATE_REQUIRED" in said:  # (TLSV13_ALERT_CERTIFICATE_REQUIRED: it says so)
        return _TLSFailed(
            f"{answering.named} speaks TLS and requires a client certificate "
            f"({_one_line(reason)}): give one with --cert (and its key with --key)"
        )
    if not said.startswith(_TLS_ALERTS) and not (
        parts.hostname
        and not _proxied(answering.url)
        and _speaks_tls(parts.hostname, port, deadline)
    ):
        return None
    may = (
        "require a client certificate (give one with --cert and --key)"
        if cert is None
        else f"have refused the client certificate given in --cert {_one_line(cert)}"
    )
    return _TLSFailed(
        f"{answering.named} speaks TLS, but ended the exchange ({_one_line(reason)}): it may "
        f"{may}, or take no TLS version or cipher that laios status offers"
    )


class _Answering:
    """The URL whose answer failed, and how a message names it: the URL asked, or after a
    redirect the redirect's target (without the user and password it may carry), named with
    the URL that redirected there."""

    def __init__(self, target: str, followed: str | None) -> None:
        #: Whether the URL is a redirect's target.
        self.redirected = followed is not None
        #: The URL, without credentials.
        self.url = target if followed is None else without_credentials(followed)
        #: The URL as shown, cleaned and cut (see :func:`_url_named`).
        self.shown = _url_named(self.url)
        #: How a message names it.
        self.named = (
            self.shown
            if followed is None
            else f"{self.shown}, where a redirect from {_url_named(target)} led,"
        )
        #: Its host (``None`` when it names none).
        self.hostname = urlsplit(self.url).hostname
        #: Where the user gave it, for advice to change it there.
        self.given_in = "the redirect's Location" if self.redirected else "--url"

    def with_scheme(self, scheme: str) -> str:
        """The URL as shown, with ``scheme`` for its own."""
        return urlunsplit((scheme, *urlsplit(self.shown)[1:]))


#: The endpoint's routes other than ``/status``: a ``--url`` ending in one names the endpoint.
_OTHER_ROUTES = ("/metrics", "/healthz")


def status_url(url: str) -> str:
    """Return the ``/status`` URL for a base URL (``host:port`` alone is taken as http).

    The URL of another route of the endpoint (``/metrics``, as in a Prometheus scrape
    configuration, or ``/healthz``) is taken for the endpoint's: its ``/status`` is returned.

    Example:
        >>> status_url("127.0.0.1:8489")
        'http://127.0.0.1:8489/status'
        >>> status_url("http://10.0.0.7:8489/metrics")
        'http://10.0.0.7:8489/status'
    """
    text = url.strip()
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    path = parts.path.rstrip("/")
    for route in _OTHER_ROUTES:
        if path.endswith(route):
            path = path.removesuffix(route)
            break
    if not path.endswith("/status"):
        path += "/status"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


#: Longest error detail quoted from a failed request (it may hold what the server sent).
_MAX_REASON = 200


def _brackets_hint(url: str) -> str:
    """``"; an IPv6 address goes in brackets ..."`` when ``url``'s host and port hold more
    than one colon and no bracket (an IPv6 address written bare, whose port cannot be told
    from it); ``""`` otherwise."""
    text = url.strip()
    if "://" not in text:
        text = "http://" + text
    try:
        netloc = urlsplit(text).netloc
    except ValueError:
        return ""
    host_port = netloc.rpartition("@")[2]
    if host_port.count(":") < 2 or "[" in host_port:
        return ""
    return f"; an IPv6 address goes in brackets, as in [::1]:{_DEFAULT_PORT}"


#: The most columns a URL given takes in a message (one of 100,000 characters was quoted whole).
_MAX_URL = 200


def _url_named(url: str) -> str:
    """``url`` as a message names it: printable (see :func:`_clean`), cut to 200 columns."""
    return _clean(url, _MAX_URL)


def _one_line(text: object) -> str:
    # The reason may quote the server's answer (a malformed status line): no escape sequences
    # for the terminal, no screenful of it.
    return _clean(" ".join(str(text).split()), _MAX_REASON)


class _DeadlinePassed(TimeoutError):
    """The time allowed for the whole request is over."""


class _Deadline:
    """The moment by which the whole request (connect, headers and body) must be done."""

    def __init__(self, seconds: float) -> None:
        self._end = monotonic() + seconds
        #: Whether a TCP connection was made (something listens there).
        self.connected = False

    @property
    def passed(self) -> bool:
        """Whether the deadline is over."""
        return monotonic() >= self._end

    def remaining(self) -> float:
        """Return the seconds left; raise :class:`_DeadlinePassed` when none are."""
        left = self._end - monotonic()
        if left <= 0:
            raise _DeadlinePassed("timed out")
        return min(left, _LONGEST_WAIT)

    def connect(
        self,
        address: tuple[str, int],
        timeout: float | None = None,
        source_address: tuple[str, int] | None = None,
    ) -> socket.socket:
        """Open a TCP connection, trying each address of the host with the time that is left.

        Same arguments as :func:`socket.create_connection`; ``timeout`` is ignored.
        """
        host, port = address
        error: OSError = OSError(f"no address found for {host}")
        for family, kind, proto, _, sockaddr in self._addresses(host, port):
            sock = socket.socket(family, kind, proto)
            try:
                sock.settimeout(self.remaining())
                if source_address:
                    sock.bind(source_address)
                sock.connect(sockaddr)
            except OSError as exc:
                sock.close()
                error = exc
                continue
            self.connected = True
            return sock
        raise error

    def _addresses(self, host: str, port: int) -> list[Any]:
        """``getaddrinfo`` for a TCP connection to ``host``, given up on at the deadline.

        A lookup cannot be interrupted, and one whose resolver does not answer takes as long
        as the system's resolver settings say (tens of seconds): it runs in a daemon thread,
        left to finish on its own when the deadline passes.
        """
        found: list[Any] = []
        failed: list[Exception] = []  # (OSError; UnicodeError for a name IDNA refuses)
        done = threading.Event()

        def look_up() -> None:
            try:
                found.extend(socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM))
            except Exception as exc:
                failed.append(exc)
            finally:
                done.set()

        threading.Thread(target=look_up, name="laios-status-lookup", daemon=True).start()
        while not done.wait(self.remaining()):  # (remaining() raises once the time is over)
            pass
        if failed:
            raise failed[0]
        return found


class _DeadlineReader(io.RawIOBase):
    """Reads from a socket, each read waiting only for the time left before the deadline."""

    def __init__(self, raw: io.RawIOBase, sock: socket.socket, deadline: _Deadline) -> None:
        super().__init__()
        self._raw = raw
        self._sock = sock
        self._deadline = deadline

    def readable(self) -> bool:
        """Return True: this is a reading stream."""
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int | None:
        """Read into ``buffer``; raise a TimeoutError once the deadline is over."""
        self._sock.settimeout(self._deadline.remaining())
        return self._raw.readinto(buffer)

    def fileno(self) -> int:
        """Return the socket's file descriptor."""
        return self._raw.fileno()

    def close(self) -> None:
        """Close the underlying socket stream."""
        if not self.closed:
            self._raw.close()
        super().close()


def _response_class(deadline: _Deadline) -> type[http.client.HTTPResponse]:
    """Return an HTTPResponse class whose reads (status line, headers, body) end by ``deadline``."""

    class DeadlineResponse(http.client.HTTPResponse):
        def __init__(
            self,
            sock: socket.socket,
            debuglevel: int = 0,
            method: str | None = None,
            url: str | None = None,
        ) -> None:
            super().__init__(sock, debuglevel, method, url)
            self.fp = io.BufferedReader(_DeadlineReader(self.fp.detach(), sock, deadline))

    return DeadlineResponse


def _in_zone(host: str) -> tuple[str, str]:
    """The host to connect to for ``host`` (an IPv6 address with its zone id, ``fe80::1%eth0``,
    has it as the index of its interface: ``getaddrinfo`` takes a name for a link-local address
    only), and the name a ``Host`` header and a TLS certificate's check give it: the address
    alone (RFC 6874: the zone id means something on this machine only). Any other host: itself
    twice.

    Raises:
        OSError: When the zone id names no network interface of this machine.
        ValueError: When it holds a NUL.
    """
    address, percent, zone = host.partition("%")
    if not percent or ":" not in address:  # (a % of a host name: looked up as it is)
        return host, host
    if not (zone.isascii() and zone.isdigit()):
        zone = str(socket.if_nametoindex(zone))
    return f"{address}%{zone}", address


def _zone_connect(connection: http.client.HTTPConnection, deadline: _Deadline) -> Any:
    """The function by which ``connection`` connects within ``deadline`` (in the place of
    :func:`socket.create_connection`), through the interface of the zone id its host may have
    (see :func:`_in_zone`), which its host, named by the ``Host`` header and a TLS
    certificate's check, then is without."""
    scoped, connection.host = _in_zone(connection.host)
    if scoped == connection.host:
        return deadline.connect

    def connect(
        where: tuple[str, int],
        timeout: float | None = None,
        source_address: tuple[str, int] | None = None,
    ) -> socket.socket:
        return deadline.connect((scoped, where[1]), timeout, source_address)

    return connect


def _without_zone(host: str) -> str:
    """A ``Host`` header's value (``[fe80::1%eth0]:8489``) without the zone id of its IPv6
    address (``[fe80::1]:8489``)."""
    address, percent, rest = host.partition("%")
    if not percent or not address.startswith("["):
        return host
    return address + rest[rest.find("]") :] if "]" in rest else host


class _DeadlineHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection that connects and reads its answer within one deadline."""

    def __init__(self, host: str, /, *, deadline: _Deadline, **kwargs: Any) -> None:
        super().__init__(host, **kwargs)
        self.response_class = _response_class(deadline)
        self._create_connection = _zone_connect(self, deadline)

    def putheader(self, header: str | bytes, *values: Any) -> None:
        """Send a header (``Host`` without a zone id)."""
        if header == "Host":
            values = tuple(_without_zone(v) if isinstance(v, str) else v for v in values)
        super().putheader(header, *values)


class _DeadlineHTTPSConnection(_DeadlineHTTPConnection, http.client.HTTPSConnection):
    """An HTTPS connection that connects and reads its answer within one deadline (its
    connecting, reading and ``Host`` header as :class:`_DeadlineHTTPConnection`'s).

    The TLS handshake, done by the socket's own deadline, gets the time that was left when the
    TCP connection was started.
    """


class _DeadlineHTTPHandler(urllib.request.HTTPHandler):
    """Opens http URLs with :class:`_DeadlineHTTPConnection`."""

    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self._deadline = deadline

    def _connection(self, host: str, /, **kwargs: Any) -> http.client.HTTPConnection:
        return _DeadlineHTTPConnection(host, deadline=self._deadline, **kwargs)

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        """Open ``req`` within the deadline."""
        return self.do_open(self._connection, req)


class _DeadlineHTTPSHandler(urllib.request.HTTPSHandler):
    """Opens https URLs with :class:`_DeadlineHTTPSConnection` (with ``context``, or else
    ``http.client``'s default one)."""

    def __init__(self, deadline: _Deadline, context: ssl.SSLContext | None = None) -> None:
        super().__init__(context=context)
        self._deadline = deadline
        self._tls = context

    def _connection(self, host: str, /, **kwargs: Any) -> http.client.HTTPConnection:
        return _DeadlineHTTPSConnection(host, deadline=self._deadline, **kwargs)

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        """Open ``req`` within the deadline."""
        return self.do_open(self._connection, req, context=self._tls)


class _CutShort(http.client.HTTPException):
    """The connection closed before the whole body came (``read`` bytes of it, ``left`` more
    announced)."""

    def __init__(self, read: int, left: int) -> None:
        super().__init__(read, left)
        self.read = read
        self.left = left


def _read_body(response: http.client.HTTPResponse) -> bytes:
    """Read the body in chunks, stopping once it is longer than ``_MAX_BODY``.

    Raises:
        _CutShort: The connection closed before the end of the body its length, or its
            chunk, announced (``http.client`` returns what came for the one).
    """
    chunks: list[bytes] = []
    size = 0
    while size <= _MAX_BODY:
        try:
            chunk = response.read(_CHUNK)
        except http.client.IncompleteRead as exc:
            # (a chunk's own, cut short, is the one it was raised from, or during)
            inner = exc.__cause__ or exc.__context__
            cut = inner if isinstance(inner, http.client.IncompleteRead) else exc
            if cut.expected is None:  # (a chunk size that is not one: no HTTP body)
                raise
            came = len(exc.partial) + (len(cut.partial) if cut is not exc else 0)
            raise _CutShort(size + came, cut.expected) from None
        if not chunk:
            if response.length:  # (the rest its Content-Length announced never came)
                raise _CutShort(size, response.length)
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _positive_seconds(name: str, value: Any) -> float:
    """``value`` as a float of seconds; ``ValueError`` naming ``name`` unless it is a positive,
    finite number (a bool is not one, nor an int too large for a float)."""
    seconds, shown = math.nan, ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            seconds = float(value)
        except OverflowError:  # an int beyond any float: no finite number of seconds
            shown = "an int too large for a float"
    if not 0 < seconds < math.inf:
        raise ValueError(
            f"{name} must be a finite positive number of seconds, not {shown or _short(value)}"
        )
    return seconds


#: What a bearer token sent may hold: visible ASCII characters, which a header carries as they
#: are (no white space, no control character).
_TOKEN_CHARACTERS = re.compile(r"[\x21-\x7e]+")
#: Why a user and password in the URL and a bearer token are refused together.
_TWO_AUTHORIZATIONS = (
    "a user and password in the URL and a bearer token cannot both be sent (one "
    "Authorization header carries either): give one of them"
)


def _url_user(parts: SplitResult) -> tuple[str, str | None] | tuple[None, None]:
    """The user and password of a URL (not decoded), ``(None, None)`` when it has none: no
    user information, or an empty one (``http://@host``, ``http://:@host``), which carries
    no credentials (as requests and browsers read it).

    Raises:
        ValueError: When the URL cannot be read (a malformed IPv6 host).
    """
    user, password = parts.username, parts.password
    if user is None or (not user and not password):
        return None, None
    return user, password


def _check_bearer_token(token: Any) -> None:
    """Raise ``ValueError`` (never showing the token) unless ``token`` is a string an
    ``Authorization`` header can carry after ``Bearer``."""
    if not isinstance(token, str):
        raise ValueError(f"bearer_token must be a str, not {type(token).__name__}")
    if not token:
        raise ValueError("bearer_token is empty")
    if _TOKEN_CHARACTERS.fullmatch(token) is None:
        raise ValueError(
            "bearer_token holds a character an HTTP header cannot carry (only visible ASCII "
            "characters, no white space)"
        )


#: The most bytes read of a file ``--bearer-token-file`` names: far more than any token.
_MAX_TOKEN_FILE = 64 * 1024


def _read_bearer_token(path: str) -> str:
    """The token in the file ``path``, white space around it stripped; ``ValueError`` naming
    the option and the file (never the token) when it cannot be read or sent."""
    shown = _one_line(path)
    data = _read_option_file(
        "--bearer-token-file",
        path,
        _MAX_TOKEN_FILE,
        f"{_MAX_TOKEN_FILE >> 10} KiB: it holds no token (is it the file you meant?)",
    )
    # (utf-8-sig: a byte order mark, as some Windows editors write, is not part of a token)
    token = data.decode("utf-8-sig", errors="replace").strip()
    if not token:
        raise ValueError(f"--bearer-token-file {shown} is empty: it must hold the token")
    if len(token.splitlines()) > 1:
        raise ValueError(
            f"--bearer-token-file {shown} holds more than one line: it must hold one token"
        )
    if _TOKEN_CHARACTERS.fullmatch(token) is None:
        raise ValueError(
            f"--bearer-token-file {shown} holds a character an HTTP header cannot carry (a "
            "token is sent as it is: visible ASCII characters only, no white space)"
        )
    return token


def _short(value: Any) -> str:
    """``repr(value)``, at most 80 characters (never raises)."""
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 80 else text[:79] + "…"


def _origin(url: str) -> tuple[str, str, int | None] | None:
    """The scheme, host and port of ``url`` (the scheme's default port when it names none);
    ``None`` when its port is not one ``urlsplit`` reads: ``http.client`` reads more
    (``+8080`` and ``8_080`` are port 8080 to it), so such a URL is never taken for one of
    the same port."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        return None
    default = {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port if port is not None else default


def _same_origin(url: str, other: str) -> bool:
    """Whether ``url`` and ``other`` name the same scheme, host and port (both readable)."""
    origin = _origin(url)
    return origin is not None and origin == _origin(other)


def _connectable(host: str) -> bool:
    """Whether ``host`` (a request's host and port, as urllib hands it on) names a host and
    port a connection can be made to, read as ``http.client`` reads it (nothing is
    connected): not with a port that is no number (``8489x``) or a space in the host, which
    ``http.client`` refuses, nor with a port past 65535, which the system's look-up would
    take modulo 65536 (``73625`` is port 8089)."""
    try:
        port = http.client.HTTPConnection(host).port
    except http.client.InvalidURL:
        return False
    return 0 <= port <= 65535


class _Redirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects to http(s) URLs only (another scheme is an answer that is not a
    status), and sends the user and password of ``--url`` again to a redirect to the same
    scheme, host and port, never to another."""

    #: Why the last redirect was not followed (``None``: it was, or none came).
    unfollowed: str | None

    def http_error_302(
        self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any
    ) -> Any:
        """Follow the redirect; ``None`` (the redirect is the answer) when its ``Location`` is
        no URL (``http://[::1``), which urllib would raise as a ``ValueError``, or when it has
        none. Why one is not followed is kept in :attr:`unfollowed`."""
        if "location" not in headers and "uri" not in headers:
            self.unfollowed = "it names no Location to go to"
            return None
        try:
            return super().http_error_302(req, fp, code, msg, headers)
        except ValueError:
            self.unfollowed = "its Location is no URL"
            return None
        except urllib.error.HTTPError as exc:
            if str(exc.msg).startswith(self.inf_msg):  # (urllib's words for a loop)
                self.unfollowed = (
                    f"the redirects went round in a loop, or more than {self.max_redirections} "
                    "followed one another"
                )
            raise

    #: Every redirect goes through the method above. A permanent one (to https, as proxies
    #: send it) is followed as the others are: Python 3.10's urllib does not follow a 308.
    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302

    def __init__(self, target: str, authorization: str | None) -> None:
        super().__init__()
        self._target = target
        self._authorization = authorization
        #: The URL of the last redirect followed, ``None`` before any.
        self.followed: str | None = None
        self.unfollowed = None

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        """The request for ``newurl``; ``None`` (the redirect is the answer) for one that is
        not http(s), that holds a user or password, or whose host and port cannot be connected
        to (see :func:`_connectable`)."""
        parts = urlsplit(newurl)
        if parts.scheme.lower() not in ("http", "https"):
            self.unfollowed = "its Location is not an http:// or https:// URL"
            return None
        if "@" in parts.netloc:
            # urllib would take "user:password@host" for the host's name, and hand the
            # password to the name resolver. Credentials are those of --url alone; an empty
            # user and password (http://@host) are none, as they are in --url.
            if parts.username or parts.password:
                self.unfollowed = (
                    "its Location holds a user and password; laios status sends only those "
                    "given in --url"
                )
                return None
            newurl = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
        # (Python 3.10's urllib refuses a 308, which it does not know: for a GET it is a 307)
        code = 307 if code == 308 else code
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and not _connectable(new.host):
            self.unfollowed = "its Location is no URL"
            return None
        if (
            new is not None
            and self._authorization is not None
            and _same_origin(new.full_url, self._target)
        ):
            new.add_unredirected_header("Authorization", self._authorization)
        if new is not None:
            self.followed = new.full_url
        return new


#: What a URL's host cannot hold: white space, control characters and the characters a URL
#: never leaves unencoded.
_NOT_IN_A_HOST = re.compile(r'[\x00-\x20\x7f"<>\\^`{|}]')
#: What a path or query keeps as it is (RFC 3986's reserved and unreserved characters, and the
#: % of an escape already there); anything else is percent-encoded as UTF-8.
_KEPT_IN_A_PATH = "/%:@!$&'()*+,;=-._~?"


def _ascii_host(host: str) -> str:
    """A host name (not an IPv6 address) as a request names it: in its IDNA form.

    Raises:
        UnicodeError: When no request can name it (a space or a control character in it, a
            label longer than 63 characters, a byte of an argument that is not UTF-8).
    """
    if _NOT_IN_A_HOST.search(host):
        raise UnicodeError("a character a host name cannot hold")
    return host.encode("idna").decode("ascii")


def _request_url(target: str) -> str:
    """``target`` as a request can name it, in ASCII: an internationalised host name in its
    IDNA form (``xn--...``), a path or query that is not ASCII percent-encoded as UTF-8.

    Raises:
        _BadURL: When no request can name the host (a space or a control character in it, a
            label longer than 63 characters, a byte of an argument that is not UTF-8).
    """
    parts = urlsplit(target)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 address, in brackets: ASCII already, or refused by urlsplit
        netloc = parts.netloc
    else:
        try:
            ascii_host = _ascii_host(host)
        except UnicodeError as exc:
            raise _BadURL(
                f"{quoted(target)} is not a usable URL (its host {quoted(host)}: {_one_line(exc)})"
            ) from None
        netloc = ascii_host if parts.port is None else f"{ascii_host}:{parts.port}"
    try:
        path = quote(parts.path, safe=_KEPT_IN_A_PATH)
        query = quote(parts.query, safe=_KEPT_IN_A_PATH)
    except UnicodeError as exc:
        raise _BadURL(
            f"{quoted(target)} is not a usable URL (its path: {_one_line(exc)})"
        ) from None
    return urlunsplit((parts.scheme, netloc, path, query, ""))


#: The most bytes read of a certificate or key file: far more than a bundle of every CA.
_MAX_PEM_FILE = 16 * 1024 * 1024
_PEM_CERTIFICATE = "-----BEGIN CERTIFICATE-----"
_PEM_KEY = "PRIVATE KEY-----"  # (of -----BEGIN PRIVATE KEY-----, EC, RSA and ENCRYPTED ones)


class _EncryptedKey(Exception):
    """The private key is encrypted (OpenSSL asked for its password)."""


def _read_pem(option: str, path: str) -> str:
    """The text of the PEM file ``path`` given to ``option``; ``ValueError`` saying why not."""
    data = _read_option_file(
        option,
        path,
        _MAX_PEM_FILE,
        f"{_MAX_PEM_FILE >> 20} MiB: it is no PEM file of certificates or a key",
    )
    # PEM is ASCII; the text around its blocks may not be (a UTF-8 byte order mark, which
    # Windows editors write, a CA's name in a bundle's comment). OpenSSL skips it in a file,
    # and ssl refuses it in cadata: the byte order mark goes, the rest becomes "?".
    data = data.removeprefix(codecs.BOM_UTF8)
    return re.sub(rb"[^\x00-\x7f]", b"?", data).decode("ascii")


def _read_option_file(option: str, path: str, limit: int, longer: str) -> bytes:
    """The bytes of the file ``path`` given to ``option``, at most ``limit`` of them.

    Raises:
        ValueError: Naming the option and the file when it cannot be read, or when it is
            longer than ``limit`` (``longer`` says how long that is and what the file then
            is not).
    """
    if not path:  # (`--cacert "$CA"` with CA unset: open("") fails as a missing file does)
        raise ValueError(f"{option} is given an empty path, which names no file")
    try:
        with open(path, "rb") as file:
            data = file.read(limit + 1)
    except OSError as exc:
        raise ValueError(
            f"{option} {_one_line(path)} cannot be read ({_one_line(exc.strerror or exc)})"
        ) from None
    if len(data) > limit:
        raise ValueError(f"{option} {_one_line(path)} is longer than {longer}")
    return data


def _client_tls_context(
    cacert: str | None, cert: str | None, key: str | None
) -> ssl.SSLContext | None:
    """The TLS context of :func:`fetch_status` for ``cacert``, ``cert`` and ``key`` (see
    there); ``None`` when all three are ``None`` (``http.client``'s default context is used).

    Raises:
        ValueError: When a file cannot be used, naming it with the command's option for it
            (``--cacert``, ``--cert``, ``--key``) and saying why: it cannot be read, holds no
            certificate or key in PEM form, the key is encrypted or not the certificate's; or
            when ``key`` is given without ``cert``.
    """
    if key == "":  # (`--key "$KEY"` with KEY unset: said before whether --cert goes with it)
        raise ValueError("--key is given an empty path, which names no file")
    if key is not None and cert is None:
        raise ValueError(
            f"--key {_one_line(key)} is given without --cert: give the client certificate "
            "whose key it is with --cert"
        )
    if cacert is None and cert is None:
        return None
    if cacert is None:
        context = ssl.create_default_context()
    else:
        shown = _one_line(cacert)
        text = _read_pem("--cacert", cacert)
        if _PEM_CERTIFICATE not in text:
            raise ValueError(
                f"--cacert {shown} holds no certificate in PEM form ({_PEM_CERTIFICATE}): give "
                "the certificate of the CA that signed the endpoint's"
            )
        try:
            context = ssl.create_default_context(cadata=text)
        except (ssl.SSLError, ValueError) as exc:
            raise ValueError(
                f"--cacert {shown} holds a certificate that cannot be read ({_one_line(exc)})"
            ) from None
    # (as http.client sets up its own default context)
    context.set_alpn_protocols(["http/1.1"])
    if context.post_handshake_auth is not None:
        context.post_handshake_auth = True
    if cert is not None:
        _load_client_certificate(context, cert, key)
    return context


def _load_client_certificate(context: ssl.SSLContext, cert: str, key: str | None) -> None:
    """Load the client certificate of ``cert`` and its key (of ``key``, or else of ``cert``)
    into ``context``; ``ValueError`` naming the option whose file cannot be used."""
    shown = _one_line(cert)
    text = _read_pem("--cert", cert)
    if _PEM_CERTIFICATE not in text:
        raise ValueError(f"--cert {shown} holds no certificate in PEM form ({_PEM_CERTIFICATE})")
    if key is None:
        where = f"--cert {shown}"
        if _PEM_KEY not in text:
            raise ValueError(f"{where} holds no private key: give the file of its key with --key")
    else:
        where = f"--key {_one_line(key)}"
        if _PEM_KEY not in _read_pem("--key", key):
            raise ValueError(
                f"{where} holds no private key in PEM form (-----BEGIN PRIVATE KEY-----)"
            )

    def no_password() -> str:
        raise _EncryptedKey  # (never ask for it on the terminal, as OpenSSL would)

    try:
        context.load_cert_chain(cert, key, password=no_password)
    except _EncryptedKey:
        raise ValueError(
            f"{where} holds an encrypted private key: laios status takes an unencrypted one "
            "(openssl pkey -in KEY -out PLAIN-KEY writes one; keep it as private)"
        ) from None
    except (ssl.SSLError, OSError) as exc:
        if "KEY_VALUES_MISMATCH" in str(exc):
            raise ValueError(
                f"{where} holds the private key of another certificate than that of --cert {shown}"
            ) from None
        raise ValueError(
            f"{where} holds a private key that cannot be used with the certificate of --cert "
            f"{shown} ({_one_line(exc)})"
        ) from None


def fetch_status(
    url: str,
    timeout: float = 5.0,
    *,
    bearer_token: str | None = None,
    cacert: str | None = None,
    cert: str | None = None,
    key: str | None = None,
) -> dict[str, Any]:
    """Fetch and check the ``/status`` document of the endpoint at ``url``.

    Args:
        url: The endpoint's base URL (or its ``/status`` URL). A ``user:password@`` in it
            (percent-encoded) is sent as basic authentication, and left out of every message;
            an empty one (``http://@host``, ``http://:@host``) sends none.
        timeout: Seconds allowed for the whole request: connecting, and receiving the headers
            and the complete body.
        bearer_token: A token sent as ``Authorization: Bearer <token>`` (instead of a user and
            password in ``url``), and never shown.
        cacert: A file of CA certificates (PEM) that an https endpoint's certificate is
            checked against, instead of the system's (and ``SSL_CERT_FILE``'s).
        cert: A file holding a client certificate (PEM), offered to an https endpoint that
            asks for one; with its private key, unless ``key`` names the key's file.
        key: The file of ``cert``'s private key (PEM, not encrypted).

    The files are read at every call, so a renewed certificate is used from the next one.

    Returns:
        The decoded JSON document.

    Raises:
        StatusUnavailable: When nothing answers, the complete answer does not arrive within
            ``timeout`` seconds, the answer is not HTTP 200, or the body is longer than 16 MiB
            or not a ``/status`` document.
        ValueError: When ``timeout`` is not a positive, finite number of seconds, or
            ``bearer_token`` is not one an HTTP header can carry, or is given with a user and
            password in ``url`` (one ``Authorization`` header carries either), or a file of
            ``cacert``, ``cert`` or ``key`` cannot be used (the message names it, with the
            command's option for it, and says why).
    """
    timeout = _positive_seconds("timeout", timeout)
    if bearer_token is not None:
        _check_bearer_token(bearer_token)
    context = _client_tls_context(cacert, cert, key)
    shown = credentials_past_host(url)
    if shown is not None:  # (no part of a user or password is shown, nor taken for a host)
        raise _BadURL(f"{quoted(shown)} {CREDENTIALS_PAST_HOST}")
    try:
        parts = urlsplit(status_url(url))
        _ = parts.port  # (reading the port parses it)
        user, password = _url_user(parts)
    except ValueError as exc:  # a malformed IPv6 host, a port that is not 0-65535
        shown = without_credentials(url)
        raise _BadURL(
            f"{quoted(shown)} is not a usable URL ({_one_line(exc)}{_brackets_hint(url)})"
        ) from None
    # Credentials in the URL are sent as basic authentication, and never shown.
    target = without_credentials(status_url(url))
    target_named = _url_named(target)
    parts = urlsplit(target)
    if parts.scheme not in ("http", "https"):
        raise _BadURL(f"{target_named} is not an http(s) URL")
    if not parts.hostname:
        raise _BadURL(f"{target_named} names no host")
    if parts.port == 0:
        raise _BadURL(
            f"{target_named} names port 0, which nothing can be reached at (a server given port 0 "
            "listens on a port the system picks: give that port)"
        )
    address, _, zone = unquote(parts.hostname).partition("%")
    zone = zone if ":" in address else ""  # (an IPv6 address's zone id)
    if zone:
        try:
            _in_zone(f"{address}%{zone}")
        except (OSError, ValueError):
            raise _BadURL(
                f"{quoted(target)} is not a usable URL (its zone id "
                f"{quoted(zone)} names no network interface of this machine)"
            ) from None
    asked = _request_url(target)
    deadline = _Deadline(timeout)
    handlers: list[urllib.request.BaseHandler] = [
        _DeadlineHTTPHandler(deadline),
        _DeadlineHTTPSHandler(deadline, context),
    ]
    # A status endpoint on this machine must not be fetched through an HTTP proxy.
    # Nor an IPv6 address with a zone id, which means something on this machine only.
    if parts.hostname in _LOOPBACK or zone:
        handlers.append(urllib.request.ProxyHandler({}))
    authorization = None
    if bearer_token is not None:
        if user is not None:
            raise ValueError(_TWO_AUTHORIZATIONS)
        authorization = f"Bearer {bearer_token}"
    if user is not None:
        try:
            pair = (
                f"{unquote(user, errors='strict')}:{unquote(password or '', errors='strict')}"
            ).encode()
        except UnicodeError:  # (a byte of the argument, or a %XX, that is not UTF-8)
            raise _BadURL(
                f"{quoted(target)} is not a usable URL (its user or password holds a "
                "byte that is not UTF-8: write them in UTF-8, percent-encoded)"
            ) from None
        authorization = "Basic " + base64.b64encode(pair).decode()
    redirects = _Redirects(asked, authorization)
    handlers.append(redirects)
    opener = urllib.request.build_opener(*handlers)
    request = urllib.request.Request(asked, headers={"Accept": "application/json"})
    if authorization is not None:
        # Unredirected: a redirect to another host must not take the password along
        # (_Redirects gives it again to a redirect to the same scheme, host and port).
        request.add_unredirected_header("Authorization", authorization)
    answered = False  # (whether a status line and headers came: a body may fail after them)
    try:
        with opener.open(request, timeout=timeout) as response:
            answered = True
            content_type = response.headers.get("Content-Type")
            raw = _read_body(response)
    except urllib.error.HTTPError as exc:
        routes = _listed_routes(exc) if exc.code == 404 else None
        busy = _busy_reason(exc) if exc.code == 503 else None
        schemes = _challenged_schemes(exc.headers) if exc.code == 401 else []
        exc.close()
        # (after a redirect, the code is that of the redirect's target: it is the URL named)
        answering = _Answering(target, redirects.followed)
        named = answering.named
        if routes is not None and "/metrics" in routes and "/status" not in routes:
            raise _StatusOff(
                f"{named} answered HTTP 404: the laios endpoint there serves no /status (it "
                'was started with status="off"); its /metrics has the counts'
            ) from None
        if exc.code == 401:
            given = "token" if bearer_token is not None else None if user is None else "password"
            raise _credentials_needed(answering, given, asked, schemes) from None
        if exc.code == 421:
            host = _clean(answering.hostname, 200)
            raise _Misdirected(
                f"{named} answered HTTP 421: an endpoint listening on loopback only answers "
                f"requests for localhost or an IP address, not for {host}; use localhost or "
                f"127.0.0.1 in {answering.given_in} (or name {host} in the server's allowed_hosts=)"
            ) from None
        tls = _tls_instead(answering, deadline) if exc.code == 400 else None
        if tls is not None:
            raise tls from None
        if busy is not None:
            raise _HTTPFailure(
                f"{named} answered HTTP 503: the laios endpoint there is busy ({busy}); try "
                "again in a moment (--watch tries again at every interval)"
            ) from None
        raise _http_error(answering, exc.code, routes, redirects.unfollowed) from None
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        # (urllib wraps what failed in a URLError's reason; an ssl.SSLError raised while the
        # answer is read is not wrapped, and its own reason is OpenSSL's word for it)
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        if deadline.passed or isinstance(reason, TimeoutError):
            if deadline.connected:  # (something listens there: no advice to start one)
                raise _NoAnswerInTime(
                    f"no complete answer from {target_named} within {timeout:g} s, though it "
                    "accepted the connection (a busy process may need a larger --timeout)"
                ) from None
            raise StatusUnavailable(
                f"no complete answer from {target_named} within {timeout:g} s "
                "(a busy process may need a larger --timeout)"
            ) from None
        # (after a redirect, the checks below test and name the redirect's target)
        answering = _Answering(target, redirects.followed)
        if isinstance(reason, ssl.SSLCertVerificationError):
            if reason.verify_code in _NAME_MISMATCH:
                host = _clean(answering.hostname, 200)
                raise _TLSFailed(
                    f"{answering.named} answered with a TLS certificate that was not issued "
                    f"for {host} ({_one_line(reason.verify_message or reason)}); use in "
                    f"{answering.given_in} a name it was issued for, or have it issued for "
                    f"{host} too"
                ) from None
            raise _TLSFailed(
                f"{answering.named} answered with a TLS certificate that could not be verified "
                f"({_one_line(reason.verify_message or reason)}); {_trusting_advice(cacert)}"
            ) from None
        if isinstance(reason, ssl.SSLError):
            refusal = _tls_refusal(answering, reason, deadline, cert)
            if refusal is not None:
                raise refusal from None
            raise _TLSFailed(
                f"the TLS handshake with {answering.named} failed ({_one_line(reason)}); if "
                f"the endpoint serves plain HTTP, use {answering.with_scheme('http')}"
            ) from None
        if isinstance(reason, (ConnectionResetError, BrokenPipeError, http.client.HTTPException)):
            # (the connection was made, and closed or answered without HTTP: TLS, perhaps)
            tls = _tls_instead(answering, deadline)
            if tls is not None:
                raise tls from None
        if isinstance(reason, _CutShort):
            raise _AnswerCutShort(
                f"{answering.named} answered, but its answer was cut short: the connection "
                f"closed after {reason.read} bytes of its body, {reason.left} more were "
                "announced (the process may have stopped or restarted while it answered, or "
                "something between cut the connection); try again"
            ) from None
        if isinstance(reason, http.client.HTTPException) and not isinstance(
            reason,
            http.client.RemoteDisconnected,  # (closed without a word: nothing answered)
        ):
            # A status line, a header or a body that is not HTTP: something does answer there.
            raise _NotAStatus(
                f"{answering.named} answered, but not with HTTP that laios status can read "
                f"({_one_line(reason)}): something else answers at that address; check the "
                "host, port and path of the URL"
            ) from None
        if (
            isinstance(reason, _CLOSED)
            and deadline.connected
            and not answered
            and not answering.redirected
        ):
            # (as a container's published port does when the endpoint behind it listens on
            # its container's loopback address only: starting an endpoint is no advice)
            raise _ClosedUnanswered(
                f"{target_named} accepted the connection, then closed it without answering: "
                "something listens there, such as a container's published port or kubectl "
                "port-forward, with no endpoint answering behind it (one listening on its "
                "container's loopback address only is out of a published port's reach: start "
                'it there with start_http_server(PORT, host="0.0.0.0")), or a process is '
                "stopping"
            ) from None
        if answering.redirected:
            raise _RedirectedNowhere(
                f"nothing answered at {answering.shown}, where a redirect from {target_named} led "
                f"({_one_line(reason)})"
            ) from None
        raise StatusUnavailable(
            f"nothing answered at {target_named} ({_one_line(reason)})"
        ) from None
    if len(raw) > _MAX_BODY:
        raise _TooLarge(
            f"{target_named} answered with more than {_MAX_BODY >> 20} MiB, more than laios status "
            "reads (a process with very many tools, stores or running tasks; its /metrics "
            "has the same counts)"
        )
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nested too deeply
        document = None
    if (
        not isinstance(document, dict)
        or not isinstance(document.get("tools"), list)
        or not isinstance(document.get("running"), list)
    ):
        named = _Answering(target, redirects.followed).named
        raise _NotAStatus(
            f"{named} did not answer with a laios status document (it answered with "
            f"{_what_answered(content_type, raw)}): something else answers at that address; "
            "check the host, port and path of the URL"
        )
    return document


#: A quoted string of a header (an auth-param's value: it may hold commas and scheme names).
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')


def _challenged_schemes(headers: Any) -> list[str]:
    """The authentication schemes the ``WWW-Authenticate`` headers of an answer offer, as
    written (``["Basic", "Bearer"]``), each once; empty when it has none. Each challenge is a scheme
    followed by its parameters (``Basic realm="laios", Bearer realm="laios"``): a part between
    commas whose first word holds no ``=`` starts one."""
    found: list[str] = []
    get_all = getattr(headers, "get_all", None)  # (an HTTPError may come without headers)
    for header in (get_all("WWW-Authenticate") if get_all else None) or []:
        for part in _QUOTED.sub('""', str(header)).split(","):
            words = part.split()
            new = words and "=" not in words[0]
            if new and words[0].lower() not in (scheme.lower() for scheme in found):
                found.append(words[0])
    return found


def _credentials_needed(
    answering: _Answering, given: str | None, asked: str, schemes: Sequence[str] = ()
) -> _CredentialsNeeded:
    """The error for a 401 from ``answering``, given (``given``) a user and password in the
    URL (``"password"``), a bearer token (``"token"``) or neither (``None``): the ones given
    were refused, or none were sent (none given, or a redirect led to another scheme, host or
    port than the URL asked, to which they are never sent), with how to give what the
    challenges it sent (``schemes``; none: a user and password) ask for: a user and password
    in the URL, a bearer token with ``--bearer-token-file``."""
    offered = {scheme.lower() for scheme in schemes}
    said = f"{answering.named} answered HTTP 401: it"
    if offered and not offered & {"basic", "bearer"}:
        return _CredentialsNeeded(
            f"{said} asks for {_clean(', '.join(schemes), 60)} authentication, not a user and "
            "password or a bearer token, the only credentials laios status sends"
        )
    takes_password = not offered or "basic" in offered
    takes_token = not offered or "bearer" in offered
    parts = urlsplit(answering.shown)
    base = parts.path.removesuffix("/status")  # (the mount prefix, if any)
    netloc = parts.netloc.rpartition("@")[2]
    in_the_url = f"{parts.scheme}://USER:PASSWORD@{netloc}{base}"
    sent = given is not None and (not answering.redirected or _same_origin(answering.url, asked))
    if sent and given == "token":
        if takes_token:
            return _CredentialsNeeded(
                f"{said} refused the bearer token given (--bearer-token-file)"
            )
        return _CredentialsNeeded(
            f"{said} asks for a user and password, not a bearer token; give them in the URL "
            f"instead of --bearer-token-file, percent-encoded: {in_the_url}"
        )
    if sent:
        if takes_password:
            return _CredentialsNeeded(f"{said} refused the user and password given in the URL")
        return _CredentialsNeeded(
            f"{said} asks for a bearer token, not a user and password; give it in a file with "
            "--bearer-token-file, instead of the user and password in the URL"
        )
    if given == "token":
        return _CredentialsNeeded(
            f"{said} asks for credentials (the bearer token given is not sent to another "
            "scheme, host or port than the URL's); to send it there, give "
            f"{parts.scheme}://{netloc}{base} in --url"
        )
    why = (
        " (the ones given are not sent to another scheme, host or port than the URL's)"
        if given
        else ""
    )
    if not takes_password:
        return _CredentialsNeeded(
            f"{said} asks for a bearer token; give it in a file with --bearer-token-file"
        )
    token = ", or a bearer token with --bearer-token-file" if "bearer" in offered else ""
    return _CredentialsNeeded(
        f"{said} asks for a user and password{why}; give them in the URL, percent-encoded: "
        f"{in_the_url}{token}"
    )


#: The codes a proxy or gateway answers with when no server answers behind it.
_GATEWAY_CODES = frozenset({502, 503, 504})


def _http_error(
    answering: _Answering, code: int, routes: list[str] | None, unfollowed: str | None = None
) -> StatusUnavailable:
    """The error for an HTTP error ``code`` from ``answering`` (none of those with a message
    of their own), with advice that fits the code: to start an endpoint only after a proxy's
    502, 503 or 504 (no server behind it), to check the URL when something else answers
    there (or a laios endpoint, listing its ``routes``, at another path), or that the server
    there failed."""
    said = f"{answering.named} answered HTTP {code}, not a laios status"
    if routes is not None and "/status" in routes:
        served = _clean(", ".join(routes), _MAX_REASON)
        return _HTTPFailure(
            f"{said}: a laios endpoint answers at that address, but not at that path (it "
            f"serves {served}); check the path of the URL"
        )
    if code in _GATEWAY_CODES:
        try:
            port = urlsplit(answering.url).port
        except ValueError:
            port = None
        return _NoServerBehind(
            f"{said} (a proxy or gateway answers so when no server answers behind it)",
            port=port,
            redirected=answering.redirected,
        )
    if code >= 500:
        return _HTTPFailure(
            f"{said}: the server there failed to answer the request (its log says why); if "
            "it is not the laios endpoint, check the host, port and path of the URL"
        )
    if 300 <= code < 400:
        why = unfollowed or "laios status follows 301, 302, 303, 307 and 308 only"
        return _HTTPFailure(
            f"{said}: a redirect that laios status did not follow ({why}); check the host, "
            "port and path of the URL"
        )
    return _HTTPFailure(
        f"{said}: something else answers at that address; check the host, port and path of the URL"
    )


#: Most characters of an answer's content type and first bytes quoted in a message.
_MAX_QUOTED = 60


def _what_answered(content_type: str | None, body: bytes) -> str:
    """What an answer that is no status document was, for the user to tell what answers:
    its content type and the start of its body (white space as one space, a byte that is not
    UTF-8 as ``\\xNN``), cut short and with no control character."""
    kind = f"Content-Type {_clean(content_type, _MAX_QUOTED)}" if content_type else ""
    kind = kind or "no Content-Type"
    if not body:
        return f"{kind} and an empty body"
    start = body[: _MAX_QUOTED * 4].decode("utf-8", "backslashreplace")
    text = " ".join(start.split())
    if not text:
        return f"{kind} and {len(body)} bytes of white space"
    return f"{kind} and {len(body)} bytes: {_clean(text, _MAX_QUOTED)}"


#: Most bytes read of a 404 answer, for the routes a laios endpoint lists in it.
_MAX_NOT_FOUND = 64 * 1024


def _busy_reason(answer: urllib.error.HTTPError) -> str | None:
    """Why a laios endpoint answered 503 (``{"error": "too many connections"}``, ``too many
    requests at once``, ``too many password checks at once``: it is busy), cleaned for a
    message; ``None`` when the answer is not such a document (a proxy's own 503)."""
    try:
        document = json.loads(answer.read(_MAX_NOT_FOUND))
    except (OSError, ValueError, RecursionError, http.client.HTTPException):
        return None
    error = document.get("error") if isinstance(document, dict) else None
    if not isinstance(error, str) or not error.startswith("too many "):
        return None
    return _clean(error, _MAX_QUOTED)


def _listed_routes(answer: urllib.error.HTTPError) -> list[str] | None:
    """The routes a laios endpoint lists in its 404 answer (``{"error": "not found",
    "routes": [...]}``); ``None`` when the answer is not such a document."""
    try:
        document = json.loads(answer.read(_MAX_NOT_FOUND))
    except (OSError, ValueError, RecursionError, http.client.HTTPException):
        return None
    routes = document.get("routes") if isinstance(document, dict) else None
    if not isinstance(routes, list) or not all(isinstance(route, str) for route in routes):
        return None
    return routes


def _number(value: Any) -> float | None:
    """Return ``value`` as a float if it is a finite number of a displayable size, else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    # False for NaN and the infinities; exact (no float conversion) for huge integers.
    if not -_MAX_SHOWN <= value <= _MAX_SHOWN:
        return None
    return float(value)


def _clean(value: Any, limit: int) -> str:
    # Names and messages come from the monitored process: keep control characters (escape
    # sequences, newlines) out of the terminal and long values out of the layout. The limit
    # is in screen columns: a name in wide (CJK) characters takes no more room than another.
    return clip(printable_text(str(value)), limit)


def _name(value: Any, limit: int) -> str:
    """A name or message from the document, cleaned (see :func:`_clean`); ``-`` when it is
    missing or not a string (``None`` or a number is no name)."""
    return _clean(value, limit) if isinstance(value, str) else "-"


def _labelled(tool: dict[str, Any], limit: int) -> str:
    """The tool of a tool's row or a running task's, with the constant labels of its store
    after it (``fetch {pool=search}``), each cut to ``limit`` screen columns."""
    name = _name(tool.get("tool"), limit)
    labels = tool.get("labels")
    if not isinstance(labels, dict) or not labels:
        return name
    pairs = ",".join(f"{key}={value}" for key, value in sorted(labels.items(), key=str))
    return f"{name} {{{_clean(pairs, limit)}}}"


def progress_bar(percent: Any, width: int = 10) -> str:
    """Draw a text progress bar.

    Args:
        percent: 0 to 100 (clamped; anything that is not a finite number of at most 10**15 in
            magnitude counts as 0).
        width: Characters between the brackets.

    Returns:
        A bar such as ``[#####.....]  52%``, in whole percents with a half rounded up (12.5%
        is ``13%``, as on the live page); a task not done is never said to be (99.5% is
        ``99%``, beside a bar not full).
    """
    value = min(max(_number(percent) or 0.0, 0.0), 100.0)
    filled = int(value / 100.0 * width)
    # A half is rounded up, as the live page's Math.round does (Python's round() would make
    # 12.5 "12%" here and "13%" there); value - whole is exact, so 0.49999999999999994 is 0.
    whole = math.floor(value)
    shown = min(whole + (value - whole >= 0.5), 99) if value < 100.0 else 100
    return f"[{'#' * filled}{'.' * (width - filled)}] {shown:3d}%"


def format_seconds(seconds: Any) -> str:
    """Format a duration for a narrow column: ``850us``, ``12ms``, ``1.25s``, ``2m05s``.

    Returns ``-`` when ``seconds`` is not a finite number of at most 10**15 in magnitude (an
    unknown percentile, or a malformed value).
    """
    value = _number(seconds)
    if value is None:
        return "-"
    value = value if value > 0.0 else 0.0  # (-0.0 too: no "-0us")
    # A unit is kept only while the value, rounded as written, stays below the next one:
    # 0.9996 s is 1.00s, not 1000ms; 59.996 s is 1m00s, not 60.00s.
    if round(value * 1e6) < 1000:
        return f"{value * 1e6:.0f}us"
    if round(value * 1000) < 1000:
        return f"{value * 1000:.0f}ms"
    if round(value, 2) < 60.0:
        return f"{value:.2f}s"
    if value < 3600.0:
        minutes, rest = divmod(max(int(value), 60), 60)
        return f"{minutes}m{rest:02d}s"
    hours, rest = divmod(int(value), 3600)
    return f"{hours}h{rest // 60:02d}m"


#: Running-task columns given up, in order, when a width-limited view is too narrow:
#: (column, n) narrows the column to n characters, (column, 0) leaves it out.
_RUNNING_STEPS = ((5, 12), (1, 14), (4, 0), (5, 0), (0, 0), (3, 0), (1, 8))
_RUNNING_HEADER = ("TASK", "TOOL", "PROGRESS", "ELAPSED", "STATE", "MESSAGE")
#: Tool-table columns given up, in order (REJECT, CANCEL, then narrower names, OK, P50, ...).
_TOOL_STEPS = ((6, 0), (5, 0), (0, 14), (2, 0), (8, 0), (4, 0), (3, 0), (0, 8), (7, 0))
_TOOL_HEADER = (
    "TOOL",
    "TOTAL",
    "OK",
    "ERROR",
    "TIMEOUT",
    "CANCEL",
    "REJECT",
    "ERR%",
    "P50",
    "P95",
)
#: Characters of a task id shown in a width-limited view (enough to tell tasks apart).
_SHORT_ID = 8
#: Screen columns of a task id, tool name or labels shown whole (a view without a width): the
#: 256 characters ``/status`` keeps of them (``MAX_STATUS_TEXT``), in wide characters too.
_WHOLE = 512


def render_status(document: dict[str, Any], *, url: str | None = None) -> str:
    """Render a ``/status`` document as terminal text.

    Args:
        document: What ``/status`` returned (see :func:`fetch_status`).
        url: Shown in the title line when given.

    Returns:
        Several lines: the running tasks with progress bars, a per-tool table and a line of
        executor gauges. Missing or malformed fields show as ``-``; so do numbers that are not
        finite or larger than 10**15 in magnitude (a progress bar counts them as 0%).
    """
    return "\n".join([_title(document, url), "", *status_lines(document)])


def _title(document: dict[str, Any], url: str | None) -> str:
    """The first line of a picture: the command, the URL asked and when the status was made."""
    title = "laios status"
    if url:
        title += f" - {_clean(url, 200)}"
    generated = document.get("generated_at")
    if isinstance(generated, str):
        if generated:
            title += f" at {_clean(generated, 40)}"
    elif generated is not None:
        title += " at -"
    return title


def _writable(text: str, stream: TextIO) -> str:
    """``text`` with each character ``stream``'s encoding cannot write replaced by a ``?`` per
    column it takes (the tables stay aligned): a name from the monitored process may be in any
    script, and an output in Latin-1, ASCII or a Windows code page would otherwise fail on it."""
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        return text.encode(encoding, QUESTION_MARKS).decode(encoding)
    except LookupError:  # (an encoding Python does not know: written as it is)
        return text


#: Lines of the status that count both tables and show the gauges on the shortest screen:
#: ``Running tasks (3)``, ``Tools: +7 more`` and ``workers: ...``.
_COUNTS = 3


def _watch_frame(
    document: dict[str, Any],
    url: str,
    problem: str,
    interval: float,
    size: os.terminal_size | None,
) -> str:
    """One picture of ``--watch``: the warning about a failed refresh if any, the status and
    how to stop; fitted to ``size`` when it is given (a terminal's): every line to its width,
    and the picture to its height less the cursor's line below it."""
    warning = f"! {problem} (retrying; showing the last answer)" if problem else ""
    footer = f"refreshing every {interval:g}s, Ctrl-C to stop"
    if size is None:
        lines = [_title(document, url), "", *status_lines(document), "", footer]
        return "\n".join([warning, *lines] if warning else lines)
    width = size.columns
    room = max(size.lines - 1, 1)  # (the cursor's line below the picture stays on screen)
    # (the reason is worth reading whole: wrapped, not cut; no warning wraps to no line)
    wrapped = textwrap.wrap(
        warning, width, subsequent_indent="  ", break_on_hyphens=False, break_long_words=False
    )
    # ... unless that leaves no room for the title, a line of the status and the footer: the
    # warning is then cut short, and left out on a terminal of one line or two.
    most = max(room - 5, 1 if room > 1 else 0)
    if len(wrapped) > most:
        wrapped = wrapped[:most]
        if wrapped:
            wrapped[-1] = clip(wrapped[-1] + "...", width)
    # Under the warning and the title: the status, then the footer, with a blank line before
    # and after the status. On a short terminal the status keeps the lines that count both
    # tables and the gauges: the blank lines go first, then the footer.
    left = room - len(wrapped) - 1
    if left >= _COUNTS + 3:
        body = status_lines(document, width=width, height=left - 3)
        below = ["", *body, "", footer]
    elif left >= _COUNTS + 1:
        below = [*status_lines(document, width=width, height=left - 1), footer]
    else:
        below = status_lines(document, width=width, height=max(left, 1))
    lines = [*wrapped, _title(document, url), *below]
    return "\n".join(clip(line, width) for line in lines[:room])


def status_lines(
    document: dict[str, Any], *, width: int | None = None, height: int | None = None
) -> list[str]:
    """Render the body of a ``/status`` document (what :func:`render_status` shows under its
    title) as lines, fitted to a screen when asked.

    Args:
        document: What ``/status`` returned.
        width: Columns available, or ``None`` for no limit. Lines are never wrapped: a table
            too wide gives up its least useful columns first (``REJECT``, ``CANCEL``, ...;
            ``STATE``, ``MESSAGE``, ...), then narrows names and messages, and a line still too
            wide is cut. Running tasks show the first 8 characters of their ids, and names
            are cut to 24 or 32 columns; without a width, ids, tool names and labels are shown
            whole.
        height: Lines available, or ``None`` for no limit. The tool table keeps its rows before
            the running tasks do; rows left out are counted on a ``+N more`` line. On a
            screen too short for that, the blank lines between the tables go first, then a
            table left one line counts its rows on it (``Tools: +7 more``).

    Returns:
        The lines, none wider than ``width`` and no more than ``height`` of them.
    """
    running = [task for task in document.get("running") or [] if isinstance(task, dict)]
    tools = [tool for tool in document.get("tools") or [] if isinstance(tool, dict)]
    total_running = _number(document.get("running_total"))
    count = max(
        int(total_running) if total_running is not None else 0,
        len(running),
        _everywhere(tools, document.get("queue_depth")),
    )
    # Ids, tools and labels whole, so that an id can be copied and two tools that differ at
    # their ends never look alike, unless the screen is too small for them.
    whole = width is None
    id_length = None if whole else _SHORT_ID
    running_rows = [
        [
            _name(task.get("task_id"), _WHOLE)[:id_length],
            _labelled(task, _WHOLE if whole else 24),
            progress_bar(task.get("progress_percent")),
            format_seconds(task.get("elapsed_seconds")),
            _name(task.get("state"), 10),
            "" if task.get("message") is None else _name(task["message"], 60),
        ]
        for task in running
    ]
    tool_rows = [_tool_row(tool, _WHOLE if whole else 32) for tool in tools]
    gauges = (
        f"workers: {_count(document.get('workers'))}   "
        f"busy workers: {_count(document.get('busy_workers'))}   "
        f"queue depth: {_count(document.get('queue_depth'))}   "
        f"abandoned threads: {_count(document.get('abandoned_threads'))}"
    )
    # Two blank lines and the gauges; then the tool table is served first, leaving the running
    # tasks their title, a "+N more" line and, on a screen big enough, a row and the header
    # (with room for three lines, the title alone, which counts them: the tool table then has
    # its title and its "+N more").
    room = None if height is None else height - 3
    gap = [""]
    if room is not None and room < 3:
        # Too few lines for both tables with blank lines between them: the blank lines go
        # first, so that each table can still count the rows it leaves out.
        gap = []
        room = height - 1 if height is not None else None
    keep = (
        0
        if room is None
        else min(_running_need(running_rows, count), 4 if room >= 12 else 2 if room >= 4 else 1)
    )
    tool_lines = _section(
        "Tools",
        _TOOL_HEADER,
        tool_rows,
        len(tool_rows),
        empty="(no task has finished yet)",
        alone=f"Tools: +{len(tool_rows)} more",
        right=set(range(1, 10)),
        steps=_TOOL_STEPS,
        width=width,
        budget=None if room is None else max(room - keep, 1),
    )
    # A reduced /status (served beyond loopback) counts the running tasks but lists none.
    unlisted = document.get("detail") == "reduced" and count > 0
    running_lines = _section(
        f"Running tasks ({count})",
        _RUNNING_HEADER,
        running_rows,
        0 if unlisted else count,
        empty="(not listed: this endpoint serves a reduced /status)" if unlisted else "(none)",
        alone=f"Running tasks ({count})",
        right={3},
        steps=_RUNNING_STEPS,
        width=width,
        budget=None if room is None else max(room - len(tool_lines), 1),
    )
    lines = [*running_lines, *gap, *tool_lines, *gap, gauges]
    if width is not None:
        lines = [clip(line, width) for line in lines]
    return lines if height is None else lines[: max(height, 0)]


def _everywhere(tools: list[dict[str, Any]], queue_depth: Any) -> int:
    """The tasks in flight and queued in every process the document counts: in multiprocess
    mode, ``running`` and ``running_total`` are those of the worker process that answered, the
    tools' ``in_flight`` and the queue depth those of every worker (elsewhere the same count).
    0 when no tool gives its ``in_flight`` (a document that does not count them so)."""
    flights = [_number(tool.get("in_flight")) for tool in tools]
    numbers = [number for number in flights if number is not None]
    if not numbers:
        return 0
    queued = _number(queue_depth)
    return int(sum(max(number, 0.0) for number in [*numbers, queued or 0.0]))


def _running_need(rows: list[list[str]], count: int) -> int:
    """Lines the running-task section takes when nothing is left out."""
    if not rows:
        return 2  # the title, and "(none)" or "+N more"
    return 2 + len(rows) + (1 if count > len(rows) else 0)


def _section(
    title: str,
    header: Sequence[str],
    rows: list[list[str]],
    count: int,
    *,
    empty: str,
    alone: str,
    right: set[int],
    steps: Sequence[tuple[int, int]],
    width: int | None,
    budget: int | None,
) -> list[str]:
    """A titled table in at most ``budget`` lines; rows left out are counted on a last line.

    ``count`` is how many rows there are in all (more than ``len(rows)`` when the document
    itself listed only some). With a budget of one line and rows left out, the section is
    ``alone``: a title that counts them.
    """
    if budget is not None and budget <= 1 and count:
        return [alone]
    if not rows:
        body = [f"  +{count} more"] if count else [f"  {empty}"]
        return [title, *body][: budget if budget is not None else None]
    table = table_lines(header, rows, right=right, width=width, steps=steps)
    shown = len(rows)
    if budget is not None and 1 + len(table) + (count > shown) > budget:
        # Title, header, then as many rows as fit beside the "+N more" line.
        shown = max(budget - 3, 0)
    if shown == 0:
        more = [f"  +{count} more"] if budget is None or budget >= 2 else []
        return [title, *more]
    lines = [title, *table[: 1 + shown]]
    if count > shown:
        lines.append(f"  +{count - shown} more")
    return lines


def _tool_row(tool: dict[str, Any], limit: int) -> list[str]:
    outcomes: dict[str, Any] = {}
    if isinstance(tool.get("outcomes"), dict):
        outcomes = tool["outcomes"]
    return [
        _labelled(tool, limit),
        _count(tool.get("total")),
        _count(outcomes.get("success")),
        _count(outcomes.get("error")),
        _count(outcomes.get("timeout")),
        _count(outcomes.get("cancelled")),
        _count(outcomes.get("rejected")),
        _share(_number(tool.get("error_rate"))),
        format_seconds(tool.get("p50_seconds")),
        format_seconds(tool.get("p95_seconds")),
    ]


def _share(rate: float | None) -> str:
    """``ERR%``: the share of failures to a tenth of a percent, but never rounded to none or
    all when it is neither (``<0.1%``, ``>99.9%``: one failure in 10,000 is not 0.0%).

    As the live page shows it: a half rounded up (0.25% is ``0.3%``, as JavaScript's
    ``toFixed`` rounds the exact value), and a share below 0.1% is ``<0.1%``."""
    if rate is None:
        return "-"
    percent = rate * 100
    if 0 < percent < 0.1:
        return "<0.1%"
    text = f"{Decimal(percent).quantize(Decimal('0.1'), ROUND_HALF_UP)}%"
    if rate < 1 and text == "100.0%":
        return ">99.9%"
    return text


def _count(value: Any) -> str:
    number = _number(value)
    return "-" if number is None else str(int(number))


def _with_default_port(url: str) -> str | None:
    """``url`` as given, with the endpoint's default port after its host (a placeholder for
    any credentials); ``None`` when it names a port, is not http(s) (nothing was tried) or
    cannot be read."""
    text = url.strip()
    bare = "://" not in text
    try:
        parts = urlsplit("http://" + text if bare else text)
        if parts.port is not None or not parts.hostname or parts.scheme not in ("http", "https"):
            return None
    except ValueError:
        return None
    credentials, _, host = parts.netloc.rpartition("@")
    if credentials in ("", ":"):  # (none, or an empty user information: no credentials)
        userinfo = ""
    else:
        userinfo = "USER:PASSWORD@" if ":" in credentials else "USER@"
    netloc = f"{userinfo}{host.rstrip(':')}:{_DEFAULT_PORT}"
    suggested = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return suggested.removeprefix("http://") if bare else suggested


def _unavailable_message(url: str, problem: StatusUnavailable) -> str:
    """The line that says why nothing usable answered at ``url``, with no control character
    (see :func:`~laios._output.printable_text`)."""
    return printable_text(_unavailable_advice(url, problem))


def _unavailable_advice(url: str, problem: StatusUnavailable) -> str:
    if isinstance(
        problem,
        (
            _AnswerCutShort,
            _ClosedUnanswered,
            _CredentialsNeeded,
            _HTTPFailure,
            _Misdirected,
            _NoAnswerInTime,
            _NotAStatus,
            _RedirectedNowhere,
            _StatusOff,
            _TLSFailed,
            _TooLarge,
        ),
    ):
        return f"laios status: {problem}."  # (something runs there: no advice to start one)
    if isinstance(problem, _BadURL):  # (nothing was tried: the URL is what to fix)
        return (
            f"laios status: {problem}. Give the endpoint's address as --url http://HOST:PORT "
            f"(or https://, or HOST:PORT alone); the default is {DEFAULT_URL}."
        )
    try:
        port = urlsplit(status_url(url)).port
    except ValueError:  # an out-of-range or non-numeric port in the URL
        port = None
    if isinstance(problem, _NoServerBehind) and problem.redirected:
        # (the port is that of the redirect's target; the URL asked answered, with it)
        return (
            f"laios status: {problem}. Start the endpoint in the process that runs tasks with "
            f"laios.execution.server.start_http_server({problem.port or _DEFAULT_PORT}), or "
            "try `laios demo`."
        )
    suggested = _with_default_port(url)
    hint = ""
    if suggested is not None:
        scheme = urlsplit(status_url(url)).scheme
        default = 443 if scheme == "https" else 80
        hint = (
            f" The URL names no port, so port {default} ({scheme}'s default) was tried; the "
            f"endpoint listens on {_DEFAULT_PORT} unless told otherwise: try --url "
            f"{_url_named(suggested)}."
        )
    return (
        f"laios status: {problem}.{hint} Start the endpoint in the process that runs tasks "
        f"with laios.execution.server.start_http_server({port or _DEFAULT_PORT}), or try "
        "`laios demo`."
    )


def watch_status(
    url: str,
    *,
    interval: float = 2.0,
    timeout: float = 5.0,
    out: TextIO | None = None,
    err: TextIO | None = None,
    sleep: Callable[[float], None] | None = None,
    bearer_token: str | None = None,
    cacert: str | None = None,
    cert: str | None = None,
    key: str | None = None,
) -> int:
    """Redraw the status every ``interval`` seconds until Ctrl-C, SIGTERM or SIGHUP.

    Args:
        url: The endpoint's base URL.
        interval: Seconds between redraws, 0.1 or more.
        timeout: Seconds allowed for each complete answer (looking up the host, connecting,
            headers and body).
        out: Where frames go (``sys.stdout``). On a terminal that can show a live screen (as
            for ``laios demo``'s live view: not with ``TERM`` unset or ``dumb``) the screen is
            cleared first and every line is fitted to the terminal's width.
        err: Where the failure message goes (``sys.stderr``).
        sleep: Waits between redraws (``time.sleep``).
        bearer_token: Sent with every request, as :func:`fetch_status` sends it.
        cacert: The CA certificates of :func:`fetch_status`.
        cert: The client certificate of :func:`fetch_status`.
        key: Its private key.

    Returns:
        0 after Ctrl-C, or SIGTERM or SIGHUP (taken as Ctrl-C while it runs, when called in
        the main thread); 2 when nothing answers at the first attempt (later failures, a file
        of ``cacert``, ``cert`` or ``key`` that can no longer be used among them, are shown
        above the last good picture and retried).

    Raises:
        ValueError: When ``interval`` is not a finite number of seconds, 0.1 or more, or the
            first request is refused as :func:`fetch_status` refuses it.
    """
    interval = _positive_seconds("interval", interval)
    if interval < _SHORTEST_INTERVAL:
        raise ValueError(f"interval {_INTERVAL_TOO_SHORT}, not {interval!r}")
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    pause = sleep if sleep is not None else time.sleep
    # Where `laios demo` would draw its live view, the screen is cleared before each picture,
    # fitted to the terminal's width; elsewhere (a file, a pipe, TERM unset or dumb: an
    # editor's shell) the pictures follow one another whole, as in a file.
    terminal = stream_is_terminal(out)
    clear = _CLEAR if terminal else ""
    # SIGTERM and SIGHUP stop it as Ctrl-C does, as they stop `laios demo` (from the first
    # request on; one repeated at once, as `timeout` sends it, is the same stop).
    with stop_signals_as_ctrl_c():
        fetch = functools.partial(
            fetch_status, url, timeout, bearer_token=bearer_token, cacert=cacert, cert=cert, key=key
        )
        return _watch(url, interval, fetch, out, err, pause, terminal, clear)


def _watch(
    url: str,
    interval: float,
    fetch: Callable[[], dict[str, Any]],
    out: TextIO,
    err: TextIO,
    pause: Callable[[float], None],
    terminal: bool,
    clear: str,
) -> int:
    """The loop of :func:`watch_status`; ``fetch`` reads the status."""
    try:
        document = fetch()
    except StatusUnavailable as exc:
        print(_unavailable_message(url, exc), file=err)
        return 2
    problem = ""
    try:
        while True:
            # (the size is read again for every picture: the terminal may have been resized)
            size = terminal_size() if terminal else None
            shown = without_credentials(status_url(url))
            frame = _watch_frame(document, shown, problem, interval, size)
            # (the cursor's line goes under the picture, unless the terminal has no line for
            # it: on a terminal of one line, a newline would scroll the picture's title off)
            end = "\n" if size is None or frame.count("\n") + 1 < size.lines else ""
            out.write(_writable(f"{clear}{frame}{end}", out))
            out.flush()
            waited = 0.0
            while waited < interval:  # (in parts the platform can wait)
                step = min(interval - waited, _LONGEST_WAIT)
                pause(step)
                waited += step
            try:
                document, problem = fetch(), ""
            except (StatusUnavailable, ValueError) as exc:  # (ValueError: a file changed)
                problem = printable_text(str(exc))
    except KeyboardInterrupt:
        out.write("\n")
        return 0


def _positive_float(text: str) -> float:
    value = number_argument(text)
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(
            f"must be a finite positive number of seconds, got {quoted(text)}"
        )
    return value


def _interval(text: str) -> float:
    """``--interval``: a number of seconds (:func:`_positive_float`), 0.1 or more."""
    value = _positive_float(text)
    if value < _SHORTEST_INTERVAL:
        raise argparse.ArgumentTypeError(f"{_INTERVAL_TOO_SHORT}, got {quoted(text)}")
    return value


#: A port as ``--port`` takes it: ASCII digits only (``int()`` also reads any script's digits,
#: a sign, underscores and white space around them).
_PORT = re.compile("[0-9]+", re.ASCII)


def _port(text: str) -> int:
    digits = text.lstrip("0") or "0"  # (leading zeros: int() refuses more than 4,300 digits)
    port = int(digits) if _PORT.fullmatch(text) and len(digits) <= 5 else -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(
            f"must be a port number from 0 to 65535, got {quoted(text)}"
        )
    return port


def _allowed_host(text: str) -> str:
    from laios.execution._http import allowed_name  # (the server's own check)

    try:
        allowed_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _host(text: str) -> str:
    """A host to serve on; an IPv6 address in brackets, as URLs write it (``[::1]``), is the
    address itself (``::1``)."""
    from laios.execution._http import bind_host  # (the server's own reading)

    try:
        return bind_host(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{quoted(text)}: {exc}") from None


#: A control character (C0, DEL or C1), or a lone surrogate (a byte of a command-line
#: argument or of the environment that is not UTF-8): no URL holds one as it is.
_A_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def otlp_url_problem(text: str, *, base: bool = True) -> str:
    """What makes ``text`` unusable as an OTLP/HTTP endpoint (``""``: nothing), in words that
    follow it (``f"{text!r} {problem}"``).

    ``base``: a collector's base URL, to which ``/v1/traces`` is added (so it may carry no query
    or fragment); otherwise the traces URL itself, used as it is.
    """
    if credentials_past_host(text) is not None:
        return CREDENTIALS_PAST_HOST
    if _A_CONTROL.search(text):
        # (named unless it is in the user and password, of which nothing is shown)
        named = _A_CONTROL.search(shown_url(text))
        if named is None:
            return (
                "is not a usable URL (its user or password holds a control character or a "
                "byte that is not UTF-8)"
            )
        what = "a byte that is not UTF-8" if named[0] >= "\ud800" else "a control character"
        return f"is not a usable URL (it holds {named[0]!r}, {what})"
    try:
        parts = urlsplit(text)
        _ = parts.port  # (reading the port parses it)
    except ValueError as exc:  # a malformed IPv6 host, a port that is not 0-65535
        return f"is not a usable URL ({exc})"
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return "is not an http:// or https:// URL (e.g. http://localhost:4318)"
    if parts.hostname and ":" not in parts.hostname:  # (an IPv6 address is checked above)
        try:
            _ascii_host(parts.hostname)
        except UnicodeError as exc:
            return f"is not a usable URL (its host {parts.hostname!r}: {exc})"
    problem = ""
    if not parts.hostname:
        problem = "names no host"
    elif base and (parts.query or text.endswith("?")):
        problem = "has a query, before which /v1/traces would be put"
    elif base and (parts.fragment or text.endswith("#")):
        problem = "has a fragment, before which /v1/traces would be put"
    if problem:
        return f"{problem}: give the collector's base URL (e.g. http://localhost:4318)"
    return ""


def _otlp_endpoint(text: str) -> str:
    problem = otlp_url_problem(text)
    if problem:  # (named without the user and password it may carry, as the banner does)
        raise argparse.ArgumentTypeError(f"{quoted(shown_url(text))} {problem}")
    return text


def _credentials(args: argparse.Namespace) -> dict[str, Any]:
    """What ``laios status`` sends besides the URL, read from the files its options name
    (the keyword arguments of :func:`fetch_status`); ``ValueError`` for an option that cannot
    be used, saying why."""
    token = None
    if args.bearer_token_file is not None:
        token = _read_bearer_token(args.bearer_token_file)
        try:
            user = _url_user(urlsplit(status_url(args.url)))[0]
        except ValueError:  # (a URL that is not one: fetch_status says so)
            user = None
        if user is not None:
            raise ValueError(
                "--url holds a user and password, and --bearer-token-file a token: one "
                "Authorization header carries either, so give one of them"
            )
    _client_tls_context(args.cacert, args.cert, args.key)  # (refuses a file it cannot use)
    return {"bearer_token": token, "cacert": args.cacert, "cert": args.cert, "key": args.key}


def _run_status(args: argparse.Namespace) -> int:
    try:
        credentials = _credentials(args)
        if args.watch:
            return watch_status(
                args.url, interval=args.interval, timeout=args.timeout, **credentials
            )
        document = fetch_status(args.url, args.timeout, **credentials)
    except ValueError as exc:
        # (nothing was tried: an option is what to fix; a file checked above may have
        # become unusable by the first request, which reads it again)
        print(printable_text(f"laios status: {exc}."), file=sys.stderr)
        return 2
    except StatusUnavailable as exc:
        print(_unavailable_message(args.url, exc), file=sys.stderr)
        return 2
    text = render_status(document, url=without_credentials(status_url(args.url)))
    print(text)  # (main() has stdout write what it cannot encode as question marks)
    return 0


def _run_demo(args: argparse.Namespace) -> int:
    # Imported here: the demo pulls in the executor and the tracing SDK, the status view must not.
    try:
        demo = importlib.import_module("laios._demo")
    except ModuleNotFoundError as exc:
        if exc.name != "laios._demo":
            raise
        print("laios demo: this installation has no demo module", file=sys.stderr)
        return 2
    return int(demo.run(args))


def _run_mixin(args: argparse.Namespace) -> int:
    """``laios mixin``: ``python -m laios.mixin`` under this command's name, its arguments
    passed on as they are (the generator is imported only now)."""
    from laios.mixin.__main__ import main as mixin_main

    return mixin_main(args.mixin_args, prog="laios mixin", out_needed_outside_checkout=True)


class _CommandsParser(OutputParser):
    """The ``laios`` parser: an argument none of it takes that follows a command is refused by
    that command's parser (``laios status: error: ...``, under the usage that lists its
    options), not by ``laios``'s, whose usage lists none of them (argparse's own choice)."""

    #: The commands' parsers, by name (the ``choices`` of the subparsers action).
    commands: Mapping[str, argparse.ArgumentParser] = MappingProxyType({})

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        argv = list(sys.argv[1:] if args is None else args)
        parsed, extras = self.parse_known_args(argv, namespace)
        if extras:
            command = getattr(parsed, "command", None)
            refusing: argparse.ArgumentParser = self
            # (``laios`` takes no option with a value: what comes before the command's name
            # is ``laios``'s, and an argument of it refused is refused by ``laios``)
            if (
                command in self.commands
                and command in argv
                and not set(argv[: argv.index(command)]) & set(extras)
            ):
                refusing = self.commands[command]
            refusing.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed


def build_parser() -> argparse.ArgumentParser:
    """Build the ``laios`` argument parser (subcommands ``status``, ``demo`` and ``mixin``)."""
    from laios import __version__

    parser = _CommandsParser(prog="laios", description="Observe laios task executors.")
    parser.add_argument("--version", action="version", version=f"laios {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OutputParser)
    parser.commands = commands.choices
    status = commands.add_parser(
        "status",
        help="show running tasks and per-tool statistics",
        description="Show what a running process is doing, read from its /status endpoint.",
        epilog="Exit code 0 when the status was shown (or --watch was stopped with Ctrl-C, "
        "SIGTERM or a SIGHUP sent to it); exit code 2 when nothing usable answered at the URL "
        "(or an option's file cannot be used); "
        "130 after Ctrl-C (with --watch also SIGTERM or SIGHUP) while waiting for the first "
        "answer; 1 when the output cannot be written, as when the terminal of --watch was "
        "closed.",
    )
    status.add_argument(
        "--url",
        default=DEFAULT_URL,
        help=f"the endpoint's base URL (or its /metrics URL); /status is added, host:port "
        f"alone means http, and USER:PASSWORD@ (percent-encoded) is sent as basic "
        f"authentication (default {DEFAULT_URL})",
    )
    status.add_argument(
        "--watch", action="store_true", help="redraw until Ctrl-C (or SIGTERM, SIGHUP)"
    )
    status.add_argument(
        "--interval",
        type=_interval,
        default=2.0,
        metavar="S",
        help=f"seconds between redraws with --watch, {_SHORTEST_INTERVAL:g} or more (2.0)",
    )
    status.add_argument(
        "--timeout",
        type=_positive_float,
        default=5.0,
        metavar="S",
        help="seconds allowed for each complete answer: looking up the host, connecting, "
        "headers and body (5.0)",
    )
    status.add_argument(
        "--bearer-token-file",
        metavar="FILE",
        help="send the token in FILE (white space around it stripped) as Authorization: "
        "Bearer, for an endpoint configured with bearer tokens; never given on the command "
        "line, where ps shows it",
    )
    status.add_argument(
        "--cacert",
        metavar="FILE",
        help="check an https endpoint's certificate against the CA certificates (PEM) in FILE "
        "instead of the system's and SSL_CERT_FILE's",
    )
    status.add_argument(
        "--cert",
        metavar="FILE",
        help="offer the client certificate (PEM) in FILE to an https endpoint that requires "
        "one; FILE may hold its key too",
    )
    status.add_argument(
        "--key",
        metavar="FILE",
        help="the private key (PEM, not encrypted) of --cert's certificate, when not in its file",
    )
    status.set_defaults(handler=_run_status)
    demo = commands.add_parser(
        "demo",
        help="run sample tasks behind a live metrics endpoint",
        description="Run a realistic workload through a real Executor, serve /metrics, "
        "/status and the live page for it, and show a live view until Ctrl-C or q.",
        epilog="Exit codes: 0 after a run (also when stopped with q, Ctrl-C, SIGTERM or a "
        "SIGHUP sent to it, kill -HUP); 2 when the port cannot be bound or an option is not "
        "usable; 130 after Ctrl-C while it starts; 1 when the output cannot be written, as "
        "when its terminal was closed (it is stopped by the SIGHUP that sends, and its "
        "summary has nowhere to go).",
    )
    demo.add_argument(
        "--duration",
        type=_positive_float,
        default=None,
        metavar="S",
        help="stop after S seconds and print a summary (default: until Ctrl-C)",
    )
    demo.add_argument(
        "--host",
        type=_host,
        default="127.0.0.1",
        metavar="H",
        help="address to serve on; an IPv6 address may be in brackets, [::1] (127.0.0.1)",
    )
    demo.add_argument(
        "--port",
        type=_port,
        default=8489,
        metavar="P",
        help="port to serve on; 0 picks a free one (8489)",
    )
    demo.add_argument(
        "--allowed-host",
        type=_allowed_host,
        action="append",
        default=[],
        dest="allowed_hosts",
        metavar="NAME",
        help="on loopback, also answer requests for NAME (a reverse proxy forwarding its public "
        "name); .NAME for NAME and every name under it; repeatable",
    )
    demo.add_argument(
        "--no-live",
        action="store_true",
        help="do not draw the live view (it is also skipped when stdout is not a terminal, "
        "or TERM is unset or dumb)",
    )
    demo.add_argument(
        "--console-spans",
        action="store_true",
        help="print every span as JSON to stderr; needs laios[demo]",
    )
    demo.add_argument(
        "--otlp-endpoint",
        type=_otlp_endpoint,
        default=None,
        metavar="URL",
        help="send spans over OTLP/HTTP to URL/v1/traces (a URL that ends in /v1/traces is "
        "taken as it is), e.g. http://localhost:4318 (the Collector of the source tree's "
        "grafana/docker-compose.yml); needs laios[otlp]. Default: "
        "$OTEL_EXPORTER_OTLP_ENDPOINT when set",
    )
    demo.add_argument(
        "--runner",
        choices=("thread", "process", "dask"),
        default="thread",
        help="run tools on worker threads (default), in worker processes that are killed when "
        "a tool overruns its timeout, or on an embedded Dask cluster (needs laios[dask])",
    )
    demo.set_defaults(handler=_run_demo)
    # Every argument after `mixin` goes to the generator's own parser, which has its options
    # and its --help: no character starts an option here (argv never holds a NUL).
    mixin = commands.add_parser(
        "mixin",
        help="write the Grafana dashboard, rules and Kubernetes manifests",
        add_help=False,
        prefix_chars="\0",
    )
    mixin.add_argument("mixin_args", nargs=argparse.REMAINDER)
    mixin.set_defaults(handler=_run_mixin)
    return parser


def _replace_what_it_cannot_encode(stream: TextIO | None) -> None:
    """Have ``stream`` write a character its encoding cannot hold as a ``?`` per column from
    now on (see :data:`~laios._terminal.QUESTION_MARKS`), instead of raising
    ``UnicodeEncodeError`` at the first one: an output in ASCII (``PYTHONIOENCODING=ascii``,
    the C locale), Latin-1 or a Windows code page gets every line of the command, its dashes,
    names and messages (in any script) included, and its tables aligned."""
    reconfigure = getattr(stream, "reconfigure", None)
    if reconfigure is None or getattr(stream, "errors", None) != "strict":
        return
    with contextlib.suppress(ValueError, OSError):  # (closed, or not to be reconfigured)
        reconfigure(errors=QUESTION_MARKS)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``laios`` command.

    Args:
        argv: The arguments after the program name; ``sys.argv[1:]`` when ``None``.

    Returns:
        The exit code: 0 on success, 2 when the endpoint cannot be read or no command is given,
        130 after a Ctrl-C the command did not handle itself (no traceback), 1 when whoever
        read the output stopped reading it (``laios demo | head -1``) or the output could not
        be written (a full disk: one line on stderr says so).
    """
    for stream in (sys.stdout, sys.stderr):
        _replace_what_it_cannot_encode(stream)
    parser = build_parser()
    args = parse_command_line(parser, argv)
    if isinstance(args, int):  # --help or --version whose text could not be written
        return args
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    prog = f"laios {args.command}"
    closed = closed_stdout_status(prog)
    if closed is not None:
        return closed
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        status = output_failure_status(exc, prog)
        if status is None:
            raise
        return status


if __name__ == "__main__":
    raise SystemExit(main())
