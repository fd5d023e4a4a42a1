"""Optional decider capabilities are Protocols, checked once when the gateway is wired."""

from __future__ import annotations

from typing import ClassVar

from prometheus_client import CollectorRegistry

from irtgate.policies.compile import compile_policy
from irtgate.policies.outcome import (
    Background,
    DecisionTrace,
    KnowsModels,
    Outcome,
    TracingDecider,
    traces,
)
from irtgate.policies.runtime import PolicyRuntime
from irtgate.server.core import GatewayCore
from irtgate.server.metrics import Metrics
from irtgate.server.settings import Settings
from irtgate.server.static_decider import StaticDecider
from irtgate.signals.request import LLMRequest
from tests.policies.fakes import BASE, fake_resources

POLICY = BASE.replace("upstreams: [local, cloud]", "upstreams: [demo-small, demo-large]")
POLICY = POLICY.replace("upstream: local", "upstream: demo-small").replace(
    "upstream: cloud", "upstream: demo-large"
)
POLICY += "default:\n  candidates: ['*']\n  objective: {method: linear, w: 0.5}\n"


def _runtime() -> PolicyRuntime:
    res = fake_resources()
    snap = compile_policy(POLICY, "p.yaml", res)
    return PolicyRuntime(None, snap, res, watch=False, on_reload=None)


def _core(decider: StaticDecider | PolicyRuntime) -> GatewayCore:
    return GatewayCore(Settings(), decider, Metrics.create(CollectorRegistry()))


def test_the_policy_runtime_has_every_capability() -> None:
    rt = _runtime()
    assert traces(rt) and isinstance(rt, KnowsModels) and isinstance(rt, Background)
    core = _core(rt)
    assert core.routes("small-m")  # a pinned model the policy names itself


def test_the_static_decider_has_none() -> None:
    d = StaticDecider.from_settings(Settings())
    assert not traces(d)
    assert not isinstance(d, KnowsModels) and not isinstance(d, Background)
    assert not _core(d).routes("small-m")


class _Untraced(StaticDecider):
    # Has the attribute, but says no: the gateway must not pass it a trace.
    accepts_trace: ClassVar[bool] = False

    async def decide(self, request: LLMRequest, trace: DecisionTrace | None = None) -> Outcome:
        assert trace is None
        return await super().decide(request)


def test_accepts_trace_false_is_not_traced() -> None:
    d = _Untraced.from_settings(Settings())
    assert isinstance(d, TracingDecider) and not traces(d)


def test_capabilities_are_read_at_wiring_not_per_request() -> None:
    d = StaticDecider.from_settings(Settings())
    core = _core(d)
    d.known_models = lambda: ("late-model",)  # type: ignore[attr-defined]
    assert not core.routes("late-model")  # the core checked once, when it was built
    assert _core(d).routes("late-model")  # a newly wired core sees it
