"""`irtgate policy diff`: changes in the policy's own terms."""

from __future__ import annotations

from pathlib import Path

import pytest

from irtgate.policies.diff import diff
from irtgate.policies.loader import parse_yaml, validate_schema
from irtgate.policies.spec import Policy
from irtgate.server.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "policies" / "examples"
BASE = """\
version: 1
aliases: [auto]
upstreams: [local, cloud]
catalog:
  - {name: small, model: s, upstream: local, local: true, cost: 0.001}
  - {name: big, model: b, upstream: cloud, cost: 0.01}
signals:
  length: {}
decisions:
  - name: short
    priority: 20
    when:
      all:
        - {signal: length.tokens, lt: 2000}
        - {not: {signal: length.tokens, lt: 10}}
    candidates: [small]
    objective: {method: linear, w: 0.5}
  - name: long
    priority: 10
    when: {signal: length.tokens, gte: 2000}
    candidates: ["*"]
    objective: {method: linear, w: 0.9, max_cost: 0.05}
default:
  candidates: [small, big]
  objective: {method: target, target: 0.7}
"""


def _policy(text: str) -> Policy:
    return validate_schema(parse_yaml(text, "p.yaml"))


def _lines(old: str, new: str) -> list[str]:
    return [str(c) for c in diff(_policy(old), _policy(new))]


def test_a_policy_equals_itself_however_it_is_written() -> None:
    assert _lines(BASE, BASE) == []
    # Flow style, comments and key order are not changes.
    other = BASE.replace(
        "  - {name: big, model: b, upstream: cloud, cost: 0.01}",
        "  # the cloud model\n  - name: big\n    cost: 0.01\n    upstream: cloud\n    model: b",
    )
    assert other != BASE
    assert _lines(BASE, other) == []


def test_thresholds_priorities_candidates_and_objectives() -> None:
    new = (
        BASE.replace("lt: 2000}", "lt: 3000}")
        .replace("lt: 10}}", "lt: 5}}")
        .replace("priority: 10", "priority: 30")
        .replace("candidates: [small, big]", "candidates: [big]")
        .replace("w: 0.9, max_cost: 0.05", "w: 0.8")
    )
    assert _lines(BASE, new) == [
        "decision short: threshold length.tokens lt 2000 -> 3000",
        "decision short: threshold length.tokens lt 10 -> 5",
        "decision long: priority 10 -> 30",
        "decision long: objective linear, w 0.9, max_cost 0.05 -> linear, w 0.8",
        "decisions: tried in a new order: long, short",
        "default: candidates removed: small",
    ]


def test_added_removed_and_rewritten() -> None:
    new = BASE.replace("  - name: long", "  - name: longer").replace(
        "{signal: length.tokens, gte: 2000}", "{any: [{signal: length.tokens, gte: 2000}]}"
    )
    new = new.replace("cost: 0.01}", "cost: 0.02, local: true}").replace(
        "aliases: [auto]", "aliases: [auto, best]"
    )
    assert _lines(BASE, new) == [
        "decision long: removed",
        "decision longer: added",
        "catalog big: cost 0.01 -> 0.02",
        "catalog big: local False -> True",
        "aliases: best added",
    ]
    rewritten = BASE.replace(
        "{signal: length.tokens, gte: 2000}", "{any: [{signal: length.tokens, gte: 2000}]}"
    )
    assert _lines(BASE, rewritten) == [
        "decision long: condition rewritten: (length.tokens gte 2000) -> (length.tokens gte 2000)"
    ]


def test_cli_diffs_the_shipped_examples(capsys: pytest.CaptureFixture[str]) -> None:
    a, b = EXAMPLES / "cost-saver.yaml", EXAMPLES / "quality-first.yaml"
    assert main(["policy", "diff", str(a), str(a)]) == 0
    assert capsys.readouterr().out.strip() == "no changes"
    assert main(["policy", "diff", str(a), str(b)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1].endswith(f"{len(out) - 1} changes")
    assert "catalog mistral-7b: removed" in out


def test_cli_reports_an_invalid_policy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BASE.replace("priority: 20", "priority: high"))
    assert main(["policy", "diff", str(EXAMPLES / "cost-saver.yaml"), str(bad)]) == 1
    assert f"{bad}:11: decisions[0].priority" in capsys.readouterr().err
