"""Train a router from routing data files and write it as a router directory.

Steps: load the files (configurations of all files are simply more candidates; missing
scores are masked), split train/test (the data's own split, else 70/30 seed 42), embed the
prompts with the chosen encoder (cached on disk), sweep k and the head shape on a
validation share of the training items, refit the winner on all training items, measure
it on the test items, and export the heads (ONNX) with the router card.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from irtgate.lab.irt import family
from irtgate.lab.irt.data import RoutingData, load_routing_data, random_split, train_test_split
from irtgate.lab.irt.export import difficulty_from, export_router
from irtgate.lab.irt.metrics import routing_accuracy
from irtgate.lab.irt.model import IRTConfig, IRTModel
from irtgate.signals.irt.card import build_card, configurations_section, family_section, file_sha256

Progress = Callable[[Iterator[int]], Iterator[int]]


@dataclass
class TrainResult:
    out_dir: Path
    model: IRTModel
    card: dict[str, Any]
    sweep: list[dict[str, Any]] = field(default_factory=list)


def best_single(Y_train: np.ndarray, Y: np.ndarray, benchmarks: np.ndarray) -> float:
    """Routing accuracy of always picking the configuration best on the training items."""
    mean = np.nanmean(np.where(np.isnan(Y_train), np.nan, Y_train), axis=0)
    order = np.argsort(-np.nan_to_num(mean, nan=-1.0))
    # Per item, the first configuration in that order with a known score.
    P = np.broadcast_to(-np.argsort(order).astype(float), Y.shape)
    return routing_accuracy(P, Y, benchmarks)


def masked_bce(P: np.ndarray, Y: np.ndarray) -> float:
    M = ~np.isnan(Y)
    p = np.clip(P[M], 1e-7, 1 - 1e-7)
    y = Y[M]
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())


def auc(P: np.ndarray, Y: np.ndarray) -> float:
    """ROC AUC of P against binarised scores (score >= 0.5 counts as correct)."""
    from scipy.stats import rankdata

    M = ~np.isnan(Y)
    p, y = P[M], Y[M] >= 0.5
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    r = rankdata(p)
    return float((r[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def spearman_difficulty(model: IRTModel, X: np.ndarray, Y: np.ndarray) -> float:
    from irtgate.lab.irt.metrics import difficulty_spearman

    a, b = model.item_params(X)
    return difficulty_spearman(difficulty_from(a, b, model.abilities.mean(axis=0)), Y)


def _rows(all_ids: Sequence[str], part: RoutingData) -> np.ndarray:
    pos = {i: n for n, i in enumerate(all_ids)}
    return np.array([pos[i] for i in part.ids], dtype=np.int64)


def sweep(
    X: np.ndarray,
    data: RoutingData,
    grid: Sequence[dict[str, Any]],
    base: IRTConfig,
    *,
    seed: int = 0,
    on_step: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Fit each grid point on 85% of ``data`` and score it on the other 15%."""
    fit_part, val = random_split(data, frac=0.15, seed=seed)
    fi, vi = _rows(data.ids, fit_part), _rows(data.ids, val)
    rows = []
    for point in grid:
        t0 = time.perf_counter()
        m = IRTModel(base, **point)
        m.fit(X[fi], data.scores[fi])
        P = m.predict(X[vi])
        row = {
            **point,
            "val_routing_acc": round(routing_accuracy(P, val.scores, val.benchmarks), 3),
            "val_bce": round(masked_bce(P, val.scores), 5),
            "val_auc": round(auc(P, val.scores), 4),
            "epochs": m.history.best_epoch + 1,
            "seconds": round(time.perf_counter() - t0, 2),
        }
        rows.append(row)
        if on_step is not None:
            on_step(row)
    return rows


