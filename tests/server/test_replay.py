"""`policy replay`: a log written by the real engine replays to the same choices; a known
edit moves traffic by the amount computed here from the logged values; bad input."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from irtgate.policies.compile import Snapshot, compile_policy
from irtgate.policies.engine import decide_sync
from irtgate.policies.outcome import DecisionTrace
from irtgate.policies.runtime import default_resources
from irtgate.server.cli import main
from irtgate.server.decision_record import build_record
from irtgate.server.replay import ReplayRefused
from irtgate.server.replay_report import render_markdown, render_text, summarise
from irtgate.server.replay_run import replay
from irtgate.signals.base import Resources
from irtgate.signals.errors import ClientError
from irtgate.signals.request import ApiKind, LLMRequest, Message
from irtgate.signals.text import PromptText

COST_SAVER = Path(__file__).resolve().parents[2] / "policies" / "examples" / "cost-saver.yaml"

PROMPTS = [
    "hi there",
    "What is 2 + 2?",
    "Translate 'good morning' into French.",
    "Prove that there are infinitely many primes, step by step.",
    "Write a Python function that merges two sorted lists in linear time.",
    "Explain the difference between TCP and UDP for a network engineering exam.",
    "Solve: a train leaves at 3pm going 60 km/h; another at 4pm going 80 km/h. When do they meet?",
    "Summarise the causes of the First World War in three sentences.",
    "Derive the closed form of the sum of the first n cubes.",
    "What is the capital of Australia?",
    "Give me a haiku about autumn leaves.",
    "Which of these is a mammal: shark, dolphin, trout, eel? Answer with one word.",
]


@pytest.fixture(scope="module")
def resources() -> Resources:
    res = default_resources()
    if res.router is None:
        pytest.skip("the default router is not shipped in this checkout")
    return res


def _compile(text: str, res: Resources) -> Snapshot:
    return compile_policy(text, "policy.yaml", res)


def _request(text: str, model: str = "auto") -> LLMRequest:
    body = {"model": model, "messages": [{"role": "user", "content": text}]}
    return LLMRequest(ApiKind.CHAT, model, (Message("user", PromptText(text)),), body=body)


def _write_log(snap: Snapshot, path: Path, prompts: list[str]) -> list[dict[str, object]]:
    """Decide each prompt with the real engine and log it the way the gateway does."""
    lines = []
    for i, text in enumerate(prompts):
        trace = DecisionTrace(log=True)
        try:
            decide_sync(snap, _request(text), trace)
            outcome = "routed"
        except ClientError as e:
            outcome = e.code
        rec = build_record(
            trace,
            request_id=f"r{i}",
            started_wall=1.0,
            latency_s=0.001,
            api="chat",
            model="auto",
            outcome=outcome,
            policy=trace.policy,
            router=trace.router,
        )
        lines.append(rec.to_json())
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return [json.loads(x) for x in lines]


def _prompts() -> list[str]:
    # Variety in length too: some above the easy decision's 2,000-token bound.
    long = " ".join(["Consider the following detailed specification carefully."] * 400)
    return [*PROMPTS, *(f"{p} {long}" for p in PROMPTS[:4])]


def test_replaying_under_the_serving_policy_reproduces_every_choice(
    resources: Resources, tmp_path: Path
) -> None:
    snap = _compile(COST_SAVER.read_text(), resources)
    log = tmp_path / "decisions.jsonl"
    logged = _write_log(snap, log, _prompts())
    after, before, base, bad, counts = replay([log], snap)
    assert before is None and not bad and after.missing == Counter()
    replayed = [after.entries[c].name if c >= 0 else None for c in after.choice.tolist()]
    assert replayed == [r["choice"] for r in logged]
    assert after.decision == [r["decision"] for r in logged]
    s = summarise(after, before, base, bad, counts)
    assert s.changed == 0 and s.compared == len(logged)
    assert s.before.cost_total == pytest.approx(s.after.cost_total)
    assert s.before.mean_p == pytest.approx(s.after.mean_p)


def test_raising_the_easy_threshold_moves_exactly_the_requests_in_between(
    resources: Resources, tmp_path: Path
) -> None:
    text = COST_SAVER.read_text()
    snap = _compile(text, resources)
    log = tmp_path / "decisions.jsonl"
    logged = _write_log(snap, log, _prompts())
    p_max = sorted(float(r["signals"]["difficulty.p_max"]) for r in logged)  # type: ignore[index]
    # A threshold between the logged values, so that some easy requests are no longer easy.
    easy = [r for r in logged if r["decision"] == "easy"]
    assert easy, "no logged request was easy; the prompt set needs an easy one"
    new_t = round(max(float(r["signals"]["difficulty.p_max"]) for r in easy) - 1e-6, 9)  # type: ignore[index]
    edited = text.replace(
        "{signal: difficulty.p_max, gte: 0.8}", f"{{signal: difficulty.p_max, gte: {new_t}}}"
    )
    assert edited != text
    new = _compile(edited, resources)
    after, _, base, bad, counts = replay([log], new)
    s = summarise(after, None, base, bad, counts)
    # Independently: easy requests whose p_max is now below the threshold fall to the
    # next decision that holds (hard if p_max < 0.55, else default).
    moved = [r for r in easy if float(r["signals"]["difficulty.p_max"]) < new_t]  # type: ignore[index]
    assert moved and p_max
    want = Counter(r["decision"] for r in logged)
    for r in moved:
        want["easy"] -= 1
        want["hard" if float(r["signals"]["difficulty.p_max"]) < 0.55 else "default"] += 1  # type: ignore[index]
    assert Counter(after.decision) == +want
    # Their new choice under default (target 0.65): the cheapest of its candidates with
    # P >= 0.65, else the likeliest; computed here from the logged P and the card's costs.
    router = resources.router
    assert router is not None
    cfg = {e.name: e.router_config for e in new.catalog.values()}
    changed = 0
    for r in moved:
        cands = ["mistral-7b", "mixtral-8x7b", "yi-34b", "gpt-3.5"]
        p = {c: float(r["p"][cfg[c]]) for c in cands}  # type: ignore[index]
        cost = {c: router.expected_cost[cfg[c] or ""] or 0.0 for c in cands}
        ok = [c for c in cands if p[c] >= 0.65]
        pick = min(ok, key=lambda c: cost[c]) if ok else max(cands, key=lambda c: p[c])
        i = logged.index(r)
        assert after.entries[int(after.choice[i])].name == pick
        changed += pick != r["choice"]
    assert s.changed == changed
    assert "choice changes for" in render_text(s)
    assert "| expected accuracy (mean P) |" in render_markdown(s, "edit")


def test_corrupt_and_truncated_lines_are_reported_and_the_rest_replayed(
    resources: Resources, tmp_path: Path
) -> None:
    snap = _compile(COST_SAVER.read_text(), resources)
    log = tmp_path / "decisions.jsonl"
    logged = _write_log(snap, log, PROMPTS[:6])
    lines = log.read_text().splitlines()
    lines.insert(2, "{not json")
    lines[4] = lines[4][: len(lines[4]) // 2]  # truncated mid-line
    lines.append('{"v": 1}')
    log.write_text("\n".join(lines) + "\n")
    after, _, base, bad, counts = replay([log], snap)
    assert [b.line for b in bad] == [3, 5, 8]
    assert "corrupt or truncated" in str(bad[0]) and str(bad[0]).startswith(f"{log}:3:")
    assert len(after.outcome) == len(logged) - 1  # one original line was truncated
    s = summarise(after, None, base, bad, counts)
    assert s.changed == 0 and s.bad_count == 3


def test_a_log_from_another_router_is_refused(resources: Resources, tmp_path: Path) -> None:
    snap = _compile(COST_SAVER.read_text(), resources)
    log = tmp_path / "decisions.jsonl"
    _write_log(snap, log, PROMPTS[:2])
    rows = [json.loads(x) for x in log.read_text().splitlines()]
    rows[1]["router"] = "irtgate-router@000000000000"
    log.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(ReplayRefused, match=r"decisions.jsonl:2: .*router 'irtgate-router@0+'"):
        replay([log], snap)


def test_a_signal_the_log_lacks_is_reported_never_guessed(
    resources: Resources, tmp_path: Path
) -> None:
    snap = _compile(COST_SAVER.read_text(), resources)
    log = tmp_path / "decisions.jsonl"
    _write_log(snap, log, PROMPTS[:5])
    edited = (
        COST_SAVER.read_text()
        .replace("  difficulty: {}\n", "  difficulty: {}\n  language: {}\n")
        .replace(
            "    when: {signal: difficulty.p_max, lt: 0.55}",
            "    when: {all: [{signal: language.code, eq: en},"
            " {signal: difficulty.p_max, lt: 0.55}]}",
        )
    )
    new = _compile(edited, resources)
    after, _, base, bad, counts = replay([log], new)
    s = summarise(after, None, base, bad, counts)
    # Requests that were not easy reach the "hard" test, which now needs language.
    not_easy = sum(d != "easy" for d in base.decision)
    assert after.missing == Counter({"language": not_easy}) and not_easy > 0
    assert s.compared == 5 - not_easy
    assert "language: " in render_text(s)


def test_cli_replay_prints_the_report_and_writes_markdown(
    resources: Resources, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    snap = _compile(COST_SAVER.read_text(), resources)
    log = tmp_path / "decisions.jsonl"
    _write_log(snap, log, PROMPTS[:4])
    md = tmp_path / "r.md"
    code = main(
        ["policy", "replay", "--log", str(log), "--policy", str(COST_SAVER), "--md", str(md)]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "choice changes for 0 requests (0.0%)" in out
    assert md.read_text().startswith("# Policy replay: cost-saver.yaml")


def test_two_worker_processes_give_the_same_replay_and_line_numbers(
    resources: Resources, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from irtgate.server import replay_run

    monkeypatch.setattr(replay_run, "MIN_SPLIT_BYTES", 0)  # split even a small file
    snap = _compile(COST_SAVER.read_text(), resources)
    log = tmp_path / "decisions.jsonl"
    _write_log(snap, log, _prompts())
    lines = log.read_text().splitlines()
    lines.insert(13, "{truncated")
    log.write_text("\n".join(lines) + "\n")
    one = replay([log], snap, workers=1)
    two = replay([log], snap, workers=2)
    assert len(replay_run._tasks([log], 2)) == 2
    assert two[0].choice.tolist() == one[0].choice.tolist()
    assert two[0].decision == one[0].decision and two[2].choice == one[2].choice
    assert [b.line for b in two[3]] == [b.line for b in one[3]] == [14]


@pytest.mark.parametrize(
    "objective",
    [
        "{method: linear, w: 0.7, max_cost: 0.004}",
        "{method: chebyshev, w: 0.5, max_cost: 0.004}",
        "{method: target, target: 0.6, max_cost: 0.004}",
        "{method: linear, w: 0.9}",
    ],
)
def test_vectorised_selection_agrees_with_the_engine_row_by_row(objective: str) -> None:
    import numpy as np

    from irtgate.policies.scoring import Scored, select
    from irtgate.server.replay import _select
    from tests.policies.fakes import BASE, fake_resources

    text = BASE + (
        "decisions:\n  - name: d\n    priority: 1\n    when: {signal: probe.flag, eq: true}\n"
        f"    candidates: ['*']\n    objective: {objective}\ndefault:\n  candidates: ['*']\n"
        "  objective: {method: linear, w: 0.5}\n"
    )
    snap = compile_policy(text, "p.yaml", fake_resources())
    d = snap.decisions[0]
    rng = np.random.default_rng(1)
    n, g = 400, len(d.candidates)
    p = rng.uniform(0.2, 0.95, size=(n, g))
    cost = rng.choice([0.0005, 0.002, 0.003, 0.006, 0.01], size=(n, g))
    cost[rng.uniform(size=(n, g)) < 0.1] = np.nan  # some unknown costs
    got = _select(d, p, cost)
    for i in range(n):
        costs = tuple(None if np.isnan(c) else float(c) for c in cost[i])
        scored = Scored(d.candidates, tuple(p[i].tolist()), costs)
        try:
            want = d.candidates.index(select(d.objective, scored, "d").entry)
        except ClientError:
            want = -1
        assert got[i] == want, (i, p[i], cost[i])
