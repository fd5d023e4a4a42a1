"""The ``domain`` signal: a linear head on the router's embedding, exported as ONNX."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from irtgate.signals.base import Resources, SignalContext, registered
from irtgate.signals.domain import (
    ARTIFACTS,
    LABELS,
    SCRATCH_KEY,
    DomainSignal,
    load_head,
    make_domain,
)
from irtgate.signals.encoders.artifact import read_artifact, shipped_path
from irtgate.signals.encoders.embedder import RequestEmbedder
from irtgate.signals.encoders.load import load_encoder
from irtgate.signals.request import ApiKind, LLMRequest, Message
from irtgate.signals.text import PromptText

STATIC = ARTIFACTS / "static"


class CountingEmbedder:
    """Wraps the real request embedder and counts encoder passes."""

    def __init__(self, inner: RequestEmbedder) -> None:
        self.inner = inner
        self.encoder = inner.encoder
        self.calls = 0

    def embed_request(self, request: LLMRequest) -> np.ndarray:
        self.calls += 1
        return self.inner.embed_request(request)


@pytest.fixture(scope="module")
def embedder() -> RequestEmbedder:
    return RequestEmbedder(load_encoder("static"))


@pytest.fixture(scope="module")
def sig(embedder: RequestEmbedder) -> Any:
    s = make_domain({}, Resources(embedder=embedder))
    assert isinstance(s, DomainSignal)
    return s


def ctx(text: str, embedder: Any) -> SignalContext:
    msgs = (Message(role="user", text=PromptText(text)),)
    return SignalContext(LLMRequest(api=ApiKind.CHAT, model="auto", messages=msgs), embedder)


def test_shipped_head_card() -> None:
    card = json.loads((STATIC / "card.json").read_text())
    assert tuple(card["labels"]) == LABELS and len(LABELS) == 14
    assert card["encoder"]["name"] == "static"
    assert 0.0 < card["heldout_accuracy"] <= 1.0
    assert set(card["per_class_accuracy"]) == set(LABELS)


@pytest.mark.parametrize("encoder", ["static", "minilm"])
def test_head_trained_on_the_shipped_encoder(encoder: str) -> None:
    # Fails when an encoder is re-exported without retraining its head
    # (python -m irtgate.lab.domain_train --encoder <name>).
    card = json.loads((ARTIFACTS / encoder / "card.json").read_text())
    info = read_artifact(shipped_path(encoder), encoder)
    assert card["encoder"]["hash"] == info.fingerprint
    assert card["encoder"]["dim"] == info.dim
    head = load_head(ARTIFACTS / encoder)
    assert head.probs(np.zeros(info.dim, dtype=np.float32)).shape == (1, 14)


def test_onnx_graph_is_softmax_of_a_linear_layer() -> None:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(STATIC / "head.onnx"))
    init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    head = load_head(STATIC)
    x = np.random.default_rng(0).normal(size=(3, head.dim)).astype(np.float32)
    logits = x @ init["W"] + init["b"]
    expected = np.exp(logits - logits.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    got = head.probs(x)
    assert got.shape == (3, 14)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got.sum(1), 1.0, rtol=1e-5)


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("Solve for x: 3x + 7 = 22. Show each algebra step.", "math"),
        ("Write a Python function that reverses a linked list in place.", "computer science"),
        ("Under the Fourth Amendment, when may police search a car without a warrant?", "law"),
        ("Which enzyme unwinds the DNA double helix during replication?", "biology"),
    ],
)
def test_labels_clear_questions(sig: Any, embedder: RequestEmbedder, text: str, label: str) -> None:
    out = sig.compute(ctx(text, embedder))
    assert out["label"] == label
    assert 0.0 < out["confidence"] <= 1.0


def test_reuses_the_shared_embedding(sig: Any, embedder: RequestEmbedder) -> None:
    counting = CountingEmbedder(embedder)
    c = ctx("What is the derivative of sin(x)?", counting)
    first = c.embedding()  # e.g. the IRT router ran first
    out = sig.compute(c)
    assert counting.calls == 1 and c.embedding() is first
    probs = c.scratch[SCRATCH_KEY]
    assert set(probs) == set(LABELS) and abs(sum(probs.values()) - 1) < 1e-4
    assert out["label"] == max(probs, key=probs.get)


def test_values_carry_no_prompt_text(sig: Any, embedder: RequestEmbedder) -> None:
    out = sig.compute(ctx("confidential merger plan for Acme", embedder))
    assert set(out) == set(sig.fields)
    assert out["label"] in LABELS and "Acme" not in repr(out)
    assert tuple(sig.labels["label"]) == LABELS  # for policy validation of `in:` lists
    assert registered()["domain"][1] is make_domain


def test_empty_text_still_answers(sig: Any, embedder: RequestEmbedder) -> None:
    out = sig.compute(ctx("", embedder))
    assert out["label"] in LABELS


def test_without_an_encoder_compute_says_so() -> None:
    s = make_domain({}, Resources())
    with pytest.raises(RuntimeError, match="encoder"):
        s.compute(ctx("hello", None))


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"encoder": "minilm"}, "encoder"),  # the router's encoder is static
        ({"encoder": 3}, "encoder"),
        ({"path": 5}, "path"),
        ({"threshold": 0.5}, "threshold"),
    ],
)
def test_factory_rejects_bad_params(
    embedder: RequestEmbedder, params: dict[str, Any], named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        make_domain(params, Resources(embedder=embedder))


def test_missing_head_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no trained domain head"):
        make_domain({"path": str(tmp_path)}, Resources())


@pytest.mark.shared_data
def test_heldout_accuracy_on_shared_data(shared_data: Path) -> None:
    """Recompute the held-out accuracy on a slice of the held-out MMLU prompts."""
    import gzip

    from irtgate.lab.domain_train import Item

    held: list[Item] = []
    with gzip.open(shared_data / "mmlu-domains.jsonl.gz", "rt") as f:
        for line in f:
            d = json.loads(line)
            it = Item(d["prompt"], d["domain"], "mmlu")
            if it.bucket < 2:
                held.append(it)
            if len(held) == 600:
                break
    enc = load_encoder("static")
    x = enc.encode([it.prompt for it in held])
    pred = load_head(STATIC).probs(x).argmax(1)
    acc = float(np.mean([LABELS[p] == it.label for p, it in zip(pred, held, strict=True)]))
    assert acc >= 0.7, acc
