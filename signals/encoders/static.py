"""Static token embeddings (model2vec, distilled from MiniLM): windowed mean pooling in numpy."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from signals.encoders.artifact import ArtifactInfo, read_artifact
from signals.encoders.base import EncoderError
from signals.encoders.tokenizer import window_ids


class StaticEncoder:
    """Mean of the window's static token vectors, L2-normalised.

    A text with no known tokens (e.g. empty) has nothing to average and gives a zero row.
    """

    name = "static"

    def __init__(self, path: Path) -> None:
        from model2vec import StaticModel

        self.info: ArtifactInfo = read_artifact(path, "static")
        model = StaticModel.from_pretrained(path, normalize=True)
        if model.token_mapping is not None or model.weights is not None:
            # Those variants index embeddings indirectly; the artifacts built here never use them.
            raise EncoderError(f"{path}: vocabulary-quantized model2vec models are not supported")
        self._embedding: np.ndarray = model.embedding
        self._tokenizer = model.tokenizer
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        self._unk = model.unk_token_id
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
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        ids_per_text, cuts = self.token_ids(texts)
        for row, ids in enumerate(ids_per_text):
            if ids:
                out[row] = self._embedding[ids].mean(axis=0, dtype=np.float32)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out, cuts
