"""Variants of the IRT router measured against the shipped one (docs/router.md, "What we
tried"); none of them is the default. Each implements the evaluation ``Method`` protocol
(``fit(X, Y, costs)``, ``predict(X) -> P``) so ``irtgate.lab.irt.evaluate`` scores them on the
same split and embeddings as everything else.

- :class:`MeanEnsemble`: the mean P of several fitted methods (e.g. IRT models with
  different seeds, or irtgate with the baselines).
- :class:`CVBlendIRT`: the kNN score blend (weight β, neighbours k) chosen by K-fold
  cross-validation on the training items.
- :class:`PlattIRT`: per-configuration Platt scaling of P on a validation share, for the
  "cheapest configuration with P >= target" rule, which reads P as a probability.

Every choice is made on the training items only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from irtgate.lab.irt.evaluate import fit_method
from irtgate.lab.irt.irt_math import sigmoid
from irtgate.lab.irt.model import IRTModel, knn_scores
from irtgate.signals.irt.knn_memory import KnnMemory

Array = np.ndarray


def mean_score_of_argmax(P: Array, Y: Array) -> float:
    """Mean observed score of each item's highest-P configuration among those with a known
    score (items with none are skipped); the selection criterion of the variants."""
    known = ~np.isnan(Y)
    has = known.any(axis=1)
    if not has.any():
        return float("nan")
    pick = np.where(known, P, -np.inf)[has].argmax(axis=1)
    return float(Y[has][np.arange(int(has.sum())), pick].mean())


class MeanEnsemble:
    """P = mean of the members' P. Members are fitted on the same data."""

    def __init__(self, name: str, members: Sequence[Any]) -> None:
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.name = name
        self.members = list(members)

    uses_groups = True

    def fit(
        self, X: Array, Y: Array, costs: Array | None = None, *, groups: Array | None = None
    ) -> None:
        for m in self.members:
            fit_method(m, X, Y, costs, groups)

    def predict(self, X: Array) -> Array:
        out: Array = np.mean([np.asarray(m.predict(X), dtype=np.float64) for m in self.members], 0)
        return out


class CVBlendIRT:
    """The IRT model whose kNN score blend (β, k) is chosen by ``folds``-fold CV on the
    training items (highest mean score of the argmax), then refitted on all of them."""

    def __init__(
        self,
        hyperparameters: dict[str, Any] | None = None,
        *,
        betas: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0),
        ks: Sequence[int] = (50, 100, 200, 400, 800, 1600),
        folds: int = 5,
        seed: int = 0,
        name: str = "irtgate, kNN blend by CV",
    ) -> None:
        if folds < 2:
            raise ValueError(f"folds must be >= 2, got {folds}")
        self.name = name
        self.hyper = dict(hyperparameters or {})
        self.betas, self.ks, self.folds, self.seed = tuple(betas), tuple(ks), folds, seed
        self.chosen: dict[str, float] | None = None
        self.cv_table: dict[tuple[int, float], float] = {}
        self.model: IRTModel | None = None

    uses_groups = True

    def fit(
        self, X: Array, Y: Array, costs: Array | None = None, *, groups: Array | None = None
    ) -> None:
        del costs
        X = np.asarray(X, dtype=np.float64)
        Y = np.asarray(Y, dtype=np.float64)
        grp = None if groups is None else np.asarray(groups)
        fold = np.random.default_rng(self.seed).permutation(len(X)) % self.folds
        sums: dict[tuple[int, float], list[float]] = {}
        for f in range(self.folds):
            fi, vi = np.where(fold != f)[0], np.where(fold == f)[0]
            m = IRTModel(**{**self.hyper, "knn_p_blend": 0.0, "family_blend": 0.0})
            m.fit(X[fi], Y[fi])
            P = m.predict(X[vi])
            # The same int8 search the served graph runs (signals/irt/knn_memory.py).
            memory = KnnMemory.of(X[fi].astype(np.float16).astype(np.float32))
            for k in self.ks:
                Pk = knn_scores(Y[fi], memory.top_k(X[vi], k), P)
                for b in self.betas:
                    sums.setdefault((k, b), []).append(
                        mean_score_of_argmax((1 - b) * P + b * Pk, Y[vi])
                    )
        self.cv_table = {key: float(np.mean(v)) for key, v in sums.items()}
        # Highest CV score; ties to the smaller blend, then fewer neighbours.
        k, b = max(self.cv_table, key=lambda kb: (round(self.cv_table[kb], 12), -kb[1], -kb[0]))
        self.chosen = {"knn_p_k": k, "knn_p_blend": b}
        self.model = IRTModel(**{**self.hyper, **self.chosen})
        self.model.fit(X, Y, groups=grp)

    def predict(self, X: Array) -> Array:
        if self.model is None:
            raise RuntimeError("CVBlendIRT is not fitted")
        return self.model.predict(X)


