"""`irtgate train` on data whose items are all marked `split: train`."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import yaml

from irtgate.lab.irt.train import HOLDOUT_FRAC
from irtgate.server.cli import main
from tests.server.test_cli_router import _write_data


def _relabel(path: Path, split: str) -> int:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for r in rows:
            r["split"] = split
            f.write(json.dumps(r) + "\n")
    return len(rows)


def test_train_holds_out_a_share_when_no_item_is_marked_test(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "toy.jsonl.gz"
    _write_data(data, n=100)
    n = _relabel(data, "train")
    argv = ["train", "--data", str(data), "--out", str(tmp_path / "r"), "--k", "2", "--no-family"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    held = round(HOLDOUT_FRAC * n)
    assert f"holding out {HOLDOUT_FRAC:.0%} of its train items per benchmark ({held} items)" in out
    card = yaml.safe_load((tmp_path / "r" / "router.yaml").read_text())
    assert card["training"]["n_test"] == held
    assert card["training"]["split"].startswith("no item marked test")
    assert (
        main(["route", "Sort a list of numbers in Python.", "--router", str(tmp_path / "r")]) == 0
    )


def test_train_refuses_data_with_no_train_items(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "toy.jsonl.gz"
    _write_data(data, n=40)
    _relabel(data, "test")
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "r"), "--k", "2"]) == 2
    assert "no train items" in capsys.readouterr().err
