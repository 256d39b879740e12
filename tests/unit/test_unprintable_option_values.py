"""A bad option value that cannot be printed as it is still gets the option's own error.

An error message quotes the value given. Quoting an object whose ``repr`` raises would raise
that object's error instead of the option's; an int of more than 4,300 digits cannot be
turned into text at all (Python raises "Exceeds the limit (4300 digits) for integer string
conversion"); and a string read from a whole file would make a message of its length. Each
is described instead: by its type, by its size, or cut short.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from tls_certs import authority

from laios.execution import multiprocess
from laios.execution.runners import ProcessRunner
from laios.execution.server import make_asgi_app, make_wsgi_app, start_http_server
from laios.execution.store import MetricStore
from laios.execution.web import TLSServerConfig, WebConfig, WebConfigError

#: The longest message allowed here: the option, what it takes, and the value cut short.
MOST_CHARS = 600


class Unprintable:
    """A value whose ``repr`` and ``str`` raise."""

    def __repr__(self) -> str:
        raise RuntimeError("repr of a value given as an option")

    __str__ = __repr__


class Uncomparable:
    """A value whose ``==`` raises, and that has no hash: compared with the names an option
    takes, or looked up among them, it would raise its own error instead of the option's."""

    def __eq__(self, other: object) -> bool:
        raise ZeroDivisionError("== of a value given as an option")

    __hash__ = None  # type: ignore[assignment]


class UncomparableText(str):
    """A string whose ``==`` raises, and that has no hash."""

    def __eq__(self, other: object) -> bool:
        raise ZeroDivisionError("== of a value given as an option")

    __hash__ = None  # type: ignore[assignment]


def serve(**options: Any) -> None:
    """Start and stop a metrics server on a free port with ``options``."""
    options.setdefault("port", 0)
    server = start_http_server(store=MetricStore(), registry=CollectorRegistry(), **options)
    server.shutdown()


def process_runner(**options: Any) -> None:
    ProcessRunner(1, **options).shutdown()


def tls(**options: Any) -> None:
    """Build TLS settings with ``options`` (the files are checked later, when served)."""
    TLSServerConfig(**({"cert_file": "server.pem", "key_file": "server.key"} | options))


#: Calls giving one option a value, each with the name its error must say.
CALLS = [
    pytest.param("port", lambda value: serve(port=value), id="port"),
    pytest.param("host", lambda value: serve(host=value), id="host"),
    pytest.param(
        "max_connections", lambda value: serve(max_connections=value), id="max_connections"
    ),
    pytest.param("backlog", lambda value: serve(backlog=value), id="backlog"),
    pytest.param("status", lambda value: serve(status=value), id="status"),
    pytest.param("allowed_hosts", lambda value: serve(allowed_hosts=value), id="allowed_hosts"),
    pytest.param("allowed_hosts", lambda value: serve(allowed_hosts=[value]), id="allowed_host"),
    pytest.param(
        "status",
        lambda value: make_asgi_app(MetricStore(), CollectorRegistry(), status=value),
        id="asgi-status",
    ),
    pytest.param(
        "status",
        lambda value: make_wsgi_app(MetricStore(), CollectorRegistry(), status=value),
        id="wsgi-status",
    ),
    pytest.param(
        "duration_buckets", lambda value: MetricStore(duration_buckets=value), id="buckets"
    ),
    pytest.param(
        "duration_buckets", lambda value: MetricStore(duration_buckets=[value]), id="bucket"
    ),
    pytest.param(
        "queue_wait_buckets",
        lambda value: MetricStore(queue_wait_buckets=[1.0, value]),
        id="second-bucket",
    ),
    pytest.param("labels", lambda value: MetricStore(labels=value), id="labels"),
    pytest.param("label", lambda value: MetricStore(labels={"env": value}), id="label-value"),
    pytest.param("label", lambda value: MetricStore(labels={value: "prod"}), id="label-name"),
    pytest.param(
        "start_method", lambda value: process_runner(start_method=value), id="start_method"
    ),
    pytest.param("cert_file", lambda value: tls(cert_file=value), id="cert_file"),
    pytest.param("key_file", lambda value: tls(key_file=value), id="key_file"),
    pytest.param("client_auth_type", lambda value: tls(client_auth_type=value), id="client_auth"),
    pytest.param("min_version", lambda value: tls(min_version=value), id="min_version"),
    pytest.param("max_version", lambda value: tls(max_version=value), id="max_version"),
    pytest.param(
        "X-Frame-Options",
        lambda value: WebConfig(headers={"X-Frame-Options": value}),
        id="header-value",
    ),
    pytest.param("headers", lambda value: WebConfig(headers={value: "deny"}), id="header-name"),
]

