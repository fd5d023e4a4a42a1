"""Router quality metrics, defined as the papers' reference code computes them.

- Non-decreasing convex hull and AIQ: RouterBench (Hu et al. 2024). A router is a set of
  (cost, quality) points; random mixing of two routers reaches every point on the segment
  between them, so the hull is what a router can offer. AIQ is the trapezoid area under the
  hull, extended flat to the largest cost of *any* router compared, divided by that cost.
- APGR and CPT(x%): RouteLLM (Ong et al. 2024), for a strong/weak pair of configurations.
- RouterDC's protocol: accuracy of the argmax choice, averaged over benchmarks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


def nondecreasing_hull(costs: np.ndarray, accs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertices of the upper convex hull of (cost, acc) from the cheapest point up to the
    cheapest point of highest accuracy: the non-decreasing convex hull, sorted by cost.

    RouterBench's code builds the same set with a pairwise scan; this is the exact geometric
    hull (Andrew's monotone chain), so it never keeps a point below a mixing chord.
    """
    c = np.asarray(costs, dtype=np.float64).reshape(-1)
    a = np.asarray(accs, dtype=np.float64).reshape(-1)
    if c.shape != a.shape or c.size == 0:
        raise ValueError("costs and accs must be non-empty and of equal length")
    if np.isnan(c).any() or np.isnan(a).any():
        raise ValueError("costs and accs must not contain NaN")
    # At equal cost only the best accuracy matters.
    order = np.lexsort((-a, c))
    c, a = c[order], a[order]
    keep = np.ones(c.size, dtype=bool)
    keep[1:] = c[1:] != c[:-1]
    c, a = c[keep], a[keep]
    hull: list[int] = []
    for i in range(c.size):
        # Pop while the last two hull points and i make a non-right turn (not strictly
        # concave): the middle point lies on or below the chord.
        while len(hull) >= 2:
            j, k = hull[-2], hull[-1]
            cross = (c[k] - c[j]) * (a[i] - a[j]) - (a[k] - a[j]) * (c[i] - c[j])
            if cross >= 0:
                hull.pop()
            else:
                break
        hull.append(i)
    hc, ha = c[hull], a[hull]
    top = int(np.argmax(ha))  # first (cheapest) vertex with the highest accuracy
    return hc[: top + 1], ha[: top + 1]


def _trapezoid(y: np.ndarray, x: np.ndarray) -> float:
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0))


