"""Every dashboard query and alert rule, evaluated by a real Prometheus on real metrics.

One module-scoped stack on loopback: irtgate's admin server exposing a real ``Metrics``
registry (driven through the metrics API), a real Envoy whose ext_proc filters point at a dead
processor with failure_mode_allow (so its ext_proc and cluster counters move), and the Debian
``prometheus`` binary scraping both every second with the alert rules loaded. Logs of Envoy
and Prometheus are printed only when a test fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, start_http_server

from server.metrics import ERROR_KINDS, Metrics
from signals.request import ApiKind
from tests.server.test_dashboards import (
    Query,
    dashboard_queries,
    load_dashboard,
    query_variables,
    substitute,
)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("prometheus_live")]

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "irtgate-alerts.yml"
QUERIES = dashboard_queries(load_dashboard())
# Alerts the driven traffic must trigger (pending or firing), and ones it must not.
EXPECTED_ACTIVE = {
    "IrtgateErrorRatioHigh",
    "IrtgateDecisionLatencyHigh",
    "IrtgatePolicyReloadFailing",
}
EXPECTED_ACTIVE_ENVOY = {"EnvoyExtProcStreamsFailing", "EnvoyExtProcFailOpen"}
EXPECTED_QUIET = {
    "IrtgateDown",
    "IrtgateTargetMissing",
    "IrtgatePolicyVersionsDiverge",
    "EnvoyExtProcMessageTimeouts",
}
# Two HTTP connection managers: one ext_proc filter with its own stat_prefix (spliced into the
# metric name) and one without, as irtgate's own Envoy config has it.
LISTENERS = (("llm", "irtgate"), ("llm_plain", None))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_until(
    what: str, check: Callable[[], bool], timeout: float, logs: Callable[[], str] = str
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError, KeyError, IndexError):
            if check():
                return
        time.sleep(0.1)
    raise RuntimeError(f"timed out after {timeout:g}s waiting for {what}\n{logs()}")


class AdminServer:
    """irtgate's aiohttp admin app on its own loop thread (prometheus_client's if absent)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._stop: Callable[[], None]
        try:
            from server.admin import admin_app
        except ImportError:  # the gateway's admin server not in this checkout
            httpd, thread = start_http_server(0, "127.0.0.1", registry)
            self.port: int = httpd.server_port
            self.path = "/"

            def stop_plain() -> None:
                httpd.shutdown()
                httpd.server_close()
                thread.join(5)

            self._stop = stop_plain
            return
        from aiohttp import web

        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        runner = web.AppRunner(admin_app(registry, lambda: True), access_log=None)

        async def start() -> int:
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            return int(runner.addresses[0][1])

        def stop() -> None:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(5)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(5)
            loop.close()

        self.port = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
        self.path = "/metrics"
        self._stop = stop

    def close(self) -> None:
        self._stop()


def drive(m: Metrics, scale: int) -> None:
    """Several APIs, decisions, models, outcomes and error kinds, as irtgate would count them."""
    routes = (
        ("easy", "small-llm", "low"),
        ("hard", "big-llm", "high"),
        ("private", "local", "none"),
    )
    for api in [kind.value for kind in ApiKind]:
        for decision, model, budget in routes:
            m.requests.labels(api, decision, model, budget, "routed").inc(3 * scale)
            m.estimated_cost.labels(decision, model).inc(0.002 * scale)
            m.baseline_cost.labels(decision).inc(0.01 * scale)
            for p in (0.55, 0.8, 0.93):
                m.p_correct.labels(decision).observe(p)
        for seconds in (0.0008, 0.004, 0.012, 0.2):
            m.decision_latency.labels(api).observe(seconds)
    # Label conventions of server/core.py: a rejection's decision is its error code.
    m.requests.labels("chat_completions", "passthrough", "gpt-4o", "none", "passthrough").inc(scale)
    m.requests.labels("responses", "invalid_json", "none", "none", "rejected").inc(2 * scale)
    m.requests.labels("chat_completions", "internal_error", "none", "none", "error").inc(4 * scale)
    for kind in ERROR_KINDS:
        m.errors.labels(kind).inc(scale)
    for signal, seconds in (("difficulty", 0.004), ("domain", 0.0005), ("pii", 0.0002)):
        m.signal_latency.labels(signal).observe(seconds)
    m.pii_findings.labels("email", "redact").inc(scale)
    m.pii_findings.labels("iban", "block").inc(scale)
    m.encoder_truncations.labels("minilm-int8").inc(scale)
    m.policy_reloads.labels("ok").inc()
    m.policy_reloads.labels("error").inc()
    m.policy_info.labels("/etc/irtgate/policy.yaml", "3f2a9c").set(1)
    m.streams_active.set(2 * scale)