VALUES = {
    "repr raises": Unprintable(),
    "int of 5,001 digits": 10**5000,
    "string of 100,000 characters": "x" * 100_000,
}

#: Values an option takes (or refuses for another option: a key_file is read after cert_file,
#: which these calls give as a file that does not exist; see
#: test_a_tls_file_of_a_long_name_is_described_briefly).
TAKEN = {
    ("max_connections", "int of 5,001 digits"),
    ("allowed_host", "string of 100,000 characters"),
    ("label-name", "string of 100,000 characters"),
    ("key_file", "string of 100,000 characters"),
}

CASES = [
    pytest.param(*call.values, value, id=f"{call.id}-{kind}")
    for call in CALLS
    for kind, value in VALUES.items()
    if (call.id, kind) not in TAKEN
]


@pytest.mark.parametrize(("name", "call", "value"), CASES)
def test_a_value_that_cannot_be_quoted_is_described_in_the_options_error(
    name: str, call: Callable[[Any], object], value: object
) -> None:
    """The call raises its own TypeError or ValueError naming the option, in a short message;
    a value whose repr raises is described by its type."""
    with pytest.raises((TypeError, ValueError)) as caught:
        call(value)
    message = str(caught.value)
    assert name in message
    assert len(message) <= MOST_CHARS, message[:MOST_CHARS]
    if isinstance(value, Unprintable):
        assert "Unprintable" in message


#: Calls giving an option that takes one of a few names a value, each with the name its error
#: must say.
CHOICES = [
    pytest.param(
        "start_method", lambda value: process_runner(start_method=value), id="start_method"
    ),
    pytest.param("client_auth_type", lambda value: tls(client_auth_type=value), id="client_auth"),
    pytest.param("min_version", lambda value: tls(min_version=value), id="min_version"),
    pytest.param("max_version", lambda value: tls(max_version=value), id="max_version"),
    pytest.param("status", lambda value: serve(status=value), id="status"),
    pytest.param(
        "status",
        lambda value: make_asgi_app(MetricStore(), CollectorRegistry(), status=value),
        id="asgi-status",
    ),
    pytest.param(
        "status",
        lambda value: make_wsgi_app(MetricStore(), CollectorRegistry(), status=value),
        id="wsgi-status",
    ),
    pytest.param(
        "X-Frame-Options",
        lambda value: WebConfig(headers={"X-Frame-Options": value}),
        id="header-value",
    ),
]


@pytest.mark.parametrize(("name", "call"), CHOICES)
def test_a_value_whose_comparison_raises_gets_the_options_error(
    name: str, call: Callable[[Any], object]
) -> None:
    """A value that is no string is refused as one before it is compared with the names the
    option takes: its ``==`` (or hash) raising escaped the call, as a ZeroDivisionError here,
    naming neither the option nor the value."""
    with pytest.raises((TypeError, ValueError)) as caught:
        call(Uncomparable())
    message = str(caught.value)
    assert name in message
    assert "Uncomparable" in message
    assert len(message) <= MOST_CHARS, message[:MOST_CHARS]


