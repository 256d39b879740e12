"""The files under grafana/ fit together: compose mounts, provisioning, scrape config, rule tests.

Docker is not needed: the compose file is read as YAML and its bind mounts are checked against
the repository.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from laios.cli import build_parser

GRAFANA = Path(__file__).resolve().parents[2] / "grafana"


def load(relative: str) -> Any:
    """Parse a YAML file under grafana/."""
    return yaml.safe_load((GRAFANA / relative).read_text(encoding="utf-8"))


COMPOSE = load("docker-compose.yml")
PROMETHEUS = COMPOSE["services"]["prometheus"]
GRAFANA_SERVICE = COMPOSE["services"]["grafana"]


def mounts(service: dict[str, Any]) -> dict[str, Path]:
    """A service's bind mounts: container path → path in the repository."""
    result = {}
    for volume in service["volumes"]:
        source, target = volume.split(":")[:2]
        assert source.startswith("./"), f"not a bind mount of the repository: {volume}"
        result[target] = GRAFANA / source
    return result


def flag(service: dict[str, Any], name: str) -> str:
    """The value of ``--name=value`` in a service's command."""
    values = [
        str(arg).split("=", 1)[1] for arg in service["command"] if str(arg).startswith(f"--{name}=")
    ]
    assert len(values) == 1, f"expected one --{name}"
    return values[0]


# -- docker-compose.yml -------------------------------------------------------------------------


def test_compose_runs_prometheus_and_grafana_images() -> None:
    """The services are prometheus (prom/prometheus) and grafana (grafana/grafana), pinned."""
    assert set(COMPOSE["services"]) == {"prometheus", "grafana"}
    assert PROMETHEUS["image"].startswith("prom/prometheus:v")
    assert GRAFANA_SERVICE["image"].startswith("grafana/grafana:")
    assert not PROMETHEUS["image"].endswith(":latest")
    assert not GRAFANA_SERVICE["image"].endswith(":latest")


def test_compose_prometheus_keeps_exemplars() -> None:
    """Prometheus runs with --enable-feature=exemplar-storage."""
    assert "--enable-feature=exemplar-storage" in PROMETHEUS["command"]


def test_compose_bind_mounts_exist_in_the_repository() -> None:
    """Every bind-mounted file or directory of both services exists under grafana/."""
    missing = [
        str(source)
        for service in (PROMETHEUS, GRAFANA_SERVICE)
        for source in mounts(service).values()
        if not source.exists()
    ]
    assert missing == []


def test_compose_mounts_the_config_prometheus_reads() -> None:
    """--config.file is mounted from grafana/prometheus/prometheus.yml."""
    config = flag(PROMETHEUS, "config.file")
    assert mounts(PROMETHEUS)[config] == GRAFANA / "prometheus" / "prometheus.yml"


def test_compose_mounts_the_rule_files_beside_the_config() -> None:
    """Each rule file of prometheus.yml is mounted where Prometheus resolves it."""
    config_dir = PurePosixPath(flag(PROMETHEUS, "config.file")).parent
    for rule_file in load("prometheus/prometheus.yml")["rule_files"]:
        target = str(config_dir / rule_file)
        assert mounts(PROMETHEUS)[target] == GRAFANA / "prometheus" / rule_file


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
    (source,) = load("provisioning/datasources/prometheus.yml")["datasources"]
    assert (source["type"], source["uid"], source["url"]) == (
        "prometheus",
        "prometheus",
        "http://prometheus:9090",
    )


def test_datasource_links_exemplar_trace_ids() -> None:
    """Exemplars' trace_id label (the one laios exports) links to a tracing data source or URL."""
    (source,) = load("provisioning/datasources/prometheus.yml")["datasources"]
    (destination,) = source["jsonData"]["exemplarTraceIdDestinations"]
    assert destination["name"] == "trace_id"
    assert destination.get("datasourceUid") or destination.get("url")


def test_datasource_scrape_interval_matches_prometheus() -> None:
    """jsonData.timeInterval equals the scrape interval, so $__rate_interval spans 4 scrapes."""
    (source,) = load("provisioning/datasources/prometheus.yml")["datasources"]
    scrape_interval = load("prometheus/prometheus.yml")["global"]["scrape_interval"]
    assert source["jsonData"]["timeInterval"] == scrape_interval


def test_dashboard_provider_reads_the_mounted_dashboards() -> None:
    """The file provider's path is where compose mounts grafana/dashboards."""
    (provider,) = load("provisioning/dashboards/laios.yml")["providers"]
    assert provider["type"] == "file"
    assert mounts(GRAFANA_SERVICE)[provider["options"]["path"]] == GRAFANA / "dashboards"


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
