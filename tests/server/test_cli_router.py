"""`irtgate train / route / calibrate / router show`."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from irtgate.server.cli import main

TOPICS = [
    "Compute the integral of {} times x squared over the unit interval.",
    "Translate the sentence about {} into French and explain the grammar.",
    "Which planet is closest to {} in the night sky of the northern hemisphere?",
    "Write a Python function that sorts a list of {} by their length.",
]


def _write_data(
    path: Path,
    n: int = 80,
    configs: tuple[str, ...] = ("small", "large"),
    priced: tuple[str, ...] | None = None,
) -> None:
    rng = np.random.default_rng(0)
    words = ["apples", "rivers", "engines", "poems", "stars", "cities", "numbers", "birds"]
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for i in range(n):
            t = i % len(TOPICS)
            prompt = TOPICS[t].format(words[i % len(words)]) + f" (case {i})"
            # "large" is right more often, and on maths and code only "large" is right.
            scores = {c: float(rng.random() < (0.9 if c != "small" else 0.5)) for c in configs}
            if t in (0, 3):
                scores["small"] = 0.0
            rec = {
                "id": f"q{i}",
                "benchmark": "toy",
                "split": "train" if i < int(n * 0.75) else "test",
                "prompt": prompt,
                "scores": scores,
                "costs": {
                    c: (0.001 if c == "small" else 0.01)
                    for c in (priced or configs)
                    if c in configs
                },
            }
            f.write(json.dumps(rec) + "\n")


def test_router_show_prints_the_default_card(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["router", "show"]) == 0
    out = capsys.readouterr().out
    assert "configurations (strongest first" in out
    assert "ability" in out and "validation sweep" in out and "encoder  static" in out


def test_router_show_and_route_say_unknown_for_unpriced_models(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # routerdc-7models has no costs: its models are unknown, not priced like GPT-4.
    assert main(["router", "show"]) == 0
    rows = [ln.split() for ln in capsys.readouterr().out.splitlines() if "ability θ" not in ln]
    show = {r[0]: r for r in rows if r and r[0] in ("meta-llama/Meta-Llama-3-8B", "claude-v1")}
    assert show["meta-llama/Meta-Llama-3-8B"][5] == "unknown"
    assert show["claude-v1"][5] == "0.00406"
    assert main(["route", "What is 2 + 2?", "--cost-weight", "0.5"]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if "meta-llama/Meta-Llama-3-8B" in ln)
    assert line.split()[2] == "unknown" and "0.00507" not in line
    assert "an unknown cost counts as the dearest" in out


def test_route_prints_p_per_configuration_and_a_choice(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["route", "What is the capital of Australia?", "--cost-weight", "0.9"]) == 0
    out = capsys.readouterr().out
    assert "difficulty" in out and "P(correct)" in out
    assert out.count("<- choice") == 1
    assert "choice      " in out and "linear, w = 0.9" in out
    assert main(["route", "Prove that sqrt(2) is irrational.", "--target", "0.5"]) == 0
    assert "cheapest with P >= 0.5" in capsys.readouterr().out


def test_route_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["route", "hi", "--router", str(tmp_path)]) == 2
    assert "no heads.onnx" in capsys.readouterr().err
    assert main(["route", "hi", "--cost-weight", "2"]) == 2


def test_train_route_and_calibrate_on_a_small_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    monkeypatch.chdir(tmp_path)  # the embedding cache goes under ./.cache
    data = tmp_path / "toy.jsonl.gz"
    _write_data(data, priced=("small",))  # the data never prices "large"
    out = tmp_path / "router"
    assert main(["train", "--data", str(data), "--out", str(out), "--k", "2"]) == 0
    log = capsys.readouterr().out
    assert "chosen {'k': 2, 'hidden': 0}" in log
    assert (out / "heads.onnx").is_file() and (out / "router.yaml").is_file()
    card = yaml.safe_load((out / "router.yaml").read_text())
    costs = {c["name"]: c["expected_cost"] for c in card["configurations"]}
    assert costs == {"small": 0.001, "large": None}  # unknown, no stand-in price
    assert main(["route", "Compute the integral of x", "--router", str(out)]) == 0
    routed = capsys.readouterr().out
    large = next(ln for ln in routed.splitlines() if ln.startswith("  large"))
    assert "small" in routed and large.split()[2] == "unknown"

    # A third configuration, answered by a data file, added by adaptive testing.
    answers = tmp_path / "new.jsonl.gz"
    _write_data(answers, configs=("small", "large", "medium"))
    ext = tmp_path / "router-ext"
    rc = main(
        [
            "calibrate",
            "--router",
            str(out),
            "--name",
            "medium",
            "--answers",
            str(answers),
            "--max-queries",
            "20",
            "--out",
            str(ext),
            "--cost",
            "0.005",
        ]
    )
    assert rc == 0
    assert "medium: 20 questions" in capsys.readouterr().out
    assert main(["route", "Write a Python function", "--router", str(ext)]) == 0
    assert "medium" in capsys.readouterr().out
    # Without --cost the configuration's cost is unknown; the router still loads and routes.
    nocost = tmp_path / "router-nocost"
    argv = ["calibrate", "--router", str(out), "--name", "medium", "--answers", str(answers)]
    assert main([*argv, "--max-queries", "10", "--out", str(nocost)]) == 0
    capsys.readouterr()
    assert main(["route", "Write a Python function", "--router", str(nocost)]) == 0
    routed = capsys.readouterr().out
    assert "medium" in routed and "unknown" in routed and "choice" in routed
    assert main(["router", "show", str(nocost)]) == 0
    shown = capsys.readouterr().out
    assert "medium" in shown and "calibrated without retraining" in shown
    # --budget is now the reasoning budget of live mode: offline it is refused, not misread.
    assert main([*argv, "--budget", "20"]) == 2
    assert "live-mode options" in capsys.readouterr().err
    assert (
        main(["calibrate", "--router", str(out), "--name", "nope", "--answers", str(answers)]) == 2
    )
    assert "no scores for configuration 'nope'" in capsys.readouterr().err


def test_train_chooses_a_family_prior_unless_told_not_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    monkeypatch.chdir(tmp_path)
    data = tmp_path / "toy.jsonl.gz"
    _write_data(data, n=120)
    # Two benchmarks: the maths/code prompts and the others.
    with gzip.open(data, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    with gzip.open(data, "wt", encoding="utf-8") as f:
        for r in rows:
            r["benchmark"] = "hard" if r["scores"]["small"] == 0.0 else "easy"
            f.write(json.dumps(r) + "\n")
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "a"), "--k", "2"]) == 0
    log = capsys.readouterr().out
    assert "family prior {'family_blend': " in log
    card = yaml.safe_load((tmp_path / "a" / "router.yaml").read_text())
    blend = card["hyperparameters"]["family_blend"]
    # The card shows the prior exactly when cross-validation kept it.
    assert ("family_prior" in card) == (blend > 0)
    argv = ["train", "--data", str(data), "--out", str(tmp_path / "b"), "--k", "2", "--no-family"]
    assert main(argv) == 0
    assert "family prior" not in capsys.readouterr().out
    card = yaml.safe_load((tmp_path / "b" / "router.yaml").read_text())
    assert "family_prior" not in card and card["hyperparameters"]["family_blend"] == 0.0


def test_train_rejects_missing_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--data", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path)]) == 2
    assert "no such data file" in capsys.readouterr().err


def test_predict_writes_p_and_cost_per_item(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from irtgate.signals.irt.runtime import DEFAULT_ROUTER_DIR, IRTRouter

    monkeypatch.chdir(tmp_path)
    data = tmp_path / "toy.jsonl.gz"
    _write_data(data, n=12)
    out = tmp_path / "pred" / "p.jsonl"
    argv = ["predict", "--router", str(DEFAULT_ROUTER_DIR), "--data", str(data), "--out", str(out)]
    assert main(argv) == 0
    assert "12 items scored" in capsys.readouterr().out
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    router = IRTRouter.load(DEFAULT_ROUTER_DIR)
    assert [r["id"] for r in rows] == [f"q{i}" for i in range(12)]
    for r in rows:
        assert set(r["p"]) == set(r["cost"]) == set(router.configs)
        assert all(0.0 < v < 1.0 for v in r["p"].values())
    # The same P as routing one request with that prompt.
    from irtgate.signals.request import ApiKind, LLMRequest, Message
    from irtgate.signals.text import PromptText

    with gzip.open(data, "rt") as f:
        first = json.loads(f.readline())["prompt"]
    req = LLMRequest(api=ApiKind.CHAT, model="auto", messages=(Message("user", PromptText(first)),))
    pred = router.score(router.embedder().embed_request(req))
    for c in router.configs:
        assert rows[0]["p"][c] == pytest.approx(pred.p[c], abs=1e-5)
        assert rows[0]["cost"][c] == pytest.approx(router.expected_cost[c])
    assert main(["predict", "--router", str(tmp_path), "--data", str(data), "--out", str(out)]) == 2
    argv = ["predict", "--router", str(DEFAULT_ROUTER_DIR), "--data", "nope", "--out", "x"]
    assert main(argv) == 2
