"""Fast (Rust) tokenizers: loading, and tokenizing only the part of a text the window keeps."""

from __future__ import annotations

import importlib
import json
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from irtgate.signals.encoders.base import EncoderError
from irtgate.signals.encoders.window import _CHARS_PER_TOKEN_BOUND, TokenWindow


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


# Below this many characters in all, a batch is tokenized one text at a time: the Rust
# tokenizer hands a batch of two or more to its thread pool (rayon), and waking the pool's
# threads costs more than it saves on small inputs (a 2,300-character turn plus an empty
# one: 0.80 ms of wall time against 0.61 for the turn alone, on this 2-core machine).
PARALLEL_CHARS = 32_768


def encode_many(tokenizer: Any, texts: Sequence[str]) -> list[Any]:
    """``tokenizer.encode_batch_fast(texts, add_special_tokens=False)``, without the thread
    pool for small inputs (the same encodings either way)."""
    if len(texts) > 1 and sum(len(t) for t in texts) >= PARALLEL_CHARS:
        encs: list[Any] = tokenizer.encode_batch_fast(list(texts), add_special_tokens=False)
        return encs
    return [tokenizer.encode_batch_fast([t], add_special_tokens=False)[0] for t in texts]


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
        encs = encode_many(tokenizer, flat)
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
        encs = encode_many(tokenizer, [c for c, _ in clipped])
        for i, (_, char_cut), enc in zip(whole, clipped, encs, strict=True):
            kept, cut = window.cut(_ids(enc, drop))
            out[i], cuts[i] = kept, cut or char_cut
    return out, cuts


def _ids(encoding: Any, drop: int | None) -> list[int]:
    ids: list[int] = encoding.ids
    return [t for t in ids if t != drop] if drop is not None else ids


# -- reusing another signal's token ids -------------------------------------------------------
#
# The length signal tokenizes every message in full with the MiniLM WordPiece tokenizer. The
# encoders' tokenizers are the same WordPiece (static: model2vec's copy, with the [unused*]
# pieces removed and the ids renumbered), so an encoder can take its window from those ids
# instead of tokenizing the text again.

_maps_lock = threading.Lock()
# id(source tokenizer) -> (source, target, map); the source is held so the id stays unique.
_maps: dict[tuple[int, int], tuple[Any, Any, np.ndarray | None]] = {}


def id_map(source: Any, target: Any) -> np.ndarray | None:
    """Target id per source id (-1: this source token means "tokenize again"), or None when
    the two tokenizers can split a text differently.

    Compatible means: the same normalizer and BERT pre-tokenizer, both WordPiece with the
    same unknown token, sub-word prefix and word length limit, every target piece also in
    the source vocabulary, and every source piece the target lacks either one of the
    source's added tokens (matched in the raw text, so mapped to -1) or a bracketed one
    like ``[unused0]`` that the pre-tokenizer cannot produce (it splits brackets off).
    Then WordPiece's longest-match splits every word alike in both.
    """
    key = (id(source), id(target))
    with _maps_lock:
        hit = _maps.get(key)
        if hit is not None and hit[0] is source and hit[1] is target:
            return hit[2]
    m = _build_map(source, target)
    with _maps_lock:
        _maps[key] = (source, target, m)
    return m


def _build_map(source: Any, target: Any) -> np.ndarray | None:
    if source is target:
        return np.arange(source.get_vocab_size(with_added_tokens=True), dtype=np.int64)
    a, b = json.loads(source.to_str()), json.loads(target.to_str())
    if a.get("normalizer") != b.get("normalizer") or a.get("pre_tokenizer") != b.get(
        "pre_tokenizer"
    ):
        return None
    if (b.get("pre_tokenizer") or {}).get("type") != "BertPreTokenizer":
        return None
    ma, mb = a.get("model") or {}, b.get("model") or {}
    if ma.get("type") != "WordPiece" or mb.get("type") != "WordPiece":
        return None
    for k in ("unk_token", "continuing_subword_prefix", "max_input_chars_per_word"):
        if ma.get(k) != mb.get(k):
            return None
    added_a = {t["content"] for t in a.get("added_tokens") or ()}
    added_b = {t["content"] for t in b.get("added_tokens") or ()}
    if not added_b <= added_a:  # a token the target matches in raw text, the source splits
        return None
    va: dict[str, int] = ma["vocab"]
    vb: dict[str, int] = mb["vocab"]
    if any(tok not in va for tok in vb):
        return None
    m = np.full(max(va.values()) + 1, -1, dtype=np.int64)
    for tok, i in va.items():
        j = vb.get(tok)
        if tok in added_a and tok not in added_b:
            continue  # matched as one special token by the source only: -1
        if j is not None:
            m[i] = j
        elif not (len(tok) > 2 and tok[0] == "[" and tok[-1] == "]"):
            return None  # a piece the target lacks and the source could produce
    return m


