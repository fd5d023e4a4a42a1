"""Validated policy -> compiled, immutable :class:`Snapshot`.

Everything that can be checked without a request is checked here, and every problem is
collected before failing, each with its file, line and YAML path: unknown signals,
fields, catalog entries, upstreams, plugins and router configurations; duplicate names;
operators that do not fit a field's type; thresholds that can never be met or never fail.

The snapshot holds the signal instances (only those some ``when`` tree references, built
once) and one plugin chain per decision (built once). It is never mutated: a reload
builds a new one and swaps the reference.
"""

from __future__ import annotations

import hashlib
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from irtgate.plugins.base import Chain, build_chain
from irtgate.policies.conditions import FieldInfo, Node, check_leaf, guess_range
from irtgate.policies.errors import PathT, PolicyError, Problem, format_path
from irtgate.policies.loader import Source, parse_yaml, validate_schema
from irtgate.policies.salvage import Salvage, salvage
from irtgate.policies.scoring import weighs_cost
from irtgate.policies.spec import (
    CatalogEntry,
    Condition,
    DefaultDecision,
    Objective,
    Policy,
    SignalSpec,
)
from irtgate.signals.base import Resources, Signal, registered


@dataclass(frozen=True)
class CompiledDecision:
    name: str
    priority: int
    order: int  # position in the file; the tie-breaker among equal priorities
    when: Node | None  # None for the default decision
    candidates: tuple[CatalogEntry, ...]
    objective: Objective
    chain: Chain


@dataclass(frozen=True)
class Snapshot:
    """One compiled policy. A request reads exactly one snapshot from start to end."""

    file: str
    digest: str  # short hash of the policy text, for logs and explanations
    policy: Policy
    signals: Mapping[str, Signal]
    decisions: tuple[CompiledDecision, ...]  # evaluation order
    default: CompiledDecision
    catalog: Mapping[str, CatalogEntry]
    pinned: Mapping[str, tuple[CatalogEntry, ...]]  # entry or model name -> entries
    aliases: frozenset[str]
    resources: Resources
    # Problems that do not stop the policy from loading (``policy check`` prints them).
    warnings: tuple[Problem, ...] = ()


def _leaves(c: Condition, path: PathT) -> Iterator[tuple[Condition, PathT]]:
    if c.all is not None:
        for i, x in enumerate(c.all):
            yield from _leaves(x, (*path, "all", i))
    elif c.any is not None:
        for i, x in enumerate(c.any):
            yield from _leaves(x, (*path, "any", i))
    elif c.not_ is not None:
        yield from _leaves(c.not_, (*path, "not"))
    else:
        yield c, path


def _field_infos(sig: Signal) -> dict[str, FieldInfo]:
    ranges: Mapping[str, tuple[float, float]] = getattr(sig, "ranges", None) or {}
    labels: Mapping[str, Any] = getattr(sig, "labels", None) or {}
    out: dict[str, FieldInfo] = {}
    for name, t in sig.fields.items():
        base = typing.get_origin(t) or t
        lo, hi = ranges.get(name, guess_range(name))
        lab = labels.get(name)
        out[name] = FieldInfo(
            base if isinstance(base, type) else str,
            lo,
            hi,
            frozenset(lab) if lab is not None else None,
        )
    return out


