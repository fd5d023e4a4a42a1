"""The corpus embedding cache: hits, partial hits, misses, invalidation, bad shards."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from irtgate.lab.encoders import cache
from irtgate.signals.encoders.artifact import read_artifact, shipped_path
from irtgate.signals.encoders.base import Encoder, EncoderError
from irtgate.signals.encoders.load import load_encoder


class Counting:
    """Wraps a real encoder and records how many texts reach it."""

    def __init__(self, inner: Encoder) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.truncations = 0
        self.seen = 0

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.seen += len(texts)
        return self.inner.encode(texts)


@pytest.fixture
def counting(monkeypatch: pytest.MonkeyPatch) -> Counting:
    enc = Counting(load_encoder("static"))
    info = read_artifact(shipped_path("static"), "static")
    monkeypatch.setattr(cache, "_encoder", lambda name, path: (enc, info))
    return enc


TEXTS = [f"question {i}: what is {i} squared?" for i in range(150)]


def test_first_call_embeds_second_call_is_a_hit(tmp_path: Path, counting: Counting) -> None:
    a = cache.embed_corpus("static", TEXTS, cache_dir=tmp_path, progress=False)
    assert counting.seen == len(TEXTS)
    np.testing.assert_array_equal(a, counting.inner.encode(TEXTS))
    b = cache.embed_corpus("static", TEXTS, cache_dir=tmp_path, progress=False)
    assert counting.seen == len(TEXTS)  # nothing re-embedded
    np.testing.assert_array_equal(a, b)


def test_overlapping_corpus_embeds_only_new_texts(tmp_path: Path, counting: Counting) -> None:
    first = cache.embed_corpus("static", TEXTS[:100], cache_dir=tmp_path, progress=False)
    counting.seen = 0
    mixed = [*TEXTS[50:150][::-1], "a brand new text"]
    out = cache.embed_corpus("static", mixed, cache_dir=tmp_path, progress=False)
    assert counting.seen == 51  # TEXTS[100:150] and the new one
    np.testing.assert_array_equal(out[50:100], first[50:100][::-1])
    np.testing.assert_array_equal(out, counting.inner.encode(mixed))


def test_duplicates_and_empty_corpus(tmp_path: Path, counting: Counting) -> None:
    out = cache.embed_corpus("static", ["same", "same", ""], cache_dir=tmp_path, progress=False)
    np.testing.assert_array_equal(out[0], out[1])
    empty = cache.embed_corpus("static", [], cache_dir=tmp_path, progress=False)
    assert empty.shape == (0, counting.dim)


def test_corrupt_shard_is_recomputed(tmp_path: Path, counting: Counting) -> None:
    a = cache.embed_corpus("static", TEXTS[:10], cache_dir=tmp_path, progress=False)
    for f in tmp_path.rglob("*.npy"):
        f.write_bytes(b"garbage")
    counting.seen = 0
    b = cache.embed_corpus("static", TEXTS[:10], cache_dir=tmp_path, progress=False)
    assert counting.seen == 10
    np.testing.assert_array_equal(a, b)


def test_a_changed_artifact_gets_its_own_cache(tmp_path: Path) -> None:
    other = tmp_path / "static-other"
    shutil.copytree(shipped_path("static"), other)
    meta = json.loads((other / "irtgate.json").read_text())
    meta["window"] = {"max_tokens": 8, "head": 2}
    (other / "irtgate.json").write_text(json.dumps(meta))
    text = [" ".join(f"item{i}" for i in range(60))]
    cdir = tmp_path / "cache"
    a = cache.embed_corpus("static", text, cache_dir=cdir, progress=False)
    b = cache.embed_corpus("static", text, cache_dir=cdir, progress=False, path=other)
    assert len([p for p in cdir.iterdir() if p.is_dir()]) == 2
    assert not np.array_equal(a, b)  # the narrower window really applied


def test_real_encoders_through_the_cache(tmp_path: Path) -> None:
    texts = ["What is the capital of Peru?", "naïve 東京 🚀", ""]
    for name in ("static", "minilm"):
        out = cache.embed_corpus(name, texts, cache_dir=tmp_path, progress=False)
        np.testing.assert_array_equal(out, load_encoder(name).encode(texts))


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="sequence of texts"):
        cache.embed_corpus("static", "one text", cache_dir=tmp_path)
    with pytest.raises(EncoderError, match="unknown encoder"):
        cache.embed_corpus("nope", ["x"], cache_dir=tmp_path)


def test_an_interrupted_run_resumes_from_its_checkpoint(
    tmp_path: Path, counting: Counting, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache, "BATCH", 10)
    monkeypatch.setattr(cache, "CHECKPOINT_EVERY", 40)
    real_encode = counting.encode

    def failing(texts: Sequence[str]) -> np.ndarray:
        if counting.seen >= 100:
            raise KeyboardInterrupt
        return real_encode(texts)

    monkeypatch.setattr(counting, "encode", failing)
    with pytest.raises(KeyboardInterrupt):
        cache.embed_corpus("static", TEXTS, cache_dir=tmp_path, progress=False)
    monkeypatch.setattr(counting, "encode", real_encode)
    counting.seen = 0
    out = cache.embed_corpus("static", TEXTS, cache_dir=tmp_path, progress=False)
    assert counting.seen == len(TEXTS) - 80  # the checkpoint held the first 80
    np.testing.assert_array_equal(out, counting.inner.encode(TEXTS))
    assert not list(tmp_path.rglob("partial-*"))  # a finished run removes its checkpoint
