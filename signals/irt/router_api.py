"""What the policy engine and the signals need from a router, as a type.

:class:`Router` is the interface; :class:`~irtgate.signals.irt.runtime.IRTRouter` is the
implementation that ships, and tests bring their own. A router answers one call per
request, :meth:`Router.score`, with a :class:`RouterScores`: every configuration's
P(correct) and expected cost, the query's difficulty and discrimination, and the task-family
posterior. The request's ``SignalContext`` (:mod:`irtgate.signals.base`) keeps that value, so
the difficulty signal and the engine read the same one and the heads run once.

An expected cost is ``float | None``: ``None`` means the router's data had no cost for that
configuration. No price is made up for it; what selection does with it is the engine's
rule (see docs/policies.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Protocol, TypeVar

if TYPE_CHECKING:
    import numpy as np

    from irtgate.signals.embedding import EmbeddingSource

# USD per query; None = unknown (never NaN and never a stand-in price).
Cost = float | None


def known_cost(value: object) -> Cost:
    """A card's ``expected_cost`` as a :data:`Cost`: a finite, non-negative float or None."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    v = float(value)
    return v if math.isfinite(v) and v >= 0.0 else None


V = TypeVar("V")


def _frozen(m: Mapping[str, V]) -> Mapping[str, V]:
    return m if isinstance(m, MappingProxyType) else MappingProxyType(dict(m))


@dataclass(frozen=True, slots=True)
class RouterScores:
    """A router's read-out for one request. Immutable; names come from the router card."""

    configs: tuple[str, ...]
    p: Mapping[str, float]  # configuration -> P(correct)
    cost: Mapping[str, Cost]  # configuration -> expected USD per query, None if unknown
    difficulty: float  # logit difficulty against the average configuration
    discrimination: float  # norm of the query's discrimination vector
    # Training benchmark -> posterior that the query is of that kind; empty when the router
    # has no task-family prior.
    family: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        if set(self.p) != set(self.configs) or set(self.cost) != set(self.configs):
            raise ValueError("RouterScores: p and cost must name exactly the configurations")
        # Read-only views: one value is shared by every reader of the request.
        object.__setattr__(self, "p", _frozen(self.p))
        object.__setattr__(self, "cost", _frozen(self.cost))
        object.__setattr__(self, "family", _frozen(self.family))

    def best(self) -> str:
        """The configuration most likely to answer correctly (cost ignored; first on ties)."""
        return max(self.configs, key=lambda c: self.p[c])

    @property
    def p_max(self) -> float:
        return self.p[self.best()]

    def top_family(self) -> str | None:
        """The training benchmark the query most resembles (None without a family prior)."""
        return max(self.family, key=lambda f: self.family[f]) if self.family else None


class Router(Protocol):
    """A trained router as the serving path uses it."""

    @property
    def configs(self) -> tuple[str, ...]:
        """Configuration names, in the order of the router's outputs."""
        ...

    @property
    def families(self) -> tuple[str, ...]:
        """Task families of its prior (empty without one)."""
        ...

    @property
    def expected_cost(self) -> Mapping[str, Cost]:
        """Expected USD per query by configuration; None where the card has none."""
        ...

    @property
    def dim(self) -> int:
        """The embedding size it reads."""
        ...

    @property
    def encoder_name(self) -> str:
        """The encoder it was trained with (the request embedding must come from it)."""
        ...

    def embedder(self) -> EmbeddingSource:
        """The request embedder for its encoder, loaded once."""
        ...

    def score(self, embedding: np.ndarray) -> RouterScores:
        """The read-out for one request embedding (d,) or (1, d); ValueError if malformed."""
        ...

    def explain(self, scores: RouterScores) -> Mapping[str, float | str]:
        """Content-free numbers and labels behind ``scores`` for explanations."""
        ...


_IDENTITIES: dict[int, tuple[object, str]] = {}


def router_identity(router: Router | None) -> str:
    """:func:`compute_router_identity`, remembered per router object (asked per request)."""
    if router is None:
        return "none"
    hit = _IDENTITIES.get(id(router))
    if hit is not None and hit[0] is router:
        return hit[1]
    ident = compute_router_identity(router)
    if len(_IDENTITIES) > 64:  # routers are loaded a handful of times per process
        _IDENTITIES.clear()
    _IDENTITIES[id(router)] = (router, ident)
    return ident


def compute_router_identity(router: Router | None) -> str:
    """``name@hash`` naming exactly this router: the card's name and a hash of its card
    (configurations, costs, encoder, training data); "none" without a router. The decision
    log records it, so a replay can refuse a log written by another router."""
    import hashlib
    import json

    if router is None:
        return "none"
    card = getattr(router, "card", None)
    if isinstance(card, Mapping):
        name = str(card.get("name") or getattr(router, "directory", "router"))
        blob = json.dumps(card, sort_keys=True, default=str)
    else:  # a router without a card: its configurations and costs are what it is
        name = type(router).__name__
        blob = json.dumps([list(router.configs), dict(router.expected_cost)], default=str)
    name = "".join(c if c.isalnum() or c in "._-" else "-" for c in name.split("/")[-1])[:64]
    return f"{name or 'router'}@{hashlib.blake2b(blob.encode(), digest_size=6).hexdigest()}"
