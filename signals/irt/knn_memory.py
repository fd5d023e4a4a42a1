"""The kNN memory of a router: training embeddings stored as int8, searched with int8 dots.

The router's kNN steps (the P blend, and the optional warm-up) compare each query with every
training embedding. Stored as float32 the shipped memory is 8,637 x 256 = 8.8 MB, read once
per request: served next to Envoy, with the caches cold, that read was most of the
difficulty signal's time. Stored as int8 it is 2.2 MB and the search is ~0.25 ms faster per
request (benchmarks/reports/decision_latency.md).

The quantization is symmetric, per row, on both sides, so a query's neighbours do not depend
on what else is in its batch:

* memory row ``m ≈ q·s`` with ``q`` int8 in [-127, 127] and ``s = max|m| / 127``;
* query ``x ≈ r·t`` the same way but with 7 bits, ``r`` in [-63, 63] (computed in float32,
  round half to even: ONNX ``Round``);
* similarity ``(r·q)·s``: the int32 dot product times the row's scale. The query's own
  scale ``t`` is positive and the same for every row, so it cannot change the ranking and
  is left out.

Why the query has 7 bits: the graph feeds it to onnxruntime's MatMulInteger as uint8
(``r + 64``). On x86 CPUs without VNNI (AVX2 only) that kernel multiplies with
``vpmaddubsw``, which adds two adjacent uint8·int8 products into a *saturating* int16. With
an 8-bit query (``r + 128`` up to 255) a pair reaches 2·255·127 = 64,770 > 32,767 and the dot
products came out wrong: P off by up to 0.30 for the shipped router on an AVX2-only EPYC.
With uint8 at most 127 a pair is at most 2·127·127 = 32,258, so the kernel is exact on every
x86 CPU. Halving the query's resolution kept the shipped router's test metrics (routing
accuracy 59.72 -> 59.85, AUC 0.6676 -> 0.6677, docs/router.md); the memory keeps its 8 bits.

This module computes exactly what the exported graph computes (``irtgate.lab.irt.export``), so
evaluation measures what is served: the dot products are integers below 2**24, exact in
float32 BLAS, and the scaling is the graph's own float32 multiply.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Array = np.ndarray

Q_MAX = 127.0  # memory rows: int8
# The query: 7 bits, so that uint8 query x int8 memory cannot saturate int16 pair sums in
# the AVX2 MatMulInteger kernel (see the module docstring).
QUERY_Q_MAX = 63.0
QUERY_ZERO_POINT = 64  # the uint8 the graph feeds is r + 64, in [1, 127]
# Floor for a row's max |value|: a zero row gets scale TINY/127 instead of a division by 0.
TINY = np.float32(1e-12)


def quantize(rows: Array, q_max: float = Q_MAX) -> tuple[Array, Array]:
    """Symmetric per-row int8: ``(q, scale)`` with ``rows ≈ q * scale[:, None]``, |q| <= q_max.

    Float32 arithmetic in the graph's order, so a query quantized here is the query the
    graph quantizes.
    """
    r = np.asarray(rows, dtype=np.float32)
    scale = np.maximum(np.abs(r).max(axis=1, keepdims=True), TINY) / np.float32(q_max)
    q = np.clip(np.round(r / scale), -q_max, q_max).astype(np.int8)
    return q, scale[:, 0].astype(np.float32)


@dataclass(frozen=True)
class KnnMemory:
    """Int8 training embeddings; ``similarity``/``top_k``/``mean_of_top_k`` as the graph."""

    q: Array  # int8 (n, d)
    scale: Array  # float32 (n,)

    @classmethod
    def of(cls, rows: Array) -> KnnMemory:
        q, scale = quantize(rows)
        return cls(q, scale)

    @property
    def size(self) -> int:
        return int(self.q.shape[0])

    def similarity(self, X: Array) -> Array:
        """(m, n) float32 scores whose per-row order is the graph's (cosine up to a factor)."""
        rq, _ = quantize(X, QUERY_Q_MAX)
        dots = rq.astype(np.float32) @ self.q.T.astype(np.float32)  # exact: |dot| < 2**24
        out: Array = dots * self.scale[None, :]
        return out

    def top_k(self, X: Array, k: int, chunk: int = 2048) -> Array:
        """Indices (m, k) of the ``k`` most similar memory rows for each row of ``X``."""
        k = min(k, self.size)
        out = np.empty((X.shape[0], k), dtype=np.int64)
        for s in range(0, X.shape[0], chunk):
            S = self.similarity(X[s : s + chunk])
            out[s : s + chunk] = np.argpartition(-S, k - 1, axis=1)[:, :k]
        return out

    def rows(self, idx: Array) -> Array:
        """The dequantized memory rows ``idx`` (any shape of indices), float32."""
        out: Array = self.q[idx].astype(np.float32) * self.scale[idx][..., None]
        return out

    def mean_of_top_k(self, X: Array, k: int) -> Array:
        """Mean of the ``k`` nearest dequantized rows, per row of ``X`` (the warm-up)."""
        out: Array = self.rows(self.top_k(X, k)).mean(axis=1)
        return out
