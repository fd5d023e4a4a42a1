"""The shipped item bank: it loads without ../shared, its stored item parameters are the
default router's, and a user's bank in the same format is validated."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from irtgate.lab.onboard.bank import (
    BANK_DIR,
    PARAMS_FILE,
    BankError,
    bank_params,
    load_bank,
    params_from_router,
)
from irtgate.lab.onboard.grade import grade, naive_grade
from irtgate.signals.irt.runtime import IRTRouter


def test_the_shipped_bank_is_small_and_complete() -> None:
    items = load_bank()
    kinds = {it.benchmark: it.answer_type for it in items}
    assert kinds == {"arc-challenge": "choice", "gsm8k": "number"}
    assert len(items) > 3000 and len({it.id for it in items}) == len(items)
    size = sum(f.stat().st_size for f in BANK_DIR.iterdir())
    assert size < 2_000_000
    # Every gold answer grades as correct when a model states it plainly.
    for it in items[::50]:
        assert grade(it, f"The answer is {it.answer}.")[0] == 1.0


def test_stored_parameters_are_the_default_routers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    router = IRTRouter.load()
    items = load_bank()
    a, b, how = bank_params(router, items)
    assert how == "stored" and a.shape == (len(items), 16) and b.shape == (len(items),)
    sample = items[:: len(items) // 12]
    a2, b2 = params_from_router(router, [it.prompt for it in sample])
    idx = [items.index(it) for it in sample]
    np.testing.assert_allclose(a[idx], a2, atol=1e-4)
    np.testing.assert_allclose(b[idx], b2, atol=1e-4)
    # Parameters stored for other item heads are not used: they are computed instead.
    with np.load(BANK_DIR / PARAMS_FILE) as z:
        fake = {k: z[k] for k in z.files}
    fake["probe_b"] = fake["probe_b"] + 0.5
    np.savez(tmp_path / "other.npz", **fake)
    _, b3, how = bank_params(router, sample, tmp_path / "other.npz")
    assert how == "computed"
    np.testing.assert_allclose(b3, b2, atol=1e-5)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (
            {
                "id": "x",
                "benchmark": "b",
                "prompt": "p",
                "answer": "E",
                "answer_type": "choice",
                "choices": ["A", "B"],
            },
            "not one of its choices",
        ),
        (
            {"id": "x", "benchmark": "b", "prompt": "p", "answer": "ten", "answer_type": "number"},
            "not a number",
        ),
        (
            {"id": "x", "benchmark": "b", "prompt": "p", "answer": "1", "answer_type": "free"},
            "answer_type must be",
        ),
        ({"id": "x", "benchmark": "b", "answer": "1", "answer_type": "number"}, "'prompt'"),
    ],
)
def test_a_users_bank_is_checked(tmp_path: Path, line: dict[str, object], problem: str) -> None:
    f = tmp_path / "bank.jsonl.gz"
    with gzip.open(f, "wt") as out:
        out.write(json.dumps(line) + "\n")
    with pytest.raises(BankError, match=problem):
        load_bank(f)


def test_repeated_ids_are_refused_unless_identical_and_merged(tmp_path: Path) -> None:
    row = {"id": "x", "benchmark": "b", "prompt": "p", "answer": "1", "answer_type": "number"}
    f = tmp_path / "bank.jsonl"
    f.write_text(json.dumps(row) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(BankError, match="duplicate id"):
        load_bank(f)
    assert len(load_bank(f, merge_repeats=True)) == 1
    with pytest.raises(BankError, match="no such bank"):
        load_bank(tmp_path / "missing.jsonl")


def test_graders_on_recorded_responses(shared_data: Path) -> None:
    """Grade real recorded model responses and compare with their recorded grading. The
    shared data carries recorded responses only if some file has a 'responses' field."""
    files = sorted(shared_data.glob("*responses*.jsonl.gz"))
    if not files:
        pytest.skip(
            f"{shared_data} has no recorded model responses (the item bank holds gold "
            "answers only); the graders are tested on written examples instead"
        )
    bank = {it.id: it for it in load_bank()}
    ours = naive = n = 0
    for f in files:
        with gzip.open(f, "rt") as rows:
            for line in rows:
                r = json.loads(line)
                it = bank.get(r["id"])
                if it is None:
                    continue
                for text, score in zip(r["responses"], r["scores"], strict=True):
                    n += 1
                    ours += grade(it, text)[0] == score
                    naive += naive_grade(it, text) == score
    assert n > 0 and ours >= naive