class _Compiler:
    def __init__(
        self, src: Source, policy: Policy, resources: Resources, salvaged: Salvage | None = None
    ) -> None:
        self.src, self.policy, self.res = src, policy, resources
        self.salvaged = salvaged
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []

    def err(self, path: PathT, msg: str) -> None:
        if self.salvaged is not None:
            cause = self.salvaged.cause(msg)
            if cause is not None:  # a consequence of an item already reported as broken
                where = f"line {cause.line}: " if cause.line else ""
                msg = f"{msg} (follows from the error at {where}{format_path(cause.path)})"
            path = self.salvaged.remap(path)
        self.problems.append(self.src.problem(path, msg))

    def catalog(self) -> dict[str, CatalogEntry]:
        p = self.policy
        seen_up: set[str] = set()
        for i, u in enumerate(p.upstreams):
            if u in seen_up:
                self.err(("upstreams", i), f"duplicate upstream {u!r}")
            seen_up.add(u)
        router = self.res.router
        configs = set(router.configs) if router is not None else None
        out: dict[str, CatalogEntry] = {}
        for i, e in enumerate(p.catalog):
            if e.name in out:
                self.err(("catalog", i, "name"), f"duplicate catalog name {e.name!r}")
            out.setdefault(e.name, e)
            if e.upstream not in seen_up:
                self.err(
                    ("catalog", i, "upstream"),
                    f"unknown upstream {e.upstream!r} (upstreams: {', '.join(p.upstreams)})",
                )
            if (
                e.router_config is not None
                and configs is not None
                and e.router_config not in configs
            ):
                self.err(
                    ("catalog", i, "router_config"),
                    f"the router has no configuration {e.router_config!r}",
                )
        names = set(out) | {e.model for e in p.catalog}
        seen_alias: set[str] = set()
        for i, a in enumerate(p.aliases):
            if a in seen_alias:
                self.err(("aliases", i), f"duplicate alias {a!r}")
            if a in names:
                self.err(("aliases", i), f"alias {a!r} is also a catalog name or model")
            seen_alias.add(a)
        return out

    def signals(self) -> tuple[dict[str, Signal], dict[str, dict[str, FieldInfo]]]:
        reg = registered()
        declared = self.policy.signals
        for name, decl in declared.items():
            kind = decl.type or name
            if kind not in reg:
                self.err(
                    ("signals", name, "type") if decl.type else ("signals", name),
                    f"unknown signal type {kind!r} (known: {', '.join(sorted(reg))})",
                )
        trees = [(("decisions", i, "when"), d.when) for i, d in enumerate(self.policy.decisions)]
        instances: dict[str, Signal] = {}
        infos: dict[str, dict[str, FieldInfo]] = {}
        failed: set[str] = set()
        for tpath, tree in trees:
            for leaf, path in _leaves(tree, tpath):
                assert leaf.signal is not None
                sig, dot, field = leaf.signal.partition(".")
                if not dot or not field:
                    self.err(
                        (*path, "signal"),
                        f"{leaf.signal!r} must be signal.field (e.g. domain.label)",
                    )
                    continue
                if sig in failed:
                    continue
                if sig not in instances:
                    spec: SignalSpec | None = declared.get(sig)
                    kind = (spec.type or sig) if spec else sig
                    if kind not in reg:
                        if spec is None:
                            self.err((*path, "signal"), f"unknown signal {sig!r}")
                        failed.add(sig)
                        continue
                    built = self._build(sig, kind, spec.params if spec else {}, path)
                    if built is None:
                        failed.add(sig)
                        continue
                    instances[sig], infos[sig] = built, _field_infos(built)
                info = infos[sig].get(field)
                if info is None:
                    self.err(
                        (*path, "signal"),
                        f"signal {sig!r} has no field {field!r} "
                        f"(fields: {', '.join(sorted(infos[sig]))})",
                    )
                    continue
                for p, msg in check_leaf(leaf, info, path):
                    self.err(p, msg)
        return instances, infos

    def _build(self, name: str, kind: str, params: Mapping[str, Any], path: PathT) -> Signal | None:
        _, factory = registered()[kind]
        where: PathT = (
            ("signals", name, "params") if name in self.policy.signals else (*path, "signal")
        )
        try:
            return factory(dict(params), self.res)
        except ValueError as e:
            self.err(where, f"signal {name!r}: {e}")
        except Exception as e:  # a factory that needs a resource we do not have
            self.err(where, f"signal {name!r} cannot be built: {type(e).__name__}: {e}")
        return None

    def decision(
        self, i: int | None, d: DefaultDecision, catalog: Mapping[str, CatalogEntry]
    ) -> CompiledDecision | None:
        base: PathT = ("default",) if i is None else ("decisions", i)
        cands: list[CatalogEntry] = []
        if d.candidates == ["*"]:
            cands = list(catalog.values())
        else:
            for j, c in enumerate(d.candidates):
                if c == "*":
                    self.err((*base, "candidates", j), "'*' (all) must be the only candidate")
                elif c not in catalog:
                    self.err((*base, "candidates", j), f"unknown catalog entry {c!r}")
                elif catalog[c] in cands:
                    self.err((*base, "candidates", j), f"candidate {c!r} listed twice")
                else:
                    cands.append(catalog[c])
        if d.objective.max_cost is not None:
            for e in cands:
                if e.cost is None and e.price is None and e.router_config is None:
                    self.err(
                        (*base, "objective", "max_cost"),
                        f"candidate {e.name!r} has no cost, price or router_config, "
                        "so a cost cap cannot apply to it",
                    )
        self._unknown_costs(base, d.objective, cands)
        specs = []
        for j, ps in enumerate(d.plugins):
            name, cfg = ps.chosen()[0]
            specs.append((name, cfg))
            action = getattr(cfg, "action", None)
            if name == "pii" and action == "restrict" and cands and not any(c.local for c in cands):
                self.err(
                    (*base, "plugins", j, "pii", "action"),
                    "restrict needs a candidate marked local: true; none is",
                )
        if sum(1 for n, _ in specs if n == "system_prompt") > 1:
            self.err((*base, "plugins"), "more than one system_prompt plugin")
        try:
            chain = build_chain(specs, self.res)
        except Exception as e:
            self.err((*base, "plugins"), f"cannot build the plugins: {type(e).__name__}: {e}")
            return None
        when = Node.build(d.when) if hasattr(d, "when") else None
        return CompiledDecision(
            d.name,
            getattr(d, "priority", 0),
            -1 if i is None else i,
            when,
            tuple(cands),
            d.objective,
            chain,
        )

    def _unknown_costs(self, base: PathT, obj: Objective, cands: list[CatalogEntry]) -> None:
        """Warn where an objective weighs cost over candidates nothing prices.

        Without a router the card's costs cannot be read, so only entries with no
        ``router_config`` either are counted; with one, its card decides."""
        if not weighs_cost(obj) or (len(cands) < 2 and obj.max_cost is None):
            return
        router = self.res.router
        unknown = [
            e.name
            for e in cands
            if e.cost is None
            and e.price is None
            and (
                e.router_config is None
                if router is None
                else router.expected_cost.get(e.router_config or "") is None
            )
        ]
        if not unknown:
            return
        names = ", ".join(repr(n) for n in unknown[:8]) + (", ..." if len(unknown) > 8 else "")
        rule = (
            "a cost cap never admits them"
            if obj.max_cost is not None
            else "they count as the dearest"
            if len(unknown) < len(cands)
            else "cost plays no part, P alone decides"
        )
        self.warnings.append(
            self.src.problem(
                (*base, "objective"),
                f"warning: the objective weighs cost, but the cost of {names} is unknown "
                f"(no cost or price here, none on the router's card): {rule}; "
                "give them a cost or price",
            )
        )


