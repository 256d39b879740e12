"""The files under grafana/ fit together: compose mounts, provisioning, scrape config, rule tests,
and the trace path (demo → Collector → Tempo ← Grafana's exemplar links).

Docker is not needed: the compose file and the configs are read as YAML, bind mounts are checked
against the repository, and ports, hosts and uids against each other.
"""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from laios.cli import build_parser

GRAFANA = Path(__file__).resolve().parents[2] / "grafana"


def load(relative: str) -> Any:
    """Parse a YAML file under grafana/."""
    return yaml.safe_load((GRAFANA / relative).read_text(encoding="utf-8"))


COMPOSE = load("docker-compose.yml")
PROMETHEUS = COMPOSE["services"]["prometheus"]
GRAFANA_SERVICE = COMPOSE["services"]["grafana"]
TEMPO = COMPOSE["services"]["tempo"]
COLLECTOR = COMPOSE["services"]["otel-collector"]


def mounts(service: dict[str, Any]) -> dict[str, Path]:
    """A service's bind mounts: container path → path in the repository."""
    result = {}
    for volume in service["volumes"]:
        source, target = volume.split(":")[:2]
        assert source.startswith("./"), f"not a bind mount of the repository: {volume}"
        result[target] = GRAFANA / source
    return result


def mounted(service: dict[str, Any], path: str) -> Path:
    """The file of the repository a service sees at ``path``: a file mounted there, or a file of
    a directory mounted above it."""
    for target, source in mounts(service).items():
        inside = PurePosixPath(path)
        if inside == PurePosixPath(target):
            return source
        if PurePosixPath(target) in inside.parents:
            return source / inside.relative_to(target)
    raise AssertionError(f"nothing mounted at {path}")


def flag(service: dict[str, Any], name: str, dashes: str = "--") -> str:
    """The value of ``--name=value`` (or ``-name=value``) in a service's command."""
    values = [
        str(arg).split("=", 1)[1]
        for arg in service["command"]
        if str(arg).startswith(f"{dashes}{name}=")
    ]
    assert len(values) == 1, f"expected one {dashes}{name}"
    return values[0]


def published(service: dict[str, Any]) -> dict[int, str]:
    """A service's published ports: container port → host address and port."""
    result = {}
    for entry in service.get("ports", []):
        address, host_port, container_port = str(entry).split(":")
        result[int(container_port)] = f"{address}:{host_port}"
    return result


def port_of(endpoint: str) -> int:
    """The port of ``host:port``."""
    return int(endpoint.rsplit(":", 1)[1])


def datasource(name: str) -> dict[str, Any]:
    """The one data source of provisioning/datasources/{name}.yml."""
    (source,) = load(f"provisioning/datasources/{name}.yml")["datasources"]
    return dict(source)


def mounted_config(service: dict[str, Any], path: str) -> Any:
    """Parse the repository file that a service sees at ``path``."""
    return yaml.safe_load(mounts(service)[path].read_text(encoding="utf-8"))


COLLECTOR_CONFIG = mounted_config(COLLECTOR, flag(COLLECTOR, "config"))
TEMPO_CONFIG = mounted_config(TEMPO, flag(TEMPO, "config.file", dashes="-"))


# -- docker-compose.yml -------------------------------------------------------------------------


def test_compose_runs_the_four_images_at_pinned_versions() -> None:
    """The services are prometheus, grafana, tempo and otel-collector, each image at a
    numbered version (no latest, no missing tag)."""
    images = {name: service["image"] for name, service in COMPOSE["services"].items()}
    assert set(images) == {"prometheus", "grafana", "tempo", "otel-collector"}
    assert images["prometheus"].startswith("prom/prometheus:v")
    assert images["grafana"].startswith("grafana/grafana:")
    assert images["tempo"].startswith("grafana/tempo:")
    assert images["otel-collector"].startswith("otel/opentelemetry-collector")
    for image in images.values():
        assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+\.\d+", image), image


def test_compose_publishes_every_port_on_loopback_only() -> None:
    """Every published port of every service is bound to 127.0.0.1."""
    exposed = [
        (name, where)
        for name, service in COMPOSE["services"].items()
        for where in published(service).values()
        if not where.startswith("127.0.0.1:")
    ]
    assert exposed == []


