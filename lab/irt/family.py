"""The task-family prior: which training benchmark a query resembles, and how each
configuration did there.

Why: on data like RouterDC's, models' item-level differences are mostly noise, while their
benchmark-level differences (one model strong on maths, another on science questions) are
large and stable, so per-item P can lose to a fixed choice per benchmark (the measurements
are in docs/router.md and benchmarks/reports/router_quality.md). The prior keeps that stable
part explicitly::

    π(e)    = softmax(e·W + c)          the query's family posterior (multinomial logistic)
    P_fam   = π(e) · A                  A[f, g] = mean score of configuration g on family f
    P       = (1 − α)·P_model + α·P_fam

Families are the data's ``benchmark`` labels, so the table ``A`` is readable as is ("on
items like gsm8k, this configuration scored ..."). Where a configuration has no observed
score in a family (files with different candidates), ``A`` holds the model's own mean P there.
``W`` and ``c`` are divided by the temperature ``T`` before they are stored: a softer
posterior (T > 1) spreads a query over several families, which is what an unseen kind of
query needs. α, the classifier's regularisation and T are chosen by cross-validation in
:func:`choose`; α = 0 is a valid outcome, and then the prior is not used.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from irtgate.lab.irt.metrics import routing_accuracy

Array = np.ndarray

# Grid searched by `choose`. α = 0 keeps the plain model; T > 1 softens the posterior.
BLENDS = (0.0, 0.25, 0.5, 0.75, 1.0)
CS = (1.0, 10.0, 100.0)
TEMPERATURES = (1.0, 2.0, 4.0)


@dataclass(frozen=True)
class FamilyPrior:
    """A fitted prior. ``W`` (d, F) and ``c`` (F,) already include the temperature."""

    names: tuple[str, ...]
    W: Array
    c: Array
    table: Array  # (F, G)
    observed: Array  # (F, G) bool: table entry is an observed mean (else the model's P)
    counts: tuple[int, ...]  # training items per family

    def posterior(self, X: Array) -> Array:
        z = np.asarray(X, dtype=np.float64) @ self.W + self.c
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        out: Array = e / e.sum(axis=1, keepdims=True)
        return out

    def p(self, X: Array) -> Array:
        out: Array = self.posterior(X) @ self.table
        return out


def fit_classifier(X: Array, labels: Array, C: float) -> tuple[Array, Array, tuple[str, ...]]:
    """Multinomial logistic regression of ``labels`` on ``X``: (W (d, F), c (F,), names)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    names, y = np.unique(np.asarray(labels).astype(str), return_inverse=True)
    if len(names) < 2:
        raise ValueError("a family prior needs at least two families (benchmarks)")
    with warnings.catch_warnings():
        # lbfgs may stop at max_iter on separable families; the posterior is still usable.
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = LogisticRegression(C=C, max_iter=2000).fit(X, y)
    W, c = clf.coef_.T.astype(np.float64), clf.intercept_.astype(np.float64)
    if len(names) == 2:
        # sklearn fits two classes as one logit (class 1 against class 0); as softmax logits
        # that is (0, z).
        W, c = np.hstack([np.zeros_like(W), W]), np.concatenate([[0.0], c])
    return W, c, tuple(str(n) for n in names)


def family_table(
    Y: Array, labels: Array, names: Sequence[str], fallback: Array
) -> tuple[Array, Array]:
    """Mean observed score per (family, configuration); ``fallback`` (n, G) (the model's
    P on the same items) where a family has no observed score for a configuration."""
    lab = np.asarray(labels).astype(str)
    F, G = len(names), Y.shape[1]
    table, observed = np.zeros((F, G)), np.zeros((F, G), dtype=bool)
    for f, name in enumerate(names):
        rows = lab == name
        Yf = Y[rows]
        n_obs = (~np.isnan(Yf)).sum(axis=0)
        observed[f] = n_obs > 0
        mean_obs = np.nansum(Yf, axis=0) / np.maximum(n_obs, 1)
        table[f] = np.where(observed[f], mean_obs, fallback[rows].mean(axis=0))
    return table, observed


def fit_prior(
    X: Array, Y: Array, labels: Array, fallback: Array, *, C: float, temperature: float
) -> FamilyPrior:
    W, c, names = fit_classifier(X, labels, C)
    table, observed = family_table(Y, labels, names, fallback)
    lab = np.asarray(labels).astype(str)
    return FamilyPrior(
        names=names,
        W=W / temperature,
        c=c / temperature,
        table=table,
        observed=observed,
        counts=tuple(int((lab == n).sum()) for n in names),
    )


