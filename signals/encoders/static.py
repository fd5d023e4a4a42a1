"""Static token embeddings (model2vec, distilled from MiniLM): windowed mean pooling in numpy.

The artifact is in model2vec's format (``model.safetensors`` with an ``embeddings`` table,
``tokenizer.json``, ``config.json``). It is read here with safetensors and tokenizers
directly: the pooling is irtgate's own anyway (the window), and skipping the model2vec
import saves start-up time and ~15 MiB of resident memory in the server.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from irtgate.signals.encoders.artifact import ArtifactInfo, read_artifact
from irtgate.signals.encoders.base import EncoderError
from irtgate.signals.encoders.tokenizer import load_tokenizer, window_ids, window_reusing


class StaticEncoder:
    """Mean of the window's static token vectors, L2-normalised.

    A text with no known tokens (e.g. empty) has nothing to average and gives a zero row.
    """

    name = "static"

    def __init__(self, path: Path) -> None:
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        self.info: ArtifactInfo = read_artifact(path, "static")
        try:
            tensors = load_file(self.info.weights)
        except (OSError, SafetensorError) as e:
            raise EncoderError(f"{self.info.weights}: cannot read embeddings ({e})") from e
        if set(tensors) != {"embeddings"}:
            # Token weights or a vocabulary mapping (model2vec options) would need indirect
            # lookups; the artifacts built here never use them.
            raise EncoderError(
                f"{self.info.weights}: expected only an 'embeddings' table, got {sorted(tensors)}"
            )
        self._embedding: np.ndarray = tensors["embeddings"]
        self._tokenizer = load_tokenizer(path / "tokenizer.json")
        if (
            self._embedding.ndim != 2
            or self._embedding.shape[0] != self._tokenizer.get_vocab_size()
        ):
            raise EncoderError(f"{self.info.weights}: table does not match the tokenizer")
        config = (
            json.loads((path / "config.json").read_text())
            if (path / "config.json").is_file()
            else {}
        )
        if config.get("pooling", "mean") != "mean":
            raise EncoderError(f"{path}: only mean pooling is supported")
        # As model2vec does: unknown word pieces carry no meaning, drop them before pooling.
        unk = getattr(self._tokenizer.model, "unk_token", None)
        self._unk: int | None = self._tokenizer.token_to_id(unk) if unk else None
        self.window = self.info.window
        self.dim: int = int(self._embedding.shape[1])
        self.truncations = 0

    def token_ids(self, texts: Sequence[str]) -> tuple[list[list[int]], list[bool]]:
        """Windowed ids per text and whether each was cut; counts truncations."""
        ids, cuts = window_ids(self._tokenizer, texts, self.window, drop=self._unk)
        self.truncations += sum(cuts)
        return ids, cuts

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode_counted(texts)[0]

    def encode_counted(self, texts: Sequence[str]) -> tuple[np.ndarray, list[bool]]:
        if isinstance(texts, str):
            raise TypeError("encode takes a sequence of texts, not a single str")
        ids_per_text, cuts = self.token_ids(texts)
        return self._pool(ids_per_text), cuts

    def encode_reusing(
        self, text: str, tokenizer: Any, ids: Sequence[int]
    ) -> tuple[np.ndarray, bool] | None:
        """``encode_counted([text])`` from the ids another ``tokenizer`` gave for the whole
        ``text`` (the length signal's), without tokenizing again; None when the result could
        differ (see :func:`~irtgate.signals.encoders.tokenizer.window_from_ids`)."""
        got = window_reusing(text, ids, tokenizer, self._tokenizer, self.window, self._unk)
        if got is None:
            return None
        kept, cut = got
        self.truncations += cut
        return self._pool([kept]), cut

    def _pool(self, ids_per_text: Sequence[Sequence[int] | np.ndarray]) -> np.ndarray:
        out = np.zeros((len(ids_per_text), self.dim), dtype=np.float32)
        for row, ids in enumerate(ids_per_text):
            if len(ids):
                out[row] = self._embedding[ids].mean(axis=0, dtype=np.float32)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out