def test_compose_prometheus_keeps_exemplars() -> None:
    """Prometheus runs with --enable-feature=exemplar-storage."""
    assert "--enable-feature=exemplar-storage" in PROMETHEUS["command"]


def test_compose_bind_mounts_exist_in_the_repository() -> None:
    """Every bind-mounted file or directory of every service exists under grafana/."""
    missing = [
        str(source)
        for service in COMPOSE["services"].values()
        for source in mounts(service).values()
        if not source.exists()
    ]
    assert missing == []


def test_compose_mounts_the_config_prometheus_reads() -> None:
    """--config.file is mounted from grafana/prometheus/prometheus.yml."""
    config = flag(PROMETHEUS, "config.file")
    assert mounted(PROMETHEUS, config) == GRAFANA / "prometheus" / "prometheus.yml"


def test_compose_mounts_the_rule_files_beside_the_config() -> None:
    """Each rule file of prometheus.yml is mounted where Prometheus resolves it."""
    config_dir = PurePosixPath(flag(PROMETHEUS, "config.file")).parent
    for rule_file in load("prometheus/prometheus.yml")["rule_files"]:
        target = str(config_dir / rule_file)
        assert mounted(PROMETHEUS, target) == GRAFANA / "prometheus" / rule_file


def test_compose_prometheus_sees_a_rewritten_config_or_rule_file_on_reload() -> None:
    """The config and the rules reach Prometheus through their directory, not one file at a
    time: a file mounted on its own stays the one it was when the container started once it
    is replaced by a rename, as python -m laios.mixin writes rules.yml (and as most editors
    save), so the reload the docs give would go on reading the old rules or targets."""
    config = PurePosixPath(flag(PROMETHEUS, "config.file"))
    files = [
        config,
        *(config.parent / rule for rule in load("prometheus/prometheus.yml")["rule_files"]),
    ]
    mounted_alone = [str(path) for path in files if str(path) in mounts(PROMETHEUS)]
    assert mounted_alone == []


def test_compose_lets_prometheus_reach_the_host() -> None:
    """Prometheus maps host.docker.internal to the host gateway."""
    assert "host.docker.internal:host-gateway" in PROMETHEUS["extra_hosts"]


def test_compose_mounts_grafana_provisioning_and_dashboards() -> None:
    """Grafana gets grafana/provisioning and grafana/dashboards at their standard paths."""
    assert mounts(GRAFANA_SERVICE) == {
        "/etc/grafana/provisioning": GRAFANA / "provisioning",
        "/var/lib/grafana/dashboards": GRAFANA / "dashboards",
    }


