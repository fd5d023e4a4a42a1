"""The task-family prior: its arithmetic, its fit inside the IRT model, its choice by
cross-validation, and its ONNX export."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from irtgate.lab.irt import family as fam
from irtgate.lab.irt.model import IRTModel

NAN = np.nan


def _two_families(n: int = 240, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two well separated clusters: config 0 is right on family "a" items and config 1 on
    family "b" items, 85% of the time; config 2 is a coin flip everywhere."""
    rng = np.random.default_rng(seed)
    lab = np.array(["a", "b"] * (n // 2))
    centre = np.where(lab == "a", 1.0, -1.0)[:, None] * np.eye(6)[0]
    X = centre + 0.3 * rng.normal(size=(n, 6))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    Y = np.empty((n, 3))
    Y[:, 0] = np.where(lab == "a", rng.random(n) < 0.85, rng.random(n) < 0.15)
    Y[:, 1] = np.where(lab == "b", rng.random(n) < 0.85, rng.random(n) < 0.15)
    Y[:, 2] = rng.random(n) < 0.5
    return X, Y, lab


def test_posterior_and_p_by_hand() -> None:
    # Two families, two configurations; posterior = softmax(x·W + c).
    prior = fam.FamilyPrior(
        names=("f", "g"),
        W=np.array([[1.0, -1.0], [0.0, 0.0]]),
        c=np.array([0.0, 0.0]),
        table=np.array([[0.9, 0.2], [0.1, 0.6]]),
        observed=np.ones((2, 2), dtype=bool),
        counts=(3, 4),
    )
    x = np.array([[0.5, 7.0]])
    # logits (0.5, -0.5): posterior (e^1 / (1 + e^1), 1 / (1 + e^1)) = (0.7311, 0.2689)
    post = prior.posterior(x)
    assert post[0] == pytest.approx([0.731059, 0.268941], abs=1e-6)
    assert prior.p(x)[0] == pytest.approx(
        [0.731059 * 0.9 + 0.268941 * 0.1, 0.731059 * 0.2 + 0.268941 * 0.6], abs=1e-6
    )


def test_table_means_observed_scores_and_falls_back_where_none() -> None:
    Y = np.array([[1.0, NAN], [0.0, NAN], [0.5, 1.0], [NAN, 0.0]])
    lab = np.array(["x", "x", "y", "y"])
    fallback = np.array([[0.1, 0.3], [0.2, 0.5], [0.0, 0.0], [0.0, 0.0]])
    table, observed = fam.family_table(Y, lab, ("x", "y"), fallback)
    # x: config 0 observed (1 + 0) / 2; config 1 never observed -> mean fallback (0.3+0.5)/2.
    # y: config 0 observed once (0.5); config 1 (1 + 0) / 2.
    assert np.allclose(table, [[0.5, 0.4], [0.5, 0.5]])
    assert observed.tolist() == [[True, False], [True, True]]


def test_temperature_softens_without_changing_the_argmax() -> None:
    X, Y, lab = _two_families()
    sharp = fam.fit_prior(X, Y, lab, np.zeros_like(Y), C=10.0, temperature=1.0)
    soft = fam.fit_prior(X, Y, lab, np.zeros_like(Y), C=10.0, temperature=4.0)
    ps, pt = sharp.posterior(X), soft.posterior(X)
    assert (ps.argmax(1) == pt.argmax(1)).all()
    assert pt.max(1).mean() < ps.max(1).mean()
    assert sharp.counts == (120, 120) and sharp.names == ("a", "b")
    assert all(type(n) is str for n in sharp.names)  # the card is written with safe_dump


def test_one_family_is_refused() -> None:
    X, _, _ = _two_families()
    with pytest.raises(ValueError, match="at least two families"):
        fam.fit_classifier(X, np.array(["a"] * len(X)), 1.0)


def test_model_blends_the_prior_into_p() -> None:
    X, Y, lab = _two_families()
    kw = {"k": 2, "max_epochs": 15, "knn_p_blend": 0.0, "family_c": 10.0}
    plain = IRTModel(**kw)  # type: ignore[arg-type]
    plain.fit(X, Y, groups=lab)
    assert plain.family is None  # family_blend 0: off, whatever the groups
    m = IRTModel(**kw, family_blend=0.5)  # type: ignore[arg-type]
    m.fit(X, Y, groups=lab)
    assert m.family is not None
    # The IRT part is fitted first with the same seed, so it equals the plain model.
    want = 0.5 * plain.predict(X) + 0.5 * m.family.p(X)
    assert np.abs(m.predict(X) - want).max() < 1e-12
    # The table reads as the data: config 0 best on "a", config 1 on "b".
    assert m.family.table.argmax(axis=1).tolist() == [0, 1]
    # Without groups (or a single group) the prior stays off.
    m.fit(X, Y)
    assert m.family is None
    m.fit(X, Y, groups=np.array(["a"] * len(X)))
    assert m.family is None
    with pytest.raises(ValueError, match="one label per item"):
        m.fit(X, Y, groups=lab[:-1])


def test_choose_prefers_the_prior_when_families_decide() -> None:
    X, Y, lab = _two_families(360)
    # A model that knows nothing item-level: constant P. The prior is then all that helps.
    const = np.nanmean(Y, axis=0)

    def fit_model(Xf: np.ndarray, Yf: np.ndarray):  # type: ignore[no-untyped-def]
        return lambda Xq: np.tile(const, (len(Xq), 1))

    chosen, rows = fam.choose(fit_model, X, Y, lab, folds=3)
    assert chosen["family_blend"] > 0
    assert len(rows) == len(fam.BLENDS) * len(fam.CS) * len(fam.TEMPERATURES)
    best = max(r["score"] for r in rows)
    assert max(r["score"] for r in rows if r["family_blend"] == 0) < best
    # Two families: leaving one out leaves nothing to classify, so only CV scores count.
    assert all(r["held_out_family_acc"] is None for r in rows)


def test_choose_keeps_the_model_when_the_prior_cannot_help() -> None:
    # The winner is decided by the embedding inside each family, and the labels are
    # random: the family table is flat, so any weight on it only blurs a perfect model.
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 4))
    Y = np.stack([(X[:, 0] > 0), (X[:, 0] <= 0)], axis=1).astype(float)
    lab = rng.choice(["p", "q", "r"], size=300)

    def fit_model(Xf: np.ndarray, Yf: np.ndarray):  # type: ignore[no-untyped-def]
        return lambda Xq: np.stack([Xq[:, 0] > 0, Xq[:, 0] <= 0], axis=1).astype(float)

    chosen, rows = fam.choose(fit_model, X, Y, lab, folds=3)
    assert chosen["family_blend"] == 0.0
    assert all(r["held_out_family_acc"] is not None for r in rows)  # three families


