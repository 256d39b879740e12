"""A real Prometheus scraping `laios demo`: every dashboard query has data, exemplars are traces.

One demo (with ``--console-spans``), one process-runner target that has killed workers
(``kills_target.py``: the demo runs its tools on threads) and one Prometheus (scraping both
every second, with exemplar storage and the repository's rules.yml) are shared by the module's
tests and stopped at the end.
"""

from __future__ import annotations

import json
import math
import os
import re
import select
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from service_support import NO_PROXY, stop, wait_for

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DASHBOARD = REPO / "grafana" / "dashboards" / "laios-execution.json"
DASHBOARD_DOC = json.loads(DASHBOARD.read_text(encoding="utf-8"))
RULES = REPO / "grafana" / "prometheus" / "rules.yml"
#: The dashboard's template variables: name -> the variable.
TEMPLATE = {v["name"]: v for v in DASHBOARD_DOC["templating"]["list"]}
#: Grafana's variables as a query with "All" everywhere over a short range would expand them:
#: each query variable's allValue, the provisioned data source, and the built-in intervals.
VARIABLES = {
    **{name: v.get("allValue", "prometheus") for name, v in TEMPLATE.items()},
    "__rate_interval": "10s",
    "__range": "60s",
    "__interval": "5s",
}
#: Scrapes of the demo to wait for before querying (one a second).
MIN_SCRAPES = 10
#: Longest wait for any one condition (start-up, scrapes, data, a span on stderr).
PATIENCE = 30.0
DEMO = [sys.executable, "-m", "laios.cli", "demo"]


def expand(expr: str, **chosen: str) -> str:
    """Replace Grafana's ``$name`` and ``${name}`` variables by the values above, or by the
    ``chosen`` ones."""
    values = {**VARIABLES, **chosen}

    def value(match: re.Match[str]) -> str:
        return values[match.group(1) or match.group(2)]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, expr)


def dashboard_queries() -> list[Any]:
    """One pytest param per dashboard target: (panel title, expression)."""
    panels = DASHBOARD_DOC["panels"]
    return [
        pytest.param(
            panel["title"],
            target["expr"],
            id=re.sub(r"[^a-z0-9]+", "-", f"{panel['title']} {target['refId']}".lower()),
        )
        for panel in panels
        for target in panel.get("targets", [])
    ]


def recording_rules() -> list[str]:
    """The names of the recording rules in rules.yml."""
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return [rule["record"] for group in groups for rule in group["rules"] if "record" in rule]


def get_json(url: str) -> dict[str, Any]:
    """GET ``url`` (no proxy) and decode its JSON body, error answers included."""
    try:
        with NO_PROXY.open(url, timeout=10) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            body = exc.read()
    document: dict[str, Any] = json.loads(body)
    return document


@dataclass
class Demo:
    """A running ``laios demo``."""

    process: subprocess.Popen[bytes]
    port: int
    stderr: Path

    def spans(self) -> list[dict[str, Any]]:
        """The spans printed so far by the SDK's ConsoleSpanExporter (JSON objects)."""
        text = self.stderr.read_text(encoding="utf-8", errors="replace")
        decoder = json.JSONDecoder()
        spans: list[dict[str, Any]] = []
        index = text.find("{")
        while index != -1:
            try:
                value, end = decoder.raw_decode(text, index)
            except ValueError:  # not a span, or the one being written now
                index = text.find("\n{", index + 1)
                index = index + 1 if index != -1 else -1
                continue
            if isinstance(value, dict) and isinstance(value.get("context"), dict):
                spans.append(value)
            index = text.find("{", end)
        return spans


@dataclass
class Prometheus:
    """A running Prometheus server."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def api(self, path: str, **params: str) -> dict[str, Any]:
        """GET an API path with query parameters; return the decoded answer."""
        return get_json(f"{self.url}{path}?{urllib.parse.urlencode(params)}")

    def query(self, expr: str) -> dict[str, Any]:
        """Evaluate ``expr`` now with /api/v1/query."""
        return self.api("/api/v1/query", query=expr)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, free_port: Callable[[], int]) -> Iterator[Demo]:
    """`laios demo --duration 60 --no-live --console-spans` on a free port, stopped at the end."""
    directory = tmp_path_factory.mktemp("demo")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    with (directory / "stdout").open("wb") as out, (directory / "stderr").open("wb") as err:
        process = subprocess.Popen(
            [*DEMO, "--duration", "60", "--no-live", "--port", str(port), "--console-spans"],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=env,
        )
    try:
        running = Demo(process, port, directory / "stderr")

        def healthy() -> bool:
            if process.poll() is not None:
                pytest.fail(f"laios demo exited early:\n{running.stderr.read_text()[-2000:]}")
            with NO_PROXY.open(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                return bool(response.status == 200)

        wait_for("the demo's /healthz", healthy)
        yield running
    finally:
        stop(process)


@pytest.fixture(scope="module")
def kills(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The port of ``kills_target``: a process runner after one kill of each kind."""
    directory = tmp_path_factory.mktemp("kills")
    path = os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path}
    with (directory / "stderr").open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-c", "import kills_target; kills_target.main()"],
            stdout=subprocess.PIPE,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=env,
        )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 60)
        line = process.stdout.readline() if ready else b""
        if not line.strip().isdigit():
            pytest.fail(f"kills_target did not start:\n{(directory / 'stderr').read_text()}")
        yield int(line)
    finally:
        stop(process)
        if process.stdout is not None:
            process.stdout.close()