def aiq(fronts: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """AIQ of each router, all in one comparison (the common maximum cost matters).

    ``fronts`` maps a router name to its (costs, accs) points. As in RouterBench's code:
    hull, append (max cost over all routers' hulls, the hull's last accuracy), trapezoid
    area, divided by that max cost. The area starts at each router's cheapest point.
    """
    if not fronts:
        return {}
    hulls = {k: nondecreasing_hull(*v) for k, v in fronts.items()}
    cmax = max(float(h[0][-1]) for h in hulls.values())
    if cmax <= 0:
        raise ValueError("AIQ needs a positive maximum cost")
    out: dict[str, float] = {}
    for k, (hc, ha) in hulls.items():
        x = np.append(hc, cmax)
        y = np.append(ha, ha[-1])
        out[k] = _trapezoid(y, x) / cmax
    return out


def hull_value(costs: np.ndarray, accs: np.ndarray, budget: float) -> float:
    """Best accuracy reachable by mixing the router's points at total cost <= budget
    (the hull, flat after its top); NaN when even the cheapest point costs more."""
    hc, ha = nondecreasing_hull(costs, accs)
    if budget < hc[0]:
        return float("nan")
    return float(np.interp(budget, hc, ha))


def cost_to_reach(costs: np.ndarray, accs: np.ndarray, target: float) -> float:
    """Cheapest cost among a router's operating points with accuracy >= target; inf if none.

    Point-based on purpose (no mixing): it is a cost a deployed router gets at one fixed
    weight, which is what an operator can configure.
    """
    c = np.asarray(costs, dtype=np.float64)
    a = np.asarray(accs, dtype=np.float64)
    ok = a >= target - 1e-12
    return float(c[ok].min()) if ok.any() else float("inf")


def accuracy_within(costs: np.ndarray, accs: np.ndarray, budget: float) -> float:
    """Best accuracy among a router's operating points costing <= budget; NaN if none."""
    c = np.asarray(costs, dtype=np.float64)
    a = np.asarray(accs, dtype=np.float64)
    ok = c <= budget + 1e-12
    return float(a[ok].max()) if ok.any() else float("nan")


@dataclass(frozen=True)
class PairMetrics:
    """RouteLLM's metrics for one router on a strong/weak pair."""

    apgr: float
    cpt50: float  # % of calls to the strong model needed to recover 50% of the gap
    cpt80: float
    strong_pct: np.ndarray  # the operating points (percent of strong calls) ...
    accuracy: np.ndarray  # ... and their accuracy (percent)


def routellm_pair_metrics(
    strong_score: np.ndarray, y_weak: np.ndarray, y_strong: np.ndarray, *, num_results: int = 10
) -> PairMetrics:
    """APGR and CPT(50%), CPT(80%) exactly as RouteLLM's evaluation code computes them.

    ``strong_score`` is the router's per-item preference for the strong model (higher =
    more likely to route strong). Thresholds are the ``num_results``-quantile bin edges of
    the scores, so the strong-call share runs 100%, 90%, ..., 0%. At each threshold the item
    goes strong if score >= threshold (the last edge: > threshold). Accuracy is in percent;
    AUC is the trapezoid of accuracy over the strong share (0..1); APGR = (AUC - weak
    AUC) / (strong AUC - weak AUC); CPT(x) = np.interp of the accuracy that recovers x of
    the gap, over the points sorted by strong share. Items where either score is unknown
    are left out.
    """
    s = np.asarray(strong_score, dtype=np.float64)
    yw = np.asarray(y_weak, dtype=np.float64)
    ys = np.asarray(y_strong, dtype=np.float64)
    ok = ~(np.isnan(yw) | np.isnan(ys) | np.isnan(s))
    s, yw, ys = s[ok], yw[ok], ys[ok]
    if s.size == 0:
        raise ValueError("no items with both scores known")
    weak_acc = float(yw.mean() * 100)
    strong_acc = float(ys.mean() * 100)
    thresholds = np.quantile(s, np.linspace(0.0, 1.0, num_results + 1))
    pct, acc = [], []
    for i, t in enumerate(thresholds):
        sel = s >= t if i != len(thresholds) - 1 else s > t
        acc.append(float(np.where(sel, ys, yw).mean() * 100))
        pct.append(float(sel.mean() * 100))
    order = np.argsort(np.asarray(pct), kind="stable")
    pct_a, acc_a = np.asarray(pct)[order], np.asarray(acc)[order]
    x = pct_a / 100
    auc = _trapezoid(acc_a, x)
    weak_auc = _trapezoid(np.full_like(x, weak_acc), x)
    strong_auc = _trapezoid(np.full_like(x, strong_acc), x)
    gap = strong_auc - weak_auc
    apgr = (auc - weak_auc) / gap if gap != 0 else float("nan")

    def cpt(frac: float) -> float:
        return float(np.interp(frac * (strong_acc - weak_acc) + weak_acc, acc_a, pct_a))

    return PairMetrics(apgr, cpt(0.5), cpt(0.8), pct_a, acc_a)


def routerdc_accuracy(
    choice: np.ndarray, scores: np.ndarray, benchmarks: np.ndarray
) -> tuple[float, dict[str, float]]:
    """RouterDC's protocol: mean score of the chosen configuration per benchmark (percent),
    then the unweighted mean over benchmarks. An unknown outcome earns 0 (see
    :func:`sweep_point`)."""
    ch = np.asarray(choice, dtype=np.int64)
    got = np.nan_to_num(scores[np.arange(len(ch)), ch], nan=0.0)
    per: dict[str, float] = {}
    for b in sorted(set(np.asarray(benchmarks).tolist())):
        m = benchmarks == b
        if m.any():
            per[b] = float(got[m].mean() * 100)
    if not per:
        raise ValueError("no scored items")
    return float(np.mean(list(per.values()))), per


def difficulty_spearman(difficulty: np.ndarray, scores: np.ndarray) -> float:
    """Spearman rank correlation between predicted difficulty and the share of
    configurations that fail the item (1 - mean known score); items with no score dropped."""
    from scipy.stats import spearmanr

    d = np.asarray(difficulty, dtype=np.float64).reshape(-1)
    known = ~np.isnan(scores)
    cnt = known.sum(axis=1)
    ok = (cnt > 0) & ~np.isnan(d)
    if ok.sum() < 3:
        raise ValueError("need at least 3 scored items")
    fail = 1.0 - np.where(known, scores, 0.0).sum(axis=1)[ok] / cnt[ok]
    rho = spearmanr(d[ok], fail).statistic
    return float(rho)


def sweep_point(
    choice: np.ndarray, scores: np.ndarray, cost_matrix: np.ndarray
) -> tuple[float, float]:
    """(total cost, mean score) of routing item i to ``choice[i]``.

    An unknown outcome earns 0 over all n items. "Missing is not wrong" governs training
    (no label, no gradient); in evaluation an answer nobody saw cannot be credited, and
    this is how the data README's reference figures are computed (GPT-4 0.944 on
    routerbench-arc test = 420 known-correct of 445)."""
    idx = np.arange(len(choice))
    got = np.nan_to_num(scores[idx, choice], nan=0.0)
    acc = float(got.mean()) if len(got) else float("nan")
    return float(cost_matrix[idx, choice].sum()), acc


def routing_accuracy(P: np.ndarray, Y: np.ndarray, benchmarks: np.ndarray) -> float:
    """Mean score of the argmax configuration per benchmark, averaged (percent).

    Only configurations with a known score for an item compete for it, so files with
    different candidate sets can be mixed.
    """
    Pm = np.where(np.isnan(Y), -np.inf, P)
    has = ~np.all(np.isnan(Y), axis=1)
    ch = Pm.argmax(axis=1)
    got = Y[np.arange(len(ch)), ch]
    per = [got[has & (benchmarks == b)].mean() for b in np.unique(benchmarks[has])]
    return float(np.mean(per) * 100) if per else float("nan")
