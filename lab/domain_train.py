"""Train the domain head: multinomial logistic regression on the router's embedding.

    python -m irtgate.lab.domain_train                    # static encoder (the default)
    python -m irtgate.lab.domain_train --encoder minilm

Data: ``../shared/data/mmlu-domains.jsonl.gz`` (MMLU questions with their MMLU-Pro
category) plus the items of ``routerdc-7models`` whose benchmark implies a category
(GSM8K and MATH -> math; HumanEval, HumanEval-JS and MBPP -> computer science). Prompts are
de-duplicated, then split by a hash of the prompt: 20% held out for the report, 10% for
choosing the regularisation, the rest for fitting. The fitted model (standardisation folded
in) is exported as a small ONNX graph, ``embedding -> logits -> probs``, with a card, to
``signals/artifacts/domain/<encoder>/``, and ``benchmarks/reports/domain_quality.{md,json}``
is rewritten from every trained head's card. Needs scikit-learn and onnx (dev extra); serving
needs only onnxruntime.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from irtgate.signals.domain import ARTIFACTS, CARD_FILE, HEAD_FILE, LABELS

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
REPORTS = REPO / "benchmarks" / "reports"
# Benchmarks in routerdc-7models whose subject is implied by the benchmark itself.
BENCHMARK_DOMAINS = {
    "gsm8k": "math",
    "math_prealgebra": "math",
    "humaneval": "computer science",
    "humaneval_js": "computer science",
    "mbpp": "computer science",
}
C_GRID = (0.003, 0.01, 0.03, 0.1, 0.3)


@dataclass
class Item:
    prompt: str
    label: str
    source: str  # "mmlu" or the benchmark name

    @property
    def bucket(self) -> int:
        """0-9 from the prompt's hash: 0-1 held out, 2 validation, 3-9 training."""
        return hashlib.sha256(self.prompt.encode()).digest()[0] % 10


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)


def load_items(shared: Path, cap_per_benchmark: int) -> list[Item]:
    items: list[Item] = []
    for d in _jsonl(shared / "mmlu-domains.jsonl.gz"):
        if d.get("domain") in LABELS:
            items.append(Item(d["prompt"], d["domain"], "mmlu"))
    per_bench: dict[str, list[Item]] = {}
    for d in _jsonl(shared / "routerdc-7models.jsonl.gz"):
        label = BENCHMARK_DOMAINS.get(d["benchmark"])
        if label is None:
            continue
        if d.get("domain") not in (None, label):
            raise ValueError(f"{d['id']}: domain {d['domain']!r} disagrees with {label!r}")
        per_bench.setdefault(d["benchmark"], []).append(Item(d["prompt"], label, d["benchmark"]))
    for _bench, rows in sorted(per_bench.items()):
        # Cap each benchmark so 3,000 maths word problems do not swamp the 14 categories;
        # a hash order keeps the choice deterministic.
        rows.sort(key=lambda it: hashlib.sha256(it.prompt.encode()).digest())
        items.extend(rows[:cap_per_benchmark])
    seen: set[str] = set()
    unique = []
    for it in items:
        if it.prompt not in seen:
            seen.add(it.prompt)
            unique.append(it)
    return unique


def _fit(x: np.ndarray, y: np.ndarray, c: float, weight: str | None) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, class_weight=weight, max_iter=3000, tol=1e-5).fit(x, y)


def _macro(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.mean([(pred[y == k] == k).mean() for k in np.unique(y)]))


def _per_class(y: np.ndarray, pred: np.ndarray) -> dict[str, dict[str, float]]:
    out = {}
    for i, lab in enumerate(LABELS):
        mask = y == i
        if mask.any():
            out[lab] = {"n": int(mask.sum()), "accuracy": round(float((pred[mask] == i).mean()), 4)}
    return out


