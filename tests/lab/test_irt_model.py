"""The IRT math: hand-computed cases, gradients, masking, soft labels, early stopping."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from irtgate.lab.irt.irt_math import Params, heads, loss_and_grad, prob, sigmoid, softplus
from irtgate.lab.irt.model import IRTConfig, IRTModel, init_params

# The plain IRT model: no listwise term, no kNN score blend (those are tested separately).
PURE: dict[str, Any] = {"rank_weight": 0.0, "knn_p_blend": 0.0}


def _tiny_params() -> Params:
    # d = 2, k = 2, G = 2, linear heads, chosen so every number can be checked by hand.
    return Params(
        Wa=np.array([[1.0, 0.0], [0.0, 2.0]]),
        ca=np.array([0.0, -1.0]),
        wb=np.array([0.5, -0.5]),
        cb=np.array(0.25),
        theta=np.array([[1.0, 0.0], [-1.0, 2.0]]),
    )


def test_probability_matches_hand_computation() -> None:
    p = _tiny_params()
    x = np.array([[1.0, 0.0]])
    # u = x·Wa + ca = (1, -1); a = softplus(u) = (ln(1+e), ln(1+e^-1))
    a1, a2 = math.log1p(math.e), math.log1p(math.exp(-1.0))
    b = 0.5 * 1.0 + 0.25
    a, bb = heads(p, x)
    assert a[0] == pytest.approx([a1, a2])
    assert bb[0] == pytest.approx(b)
    want = [1 / (1 + math.exp(-(a1 - b))), 1 / (1 + math.exp(-(-a1 + 2 * a2 - b)))]
    assert prob(p, x)[0] == pytest.approx(want)


def test_sigmoid_and_softplus_are_stable_at_extremes() -> None:
    z = np.array([-1000.0, -30.0, 0.0, 30.0, 1000.0])
    s = sigmoid(z)
    assert np.all(np.isfinite(s))
    assert s[2] == 0.5 and s[0] == 0.0 and s[-1] == 1.0
    assert softplus(np.array([1000.0]))[0] == pytest.approx(1000.0)
    assert softplus(np.array([0.0]))[0] == pytest.approx(math.log(2.0))


def _numeric_grad(p: Params, f: Callable[[], float], name: str) -> np.ndarray:
    arr: np.ndarray = getattr(p, name)
    num: np.ndarray = np.zeros_like(arr)
    it = np.nditer(arr, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = arr[i]
        arr[i] = old + 1e-6
        lp = f()
        arr[i] = old - 1e-6
        lm = f()
        arr[i] = old
        num[i] = (lp - lm) / 2e-6
    return num


@pytest.mark.parametrize("hidden", [0, 4])
@pytest.mark.parametrize("rank_weight", [0.0, 0.7])
def test_gradient_matches_finite_differences(hidden: int, rank_weight: float) -> None:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(12, 5))
    Y = rng.random((12, 3))
    Y[rng.random(Y.shape) < 0.25] = np.nan
    Y[0] = [1.0, 0.0, 0.5]  # at least one item where configurations disagree
    M = (~np.isnan(Y)).astype(float)
    Yf = np.nan_to_num(Y)
    p = init_params(5, 3, IRTConfig(k=2, hidden=hidden), rng)
    p.theta = rng.normal(size=p.theta.shape)  # away from the near-zero start

    def f() -> float:
        return loss_and_grad(p, X, Yf, M, 1e-2, 3e-2, rank_weight)[0]

    _, g = loss_and_grad(p, X, Yf, M, 1e-2, 3e-2, rank_weight)
    for name in p.names():
        num = _numeric_grad(p, f, name)
        assert np.allclose(num, g[name], atol=1e-7, rtol=1e-5), name


def test_missing_entries_do_not_change_loss_or_gradient() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(6, 4))
    Y = rng.random((6, 3))
    M = np.ones_like(Y)
    M[2, 1] = 0.0
    p = init_params(4, 3, IRTConfig(k=2), rng)
    Y_a, Y_b = Y.copy(), Y.copy()
    Y_a[2, 1], Y_b[2, 1] = 0.0, 1.0  # whatever sits under the mask must not matter
    la, ga = loss_and_grad(p, X, Y_a, M, 0.0, 0.0, 0.5)
    lb, gb = loss_and_grad(p, X, Y_b, M, 0.0, 0.0, 0.5)
    assert la == pytest.approx(lb)
    for name in ga:
        assert np.allclose(ga[name], gb[name])


def test_soft_labels_fit_fractional_rates() -> None:
    # One item repeated, one configuration answering right 30% of the time: the fitted P
    # must approach 0.3, which a model treating scores as 0/1 could not represent.
    X = np.tile(np.array([[1.0, 0.0]]), (200, 1))
    Y = np.column_stack([np.full(200, 0.3), np.full(200, 0.9)])
    m = IRTModel(
        k=2, lr=0.05, max_epochs=400, patience=400, val_frac=0.0, l2=0.0, l2_theta=0.0, **PURE
    )
    m.fit(X, Y)
    assert m.predict(X[:1])[0] == pytest.approx([0.3, 0.9], abs=0.02)


def test_fit_recovers_a_synthetic_model_and_masks_nan() -> None:
    rng = np.random.default_rng(1)
    n, d, g, k = 1500, 16, 5, 2
    X = rng.normal(size=(n, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    true = Params(
        Wa=rng.normal(size=(d, k)) * 2,
        ca=np.zeros(k),
        wb=rng.normal(size=d) * 2,
        cb=np.array(0.0),
        theta=rng.normal(size=(g, k)),
    )
    P = prob(true, X)
    Y = (rng.random(P.shape) < P).astype(float)
    Y[rng.random(Y.shape) < 0.3] = np.nan
    m = IRTModel(k=k, seed=0, **PURE)
    m.fit(X[:1200], Y[:1200])
    got = m.predict(X[1200:])
    assert got.shape == (300, g)
    assert np.corrcoef(got.ravel(), P[1200:].ravel())[0, 1] > 0.9
    a, b = m.item_params(X[1200:])
    assert a.shape == (300, k) and b.shape == (300,)
    assert np.all(a > 0)
    assert m.abilities.shape == (g, k)


def test_early_stopping_stops_and_keeps_the_best_epoch() -> None:
    # Pure-noise labels: validation loss stops improving quickly, so training must stop
    # long before max_epochs and restore the epoch with the best validation loss.
    rng = np.random.default_rng(2)
    X = rng.normal(size=(300, 30))
    Y = rng.integers(0, 2, size=(300, 4)).astype(float)
    m = IRTModel(k=4, lr=0.02, max_epochs=500, patience=5, l2=0.0, l2_theta=0.0, **PURE)
    m.fit(X, Y)
    h = m.history
    assert h.stopped_early
    assert len(h.val_loss) < 500
    assert len(h.val_loss) == h.best_epoch + 1 + 5
    assert min(h.val_loss) == h.val_loss[h.best_epoch]


def test_bad_input_gets_clear_errors() -> None:
    m = IRTModel(k=2)
    with pytest.raises(RuntimeError, match="not fitted"):
        m.predict(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="2-D"):
        m.fit(np.zeros(3), np.zeros((3, 1)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        m.fit(np.zeros((3, 2)), np.full((3, 1), 2.0))
    with pytest.raises(ValueError, match="no observed"):
        m.fit(np.zeros((3, 2)), np.full((3, 1), np.nan))
    with pytest.raises(ValueError, match="k must be"):
        IRTConfig(k=0)


def test_knn_warm_up_blends_towards_training_neighbours() -> None:
    rng = np.random.default_rng(4)
    X = rng.normal(size=(100, 8))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    Y = rng.random((100, 3))
    m = IRTModel(k=2, knn_blend=0.5, knn_k=1, max_epochs=3, **PURE)
    m.fit(X, Y)
    memory = m.knn_memory()
    assert memory is not None
    stored = memory.rows(np.arange(100))  # int8 rows, dequantized: as the graph stores them
    assert np.abs(stored - X).max() < 0.5 / 127 + 1e-3
    # With k=1, a training point's nearest neighbour is itself (as stored).
    assert np.allclose(m.warm(X[:5]), 0.5 * X[:5] + 0.5 * stored[:5], atol=1e-6)
    q = rng.normal(size=(1, 8))
    q /= np.linalg.norm(q)
    nn = stored[np.argmax(X @ q[0])]
    assert np.allclose(m.warm(q)[0], 0.5 * q[0] + 0.5 * nn, atol=1e-6)


def test_knn_score_blend_mixes_neighbour_scores_in() -> None:
    rng = np.random.default_rng(5)
    X = rng.normal(size=(60, 6))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    Y = rng.integers(0, 2, size=(60, 2)).astype(float)
    Y[0, 1] = np.nan
    m = IRTModel(k=2, max_epochs=3, rank_weight=0.0, knn_p_blend=0.4, knn_p_k=1)
    m.fit(X, Y)
    P_irt = m.predict_irt(X[:3])
    P = m.predict(X[:3])
    # k=1: the neighbour of a training item is itself, so its own score is blended in;
    # where its score is unknown, the IRT probability stands in.
    want = 0.6 * P_irt + 0.4 * np.where(np.isnan(Y[:3]), P_irt, Y[:3])  # 0/1: exact in fp16
    assert np.allclose(P, want)


def test_ranking_term_prefers_the_configuration_that_was_right() -> None:
    # Two configurations with the same overall accuracy, each right on its own half of the
    # space: the listwise term must make the model rank the right one first per item.
    rng = np.random.default_rng(6)
    X = rng.normal(size=(400, 4))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    first = X[:, 0] > 0
    Y = np.column_stack([first, ~first]).astype(float)
    m = IRTModel(
        k=2, rank_weight=1.0, knn_p_blend=0.0, lr=0.02, seed=1, patience=50, l2=0.0, l2_theta=0.0
    )
    m.fit(X[:300], Y[:300])
    pick = m.predict(X[300:]).argmax(axis=1)
    assert np.mean(pick == np.where(first[300:], 0, 1)) > 0.9


@pytest.mark.slow
def test_quick_training_on_real_data_beats_the_best_single_config(
    shared_data: Path, tmp_path: Path
) -> None:
    """RouterDC's protocol (in-distribution test splits), static embeddings."""
    from irtgate.lab.encoders.cache import embed_corpus
    from irtgate.lab.irt.data import load_routing_data, routerdc_protocol
    from irtgate.lab.irt.metrics import routerdc_accuracy

    data = load_routing_data([shared_data / "routerdc-7models.jsonl.gz"])
    train, test, _ = routerdc_protocol(data)
    X = embed_corpus("static", list(train.prompts), cache_dir=tmp_path, progress=False)
    Xt = embed_corpus("static", list(test.prompts), cache_dir=tmp_path, progress=False)
    m = IRTModel(k=8, seed=0)
    m.fit(X, train.scores)
    ours, _ = routerdc_accuracy(m.predict(Xt).argmax(axis=1), test.scores, test.benchmarks)
    singles = [
        routerdc_accuracy(np.full(len(test), g), test.scores, test.benchmarks)[0]
        for g in range(len(data.configs))
    ]
    assert ours > max(singles) + 1.0  # the best single model scores 54.56 here
