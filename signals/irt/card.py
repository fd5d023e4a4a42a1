"""The router card: what a trained router is, in a form a person can read (``router.yaml``).

The card is the single source of the router's metadata at serving time (configuration
names, expected costs, encoder), and documentation for people: abilities with a 1-D
summary, training data, hyper-parameters, the validation sweep and measured metrics.

An ``expected_cost`` of ``null`` means the training data priced that configuration
nowhere: it is unknown, and is shown and served as unknown, never as a stand-in price.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

CARD_VERSION = 1


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _r(x: float, nd: int = 4) -> float:
    return float(round(float(x), nd))


def configurations_section(
    configs: Sequence[str],
    theta: np.ndarray,
    mean_a: np.ndarray,
    expected_cost: Sequence[float] | np.ndarray,
    mean_p: Sequence[float] | np.ndarray,
    observed_acc: Sequence[float] | np.ndarray,
) -> list[dict[str, Any]]:
    """Per configuration: ability vector, its norm, and two 1-D summaries.

    ``strength`` is ``ā·θ_g``: the configuration's logit on an item of average
    discrimination, so configurations sort by it the way they would on a typical query.
    ``mean_p_train`` is the mean predicted P(correct) over the training items, and
    ``observed_accuracy`` the mean observed score there, to compare the two.
    """
    out = []
    for i, name in enumerate(configs):
        cost = float(expected_cost[i])
        out.append(
            {
                "name": name,
                "expected_cost": None if not np.isfinite(cost) else float(f"{cost:.6g}"),
                "strength": _r(float(mean_a @ theta[i])),
                "mean_p_train": _r(mean_p[i]),
                "observed_accuracy": _r(observed_acc[i]),
                "ability_norm": _r(float(np.linalg.norm(theta[i]))),
                "ability": [_r(v) for v in theta[i]],
            }
        )
    return out


def family_section(
    prior: Any, configs: Sequence[str], chosen: Mapping[str, float], cv: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """The task-family prior (:mod:`irtgate.lab.irt.family`) for people: per training benchmark,
    each configuration's mean score there (``predicted`` marks entries that are the model's
    mean P because the data has no score), the chosen blend and the CV table behind it."""
    fams = []
    for f, name in enumerate(prior.names):
        fams.append(
            {
                "name": name,
                "train_items": prior.counts[f],
                "mean_score": {c: _r(prior.table[f, g], 3) for g, c in enumerate(configs)},
                "predicted": [c for g, c in enumerate(configs) if not prior.observed[f, g]],
            }
        )
    return {
        "what": "P = (1 - blend)·P_model + blend·posterior(benchmark | query)·mean_score",
        **{k: float(v) for k, v in chosen.items()},
        "families": fams,
        "cross_validation": [dict(r) for r in cv],
    }


def build_card(
    *,
    configurations: list[dict[str, Any]],
    encoder: Mapping[str, Any],
    training: Mapping[str, Any],
    hyperparameters: Mapping[str, Any],
    validation_sweep: Sequence[Mapping[str, Any]] = (),
    metrics: Mapping[str, Any] | None = None,
    notes: Sequence[str] = (),
    name: str = "irtgate-router",
    family_prior: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    card = {
        "card_version": CARD_VERSION,
        "name": name,
        "created": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "model": "2PL multidimensional IRT on frozen embeddings: "
        "P(correct) = sigmoid(a(e)·theta_g - b(e)); difficulty reported as b - a·mean(theta)",
        "encoder": dict(encoder),
        "configurations": configurations,
        "training": dict(training),
        "hyperparameters": dict(hyperparameters),
        "validation_sweep": [dict(r) for r in validation_sweep],
        "metrics": dict(metrics or {}),
        "notes": list(notes),
    }
    if family_prior is not None:
        card["family_prior"] = dict(family_prior)
    return card


def render_card(card: Mapping[str, Any]) -> str:
    """A plain-text view of a card for ``irtgate router show``."""
    lines: list[str] = []
    enc = card.get("encoder", {})
    lines.append(f"router   {card.get('name', '?')}  (created {card.get('created', '?')})")
    lines.append(f"model    {card.get('model', '?')}")
    lines.append(
        f"encoder  {enc.get('name', '?')}  dim={enc.get('dim', '?')}  "
        f"hash={str(enc.get('hash', '?'))[:16]}"
    )
    hp = card.get("hyperparameters", {})
    if hp:
        lines.append("hyper    " + ", ".join(f"{k}={v}" for k, v in hp.items()))
    cfgs = sorted(card.get("configurations", []), key=lambda c: -_num(c, "strength", -1e9))
    lines.append("")
    lines.append("configurations (strongest first; strength = logit on an average item)")
    w = max((len(str(c.get("name", ""))) for c in cfgs), default=4)
    lines.append(
        f"  {'name':<{w}}  {'strength':>8}  {'meanP':>6}  {'obs':>6}  {'|θ|':>6}  "
        f"{'cost $':>10}  ability θ"
    )
    for c in cfgs:
        cost = c.get("expected_cost")
        cost_s = "unknown" if cost is None else f"{float(cost):.3g}"
        theta = " ".join(f"{v:+.2f}" for v in c.get("ability", []))
        lines.append(
            f"  {c['name']:<{w}}  {_cell(c, 'strength', 8)}  {_cell(c, 'mean_p_train', 6)}  "
            f"{_cell(c, 'observed_accuracy', 6)}  {_cell(c, 'ability_norm', 6)}  "
            f"{cost_s:>10}  {theta}"
        )
    calibrated = [c for c in cfgs if isinstance(c.get("calibration"), Mapping)]
    if calibrated:
        lines.append("")
        lines.append("calibrated without retraining (adaptive testing)")
        for c in calibrated:
            lines.append(f"  {c['name']}: {_fmt(dict(c['calibration']))}")
    tr = card.get("training", {})
    if tr:
        lines.append("")
        lines.append("training data")
        for f in tr.get("files", []):
            lines.append(
                f"  {f.get('name')}: {f.get('items')} items, sha256 {f.get('sha256', '')[:12]}"
            )
        for k in ("n_items", "n_fit", "n_val", "best_epoch", "epochs_run", "seconds"):
            if k in tr:
                lines.append(f"  {k}: {tr[k]}")
    sweep = card.get("validation_sweep", [])
    if sweep:
        lines.append("")
        lines.append("validation sweep")
        keys = list(sweep[0].keys())
        lines.append("  " + "  ".join(f"{k:>10}" for k in keys))
        for r in sweep:
            lines.append("  " + "  ".join(f"{_fmt(r.get(k)):>10}" for k in keys))
    fp = card.get("family_prior")
    if isinstance(fp, Mapping) and fp.get("families"):
        lines.append("")
        lines.append(
            f"family prior (blend {fp.get('family_blend')}, temperature "
            f"{fp.get('family_temperature')}): mean score per training benchmark, best first; "
            "* = no score in the data, the model's mean P"
        )
        for fam in fp["families"]:
            ms = fam.get("mean_score", {})
            pred = set(fam.get("predicted", []))
            top = sorted(ms.items(), key=lambda kv: -float(kv[1]))[:3]
            best = ", ".join(f"{c} {float(v):.2f}{'*' if c in pred else ''}" for c, v in top)
            lines.append(f"  {fam.get('name')} ({fam.get('train_items')} items): {best}")
    met = card.get("metrics", {})
    if met:
        lines.append("")
        lines.append("metrics")
        for k, v in met.items():
            lines.append(f"  {k}: {_fmt(v)}")
    notes = card.get("notes", [])
    if notes:
        lines.append("")
        lines.append("notes")
        lines.extend(f"  - {n}" for n in notes)
    return "\n".join(lines)


def _num(c: Mapping[str, Any], key: str, default: float) -> float:
    v = c.get(key)
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else default


def _cell(c: Mapping[str, Any], key: str, width: int) -> str:
    """A number of a configuration's row; ``n/a`` where the card has none (a configuration
    added by calibration has no training-set figures)."""
    v = _num(c, key, float("nan"))
    return f"{'n/a':>{width}}" if v != v else f"{v:>{width}.3f}"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, Mapping):
        return ", ".join(f"{k}={_fmt(x)}" for k, x in v.items())
    return str(v)
