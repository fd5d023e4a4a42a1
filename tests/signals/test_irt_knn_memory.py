"""The int8 kNN memory: quantization, hand-checked similarities, batch independence."""

from __future__ import annotations

import numpy as np
import pytest

from irtgate.signals.irt.knn_memory import QUERY_Q_MAX, QUERY_ZERO_POINT, KnnMemory, quantize


def test_quantize_is_symmetric_per_row_within_half_a_step() -> None:
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(50, 16)).astype(np.float32)
    q, scale = quantize(rows)
    assert q.dtype == np.int8 and scale.dtype == np.float32
    assert np.abs(q).max(axis=1).tolist() == [127] * 50  # each row's largest |value| -> 127
    err = np.abs(q * scale[:, None] - rows)
    assert (err <= scale[:, None] / 2 + 1e-7).all()


def test_zero_row_quantizes_to_zeros() -> None:
    q, scale = quantize(np.zeros((1, 4), dtype=np.float32))
    assert q.tolist() == [[0, 0, 0, 0]] and scale[0] > 0


def test_similarity_by_hand() -> None:
    # rows -> q [[127, 0], [127, 127]], scales [1/127, 0.5/127];
    # query [63, 32.5] -> 7 bits, scale 63/63 = 1 -> r [63, 32] (32.5 rounds half to even).
    mem = KnnMemory.of(np.array([[1.0, 0.0], [0.5, 0.5]], dtype=np.float32))
    assert mem.q.tolist() == [[127, 0], [127, 127]]
    sim = mem.similarity(np.array([[63.0, 32.5]], dtype=np.float32))
    want = [63 * 127 * (1 / 127), (63 * 127 + 32 * 127) * (0.5 / 127)]
    assert sim[0].tolist() == pytest.approx(want, rel=1e-6)


def test_neighbours_match_float_cosine_when_well_separated() -> None:
    rng = np.random.default_rng(1)
    train = rng.normal(size=(200, 32)).astype(np.float32)
    train /= np.linalg.norm(train, axis=1, keepdims=True)
    mem = KnnMemory.of(train)
    # Each query is a training row plus a little noise: its own row is its nearest neighbour.
    X = train[:40] + rng.normal(scale=0.01, size=(40, 32)).astype(np.float32)
    assert mem.top_k(X, 1)[:, 0].tolist() == list(range(40))
    idx = mem.top_k(X, 5)
    exact = np.argsort(-(X @ train.T), axis=1)[:, :5]
    overlap = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(idx, exact, strict=True)])
    assert overlap > 0.9


def test_a_query_has_the_same_neighbours_alone_or_in_a_batch() -> None:
    rng = np.random.default_rng(2)
    mem = KnnMemory.of(rng.normal(size=(300, 24)).astype(np.float32))
    X = rng.normal(size=(20, 24)).astype(np.float32) * rng.uniform(0.1, 10, size=(20, 1))
    together = mem.similarity(X)
    alone = np.concatenate([mem.similarity(X[i : i + 1]) for i in range(20)])
    assert np.array_equal(together, alone)
    forward = np.sort(mem.top_k(X, 7), axis=1)
    backward = np.sort(mem.top_k(X[::-1], 7)[::-1], axis=1)
    assert np.array_equal(forward, backward)


def test_rows_and_mean_dequantize() -> None:
    rows = np.array([[2.0, -1.0], [0.0, 3.0], [1.0, 1.0]], dtype=np.float32)
    mem = KnnMemory.of(rows)
    assert np.allclose(mem.rows(np.arange(3)), rows, atol=3.0 / 254)
    mean = mem.mean_of_top_k(np.array([[0.0, 1.0]], dtype=np.float32), 2)
    # Nearest two to (0, 1): rows 1 and 2.
    assert np.allclose(mean[0], rows[1:].mean(axis=0), atol=3.0 / 254)


def test_query_cannot_saturate_an_int16_pair_sum() -> None:
    # The graph feeds MatMulInteger uint8 r + QUERY_ZERO_POINT against int8 memory; AVX2
    # kernels without VNNI add two such products in saturating int16 (see the module).
    rng = np.random.default_rng(4)
    X = rng.normal(size=(100, 16)).astype(np.float32) * rng.uniform(1e-6, 1e6, size=(100, 1))
    r, _ = quantize(X, QUERY_Q_MAX)
    u8 = r.astype(np.int64) + QUERY_ZERO_POINT
    assert u8.min() >= 0 and u8.max() == QUERY_Q_MAX + QUERY_ZERO_POINT
    assert 2 * int(u8.max()) * 128 <= np.iinfo(np.int16).max  # even against int8 -128
