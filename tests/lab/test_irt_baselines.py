"""Baseline routers: hand-checked fixed routers, and learners on a synthetic task."""

from __future__ import annotations

import numpy as np
import pytest

from irtgate.lab.irt.baselines import (
    KNNRouter,
    LogisticRouter,
    MFRouter,
    MLPRouter,
    oracle_choice,
    random_choice,
    single_points,
    zero_router_points,
)


def test_single_points_and_oracle() -> None:
    scores = np.array([[1.0, 1.0, 0.0], [0.0, np.nan, 1.0], [0.0, 0.0, 0.0], [np.nan, 0.5, 0.2]])
    cost = np.array([[1.0, 2.0, 3.0]] * 4)
    pts = single_points(scores, cost)
    np.testing.assert_allclose(pts, [(4.0, 0.25), (8.0, 0.375), (12.0, 0.3)])  # unknown: 0
    # Item 0: tie of 0 and 1 -> cheaper 0; item 1: 2 (NaN never wins); item 2: all 0 ->
    # cheapest; item 3: 1 (0.5 beats 0.2, NaN ignored).
    assert oracle_choice(scores, cost).tolist() == [0, 2, 0, 1]
    allnan = np.full((1, 3), np.nan)
    assert oracle_choice(allnan, np.array([[3.0, 1.0, 2.0]])).tolist() == [1]


def test_random_choice_is_seeded_and_covers_all() -> None:
    a = random_choice(1000, 4, seed=1)
    assert np.array_equal(a, random_choice(1000, 4, seed=1))
    assert set(a.tolist()) == {0, 1, 2, 3}


def test_zero_router_lies_on_the_single_config_hull() -> None:
    # Singles: (1, .5), (2, .55) under the chord, (4, .9), (5, .8) past the top.
    singles = [(1.0, 0.5), (2.0, 0.55), (4.0, 0.9), (5.0, 0.8)]
    pts = zero_router_points(singles, n_points=4)
    xs = [p[0] for p in pts]
    assert xs == [1.0, 2.0, 3.0, 4.0]
    # On the segment (1,.5)-(4,.9): at 2 -> .5 + .4/3, at 3 -> .5 + .8/3.
    np.testing.assert_allclose([p[1] for p in pts], [0.5, 0.5 + 0.4 / 3, 0.5 + 0.8 / 3, 0.9])


def test_knn_by_hand() -> None:
    X = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    Y = np.array([[1.0, 0.0], [1.0, np.nan], [0.0, 1.0], [0.0, 0.5]])
    knn = KNNRouter(k=2)
    knn.fit(X, Y)
    P = knn.predict(np.array([[1.0, 0.05], [0.05, 1.0]]))
    # First query: neighbours 0 and 1 -> config 0: 1, config 1: only item 0 known -> 0.
    # Second: neighbours 2 and 3 -> 0 and (1 + .5)/2.
    np.testing.assert_allclose(P, [[1.0, 0.0], [0.0, 0.75]])
    with pytest.raises(RuntimeError):
        KNNRouter().predict(X)


def _synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    # Config 0 is right when x0 > 0, config 1 when x0 <= 0, config 2 at random (30%).
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 8))
    Y = np.stack([(X[:, 0] > 0), (X[:, 0] <= 0), rng.random(n) < 0.3], axis=1).astype(np.float64)
    Y[rng.random(Y.shape) < 0.1] = np.nan  # unknown, not wrong
    return X, Y


@pytest.mark.parametrize("make", [lambda: KNNRouter(), LogisticRouter, MLPRouter, MFRouter])
def test_learners_route_a_synthetic_task(make: object) -> None:
    X, Y = _synthetic(1200, 0)
    Xt, _ = _synthetic(400, 1)
    m = make()  # type: ignore[operator]
    m.fit(X, Y, None)
    P = m.predict(Xt)
    assert P.shape == (400, 3) and np.all((P >= 0) & (P <= 1))
    truth = (Xt[:, 0] <= 0).astype(int)  # the right choice among configs 0/1
    acc = float((np.argmax(P[:, :2], axis=1) == truth).mean())
    assert acc > 0.85, f"{m.name}: {acc}"


def test_knn_tunes_k_on_validation() -> None:
    X, Y = _synthetic(600, 2)
    knn = KNNRouter(ks=(1, 5, 25))
    knn.fit(X, Y)
    assert knn.chosen_k in (1, 5, 25) and set(knn.val_scores) == {1, 5, 25}


def test_mf_gradient_matches_finite_differences() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(6, 5))
    Y = rng.random((6, 3))
    M = (rng.random((6, 3)) > 0.2).astype(float)
    mf = MFRouter(dim=4, l2=0.01)
    p = {
        "W": rng.normal(size=(4, 5)),
        "b": rng.normal(size=4),
        "v": rng.normal(size=(3, 4)),
        "w": rng.normal(size=4),
        "c": rng.normal(size=3),
    }
    _, g = mf._loss_grad(p, X, Y, M)
    for k in p:
        i = (0,) * p[k].ndim
        eps = 1e-6
        p[k][i] += eps
        up = mf._loss_grad(p, X, Y, M)[0] + 0.5 * mf.l2 * sum(
            float((p[q] ** 2).sum()) for q in ("W", "v")
        )
        p[k][i] -= 2 * eps
        dn = mf._loss_grad(p, X, Y, M)[0] + 0.5 * mf.l2 * sum(
            float((p[q] ** 2).sum()) for q in ("W", "v")
        )
        p[k][i] += eps
        assert g[k][i] == pytest.approx((up - dn) / (2 * eps), rel=1e-4, abs=1e-7), k
