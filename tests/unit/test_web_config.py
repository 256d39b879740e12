"""The web configuration (exporter-toolkit's file, and WebConfig): a bad one fails at the call.

Every mistake raises WebConfigError naming the setting at fault; none echoes a secret.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import re
import ssl
import sys
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from odd_values import OddText, Unusable
from tls_certs import Authority, Issued, LowSecurityLevel, authority, encrypted_key

from laios.execution._tls import ReloadingContext
from laios.execution.web import (
    TLSServerConfig,
    WebConfig,
    WebConfigError,
    hash_password,
    load_web_config,
)

bcrypt = pytest.importorskip("bcrypt")
pytest.importorskip("yaml")

TOKEN = "b3f6c1d2e4a5968778695a4b3c2d1e0f"
#: A password hash from exporter-toolkit's documentation ("$2y$", written by htpasswd).
HTPASSWD_HASH = "$2y$10$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7zG"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Authority, Issued]:
    directory = tmp_path_factory.mktemp("pki")
    ca = authority(directory)
    return directory, ca, ca.issue(directory, "server", server=True)


def write(directory: Path, text: str, name: str = "web.yml") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def test_the_documented_example_file_loads(pki: tuple[Path, Authority, Issued]) -> None:
    """TLS with client certificates, a bcrypt user, a token file and headers: all read back."""
    directory, ca, server = pki
    (directory / "token").write_text(f"{TOKEN}\n\n", encoding="utf-8")
    path = write(
        directory,
        f"""
tls_server_config:
  cert_file: {server.cert_file.name}
  key_file: {server.key_file.name}
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: {ca.cert_file.name}
  min_version: TLS13
http_server_config:
  http2: false
  headers:
    X-Frame-Options: deny
basic_auth_users:
  prometheus: {HTPASSWD_HASH}
