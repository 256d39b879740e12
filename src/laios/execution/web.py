"""TLS and authentication for the metrics endpoint: the web configuration of Prometheus exporters.

Inside a Kubernetes pod the endpoint has to listen on the pod's address, and then ``/status``
shows task ids, tool names and progress messages to anyone who can reach it. Prometheus
exporters protect their endpoint with one file, the exporter-toolkit *web configuration*
(``--web.config.file``); :func:`load_web_config` reads the same file, and :class:`WebConfig` is
the same settings as a typed object:

.. code-block:: yaml

    tls_server_config:
      cert_file: server.crt            # relative paths: to the file's directory
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert    # optional: client certificates
      client_ca_file: clients-ca.crt
      min_version: TLS12
    basic_auth_users:                  # user: bcrypt hash of the password
      prometheus: $2b$10$...
    bearer_token_file: token           # laios' own: one accepted token per line

Everything is checked when the configuration is made: a missing or unreadable certificate or
key, a certificate and key that do not match, a password written in plain text instead of its
bcrypt hash, a TLS version this Python's OpenSSL will not negotiate (TLS 1.0 and 1.1 with
OpenSSL 3), a setting this module does not know or does not support. Each mistake raises
:class:`WebConfigError` naming the setting (and never the secret).

Reading YAML needs PyYAML and checking passwords needs bcrypt: ``pip install 'laios[web]'``.

Example:
    >>> config = WebConfig(bearer_tokens=["3f0c2b9d8e7a4c1b6d5e"])
    >>> config.authenticates
    True
"""

from __future__ import annotations

import importlib
import io
import logging
import os
import re
import ssl
import stat
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any, Literal, NoReturn

from laios._text import MAX_QUOTED_CHARS, shorten
from laios.execution._checks import number_repr, whole_number

_log = logging.getLogger("laios.execution.server")

__all__ = [
    "MIN_BEARER_TOKEN_LENGTH",
    "ClientAuthType",
    "TLSServerConfig",
    "TLSVersionName",
    "WebConfig",
    "WebConfigError",
    "hash_password",
    "load_web_config",
]

#: What ``client_auth_type`` may say: no client certificate, one verified when given, or one
#: required and verified against ``client_ca_file``.
ClientAuthType = Literal["NoClientCert", "VerifyClientCertIfGiven", "RequireAndVerifyClientCert"]
#: The TLS versions ``min_version`` and ``max_version`` may name.
TLSVersionName = Literal["TLS10", "TLS11", "TLS12", "TLS13"]
#: Shortest bearer token accepted, in characters (``openssl rand -hex 32`` makes 64).
MIN_BEARER_TOKEN_LENGTH = 16

_PIP = "pip install 'laios[web]'"
#: The most bytes read from the configuration file or ``bearer_token_file``: far more than
#: either needs (thousands of users or tokens), and a bound for one that never ends; and the
#: largest certificate, key or CA file handed to OpenSSL.
_MOST_READ = 1 << 20
#: The most keys merge keys (``<<: *base``) may copy into the mappings of one file: a merge
#: copies a mapping's keys, so merges of merges would make billions from a few lines.
_MOST_MERGED = 10_000
#: The deepest a web configuration file may nest its lists and mappings (it needs four): PyYAML
#: builds nested collections by recursion, and its scanner slows down quadratically with depth.
_DEEPEST = 64
_MERGE_TAG = "tag:yaml.org,2002:merge"
_TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
_CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
#: exporter-toolkit's policies that take a client certificate without verifying it: Python's
#: ssl module cannot ask for a certificate without verifying it.
_UNVERIFIED_CLIENT_AUTH = ("RequestClientCert", "RequireAnyClientCert", "RequireClientCert")
#: A bcrypt hash as htpasswd, Go and Python's bcrypt write it: $2a$, $2b$ or $2y$, the cost,
#: then 22 characters of salt and 31 of hash.
_BCRYPT_HASH = re.compile(r"\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}")
#: RFC 6750's token68: what may follow ``Bearer `` in an ``Authorization`` header.
_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
#: Response headers ``http_server_config.headers`` may set, and the values allowed when the
#: header has a fixed set (exporter-toolkit's list).
_EXTRA_HEADERS: dict[str, tuple[str, ...]] = {
    "Strict-Transport-Security": (),
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": (),
    "Content-Security-Policy": (),
}
_TLS_KEYS = (
    "cert_file",
    "key_file",
    "client_auth_type",
    "client_ca_file",
    "min_version",
    "max_version",
    "prefer_server_cipher_suites",
)
_TOP_KEYS = ("tls_server_config", "http_server_config", "basic_auth_users", "bearer_token_file")
#: exporter-toolkit settings laios knows but does not implement: refused rather than ignored,
#: since each of them would make the endpoint stricter than it is.
_UNSUPPORTED = {
    "tls_server_config.cert": "give the certificate as a file, with cert_file",
    "tls_server_config.key": "give the key as a file, with key_file",
    "tls_server_config.client_ca": "give the CA certificates as a file, with client_ca_file",
    "tls_server_config.cipher_suites": "OpenSSL's defaults for the TLS version apply",
    "tls_server_config.curve_preferences": "OpenSSL's defaults apply",
    "tls_server_config.client_allowed_sans": (
        "sign the client certificates you accept with a CA of their own (client_ca_file)"
    ),
    "rate_limit": "limit connections with start_http_server(max_connections=...)",
}


