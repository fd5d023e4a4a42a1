"""``serve --workers N``: one port, summed metrics, hot reload in every worker, restarts, stop.

One module-scoped group of two real worker processes (each loads the shipped router) on a
policy mounted the way Kubernetes mounts a ConfigMap; the tests run against it in order.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from irtgate.proto import decide_pb2, decide_pb2_grpc
from irtgate.server.metrics import Metrics
from irtgate.server.settings import DeciderKind, Settings
from irtgate.server.testing import BackgroundLoop, free_port
from irtgate.server.workers import Backoff, WorkerGroup, reserve_port

REPO = Path(__file__).resolve().parents[2]
CHAT = json.dumps({"model": "auto", "messages": [{"role": "user", "content": "hi"}]}).encode()

# The tests share one worker group and build on each other (a reload, then a restart):
# one xdist worker runs them all, in file order.
pytestmark = pytest.mark.xdist_group("workers")


def policy(candidate: str) -> str:
    return f"""\
version: 1
aliases: [auto]
upstreams: [demo-small, demo-large]
catalog:
  - {{name: small, model: demo-small-1, upstream: demo-small,
     router_config: mistralai/mistral-7b-chat}}
  - {{name: large, model: demo-large-1, upstream: demo-large,
     router_config: gpt-4-1106-preview}}
default:
  candidates: [{candidate}]
  objective: {{method: linear, w: 0.8}}
"""


def wait_for(check: Callable[[], bool], timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what or check}")


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def samples(admin_port: int, name: str) -> list[tuple[dict[str, str], float]]:
    _, text = get(f"http://127.0.0.1:{admin_port}/metrics")
    return [
        (s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    ]


def decide_model(port: int) -> str:
    """One Decide call on a fresh connection (the kernel picks the worker per connection)."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = decide_pb2_grpc.DecideStub(channel)
        reply = stub.Decide(decide_pb2.DecideRequest(path="/v1/chat/completions", body=CHAT))
        return str(reply.model)


def test_backoff_doubles_up_to_its_cap() -> None:
    b = Backoff(first_s=0.5, max_s=3.0)
    assert [b.delay(n) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_reserving_a_port_someone_listens_on_fails() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with pytest.raises(OSError):
            reserve_port("127.0.0.1", listener.getsockname()[1])
    held = reserve_port("127.0.0.1", 0)
    try:
        assert held.getsockname()[1] > 0
    finally:
        held.close()


def test_one_worker_is_plain_serve() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        WorkerGroup(Settings(), 1)


class ConfigMap:
    """A folder laid out like a mounted ConfigMap: policy.yaml -> ..data/policy.yaml."""

    def __init__(self, root: Path, text: str) -> None:
        self.root, self.version = root, 0
        self.publish(text)
        (root / "policy.yaml").symlink_to("..data/policy.yaml")

    @property
    def path(self) -> Path:
        return self.root / "policy.yaml"

    def publish(self, text: str) -> None:
        # kubelet's atomic writer: a new timestamped folder, then ..data swapped by rename.
        self.version += 1
        folder = self.root / f"..2026_12_04_{self.version:02d}"
        folder.mkdir()
        (folder / "policy.yaml").write_text(text)
        (self.root / "..data_tmp").symlink_to(folder.name)
        (self.root / "..data_tmp").replace(self.root / "..data")


@pytest.fixture(scope="module")
def group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WorkerGroup, ConfigMap]]:
    cm = ConfigMap(tmp_path_factory.mktemp("configmap"), policy("small"))
    settings = Settings(grpc_port=0, admin_port=0, decider=DeciderKind.POLICY, policy_path=cm.path)
    loop = BackgroundLoop()
    g = WorkerGroup(settings, 2, backoff=Backoff(first_s=0.1, max_s=1.0))
    try:
        loop.run(g.start(), timeout=300)
        yield g, cm
    finally:
        loop.run(g.stop(grace=1.0), timeout=60)
        loop.close()
    assert not g.metrics_dir.exists()  # its private metrics folder is gone


@pytest.mark.slow  # starts worker processes, each loading the router
def test_group_is_ready_with_every_worker_listed(group: tuple[WorkerGroup, ConfigMap]) -> None:
    g, _ = group
    status, body = get(f"http://127.0.0.1:{g.admin_port}/readyz")
    assert status == 200
    workers = json.loads(body)["workers"]
    assert [w["ready"] for w in workers] == [True, True]
    pids = {w["pid"] for w in workers}
    assert len(pids) == 2 and os.getpid() not in pids
    assert get(f"http://127.0.0.1:{g.admin_port}/healthz")[0] == 200
    # The port is the group's: a second group (or a plain serve) cannot join it.
    with pytest.raises(OSError):
        reserve_port("127.0.0.1", g.grpc_port).close()


def _metrics_are_totals_across_workers(group: tuple[WorkerGroup, ConfigMap]) -> None:
    g, _ = group

    def routed() -> float:
        return sum(
            v for labels, v in samples(g.admin_port, "irtgate_requests_total")
            if labels["outcome"] == "routed"
        )  # fmt: skip

    before = routed()
    n = 24
    assert {decide_model(g.grpc_port) for _ in range(n)} == {"demo-small-1"}
    assert routed() - before == n
    # The histogram sums too: one observation per decision, whichever worker made it.
    counts = samples(g.admin_port, "irtgate_decision_latency_seconds_count")
    assert sum(v for _, v in counts) >= n
    ready = samples(g.admin_port, "irtgate_workers_ready")
    assert [v for _, v in ready] == [2.0]


