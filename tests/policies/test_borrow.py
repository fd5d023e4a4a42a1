"""Catalog entries that use another configuration's P are named in policy check, explain and
router show --policy."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from irtgate.policies.borrow import borrowed_p
from irtgate.policies.spec import CatalogEntry
from irtgate.server.cli import main

REPO = Path(__file__).resolve().parents[2]
DEFAULT_POLICY = REPO / "policies" / "default.yaml"


def _entry(name: str, rc: str, budget: str | None = None) -> CatalogEntry:
    fam = "openai" if budget else "none"
    return CatalogEntry.model_validate(
        {
            "name": name,
            "model": "m",
            "upstream": "u",
            "router_config": rc,
            "family": fam,
            "budget": budget,
        }
    )


def _router(*cfgs: dict[str, Any]) -> Any:
    return SimpleNamespace(card={"configurations": list(cfgs)})


def test_a_budget_entry_on_the_base_models_configuration_borrows() -> None:
    router = _router({"name": "base"})
    entries = [_entry("base", "base"), _entry("base@high", "base", "high")]
    got = borrowed_p(entries, router)
    assert list(got) == ["base@high"] and "'base'" in got["base@high"]
    # Alone on the configuration, nothing says which budget it was measured at.
    assert borrowed_p([_entry("base@high", "base", "high")], router) == {}


def test_a_configuration_calibrated_at_a_budget_is_owned_by_that_budget() -> None:
    router = _router(
        {"name": "base"},
        {"name": "base@high", "budget": "high", "calibration": {"mode": "live"}},
    )
    own = _entry("base@high", "base@high", "high")
    assert borrowed_p([own, _entry("base", "base")], router) == {}
    other = _entry("base@low", "base@high", "low")
    assert "measured at budget high" in borrowed_p([own, other], router)["base@low"]
    # Calibrated without a budget, it is not the high budget's P either.
    router = _router({"name": "plain", "calibration": {"mode": "live"}})
    got = borrowed_p([_entry("plain@high", "plain", "high")], router)
    assert "without a reasoning budget" in got["plain@high"]


POLICY = """
version: 1
aliases: [auto]
upstreams: [cloud]
catalog:
  - {name: gpt-4, model: gpt-4-1106-preview, upstream: cloud, router_config: gpt-4-1106-preview}
  - {name: gpt-4@high, model: gpt-4-1106-preview, upstream: cloud, family: openai,
     budget: high, router_config: gpt-4-1106-preview, cost: 0.02}
signals:
  difficulty: {}
default:
  candidates: ["*"]
  objective: {method: linear, w: 0.9}
"""


def test_the_cli_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The default policy's gpt-4@high uses gpt-4's P.
    assert main(["policy", "check", str(DEFAULT_POLICY)]) == 0
    out = capsys.readouterr().out
    assert "catalog entry 'gpt-4@high' borrows its P" in out and ": ok (" in out
    assert main(["router", "show", "--policy", str(DEFAULT_POLICY)]) == 0
    out = capsys.readouterr().out
    assert "gpt-4@high @ openai:high -> gpt-4-1106-preview  <- borrowed" in out
    assert "gpt-4 -> gpt-4-1106-preview\n" in out
    policy = tmp_path / "p.yaml"
    policy.write_text(POLICY)
    assert main(["explain", "What is 2 + 2?", "--policy", str(policy)]) == 0
    lines = capsys.readouterr().out.splitlines()
    high = next(line for line in lines if "gpt-4@high" in line and "P=" in line)
    assert "(borrowed: P of router configuration 'gpt-4-1106-preview'" in high
    base = next(line for line in lines if " gpt-4 " in line and "P=" in line)
    assert "borrowed" not in base
