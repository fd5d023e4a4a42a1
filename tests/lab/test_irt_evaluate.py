"""The evaluation runner, its reports and ``irtgate eval`` on small synthetic data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from irtgate.lab.irt import evaluate as ev
from irtgate.lab.irt.baselines import KNNRouter
from irtgate.lab.irt.data import RoutingData, load_routing_data
from irtgate.lab.irt.report import summary_rows, write_reports


def _make_file(path: Path, n: int, configs: list[str], seed: int, *, costs: bool = True) -> Path:
    """Item i has a hidden feature x; config g is right when x falls in its band, and
    dearer configs are right more often. Prompts encode x so a fake embedding can read it."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        x = float(rng.random())
        scores = {c: float(x < (g + 1) / len(configs) + 0.1) for g, c in enumerate(configs)}
        row: dict[str, Any] = {
            "id": f"q{i}",
            "benchmark": ["alpha", "beta"][i % 2],
            "prompt": f"{x:.6f}",
            "scores": scores,
        }
        if i % 10 == 0:
            row["split"] = "test"
        if costs:
            row["costs"] = {c: 0.001 * 10**g for g, c in enumerate(configs)}
        rows.append(json.dumps(row))
    path.write_text("\n".join(rows) + "\n")
    return path


def _embed(d: RoutingData) -> np.ndarray:
    x = np.array([float(p) for p in d.prompts])
    return np.stack([np.cos(3 * x), np.sin(3 * x), x], axis=1)


class Perfect:
    """Predicts the true score of every configuration (an upper bound for a predictor)."""

    name = "perfect"

    def __init__(self, configs: int) -> None:
        self.g = configs

    def fit(self, X: np.ndarray, Y: np.ndarray, costs: np.ndarray | None) -> None:
        assert Y.shape[1] == self.g and costs is not None and costs.shape == Y.shape

    def predict(self, X: np.ndarray) -> np.ndarray:
        x = X[:, 2]
        return np.stack([(x < (g + 1) / self.g + 0.1) for g in range(self.g)], 1).astype(float)


@pytest.fixture()
def three(tmp_path: Path) -> RoutingData:
    return load_routing_data([_make_file(tmp_path / "d.jsonl", 400, ["s", "m", "l"], 0)])


def test_report_has_every_method_and_metric(three: RoutingData) -> None:
    train, test, _ = ev.choose_split(three, "test")
    assert isinstance(Perfect(3), ev.Method)
    rep = ev.evaluate(
        train, test, _embed(train), _embed(test), [Perfect(3), KNNRouter(k=10)], ws=(0, 0.5, 1)
    )
    json.dumps(rep, allow_nan=False)  # strictly valid JSON: no NaN/inf
    m = rep["methods"]
    assert set(m) >= {"perfect", "knn", "oracle", "random", "zero-router", "single:l"}
    for name in ("perfect", "knn"):
        for key in (
            "aiq",
            "aiq_linear",
            "aiq_chebyshev",
            "aiq_target",
            "routerdc_accuracy",
            "max_accuracy",
            "cost_to_reach_best_single",
            "accuracy_within_budget",
            "difficulty_spearman",
        ):
            assert key in m[name], (name, key)
        assert [p[0] for p in m[name]["sweep"]["linear"]] == [0, 0.5, 1]
    # The dearest config is always right here: it is the best single; a perfect predictor
    # reaches its accuracy far cheaper and matches the oracle's argmax accuracy.
    assert rep["best_single"]["config"] == "l" and rep["best_single"]["accuracy"] == 1.0
    assert m["perfect"]["routerdc_accuracy"] == pytest.approx(100.0)
    assert m["perfect"]["cost_to_reach_best_single"] < 0.5 * rep["best_single"]["cost"]
    assert m["perfect"]["aiq"] > m["zero-router"]["aiq"] > m["random"]["aiq"]
    # RouterBench's AIQ counts area only from a router's cheapest point: the oracle is one
    # point (c, 1.0), extended flat to the dearest cost of any router (config l here).
    c_or, a_or = m["oracle"]["points"][0]
    c_max = m["single:l"]["points"][0][0]
    assert a_or == 1.0 and m["oracle"]["aiq"] == pytest.approx((c_max - c_or) / c_max)
    # Difficulty: 1 - mean P tracks the share of configs that fail.
    assert m["perfect"]["difficulty_spearman"] > 0.9
    assert "apgr" not in m["perfect"]  # only for two-configuration data


