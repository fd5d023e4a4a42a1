"""Test doubles: a probe signal whose values come from the request text, a fake router."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from irtgate.signals.base import Resources, SignalContext, Value, register, registered
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


@dataclass(frozen=True)
class FakePrediction:
    difficulty: float
    discrimination: float
    p: Mapping[str, float]


class FakeRouter:
    """P per configuration fixed by the test; expected costs from a table."""

    def __init__(self, p: Mapping[str, float], cost: Mapping[str, float]) -> None:
        self.configs = tuple(p)
        self.p = dict(p)
        self.expected_cost = dict(cost)
        self.predictions = 0

    def predict(self, embedding: np.ndarray) -> FakePrediction:
        self.predictions += 1
        return FakePrediction(0.0, 1.0, self.p)

    def embedder(self) -> FakeEmbedder:
        return FakeEmbedder()


def fake_resources(
    p: Mapping[str, float] | None = None, cost: Mapping[str, float] | None = None
) -> Resources:
    p = p or {"small": 0.5, "mid": 0.7, "big": 0.9}
    cost = cost or {"small": 0.0001, "mid": 0.001, "big": 0.01}
    return Resources(embedder=FakeEmbedder(), router=FakeRouter(p, cost))


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

    def __init__(self, router: Any) -> None:
        self.router = router

    def compute(self, ctx: SignalContext) -> Mapping[str, Value]:
        pred = self.router.predict(ctx.embedding())
        return {"p_max": max(pred.p.values()), **{f"p.{k}": v for k, v in pred.p.items()}}


def _router_signal(params: Mapping[str, Any], resources: Resources) -> RouterSignal:
    return RouterSignal(resources.router)


if "t_router" not in registered():
    register("t_router", RouterSignal)(_router_signal)
