"""The Grafana dashboard: importable JSON, every query well formed, no stale metric names.

These checks need no running Prometheus (promtool only, skipped when absent). The same
queries are evaluated against a real Prometheus scraping real metrics and a real Envoy in
test_dashboards_live.py. The helpers below are shared with that module.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from irtgate.server.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "irtgate.json"
PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
DS_VAR = "${DS_PROMETHEUS}"
DATASOURCE = {"type": "prometheus", "uid": DS_VAR}

# What Grafana puts in for its built-in interval variables; any valid duration would do.
BUILTINS: Mapping[str, str] = {"__rate_interval": "1m", "__interval": "15s", "__range": "5m"}

# Labels a panel may group by. All are bounded (policy-defined names, fixed enums, or one
# value per scrape target / Envoy config object); grouping by anything else needs a look at
# its cardinality first.
BOUNDED_LABELS = frozenset(
    {
        "le",
        "api",
        "decision",
        "model",
        "budget",
        "outcome",
        "kind",
        "signal",
        "type",
        "action",
        "encoder",
        "instance",
        "version",
        "envoy_http_conn_manager_prefix",
        "envoy_cluster_name",
        "result",  # the decision log's written / dropped / error
    }
)

# The Envoy stats the brief asks the dashboard to show (ext_proc stat suffixes and cluster stats).
ENVOY_STATS = (
    "streams_failed",
    "message_timeouts",
    "failure_mode_allowed",
    "immediate_responses_sent",
    "envoy_cluster_upstream_rq_total",
)

_VAR = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
_LEGEND_LABEL = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_BY = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
_LABEL_VALUES = re.compile(r"^label_values\((.+),\s*(\w+)\)$")
_IRTGATE_NAME = re.compile(r"\birtgate_[a-z_]+\b")


@dataclass(frozen=True)
class Query:
    where: str
    expr: str
    legend: str

    @property
    def legend_labels(self) -> list[str]:
        return _LEGEND_LABEL.findall(self.legend)

    @property
    def grouped_by(self) -> set[str]:
        labels = {label.strip() for group in _BY.findall(self.expr) for label in group.split(",")}
        return labels - {""}

    @property
    def needs_envoy(self) -> bool:
        return "envoy_" in self.expr


def load_dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def all_panels(dash: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dash.get("panels", []):
        yield panel
        # Collapsed rows carry their panels inside the row.
        yield from panel.get("panels", [])


def dashboard_queries(dash: Mapping[str, Any]) -> list[Query]:
    queries = []
    for panel in all_panels(dash):
        for target in panel.get("targets", []):
            queries.append(
                Query(
                    f"panel {panel['title']!r} target {target['refId']}",
                    target["expr"],
                    target.get("legendFormat", ""),
                )
            )
    for ann in dash.get("annotations", {}).get("list", []):
        if "expr" in ann:
            queries.append(Query(f"annotation {ann['name']!r}", ann["expr"], ann["titleFormat"]))
    return queries


def query_variables(dash: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(variable name, series selector, label) of every `label_values` variable, in order."""
    out = []
    for var in dash["templating"]["list"]:
        if var["type"] != "query":
            continue
        match = _LABEL_VALUES.match(var["definition"])
        assert match, f"variable {var['name']}: not a label_values() query: {var['definition']}"
        out.append((var["name"], match.group(1).strip(), match.group(2)))
    return out