def _the_group_exports_what_one_process_does(group: tuple[WorkerGroup, ConfigMap]) -> None:
    # The dashboard and alerts are checked against Metrics.create's families: the group's
    # /metrics serves them under the same names and types. (A labelled family with no
    # series yet is left out in multiprocess mode; Prometheus sees no series either way.)
    g, _ = group
    one = CollectorRegistry()
    Metrics.create(one)
    _, text = get(f"http://127.0.0.1:{g.admin_port}/metrics")
    served = {f.name: f.type for f in text_string_to_metric_families(text) if f.samples}
    expected = {f.name: f.type for f in one.collect()}
    # The supervisor's own (irtgate_worker*) come on top.
    assert {n: t for n, t in served.items() if not n.startswith("irtgate_worker")} == {
        n: expected[n]
        for n in (
            "irtgate_requests",
            "irtgate_decision_latency_seconds",
            "irtgate_policy_reloads",
            "irtgate_policy_info",
            "irtgate_streams_active",
            "irtgate_estimated_cost_usd",
            "irtgate_baseline_cost_usd",
            "irtgate_decision_log_lines",
        )
    }
    # One unlabelled total, as in one process: the dashboard's job/instance variables read it.
    assert len(samples(g.admin_port, "irtgate_streams_active")) == 1


def _a_configmap_swap_reaches_every_worker(group: tuple[WorkerGroup, ConfigMap]) -> None:
    g, cm = group
    pids = {str(w["pid"]) for w in g.states()}

    def versions() -> dict[str, str]:
        return {
            labels["pid"]: labels["version"]
            for labels, _ in samples(g.admin_port, "irtgate_policy_info")
        }

    old = versions()
    assert set(old) == pids and len(set(old.values())) == 1
    cm.publish(policy("large"))
    wait_for(
        lambda: set(versions()) == pids and set(versions().values()).isdisjoint(old.values()),
        what="every worker's policy_info to show the new version",
    )
    assert len(set(versions().values())) == 1
    reloads = samples(g.admin_port, "irtgate_policy_reloads_total")
    # Both first loads and both reloads, summed over the two workers.
    assert sum(v for labels, v in reloads if labels["outcome"] == "ok") == 4
    assert {decide_model(g.grpc_port) for _ in range(16)} == {"demo-large-1"}


def _a_dead_worker_is_restarted_and_counted(group: tuple[WorkerGroup, ConfigMap]) -> None:
    g, _ = group
    victim = g.states()[0]["pid"]
    assert isinstance(victim, int)
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: g.states()[0]["pid"] != victim, what="a new worker 0")
    wait_for(lambda: g.ready, timeout=120, what="the group to be ready again")
    assert [v for _, v in samples(g.admin_port, "irtgate_worker_restarts_total")] == [1.0]
    assert g.states()[0]["restarts"] == 1
    # The dead worker's policy series went with it; the new one reports its own.
    pids = {labels["pid"] for labels, _ in samples(g.admin_port, "irtgate_policy_info")}
    assert pids == {str(w["pid"]) for w in g.states()}
    assert decide_model(g.grpc_port) == "demo-large-1"


@pytest.mark.slow
def test_the_group_through_its_life(group: tuple[WorkerGroup, ConfigMap]) -> None:
    """In order, on one group: totals across workers, the exported families (which need the
    series the first step made), a ConfigMap swap, then a restart under the new policy."""
    _metrics_are_totals_across_workers(group)
    _the_group_exports_what_one_process_does(group)
    _a_configmap_swap_reaches_every_worker(group)
    _a_dead_worker_is_restarted_and_counted(group)


@pytest.mark.slow
def test_sigterm_to_serve_stops_every_worker(tmp_path: Path) -> None:
    admin = free_port()
    args = [
        sys.executable, "-m", "irtgate.server.cli", "serve", "--workers", "2",
        "--grpc-port", "0", "--admin-port", str(admin), "--route", "demo-small/demo-small-1",
    ]  # fmt: skip
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(args, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: get_ok(f"http://127.0.0.1:{admin}/readyz"), what="readyz 200")
        _, body = get(f"http://127.0.0.1:{admin}/readyz")
        pids = [w["pid"] for w in json.loads(body)["workers"]]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        for pid in pids:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def get_ok(url: str) -> bool:
    try:
        return get(url)[0] == 200
    except OSError:
        return False


@pytest.mark.slow
def test_a_worker_that_cannot_start_fails_the_start(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\naliases: [auto]\nupstreams: [nowhere]\n")
    settings = Settings(grpc_port=0, admin_port=0, decider=DeciderKind.POLICY, policy_path=broken)
    loop = BackgroundLoop()
    g = WorkerGroup(settings, 2)
    try:
        with pytest.raises(RuntimeError, match="exited with code 1 before it was ready"):
            loop.run(g.start(), timeout=300)
    finally:
        loop.close()
    assert all(w["ready"] is False for w in g.states())
    for pid in (w["pid"] for w in g.states()):
        assert isinstance(pid, int)
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not g.metrics_dir.exists()


def test_envoy_in_front_of_workers_sends_one_call_per_connection() -> None:
    from irtgate.server.envoy_config import EXTPROC_CLUSTER, render
    from irtgate.server.workers import envoy_options

    def h2_options(config: dict[str, Any]) -> dict[str, Any]:
        (cluster,) = [
            c for c in config["static_resources"]["clusters"] if c["name"] == EXTPROC_CLUSTER
        ]
        proto = cluster["typed_extension_protocol_options"]
        (opts,) = proto.values()
        h2: dict[str, Any] = opts["explicit_http_config"]["http2_protocol_options"]
        return h2

    settings = Settings()
    assert h2_options(render(settings, envoy_options(settings))) == {"max_concurrent_streams": 1}
    assert h2_options(render(settings)) == {}  # one process: Envoy's default, as before
