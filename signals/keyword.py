"""The ``keyword`` signal: named lists of literals and regular expressions.

    signals:
      keyword:
        lists:
          urgent: {literals: [asap, urgent, "right now"]}
          sql: {regexes: ['\\bselect\\b.+\\bfrom\\b'], case_sensitive: false}
        scope: last_user        # or: user (every user turn), all (every turn)

Fields: ``matched`` (the names of the lists that matched, in declaration order), one
boolean per list, named after it, and ``truncated`` (the request's CPU budget ran out
before every regex had looked). In texts over 2,048 characters regexes are searched in
overlapping windows, so a match longer than 1,024 characters may be missed and ``$``
may also match at a window's end. Patterns are checked when the policy loads: they must
compile, be at most 500 characters, not match the empty string, and not nest an unbounded
repeat inside another (``(a+)+``, the classic catastrophic-backtracking shape; write it
with a possessive quantifier or an atomic group, ``(?>a+)+``, if it is really meant).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

from irtgate.signals.base import Resources, SignalContext, Value, WorkBudget, register

MAX_PATTERN_CHARS = 500
# Texts longer than this are searched by regexes in windows of this size, overlapping by
# half: every match up to REGEX_STEP characters long is found, and a regex's worst case
# (quadratic in what it searches) is paid per window, so linear in the text.
REGEX_WINDOW = 2048
REGEX_STEP = REGEX_WINDOW // 2
MAX_LITERAL_CHARS = 200
MAX_ITEMS = 2000
_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_LIST_KEYS = frozenset({"literals", "regexes", "word_boundary", "case_sensitive"})
_PARAMS = frozenset({"lists", "scope", "max_chars"})
_SCOPES = ("last_user", "user", "all")
_RESERVED = frozenset({"matched", "truncated"})
_REPEATS = {"MAX_REPEAT", "MIN_REPEAT"}
_SAFE = {"POSSESSIVE_REPEAT", "ATOMIC_GROUP"}  # no backtracking into these


def _subpatterns(av: Any) -> Iterator[Any]:
    """Every parsed sub-pattern inside an opcode's argument, however it is nested."""
    if hasattr(av, "data"):  # a SubPattern
        yield av
    elif isinstance(av, tuple | list):
        for x in av:
            yield from _subpatterns(x)


def _sre(module: str) -> Any:
    # The regex parser is private (no stubs) but stable since 3.11; a parse tree is the
    # cheap, exact way to see how quantifiers nest.
    import importlib

    return importlib.import_module(f"re.{module}")


def _nested_unbounded(items: Any, in_repeat: bool) -> bool:
    maxrepeat = _sre("_constants").MAXREPEAT
    for op, av in items.data:
        name = str(op)
        if name in _SAFE:
            continue
        if name in _REPEATS:
            _lo, hi, sub = av
            unbounded = hi == maxrepeat or hi > 100
            if unbounded and in_repeat:
                return True
            if _nested_unbounded(sub, in_repeat or hi > 1):
                return True
            continue
        for sub in _subpatterns(av):
            if _nested_unbounded(sub, in_repeat):
                return True
    return False


def check_regex(pattern: Any, flags: int, where: str) -> re.Pattern[str]:
    """Compile an operator's regex or raise ValueError saying what is wrong and where."""
    if not isinstance(pattern, str) or not pattern:
        raise ValueError(f"{where}: expected a non-empty string, got {pattern!r}")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise ValueError(f"{where}: pattern longer than {MAX_PATTERN_CHARS} characters")
    try:
        compiled = re.compile(pattern, flags)
        tree = _sre("_parser").parse(pattern, flags)
    except re.error as e:
        raise ValueError(f"{where}: invalid regex: {e}") from e
    if compiled.search("") is not None:
        raise ValueError(f"{where}: pattern matches the empty string, so it matches everything")
    if _nested_unbounded(tree, False):
        raise ValueError(
            f"{where}: nested unbounded repeats (like (a+)+) can take exponential time; "
            "use a possessive quantifier or an atomic group (?>...) if this is intended"
        )
    return compiled