def substitute(expr: str, variables: Mapping[str, str]) -> str:
    """Expand Grafana variables the way Grafana would before sending the query."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name in BUILTINS:
            return BUILTINS[name]
        if name not in variables:
            raise KeyError(f"undefined dashboard variable ${name} in: {expr}")
        return variables[name]

    return _VAR.sub(one, expr)


def exposed_names(registry: CollectorRegistry) -> dict[str, set[str]]:
    """Family name -> the sample names Prometheus stores for it."""
    names: dict[str, set[str]] = {}
    for family in registry.collect():
        if family.type == "counter":
            names[family.name] = {family.name + "_total"}
        elif family.type == "histogram":
            names[family.name] = {family.name + s for s in ("_bucket", "_sum", "_count")}
        else:
            names[family.name] = {family.name}
    return names


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool not installed (Debian package 'prometheus'; `make prometheus`)")
    return path


# Variables as a user with "All" selected would have them; the live test uses real values.
ALL = {"DS_PROMETHEUS": "prometheus", "job": ".*", "instance": ".*", "envoy_job": ".*"}


def test_dashboard_is_importable_json() -> None:
    dash = load_dashboard()
    assert dash["schemaVersion"] >= 39
    assert dash["title"] == "irtgate"
    # Grafana limits uids to 40 characters; a fixed uid keeps links stable across imports.
    assert 0 < len(dash["uid"]) <= 40
    assert "id" not in dash or dash["id"] is None, "an exported id would clash on import"
    ds_vars = [v for v in dash["templating"]["list"] if v["name"] == "DS_PROMETHEUS"]
    assert len(ds_vars) == 1
    assert ds_vars[0]["type"] == "datasource"
    assert ds_vars[0]["query"] == "prometheus"


def test_every_query_goes_through_the_datasource_variable() -> None:
    dash = load_dashboard()
    for panel in all_panels(dash):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            assert var["datasource"] == DATASOURCE, var["name"]
    # No datasource uid from the machine the dashboard was built on.
    uids = set(re.findall(r'"uid":\s*"([^"]*)"', DASHBOARD.read_text(encoding="utf-8")))
    assert uids == {DS_VAR, "-- Grafana --", dash["uid"]}


def test_panel_layout_has_unique_ids_and_no_overlap() -> None:
    dash = load_dashboard()
    ids = [p["id"] for p in all_panels(dash)]
    assert len(ids) == len(set(ids))
    taken: dict[tuple[int, int], str] = {}
    for panel in all_panels(dash):
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["w"] > 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in taken, f"{panel['title']!r} overlaps {taken[(x, y)]!r}"
                taken[(x, y)] = panel["title"]


def test_rows_cover_every_area() -> None:
    rows = [p["title"] for p in load_dashboard()["panels"] if p["type"] == "row"]
    for area in ("Traffic", "latency", "Errors", "Cost", "quality", "PII", "Policy", "Encoder"):
        assert any(area in title for title in rows), f"no row for {area}"
    assert any("Envoy" in title for title in rows)
    exprs = " ".join(q.expr for q in dashboard_queries(load_dashboard()))
    for stat in ENVOY_STATS:
        assert stat in exprs, f"Envoy stat {stat} is not on the dashboard"


def test_every_metric_of_server_metrics_is_on_the_dashboard() -> None:
    registry = CollectorRegistry()
    Metrics.create(registry)
    names = exposed_names(registry)
    assert len(names) == len(Metrics.__dataclass_fields__)
    exprs = " ".join(q.expr for q in dashboard_queries(load_dashboard()))
    used = set(_IRTGATE_NAME.findall(exprs))
    missing = sorted(family for family, samples in names.items() if not samples & used)
    assert not missing, f"metrics with no panel: {missing}"
    known = set().union(*names.values())
    stale = sorted(used - known)
    assert not stale, f"dashboard uses metric names that server/metrics.py does not export: {stale}"


def test_exported_labels_are_bounded() -> None:
    # A new label on a metric in server/metrics.py needs a look at its cardinality (and
    # usually a panel): this fails until it is added to BOUNDED_LABELS.
    metrics = Metrics.create(CollectorRegistry())
    for name in Metrics.__dataclass_fields__:
        labels = set(getattr(metrics, name)._labelnames)
        # policy_info's path is one value per instance (the policy file it loaded).
        assert labels <= BOUNDED_LABELS | {"path"}, f"{name}: {sorted(labels - BOUNDED_LABELS)}"


def test_label_values_used_in_queries_exist() -> None:
    # Label names in selectors and groupings must be labels of server/metrics.py (or target
    # labels / Envoy tags) - a typo there silently returns an empty or unsplit panel.
    registry = CollectorRegistry()
    metrics = Metrics.create(registry)
    metric_labels: set[str] = set()
    for field in Metrics.__dataclass_fields__:
        metric_labels.update(getattr(metrics, field)._labelnames)
    allowed = metric_labels | {"job", "instance", "le", "__name__"} | BOUNDED_LABELS
    for q in dashboard_queries(load_dashboard()):
        assert q.grouped_by <= BOUNDED_LABELS, f"{q.where}: unbounded grouping {q.grouped_by}"
        matchers = set(re.findall(r"[{,]\s*(\w+)\s*[!=]~?", q.expr))
        assert matchers <= allowed, f"{q.where}: unknown label in {sorted(matchers - allowed)}"
        assert set(q.legend_labels) <= allowed, f"{q.where}: legend {q.legend}"


def test_queries_use_only_defined_variables() -> None:
    dash = load_dashboard()
    defined = {v["name"] for v in dash["templating"]["list"]}
    assert defined == set(ALL)
    for q in dashboard_queries(dash):
        substitute(q.expr, ALL)  # raises on an undefined variable
    with pytest.raises(KeyError, match=r"\$nope"):
        substitute("rate(irtgate_errors_total{kind=~'$nope'}[5m])", ALL)


def test_every_query_parses_with_promtool(tmp_path: Path) -> None:
    # promtool checks PromQL syntax of recording rules, so each query becomes one. This is the
    # check that still runs where no Envoy is available for the live test.
    tool = promtool()
    dash = load_dashboard()
    queries = dashboard_queries(dash) + [
        Query(f"variable {name}", selector, "") for name, selector, _ in query_variables(dash)
    ]
    records = [
        {"record": f"dashboard_check:q{i}", "expr": substitute(q.expr, ALL)}
        for i, q in enumerate(queries)
    ]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}))
    done = subprocess.run([tool, "check", "rules", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(queries)} rules found" in done.stdout

    # The same check rejects a broken query, so the pass above means something.
    records.append({"record": "dashboard_check:broken", "expr": "sum by (decision (rate(x[5m]))"})
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}))
    done = subprocess.run([tool, "check", "rules", str(path)], capture_output=True, text=True)
    assert done.returncode != 0


def test_provisioning_points_at_prometheus_and_the_dashboard_folder() -> None:
    ds_files = sorted((PROVISIONING / "datasources").glob("*.yml"))
    assert ds_files
    sources = yaml.safe_load(ds_files[0].read_text(encoding="utf-8"))
    assert sources["apiVersion"] == 1
    (prom,) = sources["datasources"]
    assert prom["type"] == "prometheus" and prom["url"].startswith("http")

    dash_files = sorted((PROVISIONING / "dashboards").glob("*.yml"))
    assert dash_files
    providers = yaml.safe_load(dash_files[0].read_text(encoding="utf-8"))
    assert providers["apiVersion"] == 1
    (provider,) = providers["providers"]
    assert provider["type"] == "file" and provider["options"]["path"].startswith("/")


def test_envoy_ext_proc_panels_match_names_with_and_without_filter_prefix(tmp_path: Path) -> None:
    # Envoy splices the ext_proc filter's stat_prefix into the metric name. Every ext_proc panel
    # must count both shapes; promtool evaluates them here on series of each shape.
    tool = promtool()
    shape = re.compile(r"envoy_http_ext_proc_\(\.\+_\)\?(\w+)")
    queries = [q for q in dashboard_queries(load_dashboard()) if "envoy_http_ext_proc_" in q.expr]
    assert len(queries) >= 4
    for q in queries:
        assert not re.search(r"envoy_http_ext_proc_\w", q.expr), f"{q.where}: literal name"
    stats = sorted({stat for q in queries for stat in shape.findall(q.expr)})
    assert {"streams_failed", "message_timeouts", "failure_mode_allowed"} <= set(stats)
    labels = 'job="envoy", instance="127.0.0.1:9901", envoy_http_conn_manager_prefix'
    series = [
        {"series": f'envoy_http_ext_proc_{infix}{stat}{{{labels}="{hcm}"}}', "values": "0+60x10"}
        for stat in stats
        for infix, hcm in (("irtgate_", "with_prefix"), ("", "plain"))
    ]
    expected = [
        {"labels": f'{{envoy_http_conn_manager_prefix="{hcm}"}}', "value": 1}
        for hcm in ("with_prefix", "plain")
    ]
    variables = {**ALL, "envoy_job": "envoy"}
    tests = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "promql_expr_test": [
                    {
                        "expr": substitute(q.expr, variables),
                        "eval_time": "5m",
                        "exp_samples": expected,
                    }
                    for q in queries
                ],
            }
        ],
    }
    path = tmp_path / "envoy-shapes.test.yml"
    path.write_text(yaml.safe_dump(tests), encoding="utf-8")
    done = subprocess.run([tool, "test", "rules", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
