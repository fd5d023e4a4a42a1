"""load_decider: the policy runtime wired to the gateway's metrics and lifecycle."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from irtgate.policies.compile import Snapshot
from irtgate.policies.outcome import DecisionTrace, Outcome
from irtgate.policies.runtime import PolicyRuntime
from irtgate.server.app import build
from irtgate.server.core import GatewayCore
from irtgate.server.deciders import EMBEDDED_POLICY_LABEL, load_decider
from irtgate.server.metrics import Metrics
from irtgate.server.settings import DeciderKind, Settings, Upstream
from irtgate.server.static_decider import StaticDecider
from irtgate.signals.errors import ClientError
from irtgate.signals.request import ApiKind, LLMRequest

POLICY = """\
version: 1
aliases: [auto]
upstreams: [demo-small, demo-large]
catalog:
  - {name: small, model: demo-small-1, upstream: demo-small, local: true,
     router_config: mistralai/mistral-7b-chat}
  - {name: large, model: demo-large-1, upstream: demo-large,
     router_config: gpt-4-1106-preview}
signals:
  cards: {type: pii, params: {types: [payment_card]}}
decisions:
  - name: cards
    priority: 10
    when: {signal: cards.found, eq: true}
    candidates: ["*"]
    objective: {method: linear, w: 0.5}
    plugins:
      - pii: {action: block, types: [payment_card]}
default:
  candidates: ["*"]
  objective: {method: linear, w: DEFAULT_W}
