"""Permutation averaging and order sensitivity, with hand-computed expected values."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.stats import kendalltau, spearmanr

from hybridrec.coldstart.permutation import (
    all_orders,
    borda_points,
    fuse,
    order_sensitivity,
    permuted_scores,
    seeded_orders,
)

from .conftest import candidates


def test_borda_on_a_hand_example() -> None:
    # three orders of four items (columns = items a, b, c, d)
    per_order = np.array(
        [
            [0.9, 0.5, 0.1, 0.3],  # a > b > d > c  -> points a3 b2 c0 d1
            [0.2, 0.8, 0.4, 0.6],  # b > d > c > a  -> a0 b3 c1 d2
            [0.7, 0.7, 0.1, 0.0],  # a = b > c > d  -> a2.5 b2.5 c1 d0
        ]
    )
    expected_points = [[3, 2, 0, 1], [0, 3, 1, 2], [2.5, 2.5, 1, 0]]
    np.testing.assert_allclose(borda_points(per_order), expected_points)
    np.testing.assert_allclose(fuse(per_order, "borda"), [5.5 / 3, 7.5 / 3, 2 / 3, 3 / 3])
    np.testing.assert_allclose(fuse(per_order, "mean"), [0.6, 2.0 / 3, 0.2, 0.3])
    with pytest.raises(ValueError, match="unknown fusion 'max'"):
        fuse(per_order, "max")


def test_orders() -> None:
    orders = seeded_orders(6, 5, seed=3)
    assert orders.shape == (5, 6) and orders[0].tolist() == list(range(6))
    assert len({tuple(o) for o in orders.tolist()}) == 5
    assert all(sorted(o) == list(range(6)) for o in orders.tolist())
    np.testing.assert_array_equal(orders, seeded_orders(6, 5, seed=3))
    assert not np.array_equal(orders, seeded_orders(6, 5, seed=4))
    assert seeded_orders(3, 100).shape == (6, 3)  # all 3! orders, no more
    assert {tuple(o) for o in all_orders(3).tolist()} == set(itertools.permutations(range(3)))
    assert all_orders(0).shape == (1, 0)
    with pytest.raises(ValueError, match="at most 8"):
        all_orders(9)


def test_scores_are_put_back_in_the_candidates_order() -> None:
    # candidate j shown at position p scores 10 * j + p
    def shown(order):
        return np.array([10.0 * j + p for p, j in enumerate(order)])

    result = permuted_scores(shown, 4, orders=3, seed=1)
    for row, order in zip(result.per_order, result.orders, strict=True):
        for position, j in enumerate(order):
            assert row[j] == 10 * j + position
    # over all orders each candidate is shown at each position equally often
    full = permuted_scores(shown, 4, orders="all")
    np.testing.assert_allclose(full.scores, [10 * j + 1.5 for j in range(4)])
    with pytest.raises(ValueError, match="permutations of range"):
        permuted_scores(shown, 3, orders=np.array([[0, 1, 1]]))
    with pytest.raises(ValueError, match="expected"):
        permuted_scores(lambda order: np.zeros(2), 3, orders=2)


def test_a_pure_position_bias_cancels_over_all_orders() -> None:
    result = permuted_scores(lambda o: np.array([5.0, 1.0, 0.0]), 3, orders="all")
    np.testing.assert_allclose(result.scores, [2.0, 2.0, 2.0])
    assert result.sensitivity().mean == pytest.approx(-1 / 5)  # orders disagree


@pytest.mark.parametrize("fusion", ["mean", "borda"])
def test_averaging_over_all_orders_does_not_depend_on_the_input_order(
    make_scorer, fusion: str
) -> None:
    scorer = make_scorer()
    texts = ["Heat (1995)", "Toy Story (1995)", "Alien (1979)"]
    base = scorer.score_permuted("crime", candidates(texts), orders="all", fusion=fusion)
    for perm in itertools.permutations(range(3)):
        cands = [candidates(texts)[i] for i in perm]
        result = scorer.score_permuted("crime", cands, orders="all", fusion=fusion)
        np.testing.assert_allclose(result.scores, base.scores[list(perm)], atol=1e-6)
    # a single order does depend on it: the tiny model has a position bias
    one = scorer.score("crime", candidates(texts))
    rev = scorer.score("crime", candidates(texts)[::-1])[::-1]
    assert not np.allclose(one, rev, atol=1e-6)


def test_order_sensitivity_against_scipy() -> None:
    rng = np.random.default_rng(0)
    per_order = rng.normal(size=(4, 7))
    for method, oracle in (("kendall", kendalltau), ("spearman", spearmanr)):
        result = order_sensitivity(per_order, method)
        pairs = [
            oracle(per_order[a], per_order[b]).statistic
            for a, b in itertools.combinations(range(4), 2)
        ]
        assert result.mean == pytest.approx(np.mean(pairs))
        assert result.minimum == pytest.approx(np.min(pairs))
        assert result.pairwise.shape == (4, 4) and np.allclose(np.diag(result.pairwise), 1)
    same = order_sensitivity(np.tile([3.0, 1.0, 2.0], (3, 1)))
    assert same.mean == pytest.approx(1.0)
    assert np.isnan(order_sensitivity(np.ones((2, 3))).mean)
    with pytest.raises(ValueError, match="at least 2 orders"):
        order_sensitivity(np.ones((1, 3)))
    with pytest.raises(ValueError, match="unknown method"):
        order_sensitivity(per_order, "pearson")
