"""The router variants measured in docs/router.md's "What we tried": hand-checked cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from irtgate.lab.irt.model import IRTModel
from irtgate.lab.irt.variants import (
    CVBlendIRT,
    MeanEnsemble,
    PlattIRT,
    fit_platt,
    mean_score_of_argmax,
)

NAN = float("nan")
FAST = {"k": 2, "max_epochs": 30, "patience": 5, "rank_weight": 0.0}


def test_mean_score_of_argmax_only_lets_known_scores_compete() -> None:
    P = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.6], [0.5, 0.5]])
    Y = np.array([[1.0, 0.0], [NAN, 1.0], [0.0, NAN], [NAN, NAN]])
    # item 0 picks config 0 (1), item 1 config 1 (1), item 2 config 0 since config 1's
    # score is unknown (0), item 3 has no known score and is skipped: 2 / 3.
    assert mean_score_of_argmax(P, Y) == pytest.approx(2 / 3)
    assert math.isnan(mean_score_of_argmax(P[3:], Y[3:]))


class _Const:
    def __init__(self, value: list[float]) -> None:
        self.name, self.value, self.fitted = "const", np.array(value), False

    def fit(self, X: np.ndarray, Y: np.ndarray, costs: np.ndarray | None = None) -> None:
        self.fitted = True

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.tile(self.value, (len(X), 1))


def test_mean_ensemble_fits_every_member_and_averages() -> None:
    a, b = _Const([0.2, 0.6]), _Const([0.4, 1.0])
    ens = MeanEnsemble("two", [a, b])
    ens.fit(np.zeros((3, 2)), np.zeros((3, 2)))
    assert a.fitted and b.fitted
    assert ens.predict(np.zeros((2, 2))) == pytest.approx(np.array([[0.3, 0.8]] * 2))
    with pytest.raises(ValueError):
        MeanEnsemble("none", [])


def test_platt_recovers_a_known_scaling_and_keeps_the_identity() -> None:
    p = np.linspace(0.05, 0.95, 19)
    z = np.log(p / (1 - p))
    y = 1 / (1 + np.exp(-(2.0 * z - 0.5)))  # soft labels from A = 2, B = -0.5
    scale, shift = fit_platt(p, y, ridge=0.0)
    assert scale == pytest.approx(2.0, abs=1e-6)
    assert shift == pytest.approx(-0.5, abs=1e-6)
    assert fit_platt(p, p, ridge=0.0) == pytest.approx((1.0, 0.0), abs=1e-6)


def _data(n: int = 240, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    # Four clusters on the unit circle; config 0 is right on clusters 0 and 2, config 1 on
    # 1 and 3 (an XOR pattern local neighbours capture).
    rng = np.random.default_rng(seed)
    c = rng.integers(0, 4, n)
    ang = c * np.pi / 2 + rng.normal(0, 0.05, n)
    X = np.stack([np.cos(ang), np.sin(ang)], axis=1)
    Y = np.stack([(c % 2 == 0), (c % 2 == 1)], axis=1).astype(float)
    return X, Y


def test_cv_blend_with_one_neighbour_and_full_weight_returns_the_neighbours_scores() -> None:
    X, Y = _data()
    m = CVBlendIRT(FAST, betas=(1.0,), ks=(1,), folds=2)
    m.fit(X, Y)
    assert m.chosen == {"knn_p_k": 1, "knn_p_blend": 1.0}
    # A training point's nearest neighbour is itself: P equals its own scores.
    assert m.predict(X[:20]) == pytest.approx(Y[:20])


def test_cv_blend_picks_from_its_grid_and_prefers_neighbours_on_local_patterns() -> None:
    X, Y = _data()
    m = CVBlendIRT(FAST, betas=(0.0, 1.0), ks=(5, 50), folds=3)
    m.fit(X, Y)
    assert set(m.cv_table) == {(5, 0.0), (5, 1.0), (50, 0.0), (50, 1.0)}
    assert m.chosen is not None and m.chosen["knn_p_blend"] == 1.0
    assert m.cv_table[(5, 1.0)] == pytest.approx(1.0)
    P = m.predict(X)
    assert P.shape == Y.shape and np.all((P >= 0) & (P <= 1))
    with pytest.raises(ValueError):
        CVBlendIRT(folds=1)
    with pytest.raises(RuntimeError):
        CVBlendIRT().predict(X)


def test_platt_irt_applies_its_per_configuration_scaling() -> None:
    X, Y = _data()
    m = PlattIRT({**FAST, "knn_p_blend": 0.0}, val_frac=0.25)
    m.fit(X, Y)
    assert m.ab is not None and m.ab.shape == (2, 2)
    assert m.model is not None
    raw = np.clip(m.model.predict(X), 1e-6, 1 - 1e-6)
    z = np.log(raw / (1 - raw))
    want = 1 / (1 + np.exp(-(z * m.ab[:, 0] + m.ab[:, 1])))
    assert m.predict(X) == pytest.approx(want)
    assert isinstance(m.model, IRTModel)
    with pytest.raises(ValueError):
        PlattIRT(val_frac=0.0)
