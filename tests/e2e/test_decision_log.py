"""The operator's loop through a real Envoy: traffic writes a decision log, and replaying it
under the serving policy reproduces every logged choice; an edit moves traffic as computed
here from the logged values; the log holds no prompt text.

The served policy is ``policies/examples/cost-saver.yaml`` plus a pii signal and two
decisions that act on it (restrict to local models, block card numbers), so refusals are
logged too and the pii step of the replay is exercised.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from irtgate.policies.compile import Snapshot, compile_policy
from irtgate.server.cli import main
from irtgate.server.decision_log import DecisionLogConfig
from irtgate.server.replay_report import summarise
from irtgate.server.replay_run import replay
from irtgate.server.settings import DeciderKind, Upstream
from irtgate.server.testing import Stack, running_stack, stack_settings
from irtgate.signals.base import Resources
from irtgate.signals.irt.runtime import IRTRouter

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e-decision-log")]

COST_SAVER = Path(__file__).resolve().parents[2] / "policies" / "examples" / "cost-saver.yaml"
EMAIL = "jane.roe@example.com"
PHONE = "+44 20 7946 0958"
CARD = "4111 1111 1111 1111"
PROMPTS = [
    "hi there",
    "What is 2 + 2?",
    "Translate 'good morning' into French.",
    "Prove that there are infinitely many primes, step by step.",
    "Write a Python function that merges two sorted lists in linear time.",
    "Explain the difference between TCP and UDP for a network engineering exam.",
    "Derive the closed form of the sum of the first n cubes.",
    "What is the capital of Australia?",
    "Give me a haiku about autumn leaves.",
    "Summarise the causes of the First World War in three sentences.",
    "Find $(2^{20} + 2^{20} + 2^{20} +2^{21}) \\div 2^{17}$.",
    "The committee reviewed the quarterly figures and the plan for next year. " * 300,
]
PERSONAL = [f"Please write to {EMAIL} about the invoice.", f"Call me back on {PHONE} today."]
BLOCKED = [f"Charge my card {CARD} for the order."]
EXTRA = """
  pii: {}

# Added for the test: PII-bearing requests stay on local models; card numbers are refused.
extra_decisions:
  - name: card
    priority: 40
    when: {signal: pii.types, contains: payment_card}
    candidates: ["*"]
    objective: {method: target, target: 0.7}
    plugins:
      - pii: {action: block, types: [payment_card]}
  - name: personal
    priority: 30
    when: {signal: pii.found, eq: true}
    candidates: ["*"]
    objective: {method: linear, w: 0.9}
    plugins:
      - pii: {action: restrict}
"""


def serving_policy() -> str:
    text = COST_SAVER.read_text()
    head, _, rest = text.partition("  difficulty: {}\n")
    decisions = EXTRA.split("extra_decisions:\n", 1)[1]
    text = head + "  difficulty: {}\n" + EXTRA.split("\n# Added")[0].lstrip("\n") + "\n" + rest
    return text.replace("decisions:\n", "decisions:\n" + decisions, 1)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Path, Path]]:
    workdir = tmp_path_factory.mktemp("decision-log")
    policy, log = workdir / "policy.yaml", workdir / "decisions.jsonl"
    policy.write_text(serving_policy())
    settings = stack_settings(
        decider=DeciderKind.POLICY,
        policy_path=policy,
        upstreams=(Upstream("local", "127.0.0.1", 0), Upstream("cloud", "127.0.0.1", 0)),
        default_upstream="local",
        decision_log=DecisionLogConfig(mode="full", path=log),
    )
    with running_stack(workdir, settings, name="decision-log") as stack:
        yield stack, policy, log


@pytest.fixture(scope="module")
def traffic(served: tuple[Stack, Path, Path]) -> list[dict[str, Any]]:
    """Every prompt sent once; the log's lines once the writer has caught up."""
    stack, _, log = served
    sent = [*PROMPTS, *PERSONAL, *BLOCKED]
    with httpx.Client(base_url=stack.url, timeout=20) as c:
        for text in sent:
            r = c.post(
                "/v1/chat/completions",
                json={"model": "auto", "messages": [{"role": "user", "content": text}]},
            )
            assert r.status_code == (403 if text in BLOCKED else 200), r.text
    deadline = time.monotonic() + 10
    written = 0.0
    while time.monotonic() < deadline:
        lines = log.read_text().splitlines() if log.exists() else []
        # The writer counts a line just after writing it.
        written = stack.metric("irtgate_decision_log_lines_total", result="written")
        if len(lines) >= len(sent) and written >= len(sent):
            break
        time.sleep(0.05)
    assert len(lines) == len(sent), f"{len(lines)} lines logged for {len(sent)} requests"
    assert written == len(sent)
    return [json.loads(x) for x in lines]


