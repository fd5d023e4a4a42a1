"""One tokenizer pass per text: the encoders reuse the length signal's token ids.

What must hold: length counts are those of the full tokenizer; an encoder's vector (and
its truncation flag) is the same whether it tokenizes itself or reuses the ids; when that
cannot be guaranteed, the encoder tokenizes again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from irtgate.signals.base import Resources, SignalContext, TokenIds, registered
from irtgate.signals.encoders.embedder import RequestEmbedder
from irtgate.signals.encoders.load import load_encoder
from irtgate.signals.encoders.tokenizer import id_map, window_from_ids
from irtgate.signals.encoders.window import TokenWindow
from irtgate.signals.length import find_tokenizer, load_tokenizer
from irtgate.signals.request import ApiKind, LLMRequest, Message
from irtgate.signals.text import PromptText

_SENTENCE = (
    "Explain step by step how a heat engine's efficiency is limited by the second law, "
    "with one worked example (Carnot, 1824) and naïve mistakes students make. "
)
TEXTS = [
    "",
    "What is 7 times 8?",
    _SENTENCE * 4,  # short: the window is the whole text
    _SENTENCE * 15,  # ~2,500 chars: head and tail pieces, cut
    "Ünïcode 日本語 🙂 Straße " * 40 + "x" * 150,  # unknown pieces, a 150-char word
    "see [MASK] and [CLS] here " * 3,  # special tokens the static tokenizer lacks
    _SENTENCE * 40,  # longer than the window's character bound: tokenized again
]


def req(*turns: tuple[str, str]) -> LLMRequest:
    return LLMRequest(
        api=ApiKind.CHAT,
        model="auto",
        messages=tuple(Message(role=r, text=PromptText(t)) for r, t in turns),
    )


@pytest.fixture(scope="module")
def length_tok() -> Any:
    return load_tokenizer(find_tokenizer())


def test_length_counts_equal_the_full_tokenizer_and_ids_are_left_for_the_encoder(
    length_tok: Any,
) -> None:
    sig = registered()["length"][1]({}, Resources())
    for text in TEXTS:
        ctx = SignalContext(req(("system", "be terse"), ("user", text)))
        out = sig.compute(ctx)
        full = length_tok.encode(text, add_special_tokens=False).ids
        counter = sig.counter  # type: ignore[attr-defined]
        assert counter.raw_many([text])[0][0] == counter._count([text])[0][0]
        assert out["last_user_tokens"] == counter.count(text)
        assert ctx.tokens is not None and ctx.tokens.tokenizer is length_tok
        if text:
            assert ctx.tokens.by_text[text] == full
        assert ctx.tokens.by_text["be terse"] == length_tok.encode("be terse").ids[1:-1]


@pytest.mark.parametrize("name", ["static", "minilm"])
def test_reused_ids_give_the_same_vector_and_cut(name: str, length_tok: Any) -> None:
    encoder = load_encoder(name)
    reused = 0
    for text in TEXTS:
        ref, cuts = encoder.encode_counted([text])  # type: ignore[attr-defined]
        ids = length_tok.encode(text, add_special_tokens=False).ids
        got = encoder.encode_reusing(text, length_tok, ids)  # type: ignore[attr-defined]
        if got is None:
            continue
        reused += 1
        assert got[1] == cuts[0]
        assert got[0].dtype == ref.dtype and np.array_equal(got[0], ref)
    assert reused >= 4


def test_what_cannot_be_reused_is_tokenized_again(length_tok: Any) -> None:
    static = load_encoder("static")
    m = id_map(length_tok, static._tokenizer)  # type: ignore[attr-defined]
    assert m is not None
    w = static.window  # type: ignore[attr-defined]
    for text in (TEXTS[5], TEXTS[6]):
        ids = length_tok.encode(text, add_special_tokens=False).ids
        assert window_from_ids(text, ids, m, w, None) is None


def test_tokenizers_that_may_split_differently_share_nothing(length_tok: Any) -> None:
    tokenizers = pytest.importorskip("tokenizers")
    spec = json.loads(length_tok.to_str())
    spec["normalizer"]["lowercase"] = False
    cased = tokenizers.Tokenizer.from_str(json.dumps(spec))
    static = load_encoder("static")
    assert id_map(cased, static._tokenizer) is None  # type: ignore[attr-defined]
    assert static.encode_reusing("Hello", cased, cased.encode("Hello").ids) is None  # type: ignore[attr-defined]
    spec = json.loads(length_tok.to_str())
    spec["model"]["vocab"]["zzzzqq"] = len(spec["model"]["vocab"])  # a piece static lacks
    extra = tokenizers.Tokenizer.from_str(json.dumps(spec))
    assert id_map(extra, static._tokenizer) is None  # type: ignore[attr-defined]


def test_window_from_ids_cuts_head_and_tail() -> None:
    w = TokenWindow(max_tokens=4, head=1)
    m = np.arange(20)
    kept, cut = window_from_ids("a b c d e f", list(range(10)), m, w, drop=3)  # type: ignore[misc]
    assert cut and kept.tolist() == [0, 7, 8, 9]
    kept, cut = window_from_ids("a b", [5, 6], m, w, None)  # type: ignore[misc]
    assert not cut and kept.tolist() == [5, 6]


def test_context_embeds_once_from_the_length_signals_ids(length_tok: Any) -> None:
    static = load_encoder("static")
    calls: list[str] = []
    emb = RequestEmbedder(static, metrics_hook=calls.append)
    length = registered()["length"][1]({}, Resources())
    for text in TEXTS:
        r = req(("user", text))
        ctx = SignalContext(r, embedder=emb)
        length.compute(ctx)
        before = len(calls)
        expected = emb.embed_request(r)
        after_plain = len(calls)
        seen: list[int] = []
        tokenizer = static._tokenizer  # type: ignore[attr-defined]
        static._tokenizer = _Spy(tokenizer, seen)  # type: ignore[attr-defined]
        try:
            vec = ctx.embedding()
        finally:
            static._tokenizer = tokenizer  # type: ignore[attr-defined]
        assert np.array_equal(vec, expected)
        assert len(calls) - after_plain == after_plain - before  # the hook fires alike
        if text in (TEXTS[1], TEXTS[3]):
            assert not seen  # no second tokenizer pass


def test_a_plain_embedding_source_still_works() -> None:
    class Plain:
        def embed_request(self, request: LLMRequest) -> np.ndarray:
            return np.ones(3, dtype=np.float32)

    ctx = SignalContext(req(("user", "hi")), embedder=Plain())
    ctx.tokens = TokenIds(object(), {"hi": [1]})
    assert ctx.embedding().tolist() == [1.0, 1.0, 1.0]


class _Spy:
    """The tokenizer, noting encode_batch_fast calls (the Rust object's methods are fixed)."""

    def __init__(self, inner: Any, seen: list[int]) -> None:
        self._inner = inner
        self._seen = seen

    def encode_batch_fast(self, texts: list[str], **kw: Any) -> Any:
        self._seen.append(len(texts))
        return self._inner.encode_batch_fast(texts, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_ascii_texts_skip_the_normalizer_with_the_same_ids(length_tok: Any) -> None:
    """Exact counts are a feature: the ASCII path must give the full tokenizer's ids."""
    import random

    from irtgate.signals.length import TokenCounter

    counter = TokenCounter(length_tok, 1.15, 400_000)
    assert counter._ascii is not None
    rng = random.Random(11)
    printable = [chr(i) for i in range(32, 127)] + ["\t", "\n", "\r", " ", " ", "e"]
    texts = [
        "Hello World, DON'T shout: e.g. 3.14159 and 12345678!",
        "see [CLS] and [MASK] here",  # added tokens: the full path
        "tab\tnew\nline\r\nvertical\x0btab and \x00 nul",  # controls: the full path
        "naïve Straße 日本語",  # not ASCII: the full path
        "x" * 150 + " word",  # a word over the WordPiece limit: [UNK]
        *("".join(rng.choice(printable) for _ in range(rng.randrange(300))) for _ in range(300)),
    ]
    want = [e.ids for e in length_tok.encode_batch_fast(texts, add_special_tokens=False)]
    assert counter._ids(texts) == want
    assert [counter._ids([t])[0] for t in texts] == want


def test_small_batches_are_tokenized_one_text_at_a_time(length_tok: Any) -> None:
    """Same encodings; the tokenizer's thread pool only for large inputs."""
    from irtgate.signals.encoders.tokenizer import PARALLEL_CHARS, encode_many

    calls: list[int] = []

    class Counting:
        def encode_batch_fast(self, texts: list[str], **kw: Any) -> Any:
            calls.append(len(texts))
            return length_tok.encode_batch_fast(texts, **kw)

    small = [_SENTENCE * 3, "", "hi there"]
    big = [_SENTENCE * (PARALLEL_CHARS // len(_SENTENCE) + 1), "and a short one"]
    for texts, want_calls in ((small, [1, 1, 1]), (big, [2])):
        calls.clear()
        got = [e.ids for e in encode_many(Counting(), texts)]
        assert calls == want_calls
        assert got == [e.ids for e in length_tok.encode_batch_fast(texts, add_special_tokens=False)]


def test_whole_word_lookup_gives_the_tokenizers_ids_on_wordy_text(length_tok: Any) -> None:
    """Texts made of vocabulary words (looked up in Python) and others (sent to Rust)."""
    import random

    from irtgate.signals.length import TokenCounter

    counter = TokenCounter(length_tok, 1.15, 400_000)
    assert counter._words is not None
    vocab = sorted(counter._words.whole)
    rng = random.Random(5)
    glue = [" ", " ", "  ", "\n", "\t", ", ", ". ", "-", "_", "'", "(", ")", "", "\r\n"]
    odd = ["zxqv", "Qwertyuiop", "x" * 101, "19205", "pneumonoultra", "##ing", "AbC"]
    texts = [
        "".join(
            rng.choice(vocab if rng.random() < 0.8 else odd) + rng.choice(glue) for _ in range(n)
        )
        for n in (1, 2, 5, 50, 400)
        for _ in range(40)
    ]
    want = [e.ids for e in length_tok.encode_batch_fast(texts, add_special_tokens=False)]
    assert counter._ids(texts) == want


def test_whole_word_lookup_on_real_prompts(length_tok: Any, shared_data: Path) -> None:
    import gzip

    from irtgate.signals.length import TokenCounter

    counter = TokenCounter(length_tok, 1.15, 400_000)
    with gzip.open(shared_data / "routerdc-7models.jsonl.gz", "rt") as f:
        texts = [json.loads(line)["prompt"] for line in f][::20]  # every benchmark
    assert sum(t.isascii() for t in texts) > 500  # most take the Python lookup
    want = [e.ids for e in length_tok.encode_batch_fast(texts, add_special_tokens=False)]
    assert counter._ids(texts) == want