bearer_token_file: token
""",
    )
    config = load_web_config(path)
    assert config.tls_server_config is not None
    assert config.tls_server_config.cert_file == str(server.cert_file)  # relative to the file
    assert config.tls_server_config.min_version == "TLS13"
    assert config.tls_server_config.requires_client_certificate
    assert dict(config.basic_auth_users) == {"prometheus": HTPASSWD_HASH}
    assert config.bearer_tokens == (TOKEN,)
    assert dict(config.headers) == {"X-Frame-Options": "deny"}
    assert config.authenticates


def test_an_empty_file_configures_nothing(tmp_path: Path) -> None:
    """An empty file is a configuration without TLS or authentication, as in exporter-toolkit."""
    config = load_web_config(write(tmp_path, ""))
    assert config == WebConfig()
    assert not config.authenticates


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    """A web configuration path that does not exist fails naming it."""
    with pytest.raises(WebConfigError, match=r"web_config: .*nope\.yml does not exist"):
        load_web_config(tmp_path / "nope.yml")


def test_an_unknown_key_is_refused_with_the_known_ones(tmp_path: Path) -> None:
    """A misspelt key fails, naming it and the keys there are."""
    path = write(tmp_path, "basic_auth_user:\n  alice: x\n")
    with pytest.raises(WebConfigError, match=r"basic_auth_user: is not a web config.*known:"):
        load_web_config(path)


def test_an_unknown_tls_key_is_refused(pki: tuple[Path, Authority, Issued]) -> None:
    """A misspelt key inside tls_server_config fails with its full name."""
    directory, _, server = pki
    path = write(
        directory,
        f"tls_server_config:\n  cert_file: {server.cert_file}\n  key_file: {server.key_file}\n"
        "  min_versoin: TLS13\n",
        "typo.yml",
    )
    with pytest.raises(WebConfigError, match=r"tls_server_config\.min_versoin: is not"):
        load_web_config(path)


@pytest.mark.parametrize(
    ("text", "setting"),
    [
        ("rate_limit:\n  interval: 1s\n  burst: 20\n", "rate_limit"),
        ("tls_server_config:\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n", "cipher_suites"),
        ("tls_server_config:\n  client_allowed_sans: [prometheus]\n", "client_allowed_sans"),
        ("tls_server_config:\n  cert: '-----BEGIN CERTIFICATE-----'\n", "cert"),
    ],
)
def test_an_unsupported_exporter_toolkit_key_is_refused(
    tmp_path: Path, text: str, setting: str
) -> None:
    """exporter-toolkit settings laios does not implement fail rather than pass unenforced."""
    with pytest.raises(WebConfigError, match=rf"{setting}: is not supported by laios"):
        load_web_config(write(tmp_path, text))


def test_a_user_given_twice_is_refused(tmp_path: Path) -> None:
    """A user written twice fails instead of the second silently replacing the first."""
    path = write(tmp_path, f"basic_auth_users:\n  a: {HTPASSWD_HASH}\n  a: {HTPASSWD_HASH}\n")
    with pytest.raises(WebConfigError, match="'a' is given twice"):
        load_web_config(path)


def test_invalid_yaml_is_refused(tmp_path: Path) -> None:
    """A file that is not YAML fails naming the file."""
    path = write(tmp_path, "basic_auth_users: [unclosed\n")
    with pytest.raises(WebConfigError, match="not valid YAML"):
        load_web_config(path)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("basic_auth_users: [unclosed\n", "not valid YAML"),
        ("[" * 100, "not valid YAML: nested more than 64 levels deep"),
        ("no_such_key: 1\n", "no_such_key"),
    ],
    ids=["not-yaml", "deep", "unknown-key"],
)
def test_a_configuration_file_of_a_long_name_is_described_briefly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, problem: str
) -> None:
    """A file of a long name (thousands of characters, within the system's limit) that is
    refused is named cut short: its whole name was quoted, twice in a YAML error."""
    monkeypatch.chdir(tmp_path)
    write(tmp_path, text)
    path = "./" * 1500 + "web.yml"
    with pytest.raises(WebConfigError) as caught:
        load_web_config(path)
    message = str(caught.value)
    assert message.startswith("././")
    assert problem in message
    assert len(message) <= 1000, message[:1000]


#: A file name holding what a terminal would act on: an escape sequence clearing the screen,
#: a line break, a right-to-left override.
ODD_NAME = "web\x1b[2J\nx\u202e.yml"


def assert_named_printably(message: str, path: Path) -> None:
    """``message`` names ``path`` as its repr writes it (``'.../web\\x1b[2J\\nx...'``), and
    holds none of its odd characters raw (a YAML error has line breaks of its own)."""
    assert repr(str(path)) in message
    assert ODD_NAME not in message
    assert "\x1b" not in message
    assert "\u202e" not in message


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (None, "does not exist"),
        ("basic_auth_users: [unclosed\n", "not valid YAML"),
        ("no_such_key: 1\n", "no_such_key"),
        ("bearer_token_file: missing-token\n", "does not exist"),
    ],
    ids=["missing", "not-yaml", "unknown-key", "missing-token-file"],
)
def test_a_configuration_file_of_an_unprintable_name_is_described_printably(
    tmp_path: Path, text: str | None, problem: str
) -> None:
    """A file whose name holds a control character (an escape sequence, a line break) or a
    right-to-left override is named printably, as its repr escapes it: the name reached the
    message raw, where a terminal showing it would act on it."""
    path = tmp_path / ODD_NAME
    if text is not None:
        write(tmp_path, text, ODD_NAME)
    with pytest.raises(WebConfigError) as caught:
        load_web_config(path)
    message = str(caught.value)
    assert problem in message
    assert_named_printably(message, path)


def test_a_tls_file_of_an_unprintable_name_is_described_printably(
    pki: tuple[Path, Authority, Issued], tmp_path: Path
) -> None:
    """A certificate, key or CA file named with a control character is named printably."""
    _, _, server = pki
    odd = tmp_path / ODD_NAME
    with pytest.raises(WebConfigError) as missing:
        TLSServerConfig(odd, server.key_file)
    odd.write_text("not a certificate\n", encoding="utf-8")
    with pytest.raises(WebConfigError) as unusable:
        TLSServerConfig(odd, server.key_file)
    with pytest.raises(WebConfigError) as no_ca:
        TLSServerConfig(
            server.cert_file,
            server.key_file,
            client_auth_type="RequireAndVerifyClientCert",
            client_ca_file=odd,
        )
    for caught in (missing, unusable, no_ca):
        assert_named_printably(str(caught.value), odd)


def test_a_configuration_file_of_an_ordinary_name_is_named_as_it_is(tmp_path: Path) -> None:
    """A printable name, of letters of any script, is shown as it is, without quotes."""
    path = write(tmp_path, "no_such_key: 1\n", "café 設定.yml")
    with pytest.raises(WebConfigError) as caught:
        load_web_config(path)
    assert str(caught.value).startswith(f"{path}: no_such_key: ")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("? [a, b]\n: 1\n", "a key must be a plain value"),
        ("basic_auth_users:\n  ? {x: 1}\n  : y\n", "a key must be a plain value"),
        ("[" * 100_000, "nested more than 64 levels deep"),
        ("{a: " * 65, "nested more than 64 levels deep"),
        ("".join(f"{' ' * level}k{level}:\n" for level in range(65)), "more than 64 levels"),
    ],
    ids=["list-key", "mapping-key", "deep", "deep-flow-mappings", "deep-block-mappings"],
)
def test_yaml_a_configuration_cannot_hold_is_refused(
    tmp_path: Path, text: str, problem: str
) -> None:
    """A key that is a list or mapping, or collections nested past 64 levels, fail with
    WebConfigError naming the file (not TypeError or RecursionError)."""
    path = write(tmp_path, text)
    with pytest.raises(WebConfigError, match=rf"web\.yml: not valid YAML.*{problem}"):
        load_web_config(path)


def test_a_deep_file_is_refused_whatever_the_recursion_limit(tmp_path: Path) -> None:
    """The depth is bounded by the file's reader, not by the interpreter's recursion limit:
    with a limit raised (as some libraries do), 100,000 brackets took PyYAML minutes to
    refuse (its scanner is quadratic in the depth it reaches)."""
    path = write(tmp_path, "[" * 100_000)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(20_000)
    try:
        with pytest.raises(WebConfigError, match="nested more than 64 levels deep"):
            load_web_config(path)
    finally:
        sys.setrecursionlimit(limit)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            'basic_auth_users: ""\n',
            "basic_auth_users: must map user names to bcrypt hashes, not str",
        ),
        (
            "basic_auth_users: []\n",
            "basic_auth_users: must map user names to bcrypt hashes, not list",
        ),
        ("basic_auth_users: false\n", "basic_auth_users: must map .* not bool"),
        ("basic_auth_users: 0\n", "basic_auth_users: must map .* not int"),
        ("http_server_config:\n  headers: []\n", "headers: must map header names .* not list"),
        ('http_server_config:\n  headers: ""\n', "headers: must map header names .* not str"),
    ],
    ids=[
        "users-empty-text",
        "users-empty-list",
        "users-false",
        "users-0",
        "headers-list",
        "headers-text",
    ],
)
def test_an_empty_value_of_the_wrong_kind_is_refused(
    tmp_path: Path, text: str, problem: str
) -> None:
    """An empty value that is not a mapping (an unfilled template: ``""``, ``[]``) is refused
    like a full one, not read as no users or no headers; only an empty mapping or nothing
    at all means none."""
    with pytest.raises(WebConfigError, match=problem):
        load_web_config(write(tmp_path, text))
    for empty in (
        "basic_auth_users: {}\n",
        "basic_auth_users:\n",
        "http_server_config:\n  headers:\n",
    ):
        assert not load_web_config(write(tmp_path, empty)).authenticates


def test_a_plaintext_password_is_refused_without_echoing_it(tmp_path: Path) -> None:
    """A password instead of its bcrypt hash fails, says how to hash it, and never shows it."""
    path = write(tmp_path, "basic_auth_users:\n  prometheus: hunter2-secret\n")
    with pytest.raises(WebConfigError) as caught:
        load_web_config(path)
    message = str(caught.value)
    assert "basic_auth_users.prometheus: is not a bcrypt hash" in message
    assert "hash_password" in message
    assert "hunter2" not in message


def test_a_missing_certificate_is_named(pki: tuple[Path, Authority, Issued]) -> None:
    """A cert_file that does not exist fails naming the setting and the path."""
    directory, _, server = pki
    with pytest.raises(WebConfigError, match=r"tls_server_config\.cert_file: .*gone\.crt does"):
        TLSServerConfig(directory / "gone.crt", server.key_file)


def test_file_names_given_as_str_enum_members_are_their_text(
    pki: tuple[Path, Authority, Issued], tmp_path: Path
) -> None:
    """A file name given as a member of a ``(str, Enum)`` (the configuration file's, or a TLS
    file's) is the path it holds, not the member's name: the files are found and read."""
    _directory, _ca, server = pki
    files = enum.Enum(  # type: ignore[misc]
        "Files",
        {"CERT": str(server.cert_file), "KEY": str(server.key_file)},
        type=str,
    )
    config = TLSServerConfig(cert_file=files.CERT, key_file=files.KEY)
    assert type(config.cert_file) is str
    assert config.cert_file == str(server.cert_file)
    assert config.key_file == str(server.key_file)
    web = enum.Enum(  # type: ignore[misc]
        "Web", {"FILE": str(write(tmp_path, "bearer_token_file: token\n"))}, type=str
    )
    (tmp_path / "token").write_text(f"{TOKEN}\n", encoding="utf-8")
    assert load_web_config(web.FILE).bearer_tokens == (TOKEN,)


def test_an_unreadable_key_is_named(pki: tuple[Path, Authority, Issued], tmp_path: Path) -> None:
    """A key_file that cannot be read (a directory: unreadable even for root) is named."""
    _, _, server = pki
    with pytest.raises(WebConfigError, match=r"key_file: .* is a directory"):
        TLSServerConfig(server.cert_file, tmp_path)


def test_a_ca_file_that_is_a_directory_is_named(
    pki: tuple[Path, Authority, Issued], tmp_path: Path
) -> None:
    """A client_ca_file that is a directory is refused naming the setting, as a key_file that
    is one is; it raised Python's IsADirectoryError instead of a WebConfigError."""
    _, _, server = pki
    with pytest.raises(WebConfigError, match=r"client_ca_file: .* is a directory, not a file"):
        TLSServerConfig(
            server.cert_file,
            server.key_file,
            client_auth_type="RequireAndVerifyClientCert",
            client_ca_file=tmp_path,
        )


def test_a_key_of_another_certificate_is_refused(pki: tuple[Path, Authority, Issued]) -> None:
    """A certificate with someone else's key fails naming both files."""
    directory, ca, server = pki
    other = ca.issue(directory, "other", server=True)
    with pytest.raises(WebConfigError, match=r"cannot use cert_file .* with key_file"):
        TLSServerConfig(server.cert_file, other.key_file)


def test_an_encrypted_key_is_refused_without_a_prompt(
    pki: tuple[Path, Authority, Issued], tmp_path: Path
) -> None:
    """An encrypted key fails at once (OpenSSL would otherwise ask on the terminal)."""
    _, _, server = pki
    key = encrypted_key(tmp_path / "locked.key", b"passphrase")
    with pytest.raises(WebConfigError, match="the key is encrypted"):
        TLSServerConfig(server.cert_file, key)


def test_client_certificates_need_a_ca(pki: tuple[Path, Authority, Issued]) -> None:
    """RequireAndVerifyClientCert without client_ca_file fails."""
    _, _, server = pki
    with pytest.raises(WebConfigError, match="client_ca_file: client_auth_type"):
        TLSServerConfig(
            server.cert_file, server.key_file, client_auth_type="RequireAndVerifyClientCert"
        )


def test_a_ca_without_a_client_auth_policy_is_refused(pki: tuple[Path, Authority, Issued]) -> None:
    """client_ca_file with NoClientCert fails, as in exporter-toolkit."""
    _, ca, server = pki
    with pytest.raises(WebConfigError, match="no client certificate is asked for"):
        TLSServerConfig(server.cert_file, server.key_file, client_ca_file=ca.cert_file)


def test_unverified_client_certificates_are_refused(pki: tuple[Path, Authority, Issued]) -> None:
    """RequireAnyClientCert (a certificate taken unverified) fails with what to use instead."""
    _, ca, server = pki
    with pytest.raises(WebConfigError, match="use RequireAndVerifyClientCert"):
        TLSServerConfig(
            server.cert_file,
            server.key_file,
            client_auth_type="RequireAnyClientCert",  # type: ignore[arg-type]
            client_ca_file=ca.cert_file,
        )


def test_a_ca_file_without_certificates_is_refused(
    pki: tuple[Path, Authority, Issued], tmp_path: Path
) -> None:
    """A client_ca_file holding no certificate fails naming it."""
    _, _, server = pki
    empty = tmp_path / "empty.pem"
    empty.write_text("not a certificate\n", encoding="utf-8")
    with pytest.raises(WebConfigError, match=r"client_ca_file: .*holds no usable PEM"):
        TLSServerConfig(
            server.cert_file,
            server.key_file,
            client_auth_type="RequireAndVerifyClientCert",
            client_ca_file=empty,
        )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"min_version": "TLS14"}, r"min_version: must be one of TLS10, TLS11, TLS12, TLS13"),
        ({"min_version": "TLS13", "max_version": "TLS12"}, "TLS13 is newer than max_version"),
        ({"prefer_server_cipher_suites": "yes"}, "must be true or false"),
    ],
)
def test_bad_tls_settings_are_refused(
    pki: tuple[Path, Authority, Issued], settings: dict[str, Any], message: str
) -> None:
    """TLS versions outside the list, or in the wrong order, fail naming the setting."""
    _, _, server = pki
    with pytest.raises(WebConfigError, match=message):
        TLSServerConfig(server.cert_file, server.key_file, **settings)


