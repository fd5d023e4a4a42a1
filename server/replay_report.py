"""What a replay found, summarised, and rendered as a terminal table, Markdown or a PNG.

Only requests that both sides could decide are compared: a request the new (or baseline)
policy cannot decide from the log (a signal it needs was never computed) is counted
under "missing" and left out of every share and mean. Expected accuracy is the mean
router P of the chosen configuration (over choices that have one); expected cost is the
sum of the chosen entries' expected USD (unknown costs are counted, not guessed).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from irtgate.policies.spec import CatalogEntry
from irtgate.server.replay import (
    BLOCKED,
    MISSING,
    NO_CANDIDATE,
    ROUTED,
    BadLine,
    LoggedBaseline,
    PolicyReplay,
)


@dataclass(frozen=True)
class Side:
    """One side of the comparison (the logged or baseline choices, or the new policy's)."""

    label: str
    n: int
    routed: int
    refused: Mapping[str, int]
    mean_p: float | None
    p_known: int
    cost_total: float
    cost_unknown: int  # routed requests whose choice has no known cost
    entries: Mapping[str, int]
    models: Mapping[str, int]
    budgets: Mapping[str, int]
    decisions: Mapping[str, int]

    @property
    def cost_per_1k(self) -> float:
        return 1000.0 * self.cost_total / self.routed if self.routed else 0.0


@dataclass(frozen=True)
class Summary:
    lines: int
    bad_count: int
    bad: Sequence[BadLine]
    compared: int
    missing: Mapping[str, int]  # what the log lacked -> requests
    changed: int
    newly_blocked: int
    newly_no_candidate: int
    before: Side
    after: Side
    policies_in_log: Mapping[str, int]

    @property
    def changed_share(self) -> float:
        return self.changed / self.compared if self.compared else 0.0


def _side(
    label: str,
    outcome: Sequence[str],
    choice: Sequence[str | None],
    p: np.ndarray,
    cost: np.ndarray,
    decision: Sequence[str],
    keep: np.ndarray,
    catalog: Mapping[str, CatalogEntry],
) -> Side:
    idx = np.flatnonzero(keep)
    rows: list[int] = idx.tolist()
    out = [outcome[i] for i in rows]
    routed_mask = np.array([o == ROUTED for o in out], dtype=bool)
    routed_idx = idx[routed_mask]
    pr, cr = p[routed_idx], cost[routed_idx]
    entries = Counter(choice[i] or "-" for i in routed_idx.tolist())
    models: Counter[str] = Counter()
    budgets: Counter[str] = Counter()
    for name, k in entries.items():
        e = catalog.get(name)
        models[e.model if e is not None else f"{name} (entry not in the policy)"] += k
        budgets[str(e.budget) if e is not None and e.budget is not None else "none"] += k
    known_p = ~np.isnan(pr)
    return Side(
        label=label,
        n=len(idx),
        routed=int(routed_mask.sum()),
        refused=dict(Counter(o for o in out if o != ROUTED)),
        mean_p=float(pr[known_p].mean()) if known_p.any() else None,
        p_known=int(known_p.sum()),
        cost_total=float(np.nansum(cr)),
        cost_unknown=int(np.isnan(cr).sum()),
        entries=dict(entries),
        models=dict(models),
        budgets=dict(budgets),
        decisions=dict(Counter(decision[i] for i in rows)),
    )


def _replayed_side(rp: PolicyReplay, keep: np.ndarray, label: str) -> Side:
    names = np.array([e.name for e in rp.entries] + [None], dtype=object)
    ch = rp.choice
    n = len(ch)
    rows = np.arange(n)
    safe = np.maximum(ch, 0)
    routed = ch >= 0
    p = np.where(routed, rp.p_matrix[rows, safe] if n else np.zeros(0), np.nan)
    cost = np.where(routed, rp.cost_matrix[rows, safe] if n else np.zeros(0), np.nan)
    choice = list(names[np.where(routed, ch, len(rp.entries))])
    return _side(label, rp.outcome, choice, p, cost, rp.decision, keep, rp.snap.catalog)


def summarise(
    after: PolicyReplay,
    before: PolicyReplay | None,
    logged: LoggedBaseline,
    bad: Sequence[BadLine],
    counts: Mapping[str, int],
) -> Summary:
    n = len(logged.outcome)
    keep = np.array([o != MISSING for o in after.outcome], dtype=bool)
    missing = Counter(after.missing)
    if before is not None:
        keep &= np.array([o != MISSING for o in before.outcome], dtype=bool)
        missing.update({f"{k} (baseline)": v for k, v in before.missing.items()})
        b_side = _replayed_side(before, keep, "baseline policy")
        b_choice: list[str | None] = [
            before.entries[c].name if c >= 0 else None for c in before.choice.tolist()
        ]
        b_outcome = before.outcome
    else:
        b_side = _side(
            "logged",
            logged.outcome,
            logged.choice,
            np.frombuffer(logged.p, dtype=np.float64) if n else np.zeros(0),
            np.frombuffer(logged.cost, dtype=np.float64) if n else np.zeros(0),
            logged.decision,
            keep,
            after.snap.catalog,
        )
        b_choice, b_outcome = logged.choice, logged.outcome
    a_side = _replayed_side(after, keep, "new policy")
    a_choice = [after.entries[c].name if c >= 0 else None for c in after.choice.tolist()]
    changed = newly_blocked = newly_empty = 0
    for i in np.flatnonzero(keep).tolist():
        ao, bo = after.outcome[i], b_outcome[i]
        if ao != bo or a_choice[i] != b_choice[i]:
            changed += 1
            if bo == ROUTED and ao == BLOCKED:
                newly_blocked += 1
            elif bo == ROUTED and ao == NO_CANDIDATE:
                newly_empty += 1
    return Summary(
        lines=counts.get("lines", 0),
        bad_count=counts.get("bad", 0),
        bad=tuple(bad),
        compared=int(keep.sum()),
        missing=dict(missing),
        changed=changed,
        newly_blocked=newly_blocked,
        newly_no_candidate=newly_empty,
        before=b_side,
        after=a_side,
        policies_in_log=dict(logged.policies),
    )


# -- rendering -----------------------------------------------------------------------------


def _pct(k: int, n: int) -> str:
    return f"{100.0 * k / n:.1f}%" if n else "-"


def _p(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def _rows(s: Summary) -> list[tuple[str, str, str]]:
    b, a = s.before, s.after
    rows = [
        ("requests compared", str(b.n), str(a.n)),
        ("routed", str(b.routed), str(a.routed)),
        ("expected accuracy (mean P)", _p(b.mean_p), _p(a.mean_p)),
        ("expected cost, total (USD)", f"{b.cost_total:.4f}", f"{a.cost_total:.4f}"),
        ("expected cost per 1k requests", f"{b.cost_per_1k:.4f}", f"{a.cost_per_1k:.4f}"),
        ("choices of unknown cost", str(b.cost_unknown), str(a.cost_unknown)),
    ]
    for code in sorted(set(b.refused) | set(a.refused)):
        rows.append((f"refused: {code}", str(b.refused.get(code, 0)), str(a.refused.get(code, 0))))
    return rows


def _shares(s: Summary) -> list[tuple[str, list[tuple[str, str, str]]]]:
    out = []
    for title, bm, am, nb, na in (
        ("model", s.before.models, s.after.models, s.before.routed, s.after.routed),
        ("budget", s.before.budgets, s.after.budgets, s.before.routed, s.after.routed),
        ("decision", s.before.decisions, s.after.decisions, s.before.n, s.after.n),
    ):
        keys = sorted(set(bm) | set(am), key=lambda k: -(am.get(k, 0) + bm.get(k, 0)))
        out.append((title, [(k, _pct(bm.get(k, 0), nb), _pct(am.get(k, 0), na)) for k in keys]))
    return out


def _headline(s: Summary) -> list[str]:
    lines = [
        f"{s.lines} lines read, {s.compared} requests compared; baseline: {s.before.label}",
        f"choice changes for {s.changed} requests ({_pct(s.changed, s.compared)})",
        f"would now be blocked: {s.newly_blocked}; left with no candidate: {s.newly_no_candidate}",
    ]
    if s.missing:
        what = ", ".join(f"{k}: {v}" for k, v in sorted(s.missing.items(), key=lambda x: -x[1]))
        lines.append(f"not replayable (the log lacks what the policy needs): {what}")
    if s.bad_count:
        lines.append(f"{s.bad_count} corrupt or unreadable lines skipped:")
        lines.extend(f"  {b}" for b in s.bad)
        if s.bad_count > len(s.bad):
            lines.append(f"  ... and {s.bad_count - len(s.bad)} more")
    return lines


def render_text(s: Summary) -> str:
    out = _headline(s)
    width = max(len(r[0]) for r in _rows(s)) + 2
    out.append("")
    out.append(f"{'':<{width}}{'before':>14}{'after':>14}")
    out.extend(f"{k:<{width}}{b:>14}{a:>14}" for k, b, a in _rows(s))
    for title, rows in _shares(s):
        out.append("")
        out.append(f"traffic share per {title}")
        w = max([len(r[0]) for r in rows] + [10]) + 2
        out.extend(f"  {k:<{w}}{b:>10}{a:>10}" for k, b, a in rows)
    return "\n".join(out) + "\n"


def render_markdown(s: Summary, title: str) -> str:
    out = [f"# Policy replay: {title}", ""]
    out.extend(f"- {line.strip()}" for line in _headline(s))
    out += ["", "| | before | after |", "|---|---:|---:|"]
    out.extend(f"| {k} | {b} | {a} |" for k, b, a in _rows(s))
    for name, rows in _shares(s):
        out += ["", f"## Traffic share per {name}", "", f"| {name} | before | after |"]
        out.append("|---|---:|---:|")
        out.extend(f"| `{k}` | {b} | {a} |" for k, b, a in rows)
    return "\n".join(out) + "\n"


class MissingExtra(RuntimeError):
    pass


# The PNG needs matplotlib, which the serving core never imports: the lab provides the
# renderer through this entry-point group (see pyproject.toml).
PNG_GROUP = "irtgate.replay_png"


def render_png(s: Summary, path: Path, title: str) -> None:
    """Traffic per model, and expected accuracy and cost, before and after (lab extra)."""
    from importlib.metadata import entry_points

    for ep in entry_points(group=PNG_GROUP):
        ep.load()(s, path, title)
        return
    raise MissingExtra(
        "--png is drawn by the lab (matplotlib): pip install 'irtgate[lab]' (from a "
        f"checkout, reinstall it so that the entry point {PNG_GROUP!r} is registered)"
    )