class _KeywordList:
    def __init__(self, name: str, spec: Any) -> None:
        where = f"lists.{name}"
        if not isinstance(spec, Mapping):
            raise ValueError(f"{where}: expected a mapping with literals and/or regexes")
        unknown = sorted(set(spec) - _LIST_KEYS)
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {unknown}; known: {sorted(_LIST_KEYS)}")
        for flag in ("word_boundary", "case_sensitive"):
            if flag in spec and not isinstance(spec[flag], bool):
                raise ValueError(f"{where}.{flag}: expected true or false")
        flags = 0 if spec.get("case_sensitive", False) else re.IGNORECASE
        literals = _str_list(spec.get("literals", []), f"{where}.literals", MAX_LITERAL_CHARS)
        regexes = spec.get("regexes", [])
        if not isinstance(regexes, list) or len(regexes) > MAX_ITEMS:
            raise ValueError(f"{where}.regexes: expected a list of at most {MAX_ITEMS} strings")
        if not literals and not regexes:
            raise ValueError(f"{where}: needs at least one literal or regex")
        self.regexes: list[re.Pattern[str]] = [
            check_regex(r, flags, f"{where}.regexes[{i}]") for i, r in enumerate(regexes)
        ]
        self.literals: re.Pattern[str] | None = None
        if literals:
            # One alternation for all literals, longest first so "new york" beats "new".
            alt = "|".join(re.escape(w) for w in sorted(set(literals), key=len, reverse=True))
            if spec.get("word_boundary", True):
                # Lookarounds rather than \b so literals that start or end with punctuation
                # ("c++", ".net") still get a boundary.
                alt = rf"(?<!\w)(?:{alt})(?!\w)"
            self.literals = re.compile(alt, flags)

    def matches(self, texts: Sequence[str], budget: WorkBudget) -> bool | None:
        """Whether any text matches; None if the budget ran out before an answer."""
        if self.literals is not None and any(self.literals.search(t) for t in texts):
            return True  # one alternation: linear in the text
        for p in self.regexes:
            for t in texts:
                if len(t) <= REGEX_WINDOW:
                    if p.search(t):
                        return True
                    continue
                # An operator's regex can be quadratic on a hostile text ("\bselect\b.+
                # \bfrom\b" on 80 KB of "select ": 20 s); windows bound each search.
                for start in range(0, len(t) - REGEX_STEP, REGEX_STEP):
                    if budget.spent():
                        return None
                    if p.search(t, start, start + REGEX_WINDOW):
                        return True
        return False


def _str_list(v: Any, where: str, max_chars: int) -> list[str]:
    if not isinstance(v, list) or len(v) > MAX_ITEMS:
        raise ValueError(f"{where}: expected a list of at most {MAX_ITEMS} strings")
    for i, s in enumerate(v):
        if not isinstance(s, str) or not s.strip() or len(s) > max_chars:
            raise ValueError(f"{where}[{i}]: expected a non-blank string of <= {max_chars} chars")
    return list(v)


class KeywordSignal:
    name: ClassVar[str] = "keyword"
    # Per-list booleans are added by the factory on a subclass (see make_keyword).
    fields: ClassVar[Mapping[str, type]] = {"matched": tuple, "truncated": bool}

    def __init__(self, lists: dict[str, _KeywordList], scope: str, max_chars: int) -> None:
        self.lists = lists
        self.labels: Mapping[str, tuple[str, ...]] = {"matched": tuple(lists)}
        self.scope = scope
        self.max_chars = max_chars

    def _texts(self, ctx: SignalContext) -> list[str]:
        msgs = ctx.request.messages
        if self.scope == "last_user":
            texts = [ctx.request.last_user_text.reveal()]
        elif self.scope == "user":
            texts = [m.text.reveal() for m in msgs if m.role == "user"]
        else:
            texts = [m.text.reveal() for m in msgs]
        half = self.max_chars // 2
        # Very long turns: the head (instructions) and the tail (the question) matter most.
        return [t if len(t) <= self.max_chars else t[:half] + "\n" + t[-half:] for t in texts]

    def compute(self, ctx: SignalContext) -> Mapping[str, Value]:
        texts = self._texts(ctx)
        found = {name: kl.matches(texts, ctx.budget) for name, kl in self.lists.items()}
        hits = {name: hit is True for name, hit in found.items()}
        out: dict[str, Value] = {"matched": tuple(n for n, hit in hits.items() if hit)}
        out.update(hits)
        out["truncated"] = any(hit is None for hit in found.values())
        return out


@register("keyword", KeywordSignal)
def make_keyword(params: Mapping[str, Any], resources: Resources) -> KeywordSignal:
    unknown = sorted(set(params) - _PARAMS)
    if unknown:
        raise ValueError(f"keyword: unknown parameter(s) {unknown}; known: {sorted(_PARAMS)}")
    lists = params.get("lists")
    if not isinstance(lists, Mapping) or not lists:
        raise ValueError("lists: expected a non-empty mapping of list name -> spec")
    built: dict[str, _KeywordList] = {}
    for name, spec in lists.items():
        if not isinstance(name, str) or not _NAME.fullmatch(name) or name in _RESERVED:
            raise ValueError(
                f"lists: bad list name {name!r}; use lower-case letters, digits and _, "
                "starting with a letter, and not 'matched' or 'truncated'"
            )
        built[name] = _KeywordList(name, spec)
    scope = params.get("scope", "last_user")
    if scope not in _SCOPES:
        raise ValueError(f"scope: expected one of {list(_SCOPES)}, got {scope!r}")
    max_chars = params.get("max_chars", 200_000)
    if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 100:
        raise ValueError(f"max_chars: expected an integer >= 100, got {max_chars!r}")
    # The per-list booleans are part of the declared fields, so policy validation can check
    # `keyword.urgent` like any other field; a subclass per configuration carries them.
    fields: dict[str, type] = {"matched": tuple, "truncated": bool, **{n: bool for n in built}}
    cls = type("KeywordSignal", (KeywordSignal,), {"fields": fields})
    signal: KeywordSignal = cls(built, scope, max_chars)
    return signal
