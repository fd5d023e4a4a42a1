"""Fast (Rust) tokenizers: loading, and tokenizing only the part of a text the window keeps."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from signals.encoders.base import EncoderError
from signals.encoders.window import TokenWindow


def load_tokenizer(path: Path) -> Any:
    """A ``tokenizers.Tokenizer``; the window, not the tokenizer, decides what is cut.

    Typed as Any: the tokenizers package ships no type information.
    """
    if not path.is_file():
        raise EncoderError(f"{path}: tokenizer file is missing")
    tokenizer = importlib.import_module("tokenizers").Tokenizer.from_file(str(path))
    # all-MiniLM's tokenizer.json pads and truncates to 128 on the right.
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


# A generous upper bound of characters per word piece in ordinary text: pieces of this many
# characters per kept token hold the window's tokens unless words are unusually long, in
# which case the full text is tokenized instead.
_PIECE_CHARS_PER_TOKEN = 8
_CUT_AT = " \n\t\r"  # whitespace the BERT pre-tokenizer always splits on


def _cut_points(text: str, window: TokenWindow) -> tuple[int, int] | None:
    """Where to end the head piece and start the tail piece, at whitespace; None: no gain."""
    head_end = 0
    if window.head:
        head_end = _next_space(text, window.head * _PIECE_CHARS_PER_TOKEN)
        if head_end < 0:
            return None
    tail_start = len(text)
    if window.tail:
        tail_start = _prev_space(text, len(text) - window.tail * _PIECE_CHARS_PER_TOKEN)
        if tail_start < 0:
            return None
    if head_end >= tail_start:
        return None
    return head_end, tail_start


def _next_space(text: str, start: int) -> int:
    for i in range(start, min(len(text), start + 200)):
        if text[i] in _CUT_AT:
            return i
    return -1


def _prev_space(text: str, start: int) -> int:
    for i in range(start, max(-1, start - 200), -1):
        if text[i] in _CUT_AT:
            return i
    return -1


def window_ids(
    tokenizer: Any, texts: Sequence[str], window: TokenWindow, drop: int | None = None
) -> tuple[list[list[int]], list[bool]]:
    """Token ids (no special tokens) of each text's window, and whether the text was cut.

    ``drop`` is a token id removed before windowing (model2vec drops [UNK]). For long texts
    only a head piece and a tail piece, cut at whitespace, are tokenized: the BERT
    normalizer works per character and its pre-tokenizer splits at whitespace, so their
    tokens are exactly the first and last tokens of the whole text. When the pieces do not
    hold enough tokens the whole text is tokenized.
    """
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"text {i} is {type(t).__name__}, not str")
    out: list[list[int]] = [[] for _ in texts]
    cuts = [False] * len(texts)
    whole: list[int] = []
    pieces: list[tuple[int, str, str]] = []
    for i, t in enumerate(texts):
        points = (
            _cut_points(t, window)
            if len(t) > window.max_tokens * _PIECE_CHARS_PER_TOKEN * 2
            else None
        )
        if points is None:
            whole.append(i)
        else:
            pieces.append((i, t[: points[0]], t[points[1] :]))
    if pieces:
        flat = [p for _, head, tail in pieces for p in (head, tail)]
        encs = tokenizer.encode_batch_fast(flat, add_special_tokens=False)
        for k, (i, _, _) in enumerate(pieces):
            head_ids = _ids(encs[2 * k], drop)
            tail_ids = _ids(encs[2 * k + 1], drop)
            enough = len(head_ids) >= window.head and len(tail_ids) >= window.tail
            if enough and len(head_ids) + len(tail_ids) > window.max_tokens:
                tail_part = tail_ids[len(tail_ids) - window.tail :] if window.tail else []
                out[i], cuts[i] = head_ids[: window.head] + tail_part, True
            else:
                whole.append(i)
    if whole:
        clipped = [window.clip_chars(texts[i]) for i in whole]
        encs = tokenizer.encode_batch_fast([c for c, _ in clipped], add_special_tokens=False)
        for i, (_, char_cut), enc in zip(whole, clipped, encs, strict=True):
            kept, cut = window.cut(_ids(enc, drop))
            out[i], cuts[i] = kept, cut or char_cut
    return out, cuts


def _ids(encoding: Any, drop: int | None) -> list[int]:
    ids: list[int] = encoding.ids
    return [t for t in ids if t != drop] if drop is not None else ids
