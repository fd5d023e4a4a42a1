"""Every dashboard query and alert rule, evaluated by a real Prometheus on real metrics.

One module-scoped setup on loopback, built with the e2e harness (server/testing.py):

- gateway "routed": Envoy + in-process irtgate + demo upstreams, as `irtgate up` runs them,
  with real requests through Envoy (routed, passed through, rejected) on all three APIs;
- gateway "failopen": the same Envoy config with fail-open and no irtgate behind it, so
  Envoy's ext_proc failure counters move;
- the Debian ``prometheus`` binary scraping irtgate's admin ``/metrics`` and both Envoys'
  ``/stats/prometheus`` every second, with the alert rules loaded.

The metrics nothing on the request path sets yet (cost, P(correct), PII, policy, encoder) are
driven through the gateway's own ``Metrics``, so they are served by the real admin server.
Envoy and Prometheus logs are printed only when a test fails.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import shutil
import socket
import subprocess
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

from irtgate.server.metrics import ERROR_KINDS, Metrics
from irtgate.server.settings import FailMode
from irtgate.server.testing import Stack as Gateway
from irtgate.server.testing import stack_settings, start_stack
from irtgate.signals.request import ApiKind
from tests.server.test_dashboards import (
    Query,
    dashboard_queries,
    load_dashboard,
    query_variables,
    substitute,
)

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.xdist_group("prometheus_live")]

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "irtgate-alerts.yml"
QUERIES = dashboard_queries(load_dashboard())
HI = [{"role": "user", "content": "hi"}]
# Alerts this traffic must trigger (pending or firing), and ones it must not.
EXPECTED_ACTIVE = {
    "IrtgateErrorRatioHigh",
    "IrtgateDecisionLatencyHigh",
    "IrtgatePolicyReloadFailing",
    "EnvoyExtProcStreamsFailing",
    "EnvoyExtProcFailOpen",
}
EXPECTED_QUIET = {
    "IrtgateDown",
    "IrtgateTargetMissing",
    "IrtgatePolicyVersionsDiverge",
    "EnvoyExtProcMessageTimeouts",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def http(url: str, body: bytes | None = None, timeout: float = 5.0) -> tuple[int, bytes]:
    headers = {"content-type": "application/json"} if body is not None else {}
    req = urllib.request.Request(url, data=body, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
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


def send_requests(gw: Gateway) -> int:
    """Real LLM requests through Envoy on every API; the number sent."""
    sent = [
        ("/v1/chat/completions", {"model": "auto", "messages": HI}),
        ("/v1/responses", {"model": "auto", "input": "hi"}),
        ("/v1/messages", {"model": "auto", "max_tokens": 16, "messages": HI}),
        ("/v1/chat/completions", {"model": "demo-large-1", "messages": HI}),
    ]
    for path, doc in sent:
        status, body = http(gw.url + path, json.dumps(doc).encode())
        assert status == 200, f"{gw.name} {path}: {status} {body[:200]!r}"
    status, _ = http(gw.url + "/v1/chat/completions", b'{"model": "auto",')
    assert status == 400
    return len(sent) + 1


def drive(m: Metrics, scale: int) -> None:
    """What the request path does not set yet, with the label conventions of server/core.py."""
    routes = (
        ("easy", "small-llm", "low"),
        ("hard", "big-llm", "high"),
        ("private", "local", "none"),
    )
    for decision, model, budget in routes:
        m.requests.labels("chat_completions", decision, model, budget, "routed").inc(scale)
        m.estimated_cost.labels(decision, model).inc(0.002 * scale)
        m.baseline_cost.labels(decision).inc(0.01 * scale)
        for p in (0.55, 0.8, 0.93):
            m.p_correct.labels(decision).observe(p)
    # Enough internal errors and slow decisions to trip the error-ratio and latency alerts.
    m.requests.labels("chat_completions", "internal_error", "none", "none", "error").inc(4 * scale)
    for api in ApiKind:
        for _ in range(3):
            m.decision_latency.labels(api.value).observe(0.2)
    # invalid_json comes from the real requests only (see send_requests).
    for kind in set(ERROR_KINDS) - {"invalid_json"}:
        m.errors.labels(kind).inc(scale)
    for signal, seconds in (("difficulty", 0.004), ("domain", 0.0005), ("pii", 0.0002)):
        m.signal_latency.labels(signal).observe(seconds)
    m.pii_findings.labels("email", "redact").inc(scale)
    m.pii_findings.labels("iban", "block").inc(scale)
    m.encoder_truncations.labels("minilm-int8").inc(scale)
    m.signal_truncations.labels("pii").inc(scale)
    m.policy_reloads.labels("ok").inc()
    m.policy_reloads.labels("error").inc()
    m.policy_info.labels("/etc/irtgate/policy.yaml", "3f2a9c").set(1)


@dataclass
class Setup:
    routed: Gateway
    failopen: Gateway
    prom_url: str = ""
    logs: dict[str, Path] = field(default_factory=dict)
    envoy_requests: dict[str, int] = field(default_factory=dict)

    def api(self, path: str, params: dict[str, str] | None = None) -> Any:
        status, body = http(f"{self.prom_url}{path}?{urllib.parse.urlencode(params or {})}")
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
        parts = [gw.logs()[-6000:] for gw in (self.routed, self.failopen)]
        for name, path in self.logs.items():
            lines = path.read_text(errors="replace").splitlines()[-40:] if path.exists() else []
            parts.append(f"--- {name} (last {len(lines)} lines) ---\n" + "\n".join(lines))
        return "\n".join(parts)

    @contextlib.contextmanager
    def logs_on_failure(self) -> Iterator[None]:
        try:
            yield
        except BaseException:
            print(self.log_tails())  # pytest shows captured output of failing tests only
            raise

    def traffic(self, scale: int, wait_for_flush: bool) -> None:
        """One round of requests and driven metrics (and Envoy's stats flush, if asked)."""
        gateways = {"routed": self.routed, "failopen": self.failopen}
        for name, gw in gateways.items():
            self.envoy_requests[name] = self.envoy_requests.get(name, 0) + send_requests(gw)
        assert self.routed.gateway is not None
        drive(self.routed.gateway.metrics, scale)
        if not wait_for_flush:
            return
        # Envoy publishes histograms at its stats flush (every 5 s by default).
        count = re.compile(r'^envoy_http_downstream_rq_time_count\{[^}]*"irtgate"\} (\d+)', re.M)
        for name, gw in gateways.items():

            def flushed(gw: Gateway = gw, want: int = self.envoy_requests[name]) -> bool:
                seen = count.findall(http(gw.envoy.admin_url + "/stats/prometheus")[1].decode())
                return len(seen) == 1 and int(seen[0]) >= want

            wait_until(f"Envoy {name} stats flush", flushed, 15, self.log_tails)

    def wait_for_scrape_after(self, t0: float, job: str, targets: int) -> None:
        """Until each of the job's targets has been scraped, successfully, since t0."""

        def scraped() -> bool:
            # timestamp() of a bare selector is the scrape's time; of `up == 1` it would be now.
            stamps = self.query(f'timestamp(up{{job="{job}"}})')
            ups = self.query(f'up{{job="{job}"}}')
            # Targets start scraping at different offsets: all of them must be in.
            return (
                len(stamps) == targets
                and all(float(s["value"][1]) > t0 for s in stamps)
                and all(u["value"][1] == "1" for u in ups)
            )

        wait_until(f"a scrape of job {job} after t={t0:.1f}", scraped, 20, self.log_tails)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _start_prometheus(setup: Setup, tmp: Path, targets: dict[str, list[str]]) -> Any:
    binary = shutil.which("prometheus")
    assert binary is not None
    scrape = {"irtgate": "/metrics", "envoy": "/stats/prometheus"}
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {"job_name": job, "metrics_path": scrape[job], "static_configs": [{"targets": addrs}]}
            for job, addrs in targets.items()
        ],
    }
    cfg = tmp / "prometheus.yml"
    cfg.write_text(yaml.safe_dump(config))
    setup.logs["prometheus"] = tmp / "prometheus.log"
    for _ in range(3):  # the free port may be taken between probing and binding
        port = free_port()
        with setup.logs["prometheus"].open("wb") as log:
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
        setup.prom_url = f"http://127.0.0.1:{port}"
        ready = f"{setup.prom_url}/-/ready"

        def exited_or_ready(proc: subprocess.Popen[bytes] = proc, url: str = ready) -> bool:
            return proc.poll() is not None or http(url)[0] == 200

        try:
            wait_until("Prometheus /-/ready", exited_or_ready, 30, setup.log_tails)
        except RuntimeError:
            _stop(proc)
            raise
        if proc.poll() is None:
            return proc
    raise RuntimeError("Prometheus did not start\n" + setup.log_tails())


