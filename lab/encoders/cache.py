"""Embedding whole corpora (training and evaluation) with an on-disk cache.

The cache lives in ``<cache_dir>/<encoder>-<fingerprint>/``; the fingerprint covers the
artifact's weights and its window, so a re-exported encoder never reads stale vectors.
Each call stores one shard (vectors plus per-text digests). A repeated call finds its
shard by the corpus digest and loads it; a new corpus reuses the rows of earlier shards
and embeds only texts never seen.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from irtgate.signals.encoders.artifact import ArtifactInfo, read_artifact, shipped_path
from irtgate.signals.encoders.base import Encoder

DIGEST_BYTES = 16
# Texts per encode call: progress granularity only. The encoders compute each text on its
# own (MiniLM unbatched, see minilm.py), so corpus vectors equal serving vectors exactly.
BATCH = 64
CHECKPOINT_EVERY = 2048


@lru_cache(maxsize=4)
def _encoder(name: str, path: Path) -> tuple[Encoder, ArtifactInfo]:
    from irtgate.signals.encoders.load import load_encoder

    return load_encoder(name, path), read_artifact(path, name)


def text_digests(texts: Sequence[str]) -> np.ndarray:
    """One fixed-size digest per text, as an (n, DIGEST_BYTES) uint8 array."""
    buf = b"".join(
        hashlib.blake2b(t.encode("utf-8", "surrogatepass"), digest_size=DIGEST_BYTES).digest()
        for t in texts
    )
    return np.frombuffer(buf, dtype=np.uint8).reshape(len(texts), DIGEST_BYTES)


def _save(path: Path, array: np.ndarray) -> None:
    # Write then rename, so an interrupted run never leaves a truncated shard behind.
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load_shard(folder: Path, key: str, n: int, dim: int) -> tuple[np.ndarray, np.ndarray] | None:
    try:
        vecs = np.load(folder / f"{key}.npy")
        keys = np.load(folder / f"{key}.keys.npy")
    except (OSError, ValueError):
        return None
    if vecs.shape != (n, dim) or keys.shape != (n, DIGEST_BYTES) or vecs.dtype != np.float32:
        return None
    return vecs, keys


def _known_rows(folder: Path, dim: int) -> dict[bytes, np.ndarray]:
    known: dict[bytes, np.ndarray] = {}
    for keys_file in folder.glob("*.keys.npy"):
        key = keys_file.name.removesuffix(".keys.npy")
        try:
            keys = np.load(keys_file)
            vecs = np.load(folder / f"{key}.npy", mmap_mode="r")
        except (OSError, ValueError):
            continue
        if keys.ndim != 2 or vecs.shape != (len(keys), dim):
            continue
        for row, k in enumerate(keys):
            known[k.tobytes()] = vecs[row]
    return known


def embed_corpus(
    encoder: str,
    texts: Sequence[str],
    *,
    cache_dir: Path = Path(".cache/embeddings"),
    progress: bool = True,
    path: Path | None = None,
) -> np.ndarray:
    """Embeddings of ``texts`` (float32, (n, dim)) with encoder ``encoder``, cached on disk.

    ``path`` selects a non-shipped artifact directory. Texts go through the encoder's own
    window, exactly as at serving time.
    """
    from tqdm import tqdm

    if isinstance(texts, str):
        raise TypeError("embed_corpus takes a sequence of texts, not a single str")
    art_path = Path(path) if path is not None else shipped_path(encoder)
    info = read_artifact(art_path, encoder)
    folder = Path(cache_dir) / f"{encoder}-{info.fingerprint}"
    digests = text_digests(texts)
    corpus_key = hashlib.sha256(digests.tobytes()).hexdigest()[:32]

    if folder.is_dir():
        hit = _load_shard(folder, corpus_key, len(texts), info.dim)
        if hit is not None and np.array_equal(hit[1], digests):
            return hit[0]
        known = _known_rows(folder, info.dim)
    else:
        known = {}

    out = np.empty((len(texts), info.dim), dtype=np.float32)
    missing: list[int] = []
    for i, d in enumerate(digests):
        row = known.get(d.tobytes())
        if row is None:
            missing.append(i)
        else:
            out[i] = row
    folder.mkdir(parents=True, exist_ok=True)
    partial = f"partial-{corpus_key}"
    if missing:
        enc, _ = _encoder(encoder, art_path.resolve())
        done = 0
        with tqdm(
            total=len(missing), desc=f"embedding ({encoder})", unit="text", disable=not progress
        ) as bar:
            for start in range(0, len(missing), BATCH):
                idx = missing[start : start + BATCH]
                out[idx] = enc.encode([texts[i] for i in idx])
                done += len(idx)
                bar.update(len(idx))
                if done % CHECKPOINT_EVERY < BATCH and done < len(missing):
                    # An interrupted run (MiniLM on a large corpus takes minutes) resumes
                    # from here: later calls read this shard's rows like any other's.
                    _save(folder / f"{partial}.keys.npy", digests[missing[:done]])
                    _save(folder / f"{partial}.npy", out[missing[:done]])
    _save(folder / f"{corpus_key}.keys.npy", digests)
    _save(folder / f"{corpus_key}.npy", out)
    for suffix in (".keys.npy", ".npy"):
        (folder / f"{partial}{suffix}").unlink(missing_ok=True)
    return out
