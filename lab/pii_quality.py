"""Precision and recall of the PII detectors on a labelled set (used by the test and the
benchmark, so both measure the same thing).

A case is ``{"id", "text", "spans": [{"start", "end", "type"}], "note"}``. A finding counts
as a true positive when a gold span of the same type overlaps it with IoU >= 0.5 (each gold
span matched at most once); spans that match exactly are counted separately, because a
redaction that is a few characters short still leaks.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from irtgate.signals.pii.scan import PIIScanner
from irtgate.signals.pii.types import Finding


@dataclass
class TypeScore:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    exact: int = 0
    fp_ids: list[str] = field(default_factory=list)
    fn_ids: list[str] = field(default_factory=list)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "exact_spans": self.exact,
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "false_positive_cases": self.fp_ids,
            "missed_cases": self.fn_ids,
        }


def load_cases(path: Path) -> list[dict[str, Any]]:
    cases = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            case = json.loads(line)
            for s in case["spans"]:
                if not 0 <= s["start"] < s["end"] <= len(case["text"]):
                    raise ValueError(f"{path}:{n}: span {s} outside the text")
            cases.append(case)
    return cases


def _iou(a: tuple[int, int], b: tuple[int, int]) -> float:
    inter = max(0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union else 0.0


def score(cases: Iterable[dict[str, Any]], scanner: PIIScanner) -> dict[str, TypeScore]:
    """Per-type scores over the types ``scanner`` detects (gold spans of other types are
    ignored, so a scanner without NER is not charged for missing names)."""
    types = {t.value for t in scanner.types}
    scores = {t: TypeScore() for t in sorted(types)}
    for case in cases:
        gold = [s for s in case["spans"] if s["type"] in types]
        found: list[Finding] = scanner.scan(case["text"])
        used: set[int] = set()
        for f in found:
            best, best_iou = -1, 0.5
            for i, g in enumerate(gold):
                if i in used or g["type"] != f.type.value:
                    continue
                iou = _iou(f.span, (g["start"], g["end"]))
                if iou >= best_iou:
                    best, best_iou = i, iou
            sc = scores[f.type.value]
            if best < 0:
                sc.fp += 1
                sc.fp_ids.append(case["id"])
                continue
            used.add(best)
            sc.tp += 1
            if (gold[best]["start"], gold[best]["end"]) == f.span:
                sc.exact += 1
        for i, g in enumerate(gold):
            if i not in used:
                scores[g["type"]].fn += 1
                scores[g["type"]].fn_ids.append(case["id"])
    return scores


def micro(scores: dict[str, TypeScore]) -> TypeScore:
    total = TypeScore()
    for s in scores.values():
        total.tp += s.tp
        total.fp += s.fp
        total.fn += s.fn
        total.exact += s.exact
    return total
