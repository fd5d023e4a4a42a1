"""The kNN memory of a router: training embeddings stored as int8, searched with int8 dots.

The router's kNN steps (the P blend, and the optional warm-up) compare each query with every
training embedding. Stored as float32 the shipped memory is 8,637 x 256 = 8.8 MB, read once
per request: served next to Envoy, with the caches cold, that read was most of the
difficulty signal's time. Stored as int8 it is 2.2 MB and the search is ~0.25 ms faster per
request (benchmarks/reports/decision_latency.md).

The quantization is symmetric, per row, on both sides, so a query's neighbours do not depend
on what else is in its batch:

* memory row ``m ≈ q·s`` with ``q`` int8 in [-127, 127] and ``s = max|m| / 127``;
* query ``x ≈ r·t`` the same way (computed in float32, round half to even: ONNX ``Round``);
* similarity ``(r·q)·s``: the int32 dot product times the row's scale. The query's own
  scale ``t`` is positive and the same for every row, so it cannot change the ranking and
  is left out.

This module computes exactly what the exported graph computes (``irtgate.lab.irt.export``), so
evaluation measures what is served: the dot products are integers below 2**24, exact in
float32 BLAS, and the scaling is the graph's own float32 multiply.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Array = np.ndarray

Q_MAX = 127.0
# Floor for a row's max |value|: a zero row gets scale TINY/127 instead of a division by 0.
TINY = np.float32(1e-12)


def quantize(rows: Array) -> tuple[Array, Array]:
    """Symmetric per-row int8: ``(q, scale)`` with ``rows ≈ q * scale[:, None]``.

    Float32 arithmetic in the graph's order, so a query quantized here is the query the
    graph quantizes.
    """
    r = np.asarray(rows, dtype=np.float32)
    scale = np.maximum(np.abs(r).max(axis=1, keepdims=True), TINY) / np.float32(Q_MAX)
    q = np.clip(np.round(r / scale), -Q_MAX, Q_MAX).astype(np.int8)
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
        rq, _ = quantize(X)
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
