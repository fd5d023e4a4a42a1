"""Baseline routers, all on the same frozen embeddings as irtgate.

Two kinds:
- *fixed* routers that need no prediction: every single configuration, a random mix, the
  oracle and RouterBench's Zero router. Functions here return their choices or their
  (cost, accuracy) points directly.
- *predictors* implementing the evaluation ``Method`` protocol (``fit(X, Y, costs)``,
  ``predict(X) -> P (n, G)``): kNN (RouterBench), per-configuration logistic regression and
  MLP (RouterBench style), and matrix factorisation (RouteLLM / EmbedLLM style).

Every predictor trains on NaN-masked soft labels: an unknown score is left out, a
fractional one (share of correct samples) counts as that share.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from irtgate.lab.irt.metrics import nondecreasing_hull, sweep_point

# --- fixed routers --------------------------------------------------------------------------


def single_points(scores: np.ndarray, cost_matrix: np.ndarray) -> list[tuple[float, float]]:
    """(total cost, mean score) of sending every item to configuration g, per g (an
    unknown outcome earns 0, as in :func:`irtgate.lab.irt.metrics.sweep_point`)."""
    n = len(scores)
    return [sweep_point(np.full(n, g), scores, cost_matrix) for g in range(scores.shape[1])]


def oracle_choice(scores: np.ndarray, cost_matrix: np.ndarray) -> np.ndarray:
    """Per item the best-scoring configuration, the cheapest among ties (RouterBench's
    oracle: the cheapest correct model). Unknown scores never win; an item with no known
    score goes to its cheapest configuration."""
    s = np.where(np.isnan(scores), -np.inf, scores)
    best = s.max(axis=1, keepdims=True)
    c = np.where(s >= best, cost_matrix, np.inf)
    pick = np.argmin(c, axis=1)
    none = np.isinf(best[:, 0])
    pick[none] = np.argmin(cost_matrix[none], axis=1)
    return np.asarray(pick, dtype=np.int64)


def random_choice(n: int, n_configs: int, seed: int = 0) -> np.ndarray:
    """A uniformly random configuration per item (seeded)."""
    return np.random.default_rng(seed).integers(0, n_configs, size=n)


def zero_router_points(
    singles: Sequence[tuple[float, float]], n_points: int = 41
) -> list[tuple[float, float]]:
    """RouterBench's Zero router: random mixtures of single configurations along their
    non-decreasing convex hull. Mixing two configurations with probability t costs and
    scores the t-weighted average, so its expected points lie on the hull's segments;
    this samples ``n_points`` costs evenly along the hull (its vertices included)."""
    c = np.array([s[0] for s in singles])
    a = np.array([s[1] for s in singles])
    ok = ~np.isnan(a)
    hc, ha = nondecreasing_hull(c[ok], a[ok])
    if hc.size == 1:
        return [(float(hc[0]), float(ha[0]))]
    grid = np.union1d(np.linspace(hc[0], hc[-1], n_points), hc)
    return [(float(x), float(np.interp(x, hc, ha))) for x in grid]


# --- predictors -----------------------------------------------------------------------------


def _unit(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float32)
    return np.asarray(X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12))


def _val_split(n: int, frac: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    perm = np.random.default_rng(seed).permutation(n)
    k = round(n * frac) if n >= 20 else 0
    return perm[k:], perm[:k]


def _routing_score(P: np.ndarray, Y: np.ndarray) -> float:
    # Validation criterion for hyper-parameters: mean known score of the argmax choice.
    got = Y[np.arange(len(P)), np.argmax(P, axis=1)]
    return float(np.nanmean(got)) if (~np.isnan(got)).any() else float("-inf")


class KNNRouter:
    """kNN (cosine): P = mean known score of the k most similar training items.

    With ``k=None`` k is chosen from ``ks`` on a random validation share of the training
    set by the accuracy of the argmax choice, then the router refits on all of it.
    """

    name = "knn"

    def __init__(
        self,
        k: int | None = None,
        ks: Sequence[int] = (5, 10, 20, 50, 100, 200, 400),
        val_frac: float = 0.15,
        seed: int = 0,
    ) -> None:
        self.k = k
        self.ks = tuple(ks)
        self.val_frac = val_frac
        self.seed = seed
        self.chosen_k: int | None = None
        self.val_scores: dict[int, float] = {}
        self._X: np.ndarray | None = None
        self._Y: np.ndarray | None = None
        self._prior: np.ndarray | None = None

    @staticmethod
    def _neighbour_means(
        Xtr: np.ndarray, Ytr: np.ndarray, Xq: np.ndarray, ks: Sequence[int], prior: np.ndarray
    ) -> dict[int, np.ndarray]:
        kmax = min(max(ks), len(Xtr))
        known = (~np.isnan(Ytr)).astype(np.float32)
        vals = np.nan_to_num(Ytr).astype(np.float32)
        out = {k: np.empty((len(Xq), Ytr.shape[1])) for k in ks}
        for s in range(0, len(Xq), 1024):
            sims = Xq[s : s + 1024] @ Xtr.T
            if kmax < sims.shape[1]:
                top = np.argpartition(-sims, kmax - 1, axis=1)[:, :kmax]
            else:
                top = np.tile(np.arange(sims.shape[1]), (len(sims), 1))
            order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1)
            top = np.take_along_axis(top, order, axis=1)
            csum_v = np.cumsum(vals[top], axis=1)  # (b, kmax, G)
            csum_k = np.cumsum(known[top], axis=1)
            for k in ks:
                kk = min(k, kmax) - 1
                num, den = csum_v[:, kk], csum_k[:, kk]
                # No known neighbour for a configuration: fall back to its overall mean.
                out[k][s : s + 1024] = np.where(den > 0, num / np.maximum(den, 1), prior)
        return out

    def fit(self, X: np.ndarray, Y: np.ndarray, costs: np.ndarray | None = None) -> None:
        del costs
        Xu, Y = _unit(X), np.asarray(Y, dtype=np.float64)
        known = ~np.isnan(Y)
        total = np.where(known, Y, 0.0).sum(axis=0)
        # Fallback where no neighbour has a score: the configuration's overall mean.
        self._prior = np.where(known.any(axis=0), total / np.maximum(known.sum(axis=0), 1), 0.5)
        if self.k is not None:
            self.chosen_k = self.k
        else:
            tr, va = _val_split(len(Xu), self.val_frac, self.seed)
            ks = [k for k in self.ks if k <= len(tr)] or [max(1, len(tr))]
            if len(va) == 0:
                self.chosen_k = ks[0]
            else:
                means = self._neighbour_means(Xu[tr], Y[tr], Xu[va], ks, self._prior)
                self.val_scores = {k: _routing_score(means[k], Y[va]) for k in ks}
                self.chosen_k = max(ks, key=lambda k: (self.val_scores[k], k))
        self._X, self._Y = Xu, Y

    def predict(self, X: np.ndarray) -> np.ndarray:
        if self._X is None or self._Y is None or self.chosen_k is None or self._prior is None:
            raise RuntimeError("KNNRouter is not fitted")
        k = self.chosen_k
        return self._neighbour_means(self._X, self._Y, _unit(X), [k], self._prior)[k]


class LogisticRouter:
    """One logistic regression per configuration on the embedding (RouterBench style).

    Soft labels are fitted exactly: each item appears once as a positive with weight s and
    once as a negative with weight 1 - s, which is the soft-label cross-entropy.
    """

    name = "logistic"

    def __init__(self, C: float = 1.0, max_iter: int = 300) -> None:
        self.C = C
        self.max_iter = max_iter
        self._models: list[Any] = []

    def fit(self, X: np.ndarray, Y: np.ndarray, costs: np.ndarray | None = None) -> None:
        from sklearn.linear_model import LogisticRegression

        del costs
        X = np.asarray(X, dtype=np.float64)
        self._models = []
        for g in range(Y.shape[1]):
            m = ~np.isnan(Y[:, g])
            y = Y[m, g]
            if m.sum() == 0 or np.all(y == y[0]):
                self._models.append(float(y[0]) if m.any() else 0.5)
                continue
            Xg = np.vstack([X[m], X[m]])
            lab = np.r_[np.ones(len(y)), np.zeros(len(y))]
            w = np.r_[y, 1.0 - y]
            keep = w > 0
            clf = LogisticRegression(C=self.C, max_iter=self.max_iter)
            clf.fit(Xg[keep], lab[keep], sample_weight=w[keep])
            self._models.append(clf)

    def predict(self, X: np.ndarray) -> np.ndarray:
        if not self._models:
            raise RuntimeError("LogisticRouter is not fitted")
        X = np.asarray(X, dtype=np.float64)
        cols = [
            np.full(len(X), m) if isinstance(m, float) else m.predict_proba(X)[:, 1]
            for m in self._models
        ]
        return np.stack(cols, axis=1)


class MLPRouter:
    """One small MLP regressor per configuration predicting the score (RouterBench's MLP
    router: hidden layer of 100, lr 1e-3), with sklearn's early stopping."""

    name = "mlp"

    def __init__(self, hidden: tuple[int, ...] = (100,), alpha: float = 1e-3, seed: int = 0):
        self.hidden = hidden
        self.alpha = alpha
        self.seed = seed
        self._models: list[Any] = []

    def fit(self, X: np.ndarray, Y: np.ndarray, costs: np.ndarray | None = None) -> None:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPRegressor

        del costs
        X = np.asarray(X, dtype=np.float64)
        self._models = []
        for g in range(Y.shape[1]):
            m = ~np.isnan(Y[:, g])
            if m.sum() < 20:
                self._models.append(float(np.mean(Y[m, g])) if m.any() else 0.5)
                continue
            reg = MLPRegressor(
                hidden_layer_sizes=self.hidden,
                alpha=self.alpha,
                learning_rate_init=1e-3,
                early_stopping=True,
                n_iter_no_change=5,
                max_iter=100,
                random_state=self.seed,
            )
            with warnings.catch_warnings():
                # Hitting max_iter is expected with early stopping off the plateau.
                warnings.simplefilter("ignore", ConvergenceWarning)
                reg.fit(X[m], Y[m, g])
            self._models.append(reg)

    def predict(self, X: np.ndarray) -> np.ndarray:
        if not self._models:
            raise RuntimeError("MLPRouter is not fitted")
        X = np.asarray(X, dtype=np.float64)
        cols = [np.full(len(X), m) if isinstance(m, float) else m.predict(X) for m in self._models]
        return np.asarray(np.clip(np.stack(cols, axis=1), 0.0, 1.0))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * z)))


