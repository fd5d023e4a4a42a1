"""Router quality on the shared data: irtgate against the baselines, in one run.

1. RouterDC's protocol on ``routerdc-7models`` (train on the train splits of MMLU, GSM8K,
   CMMLU, ARC-Challenge, HumanEval; test ID on their test splits and OOD on MATH
   prealgebra, MBPP, C-Eval): accuracy of the argmax choice, averaged over benchmarks.
2. ``routerbench-arc`` with its split and its costs: AIQ per method, the accuracy reached
   for <= 15% of GPT-4's cost, the cost to reach GPT-4's accuracy; RouteLLM's APGR/CPT on
   the (mistral-7b-chat, gpt-4) pair.
3. "What we tried": variants of the IRT router (listwise weight, seed ensemble, kNN blend
   chosen by CV, Platt calibration, an ensemble with the baselines, few-shot prompts
   embedded from their question block), each retrained on the same splits, with the
   per-benchmark hindsight reference and the AUC of P per configuration on ARC
   (``--no-tried`` skips it; docs/router.md, "What we tried").

Every method sees the same embeddings of the same prompts. Writes
``benchmarks/reports/router_quality.{json,md,png}`` (the PNG: the ARC accuracy-cost fronts)
plus one PNG per other section. Needs ../shared/data; exits with a message where absent.

    .venv/bin/python benchmarks/router_quality.py [--encoder static] [--encoder minilm]
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
REPORTS = REPO / "benchmarks" / "reports"
DEFAULT_ROUTER = REPO / "signals" / "artifacts" / "routers" / "default" / "router.yaml"
ARC_PAIR = ("mistralai/mistral-7b-chat", "gpt-4-1106-preview")

# Published / reference figures (notes/papers.md, data README) printed beside ours.
REFERENCE = {
    "routerdc_id": {"RouterDC (published)": 58.54, "kNN k=200 MiniLM (issue)": 57.3},
    "routerdc_ood": {"RouterDC (published)": 45.85, "kNN k=200 MiniLM (issue)": 44.9},
}


def _irt_hyper() -> dict[str, Any]:
    # The shipped router's hyper-parameters, when the IRT model has been trained and shipped.
    if not DEFAULT_ROUTER.is_file():
        return {}
    import yaml

    card = yaml.safe_load(DEFAULT_ROUTER.read_text(encoding="utf-8"))
    hp = card.get("hyperparameters") if isinstance(card, dict) else None
    return dict(hp) if isinstance(hp, dict) else {}


def _methods(encoder: str, hyper: dict[str, Any], configs: tuple[str, ...]) -> list[Any]:
    """The learned methods, plus the shipped default router as it is when it was trained
    with this encoder (on the train splits of both files: not RouterDC's training set)."""
    from irtgate.lab.irt import evaluate as ev

    methods: list[Any] = ev.default_methods(irt_hyperparameters=hyper)
    if DEFAULT_ROUTER.is_file():
        import yaml

        card = yaml.safe_load(DEFAULT_ROUTER.read_text(encoding="utf-8"))
        if (card.get("encoder") or {}).get("name") == encoder:
            try:
                methods.append(ev.ShippedRouter(DEFAULT_ROUTER.parent, configs))
            except ValueError as e:
                print(f"router_quality: shipped router left out: {e}")
    return methods


def _variant_methods(hyper: dict[str, Any]) -> list[Any]:
    """The levers tried against the shipped configuration (docs/router.md, "What we tried").
    Everything they choose, they choose on the training items."""
    from dataclasses import fields

    from irtgate.lab.irt import baselines as bl
    from irtgate.lab.irt import variants as va
    from irtgate.lab.irt.model import IRTConfig, IRTModel

    known = {f.name for f in fields(IRTConfig)}
    hp = {k: v for k, v in hyper.items() if k in known}

    def irt(name: str, **kw: Any) -> IRTModel:
        m = IRTModel(**{**hp, **kw})
        m.name = name
        return m

    return [
        irt("irtgate (shipped hyper-parameters)"),
        irt("without the family prior", family_blend=0.0),
        irt(
            "family prior alone (blend 1, C 10, T 1)",
            family_blend=1.0,
            family_c=10.0,
            family_temperature=1.0,
        ),
        irt("listwise weight 2", rank_weight=2.0),
        irt("k 8, listwise weight 2", k=8, rank_weight=2.0),
        va.MeanEnsemble("mean P of 3 seeds", [irt(f"seed {s}", seed=s) for s in (0, 1, 2)]),
        va.CVBlendIRT(hp, name="kNN blend (beta, k) by 5-fold CV"),
        va.PlattIRT(hp, name="Platt-calibrated P (15% validation)"),
        va.MeanEnsemble(
            "mean P of irtgate, kNN, logistic, MLP, MF",
            [irt("irtgate"), *bl.default_predictors(0)],
        ),
    ]


def _hindsight_best_per_benchmark(test: Any) -> float:
    """Accuracy of the best single configuration of each test benchmark, chosen on the test
    labels, averaged. Not a router, and not a ceiling either: a router may mix
    configurations within a benchmark (the family prior alone does, on HumanEval)."""
    import numpy as np

    per = []
    for b in np.unique(test.benchmarks):
        S = np.nan_to_num(test.scores[test.benchmarks == b])
        per.append(float(S.mean(axis=0).max()) * 100)
    return float(np.mean(per))


def tried_variants(
    encoder: str,
    hyper: dict[str, Any],
    rdc: tuple[Any, ...],
    arc: tuple[Any, ...],
    *,
    progress: bool,
) -> dict[str, Any]:
    """Every lever of docs/router.md's "What we tried", measured in this run on the same
    splits: RouterDC ID/OOD accuracy and the ARC cost figures per variant."""
    import numpy as np

    from irtgate.lab.encoders.cache import embed_corpus
    from irtgate.lab.encoders.fewshot import question_block
    from irtgate.lab.irt import evaluate as ev
    from irtgate.lab.irt.baselines import KNNRouter
    from irtgate.lab.irt.train import auc

    train, test_id, test_ood, X_tr, X_id, X_ood = rdc
    a_tr, a_te, Xa_tr, Xa_te = arc
    rows: dict[str, dict[str, Any]] = {}

    def collect(rid: Any, rood: Any, rarc: Any, suffix: str = "") -> None:
        for name, e in rarc["methods"].items():
            if e["kind"] != "predictor":
                continue
            rows[name + suffix] = {
                "routerdc_id": rid["methods"][name]["routerdc_accuracy"],
                "routerdc_ood": rood["methods"][name]["routerdc_accuracy"],
                "arc_aiq": e["aiq"],
                "arc_acc_within_15pct_gpt4_cost": e["accuracy_within_budget"],
                "arc_cost_to_reach_gpt4": e["cost_to_reach_best_single"],
                "arc_max_acc": e["max_accuracy"],
            }

    def three(methods_rdc: list[Any], methods_arc: list[Any], Xs: tuple[Any, ...]) -> Any:
        x_tr, x_id, x_ood, xa_tr, xa_te = Xs
        rid = ev.evaluate(train, test_id, x_tr, x_id, methods_rdc, progress=progress)
        rood = ev.evaluate(train, test_ood, x_tr, x_ood, methods_rdc, fitted=True)
        rarc = ev.evaluate(a_tr, a_te, xa_tr, xa_te, methods_arc, progress=progress)
        return rid, rood, rarc

    t0 = time.perf_counter()
    rdc_methods, arc_methods = _variant_methods(hyper), _variant_methods(hyper)
    collect(*three(rdc_methods, arc_methods, (X_tr, X_id, X_ood, Xa_tr, Xa_te)))
    cv = {
        "routerdc": getattr(rdc_methods[6], "chosen", None),
        "arc": getattr(arc_methods[6], "chosen", None),
    }
    # Why the ARC budget target is missed: how well P ranks each configuration's right and
    # wrong answers on the ARC test items (0.5 = no better than chance).
    P = arc_methods[0].predict(Xa_te)
    arc_auc = {}
    for g, cfg in enumerate(a_te.configs):
        ok = ~np.isnan(a_te.scores[:, g])
        arc_auc[cfg] = auc(P[ok][:, [g]], a_te.scores[ok][:, [g]])

    # Few-shot prompts embedded from their question block (solved examples dropped), at
    # training and test time alike.
    def qb(d: Any) -> np.ndarray:
        texts = [question_block(t) for t in d.prompts]
        return np.asarray(embed_corpus(encoder, texts, progress=progress), dtype=np.float32)

    def q_methods() -> list[Any]:
        m = _variant_methods(hyper)[0]
        m.name = "question block only (few-shot examples dropped)"
        knn = KNNRouter()
        knn.name = "kNN, question block only"
        return [m, knn]

    changed = sum(question_block(t) != t for d in (train, test_id, test_ood) for t in d.prompts)
    collect(
        *three(
            q_methods(), q_methods(), tuple(qb(d) for d in (train, test_id, test_ood, a_tr, a_te))
        )
    )
    return {
        "rows": rows,
        "cv_chosen_knn_blend": cv,
        "arc_auc_per_config": arc_auc,
        "routerdc_prompts_changed_by_question_block": changed,
        "hindsight_best_per_benchmark": {
            "routerdc_id": _hindsight_best_per_benchmark(test_id),
            "routerdc_ood": _hindsight_best_per_benchmark(test_ood),
        },
        "seconds": time.perf_counter() - t0,
    }


def run(encoder: str, progress: bool, tried: bool = True) -> dict[str, Any]:
    from irtgate.lab.irt import evaluate as ev
    from irtgate.lab.irt.data import load_routing_data, routerdc_protocol, with_configs
    from irtgate.lab.irt.data import train_test_split as tts
    from irtgate.lab.irt.report import plot_fronts

    out: dict[str, Any] = {"encoder": encoder, "irt_hyperparameters": _irt_hyper()}
    # -- RouterDC protocol ------------------------------------------------------------------
    rdc = load_routing_data([SHARED / "routerdc-7models.jsonl.gz"])
    train, test_id, test_ood = routerdc_protocol(rdc)
    X_tr, X_id, X_ood = ev.embed_items(encoder, [train, test_id, test_ood], progress=progress)
    methods = _methods(encoder, out["irt_hyperparameters"], rdc.configs)
    t0 = time.perf_counter()
    out["routerdc_id"] = ev.evaluate(
        train,
        test_id,
        X_tr,
        X_id,
        methods,
        progress=progress,
        label=f"routerdc-7models, RouterDC protocol ID ({encoder})",
    )
    out["routerdc_ood"] = ev.evaluate(
        train,
        test_ood,
        X_tr,
        X_ood,
        methods,
        progress=progress,
        fitted=True,
        label=f"routerdc-7models, RouterDC protocol OOD ({encoder})",
    )
    out["routerdc_seconds"] = time.perf_counter() - t0
    # -- RouterBench ARC-Challenge, with costs ----------------------------------------------
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its 14 repeated ids are distinct items, kept
        arc = load_routing_data([SHARED / "routerbench-arc.jsonl.gz"])
    a_tr, a_te = tts(arc)
    Xa_tr, Xa_te = ev.embed_items(encoder, [a_tr, a_te], progress=progress)
    out["arc"] = ev.evaluate(
        a_tr,
        a_te,
        Xa_tr,
        Xa_te,
        _methods(encoder, out["irt_hyperparameters"], arc.configs),
        progress=progress,
        label=f"routerbench-arc, its split, with costs ({encoder})",
    )
    p_tr, p_te = with_configs(a_tr, ARC_PAIR), with_configs(a_te, ARC_PAIR)
    out["arc_pair"] = ev.evaluate(
        p_tr,
        p_te,
        Xa_tr,
        Xa_te,
        _methods(encoder, out["irt_hyperparameters"], ARC_PAIR),
        progress=progress,
        label=f"routerbench-arc, {ARC_PAIR[0]} vs {ARC_PAIR[1]} ({encoder})",
    )
    if tried:
        out["tried"] = tried_variants(
            encoder,
            out["irt_hyperparameters"],
            (train, test_id, test_ood, X_tr, X_id, X_ood),
            (a_tr, a_te, Xa_tr, Xa_te),
            progress=progress,
        )
    stem = "router_quality" if encoder == "static" else f"router_quality_{encoder}"
    plot_fronts(out["arc"], REPORTS / f"{stem}.png")
    for key in ("routerdc_id", "routerdc_ood", "arc_pair"):
        plot_fronts(out[key], REPORTS / f"{stem}_{key}.png")
    return out


def headline(res: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per learned method (plus oracle / zero router / best single) with the
    figures the issue asks for."""
    rid, rood, arc, pair = (
        res[k]["methods"] for k in ("routerdc_id", "routerdc_ood", "arc", "arc_pair")
    )

    # RouterDC's "best single" is the best benchmark-averaged accuracy, not item-averaged.
    def best_single(ms: dict[str, Any]) -> str:
        singles = [k for k, v in ms.items() if v["kind"] == "single"]
        return max(singles, key=lambda k: ms[k]["routerdc_accuracy"]).removeprefix("single:")

    best_id, best_ood = best_single(rid), best_single(rood)
    names = [k for k, v in rid.items() if v["kind"] == "predictor"] + [
        "oracle",
        "zero-router",
        "random",
    ]
    rows = []
    for n in names:
        rows.append(
            {
                "method": n,
                "routerdc_id": rid[n].get("routerdc_accuracy"),
                "routerdc_ood": rood[n].get("routerdc_accuracy"),
                "arc_aiq": arc[n].get("aiq"),
                "arc_acc_within_15pct_gpt4_cost": arc[n].get("accuracy_within_budget"),
                "arc_cost_to_reach_gpt4": arc[n].get("cost_to_reach_best_single"),
                "arc_max_acc": arc[n].get("max_accuracy"),
                "arc_pair_apgr": pair[n].get("apgr"),
                "arc_pair_cpt50": pair[n].get("cpt50"),
                "arc_pair_cpt80": pair[n].get("cpt80"),
                "difficulty_spearman_id": rid[n].get(
                    "difficulty_spearman_irt", rid[n].get("difficulty_spearman")
                ),
                "difficulty_spearman_ood": rood[n].get(
                    "difficulty_spearman_irt", rood[n].get("difficulty_spearman")
                ),
            }
        )
    rows.append(
        {
            "method": f"best single (ID {best_id.split('/')[-1]}, OOD {best_ood.split('/')[-1]})",
            "routerdc_id": rid[f"single:{best_id}"]["routerdc_accuracy"],
            "routerdc_ood": rood[f"single:{best_ood}"]["routerdc_accuracy"],
            "arc_aiq": arc[f"single:{res['arc']['best_single']['config']}"]["aiq"],
            "arc_max_acc": res["arc"]["best_single"]["accuracy"],
            "arc_cost_to_reach_gpt4": res["arc"]["best_single"]["cost"],
        }
    )
    return rows


def _f(v: Any, fmt: str) -> str:
    return "-" if v is None else fmt.format(v)


def markdown(results: dict[str, dict[str, Any]]) -> str:
    from irtgate.lab.irt.report import render_markdown

    lines = [
        "# Router quality",
        "",
        "Produced by `benchmarks/router_quality.py` on `../shared/data`; every method in one",
        "run on the same split and the same embeddings. RouterDC columns: accuracy (%) of the",
        "argmax choice averaged over benchmarks (RouterDC's protocol; published RouterDC",
        "58.54 ID / 45.85 OOD; target >= 60 / >= 47). ARC: routerbench-arc test (445 items,",
        "GPT-4 alone 0.944 for $2.25); AIQ as RouterBench's code; 'acc <= 15%' is the best",
        "accuracy among a method's operating points costing <= 15% of GPT-4's cost (target",
        ">= 0.944). APGR/CPT: RouteLLM, on the mistral-7b-chat / GPT-4 pair. Spearman:",
        "predicted difficulty (for irtgate its IRT difficulty b - a·mean(θ), otherwise",
        "1 - mean P) against the share of configurations that fail, on the test items.",
        "Operating points: 41 values of w with linear and Chebyshev selection, and the same",
        "values as targets for 'cheapest with P >= target'. `irtgate` is the IRT model",
        "retrained here on each protocol's training set with the shipped router's",
        "hyper-parameters, its task-family prior chosen by cross-validation on that training",
        "set as `irtgate train` chooses it; `irtgate-shipped` is the default router as shipped",
        "(trained on the",
        "train splits of both files, so on more than RouterDC's five ID benchmarks).",
        "",
    ]
    for enc, res in results.items():
        lines += [
            f"## Encoder `{enc}`",
            "",
            "| method | RouterDC ID | RouterDC OOD | ARC AIQ | ARC acc <= 15% | ARC cost to 0.944 "
            "| ARC max acc | APGR | CPT50 % | CPT80 % | rho ID | rho OOD |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in headline(res):
            lines.append(
                f"| {r['method']} | {_f(r.get('routerdc_id'), '{:.2f}')} "
                f"| {_f(r.get('routerdc_ood'), '{:.2f}')} | {_f(r.get('arc_aiq'), '{:.4f}')} "
                f"| {_f(r.get('arc_acc_within_15pct_gpt4_cost'), '{:.4f}')} "
                f"| {_f(r.get('arc_cost_to_reach_gpt4'), '${:.3f}')} "
                f"| {_f(r.get('arc_max_acc'), '{:.4f}')} | {_f(r.get('arc_pair_apgr'), '{:.3f}')} "
                f"| {_f(r.get('arc_pair_cpt50'), '{:.1f}')} "
                f"| {_f(r.get('arc_pair_cpt80'), '{:.1f}')} "
                f"| {_f(r.get('difficulty_spearman_id'), '{:.3f}')} "
                f"| {_f(r.get('difficulty_spearman_ood'), '{:.3f}')} |"
            )
        knn = res["routerdc_id"]["methods"]["knn"].get("chosen_k")
        lines += [
            "",
            f"kNN's k chosen on validation: {knn}. Run time of the RouterDC part: "
            f"{res['routerdc_seconds']:.0f} s.",
            "",
        ]
        if "tried" in res:
            lines += tried_markdown(res["tried"], enc)
        for key in ("routerdc_id", "routerdc_ood", "arc", "arc_pair"):
            lines.append(render_markdown(res[key], res[key]["label"]).replace("# ", "### ", 1))
    return "\n".join(lines) + "\n"


def tried_markdown(t: dict[str, Any], enc: str) -> list[str]:
    """The "What we tried" table of one encoder."""
    hb = t["hindsight_best_per_benchmark"]
    lines = [
        f"### What we tried ({enc})",
        "",
        "Variants of the IRT router, each retrained here on the same splits; everything a",
        "variant chooses it chooses on the training items (no test-set tuning).",
        "",
        "| variant | RouterDC ID | RouterDC OOD | ARC AIQ | ARC acc <= 15% | ARC cost to 0.944 "
        "| ARC max acc |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in t["rows"].items():
        lines.append(
            f"| {name} | {_f(r['routerdc_id'], '{:.2f}')} | {_f(r['routerdc_ood'], '{:.2f}')} "
            f"| {_f(r['arc_aiq'], '{:.4f}')} "
            f"| {_f(r['arc_acc_within_15pct_gpt4_cost'], '{:.4f}')} "
            f"| {_f(r['arc_cost_to_reach_gpt4'], '${:.3f}')} | {_f(r['arc_max_acc'], '{:.4f}')} |"
        )
    lines.append(
        f"| reference: best configuration per test benchmark, chosen on the test labels "
        f"(not a router) | {hb['routerdc_id']:.2f} | {hb['routerdc_ood']:.2f} | | | | |"
    )
    cv = t["cv_chosen_knn_blend"]
    aucs = ", ".join(
        f"{k.split('/')[-1]} {_f(v, '{:.3f}')}" for k, v in t["arc_auc_per_config"].items()
    )
    lines += [
        "",
        f"kNN blend chosen by CV: RouterDC {cv['routerdc']}, ARC {cv['arc']}. The question-block "
        f"variant changes every routerbench-arc prompt and "
        f"{t['routerdc_prompts_changed_by_question_block']} routerdc-7models prompts. "
        f"AUC of irtgate's P per configuration on the ARC test items: {aucs}. "
        f"Run time of this section: {t['seconds']:.0f} s.",
        "",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--encoder",
        action="append",
        choices=["static", "minilm"],
        help="encoder(s) to run (default: static)",
    )
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    ap.add_argument("--no-tried", action="store_true", help="skip the variants of 'What we tried'")
    args = ap.parse_args(argv)
    if not (SHARED / "routerdc-7models.jsonl.gz").is_file():
        print(f"router_quality: needs the shared routing data at {SHARED}; not found, skipped")
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    REPORTS.mkdir(parents=True, exist_ok=True)
    results = {
        enc: run(enc, not args.quiet, not args.no_tried) for enc in (args.encoder or ["static"])
    }
    (REPORTS / "router_quality.json").write_text(
        json.dumps({"encoders": results}, indent=1) + "\n", encoding="utf-8"
    )
    md = markdown(results)
    (REPORTS / "router_quality.md").write_text(md, encoding="utf-8")
    print(md.split("### ")[0])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
