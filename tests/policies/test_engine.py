"""The decision engine: when-tree evaluation, priority order, objectives, explanation."""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
import pytest

from irtgate.policies.compile import compile_policy
from irtgate.policies.engine import decide_sync
from irtgate.signals.errors import ClientError
from irtgate.signals.request import ApiKind, LLMRequest, Message
from irtgate.signals.text import PromptText
from tests.policies.fakes import BASE, CALLS, FakeRouter, chat, fake_resources, fake_router


def snap(decisions: str, default: str = "{method: linear, w: 0.5}", **kw: object) -> object:
    text = BASE + decisions + f"default:\n  candidates: ['*']\n  objective: {default}\n"
    return compile_policy(text, "p.yaml", kw.get("res") or fake_resources())  # type: ignore[arg-type]


def decide(s: object, values: dict[str, object] | str, model: str = "auto") -> object:
    return decide_sync(s, chat(values, model))  # type: ignore[arg-type]


def one(
    name: str, when: str, prio: int = 0, cands: str = "['*']", obj: str = "{method: linear, w: 1.0}"
) -> str:
    return (
        f"  - name: {name}\n    priority: {prio}\n    when: {when}\n"
        f"    candidates: {cands}\n    objective: {obj}\n"
    )


@pytest.mark.parametrize(
    ("when", "values", "expected"),
    [
        ("{signal: probe.score, gt: 0.5}", {"score": 0.6}, True),
        ("{signal: probe.score, gt: 0.5}", {"score": 0.5}, False),
        ("{signal: probe.score, gte: 0.5}", {"score": 0.5}, True),
        ("{signal: probe.score, lt: 0.5}", {}, False),  # missing field: false
        ("{signal: probe.score, present: false}", {}, True),
        ("{signal: probe.tags, present: true}", {"tags": []}, False),  # empty set: absent
        ("{signal: probe.tags, present: true}", {"tags": ["x"]}, True),
        ("{signal: probe.tags, contains: x}", {"tags": ["y", "x"]}, True),
        ("{signal: probe.tags, contains_any: [p, q]}", {"tags": ["y", "x"]}, False),
        ("{signal: probe.label, in: [a, b]}", {"label": "b"}, True),
        ("{signal: probe.label, not_in: [a, b]}", {"label": "c"}, True),
        ("{signal: probe.label, ne: a}", {}, False),
        ("{signal: probe.flag, eq: true}", {"flag": True}, True),
        ("{not: {signal: probe.flag, eq: true}}", {"flag": True}, False),
        (
            "{all: [{signal: probe.flag, eq: true}, {signal: probe.count, gte: 3}]}",
            {"flag": True, "count": 3},
            True,
        ),
        (
            "{all: [{signal: probe.flag, eq: true}, {signal: probe.count, gte: 3}]}",
            {"flag": True, "count": 2},
            False,
        ),
        (
            "{any: [{signal: probe.flag, eq: true}, {signal: probe.count, gte: 3}]}",
            {"flag": False, "count": 7},
            True,
        ),
        ("{signal: probe.score, gt: 0.5}", {"score": "high"}, False),  # wrong type at runtime
    ],
)
def test_when_tree_evaluation(when: str, values: dict[str, object], expected: bool) -> None:
    s = snap("decisions:\n" + one("hit", when))
    out = decide(s, {"probe": values})
    assert (out.decision == "hit") is expected  # type: ignore[attr-defined]


def test_priority_order_and_file_order_break_ties() -> None:
    d = (
        "decisions:\n"
        + one("low", "{signal: probe.count, gte: 1}", prio=1)
        + one("first-10", "{signal: probe.count, gte: 2}", prio=10)
        + one("second-10", "{signal: probe.count, gte: 1}", prio=10)
    )
    s = snap(d)
    assert decide(s, {"probe": {"count": 5}}).decision == "first-10"  # type: ignore[attr-defined]
    assert decide(s, {"probe": {"count": 1}}).decision == "second-10"  # type: ignore[attr-defined]
    assert decide(s, {"probe": {"count": 0}}).decision == "default"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ("{method: linear, w: 1.0}", "big"),  # quality only
        ("{method: linear, w: 0.0}", "small"),  # cost only
        ("{method: linear, w: 0.5}", "small"),
        ("{method: chebyshev, w: 1.0}", "big"),
        ("{method: target, target: 0.65}", "mid"),  # cheapest with P >= 0.65
        ("{method: target, target: 0.95}", "big"),  # none reaches: highest P
        ("{method: linear, w: 1.0, max_cost: 0.005}", "mid"),  # big is over the cap
    ],
)
def test_objectives_pick_with_router_p_and_cost(obj: str, expected: str) -> None:
    s = snap("", default=obj)
    out = decide(s, {})
    assert out.choice.config == expected  # type: ignore[attr-defined]
    ex = out.explanation  # type: ignore[attr-defined]
    assert ex["p.small"] == 0.5 and ex["p.big"] == 0.9
    assert ex["cost.mid"] == 0.001