def _hostport(url: str) -> str:
    return url.removeprefix("http://").rstrip("/")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    if shutil.which("prometheus") is None:
        pytest.skip("prometheus not installed (Debian package 'prometheus'; `make prometheus`)")
    tmp = tmp_path_factory.mktemp("prometheus_live")
    with contextlib.ExitStack() as stack:
        routed = start_stack(tmp / "routed", name="routed")
        stack.callback(routed.close)
        failopen = start_stack(
            tmp / "failopen",
            stack_settings(fail_mode=FailMode.OPEN),
            processor="none",
            name="failopen",
        )
        stack.callback(failopen.close)
        st = Setup(routed, failopen)
        # Prometheus takes about 5 s to start scraping: Envoy flushes its stats meanwhile.
        st.traffic(1, wait_for_flush=False)
        targets = {
            "irtgate": [_hostport(routed.admin_url)],
            "envoy": [_hostport(gw.envoy.admin_url) for gw in (routed, failopen)],
        }
        stack.callback(_stop, _start_prometheus(st, tmp, targets))
        t0 = time.time()
        for job in targets:
            st.wait_for_scrape_after(t0, job, len(targets[job]))
        # A second round after the first scrape, so every counter moves between two scrapes.
        st.traffic(2, wait_for_flush=True)
        t1 = time.time()
        for job in targets:
            st.wait_for_scrape_after(t1, job, len(targets[job]))
        yield st


