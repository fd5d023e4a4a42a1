"""One decision for one request against one :class:`~irtgate.policies.compile.Snapshot`.

Steps: resolve the requested model (routing alias, pinned catalog model, or unknown);
evaluate decisions in order (highest ``priority`` first, equal priorities in file order;
the first match wins, else ``default``); let the chain narrow the candidates
(``pii: restrict``) or refuse the request; score the candidates with the router's
P(correct) and their expected cost under the decision's objective; run the chain on a
copy of the body (the budget translator last). Everything is synchronous and CPU-bound:
the runtime calls :func:`decide_sync` off the event loop.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from typing import Any

from irtgate.plugins.base import PluginState
from irtgate.policies.compile import CompiledDecision, Snapshot
from irtgate.policies.outcome import Choice, DecisionTrace, Outcome
from irtgate.policies.spec import CatalogEntry, Objective
from irtgate.signals.base import SignalContext, Value
from irtgate.signals.errors import NO_CANDIDATE, UNKNOWN_MODEL
from irtgate.signals.request import LLMRequest

log = logging.getLogger(__name__)

REASON_LIMIT = 200
EXPLANATION_LIMIT = 96  # entries
VALUE_LIMIT = 240  # characters per text value


class _Signals:
    """Computes each referenced signal on first use; a failing signal counts as absent."""

    def __init__(self, snap: Snapshot, ctx: SignalContext, trace: DecisionTrace) -> None:
        self.snap, self.ctx, self.trace = snap, ctx, trace
        self.values: dict[str, Mapping[str, Value] | None] = {}

    def __call__(self, name: str) -> Mapping[str, Value] | None:
        if name not in self.values:
            sig = self.snap.signals[name]
            started = time.perf_counter()
            try:
                self.values[name] = sig.compute(self.ctx)
            except Exception as e:
                # Only the exception type: a message could quote the prompt.
                log.warning("signal %s failed (%s); treated as absent", name, type(e).__name__)
                self.values[name] = None
            # By type, not instance name: a bounded label set whatever the policy says.
            self.trace.signal_seconds.append((sig.name, time.perf_counter() - started))
        return self.values[name]


def _entry_cost(e: CatalogEntry, router: Any, input_tokens: float) -> float:
    if e.cost is not None:
        return float(e.cost)
    if e.price is not None:
        return (
            e.price.input_per_mtok * input_tokens
            + e.price.output_per_mtok * e.price.expected_output_tokens
        ) / 1e6
    if router is not None and e.router_config is not None:
        return float(router.expected_cost.get(e.router_config, math.nan))
    return math.nan


def _input_tokens(req: LLMRequest, sigs: _Signals) -> float:
    vals = sigs.values.get("length")
    tok = vals.get("tokens") if vals else None
    if isinstance(tok, int | float) and not isinstance(tok, bool):
        return float(tok)
    # About four characters per token: only for pricing when no length signal ran.
    return sum(len(m.text) for m in req.messages) / 4.0


def _computed_p(snap: Snapshot, sigs: _Signals, router: Any) -> dict[str, float] | None:
    """P per configuration from a difficulty signal on this router that already ran."""
    for name, vals in sigs.values.items():
        if vals and getattr(snap.signals[name], "router", None) is router:
            p = {
                k[2:]: float(v)
                for k, v in vals.items()
                if k.startswith("p.") and isinstance(v, float | int)
            }
            if p:
                return p
    return None


def _select(obj: Objective, p: list[float], cost: list[float]) -> int:
    import numpy as np

    from irtgate.signals.irt.selection import select_chebyshev, select_linear, select_target

    pa, ca = np.asarray(p, dtype=np.float64), np.asarray(cost, dtype=np.float64)
    if obj.method == "target":
        assert obj.target is not None
        return int(select_target(pa, ca, float(obj.target)))
    assert obj.w is not None
    rule = select_chebyshev if obj.method == "chebyshev" else select_linear
    return int(rule(pa, ca, float(obj.w)))


def _bounded(v: Value) -> Value:
    if isinstance(v, str) and len(v) > VALUE_LIMIT:
        return v[: VALUE_LIMIT - 3] + "..."
    if isinstance(v, tuple):
        return tuple(str(x)[:64] for x in v[:16])
    if isinstance(v, float):
        return round(v, 4)
    return v


def decide_sync(snap: Snapshot, request: LLMRequest, trace: DecisionTrace | None = None) -> Outcome:
    """Decide one request; ``trace`` (if given) is filled in even when the request is refused."""
    trace = trace if trace is not None else DecisionTrace()
    res = snap.resources
    router = res.router
    pinned: tuple[CatalogEntry, ...] | None = None
    if request.model not in snap.aliases:
        pinned = snap.pinned.get(request.model)
        if pinned is None:
            raise UNKNOWN_MODEL.with_message(f"unknown model {request.model[:64]!r}")
    embedder = res.embedder or (router.embedder() if router is not None else None)
    ctx = SignalContext(request, embedder=embedder)
    sigs = _Signals(snap, ctx, trace)

    matched: CompiledDecision = snap.default
    for d in snap.decisions:
        assert d.when is not None
        if d.when.evaluate(sigs):
            matched = d
            break
    if matched.when is not None:
        why = matched.when.why(sigs)
    else:
        tried = ", ".join(d.name for d in snap.decisions)
        why = f"no decision matched ({tried})"[:400] if tried else "no decisions"

    # A shallow copy: plugins replace top-level keys; one that edits nested content
    # (redaction) deep-copies first, so large agent bodies are not copied for nothing.
    state = PluginState(
        request=request,
        body=dict(request.body),
        candidates=list(pinned if pinned is not None else matched.candidates),
    )
    try:
        matched.chain.before_select(state)
    finally:  # a block or an empty candidate list still counts what was found
        _trace_pii(trace, state.pii_findings, ctx)
    cands: list[CatalogEntry] = state.candidates  # type: ignore[assignment]

    # P(correct) per candidate; the encoder runs only when it can change the choice.
    need_p = router is not None and len(cands) > 1 and any(c.router_config for c in cands)
    pmap: Mapping[str, float] = {}
    if need_p:
        pmap = _computed_p(snap, sigs, router) or router.predict(ctx.embedding()).p
    p = [float(pmap.get(c.router_config or "", 0.0)) for c in cands]
    tokens = _input_tokens(request, sigs)
    cost = [_entry_cost(c, router, tokens) for c in cands]
    obj = matched.objective
    shown = list(zip(cands, p, cost, strict=True))  # the explanation lists capped ones too
    if obj.max_cost is not None:
        keep = [i for i, c in enumerate(cost) if not c > obj.max_cost]
        keep = [i for i in keep if not math.isnan(cost[i])]
        if not keep:
            raise NO_CANDIDATE.with_message(
                f"no candidate of decision {matched.name!r} costs at most {obj.max_cost:g}"
            )
        cands, p, cost = [cands[i] for i in keep], [p[i] for i in keep], [cost[i] for i in keep]
    idx = 0 if len(cands) == 1 else _select(obj, p, cost)
    entry = cands[idx]

    state.choice = entry
    state.body["model"] = entry.model
    matched.chain.apply(state)
    if need_p:
        trace.p_correct = p[idx]
    if not math.isnan(cost[idx]):
        trace.cost = cost[idx]
    # The baseline is the dearest of the decision's own candidates (before any plugin
    # narrowed them): what the request would have cost without routing.
    costs = (_entry_cost(e, router, tokens) for e in matched.candidates)
    known = [c for c in costs if not math.isnan(c)]
    if known:
        trace.baseline_cost = max(known)

    expl: dict[str, Value] = {
        "policy": snap.digest,
        "decision": matched.name,
        "decision.why": why,
        "routing": "pinned" if pinned is not None else "alias",
        "objective": _describe(obj),
        "choice": entry.name,
        "choice.upstream": entry.upstream,
    }
    if need_p:
        expl["choice.p"] = round(p[idx], 4)
    if not math.isnan(cost[idx]):
        expl["choice.cost"] = float(f"{cost[idx]:.4g}")
    for name, vals in sigs.values.items():
        if vals is None:
            expl[f"signal.{name}"] = "error"
            continue
        for k, v in vals.items():
            if k.startswith("p."):  # P per router configuration: shown per candidate below
                continue
            expl[f"signal.{name}.{k}"] = _bounded(v)
    for c, pc, cc in shown:
        if need_p:
            expl[f"p.{c.name}"] = round(pc, 4)
        if not math.isnan(cc):
            expl[f"cost.{c.name}"] = float(f"{cc:.4g}")
    for k, v in state.notes.items():
        expl[f"plugin.{k}"] = _bounded(v)
    if len(expl) > EXPLANATION_LIMIT:
        expl = dict(list(expl.items())[:EXPLANATION_LIMIT])
        expl["truncated"] = True

    reason = f"{matched.name}: {entry.name}"
    if need_p:
        reason += f" P={p[idx]:.2f}"
    if not math.isnan(cost[idx]):
        reason += f" cost={cost[idx]:.3g}"
    budget = None if entry.budget is None else str(entry.budget)
    return Outcome(
        choice=Choice(entry.name, entry.model, entry.upstream, budget),
        decision=matched.name,
        reason=reason[:REASON_LIMIT],
        body=state.body,
        body_changed=state.body != request.body,
        request_headers=dict(state.set_headers),
        remove_request_headers=tuple(state.remove_headers),
        explanation=expl,
    )


def _trace_pii(
    trace: DecisionTrace, acted: Mapping[tuple[str, str], int], ctx: SignalContext
) -> None:
    if acted:
        trace.pii.update(acted)
        return
    # No pii plugin looked: report what the pii signal found, if it ran, as action "none".
    from irtgate.signals.pii import SCRATCH_KEY

    per_msg = ctx.scratch.get(SCRATCH_KEY)
    if not per_msg:
        return
    for found in per_msg.values():
        for f in found:
            key = (str(f.type.value), "none")
            trace.pii[key] = trace.pii.get(key, 0) + 1


def _describe(obj: Objective) -> str:
    s = f"target P>={obj.target:g}" if obj.method == "target" else f"{obj.method} w={obj.w:g}"
    return s + (f", cost<={obj.max_cost:g}" if obj.max_cost is not None else "")
