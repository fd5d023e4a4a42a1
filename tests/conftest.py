"""Shared fixtures. Real routing data lives in ../shared/data beside the checkout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

REPO = Path(__file__).resolve().parents[1]
# IRTGATE_SHARED_DATA points elsewhere (a git worktree is not beside ../shared).
SHARED_DATA = Path(os.environ.get("IRTGATE_SHARED_DATA") or REPO.parent / "shared" / "data")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared routing data folder; skips the test where it is absent (a fresh clone)."""
    if not (SHARED_DATA / "routerdc-7models.jsonl.gz").exists():
        pytest.skip(f"needs the shared routing data at {SHARED_DATA}, absent here")
    return SHARED_DATA


# Property-based tests: a fixed, reproducible run for CI (each test sets its number of
# examples through tests.fuzz.examples; deadlines are off because a shared CI machine's
# timing is noise). "deep" draws new examples each run and, with IRTGATE_FUZZ_SCALE=10,
# ten times as many: IRTGATE_HYPOTHESIS=deep IRTGATE_FUZZ_SCALE=10 pytest tests -k fuzz
settings.register_profile(
    "ci",
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "deep",
    parent=settings.get_profile("ci"),
    derandomize=False,
)
settings.load_profile(os.environ.get("IRTGATE_HYPOTHESIS", "ci"))
