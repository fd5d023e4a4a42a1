"""The ``difficulty`` signal: the IRT router's read-out for the request.

Fields:

* ``difficulty`` (float): the query's logit difficulty against the average configuration
  (``b − a·θ̄``; 0 = an average configuration has even odds, higher = harder).
* ``discrimination`` (float): the norm of the query's discrimination vector (how sharply
  the query separates strong from weak configurations).
* ``p_max`` (float): the highest P(correct) over the router's configurations.
* ``best`` (str): the configuration with that highest P (cost ignored).
* ``p.<config>`` (float): P(correct) of each configuration of the router, by its name as in
  the router card, e.g. ``difficulty.p.gpt-4-1106-preview``.
* ``family`` (str, only for routers with a task-family prior): the training benchmark the
  query most resembles (``gsm8k``, ``mmlu``, ...), a name from the router card.

It reads the router's :class:`~irtgate.signals.irt.router_api.RouterScores` for the request
from the shared context: one encoder pass and one heads run per request, shared with the
domain signal and with the policy engine, which takes P and costs from that same value (the
``p.<config>`` fields are for ``when`` conditions only). The router comes from the start-up
resources and must have been trained with the same encoder as the one in the context.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from irtgate.signals.base import Resources, SignalContext, Value, register
from irtgate.signals.irt.router_api import Router

BASE_FIELDS: Mapping[str, type] = {
    "difficulty": float,
    "discrimination": float,
    "p_max": float,
    "best": str,
}


class DifficultySignal:
    name: ClassVar[str] = "difficulty"
    fields: ClassVar[Mapping[str, type]] = BASE_FIELDS
    ranges: ClassVar[Mapping[str, tuple[float, float]]] = {
        "difficulty": (-20.0, 20.0),
        "discrimination": (0.0, 100.0),
        "p_max": (0.0, 1.0),
    }

    def __init__(self, router: Router) -> None:
        self.router = router
        self._keys = tuple(f"p.{c}" for c in router.configs)
        # For policy validation: the values the label fields can take.
        self.labels: Mapping[str, tuple[str, ...]] = {"best": tuple(router.configs)}
        if router.families:
            self.labels = {**self.labels, "family": tuple(router.families)}

    def compute(self, ctx: SignalContext) -> Mapping[str, Value]:
        try:
            emb = ctx.embedding()
        except RuntimeError as e:
            raise RuntimeError(f"difficulty signal: {e}") from e
        if emb.shape[-1] != self.router.dim:
            raise RuntimeError(
                f"difficulty signal: the request embedding has {emb.shape[-1]} dimensions, "
                f"the router expects {self.router.dim} (trained with encoder "
                f"{self.router.encoder_name!r})"
            )
        scores = ctx.router_scores(self.router)
        best = scores.best()
        out: dict[str, Value] = {
            "difficulty": scores.difficulty,
            "discrimination": scores.discrimination,
            "p_max": scores.p[best],
            "best": best,
        }
        for key, c in zip(self._keys, scores.configs, strict=True):
            out[key] = scores.p[c]
        if (family := scores.top_family()) is not None:
            out["family"] = family
        return out


def _signal_class(router: Router) -> type[DifficultySignal]:
    # The per-configuration fields depend on the loaded router, so each router gets a
    # subclass whose ``fields`` (what policies may reference) lists them.
    fields = dict(BASE_FIELDS)
    if router.families:
        fields["family"] = str
    ranges = dict(DifficultySignal.ranges)
    for c in router.configs:
        fields[f"p.{c}"] = float
        ranges[f"p.{c}"] = (0.0, 1.0)
    return type("DifficultySignal", (DifficultySignal,), {"fields": fields, "ranges": ranges})


@register("difficulty", DifficultySignal)
def make_difficulty(params: Mapping[str, Any], resources: Resources) -> DifficultySignal:
    """Parameters: ``router`` (optional path of a router directory; default: the router in
    the resources, else the shipped default router)."""
    unknown = set(params) - {"router"}
    if unknown:
        raise ValueError(f"difficulty: unknown parameter(s) {', '.join(sorted(unknown))}")
    router: Router | None = resources.router
    if "router" in params or router is None:
        from pathlib import Path

        from irtgate.signals.irt.runtime import IRTRouter, RouterLoadError

        path = params.get("router")
        if path is not None and not isinstance(path, str):
            raise ValueError("difficulty: 'router' must be a path (string)")
        try:
            router = IRTRouter.load(Path(path) if path else None)
        except RouterLoadError as e:
            raise ValueError(f"difficulty: router: {e}") from e
    return _signal_class(router)(router)
