"""Serving: loading router directories (the shipped default included) and predicting."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from irtgate.lab.irt.export import export_router, numpy_outputs
from irtgate.lab.irt.model import IRTModel
from irtgate.signals.irt.router_api import RouterScores
from irtgate.signals.irt.runtime import DEFAULT_ROUTER_DIR, IRTRouter, RouterLoadError

pytest.importorskip("onnx")


def _router(tmp_path: Path) -> tuple[IRTRouter, IRTModel]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 10))
    Y = rng.random((200, 3))
    m = IRTModel(k=2, max_epochs=10, knn_p_blend=0.0)
    m.fit(X, Y)
    configs = ["small", "medium", "large"]
    card = {
        "encoder": {"name": "static", "hash": "x"},
        "configurations": [
            {"name": c, "expected_cost": cost, "ability": m.abilities[i].tolist()}
            for i, (c, cost) in enumerate(zip(configs, [0.1, 1.0, 10.0], strict=True))
        ],
    }
    export_router(m, tmp_path, configs=configs, card=card)
    return IRTRouter.load(tmp_path), m


def test_predict_matches_the_model(tmp_path: Path) -> None:
    r, m = _router(tmp_path)
    assert r.configs == ("small", "medium", "large")
    assert r.expected_cost["large"] == 10.0
    assert r.encoder_name == "static"
    e = np.random.default_rng(5).normal(size=10).astype(np.float32)
    pred = r.score(e)
    assert isinstance(pred, RouterScores)
    want_d, want_a, want_p = numpy_outputs(m, e[None, :])
    assert pred.difficulty == pytest.approx(float(want_d[0]), abs=1e-5)
    assert pred.discrimination == pytest.approx(float(np.linalg.norm(want_a[0])), abs=1e-5)
    assert [pred.p[c] for c in r.configs] == pytest.approx(want_p[0].tolist(), abs=1e-5)
    assert pred.best() == r.configs[int(np.argmax(want_p[0]))]
    d, a, p = r.predict_batch(np.stack([e, e]))
    assert d.shape == (2,) and a.shape == (2,) and p.shape == (2, 3)


def test_bad_embeddings_get_clear_errors(tmp_path: Path) -> None:
    r, _ = _router(tmp_path)
    with pytest.raises(ValueError, match=r"shape \(n, 10\)"):
        r.score(np.zeros(7, dtype=np.float32))
    with pytest.raises(ValueError, match="NaN"):
        r.score(np.full(10, np.nan, dtype=np.float32))
    with pytest.raises(ValueError, match="one embedding"):
        r.score(np.zeros((2, 10), dtype=np.float32))


def test_missing_or_broken_directories(tmp_path: Path) -> None:
    with pytest.raises(RouterLoadError, match=r"no heads\.onnx"):
        IRTRouter.load(tmp_path)
    _router(tmp_path)
    (tmp_path / "router.yaml").write_text("configurations: [\n")
    with pytest.raises(RouterLoadError, match="not valid YAML"):
        IRTRouter.load(tmp_path)
    (tmp_path / "router.yaml").write_text("configurations: [{name: a}]\nencoder: {name: static}\n")
    with pytest.raises(RouterLoadError, match="predicts 3 configurations, card lists 1"):
        IRTRouter.load(tmp_path)


def test_shipped_default_router_loads_without_shared_data() -> None:
    # Nothing here reads ../shared: the default router is self-contained in the repo.
    assert DEFAULT_ROUTER_DIR.is_dir()
    r = IRTRouter.load()
    assert len(r.configs) >= 2
    assert r.encoder_name in ("static", "minilm")
    known = {c: v for c, v in r.expected_cost.items() if v is not None}
    assert len(known) == 11 and all(np.isfinite(v) and v > 0 for v in known.values())
    # routerdc-7models has no costs: its 7 configurations' cost is unknown, not GPT-4's.
    assert r.expected_cost["HuggingFaceH4/zephyr-7b-beta"] is None
    e = np.random.default_rng(0).normal(size=r.dim).astype(np.float32)
    e /= np.linalg.norm(e)
    pred = r.score(e)
    assert set(pred.p) == set(r.configs)
    assert all(0.0 < v < 1.0 for v in pred.p.values())
    card = r.card
    for key in ("encoder", "configurations", "training", "hyperparameters", "metrics"):
        assert key in card
    assert card["encoder"]["hash"]
    # The router was trained with the encoder artifact that ships beside it.
    assert r.encoder_matches()


def test_shipped_router_end_to_end_with_its_encoder() -> None:
    from irtgate.signals.request import ApiKind, LLMRequest, Message
    from irtgate.signals.text import PromptText

    r = IRTRouter.load()
    emb = r.embedder()
    assert r.embedder() is emb  # loaded once

    def ask(text: str) -> RouterScores:
        req = LLMRequest(ApiKind.CHAT, "auto", (Message("user", PromptText(text)),))
        return r.score(emb.embed_request(req))

    easy = ask("What is 2 + 2?")
    assert set(easy.p) == set(r.configs)
    # The task-family prior says which training benchmark a query resembles.
    assert easy.family and sum(easy.family.values()) == pytest.approx(1.0, abs=1e-5)
    assert set(easy.family) == set(r.families)

    def resembles(text: str) -> str:
        fam = ask(text).family
        return max(fam, key=lambda f: fam[f])

    assert resembles("Tom has 3 boxes with 12 apples each and eats 5. How many are left?") == (
        "gsm8k"
    )
    assert resembles("运行中变压器温度最高的部分是\nA. 绕组\nB. 变压器油\n答案：") == "cmmlu"
    assert resembles('def sort_by_length(words):\n    """Sort words by length."""\n') == (
        "humaneval"
    )


def test_importing_runtime_is_light() -> None:
    import subprocess

    code = (
        "import sys, irtgate.signals.irt.runtime; "
        "print(any(m in sys.modules for m in ('onnxruntime', 'numpy', 'yaml')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_card_without_a_cost_loads_it_as_unknown(tmp_path: Path) -> None:
    import yaml

    _router(tmp_path)
    card_file = tmp_path / "router.yaml"
    card = yaml.safe_load(card_file.read_text())
    card["configurations"][1]["expected_cost"] = None
    del card["configurations"][2]["expected_cost"]
    card_file.write_text(yaml.safe_dump(card))
    r = IRTRouter.load(tmp_path)
    assert r.expected_cost == {"small": 0.1, "medium": None, "large": None}
    scores = r.score(np.zeros(10, dtype=np.float32))
    assert scores.cost["medium"] is None and scores.cost["small"] == 0.1
