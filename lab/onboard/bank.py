"""The graded item bank: questions with gold answers, for asking a live model and grading it.

The bank shipped with irtgate lives in ``signals/artifacts/bank/``: ``bank.jsonl.gz`` (the
questions, in the format of ``../shared/data/item-bank.jsonl.gz``, see docs/data-format.md)
and ``params.npz``, each item's IRT parameters (discrimination ``a`` and intercept ``b``)
under the shipped default router, so that a calibration against that router needs neither
the encoder nor ``../shared``. ``lab/onboard/build_bank.py`` rebuilds both.

A router whose item heads differ from the ones the parameters were computed with (another
trained router) gets the parameters computed afresh: the bank's prompts embedded with the
router's encoder and run through its heads. The check runs both on a few fixed probe
embeddings (:func:`probe_params`); adding a configuration leaves the item heads unchanged.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from irtgate.signals.irt.runtime import DEFAULT_ROUTER_DIR

# signals/artifacts/bank, beside signals/artifacts/routers.
BANK_DIR = DEFAULT_ROUTER_DIR.parents[1] / "bank"
BANK_FILE = "bank.jsonl.gz"
PARAMS_FILE = "params.npz"
PROBE_SEED, PROBE_ROWS = 20261204, 16


class BankError(ValueError):
    """A bank file that cannot be used (missing, malformed line, unknown answer type)."""


@dataclass(frozen=True)
class BankItem:
    id: str
    benchmark: str
    prompt: str
    answer: str
    answer_type: str  # "choice" or "number"
    choices: tuple[str, ...] = ()


def _item(raw: Any, where: str) -> BankItem:
    if not isinstance(raw, dict):
        raise BankError(f"{where}: expected a JSON object")
    for key in ("id", "benchmark", "prompt", "answer", "answer_type"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise BankError(f"{where}: '{key}' must be a non-empty string")
    kind = raw["answer_type"]
    choices: tuple[str, ...] = ()
    if kind == "choice":
        ch = raw.get("choices")
        if not isinstance(ch, list) or not ch or not all(isinstance(c, str) and c for c in ch):
            raise BankError(f"{where}: a choice item needs 'choices', a list of letters")
        choices = tuple(ch)
        if raw["answer"] not in choices:
            raise BankError(f"{where}: answer {raw['answer']!r} is not one of its choices")
    elif kind == "number":
        try:
            float(raw["answer"])
        except ValueError as e:
            raise BankError(f"{where}: answer {raw['answer']!r} is not a number") from e
    else:
        raise BankError(f"{where}: answer_type must be 'choice' or 'number', got {kind!r}")
    return BankItem(raw["id"], raw["benchmark"], raw["prompt"], raw["answer"], kind, choices)


def load_bank(path: Path | None = None, *, merge_repeats: bool = False) -> list[BankItem]:
    """Read a bank (JSON Lines, gzipped or not); ``None``: the bank shipped with irtgate.

    A repeated id is an error, except with ``merge_repeats`` where a line identical to an
    earlier one is dropped (the source bank repeats a few ARC items, as its records do)."""
    path = BANK_DIR / BANK_FILE if path is None else Path(path)
    if not path.is_file():
        raise BankError(f"no such bank file: {path}")
    opener: Any = gzip.open if path.suffix == ".gz" else open
    items: list[BankItem] = []
    seen: dict[str, BankItem] = {}
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    raw = json.loads(line)
                except json.JSONDecodeError as e:
                    raise BankError(f"{path}:{n}: not JSON ({e.msg})") from e
                item = _item(raw, f"{path}:{n}")
                if item.id in seen:
                    if merge_repeats and seen[item.id] == item:
                        continue
                    raise BankError(f"{path}:{n}: duplicate id {item.id!r}")
                seen[item.id] = item
                items.append(item)
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise BankError(f"{path}: cannot read ({e})") from e
    if not items:
        raise BankError(f"{path}: the bank has no items")
    return items


def bank_digest(items: Sequence[BankItem]) -> str:
    """A short digest of the bank's ids, prompts and answers (the calibration log records it)."""
    h = hashlib.sha256()
    for it in items:
        h.update(json.dumps([it.id, it.prompt, it.answer], ensure_ascii=False).encode())
    return h.hexdigest()[:16]


def probe_params(router: Any) -> tuple[np.ndarray, np.ndarray]:
    """The router's item parameters on fixed pseudo-random embeddings: equal for two routers
    exactly when their item heads agree (adding a configuration leaves them unchanged)."""
    from irtgate.lab.irt.adaptive import router_item_params

    x = np.random.default_rng(PROBE_SEED).normal(size=(PROBE_ROWS, router.dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return router_item_params(router, x.astype(np.float32))


def _matches(z: Any, router: Any) -> bool:
    if "probe_a" not in z or str(z["encoder_hash"]) != str(router.encoder_hash):
        return False
    a, b = probe_params(router)
    if a.shape != z["probe_a"].shape:
        return False
    return bool(np.allclose(a, z["probe_a"], atol=1e-4) and np.allclose(b, z["probe_b"], atol=1e-4))


def params_from_router(router: Any, prompts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Discrimination (n, k) and intercept (n,) for ``prompts`` under a loaded router."""
    from irtgate.lab.encoders.cache import embed_corpus
    from irtgate.lab.irt.adaptive import router_item_params

    X = embed_corpus(router.encoder_name, list(prompts), progress=False)
    return router_item_params(router, X)


def save_params(path: Path, ids: Sequence[str], a: np.ndarray, b: np.ndarray, router: Any) -> None:
    pa, pb = probe_params(router)
    np.savez_compressed(
        path,
        ids=np.array(list(ids)),
        a=a.astype(np.float32),
        b=b.astype(np.float32),
        probe_a=pa,
        probe_b=pb,
        encoder_hash=np.array(str(router.encoder_hash)),
    )


def bank_params(
    router: Any, items: Sequence[BankItem], params_file: Path | None = None
) -> tuple[np.ndarray, np.ndarray, str]:
    """Item parameters for ``items`` under ``router``: the stored ones when the router's item
    heads match theirs and they cover every item, else computed. Returns a, b and how."""
    params_file = BANK_DIR / PARAMS_FILE if params_file is None else params_file
    if params_file.is_file():
        with np.load(params_file, allow_pickle=False) as z:
            if _matches(z, router):
                row = {str(i): n for n, i in enumerate(z["ids"])}
                if all(it.id in row for it in items):
                    idx = np.array([row[it.id] for it in items], dtype=np.int64)
                    a = z["a"][idx].astype(np.float64)
                    return a, z["b"][idx].astype(np.float64), "stored"
    a, b = params_from_router(router, [it.prompt for it in items])
    return a, b, "computed"
