"""Multidimensional 2PL IRT on frozen query embeddings, trained with numpy.

For a query with embedding ``e`` and a configuration ``g``::

    h      = e                      (linear heads)   or  relu(e·W1 + c1)  (one hidden layer)
    a(e)   = softplus(h·Wa + ca)    discrimination, k-dim, positive
    b(e)   = h·wb + cb              difficulty, scalar
    P(g|e) = sigmoid(a(e)·θ_g − b(e))

``θ_g`` (k-dim) is the configuration's ability. Scores may be fractional (soft labels: the
share of sampled answers that were right) and may be missing (NaN): missing entries are
masked out of the loss rather than treated as wrong. Training is mini-batch Adam on the
masked binary cross-entropy plus L2, with analytic gradients (checked against finite
differences in the tests) and early stopping on a held-out share of the training items, so
neither training nor serving needs torch.

Unseen queries can be "warmed up" as in IRT-Router: the embedding is blended with the mean
of its nearest training embeddings before the heads run (``knn_blend``); the export keeps
that step inside the ONNX graph so serving does exactly what evaluation measured. Two
blends follow the IRT heads: the mean score of the nearest training items (``knn_p_blend``)
and the task-family prior (``family_blend``, :mod:`irtgate.lab.irt.family`).

The arithmetic (parameters, forward pass, loss and gradient, Adam) is in
:mod:`irtgate.lab.irt.irt_math`; this module holds the configuration and the model class.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from irtgate.lab.irt.family import FamilyPrior, fit_prior
from irtgate.lab.irt.irt_math import Adam, Params, heads, loss_and_grad, sigmoid
from irtgate.signals.irt.knn_memory import KnnMemory

Array = np.ndarray


@dataclass(frozen=True)
class IRTConfig:
    """Hyper-parameters. ``k`` ability dimensions; ``hidden`` 0 means linear heads."""

    # Defaults are the values chosen by the validation sweep on the shared data (docs/router.md).
    k: int = 16
    hidden: int = 0
    l2: float = 1e-5
    l2_theta: float = 1e-4
    lr: float = 3e-3
    batch_size: int = 256
    max_epochs: int = 300
    patience: int = 15
    val_frac: float = 0.1
    seed: int = 0
    # IRT-Router-style warm-up of unseen queries: e' = (1-λ)e + λ·mean(kNN train embeddings).
    knn_blend: float = 0.0
    knn_k: int = 5
    # Blend of the IRT probabilities with the mean observed score of the ``knn_p_k`` nearest
    # training items: P = (1-β)·P_irt + β·P_knn. Keeps local evidence the low-rank model
    # smooths away; in the export it is part of the graph.
    knn_p_blend: float = 0.5
    knn_p_k: int = 200
    # Weight of a listwise term (softmax over configurations vs. normalised scores, on items
    # where configurations disagree). BCE alone is dominated by item difficulty; routing
    # depends on the configurations' differences within an item, which this term targets.
    rank_weight: float = 1.0
    # Task-family prior (lab/irt/family.py): P = (1-α)·P + α·π(e)·A, with π a
    # classifier over the training data's benchmarks (regularisation C, temperature T) and
    # A each configuration's mean score per benchmark. 0 turns it off; `irtgate train`
    # chooses the three by cross-validation.
    family_blend: float = 0.0
    family_c: float = 1.0
    family_temperature: float = 1.0

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        if self.hidden < 0:
            raise ValueError(f"hidden must be >= 0, got {self.hidden}")
        if not 0.0 <= self.val_frac < 1.0:
            raise ValueError(f"val_frac must be in [0, 1), got {self.val_frac}")
        if not 0.0 <= self.knn_blend <= 1.0:
            raise ValueError(f"knn_blend must be in [0, 1], got {self.knn_blend}")
        if self.rank_weight < 0:
            raise ValueError(f"rank_weight must be >= 0, got {self.rank_weight}")
        if not 0.0 <= self.knn_p_blend <= 1.0:
            raise ValueError(f"knn_p_blend must be in [0, 1], got {self.knn_p_blend}")
        if self.knn_p_k < 1:
            raise ValueError(f"knn_p_k must be >= 1, got {self.knn_p_k}")
        if self.knn_k < 1:
            raise ValueError(f"knn_k must be >= 1, got {self.knn_k}")
        if not 0.0 <= self.family_blend <= 1.0:
            raise ValueError(f"family_blend must be in [0, 1], got {self.family_blend}")
        if self.family_c <= 0 or self.family_temperature <= 0:
            raise ValueError("family_c and family_temperature must be > 0")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def init_params(d: int, n_configs: int, cfg: IRTConfig, rng: np.random.Generator) -> Params:
    h = cfg.hidden or d
    p = Params(
        Wa=rng.normal(0.0, 0.1 / np.sqrt(h), (h, cfg.k)),
        ca=np.zeros(cfg.k),
        wb=rng.normal(0.0, 0.1 / np.sqrt(h), h),
        cb=np.zeros(()),
        theta=rng.normal(0.0, 0.1, (n_configs, cfg.k)),
    )
    if cfg.hidden:
        p.W1 = rng.normal(0.0, np.sqrt(2.0 / d), (d, cfg.hidden))
        p.c1 = np.zeros(cfg.hidden)
    return p


def _check_xy(X: Array, Y: Array | None = None) -> None:
    if X.ndim != 2:
        raise ValueError(f"embeddings must be 2-D (n, d), got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError("embeddings contain NaN or infinite values")
    if Y is not None:
        if Y.ndim != 2 or Y.shape[0] != X.shape[0]:
            raise ValueError(f"scores must be (n, G) with n={X.shape[0]}, got {Y.shape}")
        obs = Y[~np.isnan(Y)]
        if obs.size == 0:
            raise ValueError("scores have no observed entries")
        if obs.min() < 0.0 or obs.max() > 1.0:
            raise ValueError("scores must lie in [0, 1] (NaN for unknown)")


def knn_scores(Y: Array, idx: Array, fallback: Array) -> Array:
    """Mean observed score of the neighbours ``idx`` (n, k) per configuration; where no
    neighbour has an observed score, ``fallback``."""
    M = ~np.isnan(Y)
    tot = np.nan_to_num(Y)[idx].sum(axis=1)
    cnt = M[idx].sum(axis=1)
    out: Array = np.where(cnt > 0, tot / np.maximum(cnt, 1), fallback)
    return out


@dataclass
class FitHistory:
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int = -1
    stopped_early: bool = False


class IRTModel:
    """2PL MIRT router model; implements the evaluation ``Method`` protocol."""

    name = "irtgate"
    uses_groups = True  # fit() takes each item's benchmark (for the family prior)

    def __init__(self, config: IRTConfig | None = None, **overrides: Any) -> None:
        base = config or IRTConfig()
        self.config = IRTConfig(**{**base.as_dict(), **overrides}) if overrides else base
        self.params: Params | None = None
        self.history = FitHistory()
        # Kept only when a kNN step is configured (the export puts them in the graph).
        self.train_embeddings: Array | None = None
        self.train_scores: Array | None = None
        self._memory: tuple[Array, KnnMemory] | None = None
        self.family: FamilyPrior | None = None

    # -- training -------------------------------------------------------------------------
    def fit(
        self,
        X: Array,
        Y: Array,
        costs: Array | None = None,
        progress: Callable[[Iterator[int]], Iterator[int]] | None = None,
        *,
        groups: Array | None = None,
    ) -> None:
        """Fit on embeddings ``X`` (n, d) and scores ``Y`` (n, G), NaN = unknown.

        ``costs`` is accepted for the protocol and ignored: the model predicts correctness;
        cost enters at selection time. ``groups`` (n,) are the items' benchmarks, which the
        family prior needs; without them, or with fewer than two, it stays off.
        """
        del costs
        X = np.asarray(X, dtype=np.float64)
        Y = np.asarray(Y, dtype=np.float64)
        _check_xy(X, Y)
        cfg = self.config
        rng = np.random.default_rng(cfg.seed)
        M = (~np.isnan(Y)).astype(np.float64)
        Yf = np.nan_to_num(Y, nan=0.0)
        n = X.shape[0]
        order = rng.permutation(n)
        n_val = round(n * cfg.val_frac) if n >= 20 else 0
        val, tr = order[:n_val], order[n_val:]

        p = init_params(X.shape[1], Y.shape[1], cfg, rng)
        opt = Adam(p, cfg.lr)
        self.history = hist = FitHistory()
        best, best_val, bad = p.copy(), np.inf, 0
        epochs: Iterator[int] = iter(range(cfg.max_epochs))
        if progress is not None:
            epochs = progress(epochs)
        for epoch in epochs:
            perm = rng.permutation(tr)
            tot = 0.0
            for s in range(0, len(perm), cfg.batch_size):
                bi = perm[s : s + cfg.batch_size]
                loss, g = loss_and_grad(
                    p, X[bi], Yf[bi], M[bi], cfg.l2, cfg.l2_theta, cfg.rank_weight
                )
                opt.step(p, g)
                tot += loss * len(bi)
            hist.train_loss.append(tot / max(len(tr), 1))
            if n_val == 0:
                best, hist.best_epoch = p, epoch
                continue
            vloss, _ = loss_and_grad(p, X[val], Yf[val], M[val], 0.0, 0.0, cfg.rank_weight)
            hist.val_loss.append(vloss)
            if vloss < best_val - 1e-5:
                best, best_val, bad, hist.best_epoch = p.copy(), vloss, 0, epoch
            else:
                bad += 1
                if bad >= cfg.patience:
                    hist.stopped_early = True
                    break
        self.params = best
        if cfg.knn_blend > 0 or cfg.knn_p_blend > 0:
            # Rounded to float16 here because the exported graph stores them so: numpy and
            # ONNX then work on identical values (parity) and memory halves.
            self.train_embeddings = np.asarray(X, dtype=np.float16).astype(np.float32)
            self.train_scores = np.asarray(Y, dtype=np.float16).astype(np.float32)
        else:
            self.train_embeddings = self.train_scores = None
        self.family = None
        if cfg.family_blend > 0 and groups is not None and len(np.unique(groups)) >= 2:
            if len(groups) != n:
                raise ValueError(f"groups must have one label per item ({n}), got {len(groups)}")
            self.family = fit_prior(
                X,
                Y,
                np.asarray(groups),
                self.predict(X),
                C=cfg.family_c,
                temperature=cfg.family_temperature,
            )

    # -- inference ------------------------------------------------------------------------
    def _require(self) -> Params:
        if self.params is None:
            raise RuntimeError("IRTModel is not fitted")
        return self.params

    def knn_memory(self) -> KnnMemory | None:
        """The training embeddings as the graph stores and searches them (int8)."""
        train = self.train_embeddings
        if train is None:
            return None
        # Built on first use, and again if train_embeddings is replaced.
        if self._memory is None or self._memory[0] is not train:
            self._memory = (train, KnnMemory.of(train))
        return self._memory[1]

    def warm(self, X: Array) -> Array:
        """Apply the kNN warm-up (identity when ``knn_blend`` is 0)."""
        lam = self.config.knn_blend
        memory = self.knn_memory()
        if lam <= 0 or memory is None:
            return X
        nb = memory.mean_of_top_k(X, self.config.knn_k).astype(X.dtype)
        return (1.0 - lam) * X + lam * nb

    def item_params(self, X: Array) -> tuple[Array, Array]:
        """Discrimination ``a`` (n, k) and difficulty ``b`` (n,) for embeddings ``X``."""
        p = self._require()
        X = np.asarray(X, dtype=np.float64)
        _check_xy(X)
        return heads(p, self.warm(X))

    def predict_irt(self, X: Array) -> Array:
        """P(correct) from the IRT heads alone (no kNN score blend), shape (n, G)."""
        a, b = self.item_params(X)
        return sigmoid(a @ self._require().theta.T - b[:, None])

    def predict(self, X: Array) -> Array:
        """P(correct) per configuration, shape (n, G)."""
        P = self.predict_irt(X)
        beta = self.config.knn_p_blend
        memory = self.knn_memory()
        if beta > 0 and memory is not None and self.train_scores is not None:
            idx = memory.top_k(np.asarray(X), self.config.knn_p_k)
            P_knn = knn_scores(self.train_scores.astype(np.float64), idx, P)
            P = (1.0 - beta) * P + beta * P_knn
        if self.family is not None:
            alpha = self.config.family_blend
            P = (1.0 - alpha) * P + alpha * self.family.p(X)
        return P

    @property
    def abilities(self) -> Array:
        return self._require().theta