#: Setting TLS 1.0 or 1.1 on an ssl context is deprecated in Python 3.10 and later.
OLD_TLS_DEPRECATED = "ignore:ssl.TLSVersion.TLSv1:DeprecationWarning"


@pytest.mark.filterwarnings(OLD_TLS_DEPRECATED)
@pytest.mark.parametrize(
    ("settings", "field", "version"),
    [
        ({"min_version": "TLS10"}, "min_version", "TLS10"),
        ({"min_version": "TLS11"}, "min_version", "TLS11"),
        ({"min_version": "TLS10", "max_version": "TLS10"}, "min_version", "TLS10"),
        ({"min_version": "TLS11", "max_version": "TLS11"}, "min_version", "TLS11"),
    ],
)
def test_a_tls_version_openssl_will_not_negotiate_is_refused(
    pki: tuple[Path, Authority, Issued], settings: dict[str, Any], field: str, version: str
) -> None:
    """TLS 1.0 and 1.1, which OpenSSL 3 negotiates at no default security level, fail at once,
    naming the setting, the version and the OpenSSL, rather than with every handshake later."""
    _, _, server = pki
    with pytest.raises(WebConfigError) as caught:
        TLSServerConfig(server.cert_file, server.key_file, **settings)
    message = str(caught.value)
    assert message.startswith(f"tls_server_config.{field}: {version} ")
    assert ssl.OPENSSL_VERSION in message
    assert "use TLS12 or newer" in message


