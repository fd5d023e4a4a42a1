"""Router latency: P(correct) for every configuration for a ~500-token prompt.

Measures, in one run on this machine:

* per request (embed the last user turn + ONNX heads), p50/p99 in ms, with the ``static``
  encoder and with ``minilm`` (its capped token window);
* the heads alone (one embedding → P for every configuration);
* micro-batch throughput (requests/s when concurrent requests are embedded and scored
  together, batch sizes 1, 8, 32);
* resident memory (VmRSS) of a fresh process that has loaded the router and the encoder and
  served one request.

The default router ships with the static encoder. For ``minilm`` the heads are those of
``--minilm-router`` when given, else a stand-in with the same k and configurations
(random weights; the heads' cost depends only on their shapes).

    .venv/bin/python benchmarks/router_latency.py [--n 300] [--minilm-router DIR]

Writes benchmarks/reports/router_latency.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
REPORTS = REPO / "benchmarks" / "reports"

TARGETS = {"static_p50_ms": 2.0, "minilm_p50_ms": 12.0, "rss_mib": 400.0}

_WORDS = [
    "the",
    "model",
    "answers",
    "a",
    "question",
    "about",
    "physics",
    "chemistry",
    "history",
    "law",
    "and",
    "code",
    "while",
    "the",
    "router",
    "decides",
    "which",
    "configuration",
    "is",
    "just",
    "strong",
    "enough",
    "for",
    "the",
    "request",
    "given",
    "its",
    "difficulty",
    "and",
    "the",
    "operator's",
    "cost",
    "weight",
    "under",
    "a",
    "latency",
    "budget",
]


def prompt(seed: int, n_words: int = 435) -> str:
    """About 500 WordPiece tokens of English-like text (checked in the report)."""
    rng = np.random.default_rng(seed)
    words = rng.choice(_WORDS, size=n_words)
    return " ".join(words) + f"? Question {seed}: which option is correct, A, B, C or D?"


def _request(text: str) -> Any:
    from irtgate.signals.request import ApiKind, LLMRequest, Message
    from irtgate.signals.text import PromptText

    return LLMRequest(ApiKind.CHAT, "auto", (Message("user", PromptText(text)),))


def _stand_in_router(dim: int, like: Any, out: Path) -> Path:
    from irtgate.lab.irt.export import export_router
    from irtgate.lab.irt.model import IRTModel

    rng = np.random.default_rng(0)
    k = len(like.card["configurations"][0]["ability"])
    G = len(like.configs)
    X = rng.normal(size=(400, dim))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    m = IRTModel(k=k, max_epochs=2, knn_p_blend=0.0)
    m.fit(X, rng.random((400, G)))
    card = dict(like.card)
    card["encoder"] = {"name": "minilm", "hash": "stand-in"}
    export_router(m, out, configs=list(like.configs), card=card)
    return out


def _percentiles(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {
        "p50_ms": round(float(np.percentile(a, 50)), 3),
        "p90_ms": round(float(np.percentile(a, 90)), 3),
        "p99_ms": round(float(np.percentile(a, 99)), 3),
        "mean_ms": round(float(a.mean()), 3),
    }


def bench_encoder(router: Any, n: int) -> dict[str, Any]:
    emb = router.embedder()
    texts = [prompt(i) for i in range(n)]
    reqs = [_request(t) for t in texts]
    for r in reqs[:10]:  # warm-up: sessions, caches, allocator
        router.score(emb.embed_request(r))
    e2e, heads_only = [], []
    for r in reqs:
        t0 = time.perf_counter()
        vec = emb.embed_request(r)
        t1 = time.perf_counter()
        router.score(vec)
        t2 = time.perf_counter()
        e2e.append((t2 - t0) * 1e3)
        heads_only.append((t2 - t1) * 1e3)
    enc = emb.encoder
    tok_counts = []
    tokenizer = getattr(enc, "tokenizer", None) or getattr(enc, "_tokenizer", None)
    if tokenizer is not None and hasattr(tokenizer, "encode"):
        for t in texts[:20]:
            try:
                tok_counts.append(len(tokenizer.encode(t).ids))
            except Exception:  # a tokenizer object with another API: skip the count
                break
    batch: dict[str, float] = {}
    for bs in (1, 8, 32):
        n_batches = max(3, min(30, n // bs))
        t0 = time.perf_counter()
        done = 0
        for i in range(n_batches):
            chunk = texts[(i * bs) % n : (i * bs) % n + bs] or texts[:bs]
            X = enc.encode(chunk)
            router.predict_batch(X)
            done += len(chunk)
        batch[f"batch_{bs}_req_per_s"] = round(done / (time.perf_counter() - t0), 1)
    return {
        "end_to_end": _percentiles(e2e),
        "heads_only": _percentiles(heads_only),
        "throughput": batch,
        "prompt_tokens_mean": round(float(np.mean(tok_counts)), 1) if tok_counts else None,
        "window": getattr(getattr(enc, "window", None), "max_tokens", None),
    }


_RSS_CODE = """
import sys, numpy as np

