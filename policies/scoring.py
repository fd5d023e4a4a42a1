"""Scoring and selecting a decision's candidates: P(correct), expected cost, the objective.

P comes from the router's :class:`~irtgate.signals.irt.router_api.RouterScores` for the
request, read from the request's signal context, so a difficulty signal that already ran
has paid for it. A cost is a :data:`~irtgate.signals.irt.router_api.Cost`: USD, or None
when nothing prices the entry (no ``cost``, no ``price``, and the router's card has no
cost for its configuration).

Unknown costs in selection (documented in docs/policies.md): a candidate whose cost is
unknown counts as the dearest: the top of the normalized cost scale (cost′ = 1), at least
as dear as the dearest candidate with a known cost (the cautious side, see
:mod:`irtgate.signals.irt.selection`); when no candidate has a known cost, cost plays no
part and P alone decides. A ``max_cost`` cap never admits a candidate of unknown cost.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from irtgate.policies.spec import CatalogEntry, Objective
from irtgate.signals.base import SignalContext, Value
from irtgate.signals.errors import NO_CANDIDATE
from irtgate.signals.irt.router_api import Cost, Router, RouterScores
from irtgate.signals.request import LLMRequest


@dataclass(frozen=True, slots=True)
class Scored:
    """The candidates left after the plugins, each with P(correct) and expected cost."""

    entries: tuple[CatalogEntry, ...]
    # P per entry, or None when the router was not consulted (no router, one candidate,
    # or no candidate with a router configuration).
    p: tuple[float, ...] | None
    cost: tuple[Cost, ...]
    scores: RouterScores | None = None  # the router's read-out, when it was consulted


@dataclass(frozen=True, slots=True)
class Selection:
    entry: CatalogEntry
    p: float | None  # None when the router was not consulted
    cost: Cost


def entry_cost(e: CatalogEntry, router: Router | None, input_tokens: float) -> Cost:
    """Expected USD of one request to ``e``: its own cost, its price, else the router's."""
    if e.cost is not None:
        return float(e.cost)
    if e.price is not None:
        return (
            e.price.input_per_mtok * input_tokens
            + e.price.output_per_mtok * e.price.expected_output_tokens
        ) / 1e6
    if router is not None and e.router_config is not None:
        return router.expected_cost.get(e.router_config)
    return None


def input_tokens(req: LLMRequest, values: Mapping[str, Mapping[str, Value] | None]) -> float:
    """The request's input tokens: the length signal's count if it ran, else an estimate."""
    vals = values.get("length")
    tok = vals.get("tokens") if vals else None
    if isinstance(tok, int | float) and not isinstance(tok, bool):
        return float(tok)
    # About four characters per token: only for pricing when no length signal ran.
    return sum(len(m.text) for m in req.messages) / 4.0


def score(
    cands: Sequence[CatalogEntry], router: Router | None, ctx: SignalContext, tokens: float
) -> Scored:
    """P and cost per candidate; the encoder and the router run only when P can change
    the choice (more than one candidate, and some have a router configuration)."""
    scores = None
    p = None
    if router is not None and len(cands) > 1 and any(c.router_config for c in cands):
        scores = ctx.router_scores(router)
        p = tuple(float(scores.p.get(c.router_config or "", 0.0)) for c in cands)
    cost = tuple(entry_cost(c, router, tokens) for c in cands)
    return Scored(tuple(cands), p, cost, scores)


def select(obj: Objective, scored: Scored, decision: str) -> Selection:
    """Apply the objective's cost cap, then its rule. Raises NO_CANDIDATE if the cap
    leaves nothing."""
    keep = list(range(len(scored.entries)))
    if obj.max_cost is not None:
        cap = obj.max_cost
        keep = [i for i in keep if (c := scored.cost[i]) is not None and c <= cap]
        if not keep:
            raise NO_CANDIDATE.with_message(
                f"no candidate of decision {decision!r} costs at most {cap:g}"
            )
    if len(keep) == 1:
        i = keep[0]
    else:
        p = [scored.p[i] if scored.p is not None else 0.0 for i in keep]
        i = keep[_rule(obj, p, [scored.cost[i] for i in keep])]
    return Selection(scored.entries[i], None if scored.p is None else scored.p[i], scored.cost[i])


def baseline_cost(
    cands: Sequence[CatalogEntry], router: Router | None, tokens: float
) -> float | None:
    """The dearest known cost among ``cands``: what the request would cost unrouted."""
    known = [c for e in cands if (c := entry_cost(e, router, tokens)) is not None]
    return max(known) if known else None


def _rule(obj: Objective, p: list[float], cost: list[Cost]) -> int:
    import numpy as np

    from irtgate.signals.irt.selection import select_chebyshev, select_linear, select_target

    # The selection rules read NaN as "unknown: the top of the cost scale".
    pa = np.asarray(p, dtype=np.float64)
    ca = np.asarray([math.nan if c is None else c for c in cost], dtype=np.float64)
    if obj.method == "target":
        assert obj.target is not None
        return int(select_target(pa, ca, float(obj.target)))
    assert obj.w is not None
    rule = select_chebyshev if obj.method == "chebyshev" else select_linear
    return int(rule(pa, ca, float(obj.w)))


def weighs_cost(obj: Objective) -> bool:
    """Whether the objective's choice depends on cost (for ``policy check``)."""
    if obj.method == "target" or obj.max_cost is not None:
        return True
    return obj.w is not None and obj.w < 1.0
