"""Write a trained :class:`IRTModel` as a router directory: ONNX heads + a readable card.

The directory holds

* ``heads.onnx``: input ``embedding`` [N, d] (L2-normalised, float32) → outputs
  ``difficulty`` [N], ``discrimination`` [N, k] and ``p_correct`` [N, G]. When the model
  uses a kNN step, the training embeddings (int8, :mod:`irtgate.signals.irt.knn_memory`) and the
  top-k/mean step are part of the graph, so serving computes exactly what evaluation
  measured.
* ``router.yaml``: the router card (see :mod:`irtgate.signals.irt.card`).

With a task-family prior (:mod:`irtgate.lab.irt.family`) the graph also outputs ``family``
[N, F], the posterior over the training benchmarks, and ``p_correct`` includes the prior.

The graph is built with ``onnx.helper`` from the numpy parameters, so exporting needs the
``onnx`` package but no torch. ``onnx`` is imported inside the functions: only training and
export need it, the server only needs onnxruntime.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from irtgate.lab.irt.model import IRTModel
from irtgate.signals.irt.knn_memory import QUERY_Q_MAX, QUERY_ZERO_POINT, TINY, KnnMemory

HEADS_FILE = "heads.onnx"
CARD_FILE = "router.yaml"
OPSET = 18  # ReduceMax with its axes as an input


def difficulty_from(a: np.ndarray, b: np.ndarray, theta_mean: np.ndarray) -> np.ndarray:
    """The reported difficulty: the item's logit difficulty against the average ability.

    In the multidimensional model the raw intercept ``b`` alone is not comparable across
    items (a large ``a`` also pushes P up or down), so the scalar we report is
    ``b − a·θ̄``: minus the logit of P(correct) for a configuration of mean ability. Higher
    means harder, 0 means an average configuration has even odds.
    """
    out: np.ndarray = b - a @ theta_mean
    return out


def _knn_query_constants() -> dict[str, tuple[np.ndarray, Any]]:
    """The graph's constants that quantize the query: name -> (value, dtype)."""
    return {
        "knn_qmax": (np.array(QUERY_Q_MAX), np.float32),
        "knn_shift": (np.array(float(QUERY_ZERO_POINT)), np.float32),
        "knn_zero_point": (np.array(QUERY_ZERO_POINT), np.uint8),
    }