@pytest.fixture(scope="module")
def variables(setup: Setup) -> dict[str, str]:
    """Dashboard variables resolved through their own label_values() queries."""
    values = {"DS_PROMETHEUS": "prometheus"}
    for name, selector, label in query_variables(load_dashboard()):
        series = setup.api("/api/v1/series", {"match[]": substitute(selector, values)})
        found = sorted({s[label] for s in series if label in s})
        assert found, f"variable {name}: label_values({selector}, {label}) found nothing"
        # Grafana sends a multi-value selection as an escaped regex alternation.
        values[name] = "(" + "|".join(re.escape(v).replace("\\", "\\\\") for v in found) + ")"
    return values


def test_variables_find_the_scraped_jobs(setup: Setup, variables: dict[str, str]) -> None:
    assert variables["job"] == "(irtgate)"
    port = setup.routed.settings.admin_port
    assert variables["instance"] == f"(127\\\\.0\\\\.0\\\\.1:{port})"
    assert variables["envoy_job"] == "(envoy)"


@pytest.mark.parametrize("query", QUERIES, ids=[q.where for q in QUERIES])
def test_dashboard_query_returns_data(
    setup: Setup, variables: dict[str, str], query: Query
) -> None:
    expr = substitute(query.expr, variables)
    with setup.logs_on_failure():
        result = setup.query(expr)
        assert result, f"{query.where}: no data for {expr}"
        values = [float(r["value"][1]) for r in result]
        assert any(math.isfinite(v) for v in values), f"{query.where}: {values} for {expr}"
        for label in query.legend_labels:
            assert any(r["metric"].get(label) for r in result), f"{query.where}: no {label}"


def test_grouping_labels_exist_in_prometheus(setup: Setup) -> None:
    labels = set(setup.api("/api/v1/labels"))
    for query in QUERIES:
        assert query.grouped_by <= labels, f"{query.where}: {query.grouped_by - labels}"


def test_real_requests_show_on_the_traffic_panels(setup: Setup, variables: dict[str, str]) -> None:
    # The requests sent through Envoy, as irtgate counted them (not the driven metrics).
    (query,) = [q for q in QUERIES if q.where == "panel 'Requests/s by API' target A"]
    apis = {r["metric"]["api"] for r in setup.query(substitute(query.expr, variables))}
    assert apis >= {api.value for api in ApiKind}
    (query,) = [q for q in QUERIES if q.where == "panel 'Errors/s by kind' target A"]
    kinds = {
        r["metric"]["kind"]: float(r["value"][1])
        for r in setup.query(substitute(query.expr, variables))
    }
    assert kinds["invalid_json"] > 0
    (query,) = [q for q in QUERIES if q.where == "panel 'Requests/s by outcome' target A"]
    outcomes = {
        r["metric"]["outcome"]: float(r["value"][1])
        for r in setup.query(substitute(query.expr, variables))
    }
    assert outcomes["passthrough"] > 0 and outcomes["rejected"] > 0


def test_envoy_panels_tell_the_two_gateways_apart(setup: Setup, variables: dict[str, str]) -> None:
    def per_instance(where: str) -> dict[str, float]:
        (query,) = [q for q in QUERIES if q.where == where]
        expr = substitute(query.expr, variables).replace(
            "by (envoy_http_conn_manager_prefix)", "by (instance)"
        )
        return {r["metric"]["instance"]: float(r["value"][1]) for r in setup.query(expr)}

    routed = _hostport(setup.routed.envoy.admin_url)
    failopen = _hostport(setup.failopen.envoy.admin_url)
    started = per_instance("panel 'ext_proc streams started / failed' target A")
    failed = per_instance("panel 'ext_proc streams started / failed' target B")
    allowed = per_instance("panel 'ext_proc failures' target B")
    assert started[routed] > 0 and failed[routed] == 0
    assert failed[failopen] > 0 and allowed[failopen] > 0 and allowed[routed] == 0


def test_alert_rules_evaluate_and_fire_on_live_data(setup: Setup) -> None:
    def active() -> set[str]:
        alerts = setup.api("/api/v1/alerts")["alerts"]
        return {a["labels"]["alertname"] for a in alerts if a["state"] in {"pending", "firing"}}

    with setup.logs_on_failure():
        wait_until(f"alerts {sorted(EXPECTED_ACTIVE)}", lambda: active() >= EXPECTED_ACTIVE, 15)
        assert not active() & EXPECTED_QUIET
        rules = [r for g in setup.api("/api/v1/rules")["groups"] for r in g["rules"]]
        defined = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
        assert len(rules) == sum(len(g["rules"]) for g in defined)
        for rule in rules:
            assert rule["health"] == "ok", f"{rule['name']}: {rule.get('lastError')}"
