"""Shared fixtures. Real routing data lives in ../shared/data beside the checkout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# IRTGATE_SHARED_DATA points elsewhere (a git worktree is not beside ../shared).
SHARED_DATA = Path(os.environ.get("IRTGATE_SHARED_DATA") or REPO.parent / "shared" / "data")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared routing data folder; skips the test where it is absent (a fresh clone)."""
    if not (SHARED_DATA / "routerdc-7models.jsonl.gz").exists():
        pytest.skip(f"needs the shared routing data at {SHARED_DATA}, absent here")
    return SHARED_DATA