def window_from_ids(
    text: str, ids: Sequence[int], source_map: np.ndarray, window: TokenWindow, drop: int | None
) -> tuple[np.ndarray, bool] | None:
    """What :func:`window_ids` gives for ``text``, from the ids of the whole text (another
    tokenizer's, translated by ``source_map``); None when that is not certain.

    It is certain when ``text`` is no longer than ``window.clip_chars`` keeps: then
    :func:`window_ids` either tokenizes the whole text unclipped, or takes the first and
    last tokens of the whole text from its pieces (only when they hold enough for the
    window; otherwise it tokenizes the whole text unclipped) — in every case, the window
    of the whole text's ids.
    """
    if len(text) > window.max_tokens * _CHARS_PER_TOKEN_BOUND:
        return None
    mapped = source_map[np.asarray(ids, dtype=np.int64)] if ids else np.zeros(0, np.int64)
    if mapped.size and mapped.min() < 0:
        return None
    if drop is not None:
        mapped = mapped[mapped != drop]
    if len(mapped) <= window.max_tokens:
        return mapped, False
    tail = mapped[len(mapped) - window.tail :] if window.tail else mapped[:0]
    return np.concatenate((mapped[: window.head], tail)), True


def window_reusing(
    text: str, ids: Sequence[int], source: Any, target: Any, window: TokenWindow, drop: int | None
) -> tuple[np.ndarray, bool] | None:
    """The ``target`` tokenizer's window of ``text`` from the ids ``source`` gave for the
    whole text (:func:`id_map`, then :func:`window_from_ids`); None when not certain."""
    m = id_map(source, target)
    return None if m is None else window_from_ids(text, ids, m, window, drop)


# Pre-tokens of ASCII text as the BERT pre-tokenizer cuts them: runs of letters and digits,
# and every other non-space character alone (all printable ASCII symbols are punctuation to
# BERT). Only valid for text without control characters other than tab, newline and CR.
_ASCII_PRETOKENS = re.compile(r"[A-Za-z0-9]+|[^\sA-Za-z0-9]")


class AsciiWordPiece:
    """WordPiece ids of plain ASCII text, with the whole-word vocabulary looked up in Python.

    Most of the Rust tokenizer's time on a prompt goes to crossing into Rust and building its
    encoding (docs/signals.md has the figures). WordPiece is greedy longest-match-first per
    pre-token, so a pre-token that is itself a vocabulary entry is exactly one token, that
    entry; on English prose that is most of them. Those come from a dict built from the
    vocabulary; the rest go to the tokenizer in one call, and its ``word_ids`` say which ids
    belong to which word. The result is the tokenizer's own (tests compare them on the shared
    corpora). Nothing from requests is kept: the dict is the vocabulary.

    ``tokenizer`` must be a BERT WordPiece tokenizer without its normalizer (the caller has
    lower-cased the text if the model is uncased); texts must be ASCII without control
    characters other than tab, newline and CR.
    """

    def __init__(self, tokenizer: Any) -> None:
        spec = json.loads(tokenizer.to_str())
        model = spec.get("model") or {}
        if model.get("type") != "WordPiece":
            raise ValueError("AsciiWordPiece needs a WordPiece tokenizer")
        limit = int(model.get("max_input_chars_per_word", 100))
        prefix = str(model.get("continuing_subword_prefix", "##"))
        self.tokenizer = tokenizer
        self.whole: dict[str, int] = {
            w: i
            for w, i in tokenizer.get_vocab(with_added_tokens=False).items()
            if w.isascii() and not w.startswith(prefix) and 0 < len(w) <= limit
        }

    def ids(self, text: str) -> list[int]:
        words = _ASCII_PRETOKENS.findall(text)
        whole = self.whole
        missing = [w for w in words if w not in whole]
        if not missing:
            return [whole[w] for w in words]
        enc = self.tokenizer.encode(" ".join(missing), add_special_tokens=False)
        pieces: list[list[int]] = [[] for _ in missing]
        for tid, wi in zip(enc.ids, enc.word_ids, strict=True):
            pieces[wi].append(tid)
        out: list[int] = []
        k = 0
        for w in words:
            tid = whole.get(w)
            if tid is None:
                out.extend(pieces[k])
                k += 1
            else:
                out.append(tid)
        return out
