"""Grading a model's free-text answer against a bank item's gold answer.

Real output rarely is the bare letter or number asked for. The graders look, in order, for
an explicit final answer (``#### 42``, ``\\boxed{42}``, "the answer is (B)", "Answer: B"),
then for the shape of the reply (a reply that opens with "B)" or "(B)"), and only then for
the last number or a lone option letter. An answer that names two different options without
saying which is final ("A or B") is wrong: a grader that guessed would flatter the model.

:func:`naive_grade` is the simple rule (last number; first standalone letter) the shared
README measures; it is kept to compare against.
"""

from __future__ import annotations

import re
from fractions import Fraction

from irtgate.lab.onboard.bank import BankItem

# A number as models write it: sign, thousands commas, decimals, a currency sign before it.
_NUM = r"[-−]?\$?\s?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s?/\s?\d+)?"
_NUM_RE = re.compile(rf"(?<![\w.])({_NUM})(?!\.?\d)")
_HASHES = re.compile(rf"####\s*\**\s*({_NUM})")
_BOXED = re.compile(r"\\boxed\s*\{\s*(?:\\text\{)?([^{}]*)\}")
# "the (final) answer is", "answer:", "final answer =": the phrase, then up to a few
# characters of decoration before the value.
_ANSWER_IS = re.compile(
    r"(?:final\s+answer|correct\s+(?:answer|option|choice)|the\s+answer|answer|"
    r"\bi\s+(?:choose|pick|select))\s*(?:is|would\s+be|will\s+be|=|:|-)?\s*"
    r"(?:(?:option|choice|letter)\s+)?",
    re.IGNORECASE,
)
_PAREN = re.compile(r"\([^()]*\)")


def parse_number(text: str) -> Fraction | None:
    """``"1,234"`` -> 1234, ``"$18.00"`` -> 18, ``"3/4"`` -> 3/4; None if not a number."""
    t = text.strip().replace("−", "-").replace("$", "").replace(",", "").replace(" ", "")
    t = t.rstrip(".").removesuffix("%")
    try:
        if "/" in t:
            num, den = t.split("/", 1)
            return Fraction(num) / Fraction(den) if Fraction(den) != 0 else None
        return Fraction(t)
    except (ValueError, ZeroDivisionError):
        return None


def _numbers(text: str) -> list[str]:
    return [m.group(1) for m in _NUM_RE.finditer(text)]


def extract_number(text: str) -> Fraction | None:
    """The final numeric answer of a reply, or None."""
    for pattern in (_HASHES, _BOXED):
        found = [m.group(1) for m in pattern.finditer(text)]
        for cand in reversed(found):
            nums = _numbers(cand) if pattern is _BOXED else [cand]
            if nums and (v := parse_number(nums[-1])) is not None:
                return v
    # "The answer is 18. She makes $18 every day.": the stated answer, not the restatement.
    stated = []
    for m in _ANSWER_IS.finditer(text):
        tail = re.sub(r"^[\s*:=]+", "", text[m.end() : m.end() + 40])
        first = _NUM_RE.match(tail)
        if first:
            stated.append(first.group(1))
    if stated and (v := parse_number(stated[-1])) is not None:
        return v
    # The last sentence that has a number, asides in parentheses removed ("42 apples (6 x 7)").
    body = _PAREN.sub(" ", text)
    sentences = [s for s in re.split(r"(?<=[.!?])\s+|\n+", body) if _numbers(s)]
    if not sentences:
        return None
    last = sentences[-1]
    if "=" in last:
        after = _numbers(last.rsplit("=", 1)[1])
        if after:
            return parse_number(after[0])
    return parse_number(_numbers(last)[-1])


def _letters_pattern(choices: tuple[str, ...]) -> str:
    return "|".join(re.escape(c) for c in sorted(choices, key=len, reverse=True))


def extract_choice(text: str, choices: tuple[str, ...], prompt: str = "") -> str | None:
    """The option a reply picks, or None (no option, or two without saying which)."""
    if not choices:
        return None
    letters = _letters_pattern(choices)
    # A letter standing alone: "(B)", "B)", "B.", "**B**", "B" at a word boundary.
    lone = re.compile(rf"(?<![A-Za-z0-9'])[\(\[*]*({letters})(?![A-Za-z0-9'])")
    s = text.strip()
    boxed = [m.group(1).strip(" ()*") for m in _BOXED.finditer(s)]
    boxed = [b for b in boxed if b in choices]
    if boxed:
        return boxed[-1]
    stated = []
    for m in _ANSWER_IS.finditer(s):
        tail = s[m.end() : m.end() + 12]
        hit = re.match(rf"[\s*:\"'\[(]*({letters})(?![A-Za-z0-9'])", tail)
        if hit:
            stated.append(hit.group(1))
    if stated:
        return stated[-1]
    # A reply that opens with its choice: "B", "B)", "(B) because ...", "**C**. The ...".
    opening = re.match(rf"[\s\(\[*]*({letters})(?:[\)\].:*,]|\s*$|\s+[-–—]|\s+because)", s)
    if opening:
        return opening.group(1)
    found = {m.group(1) for m in lone.finditer(s) if not _is_article(s, m.start(1), m.group(1))}
    if len(found) == 1:
        return found.pop()
    if not found:
        return _choice_by_text(s, choices, prompt)
    return None


def _is_article(text: str, pos: int, letter: str) -> bool:
    """'A' opening a sentence before a lower-case word ("A boat ...") is the article, not
    option A; inside a sentence ("it is A or B") it is the option."""
    if letter not in ("A", "I"):
        return False
    nxt = text[pos + 1 : pos + 3]
    before = text[:pos].rstrip(" *\"'")
    opens = not before or before[-1] in ".!?:\n"
    return opens and len(nxt) == 2 and nxt[0] == " " and nxt[1].isalpha() and nxt[1].islower()


def _choice_by_text(text: str, choices: tuple[str, ...], prompt: str) -> str | None:
    """A reply that gives the option's text instead of its letter: match the last question's
    option lines ("B) wet palms") in the prompt. Only an unambiguous match counts."""
    tail = prompt.rsplit("\n\n", 1)[-1]
    opts = {}
    for c in choices:
        m = re.search(rf"^{re.escape(c)}\)\s*(.+?)\s*$", tail, re.MULTILINE)
        if m and len(m.group(1)) >= 3:
            opts[c] = m.group(1).rstrip(".").lower()
    low = text.lower()
    hits = [c for c, o in opts.items() if o in low]
    return hits[0] if len(hits) == 1 else None


def grade(item: BankItem, text: str) -> tuple[float, str | None]:
    """1.0 if ``text`` answers ``item`` correctly, else 0.0; and the answer read from it."""
    if item.answer_type == "choice":
        got = extract_choice(text, item.choices, item.prompt)
        return (1.0 if got == item.answer else 0.0), got
    num = extract_number(text)
    gold = parse_number(item.answer)
    if num is None or gold is None:
        return 0.0, None
    shown = str(num.numerator) if num.denominator == 1 else f"{float(num):g}"
    return (1.0 if num == gold else 0.0), shown


def naive_grade(item: BankItem, text: str) -> float:
    """The shared README's simple rule: last number (GSM8K); first standalone letter (ARC)."""
    if item.answer_type == "choice":
        m = re.search(rf"\b({_letters_pattern(item.choices)})\b", text)
        return 1.0 if m and m.group(1) == item.answer else 0.0
    nums = re.findall(r"-?\d[\d,]*\.?\d*", text)
    gold = parse_number(item.answer)
    return 1.0 if nums and parse_number(nums[-1]) == gold else 0.0
