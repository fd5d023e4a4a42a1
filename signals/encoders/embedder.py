"""The request-level embedding source that signals use (one encoder pass per request)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from signals.encoders.base import CountingEncoder, Encoder
from signals.request import LLMRequest
from signals.text import PromptText


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
    """Implements ``signals.base.EmbeddingSource`` on top of an :class:`Encoder`.

    ``metrics_hook`` is called with the encoder's name each time a request's text was cut by
    the window, so the server can count truncations without seeing any text.
    """

    def __init__(self, encoder: Encoder, metrics_hook: Callable[[str], None] | None = None) -> None:
        self.encoder = encoder
        self._hook = metrics_hook

    def embed_request(self, request: LLMRequest) -> np.ndarray:
        """A float32 vector of ``encoder.dim`` values."""
        text = request_text(request).reveal()
        if isinstance(self.encoder, CountingEncoder):
            rows, cuts = self.encoder.encode_counted([text])
            cut = cuts[0]
        else:
            before = self.encoder.truncations
            rows = self.encoder.encode([text])
            cut = self.encoder.truncations > before
        if cut and self._hook is not None:
            self._hook(self.encoder.name)
        vec: np.ndarray = rows[0]
        return vec
