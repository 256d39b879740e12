"""`laios demo` asked for spans it cannot send, because a package is missing, says which extra
to install: at once and with exit code 2 for an option given on the command line, in the
banner for an OTLP endpoint that only the environment names."""

from __future__ import annotations

import argparse
import re
import sys

import pytest
from opentelemetry import trace

from laios import _demo

SDK = "opentelemetry.sdk"
EXPORTER = "opentelemetry.exporter.otlp.proto.http.trace_exporter"


def _hide(monkeypatch: pytest.MonkeyPatch, package: str) -> None:
    """Make ``package`` and its submodules fail to import, as when it is not installed."""
    for name in [name for name in sys.modules if name.startswith(package + ".")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, package, None)


def _args(**options: object) -> argparse.Namespace:
    defaults: dict[str, object] = {
        "duration": 0.5,
        "host": "127.0.0.1",
        "port": 0,
        "no_live": True,
        "console_spans": False,
        "otlp_endpoint": None,
        "runner": "thread",
    }
    return argparse.Namespace(**{**defaults, **options})


def test_an_otlp_endpoint_without_the_exporter_stops_the_demo_naming_laios_otlp(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--otlp-endpoint with no OTLP exporter installed: exit 2 before anything runs, and the
    message names laios[otlp]."""
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    _hide(monkeypatch, EXPORTER)
    assert _demo.run(_args(otlp_endpoint="http://127.0.0.1:4318")) == 2
    out, err = capsys.readouterr()
    assert "pip install 'laios[otlp]'" in err
    assert "--otlp-endpoint" in err
    assert "serving" not in out


def test_an_otlp_endpoint_without_the_sdk_names_laios_otlp(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--otlp-endpoint with no OpenTelemetry SDK either: the extra named is laios[otlp] (which
    brings both), not laios[demo] (which lacks the exporter)."""
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    _hide(monkeypatch, SDK)
    _hide(monkeypatch, EXPORTER)
    assert _demo.run(_args(otlp_endpoint="http://127.0.0.1:4318")) == 2
    assert "pip install 'laios[otlp]'" in capsys.readouterr().err


def test_console_spans_without_the_sdk_stop_the_demo_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--console-spans with no OpenTelemetry SDK: exit 2 before anything runs, naming
    laios[demo]."""
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    _hide(monkeypatch, SDK)
    assert _demo.run(_args(console_spans=True)) == 2
    out, err = capsys.readouterr()
    assert "--console-spans" in err
    assert "pip install 'laios[demo]'" in err
    assert "serving" not in out


def test_an_otlp_endpoint_from_the_environment_without_the_sdk_names_laios_otlp(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """OTEL_EXPORTER_OTLP_ENDPOINT set, no SDK: the demo still runs, and its spans line names
    laios[otlp], the extra that would send them."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    _hide(monkeypatch, SDK)
    provider, line = _demo._configure_tracing(False, None)
    assert provider is None
    assert "pip install 'laios[otlp]'" in line


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "garbage", "http:// or https:// URL"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://:4318", "names no host"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318?x=1", "has a query"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:99999", "not a usable URL"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://u:secret@:4318", "names no host"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://u:sec/ret@collector:4318", "percent-encoded"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://u:sec#ret@c:4318/v1/traces", "%23"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "collector:4318/v1/traces", "http:// or https://"),
    ],
)
def test_an_otlp_endpoint_from_the_environment_that_is_no_usable_url_stops_the_demo(
    variable: str,
    value: str,
    said: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An OTLP endpoint variable the exporter could never send to: exit 2 before anything runs,
    naming the variable and what is wrong, as --otlp-endpoint is refused (the demo ran, and
    every batch of spans failed to export)."""
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    if variable != "OTEL_EXPORTER_OTLP_ENDPOINT":
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    monkeypatch.setenv(variable, value)
    assert _demo.run(_args()) == 2
    out, err = capsys.readouterr()
    shown = value.replace("u:secret@", "")  # (credentials are left out)
    shown = re.sub(r"u:sec[/#]ret@", "USER:PASSWORD@", shown)  # (as the only @ to cut at)
    assert f"{variable}={shown!r}" in err
    assert said in err
    assert "secret" not in err
    assert "'sec'" not in err  # (what a port read from the password would quote)
    assert "ret@" not in err
    assert "serving" not in out


def test_an_otlp_endpoint_option_wins_over_a_bad_environment_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """--otlp-endpoint replaces the environment's endpoint: a bad value there is not read."""
    # (the demo installs its provider globally: not in this test's process)
    monkeypatch.setattr(trace, "set_tracer_provider", lambda provider: None)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "garbage")
    provider, line = _demo._configure_tracing(False, "http://127.0.0.1:4318")
    try:
        assert "OTLP/HTTP to http://127.0.0.1:4318/v1/traces" in line
    finally:
        provider.shutdown()