@pytest.fixture(scope="module")
def prometheus(
    prometheus_binary: str,
    demo: Demo,
    kills: int,
    tmp_path_factory: pytest.TempPathFactory,
    free_port: Callable[[], int],
) -> Iterator[Prometheus]:
    """Prometheus scraping the demo and the process runner every second, with exemplars and
    rules.yml; stopped after."""
    directory = tmp_path_factory.mktemp("prometheus")
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {
                "job_name": "laios",
                "static_configs": [{"targets": [f"127.0.0.1:{demo.port}", f"127.0.0.1:{kills}"]}],
            }
        ],
    }
    (directory / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    port = free_port()
    log = directory / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                prometheus_binary,
                f"--config.file={directory / 'prometheus.yml'}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--enable-feature=exemplar-storage",
                "--log.level=warn",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        server = Prometheus(process, f"http://127.0.0.1:{port}", log)

        def ready() -> bool:
            if process.poll() is not None:
                pytest.fail(f"prometheus exited early:\n{log.read_text()[-2000:]}")
            with NO_PROXY.open(f"{server.url}/-/ready", timeout=2) as response:
                return bool(response.status == 200)

        wait_for("Prometheus to be ready", ready)
        yield server
    finally:
        stop(process)


@pytest.fixture(scope="module")
def scraped(prometheus: Prometheus) -> Prometheus:
    """The Prometheus, once it has scraped the demo successfully ``MIN_SCRAPES`` times."""

    def enough() -> bool:
        result = prometheus.query(f'count_over_time(up{{job="laios"}}[1m]) >= {MIN_SCRAPES}')
        return len(result["data"]["result"]) == 2

    wait_for(f"{MIN_SCRAPES} scrapes of the demo", enough)
    return prometheus


def finite_values(result: dict[str, Any]) -> list[float]:
    """The finite sample values of an instant query's answer."""
    data = result["data"]
    if data["resultType"] == "scalar":
        return [float(data["result"][1])] if math.isfinite(float(data["result"][1])) else []
    values = [float(series["value"][1]) for series in data["result"]]
    return [value for value in values if math.isfinite(value)]


def assert_has_data(prometheus: Prometheus, expr: str) -> None:
    """Fail when ``expr`` errors, or returns no finite value within ``PATIENCE`` seconds."""
    deadline = time.monotonic() + PATIENCE
    while True:
        result = prometheus.query(expr)
        assert result["status"] == "success", f"{expr}\n{result.get('error')}"
        if finite_values(result):
            return
        if time.monotonic() > deadline:
            pytest.fail(f"no data for {expr}\nlast answer: {result['data']}")
        time.sleep(0.5)


def test_prometheus_scrapes_the_demo_and_the_process_runner(scraped: Prometheus) -> None:
    """Both targets are up in Prometheus' target list."""
    targets = scraped.api("/api/v1/targets", state="active")["data"]["activeTargets"]
    assert [(t["labels"]["job"], t["health"]) for t in targets] == [("laios", "up")] * 2


@pytest.mark.parametrize(("title", "expr"), dashboard_queries())
def test_dashboard_query_returns_data(scraped: Prometheus, title: str, expr: str) -> None:
    """The panel's query, with every variable at All, evaluates without error and returns at
    least one finite value."""
    assert_has_data(scraped, expand(expr))


@pytest.mark.parametrize("name", [n for n, v in TEMPLATE.items() if v["type"] == "query"])
def test_variable_lists_the_label_values_grafana_would_offer(
    scraped: Prometheus, name: str
) -> None:
    """The variable's label_values query, with the variables before it at All, is answered by
    Prometheus' label values API (as Grafana asks it): job, instance and tool have values;
    cluster and namespace, absent here, have none and still narrow nothing."""
    match = re.fullmatch(r"label_values\((.+), (\w+)\)", TEMPLATE[name]["query"])
    assert match is not None
    selector, label = expand(match.group(1)), match.group(2)
    answer = scraped.api(f"/api/v1/label/{label}/values", **{"match[]": selector})
    assert answer["status"] == "success", answer
    assert label == name
    if name in ("cluster", "namespace"):
        assert answer["data"] == []
        assert scraped.query(f"count({selector})")["data"]["result"], selector
    elif name == "instance":
        assert len(answer["data"]) == 2
    elif name == "job":
        assert answer["data"] == ["laios"]
    else:
        assert {"fetch_fast", "crash", "allocate", "spin"} <= set(answer["data"])


def test_choosing_an_instance_narrows_the_panels(scraped: Prometheus, kills: int) -> None:
    """With instance set to the process-runner target, "Attempts per second by tool" shows its
    three tools (and the label of unknown tools every store exports) and none of the demo's."""
    (panel,) = [p for p in DASHBOARD_DOC["panels"] if p["title"] == "Attempts per second by tool"]
    expr = expand(panel["targets"][0]["expr"], instance=f"127.0.0.1:{kills}")
    series = scraped.query(expr)["data"]["result"]
    assert {s["metric"]["tool"] for s in series} - {"unknown"} == {"crash", "allocate", "spin"}


def test_process_kills_panel_shows_each_kind_of_kill(scraped: Prometheus) -> None:
    """ "Process kills by reason" has a series for worker_crashed, memory_limit and cpu_limit."""
    (panel,) = [p for p in DASHBOARD_DOC["panels"] if p["title"] == "Process kills by reason"]
    series = scraped.query(expand(panel["targets"][0]["expr"]))["data"]["result"]
    assert {(s["metric"]["tool"], s["metric"]["error_type"]) for s in series} == {
        ("crash", "worker_crashed"),
        ("allocate", "memory_limit"),
        ("spin", "cpu_limit"),
    }


@pytest.mark.parametrize("record", recording_rules())
def test_recording_rule_returns_data(scraped: Prometheus, record: str) -> None:
    """The recording rule, evaluated by Prometheus every second, has a finite value."""
    from laios.execution._families import FAMILIES  # what this laios can export

    (expr,) = (
        rule["expr"]
        for group in yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
        if rule.get("record") == record
    )
    exported = {family.name for family in FAMILIES}
    if "laios_task_result" in expr.replace(":", "_") and "laios_task_results" not in exported:
        pytest.skip("this laios has no laios_task_results family yet: nothing to record")
    assert_has_data(scraped, record)


def test_every_rule_evaluates_without_error(scraped: Prometheus) -> None:
    """Prometheus loaded every rule of rules.yml and evaluates each one with health "ok"."""

    def evaluated() -> list[dict[str, Any]] | None:
        groups = scraped.api("/api/v1/rules")["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        return rules if all(rule["health"] != "unknown" for rule in rules) else None

    rules = wait_for("every rule to be evaluated", evaluated)
    defined = [
        rule.get("record") or rule.get("alert")
        for group in yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
    ]
    assert sorted(rule["name"] for rule in rules) == sorted(defined)
    assert [
        (r["name"], r["health"], r.get("lastError", "")) for r in rules if r["health"] != "ok"
    ] == []


def test_exemplar_trace_id_belongs_to_a_real_span(scraped: Prometheus, demo: Demo) -> None:
    """An exemplar read back from Prometheus names a span the demo exported: same trace and tool."""

    def exemplars() -> list[tuple[dict[str, str], dict[str, Any]]]:
        now = time.time()
        answer = scraped.api(
            "/api/v1/query_exemplars",
            query='laios_task_duration_seconds_bucket{outcome="success"}',
            start=str(now - 300),
            end=str(now + 60),
        )
        return [
            (series["seriesLabels"], exemplar)
            for series in answer["data"]
            for exemplar in series["exemplars"]
        ]

    found = wait_for("an exemplar on laios_task_duration_seconds_bucket", exemplars)
    for _, exemplar in found:
        assert re.fullmatch(r"[0-9a-f]{32}", exemplar["labels"]["trace_id"]), exemplar
        assert re.fullmatch(r"[0-9a-f]{16}", exemplar["labels"]["span_id"]), exemplar
    # The oldest one: the batch span processor has had the longest time to print its span.
    series, exemplar = min(found, key=lambda item: float(item[1]["timestamp"]))
    trace_id, span_id = exemplar["labels"]["trace_id"], exemplar["labels"]["span_id"]

    def span() -> dict[str, Any] | None:
        for candidate in demo.spans():
            context = candidate["context"]
            if context["trace_id"] == f"0x{trace_id}" and context["span_id"] == f"0x{span_id}":
                return candidate
        return None

    printed = wait_for(f"span {trace_id}/{span_id} on the demo's stderr", span)
    assert printed["name"] == f"execute_tool {series['tool']}"
    assert printed["attributes"]["gen_ai.tool.name"] == series["tool"]