"""


def write_policy(path: Path, w: float = 0.5) -> Path:
    path.write_text(POLICY.replace("DEFAULT_W", str(w)))
    return path


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def body(text: str) -> bytes:
    return json.dumps({"model": "auto", "messages": [{"role": "user", "content": text}]}).encode()


def test_default_is_the_embedded_policy_and_counts_the_first_load() -> None:
    registry = CollectorRegistry()
    decider = load_decider(Settings(), Metrics.create(registry))
    assert isinstance(decider, PolicyRuntime)
    assert decider.path is None
    assert set(decider.upstreams()) == {"demo-small", "demo-large"}
    assert sample(registry, "irtgate_policy_reloads_total", outcome="ok") == 1
    version = decider.snapshot.digest
    assert sample(registry, "irtgate_policy_info", path=EMBEDDED_POLICY_LABEL, version=version) == 1


def test_static_on_request() -> None:
    assert isinstance(load_decider(Settings(decider=DeciderKind.STATIC)), StaticDecider)


def test_default_policy_with_other_upstreams_fails_at_start_up() -> None:
    s = Settings(upstreams=(Upstream("a", "127.0.0.1", 1),), default_upstream="a")
    with pytest.raises(ValueError, match="--policy"):
        load_decider(s)


def test_reloads_are_counted_and_the_version_in_force_follows(tmp_path: Path) -> None:
    path = write_policy(tmp_path / "p.yaml")
    registry = CollectorRegistry()
    runtime = load_decider(Settings(policy_path=path, policy_watch=False), Metrics.create(registry))
    assert isinstance(runtime, PolicyRuntime)
    first = runtime.snapshot.digest

    write_policy(path, w=0.9)
    assert runtime.reload()
    second = runtime.snapshot.digest
    assert second != first
    assert sample(registry, "irtgate_policy_reloads_total", outcome="ok") == 2
    assert sample(registry, "irtgate_policy_info", path=str(path), version=second) == 1
    # Only the version in force has a series.
    assert (
        registry.get_sample_value("irtgate_policy_info", {"path": str(path), "version": first})
        is None
    )

    path.write_text(POLICY.replace("DEFAULT_W", "2.5"))  # w out of range: refused
    assert not runtime.reload()
    assert runtime.snapshot.digest == second
    assert sample(registry, "irtgate_policy_reloads_total", outcome="error") == 1
    assert sample(registry, "irtgate_policy_info", path=str(path), version=second) == 1


def test_each_policy_version_is_warmed_up_before_it_serves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import irtgate.policies.runtime as runtime_module

    seen: list[str] = []
    from irtgate.policies.engine import decide_sync as real  # what the runtime calls

    def spy(snap: Snapshot, request: LLMRequest, trace: DecisionTrace | None = None) -> Outcome:
        seen.append(snap.digest)
        return real(snap, request, trace)

    monkeypatch.setattr(runtime_module, "decide_sync", spy)
    path = write_policy(tmp_path / "p.yaml")
    runtime = load_decider(Settings(policy_path=path, policy_watch=False))
    assert isinstance(runtime, PolicyRuntime)
    assert seen == [runtime.snapshot.digest]
    write_policy(path, w=0.9)
    assert runtime.reload()
    # The new version was decided on once, before it was swapped in.
    assert seen == [seen[0], runtime.snapshot.digest]


def test_a_reload_naming_an_unknown_upstream_is_refused(tmp_path: Path) -> None:
    path = write_policy(tmp_path / "p.yaml")
    registry = CollectorRegistry()
    runtime = load_decider(Settings(policy_path=path, policy_watch=False), Metrics.create(registry))
    assert isinstance(runtime, PolicyRuntime)
    before = runtime.snapshot.digest
    # Valid on its own, but the gateway has no upstream "elsewhere".
    text = POLICY.replace("DEFAULT_W", "0.5").replace("demo-large]", "elsewhere]")
    path.write_text(text.replace("upstream: demo-large", "upstream: elsewhere"))
    assert not runtime.reload()
    assert runtime.snapshot.digest == before
    assert set(runtime.upstreams()) == {"demo-small", "demo-large"}
    assert sample(registry, "irtgate_policy_reloads_total", outcome="error") == 1


async def test_per_request_metrics_from_the_trace(tmp_path: Path) -> None:
    s = Settings(policy_path=write_policy(tmp_path / "p.yaml"), policy_watch=False)
    registry = CollectorRegistry()
    metrics = Metrics.create(registry)
    core = GatewayCore(s, load_decider(s, metrics), metrics)

    verdict = await core.decide(ApiKind.CHAT, body("What is the boiling point of water?"))
    assert verdict.decision == "default"
    assert sample(registry, "irtgate_signal_latency_seconds_count", signal="pii") == 1
    assert sample(registry, "irtgate_p_correct_count", decision="default") == 1
    cost = sample(
        registry, "irtgate_estimated_cost_usd_total", decision="default", model=verdict.model
    )
    baseline = sample(registry, "irtgate_baseline_cost_usd_total", decision="default")
    assert 0 < cost <= baseline
    # The reason and why are short and content-free.
    assert verdict.reason.startswith("default: ")
    assert verdict.why.startswith("no decision matched")

    with pytest.raises(ClientError) as e:
        await core.decide(ApiKind.CHAT, body("card 4111 1111 1111 1111, boiling water"))
    assert e.value.code == "policy_blocked"
    # A refused request still reports what it computed and found.
    assert sample(registry, "irtgate_pii_findings_total", type="payment_card", action="block") == 1
    assert sample(registry, "irtgate_signal_latency_seconds_count", signal="pii") == 2
    assert sample(registry, "irtgate_p_correct_count", decision="cards") == 0


async def test_encoder_truncations_are_counted() -> None:
    registry = CollectorRegistry()
    metrics = Metrics.create(registry)
    s = Settings()
    runtime = load_decider(s, metrics)
    assert isinstance(runtime, PolicyRuntime)
    core = GatewayCore(s, runtime, metrics)
    router = runtime.snapshot.resources.router
    assert router is not None
    encoder = router.encoder_name
    await core.decide(ApiKind.CHAT, body("short question about water"))
    assert sample(registry, "irtgate_encoder_truncations_total", encoder=encoder) == 0
    await core.decide(ApiKind.CHAT, body("water boils at a hundred degrees " * 200))
    assert sample(registry, "irtgate_encoder_truncations_total", encoder=encoder) == 1


async def test_the_watcher_runs_with_the_gateway(tmp_path: Path) -> None:
    path = write_policy(tmp_path / "p.yaml")
    s = Settings(grpc_port=0, admin_port=0, policy_path=path)
    gateway = build(s)
    runtime = gateway.decider
    assert isinstance(runtime, PolicyRuntime)
    await gateway.start()
    try:
        before = runtime.snapshot.digest
        write_policy(path, w=0.9)
        for _ in range(100):  # the watcher debounces for 200 ms
            if runtime.snapshot.digest != before:
                break
            await asyncio.sleep(0.05)
        assert runtime.snapshot.digest != before
        ok = sample(gateway.registry, "irtgate_policy_reloads_total", outcome="ok")
        assert ok == 2
    finally:
        await gateway.stop(grace=0)
    # Stopped with the gateway: later edits are not picked up.
    after = runtime.snapshot.digest
    write_policy(path, w=0.1)
    await asyncio.sleep(0.5)
    assert runtime.snapshot.digest == after


def test_findings_of_the_pii_signal_alone_are_reported_as_action_none() -> None:
    from irtgate.policies.compile import compile_policy
    from irtgate.policies.engine import decide_sync
    from irtgate.server.parse import parse_request
    from irtgate.signals.base import Resources

    # Without a router, one candidate per decision: nothing to weigh.
    text = POLICY.replace("DEFAULT_W", "0.5").replace('["*"]', "[small]")
    text = text.replace("    plugins:\n      - pii: {action: block, types: [payment_card]}\n", "")
    snap = compile_policy(text, "p.yaml", Resources())
    trace = DecisionTrace()
    request = parse_request(ApiKind.CHAT, body("card 4111 1111 1111 1111 and 4012888888881881"))
    outcome = decide_sync(snap, request, trace)
    assert outcome.decision == "cards"  # no plugin: nothing blocked, nothing acted
    assert trace.pii == {("payment_card", "none"): 2}
    assert [name for name, _ in trace.signal_seconds] == ["pii"]


def test_a_budget_in_another_providers_family_is_refused(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(
        POLICY.replace("DEFAULT_W", "0.5").replace(
            "  - {name: large, model: demo-large-1, upstream: demo-large,",
            "  - {name: large, model: demo-large-1, upstream: demo-large, family: anthropic,"
            " budget: 2048,",
        )
    )
    ups = (
        Upstream("demo-small", "127.0.0.1", 1),
        Upstream("demo-large", "api.openai.com", 443, family="openai"),
    )
    settings = Settings(upstreams=ups, policy_path=policy, policy_watch=False)
    with pytest.raises(ValueError, match=r"large \(family anthropic, upstream demo-large takes"):
        load_decider(settings)
    # The same entry on an upstream whose family is open (a self-hosted server) loads.
    ok = Settings(upstreams=(ups[0], Upstream("demo-large", "h", 1)), policy_path=policy)
    assert load_decider(ok.replace(policy_watch=False)) is not None
