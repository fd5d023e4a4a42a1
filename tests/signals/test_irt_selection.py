"""Selection rules and cost normalization, against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from irtgate.signals.irt.selection import (
    expected_costs,
    known_costs,
    normalize_costs,
    realized_costs,
    select_chebyshev,
    select_linear,
    select_target,
)

P = np.array([0.5, 0.8, 0.9])
C = np.array([0.001, 0.01, 0.1])  # log-spaced: normalizes to 0, 0.5, 1


def test_normalize_is_log_scaled_and_unit_free() -> None:
    np.testing.assert_allclose(normalize_costs(C), [0.0, 0.5, 1.0])
    # Same ratios, another currency or price level: same normalized costs (w means the same).
    np.testing.assert_allclose(normalize_costs(C * 1234.5), [0.0, 0.5, 1.0])
    np.testing.assert_allclose(normalize_costs(np.array([1.0, 1.0])), [0.0, 0.0])
    out = normalize_costs(np.array([0.0, 1.0, np.nan]))
    assert out.tolist() == [0.0, 1.0, 1.0]  # zero is the cheapest, unknown the dearest
    rows = normalize_costs(np.array([[1.0, 10.0], [5.0, 5.0]]))
    np.testing.assert_allclose(rows, [[0.0, 1.0], [0.0, 0.0]])
    with pytest.raises(ValueError):
        normalize_costs(np.array([-1.0, 1.0]))


@pytest.mark.parametrize(
    # w*p - (1-w)*nc per config, worked by hand:
    # w=0.5: 0.25, 0.15, -0.05 -> 0 | w=0.7: 0.35, 0.41, 0.33 -> 1 | w=0.9: 0.45, 0.67, 0.71 -> 2
    ("w", "want"),
    [(0.0, 0), (0.5, 0), (0.7, 1), (0.9, 2), (1.0, 2)],
)
def test_linear(w: float, want: int) -> None:
    assert select_linear(P, C, w) == want


@pytest.mark.parametrize(
    # max(w*(1-p), (1-w)*nc): w=0.5: .25, .25, .5 -> tie 0/1, cheaper 0;
    # w=0.6: .3, .24, .4 -> 1 | w=0.85: .425, .17, .15 -> 2
    ("w", "want"),
    [(0.0, 0), (0.5, 0), (0.6, 1), (0.85, 2), (1.0, 2)],
)
def test_chebyshev(w: float, want: int) -> None:
    assert select_chebyshev(P, C, w) == want


def test_chebyshev_reaches_a_non_convex_point_linear_skips() -> None:
    # Config 1 sits below the chord between 0 and 2 (non-convex front): no linear weight
    # picks it, some Chebyshev weight does.
    p = np.array([0.0, 0.45, 1.0])
    c = np.array([0.01, 0.1, 1.0])  # nc = 0, 0.5, 1
    lin = {select_linear(p, c, w) for w in np.linspace(0, 1, 101)}
    cheb = {select_chebyshev(p, c, w) for w in np.linspace(0, 1, 101)}
    assert 1 not in lin and 1 in cheb


def test_target() -> None:
    assert select_target(P, C, 0.75) == 1
    assert select_target(P, C, 0.5) == 0
    assert select_target(P, C, 0.95) == 2  # none reaches it: highest P


def test_batched_and_ties_go_to_the_cheaper() -> None:
    p = np.array([[0.5, 0.8, 0.9], [0.9, 0.9, 0.9]])
    out = select_linear(p, C, 1.0)
    assert isinstance(out, np.ndarray) and out.tolist() == [2, 0]
    # Per-item costs (n, G)
    costs = np.array([[0.1, 0.01, 0.001], [0.001, 0.01, 0.1]])
    assert np.asarray(select_linear(p, costs, 0.0)).tolist() == [2, 0]
    # All-equal costs: every rule is argmax P for any w.
    eq = np.ones(3)
    assert select_linear(P, eq, 0.1) == 2 and select_chebyshev(P, eq, 0.1) == 2


def test_bad_inputs() -> None:
    with pytest.raises(ValueError):
        select_linear(P, C, 1.5)
    with pytest.raises(ValueError):
        select_linear(P, C[:2], 0.5)
    with pytest.raises(ValueError):
        select_chebyshev(np.array([0.1, np.nan, 0.2]), C, 0.5)


def test_expected_costs_sources() -> None:
    cfg = ("a", "b", "c")
    obs = np.array([[1.0, 2.0, np.nan], [3.0, np.nan, np.nan]])
    # Observed means; c unknown and not priced -> dearest known (cautious).
    np.testing.assert_allclose(expected_costs(cfg, obs), [2.0, 2.0, 2.0])
    prices = {"c": (1.0, 2.0)}  # USD per 1M tokens in/out
    got = expected_costs(cfg, obs, prices=prices, input_tokens=1000, output_tokens=500)
    np.testing.assert_allclose(got, [2.0, 2.0, (1000 * 1.0 + 500 * 2.0) / 1e6])
    np.testing.assert_allclose(expected_costs(cfg), [1.0, 1.0, 1.0])  # nothing known
    rc = realized_costs(obs, np.array([9.0, 8.0, 7.0]), 2)
    np.testing.assert_allclose(rc, [[1.0, 2.0, 7.0], [3.0, 8.0, 7.0]])
    # What a router card records: no stand-in price for c.
    np.testing.assert_allclose(known_costs(cfg, obs), [2.0, 2.0, np.nan])
    assert np.isnan(known_costs(cfg)).all()


def test_remembered_normalized_costs_give_the_same_choices() -> None:
    """1-D costs are normalized once per distinct cost vector and shared read-only."""
    from irtgate.signals.irt.selection import _normalized, normalize_costs

    rng = np.random.default_rng(3)
    costs = [np.array([1e-4, 2e-4, 1e-3, 5e-3]), np.array([1.0, np.nan, 0.0, 2.0])]
    for c in costs:
        shared = _normalized(tuple(c.tolist()))
        assert not shared.flags.writeable
        np.testing.assert_array_equal(shared, normalize_costs(c))
        for _ in range(50):
            p = rng.random(4)
            for w in (0.0, 0.3, 0.8, 1.0):
                batch = np.asarray(select_linear(p[None, :], c[None, :], w))
                assert select_linear(p, c, w) == batch[0]
                batch = np.asarray(select_chebyshev(p[None, :], c[None, :], w))
                assert select_chebyshev(p, c, w) == batch[0]
            assert select_target(p, c, 0.5) == np.asarray(select_target(p[None], c[None], 0.5))[0]
    with pytest.raises(ValueError):
        select_linear(np.array([0.5, 0.5]), np.array([-1.0, 1.0]), 0.5)
