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

import gzip
import json
import math
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from irtgate.plugins.base import Plugin
from irtgate.plugins.pii import PiiPlugin
from irtgate.policies.compile import CompiledDecision, Snapshot
from irtgate.policies.spec import CatalogEntry
from irtgate.server.decision_log import LOG_VERSION
from irtgate.signals.irt.router_api import router_identity
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


class _Lookup:
    """The engine's signal lookup, answered from one logged line."""

    __slots__ = ("_by_signal", "computed", "flat")

    def __init__(self, flat: Mapping[str, Any], computed: Sequence[str]) -> None:
        self.flat, self.computed = flat, computed
        self._by_signal: dict[str, dict[str, Any]] | None = None

    def __call__(self, name: str) -> Mapping[str, Any] | None:
        if name not in self.computed:
            raise _Missing(name)
        if self._by_signal is None:
            grouped: dict[str, dict[str, Any]] = {}
            for key, v in self.flat.items():
                sig, _, fld = key.partition(".")
                # Label sets come back from JSON as lists; the engine's tests expect tuples.
                grouped.setdefault(sig, {})[fld] = tuple(v) if isinstance(v, list) else v
            self._by_signal = grouped
        return self._by_signal.get(name)  # None: the signal ran and failed


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
        lookup = _Lookup(r["signals"], r["computed"])
        matched: CompiledDecision = snap.default
        for d in snap.decisions:
            assert d.when is not None
            if d.when.evaluate(lookup):
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
        consulted = (
            self.router is not None
            and len(cands) > 1
            and any(self.configs[c] is not None for c in cands)
        )
        if consulted:
            if not p_logged:
                raise _Missing("router P")
            for c in cands:
                cfg = self.configs[c]
                if cfg is not None and cfg not in p_logged:
                    raise _Missing(f"P of {cfg}")
        if any(self.entries[c].price is not None for c in cands) and r.get("tokens") is None:
            raise _Missing("input tokens")
        return matched.name, ROUTED, (matched.name, cands, consulted)

    @staticmethod
    def _pii_types(r: Mapping[str, Any], lookup: _Lookup) -> set[str]:
        computed = r["computed"]
        if not r.get("pii_scanned") and "pii" not in computed:
            raise _Missing("pii")
        found = set(r.get("pii") or ())
        if "pii" in computed:
            vals = lookup("pii") or {}
            found.update(vals.get("types") or ())
        return found

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
    # Rows sharing one set of admitted candidates are selected together.
    patterns, inverse = np.unique(keep, axis=0, return_inverse=True)
    for k, pat in enumerate(patterns):
        rows = np.flatnonzero(inverse.reshape(-1) == k)
        cols = np.flatnonzero(pat)
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


# -- reading logs ------------------------------------------------------------------------


def _open(path: Path) -> Iterator[str]:
    if path.suffix == ".gz":
        with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
            yield from f
    else:
        with path.open(encoding="utf-8", errors="replace") as f:
            yield from f


_REQUIRED: Final = ("decision", "outcome", "model", "signals", "computed", "p", "cost")


def read_lines(
    paths: Iterable[Path], router: str, bad: list[BadLine], counts: Counter[str]
) -> Iterator[tuple[Path, int, dict[str, Any]]]:
    """Logged lines as dicts; a corrupt line is noted in ``bad`` (the rest is read), a line
    from another router or log format refuses the whole replay."""
    loads = json.loads
    for path in paths:
        for lineno, line in enumerate(_open(path), 1):
            if not line.strip():
                continue
            counts["lines"] += 1
            try:
                r = loads(line)
            except ValueError:
                _bad(bad, counts, path, lineno, "not valid JSON (corrupt or truncated line)")
                continue
            if not _well_formed(r):
                _bad(bad, counts, path, lineno, "not a decision log record (fields missing)")
                continue
            if r.get("v") != LOG_VERSION:
                raise ReplayRefused(
                    f"{path}:{lineno}: log format version {r.get('v')!r}; this irtgate "
                    f"reads version {LOG_VERSION}"
                )
            if r.get("router") != router:
                raise ReplayRefused(
                    f"{path}:{lineno}: this log was written with router {r.get('router')!r}, "
                    f"but the router loaded for the policy is {router!r}. Its P values "
                    "would not match the policy's router: replay with the router the log "
                    "was written with (--router DIR)."
                )
            yield path, lineno, r


def _well_formed(r: object) -> bool:
    if not isinstance(r, dict) or any(k not in r for k in _REQUIRED):
        return False
    return (
        isinstance(r["model"], str)
        and isinstance(r["signals"], dict)
        and isinstance(r["computed"], list)
        and isinstance(r["p"], dict)
        and isinstance(r["cost"], dict)
        and isinstance(r.get("pii", {}), dict)
    )


def _bad(bad: list[BadLine], counts: Counter[str], path: Path, lineno: int, why: str) -> None:
    counts["bad"] += 1
    if len(bad) < BAD_LINES_KEPT:
        bad.append(BadLine(str(path), lineno, why))


class LoggedBaseline:
    """What the log says happened: the serving policy's choices, as columns."""

    def __init__(self) -> None:
        self.outcome: list[str] = []
        self.decision: list[str] = []
        self.choice: list[str | None] = []
        self.p = array("d")  # logged P of the choice, NaN where none
        self.cost = array("d")  # logged cost of the choice, NaN where unknown
        self.policies: Counter[str] = Counter()

    def add(self, r: Mapping[str, Any]) -> None:
        outcome = str(r["outcome"])
        choice = r.get("choice") if outcome == ROUTED else None
        pc = r.get("p_choice")
        c = r["cost"].get(choice) if choice is not None else None
        self.outcome.append(outcome)
        self.decision.append(str(r["decision"]))
        self.choice.append(str(choice) if choice is not None else None)
        self.p.append(float(pc) if pc is not None else math.nan)
        self.cost.append(float(c) if c is not None else math.nan)
        self.policies[str(r.get("policy"))] += 1


def replay(
    paths: Sequence[Path], new: Snapshot, baseline: Snapshot | None = None
) -> tuple[PolicyReplay, PolicyReplay | None, LoggedBaseline, list[BadLine], Counter[str]]:
    """Replay ``paths`` under ``new`` (and ``baseline`` if given). Raises ReplayRefused."""
    if baseline is not None and router_identity(baseline.resources.router) != router_identity(
        new.resources.router
    ):
        raise ReplayRefused("the two policies were compiled with different routers")
    after = PolicyReplay(new, "new")
    before = PolicyReplay(baseline, "baseline") if baseline is not None else None
    logged = LoggedBaseline()
    bad: list[BadLine] = []
    counts: Counter[str] = Counter()
    for path, lineno, r in read_lines(paths, router_identity(new.resources.router), bad, counts):
        try:
            a = after.prepare(r)
            b = before.prepare(r) if before is not None else None
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            _bad(bad, counts, path, lineno, f"unreadable record ({type(e).__name__})")
            continue
        after.commit(a)
        if before is not None and b is not None:
            before.commit(b)
        logged.add(r)
    after.finish()
    if before is not None:
        before.finish()
    return after, before, logged, bad, counts