def _snapshot(text: str) -> Snapshot:
    return compile_policy(text, "policy.yaml", Resources(router=IRTRouter.load(None)))


def test_every_decision_is_logged_with_envoys_request_id_and_refusals(
    traffic: list[dict[str, Any]],
) -> None:
    ids = [r["request_id"] for r in traffic]
    assert len(set(ids)) == len(ids) and all(len(i) == 36 and i.count("-") == 4 for i in ids)
    outcomes = Counter(r["outcome"] for r in traffic)
    assert outcomes == Counter({"routed": len(PROMPTS) + len(PERSONAL), "policy_blocked": 1})
    assert Counter(r["decision"] for r in traffic)["personal"] == len(PERSONAL)
    for r in traffic:
        assert r["v"] == 1 and r["api"] == "chat_completions" and r["model"] == "auto"
        assert "pii" in r["computed"] and len(r["p"]) > 5
        assert r["latency_ms"] > 0
        assert r["router"].startswith("irtgate-router@")


def test_replaying_the_log_under_the_serving_policy_reproduces_every_choice(
    served: tuple[Stack, Path, Path], traffic: list[dict[str, Any]]
) -> None:
    _, policy, log = served
    after, _, logged, bad, counts = replay([log], _snapshot(policy.read_text()))
    assert not bad and not after.missing
    names = [after.entries[c].name if c >= 0 else None for c in after.choice.tolist()]
    assert names == [r["choice"] for r in traffic]
    assert after.outcome == [r["outcome"] for r in traffic]
    assert after.decision == [r["decision"] for r in traffic]
    s = summarise(after, None, logged, bad, counts)
    assert s.changed == 0 and s.compared == len(traffic)


def test_raising_the_difficulty_threshold_moves_the_computed_requests(
    served: tuple[Stack, Path, Path], traffic: list[dict[str, Any]], tmp_path: Path
) -> None:
    _, policy, log = served
    easy = [r for r in traffic if r["decision"] == "easy"]
    assert len(easy) >= 2
    p_easy = sorted(float(r["signals"]["difficulty.p_max"]) for r in easy)
    new_t = round((p_easy[0] + p_easy[-1]) / 2, 6)
    leaf = "{signal: difficulty.p_max, gte: 0.8}"
    edited = policy.read_text().replace(leaf, leaf.replace("0.8", str(new_t)))
    new_policy = tmp_path / "edited.yaml"
    new_policy.write_text(edited)
    after, _, logged, bad, counts = replay([log], _snapshot(edited))
    # Independently: easy requests now under the threshold leave "easy" for the next
    # decision that holds: hard below 0.55, else default (they carry no PII).
    moved = [r for r in easy if float(r["signals"]["difficulty.p_max"]) < new_t]
    assert 0 < len(moved) < len(easy)
    want = Counter(r["decision"] for r in traffic)
    for r in moved:
        want["easy"] -= 1
        want["hard" if float(r["signals"]["difficulty.p_max"]) < 0.55 else "default"] += 1
    assert Counter(after.decision) == +want
    s = summarise(after, None, logged, bad, counts)
    assert s.before.decisions.get("easy", 0) - s.after.decisions.get("easy", 0) == len(moved)
    # The CLI shows the same, with a Markdown report.
    md = tmp_path / "replay.md"
    code = main(
        ["policy", "replay", "--log", str(log), "--policy", str(new_policy), "--md", str(md)]
    )
    assert code == 0
    assert f"choice changes for {s.changed} requests" in md.read_text()


def test_no_prompt_text_reaches_the_log(
    served: tuple[Stack, Path, Path], traffic: list[dict[str, Any]]
) -> None:
    text = served[2].read_text()
    for secret in (EMAIL, "jane.roe", "example.com", PHONE, "7946", CARD, "4111"):
        assert secret not in text
    for prompt in [*PROMPTS, *PERSONAL, *BLOCKED]:
        for word in prompt.split():
            if len(word) > 6 and word.isalpha():  # a distinctive word of the prompt
                assert word not in text, word
    # What the PII scan found is there, as type labels and counts only.
    personal = [r for r in traffic if r["decision"] == "personal"]
    assert {t for r in personal for t in r["pii"]} >= {"email"}