def test_w_zero_picks_cheapest_and_w_one_the_most_likely(three: RoutingData) -> None:
    train, test, _ = ev.choose_split(three, "test")
    rep = ev.evaluate(train, test, _embed(train), _embed(test), [Perfect(3)], ws=(0.0, 1.0))
    (w0, c0, _), (w1, c1, a1) = rep["methods"]["perfect"]["sweep"]["linear"]
    assert (w0, w1) == (0.0, 1.0)
    assert c0 == pytest.approx(rep["methods"]["single:s"]["points"][0][0])  # all cheapest
    assert a1 == 1.0 and c1 < rep["best_single"]["cost"]  # ties go to the cheaper config


def test_two_configs_get_routellm_metrics(tmp_path: Path) -> None:
    d = load_routing_data([_make_file(tmp_path / "p.jsonl", 600, ["weak", "strong"], 1)])
    train, test, _ = ev.choose_split(d, "test")
    rep = ev.evaluate(train, test, _embed(train), _embed(test), [Perfect(2)], ws=(0, 1))
    assert rep["pair"] == {"weak": "weak", "strong": "strong"}
    m = rep["methods"]
    assert m["perfect"]["apgr"] > 0.8 and m["perfect"]["cpt50"] < 50
    assert m["random"]["apgr"] == pytest.approx(0.5, abs=0.2)
    assert m["zero-router"]["apgr"] == 0.5


def test_without_costs_all_configs_cost_the_same(tmp_path: Path) -> None:
    d = load_routing_data([_make_file(tmp_path / "n.jsonl", 300, ["a", "b", "c"], 2, costs=False)])
    train, test, _ = ev.choose_split(d, "test")
    rep = ev.evaluate(train, test, _embed(train), _embed(test), [Perfect(3)], ws=(0, 0.5, 1))
    assert rep["cost_source"].startswith("none")
    sweep = rep["methods"]["perfect"]["sweep"]["chebyshev"]
    assert {p[1] for p in sweep} == {float(len(test))}  # one unit per query
    assert all(p[2] == 1.0 for p in sweep)  # cost plays no part: argmax P for every w


def test_choose_split_modes(three: RoutingData) -> None:
    tr, te, how = ev.choose_split(three, "ood", holdout=["beta"])
    assert "beta" in how
    assert set(te.benchmarks.tolist()) == {"beta"} and "beta" not in set(tr.benchmarks.tolist())
    with pytest.raises(ValueError, match="holdout"):
        ev.choose_split(three, "ood")
    with pytest.raises(ValueError):
        ev.choose_split(three, "validation")
    with pytest.raises(ValueError, match="RouterDC"):
        ev.choose_split(three, "test", protocol="routerdc")


def test_write_reports(three: RoutingData, tmp_path: Path) -> None:
    train, test, _ = ev.choose_split(three, "test")
    rep = ev.evaluate(train, test, _embed(train), _embed(test), [Perfect(3)], ws=(0, 1))
    files = write_reports(rep, tmp_path / "out")
    j, md, png = files
    assert json.loads(j.read_text())["methods"]["perfect"]["kind"] == "predictor"
    assert "| perfect |" in md.read_text()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    header, rows = summary_rows(rep)
    assert header[0] == "method" and rows[0][0] == "perfect"  # predictors first


def test_cli_eval_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from irtgate.server.cli import main

    f = _make_file(tmp_path / "d.jsonl", 300, ["s", "m", "l"], 3)
    monkeypatch.setattr(
        ev, "embed_items", lambda enc, items, progress=True: [_embed(d) for d in items]
    )
    monkeypatch.setattr(ev, "default_methods", lambda **kw: [KNNRouter(k=5)])
    out = tmp_path / "rep"
    assert main(["eval", "--data", str(f), "--out", str(out), "--encoder", "static"]) == 0
    text = capsys.readouterr().out
    assert "knn" in text and "oracle" in text
    assert {p.name for p in out.iterdir()} == {"report.json", "report.md", "report.png"}


def test_cli_eval_bad_data_names_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from irtgate.server.cli import main

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "benchmark": "b", "prompt": "p", "scores": {"m": 2}}\n')
    assert main(["eval", "--data", str(bad), "--out", str(tmp_path / "o")]) == 2
    out = capsys.readouterr().out
    assert "line 1" in out and "scores.m" in out


