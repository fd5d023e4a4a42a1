"""What changed between two policies, in the policy's own terms.

``irtgate policy diff OLD NEW`` prints one line per change: decisions added, removed or
re-prioritised (and whether the order in which decisions are tried changed), condition
thresholds, candidates, objectives, plugins, catalog entries, signals, aliases and upstreams.
Both files are validated first; the diff is of the validated policies, so formatting,
comments and key order never show up as changes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from irtgate.policies.spec import Condition, Decision, DefaultDecision, Objective, Policy


@dataclass(frozen=True)
class Change:
    """One change: where (``decision easy``, ``catalog gpt-4``, ...) and what."""

    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


def _fmt(v: Any) -> str:
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def leaves(cond: Condition, path: str = "when") -> Iterator[tuple[str, str, str, Any]]:
    """The signal tests of a condition tree: (tree position, signal, operator, value)."""
    if cond.signal is not None:
        op, value = cond.operator()
        yield path, cond.signal, op, value
        return
    for name in ("all", "any"):
        group = getattr(cond, name)
        if group is not None:
            for i, sub in enumerate(group):
                yield from leaves(sub, f"{path}.{name}[{i}]")
    if cond.not_ is not None:
        yield from leaves(cond.not_, f"{path}.not")


def _shape(cond: Condition) -> Any:
    # The tree without values: two conditions of one shape differ only in thresholds.
    if cond.signal is not None:
        return (cond.signal, cond.operator()[0])
    for name in ("all", "any"):
        group = getattr(cond, name)
        if group is not None:
            return (name, tuple(_shape(c) for c in group))
    assert cond.not_ is not None
    return ("not", _shape(cond.not_))


def _when(old: Condition, new: Condition) -> Iterator[str]:
    if _shape(old) != _shape(new):
        before = "; ".join(f"{s} {o} {_fmt(v)}" for _, s, o, v in leaves(old))
        after = "; ".join(f"{s} {o} {_fmt(v)}" for _, s, o, v in leaves(new))
        yield f"condition rewritten: ({before}) -> ({after})"
        return
    for (_, sig, op, a), (_, _, _, b) in zip(leaves(old), leaves(new), strict=True):
        if a != b:
            yield f"threshold {sig} {op} {_fmt(a)} -> {_fmt(b)}"


def _objective(o: Objective) -> str:
    parts: list[str] = [o.method]
    if o.w is not None:
        parts.append(f"w {_fmt(o.w)}")
    if o.target is not None:
        parts.append(f"target {_fmt(o.target)}")
    if o.max_cost is not None:
        parts.append(f"max_cost {_fmt(o.max_cost)}")
    return ", ".join(parts)


def _plugins(d: DefaultDecision) -> list[str]:
    return [
        f"{k}{_fmt(v)}"
        for p in d.plugins
        for k, v in p.model_dump(exclude_none=True, by_alias=True).items()
    ]


def _decision(old: DefaultDecision, new: DefaultDecision) -> Iterator[str]:
    if isinstance(old, Decision) and isinstance(new, Decision):
        if old.priority != new.priority:
            yield f"priority {old.priority} -> {new.priority}"
        yield from _when(old.when, new.when)
    added = [c for c in new.candidates if c not in old.candidates]
    removed = [c for c in old.candidates if c not in new.candidates]
    if added:
        yield f"candidates added: {', '.join(added)}"
    if removed:
        yield f"candidates removed: {', '.join(removed)}"
    if not added and not removed and list(old.candidates) != list(new.candidates):
        yield f"candidates reordered: {_fmt(list(new.candidates))}"
    if old.objective != new.objective:
        yield f"objective {_objective(old.objective)} -> {_objective(new.objective)}"
    if _plugins(old) != _plugins(new):
        yield f"plugins {_fmt(_plugins(old))} -> {_fmt(_plugins(new))}"


def _order(decisions: Sequence[Decision]) -> list[str]:
    # The engine tries decisions by priority, highest first; ties keep file order.
    ranked = sorted(enumerate(decisions), key=lambda x: (-x[1].priority, x[0]))
    return [d.name for _, d in ranked]


def _named(where: str, old: dict[str, Any], new: dict[str, Any]) -> Iterator[Change]:
    for name in new.keys() - old.keys():
        yield Change(f"{where} {name}", "added")
    for name in old.keys() - new.keys():
        yield Change(f"{where} {name}", "removed")


def _listed(where: str, old: Sequence[str], new: Sequence[str]) -> Iterator[Change]:
    for x in new:
        if x not in old:
            yield Change(where, f"{x} added")
    for x in old:
        if x not in new:
            yield Change(where, f"{x} removed")


def diff(old: Policy, new: Policy) -> list[Change]:
    """Every change from ``old`` to ``new``, decisions first, then the default, then the rest."""
    out: list[Change] = []
    od = {d.name: d for d in old.decisions}
    nd = {d.name: d for d in new.decisions}
    out += sorted(_named("decision", od, nd), key=str)
    for name in [d.name for d in new.decisions if d.name in od]:
        out += [Change(f"decision {name}", w) for w in _decision(od[name], nd[name])]
    common_old = [n for n in _order(old.decisions) if n in nd]
    common_new = [n for n in _order(new.decisions) if n in od]
    if common_old != common_new:
        out.append(Change("decisions", f"tried in a new order: {', '.join(_order(new.decisions))}"))
    out += [Change("default", w) for w in _decision(old.default, new.default)]

    oc = {c.name: c for c in old.catalog}
    nc = {c.name: c for c in new.catalog}
    out += sorted(_named("catalog", oc, nc), key=str)
    for name in sorted(oc.keys() & nc.keys()):
        a = oc[name].model_dump(exclude_none=True)
        b = nc[name].model_dump(exclude_none=True)
        for key in sorted(a.keys() | b.keys()):
            if a.get(key) != b.get(key):
                was, now = _fmt(a.get(key, "(unset)")), _fmt(b.get(key, "(unset)"))
                out.append(Change(f"catalog {name}", f"{key} {was} -> {now}"))

    out += sorted(_named("signal", old.signals, new.signals), key=str)
    for name in sorted(old.signals.keys() & new.signals.keys()):
        if old.signals[name] != new.signals[name]:
            a = old.signals[name].model_dump(exclude_none=True)
            b = new.signals[name].model_dump(exclude_none=True)
            out.append(Change(f"signal {name}", f"{_fmt(a)} -> {_fmt(b)}"))
    out += _listed("aliases", old.aliases, new.aliases)
    out += _listed("upstreams", old.upstreams, new.upstreams)
    return out
