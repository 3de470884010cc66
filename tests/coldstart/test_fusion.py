"""Prior fusion: standardised scores, list NDCG, and the validated choice of the weight."""

from __future__ import annotations

import numpy as np
import pytest

from hybridrec.coldstart.fusion import PriorFusion, choose_weight, list_ndcg


def test_list_ndcg_by_hand() -> None:
    # relevant items at ranks 1 and 3 of 3; ideal: ranks 1 and 2
    got = list_ndcg(np.array([0.9, 0.1, 0.5]), np.array([True, True, False]), 10)
    want = (1 + 1 / np.log2(4)) / (1 + 1 / np.log2(3))
    assert got == pytest.approx(want)
    assert list_ndcg(np.array([1.0]), np.array([False])) == 0.0


def test_fusion_ends_and_round_trip() -> None:
    f = PriorFusion(0.25, 1.0, 2.0, 3.0, 4.0)
    lm, prior = np.array([1.0, 3.0]), np.array([3.0, 7.0])
    np.testing.assert_allclose(f.fuse(lm, prior), 0.75 * np.array([0, 1]) + 0.25 * np.array([0, 1]))
    np.testing.assert_allclose(PriorFusion(1.0).fuse(None, prior), prior)
    np.testing.assert_allclose(PriorFusion(0.0).fuse(lm, prior), lm)
    assert PriorFusion.from_array(f.to_array()) == f
    with pytest.raises(ValueError):
        PriorFusion.from_array(np.array([2.0, 0, 1, 0, 1]))


def _cases(n: int, lm_signal: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    lm, prior, labels = [], [], []
    for _ in range(n):
        y = np.zeros(20, bool)
        y[rng.integers(20)] = True
        lm.append(rng.normal(size=20) + lm_signal * y)
        prior.append(rng.normal(size=20) + 0.5 * y)
        labels.append(y)
    return lm, prior, labels


def test_a_clearly_useful_model_is_kept() -> None:
    fusion, table = choose_weight(*_cases(60, lm_signal=3.0))
    assert fusion.weight < 1.0 and table[fusion.weight] > table[1.0]


def test_a_useless_model_gives_the_prior_alone() -> None:
    for seed in range(5):
        fusion, table = choose_weight(*_cases(15, lm_signal=0.0, seed=seed))
        assert fusion.weight == 1.0
        assert max(table.values()) >= table[1.0]


def test_the_grid_must_hold_the_prior_alone() -> None:
    with pytest.raises(ValueError, match="hold 1.0"):
        choose_weight([], [], [], (0.0, 0.5))