@pytest.mark.filterwarnings(OLD_TLS_DEPRECATED)
def test_a_refused_tls_version_is_refused_with_client_certificates_too(
    pki: tuple[Path, Authority, Issued],
) -> None:
    """With RequireAndVerifyClientCert the same version is refused for the same reason."""
    _, ca, server = pki
    with pytest.raises(WebConfigError, match=r"min_version: TLS10 .*use TLS12 or newer"):
        TLSServerConfig(
            server.cert_file,
            server.key_file,
            client_auth_type="RequireAndVerifyClientCert",
            client_ca_file=ca.cert_file,
            min_version="TLS10",
        )


@pytest.mark.filterwarnings(OLD_TLS_DEPRECATED)
def test_a_file_asking_for_tls_1_0_is_refused(pki: tuple[Path, Authority, Issued]) -> None:
    """The same check applies to a web configuration file's tls_server_config."""
    directory, _, server = pki
    path = write(
        directory,
        f"tls_server_config:\n  cert_file: {server.cert_file.name}\n"
        f"  key_file: {server.key_file.name}\n  max_version: TLS11\n  min_version: TLS10\n",
        name="old-tls.yml",
    )
    with pytest.raises(WebConfigError, match=r"tls_server_config\.min_version: TLS10 "):
        load_web_config(path)


@pytest.mark.filterwarnings(OLD_TLS_DEPRECATED)
@pytest.mark.parametrize("client_auth_type", ["NoClientCert", "RequireAndVerifyClientCert"])
def test_a_tls_version_openssl_negotiates_is_accepted(
    pki: tuple[Path, Authority, Issued], client_auth_type: str
) -> None:
    """Only what OpenSSL refuses is refused: TLS 1.0 at security level 0 is accepted, with
    client certificates required too (the check does not take their absence for a refusal)."""
    _, ca, server = pki
    tls = LowSecurityLevel(
        server.cert_file,
        server.key_file,
        client_auth_type=client_auth_type,  # type: ignore[arg-type]
        client_ca_file=ca.cert_file if client_auth_type != "NoClientCert" else None,
        min_version="TLS10",
        max_version="TLS10",
    )
    assert tls.ssl_context().maximum_version == ssl.TLSVersion.TLSv1


@pytest.mark.parametrize(
    ("min_version", "max_version"), [("TLS12", "TLS13"), ("TLS12", "TLS12"), ("TLS13", "TLS13")]
)
def test_tls12_and_tls13_are_accepted(
    pki: tuple[Path, Authority, Issued], min_version: str, max_version: str
) -> None:
    """The versions OpenSSL 3 negotiates are accepted as before."""
    _, _, server = pki
    tls = TLSServerConfig(
        server.cert_file,
        server.key_file,
        min_version=min_version,  # type: ignore[arg-type]
        max_version=max_version,  # type: ignore[arg-type]
    )
    assert tls.ssl_context().minimum_version == getattr(ssl.TLSVersion, "TLSv1_" + min_version[-1])


def test_ssl_context_follows_the_settings(pki: tuple[Path, Authority, Issued]) -> None:
    """The context requires client certificates and the minimum TLS version asked for."""
    _, ca, server = pki
    tls = TLSServerConfig(
        server.cert_file,
        server.key_file,
        client_auth_type="RequireAndVerifyClientCert",
        client_ca_file=ca.cert_file,
        min_version="TLS13",
    )
    context = tls.ssl_context()
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.minimum_version == ssl.TLSVersion.TLSv1_3


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("short-token", "is 11 characters long: use at least 16"),
        ("has spaces in the middle of it", "is not a bearer token"),
    ],
)
def test_bad_bearer_tokens_are_refused_without_echoing_them(token: str, message: str) -> None:
    """A short token, or one that cannot be sent in a header, fails; the message hides it."""
    with pytest.raises(WebConfigError, match=message) as caught:
        WebConfig(bearer_tokens=[token])
    assert token not in str(caught.value)


