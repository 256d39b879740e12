"""`laios demo`'s start banner fits an 80-column terminal in every mode, its Spans line laid out
like the others (label, then its text in the same column), names where spans really go, and
names the source tree's Compose files only when they are there."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from opentelemetry import trace

from laios import _demo
from laios._terminal import text_width

URL = "http://127.0.0.1:8489"
LONG_COLLECTOR = "http://otel-collector.observability.svc.cluster.local:4318"
#: A labelled line: two spaces, the label and its colon padded to 12 columns, then the text.
LABELLED = re.compile(r"^  [A-Z][A-Za-z ]*:\s+\S")
TEXT_COLUMN = 14
#: The root of this checkout, whose grafana/ the banner names.
ROOT = Path(__file__).resolve().parents[2]
#: Where the demo looks for grafana/, before a test changes it.
FOUND_GRAFANA_DIR = _demo.GRAFANA_DIR
TERMINALS = [
    "a live view (the alternate screen), then a summary here",
    "a progress line every 5 s; no live view, since spans print to this terminal"
    " (send them to a file with 2>spans.txt to keep the live view)",
]


@pytest.fixture(autouse=True)
def _no_global_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo installs its provider globally; here each test keeps its own."""
    monkeypatch.setattr(trace, "set_tracer_provider", lambda provider: None)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)


@pytest.fixture(autouse=True)
def _in_the_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from the checkout's root, whose grafana/ the banner finds, as `laios demo` does there."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(_demo, "GRAFANA_DIR", ROOT / "grafana")


def _hide(monkeypatch: pytest.MonkeyPatch, package: str) -> None:
    """Make ``package`` and its submodules fail to import, as when it is not installed."""
    for name in [name for name in sys.modules if name.startswith(package + ".")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, package, None)


def _spans_text(monkeypatch: pytest.MonkeyPatch, mode: str) -> str:
    """What ``_configure_tracing`` says of the spans in ``mode``."""
    console, endpoint = False, None
    if mode == "console":
        console = True
    elif mode == "otlp-option":
        endpoint = LONG_COLLECTOR
    elif mode == "otlp-environment":
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", LONG_COLLECTOR)
    elif mode == "otlp-without-exporter":
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", LONG_COLLECTOR)
        _hide(monkeypatch, "opentelemetry.exporter.otlp.proto.http.trace_exporter")
    elif mode == "no-sdk":
        _hide(monkeypatch, "opentelemetry.sdk")
    provider, text = _demo._configure_tracing(console, endpoint)
    if provider is not None:
        provider.shutdown()
    return text


def _banner(spans: str, terminal: str, runner: str = "thread") -> list[str]:
    args = argparse.Namespace(host="127.0.0.1", duration=None, runner=runner)
    dask = SimpleNamespace(dashboard_link="http://127.0.0.1:8787/status")
    return _demo._banner(args, URL, 8489, spans, terminal, dask)


#: Commands and addresses of the banner that must each stay on one line (to copy them).
WHOLE = [
    f"{URL}/metrics",
    f"laios status --url {URL} --watch",
    "grafana/prometheus/prometheus.yml",
    "docker compose -f grafana/docker-compose.yml up",
    "http://localhost:3000",
]

MODES = [
    "in-process",
    "console",
    "otlp-option",
    "otlp-environment",
    "otlp-without-exporter",
    "no-sdk",
]


def _banners(monkeypatch: pytest.MonkeyPatch, mode: str) -> Iterator[list[str]]:
    spans = _spans_text(monkeypatch, mode)
    for terminal in TERMINALS:
        for runner in ("thread", "process", "dask"):
            yield _banner(spans, terminal, runner)