class MFRouter:
    """Matrix factorisation (RouteLLM's MF router, EmbedLLM's decoder):
    P(g, e) = sigmoid(w · (v_g ⊙ (W e + b)) + c_g), trained with masked soft-label BCE,
    Adam and early stopping on a validation share, in numpy."""

    name = "mf"

    def __init__(
        self,
        dim: int = 64,
        lr: float = 3e-3,
        l2: float = 1e-4,
        epochs: int = 200,
        batch: int = 256,
        patience: int = 10,
        val_frac: float = 0.1,
        seed: int = 0,
    ) -> None:
        self.dim, self.lr, self.l2 = dim, lr, l2
        self.epochs, self.batch, self.patience = epochs, batch, patience
        self.val_frac, self.seed = val_frac, seed
        self.params: dict[str, np.ndarray] | None = None

    @staticmethod
    def _forward(p: dict[str, np.ndarray], X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h = X @ p["W"].T + p["b"]
        z = h @ (p["v"] * p["w"]).T + p["c"]
        return h, z

    def _loss_grad(
        self, p: dict[str, np.ndarray], X: np.ndarray, Y: np.ndarray, M: np.ndarray
    ) -> tuple[float, dict[str, np.ndarray]]:
        h, z = self._forward(p, X)
        P = _sigmoid(z)
        cnt = max(float(M.sum()), 1.0)
        eps = 1e-7
        bce = -(Y * np.log(P + eps) + (1 - Y) * np.log(1 - P + eps))
        loss = float((bce * M).sum() / cnt)
        dz = (P - Y) * M / cnt
        U = p["v"] * p["w"]
        dU = dz.T @ h
        dh = dz @ U
        g = {
            "W": dh.T @ X + self.l2 * p["W"],
            "b": dh.sum(axis=0),
            "v": dU * p["w"] + self.l2 * p["v"],
            "w": (dU * p["v"]).sum(axis=0),
            "c": dz.sum(axis=0),
        }
        return loss, g

    def fit(self, X: np.ndarray, Y: np.ndarray, costs: np.ndarray | None = None) -> None:
        del costs
        X = np.asarray(X, dtype=np.float64)
        M = (~np.isnan(Y)).astype(np.float64)
        Yf = np.nan_to_num(np.asarray(Y, dtype=np.float64))
        rng = np.random.default_rng(self.seed)
        d, G, r = X.shape[1], Y.shape[1], self.dim
        p = {
            "W": rng.normal(0, 1 / np.sqrt(d), (r, d)),
            "b": np.zeros(r),
            "v": rng.normal(0, 1 / np.sqrt(r), (G, r)),
            "w": np.ones(r),
            "c": np.zeros(G),
        }
        m1 = {k: np.zeros_like(v) for k, v in p.items()}
        m2 = {k: np.zeros_like(v) for k, v in p.items()}
        tr, va = _val_split(len(X), self.val_frac, self.seed)
        best, best_val, bad, t = {k: v.copy() for k, v in p.items()}, np.inf, 0, 0
        for _ in range(self.epochs):
            perm = rng.permutation(tr)
            for s in range(0, len(perm), self.batch):
                bi = perm[s : s + self.batch]
                _, g = self._loss_grad(p, X[bi], Yf[bi], M[bi])
                t += 1
                for k in p:  # Adam
                    m1[k] = 0.9 * m1[k] + 0.1 * g[k]
                    m2[k] = 0.999 * m2[k] + 0.001 * g[k] ** 2
                    p[k] -= (
                        self.lr * (m1[k] / (1 - 0.9**t)) / (np.sqrt(m2[k] / (1 - 0.999**t)) + 1e-8)
                    )
            if len(va) == 0:
                best = p
                continue
            vloss, _ = self._loss_grad(p, X[va], Yf[va], M[va])
            if vloss < best_val - 1e-5:
                best, best_val, bad = {k: v.copy() for k, v in p.items()}, vloss, 0
            else:
                bad += 1
                if bad >= self.patience:
                    break
        self.params = best

    def predict(self, X: np.ndarray) -> np.ndarray:
        if self.params is None:
            raise RuntimeError("MFRouter is not fitted")
        return _sigmoid(self._forward(self.params, np.asarray(X, dtype=np.float64))[1])


def default_predictors(seed: int = 0) -> list[Any]:
    """The learned baselines every evaluation runs."""
    return [KNNRouter(seed=seed), LogisticRouter(), MLPRouter(seed=seed), MFRouter(seed=seed)]