def pick(rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> dict[str, Any]:
    """Best grid point: highest validation routing accuracy, then lowest BCE."""
    best = max(rows, key=lambda r: (r["val_routing_acc"], -r["val_bce"]))
    return {k: best[k] for k in keys}


def choose_family(
    X: np.ndarray,
    Y: np.ndarray,
    groups: np.ndarray,
    cfg: IRTConfig,
    on_step: Callable[[str], None] | None = None,
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """The family prior's blend, regularisation and temperature, by cross-validation on the
    training items (:func:`irtgate.lab.irt.family.choose`) around the IRT model ``cfg``."""

    def fit_model(Xf: np.ndarray, Yf: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        m = IRTModel(cfg, family_blend=0.0)
        m.fit(Xf, Yf)
        return m.predict

    return family.choose(fit_model, X, Y, groups, on_step=on_step)


class FamilyCVIRT:
    """The IRT model with its family prior chosen as ``irtgate train`` chooses it (CV on the
    training items, :func:`choose_family`); the other hyper-parameters are given. Implements
    the evaluation ``Method`` protocol, so reports measure what training ships."""

    name = "irtgate"
    uses_groups = True

    def __init__(self, config: IRTConfig | None = None, **overrides: Any) -> None:
        self.config = IRTConfig(**{**(config or IRTConfig()).as_dict(), **overrides})
        self.model: IRTModel | None = None
        self.chosen: dict[str, float] = {}

    def fit(
        self,
        X: np.ndarray,
        Y: np.ndarray,
        costs: np.ndarray | None = None,
        *,
        groups: np.ndarray | None = None,
    ) -> None:
        del costs
        self.chosen = {"family_blend": 0.0}
        if groups is not None and len(np.unique(groups)) >= 2:
            self.chosen, _ = choose_family(X, Y, groups, self.config)
        self.model = IRTModel(self.config, **self.chosen)
        self.model.fit(X, Y, groups=groups)

    def _fitted(self) -> IRTModel:
        if self.model is None:
            raise RuntimeError("FamilyCVIRT is not fitted")
        return self.model

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self._fitted().predict(X)

    # The IRT read-out, for the difficulty metrics.
    def item_params(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._fitted().item_params(X)

    @property
    def abilities(self) -> np.ndarray:
        return self._fitted().abilities


# Share of the items held out when the data marks none as test.
HOLDOUT_FRAC = 0.2


def train_router(
    data_paths: Sequence[Path],
    out_dir: Path,
    *,
    encoder: str = "static",
    ks: Sequence[int] = (8, 16, 32),
    hiddens: Sequence[int] = (0,),
    base: IRTConfig | None = None,
    seed: int = 0,
    embed: Callable[[str, Sequence[str]], np.ndarray] | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
    notes: Sequence[str] = (),
    family: bool = True,
) -> TrainResult:
    """The whole pipeline; returns the fitted model and the card written to ``out_dir``."""
    t_start = time.perf_counter()
    base = base or IRTConfig(seed=seed)
    paths = [Path(p) for p in data_paths]
    data = load_routing_data(paths)
    train, test = train_test_split(data)
    split_note = "the data's train/test split; 70/30 seed 42 where it has none"
    if len(train) == 0:
        raise ValueError("the data has no train items: every item is marked split 'test'")
    if len(test) == 0:
        # Every item carries split "train": hold out a share of them, per benchmark, so the
        # card still reports held-out figures.
        train, test = train_test_split(
            dataclasses.replace(train, splits=np.full_like(train.splits, "")),
            test_frac=HOLDOUT_FRAC,
        )
        log(
            f"the data has no test items: holding out {HOLDOUT_FRAC:.0%} of its train items "
            f"per benchmark ({len(test)} items) for the held-out figures"
        )
        split_note = f"no item marked test: {HOLDOUT_FRAC:.0%} of the train items held out, seed 42"
    log(
        f"{len(data)} items, {len(data.configs)} configurations; train {len(train)}, "
        f"test {len(test)}"
    )

    if embed is None:
        from irtgate.lab.encoders.cache import embed_corpus

        def embed(name: str, texts: Sequence[str]) -> np.ndarray:
            return embed_corpus(name, texts, progress=progress)

    X = np.asarray(embed(encoder, list(data.prompts)), dtype=np.float64)
    Xtr, Xte = X[_rows(data.ids, train)], X[_rows(data.ids, test)]

    grid = [{"k": k, "hidden": h} for k in ks for h in hiddens]
    rows = sweep(Xtr, train, grid, base, seed=seed, on_step=lambda r: log(f"  sweep {r}"))
    chosen = pick(rows, ("k", "hidden"))
    log(f"chosen {chosen}")
    fam_cv: list[dict[str, Any]] = []
    if family and len(np.unique(train.benchmarks)) >= 2:
        fam_choice, fam_cv = choose_family(
            Xtr, train.scores, train.benchmarks, IRTConfig(**{**base.as_dict(), **chosen}), log
        )
        chosen = {**chosen, **fam_choice}
        log(f"family prior {fam_choice}")

    model = IRTModel(base, **chosen)
    bar: Progress | None = None
    if progress:
        from tqdm import tqdm

        def bar(it: Iterator[int]) -> Iterator[int]:
            return iter(tqdm(it, total=model.config.max_epochs, desc="training", unit="epoch"))

    model.fit(Xtr, train.scores, progress=bar, groups=train.benchmarks)
    P = model.predict(Xte)
    metrics: dict[str, Any] = {
        "test_items": len(test),
        "test_routing_acc": round(routing_accuracy(P, test.scores, test.benchmarks), 3),
        "test_best_single_acc": round(best_single(train.scores, test.scores, test.benchmarks), 3),
        "test_oracle_acc": round(
            routing_accuracy(np.nan_to_num(test.scores, nan=-1.0), test.scores, test.benchmarks), 3
        ),
        "test_bce": round(masked_bce(P, test.scores), 5),
        "test_auc": round(auc(P, test.scores), 4),
        "test_difficulty_spearman": round(spearman_difficulty(model, Xte, test.scores), 4),
    }
    log(f"test {metrics}")

    from irtgate.signals.irt.selection import known_costs

    # Unpriced configurations stay unknown (null) on the card: no stand-in price.
    exp_cost = known_costs(data.configs, data.costs)
    a, _ = model.item_params(Xtr)
    P_tr = model.predict_irt(Xtr)
    configs = configurations_section(
        data.configs,
        model.abilities,
        a.mean(axis=0),
        exp_cost,
        np.nanmean(np.where(np.isnan(train.scores), np.nan, P_tr), axis=0),
        np.nanmean(train.scores, axis=0),
    )
    enc_info = _encoder_info(encoder, X.shape[1])
    files = [{"name": p.name, "items": _count_items(p), "sha256": file_sha256(p)} for p in paths]
    card = build_card(
        configurations=configs,
        encoder=enc_info,
        training={
            "files": files,
            "n_items": len(data),
            "n_train": len(train),
            "n_test": len(test),
            "best_epoch": model.history.best_epoch,
            "epochs_run": len(model.history.train_loss),
            "seconds": round(time.perf_counter() - t_start, 1),
            "split": split_note,
        },
        hyperparameters=model.config.as_dict(),
        validation_sweep=rows,
        metrics=metrics,
        notes=list(notes),
        family_prior=None
        if model.family is None
        else family_section(
            model.family,
            data.configs,
            {k: v for k, v in chosen.items() if k.startswith("family_")},
            fam_cv,
        ),
    )
    export_router(model, out_dir, configs=data.configs, card=card)
    log(f"wrote {out_dir}")
    return TrainResult(out_dir, model, card, rows)


def _encoder_info(name: str, dim: int) -> dict[str, Any]:
    info: dict[str, Any] = {"name": name, "dim": dim}
    try:
        from irtgate.signals.encoders.artifact import read_artifact, shipped_path

        art = read_artifact(shipped_path(name), name)
        info["hash"] = art.fingerprint
        info["weights_sha256"] = art.weights_sha256
        info["window"] = art.window.to_json()
    except Exception as e:  # a custom encoder without a shipped artifact still trains
        info["hash"] = None
        info["note"] = f"artifact not inspected: {type(e).__name__}"
    return info


def _count_items(path: Path) -> int:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate-id warnings were shown on the first load
        return len(load_routing_data([path]))