def test_price_table_prices_data_without_costs(tmp_path: Path) -> None:
    d = load_routing_data([_make_file(tmp_path / "n.jsonl", 300, ["a", "b", "c"], 4, costs=False)])
    train, test, _ = ev.choose_split(d, "test")
    prices = {"a": (1.0, 1.0), "b": (10.0, 10.0), "c": (100.0, 100.0)}
    rep = ev.evaluate(
        train,
        test,
        _embed(train),
        _embed(test),
        [Perfect(3)],
        ws=(0, 1),
        prices=prices,
        output_tokens=100,
    )
    assert rep["cost_source"] == "data"
    # 8-character prompts = 2 input tokens: (2 * 1 + 100 * 1) / 1e6 for config a.
    assert rep["expected_cost"]["a"] == pytest.approx(102 / 1e6)
    assert rep["expected_cost"]["c"] == pytest.approx(100 * 102 / 1e6)
    (_, c0, _), (_, c1, _) = rep["methods"]["perfect"]["sweep"]["linear"]
    assert c0 == pytest.approx(len(test) * 102 / 1e6) and c1 > c0


def test_cli_rejects_a_bad_price_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from irtgate.server.cli import main

    f = _make_file(tmp_path / "d.jsonl", 50, ["s", "m"], 5)
    bad = tmp_path / "prices.yaml"
    bad.write_text("s: [1, 2]\nm: cheap\n")
    code = main(["eval", "--data", str(f), "--prices", str(bad), "--out", str(tmp_path / "o")])
    assert code != 0
    cap = capsys.readouterr()
    assert "'m' must be" in cap.err + cap.out


class FakeIRT(Perfect):
    """Perfect predictions plus IRT item parameters whose difficulty is the hidden x."""

    name = "fake-irt"
    abilities = np.array([[1.0], [2.0], [3.0]])

    def item_params(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.ones((len(X), 1)), X[:, 2] * 5.0


def test_irt_difficulty_is_correlated_with_failures(three: RoutingData) -> None:
    train, test, _ = ev.choose_split(three, "test")
    rep = ev.evaluate(train, test, _embed(train), _embed(test), [FakeIRT(3)], ws=(1,))
    m = rep["methods"]["fake-irt"]
    # Higher x fails more configurations (config g is right for x < (g + 1) / 3 + 0.1).
    assert m["difficulty_spearman_irt"] > 0.9


def test_shipped_router_is_used_as_is() -> None:
    from irtgate.signals.irt.runtime import DEFAULT_ROUTER_DIR, IRTRouter

    if not (DEFAULT_ROUTER_DIR / "heads.onnx").is_file():
        pytest.skip("no default router shipped yet")
    r = IRTRouter.load(DEFAULT_ROUTER_DIR)
    configs = list(r.configs[:3])[::-1]
    m = ev.ShippedRouter(DEFAULT_ROUTER_DIR, configs)
    X = np.random.default_rng(0).normal(size=(4, r.dim)).astype(np.float32)
    m.fit(X, np.zeros((4, 3)), None)  # no-op
    P = m.predict(X)
    np.testing.assert_allclose(P, r.predict_batch(X)[2][:, [2, 1, 0]], rtol=1e-6)
    with pytest.raises(ValueError, match="does not know"):
        ev.ShippedRouter(DEFAULT_ROUTER_DIR, ["no-such-model"])


@pytest.mark.shared_data
def test_fixed_routers_reproduce_the_data_readme_figures(shared_data: Path) -> None:
    import warnings

    from irtgate.lab.irt.data import routerdc_protocol, train_test_split

    d = load_routing_data([shared_data / "routerdc-7models.jsonl.gz"])
    train, test_id, test_ood = routerdc_protocol(d)
    for test, oracle, best in ((test_id, 77.52, 54.56), (test_ood, 70.34, 43.95)):
        z = np.zeros((len(train), 1)), np.zeros((len(test), 1))
        m = ev.evaluate(train, test, *z, [], ws=(1,))["methods"]
        assert m["oracle"]["routerdc_accuracy"] == pytest.approx(oracle, abs=0.005)
        assert m["single:cognitivecomputations/dolphin-2.9-llama3-8b"][
            "routerdc_accuracy"
        ] == pytest.approx(best, abs=0.005)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        arc = load_routing_data([shared_data / "routerbench-arc.jsonl.gz"])
    tr, te = train_test_split(arc)
    rep = ev.evaluate(tr, te, np.zeros((len(tr), 1)), np.zeros((len(te), 1)), [], ws=(1,))
    best_single = rep["best_single"]
    assert best_single["config"] == "gpt-4-1106-preview"
    assert best_single["accuracy"] == pytest.approx(0.944, abs=5e-4)
    assert best_single["cost"] == pytest.approx(2.25, abs=0.005)
    oc, oa = rep["methods"]["oracle"]["points"][0]
    assert oa == pytest.approx(0.984, abs=5e-4) and oc == pytest.approx(0.10, abs=0.005)
    mc, ma = rep["methods"]["single:mistralai/mistral-7b-chat"]["points"][0]
    assert ma == pytest.approx(0.661, abs=5e-4) and mc == pytest.approx(0.045, abs=5e-4)