def test_an_empty_token_file_is_refused(tmp_path: Path) -> None:
    """A bearer_token_file with no token in it fails naming the file."""
    (tmp_path / "token").write_text("\n  \n", encoding="utf-8")
    path = write(tmp_path, "bearer_token_file: token\n")
    with pytest.raises(WebConfigError, match=r"bearer_token_file: .*token holds no token"):
        load_web_config(path)


def test_a_bad_line_of_the_token_file_is_named(tmp_path: Path) -> None:
    """A token file line that is not a token fails naming its line number."""
    (tmp_path / "token").write_text(f"{TOKEN}\nshort\n", encoding="utf-8")
    with pytest.raises(WebConfigError, match=r"token, line 2: is 5 characters long"):
        load_web_config(write(tmp_path, "bearer_token_file: token\n"))


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"X-Powered-By": "laios"}, "'X-Powered-By' cannot be set"),
        ({"X-Frame-Options": "allow"}, "must be one of deny, sameorigin"),
        (
            {"Content-Security-Policy": "default-src 'self'; report-uri https://例え.jp/csp"},
            "printable ASCII",
        ),
        ({"Content-Security-Policy": "default-src 'self'\r\nX-Injected: 1"}, "printable ASCII"),
    ],
)
def test_headers_are_checked_as_exporter_toolkit_does(
    headers: dict[str, str], message: str
) -> None:
    """Only exporter-toolkit's headers may be set, with their allowed values."""
    with pytest.raises(WebConfigError, match=message):
        WebConfig(headers=headers)


def test_repr_shows_no_secret() -> None:
    """Neither token nor password hash appears in the configuration's repr."""
    config = WebConfig(basic_auth_users={"p": HTPASSWD_HASH}, bearer_tokens=[TOKEN])
    assert TOKEN not in repr(config)
    assert HTPASSWD_HASH not in repr(config)


def test_hash_password_makes_a_hash_the_config_accepts() -> None:
    """hash_password's output is a bcrypt hash of the password that WebConfig takes."""
    hashed = hash_password("correct horse", cost=4)
    assert bcrypt.checkpw(b"correct horse", hashed.encode())
    assert WebConfig(basic_auth_users={"prometheus": hashed}).authenticates


def test_hash_password_refuses_what_bcrypt_would_cut() -> None:
    """A password over bcrypt's 72 bytes is refused rather than silently shortened."""
    with pytest.raises(ValueError, match="1 to 72 bytes"):
        hash_password("x" * 73, cost=4)


def test_missing_yaml_names_the_pip_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Without PyYAML, loading a file says which extra to install."""
    monkeypatch.setitem(sys.modules, "yaml", None)  # makes "import yaml" fail
    with pytest.raises(ImportError, match=r"PyYAML: pip install 'laios\[web\]'"):
        load_web_config(write(tmp_path, ""))


def test_missing_bcrypt_names_the_pip_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without bcrypt, basic_auth_users says which extra to install."""
    monkeypatch.setitem(sys.modules, "bcrypt", None)  # makes "import bcrypt" fail
    with pytest.raises(ImportError, match=r"bcrypt package: pip install 'laios\[web\]'"):
        WebConfig(basic_auth_users={"prometheus": HTPASSWD_HASH})


def test_a_token_with_a_trailing_newline_is_refused_saying_so() -> None:
    """A token read from a file with its newline fails saying there is white space around
    it, not only which characters a token may have; the message hides the token."""
    with pytest.raises(WebConfigError, match=r"white space around it") as caught:
        WebConfig(bearer_tokens=[TOKEN + "\n"])
    assert TOKEN not in str(caught.value)


def test_a_hash_with_a_trailing_newline_is_not_called_a_password() -> None:
    """A bcrypt hash read from a file with its newline fails saying there is white space
    around it, not that a plain password was written."""
    with pytest.raises(WebConfigError, match=r"white space around it") as caught:
        WebConfig(basic_auth_users={"prometheus": HTPASSWD_HASH + "\n"})
    assert "never the password" not in str(caught.value)
    assert HTPASSWD_HASH not in str(caught.value)


def test_a_token_file_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    """A token file saved with a UTF-8 byte order mark (as some Windows editors write it)
    gives its token, not a refusal of line 1."""
    (tmp_path / "token").write_bytes(b"\xef\xbb\xbf" + TOKEN.encode() + b"\r\n")
    config = load_web_config(write(tmp_path, "bearer_token_file: token\n"))
    assert list(config.bearer_tokens) == [TOKEN]