def test_a_cap_nothing_meets_is_503() -> None:
    s = snap("", default="{method: linear, w: 1.0, max_cost: 0.00001}")
    with pytest.raises(ClientError) as ei:
        decide(s, {})
    assert ei.value.status == 503 and ei.value.code == "no_candidate"


def test_the_selection_follows_the_router() -> None:
    res = fake_resources(p={"small": 0.95, "mid": 0.7, "big": 0.9})
    s = snap("", default="{method: target, target: 0.9}", res=res)
    assert decide(s, {}).choice.config == "small"  # type: ignore[attr-defined]


def test_one_encoder_pass_shared_and_skipped_for_a_single_candidate() -> None:
    res = fake_resources()
    text = (
        BASE
        + "  emb: {type: t_embedded}\ndecisions:\n"
        + one("e", "{signal: emb.norm, gt: 0.5}", cands="[mid]")
        + "default:\n  candidates: ['*']\n  objective: {method: linear, w: 1.0}\n"
    )
    s = compile_policy(text, "p.yaml", res)
    out = decide_sync(s, chat({}))
    assert out.decision == "e" and out.choice.config == "mid"
    assert res.embedder.calls == 1  # type: ignore[union-attr]
    assert fake_router(res).predictions == 0  # one candidate: P is not needed
    s2 = compile_policy(text.replace("cands", "").replace("[mid]", "['*']"), "p.yaml", res)
    decide_sync(s2, chat({}))
    # A new request embeds once, shared by the signal and the router.
    assert res.embedder.calls == 2  # type: ignore[union-attr]
    assert fake_router(res).predictions == 1


def test_signals_are_computed_lazily_in_evaluation_order() -> None:
    text = (
        BASE
        + "  other: {type: t_probe, params: {key: other}}\ndecisions:\n"
        + one("p", "{signal: probe.flag, eq: true}", prio=5)
        + one("o", "{signal: other.flag, eq: true}", prio=1)
        + "default:\n  candidates: ['*']\n  objective: {method: linear, w: 1.0}\n"
    )
    s = compile_policy(text, "p.yaml", fake_resources())
    CALLS.clear()
    out = decide_sync(s, chat({"probe": {"flag": True}}))
    assert out.decision == "p" and CALLS == {"probe": 1}
    assert "signal.other.flag" not in out.explanation


def test_a_failing_signal_counts_as_absent(caplog: pytest.LogCaptureFixture) -> None:
    s = snap("decisions:\n" + one("hit", "{signal: probe.score, present: false}"))
    with caplog.at_level(logging.WARNING):
        out = decide(s, {"probe": "boom"})
    assert out.decision == "hit"  # type: ignore[attr-defined]
    assert out.explanation["signal.probe"] == "error"  # type: ignore[attr-defined]
    assert "signal probe failed (RuntimeError)" in caplog.text
    assert "on purpose" not in caplog.text  # the message could quote the prompt


def test_explanation_and_reason() -> None:
    s = snap(
        "decisions:\n"
        + one("hit", "{all: [{signal: probe.score, gt: 0.5}, {signal: probe.label, in: [a]}]}")
    )
    out = decide(s, {"probe": {"score": 0.75, "label": "a"}})
    ex = out.explanation  # type: ignore[attr-defined]
    assert ex["decision"] == "hit"
    assert ex["decision.why"] == "all(probe.score=0.75 gt 0.5: yes, probe.label=a in [a]: yes): yes"
    assert ex["signal.probe.score"] == 0.75 and ex["choice"] == "big"
    assert ex["choice.p"] == 0.9 and ex["choice.cost"] == 0.01
    assert out.reason == "hit: big P=0.90 cost=0.01"  # type: ignore[attr-defined]
    assert out.choice.model == "big-m" and out.choice.budget == "high"  # type: ignore[attr-defined]
    assert out.body["model"] == "big-m" and out.body["reasoning_effort"] == "high"  # type: ignore[attr-defined]
    default = decide(s, {"probe": {"score": 0.1}})
    assert default.explanation["decision.why"] == "no decision matched (hit)"  # type: ignore[attr-defined]


def test_pinned_models_are_respected_and_unknown_models_refused() -> None:
    s = snap("")
    out = decide(s, {}, model="small-m")
    assert out.choice.config == "small" and out.explanation["routing"] == "pinned"  # type: ignore[attr-defined]
    assert decide(s, {}, model="mid").choice.config == "mid"  # type: ignore[attr-defined]
    with pytest.raises(ClientError) as ei:
        decide(s, {}, model="gpt-17")
    assert ei.value.status == 400 and ei.value.code == "model_not_found"