def digest(text: str) -> str:
    """Short content hash of a policy text, for logs, explanations and reload checks."""
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _sorted(problems: list[Problem]) -> list[Problem]:
    return sorted(problems, key=lambda p: (p.line or 0, format_path(p.path)))


def compile_policy(text: str, file: str, resources: Resources | None = None) -> Snapshot:
    """Parse, validate and compile; raises :class:`PolicyError` with every problem."""
    res = resources or Resources()
    src = parse_yaml(text, file)
    try:
        policy = validate_schema(src)
    except PolicyError as err:
        # Check what is still well-formed too, so one run reports everything.
        rest = salvage(src, err.problems)
        if rest is None:
            raise
        partial = _Compiler(src, rest.policy, res, rest)
        _compile(partial)
        raise PolicyError(_sorted([*err.problems, *partial.problems])) from None
    c = _Compiler(src, policy, res)
    catalog, instances, decisions, default = _compile(c)
    if c.problems or default is None:
        raise PolicyError(_sorted(c.problems))
    # Highest priority first; equal priorities keep file order (stable sort).
    decisions.sort(key=lambda d: -d.priority)
    pinned: dict[str, list[CatalogEntry]] = {}
    for e in catalog.values():
        pinned.setdefault(e.name, []).append(e)
        if e.model != e.name:
            pinned.setdefault(e.model, []).append(e)
    return Snapshot(
        file=file,
        digest=digest(text),
        policy=policy,
        signals=MappingProxyType(instances),
        decisions=tuple(decisions),
        default=default,
        catalog=MappingProxyType(catalog),
        pinned=MappingProxyType({k: tuple(v) for k, v in pinned.items()}),
        aliases=frozenset(policy.aliases),
        resources=res,
        warnings=tuple(_sorted(c.warnings)),
    )


def _compile(
    c: _Compiler,
) -> tuple[
    dict[str, CatalogEntry], dict[str, Signal], list[CompiledDecision], CompiledDecision | None
]:
    policy = c.policy
    catalog = c.catalog()
    instances, _ = c.signals()
    names: dict[str, int] = {}
    decisions: list[CompiledDecision] = []
    for i, d in enumerate(policy.decisions):
        if d.name in names or d.name == policy.default.name:
            c.err(("decisions", i, "name"), f"duplicate decision name {d.name!r}")
        names.setdefault(d.name, i)
        cd = c.decision(i, d, catalog)
        if cd is not None:
            decisions.append(cd)
    default = c.decision(None, policy.default, catalog)
    return catalog, instances, decisions, default
