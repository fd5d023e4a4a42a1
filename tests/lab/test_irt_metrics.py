"""Each metric against small fronts worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from irtgate.lab.irt.metrics import (
    accuracy_within,
    aiq,
    cost_to_reach,
    difficulty_spearman,
    hull_value,
    nondecreasing_hull,
    routellm_pair_metrics,
    routerdc_accuracy,
    sweep_point,
)

# A(1,.5) B(2,.6) C(3,.9) D(4,.85) E(2,.55): B lies under the chord A-C (0.7 at cost 2),
# E shares B's cost with less accuracy, D is past the top. Hull: A, C.
R1 = (np.array([1.0, 2.0, 3.0, 4.0, 2.0]), np.array([0.5, 0.6, 0.9, 0.85, 0.55]))
R2 = (np.array([0.5, 5.0]), np.array([0.4, 0.95]))


def test_hull_drops_points_under_chords_and_past_the_top() -> None:
    hc, ha = nondecreasing_hull(*R1)
    assert hc.tolist() == [1.0, 3.0] and ha.tolist() == [0.5, 0.9]
    # A point exactly on a chord adds nothing: collinear points collapse.
    hc, ha = nondecreasing_hull(np.array([0.0, 1.0, 2.0]), np.array([0.0, 0.5, 1.0]))
    assert hc.tolist() == [0.0, 2.0]
    # A single point is its own hull.
    assert nondecreasing_hull(np.array([2.0]), np.array([0.3]))[1].tolist() == [0.3]
    with pytest.raises(ValueError):
        nondecreasing_hull(np.array([]), np.array([]))


def test_aiq_by_hand() -> None:
    got = aiq({"r1": R1, "r2": R2})
    # Common max cost 5. r1: x 1,3,5 y .5,.9,.9 -> 2*.7 + 2*.9 = 3.2 -> 0.64.
    # r2: x .5,5,5 y .4,.95,.95 -> 4.5*.675 = 3.0375 -> 0.6075.
    assert got["r1"] == pytest.approx(0.64)
    assert got["r2"] == pytest.approx(0.6075)
    # Alone, r1's max cost is its own hull's last cost (3): area 1.4 / 3.
    assert aiq({"r1": R1})["r1"] == pytest.approx(1.4 / 3)


def test_budget_helpers() -> None:
    assert hull_value(*R1, budget=2.0) == pytest.approx(0.7)  # mixing A and C
    assert hull_value(*R1, budget=10.0) == pytest.approx(0.9)
    assert np.isnan(hull_value(*R1, budget=0.5))
    assert cost_to_reach(*R1, target=0.6) == 2.0  # B reaches it at cost 2 without mixing
    assert cost_to_reach(*R1, target=0.95) == float("inf")
    assert accuracy_within(*R1, budget=2.5) == 0.6
    assert np.isnan(accuracy_within(*R1, budget=0.1))


def test_routellm_pair_by_hand() -> None:
    # 2 bins: thresholds are the 0, .5, 1 quantiles = .1, .25, .4.
    # >=.1: all strong -> 75%; >=.25: items 2,3 strong -> (1+0+1+1)/4 = 75%; >.4: none -> 25%.
    # Sorted by strong share: (0,25) (50,75) (100,75). AUC = .5*50 + .5*75 = 62.5;
    # weak AUC 25, strong AUC 75 -> APGR 0.75. CPT50: acc 50 -> 25%; CPT80: acc 65 -> 40%.
    s = np.array([0.1, 0.2, 0.3, 0.4])
    yw = np.array([1.0, 0.0, 0.0, 0.0])
    ys = np.array([1.0, 0.0, 1.0, 1.0])
    m = routellm_pair_metrics(s, yw, ys, num_results=2)
    assert m.strong_pct.tolist() == [0.0, 50.0, 100.0]
    assert m.accuracy.tolist() == [25.0, 75.0, 75.0]
    assert m.apgr == pytest.approx(0.75)
    assert m.cpt50 == pytest.approx(25.0)
    assert m.cpt80 == pytest.approx(40.0)


def test_routellm_random_is_half_and_oracle_is_better() -> None:
    rng = np.random.default_rng(0)
    n = 20000
    yw = (rng.random(n) < 0.5).astype(float)
    ys = (rng.random(n) < 0.8).astype(float)
    rand = routellm_pair_metrics(rng.random(n), yw, ys)
    assert rand.apgr == pytest.approx(0.5, abs=0.03)
    assert rand.cpt50 == pytest.approx(50.0, abs=4.0)
    oracle = routellm_pair_metrics(ys - yw + 1e-6 * rng.random(n), yw, ys)
    assert oracle.apgr > 0.8 and oracle.cpt50 < 25.0


def test_routerdc_accuracy_averages_over_benchmarks() -> None:
    scores = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.5, 0.2], [np.nan, 1.0]])
    bench = np.array(["a", "a", "a", "b", "b"])
    choice = np.array([0, 1, 0, 0, 0])
    avg, per = routerdc_accuracy(choice, scores, bench)
    # a: (1 + 1 + 0)/3 = 66.67; b: (0.5 + 0 for the unknown)/2 = 25. Mean 45.83.
    assert per["a"] == pytest.approx(200 / 3) and per["b"] == pytest.approx(25.0)
    assert avg == pytest.approx((200 / 3 + 25) / 2)


def test_difficulty_spearman() -> None:
    scores = np.array([[1, 1, 1], [1, 1, 0], [1, 0, 0], [0, 0, 0], [np.nan, np.nan, np.nan]])
    d = np.array([-2.0, 0.0, 1.0, 5.0, 9.0])
    assert difficulty_spearman(d, scores) == pytest.approx(1.0)
    assert difficulty_spearman(-d, scores) == pytest.approx(-1.0)


def test_sweep_point() -> None:
    scores = np.array([[1.0, 0.0], [np.nan, 1.0], [0.0, 1.0]])
    cost = np.array([[1.0, 10.0], [1.0, 10.0], [2.0, 20.0]])
    c, a = sweep_point(np.array([0, 0, 1]), scores, cost)
    assert c == 22.0 and a == pytest.approx(2 / 3)  # an unknown outcome earns nothing
