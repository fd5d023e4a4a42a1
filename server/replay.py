"""``irtgate policy replay``: re-decide logged requests under another policy.

No model and no upstream run: every logged line carries the values the gateway computed
(the signals that ran, the router's P for every configuration, the input tokens prices
apply to), so a policy's steps can be replayed from them:

- *resolve* and *match* run the engine's own compiled ``when`` trees, with a signal lookup
  backed by the logged values. A test on a signal the request never computed (the serving
  policy did not need it) cannot be answered from the log: the request is counted under
  "missing" with the signal's name, and never guessed.
- *narrow*: the only plugin step before selection is ``pii`` (block, restrict). It is
  emulated from the logged PII types (what the serving pii plugin or the pii signal
  found). Approximation: the serving scan's own ``types`` filter and ``min_confidence``
  decided what was found; a new policy with a broader filter or a lower confidence can
  see more in the real traffic than the log shows.
- *score* and *select*: P of each candidate is the logged P of its router configuration,
  its cost comes from the new policy's catalog (``cost``, ``price`` with the logged input
  tokens, else the router card), and the objective's rule runs vectorised over every
  request of a decision at once (:mod:`irtgate.signals.irt.selection` takes (n, G)).

Lines are parsed with :mod:`json` into plain dicts (no validation model per line) and
kept only as compact columns, so a million lines fit in memory and replay in seconds.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from irtgate.plugins.base import Plugin
from irtgate.plugins.pii import PiiPlugin
from irtgate.policies.compile import CompiledDecision, Snapshot
from irtgate.policies.spec import CatalogEntry
from irtgate.signals.irt.selection import select_chebyshev, select_linear, select_target

ROUTED: Final = "routed"
MISSING: Final = "missing"  # the log lacks what the policy needs for this request
NO_CANDIDATE: Final = "no_candidate"
BLOCKED: Final = "policy_blocked"
UNKNOWN_MODEL: Final = "model_not_found"
BAD_LINES_KEPT: Final = 50


class ReplayRefused(Exception):
    """The log cannot be replayed here at all (another router, another format)."""


class _Missing(Exception):
    def __init__(self, what: str) -> None:
        self.what = what


@dataclass(frozen=True)
class BadLine:
    file: str
    line: int
    why: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.why}"


class _Fields:
    """One signal's logged values, read field by field (all the ``when`` trees ask of it)."""

    __slots__ = ("name", "r")

    def __init__(self, r: Mapping[str, Any], name: str) -> None:
        self.r, self.name = r, name

    def get(self, fld: str, default: Any = None) -> Any:
        v = self.r["signals"].get(f"{self.name}.{fld}", _ABSENT)
        if v is _ABSENT:
            # P per configuration is logged once, in "p" (see DecisionRecord.p_fields).
            if fld.startswith("p.") and self.name in (self.r.get("p_fields") or ()):
                return self.r["p"].get(fld[2:], default)
            return default
        # Label sets come back from JSON as lists; the engine's tests expect tuples.
        return tuple(v) if isinstance(v, list) else v


_ABSENT: Final = object()


class _Lookup:
    """The engine's signal lookup, answered from one logged line."""

    __slots__ = ("computed", "r")

    def __init__(self, r: Mapping[str, Any]) -> None:
        self.r, self.computed = r, r["computed"]

    def __call__(self, name: str) -> _Fields:
        if name not in self.computed:
            raise _Missing(name)
        # A signal that ran and failed has no values: every test on it reads "missing",
        # as in the engine.
        return _Fields(self.r, name)


