"""The routing data loader: format, missing scores, bad lines, merging, splits."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from irtgate.lab.irt.data import (
    DataError,
    DuplicateIdWarning,
    load_routing_data,
    ood_split,
    routerdc_protocol,
    train_test_split,
    with_configs,
)


def _write(path: Path, rows: list[Any], *, gz: bool = False) -> Path:
    text = "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n"
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def _row(i: int, **kw: Any) -> dict[str, Any]:
    r: dict[str, Any] = {"id": f"q{i}", "benchmark": "b", "prompt": f"question {i}"}
    r.update(kw)
    return r


def test_missing_scores_are_nan_not_wrong(tmp_path: Path) -> None:
    f = _write(
        tmp_path / "a.jsonl.gz",
        [_row(0, scores={"m1": 1.0, "m2": 0.0}), _row(1, scores={"m1": 0.5})],
        gz=True,
    )
    d = load_routing_data([f])
    assert d.configs == ("m1", "m2")
    assert d.scores[0].tolist() == [1.0, 0.0]
    assert d.scores[1, 0] == 0.5 and np.isnan(d.scores[1, 1])
    assert d.costs is None
    assert d.splits.tolist() == ["", ""]


def test_null_score_is_unknown_and_costs_kept(tmp_path: Path) -> None:
    f = _write(
        tmp_path / "a.jsonl",
        [_row(0, scores={"m1": 1, "m2": None}, costs={"m1": 0.002}, language="en", split="test")],
    )
    d = load_routing_data([f])
    assert np.isnan(d.scores[0, 1])
    assert d.costs is not None and d.costs[0, 0] == 0.002 and np.isnan(d.costs[0, 1])
    assert d.languages[0] == "en" and d.domains[0] == "" and d.splits[0] == "test"


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ("{not json", "<json>"),
        ("[1, 2]", "<json>"),
        ({"id": "x", "benchmark": "b", "scores": {"m": 1}}, "prompt"),
        ({"id": "x", "benchmark": "b", "prompt": 3}, "prompt"),
        ({"benchmark": "b", "prompt": "p"}, "id"),
        (_row(9, scores={"m": 1.5}), "scores.m"),
        (_row(9, scores={"m": -0.1}), "scores.m"),
        (_row(9, scores={"m": "1"}), "scores.m"),
        (_row(9, scores={"m": True}), "scores.m"),
        (_row(9, scores=[1, 0]), "scores"),
        (_row(9, costs={"m": -1}), "costs.m"),
        (_row(9, split="dev"), "split"),
        (_row(9, language=5), "language"),
    ],
)
def test_bad_line_names_file_line_and_field(tmp_path: Path, row: Any, field: str) -> None:
    f = _write(tmp_path / "bad.jsonl", [_row(0, scores={"m": 1}), "", row])
    with pytest.raises(DataError) as ei:
        load_routing_data([f])
    err = ei.value
    assert (err.file, err.line, err.field) == (str(f), 3, field)
    assert str(f) in str(err) and "line 3" in str(err) and field in str(err)


def test_duplicate_ids_strict_and_lenient(tmp_path: Path) -> None:
    f = _write(tmp_path / "d.jsonl", [_row(0, scores={"m": 1}), _row(0, scores={"m": 0})])
    with pytest.raises(DataError) as ei:
        load_routing_data([f], strict_ids=True)
    assert ei.value.line == 2 and ei.value.field == "id"
    with pytest.warns(DuplicateIdWarning):
        d = load_routing_data([f])
    assert d.ids == ("q0", "q0~2") and d.scores[:, 0].tolist() == [1.0, 0.0]


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        load_routing_data([tmp_path / "nope.jsonl"])
    empty = tmp_path / "e.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(DataError, match="no items"):
        load_routing_data([empty])


def test_merging_files_unions_configs(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.jsonl", [_row(0, scores={"m1": 1, "m2": 0})])
    b = _write(
        tmp_path / "b.jsonl.gz",
        [_row(1, scores={"m3": 0.3}, costs={"m3": 0.1}), _row(2, scores={"m1": 0})],
        gz=True,
    )
    d = load_routing_data([a, b])
    assert d.configs == ("m1", "m2", "m3")
    assert d.ids == ("q0", "q1", "q2")
    want = np.array([[1, 0, np.nan], [np.nan, np.nan, 0.3], [0, np.nan, np.nan]])
    np.testing.assert_array_equal(d.scores, want)
    assert d.costs is not None and np.isnan(d.costs[0]).all() and d.costs[1, 2] == 0.1
    sub = d.subset(np.array([False, True, True]))
    assert sub.ids == ("q1", "q2") and sub.prompts == ("question 1", "question 2")
    assert d.subset([2]).scores.shape == (1, 3)


def test_split_uses_own_split_else_seeded_per_benchmark(tmp_path: Path) -> None:
    rows = [_row(i, benchmark="own", split="test" if i < 3 else "train") for i in range(10)]
    rows += [_row(100 + i, benchmark="free") for i in range(20)]
    rows += [_row(200 + i, benchmark="free2") for i in range(10)]
    d = load_routing_data([_write(tmp_path / "s.jsonl", rows)])
    tr, te = train_test_split(d)
    own_test = {i for i, b in zip(te.ids, te.benchmarks, strict=True) if b == "own"}
    assert own_test == {"q0", "q1", "q2"}
    assert (te.benchmarks == "free").sum() == 6 and (te.benchmarks == "free2").sum() == 3
    assert len(tr) + len(te) == len(d) and not set(tr.ids) & set(te.ids)
    assert train_test_split(d)[1].ids == te.ids  # reproducible
    assert train_test_split(d, seed=7)[1].ids != te.ids


def test_ood_split_holds_out_whole_benchmarks(tmp_path: Path) -> None:
    rows = [_row(i, benchmark="a" if i % 2 else "b-x") for i in range(6)]
    d = load_routing_data([_write(tmp_path / "o.jsonl", rows)])
    tr, te = ood_split(d, ["B_X"])
    assert set(te.benchmarks.tolist()) == {"b-x"} and set(tr.benchmarks.tolist()) == {"a"}
    with pytest.raises(ValueError):
        ood_split(d, ["zzz"])


@pytest.mark.shared_data
def test_routerdc_protocol_on_shared_data(shared_data: Path) -> None:
    d = load_routing_data([shared_data / "routerdc-7models.jsonl.gz"])
    assert len(d.configs) == 7 and d.costs is None
    train, test_id, test_ood = routerdc_protocol(d)
    # Sizes from RouterDC's release (notes/papers.md): ID test 9,408, OOD 2,717.
    assert len(test_id) == 4213 + 1319 + 3475 + 352 + 49
    assert len(test_ood) == 871 + 500 + 1346
    assert set(train.splits.tolist()) == {"train"}
    assert "arc_easy" not in set(train.benchmarks.tolist())


@pytest.mark.shared_data
def test_routerbench_arc_loads_with_its_split(shared_data: Path) -> None:
    with pytest.warns(DuplicateIdWarning):
        d = load_routing_data([shared_data / "routerbench-arc.jsonl.gz"])
    tr, te = train_test_split(d)
    assert (len(tr), len(te)) == (1039, 445)
    assert d.costs is not None and len(d.configs) == 11
    assert int(np.isnan(d.scores).any(axis=1).sum()) == 28


def test_with_configs_keeps_items_and_picks_columns(tmp_path: Path) -> None:
    f = _write(tmp_path / "c.jsonl", [_row(0, scores={"a": 1, "b": 0, "c": 0.5}, costs={"c": 2})])
    d = with_configs(load_routing_data([f]), ["c", "a"])
    assert d.configs == ("c", "a") and d.scores.tolist() == [[0.5, 1.0]]
    assert d.costs is not None and d.costs[0, 0] == 2.0 and np.isnan(d.costs[0, 1])
    with pytest.raises(ValueError):
        with_configs(d, ["zzz"])
