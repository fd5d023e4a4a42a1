"""The typed router interface: RouterScores, unknown costs, one read-out per request."""

from __future__ import annotations

import dataclasses
import math
from types import MappingProxyType

import numpy as np
import pytest

from irtgate.signals.base import SignalContext
from irtgate.signals.irt.card import render_card
from irtgate.signals.irt.router_api import Router, RouterScores, known_cost
from irtgate.signals.irt.runtime import IRTRouter
from irtgate.signals.request import ApiKind, LLMRequest, Message
from irtgate.signals.text import PromptText
from tests.policies.fakes import FakeEmbedder, FakeRouter


def _scores(**kw: object) -> RouterScores:
    args: dict[str, object] = {
        "configs": ("a", "b", "c"),
        "p": {"a": 0.2, "b": 0.9, "c": 0.9},
        "cost": {"a": 0.1, "b": None, "c": 2.0},
        "difficulty": 0.5,
        "discrimination": 1.5,
        "family": {"gsm8k": 0.3, "mmlu": 0.7},
    }
    args.update(kw)
    return RouterScores(**args)  # type: ignore[arg-type]


def test_scores_are_an_immutable_value() -> None:
    s = _scores()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.difficulty = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        s.p["a"] = 1.0  # type: ignore[index]
    with pytest.raises(TypeError):
        s.cost["b"] = 1.0  # type: ignore[index]
    assert isinstance(s.family, MappingProxyType)


def test_scores_read_outs() -> None:
    s = _scores()
    assert s.best() == "b"  # the first of equal P, as argmax over the router's outputs
    assert s.p_max == 0.9
    assert s.cost["b"] is None  # unknown stays unknown
    assert s.top_family() == "mmlu"
    assert _scores(family={}).top_family() is None


def test_scores_must_name_exactly_the_configurations() -> None:
    with pytest.raises(ValueError, match="exactly the configurations"):
        _scores(p={"a": 0.2, "b": 0.9})
    with pytest.raises(ValueError, match="exactly the configurations"):
        _scores(cost={"a": 0.1, "b": None, "c": 2.0, "d": 1.0})


@pytest.mark.parametrize(
    ("raw", "want"),
    [(0.005, 0.005), (0, 0.0), (None, None), (math.nan, None), (-1.0, None), ("1", None)],
)
def test_known_cost_keeps_only_real_prices(raw: object, want: float | None) -> None:
    assert known_cost(raw) == want


def _req() -> LLMRequest:
    return LLMRequest(ApiKind.CHAT, "auto", (Message("user", PromptText("hi")),))


def test_the_context_scores_once_per_router() -> None:
    one, two = FakeRouter({"a": 0.4}, {"a": 1.0}), FakeRouter({"a": 0.6}, {})
    emb = FakeEmbedder()
    ctx = SignalContext(_req(), embedder=emb)
    first = ctx.router_scores(one)
    assert ctx.router_scores(one) is first and one.predictions == 1
    assert two.predictions == 0
    assert ctx.router_scores(two).p["a"] == 0.6 and two.predictions == 1
    assert ctx.router_scores(two).cost["a"] is None
    assert emb.calls == 1  # both routers read the one embedding


def test_the_shipped_router_is_a_router_with_unknown_costs() -> None:
    r: Router = IRTRouter.load()  # mypy checks the structural fit
    vec = np.random.default_rng(1).normal(size=r.dim).astype(np.float32)
    s = r.score(vec)
    assert s.configs == r.configs and set(s.p) == set(r.configs)
    # routerdc-7models has no costs: unknown, not GPT-4's price.
    assert s.cost["meta-llama/Meta-Llama-3-8B"] is None
    assert s.cost["gpt-4-1106-preview"] == pytest.approx(0.00507307)
    expl = r.explain(s)
    assert expl["difficulty"] == round(s.difficulty, 4)
    assert expl["family"] == s.top_family()


def test_the_card_shows_an_unknown_cost_as_unknown() -> None:
    card = {
        "configurations": [
            {"name": "priced", "expected_cost": 0.0042, "strength": 1.0},
            {"name": "unpriced", "expected_cost": None, "strength": 0.5},
        ]
    }
    rows = {ln.split()[0]: ln for ln in render_card(card).splitlines() if ln.startswith("  ")}
    assert "0.0042" in rows["priced"] and "unknown" not in rows["priced"]
    assert "unknown" in rows["unpriced"] and "0.0042" not in rows["unpriced"]