from pathlib import Path
from irtgate.signals.irt.runtime import IRTRouter
r = IRTRouter.load({path})
emb = r.embedder()
from irtgate.signals.request import ApiKind, LLMRequest, Message
from irtgate.signals.text import PromptText
req = LLMRequest(ApiKind.CHAT, "auto", (Message("user", PromptText({text!r})),))
for _ in range(20):
    r.score(emb.embed_request(req))
for line in open("/proc/self/status"):
    if line.startswith("VmRSS") or line.startswith("VmHWM"):
        print(line.strip())
"""


def rss_mib(router_dir: Path | None) -> dict[str, float]:
    code = _RSS_CODE.format(
        repo=str(REPO), path=repr(str(router_dir)) if router_dir else "None", text=prompt(0)
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout
    vals = {}
    for line in out.splitlines():
        key, v = line.split(":", 1)
        vals[key.strip()] = round(int(v.split()[0]) / 1024, 1)
    return {"rss_mib": vals.get("VmRSS", float("nan")), "peak_rss_mib": vals.get("VmHWM", 0.0)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300, help="requests per encoder")
    ap.add_argument("--minilm-router", type=Path, default=None)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

    from irtgate.signals.irt.runtime import IRTRouter

    default = IRTRouter.load()
    results: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "router": {
            "configs": len(default.configs),
            "encoder": default.encoder_name,
            "heads_onnx_bytes": (default.directory / "heads.onnx").stat().st_size,
        },
        "targets": TARGETS,
    }
    print(f"static: {args.n} requests ...", flush=True)
    results["static"] = bench_encoder(default, args.n)
    results["static"]["rss"] = rss_mib(None)
    with tempfile.TemporaryDirectory() as tmp:
        mdir = args.minilm_router or _stand_in_router(384, default, Path(tmp) / "minilm")
        mrouter = IRTRouter.load(mdir)
        print(f"minilm: {args.n} requests ...", flush=True)
        results["minilm"] = bench_encoder(mrouter, args.n)
        results["minilm"]["heads"] = "trained" if args.minilm_router else "stand-in (same shape)"
        results["minilm"]["rss"] = rss_mib(mdir)
    s50 = results["static"]["end_to_end"]["p50_ms"]
    m50 = results["minilm"]["end_to_end"]["p50_ms"]
    results["checks"] = {
        "static_p50_ok": s50 <= TARGETS["static_p50_ms"],
        "minilm_p50_ok": m50 <= TARGETS["minilm_p50_ms"],
        "rss_ok": max(results["static"]["rss"]["rss_mib"], results["minilm"]["rss"]["rss_mib"])
        <= TARGETS["rss_mib"],
        "minilm_over_static_p50": round(m50 / s50, 2) if s50 else None,
    }
    REPORTS.mkdir(parents=True, exist_ok=True)
    (REPORTS / "router_latency.json").write_text(json.dumps(results, indent=2) + "\n")
    (REPORTS / "router_latency.md").write_text(render(results))
    print(render(results))
    return 0


def render(r: dict[str, Any]) -> str:
    lines = [
        "# Router latency",
        "",
        f"P(correct) for all {r['router']['configs']} configurations of the default router for "
        f"a ~500-token prompt, {r['machine']['cpus']} CPUs, Python {r['machine']['python']}. "
        "Written by `benchmarks/router_latency.py`.",
        "",
        "| encoder | prompt tokens | window | p50 ms | p90 ms | p99 ms | heads p50 ms | "
        "batch 1 req/s | batch 8 req/s | batch 32 req/s | RSS MiB | target p50 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for enc, tgt in (("static", "static_p50_ms"), ("minilm", "minilm_p50_ms")):
        x = r[enc]
        e, h, t = x["end_to_end"], x["heads_only"], x["throughput"]
        lines.append(
            f"| {enc} | {x['prompt_tokens_mean']} | {x['window']} | {e['p50_ms']} | "
            f"{e['p90_ms']} | {e['p99_ms']} | {h['p50_ms']} | {t['batch_1_req_per_s']} | "
            f"{t['batch_8_req_per_s']} | {t['batch_32_req_per_s']} | {x['rss']['rss_mib']} | "
            f"<= {r['targets'][tgt]} |"
        )
    c = r["checks"]
    lines += [
        "",
        f"Checks: static p50 ok = {c['static_p50_ok']}, minilm p50 ok = {c['minilm_p50_ok']}, "
        f"RSS <= {r['targets']['rss_mib']} MiB ok = {c['rss_ok']}; minilm/static p50 = "
        f"{c['minilm_over_static_p50']}x.",
        f"minilm heads: {r['minilm'].get('heads')}. Heads graph: "
        f"{r['router']['heads_onnx_bytes'] / 1e6:.1f} MB.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