def test_users_of_different_bcrypt_costs_are_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Hashes of different costs get a warning: a known user of the lower cost answers faster
    than an unknown name, so the time of a check tells which users exist."""
    low, high = hash_password("one", cost=4), hash_password("two", cost=5)
    with caplog.at_level("WARNING", logger="laios"):
        WebConfig(basic_auth_users={"alice": low, "bob": high})
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1
    assert "'alice' (4)" in warnings[0]
    assert "highest (5)" in warnings[0]
    assert "bob" not in warnings[0]
    assert low not in warnings[0]
    assert high not in warnings[0]


def test_users_of_one_bcrypt_cost_get_no_warning(caplog: pytest.LogCaptureFixture) -> None:
    """Hashes of one cost: no warning (the time of a check tells nothing)."""
    with caplog.at_level("WARNING", logger="laios"):
        same = {"alice": hash_password("a", cost=4), "bob": hash_password("b", cost=4)}
        WebConfig(basic_auth_users=same)
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


@contextlib.contextmanager
def piped(text: str) -> Iterator[str]:
    """A path that reads ``text`` from a pipe, as the ``<(...)`` of a shell gives one."""
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, text.encode("utf-8"))  # (well within a pipe's buffer)
        os.close(write_end)
        yield f"/dev/fd/{read_end}"
    finally:
        os.close(read_end)


needs_dev_fd = pytest.mark.skipif(
    not os.path.isdir("/dev/fd"), reason="needs /dev/fd, as the <(...) of a shell does"
)


@needs_dev_fd
def test_a_configuration_read_from_a_pipe_is_read_whole(tmp_path: Path) -> None:
    """A configuration given as a pipe (``<(...)``, ``/dev/stdin``) is read whole, not taken
    for an empty file that configures nothing."""
    (tmp_path / "token").write_text(f"{TOKEN}\n", encoding="utf-8")
    with piped(f"bearer_token_file: {tmp_path / 'token'}\n") as path:
        config = load_web_config(path)
    assert config.bearer_tokens == (TOKEN,)
    assert config.authenticates


@needs_dev_fd
def test_a_token_file_read_from_a_pipe_gives_its_tokens(tmp_path: Path) -> None:
    """A bearer_token_file given as a pipe gives its tokens, every character of them."""
    with piped(f"{TOKEN}\n") as token_file:
        config = load_web_config(write(tmp_path, f"bearer_token_file: {token_file}\n"))
    assert config.bearer_tokens == (TOKEN,)


@needs_dev_fd
def test_a_certificate_given_as_a_pipe_is_refused_saying_so(
    pki: tuple[Path, Authority, Issued],
) -> None:
    """The certificate, key and CA files are read again whenever they change, so a pipe cannot
    be one: it is refused as such, not as a certificate that does not match its key."""
    _, _, server = pki
    with piped(server.cert_file.read_text()) as cert_file:
        with pytest.raises(WebConfigError, match=r"cert_file: .* is not a regular file"):
            TLSServerConfig(cert_file, server.key_file)


#: The most a web configuration file or a token file may hold: 1 MiB.
MOST_READ = 1 << 20


@contextlib.contextmanager
def endless_pipe(line: str) -> Iterator[str]:
    """A path that reads ``line`` over and over from a pipe, as ``<(yes)`` gives one; the
    writer stops once the reader has closed it."""
    read_end, write_end = os.pipe()
    chunk = line.encode("utf-8") * 4096

    def write_for_ever() -> None:
        with contextlib.suppress(OSError):  # (a broken pipe: the reader has gone)
            while True:
                os.write(write_end, chunk)

    writer = threading.Thread(target=write_for_ever, daemon=True)
    writer.start()
    try:
        yield f"/dev/fd/{read_end}"
    finally:
        os.close(read_end)
        writer.join(timeout=30)
        os.close(write_end)
    assert not writer.is_alive()


def file_setting(directory: Path, setting: str, target: str) -> Path:
    """The configuration to load so that ``setting`` names ``target``: the configuration
    itself, or one whose bearer_token_file is ``target``."""
    if setting == "web_config":
        return Path(target)
    return write(directory, f"bearer_token_file: {target}\n")


@pytest.mark.parametrize("setting", ["web_config", "bearer_token_file"])
def test_a_file_over_the_size_limit_is_refused_naming_it(tmp_path: Path, setting: str) -> None:
    """A configuration or token file of more than 1 MiB is refused, naming the setting, the
    file and the limit, instead of being read into memory however big it is."""
    big = tmp_path / "big"
    padding = "# padding\n" if setting == "web_config" else "\n"
    big.write_text(padding * (MOST_READ // len(padding) + 1))
    assert big.stat().st_size > MOST_READ
    refusal = rf"{setting}: {re.escape(str(big))} holds more than 1 MiB"
    with pytest.raises(WebConfigError, match=refusal):
        load_web_config(file_setting(tmp_path, setting, str(big)))


@pytest.mark.parametrize("setting", ["web_config", "bearer_token_file"])
def test_a_file_of_exactly_the_limit_is_read(tmp_path: Path, setting: str) -> None:
    """A file of exactly 1 MiB is read whole: the limit refuses only what is larger."""
    full = tmp_path / "full"
    head = "" if setting == "web_config" else f"{TOKEN}\n"
    full.write_text(head + "\n" * (MOST_READ - len(head)))
    assert full.stat().st_size == MOST_READ
    config = load_web_config(file_setting(tmp_path, setting, str(full)))
    assert config.bearer_tokens == (() if setting == "web_config" else (TOKEN,))


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
@pytest.mark.parametrize("setting", ["web_config", "bearer_token_file"])
def test_a_device_that_never_ends_is_refused_not_read_for_ever(
    tmp_path: Path, setting: str
) -> None:
    """``/dev/zero`` (or ``/dev/urandom``) given as a file is refused after 1 MiB, naming
    the setting, instead of filling the memory until the process dies."""
    with pytest.raises(WebConfigError, match=rf"{setting}: /dev/zero holds more than 1 MiB"):
        load_web_config(file_setting(tmp_path, setting, "/dev/zero"))


@needs_dev_fd
@pytest.mark.parametrize("setting", ["web_config", "bearer_token_file"])
def test_a_pipe_that_never_ends_is_refused_not_read_for_ever(tmp_path: Path, setting: str) -> None:
    """A pipe that never ends (``<(yes)``) is refused after 1 MiB, like a device."""
    line = "# again\n" if setting == "web_config" else f"{TOKEN}\n"
    with endless_pipe(line) as path:
        refusal = rf"{setting}: {re.escape(path)} holds more than 1 MiB"
        with pytest.raises(WebConfigError, match=refusal):
            load_web_config(file_setting(tmp_path, setting, path))


def test_merge_keys_merge_as_yaml_says(tmp_path: Path) -> None:
    """A merge key (``<<: *base``), which exporter-toolkit reads, copies the keys of the
    mapping it names; a key written beside it wins over a merged one."""
    other = hash_password("other", cost=4)
    path = write(
        tmp_path,
        f"""
