"""Test doubles: a probe signal whose values come from the request text, a fake router."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from irtgate.signals.base import Resources, SignalContext, Value, register, registered
from irtgate.signals.irt.router_api import Router, RouterScores
from irtgate.signals.request import ApiKind, LLMRequest, Message
from irtgate.signals.text import PromptText

CALLS: dict[str, int] = {}


class Probe:
    """Reads its values from the last user message, a JSON object (for tests only)."""

    name: ClassVar[str] = "t_probe"
    fields: ClassVar[Mapping[str, type]] = {
        "score": float,
        "count": int,
        "label": str,
        "tags": tuple,
        "flag": bool,
    }
    ranges: ClassVar[Mapping[str, tuple[float, float]]] = {"score": (0.0, 1.0)}
    labels: ClassVar[Mapping[str, tuple[str, ...]]] = {"label": ("a", "b", "c")}

    def __init__(self, key: str) -> None:
        self.key = key

    def compute(self, ctx: SignalContext) -> Mapping[str, Value]:
        CALLS[self.key] = CALLS.get(self.key, 0) + 1
        data = json.loads(ctx.request.last_user_text.reveal() or "{}").get(self.key, {})
        if data == "boom":
            raise RuntimeError("probe failed on purpose")
        return {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}


class Embedded:
    """A learned-looking signal: needs the shared embedding."""

    name: ClassVar[str] = "t_embedded"
    fields: ClassVar[Mapping[str, type]] = {"norm": float}

    def compute(self, ctx: SignalContext) -> Mapping[str, Value]:
        return {"norm": float(np.linalg.norm(ctx.embedding()))}


def _probe(params: Mapping[str, Any], resources: Resources) -> Probe:
    unknown = set(params) - {"key"}
    if unknown:
        raise ValueError(f"unknown parameter {sorted(unknown)[0]!r}")
    key = params.get("key", "probe")
    if not isinstance(key, str):
        raise ValueError("key must be a string")
    return Probe(key)


def _embedded(params: Mapping[str, Any], resources: Resources) -> Embedded:
    return Embedded()


if "t_probe" not in registered():
    register("t_probe", Probe)(_probe)
    register("t_embedded", Embedded)(_embedded)


class FakeEmbedder:
    def __init__(self) -> None:
        self.calls = 0

    def embed_request(self, request: LLMRequest) -> np.ndarray:
        self.calls += 1
        return np.ones(4, dtype=np.float32)


class FakeRouter:
    """P per configuration fixed by the test; expected costs from a table (None: unknown).

    Implements :class:`irtgate.signals.irt.router_api.Router`."""

    def __init__(self, p: Mapping[str, float], cost: Mapping[str, float | None]) -> None:
        self.configs = tuple(p)
        self.families: tuple[str, ...] = ()
        self.p = dict(p)
        self.expected_cost: Mapping[str, float | None] = {c: cost.get(c) for c in p}
        self.dim = 4
        self.encoder_name = "fake"
        self.predictions = 0

    def score(self, embedding: np.ndarray) -> RouterScores:
        self.predictions += 1
        return RouterScores(self.configs, self.p, self.expected_cost, 0.0, 1.0)

    def explain(self, scores: RouterScores) -> Mapping[str, float | str]:
        return {"difficulty": scores.difficulty}

    def embedder(self) -> FakeEmbedder:
        return FakeEmbedder()


def fake_resources(
    p: Mapping[str, float] | None = None, cost: Mapping[str, float | None] | None = None
) -> Resources:
    p = p or {"small": 0.5, "mid": 0.7, "big": 0.9}
    cost = cost or {"small": 0.0001, "mid": 0.001, "big": 0.01}
    return Resources(embedder=FakeEmbedder(), router=FakeRouter(p, cost))


def fake_router(res: Resources) -> FakeRouter:
    """The fake router in ``res`` (for asserting how often it ran)."""
    assert isinstance(res.router, FakeRouter)
    return res.router


def chat(values: Mapping[str, Any] | str, model: str = "auto", **extra: Any) -> LLMRequest:
    text = values if isinstance(values, str) else json.dumps(values)
    body = {"model": model, "messages": [{"role": "user", "content": text}], **extra}
    return LLMRequest(ApiKind.CHAT, model, (Message("user", PromptText(text)),), body=body)


BASE = """\
version: 1
aliases: [auto]
upstreams: [local, cloud]
catalog:
  - {name: small, model: small-m, upstream: local, local: true, router_config: small}
  - {name: mid, model: mid-m, upstream: cloud, router_config: mid}
  - {name: big, model: big-m, upstream: cloud, router_config: big, family: openai, budget: high}
signals:
  probe: {type: t_probe}
"""


class RouterSignal:
    """Like the real difficulty signal: exposes P per configuration of ``router``."""

    name: ClassVar[str] = "t_router"
    fields: ClassVar[Mapping[str, type]] = {"p_max": float}

    def __init__(self, router: Router) -> None:
        self.router = router

    def compute(self, ctx: SignalContext) -> Mapping[str, Value]:
        scores = ctx.router_scores(self.router)
        return {"p_max": scores.p_max, **{f"p.{k}": v for k, v in scores.p.items()}}


def _router_signal(params: Mapping[str, Any], resources: Resources) -> RouterSignal:
    assert resources.router is not None
    return RouterSignal(resources.router)


if "t_router" not in registered():
    register("t_router", RouterSignal)(_router_signal)


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """A "billion laughs" policy: ``width ** levels`` strings from a few hundred bytes."""
    lines = ["version: 1", 'l0: &l0 ["lol"]']
    for i in range(1, levels + 1):
        refs = ", ".join(f"*l{i - 1}" for _ in range(width))
        lines.append(f"l{i}: &l{i} [{refs}]")
    lines.append(f"default: {{candidates: *l{levels}}}")
    return "\n".join(lines) + "\n"