def test_security_plugins_still_apply_to_pinned_models() -> None:
    s = snap(
        "decisions:\n"
        + one("pii", "{signal: probe.flag, eq: true}")
        + "    plugins:\n      - pii: {action: block}\n"
    )
    req = chat({"probe": {"flag": True}, "note": "mail me at jane.roe@example.org"}, "big-m")
    with pytest.raises(ClientError) as ei:
        decide_sync(s, req)  # type: ignore[arg-type]
    assert ei.value.status == 403 and ei.value.code == "policy_blocked"


def test_the_request_is_never_mutated() -> None:
    s = snap("", default="{method: linear, w: 1.0}")
    req = chat({}, reasoning_effort="low", thinking={"type": "enabled", "budget_tokens": 2048})
    before = json.dumps(dict(req.body), sort_keys=True)
    out = decide_sync(s, req)  # type: ignore[arg-type]
    assert json.dumps(dict(req.body), sort_keys=True) == before
    assert out.body_changed and "thinking" not in out.body


def test_without_a_router_p_is_unknown_and_cost_decides() -> None:
    text = (
        BASE.replace("router_config: small}", "router_config: small, cost: 0.002}")
        + "default:\n  candidates: ['*']\n  objective: {method: linear, w: 0.5}\n"
    )
    s = compile_policy(text, "p.yaml", None)
    out = decide_sync(s, chat({}))
    assert out.choice.config == "small"  # the only candidate with a known cost
    assert "p.small" not in out.explanation


def test_fake_router_is_a_faithful_double() -> None:
    r = FakeRouter({"a": 0.3}, {"a": 1.0})
    got = r.score(np.ones(4, dtype=np.float32))
    assert got.p == {"a": 0.3} and got.cost == {"a": 1.0} and r.predictions == 1
    assert LLMRequest(ApiKind.CHAT, "auto", (Message("user", PromptText("x")),)).model == "auto"


def test_p_from_a_difficulty_signal_is_reused() -> None:
    res = fake_resources()
    text = (
        BASE
        + "  d: {type: t_router}\ndecisions:\n"
        + one("sure", "{signal: d.p_max, gt: 0.95}")
        + "default:\n  candidates: ['*']\n  objective: {method: linear, w: 1.0}\n"
    )
    s = compile_policy(text, "p.yaml", res)
    out = decide_sync(s, chat({}))
    assert out.decision == "default" and out.choice.config == "big"
    assert fake_router(res).predictions == 1  # by the signal; the engine reused its P
    assert out.explanation["p.mid"] == 0.7


@pytest.mark.parametrize("api", list(ApiKind))
def test_engine_rewrites_each_api_shape(api: ApiKind) -> None:
    text = """\
version: 1
upstreams: [a]
catalog:
  - {name: claude, model: claude-x, upstream: a, family: anthropic, budget: 2048, cost: 1}
  - {name: o4, model: o4-x, upstream: a, family: openai, budget: low, cost: 2}
default:
  candidates: [FAMILY]
  objective: {method: linear, w: 0.5}
  plugins:
    - system_prompt: {text: Be brief., mode: replace}
    - headers: {set: {x-route: r}}
"""
    family = "claude" if api is ApiKind.MESSAGES else "o4"
    s = compile_policy(text.replace("FAMILY", family), "p.yaml", None)
    bodies: dict[ApiKind, dict[str, Any]] = {
        ApiKind.CHAT: {
            "messages": [{"role": "system", "content": "old"}, {"role": "user", "content": "q"}]
        },
        ApiKind.RESPONSES: {"instructions": "old", "input": "q"},
        ApiKind.MESSAGES: {
            "system": "old",
            "max_tokens": 512,
            "messages": [{"role": "user", "content": "q"}],
        },
    }
    body = {"model": "auto", **bodies[api]}
    req = LLMRequest(api, "auto", (Message("user", PromptText("q")),), body=body)
    out = decide_sync(s, req)
    b = out.body
    assert out.request_headers == {"x-route": "r"}
    if api is ApiKind.CHAT:
        assert b["model"] == "o4-x" and b["reasoning_effort"] == "low"
        assert b["messages"] == [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "q"},
        ]
    elif api is ApiKind.RESPONSES:
        assert b["model"] == "o4-x" and b["reasoning"] == {"effort": "low"}
        assert b["instructions"] == "Be brief." and b["input"] == "q"
    else:
        assert b["model"] == "claude-x" and b["system"] == "Be brief."
        assert b["thinking"] == {"type": "enabled", "budget_tokens": 2048}
        assert b["max_tokens"] == 2048 + 512
    assert out.choice.budget == ("2048" if api is ApiKind.MESSAGES else "low")
