"""`policy check` flags objectives that weigh cost over candidates of unknown cost."""

from __future__ import annotations

from pathlib import Path

import pytest

from irtgate.policies.compile import compile_policy
from irtgate.server.cli import main
from irtgate.signals.base import Resources
from tests.policies.fakes import BASE, fake_resources

UNPRICED_SMALL = {"small": None, "mid": 0.001, "big": 0.01}


def _warnings(objective: str, res: Resources | None, base: str = BASE) -> list[str]:
    text = base + f"default:\n  candidates: ['*']\n  objective: {objective}\n"
    return [str(w) for w in compile_policy(text, "p.yaml", res).warnings]


@pytest.mark.parametrize(
    "objective",
    [
        "{method: linear, w: 0.5}",
        "{method: chebyshev, w: 0.9}",
        "{method: target, target: 0.8}",
        "{method: linear, w: 1.0, max_cost: 0.05}",
    ],
)
def test_an_objective_weighing_cost_over_an_unpriced_candidate_is_flagged(objective: str) -> None:
    got = _warnings(objective, fake_resources(cost=UNPRICED_SMALL))
    assert len(got) == 1
    assert got[0].startswith("p.yaml:12: default.objective: warning: the objective weighs cost")
    assert "the cost of 'small' is unknown" in got[0] and "'mid'" not in got[0]


def test_quality_only_or_priced_candidates_are_not_flagged() -> None:
    assert _warnings("{method: linear, w: 1.0}", fake_resources(cost=UNPRICED_SMALL)) == []
    assert _warnings("{method: linear, w: 0.5}", fake_resources()) == []
    priced = BASE.replace("router_config: small}", "router_config: small, cost: 0.002}")
    assert _warnings("{method: linear, w: 0.5}", fake_resources(cost=UNPRICED_SMALL), priced) == []


def test_all_unknown_says_p_alone_decides() -> None:
    got = _warnings("{method: linear, w: 0.5}", fake_resources(cost={"small": None}))
    assert "'small', 'mid', 'big' is unknown" in got[0] and "P alone decides" in got[0]


def test_without_a_router_only_entries_with_nothing_to_price_them_count() -> None:
    assert _warnings("{method: linear, w: 0.5}", None) == []  # the card cannot be read
    bare = BASE.replace(", router_config: small}", "}")
    got = _warnings("{method: linear, w: 0.5}", None, bare)
    assert len(got) == 1 and "the cost of 'small' is unknown" in got[0]


def test_cli_check_prints_the_warning_and_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = tmp_path / "p.yaml"
    p.write_text(
        "version: 1\nupstreams: [a]\ncatalog:\n"
        "  - {name: x, model: m1, upstream: a}\n"
        "  - {name: y, model: m2, upstream: a, cost: 0.01}\n"
        "default:\n  candidates: [x, y]\n  objective: {method: linear, w: 0.5}\n"
    )
    assert main(["policy", "check", str(p), "--no-router"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{p}:8: default.objective: warning: the objective weighs cost")
    assert "'x'" in out[0] and "'y'" not in out[0]
    assert out[1].endswith("ok (2 configurations, 0 decisions + default, signals: none)")


def test_cli_explain_shows_an_unknown_cost_as_unknown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = tmp_path / "p.yaml"
    p.write_text(
        "version: 1\naliases: [auto]\nupstreams: [a]\ncatalog:\n"
        "  - {name: x, model: m1, upstream: a}\n"
        "  - {name: y, model: m2, upstream: a, cost: 0.01}\n"
        "default:\n  candidates: [x, y]\n  objective: {method: linear, w: 0.5}\n"
    )
    assert main(["explain", "--policy", str(p), "--no-router", "hello"]) == 0
    lines = capsys.readouterr().out.splitlines()
    # Without a router P is 0 for both; x's unknown cost counts as the dearest, so y wins.
    assert any(ln.split()[:2] == ["x", "P=?"] and ln.endswith("cost=unknown") for ln in lines)
    assert any(ln.split()[:2] == ["*", "y"] and ln.endswith("cost=$0.010000") for ln in lines)
