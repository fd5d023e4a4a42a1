"""RequestEmbedder: which text is embedded, and truncation reporting."""

from __future__ import annotations

import numpy as np
import pytest

from irtgate.signals.base import SignalContext
from irtgate.signals.encoders.embedder import RequestEmbedder, request_text
from irtgate.signals.encoders.load import load_encoder
from irtgate.signals.request import ApiKind, LLMRequest, Message
from irtgate.signals.text import PromptText


def req(*turns: tuple[str, str]) -> LLMRequest:
    return LLMRequest(
        api=ApiKind.CHAT,
        model="auto",
        messages=tuple(Message(role=r, text=PromptText(t)) for r, t in turns),
    )


def test_embeds_the_last_user_turn() -> None:
    r = req(("system", "be terse"), ("user", "first"), ("assistant", "ok"), ("user", "second"))
    assert request_text(r).reveal() == "second"


def test_falls_back_to_the_last_message_with_text() -> None:
    r = req(("system", "be terse"), ("assistant", "how can I help?"), ("user", ""))
    assert request_text(r).reveal() == "how can I help?"
    assert request_text(req()).reveal() == ""


@pytest.mark.parametrize("name", ["static", "minilm"])
def test_vector_matches_the_encoder_and_hook_fires_on_truncation(name: str) -> None:
    encoder = load_encoder(name)
    calls: list[str] = []
    emb = RequestEmbedder(encoder, metrics_hook=calls.append)
    short = req(("system", "x " * 2000), ("user", "What is 7 times 8?"))
    vec = emb.embed_request(short)
    assert vec.shape == (encoder.dim,) and vec.dtype == np.float32
    np.testing.assert_array_equal(vec, encoder.encode(["What is 7 times 8?"])[0])
    assert calls == []  # the long system prompt is not embedded, so nothing was cut
    emb.embed_request(req(("user", "word " * 1000)))
    assert calls == [name]


def test_hook_is_optional_and_signal_context_uses_it_once() -> None:
    emb = RequestEmbedder(load_encoder("static"))
    ctx = SignalContext(request=req(("user", "word " * 1000)), embedder=emb)
    first = ctx.embedding()
    assert ctx.embedded
    assert ctx.embedding() is first


class Plain:
    """An encoder without encode_counted: the embedder falls back to the counter."""

    name = "plain"
    dim = 2

    def __init__(self) -> None:
        self.truncations = 0

    def encode(self, texts: object) -> np.ndarray:
        self.truncations += 1
        return np.array([[1.0, 0.0]], dtype=np.float32)


def test_protocol_only_encoders_are_supported() -> None:
    calls: list[str] = []
    RequestEmbedder(Plain(), metrics_hook=calls.append).embed_request(req(("user", "hi")))
    assert calls == ["plain"]