def _knn_similarity(memory: KnnMemory, x: str, const: Callable[..., str]) -> list[Any]:
    """Nodes computing ``knn_sim`` [N, n] from ``x`` as :class:`KnnMemory` does.

    The query is quantized per row to 7 bits and shifted by 64 into uint8 with zero point 64,
    because onnxruntime's MatMulInteger is fast for uint8 x int8 and ~10x slower for
    int8 x int8 (measured: 2.1 ms against 0.2 ms for this graph). 7 bits, not 8: with uint8
    above 127 the AVX2 kernel's int16 pair sums saturate on CPUs without VNNI
    (:mod:`irtgate.signals.irt.knn_memory`). The memory is stored once, [n, d]; the
    transpose the MatMul needs is folded when the session loads.
    """
    from onnx import TensorProto, helper

    const("knn_q", memory.q, np.int8)
    const("knn_scale", memory.scale)
    const("knn_tiny", np.array(TINY))
    for name, (value, dtype) in _knn_query_constants().items():
        const(name, value, dtype)
    const("knn_axis1", np.array([1]), np.int64)
    return [
        helper.make_node("Transpose", ["knn_q"], ["knn_q_T"], perm=[1, 0]),
        helper.make_node("Abs", [x], ["knn_x_abs"]),
        helper.make_node("ReduceMax", ["knn_x_abs", "knn_axis1"], ["knn_x_max"], keepdims=1),
        helper.make_node("Max", ["knn_x_max", "knn_tiny"], ["knn_x_max1"]),
        helper.make_node("Div", ["knn_x_max1", "knn_qmax"], ["knn_x_scale"]),
        helper.make_node("Div", [x, "knn_x_scale"], ["knn_x_div"]),
        helper.make_node("Round", ["knn_x_div"], ["knn_x_round"]),
        helper.make_node("Add", ["knn_x_round", "knn_shift"], ["knn_x_shift"]),
        helper.make_node("Cast", ["knn_x_shift"], ["knn_x_u8"], to=TensorProto.UINT8),
        helper.make_node("MatMulInteger", ["knn_x_u8", "knn_q_T", "knn_zero_point"], ["knn_dots"]),
        helper.make_node("Cast", ["knn_dots"], ["knn_dots_f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["knn_dots_f", "knn_scale"], ["knn_sim"]),
    ]


def build_graph(model: IRTModel, *, producer: str = "irtgate") -> Any:
    """The ONNX ModelProto for ``model``'s heads (and warm-up, if any)."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError as e:  # serving needs only onnxruntime; exporting needs onnx
        raise RuntimeError(
            "exporting a router needs the 'onnx' package: pip install 'irtgate[train]'"
        ) from e

    p = model._require()
    cfg = model.config
    d = p.W1.shape[0] if p.W1.size else p.Wa.shape[0]
    k, g = p.theta.shape[1], p.theta.shape[0]
    f32 = np.float32

    inits: list[Any] = []
    nodes: list[Any] = []

    def const(name: str, arr: np.ndarray, dtype: Any = f32) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr, dtype=dtype), name))
        return name

    x = "embedding"
    train = model.train_embeddings
    use_warm = cfg.knn_blend > 0 and train is not None
    use_kp = cfg.knn_p_blend > 0 and train is not None and model.train_scores is not None
    memory = model.knn_memory() if (use_warm or use_kp) else None
    if memory is not None:
        nodes += _knn_similarity(memory, x, const)
    if use_warm and memory is not None:
        # Warm-up: mean of the top-k most similar training embeddings (dequantized), blended in.
        const("knn_k", np.array([min(cfg.knn_k, memory.size)]), np.int64)
        const("knn_lam", np.array(cfg.knn_blend))
        const("knn_one_minus_lam", np.array(1.0 - cfg.knn_blend))
        const("minus_one", np.array([-1]), np.int64)
        nodes += [
            helper.make_node(
                "TopK", ["knn_sim", "knn_k"], ["knn_val", "knn_idx"], axis=1, largest=1
            ),
            helper.make_node("Gather", ["knn_q", "knn_idx"], ["knn_rows_q"], axis=0),
            helper.make_node("Cast", ["knn_rows_q"], ["knn_rows_f"], to=TensorProto.FLOAT),
            helper.make_node("Gather", ["knn_scale", "knn_idx"], ["knn_row_scale"], axis=0),
            helper.make_node("Unsqueeze", ["knn_row_scale", "minus_one"], ["knn_row_scale3"]),
            helper.make_node("Mul", ["knn_rows_f", "knn_row_scale3"], ["knn_rows"]),
            helper.make_node("ReduceMean", ["knn_rows", "knn_axis1"], ["knn_mean"], keepdims=0),
            helper.make_node("Mul", [x, "knn_one_minus_lam"], ["knn_x_part"]),
            helper.make_node("Mul", ["knn_mean", "knn_lam"], ["knn_nb_part"]),
            helper.make_node("Add", ["knn_x_part", "knn_nb_part"], ["warm"]),
        ]
        x = "warm"
    h = x
    if p.W1.size:
        const("W1", p.W1)
        const("c1", p.c1)
        nodes += [
            helper.make_node("MatMul", [x, "W1"], ["pre1"]),
            helper.make_node("Add", ["pre1", "c1"], ["pre1b"]),
            helper.make_node("Relu", ["pre1b"], ["hidden"]),
        ]
        h = "hidden"
    const("Wa", p.Wa)
    const("ca", p.ca)
    const("wb", p.wb.reshape(-1, 1))
    const("cb", np.asarray(p.cb).reshape(1))
    const("thetaT", p.theta.T)
    const("theta_mean", p.theta.mean(axis=0).reshape(-1, 1))
    const("squeeze_axes", np.array([1]), np.int64)
    nodes += [
        helper.make_node("MatMul", [h, "Wa"], ["u"]),
        helper.make_node("Add", ["u", "ca"], ["ub"]),
        helper.make_node("Softplus", ["ub"], ["discrimination"]),
        helper.make_node("MatMul", [h, "wb"], ["b0"]),
        helper.make_node("Add", ["b0", "cb"], ["b_col"]),  # [N, 1]
        helper.make_node("MatMul", ["discrimination", "thetaT"], ["ath"]),
        helper.make_node("Sub", ["ath", "b_col"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["p_irt" if use_kp else "p_correct"]),
        helper.make_node("MatMul", ["discrimination", "theta_mean"], ["a_mean"]),
        helper.make_node("Sub", ["b_col", "a_mean"], ["diff_col"]),
        helper.make_node("Squeeze", ["diff_col", "squeeze_axes"], ["difficulty"]),
    ]
    if use_kp and memory is not None and model.train_scores is not None:
        # P_knn = mean observed score of the nearest training items, P_irt where none.
        Ytr = model.train_scores
        obs = ~np.isnan(Ytr)
        const("kp_scores", np.nan_to_num(Ytr), np.float16)
        const("kp_mask", obs, np.float16)
        const("kp_k", np.array([min(cfg.knn_p_k, memory.size)]), np.int64)
        const("kp_beta", np.array(cfg.knn_p_blend))
        const("kp_one_minus_beta", np.array(1.0 - cfg.knn_p_blend))
        const("kp_one", np.array(1.0))
        const("kp_zero", np.array(0.0))
        nodes += [
            helper.make_node("TopK", ["knn_sim", "kp_k"], ["kp_val", "kp_idx"], axis=1),
            helper.make_node("Gather", ["kp_scores", "kp_idx"], ["kp_s16"], axis=0),
            helper.make_node("Gather", ["kp_mask", "kp_idx"], ["kp_m16"], axis=0),
            helper.make_node("Cast", ["kp_s16"], ["kp_s"], to=TensorProto.FLOAT),
            helper.make_node("Cast", ["kp_m16"], ["kp_m"], to=TensorProto.FLOAT),
            helper.make_node("ReduceSum", ["kp_s", "squeeze_axes"], ["kp_tot"], keepdims=0),
            helper.make_node("ReduceSum", ["kp_m", "squeeze_axes"], ["kp_cnt"], keepdims=0),
            helper.make_node("Max", ["kp_cnt", "kp_one"], ["kp_den"]),
            helper.make_node("Div", ["kp_tot", "kp_den"], ["kp_mean"]),
            helper.make_node("Greater", ["kp_cnt", "kp_zero"], ["kp_has"]),
            helper.make_node("Where", ["kp_has", "kp_mean", "p_irt"], ["kp_p"]),
            helper.make_node("Mul", ["p_irt", "kp_one_minus_beta"], ["kp_a"]),
            helper.make_node("Mul", ["kp_p", "kp_beta"], ["kp_b"]),
            helper.make_node("Add", ["kp_a", "kp_b"], ["p_correct"]),
        ]
    outputs = [
        helper.make_tensor_value_info("difficulty", TensorProto.FLOAT, ["N"]),
        helper.make_tensor_value_info("discrimination", TensorProto.FLOAT, ["N", k]),
        helper.make_tensor_value_info("p_correct", TensorProto.FLOAT, ["N", g]),
    ]
    fam = model.family
    if fam is not None:
        # P = (1-α)·P_model + α·softmax(e·W + c)·A; the posterior is a fourth output so the
        # router can say which family a query resembles.
        for node in nodes:
            node.output[:] = ["p_model" if o == "p_correct" else o for o in node.output]
        alpha = model.config.family_blend
        const("fam_W", fam.W)
        const("fam_c", fam.c)
        const("fam_table", fam.table)
        # Per configuration, so a configuration added later by adaptive testing (no family
        # record) can take weight 0 and keep the model's P (lab/irt/adaptive.py).
        const("fam_alpha", np.full(g, alpha))
        const("fam_one_minus_alpha", np.full(g, 1.0 - alpha))
        nodes += [
            helper.make_node("MatMul", ["embedding", "fam_W"], ["fam_z0"]),
            helper.make_node("Add", ["fam_z0", "fam_c"], ["fam_z"]),
            helper.make_node("Softmax", ["fam_z"], ["family"], axis=1),
            helper.make_node("MatMul", ["family", "fam_table"], ["fam_p"]),
            helper.make_node("Mul", ["p_model", "fam_one_minus_alpha"], ["fam_a"]),
            helper.make_node("Mul", ["fam_p", "fam_alpha"], ["fam_b"]),
            helper.make_node("Add", ["fam_a", "fam_b"], ["p_correct"]),
        ]
        outputs.append(
            helper.make_tensor_value_info("family", TensorProto.FLOAT, ["N", len(fam.names)])
        )
    graph = helper.make_graph(
        nodes,
        "irtgate_heads",
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", d])],
        outputs,
        initializer=inits,
    )
    proto = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name=producer
    )
    proto.ir_version = min(proto.ir_version, 9)  # readable by older onnxruntime builds
    onnx.checker.check_model(proto)
    return proto


def numpy_outputs(model: IRTModel, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What the graph computes, in numpy (float64): difficulty, discrimination, P."""
    a, b = model.item_params(X)
    theta = model.abilities
    return difficulty_from(a, b, theta.mean(axis=0)), a, model.predict(X)


def export_router(
    model: IRTModel,
    out_dir: Path,
    *,
    configs: Sequence[str],
    card: Mapping[str, Any],
) -> Path:
    """Write ``heads.onnx`` and ``router.yaml`` into ``out_dir`` (created); return it."""
    import yaml

    if len(configs) != model.abilities.shape[0]:
        raise ValueError(
            f"{len(configs)} configuration names for {model.abilities.shape[0]} abilities"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    proto = build_graph(model)
    (out_dir / HEADS_FILE).write_bytes(proto.SerializeToString())
    with (out_dir / CARD_FILE).open("w", encoding="utf-8") as f:
        yaml.safe_dump(dict(card), f, sort_keys=False, allow_unicode=True, width=100)
    return out_dir


def upgrade_knn_query(heads: Path) -> bool:
    """Rewrite an exported graph's query quantization to the current one, in place.

    Routers exported before the query had 7 bits feed MatMulInteger uint8 up to 255, which
    AVX2 CPUs without VNNI compute wrongly (:mod:`irtgate.signals.irt.knn_memory`). The
    search is the same graph with other constants, so this fixes such a router without
    retraining; every other parameter stays as it was. Returns whether anything changed.
    """
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(heads))
    changed = False
    want = _knn_query_constants()
    for i, init in enumerate(proto.graph.initializer):
        if init.name not in want:
            continue
        value, dtype = want[init.name]
        new = numpy_helper.from_array(np.ascontiguousarray(value, dtype=dtype), init.name)
        if new.SerializeToString() != init.SerializeToString():
            proto.graph.initializer[i].CopyFrom(new)
            changed = True
    if changed:
        onnx.checker.check_model(proto)
        heads.write_bytes(proto.SerializeToString())
    return changed


def main(argv: Sequence[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m irtgate.lab.irt.export",
        description="Upgrade router directories' kNN query to 7 bits (no retraining).",
    )
    parser.add_argument("routers", nargs="+", type=Path, help="router directories")
    for router in parser.parse_args(argv).routers:
        done = upgrade_knn_query(router / HEADS_FILE)
        print(f"{router / HEADS_FILE}: {'upgraded' if done else 'already current'}")


if __name__ == "__main__":
    main()
