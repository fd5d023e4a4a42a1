"""The explanation and the reason of one decision: numbers and labels, never prompt text.

The explanation is served by the ``Decide`` RPC and ``irtgate explain``; the reason is a
short header. An unknown cost is shown as ``"unknown"`` in the explanation and left out
of the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from irtgate.policies.compile import CompiledDecision
from irtgate.policies.scoring import Scored, Selection
from irtgate.policies.spec import Objective
from irtgate.signals.base import Value

REASON_LIMIT = 200
EXPLANATION_LIMIT = 96  # entries
VALUE_LIMIT = 240  # characters per text value
UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Match:
    """The decision that matched, and why (signal values against the policy's operands)."""

    decision: CompiledDecision
    why: str


def describe(obj: Objective) -> str:
    s = f"target P>={obj.target:g}" if obj.method == "target" else f"{obj.method} w={obj.w:g}"
    return s + (f", cost<={obj.max_cost:g}" if obj.max_cost is not None else "")


def explanation(
    *,
    policy: str,
    match: Match,
    pinned: bool,
    scored: Scored,
    chosen: Selection,
    signals: Mapping[str, Mapping[str, Value] | None],
    router: Mapping[str, float | str],
    notes: Mapping[str, Value],
) -> dict[str, Value]:
    entry = chosen.entry
    expl: dict[str, Value] = {
        "policy": policy,
        "decision": match.decision.name,
        "decision.why": match.why,
        "routing": "pinned" if pinned else "alias",
        "objective": describe(match.decision.objective),
        "choice": entry.name,
        "choice.upstream": entry.upstream,
    }
    if chosen.p is not None:
        expl["choice.p"] = round(chosen.p, 4)
    expl["choice.cost"] = _cost(chosen.cost)
    for name, vals in signals.items():
        if vals is None:
            expl[f"signal.{name}"] = "error"
            continue
        for k, v in vals.items():
            if k.startswith("p."):  # the difficulty signal's P per configuration: below
                continue
            expl[f"signal.{name}.{k}"] = _bounded(v)
    # Every candidate the objective saw, those a cost cap then left out included.
    for i, c in enumerate(scored.entries):
        if scored.p is not None:
            expl[f"p.{c.name}"] = round(scored.p[i], 4)
        expl[f"cost.{c.name}"] = _cost(scored.cost[i])
    for k, rv in router.items():
        expl[f"router.{k}"] = _bounded(rv)
    for k, v in notes.items():
        expl[f"plugin.{k}"] = _bounded(v)
    if len(expl) > EXPLANATION_LIMIT:
        expl = dict(list(expl.items())[:EXPLANATION_LIMIT])
        expl["truncated"] = True
    return expl


def reason(decision: str, chosen: Selection) -> str:
    out = f"{decision}: {chosen.entry.name}"
    if chosen.p is not None:
        out += f" P={chosen.p:.2f}"
    if chosen.cost is not None:
        out += f" cost={chosen.cost:.3g}"
    return out[:REASON_LIMIT]


def _cost(c: float | None) -> Value:
    return UNKNOWN if c is None else float(f"{c:.4g}")


def _bounded(v: Value) -> Value:
    if isinstance(v, str) and len(v) > VALUE_LIMIT:
        return v[: VALUE_LIMIT - 3] + "..."
    if isinstance(v, tuple):
        return tuple(str(x)[:64] for x in v[:16])
    if isinstance(v, float):
        return round(v, 4)
    return v
