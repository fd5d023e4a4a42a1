"""Few-shot prompts: finding the question among solved examples.

A few-shot prompt is a run of blank-line-separated blocks: an optional instruction header,
solved examples, and last the question, which ends with a cue line ("Answer:", "A:",
"答案：") that each solved example repeats with its answer after it. ``question_block``
drops the solved examples and keeps the header and the question.

Measured, not wired into the encoders: on ``routerbench-arc`` (every prompt starts with
the same five solved examples) embedding the question block instead of the windowed prompt
changed neither the IRT router's nor kNN's routing (docs/router.md, "What we tried"); the
head + tail window already keeps mostly the question. It is used by
``benchmarks/router_quality.py`` to measure that.
"""

from __future__ import annotations

import re

_BLOCK_SEP = re.compile(r"\r?\n[ \t]*\r?\n")
# A cue is a short label line; longer last lines are questions, not cues.
_MAX_CUE_CHARS = 40


def _cue(block: str) -> str | None:
    lines = [ln.strip() for ln in block.splitlines() if ln.strip()]
    if not lines:
        return None
    cue = lines[-1]
    if len(cue) > _MAX_CUE_CHARS or not any(ch.isalnum() for ch in cue):
        return None
    return cue


def _is_solved_example(block: str, cue: str) -> bool:
    """The block has a line starting with ``cue`` and an answer after it."""
    lines = [ln.strip() for ln in block.splitlines()]
    return any(
        ln.startswith(cue) and (ln[len(cue) :].strip() != "" or any(lines[i + 1 :]))
        for i, ln in enumerate(lines)
    )


def question_block(text: str, min_examples: int = 2) -> str:
    """``text`` without its solved few-shot examples; unchanged unless it has at least
    ``min_examples`` of them.

    Blocks are separated by blank lines. The last block is the question; its last line is
    the cue. A block before it is a solved example when it contains a line starting with
    the cue followed by an answer (on that line or below it). Other blocks (an instruction
    header) are kept, and the kept blocks are joined with one blank line.
    """
    if min_examples < 1:
        raise ValueError(f"min_examples must be >= 1, got {min_examples}")
    blocks = [b for b in _BLOCK_SEP.split(text) if b.strip()]
    if len(blocks) < min_examples + 1:
        return text
    cue = _cue(blocks[-1])
    if cue is None:
        return text
    examples = [_is_solved_example(b, cue) for b in blocks[:-1]]
    if sum(examples) < min_examples:
        return text
    kept = [b for b, ex in zip(blocks[:-1], examples, strict=True) if not ex]
    return "\n\n".join([*kept, blocks[-1]])
