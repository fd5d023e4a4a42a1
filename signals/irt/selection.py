"""Selection rules: pick a configuration from P(correct) and cost.

Cost normalization. Prices of candidate models span orders of magnitude (a 7B model at
$0.0001 per ARC question, GPT-4 at $0.005). A linear rescale to [0, 1] squashes every cheap
model to ~0, so the weight ``w`` would only ever choose between "cheapest" and "dearest".
We therefore normalize on a log scale between the cheapest and the dearest candidate:

    norm(c) = (log c - log c_min) / (log c_max - log c_min)

0 is the cheapest candidate, 1 the dearest, and each step in between is a constant price
*ratio*. This makes ``w`` independent of the currency unit and of the overall price level,
so the same ``w`` means the same trade-off on any data set. Zero costs are clipped to
``c_max * 1e-6``. When every candidate costs the same, all normalized costs are 0 and every
rule reduces to "highest P". Unknown (NaN) costs count as dearest (1.0), the cautious side.

Ties are broken towards the cheaper configuration, then the higher P, then the lower index.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

import numpy as np

_FLOOR_RATIO = 1e-6
_TIE_DECIMALS = 12


def normalize_costs(cost: np.ndarray) -> np.ndarray:
    """Log-scale costs to [0, 1] between the cheapest and dearest candidate (last axis)."""
    c = np.asarray(cost, dtype=np.float64)
    if c.ndim not in (1, 2):
        raise ValueError(f"cost must be (G,) or (n, G), got shape {c.shape}")
    if c.shape[-1] == 0:
        raise ValueError("no candidate configurations")
    if np.any(c < 0):
        raise ValueError("costs must be >= 0")
    nan = np.isnan(c)
    # Not np.nanmax: it warns on a row with no known cost, a case served on purpose.
    cmax = np.max(np.where(nan, -np.inf, c), axis=-1, keepdims=True)
    cmax = np.where(np.isinf(cmax), 0.0, cmax)
    floor = np.maximum(cmax * _FLOOR_RATIO, np.finfo(np.float64).tiny)
    logc = np.log(np.maximum(np.where(nan, cmax, c), floor))
    lo = np.min(np.where(nan, np.inf, logc), axis=-1, keepdims=True)
    hi = np.log(np.maximum(cmax, floor))
    span = hi - lo
    with np.errstate(all="ignore"):
        out = np.where(span > 0, (logc - lo) / np.where(span > 0, span, 1.0), 0.0)
    out = np.clip(out, 0.0, 1.0)
    return np.where(nan, 1.0, out)


@lru_cache(maxsize=1024)
def _normalized(cost: tuple[float, ...]) -> np.ndarray:
    out = normalize_costs(np.asarray(cost, dtype=np.float64))
    out.flags.writeable = False  # shared between calls
    return out


def _prepare(p: np.ndarray, cost: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    pa = np.asarray(p, dtype=np.float64)
    single = pa.ndim == 1
    p2 = pa[None, :] if single else pa
    if p2.ndim != 2:
        raise ValueError(f"p must be (G,) or (n, G), got shape {pa.shape}")
    c = np.asarray(cost, dtype=np.float64)
    # One request's candidates: their costs rarely change between requests (catalog prices),
    # and normalizing is most of a selection's ~20 small numpy calls.
    nc = _normalized(tuple(c.tolist())) if c.ndim == 1 else normalize_costs(c)
    if nc.shape[-1] != p2.shape[1]:
        raise ValueError(f"cost has {nc.shape[-1]} configurations, p has {p2.shape[1]}")
    nc2 = np.broadcast_to(nc if nc.ndim == 2 else nc[None, :], p2.shape)
    if np.isnan(p2).any():
        raise ValueError("p contains NaN")
    return p2, nc2, single


def _argmin_lex(objective: np.ndarray, nc: np.ndarray, p: np.ndarray) -> np.ndarray:
    # Minimize objective (rounded so float noise is a tie), then cost, then -P.
    obj = np.round(objective, _TIE_DECIMALS)
    order = np.lexsort((-p, nc, obj), axis=-1)
    return order[:, 0]


def _out(idx: np.ndarray, single: bool) -> np.ndarray | int:
    return int(idx[0]) if single else idx.astype(np.int64)


def _check_w(w: float) -> float:
    if not 0.0 <= w <= 1.0:
        raise ValueError(f"w must be in [0, 1], got {w}")
    return float(w)


def select_linear(p: np.ndarray, cost: np.ndarray, w: float) -> np.ndarray | int:
    """argmax_g  w * P_g - (1 - w) * norm_cost_g   (w = 1: quality only, w = 0: cost only)."""
    w = _check_w(w)
    p2, nc, single = _prepare(p, cost)
    return _out(_argmin_lex(-(w * p2 - (1.0 - w) * nc), nc, p2), single)


def select_chebyshev(p: np.ndarray, cost: np.ndarray, w: float) -> np.ndarray | int:
    """argmin_g  max(w * (1 - P_g), (1 - w) * norm_cost_g): RADAR's Chebyshev rule, which
    can reach non-convex parts of the front that linear scalarization skips."""
    w = _check_w(w)
    p2, nc, single = _prepare(p, cost)
    obj = np.maximum(w * (1.0 - p2), (1.0 - w) * nc)
    return _out(_argmin_lex(obj, nc, p2), single)


def select_target(p: np.ndarray, cost: np.ndarray, target: float) -> np.ndarray | int:
    """The cheapest configuration with P >= target; where none reaches it, the highest P."""
    p2, nc, single = _prepare(p, cost)
    ok = p2 >= target
    # Among qualifying ones minimize cost; where none qualifies, minimize -P.
    obj = np.where(ok.any(axis=1, keepdims=True), np.where(ok, nc, np.inf), -p2)
    return _out(_argmin_lex(obj, nc, p2), single)


# --- expected cost per configuration ----------------------------------------------------


def known_costs(
    configs: tuple[str, ...] | list[str],
    costs: np.ndarray | None = None,
    *,
    prices: Mapping[str, tuple[float, float]] | None = None,
    input_tokens: float | None = None,
    output_tokens: float = 256.0,
) -> np.ndarray:
    """Expected USD per query for each configuration, shape (G,), NaN where unknown.

    In order of preference: the mean of the data's observed costs (``costs``, (n, G), NaN
    ignored); else a price table ``config -> (USD per 1M input tokens, USD per 1M output
    tokens)`` times the expected tokens. What a router card records: a configuration that
    neither prices stays unknown there.
    """
    g = len(configs)
    out = np.full(g, np.nan)
    if costs is not None:
        c = np.asarray(costs, dtype=np.float64)
        if c.ndim != 2 or c.shape[1] != g:
            raise ValueError(f"costs must be (n, {g}), got {c.shape}")
        seen = ~np.isnan(c)
        cnt = seen.sum(axis=0)
        tot = np.where(seen, c, 0.0).sum(axis=0)
        out = np.where(cnt > 0, tot / np.maximum(cnt, 1), np.nan)
    if prices:
        if input_tokens is None:
            raise ValueError("a price table needs the expected input tokens")
        for j, cfg in enumerate(configs):
            if np.isnan(out[j]) and cfg in prices:
                pin, pout = prices[cfg]
                out[j] = (pin * input_tokens + pout * output_tokens) / 1e6
    return out


def expected_costs(
    configs: tuple[str, ...] | list[str],
    costs: np.ndarray | None = None,
    *,
    prices: Mapping[str, tuple[float, float]] | None = None,
    input_tokens: float | None = None,
    output_tokens: float = 256.0,
) -> np.ndarray:
    """:func:`known_costs` with every configuration priced, for offline evaluation.

    A configuration with no observed cost and no price gets the dearest known cost
    (cautious); when nothing is known, 1.0 for every configuration (all-equal: cost then
    plays no part in selection).
    """
    out = known_costs(
        configs, costs, prices=prices, input_tokens=input_tokens, output_tokens=output_tokens
    )
    if np.isnan(out).all():
        return np.ones(len(configs))
    return np.where(np.isnan(out), np.nanmax(out), out)


def realized_costs(costs: np.ndarray | None, expected: np.ndarray, n: int) -> np.ndarray:
    """Per-item cost matrix (n, G): the observed cost, or the expected one where unknown."""
    e = np.broadcast_to(np.asarray(expected, dtype=np.float64), (n, len(expected)))
    if costs is None:
        return e.copy()
    return np.where(np.isnan(costs), e, costs)