def envoy_config(
    admin_port: int, upstream_port: int, dead_port: int
) -> tuple[dict[str, Any], dict[str, int]]:
    """Envoy's config, and the listener port of each connection manager."""
    t = "type.googleapis.com/envoy.extensions"

    def cluster(name: str, port: int, http2: bool = False) -> dict[str, Any]:
        endpoint = {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}
        out: dict[str, Any] = {
            "name": name,
            "type": "STATIC",
            "connect_timeout": "0.25s",
            "load_assignment": {
                "cluster_name": name,
                "endpoints": [{"lb_endpoints": [{"endpoint": endpoint}]}],
            },
        }
        if http2:
            opts = {"@type": f"{t}.upstreams.http.v3.HttpProtocolOptions"}
            opts["explicit_http_config"] = {"http2_protocol_options": {}}  # type: ignore[assignment]
            out["typed_extension_protocol_options"] = {
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": opts
            }
        return out

    def listener(port: int, hcm_prefix: str, filter_prefix: str | None) -> dict[str, Any]:
        ext_proc: dict[str, Any] = {
            "@type": f"{t}.filters.http.ext_proc.v3.ExternalProcessor",
            "grpc_service": {"envoy_grpc": {"cluster_name": "extproc"}},
            "failure_mode_allow": True,
            "message_timeout": "0.5s",
            "processing_mode": {"request_header_mode": "SEND", "response_header_mode": "SKIP"},
        }
        if filter_prefix:
            ext_proc["stat_prefix"] = filter_prefix
        route = {"match": {"prefix": "/"}, "route": {"cluster": f"upstream_{hcm_prefix}"}}
        hcm = {
            "@type": f"{t}.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": hcm_prefix,
            "route_config": {
                "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [route]}]
            },
            "http_filters": [
                {"name": "envoy.filters.http.ext_proc", "typed_config": ext_proc},
                {
                    "name": "envoy.filters.http.router",
                    "typed_config": {"@type": f"{t}.filters.http.router.v3.Router"},
                },
            ],
        }
        return {
            "name": hcm_prefix,
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
            "filter_chains": [
                {
                    "filters": [
                        {
                            "name": "envoy.filters.network.http_connection_manager",
                            "typed_config": hcm,
                        }
                    ]
                }
            ],
        }

    ports = {hcm: free_port() for hcm, _ in LISTENERS}
    config = {
        # Histograms reach /stats/prometheus only at a stats flush (default every 5 s).
        "stats_flush_interval": "0.2s",
        "admin": {
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}
        },
        "static_resources": {
            "listeners": [listener(ports[hcm], hcm, fp) for hcm, fp in LISTENERS],
            "clusters": [cluster("extproc", dead_port, http2=True)]
            + [cluster(f"upstream_{hcm}", upstream_port) for hcm, _ in LISTENERS],
        },
    }
    return config, ports


