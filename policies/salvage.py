"""Keep checking a policy that has schema errors, so one run reports every problem.

Schema errors (wrong types, unknown keys, bad values) stop pydantic from building a
:class:`~irtgate.policies.spec.Policy`, and without one the cross-reference checks (unknown
catalog entries, signals, upstreams, plugins) could not run: a file with seven structural
errors would hide the rest. So the broken parts are first *repaired* where a neutral value
exists (an unknown key is removed, a bad priority becomes 0, a bad objective one that adds no
problems of its own, a bad optional field is unset, a bad plugin is left out); what cannot be
repaired (a catalog entry without a valid name, a broken condition) is *dropped*. The
cross-reference checks then run on what is left. A later problem that only exists because of
an earlier one (a decision naming a catalog entry that was dropped) says which error caused it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from irtgate.policies.errors import PathT, Problem
from irtgate.policies.loader import Source
from irtgate.policies.spec import Policy

# Stand-ins that pass the schema and add no cross-reference problems of their own.
_NEUTRAL: dict[str, Any] = {
    "priority": 0,
    "objective": {"method": "linear", "w": 1},
    "candidates": ["*"],
    "version": 1,
}
# Optional catalog fields: unset when broken (the entry keeps its name for later checks).
_OPTIONAL_ENTRY = ("family", "budget", "router_config", "cost", "price", "local")
_ITEM_SECTIONS = ("catalog", "decisions")
_NAME_LISTS = ("upstreams", "aliases")


@dataclass(frozen=True)
class Salvage:
    """What is left of a policy once broken parts are repaired or dropped.

    ``keep[section][i]`` is the original index of item ``i`` in the salvaged list, so that
    later problems are reported at the right place; ``dropped`` maps the names of the dropped
    items to the problem that dropped them.
    """

    policy: Policy
    keep: dict[str, list[int]]
    dropped: dict[str, Problem]

    def remap(self, path: PathT) -> PathT:
        if len(path) > 1 and isinstance(path[0], str) and path[0] in self.keep:
            i = path[1]
            if isinstance(i, int) and i < len(self.keep[path[0]]):
                return (path[0], self.keep[path[0]][i], *path[2:])
        return path

    def cause(self, message: str) -> Problem | None:
        """The earlier problem that makes ``message`` a consequence, if any."""
        for name, problem in self.dropped.items():
            if repr(name) in message:
                return problem
        return None


def _repair(data: dict[str, Any], problem: Problem) -> bool:
    """Repair ``data`` in place at the problem's path; False when there is no neutral fix."""
    path = problem.path
    if not path:
        return False
    head = path[0]
    if len(path) == 1 and head in _NEUTRAL:
        data[head] = copy.deepcopy(_NEUTRAL[head])
        return True
    if head in _NAME_LISTS and len(path) == 2 and isinstance(data.get(head), list):
        data[head][path[1]] = None  # removed after all repairs, so indices stay valid
        return True
    if head in ("decisions", "default"):
        item_path = path[:2] if head == "decisions" else path[:1]
        rest = path[len(item_path) :]
        item = _at(data, item_path)
        if not isinstance(item, dict) or not rest:
            return False
        field = rest[0]
        if field == "plugins" and len(rest) >= 2 and isinstance(item.get("plugins"), list):
            item["plugins"][rest[1]] = None
            return True
        if field in _NEUTRAL:
            item[field] = copy.deepcopy(_NEUTRAL[field])
            return True
        return _remove_unknown(data, problem)
    if head == "catalog" and len(path) >= 3 and path[2] in _OPTIONAL_ENTRY:
        entry = _at(data, path[:2])
        if isinstance(entry, dict):
            entry.pop(path[2], None)
            return True
    return _remove_unknown(data, problem)


def _remove_unknown(data: dict[str, Any], problem: Problem) -> bool:
    if problem.message != "unknown key":
        return False
    parent = _at(data, problem.path[:-1])
    if isinstance(parent, dict) and problem.path[-1] in parent:
        del parent[problem.path[-1]]
        return True
    return False


def _at(data: Any, path: PathT) -> Any:
    cur = data
    for part in path:
        try:
            cur = cur[part]
        except (KeyError, IndexError, TypeError):
            return None
    return cur


def _compact(data: dict[str, Any]) -> None:
    # Drop the list slots that repairs emptied (names, plugins), now that indices no longer matter.
    for sec in _NAME_LISTS:
        if isinstance(data.get(sec), list):
            data[sec] = [x for x in data[sec] if x is not None]
    items = [*(data.get("decisions") or []), data.get("default")]
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("plugins"), list):
            item["plugins"] = [p for p in item["plugins"] if p is not None]


def _drop_items(
    data: dict[str, Any], problems: tuple[Problem, ...]
) -> tuple[dict[str, list[int]], dict[str, Problem]] | None:
    keep: dict[str, list[int]] = {}
    dropped: dict[str, Problem] = {}
    for sec in _ITEM_SECTIONS:
        bad: dict[int, Problem] = {}
        for p in problems:
            if len(p.path) > 1 and p.path[0] == sec and isinstance(p.path[1], int):
                bad.setdefault(p.path[1], p)
        if not bad:
            continue
        items = data.get(sec)
        if not isinstance(items, list):
            return None
        keep[sec] = [i for i in range(len(items)) if i not in bad]
        for i, p in bad.items():
            name = items[i].get("name") if isinstance(items[i], dict) else None
            if isinstance(name, str):
                dropped[name] = p
        data[sec] = [items[i] for i in keep[sec]]
    signals = data.get("signals")
    if isinstance(signals, dict):
        for p in problems:
            is_signal = len(p.path) > 1 and p.path[0] == "signals"
            if is_signal and signals.pop(p.path[1], None) is not None:
                dropped[str(p.path[1])] = p
    return keep, dropped


def salvage(src: Source, problems: tuple[Problem, ...]) -> Salvage | None:
    """The part of the policy that can still be checked, or None when nothing sensible is left."""
    if not isinstance(src.data, dict):
        return None
    data: dict[str, Any] = copy.deepcopy(src.data)
    unrepaired = tuple(p for p in problems if not _repair(data, p))
    _compact(data)
    out = _drop_items(data, unrepaired)
    if out is None:
        return None
    keep, dropped = out
    try:
        return Salvage(Policy.model_validate(data), keep, dropped)
    except ValidationError:
        return None
