"""``when`` trees: static checks at load time, evaluation and a short "why" per request.

Evaluation semantics (documented in docs/policies.md):

- A test on a field the signal did not produce (or whose signal failed) is false, except
  ``present: false``, which is true.
- ``present`` is true when the field was produced and, for text and label sets, is
  non-empty; so ``{signal: pii.types, present: true}`` means "some PII was found".
- ``all`` and ``any`` short-circuit left to right; signals are computed on first use, so
  cheap tests placed first can spare an encoder pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from irtgate.policies.errors import PathT
from irtgate.policies.spec import Condition
from irtgate.signals.base import Value

# Reads one signal's values, computing it on first use; None when it failed.
Lookup = Callable[[str], Mapping[str, Value] | None]
_MISSING = object()
_WHY_LIMIT = 400


@dataclass(frozen=True, slots=True)
class FieldInfo:
    """What the validator knows about a signal field."""

    type: type
    low: float = -math.inf
    high: float = math.inf
    labels: frozenset[str] | None = None


def guess_range(field: str) -> tuple[float, float]:
    """Ranges for fields whose signals do not declare one, from well-known names."""
    f = field.lower()
    if (
        f in ("p_max", "confidence", "score")
        or f.startswith(("p.", "p_", "prob"))
        or f.endswith(("_confidence", "_prob", "_share", "_ratio"))
    ):
        return 0.0, 1.0
    if f.endswith(("tokens", "count", "chars", "messages", "length")) or f.startswith("n_"):
        return 0.0, math.inf
    return -math.inf, math.inf


def _is_num(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def check_leaf(cond: Condition, info: FieldInfo, path: PathT) -> list[tuple[PathT, str]]:
    """Type and threshold problems of one signal test."""
    op, val = cond.operator()
    t = info.type
    where = (*path, op)
    probs: list[tuple[PathT, str]] = []
    kind = (
        "label set"
        if t is tuple
        else "flag"
        if t is bool
        else "number"
        if t in (int, float)
        else "text"
    )
    allowed = {
        "label set": {"contains", "contains_any", "present"},
        "flag": {"eq", "ne", "present"},
        "number": {"eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "present"},
        "text": {"eq", "ne", "in", "not_in", "present"},
    }[kind]
    if op not in allowed:
        return [
            (
                where,
                f"'{op}' does not apply to {cond.signal} (a {kind}); "
                f"use one of {', '.join(sorted(allowed))}",
            )
        ]
    vals = val if isinstance(val, list) else [val]
    if op != "present":
        for v in vals:
            ok = (
                _is_num(v)
                if kind == "number"
                else isinstance(v, bool)
                if kind == "flag"
                else isinstance(v, str)
            )
            if not ok:
                probs.append((where, f"{v!r} does not fit {cond.signal}, which is a {kind}"))
        if info.labels is not None:
            for v in vals:
                if isinstance(v, str) and v not in info.labels:
                    probs.append(
                        (
                            where,
                            f"{cond.signal} is never {v!r} (labels: "
                            f"{', '.join(sorted(info.labels))})",
                        )
                    )
    if probs or kind != "number":
        return probs
    lo, hi = info.low, info.high
    rng = f"{cond.signal} is in [{lo:g}, {hi:g}]"
    never = always = False
    if op in ("gt", "gte", "lt", "lte"):
        v = float(val)
        if op == "gt":
            never, always = v >= hi, v < lo
        elif op == "gte":
            never, always = v > hi, v <= lo
        elif op == "lt":
            never, always = v <= lo, v > hi
        else:
            never, always = v < lo, v >= hi
    elif op in ("eq", "in"):
        never = all(not lo <= float(v) <= hi for v in vals)
    if never:
        probs.append((where, f"can never be met: {rng}"))
    if always:
        probs.append((where, f"can never fail: {rng}"))
    return probs


def _present(v: Any) -> bool:
    if v is _MISSING or v is None:
        return False
    return not (isinstance(v, tuple | str) and len(v) == 0)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    if isinstance(v, tuple | list):
        return "[" + ",".join(_fmt(x) for x in v) + "]"
    return str(v)


@dataclass(frozen=True, slots=True)
class Node:
    """A compiled condition. ``kind``: all | any | not | leaf."""

    kind: str
    children: tuple[Node, ...] = ()
    signal: str = ""
    field: str = ""
    op: str = ""
    value: Any = None

    @classmethod
    def build(cls, c: Condition) -> Node:
        if c.all is not None:
            return cls("all", tuple(cls.build(x) for x in c.all))
        if c.any is not None:
            return cls("any", tuple(cls.build(x) for x in c.any))
        if c.not_ is not None:
            return cls("not", (cls.build(c.not_),))
        assert c.signal is not None
        sig, _, field = c.signal.partition(".")
        op, val = c.operator()
        return cls(
            "leaf",
            signal=sig,
            field=field,
            op=op,
            value=tuple(val) if isinstance(val, list) else val,
        )

    def signals(self) -> set[str]:
        if self.kind == "leaf":
            return {self.signal}
        return set().union(*(c.signals() for c in self.children))

    def _get(self, lookup: Lookup) -> Any:
        vals = lookup(self.signal)
        if vals is None:
            return _MISSING
        return vals.get(self.field, _MISSING)

    def evaluate(self, lookup: Lookup) -> bool:
        if self.kind == "all":
            return all(c.evaluate(lookup) for c in self.children)
        if self.kind == "any":
            return any(c.evaluate(lookup) for c in self.children)
        if self.kind == "not":
            return not self.children[0].evaluate(lookup)
        v = self._get(lookup)
        op, want = self.op, self.value
        if op == "present":
            return _present(v) is bool(want)
        if v is _MISSING or v is None:
            return False
        try:
            if op == "eq":
                return bool(v == want)
            if op == "ne":
                return bool(v != want)
            if op == "gt":
                return bool(v > want)
            if op == "gte":
                return bool(v >= want)
            if op == "lt":
                return bool(v < want)
            if op == "lte":
                return bool(v <= want)
            if op == "in":
                return bool(v in want)
            if op == "not_in":
                return bool(v not in want)
            if op == "contains":
                return isinstance(v, tuple) and want in v
            if op == "contains_any":
                return isinstance(v, tuple) and any(x in v for x in want)
        except TypeError:  # a signal produced a value of the wrong type: not a match
            return False
        raise AssertionError(f"unknown operator {op}")

    def why(self, lookup: Lookup) -> str:
        """A compact account of the evaluation (signal values and operands, no text)."""
        out = self._why(lookup)
        return out if len(out) <= _WHY_LIMIT else out[: _WHY_LIMIT - 3] + "..."

    def _why(self, lookup: Lookup) -> str:
        mark = "yes" if self.evaluate(lookup) else "no"
        if self.kind == "leaf":
            v = self._get(lookup)
            shown = "missing" if v is _MISSING else _fmt(v)
            return f"{self.signal}.{self.field}={shown} {self.op} {_fmt(self.value)}: {mark}"
        parts: list[str] = []
        for c in self.children:
            parts.append(c._why(lookup))
            # Mirror the short-circuit: children that were not evaluated are not shown.
            if (self.kind == "all" and parts[-1].endswith(": no")) or (
                self.kind == "any" and parts[-1].endswith(": yes")
            ):
                break
        return f"{self.kind}({', '.join(parts)}): {mark}"