class PolicyReplay:
    """One policy's re-decisions, as compact columns (one entry per replayed line)."""

    def __init__(self, snap: Snapshot, label: str) -> None:
        self.snap, self.label = snap, label
        self.entries: tuple[CatalogEntry, ...] = tuple(snap.catalog.values())
        self.index = {e.name: i for i, e in enumerate(self.entries)}
        self.configs = tuple(e.router_config for e in self.entries)
        self.pinned = {m: tuple(self.index[e.name] for e in es) for m, es in snap.pinned.items()}
        self.router = snap.resources.router
        self.all_decisions = (*snap.decisions, snap.default)
        for d in self.all_decisions:
            for p in d.chain.plugins:
                if not isinstance(p, PiiPlugin) and type(p).before_select is not (
                    Plugin.before_select
                ):
                    raise ReplayRefused(
                        f"{label}: plugin {p.name!r} acts before selection and cannot be "
                        "replayed from a log"
                    )
        self._cand = {
            d.name: tuple(self.index[e.name] for e in d.candidates) for d in self.all_decisions
        }
        self.outcome: list[str] = []  # ROUTED (choice filled in by finish), or why not
        self.decision: list[str] = []
        self.missing: Counter[str] = Counter()
        self.p = array("d")  # n x len(entries), NaN where the log has no P
        self.tokens = array("d")
        # (decision name, candidate indexes, router consulted) -> line numbers
        self._groups: dict[tuple[str, tuple[int, ...], bool], list[int]] = {}
        self.choice: np.ndarray = np.zeros(0, dtype=np.int64)
        self._needs_cache: dict[tuple[int, ...], tuple[bool, tuple[str, ...], bool]] = {}

    def prepare(self, r: Mapping[str, Any]) -> tuple[list[float], float, str, str, Any]:
        """Re-decide one logged line; nothing is stored until :meth:`commit`."""
        p_logged: Mapping[str, Any] = r["p"]
        row = [
            float(v) if cfg is not None and (v := p_logged.get(cfg)) is not None else math.nan
            for cfg in self.configs
        ]
        tok = r.get("tokens")
        group: object
        try:
            name, outcome, group = self._decide(r, p_logged)
        except _Missing as m:
            name, outcome, group = "-", MISSING, m.what
        return row, float(tok) if tok is not None else math.nan, name, outcome, group

    def commit(self, prepared: tuple[list[float], float, str, str, Any]) -> None:
        row, tok, name, outcome, group = prepared
        if outcome == MISSING:
            self.missing[group] += 1
        elif outcome == ROUTED:
            self._groups.setdefault(group, []).append(len(self.outcome))
        self.p.extend(row)
        self.tokens.append(tok)
        self.decision.append(name)
        self.outcome.append(outcome)

    def _decide(
        self, r: Mapping[str, Any], p_logged: Mapping[str, Any]
    ) -> tuple[str, str, tuple[str, tuple[int, ...], bool] | None]:
        snap = self.snap
        model = r["model"]
        pinned: tuple[int, ...] | None = None
        if model not in snap.aliases:
            pinned = self.pinned.get(model)
            if pinned is None:
                return "none", UNKNOWN_MODEL, None
        lookup = _Lookup(r)  # typed as the engine's Lookup: only .get is used
        matched: CompiledDecision = snap.default
        for d in snap.decisions:
            assert d.when is not None
            if d.when.evaluate(lookup):  # type: ignore[arg-type]
                matched = d
                break
        cands = pinned if pinned is not None else self._cand[matched.name]
        for plugin in matched.chain.plugins:
            if isinstance(plugin, PiiPlugin):
                found = self._pii_types(r, lookup)
                if plugin.types is not None:
                    found &= plugin.types
                if not found:
                    continue
                action = plugin.config.action
                if action == "block":
                    return matched.name, BLOCKED, None
                if action == "restrict":
                    cands = tuple(c for c in cands if self.entries[c].local)
                    if not cands:
                        return matched.name, NO_CANDIDATE, None
        consulted, cfgs, priced = self._needs(cands)
        if consulted:
            if not p_logged:
                raise _Missing("router P")
            for cfg in cfgs:
                if cfg not in p_logged:
                    raise _Missing(f"P of {cfg}")
        if priced and r.get("tokens") is None:
            raise _Missing("input tokens")
        return matched.name, ROUTED, (matched.name, cands, consulted)

    def _needs(self, cands: tuple[int, ...]) -> tuple[bool, tuple[str, ...], bool]:
        """Per candidate set (few per policy): whether the router decides, the
        configurations whose P it reads, whether a price needs the input tokens."""
        hit = self._needs_cache.get(cands)
        if hit is None:
            cfgs = tuple(c for i in cands if (c := self.configs[i]) is not None)
            consulted = self.router is not None and len(cands) > 1 and bool(cfgs)
            priced = any(self.entries[i].price is not None for i in cands)
            hit = self._needs_cache[cands] = (consulted, cfgs, priced)
        return hit

    @staticmethod
    def _pii_types(r: Mapping[str, Any], lookup: _Lookup) -> set[str]:
        computed = r["computed"]
        if not r.get("pii_scanned") and "pii" not in computed:
            raise _Missing("pii")
        found = set(r.get("pii") or ())
        if "pii" in computed:
            found.update(lookup("pii").get("types") or ())
        return found

    def columns(self) -> tuple[Any, ...]:
        """What a worker process hands back (see :mod:`irtgate.server.replay_run`)."""
        return (self.outcome, self.decision, self.p, self.tokens, self._groups, self.missing)

    def absorb(self, cols: tuple[Any, ...]) -> None:
        """Append another part's columns (lines after the ones held)."""
        outcome, decision, p, tokens, groups, missing = cols
        offset = len(self.outcome)
        self.outcome.extend(outcome)
        self.decision.extend(decision)
        self.p.extend(p)
        self.tokens.extend(tokens)
        for key, rows in groups.items():
            self._groups.setdefault(key, []).extend(i + offset for i in rows)
        self.missing.update(missing)

    # -- selection, vectorised ------------------------------------------------------------

    def costs(self) -> np.ndarray:
        """(n, entries) expected USD per request under this policy's catalog; NaN unknown."""
        n = len(self.outcome)
        tokens = np.frombuffer(self.tokens, dtype=np.float64) if n else np.zeros(0)
        out = np.full((n, len(self.entries)), np.nan)
        for j, e in enumerate(self.entries):
            if e.cost is not None:
                out[:, j] = float(e.cost)
            elif e.price is not None:
                pr = e.price
                out[:, j] = (
                    pr.input_per_mtok * tokens + pr.output_per_mtok * pr.expected_output_tokens
                ) / 1e6
            elif self.router is not None and e.router_config is not None:
                c = self.router.expected_cost.get(e.router_config)
                if c is not None:
                    out[:, j] = c
        return out

    def finish(self) -> None:
        """Select for every routed line, decision by decision; fills :attr:`choice`."""
        n = len(self.outcome)
        self.p_matrix = (
            np.frombuffer(self.p, dtype=np.float64).reshape(n, len(self.entries))
            if n
            else np.zeros((0, len(self.entries)))
        )
        self.cost_matrix = self.costs()
        choice = np.full(n, -1, dtype=np.int64)
        decisions = {d.name: d for d in self.all_decisions}
        for (name, cands, consulted), rows_list in self._groups.items():
            rows = np.asarray(rows_list, dtype=np.int64)
            cidx = np.asarray(cands, dtype=np.int64)
            cost = self.cost_matrix[np.ix_(rows, cidx)]
            p = (
                np.nan_to_num(self.p_matrix[np.ix_(rows, cidx)], nan=0.0)
                if consulted
                else np.zeros_like(cost)
            )
            picked = _select(decisions[name], p, cost)
            for k in np.flatnonzero(picked < 0):
                self.outcome[int(rows[k])] = NO_CANDIDATE
            choice[rows] = np.where(picked >= 0, cidx[np.maximum(picked, 0)], -1)
        self.choice = choice


