"""promtool accepts grafana/prometheus: the scrape config, the rules and the rules' unit tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

PROMETHEUS_DIR = Path(__file__).resolve().parents[2] / "grafana" / "prometheus"


def promtool(binary: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run promtool in grafana/prometheus (where relative rule paths resolve)."""
    return subprocess.run(
        [binary, *args],
        cwd=PROMETHEUS_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_check_config_accepts_the_scrape_config(promtool_binary: str) -> None:
    """`promtool check config prometheus.yml` succeeds (it also checks the rule file it loads)."""
    result = promtool(promtool_binary, "check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_rules_accepts_the_rules(promtool_binary: str) -> None:
    """`promtool check rules rules.yml` succeeds."""
    result = promtool(promtool_binary, "check", "rules", "rules.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass(promtool_binary: str) -> None:
    """`promtool test rules rules.test.yml` succeeds."""
    result = promtool(promtool_binary, "test", "rules", "rules.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