class WebConfigError(ValueError):
    """A web configuration that cannot be used; the message names the setting at fault."""


def _require(module: str, distribution: str, purpose: str) -> ModuleType:
    """Import an optional dependency, or fail naming the ``pip install`` line."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{purpose} needs {distribution}: {_PIP}") from exc


def _fail(where: str, problem: str) -> NoReturn:
    raise WebConfigError(f"{where}: {problem}")


def _path(where: str, value: Any) -> str:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value:
        _fail(where, f"must be a file name, not {type(value).__name__} {number_repr(value)}")
    # (A str subclass, a (str, Enum) member, is the path it holds: formatted, such a member
    # shows its name.)
    return str.__str__(value)


def _shown(path: str) -> str:
    """``path`` for an error message: as it is when short, cut to ``MAX_QUOTED_CHARS``
    characters when long (a name of 100,000 characters made a message of its length); and
    quoted as its ``repr`` escapes it (``'web\\x1b[2J.yml'``) when it holds a character a
    terminal would not show as text (a control character, a line break, a right-to-left
    override, a byte the file system's encoding could not decode), which a message shown
    there must not carry raw."""
    if not path.isprintable():
        return number_repr(path)
    return shorten(path, MAX_QUOTED_CHARS)


def _why(exc: OSError) -> str:
    """Why ``exc`` could not read a file, in words (its text cut short: it may quote the
    path)."""
    return exc.strerror or shorten(str(exc), MAX_QUOTED_CHARS)


def _read(where: str, path: str, size: int) -> bytes:
    """The first ``size`` bytes of a file; refuse a file that is missing or cannot be read,
    saying which and why."""
    try:
        with open(path, "rb") as file:
            return file.read(size)
    except FileNotFoundError:
        _fail(where, f"{_shown(path)} does not exist")
    except IsADirectoryError:
        _fail(where, f"{_shown(path)} is a directory, not a file")
    except OSError as exc:
        _fail(where, f"cannot read {_shown(path)} ({_why(exc)})")


def _read_whole(where: str, path: str) -> bytes:
    """The whole of a file read once (a pipe cannot be read twice), refused when it holds
    more than :data:`_MOST_READ` bytes: a file that never ends (``/dev/zero``, ``<(yes)``)
    would otherwise be read until the memory runs out."""
    content = _read(where, path, _MOST_READ + 1)
    if len(content) > _MOST_READ:
        _fail(
            where,
            f"{_shown(path)} holds more than {_MOST_READ >> 20} MiB, the most read from it (a "
            "device or pipe that never ends?)",
        )
    return content


def _read_regular(where: str, path: str) -> bytes:
    """A TLS file (certificate, key or CA bundle), read once; refused, saying which and why,
    when it is missing, cannot be read, is not a regular file or holds more than
    :data:`_MOST_READ` bytes (naming its size).

    A TLS file is read again whenever it changes, which a pipe (``<(...)``) cannot be; and
    reading a named pipe that nothing writes to blocks for ever (the server's accept loop, when
    a renewal turns a file into one): the file is opened without blocking, and refused unless
    what was opened is a regular file. OpenSSL reads a file whole, however big: a certificate
    chain, a key or a CA bundle takes a few KiB to a few hundred. At most :data:`_MOST_READ`
    bytes and one are read, so that what is checked is what is used (the CA bundle, handed to
    OpenSSL as data), even when the file is replaced meanwhile (a renewal under way).
    """
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        _fail(where, f"{_shown(path)} does not exist")
    except OSError as exc:
        _fail(where, f"cannot read {_shown(path)} ({_why(exc)})")
    try:  # (the checks come first: opening a directory's descriptor as a file raises)
        found = os.fstat(descriptor)
        if stat.S_ISDIR(found.st_mode):
            _fail(where, f"{_shown(path)} is a directory, not a file")
        if not stat.S_ISREG(found.st_mode):
            _fail(
                where,
                f"{_shown(path)} is not a regular file (a pipe or a device?): give a file, "
                "which is read again whenever it changes",
            )
        content = b""
        if found.st_size <= _MOST_READ:
            try:
                with open(descriptor, "rb", closefd=False) as file:
                    content = file.read(_MOST_READ + 1)
            except OSError as exc:
                _fail(where, f"cannot read {_shown(path)} ({_why(exc)})")
        if found.st_size > _MOST_READ or len(content) > _MOST_READ:
            size = max(os.fstat(descriptor).st_size, len(content))  # (grown since looked at?)
            _fail(
                where,
                f"{_shown(path)} holds more than {_MOST_READ >> 20} MiB, the most read from a TLS "
                f"file ({size} bytes; a certificate chain, key or CA bundle takes a few KiB)",
            )
    finally:
        os.close(descriptor)
    return content


def _no_password() -> str:
    raise WebConfigError(
        "tls_server_config.key_file: the key is encrypted; give it unencrypted "
        "(openssl pkey -in encrypted.key -out server.key), readable by this process only"
    )


def _plain_text(value: Any) -> str | None:
    """The text ``value`` holds as a plain ``str`` when it is a string (a ``str`` subclass, a
    ``(str, Enum)`` member, as its text: formatted, such a member shows its name), else
    ``None``. None of its own methods is called: its ``__str__`` or ``==`` may raise."""
    return str.__str__(value) if isinstance(value, str) else None


def _choice(where: str, value: Any, choices: Sequence[str]) -> str:
    """``value`` as the plain ``str`` it holds when it is one of ``choices``, or fail. A value
    that is no string is refused before it is compared (its own ``==`` may raise), and a
    ``str`` subclass (a ``(str, Enum)`` member) is compared as its text."""
    text = _plain_text(value)
    if text is None or text not in choices:
        _fail(where, f"must be one of {', '.join(choices)}, not {number_repr(value)}")
    return text


@dataclass(frozen=True)
class TLSServerConfig:
    """HTTPS for :func:`~laios.execution.server.start_http_server` (``tls_server_config``).

    The files are read when the object is made, so a missing or unreadable file, or a
    certificate that does not match its key, fails at once with :class:`WebConfigError`; the
    server reads them again (:meth:`ssl_context`) when it starts, and whenever they change.

    Attributes:
        cert_file: The server's certificate (PEM), followed by any intermediate certificates.
        key_file: Its private key (PEM, unencrypted).
        client_auth_type: ``NoClientCert`` (the default), ``VerifyClientCertIfGiven`` or
            ``RequireAndVerifyClientCert`` (a client without a certificate signed by
            ``client_ca_file`` cannot connect). exporter-toolkit's ``RequestClientCert`` and
            ``RequireAnyClientCert`` accept a certificate without verifying it, which Python's
            ssl module cannot do: they are refused.
        client_ca_file: The CA certificates (PEM) client certificates must be signed by;
            required by the two verifying policies, refused without one.
        min_version: The oldest TLS version accepted, ``TLS12`` (the default) or ``TLS13``.
            ``TLS10`` and ``TLS11`` are accepted only where OpenSSL can negotiate them with
            the certificate, which OpenSSL 3 at its default security level cannot: there
            they are refused with :class:`WebConfigError` (found out by a handshake in
            memory when the object is made).
        max_version: The newest TLS version offered (default ``TLS13``); the same applies.
        prefer_server_cipher_suites: Pick the cipher by the server's order of preference
            (default ``True``).
    """

    cert_file: str | os.PathLike[str]
    key_file: str | os.PathLike[str]
    client_auth_type: ClientAuthType = "NoClientCert"
    client_ca_file: str | os.PathLike[str] | None = None
    min_version: TLSVersionName = "TLS12"
    max_version: TLSVersionName = "TLS13"
    prefer_server_cipher_suites: bool = True

    def __post_init__(self) -> None:
        where = "tls_server_config"
        object.__setattr__(self, "cert_file", _path(f"{where}.cert_file", self.cert_file))
        object.__setattr__(self, "key_file", _path(f"{where}.key_file", self.key_file))
        if self.client_ca_file is not None:
            ca_file = _path(f"{where}.client_ca_file", self.client_ca_file)
            object.__setattr__(self, "client_ca_file", ca_file)
        given = self.client_auth_type
        unverified = _plain_text(given)
        if unverified in _UNVERIFIED_CLIENT_AUTH:
            _fail(
                f"{where}.client_auth_type",
                f"{unverified} takes client certificates without verifying them, "
                "which is not supported: use RequireAndVerifyClientCert with client_ca_file",
            )
        auth = _choice(f"{where}.client_auth_type", given, tuple(_CLIENT_AUTH))
        object.__setattr__(self, "client_auth_type", auth)
        for name in ("min_version", "max_version"):
            version = _choice(f"{where}.{name}", getattr(self, name), tuple(_TLS_VERSIONS))
            object.__setattr__(self, name, version)
        if _TLS_VERSIONS[self.min_version] > _TLS_VERSIONS[self.max_version]:
            _fail(
                f"{where}.min_version",
                f"{self.min_version} is newer than max_version {self.max_version}",
            )
        if not isinstance(self.prefer_server_cipher_suites, bool):
            _fail(f"{where}.prefer_server_cipher_suites", "must be true or false")
        verifies = self.client_auth_type != "NoClientCert"
        if verifies and self.client_ca_file is None:
            _fail(
                f"{where}.client_ca_file",
                f"client_auth_type {self.client_auth_type} needs the CA certificates that "
                "sign the client certificates",
            )
        if not verifies and self.client_ca_file is not None:
            _fail(
                f"{where}.client_auth_type",
                "client_ca_file is given but no client certificate is asked for: set "
                "client_auth_type to RequireAndVerifyClientCert (or VerifyClientCertIfGiven)",
            )
        _refuse_unnegotiable_versions(self, self.ssl_context())

    @property
    def requires_client_certificate(self) -> bool:
        """Whether every client must present a certificate signed by ``client_ca_file``."""
        return self.client_auth_type == "RequireAndVerifyClientCert"

    def ssl_context(self) -> ssl.SSLContext:
        """A new server-side :class:`ssl.SSLContext` from the files as they are now.

        Raises:
            WebConfigError: When a file is missing or unreadable, is not a regular file or
                holds more than 1 MiB, the key is encrypted or does not match the
                certificate, or ``client_ca_file`` holds no CA certificate.
        """
        where = "tls_server_config"
        cert_file, key_file = str(self.cert_file), str(self.key_file)
        # (Read here only to be checked: the ssl module loads them from paths.)
        _read_regular(f"{where}.cert_file", cert_file)
        _read_regular(f"{where}.key_file", key_file)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = _TLS_VERSIONS[self.min_version]
        context.maximum_version = _TLS_VERSIONS[self.max_version]
        if self.prefer_server_cipher_suites:
            context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
        try:
            context.load_cert_chain(cert_file, key_file, password=_no_password)
        except ssl.SSLError as exc:
            _fail(
                where,
                f"cannot use cert_file {_shown(cert_file)} with key_file {_shown(key_file)} "
                f"({exc.reason or exc}): both must be PEM, the key unencrypted and the "
                "certificate's own",
            )
        if self.client_ca_file is not None:
            ca_file = str(self.client_ca_file)
            # Read once and handed over as data: what was checked is what is used. (The
            # certificate and key cannot be: the ssl module loads them from paths only.)
            ca_data = _read_regular(f"{where}.client_ca_file", ca_file)
            try:
                # (The ssl module takes PEM as ASCII text: a bundle's comments may not be.)
                context.load_verify_locations(cadata=ca_data.decode("ascii", errors="ignore"))
            except ValueError:  # (empty)
                _fail(
                    f"{where}.client_ca_file",
                    f"{_shown(ca_file)} holds no usable PEM CA certificate",
                )
            except ssl.SSLError as exc:
                _fail(
                    f"{where}.client_ca_file",
                    f"{_shown(ca_file)} holds no usable PEM CA certificate ({exc.reason or exc})",
                )
            context.verify_mode = _CLIENT_AUTH[self.client_auth_type]
        return context


def _refuse_unnegotiable_versions(config: TLSServerConfig, context: ssl.SSLContext) -> None:
    """Refuse a ``min_version`` or ``max_version`` older than TLS 1.2 that ``context`` (the
    server's, with its certificate) cannot negotiate.

    OpenSSL 3 negotiates TLS 1.0 and 1.1 at no security level but 0 (their handshakes sign
    with SHA-1), so a server limited to them would fail every handshake, and one whose oldest
    version is one of them would turn away the clients that need it. Whether a version is
    usable is found out the only reliable way: a handshake in memory between ``context`` and a
    client that offers that version alone and allows anything (security level 0), so that the
    server alone decides. The server is not asked for a client certificate, whose absence
    would fail the handshake whatever the version. TLS 1.2 and newer are not tried: the
    default configuration costs nothing.
    """
    where = "tls_server_config"
    context.verify_mode = ssl.CERT_NONE  # (a context of its own: the server never uses it)
    for name in dict.fromkeys(("min_version", "max_version")):
        version_name = getattr(config, name)
        version = _TLS_VERSIONS[version_name]
        if version >= ssl.TLSVersion.TLSv1_2:
            continue
        problem = _handshake_problem(context, version)
        if problem is not None:
            _fail(
                f"{where}.{name}",
                f"{version_name} cannot be negotiated by this Python's OpenSSL "
                f"({ssl.OPENSSL_VERSION}) with cert_file {config.cert_file} ({problem}): no "
                "client could connect with it; use TLS12 or newer",
            )


def _handshake_problem(server_context: ssl.SSLContext, version: ssl.TLSVersion) -> str | None:
    """Why a client offering ``version`` alone cannot complete a handshake with
    ``server_context``, or ``None`` when it can. The handshake is run in memory."""
    try:
        with warnings.catch_warnings():  # (versions older than TLS 1.2 are deprecated)
            warnings.simplefilter("ignore", DeprecationWarning)
            client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            client_context.minimum_version = client_context.maximum_version = version
        client_context.check_hostname = False
        client_context.verify_mode = ssl.CERT_NONE
        client_context.set_ciphers("ALL:@SECLEVEL=0")
    except (ValueError, ssl.SSLError) as exc:  # (an OpenSSL built without that version)
        return str(exc)
    # (What one end writes is what the other reads: no copying between them.)
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    ends = [
        client_context.wrap_bio(to_client, to_server, server_side=False),
        server_context.wrap_bio(to_server, to_client, server_side=True),
    ]
    for _ in range(8):  # (a handshake takes two round trips or three: a bound all the same)
        for end in list(ends):
            try:
                end.do_handshake()
            except ssl.SSLWantReadError:
                continue
            except ssl.SSLError as exc:
                return exc.reason or str(exc)
            ends.remove(end)
        if not ends:
            return None
    return "the handshake did not complete"


def _check_users(users: Any) -> dict[str, str]:
    where = "basic_auth_users"
    if not isinstance(users, Mapping):
        _fail(where, f"must map user names to bcrypt hashes, not {type(users).__name__}")
    checked: dict[str, str] = {}
    costs: dict[str, int] = {}
    for given, hashed in users.items():
        if not isinstance(given, str) or not given or ":" in given:
            _fail(
                where, f"{number_repr(given)} is not a user name (a non-empty string without ':')"
            )
        # (the text a str subclass holds: its own str(), hash or == may raise, or lie)
        user = str.__str__(given)
        named = f"{where}.{_shown(user)}"
        if not isinstance(hashed, str):
            _fail(named, f"must be a bcrypt hash, not {type(hashed).__name__}")
        hashed = str.__str__(hashed)
        _no_white_space_around(named, hashed)
        match = _BCRYPT_HASH.fullmatch(hashed)
        if match is None:
            # Never echo the value: it may be the password itself.
            _fail(
                named,
                "is not a bcrypt hash. Write the hash of the password, never the password "
                'itself; make one with: python -c "import getpass; from '
                'laios.execution.web import hash_password; print(hash_password(getpass.getpass()))"'
                " (or htpasswd -nBC 10 '' | tr -d ':\\n')",
            )
        costs[user] = cost = int(match.group(1))
        if not 4 <= cost <= 31:
            _fail(named, "has a bcrypt cost outside 4 to 31")
        checked[user] = hashed
    if checked:
        _require("bcrypt", "the bcrypt package", "Checking basic_auth_users passwords")
        _warn_of_mixed_costs(costs)
    return checked


def _warn_of_mixed_costs(costs: Mapping[str, int]) -> None:
    """Warn when users' hashes (``costs``: user to bcrypt cost) have different costs: an
    unknown user is checked at the highest, so a known user of a lower cost answers faster and
    the time of a failed check tells that the name exists."""
    highest = max(costs.values())
    lower = sorted(user for user, cost in costs.items() if cost < highest)
    if lower:
        shown = ", ".join(f"{user!r} ({costs[user]})" for user in lower[:5])
        more = f" and {len(lower) - 5} more" if len(lower) > 5 else ""
        _log.warning(
            "basic_auth_users: %s%s have a lower bcrypt cost than the highest (%d); a failed "
            "check of such a user answers faster than one of an unknown name, which tells that "
            "the name exists. Hash every password with the same cost.",
            shown,
            more,
            highest,
        )


def _no_white_space_around(where: str, secret: str) -> None:
    """Refuse a secret with white space around it (the newline of the file it was read
    from), saying so; the message never shows the secret."""
    if secret and secret.strip() != secret:
        _fail(
            where,
            "has white space around it (the newline at the end of the file or variable it "
            "was read from?): strip it",
        )


def _check_token(where: str, token: Any) -> str:
    # The message never shows the token.
    if isinstance(token, str):
        _no_white_space_around(where, token)
    if not isinstance(token, str) or _TOKEN68.fullmatch(token) is None:
        _fail(where, "is not a bearer token (letters, digits and -._~+/ only, then any '=')")
    if len(token) < MIN_BEARER_TOKEN_LENGTH:
        _fail(
            where,
            f"is {len(token)} characters long: use at least {MIN_BEARER_TOKEN_LENGTH} "
            "random ones (openssl rand -hex 32)",
        )
    return token


def _check_tokens(tokens: Any) -> tuple[str, ...]:
    if isinstance(tokens, (str, bytes)) or not isinstance(tokens, Sequence):
        _fail("bearer_tokens", f"must be a list of tokens, not {type(tokens).__name__}")
    return tuple(
        _check_token(f"bearer_tokens[{index}]", token) for index, token in enumerate(tokens)
    )


def _check_headers(headers: Any) -> dict[str, str]:
    where = "http_server_config.headers"
    if not isinstance(headers, Mapping):
        _fail(where, f"must map header names to values, not {type(headers).__name__}")
    checked: dict[str, str] = {}
    for key, value in headers.items():
        # A str subclass (a (str, Enum) member) is taken as the text it holds, which is what
        # it is checked and sent as: the servers write headers of type str alone, and
        # formatted such a member shows its name.
        # (A name or value that is no string is refused before it is compared: its own ==
        # may raise.)
        name = _plain_text(key)
        if name is None or name not in _EXTRA_HEADERS:
            _fail(where, f"{number_repr(key)} cannot be set (only {', '.join(_EXTRA_HEADERS)})")
        allowed = _EXTRA_HEADERS[name]
        # (HTTP/1.1 sends header values as bytes: WSGI and ASGI servers take Latin-1 at most,
        # and anything beyond ASCII is not portable; control characters would split headers.)
        text = _plain_text(value)
        if text is None or not (text.isascii() and text.isprintable()):
            _fail(
                f"{where}.{name}",
                f"must be a string of printable ASCII characters, not {number_repr(value)}",
            )
        if allowed and text not in allowed:
            _fail(
                f"{where}.{name}", f"must be one of {', '.join(allowed)}, not {number_repr(text)}"
            )
        checked[name] = text
    return checked


@dataclass(frozen=True)
class WebConfig:
    """How the endpoint is protected: TLS, basic authentication, bearer tokens, headers.

    Pass it (or the path of a web configuration file, see :func:`load_web_config`) as
    ``web_config=`` to :func:`~laios.execution.server.start_http_server`,
    :func:`~laios.execution.server.make_wsgi_app` or
    :func:`~laios.execution.server.make_asgi_app`. With ``basic_auth_users`` or
    ``bearer_tokens``, a request without valid credentials is answered ``401`` with
    ``WWW-Authenticate`` and no data; ``/healthz`` stays open (it says only ``ok``). A request
    may use either scheme.

    Attributes:
        tls_server_config: HTTPS settings; only :func:`start_http_server` serves TLS itself
            (a mounted app is behind your server's TLS, and refuses this setting).
        basic_auth_users: User name to the bcrypt hash of the password (``$2b$...``,
            ``$2y$...``; see :func:`hash_password`). Needs the bcrypt package.
        bearer_tokens: Tokens accepted in ``Authorization: Bearer <token>``; several allow a
            rotation. At least :data:`MIN_BEARER_TOKEN_LENGTH` characters each.
        headers: Extra response headers, as exporter-toolkit's ``http_server_config.headers``:
            ``Strict-Transport-Security``, ``X-Content-Type-Options`` (``nosniff``),
            ``X-Frame-Options`` (``deny``, ``sameorigin``), ``X-XSS-Protection``,
            ``Content-Security-Policy``.

    Raises:
        WebConfigError: When a setting is wrong (the message names it).
        ImportError: When ``basic_auth_users`` is given and bcrypt is not installed.
    """

    tls_server_config: TLSServerConfig | None = None
    basic_auth_users: Mapping[str, str] = field(default_factory=dict, repr=False)
    bearer_tokens: Sequence[str] = field(default=(), repr=False)
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.tls_server_config is not None and not isinstance(
            self.tls_server_config, TLSServerConfig
        ):
            _fail("tls_server_config", "must be a TLSServerConfig")
        users = MappingProxyType(_check_users(self.basic_auth_users))
        object.__setattr__(self, "basic_auth_users", users)
        object.__setattr__(self, "bearer_tokens", _check_tokens(self.bearer_tokens))
        object.__setattr__(self, "headers", MappingProxyType(_check_headers(self.headers)))

    @property
    def authenticates(self) -> bool:
        """Whether every client must prove who it is: a password, a token or a certificate."""
        return bool(
            self.basic_auth_users
            or self.bearer_tokens
            or (
                self.tls_server_config is not None
                and self.tls_server_config.requires_client_certificate
            )
        )


def hash_password(password: str | bytes, *, cost: int = 10) -> str:
    """The bcrypt hash of ``password``, for ``basic_auth_users``. Needs the bcrypt package.

    Args:
        password: The password (at most 72 bytes in UTF-8, bcrypt's limit).
        cost: bcrypt's work factor, 4 to 31; each step doubles the time (10: ~50 ms).

    Returns:
        The hash, e.g. ``$2b$10$...``.

    Raises:
        TypeError: When the password is neither text nor bytes.
        ValueError: When the password is empty or longer than 72 bytes, or the cost is out
            of range.
    """
    if not isinstance(password, (str, bytes)):
        raise TypeError(f"password must be a str or bytes, got {type(password).__name__}")
    bcrypt = _require("bcrypt", "the bcrypt package", "hash_password")
    secret = password.encode("utf-8") if isinstance(password, str) else password
    if not secret or len(secret) > 72:
        raise ValueError("a bcrypt password is 1 to 72 bytes long")
    rounds = whole_number(cost)  # (a plain int: an int subclass's comparisons may lie)
    if rounds is None or not 4 <= rounds <= 31:
        raise ValueError(f"cost must be a whole number from 4 to 31, got {number_repr(cost)}")
    hashed: bytes = bcrypt.hashpw(secret, bcrypt.gensalt(rounds=rounds))
    return hashed.decode("ascii")


def _only(where: str, section: Any, known: Sequence[str]) -> dict[str, Any]:
    """Check that a section is a mapping with known keys only; return it."""
    if section is None:
        return {}
    if not isinstance(section, dict):
        _fail(where or "the file", f"must be a mapping, not {type(section).__name__}")
    for key in section:
        name = f"{where}.{key}" if where else str(key)
        if name in _UNSUPPORTED:
            _fail(name, f"is not supported by laios; {_UNSUPPORTED[name]}")
        if key not in known:
            _fail(name, f"is not a web configuration setting (known: {', '.join(known)})")
    return section


def _named_stream(text: str, source: str) -> io.StringIO:
    """``text`` to read, named ``source`` (cut short, see :func:`_shown`) in the position of
    a YAML error."""
    stream = io.StringIO(text)
    stream.name = _shown(source)
    return stream


def _check_depth(yaml: Any, stream: io.StringIO) -> None:
    """Raise a ``YAMLError`` when ``stream`` nests lists and mappings more than
    :data:`_DEEPEST` levels deep, reading its events only that far: the depth is then bounded
    by this check, not by the interpreter's recursion limit (which some libraries raise)."""
    depth = 0
    for event in yaml.parse(stream, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > _DEEPEST:
                raise yaml.MarkedYAMLError(
                    problem=f"nested more than {_DEEPEST} levels deep",
                    problem_mark=event.start_mark,
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _yaml_loader(yaml: Any) -> Any:
    """A safe loader that refuses a key written twice (a second user would hide the first),
    a key that is a list or mapping, and merge keys that copy more than :data:`_MOST_MERGED`
    keys in all.

    Merge keys (``<<: *base``) are YAML's, which exporter-toolkit reads too: PyYAML's safe
    loader merges them; a key written beside a merge key wins over a merged one, as YAML says.
    """

    def refuse(problem: str, node: Any) -> NoReturn:
        raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark)

    class _StrictLoader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML ships no types
        def __init__(self, stream: Any) -> None:
            super().__init__(stream)
            # Each mapping's number of keys once merged, by id of its node (the nodes live as
            # long as the loader), and the keys merge keys have copied so far.
            self._sizes: dict[int, int | None] = {}
            self._merged = 0

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            if isinstance(node, yaml.MappingNode):
                self._checked_size(node)
            return super().construct_mapping(node, deep=deep)

        def flatten_mapping(self, node: Any) -> None:
            """Merge the mappings merge keys name into ``node``, as YAML says, whatever
            PyYAML's version: of a list of merged mappings, the first that has a key gives
            it, and a key written beside the merge key wins over every merged one.

            (PyYAML 6.0.4 tells merged keys apart by the identity of their text, so a key
            given by two merged mappings could take the later one's value.)
            """
            merged: list[tuple[Any, Any]] = []
            taken: set[Any] = set()
            own: list[tuple[Any, Any]] = []
            for key_node, value_node in node.value:
                if key_node.tag != _MERGE_TAG:
                    if key_node.tag == "tag:yaml.org,2002:value":  # (as PyYAML does)
                        key_node.tag = "tag:yaml.org,2002:str"
                    own.append((key_node, value_node))
                    continue
                sources = [value_node]
                if isinstance(value_node, yaml.SequenceNode):
                    sources = value_node.value
                elif not isinstance(value_node, yaml.MappingNode):
                    refuse(
                        "a merge key (<<) takes a mapping or a list of mappings, "
                        f"not a {value_node.id}",
                        value_node,
                    )
                for source in sources:
                    if not isinstance(source, yaml.MappingNode):
                        refuse(
                            f"a merge key's list (<<: [...]) holds mappings, not a {source.id}",
                            source,
                        )
                    self.flatten_mapping(source)
                    for pair in source.value:
                        # (keys were checked to be plain values as the mapping was sized)
                        key = self.construct_object(pair[0], deep=True)
                        if key not in taken:
                            taken.add(key)
                            merged.append(pair)
            node.value = merged + own

        def _checked_size(self, node: Any) -> int:
            """The number of keys of mapping ``node`` once merged, refusing a key written
            twice in it (``<<`` included), a key that is a list or mapping, and a merge that
            takes the keys copied past :data:`_MOST_MERGED`.

            Each mapping is checked once, before PyYAML merges into it (which rewrites its
            keys, and copies the merged ones: what the limit counts).
            """
            if id(node) in self._sizes:
                size = self._sizes[id(node)]
                if size is None:
                    refuse("a mapping merges itself (<<: names the mapping it is in)", node)
                return size
            self._sizes[id(node)] = None  # (being checked)
            seen: set[Any] = set()
            own = copied = 0
            for key_node, value_node in node.value:
                if key_node.tag == _MERGE_TAG:
                    key = "<<"
                    merged = [value_node]
                    if isinstance(value_node, yaml.SequenceNode):
                        merged = value_node.value
                    # (what is no mapping is refused by PyYAML's merge, saying what it expects)
                    copied += sum(
                        self._checked_size(each)
                        for each in merged
                        if isinstance(each, yaml.MappingNode)
                    )
                else:
                    key = self.construct_object(key_node, deep=True)
                    try:
                        hash(key)
                    except TypeError:
                        refuse(f"a key must be a plain value, not a {type(key).__name__}", key_node)
                    own += 1
                if key in seen:
                    refuse(f"{key!r} is given twice", key_node)
                seen.add(key)
            self._merged += copied
            if self._merged > _MOST_MERGED:
                refuse(
                    f"merge keys (<<) copy more than {_MOST_MERGED} keys in all: write the "
                    "keys out instead of merging merges",
                    node,
                )
            self._sizes[id(node)] = own + copied
            return own + copied

    return _StrictLoader


def _read_tokens(where: str, path: str) -> list[str]:
    # (utf-8-sig: a byte order mark, as some Windows editors write, is not part of a token.)
    text = _read_whole(where, path).decode("utf-8-sig", errors="replace")
    tokens = [
        _check_token(f"{where} {_shown(path)}, line {number}", line.strip())
        for number, line in enumerate(text.splitlines(), 1)
        if line.strip()
    ]
    if not tokens:
        _fail(where, f"{_shown(path)} holds no token")
    return tokens


def load_web_config(path: str | os.PathLike[str]) -> WebConfig:
    """Read a web configuration file (the exporter-toolkit format) into a :class:`WebConfig`.

    The keys are exporter-toolkit's (``tls_server_config``, ``basic_auth_users``,
    ``http_server_config``) plus laios' ``bearer_token_file``: a file of accepted bearer
    tokens, one per line. Relative file names are taken from the configuration file's
    directory. An empty file configures nothing. The file and ``bearer_token_file`` are read
    once, so either may be a pipe (``/dev/stdin``), and may hold at most 1 MiB each (a file
    that never ends, such as ``/dev/zero``, is refused). Needs PyYAML (and bcrypt for
    ``basic_auth_users``): ``pip install 'laios[web]'``.

    Args:
        path: The YAML file.

    Returns:
        The checked configuration.

    Raises:
        WebConfigError: When the file cannot be read or parsed, is larger than 1 MiB, has an
            unknown or unsupported key, a value of the wrong kind, or names a file that cannot
            be used (the message starts with the file name and names the setting).
        ImportError: When PyYAML (or bcrypt, for ``basic_auth_users``) is not installed.
    """
    yaml = _require("yaml", "PyYAML", "Reading a web configuration file")
    source = _path("web_config", path)
    content = _read_whole("web_config", source)
    try:
        text = content.decode("utf-8")
        _check_depth(yaml, _named_stream(text, source))
        document = yaml.load(_named_stream(text, source), Loader=_yaml_loader(yaml))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise WebConfigError(f"{_shown(source)}: not valid YAML: {exc}") from None
    except RecursionError:
        raise WebConfigError(f"{_shown(source)}: not valid YAML: nested too deeply") from None
    directory = Path(source).parent

    def near(value: Any, where: str) -> str:
        return str(directory / _path(where, value))

    try:
        top = _only("", document, _TOP_KEYS)
        tls = None
        if top.get("tls_server_config") is not None:
            section = _only("tls_server_config", top["tls_server_config"], _TLS_KEYS)
            settings = dict(section)
            for key in ("cert_file", "key_file", "client_ca_file"):
                if section.get(key) is not None:
                    settings[key] = near(section[key], f"tls_server_config.{key}")
            for key in ("cert_file", "key_file"):
                if key not in settings:
                    _fail("tls_server_config", f"{key} is required")
            tls = TLSServerConfig(**settings)
        http = _only("http_server_config", top.get("http_server_config"), ("http2", "headers"))
        if "http2" in http and not isinstance(http["http2"], bool):
            _fail("http_server_config.http2", "must be true or false")
        tokens: list[str] = []
        if top.get("bearer_token_file") is not None:
            token_file = near(top["bearer_token_file"], "bearer_token_file")
            tokens = _read_tokens("bearer_token_file", token_file)
        # Nothing there (``basic_auth_users:``) is none; an empty value of another kind ("",
        # [], an unfilled template) is refused by WebConfig like a full one.
        users, headers = top.get("basic_auth_users"), http.get("headers")
        return WebConfig(
            tls_server_config=tls,
            basic_auth_users={} if users is None else users,
            bearer_tokens=tokens,
            headers={} if headers is None else headers,
        )
    except WebConfigError as exc:
        raise WebConfigError(f"{_shown(source)}: {exc}") from None
