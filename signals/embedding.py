"""The request-embedding interface, on its own so that both the signal context
(:mod:`irtgate.signals.base`) and the router interface (:mod:`irtgate.signals.irt.router_api`)
can name it without importing each other."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np

    from irtgate.signals.request import LLMRequest


class EmbeddingSource(Protocol):
    """Computes the request's embedding. Implemented by the encoder layer.

    An embedder may also offer ``embed_request_reusing(request, tokens: TokenIds)``, which
    the context calls instead when a signal has already tokenized the request's texts.
    """

    def embed_request(self, request: LLMRequest) -> np.ndarray: ...
