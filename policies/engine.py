"""One decision for one request against one :class:`~irtgate.policies.compile.Snapshot`.

Named steps, each a small function: :func:`resolve` the requested model (routing alias,
pinned catalog model, or unknown); :func:`match` a decision (highest ``priority`` first,
equal priorities in file order; the first match wins, else ``default``); :func:`narrow`,
where the chain may narrow the candidates (``pii: restrict``) or refuse the request;
:func:`~irtgate.policies.scoring.score` the candidates with the router's P(correct) and
their expected cost; :func:`~irtgate.policies.scoring.select` under the decision's
objective; :func:`apply` the chain to a copy of the body (the budget translator last);
:func:`~irtgate.policies.explain.explanation`. Everything is synchronous and CPU-bound:
the runtime calls :func:`decide_sync` off the event loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from irtgate.plugins.base import PluginState
from irtgate.policies.compile import CompiledDecision, Snapshot
from irtgate.policies.explain import Match, explanation, reason
from irtgate.policies.outcome import Choice, DecisionTrace, Outcome
from irtgate.policies.scoring import (
    Selection,
    baseline_cost,
    entry_cost,
    input_tokens,
    score,
    select,
)
from irtgate.policies.spec import CatalogEntry
from irtgate.signals.base import Resources, SignalContext, Value
from irtgate.signals.errors import API_NOT_SERVED, UNKNOWN_MODEL
from irtgate.signals.irt.router_api import router_identity
from irtgate.signals.request import ApiKind, LLMRequest

log = logging.getLogger(__name__)


class _Signals:
    """Computes each referenced signal on first use; a failing signal counts as absent."""

    def __init__(self, snap: Snapshot, ctx: SignalContext, trace: DecisionTrace) -> None:
        self.snap, self.ctx, self.trace = snap, ctx, trace
        self.values: dict[str, Mapping[str, Value] | None] = {}

    def __call__(self, name: str) -> Mapping[str, Value] | None:
        if name not in self.values:
            self.ctx.budget.check()  # nobody waits for the answer any more: stop here
            sig = self.snap.signals[name]
            started = time.perf_counter()
            try:
                value = sig.compute(self.ctx)
                self.values[name] = value
                if value.get("truncated") is True:
                    self.trace.truncated.append(sig.name)
            except Exception as e:
                # Only the exception type: a message could quote the prompt.
                log.warning("signal %s failed (%s); treated as absent", name, type(e).__name__)
                self.values[name] = None
            # By type, not instance name: a bounded label set whatever the policy says.
            self.trace.signal_seconds.append((sig.name, time.perf_counter() - started))
        return self.values[name]


@dataclass(frozen=True, slots=True)
class Resolved:
    """The requested model: a routing alias (``pinned`` None) or catalog entries it pins."""

    pinned: tuple[CatalogEntry, ...] | None


def resolve(snap: Snapshot, request: LLMRequest) -> Resolved:
    """Step 1: an alias routes; a catalog name or model is pinned; anything else is a 400."""
    if request.model in snap.aliases:
        return Resolved(None)
    pinned = snap.pinned.get(request.model)
    if pinned is None:
        raise UNKNOWN_MODEL.with_message(f"unknown model {request.model[:64]!r}")
    return Resolved(pinned)


def match(snap: Snapshot, sigs: _Signals) -> Match:
    """Step 2: the first decision (in priority order) whose ``when`` holds, else default."""
    for d in snap.decisions:
        assert d.when is not None
        if d.when.evaluate(sigs):
            return Match(d, d.when.why(sigs))
    tried = ", ".join(d.name for d in snap.decisions)
    return Match(snap.default, f"no decision matched ({tried})"[:400] if tried else "no decisions")


def narrow(
    resolved: Resolved, matched: CompiledDecision, request: LLMRequest, sigs: _Signals
) -> PluginState:
    """Step 3: the plugins' ``before_select`` may narrow the candidates or refuse."""
    # A shallow copy: plugins replace top-level keys; one that edits nested content
    # (redaction) deep-copies first, so large agent bodies are not copied for nothing.
    cands = resolved.pinned if resolved.pinned is not None else matched.candidates
    state = PluginState(
        request=request,
        body=dict(request.body),
        candidates=list(cands),
        budget=sigs.ctx.budget,
    )
    sigs.ctx.budget.check()
    try:
        matched.chain.before_select(state)
    finally:  # a block or an empty candidate list still counts what was found
        _trace_pii(sigs.trace, state.pii_findings, sigs.ctx)
    return state


def apply(
    state: PluginState, matched: CompiledDecision, chosen: Selection, trace: DecisionTrace
) -> None:
    """Step 6: write the choice into the body and let the plugins finish it."""
    state.choice = chosen.entry
    state.body["model"] = chosen.entry.model
    matched.chain.apply(state)
    if state.notes.get("pii.truncated") is True:
        trace.truncated.append("pii_plugin")
    trace.p_correct = chosen.p
    trace.cost = chosen.cost


