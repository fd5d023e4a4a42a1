"""Policies can route on ``difficulty.family``: the training benchmark a request resembles,
from the shipped router's task-family prior."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from irtgate.policies.engine import decide_sync
from irtgate.policies.runtime import PolicyRuntime
from irtgate.server.parse import parse_request
from irtgate.signals.request import ApiKind

POLICY = """\
version: 1
aliases: [auto]
upstreams: [demo-small, demo-large]
catalog:
  - name: small
    model: demo-small-1
    upstream: demo-small
    router_config: mistralai/mistral-7b-chat
  - {name: large, model: demo-large-1, upstream: demo-large, router_config: gpt-4-1106-preview}
signals:
  difficulty: {}
decisions:
  - name: word-problems
    priority: 10
    when: {signal: difficulty.family, in: [gsm8k]}
    candidates: [large]
    objective: {method: linear, w: 1.0}
default:
  candidates: [small]
  objective: {method: linear, w: 0.5}
"""


def _decide(runtime: PolicyRuntime, text: str) -> tuple[str, object]:
    body = json.dumps({"model": "auto", "messages": [{"role": "user", "content": text}]})
    out = decide_sync(runtime.snapshot, parse_request(ApiKind.CHAT, body.encode()))
    return out.decision, out.explanation.get("signal.difficulty.family")


def test_a_decision_on_the_family(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(POLICY, encoding="utf-8")
    runtime = PolicyRuntime.from_file(path, watch=False)
    if runtime.snapshot.resources.router is None:
        pytest.skip("the default router is not shipped in this checkout")
    decision, family = _decide(
        runtime, "A baker makes 24 muffins and sells 3 boxes of 6. How many muffins are left?"
    )
    assert (decision, family) == ("word-problems", "gsm8k")
    decision, family = _decide(runtime, "Which of these is a mammal?\nA. Shark\nB. Whale")
    assert decision == "default" and family != "gsm8k"


@pytest.mark.parametrize(
    ("old", "new", "error"),
    [
        ("difficulty.family", "difficulty.famly", "no field 'famly'"),
        ("in: [gsm8k]", "in: [gsm9k]", "gsm9k"),  # not a family of the router
    ],
)
def test_misspellings_are_errors_naming_them(
    tmp_path: Path, old: str, new: str, error: str
) -> None:
    from irtgate.policies.errors import PolicyError

    path = tmp_path / "p.yaml"
    path.write_text(POLICY.replace(old, new), encoding="utf-8")
    with pytest.raises(PolicyError, match=error):
        PolicyRuntime.from_file(path, watch=False)
