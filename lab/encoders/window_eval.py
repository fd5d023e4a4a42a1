"""How the token window affects routing quality: a kNN router on routerdc-7models.

RouterDC's protocol (train on the train splits of MMLU, GSM8K, CMMLU, ARC-Challenge and
HumanEval; accuracy of the chosen model on their test splits (ID) and on MATH prealgebra,
MBPP and C-Eval (OOD), averaged over benchmarks), with a plain cosine kNN router (k = 200)
so that only the embedding varies. Needs ``../shared/data``; a development tool, not used
by the server::

    nice -n 10 .venv/bin/python -m irtgate.lab.encoders.window_eval --encoder static \\
        --window 128:16 --window 256:32
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from irtgate.lab.encoders.cache import embed_corpus
from irtgate.signals.encoders.artifact import META_FILE, shipped_path

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "routerdc-7models.jsonl.gz"
ID = ("mmlu", "gsm8k", "cmmlu", "arc_challenge", "humaneval")
OOD = ("math_prealgebra", "mbpp", "ceval")


def load(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    with gzip.open(path, "rt") as f:
        rows = [json.loads(line) for line in f]
    keep = [r for r in rows if r["benchmark"] in ID + OOD]
    models = sorted(keep[0]["scores"])
    return keep, models


def knn_scores(
    rows: list[dict[str, Any]], models: list[str], x: np.ndarray, k: int
) -> dict[str, float]:
    scores = np.array(
        [[r["scores"].get(m, np.nan) for m in models] for r in rows], dtype=np.float64
    )
    train = np.array([r["benchmark"] in ID and r.get("split") == "train" for r in rows])
    test = np.array([r.get("split") == "test" for r in rows])
    xt, st = x[train], np.nan_to_num(scores[train], nan=0.0)
    per_bench: dict[str, float] = {}
    for bench in ID + OOD:
        idx = np.where(test & np.array([r["benchmark"] == bench for r in rows]))[0]
        sims = x[idx] @ xt.T
        nn = np.argpartition(-sims, k, axis=1)[:, :k]
        pred = st[nn].mean(axis=1)
        chosen = np.argmax(pred, axis=1)
        per_bench[bench] = float(np.nanmean(scores[idx, chosen])) * 100.0
    return {
        "id": round(float(np.mean([per_bench[b] for b in ID])), 2),
        "ood": round(float(np.mean([per_bench[b] for b in OOD])), 2),
        **{b: round(v, 2) for b, v in per_bench.items()},
    }


def with_window(encoder: str, max_tokens: int, head: int, tmp: Path) -> Path:
    """A copy of the shipped artifact with another window (the fingerprint changes too)."""
    out = tmp / f"{encoder}-{max_tokens}-{head}"
    shutil.copytree(shipped_path(encoder), out)
    meta = json.loads((out / META_FILE).read_text())
    meta["window"] = {"max_tokens": max_tokens, "head": head}
    (out / META_FILE).write_text(json.dumps(meta))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--encoder", choices=["static", "minilm"], default="static")
    parser.add_argument("--window", action="append", default=[], help="MAX:HEAD; repeatable")
    parser.add_argument("--k", type=int, default=200)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--cache-dir", type=Path, default=Path(".cache/embeddings"))
    args = parser.parse_args(argv)
    rows, models = load(args.data)
    texts = [r["prompt"] for r in rows]
    with tempfile.TemporaryDirectory() as tmp_dir:
        variants: list[tuple[str, Path | None]] = [("shipped", None)]
        for w in args.window:
            m, h = (int(v) for v in w.split(":"))
            variants.append((w, with_window(args.encoder, m, h, Path(tmp_dir))))
        for label, path in variants:
            x = embed_corpus(args.encoder, texts, cache_dir=args.cache_dir, path=path)
            print(
                json.dumps(
                    {
                        "encoder": args.encoder,
                        "window": label,
                        **knn_scores(rows, models, x, args.k),
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