@pytest.mark.parametrize("mode", MODES)
def test_every_banner_line_fits_80_columns(monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    """No line is wider than 80 columns: a long text goes on under its label's text column,
    without breaking a URL or a word; only a URL longer than that column's room (the long
    collector address here) overflows, on a line of its own."""
    for lines in _banners(monkeypatch, mode):
        for line in lines:
            if text_width(line) > 80:
                assert line.startswith(" " * TEXT_COLUMN), line
                assert len(line.split()) == 1, line
                assert line.strip().startswith(LONG_COLLECTOR), line
        for line in lines[1:-1]:
            labelled = LABELLED.match(line) is not None
            continued = line.startswith(" " * TEXT_COLUMN) and line[TEXT_COLUMN] != " "
            assert labelled or continued, line
            if labelled:
                assert line[TEXT_COLUMN - 1] == " ", line
                assert line[TEXT_COLUMN] != " ", line
        for whole in WHOLE:
            assert any(whole in line for line in lines), whole


@pytest.mark.parametrize("collector", ["http://localhost:4318", "https://otel.example.com:4318"])
def test_a_banner_with_a_collector_of_usual_length_fits_80_columns(
    monkeypatch: pytest.MonkeyPatch, collector: str
) -> None:
    """With a collector address of usual length, every line fits in 80 columns."""
    provider, spans = _demo._configure_tracing(False, collector)
    provider.shutdown()
    for terminal in TERMINALS:
        lines = _banner(spans, terminal, "dask")
        assert max(text_width(line) for line in lines) <= 80, "\n".join(lines)
        assert f"{collector}/v1/traces" in "\n".join(lines)


@pytest.mark.parametrize("mode", MODES)
def test_the_spans_line_is_labelled_like_the_others(
    monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """The spans line reads ``  Spans:      <where>``, as ``  Terminal:   <mode>`` does."""
    lines = _banner(_spans_text(monkeypatch, mode), TERMINALS[0])
    spans = [line for line in lines if line.lstrip().lower().startswith("spans:")]
    assert len(spans) == 1
    assert spans[0].startswith("  Spans:      ")


@pytest.mark.parametrize("mode", ["otlp-option", "otlp-environment"])
def test_the_spans_line_names_the_url_the_spans_are_sent_to(
    monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """With the collector's base URL, from the option or from OTEL_EXPORTER_OTLP_ENDPOINT, the
    line names its /v1/traces, where the exporter sends the spans."""
    text = " ".join(_banner(_spans_text(monkeypatch, mode), TERMINALS[0]))
    assert f"{LONG_COLLECTOR}/v1/traces" in text


def test_a_traces_endpoint_of_its_own_is_the_one_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, which the exporter takes as it is, is the URL named."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:4318/custom")
    text = _spans_text(monkeypatch, "otlp-environment")
    assert "http://127.0.0.1:4318/custom" in text
    assert "/v1/traces" not in text


@pytest.mark.parametrize("where", ["option", "environment", "traces-environment"])
def test_the_spans_line_never_shows_the_collectors_password(
    monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """A collector URL with a user and password (basic authentication) is named without them:
    the banner goes to terminals and CI logs."""
    url = "http://laios:s3cret@127.0.0.1:4318"
    endpoint = None
    if where == "option":
        endpoint = url
    elif where == "environment":
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
    else:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{url}/v1/traces")
    provider, text = _demo._configure_tracing(False, endpoint)
    provider.shutdown()
    assert "s3cret" not in text
    assert "laios" not in text
    assert "http://127.0.0.1:4318/v1/traces" in text


@pytest.mark.parametrize(
    "given", ["http://127.0.0.1:4318/v1/traces", "http://127.0.0.1:4318/v1/traces/"]
)
def test_an_otlp_endpoint_given_as_the_traces_url_is_taken_as_it_is(
    monkeypatch: pytest.MonkeyPatch, given: str
) -> None:
    """--otlp-endpoint with the whole traces URL (as a collector's docs give it) sends the
    spans there, not to .../v1/traces/v1/traces, which a collector answers with 404."""
    provider, text = _demo._configure_tracing(False, given)
    provider.shutdown()
    assert text == "OTLP/HTTP to http://127.0.0.1:4318/v1/traces"


#: The files of the source tree that an installed package does not have.
SOURCE_TREE_ONLY = ["grafana/", "docker-compose.yml", "prometheus.yml", "docker compose"]


@pytest.mark.parametrize("runner", ["thread", "process", "dask"])
def test_an_installed_package_banner_names_no_file_of_the_source_tree(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, runner: str
) -> None:
    """Installed with pip, the package has no grafana/ next to it: the banner names none of its
    files and no Compose command, but the target to scrape and the `laios` command that writes
    the dashboard and the rules, whole on one line, and every line fits 80 columns."""
    monkeypatch.setattr(_demo, "GRAFANA_DIR", tmp_path / "grafana")
    for terminal in TERMINALS:
        lines = _banner("in-process only", terminal, runner)
        text = "\n".join(lines)
        for name in SOURCE_TREE_ONLY:
            assert name not in text, text
        assert any("laios mixin --out DIR" in line for line in lines), text
        assert "python -m" not in text  # (a pipx install's python has no laios)
        assert "scrape 127.0.0.1:8489" in text
        assert max(text_width(line) for line in lines) <= 80, text


def test_a_checkout_run_from_elsewhere_names_the_compose_files_where_they_are(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Run from a directory outside the checkout, the banner names the Compose files by a path
    that works from there, not by one relative to the checkout's root."""
    monkeypatch.chdir(tmp_path)
    text = " ".join(_banner("in-process only", TERMINALS[0]))
    assert f"docker compose -f {ROOT / 'grafana' / 'docker-compose.yml'} up" in text
    assert str(ROOT / "grafana" / "prometheus" / "prometheus.yml") in text


def test_the_compose_command_of_a_checkout_whose_path_has_a_space_is_quoted(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A checkout in a directory whose name has a space (``My Projects``), run from elsewhere:
    the Dashboard line's command named its Compose file unquoted, two words to a shell. It is
    quoted, and not broken across lines."""
    grafana = tmp_path / "My Projects" / "laios" / "grafana"
    (grafana / "prometheus").mkdir(parents=True)
    (grafana / "docker-compose.yml").write_text("services: {}\n")
    (grafana / "prometheus" / "prometheus.yml").write_text("scrape_configs: []\n")
    monkeypatch.setattr(_demo, "GRAFANA_DIR", grafana)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    lines = _banner("in-process only", TERMINALS[0])
    compose = f"'{grafana / 'docker-compose.yml'}'"
    assert any(f"docker compose -f {compose} up" in line for line in lines), lines


def test_the_banner_finds_the_grafana_directory_of_this_checkout() -> None:
    """From a checkout (the tests run on one), the banner's grafana/ is the checkout's."""
    assert FOUND_GRAFANA_DIR == ROOT / "grafana"


@pytest.mark.parametrize(
    ("host", "port", "advice"),
    [
        ("127.0.0.1", 8489, "(run the demo with --host 0.0.0.0 so the Prometheus container"),
        ("127.0.0.1", 18489, "(run the demo with --host 0.0.0.0 --port 8489 so the"),
        ("0.0.0.0", 18489, "(run the demo with --port 8489 so the Prometheus container"),
        ("::", 40123, "(run the demo with --port 8489 so the Prometheus container"),
        ("0.0.0.0", 8489, None),
        ("", 8489, None),
    ],
)
def test_the_dashboard_line_asks_only_for_what_the_compose_prometheus_lacks(
    host: str, port: int, advice: str | None
) -> None:
    """The Compose setup's Prometheus scrapes host.docker.internal:8489: the Dashboard line
    asks for --host 0.0.0.0 only when the demo does not listen on every address, and for
    --port 8489 when it serves on another port (where that Prometheus would find nothing);
    a demo it reaches as it is gets no advice."""
    args = argparse.Namespace(host=host, duration=None, runner="thread")
    url = f"http://127.0.0.1:{port}"
    lines = _demo._banner(args, url, port, "in-process only", TERMINALS[0], None)
    text = " ".join(" ".join(lines).split())
    dashboard = text[text.index("Dashboard:") : text.index("Spans:")]
    if advice is None:
        assert "(run the demo" not in dashboard, dashboard
    else:
        assert advice in dashboard, dashboard
    assert max(text_width(line) for line in lines) <= 80


@pytest.mark.parametrize(
    "variable", ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
)
def test_a_huge_refused_otlp_variable_is_named_cut_short(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    """An OTLP endpoint variable of a hundred thousand characters that is refused is quoted cut
    short in the message, not written out whole."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    monkeypatch.setenv(variable, "ftp://h/" + "a" * 10**5)
    with pytest.raises(ValueError, match=f"^{variable}='ftp://h/aaa") as refused:
        _demo._configure_tracing(False, None)
    assert len(str(refused.value)) < 1000
