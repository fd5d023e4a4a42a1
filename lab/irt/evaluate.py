"""One evaluation run: every method on the same split and the same embeddings.

Fixed routers (each single configuration, a random mix, the oracle, the Zero router) and
predictors (kNN, logistic, MLP, matrix factorisation, irtgate's IRT model) are scored with
the same metrics. A predictor's P(correct) is turned into choices by sweeping the weight w
with linear and Chebyshev selection, using the expected per-configuration cost learned from
the training data (the router never sees a test item's cost); the cost of a choice is then
what the test item actually cost where the data says so.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from irtgate.lab.irt import baselines as bl
from irtgate.lab.irt.data import RoutingData
from irtgate.lab.irt.metrics import (
    accuracy_within,
    aiq,
    cost_to_reach,
    difficulty_spearman,
    routellm_pair_metrics,
    routerdc_accuracy,
    sweep_point,
)
from irtgate.signals.irt.selection import (
    expected_costs,
    realized_costs,
    select_chebyshev,
    select_linear,
    select_target,
)

DEFAULT_WS = tuple(float(w) for w in np.linspace(0.0, 1.0, 41))
RULES: dict[str, Callable[[np.ndarray, np.ndarray, float], np.ndarray | int]] = {
    "linear": select_linear,
    "chebyshev": select_chebyshev,
    # "Cheapest with P >= target", with the sweep value read as the target.
    "target": select_target,
}


@runtime_checkable
class Method(Protocol):
    """A learned router: P(correct) per configuration from a query embedding."""

    name: str

    def fit(self, X: np.ndarray, Y: np.ndarray, costs: np.ndarray | None) -> None:
        """X (n, d) embeddings, Y (n, G) soft labels in [0, 1] with NaN = unknown."""

    def predict(self, X: np.ndarray) -> np.ndarray:
        """(n, G) predicted P(correct)."""


def fit_method(
    m: Method, X: np.ndarray, Y: np.ndarray, costs: np.ndarray | None, groups: np.ndarray | None
) -> None:
    """Fit ``m``, handing it the items' benchmarks when it takes them (``uses_groups``, e.g.
    the IRT model for its family prior)."""
    if getattr(m, "uses_groups", False):
        m.fit(X, Y, costs, groups=groups)  # type: ignore[call-arg]
    else:
        m.fit(X, Y, costs)


def irt_method(hyperparameters: dict[str, Any] | None = None) -> Method | None:
    """irtgate's IRT model if its module is present, else None (evaluation runs without it).

    ``hyperparameters`` (e.g. a router card's) are passed on where the model knows them,
    except the family prior's, which are chosen on the training items as ``irtgate train``
    chooses them.
    """
    try:
        from irtgate.lab.irt.model import IRTConfig
        from irtgate.lab.irt.train import FamilyCVIRT
    except ImportError:
        return None
    known = {f.name for f in fields(IRTConfig)}
    hp = {
        k: v
        for k, v in (hyperparameters or {}).items()
        if k in known and not k.startswith("family_")
    }
    model: Method = FamilyCVIRT(**hp)
    return model


class ShippedRouter:
    """A trained router directory used as it is: ``fit`` does nothing, ``predict`` runs its
    ONNX heads. Its training data may overlap the test items: read its card."""

    def __init__(self, directory: Path, configs: Sequence[str], name: str = "irtgate-shipped"):
        from irtgate.signals.irt.runtime import IRTRouter

        self.name = name
        self.router = IRTRouter.load(directory)
        missing = [c for c in configs if c not in self.router.configs]
        if missing:
            raise ValueError(f"router {directory} does not know configurations {missing}")
        self.columns = [self.router.configs.index(c) for c in configs]

    def fit(self, X: np.ndarray, Y: np.ndarray, costs: np.ndarray | None) -> None:
        del X, Y, costs

    def predict(self, X: np.ndarray) -> np.ndarray:
        p = self.router.predict_batch(np.asarray(X, dtype=np.float32))[2]
        return np.asarray(p, dtype=np.float64)[:, self.columns]


def default_methods(
    *, seed: int = 0, irt_hyperparameters: dict[str, Any] | None = None
) -> list[Method]:
    """The learned baselines plus irtgate's model (when available)."""
    methods: list[Method] = list(bl.default_predictors(seed))
    irt = irt_method(irt_hyperparameters)
    if irt is not None:
        methods.append(irt)
    return methods


def _num(x: float) -> float | None:
    # JSON has no NaN/inf: unknown or unreachable values become null.
    return None if x is None or not math.isfinite(x) else float(x)


def _pair_indices(
    configs: tuple[str, ...], expected: np.ndarray, train: RoutingData
) -> tuple[int, int]:
    # RouteLLM's strong model is the dearer one; on equal cost, the more accurate on train.
    acc = np.nanmean(train.scores, axis=0) if len(train) else np.zeros(len(configs))
    order = sorted(range(len(configs)), key=lambda g: (expected[g], np.nan_to_num(acc[g])))
    return order[0], order[-1]


def evaluate(
    train: RoutingData,
    test: RoutingData,
    X_train: np.ndarray,
    X_test: np.ndarray,
    methods: Sequence[Method],
    *,
    ws: Sequence[float] = DEFAULT_WS,
    budget_frac: float = 0.15,
    seed: int = 0,
    progress: bool = False,
    label: str = "",
    fitted: bool = False,
    prices: Mapping[str, tuple[float, float]] | None = None,
    output_tokens: float = 256.0,
) -> dict[str, Any]:
    """Run every fixed router and every method; return the report (JSON-ready dict).

    With ``fitted`` the methods are used as they are (already fitted on ``train``, e.g. for
    a second test set of the same protocol) and only predict. ``prices`` (configuration ->
    USD per 1M input and output tokens) prices configurations the data has no costs for:
    input tokens are estimated from the training prompts (4 characters a token), output
    tokens are ``output_tokens``.
    """
    from tqdm import tqdm

    if train.configs != test.configs:
        raise ValueError("train and test must have the same configurations")
    if len(train) == 0 or len(test) == 0:
        raise ValueError(f"empty split: {len(train)} train items, {len(test)} test items")
    if X_train.shape[0] != len(train) or X_test.shape[0] != len(test):
        raise ValueError("embeddings and items differ in number")
    configs = test.configs
    G = len(configs)
    in_tokens = float(np.mean([len(p) for p in train.prompts])) / 4.0
    # Prices are public, outcomes are not: test costs may price what training lacks.
    observed = train.costs if train.costs is not None else test.costs
    expected = expected_costs(
        configs, observed, prices=prices, input_tokens=in_tokens, output_tokens=output_tokens
    )
    cost_known = observed is not None or bool(prices)
    cm = realized_costs(test.costs, expected, len(test))
    S, bench = test.scores, test.benchmarks
    pair = _pair_indices(configs, expected, train) if G == 2 else None

    entries: dict[str, dict[str, Any]] = {}
    fronts: dict[str, dict[str, list[tuple[float, float]]]] = {}

    def add_fixed(
        name: str,
        kind: str,
        points: list[tuple[float, float]],
        choice: np.ndarray | None,
        strong_score: np.ndarray | None = None,
    ) -> None:
        e: dict[str, Any] = {"kind": kind}
        if choice is not None:
            avg, per = routerdc_accuracy(choice, S, bench)
            e["routerdc_accuracy"], e["routerdc_per_benchmark"] = avg, per
        if pair is not None and strong_score is not None:
            _add_pair(e, strong_score)
        entries[name] = e
        fronts[name] = {"fixed": points}

    def _add_pair(e: dict[str, Any], s: np.ndarray) -> None:
        assert pair is not None
        weak, strong = pair
        pm = routellm_pair_metrics(s, S[:, weak], S[:, strong])
        e.update(apgr=pm.apgr, cpt50=pm.cpt50, cpt80=pm.cpt80)

    # -- fixed routers -----------------------------------------------------------------------
    singles = bl.single_points(S, cm)
    for g, cfg in enumerate(configs):
        add_fixed(f"single:{cfg}", "single", [singles[g]], np.full(len(test), g))
    rng = np.random.default_rng(seed)
    rnd = bl.random_choice(len(test), G, seed)
    add_fixed("random", "baseline", [sweep_point(rnd, S, cm)], rnd, rng.random(len(test)))
    orc = bl.oracle_choice(S, cm)
    orc_s = None
    if pair is not None:
        orc_s = np.nan_to_num(S[:, pair[1]]) - np.nan_to_num(S[:, pair[0]])
        orc_s = orc_s + 1e-9 * rng.random(len(test))  # RouteLLM needs distinct quantiles
    add_fixed("oracle", "baseline", [sweep_point(orc, S, cm)], orc, orc_s)
    add_fixed("zero-router", "baseline", bl.zero_router_points(singles), None)
    if pair is not None:
        entries["zero-router"].update(apgr=0.5)  # a random mix recovers the gap linearly

    # -- learned routers ---------------------------------------------------------------------
    for m in tqdm(list(methods), desc="methods", unit="method", disable=not progress):
        e: dict[str, Any] = {"kind": "predictor"}
        if not fitted:
            t0 = time.perf_counter()
            fit_method(
                m,
                X_train,
                train.scores,
                realized_costs(train.costs, expected, len(train)),
                train.benchmarks,
            )
            e["fit_seconds"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        P = np.asarray(m.predict(X_test), dtype=np.float64)
        e["predict_ms_per_item"] = (time.perf_counter() - t0) * 1000 / len(test)
        if P.shape != (len(test), G):
            raise ValueError(f"{m.name} predicted shape {P.shape}, expected {(len(test), G)}")
        avg, per = routerdc_accuracy(np.argmax(P, axis=1), S, bench)
        e["routerdc_accuracy"], e["routerdc_per_benchmark"] = avg, per
        fr: dict[str, list[tuple[float, float]]] = {}
        sweeps: dict[str, list[list[float]]] = {}
        for rule, fn in RULES.items():
            pts = []
            for w in ws:
                ch = np.asarray(fn(P, expected, w))
                c, a = sweep_point(ch, S, cm)
                pts.append([w, c, a])
            sweeps[rule] = pts
            fr[rule] = [(p[1], p[2]) for p in pts]
        e["sweep"] = sweeps
        e["difficulty_spearman"] = _spearman(1.0 - P.mean(axis=1), S)
        if hasattr(m, "item_params"):
            with contextlib.suppress(RuntimeError, ValueError, AttributeError):
                disc, b = (np.asarray(v) for v in m.item_params(X_test))
                theta = getattr(m, "abilities", None)
                # The IRT router's reported difficulty: b - a·mean(theta), minus the logit
                # of P for a configuration of average ability (see irtgate.lab.irt.export).
                d = b - disc @ np.asarray(theta).mean(axis=0) if theta is not None else b
                e["difficulty_spearman_irt"] = _spearman(d, S)
        if pair is not None:
            _add_pair(e, P[:, pair[1]] - P[:, pair[0]])
        for attr in ("chosen_k",):
            if getattr(m, attr, None) is not None:
                e[attr] = getattr(m, attr)
        entries[m.name] = e
        fronts[m.name] = fr

    # -- front metrics, all methods together (AIQ shares one max cost) -------------------------
    best_g = max(range(G), key=lambda g: (np.nan_to_num(singles[g][1], nan=-1.0), -singles[g][0]))
    best_cost, best_acc = singles[best_g]
    budget = budget_frac * best_cost
    all_pts = {k: [p for pts in fr.values() for p in pts] for k, fr in fronts.items()}
    aiqs = aiq({k: _xy(v) for k, v in all_pts.items()})
    per_rule = {
        rule: aiq({k: _xy(v[rule] if rule in v else v["fixed"]) for k, v in fronts.items()})
        for rule in RULES
    }
    for k, e in entries.items():
        cs, accs = _xy(all_pts[k])
        top = int(np.lexsort((cs, -accs))[0])
        e["aiq"] = aiqs[k]
        if e["kind"] == "predictor":
            for rule in RULES:
                e[f"aiq_{rule}"] = per_rule[rule][k]
        e["max_accuracy"], e["cost_at_max_accuracy"] = float(accs[top]), float(cs[top])
        e["cost_to_reach_best_single"] = cost_to_reach(cs, accs, best_acc)
        e["accuracy_within_budget"] = accuracy_within(cs, accs, budget)
        if e["kind"] != "predictor":
            e["points"] = [[float(x), float(y)] for x, y in all_pts[k]]

    report: dict[str, Any] = _clean(
        {
            "label": label,
            "n_train": len(train),
            "n_test": len(test),
            "configs": list(configs),
            "cost_source": "data" if cost_known else "none (all configurations cost 1 per query)",
            "expected_cost": dict(zip(configs, expected.tolist(), strict=True)),
            "best_single": {"config": configs[best_g], "accuracy": best_acc, "cost": best_cost},
            "budget": {"fraction_of_best_single_cost": budget_frac, "cost": budget},
            "pair": None
            if pair is None
            else {"weak": configs[pair[0]], "strong": configs[pair[1]]},
            "ws": list(ws),
            "methods": entries,
        }
    )
    return report


def _xy(points: list[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    arr = np.array([p for p in points if not math.isnan(p[1])], dtype=np.float64).reshape(-1, 2)
    return arr[:, 0], arr[:, 1]


def _spearman(d: np.ndarray, S: np.ndarray) -> float:
    try:
        return difficulty_spearman(d, S)
    except ValueError:
        return float("nan")


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, float | np.floating):
        return _num(float(obj))
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


# --- choosing the split and embedding ---------------------------------------------------------


def choose_split(
    data: RoutingData,
    split: str = "test",
    *,
    protocol: str = "auto",
    holdout: Sequence[str] | None = None,
    seed: int = 42,
) -> tuple[RoutingData, RoutingData, str]:
    """(train, test, description) for ``split`` "test" (in-distribution) or "ood".

    ``protocol`` "routerdc" (or "auto" when the data has all of RouterDC's benchmarks and no
    ``holdout`` is given) applies RouterDC's protocol; otherwise "test" uses the data's own
    split (70/30 per benchmark, seeded, where items have none) and "ood" holds out the
    ``holdout`` benchmarks (all items of them) and trains on every other benchmark.
    """
    from irtgate.lab.irt.data import (
        ROUTERDC_ID,
        ROUTERDC_OOD,
        benchmark_mask,
        ood_split,
        routerdc_protocol,
        train_test_split,
    )

    if split not in ("test", "ood"):
        raise ValueError(f"split must be 'test' or 'ood', got {split!r}")
    if protocol not in ("auto", "routerdc", "plain"):
        raise ValueError(f"protocol must be auto, routerdc or plain, got {protocol!r}")
    has_rdc = all(benchmark_mask(data, [b]).any() for b in (*ROUTERDC_ID, *ROUTERDC_OOD))
    if protocol == "routerdc" or (protocol == "auto" and has_rdc and not holdout):
        tr, ti, to = routerdc_protocol(data)
        if split == "test":
            return tr, ti, "RouterDC protocol, in-distribution test"
        return tr, to, "RouterDC protocol, out-of-distribution test"
    if split == "test":
        tr, te = train_test_split(data, seed=seed)
        return tr, te, f"own split (70/30 per benchmark, seed {seed}, where absent)"
    if not holdout:
        raise ValueError("an OOD split needs the benchmarks to hold out (--holdout)")
    tr, te = ood_split(data, holdout)
    return tr, te, f"out-of-distribution: held out {', '.join(holdout)}"


def embed_items(
    encoder: str, items: Sequence[RoutingData], *, progress: bool = True
) -> list[np.ndarray]:
    """Embeddings of each data set's prompts with ``encoder`` (one cached corpus pass)."""
    from irtgate.lab.encoders.cache import embed_corpus

    texts = [t for d in items for t in d.prompts]
    X = np.asarray(embed_corpus(encoder, texts, progress=progress), dtype=np.float32)
    out, start = [], 0
    for d in items:
        out.append(X[start : start + len(d)])
        start += len(d)
    return out