def export_onnx(w: np.ndarray, b: np.ndarray, path: Path) -> None:
    """``logits = embedding @ w + b``; ``probs = softmax(logits)``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    d, k = w.shape
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["embedding", "W"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
        ],
        "irtgate_domain_head",
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", d])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", k]),
            helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", k]),
        ],
        initializer=[
            numpy_helper.from_array(w.astype(np.float32), "W"),
            numpy_helper.from_array(b.astype(np.float32), "b"),
        ],
    )
    # opset 17 / IR 8: loadable by any onnxruntime of the last few years.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())


def train(encoder: str, shared: Path, out_root: Path, cap: int) -> dict[str, Any]:
    from irtgate.lab.encoders.cache import embed_corpus
    from irtgate.signals.encoders.artifact import read_artifact, shipped_path

    t0 = time.time()
    items = load_items(shared, cap)
    x = embed_corpus(encoder, [it.prompt for it in items])
    y = np.array([LABELS.index(it.label) for it in items])
    bucket = np.array([it.bucket for it in items])
    test, val, fit = bucket < 2, bucket == 2, bucket > 2
    mean = x[fit].mean(axis=0)
    std = x[fit].std(axis=0) + 1e-6
    z = (x - mean) / std

    # Choose C and class weighting on validation by the mean of accuracy and per-class
    # accuracy: plain accuracy alone favours heavy regularisation that all but drops the
    # small classes (engineering has ~150 training items).
    val_score: dict[tuple[float, str | None], tuple[float, float]] = {}
    for weight in (None, "balanced"):
        for c in C_GRID:
            pv = _fit(z[fit], y[fit], c, weight).predict(z[val])
            val_score[(c, weight)] = (float((pv == y[val]).mean()), _macro(y[val], pv))
    best_c, best_w = max(val_score, key=lambda k: (sum(val_score[k]) / 2, -k[0]))
    model = _fit(z[fit | val], y[fit | val], best_c, best_w)
    if list(model.classes_) != list(range(len(LABELS))):
        raise RuntimeError("a category has no training items; cannot export all 14 labels")
    # Fold the standardisation into the linear layer: (x - m) / s @ W' + b'.
    w = (model.coef_ / std).T
    b = model.intercept_ - (model.coef_ / std) @ mean

    pred = np.argmax(x[test] @ w + b, axis=1)
    sources = np.array([it.source for it in items])
    by_source = {
        s: round(float((pred[sources[test] == s] == y[test][sources[test] == s]).mean()), 4)
        for s in sorted(set(sources[test]))
    }
    info = read_artifact(shipped_path(encoder), encoder)
    out = out_root / encoder
    out.mkdir(parents=True, exist_ok=True)
    export_onnx(w, b, out / HEAD_FILE)
    card = {
        "card_version": 1,
        "name": "irtgate-domain-head",
        "model": "multinomial logistic regression on the router's embedding (sklearn lbfgs)",
        "labels": list(LABELS),
        "encoder": {
            "name": encoder,
            "dim": int(x.shape[1]),
            "hash": info.fingerprint,
            "weights_sha256": info.weights_sha256,
        },
        "head_sha256": hashlib.sha256((out / HEAD_FILE).read_bytes()).hexdigest(),
        "data": {
            "sources": ["mmlu-domains.jsonl.gz", "routerdc-7models.jsonl.gz"],
            "benchmark_labels": BENCHMARK_DOMAINS,
            "cap_per_benchmark": cap,
            "items": len(items),
            "train": int((fit | val).sum()),
            "heldout": int(test.sum()),
            "split": "sha256(prompt) % 10: 0-1 held out, 2 validation (C), 3-9 fit",
            "train_label_counts": dict(Counter(it.label for it in items)),
        },
        "C": best_c,
        "class_weight": best_w or "none",
        "validation_accuracy_and_macro": {
            f"C={c} weight={w or 'none'}": [round(a, 4), round(m, 4)]
            for (c, w), (a, m) in val_score.items()
        },
        "heldout_accuracy": round(float((pred == y[test]).mean()), 4),
        "heldout_macro_accuracy": round(_macro(y[test], pred), 4),
        "heldout_accuracy_by_source": by_source,
        "per_class_accuracy": _per_class(y[test], pred),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": f"python -m irtgate.lab.domain_train --encoder {encoder}",
        "train_seconds": round(time.time() - t0, 1),
    }
    (out / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")
    return card


def write_report(out_root: Path, reports: Path) -> None:
    """benchmarks/reports/domain_quality.{md,json} from every trained head's card."""
    cards = {
        p.parent.name: json.loads(p.read_text()) for p in sorted(out_root.glob(f"*/{CARD_FILE}"))
    }
    if not cards:
        return
    reports.mkdir(parents=True, exist_ok=True)
    (reports / "domain_quality.json").write_text(json.dumps(cards, indent=2) + "\n")
    names = list(cards)
    first = next(iter(cards.values()))
    lines = [
        "# Domain head quality (held-out accuracy)",
        "",
        "Multinomial logistic regression on the router's own embedding (no second encoder "
        "pass), 14 MMLU-Pro categories. Training data: MMLU questions with their category "
        "(`mmlu-domains`) plus routerdc items whose benchmark implies one (GSM8K/MATH -> math, "
        "HumanEval/HumanEval-JS/MBPP -> computer science, at most "
        f"{first['data']['cap_per_benchmark']} per benchmark). Held out: "
        f"{first['data']['heldout']} prompts (20%, by prompt hash).",
        "",
        "| | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
        "| held-out accuracy | "
        + " | ".join(f"{c['heldout_accuracy']:.3f}" for c in cards.values())
        + " |",
        "| macro (mean per-class) | "
        + " | ".join(f"{c['heldout_macro_accuracy']:.3f}" for c in cards.values())
        + " |",
    ]
    sources = sorted({s for c in cards.values() for s in c["heldout_accuracy_by_source"]})
    for s in sources:
        vals = [c["heldout_accuracy_by_source"].get(s) for c in cards.values()]
        lines.append(
            f"| source: {s} | " + " | ".join("-" if v is None else f"{v:.3f}" for v in vals) + " |"
        )
    lines += ["", "Per class (held-out accuracy, n):", ""]
    lines += ["| class | n | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for lab in LABELS:
        n = first["per_class_accuracy"].get(lab, {}).get("n", 0)
        accs = [c["per_class_accuracy"].get(lab, {}).get("accuracy") for c in cards.values()]
        lines.append(
            f"| {lab} | {n} | " + " | ".join("-" if a is None else f"{a:.3f}" for a in accs) + " |"
        )
    lines += [
        "",
        "Encoders: "
        + ", ".join(
            f"{k} (hash {c['encoder']['hash']}, C={c['C']}, class weight {c['class_weight']})"
            for k, c in cards.items()
        )
        + ". Regenerate with `python -m irtgate.lab.domain_train --encoder <name>`.",
    ]
    (reports / "domain_quality.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--encoder", default="static", choices=("static", "minilm"))
    ap.add_argument("--data", type=Path, default=SHARED, help="folder with the .jsonl.gz files")
    ap.add_argument("--out", type=Path, default=ARTIFACTS)
    ap.add_argument("--reports", type=Path, default=REPORTS)
    ap.add_argument("--cap-per-benchmark", type=int, default=600)
    args = ap.parse_args(argv)
    if not (args.data / "mmlu-domains.jsonl.gz").is_file():
        print(f"no training data at {args.data} (need mmlu-domains.jsonl.gz)", file=sys.stderr)
        return 2
    card = train(args.encoder, args.data, args.out, args.cap_per_benchmark)
    write_report(args.out, args.reports)
    print(
        f"{args.encoder}: held-out accuracy {card['heldout_accuracy']:.4f} "
        f"(macro {card['heldout_macro_accuracy']:.4f}, n={card['data']['heldout']}, "
        f"C={card['C']}) -> {args.out / args.encoder}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
