"""decide_sync's named steps, and selection when some costs are unknown."""

from __future__ import annotations

import pytest

from irtgate.policies.compile import Snapshot, compile_policy
from irtgate.policies.engine import _Signals, decide_sync, match, resolve
from irtgate.policies.outcome import DecisionTrace
from irtgate.policies.scoring import Scored, score, select
from irtgate.signals.base import Resources, SignalContext
from irtgate.signals.errors import ClientError
from tests.policies.fakes import BASE, FakeEmbedder, chat, fake_resources, fake_router

HIT = (
    "decisions:\n  - name: hit\n    when: {signal: probe.flag, eq: true}\n"
    "    candidates: [mid]\n    objective: {method: linear, w: 0.5}\n"
)


def _snap(objective: str, res: Resources | None = None, decisions: str = "") -> Snapshot:
    text = BASE + decisions + f"default:\n  candidates: ['*']\n  objective: {objective}\n"
    return compile_policy(text, "p.yaml", res if res is not None else fake_resources())


def _sigs(s: Snapshot, values: dict[str, object]) -> _Signals:
    return _Signals(s, SignalContext(chat(values), embedder=FakeEmbedder()), DecisionTrace())


def test_resolve_tells_aliases_pinned_and_unknown_models_apart() -> None:
    s = _snap("{method: linear, w: 0.5}")
    assert resolve(s, chat({})).pinned is None
    pinned = resolve(s, chat({}, model="big-m")).pinned
    assert pinned is not None and [e.name for e in pinned] == ["big"]
    with pytest.raises(ClientError) as ei:
        resolve(s, chat({}, model="gpt-17"))
    assert ei.value.code == "model_not_found"


def test_match_returns_the_decision_and_why() -> None:
    s = _snap("{method: linear, w: 0.5}", decisions=HIT)
    hit = match(s, _sigs(s, {"probe": {"flag": True}}))
    assert hit.decision.name == "hit" and hit.why == "probe.flag=True eq True: yes"
    miss = match(s, _sigs(s, {"probe": {"flag": False}}))
    assert miss.decision is s.default and miss.why == "no decision matched (hit)"


def test_score_consults_the_router_only_when_p_can_change_the_choice() -> None:
    res = fake_resources(cost={"small": None, "mid": 0.001, "big": 0.01})
    s = _snap("{method: linear, w: 0.5}", res)
    ctx = SignalContext(chat({}), embedder=FakeEmbedder())
    one = score([s.catalog["mid"]], res.router, ctx, 10.0)
    assert one.p is None and one.cost == (0.001,) and one.scores is None
    assert fake_router(res).predictions == 0
    many = score(list(s.catalog.values()), res.router, ctx, 10.0)
    assert many.p == (0.5, 0.7, 0.9) and many.cost == (None, 0.001, 0.01)
    assert many.scores is ctx.router_scores(fake_router(res))  # the request's one read-out
    assert fake_router(res).predictions == 1


@pytest.mark.parametrize(
    ("objective", "p", "cost", "expected"),
    [
        # small (P 0.85) would win were its unknown cost cheap; counted dearest, mid wins.
        ("{method: linear, w: 0.5}", (0.85, 0.7, 0.9), (None, 0.001, 0.01), "mid"),
        ("{method: chebyshev, w: 0.5}", (0.85, 0.7, 0.9), (None, 0.001, 0.01), "mid"),
        # Nothing priced: cost plays no part, P decides.
        ("{method: linear, w: 0.2}", (0.5, 0.7, 0.9), (None, None, None), "big"),
        ("{method: target, target: 0.6}", (0.5, 0.7, 0.9), (None, None, None), "big"),
        # A cap never admits an unknown cost, whatever its P.
        ("{method: linear, w: 1.0, max_cost: 1.0}", (0.95, 0.7, 0.9), (None, 0.001, 0.01), "big"),
    ],
)
def test_selection_with_unknown_costs(
    objective: str, p: tuple[float, ...], cost: tuple[float | None, ...], expected: str
) -> None:
    s = _snap(objective)
    scored = Scored(tuple(s.catalog.values()), p, cost)
    chosen = select(s.default.objective, scored, "default")
    assert chosen.entry.name == expected
    assert chosen.cost == cost[list(s.catalog).index(expected)]


def test_a_cap_over_only_unknown_costs_is_a_clear_503() -> None:
    s = _snap("{method: linear, w: 1.0, max_cost: 1.0}")
    scored = Scored(tuple(s.catalog.values()), (0.5, 0.7, 0.9), (None, None, None))
    with pytest.raises(ClientError) as ei:
        select(s.default.objective, scored, "default")
    assert ei.value.status == 503 and "costs at most 1" in ei.value.message


def test_an_unknown_cost_is_shown_as_unknown_and_not_counted() -> None:
    res = fake_resources(p={"small": 0.5, "mid": 0.7, "big": 0.9}, cost={"small": 0.0001})
    s = _snap("{method: linear, w: 1.0}", res)
    trace = DecisionTrace()
    out = decide_sync(s, chat({}), trace)
    assert out.choice.config == "big"
    ex = out.explanation
    assert ex["choice.cost"] == "unknown" and ex["cost.big"] == "unknown"
    assert ex["cost.small"] == 0.0001 and ex["p.big"] == 0.9
    assert ex["router.difficulty"] == 0.0  # the router's own explanation, read once
    assert out.reason == "default: big P=0.90"  # no made-up cost in the header
    assert trace.cost is None and trace.p_correct == 0.9
    assert trace.baseline_cost == 0.0001  # the dearest *known* cost
    assert fake_router(res).predictions == 1


def test_p_and_cost_for_a_single_candidate_skip_the_router() -> None:
    res = fake_resources()
    s = _snap("{method: linear, w: 0.5}", res, decisions=HIT)
    out = decide_sync(s, chat({"probe": {"flag": True}}))
    assert out.choice.config == "mid" and out.explanation["choice.cost"] == 0.001
    assert "choice.p" not in out.explanation and "router.difficulty" not in out.explanation
    assert fake_router(res).predictions == 0
