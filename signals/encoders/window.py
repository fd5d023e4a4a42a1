"""The token window: which tokens of a long text an encoder actually sees.

One function for serving and for training corpora, so the two see the same tokens. A text
longer than ``max_tokens`` keeps ``head`` tokens from its start and the rest from its end:
prompts usually put the question last (few-shot examples, pasted context first), and the
head still carries the instruction line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# No tokenizer here yields fewer than one character per token except on pathological
# input, so cutting characters beyond this many per kept token never changes the window
# of ordinary text; it only bounds tokenizer work on megabyte-sized prompts.
_CHARS_PER_TOKEN_BOUND = 24


@dataclass(frozen=True, slots=True)
class TokenWindow:
    max_tokens: int  # content tokens kept, not counting [CLS]/[SEP]
    head: int  # of which taken from the start of the text when it is cut

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ValueError(f"window max_tokens must be >= 1, got {self.max_tokens}")
        if not 0 <= self.head <= self.max_tokens:
            raise ValueError(f"window head must be in [0, {self.max_tokens}], got {self.head}")

    @property
    def tail(self) -> int:
        return self.max_tokens - self.head

    def clip_chars(self, text: str) -> tuple[str, bool]:
        """Cut absurdly long text by characters before tokenizing (see the bound above)."""
        head_chars = self.head * _CHARS_PER_TOKEN_BOUND
        tail_chars = self.tail * _CHARS_PER_TOKEN_BOUND
        if len(text) <= head_chars + tail_chars:
            return text, False
        tail = text[len(text) - tail_chars :] if tail_chars else ""
        return text[:head_chars] + "\n" + tail, True

    def cut(self, ids: Sequence[int]) -> tuple[list[int], bool]:
        """The kept token ids and whether anything was dropped."""
        if len(ids) <= self.max_tokens:
            return list(ids), False
        tail = list(ids[len(ids) - self.tail :]) if self.tail else []
        return list(ids[: self.head]) + tail, True

    def to_json(self) -> dict[str, int]:
        return {"max_tokens": self.max_tokens, "head": self.head}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TokenWindow:
        return cls(max_tokens=int(data["max_tokens"]), head=int(data["head"]))
