"""The replay PNG (lab): drawn from a summary, a real PNG file."""

from __future__ import annotations

from pathlib import Path

from irtgate.lab.replay_plot import render_png
from irtgate.server.replay_report import Side, Summary


def _side(label: str, models: dict[str, int], mean_p: float, cost: float) -> Side:
    n = sum(models.values())
    return Side(label, n, n, {}, mean_p, n, cost, 0, models, models, {"none": n}, {"d": n})


def test_png_is_written(tmp_path: Path) -> None:
    s = Summary(
        lines=10,
        bad_count=0,
        bad=(),
        compared=10,
        missing={},
        changed=3,
        newly_blocked=0,
        newly_no_candidate=0,
        before=_side("logged", {"a": 7, "b": 3}, 0.8, 0.01),
        after=_side("new policy", {"a": 4, "b": 6}, 0.75, 0.004),
        policies_in_log={"x": 10},
    )
    out = tmp_path / "r.png"
    render_png(s, out, "edit")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