def test_onnx_export_matches_numpy_and_outputs_the_posterior(tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from irtgate.lab.irt.export import HEADS_FILE, export_router

    X, Y, lab = _two_families()
    m = IRTModel(k=2, max_epochs=15, knn_p_blend=0.5, knn_p_k=9, family_blend=0.75)
    m.fit(X, Y, groups=lab)
    assert m.family is not None
    export_router(m, tmp_path, configs=["c0", "c1", "c2"], card={})
    sess = ort.InferenceSession(str(tmp_path / HEADS_FILE), providers=["CPUExecutionProvider"])
    assert [o.name for o in sess.get_outputs()] == [
        "difficulty",
        "discrimination",
        "p_correct",
        "family",
    ]
    Q = X[:40].astype(np.float32)
    p, post = sess.run(["p_correct", "family"], {"embedding": Q})
    assert np.abs(p - m.predict(Q)).max() < 1e-5
    assert np.abs(post - m.family.posterior(Q)).max() < 1e-5


def test_a_configuration_added_by_adaptive_testing_keeps_the_model_p(tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from irtgate.lab.irt.adaptive import add_configuration
    from irtgate.lab.irt.export import HEADS_FILE, export_router
    from irtgate.lab.irt.irt_math import sigmoid

    X, Y, lab = _two_families()
    m = IRTModel(k=2, max_epochs=15, knn_p_blend=0.0, family_blend=0.5)
    m.fit(X, Y, groups=lab)
    card = {"configurations": [{"name": c, "ability": [0.0, 0.0]} for c in ("c0", "c1", "c2")]}
    export_router(m, tmp_path / "r", configs=["c0", "c1", "c2"], card=card)
    theta = np.array([0.4, -0.2])
    add_configuration(tmp_path / "r", tmp_path / "r2", "new", theta, 0.1, {})
    Q = X[:30].astype(np.float32)
    old = ort.InferenceSession(str(tmp_path / "r" / HEADS_FILE), providers=["CPUExecutionProvider"])
    new = ort.InferenceSession(
        str(tmp_path / "r2" / HEADS_FILE), providers=["CPUExecutionProvider"]
    )
    (p_old,) = old.run(["p_correct"], {"embedding": Q})
    (p_new,) = new.run(["p_correct"], {"embedding": Q})
    assert np.abs(p_new[:, :3] - p_old).max() < 1e-6  # the others are untouched
    a, b = m.item_params(Q)
    # No family record for "new": its P is the IRT model's alone.
    assert np.abs(p_new[:, 3] - sigmoid(a @ theta - b)).max() < 1e-5


def test_route_and_show_explain_the_family(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("onnx")
    from irtgate.lab.encoders.cache import embed_corpus
    from irtgate.lab.irt.export import export_router
    from irtgate.lab.irt.train import _encoder_info
    from irtgate.server.cli import main
    from irtgate.signals.irt.card import family_section

    monkeypatch.chdir(tmp_path)  # the embedding cache goes under ./.cache
    maths = [
        f"Compute the integral of x to the power {i} over the unit interval." for i in range(40)
    ]
    words = [f"Translate sentence number {i} about the river into French." for i in range(40)]
    X = np.asarray(embed_corpus("static", maths + words, progress=False), dtype=np.float64)
    lab = np.array(["maths"] * 40 + ["words"] * 40)
    rng = np.random.default_rng(0)
    Y = np.stack([np.where(lab == "maths", 1.0, 0.0), rng.random(80) < 0.5], 1).astype(float)
    m = IRTModel(k=2, max_epochs=20, knn_p_blend=0.0, family_blend=0.5, family_c=10.0)
    m.fit(X, Y, groups=lab)
    assert m.family is not None
    configs = ["strong", "coin"]
    card = {
        "encoder": _encoder_info("static", X.shape[1]),
        "configurations": [
            {"name": c, "expected_cost": 1.0, "ability": m.abilities[i].tolist()}
            for i, c in enumerate(configs)
        ],
        "family_prior": family_section(m.family, configs, {"family_blend": 0.5}, []),
    }
    export_router(m, tmp_path / "r", configs=configs, card=card)
    assert main(["route", "Compute the integral of x cubed.", "--router", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "resembles   maths" in out  # the most likely family first
    assert main(["router", "show", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "family prior (blend 0.5" in out
    assert "maths (40 items): strong 1.00" in out


def test_family_cv_irt_is_what_training_ships() -> None:
    from irtgate.lab.irt.evaluate import irt_method
    from irtgate.lab.irt.train import FamilyCVIRT

    X, Y, lab = _two_families()
    m = irt_method({"k": 2, "max_epochs": 10, "knn_p_blend": 0.0, "family_blend": 0.9})
    assert isinstance(m, FamilyCVIRT)
    assert m.config.family_blend == 0.0  # a card's family settings are chosen again
    m.fit(X, Y, None)  # no benchmarks: the plain model
    assert m.chosen == {"family_blend": 0.0} and m.model is not None and m.model.family is None
    m.fit(X, Y, None, groups=lab)
    assert m.model is not None and m.model.config.family_blend == m.chosen["family_blend"]
    assert set(m.chosen) == {"family_blend", "family_c", "family_temperature"}
    assert m.predict(X).shape == (len(X), 3)
    a, b = m.item_params(X)  # the IRT read-out passes through, for the difficulty metrics
    assert a.shape == (len(X), 2) and b.shape == (len(X),)
    assert m.abilities.shape == (3, 2)


def test_a_family_scored_by_its_own_configurations_is_not_held_out() -> None:
    # Families "a" and "b" share configurations 0-2; family "z" is scored only by 3 and 4
    # (like two files with different candidates), so routing it from the rest means nothing.
    X, Y3, lab = _two_families(240)
    rng = np.random.default_rng(1)
    Y = np.full((300, 5), NAN)
    Y[:240, :3] = Y3
    Y[240:, 3:] = rng.random((60, 2)) < 0.5
    Xz = rng.normal(size=(60, 6))
    X = np.vstack([X, Xz / np.linalg.norm(Xz, axis=1, keepdims=True)])
    lab = np.concatenate([lab, ["z"] * 60])
    assert fam._comparable(Y, lab == "a") and not fam._comparable(Y, lab == "z")
    held: list[str] = []

    def fit_model(Xf: np.ndarray, Yf: np.ndarray):  # type: ignore[no-untyped-def]
        return lambda Xq: np.full((len(Xq), 5), 0.5)

    def step(msg: str) -> None:
        if msg.endswith("held out"):
            held.append(msg.split(": ")[1].split()[0])

    fam.choose(fit_model, X, Y, lab, folds=2, on_step=step)
    assert held == ["a", "b"]


def test_a_card_that_disagrees_with_the_graph_is_refused(tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    import yaml

    from irtgate.lab.irt.export import CARD_FILE, export_router
    from irtgate.signals.irt.card import family_section
    from irtgate.signals.irt.runtime import IRTRouter, RouterLoadError

    X, Y, lab = _two_families()
    m = IRTModel(k=2, max_epochs=5, knn_p_blend=0.0, family_blend=0.5)
    m.fit(X, Y, groups=lab)
    assert m.family is not None
    configs = ["c0", "c1", "c2"]
    prior = family_section(m.family, configs, {"family_blend": 0.5}, [])
    card: dict[str, Any] = {
        "encoder": {"name": "static"},
        "configurations": [{"name": c} for c in configs],
        "family_prior": prior,
    }
    export_router(m, tmp_path, configs=configs, card=card)
    assert IRTRouter.load(tmp_path).families == ("a", "b")
    prior["families"] = prior["families"][:1]
    (tmp_path / CARD_FILE).write_text(yaml.safe_dump(card), encoding="utf-8")
    with pytest.raises(RouterLoadError, match="graph has 2 families, card lists 1"):
        IRTRouter.load(tmp_path)
    del card["family_prior"]
    (tmp_path / CARD_FILE).write_text(yaml.safe_dump(card), encoding="utf-8")
    with pytest.raises(RouterLoadError, match="no family_prior list"):
        IRTRouter.load(tmp_path)
