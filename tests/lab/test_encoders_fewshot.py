"""Finding the question of a few-shot prompt: hand-written prompts of the common layouts."""

from __future__ import annotations

import pytest

from irtgate.lab.encoders.fewshot import question_block

ARC_LIKE = (
    "Which gas do plants take in?\nA) oxygen\nB) carbon dioxide\nAnswer:\nB\n\n"
    "What melts ice fastest?\nA) salt\nB) sand\nAnswer:\nA\n\n"
    "Which is a mammal?\nA) whale\nB) shark\nAnswer:\nA\n\n"
    "Which planet is largest?\nA) Mars\nB) Jupiter\nAnswer:"
)


def test_solved_examples_are_dropped_and_the_question_kept() -> None:
    assert question_block(ARC_LIKE) == "Which planet is largest?\nA) Mars\nB) Jupiter\nAnswer:"


def test_an_instruction_header_is_kept() -> None:
    text = (
        "The following are multiple choice questions about physics.\n\n"
        "Q1?\nA. x\nB. y\nAnswer: B\n\n"
        "Q2?\nA. x\nB. y\nAnswer: A\n\n"
        "Q3?\nA. x\nB. y\nAnswer:"
    )
    assert question_block(text) == (
        "The following are multiple choice questions about physics.\n\nQ3?\nA. x\nB. y\nAnswer:"
    )


def test_answers_on_the_cue_line_count_as_solved() -> None:
    text = "Q: 2 + 2?\nA: 4\n\nQ: 3 + 3?\nA: 6\n\nQ: 5 + 5?\nA:"
    assert question_block(text) == "Q: 5 + 5?\nA:"


def test_too_few_examples_leave_the_text_unchanged() -> None:
    text = "Q: 2 + 2?\nA: 4\n\nQ: 5 + 5?\nA:"
    assert question_block(text) == text
    assert question_block(text, min_examples=1) == "Q: 5 + 5?\nA:"
    with pytest.raises(ValueError):
        question_block(text, min_examples=0)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "What is 2 + 2?",
        # A docstring with a blank line: its last line is no cue (no letters).
        'def f(a, b):\n    """\n    Sum.\n\n    >>> f(1, 2)\n    3\n    """\n',
        # Paragraphs, and a last line far too long to be a cue.
        "First paragraph.\n\nSecond paragraph.\n\nThird paragraph, which is the question "
        "being asked here and is long?",
        # The cue appears in earlier blocks but with no answer after it: not solved examples.
        "Intro\nAnswer:\n\nMore\nAnswer:\n\nQuestion?\nAnswer:",
    ],
)
def test_ordinary_texts_are_unchanged(text: str) -> None:
    assert question_block(text) == text


def test_windows_line_endings_and_blank_lines_with_spaces() -> None:
    text = "Q: a?\r\nA: 1\r\n\r\nQ: b?\r\nA: 2\n  \nQ: c?\r\nA:"
    assert question_block(text) == "Q: c?\r\nA:"
