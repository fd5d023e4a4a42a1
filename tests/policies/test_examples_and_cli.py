"""Shipped policies pass `policy check`; the schema file is current; the CLI commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from irtgate.policies.compile import compile_policy
from irtgate.policies.errors import PolicyError
from irtgate.policies.loader import load_source
from irtgate.policies.runtime import default_resources
from irtgate.policies.schema import SCHEMA_FILE, schema_text
from irtgate.server.cli import main
from irtgate.signals.base import Resources
from tests.policies.fakes import alias_bomb

POLICIES = Path(__file__).resolve().parents[2] / "policies"
SHIPPED = [POLICIES / "default.yaml", *sorted((POLICIES / "examples").glob("*.yaml"))]


@pytest.fixture(scope="module")
def resources() -> Resources:
    res = default_resources()
    if res.router is None:
        pytest.skip("the default router is not shipped in this checkout")
    return res


def test_there_are_the_four_examples() -> None:
    names = {p.stem for p in SHIPPED}
    assert {"default", "cost-saver", "quality-first", "sensitive-local", "long-context"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_policy_passes_check(path: Path, resources: Resources) -> None:
    label, text = load_source(path)
    if "domain:" in text and not _domain_head_shipped():
        pytest.skip("the domain head is not trained in this checkout (signals/domain_train)")
    snap = compile_policy(text, label, resources)
    assert snap.decisions and snap.catalog
    assert resources.router is not None
    assert all(e.router_config in resources.router.configs for e in snap.catalog.values())
    assert snap.warnings == ()  # every candidate a shipped policy weighs by cost has a cost


def _domain_head_shipped() -> bool:
    try:
        compile_policy(
            (POLICIES / "examples" / "quality-first.yaml").read_text(), "q", default_resources()
        )
    except PolicyError as e:
        return "no trained domain head" not in str(e)
    return True


def test_schema_file_is_current() -> None:
    assert SCHEMA_FILE.read_text() == schema_text(), (
        "regenerate: irtgate policy schema > policies/schema.json"
    )
    schema = json.loads(schema_text())
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"upstreams", "catalog", "default"}
    cond = schema["$defs"]["Condition"]["properties"]
    assert {"all", "any", "not", "signal", "in", "present"} <= set(cond)


def test_cli_check_reports_all_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: 1\nupstreams: [a]\ncatalog:\n  - {name: x, model: m, upstream: b}\n"
        "decisions:\n  - name: d\n    when: {signal: domian.label, eq: math}\n"
        "    candidates: [x, y]\n    objective: {method: linear, w: 0.5}\n"
        "default:\n  candidates: [x]\n  objective: {method: linear, w: 0.5}\n"
    )
    assert main(["policy", "check", str(bad), "--no-router"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"{bad}:4: catalog[0].upstream: unknown upstream 'b' (upstreams: a)",
        f"{bad}:7: decisions[0].when.signal: unknown signal 'domian'",
        f"{bad}:8: decisions[0].candidates[1]: unknown catalog entry 'y'",
        f"{bad}: 3 errors",
    ]


def test_cli_check_refuses_an_alias_bomb_and_a_huge_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # issue 10: `policy check` died of MemoryError on a 0.5 KB file
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(alias_bomb())
    assert main(["policy", "check", str(bomb), "--no-router"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"{bomb}:3: l1[0]: YAML aliases (*name) are not allowed; write the value out"
    huge = tmp_path / "huge.yaml"
    huge.write_bytes(b"#" * (2 * 1024 * 1024))
    assert main(["policy", "check", str(huge), "--no-router"]) == 1
    assert "larger than" in capsys.readouterr().err


def test_cli_check_ok_and_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["policy", "check", str(POLICIES / "examples" / "long-context.yaml"), "--no-router"])
        == 0
    )
    assert (
        "ok (5 configurations, 3 decisions + default, signals: length)" in capsys.readouterr().out
    )
    assert main(["policy", "schema"]) == 0
    assert json.loads(capsys.readouterr().out)["title"] == "Policy"


def test_cli_check_warns_about_unused_signals(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = tmp_path / "p.yaml"
    p.write_text(
        "version: 1\nupstreams: [a]\ncatalog:\n  - {name: x, model: m, upstream: a}\n"
        "signals:\n  language: {}\n"
        "default:\n  candidates: [x]\n  objective: {method: linear, w: 0.5}\n"
    )
    assert main(["policy", "check", str(p), "--no-router"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{p}:6: signals.language: warning: not used by any decision"
    assert out[1].endswith("ok (1 configurations, 0 decisions + default, signals: none)")


def test_cli_explain(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "p.yaml"
    p.write_text(
        "version: 1\nupstreams: [a]\ncatalog:\n"
        "  - {name: short, model: m1, upstream: a, cost: 0.001}\n"
        "  - {name: long, model: m2, upstream: a, cost: 0.01}\n"
        "signals:\n  length: {}\n"
        "decisions:\n  - name: long-input\n    when: {signal: length.tokens, gt: 20}\n"
        "    candidates: [long]\n    objective: {method: linear, w: 0.5}\n"
        "default:\n  candidates: ['*']\n  objective: {method: linear, w: 0.5}\n"
    )
    assert main(["explain", "--policy", str(p), "--no-router", "hello there"]) == 0
    out = capsys.readouterr().out
    assert "decision  default" in out and "* short" in out
    assert "length.tokens" in out and "cost=$0.001000" in out
    long_text = "word " * 100
    assert main(["explain", "--policy", str(p), "--no-router", long_text]) == 0
    out = capsys.readouterr().out
    assert "decision  long-input" in out
    assert "why     length.tokens=" in out and "gt 20: yes" in out
    assert "word word" not in out  # the prompt is never echoed
    assert main(["explain", "--policy", str(p), "--no-router", "--model", "gpt-9", "x"]) == 1
    assert "refused: 400 model_not_found" in capsys.readouterr().out


def test_the_example_in_the_docs_passes_check(resources: Resources) -> None:
    doc = (POLICIES.parent / "docs" / "policies.md").read_text()
    block = doc.split("## A complete example", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    snap = compile_policy(block, "docs/policies.md", resources)
    assert [d.name for d in snap.decisions] == ["personal-data", "hard-math"]
