"""The ``domain`` signal: the request's subject, one of the 14 MMLU-Pro categories.

A linear head (``signals/artifacts/domain/<encoder>/head.onnx``, trained by
``python -m irtgate.lab.domain_train``) on the embedding the IRT router already computes:
``ctx.embedding()`` is shared, so the domain costs one 14 x d matrix product, not a second
encoder pass. The head matches the encoder that produced the embedding; its card records the
encoder's hash so a re-exported encoder is noticed.

Fields: ``label`` (a category name) and ``confidence`` (its softmax probability). The full
distribution is left in ``ctx.scratch["domain.probs"]`` for explanations.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from irtgate.signals.base import Resources, SignalContext, Value, register

log = logging.getLogger(__name__)

LABELS: tuple[str, ...] = (
    "biology", "business", "chemistry", "computer science", "economics", "engineering",
    "health", "history", "law", "math", "philosophy", "physics", "psychology", "other",
)  # fmt: skip
ARTIFACTS = Path(__file__).resolve().parent / "artifacts" / "domain"
HEAD_FILE = "head.onnx"
CARD_FILE = "card.json"
SCRATCH_KEY = "domain.probs"
_PARAMS = frozenset({"encoder", "path"})

_lock = threading.Lock()
_heads: dict[Path, DomainHead] = {}


class DomainHead:
    """The exported classifier: embedding rows in, class probabilities out."""

    def __init__(self, folder: Path) -> None:
        card_path, head_path = folder / CARD_FILE, folder / HEAD_FILE
        if not card_path.is_file() or not head_path.is_file():
            raise ValueError(
                f"path: {folder} has no trained domain head ({HEAD_FILE} + {CARD_FILE}); "
                "run python -m irtgate.lab.domain_train"
            )
        self.card: dict[str, Any] = json.loads(card_path.read_text())
        self.labels: tuple[str, ...] = tuple(self.card["labels"])
        self.encoder: str = self.card["encoder"]["name"]
        self.dim: int = int(self.card["encoder"]["dim"])
        import onnxruntime as ort

        opts = ort.SessionOptions()
        # A 14 x d product: threads would cost more than they save, and cores are shared.
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(head_path), sess_options=opts, providers=["CPUExecutionProvider"]
        )

    def probs(self, embeddings: np.ndarray) -> np.ndarray:
        x = np.asarray(embeddings, dtype=np.float32)
        if x.ndim == 1:
            x = x[None, :]
        if x.shape[1] != self.dim:
            raise ValueError(f"domain head expects {self.dim}-d embeddings, got {x.shape[1]}")
        out: np.ndarray = self._session.run(["probs"], {"embedding": x})[0]
        return out


def load_head(folder: Path) -> DomainHead:
    folder = folder.resolve()
    with _lock:
        head = _heads.get(folder)
        if head is None:
            head = DomainHead(folder)
            _heads[folder] = head
        return head


def _check_encoder_hash(head: DomainHead) -> None:
    """Warn when the shipped encoder is not the one the head was trained on."""
    from irtgate.signals.encoders.artifact import read_artifact, shipped_path

    try:
        now = read_artifact(shipped_path(head.encoder), head.encoder).fingerprint
    except ValueError:
        return
    if now != head.card["encoder"].get("hash"):
        log.warning(
            "domain head for %s was trained on encoder hash %s, shipped encoder is %s; "
            "retrain with python -m irtgate.lab.domain_train --encoder %s",
            head.encoder,
            head.card["encoder"].get("hash"),
            now,
            head.encoder,
        )


class DomainSignal:
    name: ClassVar[str] = "domain"
    fields: ClassVar[Mapping[str, type]] = {"label": str, "confidence": float}
    # For policy validation: the values a field can take.
    ranges: ClassVar[Mapping[str, tuple[float, float]]] = {"confidence": (0.0, 1.0)}

    def __init__(self, head: DomainHead) -> None:
        self.head = head
        self.labels: Mapping[str, tuple[str, ...]] = {"label": head.labels}

    def compute(self, ctx: SignalContext) -> Mapping[str, Value]:
        p = self.head.probs(ctx.embedding())[0]
        ctx.scratch[SCRATCH_KEY] = dict(zip(self.head.labels, p.tolist(), strict=True))
        i = int(np.argmax(p))
        return {"label": self.head.labels[i], "confidence": round(float(p[i]), 4)}


@register("domain", DomainSignal)
def make_domain(params: Mapping[str, Any], resources: Resources) -> DomainSignal:
    unknown = sorted(set(params) - _PARAMS)
    if unknown:
        raise ValueError(f"domain: unknown parameter(s) {unknown}; known: {sorted(_PARAMS)}")
    encoder = getattr(getattr(resources.embedder, "encoder", None), "name", None)
    wanted = params.get("encoder", encoder or "static")
    if not isinstance(wanted, str) or not wanted:
        raise ValueError(f"encoder: expected an encoder name, got {wanted!r}")
    if encoder is not None and wanted != encoder:
        raise ValueError(
            f"encoder: the head must match the router's encoder ({encoder!r}), not {wanted!r}"
        )
    path = params.get("path")
    if path is not None and not isinstance(path, str):
        raise ValueError(f"path: expected a directory path, got {path!r}")
    head = load_head(Path(path) if path else ARTIFACTS / wanted)
    if head.encoder != wanted:
        raise ValueError(f"path: that head was trained for {head.encoder!r}, not {wanted!r}")
    dim = getattr(getattr(resources.embedder, "encoder", None), "dim", None)
    if dim is not None and dim != head.dim:
        raise ValueError(f"encoder: {dim}-d embeddings, but the head expects {head.dim}-d")
    if path is None:
        _check_encoder_hash(head)
    return DomainSignal(head)
