"""The request-level embedding source that signals use (one encoder pass per request)."""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import numpy as np

from irtgate.signals.base import TokenIds
from irtgate.signals.encoders.base import CountingEncoder, Encoder
from irtgate.signals.request import LLMRequest
from irtgate.signals.text import PromptText


def request_text(request: LLMRequest) -> PromptText:
    """What is being asked: the last user turn, else the last message that has text."""
    text = request.last_user_text
    if text:
        return text
    for m in reversed(request.messages):
        if m.text:
            return m.text
    return PromptText("")


class RequestEmbedder:
    """Implements ``irtgate.signals.embedding.EmbeddingSource`` on top of an :class:`Encoder`.

    ``metrics_hook`` is called with the encoder's name each time a request's text was cut by
    the window, so the server can count truncations without seeing any text.
    """

    def __init__(self, encoder: Encoder, metrics_hook: Callable[[str], None] | None = None) -> None:
        self.encoder = encoder
        self._hook = metrics_hook
        # isinstance against a runtime-checkable Protocol costs ~0.1 ms: once, not per request.
        self._counting = isinstance(encoder, CountingEncoder)

    def embed_request(self, request: LLMRequest) -> np.ndarray:
        """A float32 vector of ``encoder.dim`` values."""
        text = request_text(request).reveal()
        if self._counting:
            rows, cuts = cast(CountingEncoder, self.encoder).encode_counted([text])
            cut = cuts[0]
        else:
            before = self.encoder.truncations
            rows = self.encoder.encode([text])
            cut = self.encoder.truncations > before
        return self._done(rows[0], cut)

    def embed_request_reusing(self, request: LLMRequest, tokens: TokenIds) -> np.ndarray:
        """:meth:`embed_request`, taking the window from token ids another signal computed
        for the whole text when the encoder can (the same vector, one tokenizer pass less)."""
        text = request_text(request).reveal()
        reuse = getattr(self.encoder, "encode_reusing", None)
        ids = tokens.by_text.get(text)
        got = None if reuse is None or ids is None else reuse(text, tokens.tokenizer, ids)
        if got is None:
            return self.embed_request(request)
        rows, cut = got
        return self._done(rows[0], cut)

    def _done(self, vec: np.ndarray, cut: bool) -> np.ndarray:
        if cut and self._hook is not None:
            self._hook(self.encoder.name)
        return vec
