"""ONNX export: the graph computes what the numpy model computes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from irtgate.lab.irt.export import CARD_FILE, HEADS_FILE, export_router, numpy_outputs
from irtgate.lab.irt.model import IRTModel

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def _fitted(**kw: object) -> tuple[IRTModel, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 12)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    Y = rng.random((300, 4))
    Y[rng.random(Y.shape) < 0.2] = np.nan
    base: dict[str, object] = {"knn_p_blend": 0.0, **kw}
    m = IRTModel(k=3, max_epochs=20, **base)  # type: ignore[arg-type]
    m.fit(X, Y)
    return m, X


@pytest.mark.parametrize(
    "kw",
    [{}, {"hidden": 8}, {"knn_blend": 0.3, "knn_k": 5}, {"knn_p_blend": 0.5, "knn_p_k": 7}],
    ids=["linear", "mlp", "knn-warm", "knn-p"],
)
def test_onnx_matches_numpy(tmp_path: Path, kw: dict[str, object]) -> None:
    m, _ = _fitted(**kw)
    configs = ["c0", "c1", "c2", "c3"]
    export_router(m, tmp_path, configs=configs, card={"configurations": configs})
    sess = ort.InferenceSession(str(tmp_path / HEADS_FILE), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(9)
    Q = rng.normal(size=(50, 12)).astype(np.float32)
    Q /= np.linalg.norm(Q, axis=1, keepdims=True)
    diff, disc, p = sess.run(None, {"embedding": Q})
    want_d, want_a, want_p = numpy_outputs(m, Q)
    assert diff.shape == (50,) and disc.shape == (50, 3) and p.shape == (50, 4)
    assert np.abs(p - want_p).max() < 1e-5
    assert np.abs(disc - want_a).max() < 1e-5
    assert np.abs(diff - want_d).max() < 1e-4  # a sum over k terms of size ~1


def test_linear_parity_is_below_1e_5(tmp_path: Path) -> None:
    m, _ = _fitted()
    export_router(m, tmp_path, configs=list("abcd"), card={})
    sess = ort.InferenceSession(str(tmp_path / HEADS_FILE), providers=["CPUExecutionProvider"])
    Q = np.random.default_rng(1).normal(size=(200, 12)).astype(np.float32)
    _, disc, p = sess.run(None, {"embedding": Q})
    _, want_a, want_p = numpy_outputs(m, Q)
    assert np.abs(p - want_p).max() < 1e-5
    assert np.abs(disc - want_a).max() < 1e-5


def test_export_writes_card_and_checks_names(tmp_path: Path) -> None:
    m, _ = _fitted()
    export_router(m, tmp_path, configs=list("abcd"), card={"name": "t", "k": 3})
    assert yaml.safe_load((tmp_path / CARD_FILE).read_text()) == {"name": "t", "k": 3}
    with pytest.raises(ValueError, match="3 configuration names for 4"):
        export_router(m, tmp_path / "x", configs=list("abc"), card={})


def test_knn_memory_is_stored_once_as_int8(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto

    m, X = _fitted(knn_p_blend=0.5, knn_p_k=7)
    export_router(m, tmp_path, configs=list("abcd"), card={})
    graph = onnx.load(str(tmp_path / HEADS_FILE)).graph
    memory = [i for i in graph.initializer if list(i.dims) == [X.shape[0], X.shape[1]]]
    assert [(i.name, i.data_type) for i in memory] == [("knn_q", TensorProto.INT8)]


def test_knn_dots_are_exact_for_the_largest_integer_inputs(tmp_path: Path) -> None:
    """Rows whose entries all have one magnitude quantize to ±127 (memory) and ±63 (query):
    the largest uint8 x int8 pairs the graph feeds MatMulInteger. onnxruntime's AVX2 kernel
    without VNNI sums such pairs in saturating int16; fed 8-bit queries (uint8 up to 255) it
    got these dot products wrong, which this test caught on an AVX2-only CPU."""
    from onnx import TensorProto, helper

    from irtgate.lab.irt.export import build_graph
    from irtgate.signals.irt.knn_memory import QUERY_Q_MAX, quantize

    rng = np.random.default_rng(3)
    d, n = 64, 300
    X = rng.choice([-1.0, 1.0], size=(n, d)).astype(np.float32) / np.float32(np.sqrt(d))
    X[0] = abs(X[0])  # an all-positive row, for the all-positive query below
    m = IRTModel(k=3, max_epochs=2, knn_p_blend=0.5, knn_p_k=7)
    m.fit(X, rng.random((n, 4)))
    proto = build_graph(m)
    proto.graph.output.append(helper.make_tensor_value_info("knn_dots", TensorProto.INT32, None))
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    Q = rng.choice([-1.0, 1.0], size=(40, d)).astype(np.float32) / np.float32(np.sqrt(d))
    Q[0] = abs(Q[0])
    (dots,) = sess.run(["knn_dots"], {"embedding": Q})
    memory = m.knn_memory()
    assert memory is not None and np.abs(memory.q).min() == 127
    rq, _ = quantize(Q, QUERY_Q_MAX)
    assert np.abs(rq).min() == QUERY_Q_MAX
    want = rq.astype(np.int64) @ memory.q.astype(np.int64).T  # exact integers
    assert want[0, 0] == d * 63 * 127
    np.testing.assert_array_equal(dots, want)
