"""Minimum precision and recall per PII type on the labelled set."""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import pytest

from irtgate.lab.pii_quality import load_cases, micro, score
from irtgate.signals.pii import PATTERN_TYPES, PIIScanner

CASES = Path(__file__).parents[1] / "signals" / "data" / "pii_cases.jsonl"
# Per pattern type. The set includes known-hard cases (ids hard-*), so recall is not 1.0.
MIN_PRECISION = 0.9
MIN_RECALL = 0.85


@pytest.fixture(scope="module")
def cases() -> list[dict[str, Any]]:
    return load_cases(CASES)


def test_labelled_set_is_big_and_balanced(cases: list[dict[str, Any]]) -> None:
    assert len(cases) >= 150
    per_type = collections.Counter(s["type"] for c in cases for s in c["spans"])
    for t in PATTERN_TYPES:
        assert per_type[t.value] >= 10, t
    assert sum(1 for c in cases if not c["spans"]) >= 50  # near-misses and clean prompts
    assert len({c["id"] for c in cases}) == len(cases)


def test_precision_and_recall_per_type(cases: list[dict[str, Any]]) -> None:
    scores = score(cases, PIIScanner(PATTERN_TYPES))
    for t, s in scores.items():
        assert s.precision >= MIN_PRECISION, (t, s.as_dict())
        assert s.recall >= MIN_RECALL, (t, s.as_dict())
    total = micro(scores)
    # Redaction needs whole spans: nearly every true positive covers the gold span exactly.
    assert total.exact >= 0.95 * total.tp


def test_scoring_counts_misses_and_false_alarms() -> None:
    # The scorer itself: a wrong type is both a false positive and a miss.
    cases = [{"id": "x", "text": "a@b.io", "spans": [{"start": 0, "end": 6, "type": "iban"}]}]
    s = score(cases, PIIScanner(["email", "iban"]))
    assert (s["email"].fp, s["iban"].fn, s["email"].tp) == (1, 1, 0)
