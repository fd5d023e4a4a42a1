"""Graders on the shapes real model output takes."""

from __future__ import annotations

from fractions import Fraction

import pytest

from irtgate.lab.onboard.bank import BankItem
from irtgate.lab.onboard.grade import (
    extract_choice,
    extract_number,
    grade,
    naive_grade,
    parse_number,
)

ABCD = ("A", "B", "C", "D")
ARC_PROMPT = (
    "Which gas do plants take in?\nA) oxygen\nB) nitrogen\nC) helium\nD) argon\n"
    "Print only a single choice.\nAnswer:\nA\n\n"
    "George wants to warm his hands quickly by rubbing them. Which skin surface will "
    "produce the most heat?\nA) dry palms\nB) wet palms\nC) palms covered with oil\n"
    "D) palms covered with lotion\nPrint only a single choice.\nAnswer:"
)

# (reply, the option it picks or None)
CHOICES = [
    ("B", "B"),
    ("B)", "B"),
    ("(B)", "B"),
    ("The answer is (B).", "B"),
    ("B) because wet palms conduct heat away.", "B"),
    ("**C**. Oil reduces friction.", "C"),
    ("Answer: D", "D"),
    ("The correct answer is: A) dry palms", "A"),
    ("A dry surface gives the most friction, so the answer is A.", "A"),
    ("Looking at options B and C, neither fits. The correct option is D.", "D"),
    ("I think it is A or B.", None),
    ("Dry palms produce the most friction and therefore heat.", "A"),
    ("\\boxed{A}", "A"),
    ("Final answer: **A**", "A"),
    ("None of these.", None),
    ("A", "A"),
    ("A.", "A"),
    ("C - palms covered with oil", "C"),
]

# (reply, the number it gives or None)
NUMBERS = [
    ("42", 42),
    ("#### 42", 42),
    ("She has 6 boxes of 7, so 6 * 7 = 42.\n#### 42", 42),
    ("The total is \\boxed{42}.", 42),
    ("\\boxed{1,234}", 1234),
    ("So the answer is $18.00.", 18),
    ("The answer is 18. She makes $18 every day from 3 hours of work.", 18),
    ("First 5 + 3 = 8, then 8 * 2 = 16 apples.", 16),
    ("So the total is 42 apples (6 x 7).", 42),
    ("Therefore, 3 boxes hold 24 apples.", 24),
    ("She pays 1,234 dollars in total.", 1234),
    ("Answer: -5", -5),
    ("It takes 0.5 hours.", Fraction(1, 2)),
    ("The final answer is 3/4 of a cup.", Fraction(3, 4)),
    ("Janet sells 16 - 3 - 4 = 9 eggs and earns 9 * 2 = $18 a day.", 18),
    ("I cannot tell.", None),
    ("Final answer: **1,000**", 1000),
    ("The result is 25%.", 25),
]


@pytest.mark.parametrize(("text", "want"), CHOICES)
def test_choice_letters_inside_prose(text: str, want: str | None) -> None:
    assert extract_choice(text, ABCD, ARC_PROMPT) == want


@pytest.mark.parametrize(("text", "want"), NUMBERS)
def test_numbers_as_models_write_them(text: str, want: int | Fraction | None) -> None:
    assert extract_number(text) == (None if want is None else Fraction(want))


def test_parse_number() -> None:
    assert parse_number("1,234") == 1234
    assert parse_number("$18.00") == 18
    assert parse_number("18.0") == parse_number("18")
    assert parse_number("−3") == -3
    assert parse_number("1/0") is None
    assert parse_number("abc") is None


def test_grade_against_gold_beats_the_naive_rule_on_these_shapes() -> None:
    arc = BankItem("a1", "arc-challenge", ARC_PROMPT, "B", "choice", ABCD)
    gsm = BankItem("g1", "gsm8k", "How many?", "18", "number")
    cases = [(arc, t, want == "B") for t, want in CHOICES]
    cases += [(gsm, t, want == 18) for t, want in NUMBERS]
    ours = sum(grade(it, t)[0] == float(ok) for it, t, ok in cases)
    naive = sum(naive_grade(it, t) == float(ok) for it, t, ok in cases)
    assert ours == len(cases)
    assert naive < ours
    assert grade(gsm, "#### 18") == (1.0, "18")
    assert grade(gsm, "#### 19") == (0.0, "19")
    assert grade(arc, "I think it is A or B.") == (0.0, None)
