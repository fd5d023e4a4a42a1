"""Routing data: which configuration answered which query how well (and at what cost).

The format (one JSON object per line, optionally gzipped) is documented for users in
``docs/data-format.md``. Loading is strict: a bad line raises :class:`DataError` naming the
file, the line and the field, because a silently skipped line would bias every figure
computed from the data.

A missing score is *unknown*, not wrong, so it is kept as NaN and every consumer masks it.
"""

from __future__ import annotations

import gzip
import json
import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SPLITS = ("train", "test")
_OPTIONAL_STR = ("language", "domain", "subject")

# RouterDC's protocol (Chen et al., NeurIPS 2024), with the benchmark names as spelled in
# the released data. Names are compared after lower-casing and mapping '-' to '_'.
ROUTERDC_ID = ("mmlu", "gsm8k", "cmmlu", "arc_challenge", "humaneval")
ROUTERDC_OOD = ("math_prealgebra", "mbpp", "ceval")


class DataError(ValueError):
    """A routing data file is malformed; says where (file, line) and what (field)."""

    def __init__(self, file: Path | str, line: int, field: str, problem: str) -> None:
        self.file = str(file)
        self.line = line
        self.field = field
        self.problem = problem
        super().__init__(f"{self.file}, line {line}, field '{field}': {problem}")


@dataclass(frozen=True)
class RoutingData:
    """Items (queries) x configurations. Arrays are indexed by item along axis 0."""

    ids: tuple[str, ...]
    benchmarks: np.ndarray  # (n,) str
    splits: np.ndarray  # (n,) str, "" where the source had no split
    prompts: tuple[str, ...]
    configs: tuple[str, ...]
    scores: np.ndarray  # (n, G) float64 in [0, 1], NaN = unknown
    costs: np.ndarray | None  # (n, G) USD, NaN = unknown; None when no item has costs
    languages: np.ndarray  # (n,) str, "" where absent
    domains: np.ndarray  # (n,) str, "" where absent
    subjects: np.ndarray  # (n,) str, "" where absent

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, mask_or_indices: np.ndarray | Sequence[int]) -> RoutingData:
        """The items selected by a boolean mask or an index array (configs unchanged)."""
        sel = np.asarray(mask_or_indices)
        if sel.dtype == bool:
            if sel.shape != (len(self),):
                raise ValueError(f"mask has shape {sel.shape}, expected ({len(self)},)")
            idx = np.flatnonzero(sel)
        else:
            idx = sel.astype(np.int64).reshape(-1)
        return RoutingData(
            ids=tuple(self.ids[i] for i in idx),
            benchmarks=self.benchmarks[idx],
            splits=self.splits[idx],
            prompts=tuple(self.prompts[i] for i in idx),
            configs=self.configs,
            scores=self.scores[idx],
            costs=None if self.costs is None else self.costs[idx],
            languages=self.languages[idx],
            domains=self.domains[idx],
            subjects=self.subjects[idx],
        )


@dataclass
class _Item:
    id: str
    benchmark: str
    split: str
    prompt: str
    scores: dict[str, float]
    costs: dict[str, float]
    extra: dict[str, str]


