"""The ``difficulty`` signal on the shipped default router."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from irtgate.signals.base import Resources, SignalContext, registered
from irtgate.signals.irt.runtime import IRTRouter
from irtgate.signals.request import ApiKind, LLMRequest, Message
from irtgate.signals.text import PromptText


class _FixedEmbedder:
    def __init__(self, vec: np.ndarray) -> None:
        self.vec = vec
        self.calls = 0

    def embed_request(self, request: LLMRequest) -> np.ndarray:
        self.calls += 1
        return self.vec


def _req(text: str) -> LLMRequest:
    return LLMRequest(ApiKind.CHAT, "auto", (Message("user", PromptText(text)),))


@pytest.fixture(scope="module")
def router() -> IRTRouter:
    return IRTRouter.load()


def test_registered_and_fields_follow_the_router(router: IRTRouter) -> None:
    _, factory = registered()["difficulty"]
    sig = factory({}, Resources(router=router))
    assert sig.name == "difficulty"
    for f in ("difficulty", "discrimination", "p_max", "best"):
        assert f in sig.fields
    for c in router.configs:
        assert sig.fields[f"p.{c}"] is float
    assert sig.fields["family"] is str  # the default router has a task-family prior


def test_values_match_the_router_and_use_one_encoder_pass(router: IRTRouter) -> None:
    _, factory = registered()["difficulty"]
    sig = factory({}, Resources(router=router))
    vec = np.random.default_rng(0).normal(size=router.dim).astype(np.float32)
    vec /= np.linalg.norm(vec)
    emb = _FixedEmbedder(vec)
    ctx = SignalContext(_req("anything"), embedder=emb)
    out = sig.compute(ctx)
    ctx.embedding()  # another signal reading it again must not re-encode
    assert emb.calls == 1
    pred = router.score(vec)
    assert out["difficulty"] == pytest.approx(pred.difficulty, abs=1e-6)
    assert out["discrimination"] == pytest.approx(pred.discrimination, abs=1e-6)
    assert out["p_max"] == pytest.approx(max(pred.p.values()), abs=1e-6)
    assert out["best"] == pred.best()
    for c in router.configs:
        assert out[f"p.{c}"] == pytest.approx(pred.p[c], abs=1e-6)
    assert out["family"] == max(pred.family, key=lambda f: pred.family[f])


def test_real_encoder_and_wrong_dimensions(router: IRTRouter) -> None:
    _, factory = registered()["difficulty"]
    sig = factory({}, Resources(router=router))
    out = sig.compute(SignalContext(_req("Name the capital of France."), router.embedder()))
    p_max = out["p_max"]
    assert isinstance(p_max, float) and 0.0 < p_max < 1.0
    bad = SignalContext(_req("x"), embedder=_FixedEmbedder(np.zeros(3, dtype=np.float32)))
    with pytest.raises(RuntimeError, match="expects"):
        sig.compute(bad)
    with pytest.raises(RuntimeError, match="needs an encoder"):
        sig.compute(SignalContext(_req("x")))


def test_a_router_without_a_family_prior_has_no_family_field(tmp_path: Path) -> None:
    from irtgate.lab.irt.export import export_router
    from irtgate.lab.irt.model import IRTModel

    rng = np.random.default_rng(0)
    m = IRTModel(k=2, max_epochs=5, knn_p_blend=0.0)
    m.fit(rng.normal(size=(50, 8)), rng.random((50, 2)))
    card = {"encoder": {"name": "static"}, "configurations": [{"name": "a"}, {"name": "b"}]}
    export_router(m, tmp_path, configs=["a", "b"], card=card)
    _, factory = registered()["difficulty"]
    sig = factory({"router": str(tmp_path)}, Resources())
    assert "family" not in sig.fields
    vec = np.ones(8, dtype=np.float32)
    out = sig.compute(SignalContext(_req("x"), embedder=_FixedEmbedder(vec)))
    assert "family" not in out and out["best"] in ("a", "b")


def test_bad_parameters(tmp_path: Path) -> None:
    _, factory = registered()["difficulty"]
    with pytest.raises(ValueError, match="unknown parameter"):
        factory({"routr": "x"}, Resources())
    with pytest.raises(ValueError, match="router"):
        factory({"router": str(tmp_path)}, Resources())
    sig = factory({}, Resources())  # no router in the resources: the shipped default
    assert sig.fields["p_max"] is float