@dataclass
class Stack:
    metrics: Metrics
    prom_url: str = ""
    envoy_ports: dict[str, int] = field(default_factory=dict)
    envoy_admin_port: int = 0
    envoy_requests: int = 0
    logs: dict[str, Path] = field(default_factory=dict)

    @property
    def has_envoy(self) -> bool:
        return bool(self.envoy_ports)

    def api(self, path: str, params: dict[str, str] | None = None) -> Any:
        url = f"{self.prom_url}{path}?{urllib.parse.urlencode(params or {})}"
        status, body = http_get(url, timeout=10)
        data = json.loads(body)
        assert status == 200 and data["status"] == "success", f"{path} {params}: {data}"
        return data["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("/api/v1/query", {"query": expr})
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def log_tails(self) -> str:
        parts = []
        for name, path in self.logs.items():
            lines = path.read_text(errors="replace").splitlines()[-40:] if path.exists() else []
            parts.append(f"----- {name} log (last {len(lines)} lines) -----\n" + "\n".join(lines))
        return "\n".join(parts)

    @contextlib.contextmanager
    def logs_on_failure(self) -> Iterator[None]:
        try:
            yield
        except BaseException:
            print(self.log_tails())  # pytest shows captured output of failing tests only
            raise

    def send_through_envoy(self, n: int) -> None:
        """n requests per listener, returning once Envoy's histograms include them."""
        if not self.has_envoy:
            return
        for port in self.envoy_ports.values():
            for _ in range(n):
                status, _ = http_get(f"http://127.0.0.1:{port}/healthz")
                assert status == 200, f"Envoy on {port} answered {status}"
        self.envoy_requests += n
        stats = f"http://127.0.0.1:{self.envoy_admin_port}/stats/prometheus"
        counts = re.compile(r"^envoy_http_downstream_rq_time_count\{[^}]*\"llm\"\} (\d+)", re.M)

        def flushed() -> bool:
            return counts.findall(http_get(stats)[1].decode()) == [str(self.envoy_requests)]

        wait_until("Envoy stats flush", flushed, 10, self.log_tails)

    def wait_for_scrape_after(self, t0: float, job: str) -> None:
        def scraped() -> bool:
            # timestamp() of a bare selector is the scrape's time; of `up == 1` it would be now.
            (when,) = self.query(f'timestamp(up{{job="{job}"}})')
            (up,) = self.query(f'up{{job="{job}"}}')
            return float(when["value"][1]) > t0 and up["value"][1] == "1"

        wait_until(f"a scrape of job {job} after t={t0:.1f}", scraped, 20, self.log_tails)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _start_envoy(
    stack: Stack, tmp: Path, upstream_port: int
) -> tuple[subprocess.Popen[bytes], int] | None:
    """Envoy and its admin port, or None where no Envoy binary is installed."""
    binary = Path(sys.executable).with_name("envoy")
    envoy = str(binary) if binary.exists() else shutil.which("envoy")
    if envoy is None:
        return None
    admin_port = free_port()
    config, ports = envoy_config(admin_port, upstream_port, dead_port=free_port())
    cfg = tmp / "envoy.json"
    cfg.write_text(json.dumps(config))
    stack.logs["envoy"] = tmp / "envoy.log"
    with stack.logs["envoy"].open("wb") as log:
        proc = subprocess.Popen(
            [envoy, "-c", str(cfg), "--use-dynamic-base-id", "-l", "warn"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    ready = f"http://127.0.0.1:{admin_port}/ready"
    try:
        wait_until("Envoy /ready", lambda: http_get(ready)[0] == 200, 20, stack.log_tails)
    except RuntimeError:
        _stop(proc)
        raise
    stack.envoy_ports = ports
    stack.envoy_admin_port = admin_port
    return proc, admin_port


def _exited_or_ready(proc: subprocess.Popen[bytes], url: str) -> Callable[[], bool]:
    return lambda: proc.poll() is not None or http_get(url)[0] == 200


def _start_prometheus(stack: Stack, tmp: Path, targets: dict[str, tuple[str, str]]) -> Any:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus not installed (Debian package 'prometheus'; `make prometheus`)")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {"job_name": job, "metrics_path": path, "static_configs": [{"targets": [addr]}]}
            for job, (addr, path) in targets.items()
        ],
    }
    cfg = tmp / "prometheus.yml"
    cfg.write_text(yaml.safe_dump(config))
    stack.logs["prometheus"] = tmp / "prometheus.log"
    for _ in range(3):  # the free port may be taken between probing and binding
        port = free_port()
        with stack.logs["prometheus"].open("wb") as log:
            proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={cfg}",
                    f"--storage.tsdb.path={tmp / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        stack.prom_url = f"http://127.0.0.1:{port}"
        url = f"{stack.prom_url}/-/ready"
        try:
            wait_until(
                "Prometheus /-/ready",
                _exited_or_ready(proc, url),
                30,
                stack.log_tails,
            )
        except RuntimeError:
            _stop(proc)
            raise
        if proc.poll() is None:
            return proc
    raise RuntimeError("Prometheus did not start\n" + stack.log_tails())


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if shutil.which("prometheus") is None:
        pytest.skip("prometheus not installed (Debian package 'prometheus'; `make prometheus`)")
    tmp = tmp_path_factory.mktemp("prometheus_live")
    registry = CollectorRegistry()
    st = Stack(Metrics.create(registry))
    admin = AdminServer(registry)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        drive(st.metrics, 1)
        targets = {"irtgate": (f"127.0.0.1:{admin.port}", admin.path)}
        envoy = _start_envoy(st, tmp, admin.port)
        if envoy is not None:
            procs.append(envoy[0])
            st.send_through_envoy(2)
            admin_port = envoy[1]
            targets["envoy"] = (f"127.0.0.1:{admin_port}", "/stats/prometheus")
        procs.append(_start_prometheus(st, tmp, targets))
        t0 = time.time()
        for job in targets:
            st.wait_for_scrape_after(t0, job)
        # A second round after the first scrape, so every counter moves between two scrapes.
        drive(st.metrics, 2)
        st.send_through_envoy(3)
        t1 = time.time()
        for job in targets:
            st.wait_for_scrape_after(t1, job)
        yield st
    finally:
        for proc in reversed(procs):
            _stop(proc)
        admin.close()


@pytest.fixture(scope="module")
def variables(stack: Stack) -> dict[str, str]:
    """Dashboard variables resolved through their own label_values() queries."""
    values = {"DS_PROMETHEUS": "prometheus"}
    for name, selector, label in query_variables(load_dashboard()):
        series = stack.api("/api/v1/series", {"match[]": substitute(selector, values)})
        found = sorted({s[label] for s in series if label in s})
        if name == "envoy_job" and not stack.has_envoy:
            values[name] = ".*"
            continue
        assert found, f"variable {name}: label_values({selector}, {label}) found nothing"
        # Grafana sends a multi-value selection as an escaped regex alternation.
        values[name] = "(" + "|".join(re.escape(v).replace("\\", "\\\\") for v in found) + ")"
    return values


def test_variables_find_the_scraped_jobs(stack: Stack, variables: dict[str, str]) -> None:
    assert variables["job"] == "(irtgate)"
    assert variables["instance"].startswith("(127\\\\.0\\\\.0\\\\.1:")
    if stack.has_envoy:
        assert variables["envoy_job"] == "(envoy)"


@pytest.mark.parametrize("query", QUERIES, ids=[q.where for q in QUERIES])
def test_dashboard_query_returns_data(
    stack: Stack, variables: dict[str, str], query: Query
) -> None:
    if query.needs_envoy and not stack.has_envoy:
        pytest.skip("no Envoy binary: this query's syntax is only checked by promtool")
    expr = substitute(query.expr, variables)
    with stack.logs_on_failure():
        result = stack.query(expr)
        assert result, f"{query.where}: no data for {expr}"
        values = [float(r["value"][1]) for r in result]
        assert any(math.isfinite(v) for v in values), f"{query.where}: {values} for {expr}"
        for label in query.legend_labels:
            assert any(r["metric"].get(label) for r in result), f"{query.where}: no {label}"


def test_grouping_labels_exist_in_prometheus(stack: Stack) -> None:
    labels = set(stack.api("/api/v1/labels"))
    for query in QUERIES:
        if query.needs_envoy and not stack.has_envoy:
            continue
        assert query.grouped_by <= labels, f"{query.where}: {query.grouped_by - labels}"


def test_envoy_ext_proc_stats_split_by_connection_manager(
    stack: Stack, variables: dict[str, str]
) -> None:
    # Both the filter with a stat_prefix and the one without must be matched by the panels.
    if not stack.has_envoy:
        pytest.skip("no Envoy binary")
    (query,) = [q for q in QUERIES if "streams_failed" in q.expr]
    result = stack.query(substitute(query.expr, variables))
    prefixes = {r["metric"]["envoy_http_conn_manager_prefix"]: float(r["value"][1]) for r in result}
    assert set(prefixes) == {hcm for hcm, _ in LISTENERS}
    assert all(rate > 0 for rate in prefixes.values()), prefixes


def test_alert_rules_evaluate_and_fire_on_live_data(stack: Stack) -> None:
    expected = EXPECTED_ACTIVE | (EXPECTED_ACTIVE_ENVOY if stack.has_envoy else set())

    def active() -> set[str]:
        alerts = stack.api("/api/v1/alerts")["alerts"]
        return {a["labels"]["alertname"] for a in alerts if a["state"] in {"pending", "firing"}}

    with stack.logs_on_failure():
        wait_until(f"alerts {sorted(expected)}", lambda: expected <= active(), 15)
        assert not active() & EXPECTED_QUIET
        groups = stack.api("/api/v1/rules")["groups"]
        rules = [r for g in groups for r in g["rules"]]
        defined = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
        assert len(rules) == sum(len(g["rules"]) for g in defined)
        for rule in rules:
            assert rule["health"] == "ok", f"{rule['name']}: {rule.get('lastError')}"