# fit_model(X, Y) -> predict(X') -> P: the model the prior is blended into.
FitModel = Callable[[Array, Array], Callable[[Array], Array]]


def _scores(
    fit_model: FitModel, X: Array, Y: Array, labels: Array, fi: Array, vi: Array
) -> dict[tuple[float, float, float], float]:
    """Validation routing accuracy of every (α, C, T) for one fit/validation division."""
    predict = fit_model(X[fi], Y[fi])
    P_fit, P_val = predict(X[fi]), predict(X[vi])
    out: dict[tuple[float, float, float], float] = {}
    for C in CS:
        prior = fit_prior(X[fi], Y[fi], labels[fi], P_fit, C=C, temperature=1.0)
        for T in TEMPERATURES:
            soft = replace(prior, W=prior.W / T, c=prior.c / T)
            P_fam = soft.p(X[vi])
            for a in BLENDS:
                P = (1 - a) * P_val + a * P_fam
                out[(a, C, T)] = routing_accuracy(P, Y[vi], labels[vi])
    return out


def _comparable(Y: Array, held: Array) -> bool:
    """Whether a held-out family can be routed by the rest: at least two of the
    configurations scored on it are scored elsewhere too (a file whose candidates appear
    nowhere else would only measure untrained abilities)."""
    inside = (~np.isnan(Y[held])).any(axis=0)
    outside = (~np.isnan(Y[~held])).any(axis=0)
    return int((inside & outside).sum()) >= 2


def choose(
    fit_model: FitModel,
    X: Array,
    Y: Array,
    labels: Array,
    *,
    folds: int = 5,
    seed: int = 0,
    on_step: Callable[[str], None] | None = None,
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Choose (α, C, T) on the training items alone.

    The score of a setting is the mean of two validation accuracies: ``folds``-fold
    cross-validation (queries like the training ones) and leave-one-family-out (each family
    held out in turn, the rest fitted: queries of an unseen kind, where a confident wrong
    posterior hurts); a family is left out of the latter when fewer than two of its
    configurations are scored elsewhere. Ties go to the smaller α. Returns the choice and
    the table.
    """
    X = np.asarray(X, dtype=np.float64)
    lab = np.asarray(labels).astype(str)
    fams = np.unique(lab)
    if len(fams) < 2:
        raise ValueError("choosing a family prior needs at least two families")
    fold = np.random.default_rng(seed).permutation(len(X)) % folds
    cv: dict[tuple[float, float, float], list[float]] = {}
    for f in range(folds):
        for key, v in _scores(fit_model, X, Y, lab, fold != f, fold == f).items():
            cv.setdefault(key, []).append(v)
        if on_step is not None:
            on_step(f"family prior: fold {f + 1}/{folds}")
    held: dict[tuple[float, float, float], list[float]] = {}
    if len(fams) >= 3:  # leaving one out must leave two families to classify between
        for fam in fams:
            if not _comparable(Y, lab == fam):
                continue
            for key, v in _scores(fit_model, X, Y, lab, lab != fam, lab == fam).items():
                held.setdefault(key, []).append(v)
            if on_step is not None:
                on_step(f"family prior: {fam} held out")
    rows: list[dict[str, Any]] = []
    for key, vals in cv.items():
        a, C, T = key
        cv_acc = float(np.mean(vals))
        ho = float(np.mean(held[key])) if key in held else float("nan")
        score = cv_acc if np.isnan(ho) else (cv_acc + ho) / 2
        rows.append(
            {
                "family_blend": a,
                "family_c": C,
                "family_temperature": T,
                "cv_routing_acc": round(cv_acc, 3),
                "held_out_family_acc": None if np.isnan(ho) else round(ho, 3),
                "score": round(score, 3),
            }
        )
    best = max(rows, key=lambda r: (r["score"], -r["family_blend"]))
    if best["family_blend"] == 0.0:
        chosen = {"family_blend": 0.0, "family_c": CS[0], "family_temperature": 1.0}
    else:
        chosen = {k: float(best[k]) for k in ("family_blend", "family_c", "family_temperature")}
    return chosen, rows
