"""The Prometheus alert rules and example config: promtool checks and unit tests.

The rules are also loaded by a real Prometheus scraping real metrics in
test_dashboards_live.py, which checks that they evaluate and fire there.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from irtgate.server.metrics import Metrics, WorkerMetrics
from tests.server.test_dashboards import exposed_names

PROM_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULES = PROM_DIR / "irtgate-alerts.yml"
RULE_TESTS = PROM_DIR / "irtgate-alerts.test.yml"
CONFIG = PROM_DIR / "prometheus.yml"
OPERATOR_RULE = PROM_DIR / "irtgate-prometheusrule.yaml"

REQUIRED = {
    "IrtgateDown",
    "IrtgateErrorRatioHigh",
    "IrtgateDecisionLatencyHigh",
    "IrtgatePolicyReloadFailing",
    "EnvoyExtProcStreamsFailing",
    "EnvoyExtProcMessageTimeouts",
    "EnvoyExtProcFailOpen",
}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    if tool is None:
        pytest.skip("promtool not installed (Debian package 'prometheus'; `make prometheus`)")
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=60)


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_rules_pass_promtool_check() -> None:
    done = promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(alert_rules())} rules found" in done.stdout


def test_rule_unit_tests_pass() -> None:
    done = promtool("test", "rules", str(RULE_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_unit_tests_notice_a_changed_threshold(tmp_path: Path) -> None:
    # The unit tests pin behaviour: loosening the error-ratio threshold must break them.
    text = RULES.read_text(encoding="utf-8")
    assert text.count("> 0.05\n") == 2
    (tmp_path / RULES.name).write_text(text.replace("> 0.05\n", "> 0.5\n"), encoding="utf-8")
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    done = promtool("test", "rules", str(tmp_path / RULE_TESTS.name))
    assert done.returncode != 0
    assert "IrtgateErrorRatioHigh" in done.stdout + done.stderr


def test_required_alerts_are_there_with_severity_and_text() -> None:
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    assert set(names) >= REQUIRED
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert rule["annotations"]["description"], rule["alert"]


def test_every_alert_is_unit_tested_firing_and_quiet() -> None:
    cases = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))["tests"]
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in cases:
        for check in case.get("alert_rule_test", []):
            (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert firing == names, f"never shown firing: {sorted(names - firing)}"
    assert quiet == names, f"never shown quiet: {sorted(names - quiet)}"


def test_alerts_use_only_metrics_that_exist() -> None:
    registry = CollectorRegistry()
    Metrics.create(registry)
    WorkerMetrics.create(registry)  # the supervisor's, under serve --workers N
    known = set().union(*exposed_names(registry).values())
    for rule in alert_rules():
        used = set(re.findall(r"\birtgate_[a-z_]+\b", rule["expr"]))
        assert used <= known, f"{rule['alert']}: unknown {sorted(used - known)}"


def test_example_prometheus_config_is_valid() -> None:
    # Also resolves rule_files relative to the config, so the example loads the alert rules.
    done = promtool("check", "config", str(CONFIG))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 1 rule files found" in done.stdout


def test_prometheus_operator_rule_matches_the_rule_file() -> None:
    doc = yaml.safe_load(OPERATOR_RULE.read_text(encoding="utf-8"))
    assert doc["apiVersion"] == "monitoring.coreos.com/v1"
    assert doc["kind"] == "PrometheusRule"
    assert doc["metadata"]["name"]
    assert doc["spec"]["groups"] == yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