def test_compose_home_dashboard_is_the_mounted_laios_dashboard() -> None:
    """Grafana's home dashboard path is the mounted laios-execution.json."""
    home = PurePosixPath(
        GRAFANA_SERVICE["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    )
    assert mounts(GRAFANA_SERVICE)[str(home.parent)] / home.name == (
        GRAFANA / "dashboards" / "laios-execution.json"
    )


# -- Grafana provisioning -----------------------------------------------------------------------


def test_datasource_is_the_compose_prometheus_with_uid_prometheus() -> None:
    """The provisioned data source is Prometheus at http://prometheus:9090 with uid prometheus."""
    source = datasource("prometheus")
    assert (source["type"], source["uid"], source["url"]) == (
        "prometheus",
        "prometheus",
        "http://prometheus:9090",
    )


def test_datasource_links_exemplar_trace_ids() -> None:
    """Exemplars' trace_id label (the one laios exports) links to a tracing data source or URL."""
    (destination,) = datasource("prometheus")["jsonData"]["exemplarTraceIdDestinations"]
    assert destination["name"] == "trace_id"
    assert destination.get("datasourceUid") or destination.get("url")


def test_datasource_scrape_interval_matches_prometheus() -> None:
    """jsonData.timeInterval equals the scrape interval, so $__rate_interval spans 4 scrapes."""
    source = datasource("prometheus")
    scrape_interval = load("prometheus/prometheus.yml")["global"]["scrape_interval"]
    assert source["jsonData"]["timeInterval"] == scrape_interval


def test_dashboard_provider_reads_the_mounted_dashboards() -> None:
    """The file provider's path is where compose mounts grafana/dashboards."""
    (provider,) = load("provisioning/dashboards/laios.yml")["providers"]
    assert provider["type"] == "file"
    assert mounts(GRAFANA_SERVICE)[provider["options"]["path"]] == GRAFANA / "dashboards"


# -- the trace path: demo → Collector → Tempo ← Grafana ------------------------------------------


def test_collector_publishes_the_otlp_ports_it_listens_on() -> None:
    """The Collector's OTLP receiver listens on 4317 (gRPC) and 4318 (HTTP) on every interface
    of its container, and compose publishes both on the same host ports."""
    protocols = COLLECTOR_CONFIG["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert protocols["http"]["endpoint"] == "0.0.0.0:4318"
    assert published(COLLECTOR) == {4317: "127.0.0.1:4317", 4318: "127.0.0.1:4318"}


def test_collector_traces_pipeline_goes_from_otlp_to_tempo() -> None:
    """service.pipelines.traces receives with otlp and exports with an otlp exporter aimed at
    the tempo service's OTLP gRPC port, without TLS inside the compose network."""
    pipeline = COLLECTOR_CONFIG["service"]["pipelines"]["traces"]
    assert pipeline["receivers"] == ["otlp"]
    (exporter,) = pipeline["exporters"]
    assert exporter.split("/")[0] == "otlp"
    settings = COLLECTOR_CONFIG["exporters"][exporter]
    tempo_grpc = TEMPO_CONFIG["distributor"]["receivers"]["otlp"]["protocols"]["grpc"]
    assert settings["endpoint"] == f"tempo:{port_of(tempo_grpc['endpoint'])}"
    assert settings["tls"]["insecure"] is True


def test_collector_pipeline_components_are_defined() -> None:
    """Every receiver, processor and exporter a pipeline names is configured."""
    undefined = [
        (kind, name)
        for pipeline in COLLECTOR_CONFIG["service"]["pipelines"].values()
        for kind in ("receivers", "processors", "exporters")
        for name in pipeline.get(kind, [])
        if name not in COLLECTOR_CONFIG.get(kind, {})
    ]
    assert undefined == []


def test_collector_starts_after_tempo() -> None:
    """The Collector depends on tempo, and Grafana on prometheus and tempo."""
    assert "tempo" in COLLECTOR["depends_on"]
    assert {"prometheus", "tempo"} <= set(GRAFANA_SERVICE["depends_on"])


def test_tempo_keeps_traces_on_writable_local_storage() -> None:
    """Tempo stores traces on its local backend under /tmp (writable by the image's user)."""
    storage = TEMPO_CONFIG["storage"]["trace"]
    assert storage["backend"] == "local"
    assert storage["wal"]["path"].startswith("/tmp/")
    assert storage["local"]["path"].startswith("/tmp/")


def test_tempo_datasource_reaches_the_tempo_service() -> None:
    """The Tempo data source (type tempo) points at http://tempo on Tempo's HTTP port."""
    tempo = datasource("tempo")
    url = urlsplit(tempo["url"])
    assert tempo["type"] == "tempo"
    assert (url.scheme, url.hostname) == ("http", "tempo")
    assert url.port == TEMPO_CONFIG["server"]["http_listen_port"]


def test_exemplar_link_opens_the_provisioned_tempo() -> None:
    """The Prometheus data source links an exemplar's trace_id to the Tempo data source's uid."""
    (destination,) = datasource("prometheus")["jsonData"]["exemplarTraceIdDestinations"]
    assert destination["name"] == "trace_id"
    assert destination["datasourceUid"] == datasource("tempo")["uid"]


def test_traces_link_back_to_the_provisioned_prometheus() -> None:
    """Tempo's traces-to-metrics link reads the Prometheus data source, by the span attribute
    that holds a laios task's tool label, and its queries read laios metrics by that tool
    (tests/unit/test_span_tool_label.py: each laios span's link finds its tool's series)."""
    link = datasource("tempo")["jsonData"]["tracesToMetrics"]
    assert link["datasourceUid"] == datasource("prometheus")["uid"]
    assert link["tags"] == [{"key": "laios.tool.label", "value": "tool"}]
    assert link["queries"]
    # "$$" escapes Grafana's environment expansion in provisioning files: it receives $__tags.
    # Last in its braces: a span without the tag puts nothing there, and a matcher before it
    # keeps its comma, which PromQL allows at the end but not at the start (promtool parses
    # them: tests/integration/test_promtool_rules.py).
    for query in link["queries"]:
        assert "$$__tags}" in query["query"], query
        assert re.search(r"\{[^{}]*\$\$__tags,", query["query"]) is None, query


def test_dashboard_defaults_to_the_provisioned_prometheus() -> None:
    """The dashboard's datasource variable offers Prometheus data sources and starts on the
    provisioned one's uid."""
    dashboard = json.loads((GRAFANA / "dashboards" / "laios-execution.json").read_text())
    (variable,) = [v for v in dashboard["templating"]["list"] if v["name"] == "datasource"]
    prometheus = datasource("prometheus")
    assert variable["query"] == prometheus["type"]
    assert variable["current"]["value"] == prometheus["uid"]


def test_demo_otlp_flag_documents_the_collector_http_port(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`laios demo --help` suggests --otlp-endpoint on the host port the Collector publishes
    for OTLP/HTTP."""
    http = COLLECTOR_CONFIG["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    host_port = port_of(published(COLLECTOR)[port_of(http)])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["demo", "--help"])
    assert f"http://localhost:{host_port}" in capsys.readouterr().out


# -- Prometheus config --------------------------------------------------------------------------


def test_prometheus_scrapes_the_demo_every_5_seconds() -> None:
    """Job "laios" scrapes host.docker.internal on the demo's default port every 5 s."""
    config = load("prometheus/prometheus.yml")
    (job,) = config["scrape_configs"]
    (static,) = job["static_configs"]
    demo_port = build_parser().parse_args(["demo"]).port
    assert config["global"]["scrape_interval"] == "5s"
    assert job["job_name"] == "laios"
    assert static["targets"] == [f"host.docker.internal:{demo_port}"]


def test_prometheus_loads_rules_yml() -> None:
    """rule_files is rules.yml, next to the config."""
    assert load("prometheus/prometheus.yml")["rule_files"] == ["rules.yml"]


# -- rules and their unit tests -----------------------------------------------------------------


def rules() -> list[dict[str, Any]]:
    return [rule for group in load("prometheus/rules.yml")["groups"] for rule in group["rules"]]


def test_every_alert_has_for_severity_summary_description_and_runbook() -> None:
    """Each alert waits (`for`), has a severity label, summary/description and runbook_url."""
    incomplete = [
        rule["alert"]
        for rule in rules()
        if "alert" in rule
        and not (
            rule.get("for")
            and rule.get("labels", {}).get("severity") in ("critical", "warning")
            and rule.get("annotations", {}).get("summary")
            and rule.get("annotations", {}).get("description")
            and rule.get("annotations", {}).get("runbook_url")
        )
    ]
    assert incomplete == []


def test_every_alert_has_firing_and_quiet_unit_tests() -> None:
    """rules.test.yml expects each alert to fire in one case and to stay quiet in another."""
    cases = [
        case
        for test in load("prometheus/rules.test.yml")["tests"]
        for case in test.get("alert_rule_test", [])
    ]
    alerts = {rule["alert"] for rule in rules() if "alert" in rule}
    firing = {case["alertname"] for case in cases if case.get("exp_alerts")}
    quiet = {case["alertname"] for case in cases if not case.get("exp_alerts")}
    assert (alerts - firing, alerts - quiet) == (set(), set())


def test_recording_rules_have_unit_tests() -> None:
    """rules.test.yml checks at least one recording rule's values."""
    records = {rule["record"] for rule in rules() if "record" in rule}
    exprs = [
        case["expr"]
        for test in load("prometheus/rules.test.yml")["tests"]
        for case in test.get("promql_expr_test", [])
    ]
    assert any(record in expr for record in records for expr in exprs)