def decide_sync(snap: Snapshot, request: LLMRequest, trace: DecisionTrace | None = None) -> Outcome:
    """Decide one request; ``trace`` (if given) is filled in even when the request is refused."""
    trace = trace if trace is not None else DecisionTrace()
    router = snap.resources.router
    embedder = snap.resources.embedder or (router.embedder() if router is not None else None)
    work = trace.budget
    work.start()
    sigs = _Signals(snap, SignalContext(request, embedder=embedder, budget=work), trace)
    try:
        resolved = resolve(snap, request)
        matched = match(snap, sigs)
        decision = matched.decision
        trace.decision, trace.why = decision.name, matched.why
        trace.pii_scanned = "pii" in decision.chain.names
        # Candidates whose upstream cannot take this API go before anything else sees them.
        fit, unfit = fit_api(resolved.pinned or decision.candidates, request, snap.resources)
        state = narrow(Resolved(tuple(fit)), decision, request, sigs)
        tokens = input_tokens(request, sigs.values)
        cands: list[CatalogEntry] = state.candidates  # type: ignore[assignment]
        work.check()
        scored = score(cands, router, sigs.ctx, tokens)
        chosen = select(decision.objective, scored, decision.name)
        work.check()
        trace.choice = chosen.entry.name
        apply(state, decision, chosen, trace)
    finally:
        if trace.log:  # refused requests are logged too
            _trace_for_log(snap, request, sigs, trace)
    # The baseline is the dearest of the decision's own candidates (before any plugin
    # narrowed them): what the request would have cost without routing.
    trace.baseline_cost = baseline_cost(decision.candidates, router, tokens)
    expl = explanation(
        policy=snap.digest,
        match=matched,
        pinned=resolved.pinned is not None,
        scored=scored,
        chosen=chosen,
        signals=sigs.values,
        router={} if router is None or scored.scores is None else router.explain(scored.scores),
        notes=state.notes,
    )
    if unfit:
        expl["api_fit.dropped"] = ",".join(c.name for c in unfit)[:240]
    entry = chosen.entry
    return Outcome(
        choice=Choice(entry.name, entry.model, entry.upstream, _budget(entry)),
        decision=decision.name,
        reason=reason(decision.name, chosen),
        body=state.body,
        body_changed=state.body != request.body,
        request_headers=dict(state.set_headers),
        remove_request_headers=tuple(state.remove_headers),
        explanation=expl,
    )


def fit_api(
    candidates: Sequence[CatalogEntry], request: LLMRequest, res: Resources
) -> tuple[list[CatalogEntry], list[CatalogEntry]]:
    """(candidates whose upstream speaks the request's API, those dropped). Raises
    API_NOT_SERVED when none is left: irtgate does not translate between APIs.

    ``res.extras["upstream_apis"]`` maps an upstream to the APIs it speaks (set by the
    gateway from its upstreams); an upstream it does not list speaks every API."""
    apis: Mapping[str, frozenset[ApiKind]] = res.extras.get("upstream_apis") or {}
    every = frozenset(ApiKind)
    fit = [c for c in candidates if request.api in apis.get(c.upstream, every)]
    if fit or not candidates:
        return fit, [c for c in candidates if c not in fit]
    ups = sorted({c.upstream for c in candidates})
    raise API_NOT_SERVED.with_message(
        f"no candidate for this request speaks the {request.api.value} API "
        f"(upstreams {', '.join(ups)[:200]}); use an API they speak"
    )


def _trace_for_log(
    snap: Snapshot, request: LLMRequest, sigs: _Signals, trace: DecisionTrace
) -> None:
    """What the decision log needs to replay this decision: every computed signal, the
    router's P for every configuration (computed here if the decision did not need it)
    and every catalog entry's cost. A failure here costs the record detail, never the
    request."""
    router = snap.resources.router
    trace.policy, trace.router = snap.digest, router_identity(router)
    trace.signals = dict(sigs.values)
    try:
        tokens = input_tokens(request, sigs.values)
        trace.input_tokens = tokens
        trace.entry_cost = {name: entry_cost(e, router, tokens) for name, e in snap.catalog.items()}
        if router is not None and trace.decision is not None:
            trace.scores = sigs.ctx.router_scores(router)
            chosen = snap.catalog.get(trace.choice) if trace.choice else None
            if chosen is not None and chosen.router_config is not None:
                trace.choice_p = trace.scores.p.get(chosen.router_config)
    except Exception as e:
        log.warning("decision log: router scores unavailable (%s)", type(e).__name__)


def _budget(entry: CatalogEntry) -> str | None:
    return None if entry.budget is None else str(entry.budget)


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
