"""Writing an evaluation report: ``report.json``, ``report.md`` and the fronts PNG."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# Columns of the summary table: (report key, header, format).
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("routerdc_accuracy", "RouterDC acc %", "{:.2f}"),
    ("aiq", "AIQ", "{:.4f}"),
    ("max_accuracy", "max acc", "{:.4f}"),
    ("cost_at_max_accuracy", "cost at max", "{:.4g}"),
    ("cost_to_reach_best_single", "cost to best single", "{:.4g}"),
    ("accuracy_within_budget", "acc within budget", "{:.4f}"),
    ("apgr", "APGR", "{:.3f}"),
    ("cpt50", "CPT50 %", "{:.1f}"),
    ("cpt80", "CPT80 %", "{:.1f}"),
    ("difficulty_spearman", "rho(1-mean P)", "{:.3f}"),
    ("difficulty_spearman_irt", "rho(IRT difficulty)", "{:.3f}"),
)


def _fmt(v: Any, fmt: str) -> str:
    if v is None:
        return "-"
    if isinstance(v, int | float):
        return fmt.format(v)
    return str(v)


def summary_rows(report: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and one row per method (predictors first, then baselines, then singles)."""
    methods: Mapping[str, Mapping[str, Any]] = report["methods"]
    cols = [c for c in COLUMNS if any(c[0] in m for m in methods.values())]
    rank = {"predictor": 0, "baseline": 1, "single": 2}
    names = sorted(methods, key=lambda k: (rank.get(methods[k]["kind"], 3), k))
    header = ["method", *[c[1] for c in cols]]
    rows = [[n, *[_fmt(methods[n].get(key), fmt) for key, _, fmt in cols]] for n in names]
    return header, rows


def render_markdown(report: Mapping[str, Any], title: str = "Router evaluation") -> str:
    header, rows = summary_rows(report)
    best = report["best_single"]
    lines = [
        f"# {title}",
        "",
        f"- data: {report.get('label') or '-'}; {report['n_train']} train / "
        f"{report['n_test']} test items; {len(report['configs'])} configurations",
        f"- cost: {report['cost_source']}",
        f"- best single configuration: {best['config']} (accuracy {best['accuracy']:.4f}, "
        f"cost {best['cost']:.4g})",
        f"- budget for 'acc within budget': {report['budget']['fraction_of_best_single_cost']:.0%}"
        f" of the best single's cost = {report['budget']['cost']:.4g}",
        "- RouterDC acc: accuracy of the argmax choice (cost ignored), averaged over benchmarks."
        " AIQ: area under the non-decreasing convex hull / max cost (RouterBench); predictors"
        " use the points of all three selection rules (linear, Chebyshev, cheapest with"
        " P >= target) over the sweep.",
    ]
    if report.get("pair"):
        pair = report["pair"]
        lines.append(f"- APGR/CPT (RouteLLM): weak {pair['weak']}, strong {pair['strong']}")
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    per = {
        k: v["routerdc_per_benchmark"]
        for k, v in report["methods"].items()
        if v["kind"] != "single" and "routerdc_per_benchmark" in v
    }
    if per:
        benches = sorted({b for d in per.values() for b in d})
        lines += ["", "Per benchmark (accuracy of the argmax choice, %):", ""]
        lines += ["| method | " + " | ".join(benches) + " |", "|" + "---|" * (len(benches) + 1)]
        for k, d in per.items():
            lines.append(f"| {k} | " + " | ".join(_fmt(d.get(b), "{:.2f}") for b in benches) + " |")
    return "\n".join(lines) + "\n"


def plot_fronts(report: Mapping[str, Any], path: Path, title: str = "") -> None:
    """Accuracy against cost: predictors' sweeps (linear and Chebyshev), baselines, singles."""
    import matplotlib
    import numpy as np

    from irtgate.lab.irt.metrics import nondecreasing_hull

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 6))
    methods: Mapping[str, Mapping[str, Any]] = report["methods"]
    costs: list[float] = []
    for name, m in methods.items():
        if m["kind"] == "predictor":
            # Every operating point of every rule, faint, and the hull AIQ measures, bold.
            pts = [(p[1], p[2]) for sw in m["sweep"].values() for p in sw if p[2] is not None]
            if not pts:
                continue
            xs, ys = zip(*pts, strict=True)
            hc, ha = nondecreasing_hull(np.array(xs), np.array(ys))
            lab = f"{name} (hull, AIQ {_fmt(m.get('aiq'), '{:.3f}')})"
            (line,) = ax.plot(hc, ha, "-", lw=1.8, label=lab)
            ax.scatter(xs, ys, s=5, alpha=0.35, color=line.get_color())
            costs += list(xs)
        elif m["kind"] == "single":
            ((c, a),) = m["points"]
            ax.scatter([c], [a], marker="x", color="grey")
            ax.annotate(name.removeprefix("single:").split("/")[-1], (c, a), fontsize=6)
            costs.append(c)
        else:
            pts = sorted((p[0], p[1]) for p in m["points"])
            xs, ys = zip(*pts, strict=True)
            style = "--" if len(pts) > 1 else "o"
            lab = f"{name} (AIQ {_fmt(m.get('aiq'), '{:.3f}')})"
            ax.plot(xs, ys, style, color="black" if name == "zero-router" else None, label=lab)
            costs += list(xs)
    pos = [c for c in costs if c > 0]
    if pos and max(pos) / min(pos) > 20:
        ax.set_xscale("log")
    ax.set_xlabel(
        "total cost on the test set" + (" (USD)" if report["cost_source"] == "data" else "")
    )
    ax.set_ylabel("mean score (accuracy)")
    full = title or f"Accuracy-cost fronts: {report.get('label', '')}"
    ax.set_title("\n".join(textwrap.wrap(full, 90)), fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_reports(
    report: Mapping[str, Any], out_dir: Path, *, stem: str = "report", title: str = ""
) -> list[Path]:
    """Write ``<stem>.json``, ``<stem>.md`` and ``<stem>.png`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    j, md, png = (out_dir / f"{stem}.{ext}" for ext in ("json", "md", "png"))
    j.write_text(json.dumps(report, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    md.write_text(render_markdown(report, title or "Router evaluation"), encoding="utf-8")
    plot_fronts(report, png, title)
    return [j, md, png]


def combined_markdown(sections: Sequence[tuple[str, Mapping[str, Any]]], title: str) -> str:
    """Several reports in one markdown file, one section each."""
    parts = [f"# {title}", ""]
    for name, rep in sections:
        parts.append(render_markdown(rep, name).replace("# ", "## ", 1))
    return "\n".join(parts)
