"""all-MiniLM-L6-v2 as an int8 ONNX graph (mean pooling and L2 norm inside the graph)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from irtgate.signals.encoders.artifact import ArtifactInfo, read_artifact
from irtgate.signals.encoders.base import EncoderError
from irtgate.signals.encoders.tokenizer import load_tokenizer, window_ids, window_reusing

THREADS_ENV = "IRTGATE_ENCODER_THREADS"


def _threads() -> int:
    raw = os.environ.get(THREADS_ENV, "")
    if raw:
        try:
            n = int(raw)
        except ValueError:
            raise EncoderError(f"{THREADS_ENV} must be an integer, got {raw!r}") from None
        if n < 1:
            raise EncoderError(f"{THREADS_ENV} must be >= 1, got {n}")
        return n
    # One thread: a second one made a 128-token pass slower on the idle box (9.9 vs 9.2 ms)
    # at 75% more CPU, and gained little or nothing under load; concurrent requests use the
    # cores better (docs/encoders.md, benchmarks/reports/encoder_latency.md).
    return 1


class MiniLMEncoder:
    """Runs the shipped int8 graph on the token window: [CLS] + head + tail + [SEP]."""

    name = "minilm"

    def __init__(self, path: Path, threads: int | None = None, batched: bool = False) -> None:
        """``batched`` runs a call's texts as one padded batch instead of one by one.

        Off by default: dynamic int8 quantization takes each activation's range over the
        whole batch, padding included, so a text's vector would depend on its neighbours
        (cosine to the unbatched vector down to 0.989 on routerdc prompts), and batching
        measured no faster on this 2-core box (benchmarks/reports/encoder_latency.md).
        """
        import onnxruntime as ort

        self.info: ArtifactInfo = read_artifact(path, "minilm")
        self._tokenizer = load_tokenizer(path / "tokenizer.json")
        cls_id = self._tokenizer.token_to_id("[CLS]")
        sep_id = self._tokenizer.token_to_id("[SEP]")
        if cls_id is None or sep_id is None:
            raise EncoderError(f"{path}/tokenizer.json: no [CLS]/[SEP] tokens")
        self._cls, self._sep = cls_id, sep_id

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or _threads()
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        # Spinning worker threads burn the cores other requests and signals need.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session: Any = ort.InferenceSession(
                str(self.info.weights), sess_options=opts, providers=["CPUExecutionProvider"]
            )
        except Exception as e:  # onnxruntime raises its own untyped errors
            raise EncoderError(f"{self.info.weights}: cannot load ONNX graph ({e})") from e
        self._inputs = {i.name for i in self._session.get_inputs()}
        self.window = self.info.window
        self.dim: int = self.info.dim
        self.truncations = 0
        self.batched = batched

    def token_ids(self, texts: Sequence[str]) -> tuple[list[list[int]], list[bool]]:
        """Windowed ids per text and whether each was cut, with [CLS]/[SEP]; counts truncations."""
        ids, cuts = window_ids(self._tokenizer, texts, self.window)
        self.truncations += sum(cuts)
        return [[self._cls, *x, self._sep] for x in ids], cuts

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode_counted(texts)[0]

    def encode_counted(self, texts: Sequence[str]) -> tuple[np.ndarray, list[bool]]:
        if isinstance(texts, str):
            raise TypeError("encode takes a sequence of texts, not a single str")
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32), []
        ids, cuts = self.token_ids(texts)
        if self.batched:
            return self._run(ids), cuts
        return np.concatenate([self._run([x]) for x in ids]), cuts

    def encode_reusing(
        self, text: str, tokenizer: Any, ids: Sequence[int]
    ) -> tuple[np.ndarray, bool] | None:
        """``encode_counted([text])`` from the ids another ``tokenizer`` gave for the whole
        ``text`` (the length signal's), without tokenizing again; None when the result could
        differ (see :func:`~irtgate.signals.encoders.tokenizer.window_from_ids`)."""
        got = window_reusing(text, ids, tokenizer, self._tokenizer, self.window, None)
        if got is None:
            return None
        kept, cut = got
        self.truncations += cut
        return self._run([[self._cls, *kept.tolist(), self._sep]]), cut

    def _run(self, ids: list[list[int]]) -> np.ndarray:
        width = max(len(x) for x in ids)
        input_ids = np.zeros((len(ids), width), dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for row, x in enumerate(ids):
            input_ids[row, : len(x)] = x
            mask[row, : len(x)] = 1
        feeds = {"input_ids": input_ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(input_ids)
        (emb,) = self._session.run(["sentence_embedding"], feeds)
        return np.ascontiguousarray(emb, dtype=np.float32)
