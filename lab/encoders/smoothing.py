"""SmoothQuant-style rescaling of the fp32 graph before dynamic int8 quantization.

Dynamic quantization gives activations one scale per tensor, and a few BERT hidden
channels carry outliers many times larger than the rest, which costs the other channels
their precision (int8 cosine to fp32 fell to 0.976 on Chinese and very short texts). For
each weight MatMul ``X @ W`` this divides channel j of X by s_j and multiplies row j of W
by s_j: the product is unchanged in exact arithmetic, while the outliers move into the
per-channel-quantized weights. s_j = max|X_j|^alpha / max|W_j|^(1 - alpha), with max|X_j|
measured on a small built-in calibration set. Export-time only (needs onnx).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

# Varied on purpose: languages, code, maths, few-shot layouts, very short inputs.
CALIBRATION_TEXTS: tuple[str, ...] = (
    "",
    "hi",
    "What is the capital of Australia?",
    "Explain the difference between a process and a thread in an operating system.",
    "Solve for x: 3x + 7 = 22. Show your steps.",
    "A train leaves at 3 pm travelling 80 km/h; a second leaves an hour later at 100 km/h. "
    "When does the second catch up?",
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n# make this iterative",
    "SELECT name, COUNT(*) FROM orders GROUP BY name HAVING COUNT(*) > 5;",
    "Which of the following is a noble gas?\nA) Oxygen\nB) Neon\nC) Nitrogen\nD) Hydrogen\nAnswer:",
    "Question: Which organ produces insulin?\nA. liver\nB. pancreas\nC. kidney\nD. heart\n"
    "Answer: B\n\nQuestion: Which planet is largest?\nA. Mars\nB. Venus\nC. Jupiter\nD. Earth\n"
    "Answer:",
    "下列关于细胞膜的叙述，正确的是\nA. 细胞膜由脂质和蛋白质组成\nB. 细胞膜不具有流动性\n答案：",
    "中国的首都是哪里？请简要介绍它的历史。",
    "日本語で自己紹介を書いてください。",
    "Écris un court poème sur la mer et le vent.",
    "¿Cuál es la diferencia entre ser y estar?",
    "Translate to German: The weather is nice today, let's go for a walk.",
    "Summarise the plot of Hamlet in three sentences.",
    "Write a Python function that parses ISO 8601 dates with time zones.",
    "Prove that the square root of 2 is irrational.",
    "My order #48213 never arrived. Can I get a refund? Email me at jane@example.com.",
    "Let f(x) = x^3 - 6x^2 + 11x - 6. Find all real roots and the local extrema.",
    "Is it ethical to use facial recognition in public spaces? Give arguments on both sides.",
    'Print only a single choice from "A" or "B" or "C" or "D" without explanation.',
    "🚀🔥 launch day!!! 🎉🎉 what should I tweet?",
    "The patient presents with fever, productive cough and right lower lobe consolidation. "
    "What is the most likely pathogen and the first-line treatment?",
    "Under the doctrine of consideration, is a promise to make a gift enforceable?",
    "Compute the determinant of [[2, 1, 0], [1, 3, 1], [0, 1, 4]].",
    "Rewrite this sentence in the passive voice: The committee approved the new budget.",
)


def matmul_kind(node_name: str) -> str:
    """The role of a BERT weight MatMul, from the exporter's node names."""
    if "/attention/self/" in node_name:
        return "qkv"
    if "/attention/output/" in node_name:
        return "attn_out"
    if "/intermediate/" in node_name:
        return "ffn_in"
    if "/output/" in node_name:
        return "ffn_out"
    return "other"


def _weight_matmuls(graph: Any, inits: dict[str, Any]) -> dict[str, list[Any]]:
    groups: dict[str, list[Any]] = defaultdict(list)
    for node in graph.node:
        if node.op_type == "MatMul" and node.input[1] in inits:
            groups[node.input[0]].append(node)
    return groups


