"""Onboarding quality: a configuration onboarded live (through the stand-in endpoint) against
the same configuration trained with all of its data.

No recorded model answered both ARC-Challenge (RouterBench's 11 models) and GSM8K (RouterDC's
7), so each configuration here is a pair: one RouterBench model's ARC answers with one RouterDC
model's GSM8K answers, under one name. For each pair in turn:

1. train a router without it (the other configurations, the data's train split);
2. onboard it live: the stand-in answers bank questions of the train split as the pair did
   (gold where it scored 1, a wrong answer where 0), its output tokens such that tokens x
   price = the recorded cost of the ARC answer (GSM8K answers: the model's mean ARC cost);
3. train a router with it (all of its train-split data);
4. on the test split's ARC and GSM8K items, compare the two routers' P for the pair with its
   real correctness, at 25, 50, 100 and 200 questions.

Metrics: AUC of P against correctness (score >= 0.5), pooled over both benchmarks and per
benchmark; |mean P - mean score| per benchmark; cost error |calibrated - true| / true, the
true cost being the mean recorded cost over the test items.

    .venv/bin/python benchmarks/onboarding.py [--pairs N] [--quick]

Needs ../shared/data. Writes benchmarks/reports/onboarding.json and .md.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
REPORTS = REPO / "benchmarks" / "reports"
# IRTGATE_SHARED_DATA points elsewhere (a git worktree is not beside ../shared).
SHARED = Path(os.environ.get("IRTGATE_SHARED_DATA") or REPO.parent / "shared" / "data")
COUNTS = (25, 50, 100, 200)
PRICE_OUT = 10.0  # USD per 1M output tokens, for turning recorded costs into usage
# name: (RouterBench model for ARC, RouterDC model for GSM8K)
PAIRS = {
    "pair-mistral": ("mistralai/mistral-7b-chat", "mistralai/Mistral-7B-v0.1"),
    "pair-llama": ("meta/llama-2-70b-chat", "meta-llama/Meta-Llama-3-8B"),
    "pair-gpt35-metamath": ("gpt-3.5-turbo-1106", "meta-math/MetaMath-Mistral-7B"),
    "pair-mixtral-dolphin": (
        "mistralai/mixtral-8x7b-chat",
        "cognitivecomputations/dolphin-2.9-llama3-8b",
    ),
    "pair-claude-zephyr": ("claude-instant-v1", "HuggingFaceH4/zephyr-7b-beta"),
}


def _read(name: str) -> list[dict[str, Any]]:
    with gzip.open(SHARED / name, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return path


def merged(
    arc: list[dict[str, Any]], dc: list[dict[str, Any]], name: str, keep: bool
) -> list[dict[str, Any]]:
    """The data with the pair's two models replaced by one configuration ``name`` (kept only
    with ``keep``)."""
    arc_model, dc_model = PAIRS[name]
    out = []
    for rows, model in ((arc, arc_model), (dc, dc_model)):
        for r in rows:
            r = dict(r)
            scores = {c: v for c, v in r.get("scores", {}).items() if c not in PAIRS[name]}
            costs = {c: v for c, v in (r.get("costs") or {}).items() if c not in PAIRS[name]}
            if keep and model in r.get("scores", {}):
                scores[name] = r["scores"][model]
                if model in (r.get("costs") or {}):
                    costs[name] = r["costs"][model]
            r["scores"] = scores
            if r.get("costs") is not None:
                r["costs"] = costs
            out.append(r)
    return out


def auc(p: np.ndarray, y: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    yb = y >= 0.5
    return float(roc_auc_score(yb, p)) if 0 < yb.sum() < len(yb) else float("nan")


def metrics(p: np.ndarray, y: np.ndarray, bench: np.ndarray) -> dict[str, Any]:
    out: dict[str, Any] = {"auc_pooled": round(auc(p, y), 4)}
    for b in sorted(set(bench)):
        m = bench == b
        out[f"auc[{b}]"] = round(auc(p[m], y[m]), 4)
        out[f"calib_err[{b}]"] = round(abs(float(p[m].mean()) - float(y[m].mean())), 4)
    return out


def run_pair(
    name: str, arc: list[dict[str, Any]], dc: list[dict[str, Any]], tmp: Path, family: bool
) -> dict[str, Any]:
    from irtgate.lab.encoders.cache import embed_corpus
    from irtgate.lab.irt.adaptive import add_configuration, card_abilities, estimate_map, prior_from
    from irtgate.lab.irt.model import IRTConfig
    from irtgate.lab.irt.train import train_router
    from irtgate.lab.onboard.bank import BankItem, bank_params, load_bank
    from irtgate.lab.onboard.calibrate import LiveSettings, calibrate_live, log_path
    from irtgate.lab.onboard.live import Prices
    from irtgate.lab.onboard.standin import Recorded, StandIn, serve_in_thread
    from irtgate.signals.irt.runtime import IRTRouter

    t0 = time.perf_counter()
    arc_model, dc_model = PAIRS[name]
    full_rows = merged(arc, dc, name, keep=True)
    rec = {r["id"]: r for r in full_rows if name in r["scores"]}
    folder = tmp / name
    folder.mkdir()
    routers = {}
    for label, keep in (("without", False), ("full", True)):
        data = _write(folder / f"{label}.jsonl.gz", merged(arc, dc, name, keep=keep))
        routers[label] = folder / f"router-{label}"
        train_router(
            [data], routers[label], ks=(16,), base=IRTConfig(seed=0), progress=False,
            log=lambda _: None, family=family,
        )  # fmt: skip
    # The stand-in: the pair's recorded answers and what they cost, on train-split questions.
    bank = [it for it in load_bank() if it.id in rec and rec[it.id].get("split") == "train"]
    arc_cost = [rec[i]["costs"][name] for i in rec if name in (rec[i].get("costs") or {})]
    mean_arc = float(np.mean(arc_cost))

    def cost_of(item_id: str) -> float:
        return float((rec[item_id].get("costs") or {}).get(name, mean_arc))

    tokens = {it.id: max(1, round(cost_of(it.id) * 1e6 / PRICE_OUT)) for it in bank}
    standin = StandIn(
        bank,
        {(name, None): Recorded({i: rec[i]["scores"][name] for i in rec}, output_tokens=tokens)},
    )
    out = folder / "onboarded"
    own = folder / "bank.jsonl"
    own.write_text("".join(json.dumps({
        "id": it.id, "benchmark": it.benchmark, "prompt": it.prompt, "answer": it.answer,
        "answer_type": it.answer_type, **({"choices": list(it.choices)} if it.choices else {}),
    }) + "\n" for it in bank))  # fmt: skip
    with serve_in_thread(standin) as url:
        s = LiveSettings(
            router=routers["without"], name=name, endpoint=url, model=name, out=out,
            bank=own, max_queries=max(COUNTS), concurrency=1, prices=Prices(0.0, PRICE_OUT),
            se_target=0.0,
        )  # fmt: skip
        calibrate_live(s, log=lambda _: None, progress=False)
    log = [json.loads(x) for x in log_path(out, name).read_text().splitlines()]
    graded = [r for r in log if r.get("kind") == "graded"]
    # The test items of both benchmarks that the pair answered.
    test = [r for r in full_rows if name in r["scores"] and r.get("split") == "test"]
    test = [r for r in test if r["benchmark"] in ("arc-challenge", "gsm8k")]
    y = np.array([r["scores"][name] for r in test])
    bench = np.array([r["benchmark"] for r in test])
    true_cost = float(np.mean([cost_of(r["id"]) for r in test]))

    def p_of(router_dir: Path, config: str) -> tuple[np.ndarray, Any]:
        router = IRTRouter.load(router_dir)
        X = embed_corpus(router.encoder_name, [r["prompt"] for r in test], progress=False)
        _, _, p = router.predict_batch(X)
        return p[:, router.configs.index(config)].astype(np.float64), router

    p_full, full_router = p_of(routers["full"], name)
    row: dict[str, Any] = {
        "pair": f"{arc_model} (ARC) + {dc_model} (GSM8K)",
        "test_items": len(test),
    }
    row["full"] = metrics(p_full, y, bench)
    full_cost = full_router.expected_cost[name]
    row["full"]["cost_err"] = (
        None if full_cost is None else round(abs(full_cost - true_cost) / true_cost, 4)
    )
    # Onboarded, after the first n answers: the estimate from the log's first n graded rows
    # (concurrency 1: exactly what a run stopped at n would have written), added to the
    # router the way calibrate adds it, and read back through the serving graph.
    without = IRTRouter.load(routers["without"])
    items = [BankItem(r["id"], "", rec[r["id"]]["prompt"], "0", "number") for r in graded]
    a, b, _ = bank_params(without, items)
    mu0, cov0 = prior_from(card_abilities(without.card))
    ys = np.array([r["score"] for r in graded])
    row["onboarded"] = {}
    for n in COUNTS:
        if n > len(graded):
            continue
        theta, _ = estimate_map(a[:n], b[:n], ys[:n], mu0, np.linalg.inv(cov0))
        at_n = folder / f"onboarded-{n}"
        add_configuration(routers["without"], at_n, name, theta, None, {"questions": n})
        p, _ = p_of(at_n, name)
        m = metrics(p, y, bench)
        per = [r["output_tokens"] * PRICE_OUT / 1e6 for r in graded[:n]]
        m["cost_err"] = round(abs(float(np.mean(per)) - true_cost) / true_cost, 4)
        row["onboarded"][n] = m
    # The router the live run wrote (200 questions) gives the same P as the last estimate.
    p_live, _ = p_of(out, name)
    row["live_router_matches_estimate"] = bool(np.allclose(p_live, p, atol=1e-3))
    row["seconds"] = round(time.perf_counter() - t0, 1)
    return row


def report_md(rows: dict[str, Any], family: bool = True) -> str:
    lines = [
        "# Onboarding a configuration live vs training with all of its data",
        "",
        "Produced by `benchmarks/onboarding.py` on `../shared/data` (see its docstring for the",
        "protocol). Each configuration is a pair of recorded models (ARC from RouterBench,",
        "GSM8K from RouterDC); the onboarded router never saw its data, the full one did.",
        "AUC = of P against correctness on the test split; calib = |mean P - mean score|;",
        "cost = |calibrated cost - true mean cost| / true. Routers: k = 16, "
        + ("with" if family else "without")
        + " the task-family prior.",
        "",
    ]
    lines += [
        "| configuration | router | AUC pooled | AUC arc | AUC gsm8k | calib arc | calib gsm8k "
        "| cost err |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        variants = [("full data", r["full"])] + [
            (f"onboarded, {n} q", m) for n, m in r["onboarded"].items()
        ]
        for label, m in variants:
            lines.append(
                f"| {name} | {label} | {m['auc_pooled']:.3f} | {m['auc[arc-challenge]']:.3f} | "
                f"{m['auc[gsm8k]']:.3f} | {m['calib_err[arc-challenge]']:.3f} | "
                f"{m['calib_err[gsm8k]']:.3f} | {m['cost_err']:.3f} |"
            )
    med = summary(rows)
    lines += ["", "Median over configurations at 200 questions:", ""]
    lines += [f"- {k}: {v}" for k, v in med.items()]
    return "\n".join(lines) + "\n"


def summary(rows: dict[str, Any]) -> dict[str, Any]:
    def med(f: Any) -> float:
        return round(float(np.median([f(r) for r in rows.values()])), 4)

    n = max(COUNTS)
    return {
        "AUC pooled, full data": med(lambda r: r["full"]["auc_pooled"]),
        f"AUC pooled, onboarded {n}": med(lambda r: r["onboarded"][n]["auc_pooled"]),
        f"AUC gap (full - onboarded {n})": med(
            lambda r: r["full"]["auc_pooled"] - r["onboarded"][n]["auc_pooled"]
        ),
        f"max calibration error per benchmark, onboarded {n}": med(
            lambda r: max(
                r["onboarded"][n]["calib_err[arc-challenge]"], r["onboarded"][n]["calib_err[gsm8k]"]
            )
        ),
        f"cost error, onboarded {n}": med(lambda r: r["onboarded"][n]["cost_err"]),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=len(PAIRS))
    ap.add_argument("--name", action="append", choices=list(PAIRS), help="only these (repeat)")
    ap.add_argument(
        "--merge", action="store_true", help="add to the existing report instead of replacing it"
    )
    ap.add_argument("--quick", action="store_true", help="one configuration")
    ap.add_argument(
        "--no-family",
        action="store_true",
        help="train both routers without the task-family prior (several times faster)",
    )
    args = ap.parse_args(argv)
    if not (SHARED / "item-bank.jsonl.gz").is_file():
        print(f"needs the shared data at {SHARED}; absent here")
        return 0
    arc, dc = _read("routerbench-arc.jsonl.gz"), _read("routerdc-7models.jsonl.gz")
    names = args.name or list(PAIRS)[: 1 if args.quick else args.pairs]
    rows: dict[str, Any] = {}
    old = REPORTS / "onboarding.json"
    if args.merge and old.is_file():
        rows = {
            k: {**v, "onboarded": {int(n): m for n, m in v["onboarded"].items()}}
            for k, v in json.loads(old.read_text())["configurations"].items()
        }
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            rows[name] = run_pair(name, arc, dc, Path(tmp), not args.no_family)
            print(name, json.dumps(rows[name]), flush=True)
    REPORTS.mkdir(parents=True, exist_ok=True)
    out = {
        "counts": COUNTS,
        "family_prior": not args.no_family,
        "configurations": rows,
        "median_at_200": summary(rows),
    }
    (REPORTS / "onboarding.json").write_text(json.dumps(out, indent=2) + "\n")
    (REPORTS / "onboarding.md").write_text(report_md(rows, not args.no_family))
    print(report_md(rows, not args.no_family))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