http_server_config:
  headers:
    <<: &hardened
      X-Frame-Options: deny
      X-Content-Type-Options: nosniff
    Content-Security-Policy: "default-src 'none'"
basic_auth_users:
  <<: [{{prometheus: {other}, grafana: {HTPASSWD_HASH}}}, {{grafana: {other}}}]
  prometheus: {HTPASSWD_HASH}
""",
    )
    config = load_web_config(path)
    assert dict(config.headers) == {
        "X-Frame-Options": "deny",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'",
    }
    # (of a list of merged mappings, the first that has a key gives it)
    assert dict(config.basic_auth_users) == {"prometheus": HTPASSWD_HASH, "grafana": HTPASSWD_HASH}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            f"basic_auth_users:\n  <<: {{a: {HTPASSWD_HASH}, a: {HTPASSWD_HASH}}}\n",
            "'a' is given twice",
        ),
        ("http_server_config:\n  <<: {http2: true}\n  <<: {http2: false}\n", "'<<' is given twice"),
        ("http_server_config: &loop\n  <<: *loop\n", "merges itself"),
        ("http_server_config:\n  <<: 5\n", "takes a mapping or a list of mappings, not a scalar"),
        ("http_server_config:\n  <<: [{http2: true}, 5]\n", "holds mappings, not a scalar"),
    ],
    ids=["twice-in-merged", "two-merge-keys", "merges-itself", "not-a-mapping", "not-mappings"],
)
def test_a_merge_key_cannot_hide_a_mistake(tmp_path: Path, text: str, problem: str) -> None:
    """A key written twice inside a merged mapping, two merge keys in one mapping, a mapping
    that merges itself and a merge of something that is not a mapping are refused, naming
    the file."""
    with pytest.raises(WebConfigError, match=rf"(?s)web\.yml: not valid YAML.*{problem}"):
        load_web_config(write(tmp_path, text))


def test_merges_of_merges_cannot_blow_up(tmp_path: Path) -> None:
    """Merge keys copy mappings, so a few lines of merges of merges could make billions of
    keys; past 10,000 copied keys the file is refused, at once and naming the reason."""
    lines = ["http_server_config:", "  headers: &m0 {X-Frame-Options: deny}"]
    lines += [
        f"_{level}: &m{level} {{<<: [{', '.join([f'*m{level - 1}'] * 10)}]}}"
        for level in range(1, 10)
    ]
    with pytest.raises(WebConfigError, match=r"not valid YAML.*merge keys .* more than 10000"):
        load_web_config(write(tmp_path, "\n".join(lines) + "\n"))


def padded(source: Path, target: Path, size: int) -> Path:
    """``target``: ``source``'s PEM text followed by blank lines up to ``size`` bytes, which
    OpenSSL reads past (a valid file, only large)."""
    text = source.read_bytes()
    target.write_bytes(text + b"\n" * (size - len(text)))
    assert target.stat().st_size == size
    return target


def test_a_ca_bundle_with_comments_beyond_ascii_is_taken(
    pki: tuple[Path, Authority, Issued], tmp_path: Path
) -> None:
    """A CA bundle whose comments are not ASCII (as in Mozilla's: ``# Issuer: ... Főtanúsítvány``)
    is taken: only its PEM blocks matter."""
    _, ca, server = pki
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes("# Főtanúsítvány\n".encode() + ca.cert_file.read_bytes())
    config = TLSServerConfig(
        server.cert_file,
        server.key_file,
        client_auth_type="RequireAndVerifyClientCert",
        client_ca_file=bundle,
    )
    assert config.ssl_context().verify_mode == ssl.CERT_REQUIRED


def test_a_ca_file_grown_after_its_size_was_looked_at_is_still_refused(
    pki: tuple[Path, Authority, Issued], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CA file is read once, at most 1 MiB and a byte of it, and that read is what is
    checked and used: a file replaced by a bigger one after its size was looked at (a renewal
    under way) is refused, where it was read whole. (Here ``os.stat`` says the file is small,
    as it was when looked at.)"""
    _, ca, server = pki
    big = padded(ca.cert_file, tmp_path / "big-ca.pem", MOST_READ + 4096)
    real_stat = os.stat

    def stat_before_the_swap(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        found = real_stat(path, *args, **kwargs)
        if os.fspath(path) != str(big):
            return found
        fields = list(found)
        fields[6] = 100  # st_size
        return os.stat_result(fields)

    monkeypatch.setattr(os, "stat", stat_before_the_swap)
    with pytest.raises(WebConfigError, match=r"client_ca_file: .* holds more than 1 MiB"):
        TLSServerConfig(
            server.cert_file,
            server.key_file,
            client_auth_type="RequireAndVerifyClientCert",
            client_ca_file=big,
        )


@pytest.mark.parametrize("setting", ["cert_file", "key_file", "client_ca_file"])
def test_a_tls_file_over_the_size_limit_is_refused_before_openssl_reads_it(
    pki: tuple[Path, Authority, Issued], tmp_path: Path, setting: str
) -> None:
    """A certificate, key or CA file of more than 1 MiB is refused, naming the setting, the
    file, the limit and the file's size, as the configuration and token files are; OpenSSL
    never reads it. (The CA file's refusal did not name its size.)"""
    _, ca, server = pki
    files = {"cert_file": server.cert_file, "key_file": server.key_file, "client_ca_file": None}
    source = ca.cert_file if setting == "client_ca_file" else files[setting]
    assert source is not None
    files[setting] = padded(source, tmp_path / "big.pem", MOST_READ + 1)
    verifying: dict[str, Any] = {}
    if setting == "client_ca_file":
        verifying = {"client_auth_type": "RequireAndVerifyClientCert"}
    refusal = (
        rf"tls_server_config\.{setting}: {re.escape(str(files[setting]))} holds more than 1 MiB"
        rf".*\({MOST_READ + 1} bytes;"
    )
    with pytest.raises(WebConfigError, match=refusal):
        TLSServerConfig(
            files["cert_file"],
            files["key_file"],
            **verifying,
            client_ca_file=files["client_ca_file"],
        )


def test_tls_files_of_exactly_the_limit_are_read(
    pki: tuple[Path, Authority, Issued], tmp_path: Path
) -> None:
    """Certificate, key and CA files of exactly 1 MiB are used: the limit refuses only what is
    larger."""
    _, ca, server = pki
    config = TLSServerConfig(
        padded(server.cert_file, tmp_path / "server.crt", MOST_READ),
        padded(server.key_file, tmp_path / "server.key", MOST_READ),
        client_auth_type="RequireAndVerifyClientCert",
        client_ca_file=padded(ca.cert_file, tmp_path / "ca.crt", MOST_READ),
    )
    assert config.ssl_context().verify_mode == ssl.CERT_REQUIRED


def test_a_renewed_certificate_over_the_size_limit_keeps_the_old_context(
    pki: tuple[Path, Authority, Issued], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A certificate that grows past 1 MiB at a renewal is refused with a warning naming the
    setting and the limit; the server goes on with the context it has."""
    _, _, server = pki
    cert_file = tmp_path / "live.crt"
    cert_file.write_bytes(server.cert_file.read_bytes())
    reloading = ReloadingContext(TLSServerConfig(cert_file, server.key_file), check_every=0)
    before = reloading.current()
    staged = padded(server.cert_file, tmp_path / "live.staged", MOST_READ + 1)
    with caplog.at_level(logging.WARNING, logger="laios.execution.server"):
        staged.replace(cert_file)
        assert reloading.current() is before
    assert "cert_file" in caplog.text
    assert "holds more than 1 MiB" in caplog.text
    assert reloading.reloads == 0


@pytest.mark.parametrize("password", [5, None, ["secret"]])
def test_hash_password_refuses_a_password_that_is_not_text_saying_so(password: Any) -> None:
    """A password that is neither text nor bytes is a TypeError naming what it got, not
    "object of type 'int' has no len()" or a length problem."""
    with pytest.raises(TypeError, match=r"password must be a str or bytes, got "):
        hash_password(password, cost=4)


class _LyingInt(int):
    """A whole number whose comparisons all answer that it is in any range."""

    def __lt__(self, other: object) -> bool:
        return False

    def __gt__(self, other: object) -> bool:
        return False

    def __le__(self, other: object) -> bool:
        return True

    def __ge__(self, other: object) -> bool:
        return True

    __hash__ = int.__hash__


@pytest.mark.parametrize("cost", [_LyingInt(-4), _LyingInt(40)], ids=repr)
def test_hash_password_judges_the_cost_by_its_value(cost: int) -> None:
    """A cost of an int class whose comparisons lie is refused by its value, with the
    ValueError of any cost out of range, not bcrypt's OverflowError (or a hash of cost 40)."""
    with pytest.raises(ValueError, match=r"^cost must be a whole number from 4 to 31, got "):
        hash_password("pw", cost=cost)


def test_hash_password_takes_a_numpy_integer_cost() -> None:
    """A NumPy integer is a whole number, as for every count of the package."""
    numpy = pytest.importorskip("numpy")
    hashed = hash_password("pw", cost=numpy.int64(4))
    assert hashed.startswith("$2b$04$")


class _Pairs(Mapping[Any, Any]):
    """A mapping kept as a list of pairs: its keys need no hash."""

    def __init__(self, *pairs: tuple[Any, Any]) -> None:
        self._pairs = list(pairs)

    def __getitem__(self, key: Any) -> Any:
        raise KeyError(key)

    def __iter__(self) -> Iterator[Any]:
        return iter([key for key, _ in self._pairs])

    def __len__(self) -> int:
        return len(self._pairs)

    def items(self) -> Any:
        return list(self._pairs)


@pytest.mark.parametrize("kind", ["object", "str"])
def test_basic_auth_users_refuses_a_user_name_that_cannot_be_read_saying_so(kind: str) -> None:
    """A user name whose str(), repr() and == raise is refused with a WebConfigError naming
    its type (an object), or taken as the text it holds (a str subclass), instead of the
    name's own RuntimeError escaping WebConfig."""
    user: Any = OddText("prometheus") if kind == "str" else Unusable()
    if kind == "str":
        config = WebConfig(basic_auth_users=_Pairs((user, HTPASSWD_HASH)))
        assert list(config.basic_auth_users) == ["prometheus"]
        assert type(next(iter(config.basic_auth_users))) is str
    else:
        with pytest.raises(WebConfigError, match=r"^basic_auth_users: <Unusable object> is not"):
            WebConfig(basic_auth_users=_Pairs((user, HTPASSWD_HASH)))


def test_basic_auth_users_quotes_a_long_user_name_cut_short() -> None:
    """A user name refused for a ':' in it is quoted cut short, not whole."""
    with pytest.raises(WebConfigError) as caught:
        WebConfig(basic_auth_users={"a:" + "x" * 100_000: HTPASSWD_HASH})
    assert len(str(caught.value)) < 1_000