def _open_lines(path: Path) -> Iterator[str]:
    # Detect gzip by its magic bytes, not the suffix: users rename files.
    with path.open("rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        with gzip.open(path, "rt", encoding="utf-8") as gz:
            yield from gz
    else:
        with path.open("r", encoding="utf-8") as fh2:
            yield from fh2


def _number_map(
    obj: Any, path: Path, line: int, field: str, *, unit_interval: bool
) -> dict[str, float]:
    if not isinstance(obj, dict):
        raise DataError(path, line, field, f"expected an object config -> number, got {_kind(obj)}")
    out: dict[str, float] = {}
    for cfg, val in obj.items():
        where = f"{field}.{cfg}"
        if not cfg:
            raise DataError(path, line, field, "configuration names must be non-empty")
        if val is None:  # explicitly unknown; the config still counts as a candidate
            out[cfg] = math.nan
            continue
        if isinstance(val, bool) or not isinstance(val, int | float):
            raise DataError(path, line, where, f"expected a number, got {_kind(val)}")
        x = float(val)
        if not math.isfinite(x):
            raise DataError(path, line, where, f"must be finite, got {x}")
        if unit_interval and not 0.0 <= x <= 1.0:
            raise DataError(path, line, where, f"score must be in [0, 1], got {x}")
        if not unit_interval and x < 0.0:
            raise DataError(path, line, where, f"cost must be >= 0, got {x}")
        out[cfg] = x
    return out


def _kind(v: Any) -> str:
    return "null" if v is None else type(v).__name__


def _parse_line(raw: str, path: Path, line: int) -> _Item | None:
    text = raw.strip()
    if not text:
        return None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(
            path, line, "<json>", f"not valid JSON ({e.msg} at column {e.colno})"
        ) from e
    if not isinstance(obj, dict):
        raise DataError(path, line, "<json>", f"expected a JSON object, got {_kind(obj)}")

    def required_str(name: str) -> str:
        if name not in obj:
            raise DataError(path, line, name, "missing")
        v = obj[name]
        if not isinstance(v, str):
            raise DataError(path, line, name, f"expected a string, got {_kind(v)}")
        return v

    item_id = required_str("id")
    if not item_id:
        raise DataError(path, line, "id", "must be non-empty")
    # Optional so files without it (e.g. domain-labelled prompts) still load.
    benchmark = required_str("benchmark") if obj.get("benchmark") is not None else ""
    prompt = required_str("prompt")
    if not prompt.strip():
        raise DataError(path, line, "prompt", "must be non-empty")
    split = obj.get("split")
    if split is None:
        split = ""
    elif split not in SPLITS:
        raise DataError(path, line, "split", f"expected one of {SPLITS} or absent, got {split!r}")
    scores = (
        {}
        if obj.get("scores") is None
        else _number_map(obj["scores"], path, line, "scores", unit_interval=True)
    )
    costs = (
        {}
        if obj.get("costs") is None
        else _number_map(obj["costs"], path, line, "costs", unit_interval=False)
    )
    extra: dict[str, str] = {}
    for name in _OPTIONAL_STR:
        v = obj.get(name)
        if v is None:
            extra[name] = ""
        elif isinstance(v, str):
            extra[name] = v
        else:
            raise DataError(path, line, name, f"expected a string or null, got {_kind(v)}")
    return _Item(item_id, benchmark, split, prompt, scores, costs, extra)


class DuplicateIdWarning(UserWarning):
    """Some ids repeat; the repeats were renamed ``<id>~2``, ``<id>~3``, ... and kept."""


def load_routing_data(paths: Sequence[Path | str], *, strict_ids: bool = False) -> RoutingData:
    """Load and merge routing data files (gzipped or plain JSON Lines).

    Configurations are the union over all files, in order of first appearance; an item gets
    NaN for every configuration its line does not score.

    Ids must be unique across the files. With ``strict_ids`` a repeated id is a
    :class:`DataError`. By default a repeat is kept as a separate item, renamed
    ``<id>~2`` (``~3``, ...), with one :class:`DuplicateIdWarning` per file: the shared
    ``routerbench-arc`` release has 14 such pairs that are distinct items (different
    prompts and costs), and dropping either side would lose real data.
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    if not paths:
        raise ValueError("no routing data files given")
    items: list[_Item] = []
    seen: dict[str, tuple[str, int]] = {}
    repeats: dict[str, int] = {}
    configs: dict[str, None] = {}
    for p in paths:
        path = Path(p)
        if not path.is_file():
            raise DataError(path, 0, "<file>", "no such file")
        before = len(items)
        renamed = 0
        try:
            for lineno, raw in enumerate(_open_lines(path), start=1):
                item = _parse_line(raw, path, lineno)
                if item is None:
                    continue
                if item.id in seen:
                    f0, l0 = seen[item.id]
                    if strict_ids:
                        raise DataError(
                            path, lineno, "id", f"duplicate id {item.id!r} (first: {f0}, line {l0})"
                        )
                    base = item.id
                    while item.id in seen:
                        repeats[base] = repeats.get(base, 1) + 1
                        item.id = f"{base}~{repeats[base]}"
                    renamed += 1
                seen[item.id] = (str(path), lineno)
                for cfg in (*item.scores, *item.costs):
                    configs.setdefault(cfg, None)
                items.append(item)
        except (UnicodeDecodeError, OSError, EOFError) as e:
            raise DataError(path, 0, "<file>", f"cannot read: {e}") from e
        if len(items) == before:
            raise DataError(path, 0, "<file>", "contains no items")
        if renamed:
            warnings.warn(
                f"{path}: {renamed} item(s) repeat an earlier id; kept as '<id>~N'",
                DuplicateIdWarning,
                stacklevel=2,
            )
    return _build(items, tuple(configs))


def _build(items: list[_Item], configs: tuple[str, ...]) -> RoutingData:
    n, g = len(items), len(configs)
    col = {c: j for j, c in enumerate(configs)}
    scores = np.full((n, g), np.nan)
    has_costs = any(it.costs for it in items)
    costs = np.full((n, g), np.nan) if has_costs else None
    for i, it in enumerate(items):
        for c, v in it.scores.items():
            scores[i, col[c]] = v
        if costs is not None:
            for c, v in it.costs.items():
                costs[i, col[c]] = v
    return RoutingData(
        ids=tuple(it.id for it in items),
        benchmarks=np.array([it.benchmark for it in items], dtype=str),
        splits=np.array([it.split for it in items], dtype=str),
        prompts=tuple(it.prompt for it in items),
        configs=configs,
        scores=scores,
        costs=costs,
        languages=np.array([it.extra["language"] for it in items], dtype=str),
        domains=np.array([it.extra["domain"] for it in items], dtype=str),
        subjects=np.array([it.extra["subject"] for it in items], dtype=str),
    )


def _norm_bench(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def train_test_split(
    data: RoutingData, *, seed: int = 42, test_frac: float = 0.3
) -> tuple[RoutingData, RoutingData]:
    """Train/test split: the data's own split where an item has one, else a random
    ``test_frac`` of each benchmark's split-less items (seeded, reproducible)."""
    if not 0.0 < test_frac < 1.0:
        raise ValueError(f"test_frac must be in (0, 1), got {test_frac}")
    is_test = data.splits == "test"
    rng = np.random.default_rng(seed)
    for bench in sorted(set(data.benchmarks.tolist())):
        free = np.flatnonzero((data.benchmarks == bench) & (data.splits == ""))
        if free.size == 0:
            continue
        # Per benchmark, as RouterBench does, so every benchmark appears on both sides.
        n_test = round(test_frac * free.size)
        is_test[rng.permutation(free)[:n_test]] = True
    return data.subset(~is_test), data.subset(is_test)


def random_split(
    data: RoutingData, *, frac: float, seed: int = 0
) -> tuple[RoutingData, RoutingData]:
    """A random (1-frac, frac) split ignoring the split column, e.g. a validation set."""
    n = len(data)
    perm = np.random.default_rng(seed).permutation(n)
    k = max(1, round(frac * n)) if n > 1 else 0
    return data.subset(np.sort(perm[k:])), data.subset(np.sort(perm[:k]))


def benchmark_mask(data: RoutingData, names: Sequence[str]) -> np.ndarray:
    wanted = {_norm_bench(b) for b in names}
    return np.array([_norm_bench(b) in wanted for b in data.benchmarks], dtype=bool)


def routerdc_protocol(data: RoutingData) -> tuple[RoutingData, RoutingData, RoutingData]:
    """RouterDC's protocol: (train, test_id, test_ood).

    Train on the train split of MMLU, GSM8K, CMMLU, ARC-Challenge and HumanEval; test on
    their test split (ID) and on all of MATH prealgebra, MBPP and C-Eval (OOD).
    """
    present = {_norm_bench(b) for b in data.benchmarks.tolist()}
    missing = [b for b in (*ROUTERDC_ID, *ROUTERDC_OOD) if b not in present]
    if missing:
        raise ValueError(f"RouterDC protocol needs benchmarks {missing}, absent from the data")
    in_id = benchmark_mask(data, ROUTERDC_ID)
    train = data.subset(in_id & (data.splits == "train"))
    test_id = data.subset(in_id & (data.splits == "test"))
    test_ood = data.subset(benchmark_mask(data, ROUTERDC_OOD))
    return train, test_id, test_ood


def ood_split(data: RoutingData, held_out: Sequence[str]) -> tuple[RoutingData, RoutingData]:
    """Out-of-distribution split: train on every other benchmark, test on ``held_out``."""
    mask = benchmark_mask(data, held_out)
    if not mask.any():
        raise ValueError(f"none of the benchmarks {list(held_out)} is in the data")
    if mask.all():
        raise ValueError("holding out these benchmarks leaves nothing to train on")
    return data.subset(~mask), data.subset(mask)


def with_configs(data: RoutingData, names: Sequence[str]) -> RoutingData:
    """The same items restricted to the configurations ``names`` (in that order), e.g. a
    strong/weak pair for RouteLLM's metrics."""
    missing = [n for n in names if n not in data.configs]
    if missing:
        raise ValueError(f"configurations {missing} are not in the data")
    cols = [data.configs.index(n) for n in names]
    return RoutingData(
        ids=data.ids,
        benchmarks=data.benchmarks,
        splits=data.splits,
        prompts=data.prompts,
        configs=tuple(names),
        scores=data.scores[:, cols],
        costs=None if data.costs is None else data.costs[:, cols],
        languages=data.languages,
        domains=data.domains,
        subjects=data.subjects,
    )