def _select(d: CompiledDecision, p: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """The engine's select() for many requests of one decision: the column picked per row,
    -1 where the cost cap leaves nothing."""
    n, g = cost.shape
    obj = d.objective
    keep = np.ones((n, g), dtype=bool)
    if obj.max_cost is not None:
        keep = ~np.isnan(cost) & (cost <= obj.max_cost)
    out = np.full(n, -1, dtype=np.int64)
    # Rows sharing one set of admitted candidates are selected together (one set, all of
    # them, unless a cost cap excludes some).
    if keep.all():
        sets: list[tuple[np.ndarray, np.ndarray]] = [(np.arange(n), np.arange(g))]
    elif g <= 62:  # each row's admitted set as the bits of one integer
        code = keep.astype(np.int64) @ (np.int64(1) << np.arange(g, dtype=np.int64))
        sets = [
            (np.flatnonzero(code == v), np.flatnonzero((int(v) >> np.arange(g)) & 1))
            for v in np.unique(code)
        ]
    else:
        patterns, inverse = np.unique(keep, axis=0, return_inverse=True)
        inv = inverse.reshape(-1)
        sets = [(np.flatnonzero(inv == k), np.flatnonzero(pat)) for k, pat in enumerate(patterns)]
    for rows, cols in sets:
        if cols.size == 0:
            continue
        if cols.size == 1:
            out[rows] = cols[0]
            continue
        pp, cc = p[np.ix_(rows, cols)], cost[np.ix_(rows, cols)]
        if obj.method == "target":
            assert obj.target is not None
            sel = select_target(pp, cc, float(obj.target))
        else:
            assert obj.w is not None
            rule = select_chebyshev if obj.method == "chebyshev" else select_linear
            sel = rule(pp, cc, float(obj.w))
        out[rows] = cols[np.asarray(sel, dtype=np.int64)]
    return out


class LoggedBaseline:
    """What the log says happened: the serving policy's choices, as columns."""

    def __init__(self) -> None:
        self.outcome: list[str] = []
        self.decision: list[str] = []
        self.choice: list[str | None] = []
        self.p = array("d")  # logged P of the choice, NaN where none
        self.cost = array("d")  # logged cost of the choice, NaN where unknown
        self.policies: Counter[Any] = Counter()  # digest -> lines

    def add(self, r: Mapping[str, Any]) -> None:
        outcome = r["outcome"]
        choice = r.get("choice") if outcome == ROUTED else None
        self.outcome.append(outcome)
        self.decision.append(r["decision"])
        self.choice.append(choice)
        pc = r.get("p_choice")
        self.p.append(math.nan if pc is None else pc)
        c = None if choice is None else r["cost"].get(choice)
        self.cost.append(math.nan if c is None else c)
        self.policies[r.get("policy")] += 1

    def extend(self, other: LoggedBaseline) -> None:
        self.outcome.extend(other.outcome)
        self.decision.extend(other.decision)
        self.choice.extend(other.choice)
        self.p.extend(other.p)
        self.cost.extend(other.cost)
        self.policies.update(other.policies)
