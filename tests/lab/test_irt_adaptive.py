"""Adaptive testing: estimating a new configuration's ability from few chosen questions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from irtgate.lab.irt.adaptive import (
    AdaptiveError,
    adaptive_test,
    estimate_map,
    prior_from,
)
from irtgate.lab.irt.irt_math import sigmoid


def _pool(n: int = 2000, k: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = np.abs(rng.normal(1.0, 0.6, size=(n, k)))
    b = rng.normal(0.0, 1.5, size=n)
    return a, b


def test_map_with_a_flat_prior_matches_the_likelihood_optimum() -> None:
    # One dimension, many answers at a known ability: the MAP with a tiny prior precision
    # must land on the true ability (consistency), and its variance must shrink with n.
    rng = np.random.default_rng(1)
    a = np.abs(rng.normal(1.0, 0.3, size=(4000, 1)))
    b = rng.normal(0.0, 1.0, size=4000)
    y = (rng.random(4000) < sigmoid(a[:, 0] * 0.7 - b)).astype(float)
    theta, cov = estimate_map(a, b, y, np.zeros(1), np.eye(1) * 1e-6)
    assert theta[0] == pytest.approx(0.7, abs=0.08)
    _, cov_small = estimate_map(a[:100], b[:100], y[:100], np.zeros(1), np.eye(1) * 1e-6)
    assert cov[0, 0] < cov_small[0, 0] / 10


def test_adaptive_recovers_a_known_ability_better_than_random() -> None:
    a, b = _pool()
    rng = np.random.default_rng(2)
    known = rng.normal(0.0, 1.0, size=(12, 3))  # existing configurations
    mu0, cov0 = prior_from(known)
    errs: dict[str, list[float]] = {"fisher": [], "random": []}
    for trial in range(6):
        truth = rng.normal(0.0, 1.0, size=3)
        y = (rng.random(len(b)) < sigmoid(a @ truth - b)).astype(float)
        for sel in errs:
            res = adaptive_test(a, b, y, mu0, cov0, budget=60, select=sel, seed=trial)
            assert res.n_asked == 60
            errs[sel].append(float(np.linalg.norm(res.theta - truth)))
    assert np.mean(errs["fisher"]) < np.mean(errs["random"])
    assert np.mean(errs["fisher"]) < 0.9


def test_stops_when_the_posterior_is_tight_and_skips_unanswered_items() -> None:
    a, b = _pool(500, 2)
    rng = np.random.default_rng(3)
    y = (rng.random(len(b)) < sigmoid(a @ np.array([0.5, -0.3]) - b)).astype(float)
    y[1::2] = np.nan  # the new configuration never answered the odd items
    res = adaptive_test(a, b, y, np.zeros(2), np.eye(2), budget=250, sd_tol=0.4)
    assert res.posterior_sd < 0.4
    assert res.n_asked < 250
    assert res.sd_trace[-1] < 0.4 <= res.sd_trace[-2]
    assert all(i % 2 == 0 for i in res.asked)


def test_bad_input() -> None:
    a, b = _pool(10, 2)
    with pytest.raises(AdaptiveError, match="no item"):
        adaptive_test(a, b, np.full(10, np.nan), np.zeros(2), np.eye(2))
    with pytest.raises(AdaptiveError, match="outside"):
        adaptive_test(a, b, np.full(10, 3.0), np.zeros(2), np.eye(2))
    with pytest.raises(AdaptiveError, match="select"):
        adaptive_test(a, b, np.ones(10), np.zeros(2), np.eye(2), select="best")


@pytest.mark.slow
def test_held_out_configuration_on_real_data(shared_data: Path, tmp_path: Path) -> None:
    """Hold one configuration out of training, calibrate it from 60 of its real answers,
    and compare with the estimate from all of its ~5,900 training answers (same heads)."""
    from irtgate.lab.encoders.cache import embed_corpus
    from irtgate.lab.irt.data import load_routing_data, routerdc_protocol
    from irtgate.lab.irt.model import IRTModel
    from irtgate.lab.irt.train import auc

    data = load_routing_data([shared_data / "routerdc-7models.jsonl.gz"])
    train, test, _ = routerdc_protocol(data)
    X = embed_corpus("static", list(train.prompts), cache_dir=tmp_path, progress=False)
    Xt = embed_corpus("static", list(test.prompts), cache_dir=tmp_path, progress=False)
    g = data.configs.index("cognitivecomputations/dolphin-2.9-llama3-8b")
    rest = [i for i in range(len(data.configs)) if i != g]
    part = IRTModel(k=8, knn_p_blend=0.0, seed=0)
    part.fit(X, train.scores[:, rest])
    a, b = part.item_params(X)
    mu0, cov0 = prior_from(part.abilities)
    y = train.scores[:, g]
    theta_all, _ = estimate_map(a, b, y, mu0, np.linalg.inv(cov0))
    at, bt = part.item_params(Xt)
    yt = test.scores[:, g : g + 1]
    p_all = sigmoid(at @ theta_all - bt)
    res = adaptive_test(a, b, y, mu0, cov0, budget=60)
    assert res.n_asked == 60
    p_cat = sigmoid(at @ res.theta - bt)
    assert auc(p_cat[:, None], yt) > auc(p_all[:, None], yt) - 0.02
    assert np.corrcoef(p_cat, p_all)[0, 1] > 0.9
    assert np.abs(p_cat - p_all).mean() < 0.08