def fit_platt(p: Array, y: Array, iters: int = 50, ridge: float = 1e-3) -> tuple[float, float]:
    """(A, B) minimising the BCE of sigmoid(A·logit(p) + B) against soft labels ``y``
    (Newton steps with a small ridge towards the identity A = 1, B = 0)."""
    z = np.log(np.clip(p, 1e-6, 1 - 1e-6)) - np.log1p(-np.clip(p, 1e-6, 1 - 1e-6))
    w = np.array([1.0, 0.0])
    Z = np.stack([z, np.ones_like(z)], axis=1)
    n = max(len(z), 1)
    for _ in range(iters):
        q = sigmoid(Z @ w)
        g = Z.T @ (q - y) / n + ridge * (w - np.array([1.0, 0.0]))
        H = (Z * (q * (1 - q))[:, None]).T @ Z / n + ridge * np.eye(2)
        step = np.linalg.solve(H, g)
        w = w - step
        if np.abs(step).max() < 1e-10:
            break
    return float(w[0]), float(w[1])


class PlattIRT:
    """The IRT model fitted on 1 − ``val_frac`` of the training items, with per-configuration
    Platt scaling of its P fitted on the rest."""

    def __init__(
        self,
        hyperparameters: dict[str, Any] | None = None,
        *,
        val_frac: float = 0.15,
        seed: int = 0,
        name: str = "irtgate, Platt-calibrated",
    ) -> None:
        if not 0.0 < val_frac < 1.0:
            raise ValueError(f"val_frac must be in (0, 1), got {val_frac}")
        self.name = name
        self.hyper = dict(hyperparameters or {})
        self.val_frac, self.seed = val_frac, seed
        self.model: IRTModel | None = None
        self.ab: Array | None = None  # (G, 2)

    uses_groups = True

    def fit(
        self, X: Array, Y: Array, costs: Array | None = None, *, groups: Array | None = None
    ) -> None:
        del costs
        X = np.asarray(X, dtype=np.float64)
        Y = np.asarray(Y, dtype=np.float64)
        order = np.random.default_rng(self.seed).permutation(len(X))
        n_val = max(1, round(len(X) * self.val_frac))
        vi, fi = order[:n_val], order[n_val:]
        self.model = IRTModel(**self.hyper)
        self.model.fit(X[fi], Y[fi], groups=None if groups is None else np.asarray(groups)[fi])
        P = self.model.predict(X[vi])
        ab = np.tile([1.0, 0.0], (Y.shape[1], 1))
        for g in range(Y.shape[1]):
            ok = ~np.isnan(Y[vi, g])
            if ok.sum() >= 10:
                ab[g] = fit_platt(P[ok, g], Y[vi, g][ok])
        self.ab = ab

    def predict(self, X: Array) -> Array:
        if self.model is None or self.ab is None:
            raise RuntimeError("PlattIRT is not fitted")
        P = np.clip(self.model.predict(X), 1e-6, 1 - 1e-6)
        z = np.log(P) - np.log1p(-P)
        return sigmoid(z * self.ab[:, 0] + self.ab[:, 1])
