"""The ``keyword`` signal: literal and regex lists, validated when the policy loads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from irtgate.signals.base import Resources, SignalContext, WorkBudget, registered
from irtgate.signals.keyword import KeywordSignal, check_regex, make_keyword
from irtgate.signals.request import ApiKind, LLMRequest, Message
from irtgate.signals.text import PromptText
from tests.signals.scaling import QUADRATIC_GUARD, growth


def ctx(*turns: tuple[str, str]) -> SignalContext:
    msgs = tuple(Message(role=r, text=PromptText(t)) for r, t in turns)
    return SignalContext(LLMRequest(api=ApiKind.CHAT, model="auto", messages=msgs))


LISTS = {
    "urgent": {"literals": ["asap", "urgent", "right now"]},
    "langs": {"literals": ["C++", ".NET", "go"]},
    "sql": {"regexes": [r"\bselect\b.+\bfrom\b"]},
    "exact": {"literals": ["NASA"], "case_sensitive": True},
    "stems": {"literals": ["refund"], "word_boundary": False},
}


@pytest.fixture(scope="module")
def sig() -> Any:
    sig = make_keyword({"lists": LISTS}, Resources())
    assert isinstance(sig, KeywordSignal)
    return sig


def test_fields_include_one_boolean_per_list(sig: Any) -> None:
    assert dict(sig.fields) == {
        "matched": tuple,
        "truncated": bool,
        "urgent": bool,
        "langs": bool,
        "sql": bool,
        "exact": bool,
        "stems": bool,
    }
    assert registered()["keyword"][1] is make_keyword
    # A second configuration has its own fields; the first is not changed.
    other = make_keyword({"lists": {"x": {"literals": ["y"]}}}, Resources())
    assert set(other.fields) == {"matched", "truncated", "x"} and "urgent" in sig.fields
    assert tuple(sig.labels["matched"]) == tuple(LISTS)


@pytest.mark.parametrize(
    ("text", "matched"),
    [
        ("Please fix this ASAP!", ("urgent",)),
        ("I need it Right Now.", ("urgent",)),
        ("an urgently needed fix", ()),  # word boundary: "urgent" inside "urgently"
        ("port this from C++ to .NET", ("langs",)),
        ("let's go", ("langs",)),
        ("ago and gopher", ()),
        ("SELECT name\nFROM users", ()),  # "." does not cross the newline
        ("select name from users where id = 1", ("sql",)),
        ("NASA launched it", ("exact",)),
        ("nasa launched it", ()),  # case-sensitive list
        ("the refunds were late", ("stems",)),  # no word boundary: substring match
        ("Ünïcödé ASAP — 請儘快 urgent", ("urgent",)),
        ("", ()),
    ],
)
def test_matching(sig: Any, text: str, matched: tuple[str, ...]) -> None:
    out = sig.compute(ctx(("user", text)))
    assert out["matched"] == matched
    for name in LISTS:
        assert out[name] is (name in matched)


def test_scope_last_user_user_and_all() -> None:
    c = ctx(("system", "be urgent"), ("user", "asap please"), ("assistant", "ok"), ("user", "hi"))
    lists = {"urgent": {"literals": ["asap", "urgent"]}}
    last = make_keyword({"lists": lists}, Resources()).compute(c)
    user = make_keyword({"lists": lists, "scope": "user"}, Resources()).compute(c)
    allm = make_keyword(
        {"lists": {"sys": {"literals": ["be urgent"]}}, "scope": "all"}, Resources()
    )
    assert last["matched"] == () and user["matched"] == ("urgent",)
    assert allm.compute(c)["matched"] == ("sys",)


def test_long_text_keeps_head_and_tail() -> None:
    sig = make_keyword({"lists": {"k": {"literals": ["needle"]}}, "max_chars": 100}, Resources())
    assert sig.compute(ctx(("user", "needle " + "x " * 500)))["k"] is True
    assert sig.compute(ctx(("user", "x " * 500 + " needle")))["k"] is True
    assert sig.compute(ctx(("user", "x " * 500 + "needle" + " y" * 500)))["k"] is False


@pytest.mark.parametrize(
    "pattern",
    [r"(a+)+$", r"(\w+\s?)+$", r"(x*)*y", r"((ab)*c+)+"],
)
def test_catastrophic_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(ValueError, match="nested unbounded"):
        check_regex(pattern, 0, "lists.x.regexes[0]")


@pytest.mark.parametrize("pattern", [r"(?>a+)+$", r"a++b", r"(ab)+", r"(a|b)*c", r"\d{3}-\d{4}"])
def test_safe_patterns_are_accepted(pattern: str) -> None:
    assert check_regex(pattern, 0, "x").pattern == pattern


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({}, "lists"),
        ({"lists": {}}, "lists"),
        ({"lists": {"Bad-Name": {"literals": ["a"]}}}, "Bad-Name"),
        ({"lists": {"matched": {"literals": ["a"]}}}, "matched"),
        ({"lists": {"k": ["a"]}}, "lists.k"),
        ({"lists": {"k": {}}}, "lists.k"),
        ({"lists": {"k": {"literals": "abc"}}}, "lists.k.literals"),
        ({"lists": {"k": {"literals": ["ok", " "]}}}, r"lists.k.literals\[1\]"),
        ({"lists": {"k": {"literals": ["a"], "fuzzy": True}}}, "fuzzy"),
        ({"lists": {"k": {"literals": ["a"], "word_boundary": "yes"}}}, "word_boundary"),
        ({"lists": {"k": {"regexes": ["(unclosed"]}}}, r"lists.k.regexes\[0\]: invalid"),
        ({"lists": {"k": {"regexes": ["a*"]}}}, "empty string"),
        ({"lists": {"k": {"regexes": ["a" * 501]}}}, "longer than"),
        ({"lists": {"k": {"regexes": ["ok", "(a+)+"]}}}, r"regexes\[1\]"),
        ({"lists": {"k": {"literals": ["a"]}}, "scope": "system"}, "scope"),
        ({"lists": {"k": {"literals": ["a"]}}, "max_chars": 5}, "max_chars"),
        ({"lists": {"k": {"literals": ["a"]}}, "mode": 1}, "mode"),
    ],
)
def test_factory_rejects_bad_params(params: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        make_keyword(params, Resources())


def test_values_carry_no_prompt_text(sig: Any) -> None:
    out = sig.compute(ctx(("user", "my secret project asap")))
    assert "secret" not in repr(out)


def test_an_operator_regex_stays_linear_on_a_hostile_text() -> None:
    # issue 10: the docstring's own example is quadratic on a text of many "select"s and no
    # "from" (80 KB took 20 s); regexes now search bounded windows of long texts.
    sig = make_keyword({"lists": {"sql": {"regexes": [r"\bselect\b.+\bfrom\b"]}}}, Resources())

    def work(n: int) -> Callable[[], object]:
        c = ctx(("user", "select " * (n // 7)))
        return lambda: sig.compute(c)

    assert growth(work, 6000) < QUADRATIC_GUARD
    long = "x " * 5000 + "select a, b from t " + "y " * 5000
    assert sig.compute(ctx(("user", long)))["sql"] is True


def test_a_spent_budget_reports_truncated() -> None:
    sig = make_keyword({"lists": {"sql": {"regexes": [r"\bselect\b.+\bfrom\b"]}}}, Resources())
    budget = WorkBudget(cpu_seconds=0.0)
    budget.start()
    c = ctx(("user", "select " * 2000))
    c.budget = budget
    assert sig.compute(c) == {"matched": (), "sql": False, "truncated": True}