@pytest.mark.parametrize(("name", "call"), CHOICES)
def test_a_string_whose_comparison_raises_is_compared_as_its_text(
    name: str, call: Callable[[Any], object]
) -> None:
    """A ``str`` subclass whose ``==`` raises is compared as the text it holds: one that is
    no name the option takes gets the option's own error, not the subclass's."""
    with pytest.raises((TypeError, ValueError)) as caught:
        call(UncomparableText("teleport"))
    message = str(caught.value)
    assert name in message
    assert "teleport" in message


def test_a_name_held_by_a_string_whose_comparison_raises_is_taken() -> None:
    """Such a string holding a name the option takes is that name."""
    runner = ProcessRunner(1, start_method=UncomparableText("spawn"))
    try:
        assert type(runner.start_method) is str
        assert runner.start_method == "spawn"
    finally:
        runner.shutdown()
    make_wsgi_app(MetricStore(), CollectorRegistry(), status=UncomparableText("reduced"))


@pytest.mark.parametrize("value", VALUES.values(), ids=VALUES.keys())
def test_a_multiprocess_interval_that_cannot_be_quoted_is_described(
    tmp_path: Path, value: object
) -> None:
    """enable(interval=...) refuses it naming ``interval``, in a short message."""
    with pytest.raises((TypeError, ValueError)) as caught:
        multiprocess.enable(tmp_path, interval=value, registry=CollectorRegistry())  # type: ignore[arg-type]
    message = str(caught.value)
    assert "interval" in message
    assert len(message) <= MOST_CHARS, message[:MOST_CHARS]
    if isinstance(value, Unprintable):
        assert "Unprintable" in message


def test_a_multiprocess_directory_that_cannot_be_quoted_is_described() -> None:
    """enable(directory) given an object whose repr raises refuses it naming ``directory``."""
    with pytest.raises(TypeError, match=r"directory must be a path, not <Unprintable object>"):
        multiprocess.enable(Unprintable(), registry=CollectorRegistry())  # type: ignore[arg-type]


#: Long file names: one the system refuses as too long (read as "cannot read ... (File name
#: too long)"), one within its limit whose first directory does not exist.
LONG_PATHS = {
    "cannot-read": "a" * 100_000,
    "does-not-exist": "gone/" * 600 + "server.pem",
}


@pytest.mark.parametrize("setting", ["cert_file", "key_file", "client_ca_file"])
@pytest.mark.parametrize("kind", LONG_PATHS)
def test_a_tls_file_of_a_long_name_is_described_briefly(
    tmp_path: Path, setting: str, kind: str
) -> None:
    """A TLS file that cannot be read is refused naming the setting and the start of its
    name, in a short message: the whole name was quoted (a message of 100,000 characters)."""
    ca = authority(tmp_path)
    server = ca.issue(tmp_path, "server", server=True)
    files: dict[str, Any] = {"cert_file": server.cert_file, "key_file": server.key_file}
    if setting == "client_ca_file":
        files["client_auth_type"] = "RequireAndVerifyClientCert"
    path = LONG_PATHS[kind]
    files[setting] = path
    with pytest.raises(WebConfigError) as caught:
        TLSServerConfig(**files)
    message = str(caught.value)
    assert message.startswith(f"tls_server_config.{setting}: ")
    assert path[:100] in message
    assert len(message) <= MOST_CHARS, message[:MOST_CHARS]
    said = "cannot read" if kind == "cannot-read" else "does not exist"
    assert said in message


def test_a_tls_file_of_a_short_name_is_quoted_whole(tmp_path: Path) -> None:
    """A name of ordinary length is quoted whole."""
    path = str(tmp_path / "gone" / "server.pem")
    refusal = rf"^tls_server_config\.cert_file: {re.escape(path)} does not exist$"
    with pytest.raises(WebConfigError, match=refusal):
        TLSServerConfig(cert_file=path, key_file=path)
