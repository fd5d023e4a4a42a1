"""Serving a trained router: one onnxruntime session over the IRT heads, created once.

``IRTRouter.load()`` with no path loads the default router shipped in
``signals/artifacts/routers/default``. Per request the caller hands in the request's
embedding (computed once per request by the encoder the router was trained with, see
:meth:`IRTRouter.embedder`) and gets a :class:`~irtgate.signals.irt.router_api.RouterScores`:
P(correct) and expected cost for every configuration. It implements
:class:`~irtgate.signals.irt.router_api.Router`.

onnxruntime, numpy and yaml are imported inside the functions: importing this module costs
nothing on the CLI/server start path.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from irtgate.signals.irt.router_api import Cost, RouterScores, known_cost

if TYPE_CHECKING:
    import numpy as np

    from irtgate.signals.encoders.embedder import RequestEmbedder

DEFAULT_ROUTER_DIR = Path(__file__).resolve().parents[1] / "artifacts" / "routers" / "default"
HEADS_FILE = "heads.onnx"
CARD_FILE = "router.yaml"
_OUTPUTS = ["difficulty", "discrimination", "p_correct"]

log = logging.getLogger(__name__)


class RouterLoadError(ValueError):
    """A router directory is missing a file or its card is inconsistent."""


def _card_list(card: Mapping[str, Any], path: Path) -> list[Mapping[str, Any]]:
    cfgs = card.get("configurations")
    if not isinstance(cfgs, list) or not cfgs:
        raise RouterLoadError(f"{path}: card has no 'configurations' list")
    for i, c in enumerate(cfgs):
        if not isinstance(c, Mapping) or not isinstance(c.get("name"), str):
            raise RouterLoadError(f"{path}: configurations[{i}] has no 'name'")
    return cfgs


class IRTRouter:
    """A loaded router: configurations, expected costs, card, and the ONNX heads."""

    def __init__(self, directory: Path, card: Mapping[str, Any], session: Any) -> None:
        cfgs = _card_list(card, directory / CARD_FILE)
        self.directory = directory
        self.card: Mapping[str, Any] = MappingProxyType(dict(card))
        self.configs: tuple[str, ...] = tuple(str(c["name"]) for c in cfgs)
        # None where the card has no cost: the router's data did not price that model.
        self.expected_cost: Mapping[str, Cost] = MappingProxyType(
            {str(c["name"]): known_cost(c.get("expected_cost")) for c in cfgs}
        )
        enc = card.get("encoder") or {}
        if not isinstance(enc, Mapping) or not isinstance(enc.get("name"), str):
            raise RouterLoadError(f"{directory / CARD_FILE}: card has no encoder name")
        self.encoder_name: str = enc["name"]
        self.encoder_hash: str | None = enc.get("hash")
        self._session = session
        inp = session.get_inputs()[0]
        self.dim: int = int(inp.shape[1])
        out_p = next(o for o in session.get_outputs() if o.name == "p_correct")
        if isinstance(out_p.shape[1], int) and out_p.shape[1] != len(self.configs):
            raise RouterLoadError(
                f"{directory}: graph predicts {out_p.shape[1]} configurations, "
                f"card lists {len(self.configs)}"
            )
        self.families: tuple[str, ...] = ()
        out_f = next((o for o in session.get_outputs() if o.name == "family"), None)
        if out_f is not None:
            fp = card.get("family_prior")
            names = fp.get("families") if isinstance(fp, Mapping) else None
            if not isinstance(names, list) or not all(isinstance(n, Mapping) for n in names):
                raise RouterLoadError(f"{directory / CARD_FILE}: card has no family_prior list")
            self.families = tuple(str(n.get("name")) for n in names)
            if isinstance(out_f.shape[1], int) and out_f.shape[1] != len(self.families):
                raise RouterLoadError(
                    f"{directory}: graph has {out_f.shape[1]} families, "
                    f"card lists {len(self.families)}"
                )
        self._embedder: RequestEmbedder | None = None
        self._embedder_lock = threading.Lock()

    @classmethod
    def load(cls, path: Path | None = None, *, threads: int = 1) -> IRTRouter:
        """Load a router directory (``None``: the default router shipped with irtgate)."""
        import onnxruntime as ort
        import yaml

        directory = Path(path) if path is not None else DEFAULT_ROUTER_DIR
        heads, card_file = directory / HEADS_FILE, directory / CARD_FILE
        for f in (heads, card_file):
            if not f.is_file():
                raise RouterLoadError(f"router directory {directory} has no {f.name}")
        try:
            card = yaml.safe_load(card_file.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            raise RouterLoadError(f"{card_file}: not valid YAML ({e})") from e
        if not isinstance(card, Mapping):
            raise RouterLoadError(f"{card_file}: the card must be a mapping")
        opts = ort.SessionOptions()
        # One request is a few small matmuls: threading costs more than it saves.
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            session = ort.InferenceSession(
                str(heads), sess_options=opts, providers=["CPUExecutionProvider"]
            )
        except Exception as e:  # onnxruntime raises its own exception types
            raise RouterLoadError(f"{heads}: cannot load the ONNX graph ({e})") from e
        return cls(directory, card, session)

    # -- inference -------------------------------------------------------------------------
    def predict_batch(self, embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Difficulty (n,), discrimination norm (n,), P (n, G) for embeddings (n, d)."""
        diff, disc, p, _ = self.predict_with_family(embeddings)
        return diff, disc, p

    def predict_with_family(
        self, embeddings: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """:meth:`predict_batch` plus the (n, F) posterior over :attr:`families` (None
        without a family prior), in one session run."""
        import numpy as np

        diff, disc, p, post = self._run(embeddings)
        return diff, np.linalg.norm(disc, axis=1), p, post

    def predict_full(self, embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Like :meth:`predict_batch` but with the full k-dim discrimination (n, k)."""
        diff, disc, p, _ = self._run(embeddings)
        return diff, disc, p

    def score(self, embedding: np.ndarray) -> RouterScores:
        """The read-out for one query embedding (d,) or (1, d), in one session run."""
        diff, disc, p, post = self.predict_with_family(embedding)
        if diff.shape[0] != 1:
            raise ValueError(f"score takes one embedding, got {diff.shape[0]}")
        family = {} if post is None else {f: float(post[0, i]) for i, f in enumerate(self.families)}
        return RouterScores(
            configs=self.configs,
            p=MappingProxyType({c: float(p[0, i]) for i, c in enumerate(self.configs)}),
            cost=self.expected_cost,
            difficulty=float(diff[0]),
            discrimination=float(disc[0]),
            family=MappingProxyType(family),
        )

    def explain(self, scores: RouterScores) -> Mapping[str, float | str]:
        """The query's difficulty, discrimination and closest training benchmark."""
        out: dict[str, float | str] = {
            "difficulty": round(scores.difficulty, 4),
            "discrimination": round(scores.discrimination, 4),
        }
        if (fam := scores.top_family()) is not None:
            out["family"] = fam
        return out

    def _run(
        self, embeddings: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        import numpy as np

        x = np.asarray(embeddings, dtype=np.float32)
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"embeddings must have shape (n, {self.dim}), got {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError("embeddings contain NaN or infinite values")
        names = _OUTPUTS + (["family"] if self.families else [])
        diff, disc, p, *post = self._session.run(names, {"embedding": x})
        return diff, disc, p, (post[0] if post else None)

    # -- the encoder it was trained with ---------------------------------------------------
    def embedder(self) -> RequestEmbedder:
        """The request embedder for this router's encoder, loaded once and shared."""
        with self._embedder_lock:
            if self._embedder is None:
                from irtgate.signals.encoders.embedder import RequestEmbedder
                from irtgate.signals.encoders.load import load_encoder

                encoder = load_encoder(self.encoder_name)
                if not self.encoder_matches():
                    # Not fatal: a re-exported encoder usually still embeds close enough,
                    # but the router should be retrained; say so once, at load.
                    log.warning(
                        "router %s was trained with encoder %s fingerprint %s; the shipped "
                        "encoder differs: retrain the router",
                        self.directory.name,
                        self.encoder_name,
                        self.encoder_hash,
                    )
                self._embedder = RequestEmbedder(encoder)
            return self._embedder

    def encoder_matches(self) -> bool:
        """Whether the shipped encoder artifact is the one this router was trained with."""
        from irtgate.signals.encoders.artifact import read_artifact, shipped_path

        try:
            info = read_artifact(shipped_path(self.encoder_name), self.encoder_name)
        except ValueError:
            return False
        return self.encoder_hash is None or info.fingerprint == self.encoder_hash

    def __repr__(self) -> str:
        return (
            f"IRTRouter({self.directory.name!r}, encoder={self.encoder_name!r}, "
            f"configs={len(self.configs)})"
        )