def _activation_maxima(
    model: Any, tensors: Sequence[str], feeds: Sequence[dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    for name in tensors:
        probe.graph.output.append(
            onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
        )
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    maxima: dict[str, np.ndarray] = {}
    for feed in feeds:
        outs = session.run(list(tensors), feed)
        for name, value in zip(tensors, outs, strict=True):
            m = np.abs(value).reshape(-1, value.shape[-1]).max(axis=0)
            maxima[name] = np.maximum(maxima[name], m) if name in maxima else m
    return maxima


def smooth(
    onnx_in: Path,
    onnx_out: Path,
    feeds_for: Callable[[Sequence[str]], list[dict[str, np.ndarray]]],
    alpha: float | dict[str, float] = 0.5,
) -> int:
    """Rescale every weight MatMul of ``onnx_in``; returns how many input tensors were smoothed."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(onnx_in))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    groups = _weight_matmuls(graph, inits)
    maxima = _activation_maxima(model, list(groups), feeds_for(CALIBRATION_TEXTS))
    for tensor, nodes in groups.items():
        a = alpha if isinstance(alpha, float) else alpha.get(matmul_kind(nodes[0].name), 0.0)
        if a <= 0.0:
            continue
        weights = [numpy_helper.to_array(inits[n.input[1]]) for n in nodes]
        w_max = np.max([np.abs(w).max(axis=1) for w in weights], axis=0)
        s = np.power(np.maximum(maxima[tensor], 1e-5), a) / np.power(
            np.maximum(w_max, 1e-5), 1.0 - a
        )
        s = np.clip(s, 1e-2, 1e2).astype(np.float32)
        inv_name = f"{tensor}_smooth_inv"
        smoothed = f"{tensor}_smoothed"
        graph.initializer.append(numpy_helper.from_array((1.0 / s).astype(np.float32), inv_name))
        graph.node.append(onnx.helper.make_node("Mul", [tensor, inv_name], [smoothed]))
        for node, w in zip(nodes, weights, strict=True):
            node.input[0] = smoothed
            inits[node.input[1]].CopyFrom(
                numpy_helper.from_array((w * s[:, None]).astype(np.float32), node.input[1])
            )
    # Appended Mul nodes break topological order; the checker and onnxruntime need it.
    _toposort(graph)
    onnx.checker.check_model(model)
    onnx.save(model, str(onnx_out))
    return len(groups)


def _toposort(graph: Any) -> None:
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending = list(graph.node)
    ordered: list[Any] = []
    while pending:
        rest = []
        for node in pending:
            if all(name in available for name in node.input):
                ordered.append(node)
                available.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):
            raise ValueError("graph has a cycle or a dangling input")
        pending = rest
    del graph.node[:]
    graph.node.extend(ordered)


def rowwise_int8_embeddings(onnx_in: Path, onnx_out: Path, min_rows: int = 1000) -> int:
    """Store large embedding tables (Gather on an initializer) as int8 with one scale per row.

    quantize_dynamic gives a Gather table a single scale, which rare tokens (e.g. CJK
    characters, whose rows are small) pay for; a scale per row keeps the table at int8 size.
    Returns how many tables were converted. Quantize with ``op_types_to_quantize=["MatMul"]``
    afterwards so that the converted Gathers are left alone.
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(onnx_in))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    converted = 0
    for node in list(graph.node):
        if node.op_type != "Gather" or node.input[0] not in inits:
            continue
        table = numpy_helper.to_array(inits[node.input[0]])
        if table.dtype != np.float32 or table.ndim != 2 or table.shape[0] < min_rows:
            continue
        scale = np.abs(table).max(axis=1, keepdims=True) / 127.0
        scale[scale == 0] = 1.0
        q = np.clip(np.rint(table / scale), -127, 127).astype(np.int8)
        base = node.input[0]
        inits[base].CopyFrom(numpy_helper.from_array(q, f"{base}_q8"))
        graph.initializer.append(numpy_helper.from_array(scale.astype(np.float32), f"{base}_s"))
        ids, out = node.input[1], node.output[0]
        node.input[0] = f"{base}_q8"
        node.output[0] = f"{out}_q8"
        graph.node.extend(
            [
                onnx.helper.make_node(
                    "Cast", [f"{out}_q8"], [f"{out}_f"], to=onnx.TensorProto.FLOAT
                ),
                onnx.helper.make_node("Gather", [f"{base}_s", ids], [f"{out}_scale"], axis=0),
                onnx.helper.make_node("Mul", [f"{out}_f", f"{out}_scale"], [out]),
            ]
        )
        converted += 1
    _toposort(graph)
    onnx.checker.check_model(model)
    onnx.save(model, str(onnx_out))
    return converted
